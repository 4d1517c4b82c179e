"""Posterior proxies: exact cached summaries at hand, expensive work on the workers.

A proxy holds the shared handle of a posterior in the worker's C store (every proxy of
one posterior shares it; the last to go frees the posterior). ``mean()``, ``variance()``
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
from typing import Any

import numpy as np

from ._bridge import (INTERVAL, SAMPLING, Emit, Handle, Owner, Request, Start,
                      timeout_limit)
from ._distribution import Distribution
from ._progressbar import bar_over_batches, bar_over_batches_async, progress_listener
from ._validate import validate_batch_size, validate_count, validate_level

# Kinds of the C core's distributions (csrc/bw_dist.h).
_BETA, _NIG_MEAN, _NIG_LNMEAN, _GAMMA, _INVGAMMA = 1, 2, 3, 4, 5
_MAX_CACHED_LEVELS = 256
# Requests of at most this many draws are made on the calling thread: a thread hop costs
# tens of microseconds, more than drawing them (bench/run.py measures both; the worst
# quantity, compound revenue, draws 2,048 in well under 100 us, too short to stall a loop).
INLINE_DRAWS = 2048


class _cached_attribute:
    """A summary computed on its first read, then an ordinary attribute of the instance
    (functools.cached_property without its lock: a proxy's summaries are made once and
    are the same whichever thread makes them). Stored by setattr, not through
    ``__dict__``, which would make the instance's attribute dict a real dict: one more
    object per proxy for the garbage collector."""

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn
        self.name = fn.__name__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        value = self.fn(obj)
        setattr(obj, self.name, value)
        return value


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


def _plan(n: int, batch_size: int) -> Iterator[tuple[int, int]]:
    """The batches of n draws, batch_size at a time, as (offset, size): made on demand,
    so a plan of 2**48 single draws costs nothing until it is walked."""
    for pos in range(0, n, batch_size):
        yield pos, min(batch_size, n - pos)


class PosteriorProxy(Distribution):
    """A handle on one posterior quantity held by an :class:`InferenceWorker`.

    Summaries are NumPy float64 arrays with one entry per component: ``mean()`` and
    ``variance()`` have shape ``(k,)``, ``credible_interval(level)`` shape ``(k, 2)``
    (``k == 1`` for the conjugate models). They are read-only views of the cache.
    Credible intervals are central (equal-tailed). Like a frozen scipy distribution it
    has ``pdf``, ``cdf``, ``ppf``, ``median``, ``quantile`` and ``std``, exact
    (:class:`~bayesworker._distribution.Distribution`), and ``summary()`` as a DataFrame.

    Every proxy of one posterior (a compound's parts, a mixture's streams) shares one
    :class:`~bayesworker._bridge.Handle`; when the last of them is garbage-collected, the
    posterior is freed from the worker's store.
    """

    def __init__(self, worker: Owner, post_id: int, part: int, model_type: str,
                 info: dict[str, Any], root: "PosteriorProxy | None" = None) -> None:
        self._bind(worker, post_id, part, model_type, root)
        # the stored part's description; its arrays and dicts are made on first use (below)
        self._entry = info["parts"][part]
        self._factors = self._entry["factors"]

    # The cached summaries, built from the stored description the first time they are read
    # (a fit's result is made without them: many fits are never asked for all of them).
    @_cached_attribute
    def _mean(self) -> np.ndarray:
        return _readonly(np.array([self._entry["mean"]], dtype=np.float64))

    @_cached_attribute
    def _variance(self) -> np.ndarray:
        return _readonly(np.array([self._entry["variance"]], dtype=np.float64))

    @_cached_attribute
    def _intervals(self) -> dict[float, np.ndarray]:
        rows = self._entry["intervals"]
        if rows is None:        # a one-part fit leaves every level to its first use
            return {}
        return {level: _readonly(np.array([[lo, hi]], dtype=np.float64))
                for level, lo, hi in rows}

    @_cached_attribute
    def _parameters(self) -> dict[str, Any]:
        factors = self._factors
        if len(factors) == 1:
            return _parameters(factors[0])
        return {"frequency": _parameters(factors[0]), "severity": _parameters(factors[1])}

    def _bind(self, worker: Owner, post_id: int, part: int, model_type: str,
              root: "PosteriorProxy | None") -> None:
        """Hold the posterior's shared handle (``root``'s, if given) and this quantity's part."""
        self._handle: Handle = root._handle if root is not None else \
            worker.posterior_handle(post_id)
        self._part = part
        self.model_type = model_type

    # -- identity and state ------------------------------------------------------------
    @property
    def id(self) -> int:
        """The posterior's id in the worker's store (shared by a compound's parts)."""
        return self._handle.id

    @property
    def disposed(self) -> bool:
        """True once the posterior was disposed, cleared, evicted or its worker closed."""
        return self._handle.gone is not None

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
        self._handle.check(self.model_type)

    def _describe(self) -> str:
        mean = f"mean={self._mean[0]:.6g}"
        ci, exc = self._handle.bridge.attempt_here(         # a repr never raises
            self._levels(None, self._interval_parts(), 0.95))
        if exc is not None:
            return f"{mean}, 95% CI unavailable ({exc})"
        lo, hi = ci[0]
        if not lo <= self._mean[0] <= hi and self._quantities() is not None:   # heavy tail
            mean = f"median={self.median()[0]:.6g}, {mean} (outside its 95% CI)"
        return f"{mean}, 95% CI=[{lo:.6g}, {hi:.6g}]"

    def __repr__(self) -> str:
        gone = self._handle.gone
        state = f"gone: {gone}" if gone else self._describe()
        return f"<{type(self).__name__} {self.model_type} #{self.id} {state}>"

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

    # -- intervals: one request, computed here or on the workers -----------------------
    def _interval_parts(self) -> range:
        """The parts whose intervals are the rows of :meth:`credible_interval`."""
        return range(self._part, self._part + 1)

    def _levels(self, cache: dict[float, np.ndarray] | None, parts: range, level: float,
                timeout: float | None = None, *, row: bool = False) -> Request:
        """Request: the central intervals of ``parts`` at ``level`` as a read-only array of
        rows (``row``: the one row itself), from ``cache`` or computed and cached."""
        if type(level) is not float or not 0.0 < level < 1.0:     # else nothing to check
            level = validate_level(level)
        timeout_limit(timeout, INTERVAL)        # refused even when the level is cached
        self._check()
        if cache is None:
            cache = self._intervals
        cached = cache.get(level)
        if cached is None:
            rows = []
            for part in parts:
                rows.append((yield self._handle.interval(part, level, timeout=timeout,
                                                         label=self.model_type)))
            cached = _cached(cache, level, rows[0] if row else rows)
        return cached

    def credible_interval(self, level: float = 0.95) -> np.ndarray:
        """Central credible interval at ``level`` in (0, 1), shape (k, 2).

        0.95, 0.90 and 0.80 are cached: other models compute them at fit time, a one-part
        conjugate fit each on its first use (one C call of a few microseconds). Any other
        level is computed exactly on this thread (milliseconds at most) and cached.
        """
        if type(level) is float and 0.0 < level < 1.0:    # no request to drive
            self._check()
            cache = self._intervals
            cached = cache.get(level)
            if cached is None:          # computed here at once, as _levels would
                handle, label = self._handle, self.model_type
                cached = _cached(cache, level, [handle.interval_here(part, level, label)
                                                for part in self._interval_parts()])
            return cached
        return self._handle.bridge.run_here(
            self._levels(None, self._interval_parts(), level))

    async def credible_interval_async(self, level: float = 0.95, *,
                                      timeout: float | None = None) -> np.ndarray:
        """:meth:`credible_interval` computed on the worker threads."""
        return await self._handle.bridge.run_async(
            self._levels(None, self._interval_parts(), level, timeout))

    # -- draws: one request each, driven async or blocking -----------------------------
    #: Numbers per draw: 1 for a scalar quantity (draws of shape (n,)); a vector quantity's
    #: proxy sets its length (draws of shape (n, width)).
    _width = 1

    def _draws(self, part: int, n: int, timeout: float | None,
               on_progress: Callable[[Any], None] | None, start: int | None = None) -> Request:
        """Request: ``n`` draws of ``part``'s stream (short ones on the calling thread);
        ``start``: positions start .. start+n-1, the stream's cursor left where it is."""
        n = validate_count(n, "n")
        first = -1 if start is None else validate_count(start, "start")
        self._check()
        return (yield self._handle.draws(part, n, start=first,
                                         inline=first < 0 and n * self._width <= INLINE_DRAWS,
                                         timeout=timeout, on_progress=on_progress,
                                         label=self.model_type, width=self._width))

    def _batches(self, part: int, n: int, batch_size: int,
                 timeout: float | None) -> Request:
        """Request: ``n`` draws of ``part``'s stream emitted ``batch_size`` at a time, one
        batch drawn ahead; the ``n`` positions are reserved when it starts."""
        n = validate_count(n, "n")
        batch_size = validate_batch_size(batch_size)
        timeout_limit(timeout, SAMPLING)        # refused before any position is reserved
        self._check()
        handle, label = self._handle, self.model_type
        start = (yield handle.reserve(part, n, label)) if n else 0
        calls = (handle.draws(part, size, start=start + pos, timeout=timeout, label=label,
                              width=self._width)
                 for pos, size in _plan(n, batch_size))
        current = next(calls, None)
        while current is not None:
            yield Start(current)
            ahead = next(calls, None)
            if ahead is not None:
                yield Start(ahead)
            yield Emit((yield current))
            current = ahead

    async def sample(self, n: int, *, start: int | None = None, timeout: float | None = None,
                     on_progress: Callable[[Any], None] | None = None,
                     progress: bool | str | None = None) -> np.ndarray:
        """``n`` posterior draws as a float64 array written by the workers.

        Successive calls continue one stream: ``sample(n)`` then ``sample(m)`` equals
        the first ``n + m`` draws of one ``sample(n + m)`` on a worker with the same seed.
        ``start=k`` draws positions k .. k+n-1 of the stream instead, without moving its
        cursor: the same draws every time (a notebook cell can be re-run).
        ``progress``: True shows a tqdm bar, None follows ``bw.set_options(progress=)``.
        """
        with progress_listener(progress, on_progress, f"sample {self.model_type}") as listen:
            return await self._handle.bridge.run_async(
                self._draws(self._part, n, timeout, listen, start))

    def sample_sync(self, n: int, *, start: int | None = None, timeout: float | None = None,
                    on_progress: Callable[[Any], None] | None = None,
                    progress: bool | str | None = None) -> np.ndarray:
        """Blocking twin of :meth:`sample`."""
        with progress_listener(progress, on_progress, f"sample {self.model_type}") as listen:
            return self._handle.bridge.run_sync(
                self._draws(self._part, n, timeout, listen, start))

    def sample_batched(self, n: int, batch_size: int = 10_000, *,
                       timeout: float | None = None,
                       progress: bool | str | None = None) -> AsyncIterator[np.ndarray]:
        """Async generator of arrays of at most ``batch_size`` draws, ``n`` in all.

        Their concatenation equals ``sample(n)`` at the same stream position: the ``n``
        positions are reserved when iteration starts. One batch is drawn ahead while
        the caller works on the current one, so memory stays at about two batches.
        ``timeout`` applies to each batch. ``progress``: a bar counting the draws.
        """
        return bar_over_batches_async(self._handle.bridge.iterate_async(
            self._batches(self._part, n, batch_size, timeout)), n, progress,
            f"sample {self.model_type}")

    def sample_batched_sync(self, n: int, batch_size: int = 10_000, *,
                            timeout: float | None = None,
                            progress: bool | str | None = None) -> Iterator[np.ndarray]:
        """Blocking twin of :meth:`sample_batched` (a generator)."""
        return bar_over_batches(self._handle.bridge.iterate_sync(
            self._batches(self._part, n, batch_size, timeout)), n, progress,
            f"sample {self.model_type}")

    # -- lifetime ----------------------------------------------------------------------
    async def dispose(self) -> None:
        """Free the posterior in the store; later use raises :class:`DisposedError`."""
        self.dispose_sync()

    def dispose_sync(self) -> None:
        """Blocking twin of :meth:`dispose` (it never blocks for long)."""
        self._handle.dispose()


class CompoundRevenue:
    """What every compound proxy (revenue per user = conversion rate x order value) adds:
    the expected value per user and summary rows for itself and its two parts."""

    _mean: np.ndarray

    def expected_value_per_user(self) -> float:
        """E[conversion rate] x E[value per converter] (a mixture's: its mixture mean): the
        mean of revenue per user."""
        self._check()  # type: ignore[attr-defined]
        return float(self._mean[0])

    def _labels(self) -> list[str]:
        return ["revenue"]

    def _summary_rows(self, levels: tuple[float, ...]) -> list[dict[str, Any]]:
        """Revenue per user, then the frequency and severity parts."""
        return compound_rows(self, levels)


class CompoundPosteriorProxy(CompoundRevenue, PosteriorProxy):
    """Revenue per user of a compound model: conversion rate x value per converter.

    ``frequency`` and ``severity`` are proxies of the two parts; this proxy's own
    summaries and draws are of their product (the two posteriors are independent).
    Disposing any of the three disposes the whole posterior.
    """

    def __init__(self, worker: Owner, post_id: int, model_type: str,
                 info: dict[str, Any]) -> None:
        super().__init__(worker, post_id, 0, model_type, info)
        self.frequency = PosteriorProxy(worker, post_id, 1, model_type + ":frequency", info,
                                        root=self)
        self.severity = PosteriorProxy(worker, post_id, 2, model_type + ":severity", info,
                                       root=self)



def compound_rows(proxy: Any, levels: tuple[float, ...]) -> list[dict[str, Any]]:
    """The summary rows of a compound proxy: its own, then its parts' (quantity names
    prefixed by the part where a part has several rows)."""
    rows = Distribution._summary_rows(proxy, levels)
    for name in ("frequency", "severity"):
        part_rows = getattr(proxy, name)._summary_rows(levels)
        for row in part_rows:
            if len(part_rows) > 1:
                row["quantity"] = f"{name}: {row['quantity']}"
        rows.extend(part_rows)
    return rows
