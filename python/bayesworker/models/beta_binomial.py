"""beta-binomial: a conversion rate from successes out of trials; Beta prior.

Data: ``{"successes": s, "trials": n}`` with integral ``0 <= s <= n`` (``n == 0`` is allowed:
the posterior is the prior), or a 1-D array-like of 0/1 or booleans (also under the key
``"values"``; an empty array means zero trials). ``auto`` takes booleans, values all 0 or
1, and ``{"successes", "trials"}``.

>>> from bayesworker.models.beta_binomial import FAMILY
>>> FAMILY.parse([True, False, True], True).counts
(2, 3)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .._errors import DataError
from .._inputs import as_1d, match_form
from .._rules import BINARY, check
from .._validate import count
from ._conjugate import conjugate_family
from ._family import Auto, Parsed

NAME = "beta-binomial"
FORMS = (("successes", "trials"),)


def parse(data: Any, check_values: bool = True) -> Parsed:
    """Counts ``(successes, trials)`` from either form."""
    name = "values"
    if isinstance(data, Mapping):
        form = match_form(data, (*FORMS, ("values",)), f"model {NAME!r}")
        if form == ("values",):
            data, name = data["values"], "data['values']"
        else:
            s = count(data["successes"], "data['successes']")
            n = count(data["trials"], "data['trials']")
            if s > n:
                raise DataError(f"data['successes'] = {s} exceeds data['trials'] = {n}")
            return Parsed(counts=(s, n))
    arr = as_1d(data, name, allow_bool=True)
    if arr.dtype.kind != "b":
        check((arr,), [BINARY], arr, lambda i: f"{name}[{i}]")
    return Parsed(counts=(int(np.count_nonzero(arr)), int(arr.shape[0])))


def _claim(arr: np.ndarray, x: np.ndarray, name: str, lo: float) -> str | None:
    if arr.dtype.kind == "b":
        return f"auto: {name} are booleans"
    if bool(np.all((x == 0) | (x == 1))):
        return f"auto: all {x.shape[0]} values are 0 or 1"
    return None


FAMILY = conjugate_family(
    NAME, parse, forms=FORMS,
    auto=Auto(rank=1, claim=_claim, aggregate_reason="auto: data has 'successes' and 'trials'"),
)
