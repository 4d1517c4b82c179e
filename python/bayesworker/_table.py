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
    return {
        "models": tuple(_core.MODELS),
        "value_rules": {name: code for code, name in enumerate(_core.VALUE_RULES) if name},
        "max_components": _core.MAX_COMPONENTS,
        "mixture_prior": tuple(_core.MIXTURE_PRIOR),
        "mixture_tolerance": _core.MIXTURE_TOLERANCE,
        "mixture_max_iterations": _core.MIXTURE_MAX_ITERATIONS,
        "max_iterations": _core.MAX_ITERATIONS,
        "mixture_max_abs": _core.MIXTURE_MAX_ABS,
    }


@functools.cache
def _rows() -> Mapping[str, Mapping[str, Any]]:
    """The C table's rows by model name (read once: the table is the core's, fixed)."""
    return {row["name"]: row for row in core_table()["models"]}


def core_row(name: str) -> Mapping[str, Any]:
    """The C table row of the model ``name``; ``ModelError`` if the core has none."""
    row = _rows().get(name)
    if row is None:
        raise ModelError(f"model {name!r} has no row in the C core's table, so it cannot be "
                         "fitted by this build")
    return row


@functools.cache
def _prior_layout(name: str) -> tuple[tuple[tuple[str, ...], float], ...]:
    """The prior of ``name`` as the C table states it: (key path, default) in fit order."""
    return tuple((tuple(key.split(".")), default) for key, default in core_row(name)["prior"])


def core_prior(name: str) -> dict[str, Any]:
    """The default prior of ``name`` as the C table states it: flat, or nested by part
    (a fresh dict each time).

    >>> core_prior("beta-binomial")
    {'alpha': 1.0, 'beta': 1.0}
    """
    out: dict[str, Any] = {}
    for path, default in _prior_layout(name):
        node = out
        for k in path[:-1]:
            node = node.setdefault(k, {})
        node[path[-1]] = default
    return out


def prior_tuple(name: str, prior: Mapping[str, Any]) -> tuple[float, ...]:
    """The numbers of a (validated) ``prior`` in the order the C fit of ``name`` takes."""
    out = []
    for path, _ in _prior_layout(name):
        node: Any = prior
        for k in path:
            node = node[k]
        out.append(node)
    return tuple(out)


@functools.cache
def _stat_slots(name: str) -> tuple[tuple[int, str], ...]:
    return tuple((i, k) for i, k in enumerate(core_row(name)["stats"]) if k is not None)


def core_stats(name: str, stats: Sequence[float]) -> dict[str, float]:
    """The stored sufficient statistics of a posterior of ``name``, by their C names."""
    return {k: stats[i] for i, k in _stat_slots(name)}


def rule_code(name: str) -> int:
    """The C code of the value rule ``name`` ("finite", "positive", ...)."""
    return core_table()["value_rules"][name]


def rule_name(code: int) -> str | None:
    """The name of the value rule whose C code is ``code`` (``None`` if unknown)."""
    return next((k for k, v in core_table()["value_rules"].items() if v == code), None)


def mixture_prior() -> dict[str, float]:
    """A fresh dict of the mixtures' fixed prior (on the standardised scale)."""
    return dict(core_table()["mixture_prior"])
