"""Scalar validators: one number from the user, checked, with a message naming it.

Every function takes the value and the name to show in messages, and returns a clean
Python ``int`` or ``float`` or raises (:class:`~bayesworker._errors.DataError` unless
told otherwise). Bools, strings, ``None`` and complex numbers are never numbers here.

>>> from bayesworker._validate import count, validate_level
>>> validate_level(0.9), count(12.0, "data['trials']")
(0.9, 12)
>>> count(-1, "n")
Traceback (most recent call last):
    ...
bayesworker._errors.DataError: n = -1 must be non-negative
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from ._errors import DataError

__all__ = [
    "show",
    "real",
    "finite",
    "count",
    "validate_level",
    "validate_count",
    "validate_batch_size",
    "MAX_COUNT",
    "MAX_DATA_COUNT",
]

#: Largest value :func:`validate_count` accepts (a draw count or similar).
MAX_COUNT = 2**48
#: Largest integral count accepted in data (successes, trials, users, ...): exact in a double.
MAX_DATA_COUNT = 2**53


def show(value: Any) -> str:
    """Format a value for an error message: numpy scalars as plain Python numbers."""
    if isinstance(value, np.generic):
        value = value.item()
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def real(value: Any, name: str, err: type[Exception] = DataError) -> float | int:
    """Return ``value`` as a Python int or float; reject bools, strings, None, complex."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, (bool, np.bool_)):
        raise err(f"{name} = {show(value)} is a bool; expected a real number")
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        try:
            return float(value)
        except (OverflowError, ValueError):
            raise err(f"{name} = {show(value)} is not a finite real number") from None
    raise err(f"{name} = {show(value)} is not a real number ({type(value).__name__})")


def finite(value: Any, name: str, err: type[Exception] = DataError) -> float:
    """Return ``value`` as a finite float."""
    x = real(value, name, err)
    try:
        f = float(x)
    except OverflowError:
        raise err(f"{name} = {show(value)} is too large") from None
    if not math.isfinite(f):
        raise err(f"{name} = {show(x)} is not finite")
    return f


def count(
    value: Any, name: str, limit: int = MAX_DATA_COUNT, err: type[Exception] = DataError
) -> int:
    """An integral count ``0 <= value <= limit`` (integral floats accepted)."""
    x = real(value, name, err)
    if isinstance(x, float):
        if not math.isfinite(x):
            raise err(f"{name} = {show(x)} is not finite")
        if not x.is_integer():
            raise err(f"{name} = {show(x)} is not an integer")
        x = int(x)
    if x < 0:
        raise err(f"{name} = {show(x)} must be non-negative")
    if x > limit:
        raise err(f"{name} = {show(x)} exceeds the limit {limit}")
    return x


def validate_level(level: Any, name: str = "level") -> float:
    """Return ``level`` as a float strictly between 0 and 1 (a credible level).

    >>> validate_level(0.95)
    0.95
    """
    x = real(level, name)
    try:
        f = float(x)
    except OverflowError:
        f = math.inf
    if not (0.0 < f < 1.0):  # also rejects NaN
        raise DataError(f"{name} = {show(x)} must be strictly between 0 and 1")
    return f


def validate_count(n: Any, name: str = "n") -> int:
    """Return ``n`` as an int with ``0 <= n <= 2**48``; integral floats such as 1e6 pass.

    >>> validate_count(1e6)
    1000000
    """
    return count(n, name, MAX_COUNT)


def validate_batch_size(b: Any, name: str = "batch_size") -> int:
    """Return ``b`` as an int with ``1 <= b <= 2**48``.

    >>> validate_batch_size(10_000)
    10000
    """
    k = count(b, name, MAX_COUNT)
    if k < 1:
        raise DataError(f"{name} = {k} must be at least 1")
    return k
