"""normal-mixture: a finite mixture of K normals fitted to raw values by variational Bayes.

Data: a 1-D array-like of finite values (or ``{"values": ...}``), no aggregates, each at
most the C core's limit in magnitude (larger ones overflow the variance). ``auto``
compares it with ``normal`` when ``normal`` wins on raw values.

>>> from bayesworker.models.normal_mixture import FAMILY
>>> FAMILY.check_options({"components": "auto", "max_components": 3})
{'components': 'auto', 'max_components': 3}
"""

from __future__ import annotations

import numpy as np

from .._mixture import MixturePosteriorProxy
from .._rules import Rule
from .._table import core_table
from ._mixtures import mixture_family
from ._values import values_parser

NAME = "normal-mixture"


def _bounded() -> tuple[Rule]:
    most = core_table()["mixture_max_abs"]
    words = f"{most:g}".replace("e+", "e")
    return ((lambda b: np.abs(b) <= most, f"exceeds {words} in magnitude (model {NAME!r})"),)


FAMILY = mixture_family(
    NAME, values_parser(NAME, always_check=True, extra_rules=_bounded), MixturePosteriorProxy,
    auto_mixture_of="normal",
)
