"""The asyncio bridge: requests written once, driven on an event loop or on this thread.

C threads never call into Python. A finished job goes on a completion channel, one per
event loop, whose file descriptor the loop watches with ``add_reader``; the loop thread
drains it and wakes the futures. Blocking drivers wait in C with the GIL released.

A *request* is a generator (the style of psycopg's ``generators.py``). It yields steps and
returns its value:

- a :class:`Call`: "submit this job (if it is not submitted yet) and wait for it"; the
  driver sends back the call's value (a fit's job, an interval, an array of draws);
- ``Start(call)``: submit it now and go on without waiting (a batch drawn ahead);
- ``Emit(value)``: hand ``value`` to the caller of an iterating driver.

The drivers: :meth:`Bridge.run_async` / :meth:`Bridge.iterate_async` on the running
loop, :meth:`Bridge.run_sync` / :meth:`Bridge.iterate_sync` blocking on this thread, and
:meth:`Bridge.run_here`, which computes every call on this thread at once (a call's
``here`` function) without any bookkeeping. So ``sample`` and ``sample_sync`` are one
request with two drivers, and so are ``credible_interval`` and ``credible_interval_async``.

A :class:`Handle` is one stored posterior, shared by every proxy of it; when the last
proxy lets go of it, its finaliser frees the posterior in the C store.

The bridge knows the C core (the Core it is given, and `_core`'s constants), never the
worker or the proxies: they import it, it imports neither.

>>> import bayesworker as bw
>>> from bayesworker._bridge import Bridge
>>> with bw.InferenceWorker(threads=1, seed=7) as w:
...     post = w.run_inference_sync("beta-binomial", {"successes": 3, "trials": 10}).posterior
...     handle = w.posterior_handle(post.id)
...     def two_intervals():
...         lo = yield handle.interval(0, 0.5)
...         hi = yield handle.interval(0, 0.9)
...         return lo[1] < hi[1]
...     print(handle.bridge.run_sync(two_intervals()), handle.bridge.run_here(two_intervals()))
True True
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from typing import Any, NamedTuple, Protocol

import numpy as np

from . import _core
from ._rules import value_error
from ._errors import DataError, DisposedError, ModelError
from ._progress import IDLE, Progress

FITTING, SAMPLING, INTERVAL = "fitting", "sampling", "interval"
DEFAULT_TIMEOUT = 30.0
DEFAULT_LONG_SAMPLE_TIMEOUT = 60.0
LONG_SAMPLE = 10_000            # draws above which the sampling default is the long one
PROGRESS_TICK = 0.1             # seconds between on_progress reports while a job runs
_REAP_EVERY = 64                # submissions between sweeps for requests of closed loops
_MEMCHECK_BYTES = 1 << 26       # outputs above 64 MiB are checked against available memory

Request = Generator[Any, Any, Any]


# ======================================================================================== #
# Small helpers                                                                            #
# ======================================================================================== #

def timeout_limit(timeout: float | None, stage: str, n: int = 0) -> float:
    """The validated timeout in seconds: ``timeout``, or the default of ``stage``."""
    if timeout is None:
        return DEFAULT_LONG_SAMPLE_TIMEOUT if (stage == SAMPLING and n > LONG_SAMPLE) \
            else DEFAULT_TIMEOUT
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float, np.number)) \
            or not timeout >= 0:
        raise ValueError(f"timeout = {timeout!r} must be a number of seconds >= 0")
    return float(timeout)


def _available_bytes() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:  # pragma: no cover
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        return None


def output_array(n: int, width: int = 1) -> np.ndarray:
    """An uninitialised float64 array of ``n`` draws (shape ``(n,)``, or ``(n, width)`` for
    a vector quantity), or MemoryError if it cannot fit."""
    nbytes = 8 * n * width
    if nbytes > _MEMCHECK_BYTES:
        avail = _available_bytes()
        if avail is not None and nbytes > avail:
            raise MemoryError(f"n = {n} draws need {nbytes / 2**30:.1f} GiB; only "
                              f"{avail / 2**30:.1f} GiB of memory is available")
    return np.empty((n, width) if width > 1 else n, dtype=np.float64)


def on_loop(loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], *args: Any) -> None:
    """Run ``fn(*args)`` on ``loop``'s thread: now if this is that thread, else soon; never
    on a closed loop."""
    if loop.is_closed():
        return
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        fn(*args)
        return
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:        # closed in between
        pass


def _rule_code(exc: DataError) -> int | None:
    """The code of the value rule a refused value broke (``_data.value_error``'s key), from
    the core's DataError (its ``rule`` name), or None if it names none."""
    rules = _core.VALUE_RULES
    return rules.index(exc.rule) if exc.rule in rules[1:] else None


def _itself(job: Any) -> Any:
    return job


# ======================================================================================== #
# Steps of a request                                                                       #
# ======================================================================================== #

class Call:
    """One piece of work of a request: a C job to submit, or a computation done here.

    ``submit(channel, limit)`` submits the job (``channel`` None: a blocking driver waits
    for it) and returns it; an ``instant`` call's job is finished when ``submit`` returns
    (it ran on the calling thread), so it gets no channel and no future; ``result(job)`` is the value a finished job delivers (the job
    itself by default). ``here()`` computes the value on the calling thread instead: a call
    with no ``submit`` is always computed here; :meth:`Bridge.run_here` computes every call
    here. ``timeout`` is validated at once (``limit``, seconds). ``request`` (a fit's
    FitRequest) names the field of a refused value; ``handle`` and ``label`` name the
    posterior of a DisposedError.
    """

    __slots__ = ("stage", "submit", "here", "result", "limit", "on_progress", "request",
                 "handle", "label", "instant", "job", "fut", "delivered", "orphan")

    def __init__(self, stage: str, submit: Callable[[Any, float], Any] | None = None, *,
                 here: Callable[[], Any] | None = None,
                 result: Callable[[Any], Any] = _itself, timeout: float | None = None,
                 n: int = 0, on_progress: Callable[[Progress], None] | None = None,
                 request: Any = None, handle: "Handle | None" = None,
                 label: str | None = None, instant: bool = False) -> None:
        self.stage = stage
        self.submit = submit
        self.here = here
        self.result = result
        self.limit = timeout_limit(timeout, stage, n)
        self.on_progress = on_progress
        self.request = request
        self.handle = handle
        self.label = label
        self.instant = instant
        self.job: Any = None                        # once submitted
        self.fut: asyncio.Future | None = None      # once submitted on an event loop
        self.delivered = False                      # its value went back to the request
        self.orphan = False     # a fit whose caller gave up: drop its posterior on arrival

    def release(self) -> None:
        """Let go of the job, its arrays and the posterior (a call that failed or was
        abandoned): an exception whose traceback holds this call keeps none of them."""
        self.job = self.fut = self.submit = self.here = self.handle = self.request = None
        self.result = _itself

    def __repr__(self) -> str:
        state = "here" if self.job is None else f"job {self.job.id} {self.job.status}"
        return f"<Call {self.stage} {state}>"


class Start(NamedTuple):
    """Step: submit ``call`` now and go on; a later ``yield call`` waits for it."""
    call: Call


class Emit(NamedTuple):
    """Step: hand ``value`` to the caller of an iterating driver."""
    value: Any


def one(call: Call) -> Request:
    """The request of a single call."""
    return (yield call)


# ======================================================================================== #
# Posterior handles                                                                        #
# ======================================================================================== #

class Handle:
    """One posterior in the C store, shared by every proxy of it (a compound's parts, a
    mixture's streams). When the last proxy lets go of it, its finaliser frees the
    posterior: from any thread, and harmlessly after close, after fork (the core then
    refuses to touch the parent's store) and at interpreter shutdown.

    Its operations: :meth:`check` (DisposedError if gone), :attr:`gone` (why, or None),
    :meth:`dispose`, the calls of requests on it: :meth:`draws`, :meth:`reserve`,
    :meth:`interval`, and :meth:`interval_here`, an interval computed at once.
    """

    __slots__ = ("bridge", "id", "reason", "__weakref__")

    def __init__(self, bridge: "Bridge", post_id: int) -> None:
        self.bridge = bridge
        self.id = post_id
        self.reason: str | None = None      # why it is gone, set by the bridge

    def __del__(self) -> None:
        try:
            self.bridge.core.remove(self.id)
            self.bridge.unlist(self)
        except Exception:  # noqa: BLE001 - a finaliser never raises (interpreter shutdown)
            pass

    @property
    def gone(self) -> str | None:
        """Why the posterior is gone (disposed, cleared, evicted, closed), or None."""
        return self.reason

    def gone_error(self, label: str | None) -> DisposedError:
        """The DisposedError of a use of this posterior (``label``: the proxy's quantity)."""
        if self.reason is None:
            self.reason = self.bridge.why_gone()
        return DisposedError(f"posterior {self.id} ({label}) is gone: {self.reason}")

    def check(self, label: str | None = None) -> None:
        """Count a use (for evict_idle); DisposedError if the posterior is gone."""
        if self.reason is None and not self.bridge.core.touch(self.id):
            self.reason = self.bridge.why_gone()
        if self.reason is not None:
            raise self.gone_error(label)

    def dispose(self) -> None:
        """Free the posterior now; later use raises DisposedError("... disposed")."""
        self.bridge.dispose(self.id, "disposed")

    # -- calls on this posterior ---------------------------------------------------------
    def draws(self, part: int, n: int, *, start: int = -1, inline: bool = False,
              timeout: float | None = None,
              on_progress: Callable[[Progress], None] | None = None,
              label: str | None = None, width: int = 1) -> Call:
        """``n`` draws of ``part``'s stream (reserved at submission, or from ``start``).
        ``inline``: drawn on the calling thread (a short request). ``width``: numbers per
        draw (a vector quantity's draws have shape ``(n, width)``)."""
        core, post_id = self.bridge.core, self.id
        out: list[np.ndarray] = []

        def submit(channel: Any, limit: float) -> Any:
            out.append(output_array(n, width))
            return core.sample(post_id, part, out[0], channel, start, timeout=limit)

        def here() -> np.ndarray:
            return core.sample_now(post_id, part, output_array(n, width))

        return Call(SAMPLING, None if inline else submit, here=here,
                    result=lambda job: out[0], timeout=timeout, n=n,
                    on_progress=on_progress, handle=self, label=label)

    def reserve(self, part: int, n: int, label: str | None = None) -> Call:
        """Reserve ``n`` positions of ``part``'s stream; the call's value is the first."""
        core, post_id = self.bridge.core, self.id
        return Call(SAMPLING, here=lambda: core.reserve(post_id, part, n), handle=self,
                    label=label)

    def interval_here(self, part: int, level: float, label: str | None = None) -> Any:
        """``(lo, hi)``: what :meth:`interval`'s call computes here, computed at once (no
        request to drive); a refusal is mapped as :meth:`Bridge.user_error` maps it."""
        try:
            return self.bridge.core.interval_now(self.id, part, level)
        except Exception as exc:
            raise self.bridge.user_error(Call(INTERVAL, handle=self, label=label),
                                         exc) from None

    def interval(self, part: int, level: float, *, timeout: float | None = None,
                 label: str | None = None) -> Call:
        """The central interval of ``part`` at ``level``: its value is ``(lo, hi)``."""
        core, post_id = self.bridge.core, self.id
        return Call(INTERVAL, lambda channel, limit: core.interval(post_id, part, level,
                                                                   channel, timeout=limit),
                    here=lambda: core.interval_now(post_id, part, level),
                    result=lambda job: job.result, timeout=timeout, handle=self,
                    label=label)


class Owner(Protocol):
    """What a proxy is made from (the worker): the shared handle of a posterior."""

    def posterior_handle(self, post_id: int) -> Handle: ...


# ======================================================================================== #
# Driving a request                                                                        #
# ======================================================================================== #

class _Drive:
    """One request being driven: its generator, the calls it started, its value.

    ``finish``: a blocking driver's function that computes a call's value on this thread;
    None for the async driver, to which :meth:`advance` hands each call to await.
    """

    def __init__(self, bridge: "Bridge", request: Request,
                 finish: Callable[[Call], Any] | None) -> None:
        self.bridge = bridge
        self.request = request
        self.finish = finish
        self.started: list[Call] = []
        self.value: Any = None

    def __enter__(self) -> "_Drive":
        return self

    def __exit__(self, *exc: Any) -> None:
        """The request is over (done, failed, or its caller let go): whatever it started
        and did not receive is abandoned."""
        self.request.close()
        for call in self.started:
            if not call.delivered:
                self.bridge._abandon(call)

    def _start(self, call: Call) -> None:
        if call.submit is not None and call.job is None:
            self.bridge._submit(call, async_=self.finish is None)
            # keep only the calls not yet delivered (a long batched request must not hold
            # every batch it emitted): at most the current one and the one drawn ahead
            if self.started:
                self.started = [c for c in self.started if not c.delivered]
            self.started.append(call)

    def advance(self, sent: Any = None) -> Call | Emit | None:
        """Run the request to its next step that needs the driver: a call to await (async
        driver only), an Emit, or None once it returned (its value in ``value``)."""
        while True:
            try:
                step = self.request.send(sent)
            except StopIteration as stop:
                self.value = stop.value
                return None
            sent = None
            if isinstance(step, Emit):
                return step
            call = step.call if isinstance(step, Start) else step
            self._start(call)
            if isinstance(step, Start):
                continue
            if self.finish is None:
                return call
            sent = self.finish(call)

    def result(self) -> Any:
        """Drive a request that emits nothing to its value (blocking drivers)."""
        with self:
            if self.advance() is not None:
                raise TypeError("a request that emits values must be iterated")
            return self.value


class Bridge:
    """The asyncio bridge of one C core: channels, futures, progress, posterior handles.

    Its interface: the drivers (``run_async``, ``run_sync``, ``run_here``,
    ``iterate_async``, ``iterate_sync``), ``handle(post_id)``, ``dispose(post_id, reason)``,
    ``forget(ids, reason)``, ``close()``, and the state ``progress``, ``is_running``,
    ``error``, ``pending``.
    """

    def __init__(self, core: Any) -> None:
        self.core = core
        # event loop -> (job id -> call awaited on it): a drain, an abandon and a submission
        # touch only their own loop's entry, and a closed loop's calls are found at once
        self._waiting: dict[asyncio.AbstractEventLoop, dict[int, Call]] = {}
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._channels: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        # post id -> weak reference to its Handle; a handle takes itself out when it goes
        # (a plain dict of weakref.ref: a WeakValueDictionary costs microseconds per entry)
        self._handles: dict[int, weakref.ref] = {}
        self._active = 0
        self._submits = 0
        self._current: Call | None = None
        self._last_progress: Progress = IDLE
        self._last_instant: tuple[str, Any] | None = None   # (stage, job): the latest
        # call if it was instant, its Progress made when read

    # -- state ---------------------------------------------------------------------------
    @property
    def pending(self) -> dict[int, Call]:
        """Every call awaited on an event loop, by job id (a new dict)."""
        return {job_id: call for calls in list(self._waiting.values())
                for job_id, call in list(calls.items())}

    @property
    def is_running(self) -> bool:
        """True while a job of any request is in flight."""
        return self._active > 0

    @property
    def progress(self) -> Progress:
        """Progress of the latest call (stage, fraction, iteration, total_iterations)."""
        current = self._current
        job = current.job if current is not None else None
        if job is not None and not job.done:
            return Progress.of_job(current.stage, job)
        last = self._last_instant
        if last is not None:
            self._last_progress = Progress.of_job(*last)
            self._last_instant = None
        return self._last_progress

    @staticmethod
    def _report(call: Call, stage: str = "running") -> None:
        """Tell the call's on_progress, if any: it "started", is "running" (its job's
        progress now), or was "computed" here in one go."""
        if call.on_progress is None:
            return
        if stage == "started":
            progress = Progress(call.stage, 0.0, 0, call.job.progress[1])
        elif stage == "computed":
            progress = Progress(call.stage, 1.0, 1, 1)
        else:
            progress = Progress.of_job(call.stage, call.job)
        call.on_progress(progress)

    # -- the store -----------------------------------------------------------------------
    def handle(self, post_id: int) -> Handle:
        """The shared handle of a posterior (made on first use)."""
        with self._lock:
            ref = self._handles.get(post_id)
            h = ref() if ref is not None else None
            if h is None:
                h = Handle(self, post_id)
                self._handles[post_id] = weakref.ref(h)
        return h

    def unlist(self, handle: Handle) -> None:
        """``handle`` is going (its finaliser): it is no longer the handle of its posterior."""
        ref = self._handles.get(handle.id)
        if ref is not None and ref() in (handle, None):
            self._handles.pop(handle.id, None)

    def why_gone(self) -> str:
        """Why a posterior that is not in the store is gone, as far as the core knows."""
        if self.core.inherited:
            return ("its worker was inherited through fork and is closed in this process; "
                    "create a new InferenceWorker here")
        if self.core.closed:
            return "its worker was closed"
        return "it is no longer in the store"

    def forget(self, ids: list[int], reason: str) -> None:
        """Posteriors ``ids`` left the store: their handles say ``reason`` from now on."""
        for post_id in ids:
            ref = self._handles.get(post_id)
            h = ref() if ref is not None else None
            if h is not None and h.reason is None:
                h.reason = reason

    def dispose(self, post_id: int, reason: str) -> None:
        """Free one posterior now."""
        self.core.remove(post_id)
        self.forget([post_id], reason)

    # -- the one error mapping -----------------------------------------------------------
    def user_error(self, call: Call, exc: BaseException | None = None) -> BaseException:
        """The exception a user sees for a call that failed: ``exc`` raised by a core
        function, or (``exc`` None) the outcome of the call's finished job.

        The only place where the core's errors become bayesworker's: a refused value
        becomes a DataError naming the request's field, index and value; a failed
        computation a ModelError; a posterior missing from the store a DisposedError; a
        job over its timeout a TimeoutError, and every message says which stage failed.
        """
        if exc is not None:
            if isinstance(exc, DisposedError) and call.handle is not None:
                return call.handle.gone_error(call.label)
            return exc
        job, stage = call.job, call.stage
        exc = job.exception
        if isinstance(exc, DataError) and call.request is not None:
            code = _rule_code(exc)
            if code is not None:
                return value_error(call.request.model, call.request.values_name, code,
                                   exc.index, exc.value)
        if isinstance(exc, TimeoutError):
            return TimeoutError(f"{stage} {exc}")
        if isinstance(exc, ModelError):
            return ModelError(f"{stage} failed: {exc}")
        if job.status == "cancelled" and self.core.closed:
            return RuntimeError(f"the worker was closed while this request ({stage}) was "
                                f"in flight")
        return exc

    def _compute(self, call: Call) -> Any:
        """A call's value computed on this thread, its errors mapped."""
        try:
            return call.here()
        except Exception as exc:
            raise self.user_error(call, exc) from None

    def _deliver(self, call: Call) -> Any:
        """The value of a call whose job finished: the job's output, or its error."""
        if call.job.status != "ok":
            raise self.user_error(call)
        call.delivered = True
        self._report(call)
        return call.result(call.job)

    def _finish_instant(self, call: Call) -> Any:
        """The value of an instant call: its job ran to its end on this thread when it was
        submitted. Nothing is in flight, so nothing waits and ``is_running`` never counts
        it; ``on_progress`` hears "started" and the end, as from any job, and ``progress``
        shows the end (made only when read)."""
        self.error = None
        self._last_instant = call.stage, call.job
        try:
            self._report(call, "started")
            return self._deliver(call)
        except Exception as exc:        # the job failed, or on_progress raised
            self.error = exc
            call.delivered = False      # its value never reached the request:
            self._abandon(call)         # a fit's posterior, if made, goes now
            raise

    def _finish_here(self, call: Call) -> Any:
        """A call computed at once on this thread (short: not counted in is_running)."""
        self.error = None
        try:
            value = self._compute(call)
        except Exception as exc:
            self.error = exc
            raise
        call.delivered = True
        self._report(call, "computed")
        return value

    # -- drivers -------------------------------------------------------------------------
    def run_here(self, request: Request) -> Any:
        """Compute every call of ``request`` on this thread, at once; no bookkeeping."""
        value = None
        try:
            while True:
                step = request.send(value)
                value = None if isinstance(step, Start) else self._compute(step)
        except StopIteration as stop:
            return stop.value

    def attempt_here(self, request: Request) -> tuple[Any, Exception | None]:
        """:meth:`run_here`, its error returned instead of raised: ``(value, None)`` or
        ``(None, exc)`` (for a repr, which must not raise)."""
        try:
            return self.run_here(request), None
        except Exception as exc:  # noqa: BLE001 - handed back to the caller
            return None, exc

    def run_sync(self, request: Request) -> Any:
        """Drive ``request`` to its value, blocking this thread (the GIL released)."""
        return _Drive(self, request, self._finish_sync).result()

    def iterate_sync(self, request: Request) -> Iterator[Any]:
        """Drive ``request``, blocking; a generator of what it emits."""
        with _Drive(self, request, self._finish_sync) as drive:
            while (step := drive.advance()) is not None:
                yield step.value

    async def run_async(self, request: Request) -> Any:
        """Drive ``request`` to its value on the running event loop (a plain coroutine:
        no async generator between the caller and the calls)."""
        with _Drive(self, request, None) as drive:
            call = drive.advance()
            while call is not None:
                if isinstance(call, Emit):
                    raise TypeError("a request that emits values must be iterated")
                # an instant call is done: no coroutine to await (and so no suspension)
                call = drive.advance(self._finish_instant(call) if call.instant
                                     else await self._finish_async(call))
            return drive.value

    def iterate_async(self, request: Request) -> AsyncIterator[Any]:
        """Drive ``request`` on the running loop; an async generator of what it emits."""
        return self._steps_async(_Drive(self, request, None))

    async def _steps_async(self, drive: _Drive) -> AsyncIterator[Any]:
        with drive:
            step = drive.advance()
            while step is not None:
                if isinstance(step, Emit):
                    yield step.value
                    step = drive.advance()
                else:
                    step = drive.advance(await self._finish_async(step))

    # -- submitting and waiting ----------------------------------------------------------
    def _submit(self, call: Call, async_: bool) -> None:
        """Submit ``call``'s job; on the running loop's channel when ``async_``."""
        channel = self._channel() if async_ and not call.instant else None
        try:
            call.job = call.submit(channel, call.limit)
        except Exception as exc:
            raise self.user_error(call, exc) from None
        if channel is None:
            return
        loop = asyncio.get_running_loop()
        call.fut = loop.create_future()
        with self._lock:
            closed = self._closed
            if not closed:
                waiting = self._waiting.get(loop)
                if waiting is None:
                    waiting = self._waiting[loop] = {}
                waiting[call.job.id] = call
            self._submits += 1
            reap = self._submits % _REAP_EVERY == 0
        if closed:              # close() ran meanwhile: the job is over, wake at once
            call.fut.set_result(None)
        if reap:
            self.reap_closed_loops()

    # The finishers keep no local reference to the job: an exception's traceback holds
    # their frames, and a released call (Call.release) must leave nothing behind.
    def _finish_sync(self, call: Call) -> Any:
        if call.job is None:
            return self._finish_here(call)
        if call.instant:
            return self._finish_instant(call)
        with _Running(self, call):
            self._report(call, "started")
            try:
                # the job's timeout is enforced by the pool; short waits so that signals
                # are seen, and progress is reported, between them
                while not call.job.wait(PROGRESS_TICK):
                    self._report(call)
            except BaseException:
                self._abandon(call)
                raise
            return self._deliver(call)

    async def _finish_async(self, call: Call) -> Any:
        if call.job is None:
            return self._finish_here(call)
        if call.fut is None:            # an instant job: finished when it was submitted
            return self._finish_sync(call)
        with _Running(self, call):
            self._report(call, "started")
            ticker = _Ticker(self, call) if call.on_progress is not None else None
            try:
                await call.fut          # the job's timeout is enforced by the pool
            except (asyncio.CancelledError, RuntimeError):    # RuntimeError: awaited
                self._abandon(call)                            # from another event loop
                raise
            finally:
                if ticker is not None:
                    ticker.cancel()
            return self._deliver(call)

    def _abandon(self, call: Call) -> None:
        """The caller gave up on ``call``: stop its C work and let go of it, so nothing
        stays behind even if no loop ever drains its channel. A fit's posterior, if it is
        made, is dropped: now, or when a loop drains the fit's end."""
        job = call.job
        if job is None or call.delivered:
            return
        job.cancel()
        fut = call.fut
        looped = fut is not None and not fut.get_loop().is_closed()
        if call.stage == FITTING and looped and not job.done:
            call.orphan = True          # the drain removes the posterior when it arrives
            return
        if fut is not None:
            self._waiting.get(fut.get_loop(), {}).pop(job.id, None)
        if not looped:                  # a blocking caller, or a loop that is gone
            job.wait(None)              # cancelled: at most a block
        if call.stage == FITTING:
            self._drop_orphan(job)
        call.release()
        # On a live loop, the dropped job's handle waits (GIL released, at most a block) for
        # the C work to stop before the output array goes.

    def _drop_orphan(self, job: Any) -> None:
        """A fit nobody waits for any more: its posterior, if it was made, goes at once."""
        if job.status == "ok":
            self.core.remove(job.result)

    # -- channels ------------------------------------------------------------------------
    def _channel(self) -> Any:
        loop = asyncio.get_running_loop()
        with self._lock:
            ch = self._channels.get(loop)
            if ch is None:
                ch = self.core.new_channel()       # RuntimeError once closed
                loop.add_reader(ch.fileno(), self._drain, ch)
                self._channels[loop] = ch
        return ch

    def _drain(self, channel: Any) -> None:
        loop = asyncio.get_running_loop()       # a reader runs on its loop's thread
        waiting = self._waiting.get(loop, {})
        for job_id in channel.drain():
            call = waiting.pop(job_id, None)
            if call is None:
                continue
            if call.orphan:
                self._drop_orphan(call.job)
            elif not call.fut.done():
                call.fut.set_result(None)
        if not waiting:                         # a finished loop is not kept alive
            self._waiting.pop(loop, None)

    def reap_closed_loops(self) -> None:
        """Requests whose event loop was closed can never be delivered: abandon them.
        Costs one look per event loop that has requests in flight, not one per request."""
        for loop in [loop for loop in list(self._waiting) if loop.is_closed()]:
            for call in list(self._waiting.pop(loop, {}).values()):
                self._abandon(call)

    # -- closing -------------------------------------------------------------------------
    def close(self) -> None:
        """Stop every job, free every posterior, and wake every awaited request: each
        raises RuntimeError (the worker was closed); proxies raise DisposedError."""
        if self.core.inherited:
            self.core.close()           # forgets the parent's pool without touching it
            self._waiting = {}
            return
        with self._lock:
            if self._closed:
                return
            self._closed = True
            pending, self._waiting = self.pending, {}
            channels = list(self._channels.items())
            self._channels.clear()
        ids = [p["id"] for p in self.core.snapshot()]
        self.core.close()               # every job ends (cancelled) before this returns
        self.forget(ids, "its worker was closed")
        for call in pending.values():   # registered before _closed was set: wake them
            if not call.orphan:
                on_loop(call.fut.get_loop(), _wake, call.fut)
        for loop, ch in channels:
            on_loop(loop, loop.remove_reader, ch.fileno())


class _Running:
    """A call in flight (a context manager): counted in is_running, its job the one
    ``progress`` follows, its failure ``error``; what it holds is released if it fails."""

    __slots__ = ("bridge", "call")

    def __init__(self, bridge: Bridge, call: Call) -> None:
        self.bridge, self.call = bridge, call

    def __enter__(self) -> None:
        bridge, call = self.bridge, self.call
        with bridge._lock:
            bridge._active += 1
        bridge.error = None
        if call.job is not None:
            bridge._current = call

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        bridge, call = self.bridge, self.call
        with bridge._lock:
            bridge._active -= 1
        if call.job is not None and bridge._current is call:
            bridge._current = None
            bridge._last_progress = Progress.of_job(call.stage, call.job)
            bridge._last_instant = None
        if isinstance(exc, Exception):
            bridge.error = exc
        if not (call.delivered or call.orphan):
            call.release()          # the error may live on; the draws need not


class _Ticker:
    """Reports a call's progress every PROGRESS_TICK seconds while its job runs, on the
    running loop (a bound method, not a closure: no reference cycle keeps the call)."""

    def __init__(self, bridge: Bridge, call: Call) -> None:
        self.bridge, self.call = bridge, call
        self.loop = asyncio.get_running_loop()
        self.timer = self.loop.call_later(PROGRESS_TICK, self.tick)

    def tick(self) -> None:
        if not self.call.job.done:
            self.bridge._report(self.call)
            self.timer = self.loop.call_later(PROGRESS_TICK, self.tick)

    def cancel(self) -> None:
        self.timer.cancel()


def _wake(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)
