"""Posterior proxies: exact cached summaries at hand, expensive work on the workers.

A proxy holds the id of a posterior in the worker's C store. ``mean()``, ``variance()``
and ``credible_interval()`` answer at once from cached exact values (closed forms or
deterministic quadrature, never Monte Carlo); sampling and new interval levels are
awaitable and run on the worker threads, writing straight into NumPy arrays.

>>> import bayesworker as bw
>>> with bw.InferenceWorker(threads=1, seed=7) as worker:
...     post = worker.run_inference_sync("beta-binomial", {"successes": 30, "trials": 100}).posterior
...     print(post.credible_interval(0.95).round(6))
...     print(post.sample_sync(3).shape)
[[0.218979 0.396147]]
(3,)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from ._data import validate_batch_size, validate_count, validate_level
from ._errors import DisposedError
from ._progress import Progress

if TYPE_CHECKING:  # pragma: no cover
    from ._worker import InferenceWorker

# Kinds of the C core's distributions (csrc/bw_dist.h).
_BETA, _NIG_MEAN, _NIG_LNMEAN, _GAMMA, _INVGAMMA = 1, 2, 3, 4, 5
_MAX_CACHED_LEVELS = 256
# Requests of at most this many draws are made on the calling thread: a thread hop costs
# tens of microseconds, more than drawing them (bench/run.py measures both; the worst
# quantity, compound revenue, draws 2,048 in well under 100 us, too short to stall a loop).
INLINE_DRAWS = 2048


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def _cached(cache: dict[float, np.ndarray], level: float, rows: Any) -> np.ndarray:
    """``rows`` as a read-only float64 array, kept in ``cache`` under ``level`` while the
    cache holds fewer than _MAX_CACHED_LEVELS levels."""
    arr = _readonly(np.array(rows, dtype=np.float64))
    if len(cache) < _MAX_CACHED_LEVELS:
        cache[level] = arr
    return arr


def _parameters(factor: tuple) -> dict[str, float]:
    kind, p0, p1, p2, p3 = factor
    if kind in (_NIG_MEAN, _NIG_LNMEAN):
        return {"mu": p0, "kappa": p1, "alpha": p2, "beta": p3}
    # beta: Beta(alpha, beta); gamma and inverse gamma: the rate's Gamma(shape alpha, rate beta)
    return {"alpha": p0, "beta": p1}


class _Plan:
    """The batches of n draws, batch_size at a time, as (offset, size): computed on demand,
    so a plan of 2**48 single draws costs nothing until it is walked."""

    def __init__(self, n: int, batch_size: int) -> None:
        self.n, self.b = n, batch_size

    def __len__(self) -> int:
        return -(-self.n // self.b)

    def __getitem__(self, i: int) -> tuple[int, int]:
        if not 0 <= i < len(self):
            raise IndexError(i)
        pos = i * self.b
        return pos, min(self.b, self.n - pos)

    def __iter__(self):
        for pos in range(0, self.n, self.b):
            yield pos, min(self.b, self.n - pos)


class PosteriorProxy:
    """A handle on one posterior quantity held by an :class:`InferenceWorker`.

    Summaries are NumPy float64 arrays with one entry per component: ``mean()`` and
    ``variance()`` have shape ``(k,)``, ``credible_interval(level)`` shape ``(k, 2)``
    (``k == 1`` for the conjugate models). They are read-only views of the cache.
    Credible intervals are central (equal-tailed).
    """

    def __init__(self, worker: "InferenceWorker", post_id: int, part: int, model_type: str,
                 info: dict[str, Any], root: "PosteriorProxy | None" = None) -> None:
        self._worker = worker
        self._id = post_id
        self._part = part
        self._root = root if root is not None else self
        self._gone: str | None = None
        self.model_type = model_type
        entry = info["parts"][part]
        self._mean = _readonly(np.array([entry["mean"]], dtype=np.float64))
        self._variance = _readonly(np.array([entry["variance"]], dtype=np.float64))
        self._intervals: dict[float, np.ndarray] = {
            level: _readonly(np.array([[lo, hi]], dtype=np.float64))
            for level, lo, hi in entry["intervals"]
        }
        factors = entry["factors"]
        self._factors = factors
        if len(factors) == 1:
            self._parameters = _parameters(factors[0])
        else:
            self._parameters = {"frequency": _parameters(factors[0]),
                                "severity": _parameters(factors[1])}

    # -- identity and state ------------------------------------------------------------
    @property
    def id(self) -> int:
        """The posterior's id in the worker's store (shared by a compound's parts)."""
        return self._id

    @property
    def disposed(self) -> bool:
        """True once the posterior was disposed, cleared, evicted or its worker closed."""
        return self._root._gone is not None

    @property
    def parameters(self) -> dict[str, Any]:
        """The posterior's hyperparameters (a copy).

        beta: ``alpha, beta``; normal and lognormal: the normal-inverse-gamma
        ``mu, kappa, alpha, beta``; exponential and poisson: the Gamma(``alpha`` shape,
        ``beta`` rate) posterior of the rate; compound: ``frequency`` and ``severity``.
        """
        self._check()
        return {k: (dict(v) if isinstance(v, dict) else v) for k, v in self._parameters.items()}

    def _check(self) -> None:
        root = self._root
        if root._gone is None and not self._worker._touch(self._id):
            root._gone = self._worker._gone_reason(self._id)
        if root._gone is not None:
            raise DisposedError(f"posterior {self._id} ({self.model_type}) is gone: {root._gone}")

    def __repr__(self) -> str:
        state = f"gone: {self._root._gone}" if self._root._gone else (
            f"mean={self._mean[0]:.6g}, 95% CI=[{self._intervals[0.95][0, 0]:.6g}, "
            f"{self._intervals[0.95][0, 1]:.6g}]")
        return f"<{type(self).__name__} {self.model_type} #{self._id} {state}>"

    # -- instant summaries -------------------------------------------------------------
    def mean(self) -> np.ndarray:
        """Posterior mean, shape (k,).

        For lognormal severities (whose posterior mean of exp(mu + sigma^2/2) is
        infinite) this is the mean truncated at the 99.99 % posterior quantile:
        E[m | m <= q_0.9999]; see the README.
        """
        self._check()
        return self._mean

    def variance(self) -> np.ndarray:
        """Posterior variance, shape (k,); same truncation rule as :meth:`mean`."""
        self._check()
        return self._variance

    def credible_interval(self, level: float = 0.95) -> np.ndarray:
        """Central credible interval at ``level`` in (0, 1), shape (k, 2).

        0.95, 0.90 and 0.80 are precomputed; any other level is computed exactly on
        this thread (milliseconds at most) and cached.
        """
        level = validate_level(level)
        self._check()
        cached = self._intervals.get(level)
        if cached is None:
            cached = _cached(self._intervals, level, [self._interval_now(self._part, level)])
        return cached

    def _interval_now(self, part: int, level: float) -> tuple[float, float]:
        """One part's central interval at ``level``, computed on this thread; the C core
        raises ModelError (a failed computation) or DisposedError (gone)."""
        try:
            return self._worker._core.interval_now(self._id, part, level)
        except DisposedError:
            self._check()
            raise

    async def credible_interval_async(self, level: float = 0.95, *,
                                      timeout: float | None = None) -> np.ndarray:
        """:meth:`credible_interval` computed on a worker thread."""
        level = validate_level(level)
        self._check()
        cached = self._intervals.get(level)
        if cached is not None:
            return cached
        job = await self._worker._run_async(
            lambda ch, t: self._worker._core.interval(self._id, self._part, level, ch, timeout=t),
            stage="interval", timeout=timeout, on_progress=None, n=0)
        return _cached(self._intervals, level, [job.result])

    # -- draws -------------------------------------------------------------------------
    def _submit_sample(self, n: int, channel: Any, start: int = -1,
                       timeout: float | None = None):
        out = self._worker._new_array(n)
        try:
            return self._worker._core.sample(self._id, self._part, out, channel, start,
                                             timeout=timeout), out
        except DisposedError:       # disposed since the last check (between two batches)
            self._check()
            raise

    def _sample_inline(self, n: int, on_progress: Callable[[Any], None] | None) -> np.ndarray:
        self._worker._error = None          # a request starts, as on the pool
        out = self._worker._core.sample_now(self._id, self._part, np.empty(n, dtype=np.float64))
        if on_progress is not None:
            on_progress(Progress("sampling", 1.0, 1, 1))
        return out

    async def sample(self, n: int, *, timeout: float | None = None,
                     on_progress: Callable[[Any], None] | None = None) -> np.ndarray:
        """``n`` posterior draws as a float64 array written by the workers.

        Successive calls continue one stream: ``sample(n)`` then ``sample(m)`` equals
        the first ``n + m`` draws of one ``sample(n + m)`` on a worker with the same seed.
        """
        n = validate_count(n, "n")
        self._check()
        if n <= INLINE_DRAWS:
            return self._sample_inline(n, on_progress)
        holder: list[np.ndarray] = []

        def submit(channel, limit):
            job, out = self._submit_sample(n, channel, timeout=limit)
            holder.append(out)
            return job

        await self._worker._run_async(submit, stage="sampling", timeout=timeout,
                                      on_progress=on_progress, n=n)
        return holder[0]

    def sample_sync(self, n: int, *, timeout: float | None = None,
                    on_progress: Callable[[Any], None] | None = None) -> np.ndarray:
        """Blocking twin of :meth:`sample`."""
        n = validate_count(n, "n")
        self._check()
        if n <= INLINE_DRAWS:
            return self._sample_inline(n, on_progress)
        job, out = self._submit_sample(n, None,
                                       timeout=self._worker._timeout(timeout, "sampling", n))
        self._worker._run_sync(job, stage="sampling", timeout=timeout,
                               on_progress=on_progress, n=n)
        return out

    def _batches(self, n: int, batch_size: int) -> tuple[int, list[tuple[int, int]]]:
        """Reserve n positions; the batches as a lazy sequence of (offset, size)."""
        start = self._worker._core.reserve(self._id, self._part, n) if n else 0
        return start, _Plan(n, batch_size)

    async def sample_batched(self, n: int, batch_size: int = 10_000, *,
                             timeout: float | None = None) -> AsyncIterator[np.ndarray]:
        """Async generator of arrays of at most ``batch_size`` draws, ``n`` in all.

        Their concatenation equals ``sample(n)`` at the same stream position: the ``n``
        positions are reserved when iteration starts. One batch is drawn ahead while
        the caller works on the current one, so memory stays at about two batches.
        ``timeout`` applies to each batch.
        """
        n = validate_count(n, "n")
        batch_size = validate_batch_size(batch_size)
        self._check()
        start, plan = self._batches(n, batch_size)
        worker = self._worker
        limit = worker._timeout(timeout, "sampling", batch_size)
        ahead = None
        try:
            for i, (pos, size) in enumerate(plan):
                if ahead is None:
                    ahead = worker._submit_async(*self._submit_sample(
                        size, worker._channel(), start + pos, timeout=limit))
                current, ahead = ahead, None
                if i + 1 < len(plan):
                    nxt_pos, nxt_size = plan[i + 1]
                    ahead = worker._submit_async(*self._submit_sample(
                        nxt_size, worker._channel(), start + nxt_pos, timeout=limit))
                out = await worker._finish_async(current, stage="sampling", timeout=timeout,
                                                 on_progress=None, n=size)
                yield out
        finally:
            if ahead is not None:
                worker._abandon(ahead, "sampling")

    def sample_batched_sync(self, n: int, batch_size: int = 10_000, *,
                            timeout: float | None = None) -> Iterator[np.ndarray]:
        """Blocking twin of :meth:`sample_batched` (a generator)."""
        n = validate_count(n, "n")
        batch_size = validate_batch_size(batch_size)
        self._check()
        start, plan = self._batches(n, batch_size)
        worker = self._worker
        limit = worker._timeout(timeout, "sampling", batch_size)
        ahead = None
        try:
            for i, (pos, size) in enumerate(plan):
                if ahead is None:
                    ahead = self._submit_sample(size, None, start + pos, timeout=limit)
                (job, out), ahead = ahead, None
                if i + 1 < len(plan):
                    nxt_pos, nxt_size = plan[i + 1]
                    ahead = self._submit_sample(nxt_size, None, start + nxt_pos, timeout=limit)
                worker._run_sync(job, stage="sampling", timeout=timeout, on_progress=None,
                                 n=size)
                yield out
        finally:
            if ahead is not None:
                ahead[0].cancel()

    # -- lifetime ----------------------------------------------------------------------
    async def dispose(self) -> None:
        """Free the posterior in the store; later use raises :class:`DisposedError`."""
        self.dispose_sync()

    def dispose_sync(self) -> None:
        """Blocking twin of :meth:`dispose` (it never blocks for long)."""
        self._worker._dispose(self._id, "disposed")


class CompoundPosteriorProxy(PosteriorProxy):
    """Revenue per user of a compound model: conversion rate x value per converter.

    ``frequency`` and ``severity`` are proxies of the two parts; this proxy's own
    summaries and draws are of their product (the two posteriors are independent).
    Disposing any of the three disposes the whole posterior.
    """

    def __init__(self, worker: "InferenceWorker", post_id: int, model_type: str,
                 info: dict[str, Any]) -> None:
        super().__init__(worker, post_id, 0, model_type, info)
        self.frequency = PosteriorProxy(worker, post_id, 1, model_type + ":frequency", info,
                                        root=self)
        self.severity = PosteriorProxy(worker, post_id, 2, model_type + ":severity", info,
                                       root=self)

    def expected_value_per_user(self) -> float:
        """E[conversion rate] x E[value per converter]: the mean of revenue per user."""
        self._check()
        return float(self._mean[0])
