"""The request edge: every model request is validated here, once, before any work starts.

:func:`prepare` turns a model type string, the user's data, an optional prior and the
options into a :class:`FitRequest`: a canonical model name plus exactly what the C core
needs (counts, a float64 array of raw values to reduce, or aggregated sufficient
statistics) and the full prior with its defaults filled in. It asks the model's family
(:mod:`bayesworker.models`) for each step, or :mod:`bayesworker._auto` to choose one.
Nothing after this point has to check anything again, and every error names the
offending field and value. The data forms and priors of each model are documented in its
family module.

>>> import numpy as np
>>> from bayesworker._request import prepare
>>> req = prepare("beta-binomial", {"successes": 65, "trials": 1000}, None, {})
>>> req.model, req.counts, req.prior
('beta-binomial', (65, 1000), {'alpha': 1.0, 'beta': 1.0})
>>> x = np.array([1.5, 2.0, 4.25])
>>> prepare("normal", x, {"mu": 2.0}, {}).values is x        # read in place, no copy
True
>>> prepare("normal", {"n": 3, "mean": 2.0, "sd": 1.0}, None, {}).stats
{'n': 3.0, 'mean': 2.0, 'm2': 2.0}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from ._auto import choose
from ._errors import DataError
from .models import AUTO, family, resolve_model_type

__all__ = ["FitRequest", "prepare", "prepare_fit"]

T = TypeVar("T")


@dataclass(frozen=True, eq=False)
class FitRequest:
    """A validated model request, ready for the C core.

    Which fields carry the data: beta-binomial has ``counts`` only; normal, lognormal,
    exponential and poisson have ``values`` or ``stats`` (never both); compound models
    have ``counts`` (converters, users) plus ``values`` or ``stats`` for the severity.
    ``eq=False``: requests compare by identity (they hold arrays).

    Attributes:
        model: canonical model name, one of ``bayesworker.models.model_names()``.
        counts: ``(successes, trials)`` for beta-binomial, ``(converters, users)`` for
            compound models, else ``None``.
        values: 1-D C-contiguous float64 array of raw values to reduce in C (normal: the
            values; lognormal: the positive values, C takes the logs; exponential: values
            ``>= 0``; poisson: the counts; compound: the severity values), or ``None``.
            It is the caller's own array when that was already contiguous float64.
        stats: aggregated sufficient statistics (all floats) when the user passed
            aggregates: normal/lognormal ``{"n", "mean", "m2"}`` (lognormal on the log
            scale, ``m2`` the sum of squared deviations), exponential/poisson
            ``{"n", "sum"}``; else ``None``.
        prior: the full prior, defaults filled in (nested for compound models).
        reason: for ``"auto"``, why this model was chosen; else ``None``.
        options: the validated options.
        values_name: how messages name ``values`` (``"values"`` or ``"data['values']"``).
        values_checked: False when the value rules were left to the C core's fused pass
            (``prepare(..., check_values=False)``); see ``_rules.value_error``.
        extra: what else a family's parser found (dirichlet-multinomial: its categories).
    """

    model: str
    counts: tuple[int, int] | None
    values: np.ndarray | None
    stats: dict[str, float] | None
    prior: dict[str, Any]
    reason: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    values_name: str = "values"
    values_checked: bool = True
    extra: Mapping[str, Any] = field(default_factory=dict)


def _filled(cls: type[T], **values: Any) -> T:
    """An instance of the frozen dataclass ``cls`` with ``values``, which must give every
    field, made without the generated ``__init__`` (it sets each field through
    ``object.__setattr__`` and calls the default factories: twice the time, for a
    ``FitRequest`` on the path of every fit). Its ``__dict__`` is then a real dict, an object
    more for the garbage collector: for instances that do not live long.

    >>> _filled(FitRequest, model="normal", counts=None, values=None, stats=None, prior={},
    ...         reason=None, options={}, values_name="values", values_checked=True,
    ...         extra={}).model
    'normal'
    """
    obj = object.__new__(cls)
    obj.__dict__.update(values)
    return obj


def prepare(
    model_type: str,
    data: Any,
    prior: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
    *,
    check_values: bool = True,
) -> FitRequest:
    """Validate a model request and return it as a :class:`FitRequest`.

    With ``check_values=False`` the per-value rules of raw values that the C core checks
    in the same pass that reduces the data (finite, positive, non-negative, integral) are
    not scanned here; the worker turns the core's finding into the same ``DataError``.
    Everything else is still checked here.

    Raises :class:`~bayesworker._errors.ModelError` for an unknown model type, an
    unknown option or a bad prior, and :class:`~bayesworker._errors.DataError` for bad
    data. For ``"auto"`` the prior and options are checked against the chosen model.

    >>> req = prepare("auto", [0, 1, 1, 0, 1], None, {})
    >>> req.model, req.counts
    ('beta-binomial', (3, 5))
    """
    name = resolve_model_type(model_type)
    reason: str | None = None
    if name == AUTO:
        fam, reason, parsed = choose(data)
        opts = fam.check_options(options)
        full_prior = fam.check_prior(prior)
    else:  # cheap checks first, then the data
        fam = family(name)
        opts = fam.check_options(options)
        full_prior = fam.check_prior(prior)
        if data is None:
            raise DataError(f"data is None; model {name!r} needs data")
        parsed = fam.parse(data, check_values)
    if fam.bind_prior is not None:
        full_prior = fam.bind_prior(full_prior, parsed)
    return _filled(
        FitRequest,
        model=fam.name,
        counts=parsed.counts,
        values=parsed.values,
        stats=parsed.stats,
        prior=full_prior,
        reason=reason,
        options=opts,
        values_name=parsed.values_name,
        values_checked=parsed.values_checked,
        extra=parsed.extra,
    )


def prepare_fit(model_type: str, data: Any, prior: Any, options: Any) -> FitRequest:
    """The worker's :func:`prepare`: raw values are left to the C core's fused check, and
    the family's own refusals of a fit (``Family.check_fit``) apply."""
    req = prepare(model_type, data, prior, options, check_values=False)
    check = family(req.model).check_fit
    if check is not None:
        check(req)
    return req
