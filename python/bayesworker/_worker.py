"""The inference worker: a pool of native threads, a posterior store and the asyncio bridge.

C threads never call into Python. A finished job goes on a completion channel, one per
event loop, whose file descriptor the loop watches with ``add_reader``; the loop thread
drains it and resolves the futures. Blocking ``_sync`` twins wait in C with the GIL
released.

>>> import bayesworker as bw
>>> with bw.InferenceWorker(threads=2, seed=1) as worker:
...     res = worker.run_inference_sync("beta-binomial", {"successes": 2, "trials": 10},
...                                     prior={"alpha": 80, "beta": 20})
...     print(round(float(res.posterior.mean()[0]), 10))
0.7454545455
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import secrets
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _core
from ._data import (MIXTURE_DEFAULTS, MIXTURE_MODELS, FitRequest, prepare, value_error)
from ._errors import DataError, DisposedError, ModelError
from ._progress import IDLE, Progress
from ._mixture import CompoundMixturePosteriorProxy, MixturePosteriorProxy
from ._proxy import CompoundPosteriorProxy, PosteriorProxy
from ._results import Diagnostics, InferenceResult

#: The C registry's rows by model name (csrc/registry.c): parts, prior layout, statistics.
_ROWS = {m["name"]: m for m in _core.MODELS}
MODEL_CODES = {name: row["code"] for name, row in _ROWS.items()}
_COMPOUND = {"compound-beta-lognormal", "compound-beta-exponential"}

DEFAULT_TIMEOUT = 30.0
DEFAULT_LONG_SAMPLE_TIMEOUT = 60.0
LONG_SAMPLE = 10_000
_MEMCHECK_BYTES = 1 << 26      # requests above 64 MiB are checked against available memory
#: "auto" takes a mixture over its single-component model only when the best K > 1 beats
#: K = 1 by more than this many nats of ELBO (a Bayes factor above e^10 ~ 22,000 if the
#: ELBOs were the evidences), and only with at least AUTO_MIXTURE_MIN_N values.
AUTO_MIXTURE_NATS = 10.0
AUTO_MIXTURE_MIN_N = 20
_AUTO_MIXTURE_OF = {"normal": "normal-mixture", "lognormal": "lognormal-mixture",
                    "compound-beta-lognormal": "compound-beta-lognormalmixture"}


def default_threads() -> int:
    """``OMP_NUM_THREADS`` if set to a positive integer, else the cores this process may use."""
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


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


@dataclass
class _Pending:
    job: Any
    fut: asyncio.Future
    out: np.ndarray | None
    abandoned_fit: bool = False     # a fit whose caller gave up: drop its posterior on arrival


class InferenceWorker:
    """Fits models on native worker threads and hands back posterior proxies.

    ``threads``: the thread budget (default: ``OMP_NUM_THREADS`` or the cores this
    process may use); ``threads=0`` is the inline fallback, which computes on the calling
    thread with the same API and the same numbers. ``seed``: a 64-bit integer; two
    workers with the same seed making the same calls in the same order give bit-identical
    draws, whatever their thread counts. ``None`` draws a seed from the OS (see ``seed``).

    Use it as ``async with`` or ``with``; ``close()`` cancels what is in flight and frees
    every posterior.
    """

    def __init__(self, threads: int | None = None, seed: int | None = None) -> None:
        if threads is None:
            threads = default_threads()
        if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)):
            raise TypeError(f"threads = {threads!r} must be an integer or None")
        threads = int(threads)
        if not 0 <= threads <= 1024:
            raise ValueError(f"threads = {threads} must be between 0 and 1024")
        if seed is None:
            seed = secrets.randbits(64)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"seed = {seed!r} must be an integer or None")
        seed = int(seed)
        if not 0 <= seed < 2**64:
            raise ValueError(f"seed = {seed} must be in [0, 2**64)")
        self._core = _core.Core(threads, seed)
        self._lock = threading.Lock()
        self._pending: dict[int, _Pending] = {}
        self._channels: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._proxies: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
        self._active = 0
        self._submits = 0
        self._current: tuple[str, Any] | None = None
        self._last_progress: Progress = IDLE
        self._error: BaseException | None = None

    # -- properties of the hook ----------------------------------------------------------
    @property
    def threads(self) -> int:
        """The thread budget (0: inline)."""
        return self._core.threads

    @property
    def seed(self) -> int:
        """The 64-bit seed of every posterior's draws."""
        return self._core.seed

    @property
    def closed(self) -> bool:
        return self._core.closed

    @property
    def is_running(self) -> bool:
        """True while any fit, sampling or interval request of this worker is in flight."""
        return self._active > 0

    @property
    def progress(self) -> Progress:
        """Progress of the latest request (stage, fraction, iteration, total_iterations)."""
        current = self._current
        if current is not None:
            stage, job = current
            if not job.done:
                return Progress.of_job(stage, job)
        return self._last_progress

    @property
    def error(self) -> BaseException | None:
        """The exception of the latest request that failed, cleared when a new one starts."""
        return self._error

    # -- lifecycle -----------------------------------------------------------------------
    def __enter__(self) -> "InferenceWorker":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    async def __aenter__(self) -> "InferenceWorker":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the worker (see :meth:`close`)."""
        self.close()

    def close(self) -> None:
        """Cancel every job, wait for them (about a block), free every posterior.

        Requests still awaited raise ``RuntimeError``; proxies raise ``DisposedError``.
        """
        if self._core.inherited:
            self._core.close()          # forgets the parent's pool without touching it
            self._pending = {}
            return
        if self._core.closed:
            return
        ids = [p["id"] for p in self._core.snapshot()]
        self._core.close()
        self._mark_gone(ids, "its worker was closed")
        pending, self._pending = self._pending, {}
        for rec in pending.values():
            self._settle_closed(rec.fut)
        with self._lock:
            channels = list(self._channels.items())
            self._channels.clear()
        for loop, ch in channels:
            self._remove_reader(loop, ch)

    @staticmethod
    def _settle_closed(fut: asyncio.Future) -> None:
        def settle() -> None:
            if not fut.done():
                fut.set_exception(RuntimeError("the worker was closed while this request "
                                               "was in flight"))
        loop = fut.get_loop()
        if loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            settle()
        else:
            try:
                loop.call_soon_threadsafe(settle)
            except RuntimeError:  # closed in between
                pass

    @staticmethod
    def _remove_reader(loop: asyncio.AbstractEventLoop, ch: Any) -> None:
        if loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        try:
            if running is loop:
                loop.remove_reader(ch.fileno())
            else:
                loop.call_soon_threadsafe(loop.remove_reader, ch.fileno())
        except RuntimeError:
            pass

    def _check_open(self) -> None:
        if self._core.inherited:
            raise RuntimeError("this worker was inherited through fork and is closed in this "
                               "process; create a new InferenceWorker in the child")
        if self._core.closed:
            raise RuntimeError("the worker is closed")

    # -- the store -----------------------------------------------------------------------
    def _touch(self, post_id: int) -> bool:
        return self._core.touch(post_id)

    def _gone_reason(self, post_id: int) -> str:
        if self._core.inherited:
            return ("its worker was inherited through fork and is closed in this process; "
                    "create a new InferenceWorker here")
        if self._core.closed:
            return "its worker was closed"
        return "it is no longer in the store"

    def _mark_gone(self, ids: list[int], reason: str) -> None:
        for i in ids:
            proxy = self._proxies.get(i)
            if proxy is not None and proxy._gone is None:
                proxy._gone = reason

    def _dispose(self, post_id: int, reason: str) -> None:
        self._core.remove(post_id)
        self._mark_gone([post_id], reason)

    def clear_all(self) -> int:
        """Free every posterior; returns how many there were."""
        ids = self._core.clear()
        self._mark_gone(ids, "it was cleared by clear_all()")
        return len(ids)

    def evict_idle(self, seconds: float) -> list[int]:
        """Free the posteriors not accessed for ``seconds``; returns their ids."""
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float, np.number)) \
                or not seconds >= 0 or seconds == float("inf"):
            raise ValueError(f"seconds = {seconds!r} must be a finite number >= 0")
        ids = self._core.evict(time.time() - float(seconds))
        self._mark_gone(ids, f"it was evicted by evict_idle({seconds!r}) after being idle")
        return ids

    def stats(self) -> dict[str, Any]:
        """The store and the pool: posteriors held, bytes, per-posterior times, live jobs."""
        self._reap_closed_loops()
        now = time.time()
        items = [{
            "id": p["id"],
            "model_type": p["model_type"],
            "created": p["created"],
            "last_access": p["last_access"],
            "idle_seconds": max(0.0, now - p["last_access"]),
            "bytes": p["bytes"],
        } for p in self._core.snapshot()]
        return {
            "posteriors": len(items),
            "bytes": sum(i["bytes"] for i in items),
            "live_jobs": self._core.live_jobs(),
            "pending_requests": len(self._pending),
            "threads": self.threads,
            "items": items,
        }

    # -- the asyncio bridge --------------------------------------------------------------
    def _channel(self) -> Any:
        loop = asyncio.get_running_loop()
        with self._lock:
            ch = self._channels.get(loop)
            if ch is None:
                self._check_open()
                ch = self._core.new_channel()
                loop.add_reader(ch.fileno(), self._drain, ch)
                self._channels[loop] = ch
        return ch

    def _drain(self, ch: Any) -> None:
        for job_id in ch.drain():
            rec = self._pending.pop(job_id, None)
            if rec is None:
                continue
            if rec.abandoned_fit:
                self._drop_orphan(rec.job)
            elif not rec.fut.done():
                rec.fut.set_result(None)

    def _drop_orphan(self, job: Any) -> None:
        """A fit nobody waits for any more: its posterior, if it was made, goes at once."""
        if job.status == "ok" and not self._core.closed:
            self._core.remove(job.result)

    def _abandon(self, rec: _Pending, stage: str) -> None:
        """The caller gave up on rec (timeout or cancellation): stop its C work and let go of
        the record, so nothing stays behind even if no loop ever drains its channel."""
        job = rec.job
        job.cancel()
        if stage != "fitting":
            # Dropping the handle makes its dealloc wait (GIL released) for the C work to
            # stop, at most a block, before the output array goes.
            self._pending.pop(job.id, None)
        elif job.done:
            self._pending.pop(job.id, None)
            self._drop_orphan(job)
        else:
            rec.abandoned_fit = True    # the drain removes the posterior when it arrives

    def _submit_async(self, job: Any, out: np.ndarray | None = None) -> _Pending:
        rec = _Pending(job, asyncio.get_running_loop().create_future(), out)
        self._pending[job.id] = rec
        self._submits += 1
        if self._submits % 64 == 0:
            self._reap_closed_loops()
        return rec

    def _reap_closed_loops(self) -> None:
        """Requests whose event loop was closed can never be delivered: abandon them."""
        for rec in list(self._pending.values()):
            if rec.fut.get_loop().is_closed():
                job = rec.job
                job.cancel()
                if rec.out is None:         # a fit or an interval: wait (cancelled, short)
                    job.wait(None)
                    if isinstance(job.result, int):
                        self._drop_orphan(job)
                self._pending.pop(job.id, None)

    def _begin(self, stage: str, job: Any) -> None:
        self._active += 1
        self._error = None
        self._current = (stage, job)

    def _end(self, stage: str, job: Any, error: BaseException | None) -> None:
        self._active -= 1
        if self._current is not None and self._current[1] is job:
            self._current = None
            self._last_progress = Progress.of_job(stage if job.done else stage, job)
        if error is not None:
            self._error = error

    @staticmethod
    def _timeout(timeout: float | None, stage: str, n: int) -> float:
        if timeout is None:
            return DEFAULT_LONG_SAMPLE_TIMEOUT if (stage == "sampling" and n > LONG_SAMPLE) \
                else DEFAULT_TIMEOUT
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float, np.number)) \
                or not timeout >= 0:
            raise ValueError(f"timeout = {timeout!r} must be a number of seconds >= 0")
        return float(timeout)

    @staticmethod
    def _outcome(job: Any, stage: str, req: FitRequest | None = None) -> None:
        exc = job.exception
        if exc is None:
            return
        if isinstance(exc, DataError) and req is not None:
            raise value_error(req.model, req.values_name, _core.VALUE_RULES.index(exc.rule),
                              exc.index, exc.value)
        if isinstance(exc, TimeoutError):
            raise TimeoutError(f"{stage} {exc}")
        if isinstance(exc, ModelError):
            raise ModelError(f"{stage} failed: {exc}")
        raise exc

    async def _finish_async(self, rec: _Pending, *, stage: str, timeout: float | None,
                            on_progress: Callable[[Progress], None] | None, n: int,
                            req: FitRequest | None = None) -> Any:
        job = rec.job
        loop = asyncio.get_running_loop()
        self._begin(stage, job)
        error: BaseException | None = None
        ticker: list[asyncio.TimerHandle] = []
        if on_progress is not None:
            on_progress(Progress(stage, 0.0, 0, job.progress[1]))

            def tick() -> None:
                if not job.done:
                    on_progress(Progress.of_job(stage, job))
                    ticker[:] = [loop.call_later(0.1, tick)]
            ticker.append(loop.call_later(0.1, tick))
        try:
            try:
                await rec.fut           # the job's timeout is enforced by the C pool
            except asyncio.CancelledError:
                self._abandon(rec, stage)
                raise
            self._outcome(job, stage, req)
            if on_progress is not None:
                on_progress(Progress.of_job(stage, job))
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError):
                error = exc
            raise
        finally:
            for h in ticker:
                h.cancel()
            self._end(stage, job, error)
        return rec.out

    async def _run_async(self, submit: Callable[[Any, float], Any], *, stage: str,
                         timeout: float | None, on_progress: Callable[[Progress], None] | None,
                         n: int, req: FitRequest | None = None) -> Any:
        limit = self._timeout(timeout, stage, n)    # validate before any work starts
        self._check_open()
        job = submit(self._channel(), limit)
        rec = self._submit_async(job)
        await self._finish_async(rec, stage=stage, timeout=timeout, on_progress=on_progress,
                                 n=n, req=req)
        return job

    def _run_sync(self, job: Any, *, stage: str, timeout: float | None,
                  on_progress: Callable[[Progress], None] | None, n: int,
                  req: FitRequest | None = None) -> None:
        self._begin(stage, job)
        error: BaseException | None = None
        try:
            if on_progress is not None:
                on_progress(Progress(stage, 0.0, 0, job.progress[1]))
            try:
                while not job.wait(0.1):     # the job's timeout is enforced by the C pool
                    if on_progress is not None:
                        on_progress(Progress.of_job(stage, job))
            except BaseException:
                job.cancel()
                job.wait(None)
                if stage == "fitting":
                    self._drop_orphan(job)
                raise
            self._outcome(job, stage, req)
            if on_progress is not None:
                on_progress(Progress.of_job(stage, job))
        except BaseException as exc:
            error = exc if isinstance(exc, Exception) else None
            raise
        finally:
            self._end(stage, job, error)

    def _new_array(self, n: int) -> np.ndarray:
        nbytes = 8 * n
        if nbytes > _MEMCHECK_BYTES:
            avail = _available_bytes()
            if avail is not None and nbytes > avail:
                raise MemoryError(f"n = {n} draws need {nbytes / 2**30:.1f} GiB; only "
                                  f"{avail / 2**30:.1f} GiB of memory is available")
        return np.empty(n, dtype=np.float64)

    # -- fits ----------------------------------------------------------------------------
    def _prepare(self, model_type: str, data: Any, prior: Any, options: dict) -> FitRequest:
        try:
            req = prepare(model_type, data, prior, options, check_values=False)
            if req.model == "compound-beta-lognormal":
                n_sev = req.values.size if req.values is not None else (req.stats or {}).get("n", 0)
                if n_sev == 0:
                    raise DataError(
                        "compound-beta-lognormal needs at least one converter with a value > 0: "
                        "with none, the severity is the vague default prior, whose data-scale "
                        "mean has no finite credible interval")
            return req
        except Exception as exc:
            self._error = exc
            raise

    def _submit_fit(self, req: FitRequest, channel: Any, timeout: float) -> Any:
        row = _ROWS[req.model]
        prior = tuple(_prior_value(req.prior, key) for key, _ in row["prior"])
        successes, trials = req.counts if req.counts is not None else (0, 0)
        options = None
        if row["iterative"]:
            opts = {**MIXTURE_DEFAULTS, **req.options}
            comp = opts["components"]
            ks = tuple(range(1, opts["max_components"] + 1)) if comp == "auto" else (comp,)
            options = (ks, float(opts["tolerance"]), int(opts["max_iterations"]))
        stats = None
        if req.stats is not None:
            stats = tuple(float(req.stats[k]) for k in
                          (("n", "mean", "m2") if "mean" in req.stats else ("n", "sum")))
        values = req.values if "values" in row["data"] else None
        if values is None and stats is None and "values" in row["data"]:
            values = np.empty(0, dtype=np.float64)
        return self._core.fit(req.model, prior, successes=successes, trials=trials,
                              values=values, stats=stats, options=options, channel=channel,
                              timeout=timeout)

    def _mixture_result(self, req: FitRequest, job: Any) -> InferenceResult:
        post_id = job.result
        info = self._stored(post_id)
        if req.model == "compound-beta-lognormalmixture":
            proxy: PosteriorProxy = CompoundMixturePosteriorProxy(self, post_id, req.model, info)
            mix = proxy.severity
        else:
            proxy = mix = MixturePosteriorProxy(self, post_id, req.model, info)
        self._proxies[post_id] = proxy
        rep = job.mixture_report
        mx = info["mixture"]
        chosen = rep["fits"][rep["chosen"]]
        opts = {**MIXTURE_DEFAULTS, **req.options}
        if opts["components"] != "auto":
            opts.pop("max_components")
        dropped = [{"location": f["m"], "weight_alpha": f["alpha"],
                    "responsibility": f["alpha"] - mx["alpha0"]}
                   for f in mx["fitted"] if not f["reported"]]
        details: dict[str, Any] = {
            "model": req.model,
            "prior": req.prior,
            "prior_scale": "standardised: y = (x' - loc) / scale, x' = "
                           + ("log x" if mx["log_scale"] else "x"),
            "options": opts,
            "standardisation": {"loc": mx["loc"], "scale": mx["scale"]},
            "components_chosen": chosen["K"],
            "components_reported": mx["nrep"],
            "dropped_components": dropped,
            "elbo": chosen["elbo"],
            "elbo_history": rep["elbo_history"],
            "fits": rep["fits"],
            "posterior": proxy._parameters,
            "mixture_mean": {"mean": mix._mm[0], "variance": mix._mm[1],
                             "mc_draws": mx["mc_draws"],
                             "mc_standard_error": {lvl: (lo, hi) for lvl, lo, hi
                                                   in mx["mc_se"][0]}},
            "sufficient_statistics": dict(zip(_ROWS[req.model]["stats"], info["stats"])),
        }
        if opts["components"] == "auto":
            details["elbo_per_K"] = {f["K"]: f["elbo"] for f in rep["fits"]}
        if req.reason is not None:
            details["auto_choice"] = req.model
            details["reason"] = req.reason
        diagnostics = Diagnostics(converged=chosen["converged"], iterations=chosen["iterations"],
                                  runtime=job.runtime, model_type=req.model, details=details)
        return InferenceResult(proxy, diagnostics)

    def _stored(self, post_id: int) -> dict[str, Any]:
        """The stored posterior of a fit that just ended, or DisposedError if clear_all,
        evict_idle or close removed it before its result was delivered."""
        try:
            return self._core.get(post_id)
        except (DisposedError, RuntimeError):
            raise DisposedError(f"posterior {post_id} was removed (clear_all, evict_idle or "
                                "close) before its fit was delivered") from None

    def _result(self, req: FitRequest, job: Any) -> InferenceResult:
        if req.model in MIXTURE_MODELS:
            return self._mixture_result(req, job)
        post_id = job.result
        info = self._stored(post_id)
        if req.model in _COMPOUND:
            proxy: PosteriorProxy = CompoundPosteriorProxy(self, post_id, req.model, info)
        else:
            proxy = PosteriorProxy(self, post_id, 0, req.model, info)
        self._proxies[post_id] = proxy
        details: dict[str, Any] = {
            "model": req.model,
            "prior": req.prior,
            "posterior": proxy._parameters,
            "sufficient_statistics": dict(zip(_ROWS[req.model]["stats"], info["stats"])),
        }
        if req.reason is not None:
            details["auto_choice"] = req.model
            details["reason"] = req.reason
        diagnostics = Diagnostics(converged=True, iterations=1, runtime=job.runtime,
                                  model_type=req.model, details=details)
        return InferenceResult(proxy, diagnostics)

    async def run_inference(self, model_type: str, data: Any, *, prior: Any = None,
                            timeout: float | None = None,
                            on_progress: Callable[[Progress], None] | None = None,
                            **options: Any) -> InferenceResult:
        """Fit ``model_type`` to ``data`` on the workers; returns an :class:`InferenceResult`.

        Data are validated first (``DataError``, ``ModelError``), before any work starts.
        """
        req = self._prepare(model_type, data, prior, options)
        mreq = self._auto_mixture_request(req)
        if mreq is not None:
            job = await self._run_async(lambda ch, t: self._submit_fit(mreq, ch, t), stage="fitting",
                                        timeout=timeout, on_progress=on_progress, n=0,
                                        req=mreq)
            res, req = self._auto_mixture_decide(req, mreq, job)
            if res is not None:
                return res
        job = await self._run_async(lambda ch, t: self._submit_fit(req, ch, t), stage="fitting",
                                    timeout=timeout, on_progress=on_progress, n=0, req=req)
        return self._result(req, job)

    def run_inference_sync(self, model_type: str, data: Any, *, prior: Any = None,
                           timeout: float | None = None,
                           on_progress: Callable[[Progress], None] | None = None,
                           **options: Any) -> InferenceResult:
        """Blocking twin of :meth:`run_inference`."""
        req = self._prepare(model_type, data, prior, options)
        limit = self._timeout(timeout, "fitting", 0)
        self._check_open()
        mreq = self._auto_mixture_request(req)
        if mreq is not None:
            job = self._submit_fit(mreq, None, limit)
            self._run_sync(job, stage="fitting", timeout=timeout, on_progress=on_progress,
                           n=0, req=mreq)
            res, req = self._auto_mixture_decide(req, mreq, job)
            if res is not None:
                return res
        job = self._submit_fit(req, None, limit)
        self._run_sync(job, stage="fitting", timeout=timeout, on_progress=on_progress, n=0,
                       req=req)
        return self._result(req, job)

    # -- auto and mixtures ---------------------------------------------------------------
    @staticmethod
    def _auto_mixture_request(req: FitRequest) -> FitRequest | None:
        """For "auto" on raw values that chose normal, lognormal or compound-beta-lognormal,
        the mixture request (components="auto") it is compared with; else None."""
        if req.reason is None or req.model not in _AUTO_MIXTURE_OF or req.values is None \
                or req.values.shape[0] < AUTO_MIXTURE_MIN_N:
            return None
        from ._data import DEFAULT_PRIORS
        own = req.prior.get("severity", req.prior) if req.model.startswith("compound") \
            else req.prior
        if own != DEFAULT_PRIORS["lognormal" if "lognormal" in req.model else "normal"]:
            return None         # a prior of the user's: keep the conjugate model it is for
        model = _AUTO_MIXTURE_OF[req.model]
        prior = prepare_mixture_prior(req)
        return dataclasses.replace(req, model=model, prior=prior,
                                   options={"components": "auto"})

    def _auto_mixture_decide(self, req: FitRequest, mreq: FitRequest,
                             job: Any) -> tuple[InferenceResult | None, FitRequest]:
        rep = job.mixture_report
        fits = rep["fits"]
        one = next(f for f in fits if f["K"] == 1)
        best = fits[rep["chosen"]]
        gap = best["elbo"] - one["elbo"]
        figures = ", ".join(f"K={f['K']} {f['elbo']:.2f}" for f in fits)
        if best["K"] > 1 and gap > AUTO_MIXTURE_NATS:
            reason = (f"{req.reason}; then {mreq.model} with components='auto' (ELBO "
                      f"{figures}): K={best['K']} beats K=1 by {gap:.2f} nats > "
                      f"{AUTO_MIXTURE_NATS:g}, so {mreq.model} with {best['K']} components")
            return self._result(dataclasses.replace(mreq, reason=reason), job), req
        self._dispose(job.result, "discarded by auto")
        reason = (f"{req.reason}; {mreq.model} with components='auto' (ELBO {figures}) "
                  f"chose K={best['K']}, " + (
                      f"which beats K=1 by only {gap:.2f} nats <= {AUTO_MIXTURE_NATS:g}"
                      if best["K"] > 1 else "so no mixture")
                  + f"; kept {req.model}")
        return None, dataclasses.replace(req, reason=reason)

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"threads={self.threads}, seed={self.seed}"
        return f"<InferenceWorker {state}>"


def prepare_mixture_prior(req: FitRequest) -> dict[str, Any]:
    """The mixture counterpart of an auto request's prior (the frequency part is kept)."""
    from ._data import MIXTURE_PRIOR
    if req.model == "compound-beta-lognormal":
        return {"frequency": req.prior["frequency"], "severity": dict(MIXTURE_PRIOR)}
    return dict(MIXTURE_PRIOR)


def _prior_value(prior: dict[str, Any], key: str) -> float:
    """prior["frequency"]["alpha"] for the registry's key "frequency.alpha"."""
    for part in key.split("."):
        prior = prior[part]
    return float(prior)
