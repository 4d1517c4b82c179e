"""ArviZ export: posteriors as ArviZ's data object, so ``az.summary`` and ``az.plot_posterior``
work on them.

ArviZ is an optional extra (``pip install bayesworker[arviz]``), imported when an export is
asked for. The object is made by ``az.from_dict``: with ArviZ 0.x (0.23 is the version the
tests run) that is an ``arviz.InferenceData``; with ArviZ 1.x, whose ``from_dict`` takes
the groups as one dict, it is the ``xarray.DataTree`` that version returns (the 1.x branch
follows its documented call, and is not exercised by the tests).

The draws are the proxy's own stream read by position (``sample(n, start=k)``): an export
of ``chains`` x ``draws`` draws with ``seed=s`` holds stream positions ``s*n .. s*n + n - 1``
(``n = chains * draws``; ``seed=None`` is ``s = 0``), chain c being positions
``c*draws ..`` of that block. So the same call gives the same data, and different seeds
give disjoint blocks. The chains are independent blocks of one exact sampler, not Markov
chains: R-hat is 1 and the effective sample size is the number of draws, up to noise.

One posterior is one variable (named for its quantity: ``conversion_rate``,
``revenue_per_user``, ``mean_value``, ...; a mixture's ``mixture_mean``, the quantity its
``sample`` draws); a Dirichlet's shares add the dimension ``category``. A comparison
exports its arms along the dimension ``arm``, a group fit its groups along ``group``; the
draws of every arm or group are made as one batch of jobs on the workers.

>>> import bayesworker as bw
>>> with bw.InferenceWorker(threads=1, seed=2) as w:            # doctest: +SKIP
...     post = w.run_inference_sync("beta-binomial", {"successes": 30, "trials": 100}).posterior
...     data = post.to_arviz(draws=1000, chains=2)
...     print(data.posterior["conversion_rate"].shape)
(2, 1000)
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ._gather import gather
from ._distribution import quantity_name
from ._validate import validate_batch_size, validate_count

__all__ = ["posterior_data", "arms_data"]


def arviz() -> Any:
    """The ``arviz`` module, or an ImportError saying how to install it."""
    try:
        with warnings.catch_warnings():     # 0.23's notice of its coming 1.0 rewrite
            warnings.filterwarnings("ignore", message="ArviZ is undergoing",
                                    category=FutureWarning)
            import arviz as az
    except ImportError:
        raise ImportError("ArviZ export needs arviz, an optional dependency: "
                          "pip install bayesworker[arviz]") from None
    return az


def variable(proxy: Any) -> tuple[str, list[str], dict[str, list]]:
    """The exported variable of ``proxy``: its name, its own dimensions and their
    coordinates."""
    if getattr(proxy, "_width", 1) > 1:
        return "share", ["category"], {"category": [str(c) for c in proxy.categories]}
    if hasattr(proxy, "n_components"):
        return "mixture_mean", [], {}
    return quantity_name(proxy).replace(" ", "_"), [], {}


def _sizes(draws: Any, chains: Any, seed: Any) -> tuple[int, int, int]:
    """(draws, chains, first stream position) of an export."""
    draws = validate_batch_size(draws, "draws")
    chains = validate_batch_size(chains, "chains")
    block = 0 if seed is None else validate_count(seed, "seed")
    return draws, chains, block * draws * chains


def _draws(proxies: Sequence[Any], draws: int, chains: int, start: int) -> np.ndarray:
    """Every proxy's ``chains * draws`` draws from ``start``, made side by side on the
    workers: shape (chains, draws, len(proxies), width...)."""
    n = chains * draws
    for p in proxies:
        p._check()
    bridge = proxies[0]._handle.bridge
    arrays = bridge.run_sync(gather(p._draws(p._part, n, None, None, start)
                                    for p in proxies))
    stacked = np.stack(arrays, axis=1)                      # (n, arms, width...)
    return stacked.reshape((chains, draws) + stacked.shape[1:])


def _data(name: str, values: np.ndarray, dims: list[str], coords: dict[str, list],
          attrs: dict[str, Any]) -> Any:
    """``az.from_dict`` of one posterior variable, in the form the installed ArviZ takes."""
    az = arviz()
    if "posterior" in inspect.signature(az.from_dict).parameters:   # 0.x: InferenceData
        return az.from_dict(posterior={name: values}, coords=coords, dims={name: dims},
                            attrs=attrs)
    return az.from_dict({"posterior": {name: values}}, coords=coords,   # 1.x: DataTree
                        dims={name: dims})


def posterior_data(proxy: Any, draws: int = 4000, chains: int = 4,
                   seed: int | None = None) -> Any:
    """``proxy``'s draws as ArviZ's data object: a posterior group with one variable of
    shape (chains, draws) (plus ``category`` for a Dirichlet's shares)."""
    draws, chains, start = _sizes(draws, chains, seed)
    name, dims, coords = variable(proxy)
    values = _draws([proxy], draws, chains, start)[:, :, 0]
    return _data(name, values, dims, coords,
                 {"model": proxy.model_type, "stream_start": start, "source": "bayesworker"})


def arms_data(posteriors: Mapping[str, Any], dim: str, draws: int = 4000, chains: int = 4,
              seed: int | None = None) -> Any:
    """The draws of several posteriors of one quantity as ArviZ's data object: one
    variable of shape (chains, draws, len(posteriors)), the labels along ``dim``."""
    draws, chains, start = _sizes(draws, chains, seed)
    proxies = list(posteriors.values())
    name, dims, coords = variable(proxies[0])
    values = _draws(proxies, draws, chains, start)
    coords = {dim: list(posteriors), **coords}
    return _data(name, values, [dim, *dims], coords,
                 {"model": proxies[0].model_type, "stream_start": start,
                  "source": "bayesworker"})
