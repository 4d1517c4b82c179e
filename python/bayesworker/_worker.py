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

import dataclasses
import os
import secrets
import time
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from . import _core
from ._bridge import (DEFAULT_LONG_SAMPLE_TIMEOUT, DEFAULT_TIMEOUT, FITTING,  # noqa: F401
                      LONG_SAMPLE, Bridge, Call, Handle, Request)
from ._data import (MIXTURE_DEFAULTS, MIXTURE_MODELS, FitRequest, prepare)
from ._errors import DataError, DisposedError
from ._progress import Progress
from ._mixture import CompoundMixturePosteriorProxy, MixturePosteriorProxy
from ._proxy import CompoundPosteriorProxy, PosteriorProxy
from ._results import Diagnostics, InferenceResult

MODEL_CODES = {
    "beta-binomial": 1,
    "normal": 2,
    "lognormal": 3,
    "exponential": 4,
    "poisson": 5,
    "compound-beta-lognormal": 6,
    "compound-beta-exponential": 7,
    "normal-mixture": 8,
    "lognormal-mixture": 9,
    "compound-beta-lognormalmixture": 10,
}
_COMPOUND = {"compound-beta-lognormal", "compound-beta-exponential"}

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
        # root proxies by posterior id, registered by the fits (_result); weak: a proxy
        # nobody holds goes, and its posterior with it
        self._proxies: weakref.WeakValueDictionary = weakref.WeakValueDictionary()

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
        code = MODEL_CODES[req.model]
        if req.model in MIXTURE_MODELS:
            opts = {**MIXTURE_DEFAULTS, **req.options}
            comp = opts["components"]
            ks = tuple(range(1, opts["max_components"] + 1)) if comp == "auto" else (comp,)
            successes, trials = req.counts if req.counts is not None else (0, 0)
            freq = req.prior.get("frequency", {"alpha": 1.0, "beta": 1.0})
            return self._core.mix_fit(code, req.values, ks, float(opts["tolerance"]),
                                      int(opts["max_iterations"]), successes, trials,
                                      (freq["alpha"], freq["beta"]), channel,
                                      timeout=timeout)
        if req.model in _COMPOUND:
            freq, sev = req.prior["frequency"], req.prior["severity"]
            prior = (freq["alpha"], freq["beta"], *_prior_tuple(req.model, sev))
        else:
            prior = _prior_tuple(req.model, req.prior)
        successes, trials = req.counts if req.counts is not None else (0, 0)
        stats = None
        if req.stats is not None:
            s = req.stats
            stats = (float(s["n"]), float(s["mean"]), float(s["m2"])) if "mean" in s \
                else (float(s["n"]), float(s["sum"]), 0.0)
        values = req.values
        if values is None and stats is None and req.model != "beta-binomial":
            values = np.empty(0, dtype=np.float64)
        return self._core.fit(code, prior, successes, trials, values, stats, channel,
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
            "sufficient_statistics": {"n": info["stats"][0]},
        }
        if opts["components"] == "auto":
            details["elbo_per_K"] = {f["K"]: f["elbo"] for f in rep["fits"]}
        if req.model == "compound-beta-lognormalmixture":
            details["sufficient_statistics"] = {"converters": info["stats"][3],
                                                "users": info["stats"][4],
                                                "severity_n": info["stats"][0]}
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
        except (KeyError, RuntimeError):
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
            "sufficient_statistics": _stats_dict(req.model, info["stats"]),
        }
        if req.reason is not None:
            details["auto_choice"] = req.model
            details["reason"] = req.reason
        diagnostics = Diagnostics(converged=True, iterations=1, runtime=job.runtime,
                                  model_type=req.model, details=details)
        return InferenceResult(proxy, diagnostics)


    def _fit_call(self, req: FitRequest, timeout: float | None,
                  on_progress: Callable[[Progress], None] | None) -> Call:
        return Call(FITTING, lambda channel, limit: self._submit_fit(req, channel, limit),
                    timeout=timeout, on_progress=on_progress, request=req)

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

    async def run_inference(self, model_type: str, data: Any, *, prior: Any = None,
                            timeout: float | None = None,
                            on_progress: Callable[[Progress], None] | None = None,
                            **options: Any) -> InferenceResult:
        """Fit ``model_type`` to ``data`` on the workers; returns an :class:`InferenceResult`.

        Data are validated first (``DataError``, ``ModelError``), before any work starts.
        """
        return await self._bridge.run_async(
            self._fit(model_type, data, prior, timeout, on_progress, options))

    def run_inference_sync(self, model_type: str, data: Any, *, prior: Any = None,
                           timeout: float | None = None,
                           on_progress: Callable[[Progress], None] | None = None,
                           **options: Any) -> InferenceResult:
        """Blocking twin of :meth:`run_inference`."""
        return self._bridge.run_sync(
            self._fit(model_type, data, prior, timeout, on_progress, options))

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


_MODEL_NAMES = {v: k for k, v in MODEL_CODES.items()}


def prepare_mixture_prior(req: FitRequest) -> dict[str, Any]:
    """The mixture counterpart of an auto request's prior (the frequency part is kept)."""
    from ._data import MIXTURE_PRIOR
    if req.model == "compound-beta-lognormal":
        return {"frequency": req.prior["frequency"], "severity": dict(MIXTURE_PRIOR)}
    return dict(MIXTURE_PRIOR)


def _prior_tuple(model: str, prior: dict[str, float]) -> tuple[float, ...]:
    if model in ("normal", "lognormal", "compound-beta-lognormal"):
        return (prior["mu"], prior["kappa"], prior["alpha"], prior["beta"])
    return (prior["alpha"], prior["beta"])


def _stats_dict(model: str, stats: tuple) -> dict[str, float]:
    if model == "beta-binomial":
        return {"successes": stats[0], "trials": stats[1]}
    if model in ("normal", "lognormal", "compound-beta-lognormal"):
        scale = "log " if "lognormal" in model else ""
        out = {"n": stats[0], f"{scale}mean".strip(): stats[1], f"{scale}m2".strip(): stats[2]}
    elif model == "poisson":
        out = {"exposure": stats[0], "sum": stats[1]}
    else:
        out = {"n": stats[0], "sum": stats[1]}
    if model.startswith("compound"):
        out = {"converters": stats[3], "users": stats[4], **{f"severity_{k}": v
                                                             for k, v in out.items()}}
    return {k.replace(" ", "_"): v for k, v in out.items()}
