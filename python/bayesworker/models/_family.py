"""What a model family is: one record holding everything the package does with it.

A family module (``models/normal.py``, ...) builds one :class:`Family` and the registry
(``models/__init__.py``) lists it. The worker, ``auto`` and the validators only ever ask a
family, never test a model's name.

>>> from bayesworker.models import family
>>> fam = family("gamma")
>>> fam.name, fam.check_prior({"alpha": 2})
('exponential', {'alpha': 2.0, 'beta': 1.0})
>>> fam.parse({"n": 3, "sum": 6.0}, True).stats
{'n': 3.0, 'sum': 6.0}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._priors import OptionCheck, check_options

__all__ = ["Parsed", "Auto", "Family"]


@dataclass(frozen=True)
class Parsed:
    """What a family's parser found in the data (see ``FitRequest`` for each field)."""

    counts: tuple[int, int] | None = None
    values: np.ndarray | None = None
    stats: dict[str, float] | None = None
    values_name: str = "values"
    values_checked: bool = True
    extra: Mapping[str, Any] = field(default_factory=dict)


#: ``(arr, x, name, lo) -> reason or None``: the user's 1-D array, it as finite float64,
#: how messages name it, and its minimum.
Claim = Callable[[np.ndarray, np.ndarray, str, float], "str | None"]
#: ``(x, (n, mean, m2)) -> maximised log-likelihood`` (``None`` where undefined).
LogLik = Callable[[np.ndarray, tuple[int, float, float]], "float | None"]


@dataclass(frozen=True)
class Auto:
    """How ``auto`` may choose a family (``bayesworker._auto`` runs the procedure).

    Attributes:
        rank: claims are tried, and likelihood ties broken, in increasing rank (simpler
            models first).
        claim: takes raw values outright when it returns a reason (beta-binomial: all 0 or
            1; poisson: all non-negative integers).
        loglik: the maximised log-likelihood, for the BIC comparison of raw values.
        params: free parameters, for BIC.
        admits: ``admits(min value)``: whether the BIC comparison may consider it.
        fallback: the choice when the comparison is undefined (fewer than 2 distinct
            values).
        aggregate_reason: the reason when the data are one of its aggregate forms
            (``{model}`` and ``{keys}`` are filled in).
    """

    rank: int
    claim: Claim | None = None
    loglik: LogLik | None = None
    params: int = 0
    admits: Callable[[float], bool] = lambda lo: True
    fallback: bool = False
    aggregate_reason: str = "auto: data is a {model} aggregate {keys}"


@dataclass(frozen=True)
class Family:
    """One model family: its names, data forms, prior, options, proxy, fit and diagnostics.

    Attributes:
        name: the canonical model type string.
        parse: ``parse(data, check_values) -> Parsed`` (``data`` is not ``None``); with
            ``check_values=False`` it may leave the C core's value rules to the core.
        check_prior: ``check_prior(user prior or None) -> full prior`` (defaults filled).
        proxy: ``proxy(worker, post_id, model_type, stored posterior) -> proxy``.
        report: ``report(request, stored posterior, job, proxy) -> (converged,
            iterations, details)``: the family's own part of ``diagnostics.details``.
        aliases: other accepted spellings.
        options: option name -> validator; ``options_rule(clean options)`` checks them
            together; ``core_options(options)`` is the options tuple the C fit takes.
        fit_args: ``fit_args(request) -> dict`` overriding keyword arguments of the C fit
            (the generic ones: prior tuple, counts, values, stats; see ``_fit.py``).
        bind_prior: ``bind_prior(prior, parsed) -> prior`` completes a prior that depends
            on the shape of the data (the number of categories).
        check_fit: refuses a request the core could fit but not report on (run by the
            worker, not by ``prepare``).
        forms: the aggregate forms (key sets) ``parse`` accepts; ``aggregate(data, form,
            where) -> stats`` reads one and ``empty_stats`` are the stats of no values
            (used by the compound families whose severity this is).
        signed_prior: prior keys that may be zero or negative.
        severity: compound families: the family of their severity part.
        auto: how ``auto`` may choose it (``None``: never).
        auto_mixture_of: mixture families: the family that ``auto`` compares this
            mixture with when that family wins on raw values.
        instant: its fit from counts or aggregated statistics (no raw values) is a few
            microseconds of C, less than a hop to a worker thread and back: the worker
            computes it on the calling thread (as it draws short samples there).
    """

    name: str
    parse: Callable[[Any, bool], Parsed]
    check_prior: Callable[[Any], dict[str, Any]]
    proxy: Callable[[Any, int, str, dict], Any]
    report: Callable[[Any, dict, Any, Any], tuple[bool, int, dict[str, Any]]]
    aliases: tuple[str, ...] = ()
    options: Mapping[str, OptionCheck] = field(default_factory=dict)
    options_rule: Callable[[dict[str, Any]], None] | None = None
    core_options: Callable[[Mapping[str, Any]], tuple] | None = None
    fit_args: Callable[[Any], dict[str, Any]] | None = None
    bind_prior: Callable[[dict[str, Any], Parsed], dict[str, Any]] | None = None
    check_fit: Callable[[Any], None] | None = None
    forms: tuple[tuple[str, ...], ...] = ()
    aggregate: Callable[[Mapping[str, Any], tuple[str, ...], str], dict[str, float]] | None = None
    empty_stats: Mapping[str, float] | None = None
    signed_prior: frozenset[str] = frozenset()
    severity: "Family | None" = None
    auto: Auto | None = None
    auto_mixture_of: str | None = None
    instant: bool = False

    def check_options(self, options: Any) -> dict[str, Any]:
        """The validated options (each through its validator, then ``options_rule``)."""
        out = check_options(self.name, options, self.options)
        if self.options_rule is not None:
            self.options_rule(out)
        return out
