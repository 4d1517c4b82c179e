"""Proxies of the mixture models: per-component summaries, weights, the mixture mean.

A mixture posterior (``normal-mixture``, ``lognormal-mixture``, and the severity of
``compound-beta-lognormalmixture``) is the variational posterior of csrc/mixture.h:
q(pi) = Dirichlet(alpha) and, per component, a normal-inverse-gamma q(mu_k, sigma_k^2).
The reported components are those with at least one value's worth of responsibility
(``alpha_k - alpha0 >= 1``; the largest is always reported), ordered by their mean; the
others are listed in ``diagnostics.details["dropped_components"]`` and left out of every
summary and draw (the Dirichlet renormalised over the reported components is the
Dirichlet of their alphas).

- ``mean()``, ``variance()``, ``credible_interval(level)``: per reported component, shape
  ``(K,)`` and ``(K, 2)``: the component's mean mu_k (normal; a Student-t marginal) or its
  data-scale mean exp(mu_k + sigma_k^2 / 2) (lognormal; the truncated mean as for the
  ``lognormal`` model), exact.
- ``weights(level)``: the weights' posterior means alpha_k / sum(alpha) and central
  intervals of their Beta(alpha_k, sum(alpha) - alpha_k) marginals, exact.
- ``mixture_mean(level)``: the data-scale mean of the whole mixture M = sum_k w_k m_k:
  its mean and variance in closed form; its interval from a fixed, seeded set of 2**17
  draws (the one summary that is Monte Carlo; see the README).
- ``await sample(n)``: draws of M; ``await sample_predictive(n)``: new data values.

>>> import numpy as np, bayesworker as bw
>>> x = np.r_[np.random.default_rng(0).normal(-5, 1, 400), np.random.default_rng(1).normal(5, 1, 600)]
>>> with bw.InferenceWorker(threads=1, seed=3) as w:
...     post = w.run_inference_sync("normal-mixture", x, components=2).posterior
...     print(post.mean().round(1), post.weights()[0].round(2))
[-5.  5.] [0.4 0.6]
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import numpy as np

from ._bridge import Owner
from ._validate import validate_level
from ._distribution import Distribution, level_label
from ._proxy import CompoundRevenue, PosteriorProxy, _readonly


# Part codes of csrc/store.h.
PART_MIX_MEAN = 8
PART_MIX_PREDICTIVE = 9
PART_MIX_REVENUE = 10
PART_MIX_COMPONENT = 16
PART_MIX_WEIGHT = 24


def _intervals_of(parts: tuple) -> dict[float, np.ndarray]:
    levels = [lvl for lvl, _, _ in parts[0]["intervals"]]
    return {lvl: _readonly(np.array([[p["intervals"][i][1], p["intervals"][i][2]]
                                     for p in parts], dtype=np.float64))
            for i, lvl in enumerate(levels)}


class MixturePosteriorProxy(PosteriorProxy):
    """A mixture posterior: its components, their weights and the mixture mean.

    ``mean()``, ``variance()`` and ``credible_interval(level)`` describe each reported
    component's (data-scale) mean, shape ``(K,)`` / ``(K, 2)``, components ordered by
    mean. ``sample(n)`` and ``sample_batched`` draw the posterior of the mixture mean;
    ``sample_predictive(n)`` draws new data values.
    """

    def __init__(self, worker: Owner, post_id: int, model_type: str,
                 info: dict[str, Any], root: PosteriorProxy | None = None) -> None:
        self._bind(worker, post_id, PART_MIX_MEAN, model_type, root)   # sample(): the mean
        mx = info["mixture"]
        self._mx = mx
        comps, weights = mx["components"], mx["weights"]
        self._mean = _readonly(np.array([c["mean"] for c in comps], dtype=np.float64))
        self._variance = _readonly(np.array([c["variance"] for c in comps], dtype=np.float64))
        self._intervals = _intervals_of(comps)
        self._w_mean = _readonly(np.array([w["mean"] for w in weights], dtype=np.float64))
        self._w_intervals = _intervals_of(weights)
        mm = mx["mean"]
        self._mm = (float(mm["mean"]), float(mm["variance"]))
        self._mm_intervals = {lvl: _readonly(np.array([lo, hi], dtype=np.float64))
                              for lvl, lo, hi in mm["intervals"]}
        self._mm_se = {lvl: (lo, hi) for lvl, lo, hi in mx["mc_se"][0]}
        self._factors = ()
        fitted = mx["fitted"]
        self._components = []
        for r, k in enumerate(mx["order"]):
            f = fitted[k]
            a, b = f["a"], f["b"]
            d = {
                "weight": float(self._w_mean[r]),
                "weight_alpha": f["alpha"],
                "responsibility": f["alpha"] - mx["alpha0"],
                "mean": float(self._mean[r]),
                "variance": float(self._variance[r]),
                "credible_interval_95": tuple(float(v) for v in self._intervals[0.95][r]),
                "location": f["m"],
                "kappa": f["kappa"],
                "a": a,
                "b": b,
                "sigma2": b / (a - 1) if a > 1 else float("inf"),
            }
            if mx["log_scale"]:
                d["scale_of_location"] = "log"
            self._components.append(d)
        self._parameters = {
            "K": len(self._components),
            "K_fitted": mx["K"],
            "log_scale": bool(mx["log_scale"]),
            "standardisation": {"loc": mx["loc"], "scale": mx["scale"]},
            "components": [dict(c) for c in self._components],
        }

    def _quantities(self) -> tuple[tuple, ...]:
        """Each reported component's (data-scale) mean: pdf, cdf, ppf are per component."""
        return tuple(tuple(c["factors"]) for c in self._mx["components"])

    def _labels(self) -> list[str]:
        return [f"component {r + 1}" for r in range(self.n_components)]

    def _summary_rows(self, levels: tuple[float, ...]) -> list[dict[str, Any]]:
        """One row per component (with its weight), then the mixture mean (no median: its
        intervals are Monte Carlo)."""
        rows = Distribution._summary_rows(self, levels)
        for row, w in zip(rows, self._w_mean):
            row["weight"] = float(w)
        mm = {"quantity": "mixture mean", "mean": self._mm[0], "median": None,
              "sd": float(np.sqrt(self._mm[1]))}
        for level in levels:
            lo, hi = self.mixture_mean(level)["credible_interval"]
            mm[f"ci_{level_label(level)}_lower"], mm[f"ci_{level_label(level)}_upper"] = \
                float(lo), float(hi)
        return rows + [mm]

    @property
    def n_components(self) -> int:
        """The number of reported components."""
        return len(self._components)

    def _describe(self) -> str:
        means = ", ".join(f"{m:.6g}" for m in self._mean)
        return (f"K={self.n_components} means=[{means}] "
                f"weights={np.round(self._w_mean, 4).tolist()}")

    # -- per-component summaries ---------------------------------------------------------
    def _interval_parts(self) -> range:
        """credible_interval(level) has one row per reported component's mean."""
        return range(PART_MIX_COMPONENT, PART_MIX_COMPONENT + self.n_components)

    def weights(self, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """(posterior means, central intervals) of the weights, shapes (K,) and (K, 2).

        The marginal of weight k is Beta(alpha_k, sum(alpha) - alpha_k) (the sum over
        every fitted component, dropped ones included); exact. A lone component's weight
        is the constant 1.
        """
        parts = range(PART_MIX_WEIGHT, PART_MIX_WEIGHT + self.n_components)
        return self._w_mean, self._handle.bridge.run_here(
            self._levels(self._w_intervals, parts, level))

    def components(self, level: float = 0.95) -> list[dict[str, Any]]:
        """One dict per reported component, ordered by mean.

        Keys: ``weight`` (posterior mean), ``weight_interval``, ``weight_alpha``,
        ``responsibility`` (values' worth, alpha_k - alpha0), ``mean``, ``variance``,
        ``credible_interval`` (at ``level``), and the normal-inverse-gamma parameters
        ``location`` (on log x for lognormal), ``kappa``, ``a``, ``b`` with
        ``sigma2`` = E[sigma_k^2] = b / (a - 1).
        """
        ci = self.credible_interval(level)
        _, wci = self.weights(level)
        out = []
        for r, c in enumerate(self._components):
            d = dict(c)
            del d["credible_interval_95"]
            d["credible_interval"] = (float(ci[r, 0]), float(ci[r, 1]))
            d["weight_interval"] = (float(wci[r, 0]), float(wci[r, 1]))
            out.append(d)
        return out

    def mixture_mean(self, level: float = 0.95) -> dict[str, Any]:
        """The data-scale mean M = sum_k w_k m_k of the whole mixture.

        ``mean`` = sum_k E[w_k] E[m_k] (for lognormal components E[m_k] is the truncated
        mean of the README) and ``variance`` are closed-form; ``credible_interval`` is the
        pair of empirical quantiles of a fixed, seeded set of 2**17 draws on a reserved
        stream (deterministic for a posterior), with ``mc_standard_error`` of each endpoint
        (precomputed for 0.95, 0.90 and 0.80; other levels redo the draws on this thread).
        """
        level = validate_level(level)
        ci = self._handle.bridge.run_here(self._levels(
            self._mm_intervals, range(PART_MIX_MEAN, PART_MIX_MEAN + 1), level, row=True))
        se = self._mm_se.get(level)
        return {"mean": self._mm[0], "variance": self._mm[1], "credible_interval": ci,
                "mc_standard_error": se, "mc_draws": self._mx["mc_draws"]}

    # -- predictive draws ----------------------------------------------------------------
    async def sample_predictive(self, n: int, *, timeout: float | None = None,
                                on_progress: Callable[[Any], None] | None = None) -> np.ndarray:
        """``n`` draws of a new data value from the posterior predictive.

        Each draw picks weights from q(pi) (over the reported components), a component
        with those weights, then a value from that component's predictive
        Student-t_{2a}(m, b (kappa + 1) / (a kappa)) (exp'd for lognormal). Reproducible
        like :meth:`sample`, on a stream of its own.
        """
        return await self._handle.bridge.run_async(
            self._draws(PART_MIX_PREDICTIVE, n, timeout, on_progress))

    def sample_predictive_sync(self, n: int, *, timeout: float | None = None,
                               on_progress: Callable[[Any], None] | None = None) -> np.ndarray:
        """Blocking twin of :meth:`sample_predictive`."""
        return self._handle.bridge.run_sync(
            self._draws(PART_MIX_PREDICTIVE, n, timeout, on_progress))

    def sample_predictive_batched(self, n: int, batch_size: int = 10_000, *,
                                  timeout: float | None = None) -> AsyncIterator[np.ndarray]:
        """:meth:`sample_predictive` in batches (see ``sample_batched``)."""
        return self._handle.bridge.iterate_async(
            self._batches(PART_MIX_PREDICTIVE, n, batch_size, timeout))

    def sample_predictive_batched_sync(self, n: int, batch_size: int = 10_000, *,
                                       timeout: float | None = None) -> Iterator[np.ndarray]:
        """Blocking twin of :meth:`sample_predictive_batched`."""
        return self._handle.bridge.iterate_sync(
            self._batches(PART_MIX_PREDICTIVE, n, batch_size, timeout))


class CompoundMixturePosteriorProxy(CompoundRevenue, PosteriorProxy):
    """Revenue per user of ``compound-beta-lognormalmixture``: rate x mixture mean.

    ``frequency`` is the conversion rate's proxy, ``severity`` a
    :class:`MixturePosteriorProxy`. This proxy's own mean and variance (of the product of
    the two independent parts) are closed-form; its intervals come from a fixed, seeded set
    of draws like the mixture mean's; its draws are of revenue per user.
    """

    def __init__(self, worker: Owner, post_id: int, model_type: str,
                 info: dict[str, Any]) -> None:
        self._bind(worker, post_id, PART_MIX_REVENUE, model_type, None)
        rev = info["mixture"]["revenue"]
        self._mean = _readonly(np.array([rev["mean"]], dtype=np.float64))
        self._variance = _readonly(np.array([rev["variance"]], dtype=np.float64))
        self._intervals = {lvl: _readonly(np.array([[lo, hi]], dtype=np.float64))
                           for lvl, lo, hi in rev["intervals"]}
        self._factors = ()
        self.frequency = PosteriorProxy(worker, post_id, 1, model_type + ":frequency", info,
                                        root=self)
        self.severity = MixturePosteriorProxy(worker, post_id, model_type + ":severity", info,
                                              root=self)
        self._parameters = {"frequency": self.frequency._parameters,
                            "severity": self.severity._parameters}
