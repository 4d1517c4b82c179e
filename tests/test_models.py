"""Every model end to end: posterior hyperparameters and exact summaries against scipy."""

import asyncio
import gc
import tracemalloc

import numpy as np
import pytest
from scipy import integrate, stats

import bayesworker as bw
from oracles import lnmean_cdf, lnmean_quantile, lnmean_truncated_moments, nig_posterior
from support import BIMODAL

LEVELS = (0.5, 0.8, 0.9, 0.95, 0.99, 0.999)
REL = 1e-9


@pytest.fixture(scope="module")
def w():
    with bw.InferenceWorker(threads=2, seed=777) as worker:
        yield worker


def central(dist, level):
    return dist.ppf((1 - level) / 2), dist.ppf((1 + level) / 2)


def check_against(post, dist, levels=LEVELS):
    np.testing.assert_allclose(post.mean()[0], dist.mean(), rtol=REL)
    np.testing.assert_allclose(post.variance()[0], dist.var(), rtol=1e-8)
    for level in levels:
        lo, hi = post.credible_interval(level)[0]
        elo, ehi = central(dist, level)
        np.testing.assert_allclose([lo, hi], [elo, ehi], rtol=REL, err_msg=f"level {level}")


def test_issue_examples(w):
    post = w.run_inference_sync("beta-binomial", {"successes": 2, "trials": 10},
                                prior={"alpha": 80, "beta": 20}).posterior
    assert post.mean()[0] == pytest.approx(0.7454545455, abs=5e-11)
    np.testing.assert_allclose(post.credible_interval(0.95)[0], [0.66043149, 0.82202702],
                               atol=5e-9)
    post = w.run_inference_sync("beta-binomial", {"successes": 30, "trials": 100}).posterior
    np.testing.assert_allclose(post.credible_interval(0.95)[0], [0.21897873, 0.39614713],
                               atol=5e-9)


@pytest.mark.parametrize("s,n,prior", [(65, 1000, None), (0, 50, None), (50, 50, None),
                                        (3, 7, {"alpha": 0.5, "beta": 0.5}),
                                        (123456, 2_000_000, {"alpha": 2, "beta": 30})])
def test_beta_binomial(w, s, n, prior):
    post = w.run_inference_sync("beta-binomial", {"successes": s, "trials": n},
                                prior=prior).posterior
    a0, b0 = (prior or {}).get("alpha", 1), (prior or {}).get("beta", 1)
    assert post.parameters == {"alpha": a0 + s, "beta": b0 + n - s}
    check_against(post, stats.beta(a0 + s, b0 + n - s))


def test_beta_binomial_from_flags(w):
    flags = np.random.default_rng(1).random(5000) < 0.2
    post = w.run_inference_sync("beta-binomial", flags).posterior
    k = int(flags.sum())
    check_against(post, stats.beta(1 + k, 1 + 5000 - k))


@pytest.mark.parametrize("seed,n,loc,scale", [(1, 1000, 50.0, 20.0), (2, 5, -3.0, 0.5),
                                              (3, 100_000, 1e6, 1e3)])
def test_normal(w, seed, n, loc, scale):
    x = np.random.default_rng(seed).normal(loc, scale, n)
    post = w.run_inference_sync("normal", x).posterior
    mu, kappa, alpha, beta = nig_posterior(x)
    p = post.parameters
    np.testing.assert_allclose([p["mu"], p["kappa"], p["alpha"], p["beta"]],
                               [mu, kappa, alpha, beta], rtol=1e-11)
    check_against(post, stats.t(2 * alpha, loc=mu, scale=np.sqrt(beta / (alpha * kappa))))


def test_normal_aggregates_match_raw(w):
    x = np.random.default_rng(4).normal(10, 3, 777)
    raw = w.run_inference_sync("normal", x).posterior
    agg = w.run_inference_sync("normal", {"n": x.size, "mean": x.mean(),
                                          "sd": x.std(ddof=1)}).posterior
    np.testing.assert_allclose(agg.credible_interval(0.9), raw.credible_interval(0.9),
                               rtol=1e-12)


@pytest.mark.parametrize("model", ["exponential", "gamma"])
def test_exponential(w, model):
    x = np.random.default_rng(5).exponential(25.0, 400)
    post = w.run_inference_sync(model, x).posterior
    a, b = 1 + x.size, 1 + x.sum()
    assert post.parameters == pytest.approx({"alpha": a, "beta": b}, rel=1e-13)
    check_against(post, stats.invgamma(a, scale=b))


def test_poisson(w):
    x = np.random.default_rng(6).poisson(3.2, 250)
    post = w.run_inference_sync("poisson", x).posterior
    a, b = 1 + x.sum(), 1 + x.size
    check_against(post, stats.gamma(a, scale=1 / b))
    agg = w.run_inference_sync("poisson", {"n": x.size, "sum": int(x.sum())}).posterior
    np.testing.assert_array_equal(agg.credible_interval(0.99), post.credible_interval(0.99))


def test_lognormal_intervals_are_exact_quantiles(w):
    x = np.random.default_rng(7).lognormal(3.0, 0.8, 300)
    post = w.run_inference_sync("lognormal", x).posterior
    params = nig_posterior(np.log(x))
    p = post.parameters
    np.testing.assert_allclose([p["mu"], p["kappa"], p["alpha"], p["beta"]], params,
                               rtol=1e-11)
    for level in (0.5, 0.9, 0.95, 0.99):
        lo, hi = post.credible_interval(level)[0]
        np.testing.assert_allclose(lo, lnmean_quantile((1 - level) / 2, *params), rtol=REL)
        np.testing.assert_allclose(hi, lnmean_quantile((1 + level) / 2, *params), rtol=REL)


def test_lognormal_mean_is_the_stated_truncated_mean(w):
    x = np.random.default_rng(8).lognormal(1.0, 0.5, 60)
    post = w.run_inference_sync("lognormal", x).posterior
    mean, var = lnmean_truncated_moments(*nig_posterior(np.log(x)))
    np.testing.assert_allclose(post.mean()[0], mean, rtol=1e-8)
    np.testing.assert_allclose(post.variance()[0], var, rtol=1e-7)
    # and it sits where the data say the average order value is
    assert abs(np.log(post.mean()[0] / x.mean())) < 0.3


def test_compound_exponential_against_scipy(w):
    rng = np.random.default_rng(9)
    conv = rng.random(3000) < 0.1
    value = np.where(conv, rng.exponential(40, 3000), 0.0)
    res = w.run_inference_sync("compound-beta-exponential", {"converted": conv, "value": value})
    post = res.posterior
    k = int(conv.sum())
    sev = value[conv & (value > 0)]
    fa, fb = 1 + k, 1 + 3000 - k
    ga, gb = 1 + sev.size, 1 + sev.sum()
    freq, sevd = stats.beta(fa, fb), stats.invgamma(ga, scale=gb)
    check_against(post.frequency, freq, levels=(0.9, 0.95))
    check_against(post.severity, sevd, levels=(0.9, 0.95))
    assert post.expected_value_per_user() == pytest.approx(freq.mean() * sevd.mean(), rel=1e-12)
    ex2 = (freq.var() + freq.mean() ** 2) * (sevd.var() + sevd.mean() ** 2)
    assert post.variance()[0] == pytest.approx(ex2 - (freq.mean() * sevd.mean()) ** 2, rel=1e-9)

    # P(p * m <= t) = E_p[P(rate >= p / t)]: the mean m = 1 / rate, rate ~ Gamma(ga, gb)
    rate = stats.gamma(ga, scale=1 / gb)

    def cdf(t):
        return integrate.quad(lambda p: freq.pdf(p) * rate.sf(p / t),
                              freq.ppf(1e-14), freq.ppf(1 - 1e-14), epsabs=0,
                              epsrel=1e-13, limit=200)[0]

    for level in (0.9, 0.95):
        lo, hi = post.credible_interval(level)[0]
        assert cdf(lo) == pytest.approx((1 - level) / 2, rel=1e-8)
        assert cdf(hi) == pytest.approx((1 + level) / 2, rel=1e-8)
    d = res.diagnostics.details["sufficient_statistics"]
    assert d["converters"] == k and d["users"] == 3000


def test_compound_lognormal_parts_and_product(w):
    rng = np.random.default_rng(10)
    conv = rng.random(2000) < 0.08
    value = np.where(conv, rng.lognormal(3.5, 0.7, 2000), 0.0)
    records = [{"converted": bool(c), "value": float(v)} for c, v in zip(conv, value)]
    post = w.run_inference_sync("compound-beta-lognormal", records).posterior
    assert isinstance(post, bw.CompoundPosteriorProxy)
    k = int(conv.sum())
    freq = stats.beta(1 + k, 1 + 2000 - k)
    check_against(post.frequency, freq, levels=(0.95,))
    sev_params = nig_posterior(np.log(value[conv]))
    lo, hi = post.severity.credible_interval(0.95)[0]
    np.testing.assert_allclose(lo, lnmean_quantile(0.025, *sev_params), rtol=REL)
    assert post.expected_value_per_user() == pytest.approx(
        freq.mean() * post.severity.mean()[0], rel=1e-12)
    # the product's interval: P(p * m <= t) = E_p[F_m(t / p)], oracle by nested quadrature
    lo, hi = post.credible_interval(0.9)[0]

    def cdf(t):
        f = lambda p: freq.pdf(p) * lnmean_cdf(np.log(t / p), *sev_params)
        return integrate.quad(f, freq.ppf(1e-12), freq.ppf(1 - 1e-12), epsabs=0,
                              epsrel=1e-11, limit=100)[0]

    assert cdf(lo) == pytest.approx(0.05, rel=1e-7)
    assert cdf(hi) == pytest.approx(0.95, rel=1e-7)


def test_auto_reports_its_choice(w):
    x = np.random.default_rng(11).lognormal(2, 1, 2000)
    res = w.run_inference_sync("auto", x)
    assert res.diagnostics.model_type == "lognormal"
    assert res.diagnostics.details["auto_choice"] == "lognormal"
    assert "lognormal" in res.diagnostics.details["reason"]
    res = w.run_inference_sync("auto", {"successes": 5, "trials": 10})
    assert res.diagnostics.model_type == "beta-binomial"


def test_any_level_is_exact_never_replaced(w):
    post = w.run_inference_sync("beta-binomial", {"successes": 7, "trials": 40}).posterior
    d = stats.beta(8, 34)
    for level in (0.123, 0.5, 0.6827, 0.999999):
        np.testing.assert_allclose(post.credible_interval(level)[0], central(d, level),
                                   rtol=REL)


def traced_after(fn) -> int:
    """Bytes still traced (tracemalloc) after ``fn()`` ran, with garbage collected."""
    tracemalloc.start()
    try:
        gc.collect()
        base = tracemalloc.get_traced_memory()[0]
        fn()
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()


#: 2 x 2,000 distinct levels: far more than an interval cache should keep. The second 2,000
#: must not grow the cache: an unbounded one would keep about 200 bytes per level (an array,
#: its key and its slot), 400 KB, against the 64 KiB allowed here.
MANY_LEVELS = np.linspace(0.0005, 0.9995, 4000)
CACHE_GROWTH = 64 * 1024


def fill(out: np.ndarray, rows: slice, interval) -> None:
    for i in range(*rows.indices(len(MANY_LEVELS))):
        out[i] = interval(MANY_LEVELS[i])


def test_more_levels_than_the_cache_keeps_stay_exact_and_bounded(w):
    post = w.run_inference_sync("beta-binomial", {"successes": 7, "trials": 40}).posterior
    d = stats.beta(8, 34)
    want = np.column_stack(central(d, MANY_LEVELS))
    got = np.empty_like(want)
    fill(got, slice(0, None, 2), lambda lv: post.credible_interval(lv)[0])

    def more():
        fill(got, slice(1, None, 2), lambda lv: post.credible_interval(lv)[0])
        fill(got, slice(0, None, 2), lambda lv: post.credible_interval(lv)[0])   # again

    grown = traced_after(more)
    np.testing.assert_allclose(got, want, rtol=REL)
    assert grown < CACHE_GROWTH, f"the interval cache grew by {grown} bytes"
    # the async twin shares the cache: past the bound it still computes exact intervals
    async def go():
        return [await post.credible_interval_async(lv) for lv in MANY_LEVELS[1:400:3]]

    got_async = np.array(asyncio.run(go()))[:, 0]
    np.testing.assert_allclose(got_async, want[1:400:3], rtol=REL)


def test_mixture_levels_past_the_cache_stay_exact_and_bounded(w):
    post = w.run_inference_sync("normal-mixture", BIMODAL, components=2).posterior
    comps = post.components()
    alphas = np.array([c["weight_alpha"] for c in comps])
    for r, c in enumerate(comps):
        mean_d = stats.t(2 * c["a"], loc=c["location"],
                         scale=np.sqrt(c["b"] / (c["a"] * c["kappa"])))
        weight_d = stats.beta(alphas[r], alphas.sum() - alphas[r])
        for what, dist in (("component", mean_d), ("weight", weight_d)):
            want = np.column_stack(central(dist, MANY_LEVELS))
            got = np.empty_like(want)
            ask = (lambda lv: post.credible_interval(lv)[r]) if what == "component" else \
                (lambda lv: post.weights(lv)[1][r])
            fill(got, slice(0, None, 2), ask)
            grown = traced_after(lambda: (fill(got, slice(1, None, 2), ask),
                                          fill(got, slice(0, None, 2), ask)))
            np.testing.assert_allclose(got, want, rtol=REL, err_msg=f"{what} {r}")
            assert grown < CACHE_GROWTH, f"{what} {r}: the cache grew by {grown} bytes"
