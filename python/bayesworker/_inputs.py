"""Input adapters: how user data become NumPy arrays, whatever shape they came in.

1-D arrays of numbers (lists, tuples, ndarrays of any integer or float dtype, masked
arrays, pandas Series, object arrays of Python numbers), named columns of a dict, a list
of records or a DataFrame-like object, and the text that names a data form in messages.
What the values must satisfy is :mod:`bayesworker._rules`; nothing here knows a model.

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

import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ._errors import DataError
from ._validate import show

__all__ = [
    "Namer",
    "MAX_ELEMENTS",
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
# 1-D arrays                                                                               #
# ---------------------------------------------------------------------------------------- #


def as_1d(obj: Any, name: str, *, allow_bool: bool, item: Namer | None = None) -> np.ndarray:
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
        return from_objects(arr, allow_bool, item)
    if kind == "b" and not allow_bool:
        raise DataError(f"{name} has dtype bool; expected real numbers")
    if kind not in "biuf":
        raise DataError(f"{name} has dtype {arr.dtype}; expected real numbers")
    return arr


def from_objects(arr: np.ndarray, allow_bool: bool, item: Namer) -> np.ndarray:
    """A float64 copy of an object array of real numbers, naming the first other element."""
    out = np.empty(arr.shape[0], dtype=np.float64)
    for i, v in enumerate(arr):
        if isinstance(v, (bool, np.bool_)):
            if not allow_bool:
                raise DataError(f"{item(i)} = {show(v)} is a bool; expected a real number")
            out[i] = float(v)
            continue
        if not isinstance(v, numbers.Real):
            raise DataError(f"{item(i)} = {show(v)} is not a real number")
        try:
            out[i] = float(v)
        except OverflowError:
            raise DataError(f"{item(i)} = {show(v)} is too large for float64") from None
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
