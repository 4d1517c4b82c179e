"""dirichlet-multinomial through the public API: exact Beta marginals against scipy, Dirichlet
draws (moments within their sampling error, reproducible for any thread count and batch
split), the data forms and bad input."""

import asyncio

import numpy as np
import pytest
from scipy import stats

import bayesworker as bw

MODEL = "dirichlet-multinomial"


@pytest.fixture(scope="module")
def worker():
    with bw.InferenceWorker(threads=2, seed=99) as w:
        yield w


@pytest.mark.parametrize("counts, alpha", [
    ([12, 3, 0], None),
    ([5000, 2, 1, 0], None),
    ([0, 0], [0.5, 0.5]),
    ([3, 9, 27, 81, 243], [2.0, 0.1, 1.0, 7.5, 1.0]),
])
def test_marginals_are_the_exact_betas(worker, counts, alpha):
    prior = None if alpha is None else {"alpha": alpha}
    post = worker.run_inference_sync(MODEL, counts, prior=prior).posterior
    a = np.asarray(counts, float) + (1.0 if alpha is None else np.asarray(alpha))
    marg = [stats.beta(ai, a.sum() - ai) for ai in a]
    assert post.mean().shape == (len(a),) and post.credible_interval().shape == (len(a), 2)
    np.testing.assert_allclose(post.mean(), [m.mean() for m in marg], rtol=1e-13)
    np.testing.assert_allclose(post.variance(), [m.var() for m in marg], rtol=1e-12)
    for level in (0.95, 0.8, 0.5, 0.999):     # cached levels and levels computed on demand
        lo, hi = (1 - level) / 2, (1 + level) / 2
        want = np.array([[m.ppf(lo), m.ppf(hi)] for m in marg])
        np.testing.assert_allclose(post.credible_interval(level), want, rtol=1e-9, atol=1e-300)
    assert post.parameters == {"alpha": a.tolist()}


def test_draws_are_dirichlet_vectors(worker):
    a = np.array([13.0, 4.0, 1.0])
    post = worker.run_inference_sync(MODEL, {"red": 12, "green": 3, "blue": 0}).posterior
    n = 200_000
    draws = post.sample_sync(n)
    assert draws.shape == (n, 3) and draws.dtype == np.float64
    assert np.all(draws > 0) and np.allclose(draws.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    mean = a / a.sum()
    var = mean * (1 - mean) / (a.sum() + 1)
    # each column's sample mean is within 5 standard errors of the exact mean (fixed seed)
    assert np.all(np.abs(draws.mean(axis=0) - mean) < 5 * np.sqrt(var / n))
    # and the sample variance within 5 standard errors of the exact variance (the standard
    # error of a variance estimate from n draws is about var * sqrt(2 / n) for near-normal
    # marginals; the skewed third column gets a factor 3 of room)
    assert np.all(np.abs(draws.var(axis=0) - var) < 15 * var * np.sqrt(2 / n))
    # the covariance of two shares is -a_i a_j / (a0^2 (a0 + 1))
    cov = np.cov(draws[:, 0], draws[:, 1])[0, 1]
    want = -a[0] * a[1] / (a.sum() ** 2 * (a.sum() + 1))
    assert abs(cov - want) < 5 * np.sqrt(var[0] * var[1] / n)


@pytest.mark.parametrize("threads", [0, 1, 2])
def test_draws_are_reproducible_for_any_thread_count_and_split(threads):
    def run(threads, split):
        with bw.InferenceWorker(threads=threads, seed=7) as w:
            post = w.run_inference_sync(MODEL, [30, 10, 5, 1]).posterior
            if split:
                return np.concatenate(list(post.sample_batched_sync(50_000, 7_777)))
            return np.concatenate([post.sample_sync(20_000), post.sample_sync(30_000)])
    ref = run(2, False)
    assert ref.shape == (50_000, 4)
    assert np.array_equal(run(threads, False), ref)
    assert np.array_equal(run(threads, True), ref)


def test_async_twins_agree():
    async def main():
        async with bw.InferenceWorker(threads=2, seed=5) as w:
            post = (await w.run_inference(MODEL, ["a", "b", "b", "c"])).posterior
            assert post.categories == ("a", "b", "c")
            draws = await post.sample(3000)
            batches = [b async for b in post.sample_batched(3000, 1000)]
            assert draws.shape == (3000, 3) and [b.shape for b in batches] == [(1000, 3)] * 3
            ci = await post.credible_interval_async(0.7)
            np.testing.assert_array_equal(ci, post.credible_interval(0.7))
            return draws, batches

    draws, batches = asyncio.run(main())
    with bw.InferenceWorker(threads=0, seed=5) as w:
        again = w.run_inference_sync(MODEL, ["a", "b", "b", "c"]).posterior
        np.testing.assert_array_equal(again.sample_sync(6000), np.concatenate([draws, *batches]))


@pytest.mark.parametrize("data, categories, counts", [
    ({"red": 12, "green": 3, "blue": 0}, ("red", "green", "blue"), [12, 3, 0]),
    ([4, 0, 1], (0, 1, 2), [4, 0, 1]),
    (np.array(["y", "x", "y"]), ("x", "y"), [1, 2]),
    ({"labels": [3, 1, 3, 3]}, (1, 3), [1, 3]),
])
def test_data_forms(worker, data, categories, counts):
    res = worker.run_inference_sync(MODEL, data)
    assert res.posterior.categories == categories
    assert res.diagnostics.details["categories"] == list(categories)
    assert list(res.diagnostics.details["sufficient_statistics"]["counts"].values()) == counts
    np.testing.assert_allclose(res.posterior.parameters["alpha"], np.add(counts, 1.0))


@pytest.mark.parametrize("data, prior, error, pattern", [
    ([3, -1, 2], None, bw.DataError, r"data\[1\] = -1(\.0)? must be non-negative"),
    ([3, 1.5, 2], None, bw.DataError, r"data\[1\] = 1.5 .*integer"),
    ([3, np.nan], None, bw.DataError, r"data\[1\] = nan is not finite"),
    ([3, 1, 2], {"alpha": [1, 1]}, bw.ModelError, r"2 entries but the data have 3 categories"),
    ([3, 1], {"alpha": [1, 0]}, bw.ModelError, r"prior\['alpha'\]\[1\] = 0.0 must be positive"),
    (np.ones(5000), None, bw.ModelError, r"5000.*categor|categor.*5000"),
])
def test_bad_input_is_refused_clearly(worker, data, prior, error, pattern):
    before = worker.stats()["posteriors"]
    with pytest.raises(error, match=pattern):
        worker.run_inference_sync(MODEL, data, prior=prior)
    assert worker.stats()["posteriors"] == before
