"""Prior and option checks: the user's ``prior=`` and ``**options`` against what a model takes.

A family states its prior keys and defaults (from the C table), which keys may be signed,
and its options with one validator each; these functions apply them and word every
refusal as a :class:`~bayesworker._errors.ModelError` naming the key and the value. A
user prior may give any subset of the keys; the rest take the defaults.

>>> from bayesworker._priors import flat_prior
>>> flat_prior({"alpha": 2}, {"alpha": 1.0, "beta": 1.0}, frozenset(), "prior", "for model 'm'")
{'alpha': 2.0, 'beta': 1.0}
>>> flat_prior({"alpha": 0}, {"alpha": 1.0}, frozenset(), "prior", "for model 'm'")
Traceback (most recent call last):
    ...
bayesworker._errors.ModelError: prior['alpha'] = 0.0 must be positive
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ._errors import ModelError
from ._validate import finite, show

__all__ = ["OptionCheck", "prior_mapping", "flat_prior", "Part", "nested_prior", "check_options"]

#: Validates one option: ``(value, field name) -> clean value``, or raises ModelError.
OptionCheck = Callable[[Any, str], Any]


def prior_mapping(prior: Any, name: str) -> Mapping[str, Any]:
    """``prior`` as a mapping (``None`` is the empty one)."""
    if prior is None:
        return {}
    if not isinstance(prior, Mapping):
        raise ModelError(f"{name} must be a dict or None, got {type(prior).__name__}")
    return prior


def flat_prior(prior: Any, defaults: Mapping[str, float], signed: frozenset[str], name: str,
               context: str) -> dict[str, float]:
    """The full prior: ``defaults`` overridden by ``prior``'s finite values.

    Every value must be positive except those of the keys in ``signed``. ``name`` is how
    messages name the prior (``"prior"``, ``"prior['severity']"``), ``context`` what an
    unknown key is unknown for (``"for model 'normal'"``).
    """
    given = prior_mapping(prior, name)
    out = dict(defaults)
    for k, v in given.items():
        if k not in defaults:
            allowed = ", ".join(repr(a) for a in defaults)
            raise ModelError(f"unknown prior key {k!r} {context}; allowed keys: {allowed}")
        field_name = f"{name}[{k!r}]"
        x = finite(v, field_name, ModelError)
        if k not in signed and not x > 0:
            raise ModelError(f"{field_name} = {show(x)} must be positive")
        out[k] = x
    return out


#: One part of a nested prior: its defaults, its signed keys and the model it is a part of.
Part = tuple[Mapping[str, float], frozenset[str], str]


def nested_prior(model: str, prior: Any, parts: Mapping[str, Part], allowed: str,
                 fixed: Mapping[str, Mapping[str, float]] | None = None) -> dict[str, Any]:
    """The full prior of a model with parts: ``{part: flat prior}`` for each of ``parts``,
    then each of ``fixed`` (a part the user cannot set) as it is.

    ``allowed`` is what a message about an unknown part lists after "allowed keys: ".
    """
    given = prior_mapping(prior, "prior")
    for k in given:
        if k not in parts:
            raise ModelError(f"unknown prior key {k!r} for model {model!r}; allowed keys: "
                             f"{allowed}")
    out: dict[str, Any] = {
        part: flat_prior(given.get(part), defaults, signed, f"prior[{part!r}]",
                         f"in prior[{part!r}] for model {model!r} (its {label} part)")
        for part, (defaults, signed, label) in parts.items()
    }
    out.update({part: dict(p) for part, p in (fixed or {}).items()})
    return out


def check_options(model: str, options: Any, allowed: Mapping[str, OptionCheck]) -> dict[str, Any]:
    """Each option through its validator; ModelError for an option ``model`` does not take."""
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise ModelError(f"options must be a dict or None, got {type(options).__name__}")
    out: dict[str, Any] = {}
    for k, v in options.items():
        if k not in allowed:
            listing = (
                f"allowed options: {', '.join(repr(a) for a in allowed)}"
                if allowed
                else "this model takes no options"
            )
            raise ModelError(f"unknown option {k!r} for model {model!r}; {listing}")
        out[k] = allowed[k](v, f"options[{k!r}]")
    return out
