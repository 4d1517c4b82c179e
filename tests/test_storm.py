"""A storm of concurrent requests on one worker, from several coroutines and two threads.

About 1,000 requests (``BW_STORM_REQUESTS``) over 50 posteriors: fits, ``sample(n)`` with
n from 0 to 200,000, ``credible_interval_async`` at random levels and ``sample_batched``,
with random cancellations (``task.cancel()`` at random times), timeouts of 0 to 5 ms,
``dispose()`` and ``clear_all()`` mid-flight. The main thread runs several coroutines on
its loop; two more threads each run their own event loop on the same workers.

Which requests a random cancellation or timeout catches depends on timing, so their counts
are printed, not asserted. What is asserted happens whatever the timing: requests are
cancelled in the loop step that submitted them (a result is delivered in a later step, so
they are in flight), and each ends cancelled or, if its result was delivered in the very
step of the cancellation, with that result (asyncio.wait_for of Python < 3.12 returns a
result that arrived with the cancellation); endless fits (support.py) with a tiny timeout
end with TimeoutError.

Afterwards every task is settled, nothing is left in flight (``live_jobs`` and
``pending_requests`` are 0 once each loop has drained), the posteriors that were not
disposed give exactly the summaries recorded before the storm, and their draws are
reproducible: a request after the storm equals what a fresh worker with the same seed
draws at the same stream position. Positions are reserved when a request is submitted,
whether or not it completes (``_proxy.py``); a request is submitted in the first step of
its task, so the ledger below records each request's ``n`` in that same step, and the
expected position of a posterior part is the sum over its submitted requests.

The plan of each coroutine is drawn from a seeded generator; only the interleaving, and
so which requests a cancellation or a timeout catches, varies between runs.

Bugs the storm found are fixed; their deterministic regression tests at the bottom must
pass (their xfail conditions are False constants, kept as a record).
"""

from __future__ import annotations

import asyncio
import collections
import os
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

import bayesworker as bw
from support import HANG_GUARD, endless_fit, guarded, until, wait_until

KEYERROR_AFTER_DISPOSE = False   # found by this file and fixed; a regression fails
KEYERROR_AFTER_CLEAR = False   # found by this file and fixed; a regression fails
ORPHAN_FIT = False   # found by this file and fixed; a regression fails
SEED = 4242
N_REQUESTS = int(os.environ.get("BW_STORM_REQUESTS", "1000"))
N_POSTERIORS = 50
MAIN_COROUTINES = 6
THREAD_LOOPS = 2
COROUTINES_PER_THREAD = 2
SIZES = (0, 1, 17, 2048, 2049, 5_000, 20_000, 50_000, 120_000, 200_000)
UNTOUCHED = range(0, 10)          # never sampled in the storm (intervals only)
DISPOSABLE = range(10, 20)        # each disposed once, mid-flight
SAMPLED = range(20, N_POSTERIORS)  # sampled, never disposed
PARTS = {0: None, 1: "frequency", 2: "severity"}


def posterior_data(i: int) -> tuple[str, Any]:
    """Deterministic data of posterior ``i`` (every model, comfortable sizes)."""
    rng = np.random.default_rng(1000 + i)
    kind = i % 7
    if kind == 0:
        n = int(rng.integers(10, 5000))
        return "beta-binomial", {"successes": int(rng.integers(0, n + 1)), "trials": n}
    if kind == 1:
        return "normal", rng.normal(rng.uniform(-50, 50), rng.uniform(0.5, 20), 40)
    if kind == 2:
        return "lognormal", rng.lognormal(rng.uniform(0, 3), rng.uniform(0.2, 1.0), 60)
    if kind == 3:
        return "exponential", rng.exponential(rng.uniform(1, 100), 30)
    if kind == 4:
        return "poisson", rng.poisson(rng.uniform(0.5, 30), 50)
    conv = rng.random(300) < rng.uniform(0.1, 0.5)
    conv[:20] = True
    value = np.where(conv, rng.lognormal(3, 0.6, 300), 0.0)
    model = "compound-beta-lognormal" if kind == 5 else "compound-beta-exponential"
    return model, {"converted": conv, "value": value}


def parts_of(post) -> dict[int, Any]:
    if isinstance(post, bw.CompoundPosteriorProxy):
        return {0: post, 1: post.frequency, 2: post.severity}
    return {0: post}


def summaries(post) -> str:
    out = []
    for part in parts_of(post).values():
        out.append((part.mean().tolist(), part.variance().tolist(), part.parameters,
                    [part.credible_interval(lv).tolist() for lv in (0.95, 0.9, 0.8, 0.5, 0.99)]))
    return repr(out)


@dataclass
class Ledger:
    """What the storm did: submitted draw positions, outcomes, every task."""

    reserved: dict = field(default_factory=lambda: collections.defaultdict(int))
    outcomes: collections.Counter = field(default_factory=collections.Counter)
    tasks: list = field(default_factory=list)
    fits: list = field(default_factory=list)
    intervals: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    requests: int = 0
    cancelled_in_flight: list = field(default_factory=list)   # tasks cancelled once submitted
    ended: dict = field(default_factory=dict)                # task: its outcome
    endless: int = 0                                         # endless fits with a timeout
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reserve(self, key: tuple[int, int], n: int) -> None:
        with self.lock:
            self.reserved[key] += n

    def outcome(self, name: str) -> None:
        with self.lock:
            self.outcomes[name] += 1
            self.ended[asyncio.current_task()] = name


class Storm:
    def __init__(self) -> None:
        self.w = bw.InferenceWorker(threads=2, seed=SEED)
        self.w2 = bw.InferenceWorker(threads=2, seed=SEED + 1)   # gets clear_all()
        self.posts = [self.w.run_inference_sync(*posterior_data(i)).posterior
                      for i in range(N_POSTERIORS)]
        self.before = [summaries(p) for p in self.posts]
        self.q = [self.w2.run_inference_sync(*posterior_data(i)).posterior for i in range(10)]
        self.ledger = Ledger()
        self.disposed: set[int] = set()
        self.cleared_at: float | None = None
        self.clear_lock = threading.Lock()

    # -- one request ------------------------------------------------------------------
    async def sample(self, idx: int, part: int, n: int, timeout: float | None,
                     track: bool) -> None:
        post = parts_of(self.posts[idx])[part]
        if track:
            self.ledger.reserve((idx, part), n)      # same step as the reservation
        out = await post.sample(n, timeout=timeout)
        assert out.shape == (n,) and out.dtype == np.float64
        assert not np.isnan(out).any()

    async def batched(self, idx: int, part: int, n: int, b: int, timeout: float | None,
                      track: bool) -> None:
        post = parts_of(self.posts[idx])[part]
        if track:
            self.ledger.reserve((idx, part), n)      # reserved by the first __anext__
        gen = post.sample_batched(n, b, timeout=timeout)
        total = 0
        try:
            async for arr in gen:
                assert arr.size <= b and not np.isnan(arr).any()
                total += arr.size
        finally:
            await gen.aclose()
        assert total == n

    async def interval(self, post, level: float, timeout: float | None) -> None:
        ci = await post.credible_interval_async(level, timeout=timeout)
        assert ci.shape == (1, 2) and np.isfinite(ci).all() and ci[0, 0] <= ci[0, 1]
        with self.ledger.lock:
            self.ledger.intervals.append((post, level, ci.copy()))

    async def fit(self, worker, i: int, timeout: float | None) -> None:
        model, data = posterior_data(i)
        res = await worker.run_inference(model, data, timeout=timeout)
        with self.ledger.lock:
            self.ledger.fits.append((worker, i, res.posterior))

    async def on_w2(self, rng: random.Random, timeout: float | None) -> None:
        post = rng.choice(self.q)
        if rng.random() < 0.5:
            await post.sample(rng.choice(SIZES), timeout=timeout)
        else:
            await self.fit(self.w2, rng.randrange(N_POSTERIORS), timeout)

    async def endless(self) -> None:
        """A fit that only its tiny timeout can end."""
        with self.ledger.lock:
            self.ledger.endless += 1
        await guarded(endless_fit(self.w, timeout=0.001), "an endless fit's timeout")

    async def dispose(self, idx: int) -> None:
        await self.posts[idx].dispose()
        with self.ledger.lock:
            self.disposed.add(idx)

    def clear_w2(self) -> None:
        with self.clear_lock:
            if self.cleared_at is None:
                self.cleared_at = time.monotonic()
                self.w2.clear_all()

    # -- a coroutine of the storm --------------------------------------------------------
    async def coroutine(self, name: str, n_requests: int, rng: random.Random,
                        disposals: list[int], clear: bool) -> None:
        loop = asyncio.get_running_loop()
        tasks = []
        dispose_at = dict(zip(rng.sample(range(n_requests), len(disposals)), disposals))
        clear_at = rng.randrange(n_requests // 3, n_requests) if clear else -1
        for step in range(n_requests):
            if step in dispose_at:
                coro = self.dispose(dispose_at.pop(step))
                kind = "dispose"
            elif step == clear_at:
                coro = asyncio.to_thread(self.clear_w2) if rng.random() < 0.5 else \
                    _call(self.clear_w2)
                kind = "clear_all"
            elif rng.random() < 0.02:
                coro, kind = self.endless(), "endless"
            else:
                coro, kind = self.random_request(rng)
            task = loop.create_task(_settle(coro, kind, self.ledger))
            tasks.append(task)
            with self.ledger.lock:
                self.ledger.requests += 1
                self.ledger.tasks.append(task)
            cancel = rng.random() if kind not in ("dispose", "clear_all", "endless") else 1.0
            if cancel < 0.1:
                await asyncio.sleep(0)          # the task's first step: its request submitted
                if not task.done():             # not refused or answered on the spot
                    task.cancel()
                    with self.ledger.lock:
                        self.ledger.cancelled_in_flight.append(task)
            elif cancel < 0.2:
                loop.call_later(rng.uniform(0, 0.005), task.cancel)
            await asyncio.sleep(rng.choice((0, 0, 0, 0.0002, 0.001)))
        for idx in dispose_at.values():             # leftovers (tiny n_requests)
            await self.dispose(idx)
        await asyncio.gather(*tasks, return_exceptions=True)
        assert all(t.done() for t in tasks), f"{name}: a task is not settled"

    def random_request(self, rng: random.Random):
        timeout = rng.uniform(0, 0.005) if rng.random() < 0.2 else None
        r = rng.random()
        if r < 0.08:
            return self.on_w2(rng, timeout), "w2"
        if r < 0.16:
            return self.fit(self.w, rng.randrange(N_POSTERIORS), timeout), "fit"
        if r < 0.34:
            idx = rng.randrange(N_POSTERIORS)
            part = rng.choice(list(parts_of(self.posts[idx])))
            post = parts_of(self.posts[idx])[part]
            return self.interval(post, round(rng.uniform(0.01, 0.999), 6), timeout), "interval"
        idx = rng.choice([*DISPOSABLE, *SAMPLED, *SAMPLED])
        part = rng.choice(list(parts_of(self.posts[idx])))
        n = rng.choice(SIZES)
        track = idx in SAMPLED
        if r < 0.46:
            b = rng.choice((1_000, 7_777, 32_768, 100_000))
            n = min(n, 100 * b)
            return self.batched(idx, part, n, b, timeout, track), "batched"
        return self.sample(idx, part, n, timeout, track), "sample"

    async def loop_main(self, name: str, specs: list[tuple[int, random.Random, list[int], bool]]):
        await asyncio.gather(*(self.coroutine(f"{name}/{k}", n, rng, disp, clear)
                               for k, (n, rng, disp, clear) in enumerate(specs)))
        await drain(self.w, self.w2)


async def _call(fn):
    fn()


async def _settle(coro, kind: str, ledger: Ledger) -> None:
    """Run one request; record its outcome; only documented outcomes are allowed."""
    try:
        await coro
    except asyncio.CancelledError:
        ledger.outcome(f"{kind}: cancelled")
        raise
    except TimeoutError:
        ledger.outcome(f"{kind}: timeout")
    except bw.DisposedError:
        ledger.outcome(f"{kind}: disposed")
    except BaseException as exc:  # noqa: BLE001
        ledger.outcome(f"{kind}: {type(exc).__name__}")
        with ledger.lock:
            ledger.errors.append((kind, exc))
    else:
        ledger.outcome(f"{kind}: ok")


async def drain(*workers) -> None:
    """Let this loop see every job end, and deliver what its channel holds: once no job is
    live, every completion is in a channel, and a few loop steps (each polls the channel's
    descriptor) deliver this loop's."""
    await until(lambda: not any(w.stats()["live_jobs"] for w in workers),
                "every job of the storm to end")
    for _ in range(5):
        await asyncio.sleep(0)


def run_storm() -> Storm:
    s = Storm()
    plan_rng = random.Random(SEED)
    n_coroutines = MAIN_COROUTINES + THREAD_LOOPS * COROUTINES_PER_THREAD
    sizes = [N_REQUESTS // n_coroutines + (k < N_REQUESTS % n_coroutines)
             for k in range(n_coroutines)]
    disposals = list(DISPOSABLE)
    plan_rng.shuffle(disposals)
    chunks = [disposals[k::n_coroutines] for k in range(n_coroutines)]
    clearer = plan_rng.randrange(MAIN_COROUTINES, n_coroutines)   # a thread clears w2
    specs = []
    for k in range(n_coroutines):
        specs.append((sizes[k], random.Random(SEED * 1000 + k), chunks[k], k == clearer))
    main_specs = specs[:MAIN_COROUTINES]
    thread_specs = [specs[MAIN_COROUTINES + t * COROUTINES_PER_THREAD:
                          MAIN_COROUTINES + (t + 1) * COROUTINES_PER_THREAD]
                    for t in range(THREAD_LOOPS)]
    errors: list[BaseException] = []

    def thread_main(t: int) -> None:
        try:
            asyncio.run(s.loop_main(f"thread{t}", thread_specs[t]))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=thread_main, args=(t,), name=f"storm-{t}")
               for t in range(THREAD_LOOPS)]
    for t in threads:
        t.start()
    asyncio.run(s.loop_main("main", main_specs))
    for t in threads:
        t.join(2 * HANG_GUARD)
        assert not t.is_alive(), f"hang guard: {t.name} hangs"
    assert not errors, errors
    return s


@pytest.fixture(scope="module")
def storm():
    t0 = time.monotonic()
    s = run_storm()
    s.seconds = time.monotonic() - t0
    yield s
    print(f"\ntest_storm: {s.ledger.requests} requests in {s.seconds:.1f} s over "
          f"{N_POSTERIORS} posteriors, 3 event loops (main + 2 threads)")
    for k, v in sorted(s.ledger.outcomes.items()):
        print(f"  {k}: {v}")
    s.w.close()
    s.w2.close()


def test_every_request_settles_with_a_documented_outcome(storm):
    led = storm.ledger
    assert led.requests == N_REQUESTS
    assert all(t.done() for t in led.tasks)
    known = KEYERROR_AFTER_DISPOSE or KEYERROR_AFTER_CLEAR
    errors = [(kind, exc) for kind, exc in led.errors
              if not (known and type(exc) is KeyError and "not in the store" in str(exc))]
    assert not errors, errors[:5]
    # the storm did what it is meant to do
    kinds = collections.Counter(k.split(":")[0] for k in led.outcomes.elements())
    for kind in ("sample", "batched", "interval", "fit", "w2", "dispose", "clear_all",
                 "endless"):
        assert kinds[kind] > 0, kind
    # what happens whatever the timing: a request cancelled once submitted ends cancelled,
    # and an endless fit ends by its timeout (the random cancellations and timeouts catch
    # what they catch: printed, not asserted)
    assert len(led.cancelled_in_flight) > N_REQUESTS // 50
    for t in led.cancelled_in_flight:
        assert t.cancelled() or led.ended[t].endswith(": ok"), led.ended.get(t)
    assert sum(t.cancelled() for t in led.cancelled_in_flight) > N_REQUESTS // 100
    assert led.outcomes["endless: timeout"] == led.endless > 0
    assert led.outcomes["dispose: ok"] == len(DISPOSABLE)
    assert storm.cleared_at is not None
    # disposed posteriors are only met by requests on DISPOSABLE posteriors or on w2
    allowed = {"sample", "batched", "interval", "w2"}
    assert all(k.split(":")[0] in allowed for k in led.outcomes if k.endswith("disposed"))


def test_nothing_is_left_in_flight(storm):
    for w in (storm.w, storm.w2):
        stats = w.stats()
        assert stats["live_jobs"] == 0
        assert stats["pending_requests"] == 0, stats
        assert not w.is_running


def test_survivors_keep_their_exact_summaries(storm):
    for i, post in enumerate(storm.posts):
        if i in DISPOSABLE:
            assert post.disposed
            with pytest.raises(bw.DisposedError, match="disposed"):
                post.mean()
            continue
        assert not post.disposed
        assert summaries(post) == storm.before[i], f"posterior {i} changed in the storm"
    for post, level, ci in storm.ledger.intervals:
        if not post.disposed:
            np.testing.assert_array_equal(post.credible_interval(level), ci)
    for q in storm.q:                                # w2 was cleared mid-storm
        with pytest.raises(bw.DisposedError, match="clear_all"):
            q.mean()


def test_fits_made_in_the_storm_are_exact_and_accounted_for(storm):
    with bw.InferenceWorker(threads=0, seed=1) as ref:
        for worker, i, post in storm.ledger.fits:
            if post.disposed:
                assert worker is storm.w2
                continue
            expected = ref.run_inference_sync(*posterior_data(i)).posterior
            assert summaries(post) == summaries(expected)
    live_w = {p.id for p in storm.posts if not p.disposed}
    live_w |= {p.id for w, _, p in storm.ledger.fits if w is storm.w}
    stored = {item["id"] for item in storm.w.stats()["items"]}
    orphans = stored - live_w
    assert live_w <= stored
    if orphans and ORPHAN_FIT:
        pytest.xfail(f"known bug: cancelled fits left orphan posteriors {sorted(orphans)}")
    assert not orphans, (
        f"posteriors {sorted(orphans)} are in the store with no proxy: fits cancelled after "
        f"their job finished (see test_lifecycle.py::test_cancelled_fit_leaves_no_orphan)")


def test_draws_after_the_storm_are_reproducible(storm):
    k = 3000
    with bw.InferenceWorker(threads=1, seed=SEED) as fresh:
        twins = [fresh.run_inference_sync(*posterior_data(i)).posterior
                 for i in range(N_POSTERIORS)]
        assert [t.id for t in twins] == [p.id for p in storm.posts]
        checked = 0
        for i in [*UNTOUCHED, *SAMPLED]:
            for part, proxy in parts_of(storm.posts[i]).items():
                position = storm.ledger.reserved.get((i, part), 0)
                if i in UNTOUCHED:
                    assert position == 0
                # the stream is exactly where the ledger says: the next draws are the twin's
                # after as many positions
                twin = parts_of(twins[i])[part]
                if position:
                    gen = twin.sample_batched_sync(position, 1 << 20)
                    for _ in gen:
                        pass
                got = proxy.sample_sync(k)
                want = twin.sample_sync(k)
                np.testing.assert_array_equal(got, want, err_msg=f"posterior {i} part {part}")
                checked += 1
        assert checked >= len(UNTOUCHED) + len(SAMPLED)


@pytest.mark.xfail(KEYERROR_AFTER_DISPOSE, strict=True,
                   reason="_proxy.py: sample_batched submits later batches with "
                          "core.sample(..., start); when the posterior was disposed in "
                          "between, the C core's bare KeyError escapes instead of "
                          "DisposedError")
@pytest.mark.parametrize("threads", [0, 2])
def test_dispose_between_batches_raises_disposed_error(threads):
    async def consume(post):
        got = 0
        gen = post.sample_batched(50_000, 5_000)
        try:
            async for b in gen:
                got += b.size
                if got == 5_000:
                    await post.dispose()
        finally:
            await gen.aclose()
        return got

    with bw.InferenceWorker(threads=threads, seed=1) as w:
        post = w.run_inference_sync("normal", [1.0, 2.0]).posterior
        gen = post.sample_batched_sync(50_000, 5_000)
        next(gen)
        post.dispose_sync()
        with pytest.raises(bw.DisposedError, match="disposed"):
            for _ in gen:
                pass
        post = w.run_inference_sync("normal", [1.0, 2.0]).posterior
        with pytest.raises(bw.DisposedError, match="disposed"):
            asyncio.run(consume(post))


@pytest.mark.xfail(KEYERROR_AFTER_CLEAR, strict=True,
                   reason="_worker.py _result: core.get(post_id) raises the C core's bare "
                          "KeyError when clear_all/evict_idle/close removed the posterior "
                          "between the end of the fit and the building of its result")
def test_fit_cleared_as_it_ends_raises_disposed_error():
    w = bw.InferenceWorker(threads=2, seed=3)

    async def main():
        task = asyncio.ensure_future(w.run_inference("normal", [1.0, 2.0, 3.0]))
        await asyncio.sleep(0)
        # the fit ends; blocking this thread, the loop cannot deliver it
        wait_until(lambda: w.stats()["live_jobs"] == 0, "the fit to end")
        w.clear_all()
        with pytest.raises(bw.DisposedError):
            await task

    try:
        asyncio.run(main())
    finally:
        w.close()
