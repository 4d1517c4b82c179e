"""Several requests as one: every request's first call started before any is awaited.

:func:`gather` turns a list of requests (the generators of ``_bridge``) into one request
whose value is the list of their values, in order. Each request runs to its first call,
which is started at once (``Start``); then the requests are finished one after the other.
So N comparisons, or the draws of N posteriors, are N jobs in the pool side by side, driven
by one ``run_async`` or one ``run_sync`` like any single request.

>>> import bayesworker as bw
>>> from bayesworker._bridge import one
>>> with bw.InferenceWorker(threads=2, seed=7) as w:
...     posts = [w.run_inference_sync("beta-binomial", {"successes": s, "trials": 10}).posterior
...              for s in (2, 8)]
...     handles = [w.posterior_handle(p.id) for p in posts]
...     both = w._bridge.run_sync(gather([one(h.interval(0, 0.9)) for h in handles]))
...     print([round(lo, 3) for lo, hi in both])
[0.079, 0.53]
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ._bridge import Request, Start

__all__ = ["gather"]


def _rest(request: Request, step: Any) -> Request:
    """``request`` driven on from its pending ``step`` to its value."""
    while True:
        sent = yield step
        try:
            step = request.send(sent)
        except StopIteration as stop:
            return stop.value


def gather(requests: Iterable[Request]) -> Request:
    """The request of all ``requests``: their first calls started together, then each
    finished in turn; its value is the list of their values in the given order."""
    heads: list[tuple[Request | None, Any]] = []
    for request in requests:
        try:
            step = request.send(None)
        except StopIteration as stop:         # a request that needed no call
            heads.append((None, stop.value))
            continue
        yield Start(step.call if isinstance(step, Start) else step)
        heads.append((request, step))
    values = []
    for request, step in heads:
        values.append(step if request is None else (yield from _rest(request, step)))
    return values
