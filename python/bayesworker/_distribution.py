"""Posterior proxies as frozen distributions, like scipy's: pdf, cdf, ppf, median, quantile,
std, and their summaries as data.

Every answer is exact: the CDF and quantiles are the C core's (``bw_cdf`` and
``bw_quantile`` of csrc/summary.c, the functions behind the credible intervals), the
densities its closed forms (csrc/density.c). Arrays are handled in one call into C per
quantity, with the GIL released for long ones.

Shapes: a proxy of one quantity (k == 1, most models) answers ``cdf(x)``, ``pdf(x)`` and
``ppf(q)`` in the shape of ``x`` (a NumPy scalar for a scalar); a proxy of k quantities
(a mixture's components, a Dirichlet's shares) adds a last axis of length k. ``median()``,
``std()`` and ``quantile(q)`` follow ``mean()``: shape ``(k,)`` (``q.shape + (k,)``).

>>> import bayesworker as bw
>>> with bw.InferenceWorker(threads=0, seed=1) as worker:
...     post = worker.run_inference_sync("beta-binomial", {"successes": 30, "trials": 100}).posterior
...     print(round(float(post.cdf(0.3)), 6), post.ppf([0.025, 0.975]).round(6))
0.476912 [0.218979 0.396147]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _core
from ._validate import show, validate_level

__all__ = ["Distribution", "level_label", "records_frame", "quantity_name"]

# What a quantity of each C distribution kind is, in words (csrc/bw_dist.h).
_KIND_NAMES = {_core.DIST_BETA: "conversion rate", _core.DIST_NIG_MEAN: "mean",
               _core.DIST_NIG_LNMEAN: "mean value", _core.DIST_GAMMA: "rate",
               _core.DIST_INVGAMMA: "mean value"}


def level_label(level: float) -> str:
    """A level as the columns name it: 0.95 -> ``"95"``, 0.999 -> ``"99.9"``."""
    return f"{level * 100:.10g}"


def records_frame(rows: list[dict[str, Any]], index: str | None = None) -> Any:
    """``rows`` as a pandas DataFrame (indexed by the column ``index``), or the list of
    dicts itself where pandas is not installed."""
    try:
        import pandas as pd
    except ImportError:
        return rows
    frame = pd.DataFrame.from_records(rows)
    return frame.set_index(index) if index is not None and len(frame) else frame


def quantity_name(proxy: Any) -> str:
    """What ``proxy``'s quantities are, in words (a plot's x label): "conversion rate",
    "revenue per user", "value per converter", "category share", "component mean", ..."""
    if getattr(proxy, "_width", 1) > 1:
        return "category share"
    if hasattr(proxy, "n_components"):
        return "component mean"
    rows = proxy._quantities()
    if rows is None or len(rows[0]) == 2:
        return "revenue per user"
    if proxy.model_type.endswith(":severity"):
        return "value per converter"
    return _KIND_NAMES.get(rows[0][0][0], "value")


def _as_float_array(x: Any, name: str) -> np.ndarray:
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a number or an array of numbers: {exc}") from None


def _check_probabilities(q: np.ndarray) -> None:
    bad = ~np.isnan(q) & ~((q >= 0.0) & (q <= 1.0))
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        name = "q" if q.ndim == 0 else f"q[{', '.join(map(str, where))}]"
        raise ValueError(f"{name} = {show(q[where])} must be a probability in [0, 1]")


class Distribution:
    """The frozen-distribution face of a posterior proxy (a mixin of every proxy class).

    A proxy says which exact quantities it describes through :meth:`_quantities`: one
    tuple of factors per row of ``mean()`` (as the C core describes them), or None where
    it has no exact distribution function (a quantity whose intervals are Monte Carlo).
    """

    model_type: str

    # -- what the proxy provides ------------------------------------------------------------
    def _check(self) -> None:  # pragma: no cover - PosteriorProxy's
        raise NotImplementedError

    def _quantities(self) -> tuple[tuple, ...] | None:
        """The factors of each quantity reported (``mean()``'s rows), or None."""
        factors = getattr(self, "_factors", ())
        return (tuple(factors),) if factors else None

    def _labels(self) -> list[str]:
        """A name for each quantity reported, as the summary's index shows it."""
        return [self.model_type.rsplit(":", 1)[-1]]

    def _rows_of(self, what: str) -> tuple[tuple, ...]:
        self._check()
        rows = self._quantities()
        if rows is None:
            raise NotImplementedError(
                f"{what} of {self.model_type} is not available: this quantity has no exact "
                "distribution function (its intervals are Monte Carlo quantiles of a fixed "
                "set of draws); use sample() or credible_interval()")
        return rows

    def _apply(self, fn: Any, rows: tuple[tuple, ...], arr: np.ndarray,
               stacked: bool = False) -> Any:
        outs = [fn(factors, arr) for factors in rows]
        out = outs[0] if len(outs) == 1 and not stacked else np.stack(outs, axis=-1)
        return out[()] if out.ndim == 0 else out

    # -- the distribution functions -----------------------------------------------------------
    def cdf(self, x: Any) -> Any:
        """P(quantity <= x), exact, elementwise over ``x`` (NaN gives NaN)."""
        return self._apply(_core.cdf, self._rows_of("cdf"), _as_float_array(x, "x"))

    def ppf(self, q: Any) -> Any:
        """The q-quantile (the inverse of :meth:`cdf`), exact to ~1e-13 relative,
        elementwise over ``q`` in [0, 1] (0 and 1 give the ends of the support)."""
        arr = _as_float_array(q, "q")
        _check_probabilities(arr)
        return self._apply(_core.ppf, self._rows_of("ppf"), arr)

    def pdf(self, x: Any) -> Any:
        """The posterior density at ``x``, elementwise: closed forms for Beta, Gamma,
        inverse Gamma and Student t quantities (conversion rates, rates, normal means); the
        density of a lognormal mean and of a compound's revenue (a product of two factors)
        is not closed form: it is the derivative of the exact cdf, evaluated by the same
        adaptive Gauss-Kronrod quadrature as the intervals (about 1e-10 relative).
        """
        return self._apply(_core.pdf, self._rows_of("pdf"), _as_float_array(x, "x"))

    def quantile(self, q: Any) -> np.ndarray:
        """The q-quantile of each quantity: like :meth:`ppf`, shaped like ``mean()`` with a
        last axis of length k (``quantile(0.5)`` has shape ``(k,)``)."""
        arr = _as_float_array(q, "q")
        _check_probabilities(arr)
        return self._apply(_core.ppf, self._rows_of("quantile"), arr, stacked=True)

    def median(self) -> np.ndarray:
        """The posterior median of each quantity, shape ``(k,)``, exact."""
        cached = getattr(self, "_median_cache", None)
        if cached is None:
            cached = self.quantile(0.5)
            cached.setflags(write=False)
            self._median_cache = cached
        else:
            self._check()
        return cached

    def std(self) -> np.ndarray:
        """The posterior standard deviation, shape ``(k,)``: the square root of
        ``variance()`` (same truncation rule for lognormal means)."""
        return np.sqrt(self.variance())  # type: ignore[attr-defined]

    # -- summaries as data --------------------------------------------------------------------
    def _summary_rows(self, levels: tuple[float, ...]) -> list[dict[str, Any]]:
        """One dict per quantity: quantity, mean, median, sd, and ``ci_<level>_lower`` /
        ``ci_<level>_upper`` per level (median None where not exact)."""
        mean, sd = self.mean(), self.std()  # type: ignore[attr-defined]
        try:
            median: Any = self.median()
        except NotImplementedError:
            median = [None] * len(mean)
        cis = {level: self.credible_interval(level)  # type: ignore[attr-defined]
               for level in levels}
        rows = []
        for i, label in enumerate(self._labels()):
            row = {"quantity": label, "mean": float(mean[i]),
                   "median": None if median[i] is None else float(median[i]),
                   "sd": float(sd[i])}
            for level, ci in cis.items():
                row[f"ci_{level_label(level)}_lower"] = float(ci[i, 0])
                row[f"ci_{level_label(level)}_upper"] = float(ci[i, 1])
            rows.append(row)
        return rows

    def summary(self, levels: Any = (0.95,)) -> Any:
        """The posterior's summary: a pandas DataFrame indexed by quantity (a list of
        dicts where pandas is not installed) with columns mean, median, sd and
        ``ci_<level>_lower`` / ``ci_<level>_upper`` for each level (central intervals)."""
        return records_frame(self._summary_rows(validate_levels(levels)), "quantity")

    # -- plots and export ------------------------------------------------------------------
    def plot(self, ax: Any = None, level: float = 0.95) -> Any:
        """The exact posterior density with the central ``level`` interval shaded and the
        median marked (matplotlib, ``pip install bayesworker[plot]``); returns the Axes.
        See :func:`bayesworker.plot_posteriors`."""
        from ._plot import plot_posterior
        return plot_posterior(self, ax=ax, level=level)

    def to_arviz(self, draws: int = 4000, chains: int = 4, seed: int | None = None) -> Any:
        """``chains`` x ``draws`` posterior draws as ArviZ's data object (``pip install
        bayesworker[arviz]``); the same call gives the same draws (see
        :func:`bayesworker._arviz.posterior_data`)."""
        from ._arviz import posterior_data
        return posterior_data(self, draws=draws, chains=chains, seed=seed)

    def _repr_html_(self) -> str:
        from ._display import to_html
        if getattr(self, "_handle").gone:
            return to_html([], caption=repr(self))
        return to_html(self._summary_rows((0.95,)),
                       caption=f"{type(self).__name__} {self.model_type} #{getattr(self, 'id')}")


def validate_levels(levels: Any) -> tuple[float, ...]:
    """A level or an iterable of levels, each strictly between 0 and 1."""
    if isinstance(levels, (int, float, np.floating)):
        levels = (levels,)
    out = tuple(validate_level(level) for level in levels)
    if not out:
        raise ValueError("levels is empty; give at least one credible level, e.g. (0.95,)")
    return out
