"""lognormal: the data-scale mean exp(mu + sigma^2/2) of positive values; NIG prior on the logs.

Data: a 1-D array-like of finite values ``> 0`` (or ``{"values": ...}``), or
``{"n", "mean_log", "sd_log"}`` or ``{"n", "sum_log", "sum_log_squares"}``. ``auto``
compares it by BIC when every value is > 0, and chooses it when that comparison is
undefined.

>>> from bayesworker.models.lognormal import FAMILY
>>> FAMILY.parse({"n": 4, "sum_log": 4.0, "sum_log_squares": 16.0}, True).stats
{'n': 4.0, 'mean': 1.0, 'm2': 12.0}
"""

from __future__ import annotations

import math

import numpy as np

from ._conjugate import conjugate_family
from ._family import Auto
from ._values import moments, moments_forms, values_parser

NAME = "lognormal"
FORMS, AGGREGATE = moments_forms(("mean_log", "sd_log", "sum_log", "sum_log_squares"))


def _loglik(x: np.ndarray, m: tuple[int, float, float]) -> float | None:
    n = m[0]
    _, mean_log, m2_log = moments(x, log=True)
    if m2_log <= 0.0:
        return None
    return -0.5 * n * (math.log(2.0 * math.pi * m2_log / n) + 1.0) - n * mean_log


FAMILY = conjugate_family(
    NAME, values_parser(NAME, FORMS, AGGREGATE), forms=FORMS, aggregate=AGGREGATE,
    empty_stats={"n": 0.0, "mean": 0.0, "m2": 0.0}, signed_prior=frozenset({"mu"}),
    auto=Auto(rank=3, loglik=_loglik, params=2, admits=lambda lo: lo > 0, fallback=True),
    instant=False,      # its truncated mean is a quadrature, not a closed form
)
