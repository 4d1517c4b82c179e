"""What the conjugate families share: a flat prior from the C table, a one-part proxy, and
the diagnostics of an exact one-step update.

>>> from bayesworker.models._conjugate import flat_prior_of
>>> flat_prior_of("normal", frozenset({"mu"}))({"mu": -3})
{'mu': -3.0, 'kappa': 1e-06, 'alpha': 1.0, 'beta': 1.0}
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._priors import flat_prior
from .._proxy import PosteriorProxy
from .._table import core_prior, core_stats
from ._family import Family, Parsed

__all__ = ["flat_prior_of", "conjugate_proxy", "conjugate_report", "conjugate_family"]

#: The part of a one-part posterior (its quantity) in the C store.
_QUANTITY_PART = 0


def flat_prior_of(name: str, signed: frozenset[str] = frozenset()) -> Callable[[Any], dict]:
    """The prior check of ``name``: its C table keys and defaults, positive unless signed."""

    def check(prior: Any) -> dict[str, float]:
        return flat_prior(prior, core_prior(name), signed, "prior", f"for model {name!r}")

    return check


def conjugate_proxy(worker: Any, post_id: int, model: str, info: dict) -> PosteriorProxy:
    """The proxy of a one-part conjugate posterior."""
    return PosteriorProxy(worker, post_id, _QUANTITY_PART, model, info)


def conjugate_report(req: Any, info: dict, job: Any, proxy: Any) -> tuple[bool, int, dict]:
    """An exact update: converged in one step; the posterior and the C statistics."""
    return True, 1, {
        "posterior": proxy._parameters,
        "sufficient_statistics": core_stats(req.model, info["stats"]),
    }


def conjugate_family(name: str, parse: Callable[[Any, bool], Parsed], *,
                     signed_prior: frozenset[str] = frozenset(), **fields: Any) -> Family:
    """A one-part conjugate family: ``name``, its parser and its other :class:`Family` fields
    (``instant`` by default: a closed-form update and moments; bench/run.py measures it)."""
    fields.setdefault("instant", True)
    return Family(name=name, parse=parse, check_prior=flat_prior_of(name, signed_prior),
                  proxy=conjugate_proxy, report=conjugate_report, signed_prior=signed_prior,
                  **fields)
