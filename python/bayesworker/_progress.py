"""Progress reports: what a worker is doing, as the hook of the original design showed it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    """One progress report.

    ``stage`` is ``"fitting"``, ``"sampling"``, ``"interval"``, ``"done"`` or ``"idle"``;
    ``fraction`` runs from 0.0 to 1.0; ``iteration`` and ``total_iterations`` count the
    blocks of work (about a millisecond each) done and to do, or, for the iterative
    mixture fits, the iterations (one phase each, plus one initialisation per K tried) done
    and the most there may be. ``elbo`` is a mixture fit's current evidence lower bound
    (original data scale), else ``None``.

    >>> Progress("sampling", 0.5, 16, 32).fraction
    0.5
    """

    stage: str
    fraction: float
    iteration: int
    total_iterations: int
    elbo: float | None = None

    @classmethod
    def of_job(cls, stage: str, job) -> "Progress":
        """The progress of a C job handle right now."""
        done, total = job.progress
        elbo = getattr(job, "value", None)
        if job.done:
            return cls(stage, 1.0, total, total, elbo)
        return cls(stage, done / total if total else 0.0, done, total, elbo)


IDLE = Progress("idle", 0.0, 0, 0)
