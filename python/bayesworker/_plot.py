"""Plots of posteriors and comparisons, drawn from exact figures (matplotlib, optional).

matplotlib is an optional extra (``pip install bayesworker[plot]``), imported when a plot is
drawn. Every function draws into ``ax`` (a new figure when it is None) and returns the Axes.

- :func:`plot_posterior` (``post.plot()``): the exact density ``pdf`` of each quantity of
  the proxy, its central ``level`` interval shaded and a dashed line at its median. The x
  range spans the 0.0005 .. 0.9995 quantiles (never the mean, which for a lognormal with
  little data lies far out in the tail), cut at two interval widths beyond the interval
  for a very heavy tail (the legend then gives the probability beyond the plot); the
  curve is evaluated on a uniform grid of that range (161 points; 81 more over each
  quantity's own range where it is less than half of it, so a narrow arm among wide ones,
  or a mixture's narrow components, are drawn as finely; 81 more spaced evenly on a log
  scale where a positive quantity's median lies in the first tenth of its range, so a
  spike near 0 with a long tail is too), and at the interval's ends and the median exactly. The one quantity without an exact
  distribution function (the revenue of ``compound-beta-lognormalmixture``) is drawn as a
  histogram of a fixed set of 65,536 draws (stream positions 0 ..), and says so.
- :func:`plot_posteriors` (``bw.plot_posteriors({"A": pa, "B": pb})``): the same for
  several posteriors overlaid on one x range.
- :func:`plot_comparison` (``cmp.plot()``): two panels, the arms' densities and the
  distribution of each arm's lift over the control with P(lift > 0) shaded and stated.

>>> import matplotlib; matplotlib.use("Agg")
>>> import bayesworker as bw
>>> with bw.InferenceWorker(threads=1, seed=1) as w:
...     post = w.run_inference_sync("beta-binomial", {"successes": 30, "trials": 100}).posterior
...     ax = post.plot(level=0.9)
...     print(ax.get_xlabel(), len(ax.lines))
conversion rate 2
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from ._distribution import level_label, quantity_name
from ._errors import ModelError
from ._validate import validate_level

__all__ = ["plot_posterior", "plot_posteriors", "plot_comparison", "plot_lift",
           "cdf_density", "pyplot"]

TAIL = 0.0005               # x ranges span the TAIL .. 1 - TAIL quantiles, cut two widths
CUT_LEVEL = 0.9             # of this central interval (or the plotted one) beyond it
_CUT = ((1 - CUT_LEVEL) / 2, (1 + CUT_LEVEL) / 2)
_UNIFORM_POINTS = 161       # a density's grid: uniform over the plot's range ...
_OWN_POINTS = 81            # ... and over a narrow quantity's own range, or log-spaced
_HISTOGRAM_DRAWS = 1 << 16  # draws of a quantity with no exact distribution function
_HISTOGRAM_BINS = 120
# The lift's cdf is asked for at this many points, _THRESHOLDS_PER_CALL at a time (the
# BW_CMP_MAX_THRESHOLDS of csrc/compare.h); its density is drawn at _LIFT_SUBPOINTS
# points per cell between them.
_LIFT_POINTS = 48
_THRESHOLDS_PER_CALL = 8
_LIFT_SUBPOINTS = 8
_SHADE_ALPHA = 0.25


def pyplot() -> Any:
    """``matplotlib.pyplot``, or an ImportError saying how to install it."""
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("plots need matplotlib, an optional dependency: "
                          "pip install bayesworker[plot]") from None
    return plt


def _axes(ax: Any) -> Any:
    plt = pyplot()
    return plt.subplots()[1] if ax is None else ax


class Curve(NamedTuple):
    """One density drawn: its points, its interval and median, and how it was made."""
    label: str
    x: np.ndarray
    y: np.ndarray
    lo: float
    hi: float
    median: float
    note: str = ""          # what the label adds: how it was made, or what is cut off


# ---------------------------------------------------------------------------------------- #
# Densities of posteriors                                                                  #
# ---------------------------------------------------------------------------------------- #

def clipped_range(q_tail: Any, a: Any, b: Any) -> tuple[float, float]:
    """The x range of quantities with ``TAIL`` .. ``1 - TAIL`` quantiles ``q_tail`` (two
    rows) and central interval(s) [a, b]: the quantile range, cut at two interval widths
    beyond the interval (a very heavy tail: a lognormal mean with little data has its
    0.9995 quantile at 1e10 when its interval ends at 7); the union over the quantities."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    w = b - a
    return (float(np.min(np.maximum(q_tail[0], a - 2 * w))),
            float(np.max(np.minimum(q_tail[1], b + 2 * w))))


class _Source:
    """The curves of one proxy: its x range (``span``), then its curves over any range."""

    def __init__(self, proxy: Any, label: str, level: float) -> None:
        self.proxy, self.label, self.level = proxy, label, level
        if proxy._quantities() is not None:
            # rows: the range's ends, the 90 % interval, the level's interval and the
            # median; shape (7, k)
            q = self.marks = proxy.quantile([TAIL, 1 - TAIL, *_CUT, (1 - level) / 2,
                                             (1 + level) / 2, 0.5])
            self.draws = None
            self.span = clipped_range(q[:2], np.minimum(q[2], q[4]), np.maximum(q[3], q[5]))
        else:
            proxy._check()
            self.draws = np.sort(proxy.sample_sync(_HISTOGRAM_DRAWS, start=0))
            q = np.quantile(self.draws, [TAIL, 1 - TAIL, *_CUT])
            self.span = clipped_range(q[:2, None], q[2], q[3])

    def curves(self, span: tuple[float, float]) -> list[Curve]:
        if self.draws is not None:
            return [self._histogram(span)]
        q, proxy = self.marks, self.proxy
        grids = [np.linspace(span[0], span[1], _UNIFORM_POINTS), q[4:].ravel()]
        for lo, hi, med in zip(np.maximum(q[0], span[0]), np.minimum(q[1], span[1]), q[6]):
            if hi - lo < 0.5 * (span[1] - span[0]):            # narrow among wide ones
                grids.append(np.linspace(lo, hi, _OWN_POINTS))
            if lo > 0 and med - lo < 0.1 * (hi - lo):          # a spike by 0, a long tail
                grids.append(np.geomspace(lo, hi, _OWN_POINTS))
        x = np.unique(np.concatenate(grids))
        x = x[(x >= span[0]) & (x <= span[1])]
        y = np.asarray(proxy.pdf(x)).reshape(x.shape[0], -1)
        beyond = 1.0 - np.asarray(proxy.cdf(span[1])).reshape(-1) if q[1].max() > span[1] \
            else np.zeros(y.shape[1])
        names = [self.label] if y.shape[1] == 1 else \
            [f"{self.label}: {name}" if self.label else name for name in proxy._labels()]
        return [Curve(names[i], x, y[:, i], float(q[4, i]), float(q[5, i]), float(q[6, i]),
                      f"P(> {span[1]:.4g}) = {beyond[i]:.2g} not shown"
                      if beyond[i] > TAIL else "") for i in range(y.shape[1])]

    def _histogram(self, span: tuple[float, float]) -> Curve:
        draws = self.draws
        counts, edges = np.histogram(draws, bins=_HISTOGRAM_BINS, range=span)
        height = counts / (draws.shape[0] * np.diff(edges))
        x = np.repeat(edges, 2)[1:-1]               # a step curve: two points per bin
        y = np.repeat(height, 2)
        lo, hi = self.proxy.credible_interval(self.level)[0]
        note = f"histogram of {draws.shape[0]:,} draws"
        return Curve(self.label, x, y, float(lo), float(hi), float(np.median(draws)), note)


def _draw(ax: Any, curves: list[Curve], level: float) -> None:
    """Each curve, its interval shaded and its median marked, with a legend."""
    pct = level_label(level)
    for c in curves:
        label = f"{c.label} ({c.note})" if c.note else c.label
        (line,) = ax.plot(c.x, c.y, label=label or None)
        color = line.get_color()
        inside = (c.x > c.lo) & (c.x < c.hi)
        xs = np.concatenate([[c.lo], c.x[inside], [c.hi]])
        ys = np.concatenate([np.interp([c.lo], c.x, c.y), c.y[inside],
                             np.interp([c.hi], c.x, c.y)])
        ax.fill_between(xs, ys, color=color, alpha=_SHADE_ALPHA, linewidth=0,
                        label=f"{pct}% interval [{c.lo:.4g}, {c.hi:.4g}]")
        ax.plot([c.median, c.median], [0.0, float(np.interp(c.median, c.x, c.y))],
                color=color, linestyle="--", linewidth=1,
                label=f"median {c.median:.4g}")
    ax.set_ylim(bottom=0.0)
    ax.set_ylabel("posterior density")
    ax.legend(fontsize="small")


def _plot_sources(ax: Any, sources: list[_Source], level: float) -> Any:
    span = (min(s.span[0] for s in sources), max(s.span[1] for s in sources))
    curves = [c for s in sources for c in s.curves(span)]
    ax = _axes(ax)
    _draw(ax, curves, level)
    ax.set_xlim(*span)
    ax.set_xlabel(quantity_name(sources[0].proxy))
    return ax


def plot_posterior(proxy: Any, ax: Any = None, level: float = 0.95) -> Any:
    """Draw ``proxy``'s exact posterior density (one curve per quantity: a mixture's
    components, a Dirichlet's shares), its central ``level`` interval shaded and a dashed
    line at its median; returns the Axes."""
    level = validate_level(level)
    name = proxy._labels()[0] if len(proxy._labels()) == 1 else ""
    ax = _plot_sources(ax, [_Source(proxy, name, level)], level)
    ax.set_title(f"{proxy.model_type} posterior")
    return ax


def plot_posteriors(posteriors: Mapping[str, Any], ax: Any = None,
                    level: float = 0.95) -> Any:
    """Overlay several posteriors ``{label: proxy}`` (arms, or any mapping with
    ``items()`` such as a GroupFits) on one x range, each drawn as by
    :func:`plot_posterior`; returns the Axes.

    >>> import matplotlib; matplotlib.use("Agg")
    >>> import bayesworker as bw
    >>> with bw.InferenceWorker(threads=1, seed=1) as w:
    ...     pa, pb = (w.run_inference_sync("beta-binomial", {"successes": s, "trials": 500}).posterior
    ...               for s in (40, 55))
    ...     ax = bw.plot_posteriors({"A": pa, "B": pb})
    ...     print([line.get_label() for line in ax.lines[::2]])
    ['A', 'B']
    """
    level = validate_level(level)
    items = list(posteriors.items())
    if not items:
        raise ValueError("posteriors is empty; give a dict {label: posterior proxy}")
    ax = _plot_sources(ax, [_Source(p, str(k), level) for k, p in items], level)
    ax.set_title("posteriors")
    return ax


# ---------------------------------------------------------------------------------------- #
# The lift of a comparison                                                                 #
# ---------------------------------------------------------------------------------------- #

def _monotone_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Slopes at the knots of the monotone cubic interpolant of (x, y) (Fritsch-Carlson,
    with the weighted harmonic mean of the neighbouring secants)."""
    h, d = np.diff(x), np.diff(y) / np.diff(x)
    m = np.empty_like(y)
    m[0], m[-1] = d[0], d[-1]
    w1, w2 = 2 * h[1:] + h[:-1], h[1:] + 2 * h[:-1]
    same = d[:-1] * d[1:] > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        m[1:-1] = np.where(same, (w1 + w2) / (w1 / d[:-1] + w2 / d[1:]), 0.0)
    return m


def cdf_density(x: np.ndarray, cdf: np.ndarray, per_cell: int = _LIFT_SUBPOINTS
                ) -> tuple[np.ndarray, np.ndarray]:
    """A density from exact cdf values at the knots ``x``: the derivative of their
    monotone cubic interpolant, at ``per_cell`` points per cell (knots included). It is
    >= 0, and its integral between two knots is exactly the cdf's increase there."""
    cdf = np.maximum.accumulate(cdf)
    m = _monotone_slopes(x, cdf)
    t = np.linspace(0.0, 1.0, per_cell, endpoint=False)[None, :]
    h = np.diff(x)[:, None]
    secant = (np.diff(cdf)[:, None]) / h
    dens = 6 * t * (1 - t) * secant + (3 * t * t - 4 * t + 1) * m[:-1, None] + \
        (3 * t * t - 2 * t) * m[1:, None]
    xs = np.append((x[:-1, None] + t * h).ravel(), x[-1])
    return xs, np.maximum(np.append(dens.ravel(), m[-1]), 0.0)


def lift_cdf(cmp: Any, relative: bool) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(thresholds, {arm: P(lift <= t)}): 48 thresholds over the arms' lift range (the
    union of their 0.0005 .. 0.9995 quantiles, cut like :func:`clipped_range` at two 95 %
    interval widths beyond the interval), 0 among them where it is inside; every value an
    exact P(lift > t) of the comparison, computed on the workers a few thresholds at a
    time."""
    arms = [n for n in cmp.arms if n != cmp.control]
    wide, mid = cmp.lift(relative, level=1 - 2 * TAIL), cmp.lift(relative)
    lo, hi = clipped_range(np.array([[wide[n]["interval"][0] for n in arms],
                                     [wide[n]["interval"][1] for n in arms]]),
                           [mid[n]["interval"][0] for n in arms],
                           [mid[n]["interval"][1] for n in arms])
    ts = np.linspace(lo, hi, _LIFT_POINTS - (1 if lo < 0 < hi else 0))
    ts = np.unique(np.append(ts, 0.0)) if lo < 0 < hi else ts
    key = "above_relative" if relative else "above_absolute"
    above = np.empty((ts.shape[0], len(cmp.arms)))
    for k in range(0, ts.shape[0], _THRESHOLDS_PER_CALL):
        chunk = tuple(float(t) for t in ts[k:k + _THRESHOLDS_PER_CALL])
        above[k:k + len(chunk)] = np.asarray(cmp._more((), chunk)[key], dtype=float)
    return ts, {n: 1.0 - above[:, i] for i, n in enumerate(cmp.arms) if n != cmp.control}


def _relative(cmp: Any, relative: bool | None) -> bool:
    if relative is not None:
        return bool(relative)
    try:
        cmp.lift(True)
    except ModelError:          # arms that can be <= 0 have no relative lift
        return False
    return True


def plot_lift(cmp: Any, ax: Any = None, relative: bool | None = None) -> Any:
    """Draw each arm's lift over the control (its density: the derivative of the
    monotone cubic interpolant of 48 exact cdf values, see :func:`cdf_density`), the part
    above 0 shaded, P(lift > 0) (the comparison's exact figure) in the label; returns
    the Axes."""
    relative = _relative(cmp, relative)
    ts, cdfs = lift_cdf(cmp, relative)
    p_above = cmp.prob_lift_above(0.0, relative=relative)
    ax = _axes(ax)
    for arm, cdf in cdfs.items():
        x, y = cdf_density(ts, cdf)
        (line,) = ax.plot(x, y, label=f"{arm} vs {cmp.control}: P(lift > 0) = "
                                      f"{p_above[arm]:.4f}")
        up = x >= 0.0
        ax.fill_between(x[up], y[up], color=line.get_color(), alpha=_SHADE_ALPHA,
                        linewidth=0)
    ax.axvline(0.0, color="0.5", linewidth=0.8)
    better = "" if cmp.higher_is_better else " (improvement: lower is better)"
    ax.set_xlabel(("relative lift" if relative else "absolute lift") + better)
    ax.set_ylabel("posterior density")
    ax.set_xlim(ts[0], ts[-1])
    ax.set_ylim(bottom=0.0)
    ax.set_title(f"lift vs {cmp.control}")
    ax.legend(fontsize="small")
    return ax


def plot_comparison(cmp: Any, posteriors: Mapping[str, Any], axes: Any = None,
                    level: float = 0.95, relative: bool | None = None) -> np.ndarray:
    """Two panels: the arms' densities (:func:`plot_posteriors`) and their lifts over
    the control (:func:`plot_lift`); returns the two Axes as an array."""
    if axes is None:
        axes = pyplot().subplots(1, 2, figsize=(11.0, 4.0))[1]
    axes = np.asarray(axes, dtype=object).ravel()
    if axes.shape[0] != 2:
        raise ValueError(f"axes must be two Axes (the arms, the lift), got {axes.shape[0]}")
    plot_posteriors(posteriors, ax=axes[0], level=level)
    axes[0].set_title(f"arms (control {cmp.control})")
    plot_lift(cmp, ax=axes[1], relative=relative)
    return axes
