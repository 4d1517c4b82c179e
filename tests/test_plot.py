"""Plots: what is drawn (lines, labels, shaded areas equal to the exact figures), not pixels."""

import math
import sys

import numpy as np
import pytest

import bayesworker as bw
from bayesworker import _plot

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

LEVEL = 0.9


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def revenue(seed, n=3000, rate=0.1):
    rng = np.random.default_rng(seed)
    conv = (rng.random(n) < rate).astype(float)
    return {"converted": conv, "value": np.where(conv > 0, rng.lognormal(2, 1, n), 0.0)}


def tiny_segment():
    """2 converters among 200 users: the revenue's 0.9995 quantile is about 1e11."""
    value = np.zeros(200)
    value[:2] = [0.5, 3.0]
    return {"converted": (value > 0).astype(float), "value": value}


def shoelace(vertices):
    x, y = vertices[:, 0], vertices[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y)))


def trapezoid(x, y):
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2))


def shaded(collection):
    """(area of the shaded polygon, bound on its quadrature error): the error of the
    trapezoid rule on the polygon's own points is about a third of the difference from the
    rule on every other point, so that difference bounds it."""
    vertices = collection.get_paths()[0].vertices
    top = vertices[1:np.argmax(vertices[:, 0]) + 1]          # the upper curve, left to right
    area = shoelace(vertices)
    assert area == pytest.approx(trapezoid(top[:, 0], top[:, 1]), rel=1e-9)
    coarse = np.r_[np.arange(0, top.shape[0], 2), top.shape[0] - 1]
    coarse = np.unique(coarse)
    return area, abs(area - trapezoid(top[coarse, 0], top[coarse, 1]))


def fit(worker, model, data, **options):
    return worker.run_inference_sync(model, data, **options).posterior


@pytest.mark.parametrize("case", ["beta", "revenue", "severity", "exponential", "dirichlet",
                                  "mixture", "tiny"])
def test_posterior_plot_draws_the_exact_density_and_interval(worker, case):
    rng = np.random.default_rng(5)
    post = {
        "beta": lambda: fit(worker, "beta-binomial", {"successes": 30, "trials": 100}),
        "revenue": lambda: fit(worker, "compound-beta-lognormal", revenue(1)),
        "severity": lambda: fit(worker, "compound-beta-lognormal", revenue(2)).severity,
        "exponential": lambda: fit(worker, "exponential", rng.exponential(3.0, 40)),
        "dirichlet": lambda: fit(worker, "dirichlet-multinomial", {"a": 12, "b": 3, "c": 6}),
        "mixture": lambda: fit(worker, "normal-mixture",
                               np.r_[rng.normal(-5, 1, 300), rng.normal(5, 1, 500)],
                               components=2),
        "tiny": lambda: fit(worker, "compound-beta-lognormal", tiny_segment()),
    }[case]()
    k = post.mean().shape[0]
    ax = post.plot(level=LEVEL)
    assert len(ax.lines) == 2 * k                # a density and a median line per quantity
    assert len(ax.collections) == k              # one shaded interval per quantity
    assert ax.get_ylabel() == "posterior density"
    assert ax.get_xlabel() == {"beta": "conversion rate", "revenue": "revenue per user",
                               "severity": "value per converter", "exponential": "mean value",
                               "dirichlet": "category share", "mixture": "component mean",
                               "tiny": "revenue per user"}[case]
    assert post.model_type in ax.get_title()
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    ci = post.credible_interval(LEVEL)
    for i in range(k):
        area, err = shaded(ax.collections[i])
        assert err < 1e-3                          # the grid is fine enough to mean something
        assert area == pytest.approx(LEVEL, abs=err + 1e-7)
        median_line = ax.lines[2 * i + 1]
        assert np.allclose(median_line.get_xdata(), post.median()[i], rtol=1e-12)
        assert f"90% interval [{ci[i, 0]:.4g}, {ci[i, 1]:.4g}]" in legend
        assert f"median {post.median()[i]:.4g}" in legend
    if k > 1:
        assert all(f"{name}" in " ".join(legend) for name in post._labels())
    lo, hi = ax.get_xlim()
    q = post.quantile([_plot.TAIL, 1 - _plot.TAIL])
    assert lo >= q[0].min() - 1e-12 and hi <= q[1].max() + 1e-9
    assert lo <= ci[:, 0].min() and hi >= ci[:, 1].max()
    if case == "tiny":
        heavy_tail_checks(post, ax)


def heavy_tail_checks(post, ax):
    """The range of a very heavy tail comes from quantiles, never the mean, and is cut at
    two widths of the 90 % (or the plotted) interval beyond it, saying what is not shown."""
    hi = ax.get_xlim()[1]
    assert post.mean()[0] > 1e3 * hi               # the (truncated, huge) mean: 1e11
    assert hi < 1e-3 * post.ppf(1 - _plot.TAIL)    # the tail is cut ...
    a, b = min(post.ppf(0.05), post.ppf((1 - LEVEL) / 2)), max(post.ppf(0.95),
                                                              post.ppf((1 + LEVEL) / 2))
    assert hi == pytest.approx(b + 2 * (b - a), rel=1e-12)   # ... two widths out
    beyond = 1 - post.cdf(hi)
    assert f"P(> {hi:.4g}) = {beyond:.2g} not shown" in ax.lines[0].get_label()


def test_quantity_without_exact_cdf_is_a_histogram_of_fixed_draws(worker):
    post = fit(worker, "compound-beta-lognormalmixture", revenue(3))
    with pytest.raises(NotImplementedError):
        post.pdf(1.0)
    ax = post.plot(level=LEVEL)
    assert "histogram of 65,536 draws" in ax.lines[0].get_label()
    draws = post.sample_sync(1 << 16, start=0)
    lo, hi = post.credible_interval(LEVEL)[0]
    area, _ = shaded(ax.collections[0])
    # the shaded steps hold the draws inside [lo, hi], up to the two bins cut by lo and hi
    edges = np.histogram_bin_edges(draws, bins=_plot._HISTOGRAM_BINS, range=ax.get_xlim())
    cut = [np.searchsorted(edges, v) for v in (lo, hi)]
    edge_mass = sum(np.mean((draws >= edges[j - 1]) & (draws < edges[j])) for j in cut)
    inside = np.mean((draws >= lo) & (draws <= hi))
    assert abs(area - inside) <= edge_mass
    # lo, hi are quantiles of another fixed set of 2**17 draws: the fraction inside is the
    # level up to both sets' binomial noise
    sd = math.sqrt(LEVEL * (1 - LEVEL) * (2.0 ** -16 + 2.0 ** -17))
    assert abs(inside - LEVEL) < 5 * sd
    assert np.array_equal(ax.lines[0].get_ydata(), post.plot(level=LEVEL).lines[0].get_ydata())


def test_plot_posteriors_overlays_arms_on_one_range(worker):
    pa = fit(worker, "beta-binomial", {"successes": 40, "trials": 500})
    pb = fit(worker, "beta-binomial", {"successes": 4000, "trials": 40000})
    fig, given = plt.subplots()
    ax = bw.plot_posteriors({"A": pa, "B": pb}, ax=given, level=LEVEL)
    assert ax is given
    assert [line.get_label() for line in ax.lines] == ["A", f"median {pa.median()[0]:.4g}",
                                                       "B", f"median {pb.median()[0]:.4g}"]
    a_x, b_x = ax.lines[0].get_xdata(), ax.lines[2].get_xdata()
    assert a_x[0] == b_x[0] and a_x[-1] == b_x[-1] == ax.get_xlim()[1]
    for post, coll in ((pa, ax.collections[0]), (pb, ax.collections[1])):
        area, err = shaded(coll)     # B is narrow among A's range: drawn on its own grid too
        assert err < 1e-3 and area == pytest.approx(LEVEL, abs=err + 1e-7)
    with pytest.raises(ValueError, match="empty"):
        bw.plot_posteriors({})
    with pytest.raises(bw.DataError, match="level"):
        bw.plot_posteriors({"A": pa}, level=1.5)


def test_cdf_density_integrates_to_the_cdf_between_knots():
    x = np.linspace(-3.3, 3.3, 48)
    cdf = np.array([0.5 * math.erfc(-v / math.sqrt(2)) for v in x])
    xs, dens = _plot.cdf_density(x, cdf)
    assert np.all(dens >= 0)
    pdf = np.exp(-xs ** 2 / 2) / math.sqrt(2 * math.pi)
    assert np.max(np.abs(dens - pdf)) < 2e-3
    fine_x, fine_d = _plot.cdf_density(x, cdf, per_cell=4000)
    keep = (fine_x >= x[10]) & (fine_x <= x[30])
    assert trapezoid(fine_x[keep], fine_d[keep]) == pytest.approx(cdf[30] - cdf[10], abs=1e-7)


def lift_panel_checks(cmp, ax, relative):
    """Each arm's curve: its label states P(lift > 0) exactly; the shaded part above 0 has
    that probability, up to the tail beyond the range and the quadrature of the drawing."""
    p = cmp.prob_lift_above(0.0, relative=relative)
    arms = [n for n in cmp.arms if n != cmp.control]
    curves = ax.lines[:len(arms)]
    assert len(ax.lines) == len(arms) + 1            # and the line at 0
    assert len(ax.collections) == len(arms)
    x_hi = ax.get_xlim()[1]
    for arm, line, coll in zip(arms, curves, ax.collections):
        assert line.get_label() == f"{arm} vs {cmp.control}: P(lift > 0) = {p[arm]:.4f}"
        area, err = shaded(coll)
        beyond = cmp.prob_lift_above(float(x_hi), relative=relative)[arm]
        assert err < 1e-3
        assert area == pytest.approx(p[arm] - beyond, abs=err + 1e-7)


def test_comparison_plot_two_panels(worker):
    pa = fit(worker, "beta-binomial", {"successes": 65, "trials": 1000})
    pb = fit(worker, "beta-binomial", {"successes": 80, "trials": 1000})
    pc = fit(worker, "beta-binomial", {"successes": 60, "trials": 1000})
    cmp = worker.compare_sync({"A": pa, "B": pb, "C": pc}, control="A")
    fig, given = plt.subplots(1, 2)
    axes = cmp.plot(axes=given)
    assert axes[0] is given[0] and axes[1] is given[1]
    assert [line.get_label() for line in axes[0].lines[::2]] == ["A", "B", "C"]
    assert len(axes[0].collections) == 3
    assert axes[1].get_xlabel() == "relative lift"
    lift_panel_checks(cmp, axes[1], True)
    new = cmp.plot(relative=False)
    assert len(new) == 2 and new[0].figure is new[1].figure
    assert new[1].get_xlabel() == "absolute lift"
    lift_panel_checks(cmp, new[1], False)
    with pytest.raises(ValueError, match="two Axes"):
        cmp.plot(axes=[given[0]])


def test_comparison_plot_lower_is_better_and_revenue_arms(worker):
    ra = fit(worker, "compound-beta-lognormal", revenue(4))
    rb = fit(worker, "compound-beta-lognormal", revenue(5, rate=0.12))
    cmp = worker.compare_sync({"A": ra, "B": rb}, higher_is_better=False)
    axes = cmp.plot()
    assert "improvement" in axes[1].get_xlabel()
    assert axes[0].get_xlabel() == "revenue per user"
    lift_panel_checks(cmp, axes[1], True)


def test_absolute_lift_where_arms_can_be_negative(worker):
    rng = np.random.default_rng(9)
    pa = fit(worker, "normal", rng.normal(0.0, 1.0, 200))
    pb = fit(worker, "normal", rng.normal(0.2, 1.0, 200))
    cmp = worker.compare_sync({"A": pa, "B": pb})
    axes = cmp.plot()
    assert axes[1].get_xlabel() == "absolute lift"
    lift_panel_checks(cmp, axes[1], False)


def test_comparison_plot_needs_its_arms():
    cmp = bw.Comparison.__new__(bw.Comparison)
    with pytest.raises(bw.ModelError, match="posteriors of its arms"):
        cmp._arm_posteriors()


def test_missing_matplotlib_says_how_to_install(worker, monkeypatch):
    post = fit(worker, "beta-binomial", {"successes": 3, "trials": 10})
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"pip install bayesworker\[plot\]"):
        post.plot()
    with pytest.raises(ImportError, match=r"pip install bayesworker\[plot\]"):
        bw.plot_posteriors({"A": post})
