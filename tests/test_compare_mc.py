"""worker.compare with arms that have no tractable integrals (mixtures): Monte Carlo in C,
checked against independent oracles (NumPy reductions of the proxies' own draws, scipy
quadrature of a degenerate mixture's one component), for determinism, draws= and
cancellation; and dirichlet category arms, exact through the beta path."""

import asyncio
import math

import numpy as np
import pytest

import bayesworker as bw
from bayesworker import ModelError, _core
from support import BIMODAL, guarded, quiet, run, until

scipy = pytest.importorskip("scipy")
from scipy import integrate, optimize, stats  # noqa: E402

N = 2 ** 20
Z = 5.0      # tolerance: combined standard errors


@pytest.fixture(scope="module")
def worker():
    with bw.InferenceWorker(threads=2, seed=21) as w:
        yield w


def mixture(w, shift, model="normal-mixture", data=BIMODAL, **kw):
    kw.setdefault("components", 2)
    return w.run_inference_sync(model, data + shift, **kw).posterior


def lognormal_mixture(w, scale, seed):
    rng = np.random.default_rng(seed)
    x = np.r_[rng.lognormal(1.0, 0.4, 300), rng.lognormal(2.5, 0.3, 200)] * scale
    return w.run_inference_sync("lognormal-mixture", x, components=2).posterior


def prob_se(p, n=N):
    return math.sqrt(max(p * (1 - p), 1 / n) / n)


def quantile_se(x, q):
    """A quantile's standard error from a sorted sample: half the spread of the order
    statistics one binomial sd either side."""
    n = len(x)
    d = math.sqrt(n * q * (1 - q))
    return 0.5 * (x[min(n - 1, int(q * n + d))] - x[max(0, int(q * n - d))])


def check_against_numpy(cmp, draws, relative):
    """Every figure of a two-arm Monte Carlo comparison against NumPy reductions of the
    arms' own draws (another stream, another code path)."""
    a, b = draws["A"], draws["B"]
    se = cmp.standard_errors()
    p = float(np.mean(b > a))
    assert abs(cmp.prob_beats_control()["B"] - p) < Z * math.hypot(prob_se(p), prob_se(p))
    assert abs(cmp.prob_best()["B"] - p) < Z * math.hypot(prob_se(p), prob_se(p))
    assert cmp.prob_best()["A"] + cmp.prob_best()["B"] == 1.0
    for arm, loss in (("A", np.maximum(b - a, 0)), ("B", np.maximum(a - b, 0))):
        tol = Z * math.hypot(se["expected_loss"][arm], loss.std() / math.sqrt(len(loss)))
        assert abs(cmp.expected_loss()[arm] - loss.mean()) < tol
    assert cmp.expected_loss(vs="control")["B"] == cmp.expected_loss()["B"]
    for rel in ((True, False) if relative else (False,)):
        lift = np.sort(b / a - 1 if rel else b - a)
        got = cmp.lift(relative=rel)["B"]
        key = "lift_mean" if rel else "lift_mean_abs"
        tol = Z * math.hypot(se[key]["B"], lift.std() / math.sqrt(len(lift)))
        assert abs(got["mean"] - lift.mean()) < tol
        for q, value in ((0.5, got["median"]), (0.025, got["interval"][0]),
                         (0.975, got["interval"][1])):
            want = np.quantile(lift, q)
            assert abs(value - want) < Z * math.sqrt(2) * quantile_se(lift, q), (rel, q)
        t = float(np.median(lift))
        above = cmp.prob_lift_above(t, relative=rel)["B"]
        assert abs(above - 0.5) < Z * math.sqrt(2) * prob_se(0.5)


def test_normal_mixtures_against_numpy(worker):
    arms = {"A": mixture(worker, 0.0), "B": mixture(worker, 0.04)}
    cmp = worker.compare_sync(arms)
    assert cmp.draws == N and 0 < cmp.error < 1e-3
    assert cmp.error == max(max(cmp.standard_errors()["prob_best"].values()),
                            cmp.standard_errors()["prob_beats_control"]["B"])
    draws = {n: p.sample_sync(N) for n, p in arms.items()}
    check_against_numpy(cmp, draws, relative=False)
    # the median and interval ends are exact order statistics of the comparison's own
    # lifts (linear between neighbours): as many of them lie above each as its rank says
    lift = cmp.lift(relative=False, level=0.9)["B"]
    for q, v in ((0.5, lift["median"]), (0.05, lift["interval"][0]),
                 (0.95, lift["interval"][1])):
        below = math.floor(q * (N - 1)) + 1
        assert cmp.prob_lift_above(v, relative=False)["B"] == (N - below) / N
    # normal means can be <= 0: no relative lift, as for exact normal arms
    with pytest.raises(bw.ModelError, match="positive arms"):
        cmp.lift(relative=True)
    assert cmp.truncated == {"A": False, "B": False}
    for n, p in arms.items():        # a drawn arm's mean is its Monte Carlo mean
        assert abs(cmp.summary().loc[n, "mean"] - p.mixture_mean()["mean"]) < \
            Z * cmp.standard_errors()["mean"][n]


def test_lognormal_mixtures_against_numpy(worker):
    arms = {"A": lognormal_mixture(worker, 1.0, 1), "B": lognormal_mixture(worker, 1.04, 2)}
    cmp = worker.compare_sync(arms)
    # a lognormal mixture's mean has an infinite posterior mean: truncated, as lognormal arms
    assert cmp.truncated == {"A": True, "B": True}
    draws = {n: p.sample_sync(N) for n, p in arms.items()}
    keep = np.ones(N, bool)
    for x in draws.values():       # the truncation at the 99.99 % quantile of each arm
        keep &= x <= np.quantile(x, _core.TRUNC_LEVEL)
    a, b = draws["A"], draws["B"]
    p = float(np.mean(b > a))
    assert abs(cmp.prob_beats_control()["B"] - p) < Z * math.sqrt(2) * prob_se(p)
    loss = np.maximum(b - a, 0)[keep]
    se = cmp.standard_errors()["expected_loss"]["A"]
    assert abs(cmp.expected_loss()["A"] - loss.mean()) < Z * math.hypot(
        se, loss.std() / math.sqrt(len(loss)))
    lift = np.sort(b / a - 1)
    got = cmp.lift(relative=True)["B"]
    for q, value in ((0.5, got["median"]), (0.025, got["interval"][0])):
        assert abs(value - np.quantile(lift, q)) < Z * math.sqrt(2) * quantile_se(lift, q)


def t_dist(factors):
    """The Student t marginal of a NIG_MEAN factor (kind, m, kappa, alpha, beta)."""
    kind, m, kappa, alpha, beta = factors[0]
    assert kind == _core.DIST_NIG_MEAN
    return stats.t(2 * alpha, loc=m, scale=math.sqrt(beta / (alpha * kappa)))


def test_one_component_mixture_against_quadrature(worker):
    """A one-component mixture's mean is its component's mean: a Student t, whose
    comparison with a normal arm scipy integrates; the Monte Carlo figures must agree
    within their own standard errors."""
    x = np.random.default_rng(5).normal(3.0, 1.0, 400)
    mix = worker.run_inference_sync("normal-mixture", x, components=1).posterior
    norm = worker.run_inference_sync("normal", x + 0.05).posterior
    cmp = worker.compare_sync({"M": mix, "N": norm})
    assert cmp.draws == N
    comp = worker._core.get(mix.id)["mixture"]["components"]
    assert len(comp) == 1
    M = t_dist(comp[0]["factors"])
    F = t_dist(worker._core.get(norm.id)["parts"][0]["factors"])
    lo, hi = min(M.ppf(1e-12), F.ppf(1e-12)), max(M.isf(1e-12), F.isf(1e-12))

    def quad(f):
        return integrate.quad(f, lo, hi, epsabs=1e-14, epsrel=1e-12, limit=500,
                              points=[M.mean(), F.mean()])[0]

    p = quad(lambda t: F.pdf(t) * M.cdf(t))            # P(N > M)
    se = cmp.standard_errors()
    assert abs(cmp.prob_beats_control()["N"] - p) < Z * se["prob_beats_control"]["N"]
    assert abs(cmp.prob_best()["N"] - p) < Z * se["prob_best"]["N"]
    loss_m = quad(lambda t: M.cdf(t) * F.sf(t))        # E[max(N - M, 0)]
    assert abs(cmp.expected_loss()["M"] - loss_m) < Z * se["expected_loss"]["M"]
    # the absolute lift N - M: its cdf at the reported median and interval ends
    lift = cmp.lift(relative=False)["N"]
    for q, d in ((0.5, lift["median"]), (0.025, lift["interval"][0]),
                 (0.975, lift["interval"][1])):
        cdf = quad(lambda y: M.pdf(y) * F.cdf(d + y))
        assert abs(cdf - q) < Z * prob_se(q)
    assert abs(lift["mean"] - (F.mean() - M.mean())) < Z * se["lift_mean_abs"]["N"]
    assert cmp.summary().loc["N", "mean"] == pytest.approx(F.mean(), rel=1e-12)   # exact arm


def test_deterministic_across_seeds_and_threads():
    def figures(threads, seed=7):
        with bw.InferenceWorker(threads=threads, seed=seed) as w:
            arms = {"A": mixture(w, 0.0), "B": mixture(w, 0.03), "C": mixture(w, -0.02)}
            cmp = w.compare_sync(arms, control="B")
            return cmp._f, cmp.lift(relative=False, level=0.8)

    one = repr(figures(1))      # repr: every float to the last bit, NaN included
    assert one == repr(figures(2)) == repr(figures(0))
    assert one != repr(figures(2, seed=8))


def test_lower_is_better_mirrors_the_same_draws(worker):
    arms = {"A": mixture(worker, 0.0), "B": mixture(worker, 0.03)}
    hi, lo = (worker.compare_sync(arms, higher_is_better=h) for h in (True, False))
    assert hi.prob_beats_control()["B"] + lo.prob_beats_control()["B"] == pytest.approx(
        1.0, abs=1e-15)
    assert lo.expected_loss(vs="control")["B"] == pytest.approx(
        hi.expected_loss(vs="control")["B"] + hi.lift(relative=False)["B"]["mean"], rel=1e-9)
    a, b = hi.lift(relative=False)["B"], lo.lift(relative=False)["B"]
    assert b["median"] == pytest.approx(-a["median"], abs=1e-12)
    assert b["interval"] == pytest.approx((-a["interval"][1], -a["interval"][0]), abs=1e-12)
    # one stream: P(lift > 0) is P(beat control)
    assert hi.prob_lift_above(0.0, relative=False)["B"] == hi.prob_beats_control()["B"]


def test_draws_raise_n_and_shrink_the_error(worker):
    arms = {"A": mixture(worker, 0.0), "B": mixture(worker, 0.03)}
    small, big = worker.compare_sync(arms), worker.compare_sync(arms, draws=4 * N)
    assert (small.draws, big.draws) == (N, 4 * N)
    assert 1.9 < small.error / big.error < 2.1
    ratio = small.standard_errors()["expected_loss"]["A"] / \
        big.standard_errors()["expected_loss"]["A"]
    assert 1.9 < ratio < 2.1
    assert abs(small.prob_best()["B"] - big.prob_best()["B"]) < Z * math.hypot(
        small.error, big.error)


def test_draws_bad_values_and_exact_comparisons(worker):
    arms = {"A": mixture(worker, 0.0), "B": mixture(worker, 0.03)}
    for bad in (N - 1, 2 ** 24 + 1, 1.5e6, True, "many"):
        with pytest.raises(bw.ModelError, match="draws = "):
            worker.compare_sync(arms, draws=bad)
    a = worker.run_inference_sync("beta-binomial", {"successes": 10, "trials": 100}).posterior
    b = worker.run_inference_sync("beta-binomial", {"successes": 14, "trials": 100}).posterior
    exact = worker.compare_sync({"A": a, "B": b})
    same = worker.compare_sync({"A": a, "B": b}, draws=2 * N)   # no effect: exact
    assert exact.draws is None and same.draws is None
    assert exact.prob_beats_control() == same.prob_beats_control()
    with pytest.raises(bw.ModelError, match="no standard errors"):
        exact.standard_errors()
    with pytest.raises(bw.ModelError, match="draws = "):
        worker.compare_sync({"A": a, "B": b}, draws=10)


def test_cancel_a_long_comparison():
    async def go():
        async with bw.InferenceWorker(threads=2, seed=5) as w:
            post = (await w.run_inference("normal-mixture", BIMODAL, components=2)).posterior
            running = asyncio.Event()

            def report(p):
                if p.stage == "comparing" and p.iteration > 0:
                    running.set()
            # 16 arms of 2**24 draws each, twice: far more work than the test waits for
            task = asyncio.create_task(w.compare({f"a{i}": post for i in range(16)},
                                                 draws=2 ** 24, timeout=3600,
                                                 on_progress=report))
            await guarded(running.wait(), "the comparison's first blocks")
            assert w.stats()["live_jobs"] == 1
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await until(lambda: quiet(w), "the cancelled comparison to stop")
            return (await w.compare({"A": post, "B": post})).prob_best()

    best = run(go())
    assert sum(best.values()) == 1.0 and abs(best["A"] - 0.5) < Z * prob_se(0.5)


def test_timeout_bounds_a_long_comparison(worker):
    post = mixture(worker, 0.0)
    with pytest.raises(TimeoutError):
        worker.compare_sync({f"a{i}": post for i in range(16)}, draws=2 ** 24, timeout=1e-3)
    assert worker.compare_sync({"A": post, "B": post}).draws == N


def test_mixed_exact_and_drawn_arms(worker):
    """A compound mixture's revenue against a compound-beta-lognormal one: every arm is
    drawn; its conversion rate, a Beta the store describes, is compared exactly."""
    rng = np.random.default_rng(3)
    conv = rng.random(4000) < 0.1
    value = np.where(conv, rng.lognormal(2.0, 0.7, 4000), 0.0)
    mix = worker.run_inference_sync("compound-beta-lognormalmixture",
                                    {"converted": conv, "value": value}).posterior
    comp = worker.run_inference_sync("compound-beta-lognormal",
                                     {"converted": conv, "value": value * 1.05}).posterior
    cmp = worker.compare_sync({"mix": mix, "comp": comp})
    assert cmp.draws == N and cmp.truncated == {"mix": True, "comp": True}
    assert cmp.summary().loc["comp", "mean"] == comp.mean()[0]   # the exact arm's exact mean
    with pytest.raises(ModelError, match="compound mixture's order value has none"):
        cmp.decompose()
    rates = worker.compare_sync({"mix": mix.frequency, "comp": comp.frequency})
    assert rates.draws is None and rates.error < 1e-9
    assert rates.prob_beats_control()["comp"] == pytest.approx(0.5, abs=1e-12)
    beta = worker.run_inference_sync("beta-binomial", {"successes": int(conv.sum()) + 20,
                                                       "trials": 4000}).posterior
    a, b = (worker._core.get(p.id)["parts"][1 if p is mix.frequency else 0]["factors"][0]
            for p in (mix.frequency, beta))
    A, B = stats.beta(a[1], a[2]), stats.beta(b[1], b[2])
    want = integrate.quad(lambda t: B.pdf(t) * A.cdf(t), 0, 1, epsabs=1e-14, limit=500,
                          points=[A.mean(), B.mean()])[0]
    got = worker.compare_sync({"mix": mix.frequency, "beta": beta}).prob_beats_control()
    assert got["beta"] == pytest.approx(want, abs=1e-9)


def dirichlet(w, counts):
    return w.run_inference_sync("dirichlet-multinomial", counts).posterior


def test_dirichlet_category_arms_against_quadrature(worker):
    d1 = dirichlet(worker, {"red": 30, "green": 45, "blue": 25})
    d2 = dirichlet(worker, {"red": 38, "green": 40, "blue": 22})
    cmp = worker.compare_sync({"A": d1, "B": d2}, category="red")
    assert cmp.draws is None and cmp.error < 1e-9
    A, B = stats.beta(31, 72), stats.beta(39, 64)      # alpha 1 + count, the others' sum
    pts = [0.2, 0.3, 0.4, 0.5]

    def quad(f):
        return integrate.quad(f, 0, 1, epsabs=1e-15, epsrel=1e-13, limit=1000,
                              points=pts)[0]

    assert cmp.prob_beats_control()["B"] == pytest.approx(
        quad(lambda t: B.pdf(t) * A.cdf(t)), abs=1e-9)
    assert cmp.expected_loss()["A"] == pytest.approx(
        quad(lambda t: A.cdf(t) * B.sf(t)), rel=1e-9)
    lo, hi = cmp.lift(relative=True)["B"]["interval"]
    for q, r in ((0.025, lo), (0.975, hi)):
        assert quad(lambda y: A.pdf(y) * B.cdf((1 + r) * y)) == pytest.approx(q, abs=1e-9)
    # another category, and lower is better
    green = worker.compare_sync({"A": d1, "B": d2}, category="green", higher_is_better=False)
    G1, G2 = stats.beta(46, 57), stats.beta(41, 62)
    assert green.prob_beats_control()["B"] == pytest.approx(
        quad(lambda t: G1.pdf(t) * G2.cdf(t)), abs=1e-9)


def test_bad_inputs(worker):
    d1 = dirichlet(worker, {"red": 3, "green": 4})
    d2 = dirichlet(worker, {"red": 5, "green": 4})
    with pytest.raises(bw.ModelError, match="no exact comparison.*category=.*'red', 'green'"):
        worker.compare_sync({"A": d1, "B": d2})
    with pytest.raises(bw.ModelError, match="category = 'blue' is not a category of arm 'A'"):
        worker.compare_sync({"A": d1, "B": d2}, category="blue")
    beta = worker.run_inference_sync("beta-binomial", {"successes": 3, "trials": 7}).posterior
    with pytest.raises(bw.ModelError, match="different quantities"):
        worker.compare_sync({"A": d1, "B": beta}, category="red")
    with pytest.raises(bw.ModelError, match="none of the arms"):
        worker.compare_sync({"A": beta, "B": beta}, category="red")
    mix, lmix = mixture(worker, 0.0), lognormal_mixture(worker, 1.0, 4)
    with pytest.raises(bw.ModelError, match=r"different quantities.*\['M'\].*\['P'\]"):
        worker.compare_sync({"M": mix, "P": beta})
    rng = np.random.default_rng(8)
    conv = rng.random(500) < 0.2
    rev = worker.run_inference_sync("compound-beta-lognormalmixture", {
        "converted": conv, "value": np.where(conv, rng.lognormal(1, 1, 500), 0.0)}).posterior
    with pytest.raises(bw.ModelError, match=r"revenue per user: \['R'\]"):
        worker.compare_sync({"L": lmix, "R": rev})
    # the core itself: a whole dirichlet posterior and unknown flags are refused, no crash
    core = worker._core
    with pytest.raises(bw.ModelError, match="no exact comparison"):
        core.compare([(d1.id, 0), (d2.id, 0)], 0, True, (), (), True, None)
    with pytest.raises(bw.ModelError, match="flags = 12"):
        core.compare([(mix.id, mix._part, 12), (mix.id, mix._part, 0)], 0, True, (), (),
                     True, None)
    with pytest.raises(bw.ModelError, match="no exact comparison"):
        core.compare([(d1.id, _core.PART_SHARES, 0), (mix.id, mix._part, 0)], 0, True, (),
                     (), True, None)
    mix.dispose_sync()
    with pytest.raises(bw.DisposedError, match="'M'"):
        worker.compare_sync({"M": mix, "L": lmix})
