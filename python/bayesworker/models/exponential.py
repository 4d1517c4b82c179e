"""exponential (alias gamma): the mean value 1/lambda of non-negative values; Gamma prior on
the rate lambda.

Data: a 1-D array-like of finite values ``>= 0``, at least one ``> 0`` (or
``{"values": ...}``), or ``{"n", "sum"}`` (integral ``n >= 1``, ``sum > 0``). ``auto``
compares it by BIC.

>>> from bayesworker.models.exponential import FAMILY
>>> FAMILY.parse([0.0, 2.5], True).values
array([0. , 2.5])
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from .._errors import DataError
from .._validate import count, finite, show
from ._conjugate import conjugate_family
from ._family import Auto
from ._values import values_parser

NAME = "exponential"
FORMS = (("n", "sum"),)


def aggregate(data: Mapping[str, Any], form: tuple[str, ...], where: str) -> dict[str, float]:
    """``{"n", "sum"}``: n values (at least one) whose sum is positive."""
    n = count(data["n"], f"{where}['n']")
    if n < 1:
        raise DataError(f"{where}['n'] = {n} must be at least 1")
    s = finite(data["sum"], f"{where}['sum']")
    if s <= 0:
        raise DataError(f"{where}['sum'] = {show(data['sum'])} must be positive for model {NAME!r}")
    return {"n": float(n), "sum": s}


def _loglik(x: np.ndarray, m: tuple[int, float, float]) -> float:
    n, mean, _ = m
    return -n * (math.log(mean) + 1.0)


FAMILY = conjugate_family(
    NAME, values_parser(NAME, FORMS, aggregate), aliases=("gamma",), forms=FORMS,
    aggregate=aggregate, empty_stats={"n": 0.0, "sum": 0.0},
    auto=Auto(rank=2, loglik=_loglik, params=1, admits=lambda lo: lo >= 0),
)
