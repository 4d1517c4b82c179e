"""The worker: lifecycle, store, progress, timeouts, cancellation, concurrency, errors.

No test here depends on how long anything takes. Work that must be in flight when a test
acts on it is either an endless fit (support.endless_fit: it cannot end on its own) or a
request caught in the same event-loop step that submitted it (a request's result is
delivered by the loop's reader in a later step, so it cannot have been delivered yet).
Waits are for conditions, with hang guards. The claim that the event loop never stalls
while the workers draw is a latency figure: bench/run.py (``case_loop_lag``) measures it.
"""

import asyncio
import gc
import threading
import time
import tracemalloc

import numpy as np
import pytest

import bayesworker as bw
from support import (BIMODAL, HANG_GUARD, endless_fit, endless_fit_sync, guarded, os_threads,
                     quiet, run, run_script, until, wait_until)

CONV = {"successes": 65, "trials": 1000}
#: Draws of a request that spans many blocks (128 MiB, a fraction of a second of work):
#: a tiny timeout or a cancellation always catches it in flight.
MANY_BLOCKS = 16_000_000
TINY = 1e-3


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


COMPOUND_DATA = {"converted": [1, 0, 1, 1, 0, 0, 1, 1, 0, 1],
                 "value": [10.0, 0, 12.5, 30.0, 0, 0, 8.0, 55.0, 0, 21.0]}


@pytest.mark.parametrize("how", ["dispose_sync", "dispose"])
@pytest.mark.parametrize("part", ["frequency", "severity"])
@pytest.mark.parametrize("model", ["compound-beta-lognormal", "compound-beta-exponential",
                                   "compound-beta-lognormalmixture"])
def test_disposing_a_part_disposes_the_whole_compound_posterior(worker, model, part, how):
    post = worker.run_inference_sync(model, COMPOUND_DATA).posterior
    other = worker.run_inference_sync(model, COMPOUND_DATA).posterior
    before = other.mean().copy()
    held = worker.stats()["posteriors"]
    target = getattr(post, part)
    if how == "dispose":
        run(target.dispose())
    else:
        target.dispose_sync()
    assert worker.stats()["posteriors"] == held - 1
    assert post.id not in {i["id"] for i in worker.stats()["items"]}
    for name, proxy in (("whole", post), ("frequency", post.frequency),
                        ("severity", post.severity)):
        assert proxy.disposed, name
        for call in (proxy.mean, lambda: proxy.credible_interval(0.5),
                     lambda: proxy.sample_sync(3)):
            with pytest.raises(bw.DisposedError, match="dispos"):
                call()
    with pytest.raises(bw.DisposedError, match="dispos"):
        post.expected_value_per_user()
    # the other posterior of the same model is untouched
    assert not other.disposed and not other.severity.disposed
    np.testing.assert_array_equal(other.mean(), before)


def test_clear_all_says_which(worker):
    a = worker.run_inference_sync("beta-binomial", CONV).posterior
    b = worker.run_inference_sync("poisson", [1, 2, 3]).posterior
    assert worker.stats()["posteriors"] == 2
    assert worker.clear_all() == 2
    assert worker.stats()["posteriors"] == 0
    with pytest.raises(bw.DisposedError, match="clear_all"):
        a.mean()
    with pytest.raises(bw.DisposedError, match="clear_all"):
        b.sample_sync(1)


def last_access(worker, post) -> float:
    return next(i["last_access"] for i in worker.stats()["items"] if i["id"] == post.id)


#: Proxy calls that must count as access (evict_idle frees only what none touched).
ACCESSES = {
    "mean": lambda p: p.mean(),
    "variance": lambda p: p.variance(),
    "parameters": lambda p: p.parameters,
    "credible_interval": lambda p: p.credible_interval(0.61),
    "sample_sync": lambda p: p.sample_sync(3),
    "sample": lambda p: run(p.sample(3)),
    "credible_interval_async": lambda p: run(p.credible_interval_async(0.62)),
}


@pytest.mark.parametrize("access", sorted(ACCESSES))
def test_evict_idle_frees_exactly_what_was_not_accessed_since_the_cutoff(worker, access):
    """Eviction by the order of accesses, not by sleeping through windows.

    Three posteriors are fitted together; the clock is then let pass (a wait on the clock,
    not a measurement) and one of them is accessed. A cutoff between the old accesses and
    the new one must free the two untouched posteriors and keep the accessed one. The
    cutoff is ``time.time() - seconds`` when evict_idle runs, somewhere in [t0, t1] (read
    before and after the call): whatever the delay, a posterior last accessed before the
    earliest possible cutoff must go and one accessed after the latest must stay.
    """
    old1, old2, used = (worker.run_inference_sync("beta-binomial", CONV).posterior
                        for _ in range(3))
    assert worker.evict_idle(10**6) == []          # nothing is 11 days idle
    gap = 0.05
    wait_until(lambda: time.time() > last_access(worker, used) + 2 * gap,
               "the clock to pass the fits")
    ACCESSES[access](used)
    times = {p.id: last_access(worker, p) for p in (old1, old2, used)}
    # an order, not a duration: the wait above put the clock past the fits' accesses + 2 gap,
    # so only an access that stamped `used` (the behaviour tested) moves it past them
    assert times[used.id] > max(times[old1.id], times[old2.id]) + 2 * gap
    mid = times[used.id] - gap
    t0 = time.time()
    evicted = worker.evict_idle(t0 - mid)
    t1 = time.time()
    lo, hi = mid, mid + (t1 - t0)                  # the cutoff lies in [lo, hi]
    assert {i for i, t in times.items() if t < lo} <= set(evicted)
    assert not {i for i, t in times.items() if t >= hi} & set(evicted)
    if hi <= times[used.id]:                       # always, unless evict_idle took > gap
        assert sorted(evicted) == sorted([old1.id, old2.id])
    for p in (old1, old2):
        with pytest.raises(bw.DisposedError, match="evict"):
            p.mean()
    assert used.mean()[0] == pytest.approx(66 / 1002)
    # everything was last accessed before now
    assert worker.evict_idle(0) == [used.id]
    assert worker.stats()["posteriors"] == 0


def test_stats_report_posteriors_bytes_and_times(worker):
    before = time.time()
    post = worker.run_inference_sync("normal", [1.0, 2.0, 4.0]).posterior
    after = time.time()
    s = worker.stats()
    assert s["posteriors"] == 1 and s["bytes"] > 0
    (item,) = s["items"]
    assert item["id"] == post.id
    assert item["model_type"] == "normal"
    assert before <= item["created"] <= after       # one wall clock: an order, not a span
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


def test_close_settles_every_awaited_request_with_runtime_error():
    """close() while requests are awaited: each awaiter gets RuntimeError, none hangs."""
    async def go():
        w = bw.InferenceWorker(threads=2, seed=5)
        post = w.run_inference_sync("lognormal", [1.0, 2.0, 3.0]).posterior
        mix = w.run_inference_sync("normal-mixture", BIMODAL, components=2).posterior

        async def batched():
            async for _ in post.sample_batched(4_000_000, 1_000_000):
                pass

        requests = {
            "run_inference": w.run_inference("poisson", np.arange(1000.0)),
            "endless fit": endless_fit(w),
            "sample": post.sample(1_000_000),
            "sample_batched": batched(),
            "credible_interval_async": post.credible_interval_async(0.123),
            "mixture credible_interval_async": mix.credible_interval_async(0.123),
            "sample_predictive": mix.sample_predictive(1_000_000),
        }
        tasks = {k: asyncio.ensure_future(c) for k, c in requests.items()}
        await asyncio.sleep(0)      # one step: every request is submitted
        assert not [k for k, t in tasks.items() if t.done() and k not in QUICK]
        w.close()
        results = await guarded(asyncio.gather(*tasks.values(), return_exceptions=True),
                                "the requests awaited when close() ran")
        return dict(zip(tasks, results)), w

    results, w = run(go())
    for name, r in results.items():
        if name in QUICK and not isinstance(r, BaseException):
            # microseconds of work, which may finish before close() runs: then the value
            assert np.isfinite(np.asarray(r, dtype=float)).all(), (name, r)
            continue
        assert isinstance(r, RuntimeError) and "closed" in str(r), (name, r)
    assert w.closed


#: Requests of a few microseconds of work: one may legitimately be done before close().
QUICK = {"credible_interval_async", "mixture credible_interval_async"}


def test_close_from_another_thread_releases_async_and_blocking_callers():
    w = bw.InferenceWorker(threads=2, seed=1)
    blocked: list[BaseException] = []

    def blocking():
        try:
            endless_fit_sync(w)
        except BaseException as exc:  # noqa: BLE001
            blocked.append(exc)

    async def go():
        task = asyncio.ensure_future(endless_fit(w))
        caller = threading.Thread(target=blocking)
        caller.start()
        await until(lambda: w.stats()["live_jobs"] >= 2, "both endless fits to be submitted")
        closer = threading.Thread(target=w.close)
        closer.start()
        with pytest.raises(RuntimeError, match="closed"):
            await guarded(task, "the awaited fit of a worker closed from another thread")
        for t in (closer, caller):
            await asyncio.to_thread(t.join, HANG_GUARD)
            assert not t.is_alive(), f"hang guard: {t.name} still runs"

    run(go())
    assert len(blocked) == 1 and isinstance(blocked[0], RuntimeError), blocked
    assert "closed" in str(blocked[0])
    assert w.closed and w.stats()["live_jobs"] == 0


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


def skip_positions(post, n: int) -> None:
    """Move ``post``'s stream on by ``n`` positions without drawing them: sample_batched
    reserves all of its positions when iteration starts (README, Reproducibility)."""
    gen = post.sample_batched_sync(n, 1)
    next(gen)
    gen.close()


def traced_bytes() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def test_timeout_stops_the_work_and_frees_memory():
    async def go():
        async with bw.InferenceWorker(threads=2, seed=5) as w:
            post = (await w.run_inference("lognormal", [1.0, 2.0, 3.0])).posterior
            base = traced_bytes()
            with pytest.raises(TimeoutError, match="timed out"):
                await post.sample(MANY_BLOCKS, timeout=TINY)
            with pytest.raises(TimeoutError, match="timed out"):
                await guarded(endless_fit(w, timeout=TINY), "an endless fit's timeout")
            await until(lambda: quiet(w), "the timed-out jobs to stop")
            assert isinstance(w.error, TimeoutError)
            freed = traced_bytes() - base               # the 128 MiB output array is gone
            assert w.stats()["posteriors"] == 1         # the timed-out fit left nothing
            # the posterior still works; its stream continued past the reserved draws
            return freed, await post.sample(5)

    tracemalloc.start()
    try:
        freed, after = run(go())
    finally:
        tracemalloc.stop()
    assert freed < 1 << 20, f"{freed} bytes still held after the timeout"
    with bw.InferenceWorker(threads=0, seed=5) as twin:
        tp = twin.run_inference_sync("lognormal", [1.0, 2.0, 3.0]).posterior
        skip_positions(tp, MANY_BLOCKS)
        np.testing.assert_array_equal(after, tp.sample_sync(5))


def test_sync_timeout():
    with bw.InferenceWorker(threads=1, seed=5) as w:
        post = w.run_inference_sync("beta-binomial", CONV).posterior
        with pytest.raises(TimeoutError, match="timed out"):
            post.sample_sync(MANY_BLOCKS, timeout=TINY)
        wait_until(lambda: quiet(w), "the timed-out sampling job to stop")
        assert isinstance(w.error, TimeoutError)
        post.sample_sync(10)
        assert w.error is None
        with pytest.raises(TimeoutError, match="timed out"):
            endless_fit_sync(w, timeout=TINY)
        wait_until(lambda: quiet(w), "the timed-out fit to stop")
        assert w.stats()["posteriors"] == 1


def test_cancellation_stops_the_c_work():
    async def go():
        async with bw.InferenceWorker(threads=2, seed=5) as w:
            post = (await w.run_inference("beta-binomial", CONV)).posterior
            tasks = [asyncio.create_task(post.sample(MANY_BLOCKS)),
                     asyncio.create_task(endless_fit(w))]
            await asyncio.sleep(0)      # one step: both submitted, neither delivered
            assert w.is_running and w.stats()["live_jobs"] >= 1
            for t in tasks:
                t.cancel()
            for t in tasks:
                with pytest.raises(asyncio.CancelledError):
                    await t
            # the endless fit cannot end by itself: only the cancellation stops it
            await until(lambda: quiet(w), "the cancelled jobs to stop")
            assert not w.is_running and w.stats()["posteriors"] == 1
            return await post.sample(3)

    assert run(go()).shape == (3,)


def test_progress_reports_start_and_completion():
    seen = []

    async def go():
        async with bw.InferenceWorker(threads=1, seed=5) as w:
            post = (await w.run_inference("lognormal", [1.0, 2.0, 3.0])).posterior

            def report(p):
                seen.append((p, w.is_running, w.progress))

            await post.sample(MANY_BLOCKS, on_progress=report)
            return w.is_running, w.progress

    running_after, final = run(go())
    reports = [p for p, _, _ in seen]
    first, running_at_start, state_at_start = seen[0]
    assert first.stage == "sampling" and first.fraction == 0.0 and first.iteration == 0
    assert running_at_start and state_at_start.stage == "sampling"
    last = reports[-1]
    assert last.stage == "sampling" and last.fraction == 1.0
    assert last.iteration == last.total_iterations > 0
    assert len({p.total_iterations for p in reports}) == 1
    for a, b in zip(reports, reports[1:]):
        assert a.fraction <= b.fraction and a.iteration <= b.iteration
    # reports between the two ends, if the request lasted long enough to get any
    for p, running, _ in seen[1:-1]:
        assert 0.0 <= p.fraction <= 1.0 and running
    assert not running_after and final == last


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
    # 8 TiB of draws: refused on any machine, before any work starts
    with pytest.raises(MemoryError, match="n = "):
        post.sample_sync(2**40)
    with pytest.raises(ValueError, match="batch_size"):
        list(post.sample_batched_sync(10, 0))
    assert worker.stats()["posteriors"] == 1
    np.testing.assert_array_equal(post.mean(), m)
    np.testing.assert_array_equal(post.credible_interval(0.95), ci)
    assert before.shape == (0,)
    assert post.sample_sync(4).shape == (4,)


def test_the_loop_keeps_running_callbacks_while_work_is_in_flight():
    """The workers never block the event loop: callbacks run while a fit and draws are in
    flight. Counted in loop steps, not timed (the loop-lag figures are bench/run.py's)."""
    async def go():
        async with bw.InferenceWorker(threads=2, seed=11) as w:
            post = (await w.run_inference("beta-binomial", CONV)).posterior
            fit = asyncio.create_task(endless_fit(w))
            for _ in range(200):            # 200 loop steps while the fit runs
                await asyncio.sleep(0)
            assert w.is_running and not fit.done()
            fit.cancel()
            with pytest.raises(asyncio.CancelledError):
                await fit
            await until(lambda: quiet(w), "the cancelled fit to stop")
            draws = asyncio.create_task(post.sample(10_000_000))
            await asyncio.sleep(0)          # submitted: were it run on this thread, done
            assert not draws.done()
            steps = 0
            while not draws.done():
                steps += 1
                await asyncio.sleep(0)
            return await draws, steps

    draws, steps = run(go())
    assert draws.shape == (10_000_000,)
    assert steps >= 1


def test_worker_collected_with_jobs_in_flight_does_not_hang():
    """A worker dropped with an endless fit and draws in flight: its collection must stop
    them (else its pool waits for ever) and join the pool's threads."""
    proc = run_script("""
        import asyncio, gc
        import bayesworker as bw
        from support import endless_fit, os_threads, wait_until
        threads_before = os_threads()
        w = bw.InferenceWorker(threads=2, seed=1)
        post = w.run_inference_sync("beta-binomial", {"successes": 5, "trials": 9}).posterior
        loop = asyncio.new_event_loop()
        tasks = [loop.create_task(endless_fit(w)), loop.create_task(post.sample(4_000_000))]
        loop.run_until_complete(asyncio.sleep(0))       # both submitted
        assert w.is_running and w.stats()["live_jobs"] >= 1
        loop.close()                                    # nothing will ever await them
        del tasks, post, w, loop
        for _ in range(3):
            gc.collect()
        wait_until(lambda: os_threads() == threads_before, "the pool's threads to be joined")
        print("ok")
    """)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("ok")


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
