"""The C core's numbers, read in one place: its table of models and its constants.

C owns every model code, the prior each fit takes (its keys, their order and defaults),
the value rules and their codes, the names of the sufficient statistics it stores, and
the mixtures' limits and fixed prior. Python reads them through :func:`core_table` only;
no other Python file writes one of those numbers.

>>> from bayesworker._table import core_prior, prior_tuple
>>> core_prior("compound-beta-exponential")
{'frequency': {'alpha': 1.0, 'beta': 1.0}, 'severity': {'alpha': 1.0, 'beta': 1.0}}
>>> prior_tuple("normal", {"mu": 2.0, "kappa": 1.0, "alpha": 3.0, "beta": 4.0})
(2.0, 1.0, 3.0, 4.0)
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from . import _core
from ._errors import ModelError

__all__ = [
    "core_table",
    "core_row",
    "core_prior",
    "prior_tuple",
    "core_stats",
    "rule_code",
    "rule_name",
    "mixture_prior",
]


@functools.cache
def core_table() -> Mapping[str, Any]:
    """Everything the C core says about its models, as one mapping.

    ``"models"``: one dict per C table row with ``"name"``, ``"code"``, ``"parts"`` (part
    names), ``"prior"`` (``(key, default)`` pairs in the order of the prior tuple the fit
    takes; compound keys such as ``"frequency.alpha"``), ``"rules"`` (the value rules its
    raw values must satisfy, in the order they are reported), ``"stats"`` (the names of
    the stored sufficient statistics by slot, ``None`` for an unused slot) and
    ``"iterative"``. Then ``"value_rules"`` (rule name -> code), ``"max_components"``,
    ``"mixture_prior"`` (``(key, default)`` pairs), ``"mixture_tolerance"``,
    ``"mixture_max_iterations"``, ``"max_iterations"`` and ``"mixture_max_abs"``.
    """
    rows = getattr(_core, "MODELS", None)
    if rows is None:
        return _TRANSCRIBED
    return {
        "models": tuple(rows),
        "value_rules": dict(_core.VALUE_RULES),
        "max_components": _core.MAX_COMPONENTS,
        "mixture_prior": tuple(_pairs(_core.MIXTURE_PRIOR)),
        "mixture_tolerance": _core.MIXTURE_TOLERANCE,
        "mixture_max_iterations": _core.MIXTURE_MAX_ITERATIONS,
        "max_iterations": _core.MAX_ITERATIONS,
        "mixture_max_abs": _core.MIXTURE_MAX_ABS,
    }


def _pairs(obj: Mapping[str, float] | Sequence[tuple[str, float]]) -> Sequence[tuple[str, float]]:
    return tuple(obj.items()) if isinstance(obj, Mapping) else tuple(obj)


def core_row(name: str) -> Mapping[str, Any]:
    """The C table row of the model ``name``; ``ModelError`` if the core has none."""
    for row in core_table()["models"]:
        if row["name"] == name:
            return row
    raise ModelError(f"model {name!r} has no row in the C core's table, so it cannot be "
                     "fitted by this build")


def core_prior(name: str) -> dict[str, Any]:
    """The default prior of ``name`` as the C table states it: flat, or nested by part.

    >>> core_prior("beta-binomial")
    {'alpha': 1.0, 'beta': 1.0}
    """
    out: dict[str, Any] = {}
    for key, default in core_row(name)["prior"]:
        part, _, sub = key.rpartition(".")
        (out.setdefault(part, {}) if part else out)[sub] = default
    return out


def prior_tuple(name: str, prior: Mapping[str, Any]) -> tuple[float, ...]:
    """The numbers of a (validated) ``prior`` in the order the C fit of ``name`` takes."""
    out = []
    for key, _ in core_row(name)["prior"]:
        node: Any = prior
        for k in key.split("."):
            node = node[k]
        out.append(node)
    return tuple(out)


def core_stats(name: str, stats: Sequence[float]) -> dict[str, float]:
    """The stored sufficient statistics of a posterior of ``name``, by their C names."""
    names = core_row(name)["stats"]
    return {k: stats[i] for i, k in enumerate(names) if k is not None}


def rule_code(name: str) -> int:
    """The C code of the value rule ``name`` ("finite", "positive", ...)."""
    return core_table()["value_rules"][name]


def rule_name(code: int) -> str | None:
    """The name of the value rule whose C code is ``code`` (``None`` if unknown)."""
    return next((k for k, v in core_table()["value_rules"].items() if v == code), None)


def mixture_prior() -> dict[str, float]:
    """A fresh dict of the mixtures' fixed prior (on the standardised scale)."""
    return dict(core_table()["mixture_prior"])


# ---------------------------------------------------------------------------------------- #
# TRANSCRIBED FROM THE C HEADERS: DELETE when _core.MODELS exists (branch c-registry).     #
# csrc/store.h enum bw_model (codes); csrc/jobs.h enum bw_value_rule, bw_fit_spec (prior   #
# order); csrc/jobs.c (the reduce mode of each model: its rules; post->stats slots);       #
# csrc/mixture.h BW_MIX_MAX_K, BW_MIX_DEFAULT_*; csrc/mixture.c MAX_ABS_X, MAX_ITER_CAP;    #
# module.c (max_iter <= 1000000). The conjugate default priors are the ones the C table    #
# now takes over from Python.                                                              #
# ---------------------------------------------------------------------------------------- #

_BETA = (("alpha", 1.0), ("beta", 1.0))
_NIG = (("mu", 0.0), ("kappa", 1e-6), ("alpha", 1.0), ("beta", 1.0))
_GAMMA = (("alpha", 1.0), ("beta", 1.0))


def _under(part: str, pairs: tuple[tuple[str, float], ...]) -> tuple[tuple[str, float], ...]:
    return tuple((f"{part}.{k}", v) for k, v in pairs)


_COMPOUND_PARTS = ("revenue", "frequency", "severity")
_TRANSCRIBED: Mapping[str, Any] = {
    "models": (
        {"name": "beta-binomial", "code": 1, "parts": ("rate",), "prior": _BETA,
         "rules": (), "stats": ("successes", "trials"), "iterative": False},
        {"name": "normal", "code": 2, "parts": ("mean",), "prior": _NIG,
         "rules": ("finite",), "stats": ("n", "mean", "m2"), "iterative": False},
        {"name": "lognormal", "code": 3, "parts": ("mean",), "prior": _NIG,
         "rules": ("finite", "positive"), "stats": ("n", "log_mean", "log_m2"),
         "iterative": False},
        {"name": "exponential", "code": 4, "parts": ("mean",), "prior": _GAMMA,
         "rules": ("finite", "nonnegative", "some_positive"), "stats": ("n", "sum"),
         "iterative": False},
        {"name": "poisson", "code": 5, "parts": ("rate",), "prior": _GAMMA,
         "rules": ("finite", "nonnegative", "integer"), "stats": ("exposure", "sum"),
         "iterative": False},
        {"name": "compound-beta-lognormal", "code": 6, "parts": _COMPOUND_PARTS,
         "prior": _under("frequency", _BETA) + _under("severity", _NIG),
         "rules": ("finite", "positive"),
         "stats": ("severity_n", "severity_log_mean", "severity_log_m2", "converters", "users"),
         "iterative": False},
        {"name": "compound-beta-exponential", "code": 7, "parts": _COMPOUND_PARTS,
         "prior": _under("frequency", _BETA) + _under("severity", _GAMMA),
         "rules": ("finite", "nonnegative", "some_positive"),
         "stats": ("severity_n", "severity_sum", None, "converters", "users"),
         "iterative": False},
        {"name": "normal-mixture", "code": 8, "parts": ("components",), "prior": (),
         "rules": ("finite",), "stats": ("n", None, None), "iterative": True},
        {"name": "lognormal-mixture", "code": 9, "parts": ("components",), "prior": (),
         "rules": ("finite", "positive"), "stats": ("n", None, None), "iterative": True},
        {"name": "compound-beta-lognormalmixture", "code": 10,
         "parts": ("revenue", "frequency"), "prior": _under("frequency", _BETA),
         "rules": ("finite", "positive"),
         "stats": ("severity_n", None, None, "converters", "users"), "iterative": True},
    ),
    "value_rules": {"finite": 1, "positive": 2, "nonnegative": 3, "integer": 4,
                    "some_positive": 5},
    "max_components": 8,
    "mixture_prior": (("alpha0", 1.0), ("m0", 0.0), ("kappa0", 1e-3), ("a0", 0.5),
                      ("b0", 0.05)),
    "mixture_tolerance": 1e-8,
    "mixture_max_iterations": 500,
    "max_iterations": 1_000_000,
    "mixture_max_abs": 1e100,
}
