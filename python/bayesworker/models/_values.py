"""The one-sample data forms: raw values (1-D arrays, ``{"values": ...}``) and aggregates.

Shared by normal, lognormal, exponential, poisson and the mixtures: :func:`values_parser`
builds a family's parser from its aggregate forms; :func:`moments_forms` gives the
normal-style aggregates (mean and sd, or sum and sum of squares) and their reader;
:func:`moments` are the blockwise moments ``auto`` compares models with.

>>> from bayesworker.models._values import moments_forms
>>> forms, read = moments_forms(("mean", "sd", "sum", "sum_squares"))
>>> read({"n": 3, "sum": 6.0, "sum_squares": 14.0}, forms[1], "data")
{'n': 3.0, 'mean': 2.0, 'm2': 2.0}
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from .._errors import DataError
from .._inputs import as_1d, float64, match_form
from .. import _rules
from .._rules import CHUNK, Rule
from .._table import core_row
from .._validate import count, finite, real, show
from ._family import Parsed

__all__ = ["values_parser", "moments_forms", "moments"]

#: Relative tolerance for a negative sum of squared deviations caused by rounding.
_M2_RTOL = 1e-9

Aggregate = Callable[[Mapping[str, Any], tuple[str, ...], str], dict[str, float]]


def values_parser(model: str, forms: Sequence[tuple[str, ...]] = (),
                  aggregate: Aggregate | None = None, *, always_check: bool = False,
                  extra_rules: Callable[[], Sequence[Rule]] = tuple,
                  ) -> Callable[[Any, bool], Parsed]:
    """The parser of a one-sample family: raw values under the C rules of ``model`` (plus
    ``extra_rules()``), or one of its aggregate ``forms`` read by ``aggregate``.

    ``always_check``: check the values here even when the caller leaves the rules to the
    C core (the mixtures: their C check does not name the index).
    """

    def parse(data: Any, check_values: bool = True) -> Parsed:
        name = "values"
        check = check_values or always_check
        if isinstance(data, Mapping):
            form = match_form(data, (("values",), *forms), f"model {model!r}")
            if form != ("values",):
                assert aggregate is not None
                return Parsed(stats=aggregate(data, form, "data"))
            data, name = data["values"], "data['values']"
        arr = as_1d(data, name, allow_bool=False)
        if arr.shape[0] == 0:
            raise DataError(f"{name} is empty; model {model!r} needs at least one value")
        x = float64(arr)
        if check:
            _rules.check_values(model, x, arr, name, core_row(model)["rules"], extra_rules())
        return Parsed(values=x, values_name=name, values_checked=check)

    return parse


def moments_forms(keys: tuple[str, str, str, str]) -> tuple[tuple[tuple[str, ...], ...],
                                                            Aggregate]:
    """The aggregate forms ``{n, <mean>, <sd>}`` and ``{n, <sum>, <sum of squares>}`` whose
    key names are ``keys`` = (mean, sd, sum, sum of squares), and their reader, which
    returns ``{"n", "mean", "m2"}`` (``m2`` the sum of squared deviations)."""
    mean_k, sd_k, sum_k, ss_k = keys
    forms = (("n", mean_k, sd_k), ("n", sum_k, ss_k))

    def read(data: Mapping[str, Any], form: tuple[str, ...], where: str) -> dict[str, float]:
        def key(k: str) -> str:
            return f"{where}[{k!r}]"

        n = count(data["n"], key("n"))
        if n < 1:
            raise DataError(f"{key('n')} = {n} must be at least 1")
        if mean_k in form:
            mean = finite(data[mean_k], key(mean_k))
            raw_sd = real(data[sd_k], key(sd_k))
            if n == 1 and isinstance(raw_sd, float) and math.isnan(raw_sd):
                sd = 0.0  # the sample sd of one value is undefined; it does not enter m2
            else:
                sd = finite(raw_sd, key(sd_k))
            if sd < 0:
                raise DataError(f"{key(sd_k)} = {show(raw_sd)} must be non-negative")
            m2 = sd * sd * (n - 1)
            if not math.isfinite(m2):
                raise DataError(f"{key(sd_k)} = {show(raw_sd)} is too large")
            return {"n": float(n), "mean": mean, "m2": m2}
        s = finite(data[sum_k], key(sum_k))
        ss = finite(data[ss_k], key(ss_k))
        if ss < 0:
            raise DataError(f"{key(ss_k)} = {show(data[ss_k])} must be non-negative")
        # Exact rational arithmetic on the given floats: no cancellation beyond the inputs'.
        exact = Fraction(ss) - Fraction(s) * Fraction(s) / n
        m2 = float(exact)
        if m2 < 0:
            if -m2 > _M2_RTOL * ss:
                raise DataError(
                    f"{key(ss_k)} = {show(ss)} is inconsistent with {key(sum_k)} = {show(s)} "
                    f"and {key('n')} = {n}: the implied sum of squared deviations is "
                    f"{m2!r} < 0"
                )
            m2 = 0.0  # rounding in the user's sums
        return {"n": float(n), "mean": float(Fraction(s) / n), "m2": m2}

    return forms, read


def moments(x: np.ndarray, log: bool = False) -> tuple[int, float, float]:
    """(n, mean, sum of squared deviations) of ``x`` (or of ``log(x)``), blockwise (Chan)."""
    n, mean, m2 = 0, 0.0, 0.0
    for start in range(0, x.shape[0], CHUNK):
        b = x[start : start + CHUNK]
        if log:
            b = np.log(b)
        nb = b.shape[0]
        with np.errstate(over="ignore"):    # an overflow gives inf, which the caller reports
            mb = float(b.mean())
            m2b = float(np.square(b - mb).sum())
        delta = mb - mean
        tot = n + nb
        mean += delta * nb / tot
        m2 += m2b + delta * delta * n * nb / tot
        n = tot
    return n, mean, m2
