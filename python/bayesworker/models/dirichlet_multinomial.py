"""dirichlet-multinomial: the shares of k categories from category counts; Dirichlet prior.

The posterior is Dirichlet(alpha + counts). The quantity is the vector of the k category
shares: ``mean()``, ``variance()`` (shape (k,)) and ``credible_interval(level)`` (shape
(k, 2)) are those of the exact Beta marginals Beta(a_i, sum of the other a_j); draws are
Dirichlet vectors, ``sample(n)`` of shape (n, k) (csrc/fam_dirichlet.c).

Data, three forms:

- counts by name: ``{"red": 12, "green": 3, "blue": 0}`` (categories in the dict's order;
  names are strings or integers);
- an array of counts: ``[12, 3, 0]`` or ``{"counts": [...]}`` (categories 0 .. k-1);
- an array of category labels: strings ``["red", "blue", "red"]``, or integers under
  ``{"labels": [...]}`` (a bare integer array is counts); categories are the labels seen,
  sorted, unless ``{"labels": [...], "categories": [...]}`` lists them (then a label
  outside the list is an error, and a category never seen counts 0).

Counts are integers ``>= 0`` (integral floats pass); there are at least 2 categories.

Prior: ``{"alpha": [a_1, ..., a_k]}``, one positive concentration per category; by
default each is the C table's default (Dirichlet(1, ..., 1)). Options: none.

>>> p = parse(["b", "a", "b", "c"], True)
>>> p.extra["categories"], p.values
(('a', 'b', 'c'), array([1., 2., 1.]))
>>> check_prior({"alpha": [0.5, 2]})
{'alpha': [0.5, 2.0]}
>>> import bayesworker as bw
>>> with bw.InferenceWorker(threads=0, seed=3) as worker:
...     post = worker.run_inference_sync(NAME, {"red": 12, "green": 3, "blue": 0}).posterior
...     print(post.categories, post.mean().round(4), post.sample_sync(5).shape)
('red', 'green', 'blue') [0.7222 0.2222 0.0556] (5, 3)
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .. import _core, _rules
from .._proxy import PosteriorProxy, _readonly
from .._errors import DataError, ModelError
from .._inputs import as_1d, float64
from .._priors import prior_mapping
from .._table import core_prior
from .._validate import MAX_DATA_COUNT, count, finite, show
from ._family import Family, Parsed

NAME = "dirichlet-multinomial"
#: What counts must be (value rules by their C names), and the least number of categories.
_COUNT_RULES = ("finite", "nonnegative", "integer")
_MIN_CATEGORIES = 2

Category = str | int


# ---------------------------------------------------------------------------------------- #
# Data                                                                                     #
# ---------------------------------------------------------------------------------------- #


def parse(data: Any, check_values: bool = True) -> Parsed:
    """Counts (float64, shape (k,)) and ``extra["categories"]`` from any of the forms."""
    if isinstance(data, Mapping):
        keys = set(data)
        if keys in ({"labels"}, {"labels", "categories"}) and _is_array(data["labels"]):
            return _from_labels(data["labels"], "data['labels']", data.get("categories"))
        if keys == {"counts"} and _is_array(data["counts"]):
            return _from_counts(data["counts"], "data['counts']")
        return _from_names(data)
    if not _is_array(data):
        raise DataError(f"data must be category counts (a dict name -> count, or an array) or "
                        f"an array of category labels, got {type(data).__name__}")
    arr = _as_array(data)
    if arr.ndim != 1:
        raise DataError(f"data must be 1-D, got shape {arr.shape}")
    if arr.dtype.kind == "b":
        raise DataError("data has dtype bool; expected counts (integers >= 0) or category "
                        "labels (strings, or integers under {'labels': [...]})")
    if arr.dtype.kind in "US" or (arr.dtype.kind == "O" and any(isinstance(v, str) for v in arr)):
        return _from_labels(arr, "data", None)
    return _from_counts(data, "data")


def _is_array(value: Any) -> bool:
    return not isinstance(value, (str, bytes, Mapping)) and hasattr(value, "__len__")


def _as_array(obj: Any) -> np.ndarray:
    """``obj`` as an array; a list stays a list of its own Python objects (NumPy would turn
    ``["a", 1]`` into two strings)."""
    if isinstance(obj, np.ndarray) or hasattr(obj, "__array__"):
        return np.asarray(obj)
    arr = np.empty(len(obj), dtype=object)
    arr[:] = list(obj)
    return arr


def _from_counts(obj: Any, name: str) -> Parsed:
    arr = as_1d(obj, name, allow_bool=False)
    x = float64(arr)
    limit: _rules.Rule = (lambda b: b <= MAX_DATA_COUNT, f"exceeds the limit {MAX_DATA_COUNT}")
    _rules.check_values(NAME, x, arr, name, _COUNT_RULES, (limit,))
    return _parsed(tuple(range(x.shape[0])), x, name)


def _from_names(data: Mapping[Any, Any]) -> Parsed:
    for k in data:
        if isinstance(k, bool) or not isinstance(k, (str, int)):
            raise DataError(f"data has the key {show(k)}; category names are strings or "
                            "integers")
    counts = [count(v, f"data[{k!r}]") for k, v in data.items()]
    return _parsed(tuple(data), np.array(counts, dtype=np.float64), "data")


def _label_array(labels: Any, name: str) -> np.ndarray:
    """The labels as a 1-D array of Python strings or of integers."""
    if not _is_array(labels):
        raise DataError(f"{name} must be a 1-D array of labels, got {type(labels).__name__}")
    arr = _as_array(labels)
    if arr.ndim != 1:
        raise DataError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.dtype.kind in "US":
        return arr.astype(str)
    if arr.dtype.kind in "iuf":
        x = float64(arr)
        _rules.check((x,), [_rules.FINITE, _INTEGRAL], arr, lambda i: f"{name}[{i}]")
        return arr.astype(np.int64)
    if arr.dtype.kind != "O":
        raise DataError(f"{name} has dtype {arr.dtype}; expected strings or integers")
    kinds = [_label_kind(v, f"{name}[{i}]") for i, v in enumerate(arr)]
    i = next((j for j, k in enumerate(kinds) if k != kinds[0]), None)
    if i is not None:
        raise DataError(f"{name}[{i}] = {show(arr[i])} is {kinds[i]} but {name}[0] = "
                        f"{show(arr[0])} is {kinds[0]}; labels are all strings or all integers")
    return np.array([v if isinstance(v, str) else int(v) for v in arr], dtype=object)


_INTEGRAL: _rules.Rule = (lambda b: b == np.floor(b), "is not an integer label")


def _label_kind(value: Any, name: str) -> str:
    if isinstance(value, str):
        return "a string"
    if isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)):
        return "an integer"
    raise DataError(f"{name} = {show(value)} is not a category label (a string or an integer)")


def _from_labels(labels: Any, name: str, categories: Any) -> Parsed:
    arr = _label_array(labels, name)
    seen, n_seen = (np.unique(arr, return_counts=True) if arr.size
                    else (np.empty(0, dtype=object), np.empty(0, dtype=np.int64)))
    seen_list = [v.item() if isinstance(v, np.generic) else v for v in seen]
    if categories is None:
        if arr.size == 0:
            raise DataError(f"{name} is empty; model {NAME!r} needs at least one label, or "
                            "data['categories'], to know the categories")
        cats: tuple[Category, ...] = tuple(seen_list)
        return _parsed(cats, n_seen.astype(np.float64), name)
    cats = _categories(categories)
    where = {c: j for j, c in enumerate(cats)}
    counts = np.zeros(len(cats), dtype=np.float64)
    for label, n in zip(seen_list, n_seen.tolist()):
        if label not in where:
            i = next(i for i, v in enumerate(arr) if v == label)
            raise DataError(f"{name}[{i}] = {show(label)} is not one of data['categories']")
        counts[where[label]] = n
    return _parsed(cats, counts, name)


def _categories(categories: Any) -> tuple[Category, ...]:
    if not _is_array(categories):
        raise DataError("data['categories'] must be a list of category names, got "
                        f"{type(categories).__name__}")
    cats = tuple(v.item() if isinstance(v, np.generic) else v for v in categories)
    for i, c in enumerate(cats):
        _label_kind(c, f"data['categories'][{i}]")
        if cats.index(c) != i:
            raise DataError(f"data['categories'][{i}] = {show(c)} is listed twice")
    return cats


def _parsed(categories: Sequence[Category], counts: np.ndarray, name: str) -> Parsed:
    if len(categories) < _MIN_CATEGORIES:
        raise DataError(f"model {NAME!r} needs at least {_MIN_CATEGORIES} categories, got "
                        f"{len(categories)}: {list(categories)!r}")
    return Parsed(values=counts, values_name=name,
                  extra={"categories": tuple(categories)})


# ---------------------------------------------------------------------------------------- #
# Prior, fit, report                                                                       #
# ---------------------------------------------------------------------------------------- #


def check_prior(prior: Any) -> dict[str, Any]:
    """``{"alpha": [positive floats]}``, or ``{"alpha": None}`` for the default (its length
    is the number of categories, known once the data are: :func:`bind_prior`)."""
    given = prior_mapping(prior, "prior")
    for k in given:
        if k != "alpha":
            raise ModelError(f"unknown prior key {k!r} for model {NAME!r}; allowed keys: "
                             "'alpha' (a list, one concentration per category)")
    alpha = given.get("alpha")
    if alpha is None:
        return {"alpha": None}
    if not _is_array(alpha):
        raise ModelError(f"prior['alpha'] must be a list of positive numbers, one per "
                         f"category, got {type(alpha).__name__}")
    out = []
    for i, v in enumerate(alpha):
        x = finite(v, f"prior['alpha'][{i}]", ModelError)
        if not x > 0:
            raise ModelError(f"prior['alpha'][{i}] = {show(x)} must be positive")
        out.append(x)
    if len(out) < _MIN_CATEGORIES:
        raise ModelError(f"prior['alpha'] has {len(out)} entries; model {NAME!r} needs at "
                         f"least {_MIN_CATEGORIES} categories")
    return {"alpha": out}


def bind_prior(prior: dict[str, Any], parsed: Parsed) -> dict[str, Any]:
    """The prior for these data: the default has one entry per category; a given one must."""
    cats = parsed.extra["categories"]
    alpha = prior["alpha"]
    if alpha is None:
        return {"alpha": [core_prior(NAME)["alpha"]] * len(cats)}
    if len(alpha) != len(cats):
        raise ModelError(f"prior['alpha'] has {len(alpha)} entries but the data have "
                         f"{len(cats)} categories: {list(cats)!r}")
    return {"alpha": list(alpha)}


def fit_args(req: Any) -> dict[str, Any]:
    """The C fit's arguments: the k concentrations as the prior, the k counts as values."""
    return {"prior": tuple(req.prior["alpha"]), "values": req.values, "stats": None}


class DirichletPosteriorProxy(PosteriorProxy):
    """The k category shares of a dirichlet-multinomial posterior.

    ``mean()``, ``variance()``: shape (k,); ``credible_interval(level)``: shape (k, 2),
    each row the exact central interval of that share's Beta marginal; ``sample(n)``:
    Dirichlet draws of shape (n, k), each row summing to 1; ``categories``: the category
    names in the order of the columns.
    """

    def __init__(self, worker: Any, post_id: int, model_type: str, info: dict) -> None:
        self._bind(worker, post_id, _core.PART_SHARES, model_type, None)
        marginals = info["parts"]
        self._width = len(marginals)
        self._mean = _readonly(np.array([m["mean"] for m in marginals]))
        self._variance = _readonly(np.array([m["variance"] for m in marginals]))
        levels = [level for level, _, _ in marginals[0]["intervals"]]
        self._intervals = {
            level: _readonly(np.array([m["intervals"][i][1:] for m in marginals]))
            for i, level in enumerate(levels)}
        self._parameters = {"alpha": list(info["dirichlet"]["alpha"])}
        self.categories: tuple[Category, ...] = tuple(range(self._width))
        self._marginals = tuple(tuple(m["factors"]) for m in marginals)

    def _quantities(self) -> tuple[tuple, ...]:
        """Each share's Beta marginal: pdf, cdf, ppf have a last axis of length k."""
        return self._marginals

    def _labels(self) -> list[str]:
        return [str(c) for c in self.categories]

    def _interval_parts(self) -> range:
        return range(_core.PART_CATEGORY, _core.PART_CATEGORY + self._width)

    def _describe(self) -> str:
        return f"k={self._width}, mean={np.array2string(self._mean, precision=4)}"


def proxy(worker: Any, post_id: int, model: str, info: dict) -> DirichletPosteriorProxy:
    """The proxy of a fitted posterior (its categories are set by :func:`report`)."""
    return DirichletPosteriorProxy(worker, post_id, model, info)


def report(req: Any, info: dict, job: Any, proxy: Any) -> tuple[bool, int, dict[str, Any]]:
    """An exact update; the categories and their counts (also given to the proxy)."""
    cats = req.extra["categories"]
    proxy.categories = tuple(cats)
    return True, 1, {
        "posterior": proxy._parameters,
        "categories": list(cats),
        "sufficient_statistics": {"n": float(req.values.sum()),
                                  "counts": dict(zip(cats, req.values.tolist()))},
    }


FAMILY = Family(name=NAME, parse=parse, check_prior=check_prior, proxy=proxy,
                report=report, fit_args=fit_args, bind_prior=bind_prior)
