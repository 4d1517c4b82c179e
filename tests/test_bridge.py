"""The bridge (python/bayesworker/_bridge.py): one interface, posterior lifetimes, close,
execution-time timeouts, twins from one request, and the one error mapping.

Deadlines here are hang guards only; nothing measures how long anything takes.
"""

from __future__ import annotations

import ast
import asyncio
import gc
import os
import subprocess
import sys
import textwrap
import threading
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import bayesworker as bw
from bayesworker import _core
from bayesworker._bridge import one

PKG = Path(bw.__file__).resolve().parent
HANG_GUARD = 60.0
CONV = {"successes": 65, "trials": 1000}
RNG = np.random.default_rng(8)
REVENUE = {"converted": RNG.random(300) < 0.3, "value": RNG.lognormal(3.0, 0.5, 300)}
BIMODAL = np.r_[RNG.normal(-5, 1, 200), RNG.normal(5, 1, 300)]
MIX_REVENUE = {"converted": np.r_[np.ones(500, bool), np.zeros(100, bool)],
               "value": np.r_[np.exp(BIMODAL / 4 + 3), np.zeros(100)]}


def posteriors(w) -> int:
    return w.stats()["posteriors"]


def run_script(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(PKG.parent), PYTHONFAULTHANDLER="1")
    try:
        return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                              capture_output=True, text=True, timeout=HANG_GUARD)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the script hung: {exc.stdout}\n{exc.stderr}")


# ======================================================================================== #
# One interface, dependencies one way                                                      #
# ======================================================================================== #

def _private_members_of_the_worker() -> set[str]:
    tree = ast.parse((PKG / "_worker.py").read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef)
               and n.name == "InferenceWorker")
    names = {n.name for n in cls.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    names |= {n.attr for n in ast.walk(cls) if isinstance(n, ast.Attribute)
              and isinstance(n.value, ast.Name) and n.value.id == "self"}
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def _receiver(node: ast.expr) -> str:
    """The last name of an attribute's receiver: `worker` for worker.x, self._worker.x."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


@pytest.mark.parametrize("module", ["_proxy.py", "_mixture.py"])
def test_proxies_touch_no_private_member_of_the_worker(module):
    """Parses the proxies: no `worker._x`, no `self._worker`, and none of the worker's
    private member names (its methods and `self._x` attributes) used on anything."""
    tree = ast.parse((PKG / module).read_text())
    private = _private_members_of_the_worker()
    own = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)
           and isinstance(n.ctx, ast.Store)} | \
        {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    assert private, "found no private member of InferenceWorker: the parse is wrong"
    bad = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        on_worker = "worker" in _receiver(node.value).lower()
        if node.attr.startswith("_") and (on_worker or node.attr == "_worker"):
            bad.append(f"line {node.lineno}: .{node.attr} on {ast.unparse(node.value)}")
        elif node.attr in private and node.attr not in own:
            bad.append(f"line {node.lineno}: .{node.attr} (a private member of the worker)")
        if isinstance(node.value, ast.Name) and node.value.id == "self" \
                and isinstance(node.ctx, ast.Store) and "worker" in node.attr:
            bad.append(f"line {node.lineno}: a proxy keeps the worker in self.{node.attr}")
    assert not bad, f"{module} reaches into the worker:\n" + "\n".join(bad)


def test_the_bridge_imports_neither_the_worker_nor_the_proxies():
    tree = ast.parse((PKG / "_bridge.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not imported & {"_worker", "_proxy", "_mixture", "bayesworker._worker",
                           "bayesworker._proxy", "bayesworker._mixture"}, imported


@pytest.mark.parametrize("module", ["_proxy.py", "_mixture.py"])
def test_proxies_translate_no_error_themselves(module):
    """The core's errors become the user's in one function (Bridge.user_error)."""
    tree = ast.parse((PKG / module).read_text())
    handlers = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.ExceptHandler)]
    assert not handlers, f"{module} catches exceptions at lines {handlers}"


# ======================================================================================== #
# Lifetimes: a posterior lives as long as a proxy of it                                    #
# ======================================================================================== #

CHEAP = [("beta-binomial", CONV), ("normal", [1.0, 2.0, 4.0]), ("poisson", [1, 2, 3]),
         ("compound-beta-exponential", {"converted": [1, 0, 1], "value": [3.0, 0.0, 4.0]})]


def test_two_thousand_dropped_fits_free_their_posteriors():
    """A notebook that refits 2,000 times keeps only what it holds (refcounting alone)."""
    with bw.InferenceWorker(threads=2, seed=1) as w:
        most = 0
        for i in range(2000):
            model, data = CHEAP[i % len(CHEAP)]
            res = w.run_inference_sync(model, data)
            res.posterior.credible_interval(0.5 + i * 1e-5)
            if i % 100 == 0:
                most = max(most, posteriors(w))
        held = posteriors(w)
        del res
        assert held <= 2 and most <= 2, (held, most)
        assert posteriors(w) == 0

        async def refits():
            for i in range(200):
                model, data = CHEAP[i % len(CHEAP)]
                post = (await w.run_inference(model, data)).posterior
                await post.sample(5000)
                async for _ in post.sample_batched(3000, 1000):
                    pass
            return posteriors(w)

        assert asyncio.run(refits()) <= 2
        assert posteriors(w) == 0


def test_a_part_keeps_its_posterior_until_the_last_proxy_goes():
    with bw.InferenceWorker(threads=2, seed=3) as w:
        freq = w.run_inference_sync("compound-beta-lognormal", REVENUE).posterior.frequency
        gc.collect()
        assert posteriors(w) == 1
        assert freq.mean()[0] == pytest.approx((REVENUE["converted"].sum() + 1) / 302)
        assert freq.sample_sync(3000).shape == (3000,)
        assert freq.credible_interval(0.123).shape == (1, 2)
        del freq
        assert posteriors(w) == 0

        sev = w.run_inference_sync("compound-beta-lognormalmixture", MIX_REVENUE,
                                   components=2).posterior.severity
        gc.collect()
        assert isinstance(sev, bw.MixturePosteriorProxy) and posteriors(w) == 1
        assert sev.sample_predictive_sync(5000).shape == (5000,)
        assert sev.weights(0.7)[1].shape == (2, 2)
        del sev
        assert posteriors(w) == 0


def test_a_request_in_flight_keeps_its_posterior():
    async def go(w):
        task = asyncio.ensure_future((await w.run_inference("normal", [1.0, 2.0])).posterior
                                     .sample(200_000))
        await asyncio.sleep(0)                  # submitted; nobody holds the proxy now
        held = posteriors(w)
        draws = await asyncio.wait_for(task, HANG_GUARD)
        del task
        return held, draws

    with bw.InferenceWorker(threads=2, seed=3) as w:
        held, draws = asyncio.run(go(w))
        assert held == 1 and draws.shape == (200_000,) and np.isfinite(draws).all()
        assert posteriors(w) == 0


def test_the_finaliser_is_safe_from_another_thread_and_after_close():
    seen = []
    old, sys.unraisablehook = sys.unraisablehook, seen.append
    try:
        w = bw.InferenceWorker(threads=2, seed=4)
        held = [w.run_inference_sync(m, d).posterior for m, d in CHEAP]
        t = threading.Thread(target=held.clear)           # the last references go there
        t.start()
        t.join(HANG_GUARD)
        assert posteriors(w) == 0
        held = [w.run_inference_sync(m, d).posterior for m, d in CHEAP]
        w.close()
        with pytest.raises(bw.DisposedError, match="closed"):
            held[0].mean()
        del held                                           # after close: nothing to free
        gc.collect()
    finally:
        sys.unraisablehook = old
    assert not seen, [s.exc_value for s in seen]


def test_the_finaliser_after_fork_and_at_interpreter_shutdown():
    """A forked child that drops its inherited proxies leaves the parent's store alone; a
    script that ends with live proxies and an open worker ends cleanly."""
    proc = run_script("""
        import gc, os, sys
        import bayesworker as bw
        w = bw.InferenceWorker(threads=2, seed=5)
        keep = [w.run_inference_sync("beta-binomial", {"successes": k, "trials": 10}).posterior
                for k in range(5)]
        pid = os.fork()
        if pid == 0:
            del keep
            gc.collect()
            os._exit(0 if w.stats()["posteriors"] == 0 else 3)   # inherited: sees nothing
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, status
        assert w.stats()["posteriors"] == 5
        assert [p.sample_sync(3000).shape for p in keep] == [(3000,)] * 5
        print("ok", flush=True)
        # the interpreter ends with the worker open and its proxies alive
    """)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "ok"
    assert "Exception ignored" not in proc.stderr and "Traceback" not in proc.stderr, \
        proc.stderr[-3000:]


def test_disposing_a_part_disposes_the_posterior_and_every_proxy_says_why(worker):
    for part in ("frequency", "severity"):
        post = worker.run_inference_sync("compound-beta-lognormal", REVENUE).posterior
        getattr(post, part).dispose_sync()
        assert posteriors(worker) == 0
        for proxy in (post, post.frequency, post.severity):
            assert proxy.disposed
            with pytest.raises(bw.DisposedError, match=r"\(compound-beta-lognormal.*disposed"):
                proxy.sample_sync(10)
    post = worker.run_inference_sync("compound-beta-lognormal", REVENUE).posterior
    worker.clear_all()
    with pytest.raises(bw.DisposedError, match="clear_all"):
        asyncio.run(post.severity.credible_interval_async(0.3))


def test_a_posterior_gone_between_check_and_work_is_a_disposed_error(worker):
    """The core's 'not in the store' becomes DisposedError saying why, in the one mapping."""
    post = worker.run_inference_sync("beta-binomial", CONV).posterior
    handle = post._handle
    worker.evict_idle(0)
    for run in (handle.bridge.run_here, handle.bridge.run_sync):
        with pytest.raises(bw.DisposedError, match="evict"):
            run(one(handle.interval(0, 0.3, label="beta-binomial")))
    with pytest.raises(bw.DisposedError, match="evict"):
        handle.bridge.run_sync(one(handle.draws(0, 50_000)))
    with pytest.raises(bw.DisposedError, match="evict"):
        handle.interval_here(0, 0.3, "beta-binomial")
    with pytest.raises(bw.DisposedError, match=r"\(beta-binomial\).*evict"):
        post.credible_interval(0.95)        # a level not cached yet, computed at once


def test_an_interval_computed_at_once_is_the_requests_value_and_maps_its_errors(worker):
    """credible_interval computes a level not cached yet without a request to drive: the
    same numbers (bit for bit) and the same errors as the request's two drivers."""
    post = worker.run_inference_sync("beta-binomial", CONV).posterior
    twin = worker.run_inference_sync("beta-binomial", CONV).posterior
    for level in (0.95, 0.9, 0.8, 0.5, 0.999):
        here = post.credible_interval(level)
        assert post.credible_interval(level) is here                # then cached
        assert post.credible_interval(np.float64(level)) is here    # the request's path
        np.testing.assert_array_equal(here, asyncio.run(twin.credible_interval_async(level)))
        assert not here.flags.writeable and here.shape == (1, 2)
    with pytest.raises(bw.DataError, match="level"):
        post.credible_interval(1.0)
    # a posterior that has moments but no interval: the core's refusal, as a ModelError
    # naming the level (the request drivers say the same)
    bad = worker.run_inference_sync("poisson", [0.0], prior={"alpha": 1e-300,
                                                             "beta": 1e300}).posterior
    for ask in (lambda: bad.credible_interval(0.95),
                lambda: bad._handle.bridge.run_here(one(bad._handle.interval(0, 0.95)))):
        with pytest.raises(bw.ModelError, match=r"level 0\.95 of the posterior Gamma"):
            ask()


# ======================================================================================== #
# Instant fits: finished on the calling thread when submitted                              #
# ======================================================================================== #

def test_an_instant_fit_reports_like_any_job_and_leaves_nothing_in_flight():
    seen = []

    async def awaited(w):
        res = await w.run_inference("beta-binomial", CONV, on_progress=seen.append)
        return res, w.is_running, w._bridge.pending

    with bw.InferenceWorker(threads=2, seed=15) as w:
        for fit in (lambda: w.run_inference_sync("beta-binomial", CONV,
                                                 on_progress=seen.append),
                    lambda: asyncio.run(awaited(w))[0]):
            seen.clear()
            post = fit().posterior
            assert [(p.stage, p.fraction) for p in seen] == [("fitting", 0.0),
                                                             ("fitting", 1.0)]
            assert w.progress == seen[-1] == bw.Progress("fitting", 1.0, 1, 1)
            assert not w.is_running and w.error is None
        _, running, pending = asyncio.run(awaited(w))
        assert not running and pending == {}
        # the latest request's progress wins, whichever path it took
        post.sample_sync(4 * _core.SAMPLE_BLOCK)
        assert w.progress.stage == "sampling"
        w.run_inference_sync("beta-binomial", CONV)
        assert w.progress.stage == "fitting"


def test_an_instant_fit_that_fails_raises_keeps_no_posterior_and_is_the_error():
    async def awaited(w):
        return await w.run_inference("beta-binomial", CONV, timeout=0)

    with bw.InferenceWorker(threads=2, seed=16) as w:
        for fit in (lambda: w.run_inference_sync("beta-binomial", CONV, timeout=0),
                    lambda: asyncio.run(awaited(w))):
            with pytest.raises(TimeoutError, match="fitting timed out") as info:
                fit()
            assert w.error is info.value and not w.is_running
            assert posteriors(w) == 0 and w.stats()["live_jobs"] == 0
        assert w.run_inference_sync("beta-binomial", CONV).posterior.mean().shape == (1,)
        assert w.error is None

        for when in (0.0, 1.0):                 # on_progress raising as it starts, or ends
            def listener(p, when=when):
                if p.fraction == when:
                    raise KeyError(f"listener at {when}")
            for fit in (lambda: w.run_inference_sync("beta-binomial", CONV,
                                                     on_progress=listener),
                        lambda: asyncio.run(w.run_inference("beta-binomial", CONV,
                                                            on_progress=listener))):
                with pytest.raises(KeyError, match="listener") as info:
                    fit()
                assert w.error is info.value and posteriors(w) == 0


def test_an_instant_fit_cancelled_before_it_starts_never_runs():
    """Cancelled before its first step, a task of an instant fit does no work: no posterior
    is made and no posterior id is taken (the next fit's draws are a fresh worker's)."""
    async def go(w):
        tasks = [asyncio.ensure_future(w.run_inference("beta-binomial", CONV))
                 for _ in range(3)]
        for t in tasks:
            t.cancel()
        done = await asyncio.gather(*tasks, return_exceptions=True)
        return [isinstance(d, asyncio.CancelledError) for d in done], posteriors(w)

    with bw.InferenceWorker(threads=2, seed=17) as w, \
            bw.InferenceWorker(threads=2, seed=17) as fresh:
        cancelled, held = asyncio.run(go(w))
        assert cancelled == [True] * 3 and held == 0 and w.error is None
        got = w.run_inference_sync("beta-binomial", CONV).posterior.sample_sync(50)
        want = fresh.run_inference_sync("beta-binomial", CONV).posterior.sample_sync(50)
        np.testing.assert_array_equal(got, want)


def test_gathered_instant_fits_are_the_fits_of_the_worker_threads():
    """500 gathered fits from counts (instant) against the same posteriors from raw 0/1
    values (reduced and fitted on the workers): the same summaries, bit for bit, each
    interval computed on its first use; the handles go with their proxies."""
    rng = np.random.default_rng(18)
    counts = [(int(s), int(n)) for n, s in
              zip(*(lambda n: (n, rng.binomial(n, 0.07)))(rng.integers(1, 400, 500)))]

    async def go(w):
        fast = await asyncio.gather(*(w.run_inference("beta-binomial",
                                                      {"successes": s, "trials": n})
                                      for s, n in counts))
        slow = await asyncio.gather(*(w.run_inference("beta-binomial",
                                                      np.r_[np.ones(s), np.zeros(n - s)])
                                      for s, n in counts))
        return [r.posterior for r in fast], [r.posterior for r in slow], w._bridge.pending

    with bw.InferenceWorker(threads=2, seed=18) as w:
        fast, slow, pending = asyncio.run(go(w))
        assert pending == {} and posteriors(w) == 1000
        for f, s in zip(fast, slow):
            assert f.mean()[0] == s.mean()[0] and f.variance()[0] == s.variance()[0]
            for level in (0.8, 0.95, 0.9):
                np.testing.assert_array_equal(f.credible_interval(level),
                                              s.credible_interval(level))
        assert len(w._bridge._handles) == 1000
        del f, s, fast, slow
        assert posteriors(w) == 0 and len(w._bridge._handles) == 0


# ======================================================================================== #
# close() settles every awaited request                                                    #
# ======================================================================================== #

def _settled(results) -> list[str]:
    """Each outcome: 'draws' (it finished first) or 'closed' (a RuntimeError, or the
    DisposedError of a request that came after close, saying so)."""
    out = []
    for r in results:
        if isinstance(r, np.ndarray):
            out.append("draws")
        elif isinstance(r, RuntimeError) and "closed" in str(r):
            out.append("closed")
        else:
            out.append(repr(r))
    return out


@pytest.mark.parametrize("where", ["loop thread", "other thread"])
def test_close_wakes_every_awaited_request(where):
    """Requests awaited when close() runs settle: close runs in the same loop step as their
    submission, so no drain delivered them first (a close that left them would hang)."""
    async def go(w, post):
        tasks = [asyncio.ensure_future(post.sample(100_000 + k)) for k in range(8)]
        gen = post.sample_batched(400_000, 100_000)
        tasks.append(asyncio.ensure_future(gen.__anext__()))
        tasks.append(asyncio.ensure_future(w.run_inference("normal", [1.0, 2.0, 3.0])))
        await asyncio.sleep(0)                  # each task submitted its job
        assert w.stats()["pending_requests"] == len(tasks) + 1   # + the batch drawn ahead
        if where == "loop thread":
            w.close()
        else:                                   # the loop is blocked: no drain meanwhile
            t = threading.Thread(target=w.close)
            t.start()
            t.join(HANG_GUARD)
        results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True),
                                         HANG_GUARD)
        await gen.aclose()
        return results

    w = bw.InferenceWorker(threads=2, seed=6)
    post = w.run_inference_sync("beta-binomial", CONV).posterior
    results = asyncio.run(go(w, post))
    outcomes = _settled(results[:-1])
    assert set(outcomes) <= {"draws", "closed"}, outcomes
    fit = results[-1]
    assert isinstance(fit, (bw.InferenceResult, RuntimeError)), fit
    assert w.stats()["pending_requests"] == 0


def test_close_wakes_blocking_waiters_and_refuses_new_requests():
    w = bw.InferenceWorker(threads=1, seed=7)
    post = w.run_inference_sync("beta-binomial", CONV).posterior
    results, started = [], threading.Barrier(4)

    def wait_for_draws():
        started.wait(HANG_GUARD)
        try:
            results.append(post.sample_sync(2_000_000))
        except BaseException as exc:  # noqa: BLE001
            results.append(exc)

    threads = [threading.Thread(target=wait_for_draws) for _ in range(3)]
    for t in threads:
        t.start()
    started.wait(HANG_GUARD)
    w.close()
    for t in threads:
        t.join(HANG_GUARD)
    assert not any(t.is_alive() for t in threads)
    assert set(_settled(results)) <= {"draws", "closed"}, results
    with pytest.raises(RuntimeError, match="closed"):
        asyncio.run(w.run_inference("beta-binomial", CONV))
    with pytest.raises(bw.DisposedError, match="closed"):
        post.sample_sync(5)


# ======================================================================================== #
# Timeouts bound a job's own work                                                          #
# ======================================================================================== #

def test_queued_fits_do_not_time_out():
    """200 gathered compound fits of 4 rows with timeout=2 on 2 threads: each fit's own
    work is far below 2 s, however long it waits for a turn (the bug: 122 TimeoutErrors)."""
    data = {"converted": [1, 0, 1, 1], "value": [12.0, 0.0, 30.0, 7.5]}

    async def go():
        async with bw.InferenceWorker(threads=2, seed=8) as w:
            return await asyncio.gather(*(
                w.run_inference("compound-beta-lognormal", data, timeout=2)
                for _ in range(200)), return_exceptions=True)

    results = asyncio.run(go())
    errors = [r for r in results if not isinstance(r, bw.InferenceResult)]
    assert not errors, f"{len(errors)} of 200 failed, e.g. {errors[0]!r}"


def test_a_job_over_its_timeout_is_stopped_and_frees_its_memory():
    """A sample of 64 blocks with a timeout of 1 us: its first block alone takes longer,
    so it stops at the first boundary, in every driver; its output array is freed even
    while worker.error keeps the TimeoutError. (The C stop itself is tested against a
    clock of the test's own in tests/c/stress_core.c.)"""
    n = 64 * _core.SAMPLE_BLOCK
    with bw.InferenceWorker(threads=2, seed=9) as w:
        post = w.run_inference_sync("normal", [1.0, 2.0, 3.0]).posterior

        async def on_the_loop():
            with pytest.raises(TimeoutError, match="sampling timed out"):
                await post.sample(n, timeout=1e-6)
            with pytest.raises(TimeoutError, match="sampling timed out"):
                async for _ in post.sample_batched(n, n // 2, timeout=1e-6):
                    pass

        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            with pytest.raises(TimeoutError, match="sampling timed out"):
                post.sample_sync(n, timeout=1e-6)
            assert isinstance(w.error, TimeoutError)
            with pytest.raises(TimeoutError, match="sampling timed out"):
                list(post.sample_batched_sync(n, n // 2, timeout=1e-6))
            asyncio.run(on_the_loop())
            gc.collect()
            held = tracemalloc.get_traced_memory()[0] - base
        finally:
            tracemalloc.stop()
        assert held < n * 8 // 16, f"{held} bytes still held after four timed-out requests"
        assert w.stats()["live_jobs"] == 0 and w.stats()["pending_requests"] == 0
        assert not w.is_running
        assert post.sample_sync(5).shape == (5,) and w.error is None


BAD_TIMEOUTS = [-1, -0.5, float("nan"), "1", True, [1]]


@pytest.mark.parametrize("timeout", BAD_TIMEOUTS, ids=repr)
def test_every_public_timeout_is_checked_before_any_work(timeout):
    def fresh():
        w = bw.InferenceWorker(threads=2, seed=10)
        return w, w.run_inference_sync("normal-mixture", BIMODAL, components=2).posterior

    w, post = fresh()
    calls = [
        lambda: w.run_inference_sync("beta-binomial", CONV, timeout=timeout),
        lambda: asyncio.run(w.run_inference("beta-binomial", CONV, timeout=timeout)),
        lambda: post.sample_sync(10, timeout=timeout),                       # inline
        lambda: post.sample_sync(100_000, timeout=timeout),
        lambda: asyncio.run(post.sample(10, timeout=timeout)),
        lambda: asyncio.run(post.sample(100_000, timeout=timeout)),
        lambda: next(post.sample_batched_sync(100, 10, timeout=timeout)),
        lambda: asyncio.run(post.sample_batched(100, 10, timeout=timeout).__anext__()),
        lambda: asyncio.run(post.credible_interval_async(0.31, timeout=timeout)),
        lambda: post.sample_predictive_sync(10, timeout=timeout),
        lambda: asyncio.run(post.sample_predictive(100_000, timeout=timeout)),
        lambda: next(post.sample_predictive_batched_sync(100, 10, timeout=timeout)),
        lambda: asyncio.run(post.sample_predictive_batched(100, 10, timeout=timeout)
                            .__anext__()),
    ]
    for k, call in enumerate(calls):
        with pytest.raises(ValueError, match="timeout"):
            call()
    # nothing was drawn, reserved or fitted: the streams start where a fresh worker's do
    assert posteriors(w) == 1
    twin_w, twin = fresh()
    np.testing.assert_array_equal(post.sample_sync(100), twin.sample_sync(100))
    np.testing.assert_array_equal(post.sample_predictive_sync(100),
                                  twin.sample_predictive_sync(100))
    w.close()
    twin_w.close()


# ======================================================================================== #
# Twins: one request, two drivers                                                          #
# ======================================================================================== #

def _draws_every_way(kind: str) -> list[np.ndarray]:
    """The same 30,001 draws of one stream, each on a fresh worker with the same seed."""
    n, b = 30_001, 7_000
    out = []
    for way in ("async", "sync", "batched", "batched-sync"):
        with bw.InferenceWorker(threads=2, seed=11) as w:
            post = w.run_inference_sync("normal-mixture", BIMODAL, components=2).posterior
            pred = kind == "predictive"
            one_shot = post.sample_predictive if pred else post.sample
            batches = post.sample_predictive_batched if pred else post.sample_batched
            if way == "async":
                out.append(asyncio.run(one_shot(n)))
            elif way == "sync":
                out.append((post.sample_predictive_sync if pred else post.sample_sync)(n))
            elif way == "batched":
                async def collect():
                    return [a async for a in batches(n, b)]
                out.append(np.concatenate(asyncio.run(collect())))
            else:
                sync_batches = post.sample_predictive_batched_sync if pred \
                    else post.sample_batched_sync
                out.append(np.concatenate(list(sync_batches(n, b))))
    return out


@pytest.mark.parametrize("kind", ["mean", "predictive"])
def test_the_four_ways_to_draw_give_the_same_draws(kind):
    first, *others = _draws_every_way(kind)
    assert first.shape == (30_001,) and np.isfinite(first).all()
    assert len(np.unique(first)) > 29_000
    for other in others:
        np.testing.assert_array_equal(other, first)


def test_credible_interval_and_its_async_twin_agree():
    with bw.InferenceWorker(threads=2, seed=12) as w:
        proxies = [w.run_inference_sync("lognormal", RNG.lognormal(1, 0.5, 50)).posterior,
                   w.run_inference_sync("normal-mixture", BIMODAL, components=2).posterior]
        comp = w.run_inference_sync("compound-beta-lognormal", REVENUE).posterior
        proxies += [comp, comp.frequency, comp.severity]
        for k, post in enumerate(proxies):
            level = 0.3 + 0.01 * k
            got = asyncio.run(post.credible_interval_async(level))
            assert post.credible_interval(level) is got             # one cache
            post._intervals.pop(level)
            here = post.credible_interval(level)
            np.testing.assert_array_equal(here, got)
            assert here.shape == (len(post.mean()), 2)
            assert (here[:, 0] < post.mean()).all() and (post.mean() < here[:, 1]).all()


# ======================================================================================== #
# Requests of the bridge                                                                   #
# ======================================================================================== #

def test_a_refused_value_names_its_field_in_both_drivers(worker):
    for run in (worker.run_inference_sync,
                lambda *a: asyncio.run(worker.run_inference(*a))):
        with pytest.raises(bw.DataError, match=r"values\[1\] = -2(\.0)? must be positive"):
            run("lognormal", [1.0, -2.0, 3.0])
        assert isinstance(worker.error, bw.DataError)
    assert posteriors(worker) == 0


def test_a_cancelled_fit_leaves_no_posterior():
    """Cancelled in the step it was submitted (before any drain): its posterior, made or
    not yet, is dropped when it arrives."""
    async def go(w):
        tasks = [asyncio.ensure_future(w.run_inference("normal", np.arange(50_000.0)))
                 for _ in range(4)]
        await asyncio.sleep(0)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for _ in range(int(HANG_GUARD * 100)):          # the loop drains the jobs' ends
            if not w.stats()["pending_requests"]:
                break
            await asyncio.sleep(0.01)
        return all(t.cancelled() for t in tasks)

    with bw.InferenceWorker(threads=2, seed=13) as w:
        assert asyncio.run(go(w))
        assert w.stats()["pending_requests"] == 0 and posteriors(w) == 0
        assert not w.is_running


def test_progress_and_error_of_a_request():
    seen = []
    with bw.InferenceWorker(threads=2, seed=14) as w:
        post = w.run_inference_sync("beta-binomial", CONV).posterior
        post.sample_sync(40 * _core.SAMPLE_BLOCK, on_progress=seen.append)
        assert seen[0].fraction == 0.0 and seen[-1].fraction == 1.0
        assert seen[-1].iteration == seen[-1].total_iterations == 40
        assert w.progress == seen[-1] and not w.is_running and w.error is None
        seen.clear()
        post.sample_sync(10, on_progress=seen.append)            # inline: one report
        assert [(p.stage, p.fraction) for p in seen] == [("sampling", 1.0)]
