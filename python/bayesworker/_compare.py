"""Decisions between arms: which variant wins, by how much, and is it safe to ship.

``worker.compare({"A": pa, "B": pb}, control="A")`` is one request (written once here as
:func:`compare_request`, driven by ``compare`` on the event loop and by ``compare_sync``
on this thread). The figures are computed in C on the workers by deterministic quadrature
over the arms' exact posteriors (``csrc/compare.c``), never from draws, and come back as a
:class:`Comparison` that caches them. Arms with no tractable integrals (a mixture's mean or
revenue per user) make the whole comparison Monte Carlo: a fixed, seeded stream of
``draws`` joint draws reduced in C (``csrc/compare_mc.c``), with standard errors.

>>> import bayesworker as bw
>>> with bw.InferenceWorker(threads=1, seed=1) as w:
...     a = w.run_inference_sync("beta-binomial", {"successes": 65, "trials": 1000}).posterior
...     b = w.run_inference_sync("beta-binomial", {"successes": 80, "trials": 1000}).posterior
...     cmp = w.compare_sync({"A": a, "B": b})
...     print(round(cmp.prob_beats_control()["B"], 6), cmp.decision()["action"])
0.901427 ship
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from . import _core
from ._bridge import Call, Request
from ._errors import DisposedError, ModelError

__all__ = ["Comparison", "compare_request", "quantity_of"]

COMPARING = "comparing"
MAX_ARMS = 32                   # BW_CMP_MAX_ARMS of csrc/compare.h (the core checks it too)
DEFAULT_LEVEL = 0.95
SRM_ALPHA = 1 / 1000         # p-value below which srm() warns
DEFAULT_THRESHOLD = 1 / 1000  # decision(): the expected loss not worth caring about


def _stored(proxy: Any) -> dict | None:
    try:
        return proxy._handle.bridge.core.get(proxy._handle.id)
    except (DisposedError, KeyError, RuntimeError):
        return None


def quantity_of(proxy: Any) -> str:
    """The quantity a proxy reports on, from its factors' kinds in the C store; arms of
    one comparison must share it."""
    try:
        return _source("", proxy, None)[0]
    except ModelError:          # a dirichlet posterior: a vector, until a category is named
        return "category shares"


def _label(factors: tuple) -> str:
    kinds = tuple(f[0] for f in factors)
    if len(kinds) == 2:
        return "revenue per user"
    return {_core.DIST_BETA: "conversion rate", _core.DIST_GAMMA: "poisson rate"}.get(
        kinds[0], "mean value")


def _source(name: str, proxy: Any, category: Any, post: dict | None = None
            ) -> tuple[str, tuple]:
    """The quantity arm ``name`` reports on and how the core reads it: ``(post_id, part)``
    for a conjugate part; ``(post_id, part, factors)`` for a part the store describes but
    keeps in no conjugate payload (a dirichlet category's Beta, a compound mixture's
    conversion rate), exact; ``(post_id, part, flags)`` for a part with no tractable
    integrals (a mixture's mean or revenue), drawn: the comparison is Monte Carlo."""
    pid, part = proxy._handle.id, proxy._part
    post = (_stored(proxy) if post is None else post) or {}
    if post.get("dirichlet") is not None:
        return _category(name, proxy, post, category)
    parts, mixture = post.get("parts") or (), post.get("mixture")
    if 0 <= part < len(parts) and parts[part].get("factors"):
        factors = tuple(tuple(f) for f in parts[part]["factors"])
        return _label(factors), (pid, part) if mixture is None else (pid, part, factors)
    if mixture is not None and part in (_core.PART_MIX_MEAN, _core.PART_MIX_REVENUE):
        kinds = {f[0] for c in mixture["components"] for f in c["factors"]}
        flags = (0 if _core.DIST_NIG_MEAN in kinds else _core.CMP_POSITIVE) | \
            (_core.CMP_HEAVY if _core.DIST_NIG_LNMEAN in kinds else 0)
        what = "revenue per user" if part == _core.PART_MIX_REVENUE else "mean value"
        return what, (pid, part, flags)
    return getattr(proxy, "model_type", ""), (pid, part)


def _category(name: str, proxy: Any, post: dict, category: Any) -> tuple[str, tuple]:
    """A dirichlet-multinomial arm: the share of ``category``, whose marginal is the exact
    Beta of the store's description (arms are independent: the marginal is all that
    matters)."""
    parts = post["parts"]
    cats = tuple(getattr(proxy, "categories", range(len(parts))))
    if category is None:
        raise ModelError(f"arm {name!r} is a dirichlet-multinomial posterior: its vector of "
                         f"{len(cats)} category shares has no exact comparison as a whole; "
                         f"compare one category's share with category=... (one of "
                         f"{list(cats)})")
    i = next((j for j, c in enumerate(cats)
              if not isinstance(category, bool) and c == category), None)
    if i is None:
        raise ModelError(f"category = {category!r} is not a category of arm {name!r}: "
                         f"{list(cats)}")
    factors = tuple(tuple(f) for f in parts[i]["factors"])
    return f"share of category {category!r}", (proxy._handle.id, _core.PART_CATEGORY + i,
                                               factors)


def _draws(draws: Any) -> int:
    """``draws=`` of a comparison: None (the core's default) or a whole number in the core's
    range; 0 tells the core to use its default."""
    if draws is None:
        return 0
    lo, hi = _core.CMP_MC_DRAWS, _core.CMP_MC_MAX_DRAWS
    if isinstance(draws, bool) or not isinstance(draws, int) or not lo <= draws <= hi:
        raise ModelError(f"draws = {draws!r} must be a whole number from {lo} (2**20) to "
                         f"{hi} (2**24): the joint draws of a Monte Carlo comparison")
    return int(draws)


def _arms(worker: Any, arms: Mapping[str, Any], control: str | None, category: Any = None
          ) -> tuple[tuple[str, ...], list[tuple], int, dict[str, float | None]]:
    """Names, the core's arms (see :func:`_source`), the control's index and the arms'
    user counts (one look at the C store per arm), or a clear error."""
    if not isinstance(arms, Mapping):
        raise ModelError(f"arms must be a dict {{name: posterior proxy}}, not "
                         f"{type(arms).__name__}")
    names = tuple(arms)
    if not 2 <= len(names) <= MAX_ARMS:
        raise ModelError(f"a comparison takes 2 to {MAX_ARMS} arms; got {len(names)}: "
                         f"{list(names)}")
    for name in names:
        if not isinstance(name, str):
            raise ModelError(f"arm names must be strings, not {name!r}")
    control = names[0] if control is None else control
    if control not in arms:
        raise ModelError(f"control = {control!r} is not one of the arms {list(names)}")
    kinds: dict[str, list[str]] = {}
    sources = []
    users: dict[str, float | None] = {}
    for name, proxy in arms.items():
        handle = getattr(proxy, "_handle", None)
        if handle is None or not hasattr(proxy, "_part"):
            raise ModelError(f"arm {name!r} is not a posterior proxy: {proxy!r}")
        if handle.bridge is not worker._bridge:
            raise ModelError(f"arm {name!r} belongs to another worker; every arm must be a "
                             f"posterior of this worker")
        if handle.gone is not None:
            raise DisposedError(f"arm {name!r}: posterior {handle.id} is gone: "
                                f"{handle.gone}")
        post = _stored(proxy)
        quantity, source = _source(name, proxy, category, post)
        kinds.setdefault(quantity, []).append(name)
        sources.append(source)
        users[name] = _users(proxy, post)
    if category is not None and not any(k.startswith("share of category") for k in kinds):
        raise ModelError(f"category = {category!r} picks a category of dirichlet-multinomial "
                         f"arms, and none of the arms {list(names)} is one")
    if len(kinds) > 1:
        detail = "; ".join(f"{k}: {v}" for k, v in kinds.items())
        raise ModelError(f"the arms report on different quantities ({detail}); compare "
                         f"arms of one quantity")
    return names, sources, names.index(control), users


def _call(worker: Any, pairs: list, ci: int, higher: bool, levels: tuple,
          thresholds: tuple, full: bool, timeout: float | None,
          on_progress: Callable | None, draws: int = 0) -> Call:
    core = worker._core

    def submit(channel: Any, limit: float) -> Any:
        return core.compare(pairs, ci, higher, levels, thresholds, full, channel,
                            timeout=limit, draws=draws)

    def here() -> dict:
        job = submit(None, -1.0 if timeout is None else float(timeout))
        job.wait(None)
        if job.status != "ok":
            raise job.exception
        return job.result

    return Call(COMPARING, submit, here=here, result=lambda job: job.result,
                timeout=timeout, on_progress=on_progress)


def compare_request(worker: Any, arms: Mapping[str, Any], control: str | None,
                    higher_is_better: bool, timeout: float | None,
                    on_progress: Callable | None, draws: int | None = None,
                    category: Any = None) -> Request:
    """The request of ``worker.compare``: its value is a :class:`Comparison`."""
    n = _draws(draws)
    names, pairs, ci, counts = _arms(worker, arms, control, category)
    higher = bool(higher_is_better)
    figures = yield _call(worker, pairs, ci, higher, (DEFAULT_LEVEL,), (), True, timeout,
                          on_progress, n)

    def more(levels: tuple, thresholds: tuple) -> dict:
        for name in names:
            arms[name]._check()
        return worker._bridge.run_sync(_one(_call(worker, pairs, ci, higher, levels,
                                                  thresholds, False, timeout, None, n)))

    return Comparison(names, names[ci], higher, figures, more, counts)


def _one(call: Call) -> Request:
    return (yield call)


def _users(proxy: Any, post: dict | None) -> float | None:
    """The users behind an arm (the statistic named "trials" or "users" of its model, from
    its stored posterior ``post``), or None."""
    if post is None or proxy._part not in (0, _core.PART_FREQUENCY):
        return None
    names = next((r["stats"] for r in _core.MODELS if r["code"] == post["model"]), ())
    for i, name in enumerate(names):
        if name in ("trials", "users") and i < len(post["stats"]):
            return float(post["stats"][i])
    return None


def chi2_sf(df: int, x: float) -> float:
    """P(chi-square with integer ``df`` > x), from the closed forms of integer degrees."""
    if x <= 0.0:
        return 1.0
    h = 0.5 * x
    if df % 2 == 0:
        term = total = 1.0
        for i in range(1, df // 2):
            term *= h / i
            total += term
        return min(1.0, math.exp(-h) * total)
    term = total = 0.0
    if df > 1:
        term = total = 1.0
        for i in range(1, (df - 1) // 2):
            term *= x / (2 * i + 1)
            total += term
    return min(1.0, math.erfc(math.sqrt(h)) + math.sqrt(2.0 * x / math.pi) * math.exp(-h)
               * total)


class Comparison:
    """Figures of a comparison of arms (see the README, "Comparing arms").

    Every dict is in arm order. "Better" means higher unless ``higher_is_better=False``,
    which flips every direction: P(beat) is P(lower), the loss is the excess over the
    lowest arm, and the lift is the improvement ``1 - X_arm / X_control`` (relative) or
    ``X_control - X_arm`` (absolute).

    The figures are exact (deterministic quadrature; ``draws`` is None) unless an arm has
    no tractable integrals (a mixture's mean or revenue): then every figure comes from one
    fixed, seeded stream of ``draws`` joint draws (Monte Carlo, the same for the same seed
    and arms whatever the thread count), ``error`` is a standard error, not a bound, and
    ``standard_errors()`` gives each figure's.
    """

    def __init__(self, arms: tuple[str, ...], control: str, higher_is_better: bool,
                 figures: dict, more: Callable[[tuple, tuple], dict],
                 users: Mapping[str, float | None] | None = None) -> None:
        self.arms = arms
        self.control = control
        self.higher_is_better = higher_is_better
        self._f = figures
        self._more = more
        self._lifts: dict[tuple[bool, float], dict] = {}
        self._above: dict[tuple[bool, float], dict] = {}
        self._users = dict(users or {})
        self._store_lifts(figures, (DEFAULT_LEVEL,))

    # -- figures -------------------------------------------------------------------------
    def _by_arm(self, key: str, skip_control: bool = False) -> dict[str, float]:
        return {n: float(v) for n, v in zip(self.arms, self._f[key])
                if not (skip_control and n == self.control)}

    @property
    def error(self) -> float:
        """Exact comparisons: a bound on the numerical error of the probabilities reported.
        Monte Carlo comparisons (``draws`` not None): the largest standard error
        sqrt(p (1 - p) / draws) of P(best) and P(beat control), a standard error, not a
        bound (the losses' are in ``standard_errors()``)."""
        return float(self._f["error"])

    @property
    def draws(self) -> int | None:
        """The joint draws of a Monte Carlo comparison, or None when it is exact."""
        n = int(self._f.get("draws", 0))
        return n or None

    def standard_errors(self) -> dict[str, dict[str, float]]:
        """Monte Carlo comparisons: each figure's standard error, ``{figure: {arm: se}}``
        for ``prob_best``, ``prob_beats_control``, ``expected_loss``,
        ``expected_loss_vs_control``, ``mean`` (0 for an exact arm's exact mean),
        ``lift_mean`` and ``lift_mean_abs`` (the relative and absolute lift means).
        ``prob_lift_above(t)``'s is sqrt(p (1 - p) / draws). An exact comparison has none
        (its ``error`` bounds the error of its probabilities): ModelError."""
        if self.draws is None:
            raise ModelError("an exact comparison has no standard errors: its figures come "
                             "from quadrature, and cmp.error bounds their numerical error")
        se = {"prob_best": self._by_arm("se_prob_best"),
              "prob_beats_control": self._by_arm("se_prob_beats", skip_control=True),
              "expected_loss": self._by_arm("se_loss"),
              "expected_loss_vs_control": self._by_arm("se_loss_vs"),
              "mean": self._by_arm("se_mean"),
              "lift_mean": self._by_arm("se_lift_mean_relative", skip_control=True),
              "lift_mean_abs": self._by_arm("se_lift_mean_absolute", skip_control=True)}
        return se

    @property
    def truncated(self) -> dict[str, bool]:
        """Arms whose mean is infinite: their losses and lift means use the distribution
        truncated at its 99.99 % quantile (the truncation of ``mean()``)."""
        return {n: bool(v) for n, v in zip(self.arms, self._f["truncated"])}

    def prob_beats_control(self) -> dict[str, float]:
        """{arm: P(arm better than the control)}, the control left out."""
        return self._by_arm("prob_beats", skip_control=True)

    def prob_best(self) -> dict[str, float]:
        """{arm: P(arm is the best of all)}; sums to 1."""
        return self._by_arm("prob_best")

    def expected_loss(self, vs: str | None = None) -> dict[str, float]:
        """{arm: E[max_j X_j - X_arm]} (the risk of choosing it), or with ``vs="control"``
        {arm: E[max(X_control - X_arm, 0)]} (mirrored when lower is better)."""
        if vs is None:
            return self._by_arm("loss")
        if vs == "control":
            return self._by_arm("loss_vs")
        raise ModelError(f"vs = {vs!r} must be None or 'control'")

    def _store_lifts(self, figures: dict, levels: tuple) -> None:
        for rel, key in ((True, "relative"), (False, "absolute")):
            for k, level in enumerate(levels):
                mean, med, lo, hi = figures[key][k]
                self._lifts[(rel, float(level))] = {
                    n: {"mean": float(mean[i]), "median": float(med[i]),
                        "interval": (float(lo[i]), float(hi[i]))}
                    for i, n in enumerate(self.arms) if n != self.control}

    def _check_relative(self, relative: bool) -> None:
        medians = self._f["relative"][0][1]
        if relative and all(m != m for n, m in zip(self.arms, medians) if n != self.control):
            raise ModelError("a relative lift needs positive arms (these can be <= 0); use "
                             "relative=False")

    def lift(self, relative: bool = True, level: float = DEFAULT_LEVEL) -> dict[str, dict]:
        """{arm: {"mean", "median", "interval": (lo, hi)}} of the lift over the control:
        ``X_arm / X_control - 1`` (relative) or ``X_arm - X_control``. A new level is
        computed on the workers (blocking: a few milliseconds, or a new pass over the same
        draws for a Monte Carlo comparison) and cached."""
        self._check_relative(relative)
        level = _level(level)
        if (relative, level) not in self._lifts:
            self._store_lifts(self._more((level,), ()), (level,))
        return self._lifts[(relative, level)]

    def prob_lift_above(self, t: float, relative: bool = True) -> dict[str, float]:
        """{arm: P(lift > t)} (the improvement when lower is better), the control left
        out; computed on the workers once per threshold."""
        self._check_relative(relative)
        if isinstance(t, bool) or not isinstance(t, (int, float)) or t != t \
                or t in (float("inf"), float("-inf")):
            raise ModelError(f"t = {t!r} must be a finite number")
        key = (relative, float(t))
        if key not in self._above:
            f = self._more((), (float(t),))
            for rel, name in ((True, "above_relative"), (False, "above_absolute")):
                self._above[(rel, float(t))] = {
                    n: float(v) for n, v in zip(self.arms, f[name][0]) if n != self.control}
        return self._above[key]

    # -- compound arms ---------------------------------------------------------------------
    def decompose(self) -> dict[str, dict[str, float]]:
        """For compound arms (revenue per user = conversion rate x order value): per arm,
        the log-scale lift over the control split into its two factors,
        ``{"conversion", "value", "total"}`` (each ``exp(E[log ratio]) - 1``) and
        ``{"share_conversion", "share_value"}`` (their shares of ``E[log ratio]``, summing
        to 1; outside [0, 1] when the effects pull in opposite directions). The control is
        left out; see the README, "Comparing arms"."""
        conv, value = self._f["log_mean_frequency"], self._f["log_mean_severity"]
        if any(v != v for v in value):
            raise ModelError("decompose() needs compound arms whose order value has a "
                             "closed-form E[log value] (revenue per user = conversion rate x "
                             "order value of a conjugate compound model); a compound mixture's "
                             "order value has none" if self.draws else
                             "decompose() needs compound arms (revenue per user = "
                             "conversion rate x order value)")
        ci = self.arms.index(self.control)
        sgn = 1.0 if self.higher_is_better else -1.0
        out = {}
        for i, n in enumerate(self.arms):
            if i == ci:
                continue
            dc, dv = sgn * (conv[i] - conv[ci]), sgn * (value[i] - value[ci])
            total = dc + dv
            out[n] = {"conversion": math.expm1(dc), "value": math.expm1(dv),
                      "total": math.expm1(total),
                      "share_conversion": dc / total if total else float("nan"),
                      "share_value": dv / total if total else float("nan")}
        return out

    # -- sample-ratio mismatch -----------------------------------------------------------
    def srm(self, expected: Mapping[str, float] | None = None) -> dict[str, Any]:
        """Sample-ratio-mismatch check of the arms' user counts against ``expected``
        shares (equal by default): the chi-square statistic and p-value."""
        users = self._users
        if any(users.get(n) is None for n in self.arms):
            raise ModelError("srm() needs arms that carry user counts (beta-binomial "
                             "trials or compound users)")
        if expected is None:
            shares = {n: 1.0 for n in self.arms}
        else:
            if set(expected) != set(self.arms) or any(
                    not (isinstance(v, (int, float)) and v > 0) for v in expected.values()):
                raise ModelError(f"expected must give a positive share for every arm "
                                 f"{list(self.arms)}")
            shares = {n: float(expected[n]) for n in self.arms}
        total, stotal = sum(users.values()), sum(shares.values())
        chi2 = sum((users[n] - total * shares[n] / stotal) ** 2 / (total * shares[n] / stotal)
                   for n in self.arms) if total > 0 else 0.0
        p = chi2_sf(len(self.arms) - 1, chi2)
        return {"chi2": chi2, "p_value": p, "mismatch": p < SRM_ALPHA}

    def _srm_warning(self) -> str | None:
        if any(self._users.get(n) is None for n in self.arms):
            return None
        s = self.srm()
        if s["mismatch"]:
            return (f"sample ratio mismatch: the arms' user counts are unlikely under the "
                    f"expected equal split (chi-square p = {s['p_value']:.3g} < {SRM_ALPHA})")
        return None

    # -- the decision --------------------------------------------------------------------
    def decision(self, threshold: float = DEFAULT_THRESHOLD) -> dict[str, Any]:
        """Ship the arm of least expected loss when that loss is below ``threshold`` (the
        threshold of caring, in the quantity's units), else keep running; says why."""
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) \
                or not threshold >= 0:
            raise ModelError(f"threshold = {threshold!r} must be a number >= 0")
        loss = self.expected_loss()
        arm = min(loss, key=loss.get)
        best = self.prob_best()[arm]
        if loss[arm] < threshold:
            action = "ship"
            reason = (f"choosing {arm!r} risks an expected loss of {loss[arm]:.3g}, below "
                      f"the threshold {threshold:g} (P(best) = {best:.4f})")
        else:
            action = "keep running"
            reason = (f"the least expected loss, {loss[arm]:.3g} for {arm!r} (P(best) = "
                      f"{best:.4f}), is not below the threshold {threshold:g}")
        out = {"action": action, "arm": arm if action == "ship" else None,
               "leader": arm, "expected_loss": loss[arm], "threshold": threshold,
               "reason": reason}
        warning = self._srm_warning()
        if warning:
            out["warning"] = warning
            out["reason"] += "; " + warning
        return out

    def summary(self) -> Any:
        """One row per arm: mean, P(best), P(beat control), expected losses, relative and
        absolute 95 % lift; a pandas DataFrame, or a list of dicts without pandas."""
        best, loss, lvs = self.prob_best(), self.expected_loss(), \
            self.expected_loss(vs="control")
        beats = self.prob_beats_control()
        means = self._by_arm("mean")
        rel = self._lifts.get((True, DEFAULT_LEVEL), {})
        ab = self._lifts[(False, DEFAULT_LEVEL)]
        warning = self._srm_warning()
        rows = []
        for n in self.arms:
            r = {"arm": n, "control": n == self.control, "mean": means[n],
                 "prob_best": best[n], "prob_beats_control": beats.get(n, float("nan")),
                 "expected_loss": loss[n], "expected_loss_vs_control": lvs[n]}
            for key, lifts in (("lift", rel), ("lift_abs", ab)):
                li = lifts.get(n)
                r[key] = li["median"] if li else float("nan")
                r[key + "_lo"] = li["interval"][0] if li else float("nan")
                r[key + "_hi"] = li["interval"][1] if li else float("nan")
            r["truncated"] = self.truncated[n]
            if warning:
                r["warning"] = warning
            rows.append(r)
        try:
            import pandas as pd  # noqa: PLC0415
        except ImportError:
            return rows
        return pd.DataFrame(rows).set_index("arm")

    def __repr__(self) -> str:
        best = ", ".join(f"{n}: {p:.4f}" for n, p in self.prob_best().items())
        return f"<Comparison control={self.control!r} P(best)={{{best}}}>"

    # -- the arms, plots, export and display --------------------------------------------
    def _keep_arms(self, arms: Mapping[str, Any]) -> "Comparison":
        """Hold the arms' posterior proxies (for :meth:`plot` and :meth:`to_arviz`);
        returns the comparison."""
        self._posteriors = {n: arms[n] for n in self.arms}
        return self

    def _arm_posteriors(self) -> dict[str, Any]:
        posteriors = getattr(self, "_posteriors", None)
        if posteriors is None:
            raise ModelError("this comparison holds no posteriors of its arms (it was not "
                             "made by worker.compare or GroupFits.compare)")
        return posteriors

    def plot(self, axes: Any = None, level: float = DEFAULT_LEVEL,
             relative: bool | None = None) -> Any:
        """Two panels (matplotlib, ``pip install bayesworker[plot]``): the arms' exact
        densities with their central ``level`` intervals shaded, and the distribution of
        each arm's lift over the control with the part above 0 shaded and P(lift > 0) in
        its label. ``axes``: two Axes to draw into (a new figure when None);
        ``relative``: the relative lift (None: relative unless the arms can be <= 0).

        The lift's density is not a closed form: it is the derivative of the monotone
        cubic interpolant of the lift's exact cdf at 48 points spanning its 0.0005 ..
        0.9995 quantiles (cut at two 95 % interval widths beyond its 95 % interval for a
        very heavy tail; 0 among them), each value a P(lift > t) computed on the workers
        like :meth:`prob_lift_above`; between two of those points the area under the
        curve is exactly the probability the comparison reports. Returns the two Axes
        (a NumPy array)."""
        from ._plot import plot_comparison
        return plot_comparison(self, self._arm_posteriors(), axes=axes, level=level,
                               relative=relative)

    def to_arviz(self, draws: int = 4000, chains: int = 4, seed: int | None = None) -> Any:
        """Every arm's draws as ArviZ's data object (``pip install bayesworker[arviz]``):
        one variable of shape (chains, draws, arms), the arm names along the dimension
        ``arm``; repeatable like ``post.to_arviz`` (see :mod:`bayesworker._arviz`)."""
        from ._arviz import arms_data
        return arms_data(self._arm_posteriors(), "arm", draws=draws, chains=chains,
                         seed=seed)

    def _display(self) -> tuple[list[dict[str, Any]], str, str, list[str]]:
        """What the HTML display shows: one row per arm, the decision's action (``"ship
        'B'"`` or ``"keep running"``) and reason, and warnings (sample-ratio mismatch,
        truncated arms)."""
        try:
            lifts, kind = self.lift(True), "relative"
        except ModelError:
            lifts, kind = self.lift(False), "absolute"
        pct = f"{DEFAULT_LEVEL * 100:g}%"
        best, beats, loss = self.prob_best(), self.prob_beats_control(), \
            self.expected_loss()
        means = self._by_arm("mean")
        rows = []
        for n in self.arms:
            li = lifts.get(n)
            rows.append({"arm": n + (" (control)" if n == self.control else ""),
                         "mean": means[n], "P(best)": best[n],
                         "P(beat control)": beats.get(n), "expected loss": loss[n],
                         f"{kind} lift": li["median"] if li else None,
                         f"{pct} lift interval": li["interval"] if li else None})
        d = self.decision()
        reason, warnings = d["reason"], []
        if "warning" in d:
            reason = reason[:len(reason) - len(d["warning"]) - 2]
            warnings.append(f"\u26a0 {d['warning']}")
        cut = [n for n, t in self.truncated.items() if t]
        if cut:
            warnings.append(f"{', '.join(cut)}: infinite mean; mean and expected loss of "
                            f"the distribution truncated at its 99.99% quantile")
        action = f"ship {d['arm']!r}" if d["action"] == "ship" else d["action"]
        return rows, action, reason, warnings

    def _repr_html_(self) -> str:
        from ._display import to_html
        rows, action, reason, warnings = self._display()
        return to_html(rows, caption=f"Comparison: {len(self.arms)} arms, control "
                                     f"{self.control!r}",
                       notes=[f"decision: {action}: {reason}", *warnings])


def _level(level: Any) -> float:
    if isinstance(level, bool) or not isinstance(level, (int, float)) or \
            not 0.0 < level < 1.0:
        raise ModelError(f"level = {level!r} must be a number in (0, 1)")
    return float(level)
