"""The inference worker: a pool of native threads, a posterior store, and the fits.

The worker owns the C core (``_core.Core``: the pool and the store) and its asyncio bridge
(``_bridge.Bridge``: channels, futures, progress, posterior handles). A fit is one request
(:meth:`InferenceWorker._fit`), driven on the event loop by ``run_inference`` and on this
thread by ``run_inference_sync``.

>>> import bayesworker as bw
>>> with bw.InferenceWorker(threads=2, seed=1) as worker:
...     res = worker.run_inference_sync("beta-binomial", {"successes": 2, "trials": 10},
...                                     prior={"alpha": 80, "beta": 20})
...     print(round(float(res.posterior.mean()[0]), 10))
0.7454545455
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from . import _core
from ._auto import (AUTO_MIXTURE_MIN_N, AUTO_MIXTURE_NATS, mixture_decide,  # noqa: F401
                    mixture_request, prepare_mixture_prior)
from ._compare import Comparison, compare_request
from ._bridge import (DEFAULT_LONG_SAMPLE_TIMEOUT, DEFAULT_TIMEOUT, FITTING,  # noqa: F401
                      LONG_SAMPLE, Bridge, Call, Handle, Request)
from ._errors import DataError, DisposedError
from ._fit import fit_result, instant, submit_fit
from ._frames import FrameInput, frame_input, labelled
from ._groups import GroupFits, GroupPlan
from ._progress import Progress
from ._progressbar import get_options, progress_listener
from ._request import FitRequest, prepare_fit
from ._results import InferenceResult
from .models import model_codes

MODEL_CODES = model_codes()



def _no_bar(progress: bool | str | None) -> bool:
    """True when a request shows no progress bar (``progress`` False, or None while
    ``bw.set_options(progress=)`` is off)."""
    return progress is False or (progress is None and get_options()["progress"] is False)


def default_threads() -> int:
    """``OMP_NUM_THREADS`` if set to a positive integer, else the cores this process may use."""
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1




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
        self._bridge = Bridge(self._core)

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
        return self._bridge.is_running

    @property
    def progress(self) -> Progress:
        """Progress of the latest request (stage, fraction, iteration, total_iterations)."""
        return self._bridge.progress

    @property
    def error(self) -> BaseException | None:
        """The exception of the latest request that failed, cleared when a new one starts."""
        return self._bridge.error

    @property
    def _error(self) -> BaseException | None:
        return self._bridge.error

    @_error.setter
    def _error(self, exc: BaseException | None) -> None:
        self._bridge.error = exc            # a request refused before it started

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
        self._bridge.close()

    # -- the store -----------------------------------------------------------------------
    def posterior_handle(self, post_id: int) -> Handle:
        """The handle of posterior ``post_id`` shared by its proxies (``_bridge.Handle``):
        the posterior is freed when the last holder of its handle lets go."""
        return self._bridge.handle(post_id)

    def _dispose(self, post_id: int, reason: str) -> None:
        self._bridge.dispose(post_id, reason)

    def clear_all(self) -> int:
        """Free every posterior; returns how many there were."""
        ids = self._core.clear()
        self._bridge.forget(ids, "it was cleared by clear_all()")
        return len(ids)

    def evict_idle(self, seconds: float) -> list[int]:
        """Free the posteriors not accessed for ``seconds``; returns their ids."""
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float, np.number)) \
                or not seconds >= 0 or seconds == float("inf"):
            raise ValueError(f"seconds = {seconds!r} must be a finite number >= 0")
        ids = self._core.evict(time.time() - float(seconds))
        self._bridge.forget(ids, f"it was evicted by evict_idle({seconds!r}) after being idle")
        return ids

    def stats(self) -> dict[str, Any]:
        """The store and the pool: posteriors held, bytes, per-posterior times, live jobs."""
        self._bridge.reap_closed_loops()
        now = time.time()
        items = [{
            "id": p["id"],
            "model_type": _MODEL_NAMES.get(p["model"], str(p["model"])),
            "created": p["created"],
            "last_access": p["last_access"],
            "idle_seconds": max(0.0, now - p["last_access"]),
            "bytes": p["bytes"],
        } for p in self._core.snapshot()]
        return {
            "posteriors": len(items),
            "bytes": sum(i["bytes"] for i in items),
            "live_jobs": self._core.live_jobs(),
            "pending_requests": len(self._bridge.pending),
            "threads": self.threads,
            "items": items,
        }

    # -- fits ----------------------------------------------------------------------------
    def _prepare(self, model_type: str, data: Any, prior: Any, options: dict) -> FitRequest:
        """The validated request (_request.prepare_fit); a refusal is also ``error``."""
        try:
            return prepare_fit(model_type, data, prior, options)
        except Exception as exc:
            self._error = exc
            raise

    def _submit_fit(self, req: FitRequest, channel: Any, timeout: float,
                    here: bool = False) -> Any:
        """Submit the fit of ``req`` (_fit.submit_fit); returns its job."""
        return submit_fit(self._core, req, channel, timeout, here)

    def _stored(self, post_id: int) -> dict[str, Any]:
        """The stored posterior of a fit that just ended, or DisposedError if clear_all,
        evict_idle or close removed it before its result was delivered."""
        try:
            return self._core.get(post_id)
        except (DisposedError, RuntimeError):
            if self._core.closed:
                raise RuntimeError("the worker was closed while this request (fitting) was "
                                   "in flight") from None
            raise DisposedError(f"posterior {post_id} was removed (clear_all or evict_idle) "
                                "before its fit was delivered") from None

    def _result(self, req: FitRequest, job: Any) -> InferenceResult:
        """The family's proxy and diagnostics of a finished fit (_fit.fit_result)."""
        return fit_result(self, req, job, self._stored(job.result))


    def _fit_call(self, req: FitRequest, timeout: float | None,
                  on_progress: Callable[[Progress], None] | None) -> Call:
        if instant(req):        # done when submitted: no channel, no future, no thread hop
            return Call(FITTING, partial(self._submit_fit, req, here=True), timeout=timeout,
                        on_progress=on_progress, request=req, instant=True)
        return Call(FITTING, partial(self._submit_fit, req), timeout=timeout,
                    on_progress=on_progress, request=req)

    def _fit(self, model_type: str, data: Any, prior: Any, timeout: float | None,
             on_progress: Callable[[Progress], None] | None, options: dict) -> Request:
        """The request of a fit (``auto`` may try a mixture first); its value is the
        InferenceResult. Data are validated before any work starts."""
        req = self._prepare(model_type, data, prior, options)
        mreq = self._auto_mixture_request(req)
        if mreq is not None:
            job = yield self._fit_call(mreq, timeout, on_progress)
            res, req = self._auto_mixture_decide(req, mreq, job)
            if res is not None:
                return res
        job = yield self._fit_call(req, timeout, on_progress)
        return self._result(req, job)

    def _framed(self, model_type: str, data: Any, prior: Any,
                options: dict) -> FrameInput | None:
        """The data and options of a fit with its column keywords applied, or None for
        data without keywords or labels (_frames.frame_input); a refusal is also ``error``."""
        try:
            return frame_input(model_type, data, prior, options)
        except Exception as exc:
            self._error = exc
            raise

    def _reworded(self, framed: FrameInput | None, data: Any, exc: DataError) -> BaseException:
        """``exc`` naming the user's column and row label (_frames), also as ``error``."""
        framed = framed or labelled(data)
        if framed is not None:
            self._error = exc = framed.reword(exc)
        return exc

    async def run_inference(self, model_type: str, data: Any, *, prior: Any = None,
                            timeout: float | None = None,
                            on_progress: Callable[[Progress], None] | None = None,
                            progress: bool | str | None = None,
                            **options: Any) -> InferenceResult:
        """Fit ``model_type`` to ``data`` on the workers; returns an :class:`InferenceResult`.

        ``data`` is any form the model takes (see its page under Models): an array or
        list of values, a dict of aggregates or of columns, a list of records, a pandas or
        Polars Series or DataFrame. Values may be any integer, float or boolean dtype
        (NumPy, pandas nullable, pyarrow-backed) or ``decimal.Decimal``; a missing value
        (NaN, ``pd.NA``, a Polars null) is refused wherever NaN is, naming its row.

        **Column keywords.** For a DataFrame (pandas, Polars) or a dict of columns, the
        model's data fields name the columns to read, as ``fit_groups`` takes them:

        - ``value="revenue"``: the values of a one-sample model (``values=`` also works);
        - ``converted="conv"``: 0/1 or boolean outcomes (beta-binomial);
        - ``converted="conv", value="revenue"``: rows of a compound model;
        - an aggregate form's keys, each row one aggregate: ``successes=``/``trials=``
          (beta-binomial), ``n=`` with ``mean=``/``sd=`` or ``sum=``/``sum_squares=``
          (normal), ``n=`` with ``mean_log=``/``sd_log=`` or
          ``sum_log=``/``sum_log_squares=`` (lognormal), ``n=``/``sum=`` (exponential,
          poisson), ``users=``/``converters=`` plus a severity aggregate (compound);
          several rows are checked one by one and then combined (counts and sums added,
          means and sds pooled);
        - ``counts=`` or ``labels=`` (dirichlet-multinomial).

        Without keywords a DataFrame is read from the columns named like a form's
        fields. A keyword that is neither a field nor an option of the model is a
        ``ModelError`` listing both; a column not in the data a ``DataError`` listing the
        columns. A refused value of a DataFrame or Series is named by its column and row
        label (``column 'revenue', row 334: value -5.0 must be positive ...``; the row
        number for Polars); the ``DataError`` has ``column``, ``label``, ``index`` (the
        position), ``value`` and ``rule``.

        Data are validated first (``DataError``, ``ModelError``), before any work starts.
        ``progress``: True shows a tqdm bar, None follows ``bw.set_options(progress=)``.

        >>> import bayesworker as bw, pandas as pd
        >>> df = pd.DataFrame({"conv": [1, 0, 1, 1], "revenue": [12.0, 0.0, 30.5, 8.25]})
        >>> with bw.InferenceWorker(threads=0, seed=1) as w:
        ...     res = w.run_inference_sync("compound-beta-lognormal", df, converted="conv",
        ...                                value="revenue")
        ...     print(res.posterior.frequency.mean().round(4))
        [0.6667]
        """
        framed = self._framed(model_type, data, prior, options)
        if framed is not None:
            data, options = framed.data, framed.options
        try:
            if _no_bar(progress):       # the common case, without a listener to set up
                return await self._bridge.run_async(
                    self._fit(model_type, data, prior, timeout, on_progress, options))
            with progress_listener(progress, on_progress, f"fit {model_type}") as listen:
                return await self._bridge.run_async(
                    self._fit(model_type, data, prior, timeout, listen, options))
        except DataError as exc:
            raise self._reworded(framed, data, exc) from None

    def run_inference_sync(self, model_type: str, data: Any, *, prior: Any = None,
                           timeout: float | None = None,
                           on_progress: Callable[[Progress], None] | None = None,
                           progress: bool | str | None = None,
                           **options: Any) -> InferenceResult:
        """Blocking twin of :meth:`run_inference` (the same data forms and column keywords:
        ``w.run_inference_sync("lognormal", df, value="revenue")``)."""
        framed = self._framed(model_type, data, prior, options)
        if framed is not None:
            data, options = framed.data, framed.options
        try:
            if _no_bar(progress):
                return self._bridge.run_sync(
                    self._fit(model_type, data, prior, timeout, on_progress, options))
            with progress_listener(progress, on_progress, f"fit {model_type}") as listen:
                return self._bridge.run_sync(
                    self._fit(model_type, data, prior, timeout, listen, options))
        except DataError as exc:
            raise self._reworded(framed, data, exc) from None

    # -- groups --------------------------------------------------------------------------
    async def fit_groups(self, data: Any, by: Any, model: str, *, prior: Any = None,
                         timeout: float | None = None, options: dict | None = None,
                         on_progress: Callable[[Progress], None] | None = None,
                         progress: bool | str | None = None,
                         **columns: str) -> GroupFits:
        """One fit of ``model`` per group of ``data``'s rows grouped by the ``by`` columns;
        the model's data fields name the columns (``converted=``, ``value=``,
        ``successes=``/``trials=``). Conjugate families run as ONE batch job; returns a
        :class:`~bayesworker._groups.GroupFits`. ``progress``/``on_progress`` as for
        :meth:`run_inference` (the batch job's blocks, or the groups fitted one by one)."""
        plan = GroupPlan(self, data, by, model, prior, timeout, options or {}, columns)
        try:
            with progress_listener(progress, on_progress, f"fit_groups {model}") as listen:
                return await self._bridge.run_async(plan.request(listen))
        except DataError as exc:
            raise plan.reword(exc) from None

    def fit_groups_sync(self, data: Any, by: Any, model: str, *, prior: Any = None,
                        timeout: float | None = None, options: dict | None = None,
                        on_progress: Callable[[Progress], None] | None = None,
                        progress: bool | str | None = None,
                        **columns: str) -> GroupFits:
        """Blocking twin of :meth:`fit_groups`."""
        plan = GroupPlan(self, data, by, model, prior, timeout, options or {}, columns)
        try:
            with progress_listener(progress, on_progress, f"fit_groups {model}") as listen:
                return self._bridge.run_sync(plan.request(listen))
        except DataError as exc:
            raise plan.reword(exc) from None

    # -- decisions -----------------------------------------------------------------------
    async def compare(self, arms: Any, control: str | None = None, *,
                      higher_is_better: bool = True, draws: int | None = None,
                      category: Any = None, timeout: float | None = None,
                      on_progress: Callable[[Progress], None] | None = None,
                      progress: bool | str | None = None) -> Comparison:
        """Compare arms ``{name: posterior proxy}`` of this worker, all of one quantity, on
        the workers: P(beat control), P(best), expected losses, lifts (see ``Comparison``).
        ``control`` defaults to the first arm. ``draws``: the joint draws of a Monte Carlo
        comparison (one with a mixture arm; 2**20 by default, at most 2**24); it has no
        effect on an exact one. ``category``: for dirichlet-multinomial arms, the category
        whose share is compared. ``progress`` as for :meth:`run_inference`."""
        with progress_listener(progress, on_progress, "compare") as listen:
            return (await self._bridge.run_async(compare_request(
                self, arms, control, higher_is_better, timeout, listen, draws,
                category)))._keep_arms(arms)

    def compare_sync(self, arms: Any, control: str | None = None, *,
                     higher_is_better: bool = True, draws: int | None = None,
                     category: Any = None, timeout: float | None = None,
                     on_progress: Callable[[Progress], None] | None = None,
                     progress: bool | str | None = None) -> Comparison:
        """Blocking twin of :meth:`compare`."""
        with progress_listener(progress, on_progress, "compare") as listen:
            return self._bridge.run_sync(compare_request(
                self, arms, control, higher_is_better, timeout, listen, draws,
                category))._keep_arms(arms)

    # -- auto and mixtures ---------------------------------------------------------------
    @staticmethod
    def _auto_mixture_request(req: FitRequest) -> FitRequest | None:
        """The mixture request "auto" compares ``req`` with, or None (_auto)."""
        return mixture_request(req)

    def _auto_mixture_decide(self, req: FitRequest, mreq: FitRequest,
                             job: Any) -> tuple[InferenceResult | None, FitRequest]:
        """Keep the mixture fit ``job`` or discard it (_auto.mixture_decide)."""
        return mixture_decide(req, mreq, job, self._result, self._dispose)

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"threads={self.threads}, seed={self.seed}"
        return f"<InferenceWorker {state}>"


_MODEL_NAMES = {v: k for k, v in MODEL_CODES.items()}
