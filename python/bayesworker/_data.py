"""The data edge: every model request is validated here, once, before any work starts.

:func:`prepare` turns a model type string, the user's data, an optional prior and the
options into a :class:`FitRequest`: a canonical model name plus exactly what the C core
needs (counts, a float64 array of raw values to reduce, or aggregated sufficient
statistics) and the full prior with its defaults filled in. Nothing after this point has
to check anything again, and every error names the offending field and value.

>>> import numpy as np
>>> from bayesworker._data import prepare
>>> req = prepare("beta-binomial", {"successes": 65, "trials": 1000}, None, {})
>>> req.model, req.counts, req.prior
('beta-binomial', (65, 1000), {'alpha': 1.0, 'beta': 1.0})
>>> x = np.array([1.5, 2.0, 4.25])
>>> prepare("normal", x, {"mu": 2.0}, {}).values is x        # read in place, no copy
True
>>> prepare("normal", {"n": 3, "mean": 2.0, "sd": 1.0}, None, {}).stats
{'n': 3.0, 'mean': 2.0, 'm2': 2.0}

Data forms (``data`` argument)
------------------------------
beta-binomial
    ``{"successes": s, "trials": n}`` with integral ``0 <= s <= n`` (``n == 0`` is allowed:
    the posterior is the prior), or a 1-D array-like of 0/1 or booleans (also under the
    key ``"values"``; an empty array means zero trials).
normal, lognormal, exponential, poisson
    A 1-D array-like of real numbers (list, tuple, ndarray of any integer or float
    dtype, pandas Series; booleans are rejected), the same under ``{"values": ...}``, or an
    aggregate dict:

    - normal: ``{"n", "mean", "sd"}`` (``sd`` is the sample sd, divisor ``n - 1``; with
      ``n == 1`` it is ignored and may be NaN) or ``{"n", "sum", "sum_squares"}``;
    - lognormal: ``{"n", "mean_log", "sd_log"}`` or ``{"n", "sum_log", "sum_log_squares"}``;
    - exponential: ``{"n", "sum"}`` (integral ``n >= 1``, ``sum > 0``);
    - poisson: ``{"n", "sum"}`` (``n`` is the exposure, any positive real; ``sum`` is an
      integral count ``>= 0``).

    Raw values must be finite; lognormal needs every value ``> 0``; exponential needs
    every value ``>= 0`` and at least one ``> 0``; poisson needs non-negative integers.
    A single value is enough for every model: the default priors are proper.
compound-beta-lognormal, compound-beta-exponential
    ``{"converted": flags, "value": values}`` (equal lengths), a list of records
    ``{"converted": ..., "value": ...}`` (other keys in a record are ignored), a
    DataFrame-like object with columns ``"converted"`` and ``"value"`` (other columns are
    ignored), or the aggregate ``{"users", "converters", <severity aggregate>}`` where
    the severity aggregate is the lognormal or exponential form above; its ``"n"`` (the
    number of severity values) may be omitted and then equals ``converters``, and it
    may be left out entirely when there are no severity values.

    ``converted`` is 0/1 or boolean. ``value`` must be ``>= 0`` and finite; a
    non-converter's value is ignored, and may be NaN (missing revenue). The severity
    values are the values of the converters whose value is ``> 0``: a converter with
    value 0 counts as converted for the frequency part but is left out of the severity
    part. Zero rows, or zero severity values, are allowed here: that part's posterior is
    then its prior (``values`` is an empty float64 array). The worker refuses a
    ``compound-beta-lognormal`` fit with no severity value: the data-scale mean of a
    lognormal under the vague default prior has no finite quantiles to report.
auto
    See :func:`choose_model`.

Priors
------
Stated, weakly informative, never built from the data: beta-binomial Beta(1, 1);
normal and lognormal normal-inverse-gamma ``mu=0, kappa=1e-6, alpha=1, beta=1`` (on the log
scale for lognormal); exponential and poisson Gamma(shape ``alpha=1``, rate ``beta=1``) on
the rate. A user prior may give any subset of the keys; the rest take the defaults. Every
prior value must be a finite real (not a bool) and, except ``mu``, positive. Compound
models take a nested prior ``{"frequency": {alpha, beta}, "severity": {...}}``, each part
optional.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from ._errors import DataError, ModelError

__all__ = [
    "FitRequest",
    "prepare",
    "resolve_model_type",
    "choose_model",
    "validate_level",
    "validate_count",
    "validate_batch_size",
    "MODEL_TYPES",
    "MODEL_ALIASES",
    "DEFAULT_PRIORS",
    "MODEL_OPTIONS",
    "MIXTURE_MODELS",
    "MIXTURE_PRIOR",
    "MIXTURE_DEFAULTS",
    "MAX_ELEMENTS",
    "MAX_COUNT",
]

# ---------------------------------------------------------------------------------------- #
# Tables                                                                                   #
# ---------------------------------------------------------------------------------------- #

#: Canonical model names that :func:`prepare` can return.
MODEL_TYPES: tuple[str, ...] = (
    "beta-binomial",
    "normal",
    "lognormal",
    "exponential",
    "poisson",
    "compound-beta-lognormal",
    "compound-beta-exponential",
    "normal-mixture",
    "lognormal-mixture",
    "compound-beta-lognormalmixture",
)
#: Other accepted spellings and the canonical name they stand for.
MODEL_ALIASES: dict[str, str] = {"gamma": "exponential"}
#: Named in the design but not implemented yet: rejected with a message saying so.
_PLANNED_MODELS: tuple[str, ...] = ()
_COMPOUND_SEVERITY: dict[str, str] = {
    "compound-beta-lognormal": "lognormal",
    "compound-beta-exponential": "exponential",
    "compound-beta-lognormalmixture": "lognormal-mixture",
}
#: Mixture models (fitted by variational Bayes, see csrc/mixture.h).
MIXTURE_MODELS: tuple[str, ...] = (
    "normal-mixture",
    "lognormal-mixture",
    "compound-beta-lognormalmixture",
)
#: The mixtures' fixed prior, stated on the standardised scale y = (x' - loc) / scale
#: (x' = x or log x; loc the median, scale the normal-consistent MAD): see csrc/mixture.h.
MIXTURE_PRIOR: dict[str, float] = {"alpha0": 1.0, "m0": 0.0, "kappa0": 1e-3, "a0": 0.5,
                                   "b0": 0.05}
#: Mixture option defaults.
MIXTURE_DEFAULTS: dict[str, Any] = {"components": 2, "tolerance": 1e-8, "max_iterations": 500,
                                    "max_components": 4}
#: Largest number of mixture components.
MAX_COMPONENTS = 8

_BETA = {"alpha": 1.0, "beta": 1.0}
_NIG = {"mu": 0.0, "kappa": 1e-6, "alpha": 1.0, "beta": 1.0}
_GAMMA = {"alpha": 1.0, "beta": 1.0}
#: Default prior of each non-compound model. Compound models nest the beta-binomial prior
#: under "frequency" and the severity model's prior under "severity".
DEFAULT_PRIORS: dict[str, dict[str, float]] = {
    "beta-binomial": _BETA,
    "normal": _NIG,
    "lognormal": _NIG,
    "exponential": _GAMMA,
    "poisson": _GAMMA,
}
#: Prior keys that may be zero or negative; all others must be positive.
_SIGNED_PRIOR_KEYS = frozenset({"mu"})



def _opt_components(value: Any, name: str) -> int | str:
    if isinstance(value, str):
        if value == "auto":
            return value
        raise ModelError(f"{name} = {value!r} must be an integer 1..{MAX_COMPONENTS} or 'auto'")
    k = _count(value, name, MAX_COMPONENTS, ModelError)
    if k < 1:
        raise ModelError(f"{name} = {k} must be an integer 1..{MAX_COMPONENTS} or 'auto'")
    return k


def _opt_max_components(value: Any, name: str) -> int:
    k = _count(value, name, MAX_COMPONENTS, ModelError)
    if k < 1:
        raise ModelError(f"{name} = {k} must be an integer 1..{MAX_COMPONENTS}")
    return k


def _opt_tolerance(value: Any, name: str) -> float:
    x = _finite(value, name, ModelError)
    if x < 0:
        raise ModelError(f"{name} = {_show(value)} must be >= 0 (a relative ELBO change)")
    return x


def _opt_max_iterations(value: Any, name: str) -> int:
    k = _count(value, name, 1_000_000, ModelError)
    if k < 1:
        raise ModelError(f"{name} = {k} must be an integer 1..1000000")
    return k


_MIXTURE_OPTIONS: dict[str, Callable[[Any, str], Any]] = {
    "components": _opt_components,
    "max_components": _opt_max_components,
    "tolerance": _opt_tolerance,
    "max_iterations": _opt_max_iterations,
}

#: Allowed options per model: name -> validator(value, field) returning the clean value.
#: The conjugate models take none; the mixtures take components (1..8 or "auto"),
#: max_components (with "auto"), tolerance and max_iterations.
MODEL_OPTIONS: dict[str, dict[str, Callable[[Any, str], Any]]] = {
    m: (dict(_MIXTURE_OPTIONS) if m in MIXTURE_MODELS else {}) for m in MODEL_TYPES
}

#: Largest number of elements accepted in one array.
MAX_ELEMENTS = 2**40
#: Largest value :func:`validate_count` accepts (a draw count or similar).
MAX_COUNT = 2**48
#: Largest integral count accepted in data (successes, trials, users, ...): exact in a double.
_MAX_DATA_COUNT = 2**53
#: Arrays are scanned in blocks of this many elements, so checks use bounded extra memory.
_CHUNK = 1 << 18
#: Relative tolerance for a negative sum of squared deviations caused by rounding.
_M2_RTOL = 1e-9


# ---------------------------------------------------------------------------------------- #
# The request                                                                              #
# ---------------------------------------------------------------------------------------- #


@dataclass(frozen=True, eq=False)
class FitRequest:
    """A validated model request, ready for the C core.

    Which fields carry the data: beta-binomial has ``counts`` only; normal, lognormal,
    exponential and poisson have ``values`` or ``stats`` (never both); compound models
    have ``counts`` (converters, users) plus ``values`` or ``stats`` for the severity.
    ``eq=False``: requests compare by identity (they hold arrays).

    Attributes:
        model: canonical model name, one of :data:`MODEL_TYPES`.
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
            (``prepare(..., check_values=False)``); see :func:`value_error`.
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


@dataclass(frozen=True)
class _Parsed:
    counts: tuple[int, int] | None = None
    values: np.ndarray | None = None
    stats: dict[str, float] | None = None
    values_name: str = "values"
    values_checked: bool = True


def prepare(
    model_type: str,
    data: Any,
    prior: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
    *,
    check_values: bool = True,
) -> FitRequest:
    """Validate a model request and return it as a :class:`FitRequest`.

    With ``check_values=False`` the per-value rules of normal, lognormal, exponential
    and poisson raw values (finite, positive, non-negative, integral) are not scanned
    here: the C core checks them in the same pass that reduces the data, before any
    posterior exists, and the worker turns its finding into the same ``DataError``
    through :func:`value_error`. Everything else is still checked here.

    Raises :class:`~bayesworker._errors.ModelError` for an unknown model type, an
    unknown option or a bad prior, and :class:`~bayesworker._errors.DataError` for bad
    data. For ``"auto"`` the prior and options are checked against the chosen model.

    >>> req = prepare("auto", [0, 1, 1, 0, 1], None, {})
    >>> req.model, req.counts
    ('beta-binomial', (3, 5))
    """
    model = resolve_model_type(model_type)
    reason: str | None = None
    if model == "auto":
        model, reason, parsed = _choose(data)
        opts = _validate_options(model, options)
        full_prior = _validate_prior(model, prior)
    else:  # cheap checks first, then the data
        opts = _validate_options(model, options)
        full_prior = _validate_prior(model, prior)
        parsed = _parse(model, data, check_values)
    return FitRequest(
        model=model,
        counts=parsed.counts,
        values=parsed.values,
        stats=parsed.stats,
        prior=full_prior,
        reason=reason,
        options=opts,
        values_name=parsed.values_name,
        values_checked=parsed.values_checked,
    )


def resolve_model_type(model_type: Any) -> str:
    """Return the canonical model name for ``model_type`` (or ``"auto"``).

    >>> resolve_model_type("gamma")
    'exponential'
    """
    if not isinstance(model_type, str):
        raise ModelError(
            f"model type must be a string, got {type(model_type).__name__} {_show(model_type)}"
        )
    if model_type in MODEL_TYPES or model_type == "auto":
        return model_type
    if model_type in MODEL_ALIASES:
        return MODEL_ALIASES[model_type]
    known = (*MODEL_TYPES, "auto")
    expected = ", ".join(repr(m) for m in known)
    aliases = ", ".join(f"{a!r} for {c!r}" for a, c in MODEL_ALIASES.items())
    if model_type in _PLANNED_MODELS:
        raise ModelError(
            f"model type {model_type!r} is not supported yet; expected one of {expected}"
        )
    close = difflib.get_close_matches(model_type, [*known, *MODEL_ALIASES], n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ModelError(
        f"unknown model type {model_type!r}{hint}; expected one of {expected} "
        f"(alias: {aliases})"
    )


# ---------------------------------------------------------------------------------------- #
# Scalars                                                                                  #
# ---------------------------------------------------------------------------------------- #


def _show(value: Any) -> str:
    """Format a value for an error message: numpy scalars as plain Python numbers."""
    if isinstance(value, np.generic):
        value = value.item()
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _real(value: Any, name: str, err: type[Exception] = DataError) -> float | int:
    """Return ``value`` as a Python int or float; reject bools, strings, None, complex."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, (bool, np.bool_)):
        raise err(f"{name} = {_show(value)} is a bool; expected a real number")
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        try:
            return float(value)
        except (OverflowError, ValueError):
            raise err(f"{name} = {_show(value)} is not a finite real number") from None
    raise err(f"{name} = {_show(value)} is not a real number ({type(value).__name__})")


def _finite(value: Any, name: str, err: type[Exception] = DataError) -> float:
    x = _real(value, name, err)
    try:
        f = float(x)
    except OverflowError:
        raise err(f"{name} = {_show(value)} is too large") from None
    if not math.isfinite(f):
        raise err(f"{name} = {_show(x)} is not finite")
    return f


def _count(
    value: Any, name: str, limit: int = _MAX_DATA_COUNT, err: type[Exception] = DataError
) -> int:
    """An integral count ``0 <= value <= limit`` (integral floats accepted)."""
    x = _real(value, name, err)
    if isinstance(x, float):
        if not math.isfinite(x):
            raise err(f"{name} = {_show(x)} is not finite")
        if not x.is_integer():
            raise err(f"{name} = {_show(x)} is not an integer")
        x = int(x)
    if x < 0:
        raise err(f"{name} = {_show(x)} must be non-negative")
    if x > limit:
        raise err(f"{name} = {_show(x)} exceeds the limit {limit}")
    return x


def validate_level(level: Any, name: str = "level") -> float:
    """Return ``level`` as a float strictly between 0 and 1 (a credible level).

    >>> validate_level(0.95)
    0.95
    """
    x = _real(level, name)
    try:
        f = float(x)
    except OverflowError:
        f = math.inf
    if not (0.0 < f < 1.0):  # also rejects NaN
        raise DataError(f"{name} = {_show(x)} must be strictly between 0 and 1")
    return f


def validate_count(n: Any, name: str = "n") -> int:
    """Return ``n`` as an int with ``0 <= n <= 2**48``; integral floats such as 1e6 pass.

    >>> validate_count(1e6)
    1000000
    """
    return _count(n, name, MAX_COUNT)


def validate_batch_size(b: Any, name: str = "batch_size") -> int:
    """Return ``b`` as an int with ``1 <= b <= 2**48``.

    >>> validate_batch_size(10_000)
    10000
    """
    k = _count(b, name, MAX_COUNT)
    if k < 1:
        raise DataError(f"{name} = {k} must be at least 1")
    return k


# ---------------------------------------------------------------------------------------- #
# Arrays                                                                                   #
# ---------------------------------------------------------------------------------------- #


def _as_1d(
    obj: Any, name: str, *, allow_bool: bool, item: Callable[[int], str] | None = None
) -> np.ndarray:
    """Read ``obj`` as a 1-D array of real numbers without copying when possible.

    Returns an integer, float or (if ``allow_bool``) bool array; object arrays of real
    numbers are converted to float64. ``item(i)`` names element ``i`` in messages.
    """
    item = item or (lambda i: f"{name}[{i}]")
    if obj is None or isinstance(obj, (str, bytes, Mapping)):
        raise DataError(f"{name} must be a 1-D array of numbers, got {type(obj).__name__}")
    if isinstance(obj, np.ma.MaskedArray):
        if np.ma.is_masked(obj):
            raise DataError(f"{name} has masked entries; fill or drop them first")
        obj = obj.data
    size = getattr(obj, "size", None)
    if isinstance(size, int) and size > MAX_ELEMENTS:
        raise DataError(f"{name} has {size} elements, more than the limit 2**40")
    try:
        arr = np.asarray(obj)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{name} could not be read as a 1-D array of numbers: {exc}") from None
    if arr.ndim != 1:
        raise DataError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size > MAX_ELEMENTS:
        raise DataError(f"{name} has {arr.size} elements, more than the limit 2**40")
    kind = arr.dtype.kind
    if kind == "O":
        return _from_objects(arr, allow_bool, item)
    if kind == "b" and not allow_bool:
        raise DataError(f"{name} has dtype bool; expected real numbers")
    if kind not in "biuf":
        raise DataError(f"{name} has dtype {arr.dtype}; expected real numbers")
    return arr


def _from_objects(arr: np.ndarray, allow_bool: bool, item: Callable[[int], str]) -> np.ndarray:
    out = np.empty(arr.shape[0], dtype=np.float64)
    for i, v in enumerate(arr):
        if isinstance(v, (bool, np.bool_)):
            if not allow_bool:
                raise DataError(f"{item(i)} = {_show(v)} is a bool; expected a real number")
            out[i] = float(v)
            continue
        if not isinstance(v, numbers.Real):
            raise DataError(f"{item(i)} = {_show(v)} is not a real number")
        try:
            out[i] = float(v)
        except OverflowError:
            raise DataError(f"{item(i)} = {_show(v)} is too large for float64") from None
    return out


def _float64(arr: np.ndarray) -> np.ndarray:
    """``arr`` itself if it is a plain aligned C-contiguous native float64 array, else a copy."""
    if (
        type(arr) is np.ndarray
        and arr.dtype == np.float64
        and arr.flags.c_contiguous
        and arr.flags.aligned
    ):
        return arr
    # np.array copies into fresh, aligned memory (ascontiguousarray may keep a contiguous
    # but unaligned float64 buffer as it is)
    return np.array(arr, dtype=np.float64, order="C", copy=True)


Rule = tuple[Callable[..., np.ndarray], str]


def _check(
    arrays: tuple[np.ndarray, ...],
    rules: Sequence[Rule],
    shown: np.ndarray,
    item: Callable[[int], str],
) -> None:
    """Raise DataError at the first index where any rule fails, with that rule's message.

    Each rule's predicate gets one block of each array and returns a bool mask of the
    elements that pass. Blocks bound the memory used by temporary masks.
    """
    n = arrays[0].shape[0]
    for start in range(0, n, _CHUNK):
        blocks = tuple(a[start : start + _CHUNK] for a in arrays)
        masks = [ok(*blocks) for ok, _ in rules]
        good = masks[0] if len(masks) == 1 else np.logical_and.reduce(masks)
        if not good.all():
            j = int(np.argmin(good))
            msg = next(m for mask, (_, m) in zip(masks, rules) if not mask[j])
            i = start + j
            raise DataError(f"{item(i)} = {_show(shown[i])} {msg}")


_FINITE: Rule = (np.isfinite, "is not finite")
_BINARY: Rule = (lambda b: (b == 0) | (b == 1), "is not 0 or 1")


def _model_rules(model: str) -> list[Rule]:
    if model == "lognormal-mixture":
        return [_FINITE, (lambda b: b > 0, "must be positive for model 'lognormal-mixture'")]
    if model == "normal-mixture":
        return [_FINITE, (lambda b: np.abs(b) <= 1e100,
                          "exceeds 1e100 in magnitude (model 'normal-mixture')")]
    if model == "lognormal":
        return [_FINITE, (lambda b: b > 0, "must be positive for model 'lognormal'")]
    if model == "exponential":
        return [_FINITE, (lambda b: b >= 0, "must be non-negative for model 'exponential'")]
    if model == "poisson":
        return [
            _FINITE,
            (lambda b: b >= 0, "must be non-negative for model 'poisson'"),
            (lambda b: b == np.floor(b), "is not an integer (model 'poisson' needs counts)"),
        ]
    return [_FINITE]


# The C core's value rules (csrc/jobs.h, enum bw_value_rule), worded as _model_rules does.
_CORE_RULES = {
    1: "is not finite",
    2: "must be positive for model {model!r}",
    3: "must be non-negative for model {model!r}",
    4: "is not an integer (model {model!r} needs counts)",
}


def value_error(model: str, name: str, rule: int, index: float, value: float) -> DataError:
    """The ``DataError`` for a value the C core refused (rule, index and value from it).

    >>> str(value_error("lognormal", "values", 2, 3, -2.0))
    "values[3] = -2.0 must be positive for model 'lognormal'"
    """
    if rule == 5:
        return DataError(f"all {int(index)} values in {name} are 0; model {model!r} needs "
                         "at least one positive value")
    text = _CORE_RULES.get(rule, "is invalid").format(model=model)
    return DataError(f"{name}[{int(index)}] = {_show(float(value))} {text}")


def _moments(x: np.ndarray, log: bool = False) -> tuple[int, float, float]:
    """(n, mean, sum of squared deviations) of ``x`` (or of ``log(x)``), blockwise (Chan)."""
    n, mean, m2 = 0, 0.0, 0.0
    for start in range(0, x.shape[0], _CHUNK):
        b = x[start : start + _CHUNK]
        if log:
            b = np.log(b)
        nb = b.shape[0]
        mb = float(b.mean())
        m2b = float(np.square(b - mb).sum())
        delta = mb - mean
        tot = n + nb
        mean += delta * nb / tot
        m2 += m2b + delta * delta * n * nb / tot
        n = tot
    return n, mean, m2


# ---------------------------------------------------------------------------------------- #
# Per-model parsing                                                                        #
# ---------------------------------------------------------------------------------------- #


def _forms_text(forms: Sequence[Sequence[str]]) -> str:
    return "; ".join("{" + ", ".join(repr(k) for k in f) + "}" for f in forms)


def _keys_text(keys: Any) -> str:
    return "{" + ", ".join(sorted(repr(k) for k in keys)) + "}"


def _match_form(
    data: Mapping[str, Any], forms: Sequence[Sequence[str]], what: str
) -> tuple[str, ...]:
    keys = set(data)
    for form in forms:
        if keys == set(form):
            return tuple(form)
    raise DataError(
        f"data has keys {_keys_text(keys)}, which is not a form {what} accepts; "
        f"expected one of: {_forms_text(forms)}, or a 1-D array of values"
    )


def _parse(model: str, data: Any, check_values: bool = True) -> _Parsed:
    if data is None:
        raise DataError(f"data is None; model {model!r} needs data")
    if model == "beta-binomial":
        return _parse_binary(data)
    if model in _COMPOUND_SEVERITY:
        return _parse_compound(data, _COMPOUND_SEVERITY[model])
    return _parse_continuous(model, data, check_values)


_BB_FORMS = (("successes", "trials"), ("values",))


def _parse_binary(data: Any) -> _Parsed:
    name = "values"
    if isinstance(data, Mapping):
        form = _match_form(data, _BB_FORMS, "model 'beta-binomial'")
        if form == ("values",):
            data, name = data["values"], "data['values']"
        else:
            s = _count(data["successes"], "data['successes']")
            n = _count(data["trials"], "data['trials']")
            if s > n:
                raise DataError(f"data['successes'] = {s} exceeds data['trials'] = {n}")
            return _Parsed(counts=(s, n))
    arr = _as_1d(data, name, allow_bool=True)
    return _Parsed(counts=_binary_counts(arr, name))


def _binary_counts(arr: np.ndarray, name: str) -> tuple[int, int]:
    if arr.dtype.kind != "b":
        _check((arr,), [_BINARY], arr, lambda i: f"{name}[{i}]")
    return int(np.count_nonzero(arr)), int(arr.shape[0])


_AGG_FORMS: dict[str, tuple[tuple[str, ...], ...]] = {
    "normal": (("n", "mean", "sd"), ("n", "sum", "sum_squares")),
    "lognormal": (("n", "mean_log", "sd_log"), ("n", "sum_log", "sum_log_squares")),
    "exponential": (("n", "sum"),),
    "poisson": (("n", "sum"),),
}


def _parse_continuous(model: str, data: Any, check_values: bool = True) -> _Parsed:
    name = "values"
    if model in MIXTURE_MODELS:
        check_values = True     # mixture.c validates too, but without naming the index
    if isinstance(data, Mapping):
        forms = (("values",), *_AGG_FORMS.get(model, ()))
        form = _match_form(data, forms, f"model {model!r}")
        if form != ("values",):
            return _Parsed(stats=_aggregate_stats(model, data, form, "data"))
        data, name = data["values"], "data['values']"
    arr = _as_1d(data, name, allow_bool=False)
    return _Parsed(values=_raw_values(model, arr, name, check_values), values_name=name,
                   values_checked=check_values)


def _raw_values(model: str, arr: np.ndarray, name: str, check: bool = True) -> np.ndarray:
    if arr.shape[0] == 0:
        raise DataError(f"{name} is empty; model {model!r} needs at least one value")
    x = _float64(arr)
    if not check:
        return x
    _check((x,), _model_rules(model), arr, lambda i: f"{name}[{i}]")
    if model == "exponential" and not np.any(x > 0):
        raise DataError(
            f"all {x.shape[0]} values in {name} are 0; model 'exponential' needs at least "
            "one positive value"
        )
    return x


def _aggregate_stats(
    model: str, data: Mapping[str, Any], form: tuple[str, ...], where: str
) -> dict[str, float]:
    """Sufficient statistics from an aggregate dict whose keys are exactly ``form``."""

    def key(k: str) -> str:
        return f"{where}[{k!r}]"

    if model == "poisson":
        n = _finite(data["n"], key("n"))
        if n <= 0:
            raise DataError(f"{key('n')} = {_show(data['n'])} must be positive (the exposure)")
        s = _count(data["sum"], key("sum"))
        return {"n": n, "sum": float(s)}
    n = _count(data["n"], key("n"))
    if n < 1:
        raise DataError(f"{key('n')} = {n} must be at least 1")
    if model == "exponential":
        s = _finite(data["sum"], key("sum"))
        if s <= 0:
            raise DataError(
                f"{key('sum')} = {_show(data['sum'])} must be positive for model 'exponential'"
            )
        return {"n": float(n), "sum": s}
    mean_k, sd_k, sum_k, ss_k = (
        ("mean", "sd", "sum", "sum_squares")
        if model == "normal"
        else ("mean_log", "sd_log", "sum_log", "sum_log_squares")
    )
    if mean_k in form:
        mean = _finite(data[mean_k], key(mean_k))
        raw_sd = _real(data[sd_k], key(sd_k))
        if n == 1 and isinstance(raw_sd, float) and math.isnan(raw_sd):
            sd = 0.0  # the sample sd of one value is undefined; it does not enter m2
        else:
            sd = _finite(raw_sd, key(sd_k))
        if sd < 0:
            raise DataError(f"{key(sd_k)} = {_show(raw_sd)} must be non-negative")
        m2 = sd * sd * (n - 1)
        if not math.isfinite(m2):
            raise DataError(f"{key(sd_k)} = {_show(raw_sd)} is too large")
        return {"n": float(n), "mean": mean, "m2": m2}
    s = _finite(data[sum_k], key(sum_k))
    ss = _finite(data[ss_k], key(ss_k))
    if ss < 0:
        raise DataError(f"{key(ss_k)} = {_show(data[ss_k])} must be non-negative")
    # Exact rational arithmetic on the given floats: no cancellation beyond the inputs'.
    exact = Fraction(ss) - Fraction(s) * Fraction(s) / n
    m2 = float(exact)
    if m2 < 0:
        if -m2 > _M2_RTOL * ss:
            raise DataError(
                f"{key(ss_k)} = {_show(ss)} is inconsistent with {key(sum_k)} = {_show(s)} "
                f"and {key('n')} = {n}: the implied sum of squared deviations is "
                f"{m2!r} < 0"
            )
        m2 = 0.0  # rounding in the user's sums
    return {"n": float(n), "mean": float(Fraction(s) / n), "m2": m2}


def _is_frame(data: Any) -> bool:
    return (
        not isinstance(data, (Mapping, np.ndarray, str, bytes))
        and hasattr(data, "columns")
        and hasattr(data, "__getitem__")
    )


def _is_records(data: Any) -> bool:
    return (
        isinstance(data, Sequence)
        and not isinstance(data, (str, bytes))
        and len(data) > 0
        and all(isinstance(r, Mapping) for r in data)
    )


_COMPOUND_KEYS = ("converted", "value")


def _parse_compound(data: Any, severity: str) -> _Parsed:
    if isinstance(data, Mapping) and set(data) != set(_COMPOUND_KEYS):
        if severity == "lognormal-mixture":
            raise DataError(
                f"data has keys {_keys_text(data)}; model 'compound-beta-lognormalmixture' "
                "needs raw rows ({'converted': [...], 'value': [...]}, records or a "
                "DataFrame): a mixture cannot be fitted from aggregates"
            )
        return _parse_compound_aggregate(data, severity)
    conv, value, item_c, item_v = _compound_columns(data)
    parsed = _compound_from_columns(conv, value, item_c, item_v)
    if severity == "lognormal-mixture" and (parsed.values is None or parsed.values.size == 0):
        raise DataError(
            "model 'compound-beta-lognormalmixture' needs at least one converter with a "
            "value > 0 to fit its severity mixture"
        )
    return parsed


Namer = Callable[[int], str]


def _compound_columns(data: Any) -> tuple[np.ndarray, np.ndarray, Namer, Namer]:
    """The converted and value columns of any raw compound form, with element namers."""
    if isinstance(data, Mapping) or _is_frame(data):
        if _is_frame(data):
            cols = list(data.columns)
            missing = [c for c in _COMPOUND_KEYS if c not in cols]
            if missing:
                raise DataError(
                    f"data has no column {missing[0]!r}; compound models need columns "
                    f"'converted' and 'value' (data has columns {cols!r})"
                )
        cols_out = []
        for k in _COMPOUND_KEYS:
            nm = f"data[{k!r}]"
            cols_out.append(_as_1d(data[k], nm, allow_bool=(k == "converted")))
        item_c = lambda i: f"data['converted'][{i}]"  # noqa: E731
        item_v = lambda i: f"data['value'][{i}]"  # noqa: E731
        return cols_out[0], cols_out[1], item_c, item_v
    if isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        if len(data) == 0:
            return np.zeros(0, bool), np.zeros(0), str, str  # zero users
        for i, rec in enumerate(data):
            if not isinstance(rec, Mapping):
                raise DataError(
                    f"data[{i}] = {_show(rec)} is not a record; compound models take a list "
                    "of {'converted': ..., 'value': ...} records"
                )
            for k in _COMPOUND_KEYS:
                if k not in rec:
                    raise DataError(f"data[{i}] has no key {k!r} (keys: {_keys_text(rec)})")
        item_c = lambda i: f"data[{i}]['converted']"  # noqa: E731
        item_v = lambda i: f"data[{i}]['value']"  # noqa: E731
        conv = _column_from_records(data, "converted", item_c, allow_bool=True)
        value = _column_from_records(data, "value", item_v, allow_bool=False)
        return conv, value, item_c, item_v
    raise DataError(
        f"data of type {type(data).__name__} is not a compound-model form; expected "
        "{'converted': [...], 'value': [...]}, a list of records, a DataFrame with columns "
        "'converted' and 'value', or {'users', 'converters', <severity aggregate>}"
    )


def _column_from_records(
    records: Sequence[Mapping[str, Any]], key: str, item: Namer, allow_bool: bool
) -> np.ndarray:
    col = [r[key] for r in records]
    # Plain Python numbers: let numpy pick a numeric dtype; else check element by element.
    if all(type(v) in (int, float) for v in col) or (
        allow_bool and all(type(v) is bool for v in col)
    ):
        return np.asarray(col)
    arr = np.empty(len(col), dtype=object)
    for i, v in enumerate(col):
        arr[i] = v
    return _from_objects(arr, allow_bool, item)


def _compound_from_columns(
    conv: np.ndarray, value: np.ndarray, item_c: Namer, item_v: Namer
) -> _Parsed:
    if conv.shape[0] != value.shape[0]:
        raise DataError(
            f"data['converted'] has {conv.shape[0]} entries but data['value'] has "
            f"{value.shape[0]}; they must have the same length"
        )
    if conv.dtype.kind != "b":
        _check((conv,), [_BINARY], conv, item_c)
        c = conv != 0
    else:
        c = conv
    v = _float64(value)
    rules: list[Rule] = [
        (lambda vb, cb: np.isfinite(vb) | (np.isnan(vb) & ~cb), "is not finite"),
        (lambda vb, cb: (vb >= 0) | np.isnan(vb), "must be non-negative"),
    ]
    _check((v, c), rules, value, item_v)
    keep = c & (v > 0)
    converters = int(np.count_nonzero(c))
    if keep.all():
        sev = v  # every row is a converter with a positive value: read in place
    else:
        sev = np.ascontiguousarray(v[keep])
    return _Parsed(counts=(converters, int(c.shape[0])), values=sev)


_SEVERITY_FORMS: dict[str, tuple[tuple[str, ...], ...]] = {
    "lognormal": _AGG_FORMS["lognormal"],
    "exponential": _AGG_FORMS["exponential"],
}
_EMPTY_STATS: dict[str, dict[str, float]] = {
    "lognormal": {"n": 0.0, "mean": 0.0, "m2": 0.0},
    "exponential": {"n": 0.0, "sum": 0.0},
}


def _parse_compound_aggregate(data: Mapping[str, Any], severity: str) -> _Parsed:
    forms = [("users", "converters", *f) for f in _SEVERITY_FORMS[severity]]
    if not {"users", "converters"} <= set(data):
        raise DataError(
            f"data has keys {_keys_text(data)}, which is not a form model "
            f"'compound-beta-{severity}' accepts; expected {{'converted', 'value'}} or one "
            f"of: {_forms_text(forms)} ('n' may be omitted)"
        )
    users = _count(data["users"], "data['users']")
    conv = _count(data["converters"], "data['converters']")
    if conv > users:
        raise DataError(f"data['converters'] = {conv} exceeds data['users'] = {users}")
    sev_keys = set(data) - {"users", "converters"}
    if sev_keys <= {"n"}:
        n = _count(data["n"], "data['n']") if "n" in data else conv
        if n != 0:
            raise DataError(
                f"data has no severity aggregate but {n} severity values "
                f"(data['n'] or data['converters']); give one of: {_forms_text(forms)}"
            )
        return _Parsed(counts=(conv, users), stats=dict(_EMPTY_STATS[severity]))
    sev = {k: data[k] for k in sev_keys}
    sev.setdefault("n", conv)
    candidates = _SEVERITY_FORMS[severity]
    form = next((f for f in candidates if set(f) == set(sev)), None)
    if form is None:
        raise DataError(
            f"data has keys {_keys_text(data)}, which is not a form model "
            f"'compound-beta-{severity}' accepts; expected one of: {_forms_text(forms)} "
            "('n' may be omitted and then equals 'converters')"
        )
    stats = _aggregate_stats(severity, sev, form, "data")
    if stats["n"] > conv:
        raise DataError(
            f"data['n'] = {int(stats['n'])} severity values exceeds data['converters'] = {conv}"
        )
    return _Parsed(counts=(conv, users), stats=stats)


# ---------------------------------------------------------------------------------------- #
# Priors and options                                                                       #
# ---------------------------------------------------------------------------------------- #


def _validate_prior(model: str, prior: Any) -> dict[str, Any]:
    if model in ("normal-mixture", "lognormal-mixture"):
        if _prior_mapping(prior, "prior"):
            raise ModelError(
                f"model {model!r} takes no prior: its prior is fixed on the standardised "
                "scale (see the README, 'Mixture models')"
            )
        return dict(MIXTURE_PRIOR)
    if model == "compound-beta-lognormalmixture":
        given = _prior_mapping(prior, "prior")
        for k in given:
            if k != "frequency":
                raise ModelError(
                    f"unknown prior key {k!r} for model {model!r}; allowed keys: "
                    "'frequency' (the severity mixture's prior is fixed on the "
                    "standardised scale)"
                )
        return {
            "frequency": _validate_flat(
                "beta-binomial", given.get("frequency"), "prior['frequency']",
                f"in prior['frequency'] for model {model!r} (its beta-binomial part)",
            ),
            "severity": dict(MIXTURE_PRIOR),
        }
    if model in _COMPOUND_SEVERITY:
        parts = {"frequency": "beta-binomial", "severity": _COMPOUND_SEVERITY[model]}
        given = _prior_mapping(prior, "prior")
        for k in given:
            if k not in parts:
                raise ModelError(
                    f"unknown prior key {k!r} for model {model!r}; allowed keys: "
                    "'frequency', 'severity' (each a dict of that part's prior)"
                )
        return {
            part: _validate_flat(
                sub, given.get(part), f"prior[{part!r}]",
                f"in prior[{part!r}] for model {model!r} (its {sub} part)",
            )
            for part, sub in parts.items()
        }
    return _validate_flat(model, prior, "prior", f"for model {model!r}")


def _prior_mapping(prior: Any, name: str) -> Mapping[str, Any]:
    if prior is None:
        return {}
    if not isinstance(prior, Mapping):
        raise ModelError(f"{name} must be a dict or None, got {type(prior).__name__}")
    return prior


def _validate_flat(model: str, prior: Any, name: str, context: str) -> dict[str, float]:
    defaults = DEFAULT_PRIORS[model]
    given = _prior_mapping(prior, name)
    out = dict(defaults)
    for k, v in given.items():
        if k not in defaults:
            allowed = ", ".join(repr(a) for a in defaults)
            raise ModelError(f"unknown prior key {k!r} {context}; allowed keys: {allowed}")
        field_name = f"{name}[{k!r}]"
        x = _finite(v, field_name, ModelError)
        if k not in _SIGNED_PRIOR_KEYS and not x > 0:
            raise ModelError(f"{field_name} = {_show(x)} must be positive")
        out[k] = x
    return out


def _validate_options(model: str, options: Any) -> dict[str, Any]:
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise ModelError(f"options must be a dict or None, got {type(options).__name__}")
    allowed = MODEL_OPTIONS[model]
    out: dict[str, Any] = {}
    for k, v in options.items():
        if k not in allowed:
            listing = (
                f"allowed options: {', '.join(repr(a) for a in allowed)}"
                if allowed
                else "this model takes no options"
            )
            raise ModelError(f"unknown option {k!r} for model {model!r}; {listing}")
        out[k] = allowed[k](v, f"options[{k!r}]")
    if "max_components" in out and out.get("components") != "auto":
        raise ModelError(
            f"options['max_components'] = {out['max_components']} applies only with "
            f"components='auto' (components = {out.get('components', 2)!r})"
        )
    return out


# ---------------------------------------------------------------------------------------- #
# auto                                                                                     #
# ---------------------------------------------------------------------------------------- #


def choose_model(data: Any) -> tuple[str, str]:
    """Choose a model for ``data`` the way ``"auto"`` does; return ``(model, reason)``.

    The rule, in order (deterministic; the reason states the figures used):

    1. ``{"successes", "trials"}``, or booleans, or values all 0 or 1 -> beta-binomial.
    2. ``converted``/``value`` data (dict, records, DataFrame, or the compound aggregate)
       -> compound; the severity is exponential when the BIC of an exponential fit to the
       severity values is at most that of a lognormal fit, else lognormal (also when
       there are fewer than two distinct severity values). An aggregate decides by its
       keys.
    3. Any negative value -> normal.
    4. All values non-negative integers -> poisson.
    5. Otherwise the lowest BIC (``k ln n - 2 max log-likelihood``) among lognormal (only
       if every value is > 0), exponential and normal; ties go to the simpler model, in
       the order exponential, lognormal, normal. With fewer than two distinct values the
       comparison is undefined and lognormal is chosen.

    Aggregates: the normal and lognormal forms pick their model; ``{"n", "sum"}`` fits
    both exponential and poisson and is rejected.

    >>> choose_model({"successes": 3, "trials": 10})[0]
    'beta-binomial'
    >>> choose_model([-1.0, 0.5, 2.0])[0]
    'normal'
    """
    model, reason, _ = _choose(data)
    return model, reason


def _choose(data: Any) -> tuple[str, str, _Parsed]:
    if data is None:
        raise DataError("data is None; 'auto' needs data to choose a model")
    name = "values"
    if isinstance(data, Mapping):
        keys = set(data)
        if keys == {"successes", "trials"}:
            return "beta-binomial", "auto: data has 'successes' and 'trials'", _parse_binary(data)
        if keys == set(_COMPOUND_KEYS) or {"users", "converters"} <= keys:
            return _choose_compound(data)
        if keys == {"values"}:
            data, name = data["values"], "data['values']"
        else:
            for model in ("normal", "lognormal"):
                for form in _AGG_FORMS[model]:
                    if keys == set(form):
                        stats = _aggregate_stats(model, data, form, "data")
                        reason = f"auto: data is a {model} aggregate {_keys_text(keys)}"
                        return model, reason, _Parsed(stats=stats)
            if keys == {"n", "sum"}:
                raise DataError(
                    "auto cannot choose from data {'n', 'sum'}: it fits both 'exponential' "
                    "and 'poisson'; pass the model type"
                )
            forms = [
                ("successes", "trials"), ("converted", "value"), ("values",),
                *_AGG_FORMS["normal"], *_AGG_FORMS["lognormal"],
            ]
            raise DataError(
                f"data has keys {_keys_text(keys)}, which 'auto' does not recognise; "
                f"expected one of: {_forms_text(forms)}, a compound aggregate, or a 1-D array"
            )
    elif _is_frame(data) or _is_records(data):
        return _choose_compound(data)
    arr = _as_1d(data, name, allow_bool=True)
    n = arr.shape[0]
    if n == 0:
        raise DataError(f"{name} is empty; 'auto' needs at least one value to choose a model")
    if arr.dtype.kind == "b":
        counts = _binary_counts(arr, name)
        return "beta-binomial", f"auto: {name} are booleans", _Parsed(counts=counts)
    x = _float64(arr)
    _check((x,), [_FINITE], arr, lambda i: f"{name}[{i}]")
    if bool(np.all((x == 0) | (x == 1))):
        counts = _binary_counts(x, name)
        return "beta-binomial", f"auto: all {n} values are 0 or 1", _Parsed(counts=counts)
    lo = float(x.min())
    if lo < 0:
        reason = f"auto: values include negatives (min = {lo:g}), so normal"
        return "normal", reason, _Parsed(values=_raw_values("normal", arr, name))
    if bool(np.all(x == np.floor(x))):
        reason = (
            f"auto: all {n} values are non-negative integers (max = {float(x.max()):g}), "
            "so poisson"
        )
        return "poisson", reason, _Parsed(values=_raw_values("poisson", arr, name))
    candidates = ("exponential", "lognormal", "normal") if lo > 0 else ("exponential", "normal")
    model, figures = _compare(x, candidates)
    sign = "positive" if lo > 0 else "non-negative"
    reason = f"auto: {n} {sign} values, not all integers; {figures}"
    return model, reason, _Parsed(values=_raw_values(model, arr, name))


def _choose_compound(data: Any) -> tuple[str, str, _Parsed]:
    if isinstance(data, Mapping) and set(data) != set(_COMPOUND_KEYS):
        sev_keys = set(data) - {"users", "converters", "n"}
        severity = "exponential" if sev_keys == {"sum"} else "lognormal"
        parsed = _parse_compound_aggregate(data, severity)
        why = (
            f"the severity aggregate has keys {_keys_text(sev_keys)}"
            if sev_keys
            else "there are no severity values (lognormal is the default)"
        )
        model = f"compound-beta-{severity}"
        return model, f"auto: converted/value aggregate; {why}, so {model}", parsed
    conv, value, item_c, item_v = _compound_columns(data)
    parsed = _compound_from_columns(conv, value, item_c, item_v)
    assert parsed.values is not None
    severity, figures = _compare(parsed.values, ("exponential", "lognormal"))
    model = f"compound-beta-{severity}"
    k = parsed.values.shape[0]
    reason = f"auto: converted/value data; severity ({k} values > 0): {figures}"
    return model, reason, parsed


def _compare(x: np.ndarray, candidates: tuple[str, ...]) -> tuple[str, str]:
    """Pick the lowest-BIC model among ``candidates`` (listed simplest first) for ``x``."""
    n, mean, m2 = _moments(x)
    if n < 2 or m2 <= 0.0:
        return "lognormal", (
            f"fewer than 2 distinct values (n = {n}), so the likelihood comparison is "
            "undefined; chose lognormal, the default for positive values"
        )
    loglik: dict[str, float] = {}
    params = {"exponential": 1, "lognormal": 2, "normal": 2}
    for model in candidates:
        if model == "exponential":
            loglik[model] = -n * (math.log(mean) + 1.0)
        elif model == "normal":
            loglik[model] = -0.5 * n * (math.log(2.0 * math.pi * m2 / n) + 1.0)
        else:
            _, mean_log, m2_log = _moments(x, log=True)
            if m2_log <= 0.0:
                continue
            loglik[model] = (
                -0.5 * n * (math.log(2.0 * math.pi * m2_log / n) + 1.0) - n * mean_log
            )
    bic = {m: params[m] * math.log(n) - 2.0 * ll for m, ll in loglik.items()}
    best = min(bic, key=lambda m: (bic[m], candidates.index(m)))
    figures = ", ".join(f"{m} {loglik[m]:.2f} (BIC {bic[m]:.2f})" for m in loglik)
    return best, f"maximised log-likelihoods: {figures}; chose {best} (lowest BIC)"
