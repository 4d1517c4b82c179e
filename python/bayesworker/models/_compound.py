"""What the compound families share: converted/value rows, their aggregates, and a prior in
two parts (a Beta conversion rate times a severity model).

Data: ``{"converted": flags, "value": values}`` (equal lengths), a list of records
``{"converted": ..., "value": ...}`` (other keys ignored), a DataFrame-like object with
columns ``"converted"`` and ``"value"`` (other columns ignored), or the aggregate
``{"users", "converters", <severity aggregate>}`` where the severity aggregate is one of
the severity family's aggregate forms; its ``"n"`` (the number of severity values) may be
omitted and then equals ``converters``, and it may be left out entirely when there are no
severity values.

``converted`` is 0/1 or boolean. ``value`` must be ``>= 0`` and finite; a non-converter's
value is ignored and may be NaN (missing revenue). The severity values are the values of
the converters whose value is ``> 0``: a converter with value 0 counts as converted for
the frequency part but is left out of the severity part. Zero rows, or zero severity
values, are allowed here: that part's posterior is then its prior.

>>> from bayesworker.models._compound import parse_rows
>>> p = parse_rows([{"converted": 1, "value": 3.0}, {"converted": 0, "value": float("nan")}])
>>> p.counts, p.values
((1, 2), array([3.]))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .._errors import DataError
from .._inputs import float64, forms_text, is_frame, is_records, keys_text, read_columns
from .._priors import nested_prior
from .._proxy import CompoundPosteriorProxy
from .._rules import BINARY, Rule, check
from .._table import core_prior
from .._validate import count
from ._conjugate import conjugate_report
from ._family import Auto, Family, Parsed

__all__ = ["ROW_KEYS", "AGGREGATE_KEYS", "is_compound_data", "parse_rows", "parse_aggregate",
           "parts_prior", "compound_family"]

#: The columns of raw compound data, and the keys every compound aggregate has.
ROW_KEYS = ("converted", "value")
AGGREGATE_KEYS = ("users", "converters")
_WHAT = "compound models"


def is_compound_data(data: Any) -> bool:
    """Rows (a dict of the two columns, records, a DataFrame) or a compound aggregate."""
    if isinstance(data, Mapping):
        keys = set(data)
        return keys == set(ROW_KEYS) or set(AGGREGATE_KEYS) <= keys
    return is_frame(data) or is_records(data)


def parse_rows(data: Any) -> Parsed:
    """Counts ``(converters, users)`` and the severity values of raw rows."""
    got = read_columns(data, ((ROW_KEYS[0], True), (ROW_KEYS[1], False)), _WHAT)
    if got is None:
        raise DataError(
            f"data of type {type(data).__name__} is not a compound-model form; expected "
            "{'converted': [...], 'value': [...]}, a list of records, a DataFrame with "
            "columns 'converted' and 'value', or {'users', 'converters', <severity "
            "aggregate>}"
        )
    (conv, value), (item_c, item_v) = got
    if conv.shape[0] != value.shape[0]:
        raise DataError(
            f"data['converted'] has {conv.shape[0]} entries but data['value'] has "
            f"{value.shape[0]}; they must have the same length"
        )
    if conv.dtype.kind != "b":
        check((conv,), [BINARY], conv, item_c)
        c = conv != 0
    else:
        c = conv
    v = float64(value)
    rules: list[Rule] = [
        (lambda vb, cb: np.isfinite(vb) | (np.isnan(vb) & ~cb), "is not finite"),
        (lambda vb, cb: (vb >= 0) | np.isnan(vb), "must be non-negative"),
    ]
    check((v, c), rules, value, item_v)
    keep = c & (v > 0)
    converters = int(np.count_nonzero(c))
    if keep.all():
        sev = v  # every row is a converter with a positive value: read in place
    else:
        sev = np.ascontiguousarray(v[keep])
    return Parsed(counts=(converters, int(c.shape[0])), values=sev)


def parse_aggregate(data: Mapping[str, Any], model: str, severity: Family) -> Parsed:
    """Counts and severity statistics of ``{"users", "converters", <severity aggregate>}``."""
    forms = [(*AGGREGATE_KEYS, *f) for f in severity.forms]
    if not set(AGGREGATE_KEYS) <= set(data):
        raise DataError(
            f"data has keys {keys_text(data)}, which is not a form model {model!r} accepts; "
            f"expected {{'converted', 'value'}} or one of: {forms_text(forms)} ('n' may be "
            "omitted)"
        )
    users = count(data["users"], "data['users']")
    conv = count(data["converters"], "data['converters']")
    if conv > users:
        raise DataError(f"data['converters'] = {conv} exceeds data['users'] = {users}")
    sev_keys = set(data) - set(AGGREGATE_KEYS)
    if sev_keys <= {"n"}:
        n = count(data["n"], "data['n']") if "n" in data else conv
        if n != 0:
            raise DataError(
                f"data has no severity aggregate but {n} severity values "
                f"(data['n'] or data['converters']); give one of: {forms_text(forms)}"
            )
        assert severity.empty_stats is not None
        return Parsed(counts=(conv, users), stats=dict(severity.empty_stats))
    sev = {k: data[k] for k in sev_keys}
    sev.setdefault("n", conv)
    form = next((f for f in severity.forms if set(f) == set(sev)), None)
    if form is None or severity.aggregate is None:
        raise DataError(
            f"data has keys {keys_text(data)}, which is not a form model {model!r} accepts; "
            f"expected one of: {forms_text(forms)} ('n' may be omitted and then equals "
            "'converters')"
        )
    stats = severity.aggregate(sev, form, "data")
    if stats["n"] > conv:
        raise DataError(
            f"data['n'] = {int(stats['n'])} severity values exceeds data['converters'] = {conv}"
        )
    return Parsed(counts=(conv, users), stats=stats)


def parts_prior(model: str, parts: Mapping[str, Family], allowed: str,
                fixed: Callable[[], Mapping[str, Mapping[str, float]]] = dict,
                ) -> Callable[[Any], dict[str, Any]]:
    """The prior check of a compound ``model``: each of ``parts`` (part name -> the family
    it is a part of) takes its keys and defaults from ``model``'s C table row; ``fixed()``
    gives the parts the user cannot set."""

    def check_prior(prior: Any) -> dict[str, Any]:
        defaults = core_prior(model)
        spec = {p: (defaults[p], fam.signed_prior, fam.name) for p, fam in parts.items()}
        return nested_prior(model, prior, spec, allowed, fixed())

    return check_prior


def compound_family(name: str, frequency: Family, severity: Family, *,
                    auto: Auto | None = None, check_fit: Callable[[Any], None] | None = None
                    ) -> Family:
    """A conjugate compound family: Beta(``frequency``) x ``severity``, rows or aggregates."""

    def parse(data: Any, check_values: bool = True) -> Parsed:
        if isinstance(data, Mapping) and set(data) != set(ROW_KEYS):
            return parse_aggregate(data, name, severity)
        return parse_rows(data)

    return Family(
        name=name, parse=parse,
        check_prior=parts_prior(name, {"frequency": frequency, "severity": severity},
                                "'frequency', 'severity' (each a dict of that part's prior)"),
        proxy=CompoundPosteriorProxy, report=conjugate_report, check_fit=check_fit,
        severity=severity, auto=auto,
    )
