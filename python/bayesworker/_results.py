"""What a fit returns: the posterior proxy and the diagnostics of the fit."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Diagnostics:
    """How a fit went.

    Conjugate models are solved in one exact update, so ``converged`` is True and
    ``iterations`` is 1. ``details`` holds the model's own figures: the number of
    observations and the sufficient statistics used, the prior, the posterior
    hyperparameters and, for ``auto``, the model chosen and why.
    """

    converged: bool
    iterations: int
    runtime: float
    model_type: str
    details: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        """Dictionary-style access: ``diagnostics["runtime"]`` or a key of ``details``."""
        if key in ("converged", "iterations", "runtime", "model_type"):
            return getattr(self, key)
        return self.details[key]


@dataclass(frozen=True)
class InferenceResult:
    """The result of ``run_inference``: ``posterior`` (a proxy) and ``diagnostics``."""

    posterior: Any
    diagnostics: Diagnostics
