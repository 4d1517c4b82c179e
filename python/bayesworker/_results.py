"""What a fit returns: the posterior proxy and the diagnostics of the fit."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Sufficient statistics that count the observations, in the order they are looked for.
_N_KEYS = ("n", "trials", "users", "exposure")


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

    @property
    def n(self) -> float | None:
        """The number of observations the fit used (trials, users, values; None if the
        model's statistics do not say)."""
        stats = self.details.get("sufficient_statistics", {})
        return next((stats[k] for k in _N_KEYS if k in stats), None)

    def _row(self) -> dict[str, Any]:
        """The fit's columns of a summary row: n, prior, converged, iterations, runtime."""
        return {"n": self.n, "prior": self.details.get("prior"), "converged": self.converged,
                "iterations": self.iterations, "runtime": self.runtime}

    def __repr__(self) -> str:
        state = "converged" if self.converged else "NOT converged"
        n = "" if self.n is None else f" n={self.n:.10g},"
        return (f"<Diagnostics {self.model_type}:{n} {state} in {self.iterations} "
                f"iteration{'s' if self.iterations != 1 else ''}, {self.runtime:.3g} s>")

    def _repr_html_(self) -> str:
        from ._display import to_html
        row = {"model": self.model_type, **self._row()}
        row.update({k: v for k, v in self.details.items()
                    if k not in ("model", "prior") and isinstance(v, (int, float, str, bool))})
        return to_html([row], caption="Diagnostics")


@dataclass(frozen=True)
class InferenceResult:
    """The result of ``run_inference``: ``posterior`` (a proxy) and ``diagnostics``."""

    posterior: Any
    diagnostics: Diagnostics

    def summary(self, levels: Any = (0.95,)) -> Any:
        """One row per quantity of the posterior (a compound's revenue, frequency and
        severity) with the fit's columns: model, mean, median, sd, the intervals at
        ``levels``, n, prior, converged, iterations, runtime. A pandas DataFrame indexed by
        quantity, or a list of dicts where pandas is not installed."""
        from ._distribution import records_frame, validate_levels
        return records_frame(self._rows(validate_levels(levels)), "quantity")

    def _rows(self, levels: tuple[float, ...]) -> list[dict[str, Any]]:
        fit = self.diagnostics._row()
        return [{"quantity": row.pop("quantity"), "model": self.diagnostics.model_type,
                 **row, **fit} for row in self.posterior._summary_rows(levels)]

    def __repr__(self) -> str:
        post = self.posterior
        text = repr(post)[1:-1] if post is not None else "no posterior"
        d = self.diagnostics
        state = "converged" if d.converged else "NOT converged"
        return f"<InferenceResult {text}; {state}, {d.runtime:.3g} s>"

    def _repr_html_(self) -> str:
        from ._display import to_html
        if self.posterior.disposed:
            return to_html([], caption=repr(self))
        return to_html(self._rows((0.95,)), caption=f"InferenceResult: {self.diagnostics.model_type}")
