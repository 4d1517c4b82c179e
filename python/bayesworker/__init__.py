"""bayesworker: Bayesian A/B-test inference on native worker threads.

Fits run on C threads with the GIL released; results come back as posterior proxies
whose mean, variance and credible intervals are exact and cached, and whose draws are
awaitable and reproducible.

>>> import bayesworker as bw
>>> with bw.InferenceWorker(threads=0, seed=2024) as worker:
...     post = worker.run_inference_sync("beta-binomial", {"successes": 65, "trials": 1000}).posterior
...     print(post.mean().round(6), post.credible_interval(0.95).shape)
[0.065868] (1, 2)
"""

from typing import Any

from ._compare import Comparison
from ._errors import BayesworkerError, DataError, DisposedError, ModelError
from ._groups import GroupComparisons, GroupFits
from ._mixture import CompoundMixturePosteriorProxy, MixturePosteriorProxy
from ._plot import plot_posteriors
from ._progress import Progress
from ._progressbar import get_options, set_options
from ._proxy import CompoundPosteriorProxy, PosteriorProxy
from ._results import Diagnostics, InferenceResult
from . import models
from ._worker import InferenceWorker, default_threads


def __getattr__(name: str) -> Any:
    # MODEL_TYPES: every accepted model type string (each family, then its aliases, then
    # "auto"), read from the registry each time, so a family registered later is listed.
    if name == "MODEL_TYPES":
        return models.model_types()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "InferenceWorker",
    "PosteriorProxy",
    "CompoundPosteriorProxy",
    "MixturePosteriorProxy",
    "CompoundMixturePosteriorProxy",
    "InferenceResult",
    "Comparison",
    "GroupFits",
    "GroupComparisons",
    "Diagnostics",
    "Progress",
    "BayesworkerError",
    "ModelError",
    "DataError",
    "DisposedError",
    "MODEL_TYPES",
    "default_threads",
    "set_options",
    "get_options",
    "plot_posteriors",
]

__version__ = "0.1.0"
