"""Type stubs of the C extension bayesworker._core (csrc/module.c).

The core knows its models through one registry (csrc/registry.c): every family is a row
with its constants and its operations, exported here as MODELS.  Every number the core
owns is exported below; Python reads them from here and never repeats them.
"""

from collections.abc import Sequence
from typing import Any, TypedDict

import numpy as np
import numpy.typing as npt

# ---------------------------------------------------------------------------------------- #
# The registry                                                                             #
# ---------------------------------------------------------------------------------------- #

class ModelRow(TypedDict):
    #: the model type string, e.g. "beta-binomial"
    name: str
    #: its number (Core.fit takes the name or the code)
    code: int
    #: the names of the parts a proxy shows, e.g. ("revenue", "frequency", "severity")
    parts: tuple[str, ...]
    #: the part code of each (the `part` argument of sample, interval, ...)
    part_codes: tuple[int, ...]
    #: the prior tuple Core.fit takes: (key, default) in order; compound models nest their
    #: parts' keys ("frequency.alpha", "severity.mu", ...); the mixtures' prior is stated on
    #: the standardised scale (csrc/mixture.h)
    prior: tuple[tuple[str, float], ...]
    #: True: the prior holds one number per category, each defaulting to prior[0]'s default
    prior_per_category: bool
    #: the value rules raw values must pass (names of VALUE_RULES)
    rules: tuple[str, ...]
    #: names of the posterior's sufficient statistics (get()["stats"], in this order)
    stats: tuple[str, ...]
    #: the leading statistics Core.fit(stats=...) takes instead of values
    value_stats: tuple[str, ...]
    #: what Core.fit takes: "counts" (successes, trials), "values", "stats", "options"
    data: tuple[str, ...]
    #: fitted by iterations (Job.progress counts them; Job.report describes them)
    iterative: bool

#: One dict per family, in the registry's order.
MODELS: tuple[ModelRow, ...]

# ---------------------------------------------------------------------------------------- #
# Numbers the core owns (csrc/bw_codes.h, bw_dist.h, bw_status.h, mixture.h)              #
# ---------------------------------------------------------------------------------------- #

#: Draws per block of a sampling job (a vector of width w counts w), and raw values per
#: block of a fit: about a millisecond of work each, the grain of cancellation and timeouts.
SAMPLE_BLOCK: int
FIT_BLOCK: int
#: The central credible levels cached at every fit: (0.95, 0.90, 0.80).
CACHED_LEVELS: tuple[float, ...]
#: A lognormal's data-scale mean has no finite posterior mean: its moments are those
#: truncated at this posterior quantile.
TRUNC_LEVEL: float

#: Distribution kinds of get()["parts"][i]["factors"][j][0] (params follow: 4 numbers).
DIST_BETA: int          # Beta(alpha, beta)
DIST_NIG_MEAN: int      # mu of a normal-inverse-gamma (m, kappa, alpha, beta): a Student-t
DIST_NIG_LNMEAN: int    # exp(mu + sigma^2 / 2) under the same
DIST_GAMMA: int         # Gamma(shape alpha, rate beta)
DIST_INVGAMMA: int      # 1 / Gamma(shape alpha, rate beta)

#: Part codes of the conjugate families.
PART_VALUE: int         # a one-part model's quantity (0)
PART_REVENUE: int       # a compound's revenue per user (0)
PART_FREQUENCY: int     # a compound's conversion rate (1)
PART_SEVERITY: int      # a compound's value per converter (2)

#: Monte Carlo comparisons (csrc/compare.h): the default (and least) and the most joint
#: draws, and the flags of a drawn arm (its draws are > 0; its mean is infinite).
CMP_MC_DRAWS: int
CMP_MC_MAX_DRAWS: int
CMP_POSITIVE: int
CMP_HEAVY: int

#: Names of the value rules by code (csrc/bw_status.h): "", "finite", "positive",
#: "nonnegative", "integer", "some_positive", "bounded".  A DataError raised by the core
#: carries one of them as .rule.
VALUE_RULES: tuple[str, ...]
#: Names of the core's statuses by code (csrc/bw_status.h): "ok", "bad argument",
#: "numerical failure", "out of memory", "value refused", "cancelled", "timeout",
#: "not found".
STATUSES: tuple[str, ...]

# The mixture families' numbers (their registry rows export them; csrc/bw_codes.h,
# csrc/mixture.h).
MAX_COMPONENTS: int         # most components of a mixture (8)
MIX_MC_DRAWS: int           # draws behind a mixture mean's cached Monte Carlo intervals
MIXTURE_MAX_ABS: float      # normal-mixture values must be at most this in magnitude
MIXTURE_TOLERANCE: float    # the default relative ELBO tolerance (options' tol)
MIXTURE_MAX_ITERATIONS: int # the default most iterations per K (options' max_iter)
MAX_ITERATIONS: int         # the largest max_iter accepted
#: The mixtures' fixed prior on the standardised scale (csrc/mixture.h), as (key, default)
#: pairs in prior-tuple order: alpha0, m0, kappa0, a0, b0 (also the rows' "prior").
MIXTURE_PRIOR: tuple[tuple[str, float], ...]
PART_MIX_MEAN: int          # the mixture's data-scale mean (8)
PART_MIX_PREDICTIVE: int    # a new data value from the posterior predictive (9)
PART_MIX_REVENUE: int       # a compound mixture's revenue per user (10)
PART_MIX_COMPONENT: int     # + r: reported component r's data-scale mean (16)
PART_MIX_WEIGHT: int        # + r: reported component r's weight (24)

# dirichlet-multinomial's numbers (its registry row exports them; csrc/fam_dirichlet.c).
# Data: k category counts (values = k whole numbers >= 0); prior: one alpha per category.
# The posterior is Dirichlet(alpha + counts); get()["parts"][i] is share i's exact marginal
# Beta(a_i, sum_{j != i} a_j); get()["dirichlet"] = {"k", "alpha", "counts", "cursor"}.
MAX_CATEGORIES: int         # most categories k (1024); more is refused with ModelError
PART_SHARES: int            # the share vector: sample() fills out with n * k doubles,
                            # row-major (an (n, k) array, or a flat one of n * k)
PART_CATEGORY: int          # + i: share i's marginal (interval, interval_now)

# ---------------------------------------------------------------------------------------- #
# Errors                                                                                   #
# ---------------------------------------------------------------------------------------- #
# Every failure of the core is translated in one place (module.c, error_exception) from its
# status, and no message carries a status number:
#   out of memory                     MemoryError
#   an input value refused            bayesworker.DataError, with .rule (a VALUE_RULES name),
#                                     .index and .value ("value at index 3 = nan is not
#                                     finite")
#   numerical failure, bad argument   bayesworker.ModelError (with .index and .value when an
#                                     input value caused an overflow)
#   posterior not in the store        bayesworker.DisposedError
#   cancelled                         RuntimeError
#   timeout                           TimeoutError

def stream_key(seed: int, posterior_id: int) -> int:
    """The Philox key of that posterior's draws."""

#: A quantity as a posterior describes it: ((kind, p0, p1, p2, p3),) for one distribution
#: (kind: a DIST_* constant) or two such tuples for a product (frequency x severity).
Factors = tuple[tuple[int, float, float, float, float], ...]

def cdf(factors: Factors, x: npt.ArrayLike) -> np.ndarray:
    """P(quantity <= x) elementwise (NaN -> NaN), an array of x's shape; exact (bw_cdf)."""
def ppf(factors: Factors, q: npt.ArrayLike) -> np.ndarray:
    """The q-quantiles elementwise, q in [0, 1] (0 and 1: the support's ends; NaN -> NaN;
    others raise ModelError naming the element); exact (bw_quantile)."""
def pdf(factors: Factors, x: npt.ArrayLike) -> np.ndarray:
    """The density elementwise: closed form for Beta, Gamma, inverse Gamma and the NIG mean
    (csrc/density.c); by the cdf's own quadrature for a lognormal mean or a product
    (bw_pdf in csrc/summary.c)."""

class Channel:
    def fileno(self) -> int: ...
    def drain(self) -> list[int]: ...

class Job:
    @property
    def id(self) -> int: ...
    @property
    def done(self) -> bool: ...
    @property
    def status(self) -> str:
        """'pending', 'ok', 'cancelled', 'failed' or 'timeout'."""
    @property
    def exec_time(self) -> float:
        """Seconds during which at least one worker thread was executing this job (its
        blocks or its finish step); 0.0 while queued.  A timeout bounds this figure."""
    @property
    def exception(self) -> BaseException | None:
        """None while pending or after success; else the exception that says why the job
        ended (see Errors above)."""
    @property
    def error(self) -> str | None:
        """Why the job did not end OK (str(exception)); None while pending or after success."""
    @property
    def progress(self) -> tuple[int, int]:
        """(blocks done, blocks), or (iterations, most iterations) of an iterative fit."""
    @property
    def result(self) -> int | tuple[float, float] | None:
        """A fit's posterior id, an interval's (lo, hi), or None."""
    @property
    def runtime(self) -> float:
        """Seconds from submission to finish (or to now)."""
    @property
    def value(self) -> float | None:
        """The running figure of an iterative fit (a mixture's current ELBO), or None."""
    @property
    def report(self) -> dict[str, Any] | None:
        """A finished fit's report from its family, or None.  Mixtures: {"fits": ({"K",
        "elbo", "iterations", "converged"}, ...), "chosen", "elbo_history", "loc", "scale"}."""
    @property
    def mixture_report(self) -> dict[str, Any] | None:
        """The old name of report."""
    def cancel(self) -> None: ...
    def wait(self, timeout: float | None) -> bool: ...

class Core:
    def __init__(self, threads: int, seed: int) -> None: ...
    @property
    def threads(self) -> int: ...
    @property
    def seed(self) -> int: ...
    @property
    def closed(self) -> bool: ...
    @property
    def inherited(self) -> bool: ...
    def close(self) -> None: ...
    def new_channel(self) -> Channel: ...
    # Every method that submits a job takes timeout: None (no limit) or the seconds of
    # execution time the job may take (time queued behind other jobs does not count); the
    # pool checks it at block boundaries and stops the job, which ends 'timeout'.
    def fit_batch(self, model: str | int, prior: tuple[float, ...],
                  ids: npt.NDArray[np.uint64], *,
                  counts: npt.NDArray[np.int64] | None = None,
                  values: npt.NDArray[np.float64] | None = None,
                  offsets: npt.NDArray[np.int64] | None = None,
                  stats: npt.NDArray[np.float64] | None = None,
                  summaries: npt.NDArray[np.float64] | None = None,
                  channel: Channel | None = None, timeout: float | None = None) -> Job:
        """One fit of a conjugate `model` per group, as one job: group g takes counts[g]
        (successes, trials), stats[g] or values[offsets[g]:offsets[g+1]].  Fills ids[g]
        with the posterior ids; a failed job sets the first failing group's id to 0.
        summaries[g]: per part mean, variance, then (lo, hi) at each cached level."""
        ...

    def fit(self, model: str | int, prior: tuple[float, ...], *, successes: int = 0,
            trials: int = 0, values: npt.NDArray[np.float64] | None = None,
            stats: tuple[float, ...] | None = None,
            options: tuple[tuple[int, ...], float, int] | None = None,
            channel: Channel | None = None, timeout: float | None = None,
            here: bool = False) -> Job:
        """Fit `model` (a MODELS name or code).  prior: the row's prior tuple.  Data as the
        row's "data" says: successes/trials, raw values (a 1-D float64 array, read in place
        and kept alive by the Job), or stats (the row's value_stats) instead of values.
        options: (Ks, tol, max_iter) of an iterative family: each K in Ks is fitted in turn
        and the best ELBO kept.  A bad request raises before any work (ModelError)."""
    def reserve(self, post_id: int, part: int, n: int) -> int:
        """Reserve n positions of a part's stream; returns the first."""
    def sample(self, post_id: int, part: int, out: npt.NDArray[np.float64],
               channel: Channel | None, start: int = -1, *,
               timeout: float | None = None) -> Job:
        """Fill out (C-contiguous float64, out.size a multiple of the part's draw width)
        with the next draws of a part (start < 0: reserved now; else from start)."""
    def sample_now(self, post_id: int, part: int,
                   out: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]: ...
    def interval(self, post_id: int, part: int, level: float, channel: Channel | None, *,
                 timeout: float | None = None) -> Job: ...
    def interval_now(self, post_id: int, part: int, level: float) -> tuple[float, float]: ...
    def compare(self, arms: Sequence[tuple[int, int] | tuple[int, int, Factors | int]],
                control: int, higher: bool, levels: Sequence[float],
                thresholds: Sequence[float], full: bool, channel: Channel | None, *,
                timeout: float | None = None, draws: int = 0) -> Job:
        """A comparison job (csrc/compare.h); an arm is (post_id, part) of a conjugate
        posterior, (post_id, part, factors) of a part the store describes (exact), or
        (post_id, part, CMP_POSITIVE | CMP_HEAVY flags) of a part drawn by its family:
        then the whole comparison is Monte Carlo over `draws` joint draws (0: CMP_MC_DRAWS).
        Its result is a dict of per-arm tuples: prob_best, prob_beats, loss, loss_vs, mean,
        truncated, relative / absolute (per level: mean, median, lo, hi), above_relative /
        above_absolute (per threshold), the Monte Carlo standard errors se_prob_best,
        se_prob_beats, se_loss, se_loss_vs, se_mean, se_lift_mean_relative /
        _absolute, se_above_relative / _absolute; error; draws (0: exact)."""
        ...
    def get(self, post_id: int) -> dict[str, Any]:
        """The stored posterior: id, model (code), model_type (name), created,
        last_access, fit_seconds, bytes (its record: sized for its family), then what its
        family describes: parts (per part: factors, mean, variance, intervals, cursor),
        mixture (a dict, or None), stats (named by the row's stats)."""
    def touch(self, post_id: int) -> bool: ...
    def remove(self, post_id: int) -> bool: ...
    def remove_many(self, ids: Any) -> int: ...
    def clear(self) -> list[int]: ...
    def evict(self, before: float) -> list[int]: ...
    def snapshot(self) -> list[dict[str, Any]]: ...
    def live_jobs(self) -> int: ...
    def cancel_all(self) -> None: ...
