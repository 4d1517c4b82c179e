"""The worker: lifecycle, store, progress, timeouts, cancellation, concurrency, errors."""

import asyncio
import gc
import time

import numpy as np
import pytest

import bayesworker as bw
from support import run

CONV = {"successes": 65, "trials": 1000}


def test_run_inference_async_and_sync_agree():
    async def go():
        async with bw.InferenceWorker(threads=2, seed=1) as w:
            res = await w.run_inference("beta-binomial", CONV)
            return res.posterior.mean(), res.posterior.credible_interval(0.95)

    mean_a, ci_a = run(go())
    with bw.InferenceWorker(threads=2, seed=1) as w:
        res = w.run_inference_sync("beta-binomial", CONV)
        assert res.diagnostics.converged is True
        assert res.diagnostics.model_type == "beta-binomial"
        assert res.diagnostics.runtime >= 0
        assert res.diagnostics["iterations"] == 1
        np.testing.assert_array_equal(res.posterior.mean(), mean_a)
        np.testing.assert_array_equal(res.posterior.credible_interval(0.95), ci_a)
    assert mean_a.shape == (1,) and ci_a.shape == (1, 2)
    assert mean_a.dtype == np.float64


def test_summaries_are_cached_read_only_arrays(worker):
    post = worker.run_inference_sync("beta-binomial", CONV).posterior
    m = post.mean()
    assert m is post.mean()                       # cached, not recomputed
    with pytest.raises(ValueError):
        m[0] = 1.0                                # the cache cannot be corrupted
    a = post.credible_interval(0.975)             # computed on demand, then cached
    assert a is post.credible_interval(0.975)
    assert post.credible_interval(0.95) is post.credible_interval(0.95)


def test_inline_fallback_gives_the_same_numbers_and_draws():
    draws, means = [], []
    for threads in (0, 1, 2):
        with bw.InferenceWorker(threads=threads, seed=99) as w:
            post = w.run_inference_sync("lognormal", np.exp(np.linspace(0, 2, 500))).posterior
            means.append(post.mean())
            draws.append(post.sample_sync(100_000))
    for m in means[1:]:
        np.testing.assert_array_equal(m, means[0])
    for d in draws[1:]:
        np.testing.assert_array_equal(d, draws[0])


def test_dispose_then_use_raises_disposed_error(worker):
    post = worker.run_inference_sync("beta-binomial", CONV).posterior
    other = worker.run_inference_sync("beta-binomial", {"successes": 3, "trials": 9}).posterior
    run(post.dispose())
    assert post.disposed
    for call in (post.mean, post.variance, lambda: post.credible_interval(0.9),
                 lambda: post.sample_sync(3), lambda: post.parameters):
        with pytest.raises(bw.DisposedError, match="disposed"):
            call()
    with pytest.raises(bw.DisposedError):
        run(post.sample(10))
    # the other posterior is intact
    assert not other.disposed
    assert other.mean()[0] == pytest.approx(4 / 11)


def test_clear_all_and_evict_idle_say_which(worker):
    a = worker.run_inference_sync("beta-binomial", CONV).posterior
    b = worker.run_inference_sync("poisson", [1, 2, 3]).posterior
    assert worker.stats()["posteriors"] == 2
    assert worker.clear_all() == 2
    assert worker.stats()["posteriors"] == 0
    with pytest.raises(bw.DisposedError, match="clear_all"):
        a.mean()
    with pytest.raises(bw.DisposedError, match="clear_all"):
        b.sample_sync(1)

    old = worker.run_inference_sync("beta-binomial", CONV).posterior
    time.sleep(0.3)
    fresh = worker.run_inference_sync("beta-binomial", CONV).posterior
    evicted = worker.evict_idle(0.2)
    assert evicted == [old.id]
    with pytest.raises(bw.DisposedError, match="evict"):
        old.mean()
    assert fresh.mean()[0] == pytest.approx(66 / 1002)
    # use counts as access: a posterior in use is not idle
    time.sleep(0.15)
    fresh.mean()
    assert worker.evict_idle(0.1) == []


def test_stats_report_posteriors_bytes_and_times(worker):
    before = time.time()
    post = worker.run_inference_sync("normal", [1.0, 2.0, 4.0]).posterior
    s = worker.stats()
    assert s["posteriors"] == 1 and s["bytes"] > 0
    (item,) = s["items"]
    assert item["id"] == post.id
    assert item["model_type"] == "normal"
    assert before - 1 <= item["created"] <= time.time() + 1
    assert item["last_access"] >= item["created"]
    assert s["live_jobs"] == 0


def test_close_frees_everything_and_proxies_say_so():
    w = bw.InferenceWorker(threads=2, seed=3)
    post = w.run_inference_sync("beta-binomial", CONV).posterior
    w.close()
    assert w.closed
    with pytest.raises(bw.DisposedError, match="closed"):
        post.mean()
    with pytest.raises(RuntimeError, match="closed"):
        w.run_inference_sync("beta-binomial", CONV)
    w.close()  # idempotent


def test_many_requests_in_flight_from_many_coroutines():
    async def go():
        async with bw.InferenceWorker(threads=2, seed=5) as w:
            fits = await asyncio.gather(*(
                w.run_inference("beta-binomial", {"successes": k, "trials": 100})
                for k in range(50)))
            posts = [f.posterior for f in fits]
            draws = await asyncio.gather(*(p.sample(20_000) for p in posts))
            return [(p.mean()[0], p.variance()[0]) for p in posts], draws

    moments, draws = run(go())
    for k, ((mean, var), d) in enumerate(zip(moments, draws)):
        assert mean == pytest.approx((k + 1) / 102)
        assert d.shape == (20_000,)
        # each batch of draws centres on its own posterior: mean within 6 standard errors
        assert abs(d.mean() - mean) < 6 * np.sqrt(var / d.size)


def test_posterior_ids_are_unique_and_in_call_order(worker):
    ids = [worker.run_inference_sync("poisson", [k]).posterior.id for k in range(5)]
    assert ids == sorted(set(ids))


def test_timeout_stops_the_work_and_frees_memory():
    async def go():
        async with bw.InferenceWorker(threads=1, seed=5) as w:
            post = (await w.run_inference("lognormal", [1.0, 2.0, 3.0])).posterior
            t0 = time.perf_counter()
            with pytest.raises(TimeoutError, match="timed out"):
                await post.sample(200_000_000, timeout=0.05)
            waited = time.perf_counter() - t0
            # the C job stops within a block: the worker drains to idle quickly
            deadline = time.perf_counter() + 2
            while w.stats()["live_jobs"] and time.perf_counter() < deadline:
                await asyncio.sleep(0.005)
            assert w.stats()["live_jobs"] == 0
            await asyncio.sleep(0.01)
            assert w.stats()["pending_requests"] == 0
            # the posterior still works and its stream continued past the reserved draws
            assert (await post.sample(5)).shape == (5,)
            return waited

    assert run(go()) < 1.0


def test_sync_timeout():
    with bw.InferenceWorker(threads=1, seed=5) as w:
        post = w.run_inference_sync("beta-binomial", CONV).posterior
        with pytest.raises(TimeoutError):
            post.sample_sync(300_000_000, timeout=0.05)
        assert w.stats()["live_jobs"] == 0
        assert isinstance(w.error, TimeoutError)
        post.sample_sync(10)
        assert w.error is None


def test_cancellation_stops_the_c_work():
    async def go():
        async with bw.InferenceWorker(threads=2, seed=5) as w:
            post = (await w.run_inference("beta-binomial", CONV)).posterior
            task = asyncio.create_task(post.sample(300_000_000))
            await asyncio.sleep(0.02)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            t0 = time.perf_counter()
            while w.stats()["live_jobs"] and time.perf_counter() - t0 < 2:
                await asyncio.sleep(0.002)
            return time.perf_counter() - t0, w.stats()["live_jobs"]

    stop_time, live = run(go())
    assert live == 0
    assert stop_time < 0.5


def test_default_timeouts():
    from bayesworker._bridge import timeout_limit
    assert timeout_limit(None, "fitting", 0) == 30
    assert timeout_limit(None, "sampling", 10_000) == 30
    assert timeout_limit(None, "sampling", 10_001) == 60
    assert timeout_limit(2.5, "sampling", 10**9) == 2.5
    with pytest.raises(ValueError, match="timeout"):
        timeout_limit(-1, "fitting", 0)


def test_progress_reports_start_ticks_and_completion():
    seen = []

    async def go():
        async with bw.InferenceWorker(threads=1, seed=5) as w:
            post = (await w.run_inference("lognormal", [1.0, 2.0, 3.0])).posterior
            task = asyncio.create_task(post.sample(40_000_000, on_progress=seen.append))
            mid = None
            while not task.done():
                await asyncio.sleep(0.05)
                if w.is_running:
                    mid = w.progress
            await task
            return mid, w.is_running, w.progress

    mid, running_after, final = run(go())
    assert seen[0].fraction == 0.0 and seen[0].stage == "sampling"
    assert seen[-1].fraction == 1.0
    assert seen[-1].iteration == seen[-1].total_iterations > 0
    fractions = [p.fraction for p in seen]
    assert fractions == sorted(fractions)
    assert len(seen) >= 3, "expected reports about every 100 ms during a long request"
    assert mid is not None and mid.stage == "sampling"
    assert not running_after and final.fraction == 1.0


def test_sync_progress_and_error_state():
    seen = []
    with bw.InferenceWorker(threads=1, seed=5) as w:
        res = w.run_inference_sync("beta-binomial", CONV, on_progress=seen.append)
        assert seen[0].stage == "fitting" and seen[-1].fraction == 1.0
        assert w.error is None and not w.is_running
        with pytest.raises(bw.DataError):
            w.run_inference_sync("beta-binomial", {"successes": 5, "trials": 2})
        assert isinstance(w.error, bw.DataError)
        assert res.posterior.mean().shape == (1,)


def test_bad_input_leaves_other_posteriors_intact(worker):
    post = worker.run_inference_sync("beta-binomial", CONV).posterior
    before = post.sample_sync(0)
    m, ci = post.mean().copy(), post.credible_interval(0.95).copy()
    bad = [
        ("beta-binomial", {"successes": 11, "trials": 10}, bw.DataError, "successes"),
        ("beta-binomial", {"successes": 1.5, "trials": 10}, bw.DataError, "1.5"),
        ("normal", [1.0, float("nan")], bw.DataError, "nan"),
        ("lognormal", [1.0, -2.0], bw.DataError, "-2"),
        ("lognormal", [], bw.DataError, "empty"),
        ("poisson", [1, float("inf")], bw.DataError, "inf"),
        ("exponential", [0.0, -1.0], bw.DataError, "-1"),
        ("nonsense", [1.0], bw.ModelError, "nonsense"),
        ("normal", np.ones((2, 2)), bw.DataError, "shape"),
    ]
    for model, data, exc, text in bad:
        with pytest.raises(exc, match=text):
            worker.run_inference_sync(model, data)
    with pytest.raises(bw.ModelError, match="frobnicate"):
        worker.run_inference_sync("normal", [1.0], frobnicate=3)
    with pytest.raises(bw.ModelError, match="alpha"):
        worker.run_inference_sync("beta-binomial", CONV, prior={"alpha": -1})
    for level in (0, 1, 1.5, float("nan"), -0.1):
        with pytest.raises(ValueError, match="level"):
            post.credible_interval(level)
    for n in (-1, 2.5, "3", 2**63):
        with pytest.raises((ValueError, TypeError, MemoryError)):
            post.sample_sync(n)
    with pytest.raises(MemoryError, match="n = "):
        post.sample_sync(2**40)
    with pytest.raises(ValueError, match="batch_size"):
        list(post.sample_batched_sync(10, 0))
    assert worker.stats()["posteriors"] == 1
    np.testing.assert_array_equal(post.mean(), m)
    np.testing.assert_array_equal(post.credible_interval(0.95), ci)
    assert before.shape == (0,)
    assert post.sample_sync(4).shape == (4,)


def test_heartbeat_keeps_ticking_while_drawing_ten_million():
    async def go():
        async with bw.InferenceWorker(seed=11) as w:
            post = (await w.run_inference("beta-binomial", CONV)).posterior
            gaps = []
            done = asyncio.Event()

            async def beat():
                last = time.perf_counter()
                while not done.is_set():
                    await asyncio.sleep(0.002)
                    now = time.perf_counter()
                    gaps.append(now - last)
                    last = now

            hb = asyncio.create_task(beat())
            draws = await post.sample(10_000_000)
            done.set()
            await hb
            return draws, gaps

    draws, gaps = run(go())
    assert draws.shape == (10_000_000,)
    assert len(gaps) > 5
    assert max(gaps) < 0.050, f"the loop stalled for {max(gaps) * 1e3:.1f} ms"


def test_worker_collected_with_jobs_in_flight_does_not_hang():
    w = bw.InferenceWorker(threads=2, seed=5)
    post = w.run_inference_sync("beta-binomial", CONV).posterior
    call = post._handle.draws(0, 50_000_000)
    job, out = call.submit(None, call.limit), call.result(None)
    del call
    del w, post
    gc.collect()
    t0 = time.perf_counter()
    del job, out   # the Job handle cancels and waits for its C work
    gc.collect()
    assert time.perf_counter() - t0 < 2


def test_threads_and_seed_validation():
    with pytest.raises(ValueError, match="threads"):
        bw.InferenceWorker(threads=-1)
    with pytest.raises(TypeError, match="threads"):
        bw.InferenceWorker(threads=1.5)
    with pytest.raises(ValueError, match="seed"):
        bw.InferenceWorker(seed=-3)
    with bw.InferenceWorker(threads=1) as w:
        assert 0 <= w.seed < 2**64
    assert bw.default_threads() >= 1
