"""Mixture models through the public API: recovery, choice of K, ELBO monotonicity,
reproducibility, cancellation, progress, degenerate data, predictive draws, options."""

import asyncio
import math
import time

import numpy as np
import pytest
from scipy import stats

import bayesworker as bw

FITS = []       # every fit in this file, checked for a monotone ELBO at the end


def fit(w, model, data, **kw):
    res = w.run_inference_sync(model, data, **kw)
    FITS.append(res)
    check_no_nan(res.posterior)
    return res


def check_no_nan(post):
    if isinstance(post, bw.CompoundMixturePosteriorProxy):
        for a in (post.mean(), post.variance(), post.credible_interval(0.95)):
            assert not np.isnan(a).any()
        post = post.severity
    for a in (post.mean(), post.variance(), post.credible_interval(0.95),
              post.credible_interval(0.5), *post.weights(0.9)):
        assert not np.isnan(a).any(), a
    mm = post.mixture_mean()
    assert not math.isnan(mm["mean"]) and not math.isnan(mm["variance"])
    assert not np.isnan(mm["credible_interval"]).any()
    for c in post.components():
        assert not any(isinstance(v, float) and math.isnan(v) for v in c.values()), c


@pytest.fixture(scope="module")
def w():
    with bw.InferenceWorker(threads=2, seed=31337) as worker:
        yield worker


def bimodal(n=1000, seed=1):
    rng = np.random.default_rng(seed)
    z = rng.random(n) < 0.4
    return np.where(z, rng.normal(-5, 1, n), rng.normal(5, 1, n))


def trimodal_lognormal(n=1000, seed=2):
    rng = np.random.default_rng(seed)
    u = rng.random(n)
    return np.where(u < 0.6, rng.lognormal(2.3, 0.2, n),
                    np.where(u < 0.9, rng.lognormal(3.9, 0.2, n), rng.lognormal(5.3, 0.3, n)))


# ------------------------------------------------------------------------------------------
# Recovery
# ------------------------------------------------------------------------------------------

def test_bimodal_normal_recovery(w):
    res = fit(w, "normal-mixture", bimodal(), components=2)
    post = res.posterior
    assert isinstance(post, bw.MixturePosteriorProxy)
    np.testing.assert_allclose(post.mean(), [-5, 5], atol=0.2)
    np.testing.assert_allclose(post.weights()[0], [0.4, 0.6], atol=0.05)
    assert post.credible_interval(0.95).shape == (2, 2)
    assert res.diagnostics.converged and res.diagnostics["components_chosen"] == 2
    # the weights' intervals are the Beta marginals of the Dirichlet
    alphas = [c["weight_alpha"] for c in post.components()]
    lo, hi = stats.beta(alphas[0], sum(alphas) - alphas[0]).ppf([0.025, 0.975])
    np.testing.assert_allclose(post.weights(0.95)[1][0], [lo, hi], rtol=1e-9)


def test_trimodal_lognormal_recovery(w):
    x = trimodal_lognormal()
    res = fit(w, "lognormal-mixture", x, components=3)
    post = res.posterior
    truth = np.array([10.2, 50.4, 209.6])
    sd = np.sqrt(post.variance())
    assert post.mean().shape == (3,)
    assert np.all(np.abs(post.mean() - truth) < 4 * sd + 0.01 * truth), (post.mean(), sd)
    np.testing.assert_allclose(post.weights()[0], [0.6, 0.3, 0.1], atol=0.05)
    ci = post.credible_interval(0.99)
    assert np.all((ci[:, 0] < truth) & (truth < ci[:, 1]))


def test_identical_values(w):
    x = np.full(100, 42.5)
    for model in ("normal-mixture", "lognormal-mixture"):
        post = fit(w, model, x, components=2).posterior
        assert post.n_components >= 1
        # lognormal: the data-scale mean exp(mu + sigma^2 / 2) carries the b0 floor on
        # sigma^2 (mixture.h, "Known limits of the prior")
        rtol = 1e-9 if model == "normal-mixture" else 0.02
        np.testing.assert_allclose(post.mean()[np.argmax(post.weights()[0])], 42.5, rtol=rtol)


def test_unimodal_no_spurious_split(w):
    x = np.random.default_rng(3).normal(0, 1, 1000)
    res = fit(w, "normal-mixture", x, components=2)
    post = res.posterior
    weights = post.weights()[0]
    # one component carries the data; a second, if reported at all, is negligible
    assert post.n_components == 1 or weights.min() < 0.02, (post.mean(), weights)
    assert abs(post.mean()[np.argmax(weights)]) < 0.15
    if post.n_components == 1:
        assert len(res.diagnostics["dropped_components"]) == 1


def test_auto_components_picks_two_then_one(w):
    res = fit(w, "normal-mixture", bimodal(), components="auto")
    d = res.diagnostics
    assert d["components_chosen"] == 2
    assert sorted(d["elbo_per_K"]) == [1, 2, 3, 4]
    assert d["elbo"] == max(d["elbo_per_K"].values())
    res = fit(w, "normal-mixture", np.random.default_rng(4).normal(3, 2, 1000),
              components="auto", max_components=3)
    assert res.diagnostics["components_chosen"] == 1
    assert sorted(res.diagnostics["elbo_per_K"]) == [1, 2, 3]


def test_auto_model_considers_mixtures(w):
    res = fit(w, "auto", bimodal())
    assert res.diagnostics.model_type == "normal-mixture"
    assert "nats" in res.diagnostics["reason"]
    x = np.random.default_rng(5).lognormal(1, 0.7, 800)
    res = w.run_inference_sync("auto", x)
    assert res.diagnostics.model_type == "lognormal"
    assert "lognormal-mixture" in res.diagnostics["reason"]
    res = fit(w, "auto", trimodal_lognormal())
    assert res.diagnostics.model_type == "lognormal-mixture"
    assert res.posterior.n_components == 3


# ------------------------------------------------------------------------------------------
# Summaries, draws
# ------------------------------------------------------------------------------------------

def student_t_mixture_cdf(post, t, log=False):
    comps = post.components()
    wsum = sum(c["weight_alpha"] for c in comps)
    out = np.zeros_like(t)
    for c in comps:
        a, b, kappa, m = c["a"], c["b"], c["kappa"], c["location"]
        dist = stats.t(2 * a, loc=m, scale=np.sqrt(b * (kappa + 1) / (a * kappa)))
        out += c["weight_alpha"] / wsum * dist.cdf(np.log(t) if log else t)
    return out


@pytest.mark.parametrize("model", ["normal-mixture", "lognormal-mixture"])
def test_predictive_draws_match_the_fitted_mixture(w, model):
    x = bimodal() if model == "normal-mixture" else trimodal_lognormal()
    post = fit(w, model, x, components=2 if model == "normal-mixture" else 3).posterior
    draws = post.sample_predictive_sync(40_000)
    assert np.isfinite(draws).all()
    ks = stats.kstest(draws, lambda t: student_t_mixture_cdf(post, t,
                                                              log=model != "normal-mixture"))
    assert ks.pvalue > 1e-3, ks


def test_mixture_mean_closed_form_and_draws(w):
    post = fit(w, "lognormal-mixture", trimodal_lognormal(), components=3).posterior
    mm = post.mixture_mean()
    ws = post.weights()[0]
    assert mm["mean"] == pytest.approx(float(ws @ post.mean()), rel=1e-12)
    draws = post.sample_sync(200_000)
    sd = math.sqrt(mm["variance"])
    assert abs(draws.mean() - mm["mean"]) < 5 * sd / math.sqrt(draws.size) + 1e-3 * sd
    assert draws.std() == pytest.approx(sd, rel=0.02)
    lo, hi = np.quantile(draws, [0.025, 0.975])
    se = mm["mc_standard_error"]
    assert abs(mm["credible_interval"][0] - lo) < 6 * se[0] + 0.01 * sd
    assert abs(mm["credible_interval"][1] - hi) < 6 * se[1] + 0.01 * sd
    # deterministic: the same interval at a new level twice
    a = post.mixture_mean(0.7)["credible_interval"]
    post._mm_intervals.pop(0.7)
    np.testing.assert_array_equal(a, post.mixture_mean(0.7)["credible_interval"])


def test_component_intervals_any_level_exact(w):
    post = fit(w, "normal-mixture", bimodal(), components=2).posterior
    for r, c in enumerate(post.components()):
        dist = stats.t(2 * c["a"], loc=c["location"],
                       scale=math.sqrt(c["b"] / (c["a"] * c["kappa"])))
        np.testing.assert_allclose(post.credible_interval(0.77)[r], dist.ppf([0.115, 0.885]),
                                   rtol=1e-9)
        assert post.mean()[r] == pytest.approx(dist.mean(), rel=1e-12)
    ci = asyncio.run(post.credible_interval_async(0.66))
    np.testing.assert_allclose(ci, post.credible_interval(0.66))


def test_async_sampling_and_continuation(w):
    post = fit(w, "normal-mixture", bimodal(), components=2).posterior

    async def go():
        a = await post.sample(30_000)
        b = await post.sample_predictive(30_000)
        return a, b
    a, b = asyncio.run(go())
    assert a.shape == b.shape == (30_000,)
    assert np.isfinite(a).all() and np.isfinite(b).all()


def draws_with(threads):
    with bw.InferenceWorker(threads=threads, seed=99) as ww:
        res = ww.run_inference_sync("lognormal-mixture", trimodal_lognormal(), components=3)
        post = res.posterior
        return (post.mean().copy(), post.weights()[0].copy(), res.diagnostics["elbo_history"],
                post.sample_sync(50_000), post.sample_predictive_sync(3000),
                post.mixture_mean()["credible_interval"].copy())


def test_reproducible_across_thread_counts():
    ref = draws_with(0)
    for threads in (1, 2):
        got = draws_with(threads)
        for a, b in zip(ref, got):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_compound_lognormal_mixture(w):
    rng = np.random.default_rng(7)
    conv = rng.random(5000) < 0.1
    value = np.where(conv, trimodal_lognormal(5000, seed=8), 0.0)
    res = fit(w, "compound-beta-lognormalmixture", {"converted": conv, "value": value},
              components=3, prior={"frequency": {"alpha": 2, "beta": 2}})
    post = res.posterior
    assert isinstance(post, bw.CompoundMixturePosteriorProxy)
    k = int(conv.sum())
    assert post.frequency.mean()[0] == pytest.approx((2 + k) / (4 + 5000), rel=1e-12)
    sev = post.severity.mixture_mean()["mean"]
    assert post.expected_value_per_user() == pytest.approx(post.frequency.mean()[0] * sev,
                                                           rel=1e-12)
    assert post.severity.n_components == 3
    draws = post.sample_sync(50_000)
    assert draws.mean() == pytest.approx(post.mean()[0], rel=0.02)
    lo, hi = post.credible_interval(0.9)[0]
    assert lo < post.mean()[0] < hi
    with pytest.raises(bw.DataError, match="aggregates"):
        w.run_inference_sync("compound-beta-lognormalmixture",
                             {"users": 10, "converters": 2, "mean_log": 1.0, "sd_log": 1.0})


# ------------------------------------------------------------------------------------------
# Degenerate data
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("scale", [1e-6, 1e9])
def test_tiny_and_huge_scales(w, scale):
    x = bimodal(600, seed=11)
    ref = fit(w, "normal-mixture", x, components=2).posterior
    post = fit(w, "normal-mixture", x * scale, components=2).posterior
    np.testing.assert_allclose(post.mean(), ref.mean() * scale, rtol=1e-6)
    np.testing.assert_allclose(post.weights()[0], ref.weights()[0], rtol=1e-6)
    pos = fit(w, "lognormal-mixture", np.exp(x / 5) * scale, components=2).posterior
    np.testing.assert_allclose(pos.weights()[0], [0.4, 0.6], atol=0.06)


@pytest.mark.parametrize("n,K", [(1, 2), (2, 3), (3, 8), (5, 8)])
def test_fewer_values_than_components(w, n, K):
    x = np.arange(1.0, n + 1.0)
    res = fit(w, "normal-mixture", x, components=K)
    assert 1 <= res.posterior.n_components <= n
    if n >= 5:
        res = fit(w, "lognormal-mixture", x, components=K)
        assert 1 <= res.posterior.n_components <= n


def test_lognormal_mixture_with_one_value(w):
    res = fit(w, "lognormal-mixture", np.array([3.0]), components=2)
    post = res.posterior
    assert post.n_components == 1
    assert np.isfinite(post.mean()).all() and np.isfinite(post.credible_interval(0.9)).all()
    lo, hi = post.credible_interval(0.95)[0]
    assert lo < 3.0 < hi


# ------------------------------------------------------------------------------------------
# Cancellation, timeout, progress
# ------------------------------------------------------------------------------------------

BIG = np.random.default_rng(12).normal(0, 1, 1_000_000)


def one_iteration_seconds():
    with bw.InferenceWorker(threads=2, seed=1) as ww:
        t = time.perf_counter()
        res = ww.run_inference_sync("normal-mixture", BIG, components=3, tolerance=0,
                                    max_iterations=5)
        return (time.perf_counter() - t) / (res.diagnostics.iterations + 1)


def test_timeout_stops_a_long_fit():
    it = one_iteration_seconds()
    with bw.InferenceWorker(threads=2, seed=1) as ww:
        t = time.perf_counter()
        with pytest.raises(TimeoutError):
            ww.run_inference_sync("normal-mixture", BIG, components=3, tolerance=0,
                                  max_iterations=1_000_000, timeout=0.3)
        elapsed = time.perf_counter() - t
        assert elapsed < 0.3 + 3 * it + 0.2, (elapsed, it)
        assert ww.stats()["live_jobs"] == 0


def test_cancel_stops_a_long_fit():
    it = one_iteration_seconds()

    async def go(ww):
        task = asyncio.ensure_future(ww.run_inference("normal-mixture", BIG, components=3,
                                                      tolerance=0, max_iterations=1_000_000,
                                                      timeout=100))
        await asyncio.sleep(0.3)
        task.cancel()
        t = time.perf_counter()
        with pytest.raises(asyncio.CancelledError):
            await task
        while ww.stats()["live_jobs"]:
            await asyncio.sleep(0.001)
        return time.perf_counter() - t

    with bw.InferenceWorker(threads=2, seed=1) as ww:
        assert asyncio.run(go(ww)) < 3 * it + 0.2


def test_progress_reports_iterations_and_elbo():
    seen = []
    with bw.InferenceWorker(threads=2, seed=1) as ww:
        res = ww.run_inference_sync("normal-mixture", BIG[:300_000], components=3,
                                    tolerance=0, max_iterations=40, on_progress=seen.append)
        FITS.append(res)
    mid = [p for p in seen if p.elbo is not None and p.fraction < 1]
    assert mid, seen
    assert all(p.total_iterations == 41 for p in seen)
    its = [p.iteration for p in mid]
    assert its == sorted(its) and its[-1] > 1
    assert seen[-1].fraction == 1.0 and seen[-1].elbo == res.diagnostics["elbo"]
    assert bw.Progress("fitting", 0.5, 1, 2).elbo is None


# ------------------------------------------------------------------------------------------
# Options and errors
# ------------------------------------------------------------------------------------------

def test_option_errors(w):
    x = bimodal(50)
    with pytest.raises(bw.ModelError, match=r"unknown option 'component' for model "
                                            r"'normal-mixture'.*'components'"):
        w.run_inference_sync("normal-mixture", x, component=2)
    with pytest.raises(bw.ModelError, match=r"options\['components'\] = 9"):
        w.run_inference_sync("normal-mixture", x, components=9)
    with pytest.raises(bw.ModelError, match=r"options\['components'\] = 'many'"):
        w.run_inference_sync("normal-mixture", x, components="many")
    with pytest.raises(bw.ModelError, match=r"max_components"):
        w.run_inference_sync("normal-mixture", x, components=2, max_components=3)
    with pytest.raises(bw.ModelError, match=r"options\['tolerance'\]"):
        w.run_inference_sync("normal-mixture", x, tolerance=-1)
    with pytest.raises(bw.ModelError, match=r"options\['max_iterations'\]"):
        w.run_inference_sync("normal-mixture", x, max_iterations=0)
    with pytest.raises(bw.ModelError, match="takes no prior"):
        w.run_inference_sync("normal-mixture", x, prior={"mu": 0})
    with pytest.raises(bw.ModelError, match="unknown option 'components' for model 'normal'"):
        w.run_inference_sync("normal", x, components=2)
    with pytest.raises(bw.DataError, match=r"values\[3\] = -1.0 must be positive"):
        w.run_inference_sync("lognormal-mixture", [1.0, 2.0, 3.0, -1.0])
    with pytest.raises(bw.DataError, match=r"values\[1\] = nan is not finite"):
        w.run_inference_sync("normal-mixture", [1.0, float("nan")])


def test_dispose_and_stats(w):
    post = fit(w, "normal-mixture", bimodal(100), components=2).posterior
    assert any(i["model_type"] == "normal-mixture" for i in w.stats()["items"])
    post.dispose_sync()
    with pytest.raises(bw.DisposedError):
        post.mean()
    with pytest.raises(bw.DisposedError):
        post.sample_predictive_sync(10)


def test_zz_every_elbo_history_is_monotone():
    assert len(FITS) > 15
    for res in FITS:
        h = np.asarray(res.diagnostics["elbo_history"])
        assert h.size >= 1
        drops = np.diff(h)
        assert np.all(drops >= -1e-10 * np.abs(h[1:])), (res.diagnostics.model_type, drops.min())
