"""compound-beta-exponential: revenue per user = conversion rate (Beta) x order value
(exponential).

Data and prior: see :mod:`bayesworker.models._compound`; the severity aggregate is
``{"n", "sum"}``.

>>> from bayesworker.models.compound_beta_exponential import FAMILY
>>> FAMILY.parse({"users": 100, "converters": 7, "sum": 350.0}, True).stats
{'n': 7.0, 'sum': 350.0}
"""

from __future__ import annotations

from . import beta_binomial, exponential
from ._compound import compound_family
from ._family import Auto

NAME = "compound-beta-exponential"

FAMILY = compound_family(NAME, beta_binomial.FAMILY, exponential.FAMILY, auto=Auto(rank=7))
