"""normal: the mean of real values; normal-inverse-gamma prior (Student-t marginal).

Data: a 1-D array-like of finite reals (or ``{"values": ...}``), or ``{"n", "mean", "sd"}``
(``sd`` the sample sd, divisor ``n - 1``; with ``n == 1`` it is ignored and may be NaN) or
``{"n", "sum", "sum_squares"}``. ``auto`` takes values that include a negative one, and
compares it by BIC otherwise.

>>> from bayesworker.models.normal import FAMILY
>>> FAMILY.parse({"n": 3, "mean": 2.0, "sd": 1.0}, True).stats
{'n': 3.0, 'mean': 2.0, 'm2': 2.0}
"""

from __future__ import annotations

import math

import numpy as np

from ._conjugate import conjugate_family
from ._family import Auto
from ._values import moments_forms, values_parser

NAME = "normal"
FORMS, AGGREGATE = moments_forms(("mean", "sd", "sum", "sum_squares"))


def _claim(arr: np.ndarray, x: np.ndarray, name: str, lo: float) -> str | None:
    return f"auto: values include negatives (min = {lo:g}), so {NAME}" if lo < 0 else None


def _loglik(x: np.ndarray, m: tuple[int, float, float]) -> float:
    n, _, m2 = m
    return -0.5 * n * (math.log(2.0 * math.pi * m2 / n) + 1.0)


FAMILY = conjugate_family(
    NAME, values_parser(NAME, FORMS, AGGREGATE), forms=FORMS, aggregate=AGGREGATE,
    signed_prior=frozenset({"mu"}),
    auto=Auto(rank=4, claim=_claim, loglik=_loglik, params=2),
)
