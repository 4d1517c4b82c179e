"""Mixture models through the public API: recovery, choice of K, ELBO monotonicity,
reproducibility, cancellation, progress, degenerate data, predictive draws, options.

Summaries are checked against independent references (scipy, tests/oracles.py, hand
computations of the conjugate update); statistical checks of draws use fixed seeds and
tolerances of a few standard errors of the sampling error, each derived where it is used.
"""

import asyncio
import gc
import math
import tracemalloc

import numpy as np
import pytest
from scipy import stats

import bayesworker as bw
from oracles import dirichlet_weighted_sum, lnmean_truncated_moments
from support import (ENDLESS_DATA, endless_fit, endless_fit_sync, guarded, quiet, run, until,
                     wait_until)


def fit(w, model, data, **kw):
    """A fit whose summaries are never NaN and whose ELBO history never decreases."""
    res = w.run_inference_sync(model, data, **kw)
    check_no_nan(res.posterior)
    check_elbo_monotone(res)
    return res


def check_elbo_monotone(res) -> None:
    """Every accepted step raises the ELBO (README, "Mixture models"); equal up to rounding."""
    h = np.asarray(res.diagnostics["elbo_history"])
    assert h.size >= 1
    drops = np.diff(h)
    assert np.all(drops >= -1e-10 * np.abs(h[1:])), (res.diagnostics.model_type, drops.min())


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


def oracle_components(post):
    """Per reported component of a lognormal mixture: its truncated data-scale mean and
    variance by quadrature (tests/oracles.py), from its normal-inverse-gamma parameters."""
    comps = post.components()
    moments = np.array([lnmean_truncated_moments(c["location"], c["kappa"], c["a"], c["b"])
                        for c in comps])
    return np.array([c["weight_alpha"] for c in comps]), moments[:, 0], moments[:, 1]


def test_mixture_mean_against_an_independent_closed_form(w):
    res = fit(w, "lognormal-mixture", trimodal_lognormal(), components=3)
    post = res.posterior
    assert res.diagnostics["dropped_components"] == []      # the weights are Dirichlet(alphas)
    alphas, means, variances = oracle_components(post)
    np.testing.assert_allclose(post.mean(), means, rtol=1e-9)
    np.testing.assert_allclose(post.variance(), variances, rtol=1e-7)
    want_mean, want_var = dirichlet_weighted_sum(alphas, means, variances)
    mm = post.mixture_mean()
    assert mm["mean"] == pytest.approx(want_mean, rel=1e-9)
    assert mm["variance"] == pytest.approx(want_var, rel=1e-7)
    n = 200_000
    draws = post.sample_sync(n)
    # The mean of n draws is within 5 standard errors sqrt(var / n) of the exact mean; the
    # draws are of the untruncated quantity, whose mean exceeds the truncated one by the
    # top 1e-4 of the mass (a few sd times 1e-4, well inside the 1e-3 sd allowed for it).
    sd = math.sqrt(want_var)
    assert abs(draws.mean() - want_mean) < 5 * sd / math.sqrt(n) + 1e-3 * sd
    # The sample variance is within 6 of its standard errors sqrt((m4 - s^4) / n) (m4: the
    # draws' fourth central moment), plus the same truncation allowance.
    c = draws - draws.mean()
    s2, m4 = (c ** 2).mean(), (c ** 4).mean()
    assert abs(s2 - want_var) < 6 * math.sqrt((m4 - s2 ** 2) / n) + 2e-3 * want_var
    # The interval is the empirical quantiles of 2**17 seeded draws (README): the fraction
    # of these n independent draws below each endpoint is its tail probability q within 5
    # binomial standard errors of both samples, sqrt(q (1 - q) (1 / n + 1 / 2**17)).
    for level in (0.95, 0.7):
        lo, hi = post.mixture_mean(level)["credible_interval"]
        for q, x in (((1 - level) / 2, lo), ((1 + level) / 2, hi)):
            se = math.sqrt(q * (1 - q) * (1 / n + 1 / 2**17))
            assert abs(np.mean(draws <= x) - q) < 5 * se, (level, q)


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


def test_async_draws_continue_their_streams_like_one_sync_call():
    """sample, sample_batched and sample_predictive, async and interleaved, continue their
    own streams: together they equal one sync call per stream on a twin worker."""
    async def go():
        async with bw.InferenceWorker(threads=2, seed=4) as ww:
            post = (await ww.run_inference("normal-mixture", bimodal(), components=2)).posterior
            a1 = await post.sample(30_000)
            p1 = await post.sample_predictive(30_000)
            a2 = await post.sample(2_000)              # a request on the calling thread
            a3 = np.concatenate([b async for b in post.sample_batched(30_000, 7_000)])
            p2 = np.concatenate([b async for b in post.sample_predictive_batched(20_000,
                                                                                 6_000)])
            p3 = await post.sample_predictive(1_000)
            return np.concatenate([a1, a2, a3]), np.concatenate([p1, p2, p3])

    means, preds = run(go())
    with bw.InferenceWorker(threads=0, seed=4) as twin:
        post = twin.run_inference_sync("normal-mixture", bimodal(), components=2).posterior
        np.testing.assert_array_equal(means, post.sample_sync(62_000))
        np.testing.assert_array_equal(preds, post.sample_predictive_sync(51_000))
    assert np.isfinite(means).all() and np.isfinite(preds).all()
    assert not np.array_equal(means[:1000], preds[:1000])


def draws_with(threads):
    with bw.InferenceWorker(threads=threads, seed=99) as ww:
        res = ww.run_inference_sync("lognormal-mixture", trimodal_lognormal(), components=3)
        post = res.posterior
        return (post.mean().copy(), post.weights()[0].copy(), res.diagnostics["elbo_history"],
                post.sample_sync(50_000), post.sample_predictive_sync(3000),
                post.mixture_mean()["credible_interval"].copy(),
                post.mixture_mean(0.7)["credible_interval"].copy())   # computed on demand


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
    assert post.severity.n_components == 3 and res.diagnostics["dropped_components"] == []
    # the frequency: Beta(2 + k, 2 + users - k), by hand
    k = int(conv.sum())
    rate = stats.beta(2 + k, 2 + 5000 - k)
    assert post.frequency.mean()[0] == pytest.approx(rate.mean(), rel=1e-12)
    assert post.frequency.variance()[0] == pytest.approx(rate.var(), rel=1e-9)
    np.testing.assert_allclose(post.frequency.credible_interval(0.9)[0],
                               rate.ppf([0.05, 0.95]), rtol=1e-9)
    # the severity: the mixture mean M from the oracle's component moments; revenue p * M
    # with p and M independent: E = E[p] E[M], Var = E[p^2] E[M^2] - E^2
    m_mean, m_var = dirichlet_weighted_sum(*oracle_components(post.severity))
    assert post.severity.mixture_mean()["mean"] == pytest.approx(m_mean, rel=1e-9)
    want = rate.mean() * m_mean
    want_var = (rate.var() + rate.mean() ** 2) * (m_var + m_mean ** 2) - want ** 2
    assert post.expected_value_per_user() == pytest.approx(want, rel=1e-9)
    assert post.mean()[0] == pytest.approx(want, rel=1e-9)
    assert post.variance()[0] == pytest.approx(want_var, rel=1e-7)
    # draws: the mean of n within 5 standard errors (plus the truncation allowance above)
    n = 50_000
    draws = post.sample_sync(n)
    sd = math.sqrt(want_var)
    assert abs(draws.mean() - want) < 5 * sd / math.sqrt(n) + 1e-3 * sd
    lo, hi = post.credible_interval(0.9)[0]
    assert lo < want < hi
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


#: The prior of every component on the standardised values (README, "Mixture models").
M0, KAPPA0, A0, B0 = 0.0, 1e-3, 0.5, 0.05
MAD_TO_SD = 1.482602218505602          # 1 / Phi^-1(3/4): the normal-consistent MAD


@pytest.mark.parametrize("model", ["normal-mixture", "lognormal-mixture"])
@pytest.mark.parametrize("n,K", [(1, 2), (2, 3), (3, 8), (5, 8)])
def test_fewer_values_than_components(w, model, n, K):
    """n < K values: every value's responsibility is accounted for, no component is made of
    less than one value, and the one component that takes them all is the conjugate update
    of the stated prior, computed here by hand on the standardised values."""
    x = np.array([1.0, 2.0, 3.0, 4.0, 7.0])[:n]
    res = fit(w, model, x, components=K)
    post, d = res.posterior, res.diagnostics
    comps = post.components()
    reported = [c["responsibility"] for c in comps]
    dropped = [c["responsibility"] for c in d["dropped_components"]]
    assert len(reported) + len(dropped) == K
    assert sum(reported) + sum(dropped) == pytest.approx(n, rel=1e-9)
    assert all(r >= 1 - 1e-9 for r in reported) and all(r < 1 for r in dropped)
    assert post.n_components == 1 and reported[0] == pytest.approx(n, rel=1e-9)
    # the hand computation on y = (x' - median) / (MAD_TO_SD * MAD), x' = x or log x (one
    # value has no MAD: mixture.h falls back to another scale, read from the diagnostics)
    xs = np.log(x) if model == "lognormal-mixture" else x
    loc = float(np.median(xs))
    mad = float(np.median(np.abs(xs - loc)))
    std = d["standardisation"]
    assert std["loc"] == pytest.approx(loc, rel=1e-12, abs=1e-15)
    if mad > 0:
        assert std["scale"] == pytest.approx(MAD_TO_SD * mad, rel=1e-12)
    scale = std["scale"]
    y = (xs - loc) / scale
    ybar = y.mean()
    kappa = KAPPA0 + n
    m = (KAPPA0 * M0 + n * ybar) / kappa
    b = B0 + ((y - ybar) ** 2).sum() / 2 + KAPPA0 * n * (ybar - M0) ** 2 / (2 * kappa)
    (c,) = comps
    assert c["kappa"] == pytest.approx(kappa, rel=1e-9)
    assert c["a"] == pytest.approx(A0 + n / 2, rel=1e-9)
    assert c["location"] == pytest.approx(loc + scale * m, rel=1e-9, abs=1e-12)
    assert c["b"] == pytest.approx(b * scale ** 2, rel=1e-9)
    # one component: the mixture mean is that component's mean; its weight the Beta mean
    # of its alpha against every fitted alpha (dropped ones included)
    assert post.mixture_mean()["mean"] == pytest.approx(post.mean()[0], rel=1e-12)
    alphas = [c["weight_alpha"]] + [e["weight_alpha"] for e in d["dropped_components"]]
    assert post.weights()[0][0] == pytest.approx(alphas[0] / sum(alphas), rel=1e-12)
    if model == "normal-mixture":
        assert post.mean()[0] == pytest.approx(c["location"], rel=1e-12)


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

def test_timeout_stops_a_long_fit():
    """An endless fit (support.py) with a tiny timeout: it can only end by the timeout."""
    with bw.InferenceWorker(threads=2, seed=1) as ww:
        with pytest.raises(TimeoutError, match="timed out"):
            endless_fit_sync(ww, timeout=0.05)
        wait_until(lambda: quiet(ww), "the timed-out fit to stop")
        with pytest.raises(TimeoutError, match="timed out"):
            run(guarded(endless_fit(ww, timeout=0.05), "an endless fit's timeout"))
        wait_until(lambda: quiet(ww), "the timed-out fit to stop")
        assert ww.stats()["posteriors"] == 0 and isinstance(ww.error, TimeoutError)
        assert fit(ww, "normal-mixture", bimodal(), components=2).posterior.n_components == 2


def test_cancel_stops_a_long_fit():
    async def go(ww):
        task = asyncio.ensure_future(endless_fit(ww))
        await until(lambda: ww.progress.iteration >= 2, "the fit to iterate")
        assert ww.is_running and ww.progress.stage == "fitting"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # only the cancellation can stop this fit
        await until(lambda: quiet(ww), "the cancelled fit to stop")
        return ww.stats()["posteriors"], ww.is_running

    with bw.InferenceWorker(threads=2, seed=1) as ww:
        assert run(go(ww)) == (0, False)


def test_progress_reports_iterations_and_elbo():
    """What a fit's reports always show, however fast it is: a start (fraction 0) and an end
    (fraction 1, the last iteration, the final ELBO); in between, whatever reports arrive
    (how many depends on the machine) have monotone iterations and a rising ELBO."""
    seen = []
    with bw.InferenceWorker(threads=2, seed=1) as ww:
        res = ww.run_inference_sync("normal-mixture", ENDLESS_DATA[:300_000], components=3,
                                    tolerance=0, max_iterations=40, on_progress=seen.append)
        after = ww.progress
    check_elbo_monotone(res)
    first, last = seen[0], seen[-1]
    assert first.stage == "fitting" and first.fraction == 0.0 and first.iteration == 0
    assert last.stage == "fitting" and last.fraction == 1.0
    assert last.iteration == last.total_iterations == 41     # one K: 1 + max_iterations
    assert all(p.total_iterations == 41 for p in seen)
    assert last.elbo == res.diagnostics["elbo"]
    its = [p.iteration for p in seen]
    assert its == sorted(its)
    assert all(0.0 <= p.fraction <= 1.0 for p in seen)
    elbos = np.array([p.elbo for p in seen if p.elbo is not None])
    assert np.all(np.diff(elbos) >= -1e-10 * np.abs(elbos[1:])), elbos
    assert after == last
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


ELBO_CASES = {
    "bimodal K=2": ("normal-mixture", lambda: bimodal(), {"components": 2}),
    "bimodal auto": ("normal-mixture", lambda: bimodal(), {"components": "auto"}),
    "unimodal K=2": ("normal-mixture", lambda: np.random.default_rng(3).normal(0, 1, 1000),
                     {"components": 2}),
    "trimodal lognormal K=3": ("lognormal-mixture", lambda: trimodal_lognormal(),
                               {"components": 3}),
    "lognormal K=8 on 3 modes": ("lognormal-mixture", lambda: trimodal_lognormal(),
                                 {"components": 8}),
    "identical values": ("normal-mixture", lambda: np.full(100, 42.5), {"components": 2}),
    "huge scale": ("normal-mixture", lambda: bimodal(600, seed=11) * 1e9, {"components": 2}),
    "tiny scale": ("lognormal-mixture", lambda: np.exp(bimodal(600, seed=11) / 5) * 1e-6,
                   {"components": 2}),
    "no convergence test": ("normal-mixture", lambda: ENDLESS_DATA[:20_000],
                            {"components": 8, "tolerance": 0, "max_iterations": 300}),
    "compound": ("compound-beta-lognormalmixture",
                 lambda: {"converted": np.arange(2000) % 7 == 0,
                          "value": np.where(np.arange(2000) % 7 == 0,
                                            trimodal_lognormal(2000, seed=9), 0.0)},
                 {"components": "auto", "max_components": 4}),
}


@pytest.mark.parametrize("case", sorted(ELBO_CASES))
def test_every_elbo_history_is_monotone(case):
    """Independent of every other test: each case makes its own fit on its own worker."""
    model, data, options = ELBO_CASES[case]
    with bw.InferenceWorker(threads=2, seed=7) as ww:
        res = ww.run_inference_sync(model, data(), **options)
    assert len(res.diagnostics["elbo_history"]) >= 3      # steps to compare
    check_elbo_monotone(res)


# ------------------------------------------------------------------------------------------
# Predictive draws in batches
# ------------------------------------------------------------------------------------------

def predictive_twins(seed=21):
    """Two workers with the same seed and the same fit: the same predictive stream."""
    pair = [bw.InferenceWorker(threads=2, seed=seed) for _ in range(2)]
    posts = [ww.run_inference_sync("lognormal-mixture", trimodal_lognormal(), components=3
                                   ).posterior for ww in pair]
    return pair, posts


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("n,batch", [(100_000, 7_000), (70_000, 70_000), (5, 2),
                                     (30_000, 100_000), (0, 10)])
def test_predictive_batches_equal_one_call(mode, n, batch):
    """sample_predictive_batched and its twin: the batches (each at most batch_size, all but
    the last exactly that) concatenate to one sample_predictive(n) of a fresh worker with the
    same seed; the stream then continues after the n reserved positions."""
    (w1, w2), (p1, p2) = predictive_twins()
    try:
        if mode == "sync":
            batches = list(p1.sample_predictive_batched_sync(n, batch))
        else:
            async def collect():
                return [b async for b in p1.sample_predictive_batched(n, batch)]
            batches = run(collect())
        sizes = [b.size for b in batches]
        assert len(sizes) == -(-n // batch)
        assert all(s == batch for s in sizes[:-1]) and all(0 < s <= batch for s in sizes)
        assert sum(sizes) == n
        whole = p2.sample_predictive_sync(n + 500)
        got = np.concatenate(batches) if batches else np.empty(0)
        np.testing.assert_array_equal(got, whole[:n])
        np.testing.assert_array_equal(p1.sample_predictive_sync(500), whole[n:])
        # the posterior's own draws (the mixture mean) are a stream of their own
        np.testing.assert_array_equal(p1.sample_sync(100), p2.sample_sync(100))
    finally:
        w1.close()
        w2.close()


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_predictive_batches_keep_memory_bounded(mode):
    """n = 2,000,000 draws (16 MB) in batches of 20,000: while the batches are consumed the
    traced memory peaks at a few batches (the current one and the one drawn ahead), not n."""
    n, batch = 2_000_000, 20_000
    (w1, w2), (p1, _) = predictive_twins()
    w2.close()
    count = 0
    tracemalloc.start()
    try:
        gc.collect()
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        if mode == "sync":
            for b in p1.sample_predictive_batched_sync(n, batch):
                count += b.size
        else:
            async def consume():
                total = 0
                async for b in p1.sample_predictive_batched(n, batch):
                    total += b.size
                return total
            count = run(consume())
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
        w1.close()
    assert count == n
    assert peak < 8 * batch * 8, f"peak {peak} bytes for batches of {batch * 8} bytes"
