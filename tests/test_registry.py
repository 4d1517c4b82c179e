"""The model registry (python/bayesworker/models): a family is one module plus one row.

A toy family registered here, and nowhere else, is parsed, validated, listed and chosen by
``auto`` without any other edit; nothing outside models/ names a family; the C core's
numbers come from one table; and dirichlet-multinomial's Python half (not registered yet)
parses its three data forms and checks its prior.
"""

from __future__ import annotations

import ast
import dataclasses
import math
import pathlib
from collections.abc import Mapping

import numpy as np
import pytest

import bayesworker as bw
from bayesworker import _core, _fit, _request, _rules, _table, models
from bayesworker._errors import DataError, ModelError
from bayesworker._inputs import as_1d, float64, match_form
from bayesworker._priors import flat_prior
from bayesworker._validate import count, finite
from bayesworker.models import Auto, Family, Parsed
from bayesworker.models import dirichlet_multinomial as dm
from bayesworker.models._conjugate import conjugate_proxy, conjugate_report

PACKAGE = pathlib.Path(bw.__file__).resolve().parent
prepare = _request.prepare

# ---------------------------------------------------------------------------------------- #
# A toy family, defined and registered only here                                           #
# ---------------------------------------------------------------------------------------- #

TOY = "toy-rate"
TOY_FORMS = (("hits", "hours"),)


def _toy_parse(data, check_values=True):
    if isinstance(data, Mapping):
        match_form(data, TOY_FORMS, f"model {TOY!r}")
        return Parsed(stats={"n": finite(data["hours"], "data['hours']"),
                             "sum": float(count(data["hits"], "data['hits']"))})
    arr = as_1d(data, "values", allow_bool=False)
    x = float64(arr)
    _rules.check_values(TOY, x, arr, "values", ("finite", "nonnegative", "integer"))
    return Parsed(values=x)


def _toy_prior(prior):
    return flat_prior(prior, {"rate": 2.0, "shift": 0.0}, frozenset({"shift"}), "prior",
                      f"for model {TOY!r}")


def _scale(value, name):
    x = finite(value, name, ModelError)
    if not x > 0:
        raise ModelError(f"{name} = {value!r} must be positive")
    return x


def _claims_huge(arr, x, name, lo):
    return "auto: some value exceeds 1e6, so toy-rate" if float(x.max()) > 1e6 else None


TOY_FAMILY = Family(
    name=TOY, aliases=("toy",), parse=_toy_parse, check_prior=_toy_prior,
    proxy=conjugate_proxy, report=conjugate_report, options={"scale": _scale},
    forms=TOY_FORMS, auto=Auto(rank=0, claim=_claims_huge),
)


@pytest.fixture
def toy():
    models.register(TOY_FAMILY)
    try:
        yield TOY_FAMILY
    finally:
        models.unregister(TOY)


def test_a_registered_family_is_listed(toy):
    assert TOY in bw.MODEL_TYPES and "toy" in bw.MODEL_TYPES
    assert bw.MODEL_TYPES[-1] == "auto"
    assert models.resolve_model_type("toy") == TOY
    assert models.family("toy") is toy
    with pytest.raises(ModelError, match=r"did you mean 'toy-rate'.*'toy-rate', 'auto'.*'toy' for 'toy-rate'"):
        prepare("toy-rat", [1.0])


def test_a_registered_family_is_parsed_and_validated(toy):
    req = prepare("toy", [0, 3, 4], {"shift": -1}, {"scale": 2})
    assert req.model == TOY and req.values.tolist() == [0.0, 3.0, 4.0]
    assert req.prior == {"rate": 2.0, "shift": -1.0} and req.options == {"scale": 2.0}
    assert prepare(TOY, {"hits": 7, "hours": 2.5}).stats == {"n": 2.5, "sum": 7.0}
    with pytest.raises(DataError, match=r"values\[1\] = 2.5 is not an integer \(model 'toy-rate' needs counts\)"):
        prepare(TOY, [1, 2.5])
    with pytest.raises(DataError, match=r"data has keys \{'hits'\}, which is not a form model 'toy-rate' accepts"):
        prepare(TOY, {"hits": 1})
    with pytest.raises(ModelError, match=r"prior\['rate'\] = -1.0 must be positive"):
        prepare(TOY, [1], {"rate": -1})
    with pytest.raises(ModelError, match=r"unknown prior key 'mu' for model 'toy-rate'; allowed keys: 'rate', 'shift'"):
        prepare(TOY, [1], {"mu": 1})
    with pytest.raises(ModelError, match=r"unknown option 'components' for model 'toy-rate'; allowed options: 'scale'"):
        prepare(TOY, [1], None, {"components": 2})
    with pytest.raises(ModelError, match=r"options\['scale'\] = 0 must be positive"):
        prepare(TOY, [1], None, {"scale": 0})


def test_auto_asks_the_registry(toy):
    req = prepare("auto", [2e6, 3.5e6])
    assert req.model == TOY and req.reason == "auto: some value exceeds 1e6, so toy-rate"
    assert prepare("auto", {"hits": 3, "hours": 1.0}).model == TOY      # its aggregate form
    assert prepare("auto", [2.5, 3.5]).model == "lognormal"               # the others as before
    models.unregister(TOY)
    try:
        assert prepare("auto", [2e6, 3.5e6]).model == "poisson"
    finally:
        models.register(toy)


def test_a_family_without_a_c_row_is_refused_with_a_clear_error(toy):
    with bw.InferenceWorker(threads=0, seed=1) as w:
        with pytest.raises(ModelError, match=r"model 'toy-rate' has no row in the C core's table"):
            w.run_inference_sync(TOY, [1, 2])
        assert w.stats()["posteriors"] == 0
        assert w.run_inference_sync("poisson", [1, 2]).posterior.mean()[0] > 0


def test_register_refuses_a_taken_name_and_replace_keeps_the_place():
    normal = models.family("normal")
    with pytest.raises(ValueError, match=r"model type 'normal' is already registered"):
        models.register(normal)
    with pytest.raises(ValueError, match=r"model type 'gamma' is already registered"):
        models.register(dataclasses.replace(TOY_FAMILY, aliases=("gamma",)))
    with pytest.raises(ValueError, match=r"model type 'auto' is already registered"):
        models.register(dataclasses.replace(TOY_FAMILY, name="auto", aliases=()))
    before = models.model_types()
    models.register(dataclasses.replace(normal, aliases=("gaussian",)), replace=True)
    try:
        assert models.resolve_model_type("gaussian") == "normal"
        assert models.model_types().index("normal") == before.index("normal")
    finally:
        models.register(normal, replace=True)
    assert models.model_types() == before
    with pytest.raises(ModelError, match="unknown model type 'gaussian'"):
        models.resolve_model_type("gaussian")


# ---------------------------------------------------------------------------------------- #
# One list of families, one table of C numbers                                             #
# ---------------------------------------------------------------------------------------- #


def test_model_types_are_the_registry_with_aliases_and_auto():
    assert bw.MODEL_TYPES == (
        "beta-binomial", "normal", "lognormal", "exponential", "gamma", "poisson",
        "compound-beta-lognormal", "compound-beta-exponential", "normal-mixture",
        "lognormal-mixture", "compound-beta-lognormalmixture", "dirichlet-multinomial", "auto")
    assert models.model_names() == tuple(t for t in bw.MODEL_TYPES if t not in ("gamma", "auto"))
    from bayesworker import MODEL_TYPES
    assert MODEL_TYPES == bw.MODEL_TYPES


def test_every_family_has_its_c_row_and_the_worker_reads_codes_from_it():
    from bayesworker import _worker
    codes = {row["name"]: row["code"] for row in _table.core_table()["models"]}
    for name in models.model_names():
        assert _table.core_row(name)["name"] == name
    assert _worker.MODEL_CODES == codes
    assert _worker._MODEL_NAMES == {c: n for n, c in codes.items()}
    assert len(set(codes.values())) == len(codes)


def test_defaults_and_prior_tuples_follow_the_c_table():
    for name in models.model_names():
        row = _table.core_row(name)
        if row["prior_per_category"]:       # one default per category: bound to the data
            continue
        prior = models.default_prior(name)
        assert _table.prior_tuple(name, prior) == tuple(v for _, v in row["prior"])
    assert models.default_prior("normal-mixture") == _table.mixture_prior()
    assert models.default_prior("compound-beta-lognormalmixture")["severity"] == _table.mixture_prior()


def _string_constants(path):
    """Every str constant of a module that is not a docstring."""
    tree = ast.parse(path.read_text())
    docs = {id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            and node.body and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)}
    return {node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in docs}


def test_no_family_name_outside_its_own_module():
    """The worker, auto, the validators and the shared model helpers never name a family:
    only the family modules, the registry's table of them (models/__init__.py), the C
    table's transcription (_table.py) and the demo (__main__.py) do."""
    names = set(models.model_types()) - {"auto"}
    shared = [p for p in PACKAGE.rglob("*.py")
              if p.name not in ("__main__.py", "_table.py", "__init__.py")
              and not (p.parent.name == "models" and not p.name.startswith("_"))]
    assert any(p.name == "_worker.py" for p in shared) and any(p.name == "_auto.py" for p in shared)
    for path in shared:
        assert not _string_constants(path) & names, path


def test_no_c_number_is_written_twice():
    """The C core's default priors, mixture prior and limits are written in _table.py's
    transcription only (and go with it once _core.MODELS exists)."""
    owned_by_c = {1e-6, 1e-3, 0.05, 1e-8, 500, 1e100, 1_000_000}
    for path in PACKAGE.rglob("*.py"):
        if path.name in ("_table.py", "__main__.py"):     # the transcription; the demo's data
            continue
        numbers = {n.value for n in ast.walk(ast.parse(path.read_text()))
                   if isinstance(n, ast.Constant) and type(n.value) in (int, float)}
        assert not numbers & owned_by_c, path


# ---------------------------------------------------------------------------------------- #
# The fit call each family produces                                                        #
# ---------------------------------------------------------------------------------------- #


def _core_row(name):
    return next(row for row in _core.MODELS if row["name"] == name)


@pytest.mark.parametrize("model, data, kw, want", [
    ("beta-binomial", {"successes": 3, "trials": 10}, {},
     {"model": 1, "prior": (1.0, 1.0), "successes": 3, "trials": 10, "values": None,
      "stats": None, "options": None}),
    ("exponential", {"n": 4, "sum": 8.0}, {},
     {"model": 4, "prior": (1.0, 1.0), "successes": 0, "trials": 0, "values": None,
      "stats": (4.0, 8.0), "options": None}),
    ("compound-beta-lognormal", {"users": 9, "converters": 2, "mean_log": 1.0, "sd_log": 0.5},
     {"prior": {"severity": {"mu": -1}}},
     {"model": 6, "prior": (1.0, 1.0, -1.0, 1e-6, 1.0, 1.0), "successes": 2, "trials": 9,
      "values": None, "stats": (2.0, 1.0, 0.25), "options": None}),
    ("lognormal-mixture", [1.0, 2.0, 3.0], {"options": {"components": "auto"}},
     {"model": 9, "prior": tuple(v for _, v in _core_row("lognormal-mixture")["prior"]),
      "successes": 0, "trials": 0, "stats": None,
      "options": ((1, 2, 3, 4), 1e-8, 500)}),
])
def test_fit_kwargs(model, data, kw, want):
    req = prepare(model, data, kw.get("prior"), kw.get("options"))
    got = _fit.fit_kwargs(req)
    values = got.pop("values")
    want = dict(want)
    if "values" in want:
        assert values is want.pop("values")
    else:
        assert values is req.values
    assert got == want


# ---------------------------------------------------------------------------------------- #
# dirichlet-multinomial: parsing and the prior (fits: tests/test_dirichlet.py)           #
# ---------------------------------------------------------------------------------------- #


@pytest.mark.parametrize("data, categories, counts", [
    ({"red": 12, "green": 3, "blue": 0}, ("red", "green", "blue"), [12, 3, 0]),
    ({"red": np.int64(2), 7: 1.0}, ("red", 7), [2, 1]),
    ([12, 3, 0], (0, 1, 2), [12, 3, 0]),
    (np.array([2.0, 5.0]), (0, 1), [2, 5]),
    ({"counts": (4, 0, 1)}, (0, 1, 2), [4, 0, 1]),
    (["b", "a", "b", "c"], ("a", "b", "c"), [1, 2, 1]),
    (np.array(["y", "x", "y"]), ("x", "y"), [1, 2]),
    ({"labels": [3, 1, 3, 3]}, (1, 3), [1, 3]),
    ({"labels": np.array([2.0, 0.0])}, (0, 2), [1, 1]),
    ({"labels": ["a", "c"], "categories": ["c", "b", "a"]}, ("c", "b", "a"), [1, 0, 1]),
    ({"labels": [], "categories": [0, 1]}, (0, 1), [0, 0]),
])
def test_dirichlet_multinomial_data_forms(data, categories, counts):
    p = dm.parse(data, True)
    assert p.extra["categories"] == categories
    assert all(type(c) in (str, int) for c in p.extra["categories"])
    assert p.values.dtype == np.float64 and p.values.tolist() == counts


@pytest.mark.parametrize("data, pattern", [
    ([3, -1], r"data\[1\] = -1 must be non-negative for model 'dirichlet-multinomial'"),
    ([3, 1.5], r"data\[1\] = 1.5 is not an integer"),
    ([3, math.nan], r"data\[1\] = nan is not finite"),
    ([1, 2**60], r"data\[1\] = 1152921504606846976 exceeds the limit 9007199254740992"),
    ({"a": -2, "b": 1}, r"data\['a'\] = -2 must be non-negative"),
    ({"a": 1}, r"needs at least 2 categories, got 1: \['a'\]"),
    (["a", "a"], r"needs at least 2 categories, got 1"),
    ({True: 1, "b": 2}, r"data has the key True; category names are strings or integers"),
    (["a", 1], r"data\[1\] = 1 is an integer but data\[0\] = 'a' is a string"),
    ({"labels": np.array([0, 2.5])}, r"data\['labels'\]\[1\] = 2.5 is not an integer label"),
    ({"labels": [0, 2.5]}, r"data\['labels'\]\[1\] = 2.5 is not a category label"),
    ({"labels": ["a", "q"], "categories": ["a", "b"]}, r"data\['labels'\]\[1\] = 'q' is not one of data\['categories'\]"),
    ({"labels": ["a"], "categories": ["a", "a"]}, r"data\['categories'\]\[1\] = 'a' is listed twice"),
    ({"labels": []}, r"data\['labels'\] is empty"),
    (np.array([True, False]), r"dtype bool"),
    ("abc", r"data must be category counts"),
    ([[1, 2], [3, 4]], r"must be 1-D"),
])
def test_dirichlet_multinomial_bad_data(data, pattern):
    with pytest.raises(DataError, match=pattern):
        dm.parse(data, True)


def test_dirichlet_multinomial_prior():
    parsed = dm.parse({"a": 1, "b": 2, "c": 0}, True)
    assert dm.check_prior(None) == {"alpha": None}
    assert dm.bind_prior(dm.check_prior(None), parsed) == {"alpha": [1.0, 1.0, 1.0]}
    given = dm.check_prior({"alpha": np.array([0.5, 2, 3])})
    assert given == {"alpha": [0.5, 2.0, 3.0]} and all(type(a) is float for a in given["alpha"])
    assert dm.bind_prior(given, parsed) == given
    with pytest.raises(ModelError, match=r"prior\['alpha'\] has 2 entries but the data have 3 categories: \['a', 'b', 'c'\]"):
        dm.bind_prior(dm.check_prior({"alpha": [1, 2]}), parsed)


@pytest.mark.parametrize("prior, pattern", [
    ({"alpha": [1, 0]}, r"prior\['alpha'\]\[1\] = 0.0 must be positive"),
    ({"alpha": [1, math.inf]}, r"prior\['alpha'\]\[1\] = inf is not finite"),
    ({"alpha": [1, "2"]}, r"prior\['alpha'\]\[1\] = '2' is not a real number"),
    ({"alpha": [1]}, r"prior\['alpha'\] has 1 entries; .* needs at least 2 categories"),
    ({"alpha": 2.0}, r"prior\['alpha'\] must be a list of positive numbers"),
    ({"beta": [1, 2]}, r"unknown prior key 'beta' for model 'dirichlet-multinomial'; allowed keys: 'alpha'"),
    ([1, 2], r"prior must be a dict or None, got list"),
])
def test_dirichlet_multinomial_bad_prior(prior, pattern):
    with pytest.raises(ModelError, match=pattern):
        dm.check_prior(prior)


def test_dirichlet_multinomial_through_the_registry():
    """Registered by one row, it goes through prepare and the fit arguments."""
    assert dm.NAME in models.model_types() and dm.NAME in bw.MODEL_TYPES
    req = prepare(dm.NAME, ["x", "y", "y"])
    assert req.prior == {"alpha": [1.0, 1.0]} and req.extra["categories"] == ("x", "y")
    req = prepare(dm.NAME, {"x": 4, "y": 0, "z": 1}, {"alpha": [1, 2, 3]})
    assert req.values.tolist() == [4.0, 0.0, 1.0]
    kw = _fit.fit_kwargs(req)
    assert kw["model"] == _core_row(dm.NAME)["code"] and kw["prior"] == (1.0, 2.0, 3.0)
    assert kw["values"] is req.values
    with pytest.raises(ModelError, match=r"this model takes no options"):
        prepare(dm.NAME, [1, 2], None, {"components": 2})
    with pytest.raises(ModelError, match=r"2 entries but the data have 3 categories"):
        prepare(dm.NAME, [1, 2, 3], {"alpha": [1, 1]})
    with pytest.raises(ModelError, match=r"prior\['alpha'\]\[0\] = -1.0 must be positive"):
        prepare(dm.NAME, [1, 2, 3], {"alpha": [-1, 1, 1]})   # before the data are read
