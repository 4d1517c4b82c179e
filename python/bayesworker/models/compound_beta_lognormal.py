"""compound-beta-lognormal: revenue per user = conversion rate (Beta) x order value (lognormal).

Data and prior: see :mod:`bayesworker.models._compound`; the severity aggregate is a
lognormal one (``{"n", "mean_log", "sd_log"}`` or ``{"n", "sum_log", "sum_log_squares"}``).
A fit needs at least one converter with a value > 0 (:func:`check_fit`).

>>> from bayesworker.models.compound_beta_lognormal import FAMILY
>>> FAMILY.check_prior({"frequency": {"alpha": 2}})["frequency"]
{'alpha': 2.0, 'beta': 1.0}
"""

from __future__ import annotations

from typing import Any

from .._errors import DataError
from . import beta_binomial, lognormal
from ._compound import compound_family
from ._family import Auto

NAME = "compound-beta-lognormal"


def check_fit(req: Any) -> None:
    """No severity value at all: refused, the lognormal mean would have no finite interval."""
    n_sev = req.values.size if req.values is not None else (req.stats or {}).get("n", 0)
    if n_sev == 0:
        raise DataError(
            f"{NAME} needs at least one converter with a value > 0: with none, the severity "
            "is the vague default prior, whose data-scale mean has no finite credible interval")


FAMILY = compound_family(NAME, beta_binomial.FAMILY, lognormal.FAMILY, auto=Auto(rank=6),
                         check_fit=check_fit)
