"""Proxies as frozen distributions: pdf, cdf, ppf, median, quantile, std against scipy."""

import math

import numpy as np
import pytest

import bayesworker as bw

stats = pytest.importorskip("scipy.stats")
integrate = pytest.importorskip("scipy.integrate")

RTOL = 1e-9


@pytest.fixture(scope="module")
def worker():
    with bw.InferenceWorker(threads=1, seed=11) as w:
        yield w


def fit(worker, model, data, **kw):
    return worker.run_inference_sync(model, data, **kw).posterior


def rng_values(kind, n, seed=5):
    rng = np.random.default_rng(seed)
    return {"normal": rng.normal(3.0, 2.0, n), "lognormal": rng.lognormal(1.0, 0.7, n),
            "exponential": rng.exponential(4.0, n), "poisson": rng.poisson(3.0, n) * 1.0}[kind]


def scipy_of(post):
    p = post.parameters
    if post.model_type.startswith("beta-binomial") or post.model_type.endswith("frequency"):
        return stats.beta(p["alpha"], p["beta"])
    if post.model_type == "normal":
        return stats.t(2 * p["alpha"], loc=p["mu"],
                       scale=math.sqrt(p["beta"] / (p["alpha"] * p["kappa"])))
    if post.model_type == "poisson":
        return stats.gamma(p["alpha"], scale=1.0 / p["beta"])
    if post.model_type == "exponential" or post.model_type.endswith("severity"):
        return stats.invgamma(p["alpha"], scale=p["beta"])     # the mean 1 / lambda
    raise AssertionError(post.model_type)


def assert_rel(got, want, rtol=RTOL):
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=rtol, atol=0)


@pytest.mark.parametrize("model,data", [
    ("beta-binomial", {"successes": 65, "trials": 1000}),
    ("beta-binomial", {"successes": 0, "trials": 7}),
    ("beta-binomial", {"successes": 4_000_000, "trials": 9_000_000}),
    ("normal", "normal"),
    ("poisson", "poisson"),
    ("exponential", "exponential"),
])
def test_closed_forms_match_scipy(worker, model, data):
    post = fit(worker, model, rng_values(data, 300) if isinstance(data, str) else data)
    ref = scipy_of(post)
    qs = np.array([1e-6, 0.001, 0.025, 0.2, 0.5, 0.8, 0.975, 0.999])
    x = ref.ppf(qs)
    assert_rel(post.cdf(x), ref.cdf(x))
    assert_rel(post.ppf(qs), x)
    assert_rel(post.pdf(x), ref.pdf(x))
    assert_rel(post.median(), [ref.median()])
    assert_rel(post.std(), [ref.std()])
    # the same functions as the intervals (which pass the tails as (1 -/+ level) / 2)
    assert_rel(post.ppf([0.025, 0.975]), post.credible_interval(0.95)[0], rtol=1e-12)


def test_shapes_scalars_and_arrays(worker):
    post = fit(worker, "beta-binomial", {"successes": 30, "trials": 100})
    assert isinstance(post.cdf(0.3), np.floating) and np.ndim(post.pdf(0.3)) == 0
    assert post.cdf(np.full((2, 3), 0.3)).shape == (2, 3)
    assert post.quantile(0.5).shape == (1,) and post.quantile([0.1, 0.9]).shape == (2, 1)
    assert post.median().shape == (1,) and post.std().shape == (1,)
    assert post.quantile(0.5)[0] == post.median()[0] == post.ppf(0.5)
    with pytest.raises(ValueError):
        post.median()[0] = 1.0          # read-only, like mean()
    big = np.linspace(0.0, 1.0, 10_001)     # long enough to run without the GIL
    assert_rel(post.cdf(big), stats.beta(31, 71).cdf(big))


def test_edges_nan_and_bad_input(worker):
    post = fit(worker, "beta-binomial", {"successes": 30, "trials": 100})
    assert post.ppf([0.0, 1.0]).tolist() == [0.0, 1.0]
    assert post.cdf([-1.0, 2.0]).tolist() == [0.0, 1.0]
    assert post.pdf([-1.0, 2.0]).tolist() == [0.0, 0.0]
    assert np.isnan(post.cdf(np.nan)) and np.isnan(post.ppf(np.nan)) and np.isnan(post.pdf(np.nan))
    with pytest.raises(ValueError, match=r"q\[1\] = 1.5 must be a probability in \[0, 1\]"):
        post.ppf([0.5, 1.5])
    with pytest.raises(ValueError, match=r"^q = -0.1"):
        post.quantile(-0.1)
    with pytest.raises(TypeError, match="x must be a number"):
        post.cdf("abc")
    normal = fit(worker, "normal", rng_values("normal", 50))
    assert normal.ppf([0.0, 1.0]).tolist() == [-np.inf, np.inf]
    post.dispose_sync()
    with pytest.raises(bw.DisposedError):
        post.cdf(0.3)


def lognormal_mean_cdf(p, x):
    """P(exp(mu + s/2) <= x) under the NIG posterior, by scipy quadrature over s."""
    m, kappa, a, b = p["mu"], p["kappa"], p["alpha"], p["beta"]
    lx = math.log(x)
    ig = stats.invgamma(a, scale=b)

    def f(s):
        return stats.norm.cdf((lx - m - s / 2) / math.sqrt(s / kappa)) * ig.pdf(s)
    lo, hi = ig.ppf(1e-15), ig.ppf(1 - 1e-15)
    return integrate.quad(f, lo, hi, epsabs=0, epsrel=1e-13, limit=500, points=[ig.median()])[0]


def test_lognormal_mean_cdf_by_quadrature(worker):
    post = fit(worker, "lognormal", rng_values("lognormal", 200))
    for q in (0.01, 0.3, 0.5, 0.9):
        x = float(post.ppf(q))
        assert post.cdf(x) == pytest.approx(q, rel=1e-10)
        assert lognormal_mean_cdf(post.parameters, x) == pytest.approx(q, rel=RTOL)
    # the density by quadrature: d/dx P(m <= x) = E_s[phi(z) / (x sqrt(s / kappa))]
    pr = post.parameters
    m, kappa, a, b = pr["mu"], pr["kappa"], pr["alpha"], pr["beta"]
    ig = stats.invgamma(a, scale=b)
    for q in (0.05, 0.5, 0.95):
        x = float(post.ppf(q))

        def f(s, x=x):
            sd = math.sqrt(s / kappa)
            return stats.norm.pdf((math.log(x) - m - s / 2) / sd) / (x * sd) * ig.pdf(s)
        want = integrate.quad(f, ig.ppf(1e-15), ig.ppf(1 - 1e-15), epsabs=0, epsrel=1e-13,
                              limit=500, points=[ig.median()])[0]
        assert float(post.pdf(x)) == pytest.approx(want, rel=RTOL)


def test_compound_product_cdf_by_quadrature(worker):
    rng = np.random.default_rng(3)
    conv = (rng.random(400) < 0.2).astype(float)
    value = np.where(conv > 0, rng.exponential(5.0, 400), 0.0)
    post = fit(worker, "compound-beta-exponential", {"converted": conv, "value": value})
    fr, sv = scipy_of(post.frequency), scipy_of(post.severity)
    for t in post.mean()[0] * np.array([0.7, 1.0, 1.3]):
        want = integrate.quad(lambda p: fr.pdf(p) * sv.cdf(t / p), 0, 1, epsabs=0,
                              epsrel=1e-13, limit=500, points=[fr.median()])[0]
        assert post.cdf(t) == pytest.approx(want, rel=RTOL)
        if want < 0.99:         # beyond, ppf is ill-conditioned in want's last digits
            assert post.ppf(want) == pytest.approx(t, rel=1e-10)
    assert_rel(post.frequency.cdf([0.1, 0.2]), fr.cdf([0.1, 0.2]))
    assert_rel(post.severity.pdf([3.0, 6.0]), sv.pdf([3.0, 6.0]))
    for t in post.mean()[0] * np.array([0.7, 1.0, 1.3]):      # density of the product
        want = integrate.quad(lambda p: fr.pdf(p) * sv.pdf(t / p) / p, 0, 1, epsabs=0,
                              epsrel=1e-13, limit=500, points=[fr.median()])[0]
        assert float(post.pdf(t)) == pytest.approx(want, rel=RTOL)


def test_mixture_components_and_dirichlet_marginals(worker):
    x = np.r_[np.random.default_rng(0).normal(-5, 1, 400), np.random.default_rng(1).normal(5, 1, 600)]
    mix = fit(worker, "normal-mixture", x, components=2)
    comps = mix.components()
    refs = [stats.t(2 * c["a"], loc=c["location"],
                    scale=math.sqrt(c["b"] / (c["a"] * c["kappa"]))) for c in comps]
    grid = np.array([-5.1, -5.0, 4.9, 5.0])
    assert mix.cdf(grid).shape == (4, 2)
    for k, ref in enumerate(refs):
        assert_rel(mix.cdf(grid)[:, k], ref.cdf(grid))
        assert_rel(mix.pdf(grid)[:, k], ref.pdf(grid))
    assert_rel(mix.median(), [r.median() for r in refs])
    assert_rel(mix.quantile(0.025), mix.credible_interval(0.95)[:, 0], rtol=1e-12)

    d = fit(worker, "dirichlet-multinomial", {"counts": [3, 40, 5]})
    alpha = np.array(d.parameters["alpha"])
    grid = np.array([0.05, 0.5, 0.9])
    for k in range(3):
        ref = stats.beta(alpha[k], alpha.sum() - alpha[k])
        assert_rel(d.cdf(grid)[:, k], ref.cdf(grid))
        assert_rel(d.pdf(grid)[:, k], ref.pdf(grid))
        assert_rel(d.ppf([0.1, 0.6])[:, k], ref.ppf([0.1, 0.6]))
    assert d.median().shape == (3,) and d.std().shape == (3,)


def test_monte_carlo_quantities_say_so(worker):
    rng = np.random.default_rng(2)
    conv = (rng.random(300) < 0.5).astype(float)
    value = np.where(conv > 0, np.r_[rng.lognormal(0, 0.3, 150), rng.lognormal(3, 0.3, 150)], 0)
    post = fit(worker, "compound-beta-lognormalmixture", {"converted": conv, "value": value},
               components=2)
    for call in (lambda: post.cdf(1.0), lambda: post.ppf(0.5), lambda: post.median()):
        with pytest.raises(NotImplementedError, match="Monte Carlo"):
            call()
    assert post.severity.cdf(10.0).shape == (post.severity.n_components,)
    assert post.frequency.cdf(0.5) == pytest.approx(
        scipy_of(post.frequency).cdf(0.5), rel=RTOL)
