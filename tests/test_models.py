"""Every model end to end: posterior hyperparameters and exact summaries against scipy."""

import numpy as np
import pytest
from scipy import integrate, optimize, stats

import bayesworker as bw

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


def nig_posterior(x, mu0=0.0, k0=1e-6, a0=1.0, b0=1.0):
    x = np.asarray(x, dtype=float)
    n, xbar = x.size, x.mean()
    m2 = ((x - xbar) ** 2).sum()
    kn = k0 + n
    return ((k0 * mu0 + n * xbar) / kn, kn, a0 + n / 2,
            b0 + m2 / 2 + k0 * n * (xbar - mu0) ** 2 / (2 * kn))


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


def lnmean_cdf(t, mu, kappa, alpha, beta):
    """P(mu + s/2 <= t) under the NIG posterior, by quadrature over s (the oracle)."""
    ig = stats.invgamma(alpha, scale=beta)

    def f(s):
        return stats.norm.cdf((t - mu - s / 2) * np.sqrt(kappa / s)) * ig.pdf(s)

    lo, hi = ig.ppf(1e-15), ig.ppf(1 - 1e-15)
    pts = np.geomspace(lo, hi, 12)
    return sum(integrate.quad(f, a, b, epsabs=0, epsrel=1e-13, limit=200)[0]
               for a, b in zip(pts[:-1], pts[1:]))


def lnmean_quantile(level, *params):
    mu, kappa, alpha, beta = params
    center = mu + beta / (alpha + 1) / 2
    lo, hi = center - 5, center + 5
    while lnmean_cdf(lo, *params) > level:
        lo -= 5
    while lnmean_cdf(hi, *params) < level:
        hi += 5
    return np.exp(optimize.brentq(lambda t: lnmean_cdf(t, *params) - level, lo, hi,
                                  xtol=1e-14, rtol=1e-14))


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
    mu, kappa, alpha, beta = nig_posterior(np.log(x))
    q = np.log(lnmean_quantile(0.9999, mu, kappa, alpha, beta))
    ig = stats.invgamma(alpha, scale=beta)

    def partial(s, k):
        # E[exp(k Y) 1{Y <= q} | s] for Y = mu' + s/2, mu' ~ N(mu, s/kappa)
        m, v = mu + s / 2, s / kappa
        return np.exp(k * m + k * k * v / 2) * stats.norm.cdf((q - m - k * v) / np.sqrt(v)) \
            * ig.pdf(s)

    lo, hi = ig.ppf(1e-15), ig.ppf(1 - 1e-15)
    e1 = integrate.quad(partial, lo, hi, args=(1,), epsabs=0, epsrel=1e-12, limit=400)[0]
    e2 = integrate.quad(partial, lo, hi, args=(2,), epsabs=0, epsrel=1e-12, limit=400)[0]
    mean = e1 / 0.9999
    np.testing.assert_allclose(post.mean()[0], mean, rtol=1e-8)
    np.testing.assert_allclose(post.variance()[0], e2 / 0.9999 - mean ** 2, rtol=1e-7)
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

    def cdf(t):
        return integrate.quad(lambda p: freq.pdf(p) * sevd.sf(p / t) if False else
                              freq.pdf(p) * stats.gamma(ga, scale=1 / gb).sf(p / t),
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
