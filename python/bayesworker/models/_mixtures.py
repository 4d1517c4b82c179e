"""What the mixture families share: their options, their fixed prior and their diagnostics.

Options: ``components`` (1..MAX_COMPONENTS or ``"auto"``, default 2), ``max_components``
(with ``"auto"``, default 4), ``tolerance`` (a relative ELBO change, >= 0) and
``max_iterations``; the C table gives the limits and the fit defaults. The prior is fixed on
the standardised scale (see the README, "Mixture models"), so a mixture takes no
``prior=`` of its own.

>>> from bayesworker.models._mixtures import core_options
>>> core_options({"components": "auto", "max_components": 3})
((1, 2, 3), 1e-08, 500)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .._errors import ModelError
from .._priors import OptionCheck, prior_mapping
from .._table import core_stats, core_table, mixture_prior
from .._validate import count, finite, show
from ._family import Family, Parsed

__all__ = ["defaults", "OPTIONS", "options_rule", "core_options", "no_prior",
           "mixture_report", "mixture_family"]

_DEFAULT_COMPONENTS = 2
_DEFAULT_MAX_COMPONENTS = 4


def defaults() -> dict[str, Any]:
    """The options a mixture fit uses when the user gives none."""
    t = core_table()
    return {"components": _DEFAULT_COMPONENTS, "tolerance": t["mixture_tolerance"],
            "max_iterations": t["mixture_max_iterations"],
            "max_components": _DEFAULT_MAX_COMPONENTS}


def _from_1_to(limit: str, alternative: str = "") -> OptionCheck:
    """An integer option from 1 to the C table's ``limit``."""

    def check(value: Any, name: str) -> int:
        most = core_table()[limit]
        k = count(value, name, most, ModelError)
        if k < 1:
            raise ModelError(f"{name} = {k} must be an integer 1..{most}{alternative}")
        return k

    return check


_max_components = _from_1_to("max_components")
_max_iterations = _from_1_to("max_iterations")
_k_components = _from_1_to("max_components", " or 'auto'")


def _components(value: Any, name: str) -> int | str:
    if isinstance(value, str):
        if value == "auto":
            return value
        raise ModelError(f"{name} = {value!r} must be an integer "
                         f"1..{core_table()['max_components']} or 'auto'")
    return _k_components(value, name)


def _tolerance(value: Any, name: str) -> float:
    x = finite(value, name, ModelError)
    if x < 0:
        raise ModelError(f"{name} = {show(value)} must be >= 0 (a relative ELBO change)")
    return x


OPTIONS: Mapping[str, OptionCheck] = {
    "components": _components,
    "max_components": _max_components,
    "tolerance": _tolerance,
    "max_iterations": _max_iterations,
}


def options_rule(out: dict[str, Any]) -> None:
    """``max_components`` only means something with ``components="auto"``."""
    if "max_components" in out and out.get("components") != "auto":
        raise ModelError(
            f"options['max_components'] = {out['max_components']} applies only with "
            f"components='auto' (components = {out.get('components', _DEFAULT_COMPONENTS)!r})"
        )


def core_options(options: Mapping[str, Any]) -> tuple[tuple[int, ...], float, int]:
    """The C fit's options: the K's to fit in turn, the tolerance, the iteration cap."""
    opts = {**defaults(), **options}
    comp = opts["components"]
    ks = tuple(range(1, opts["max_components"] + 1)) if comp == "auto" else (comp,)
    return ks, float(opts["tolerance"]), int(opts["max_iterations"])


def no_prior(model: str) -> Callable[[Any], dict[str, float]]:
    """The prior check of a mixture: none may be given; the fixed one is returned."""

    def check_prior(prior: Any) -> dict[str, float]:
        if prior_mapping(prior, "prior"):
            raise ModelError(
                f"model {model!r} takes no prior: its prior is fixed on the standardised "
                "scale (see the README, 'Mixture models')"
            )
        return mixture_prior()

    return check_prior


def mixture_report(mixture_of: Callable[[Any], Any]) -> Callable[..., tuple[bool, int, dict]]:
    """The diagnostics of a mixture fit; ``mixture_of(proxy)`` is the proxy of the mixture."""

    def report(req: Any, info: dict, job: Any, proxy: Any) -> tuple[bool, int, dict]:
        mix = mixture_of(proxy)
        rep = job.mixture_report
        mx = info["mixture"]
        chosen = rep["fits"][rep["chosen"]]
        opts = {**defaults(), **req.options}
        if opts["components"] != "auto":
            opts.pop("max_components")
        dropped = [{"location": f["m"], "weight_alpha": f["alpha"],
                    "responsibility": f["alpha"] - mx["alpha0"]}
                   for f in mx["fitted"] if not f["reported"]]
        details: dict[str, Any] = {
            "prior_scale": "standardised: y = (x' - loc) / scale, x' = "
                           + ("log x" if mx["log_scale"] else "x"),
            "options": opts,
            "standardisation": {"loc": mx["loc"], "scale": mx["scale"]},
            "components_chosen": chosen["K"],
            "components_reported": mx["nrep"],
            "dropped_components": dropped,
            "elbo": chosen["elbo"],
            "elbo_history": rep["elbo_history"],
            "fits": rep["fits"],
            "posterior": proxy._parameters,
            "mixture_mean": {"mean": mix._mm[0], "variance": mix._mm[1],
                             "mc_draws": mx["mc_draws"],
                             "mc_standard_error": {lvl: (lo, hi) for lvl, lo, hi
                                                   in mx["mc_se"][0]}},
            "sufficient_statistics": core_stats(req.model, info["stats"]),
        }
        if opts["components"] == "auto":
            details["elbo_per_K"] = {f["K"]: f["elbo"] for f in rep["fits"]}
        return chosen["converged"], chosen["iterations"], details

    return report


def mixture_family(name: str, parse: Callable[[Any, bool], Parsed], proxy: Callable[..., Any],
                   *, check_prior: Callable[[Any], dict[str, Any]] | None = None,
                   mixture_of: Callable[[Any], Any] = lambda proxy: proxy,
                   auto_mixture_of: str | None = None) -> Family:
    """A variational mixture family (fitted iteratively; see csrc/mixture.h)."""
    return Family(
        name=name, parse=parse, check_prior=check_prior or no_prior(name), proxy=proxy,
        report=mixture_report(mixture_of), options=OPTIONS, options_rule=options_rule,
        core_options=core_options, auto_mixture_of=auto_mixture_of,
    )
