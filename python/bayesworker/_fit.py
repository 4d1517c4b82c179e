"""A fit, generically: the C call a request becomes, and the result a finished fit gives.

:func:`fit_kwargs` builds the keyword arguments of the C core's one fit call,
``Core.fit(model, prior, *, successes, trials, values, stats, options, channel)``, from a
:class:`~bayesworker._request.FitRequest` and its family (which may supply or override
any of them); :func:`submit_fit` makes the call. :func:`fit_result` wraps a finished fit
in its family's proxy and diagnostics.

>>> from bayesworker._request import prepare
>>> kw = fit_kwargs(prepare("normal", {"n": 3, "mean": 2.0, "sd": 1.0}))
>>> kw["prior"], kw["stats"], kw["options"]
((0.0, 1e-06, 1.0, 1.0), (3.0, 2.0, 2.0), None)
"""

from __future__ import annotations

from typing import Any

from ._request import FitRequest
from ._results import Diagnostics, InferenceResult
from ._table import core_row, prior_tuple
from .models import family

__all__ = ["fit_kwargs", "submit_fit", "instant", "fit_result"]


def fit_kwargs(req: FitRequest) -> dict[str, Any]:
    """The keyword arguments of ``Core.fit`` for ``req`` (all but ``channel``/``timeout``)."""
    fam = family(req.model)
    successes, trials = req.counts if req.counts is not None else (0, 0)
    kw: dict[str, Any] = {
        "model": core_row(fam.name)["code"],
        "prior": prior_tuple(fam.name, req.prior),
        "successes": successes,
        "trials": trials,
        "values": req.values,
        "stats": None if req.stats is None else tuple(float(v) for v in req.stats.values()),
        "options": None if fam.core_options is None else fam.core_options(req.options),
    }
    if fam.fit_args is not None:
        kw.update(fam.fit_args(req))
    return kw


def submit_fit(core: Any, req: FitRequest, channel: Any, timeout: float | None,
               here: bool = False) -> Any:
    """Submit the fit of ``req`` to the C core (its one generic ``fit``); returns its job
    (``here``: run to its end on this thread before this returns)."""
    return core.fit(**fit_kwargs(req), channel=channel, timeout=timeout, here=here)


def instant(req: FitRequest) -> bool:
    """Whether the fit of ``req`` is shorter than a thread hop (``Family.instant``, from
    counts or aggregated statistics): it is computed on the calling thread."""
    return req.values is None and family(req.model).instant


def fit_result(worker: Any, req: FitRequest, job: Any, info: dict[str, Any]) -> InferenceResult:
    """The result of the finished fit ``job`` of ``req``: its family's proxy of the stored
    posterior ``info`` and its diagnostics."""
    fam = family(req.model)
    post_id = job.result
    proxy = fam.proxy(worker, post_id, req.model, info)
    converged, iterations, own = fam.report(req, info, job, proxy)
    details: dict[str, Any] = {"model": req.model, "prior": req.prior, **own}
    if req.reason is not None:
        details["auto_choice"] = req.model
        details["reason"] = req.reason
    diagnostics = Diagnostics(converged, iterations, job.runtime, req.model, details)
    return InferenceResult(proxy, diagnostics)
