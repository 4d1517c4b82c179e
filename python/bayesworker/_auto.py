"""Model choice: how ``"auto"`` picks a family from the data, and when it takes a mixture.

First (:func:`choose`), from the data alone; deterministic, and the reason states the
figures used. The families say how they may be chosen (``Family.auto``):

1. A family whose aggregate form the data dict is (``{"successes", "trials"}``, a normal
   or lognormal aggregate; ``{"n", "sum"}`` fits both exponential and poisson and is
   rejected).
2. Converted/value data (dict, records, DataFrame, or the compound aggregate) -> the
   compound family whose severity has the lowest BIC on the severity values (an
   aggregate decides by its severity keys; the fallback family when undefined).
3. Raw values: the first family, by rank, that claims them (beta-binomial: all 0 or 1 or
   booleans; normal: some value negative; poisson: all non-negative integers).
4. Otherwise the lowest BIC (``k ln n - 2 max log-likelihood``) among the families that
   admit the values (lognormal only if every value is > 0); ties go to the lower rank,
   the simpler model: exponential, lognormal, normal. With fewer than two distinct values
   the comparison is undefined and the fallback family (lognormal) is chosen.

Then (:func:`mixture_request`, :func:`mixture_decide`), in the worker: when the choice
has a mixture counterpart (``Family.auto_mixture_of``), was made on at least
:data:`AUTO_MIXTURE_MIN_N` raw values and has the default prior, that mixture is also
fitted with ``components="auto"`` and taken if its best K > 1 beats K = 1 by more than
:data:`AUTO_MIXTURE_NATS` nats of ELBO.

>>> choose_model({"successes": 3, "trials": 10})[0]
'beta-binomial'
>>> choose_model([-1.0, 0.5, 2.0])[0]
'normal'
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ._errors import DataError
from ._inputs import as_1d, float64, forms_text, keys_text
from ._rules import FINITE, check
from .models import Family, Parsed, families, family
from .models._compound import AGGREGATE_KEYS, ROW_KEYS, is_compound_data, parse_rows
from .models._values import moments

__all__ = ["AUTO_MIXTURE_NATS", "AUTO_MIXTURE_MIN_N", "choose", "choose_model", "compare",
           "mixture_request", "prepare_mixture_prior", "mixture_decide"]

#: "auto" takes a mixture over its single-component model only when the best K > 1 beats
#: K = 1 by more than this many nats of ELBO (a Bayes factor above e^10 ~ 22,000 if the
#: ELBOs were the evidences), and only with at least AUTO_MIXTURE_MIN_N values.
AUTO_MIXTURE_NATS = 10.0
AUTO_MIXTURE_MIN_N = 20

# The part of a compound family's prior that its mixture counterpart replaces.
_SEVERITY = "severity"


def choose_model(data: Any) -> tuple[str, str]:
    """Choose a model for ``data`` the way ``"auto"`` does; return ``(model, reason)``."""
    fam, reason, _ = choose(data)
    return fam.name, reason


def choose(data: Any) -> tuple[Family, str, Parsed]:
    """The family ``"auto"`` chooses for ``data``, why, and the data as it parsed them."""
    if data is None:
        raise DataError("data is None; 'auto' needs data to choose a model")
    if is_compound_data(data):
        return _choose_compound(data)
    if isinstance(data, Mapping):
        if set(data) != {"values"}:
            return _choose_aggregate(data)
        return _choose_values(data["values"], "data['values']")
    return _choose_values(data, "values")


def _ranked(compound: bool) -> list[Family]:
    """The families ``auto`` may choose, one-part or compound, by rank (of the severity)."""
    fams = [f for f in families() if f.auto is not None and (f.severity is not None) == compound
            and (not compound or f.severity.auto is not None)]
    return sorted(fams, key=lambda f: (f.severity or f).auto.rank)


def _choose_aggregate(data: Mapping[str, Any]) -> tuple[Family, str, Parsed]:
    keys = set(data)
    ranked = _ranked(compound=False)
    fits = [f for f in ranked if any(keys == set(form) for form in f.forms)]
    if len(fits) == 1:
        fam = fits[0]
        reason = fam.auto.aggregate_reason.format(model=fam.name, keys=keys_text(keys))
        return fam, reason, fam.parse(data, True)
    if fits:
        names = [repr(f.name) for f in fits]
        raise DataError(
            f"auto cannot choose from data {keys_text(keys)}: it fits "
            f"{'both ' if len(names) == 2 else ''}{', '.join(names[:-1])} and {names[-1]}; "
            "pass the model type"
        )
    auto_names = {f.name for f in ranked}
    listed = [f for f in families() if f.name in auto_names]       # in the registry's order
    forms = [form for f in listed for form in f.forms
             if sum(set(form) == set(g) for h in listed for g in h.forms) == 1]
    raise DataError(
        f"data has keys {keys_text(keys)}, which 'auto' does not recognise; expected one "
        f"of: {forms_text([*forms, ROW_KEYS, ('values',)])}, a compound aggregate, or a "
        "1-D array"
    )


def _choose_values(data: Any, name: str) -> tuple[Family, str, Parsed]:
    arr = as_1d(data, name, allow_bool=True)
    n = arr.shape[0]
    if n == 0:
        raise DataError(f"{name} is empty; 'auto' needs at least one value to choose a model")
    x = float64(arr)
    check((x,), [FINITE], arr, lambda i: f"{name}[{i}]")
    lo = float(x.min())
    given = arr if name == "values" else {"values": arr}
    ranked = _ranked(compound=False)
    for fam in ranked:
        reason = fam.auto.claim(arr, x, name, lo) if fam.auto.claim is not None else None
        if reason is not None:
            return fam, reason, fam.parse(given, True)
    candidates = [f for f in ranked if f.auto.loglik is not None and f.auto.admits(lo)]
    fam, figures = compare(x, candidates)
    sign = "positive" if lo > 0 else "non-negative"
    reason = f"auto: {n} {sign} values, not all integers; {figures}"
    return fam, reason, fam.parse(given, True)


def _choose_compound(data: Any) -> tuple[Family, str, Parsed]:
    compounds = _ranked(compound=True)
    by_severity = {f.severity.name: f for f in compounds}
    if isinstance(data, Mapping) and set(data) != set(ROW_KEYS):
        sev_keys = set(data) - {*AGGREGATE_KEYS, "n"}
        default = by_severity[_fallback().name]
        fam = next((f for f in compounds
                    if any(set(form) - {"n"} == sev_keys for form in f.severity.forms)),
                   default)
        why = (
            f"the severity aggregate has keys {keys_text(sev_keys)}"
            if sev_keys
            else f"there are no severity values ({default.severity.name} is the default)"
        )
        reason = f"auto: converted/value aggregate; {why}, so {fam.name}"
        return fam, reason, fam.parse(data, True)
    parsed = parse_rows(data)
    assert parsed.values is not None
    severity, figures = compare(parsed.values, [f.severity for f in compounds])
    k = parsed.values.shape[0]
    reason = f"auto: converted/value data; severity ({k} values > 0): {figures}"
    return by_severity[severity.name], reason, parsed


def _fallback() -> Family:
    fam = next((f for f in families() if f.auto is not None and f.auto.fallback), None)
    if fam is None:
        raise DataError("auto cannot compare fewer than 2 distinct values and no model is "
                        "registered as its fallback")
    return fam


def compare(x: np.ndarray, candidates: list[Family]) -> tuple[Family, str]:
    """The lowest-BIC family among ``candidates`` (listed simplest first) for ``x``."""
    n, mean, m2 = moments(x)
    if n < 2 or m2 <= 0.0:
        fam = _fallback()
        return fam, (
            f"fewer than 2 distinct values (n = {n}), so the likelihood comparison is "
            f"undefined; chose {fam.name}, the default for positive values"
        )
    loglik: dict[str, float] = {}
    for fam in candidates:
        ll = fam.auto.loglik(x, (n, mean, m2))
        if ll is not None:
            loglik[fam.name] = ll
    if not loglik:
        raise DataError(f"auto has no model to compare for these {n} values")
    order = [f.name for f in candidates]
    params = {f.name: f.auto.params for f in candidates}
    bic = {m: params[m] * math.log(n) - 2.0 * ll for m, ll in loglik.items()}
    best = min(bic, key=lambda m: (bic[m], order.index(m)))
    figures = ", ".join(f"{m} {loglik[m]:.2f} (BIC {bic[m]:.2f})" for m in loglik)
    return (family(best),
            f"maximised log-likelihoods: {figures}; chose {best} (lowest BIC)")


# ---------------------------------------------------------------------------------------- #
# The mixture comparison                                                                   #
# ---------------------------------------------------------------------------------------- #


def _mixture_of(fam: Family) -> Family | None:
    return next((f for f in families() if f.auto_mixture_of == fam.name), None)


def prepare_mixture_prior(req: Any) -> dict[str, Any]:
    """The mixture counterpart of an auto request's prior (a compound keeps its frequency)."""
    fam = family(req.model)
    mix = _mixture_of(fam)
    assert mix is not None
    kept = {k: v for k, v in req.prior.items() if k != _SEVERITY} if fam.severity else None
    return mix.check_prior(kept)


def mixture_request(req: Any) -> Any:
    """For an auto request on raw values whose family has a mixture counterpart, the
    mixture request (components="auto") it is compared with; else None."""
    if req.reason is None or req.values is None or req.values.shape[0] < AUTO_MIXTURE_MIN_N:
        return None
    fam = family(req.model)
    mix = _mixture_of(fam)
    if mix is None:
        return None
    own, default = req.prior, fam.check_prior(None)
    if fam.severity is not None:
        own, default = own[_SEVERITY], default[_SEVERITY]
    if own != default:
        return None         # a prior of the user's: keep the conjugate model it is for
    return dataclasses.replace(req, model=mix.name, prior=prepare_mixture_prior(req),
                               options={"components": "auto"})


def mixture_decide(req: Any, mreq: Any, job: Any, result: Callable[[Any, Any], Any],
                   dispose: Callable[[int, str], None]) -> tuple[Any, Any]:
    """Keep the mixture fit ``job`` of ``mreq`` (``(result(...), req)``) or discard it
    (``(None, req with the reason why)``)."""
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
        return result(dataclasses.replace(mreq, reason=reason), job), req
    dispose(job.result, "discarded by auto")
    reason = (f"{req.reason}; {mreq.model} with components='auto' (ELBO {figures}) "
              f"chose K={best['K']}, " + (
                  f"which beats K=1 by only {gap:.2f} nats <= {AUTO_MIXTURE_NATS:g}"
                  if best["K"] > 1 else "so no mixture")
              + f"; kept {req.model}")
    return None, dataclasses.replace(req, reason=reason)
