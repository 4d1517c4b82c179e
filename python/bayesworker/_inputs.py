"""Input adapters: how user data become NumPy arrays, whatever shape they came in.

1-D arrays of numbers (lists, tuples, ndarrays of any integer or float dtype, masked
arrays, object arrays of Python numbers or ``decimal.Decimal``), pandas and Polars Series
(NumPy, nullable and pyarrow-backed dtypes: a missing value becomes NaN, which the value
rules then refuse wherever they refuse NaN), named columns of a dict, a list of records or
a DataFrame-like object, and the text that names a data form in messages. An element that
is refused is reported by :func:`refused`, whose ``DataError`` carries where it is. What
the values must satisfy is :mod:`bayesworker._rules`; nothing here knows a model.

>>> import numpy as np
>>> from bayesworker._inputs import as_1d, float64, read_columns
>>> x = np.array([1.5, 2.0])
>>> float64(as_1d(x, "values", allow_bool=False)) is x      # read in place, no copy
True
>>> cols, _ = read_columns([{"a": 1, "b": 2.5}], (("a", True), ("b", False)), "toy models")
>>> [c.tolist() for c in cols]
[[1], [2.5]]
"""

from __future__ import annotations

import math
import numbers
from decimal import Decimal
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ._errors import DataError
from ._validate import show

__all__ = [
    "Namer",
    "MAX_ELEMENTS",
    "refused",
    "library",
    "series_values",
    "as_1d",
    "from_objects",
    "float64",
    "is_frame",
    "is_records",
    "read_columns",
    "forms_text",
    "keys_text",
    "match_form",
]

#: Names element ``i`` of an array in messages, e.g. ``lambda i: f"values[{i}]"``.
Namer = Callable[[int], str]

#: Largest number of elements accepted in one array.
MAX_ELEMENTS = 2**40


# ---------------------------------------------------------------------------------------- #
# A refused element                                                                        #
# ---------------------------------------------------------------------------------------- #


def refused(where: str, index: int, value: Any, reason: str, *, rule: str | None = None,
            text: str | None = None) -> DataError:
    """The ``DataError`` for element ``index`` (``where``, e.g. ``values[7]``) whose
    ``value`` breaks a rule, worded "<where> = <value> <reason>" unless ``text`` is given.

    Its attributes say where it is: ``rule`` (the C rule's name, or None), ``index`` (the
    position), ``value``, ``reason``, ``field`` (``where`` without its ``[index]``: the
    name of the array, ``"values"`` or ``"data['value']"``; None for a record) and
    ``label`` and ``column`` (None here: :mod:`bayesworker._frames` sets them when it names
    a row of a column).

    >>> exc = refused("values[7]", 7, -5.0, "must be positive")
    >>> str(exc), exc.field, exc.index
    ('values[7] = -5.0 must be positive', 'values', 7)
    """
    exc = DataError(text if text is not None else f"{where} = {show(value)} {reason}")
    if isinstance(value, np.generic):
        value = value.item()
    suffix = f"[{index}]"
    exc.rule, exc.index, exc.value, exc.reason = rule, index, value, reason
    exc.field = where[: -len(suffix)] if where.endswith(suffix) else None
    exc.label = exc.column = None
    return exc


# ---------------------------------------------------------------------------------------- #
# pandas and Polars columns                                                                #
# ---------------------------------------------------------------------------------------- #


def library(obj: Any) -> str:
    """``"pandas"`` or ``"polars"`` for an object of that library (by its type's module,
    so neither is imported), else ``""``."""
    mod = type(obj).__module__
    return mod.partition(".")[0] if mod.startswith(("pandas", "polars")) else ""


def series_values(obj: Any) -> Any:
    """A pandas or Polars Series as a NumPy array (a numeric one read in place where the
    library allows), missing values (``pd.NA``, ``None``, null) as NaN; ``obj`` itself if
    it is not a Series of either library.

    Nullable and pyarrow-backed integer, float and boolean columns become int64, float64
    or bool arrays, or float64 (0/1 and NaN) when they hold a missing value; other
    columns (Decimal, strings, dates) become object or datetime arrays that :func:`as_1d`
    reads or refuses element by element.
    """
    lib = library(obj)
    if lib == "pandas" and hasattr(obj, "hasnans"):
        dtype = obj.dtype
        if isinstance(dtype, np.dtype):
            arr = obj.to_numpy()
        elif getattr(dtype, "kind", "O") in "iufb":            # Int64, boolean, int64[pyarrow]...
            if obj.hasnans:
                return obj.to_numpy(dtype=np.float64, na_value=np.nan)
            return obj.to_numpy(dtype=dtype.numpy_dtype)
        else:
            arr = obj.to_numpy()
        return _nan_where(arr, obj.isna().to_numpy()) if arr.dtype.kind == "O" else arr
    if lib == "polars" and hasattr(obj, "null_count"):
        if obj.null_count() and (obj.dtype.is_numeric() or str(obj.dtype) == "Boolean"):
            import polars as pl
            return obj.cast(pl.Float64).to_numpy()
        arr = obj.to_numpy()
        return _nan_where(arr, obj.is_null().to_numpy()) if arr.dtype.kind == "O" else arr
    return obj


def _nan_where(arr: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """An object array with NaN where ``missing``."""
    if missing.any():
        arr = arr.copy()
        arr[missing] = np.nan
    return arr


# ---------------------------------------------------------------------------------------- #
# 1-D arrays                                                                               #
# ---------------------------------------------------------------------------------------- #


def as_1d(obj: Any, name: str, *, allow_bool: bool, item: Namer | None = None) -> np.ndarray:
    """Read ``obj`` as a 1-D array of real numbers without copying when possible.

    Returns an integer, float or (if ``allow_bool``) bool array; object arrays of real
    numbers (and ``decimal.Decimal``) are converted to float64; a pandas or Polars Series
    is read by :func:`series_values`. ``item(i)`` names element ``i`` in messages.
    """
    item = item or (lambda i: f"{name}[{i}]")
    if type(obj) is not np.ndarray and not isinstance(obj, (list, tuple)) and library(obj):
        obj = series_values(obj)
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
        return from_objects(arr, allow_bool, item)
    if kind == "b" and not allow_bool:
        raise DataError(f"{name} has dtype bool; expected real numbers")
    if kind not in "biuf":
        text = f"{name} has dtype {arr.dtype}; expected real numbers"
        if arr.shape[0] == 0 or kind in "bc":
            raise DataError(text)
        # strings, dates: name the first element, so a column's row can be named
        raise refused(item(0), 0, arr[0], f"is not a real number (dtype {arr.dtype})",
                      text=f"{text} ({item(0)} = {show(arr[0])})")
    return arr


#: Element types an object array may hold that ``astype(float64)`` converts exactly as
#: ``float()`` would (bools excluded: they are refused or allowed as such).
_REALS = (float, int, Decimal, np.floating, np.integer)


def from_objects(arr: np.ndarray, allow_bool: bool, item: Namer) -> np.ndarray:
    """A float64 copy of an object array of real numbers or Decimals, naming the first
    other element. A Decimal NaN or infinity becomes a float NaN or infinity (refused by
    the value rules like one)."""
    types = set(map(type, arr))
    if all(issubclass(t, _REALS) and not issubclass(t, (bool, np.bool_)) for t in types):
        try:
            return arr.astype(np.float64)
        except (OverflowError, ValueError):       # a huge int, a signalling Decimal NaN
            pass
    out = np.empty(arr.shape[0], dtype=np.float64)
    for i, v in enumerate(arr):
        if isinstance(v, (bool, np.bool_)):
            if not allow_bool:
                raise refused(item(i), i, v, "is a bool; expected a real number")
            out[i] = float(v)
            continue
        if isinstance(v, Decimal):
            out[i] = math.nan if v.is_nan() else float(v)
            continue
        if not isinstance(v, numbers.Real):
            raise refused(item(i), i, v, "is not a real number")
        try:
            out[i] = float(v)
        except OverflowError:
            raise refused(item(i), i, v, "is too large for float64") from None
    return out


def float64(arr: np.ndarray) -> np.ndarray:
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


# ---------------------------------------------------------------------------------------- #
# Columns: a dict of columns, a DataFrame, a list of records                               #
# ---------------------------------------------------------------------------------------- #


def is_frame(data: Any) -> bool:
    """A DataFrame-like object: ``.columns`` and column access by name."""
    return (
        not isinstance(data, (Mapping, np.ndarray, str, bytes))
        and hasattr(data, "columns")
        and hasattr(data, "__getitem__")
    )


def is_records(data: Any) -> bool:
    """A non-empty list (or other sequence) of dicts."""
    return (
        isinstance(data, Sequence)
        and not isinstance(data, (str, bytes))
        and len(data) > 0
        and all(isinstance(r, Mapping) for r in data)
    )


def read_columns(
    data: Any, columns: Sequence[tuple[str, bool]], what: str
) -> tuple[list[np.ndarray], list[Namer]] | None:
    """The named columns of ``data`` as 1-D arrays, with a namer of each column's elements.

    ``columns`` lists ``(key, allow_bool)``; ``data`` is a dict holding those keys, a
    DataFrame-like object with those columns (others ignored) or a list of records (other
    keys ignored; an empty list gives empty columns). ``what`` names the models in
    messages ("compound models"). Returns ``None`` when ``data`` is none of these forms.
    """
    keys = [k for k, _ in columns]
    if isinstance(data, Mapping) or is_frame(data):
        if is_frame(data):
            cols = list(data.columns)
            missing = [c for c in keys if c not in cols]
            if missing:
                raise DataError(
                    f"data has no column {missing[0]!r}; {what} need columns "
                    f"{' and '.join(repr(k) for k in keys)} (data has columns {cols!r})"
                )
        arrays = [as_1d(data[k], f"data[{k!r}]", allow_bool=b) for k, b in columns]
        return arrays, [_item(f"data[{k!r}]") for k in keys]
    if not isinstance(data, Sequence) or isinstance(data, (str, bytes)):
        return None
    if len(data) == 0:
        return [np.zeros(0, bool if b else np.float64) for _, b in columns], [str] * len(keys)
    for i, rec in enumerate(data):
        if not isinstance(rec, Mapping):
            shape = ", ".join(f"{k!r}: ..." for k in keys)
            raise DataError(
                f"data[{i}] = {show(rec)} is not a record; {what} take a list of "
                f"{{{shape}}} records"
            )
        for k in keys:
            if k not in rec:
                raise DataError(f"data[{i}] has no key {k!r} (keys: {keys_text(rec)})")
    namers = [_record_item(k) for k in keys]
    arrays = [_column_from_records(data, k, nm, b) for (k, b), nm in zip(columns, namers)]
    return arrays, namers


def _item(prefix: str) -> Namer:
    return lambda i: f"{prefix}[{i}]"


def _record_item(key: str) -> Namer:
    return lambda i: f"data[{i}][{key!r}]"


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
    return from_objects(arr, allow_bool, item)


# ---------------------------------------------------------------------------------------- #
# Forms: dicts identified by their keys                                                    #
# ---------------------------------------------------------------------------------------- #


def forms_text(forms: Sequence[Sequence[str]]) -> str:
    """``{'a', 'b'}; {'c'}``: data forms as messages list them."""
    return "; ".join("{" + ", ".join(repr(k) for k in f) + "}" for f in forms)


def keys_text(keys: Any) -> str:
    """The keys of a dict the user gave, sorted, as messages show them."""
    return "{" + ", ".join(sorted(repr(k) for k in keys)) + "}"


def match_form(
    data: Mapping[str, Any], forms: Sequence[Sequence[str]], what: str
) -> tuple[str, ...]:
    """The form among ``forms`` whose keys are exactly those of ``data``; else DataError."""
    keys = set(data)
    for form in forms:
        if keys == set(form):
            return tuple(form)
    raise DataError(
        f"data has keys {keys_text(keys)}, which is not a form {what} accepts; "
        f"expected one of: {forms_text(forms)}, or a 1-D array of values"
    )
