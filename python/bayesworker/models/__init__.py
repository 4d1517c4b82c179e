"""The model registry: the one list of the families bayesworker can fit.

Each family lives in one module of this package (``models/normal.py``, ...) that builds a
:class:`Family`: its name and aliases, data parser, prior (keys and defaults from the C
core's table), options, proxy, C fit arguments and diagnostics. :data:`_ROWS` lists those
modules; adding a family is a new module plus one row there (and its row in the C table).
Everything else (the worker, ``auto``, the validators) asks the registry.

>>> from bayesworker import models
>>> models.resolve_model_type("gamma"), models.family("normal").check_options({})
('exponential', {})
>>> "auto" in models.model_types() and "gamma" in models.model_types()
True
"""

from __future__ import annotations

import difflib
from importlib import import_module
from typing import Any

from .._errors import ModelError
from .._table import core_table
from .._validate import show
from ._family import Auto, Family, Parsed

__all__ = [
    "AUTO",
    "Auto",
    "Family",
    "Parsed",
    "register",
    "unregister",
    "families",
    "family",
    "model_names",
    "model_types",
    "model_codes",
    "resolve_model_type",
    "default_prior",
]

#: The model type that chooses a family from the data (``bayesworker._auto``).
AUTO = "auto"

#: The registry table: one row per family, the module ``models/<row>.py`` that defines its
#: ``FAMILY``, in the order ``bw.MODEL_TYPES`` lists them.
_ROWS = (
    "beta_binomial",
    "normal",
    "lognormal",
    "exponential",
    "poisson",
    "compound_beta_lognormal",
    "compound_beta_exponential",
    "normal_mixture",
    "lognormal_mixture",
    "compound_beta_lognormalmixture",
    "dirichlet_multinomial",
)

_FAMILIES: dict[str, Family] = {}
_ALIASES: dict[str, str] = {}


def register(fam: Family, *, replace: bool = False) -> Family:
    """Add a family (its name and aliases must be new); returns it.

    ``replace=True`` puts ``fam`` in the place of the registered family of the same name
    (its position in the listing is kept).
    """
    old = _FAMILIES[fam.name] if replace else None
    own = {fam.name, *old.aliases} if old is not None else set()
    taken = {AUTO, *_FAMILIES, *_ALIASES} - own
    clash = [n for n in (fam.name, *fam.aliases) if n in taken]
    if clash:
        raise ValueError(f"model type {clash[0]!r} is already registered")
    for a in own - {fam.name}:
        del _ALIASES[a]
    _FAMILIES[fam.name] = fam           # a name already there keeps its place
    _ALIASES.update({a: fam.name for a in fam.aliases})
    return fam


def unregister(name: str) -> Family:
    """Remove the family ``name`` (canonical) and its aliases; returns it."""
    fam = _FAMILIES.pop(name)
    for a in fam.aliases:
        del _ALIASES[a]
    return fam


def families() -> tuple[Family, ...]:
    """Every registered family, in registration order."""
    return tuple(_FAMILIES.values())


def family(model_type: Any) -> Family:
    """The family of a model type string (canonical or alias); ModelError otherwise."""
    name = resolve_model_type(model_type)
    if name == AUTO:
        raise ModelError("'auto' is not a family: it chooses one from the data")
    return _FAMILIES[name]


def model_names() -> tuple[str, ...]:
    """The canonical names of the registered families."""
    return tuple(_FAMILIES)


def model_types() -> tuple[str, ...]:
    """Every accepted model type string: each family then its aliases, and ``"auto"``."""
    return (*(n for f in _FAMILIES.values() for n in (f.name, *f.aliases)), AUTO)


def model_codes() -> dict[str, int]:
    """Model name -> the C core's code, for every row of the C table."""
    return {row["name"]: row["code"] for row in core_table()["models"]}


def default_prior(model_type: Any) -> dict[str, Any]:
    """The full default prior of a model type (a fresh dict)."""
    return family(model_type).check_prior(None)


def resolve_model_type(model_type: Any) -> str:
    """Return the canonical model name for ``model_type`` (or ``"auto"``).

    >>> resolve_model_type("gamma")
    'exponential'
    """
    if not isinstance(model_type, str):
        raise ModelError(
            f"model type must be a string, got {type(model_type).__name__} {show(model_type)}"
        )
    if model_type in _FAMILIES or model_type == AUTO:
        return model_type
    if model_type in _ALIASES:
        return _ALIASES[model_type]
    known = (*_FAMILIES, AUTO)
    expected = ", ".join(repr(m) for m in known)
    close = difflib.get_close_matches(model_type, [*known, *_ALIASES], n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    aliases = ", ".join(f"{a!r} for {c!r}" for a, c in _ALIASES.items())
    listing = f" (alias: {aliases})" if len(_ALIASES) == 1 else (
        f" (aliases: {aliases})" if _ALIASES else "")
    raise ModelError(f"unknown model type {model_type!r}{hint}; expected one of {expected}"
                     f"{listing}")


for _row in _ROWS:
    register(import_module(f".{_row}", __name__).FAMILY)
