"""compound-beta-lognormalmixture: revenue per user = conversion rate (Beta) x the mean of
a lognormal mixture of the order values.

Data: raw converted/value rows only (see :mod:`bayesworker.models._compound`; no
aggregates), with at least one converter whose value is > 0. Prior: only
``{"frequency": {...}}``; the severity mixture's prior is fixed. ``auto`` compares it with
``compound-beta-lognormal`` when that wins on raw rows.

>>> from bayesworker.models.compound_beta_lognormalmixture import FAMILY
>>> FAMILY.check_prior({"frequency": {"beta": 3}})["frequency"]
{'alpha': 1.0, 'beta': 3.0}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._errors import DataError
from .._inputs import keys_text
from .._mixture import CompoundMixturePosteriorProxy
from .._table import mixture_prior
from . import beta_binomial
from ._compound import ROW_KEYS, parse_rows, parts_prior
from ._family import Parsed
from ._mixtures import mixture_family

NAME = "compound-beta-lognormalmixture"


def parse(data: Any, check_values: bool = True) -> Parsed:
    """Raw rows with at least one severity value."""
    if isinstance(data, Mapping) and set(data) != set(ROW_KEYS):
        raise DataError(
            f"data has keys {keys_text(data)}; model {NAME!r} needs raw rows ({{'converted': "
            "[...], 'value': [...]}, records or a DataFrame): a mixture cannot be fitted from "
            "aggregates"
        )
    parsed = parse_rows(data)
    if parsed.values is None or parsed.values.size == 0:
        raise DataError(
            f"model {NAME!r} needs at least one converter with a value > 0 to fit its "
            "severity mixture"
        )
    return parsed


FAMILY = mixture_family(
    NAME, parse, CompoundMixturePosteriorProxy,
    check_prior=parts_prior(
        NAME, {"frequency": beta_binomial.FAMILY},
        "'frequency' (the severity mixture's prior is fixed on the standardised scale)",
        fixed=lambda: {"severity": mixture_prior()}),
    mixture_of=lambda proxy: proxy.severity,
    auto_mixture_of="compound-beta-lognormal",
)
