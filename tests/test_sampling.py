"""Draws: reproducibility across threads, batches, calls and every bit of the seed;
correctness by KS tests and exact quantiles."""

import asyncio
import time

import numpy as np
import pytest
from scipy import stats

import bayesworker as bw
from support import BIMODAL, quiet, run, until

MODELS = {
    "beta-binomial": {"successes": 65, "trials": 1000},
    "normal": np.random.default_rng(1).normal(10, 2, 200),
    "lognormal": np.random.default_rng(2).lognormal(2, 0.5, 200),
    "exponential": np.random.default_rng(3).exponential(5, 200),
    "poisson": np.random.default_rng(4).poisson(2.5, 200),
    "compound-beta-lognormal": {"converted": [1, 0, 1, 1, 0, 0, 1],
                                "value": [10.0, 0, 12.5, 30.0, 0, 0, 8.0]},
    "compound-beta-exponential": {"converted": [1, 0, 1, 1, 0, 0, 1],
                                  "value": [10.0, 0, 12.5, 30.0, 0, 0, 8.0]},
}


def draws_for(threads, model, seed=2024, sizes=(5000,)):
    with bw.InferenceWorker(threads=threads, seed=seed) as w:
        w.run_inference_sync("beta-binomial", {"successes": 1, "trials": 2})  # id 1
        post = w.run_inference_sync(model, MODELS[model]).posterior           # id 2
        return np.concatenate([post.sample_sync(n) for n in sizes])


@pytest.mark.parametrize("model", sorted(MODELS))
def test_same_seed_same_draws_any_thread_count(model):
    ref = draws_for(2, model)
    assert np.isfinite(ref).all()
    for threads in (0, 1, 3):
        np.testing.assert_array_equal(draws_for(threads, model), ref)
    # sample(n) then sample(m) continues the stream
    np.testing.assert_array_equal(draws_for(2, model, sizes=(1234, 3766)), ref)
    assert not np.array_equal(draws_for(2, model, seed=2025), ref)


def test_batched_equals_one_call_for_any_batch_size():
    # Batch sizes across every power of two up to 2**16 and odd ones: whatever the core's
    # block size (a power of two), batches start on and off block boundaries.
    big = 3 * 2**16 + 17
    with bw.InferenceWorker(threads=2, seed=9) as w:
        post = w.run_inference_sync("lognormal", MODELS["lognormal"]).posterior
        whole = post.sample_sync(big)
    for bs, n in ((1, 3000), (1000, big), (4096, big), (2**15, big), (2**16, big),
                  (100_003, big), (big, big), (big + 5, big), (7, 10)):
        with bw.InferenceWorker(threads=2, seed=9) as w:
            post = w.run_inference_sync("lognormal", MODELS["lognormal"]).posterior
            parts = list(post.sample_batched_sync(n, bs))
            assert all(p.size <= bs for p in parts)
            assert sum(p.size for p in parts) == n
            np.testing.assert_array_equal(np.concatenate(parts), whole[:n])


def test_async_batched_equals_sample_and_continues_stream():
    async def go(batched):
        async with bw.InferenceWorker(threads=2, seed=10) as w:
            post = (await w.run_inference("beta-binomial", MODELS["beta-binomial"])).posterior
            if batched:
                first = [b async for b in post.sample_batched(100_000, 7_000)]
                assert [b.size for b in first] == [7_000] * 14 + [2_000]
                first = np.concatenate(first)
            else:
                first = await post.sample(100_000)
            return first, await post.sample(10)

    a, tail_a = run(go(True))
    b, tail_b = run(go(False))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(tail_a, tail_b)


def test_abandoned_async_batches_are_cancelled():
    """Closing a batched generator cancels the batch it drew ahead.

    On one thread, batches 1 and 2 are drawn together; once both are done, taking batch 2
    sends batch 3 ahead, alone, and the generator is closed at once. A cancelled batch 3
    costs a block or so; a batch 3 left to run costs a whole batch. Counted in CPU time of
    this process (not wall time: other processes do not count), against the same run's
    cost of batches 1 and 2, with a factor of 4 to spare. The batch is large (16M draws) so
    that the fixed CPU of closing (the polling below, the wake-ups: about 0.03 s under ASan)
    stays far below a batch's cost on any machine: a cancelled batch costs a constant, one
    left to run grows with the batch.
    """
    batch = 16_000_000

    async def go():
        async with bw.InferenceWorker(threads=1, seed=10) as w:
            post = (await w.run_inference("beta-binomial", MODELS["beta-binomial"])).posterior
            gen = post.sample_batched(3 * batch, batch)
            c0 = time.process_time()
            first = await gen.__anext__()
            await until(lambda: w.stats()["live_jobs"] == 0, "batch 2 to be drawn")
            two = time.process_time() - c0
            second = await gen.__anext__()          # batch 3 goes ahead
            c1 = time.process_time()
            await gen.aclose()
            await until(lambda: quiet(w), "the abandoned batch to stop")
            abandoned = time.process_time() - c1
            return first, second, two, abandoned

    first, second, two, abandoned = run(go())
    assert first.shape == second.shape == (batch,)
    assert abandoned < 0.25 * (two / 2), (
        f"closing the generator cost {abandoned:.3f} s of CPU, a batch costs {two / 2:.3f} s:"
        f" the batch drawn ahead was not cancelled")


def test_every_bit_of_the_seed_changes_the_draws():
    """The seed is 64 bits: seeds that differ in any bit, the high 32 included, give other
    draws (and fits: a mixture's initialisation is keyed by it too); the same seed the same."""
    def draws(seed, model, data, **kw):
        with bw.InferenceWorker(threads=2, seed=seed) as w:
            post = w.run_inference_sync(model, data, **kw).posterior
            out = [post.sample_sync(5000)]
            if hasattr(post, "sample_predictive_sync"):
                out.append(post.sample_predictive_sync(5000))
            return np.concatenate(out)

    cases = [("beta-binomial", MODELS["beta-binomial"], {}),
             ("compound-beta-lognormal", MODELS["compound-beta-lognormal"], {}),
             ("normal-mixture", BIMODAL, {"components": 2})]
    for model, data, kw in cases:
        ref = draws(7, model, data, **kw)
        np.testing.assert_array_equal(draws(7, model, data, **kw), ref)
        for bit in (0, 1, 31, 32, 33, 47, 63):
            other = draws(7 ^ (1 << bit), model, data, **kw)
            assert not np.array_equal(other, ref), (model, bit)
            # not a shifted copy of the same stream either
            assert not np.isin(other[:100], ref).any(), (model, bit)
        assert not np.array_equal(draws(7 + 2**32, model, data, **kw), ref), model


def ks(draws, cdf):
    return stats.kstest(draws, cdf).pvalue


def test_draws_follow_the_exact_posteriors():
    with bw.InferenceWorker(threads=2, seed=31337) as w:
        beta = w.run_inference_sync("beta-binomial", MODELS["beta-binomial"]).posterior
        d = beta.sample_sync(200_000)
        assert ks(d, stats.beta(66, 936).cdf) > 1e-3
        assert ks(d, stats.beta(67, 936).cdf) < 1e-6        # the test has teeth

        x = MODELS["normal"]
        norm = w.run_inference_sync("normal", x).posterior
        p = norm.parameters
        t = stats.t(2 * p["alpha"], loc=p["mu"],
                    scale=np.sqrt(p["beta"] / (p["alpha"] * p["kappa"])))
        d = norm.sample_sync(200_000)
        assert ks(d, t.cdf) > 1e-3
        assert ks(d + 0.02 * t.std(), t.cdf) < 1e-6

        expo = w.run_inference_sync("exponential", MODELS["exponential"]).posterior
        p = expo.parameters
        assert ks(expo.sample_sync(200_000), stats.invgamma(p["alpha"], scale=p["beta"]).cdf) > 1e-3

        pois = w.run_inference_sync("poisson", MODELS["poisson"]).posterior
        p = pois.parameters
        rate = stats.gamma(p["alpha"], scale=1 / p["beta"])
        assert ks(pois.sample_sync(200_000), rate.cdf) > 1e-3


def test_lognormal_and_compound_draws_match_their_exact_cdf_at_quantiles():
    # The exact quantiles are known to 1e-9: the fraction of draws below each should be
    # its level within 5 binomial standard errors.
    n = 400_000
    with bw.InferenceWorker(threads=2, seed=4242) as w:
        for model in ("lognormal", "compound-beta-lognormal", "compound-beta-exponential"):
            post = w.run_inference_sync(model, MODELS[model]).posterior
            d = post.sample_sync(n)
            for level in (0.8, 0.9, 0.95, 0.99):
                lo, hi = post.credible_interval(level)[0]
                for q, x in (((1 - level) / 2, lo), ((1 + level) / 2, hi)):
                    frac = np.mean(d <= x)
                    se = np.sqrt(q * (1 - q) / n)
                    assert abs(frac - q) < 5 * se, (model, level, q, frac)
            # the compound's draws are the product of its parts' distributions
            if model.startswith("compound"):
                f, s = post.frequency.sample_sync(n), post.severity.sample_sync(n)
                assert stats.ks_2samp(d, f * s).pvalue > 1e-3


# -- draw blocks in pieces, completions without a lock ---------------------------------------
# A draw block is drawn in pieces of about 4,096 numbers with a yield point between them
# (csrc/draw_jobs.c), and finished jobs reach the event loop through a lock-free inbox
# (csrc/pool.c). The pieces must change no bit; the inbox must deliver every job once.

PIECES = {   # model -> (fit arguments of _core.Core.fit, {part name: numbers per draw})
    "beta-binomial": (dict(successes=30, trials=100), {"rate": 1}),
    "compound-beta-lognormal": (dict(successes=40, trials=100, values=np.linspace(0.5, 3, 40)),
                                {"revenue": 1, "frequency": 1, "severity": 1}),
    "normal-mixture": (dict(values=np.r_[np.linspace(-6, -4, 60), np.linspace(4, 6, 60)],
                            options=((2,), 1e-8, 200)), {"mean": 1, "predictive": 1}),
    "dirichlet-multinomial": (dict(values=np.array([3.0, 0.0, 12.0])), {"shares": 3}),
}


@pytest.mark.parametrize("model", sorted(PIECES))
def test_pieces_of_a_draw_block_change_no_bit(model):
    """Draws made by the workers (blocks cut in pieces, on two threads, from an odd start)
    equal the same positions drawn in one call on this thread (``sample_now``)."""
    from bayesworker import _core
    row = next(m for m in _core.MODELS if m["name"] == model)
    kw, parts = PIECES[model]
    prior = tuple(v for _, v in row["prior"])
    if row["prior_per_category"]:
        prior = prior * len(kw["values"])
    core = _core.Core(2, 31)
    try:
        fit = core.fit(model, prior, **kw)
        assert fit.wait(60) and fit.status == "ok", fit.exception
        post = fit.result
        for name, width in parts.items():
            part = row["part_codes"][row["parts"].index(name)]
            # two blocks and then some, so blocks and pieces end off each other's bounds
            n = 2 * _core.SAMPLE_BLOCK // width + 4097
            start = 4099
            pooled = np.empty(n * width)
            job = core.sample(post, part, pooled, None, start)
            assert job.wait(60) and job.status == "ok", job.exception
            whole = np.empty((start + n) * width)      # positions 0 .. start+n-1, one call
            core.sample_now(post, part, whole)
            assert np.isfinite(pooled).all()
            np.testing.assert_array_equal(pooled, whole[start * width:], err_msg=name)
    finally:
        core.close()


def test_many_completions_at_once_each_reach_their_future():
    """300 sampling jobs finish on two threads while the loop drains their completions:
    each future gets its own job's draws, once (their concatenation is the stream)."""
    n, count = 3000, 300

    async def go():
        async with bw.InferenceWorker(threads=2, seed=12) as w:
            post = (await w.run_inference("beta-binomial", MODELS["beta-binomial"])).posterior
            parts = await asyncio.gather(*(post.sample(n) for _ in range(count)))
            return parts, await post.sample(5)

    parts, tail = run(go())
    assert [p.size for p in parts] == [n] * count
    with bw.InferenceWorker(threads=2, seed=12) as w:
        post = w.run_inference_sync("beta-binomial", MODELS["beta-binomial"]).posterior
        whole = post.sample_sync(n * count + 5)
    np.testing.assert_array_equal(np.concatenate(parts + [tail]), whole)
