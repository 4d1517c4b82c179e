"""poisson: a rate lambda from counts; Gamma prior on lambda.

Data: a 1-D array-like of non-negative integers (or ``{"values": ...}``), or
``{"n", "sum"}`` (``n`` the exposure, any positive real; ``sum`` an integral count
``>= 0``). ``auto`` takes values that are all non-negative integers.

>>> from bayesworker.models.poisson import FAMILY
>>> FAMILY.parse({"n": 2.5, "sum": 7}, True).stats
{'n': 2.5, 'sum': 7.0}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .._errors import DataError
from .._validate import count, finite, show
from ._conjugate import conjugate_family
from ._family import Auto
from ._values import values_parser

NAME = "poisson"
FORMS = (("n", "sum"),)


def aggregate(data: Mapping[str, Any], form: tuple[str, ...], where: str) -> dict[str, float]:
    """``{"n", "sum"}``: a positive exposure and a count."""
    n = finite(data["n"], f"{where}['n']")
    if n <= 0:
        raise DataError(f"{where}['n'] = {show(data['n'])} must be positive (the exposure)")
    s = count(data["sum"], f"{where}['sum']")
    return {"n": n, "sum": float(s)}


def _claim(arr: np.ndarray, x: np.ndarray, name: str, lo: float) -> str | None:
    if lo < 0 or not bool(np.all(x == np.floor(x))):
        return None
    return (f"auto: all {x.shape[0]} values are non-negative integers "
            f"(max = {float(x.max()):g}), so {NAME}")


FAMILY = conjugate_family(
    NAME, values_parser(NAME, FORMS, aggregate), forms=FORMS, aggregate=aggregate,
    auto=Auto(rank=5, claim=_claim),
)
