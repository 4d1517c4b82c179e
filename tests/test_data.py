"""Tests of the data edge: the request (_request.py), the scalar validators (_validate.py),
the input adapters (_inputs.py), the value rules (_rules.py), auto (_auto.py), the
families' parsers and priors (models/) and _errors.py."""

from __future__ import annotations

import dataclasses
import fractions
import math

import numpy as np
import pytest

from bayesworker import _auto, _errors, _inputs, _request, _rules, _validate, models

prepare = _request.prepare
DataError = _errors.DataError
ModelError = _errors.ModelError
DisposedError = _errors.DisposedError
BayesworkerError = _errors.BayesworkerError


class FakeFrame:
    """The smallest DataFrame-like object: .columns and column access by name."""

    def __init__(self, **columns):
        self._cols = columns
        self.columns = list(columns)

    def __getitem__(self, key):
        return self._cols[key]


class FakeSeries:
    """A pandas-Series-like object: converts with np.asarray."""

    def __init__(self, values):
        self._values = np.asarray(values)

    def __array__(self, dtype=None, copy=None):
        return self._values if dtype is None else self._values.astype(dtype)

    def __len__(self):
        return len(self._values)


# ---------------------------------------------------------------------------------------- #
# Errors and model types                                                                   #
# ---------------------------------------------------------------------------------------- #


def test_error_hierarchy():
    assert issubclass(ModelError, BayesworkerError) and issubclass(ModelError, ValueError)
    assert issubclass(DataError, BayesworkerError) and issubclass(DataError, ValueError)
    assert issubclass(DisposedError, BayesworkerError) and issubclass(DisposedError, RuntimeError)
    assert not issubclass(DisposedError, ValueError)
    assert not issubclass(ModelError, DataError) and not issubclass(DataError, ModelError)
    for cls in (BayesworkerError, ModelError, DataError, DisposedError):
        assert cls.__doc__


@pytest.mark.parametrize("name", models.model_names())
def test_canonical_model_types_resolve_to_themselves(name):
    assert models.resolve_model_type(name) == name


def test_gamma_is_an_alias_of_exponential():
    assert models.resolve_model_type("gamma") == "exponential"
    assert prepare("gamma", [1.0, 2.0]).model == "exponential"


def test_unknown_model_type():
    with pytest.raises(ModelError, match=r"unknown model type 'betabinomial'.*expected one of 'beta-binomial'"):
        prepare("betabinomial", [0, 1])
    with pytest.raises(ModelError, match=r"did you mean 'beta-binomial'"):
        prepare("betabinomial", [0, 1])
    with pytest.raises(ValueError, match=r"unknown model type 'Normal'"):
        prepare("Normal", [1.0])


def test_model_type_must_be_a_string():
    with pytest.raises(ModelError, match=r"model type must be a string, got int 3"):
        prepare(3, [1.0])


def test_mixture_models_are_accepted():
    req = prepare("normal-mixture", [1.0, 2.0], None, {"components": 3})
    assert req.model == "normal-mixture" and req.options == {"components": 3}


def test_fit_request_is_frozen():
    req = prepare("normal", [1.0, 2.0])
    with pytest.raises(dataclasses.FrozenInstanceError):
        req.model = "poisson"


# ---------------------------------------------------------------------------------------- #
# beta-binomial                                                                            #
# ---------------------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    "s, n",
    [(65, 1000), (np.int64(65), np.uint32(1000)), (65.0, 1000.0), (np.float64(65), np.array(1000))],
)
def test_beta_binomial_counts_forms(s, n):
    req = prepare("beta-binomial", {"successes": s, "trials": n})
    assert req.model == "beta-binomial"
    assert req.counts == (65, 1000)
    assert all(type(c) is int for c in req.counts)
    assert req.values is None and req.stats is None and req.reason is None
    assert req.prior == {"alpha": 1.0, "beta": 1.0}
    assert req.options == {}


def test_beta_binomial_zero_trials_is_allowed():
    assert prepare("beta-binomial", {"successes": 0, "trials": 0}).counts == (0, 0)


@pytest.mark.parametrize(
    "data",
    [
        [1, 0, 1, 1, 0],
        (1, 0, 1, 1, 0),
        np.array([1, 0, 1, 1, 0], dtype=np.int8),
        np.array([1.0, 0.0, 1.0, 1.0, 0.0]),
        np.array([True, False, True, True, False]),
        [True, False, True, True, False],
        {"values": [1, 0, 1, 1, 0]},
        FakeSeries([1, 0, 1, 1, 0]),
        np.array([1, 0, 1, 1, 0], dtype=object),
    ],
)
def test_beta_binomial_binary_arrays(data):
    req = prepare("beta-binomial", data)
    assert req.counts == (3, 5)
    assert req.values is None


def test_beta_binomial_empty_array_means_zero_trials():
    assert prepare("beta-binomial", []).counts == (0, 0)


@pytest.mark.parametrize(
    "data, exc, pattern",
    [
        ({"successes": 12, "trials": 10}, DataError, r"data\['successes'\] = 12 exceeds data\['trials'\] = 10"),
        ({"successes": -1, "trials": 10}, DataError, r"data\['successes'\] = -1 must be non-negative"),
        ({"successes": 2.5, "trials": 10}, DataError, r"data\['successes'\] = 2.5 is not an integer"),
        ({"successes": 2, "trials": math.nan}, DataError, r"data\['trials'\] = nan is not finite"),
        ({"successes": 2, "trials": math.inf}, DataError, r"data\['trials'\] = inf is not finite"),
        ({"successes": True, "trials": 10}, DataError, r"data\['successes'\] = True is a bool"),
        ({"successes": "3", "trials": 10}, DataError, r"data\['successes'\] = '3' is not a real number"),
        ({"successes": 3, "trials": 2**60}, DataError, r"data\['trials'\] = 1152921504606846976 exceeds"),
        ({"successes": 3}, DataError, r"data has keys \{'successes'\}.*expected one of"),
        ({"successes": 3, "trials": 5, "extra": 1}, DataError, r"'extra'"),
        ([0, 1, 2, 1], DataError, r"values\[2\] = 2 is not 0 or 1"),
        ([0, 1, 0.5], DataError, r"values\[2\] = 0.5 is not 0 or 1"),
        ([0, 1, math.nan], DataError, r"values\[2\] = nan is not 0 or 1"),
        ({"values": [1, -1]}, DataError, r"data\['values'\]\[1\] = -1 is not 0 or 1"),
        (np.ones((2, 2)), DataError, r"values must be 1-D, got shape \(2, 2\)"),
        (np.array(1), DataError, r"values must be 1-D, got shape \(\)"),
        (None, DataError, r"data is None"),
        ("0101", DataError, r"got str"),
    ],
)
def test_beta_binomial_bad_data(data, exc, pattern):
    with pytest.raises(exc, match=pattern):
        prepare("beta-binomial", data)


# ---------------------------------------------------------------------------------------- #
# normal, lognormal, exponential, poisson: raw values                                      #
# ---------------------------------------------------------------------------------------- #


@pytest.mark.parametrize("model", ["normal", "lognormal", "exponential", "poisson"])
def test_contiguous_float64_is_read_in_place(model):
    x = np.array([1.0, 2.0, 3.0, 5.0])
    req = prepare(model, x)
    assert req.values is x
    assert req.stats is None and req.counts is None
    assert prepare(model, {"values": x}).values is x


def test_readonly_float64_is_read_in_place():
    x = np.array([1.0, 2.0, 3.0])
    x.flags.writeable = False
    assert prepare("normal", x).values is x


@pytest.mark.parametrize(
    "data",
    [
        [1, 2, 3, 5],
        (1.0, 2.0, 3.0, 5.0),
        np.array([1, 2, 3, 5], dtype=np.int32),
        np.array([1, 2, 3, 5], dtype=np.uint8),
        np.array([1, 2, 3, 5], dtype=np.float32),
        np.array([1, 2, 3, 5], dtype=">f8"),
        np.array([1, 9, 2, 9, 3, 9, 5, 9], dtype=np.float64)[::2],
        np.array([1, 2, 3, 5], dtype=object),
        FakeSeries([1.0, 2.0, 3.0, 5.0]),
        np.ma.masked_array([1.0, 2.0, 3.0, 5.0]),
    ],
)
def test_other_inputs_are_converted_to_contiguous_float64(data):
    req = prepare("normal", data)
    v = req.values
    assert isinstance(v, np.ndarray) and type(v) is np.ndarray
    assert v.dtype == np.float64 and v.dtype.isnative
    assert v.ndim == 1 and v.flags.c_contiguous
    np.testing.assert_array_equal(v, [1.0, 2.0, 3.0, 5.0])


def test_non_contiguous_input_is_copied_not_aliased():
    base = np.arange(10, dtype=np.float64)
    view = base[::2]
    v = prepare("normal", view).values
    assert v is not view and not np.shares_memory(v, base)


def test_normal_single_value_is_enough():
    np.testing.assert_array_equal(prepare("normal", [3.5]).values, [3.5])


def test_poisson_counts_as_float64():
    v = prepare("poisson", np.array([0, 3, 7], dtype=np.int64)).values
    assert v.dtype == np.float64
    np.testing.assert_array_equal(v, [0.0, 3.0, 7.0])


def test_exponential_allows_zeros_when_some_value_is_positive():
    np.testing.assert_array_equal(prepare("exponential", [0.0, 0.0, 2.5]).values, [0, 0, 2.5])


@pytest.mark.parametrize(
    "model, data, pattern",
    [
        ("normal", [1.0, 2.0, 3.0, math.nan], r"^values\[3\] = nan is not finite$"),
        ("normal", [1.0, math.inf], r"values\[1\] = inf is not finite"),
        ("normal", np.array([1.0, -np.inf]), r"values\[1\] = -inf is not finite"),
        ("normal", [], r"values is empty"),
        ("normal", {"values": []}, r"data\['values'\] is empty"),
        ("normal", [True, False], r"values has dtype bool"),
        ("normal", np.array([1 + 2j]), r"values has dtype complex128"),
        ("normal", np.array(["a", "b"]), r"values has dtype <U1"),
        ("normal", ["1.0", "2.0"], r"values has dtype <U3"),
        ("normal", np.array(["2020-01-01"], dtype="datetime64[D]"), r"values has dtype datetime64\[D\]"),
        ("normal", [1.0, None, 3.0], r"values\[1\] = None is not a real number"),
        ("normal", np.array([1.0, "x"], dtype=object), r"values\[1\] = 'x' is not a real number"),
        ("normal", np.array([1.0, True], dtype=object), r"values\[1\] = True is a bool"),
        ("normal", np.array([1.0, 10**400], dtype=object), r"values\[1\] = .* too large"),
        ("normal", np.zeros((3, 2)), r"values must be 1-D, got shape \(3, 2\)"),
        ("normal", 5.0, r"values must be 1-D, got shape \(\)"),
        ("normal", [[1.0, 2.0], [3.0]], r"values could not be read"),
        ("normal", np.ma.masked_array([1.0, 2.0], mask=[False, True]), r"values has masked entries"),
        ("lognormal", [1.0, 2.0, 0.0], r"values\[2\] = 0.0 must be positive for model 'lognormal'"),
        ("lognormal", [1.0, -2.0], r"values\[1\] = -2.0 must be positive"),
        ("lognormal", [1, -2], r"values\[1\] = -2 must be positive"),
        ("exponential", [1.0, -0.5], r"values\[1\] = -0.5 must be non-negative for model 'exponential'"),
        ("exponential", [0.0, 0.0], r"all 2 values in values are 0; model 'exponential' needs at least one positive"),
        ("poisson", [1.0, 2.5], r"values\[1\] = 2.5 is not an integer"),
        ("poisson", [1, -3], r"values\[1\] = -3 must be non-negative for model 'poisson'"),
        ("poisson", [1.0, math.nan], r"values\[1\] = nan is not finite"),
        ("poisson", {"values": [0, 1], "n": 2}, r"data has keys \{'n', 'values'\}.*expected one of"),
    ],
)
def test_bad_raw_values(model, data, pattern):
    with pytest.raises(DataError, match=pattern):
        prepare(model, data)


def test_first_offending_index_is_reported_with_its_own_reason():
    with pytest.raises(DataError, match=r"values\[1\] = -1.0 must be positive"):
        prepare("lognormal", [1.0, -1.0, math.nan])
    with pytest.raises(DataError, match=r"values\[0\] = nan is not finite"):
        prepare("lognormal", [math.nan, -1.0])


def test_offending_index_found_past_the_first_block():
    x = np.ones(3 * _rules.CHUNK + 17)
    i = 2 * _rules.CHUNK + 5
    x[i] = np.nan
    x[i + 1] = -1.0
    with pytest.raises(DataError, match=rf"values\[{i}\] = nan is not finite"):
        prepare("normal", x)
    x[i] = 2.0
    with pytest.raises(DataError, match=rf"values\[{i + 1}\] = -1.0 must be positive"):
        prepare("lognormal", x)


def test_more_than_2_40_elements_is_rejected():
    huge = np.broadcast_to(np.zeros(1), (2**40 + 1,))  # a view: no memory
    with pytest.raises(DataError, match=r"values has 1099511627777 elements, more than the limit 2\*\*40"):
        prepare("normal", huge)


def test_element_limit_applies_to_lists(monkeypatch):
    monkeypatch.setattr(_inputs, "MAX_ELEMENTS", 3)
    with pytest.raises(DataError, match=r"values has 4 elements"):
        prepare("normal", [1.0, 2.0, 3.0, 4.0])
    assert prepare("normal", [1.0, 2.0, 3.0]).values.shape == (3,)


# ---------------------------------------------------------------------------------------- #
# Aggregates                                                                               #
# ---------------------------------------------------------------------------------------- #


def _sample(seed=7, n=200):
    return np.random.default_rng(seed).normal(3.0, 2.0, n)


def test_normal_mean_sd_aggregate_matches_numpy():
    x = _sample()
    req = prepare("normal", {"n": x.size, "mean": x.mean(), "sd": x.std(ddof=1)})
    assert req.values is None and req.counts is None
    assert set(req.stats) == {"n", "mean", "m2"}
    assert req.stats["n"] == 200.0
    assert req.stats["mean"] == pytest.approx(x.mean(), rel=1e-15)
    assert req.stats["m2"] == pytest.approx(((x - x.mean()) ** 2).sum(), rel=1e-12)
    assert all(type(v) is float for v in req.stats.values())


def test_normal_sum_aggregate_matches_numpy():
    x = _sample()
    req = prepare("normal", {"n": np.int64(x.size), "sum": x.sum(), "sum_squares": (x * x).sum()})
    assert req.stats["mean"] == pytest.approx(x.mean(), rel=1e-13)
    assert req.stats["m2"] == pytest.approx(((x - x.mean()) ** 2).sum(), rel=1e-10)


def test_sum_aggregate_m2_is_exact_for_exactly_representable_sums():
    # values 5e7 + (1, 2, 3): sum and sum of squares are exact doubles, sum**2 is not.
    s = 3 * 50_000_000 + 6
    ss = sum((50_000_000 + k) ** 2 for k in (1, 2, 3))
    assert ss < 2**53 and s * s > 2**53
    stats = prepare("normal", {"n": 3, "sum": float(s), "sum_squares": float(ss)}).stats
    assert stats["m2"] == 2.0
    assert stats["mean"] == 50_000_002.0


def test_sum_aggregate_tiny_negative_m2_from_rounding_is_zero():
    s = 0.3
    exact = float(fractions.Fraction(s) ** 2 / 3)
    ss = np.nextafter(exact, 0.0)  # one ulp below: m2 slightly negative
    assert prepare("normal", {"n": 3, "sum": s, "sum_squares": ss}).stats["m2"] == 0.0


def test_normal_n1_mean_sd_accepts_nan_sd():
    assert prepare("normal", {"n": 1, "mean": 4.0, "sd": math.nan}).stats == {"n": 1.0, "mean": 4.0, "m2": 0.0}


def test_lognormal_aggregates_on_log_scale():
    x = np.random.default_rng(3).lognormal(1.0, 0.5, 150)
    y = np.log(x)
    want_m2 = ((y - y.mean()) ** 2).sum()
    a = prepare("lognormal", {"n": 150, "mean_log": y.mean(), "sd_log": y.std(ddof=1)}).stats
    b = prepare("lognormal", {"n": 150, "sum_log": y.sum(), "sum_log_squares": (y * y).sum()}).stats
    for st in (a, b):
        assert st["n"] == 150.0
        assert st["mean"] == pytest.approx(y.mean(), rel=1e-13)
        assert st["m2"] == pytest.approx(want_m2, rel=1e-10)


def test_exponential_and_poisson_aggregates():
    assert prepare("exponential", {"n": 10, "sum": 42.5}).stats == {"n": 10.0, "sum": 42.5}
    assert prepare("gamma", {"n": 10.0, "sum": np.float32(4.0)}).stats == {"n": 10.0, "sum": 4.0}
    assert prepare("poisson", {"n": 2.5, "sum": 7}).stats == {"n": 2.5, "sum": 7.0}
    assert prepare("poisson", {"n": 3, "sum": 0}).stats == {"n": 3.0, "sum": 0.0}


@pytest.mark.parametrize(
    "model, data, pattern",
    [
        ("normal", {"n": 5, "sum": 10.0, "sum_squares": 1.0},
         r"data\['sum_squares'\] = 1.0 is inconsistent with data\['sum'\] = 10.0 and data\['n'\] = 5"),
        ("normal", {"n": 5, "sum": 10.0, "sum_squares": -1.0}, r"data\['sum_squares'\] = -1.0 must be non-negative"),
        ("normal", {"n": 5, "mean": 1.0, "sd": -1.0}, r"data\['sd'\] = -1.0 must be non-negative"),
        ("normal", {"n": 5, "mean": 1.0, "sd": math.nan}, r"data\['sd'\] = nan is not finite"),
        ("normal", {"n": 5, "mean": math.inf, "sd": 1.0}, r"data\['mean'\] = inf is not finite"),
        ("normal", {"n": 0, "mean": 1.0, "sd": 1.0}, r"data\['n'\] = 0 must be at least 1"),
        ("normal", {"n": 2.5, "mean": 1.0, "sd": 1.0}, r"data\['n'\] = 2.5 is not an integer"),
        ("normal", {"n": 5, "mean": 1.0, "sd": 1e200}, r"data\['sd'\] = 1e\+200 is too large"),
        ("normal", {"n": 5, "mean": 1.0}, r"data has keys \{'mean', 'n'\}.*'sd'"),
        ("normal", {"n": 5, "sum": 1.0}, r"expected one of"),
        ("lognormal", {"n": 5, "mean": 1.0, "sd": 1.0}, r"'mean_log'"),
        ("lognormal", {"n": 3, "sum_log": 3.0, "sum_log_squares": 1.0}, r"data\['sum_log_squares'\] = 1.0 is inconsistent"),
        ("exponential", {"n": 3, "sum": 0.0}, r"data\['sum'\] = 0.0 must be positive"),
        ("exponential", {"n": 0, "sum": 1.0}, r"data\['n'\] = 0 must be at least 1"),
        ("exponential", {"n": 3, "sum": True}, r"data\['sum'\] = True is a bool"),
        ("poisson", {"n": 0.0, "sum": 3}, r"data\['n'\] = 0.0 must be positive"),
        ("poisson", {"n": -1, "sum": 3}, r"data\['n'\] = -1 must be positive"),
        ("poisson", {"n": 2, "sum": 3.5}, r"data\['sum'\] = 3.5 is not an integer"),
        ("poisson", {"n": 2, "sum": -3}, r"data\['sum'\] = -3 must be non-negative"),
    ],
)
def test_bad_aggregates(model, data, pattern):
    with pytest.raises(DataError, match=pattern):
        prepare(model, data)


# ---------------------------------------------------------------------------------------- #
# Compound models                                                                          #
# ---------------------------------------------------------------------------------------- #

CONV = [1, 0, 1, 1, 0, 1]
VALUE = [10.0, 0.0, 0.0, 5.5, math.nan, 2.0]  # row 2 converted with 0: frequency only
SEVERITY = [10.0, 5.5, 2.0]


@pytest.mark.parametrize("model", ["compound-beta-lognormal", "compound-beta-exponential"])
@pytest.mark.parametrize(
    "data",
    [
        {"converted": CONV, "value": VALUE},
        {"converted": np.array(CONV, dtype=bool), "value": np.array(VALUE)},
        {"converted": np.array(CONV, dtype=float), "value": np.array(VALUE, dtype=np.float32)},
        [{"converted": c, "value": v, "user": i} for i, (c, v) in enumerate(zip(CONV, VALUE))],
        [{"converted": bool(c), "value": v} for c, v in zip(CONV, VALUE)],
        [{"converted": np.int64(c), "value": np.float64(v)} for c, v in zip(CONV, VALUE)],
        FakeFrame(user=list(range(6)), converted=FakeSeries(CONV), value=FakeSeries(VALUE)),
    ],
)
def test_compound_raw_forms(model, data):
    req = prepare(model, data)
    assert req.model == model
    assert req.counts == (4, 6)
    assert req.stats is None
    assert req.values.dtype == np.float64 and req.values.flags.c_contiguous
    np.testing.assert_array_equal(req.values, SEVERITY)


def test_compound_values_read_in_place_when_nothing_is_dropped():
    v = np.array([3.0, 4.0, 5.0])
    req = prepare("compound-beta-lognormal", {"converted": np.ones(3, bool), "value": v})
    assert req.values is v
    assert req.counts == (3, 3)


def test_compound_zero_converters_gives_empty_severity():
    req = prepare("compound-beta-lognormal", {"converted": [0, 0, 0], "value": [0.0, math.nan, 0.0]})
    assert req.counts == (0, 3)
    assert req.values.shape == (0,) and req.values.dtype == np.float64


def test_compound_empty_records_mean_zero_users():
    req = prepare("compound-beta-exponential", [])
    assert req.counts == (0, 0)
    assert req.values.shape == (0,) and req.values.dtype == np.float64


def test_compound_default_and_nested_priors():
    req = prepare("compound-beta-lognormal", {"converted": CONV, "value": VALUE})
    assert req.prior == {
        "frequency": {"alpha": 1.0, "beta": 1.0},
        "severity": {"mu": 0.0, "kappa": 1e-6, "alpha": 1.0, "beta": 1.0},
    }
    req = prepare(
        "compound-beta-exponential",
        {"converted": CONV, "value": VALUE},
        {"frequency": {"alpha": 2}, "severity": {"beta": 0.5}},
    )
    assert req.prior == {"frequency": {"alpha": 2.0, "beta": 1.0}, "severity": {"alpha": 1.0, "beta": 0.5}}


@pytest.mark.parametrize(
    "prior, pattern",
    [
        ({"alpha": 1.0}, r"unknown prior key 'alpha' for model 'compound-beta-lognormal'; allowed keys: 'frequency', 'severity'"),
        ({"frequency": {"mu": 1.0}}, r"unknown prior key 'mu' in prior\['frequency'\].*allowed keys: 'alpha', 'beta'"),
        ({"severity": {"beta": -2}}, r"prior\['severity'\]\['beta'\] = -2.0 must be positive"),
        ({"severity": [1, 2]}, r"prior\['severity'\] must be a dict or None, got list"),
    ],
)
def test_compound_bad_priors(prior, pattern):
    with pytest.raises(ModelError, match=pattern):
        prepare("compound-beta-lognormal", {"converted": CONV, "value": VALUE}, prior)


@pytest.mark.parametrize(
    "data, pattern",
    [
        ({"converted": [1, 0, 1], "value": [1.0, 2.0]},
         r"data\['converted'\] has 3 entries but data\['value'\] has 2"),
        ({"converted": [1, 2, 1], "value": [1.0, 2.0, 3.0]}, r"data\['converted'\]\[1\] = 2 is not 0 or 1"),
        ({"converted": [1, 0, 1], "value": [1.0, 2.0, -3.0]}, r"data\['value'\]\[2\] = -3.0 must be non-negative"),
        ({"converted": [1, 0, 1], "value": [1.0, -2.0, 3.0]}, r"data\['value'\]\[1\] = -2.0 must be non-negative"),
        ({"converted": [1, 0, 1], "value": [1.0, 0.0, math.nan]}, r"data\['value'\]\[2\] = nan is not finite"),
        ({"converted": [1, 0, 1], "value": [1.0, math.inf, 2.0]}, r"data\['value'\]\[1\] = inf is not finite"),
        ({"converted": [1, 0], "value": [True, False]}, r"data\['value'\] has dtype bool"),
        ({"converted": [[1, 0]], "value": [[1.0, 0.0]]}, r"data\['converted'\] must be 1-D, got shape \(1, 2\)"),
        ({"converted": [1, 0]}, r"data has keys \{'converted'\}"),
        ([{"converted": 1, "value": 2.0}, {"converted": 0}], r"data\[1\] has no key 'value'"),
        ([{"converted": 1, "value": 2.0}, {"converted": 1, "value": None}], r"data\[1\]\['value'\] = None is not a real number"),
        ([{"converted": 1, "value": 2.0}, {"converted": 3, "value": 1.0}], r"data\[1\]\['converted'\] = 3 is not 0 or 1"),
        ([{"converted": 1, "value": 2.0}, {"converted": 1, "value": -1.0}], r"data\[1\]\['value'\] = -1.0 must be non-negative"),
        ([{"converted": 1, "value": 2.0}, 5], r"data\[1\] = 5 is not a record"),
        (FakeFrame(converted=[1, 0], revenue=[1.0, 0.0]), r"data has no column 'value'.*'revenue'"),
        (np.array([1.0, 2.0]), r"data of type ndarray is not a compound-model form"),
        ([1.0, 2.0], r"data\[0\] = 1.0 is not a record"),
        (42, r"data of type int is not a compound-model form"),
    ],
)
def test_compound_bad_data(data, pattern):
    with pytest.raises(DataError, match=pattern):
        prepare("compound-beta-lognormal", data)


def test_compound_lognormal_aggregates():
    y = np.log([10.0, 5.5, 2.0])
    want = {"n": 3.0, "mean": pytest.approx(y.mean(), rel=1e-13), "m2": pytest.approx(((y - y.mean()) ** 2).sum(), rel=1e-10)}
    forms = [
        {"users": 6, "converters": 4, "n": 3, "mean_log": y.mean(), "sd_log": y.std(ddof=1)},
        {"users": 6, "converters": 4, "n": 3, "sum_log": y.sum(), "sum_log_squares": (y * y).sum()},
    ]
    for data in forms:
        req = prepare("compound-beta-lognormal", data)
        assert req.counts == (4, 6) and req.values is None
        assert req.stats == want
    # n omitted: equals converters
    req = prepare("compound-beta-lognormal", {"users": 6, "converters": 3, "mean_log": 1.0, "sd_log": 0.5})
    assert req.stats == {"n": 3.0, "mean": 1.0, "m2": 0.5}


def test_compound_exponential_aggregates():
    req = prepare("compound-beta-exponential", {"users": 100, "converters": 7, "sum": 350.0})
    assert req.counts == (7, 100) and req.stats == {"n": 7.0, "sum": 350.0}
    req = prepare("compound-beta-exponential", {"users": 100, "converters": 7, "n": 5, "sum": 350.0})
    assert req.stats == {"n": 5.0, "sum": 350.0}


def test_compound_aggregate_without_severity_values():
    req = prepare("compound-beta-lognormal", {"users": 100, "converters": 0})
    assert req.counts == (0, 100) and req.stats == {"n": 0.0, "mean": 0.0, "m2": 0.0}
    req = prepare("compound-beta-exponential", {"users": 100, "converters": 4, "n": 0})
    assert req.counts == (4, 100) and req.stats == {"n": 0.0, "sum": 0.0}


@pytest.mark.parametrize(
    "data, pattern",
    [
        ({"users": 5, "converters": 7, "sum": 3.0}, r"data\['converters'\] = 7 exceeds data\['users'\] = 5"),
        ({"users": 10, "converters": 3, "n": 4, "sum": 3.0}, r"data\['n'\] = 4 severity values exceeds data\['converters'\] = 3"),
        ({"users": 10, "converters": 3}, r"no severity aggregate but 3 severity values"),
        ({"users": 10, "converters": 3, "mean_log": 1.0, "sd_log": 1.0}, r"data has keys .*'mean_log'.*expected one of"),
        ({"users": 10, "converters": 2.5, "sum": 3.0}, r"data\['converters'\] = 2.5 is not an integer"),
        ({"users": 10, "converters": 3, "sum": -3.0}, r"data\['sum'\] = -3.0 must be positive"),
        ({"users": 10, "sum": 3.0}, r"data has keys \{'sum', 'users'\}"),
    ],
)
def test_compound_exponential_bad_aggregates(data, pattern):
    with pytest.raises(DataError, match=pattern):
        prepare("compound-beta-exponential", data)


# ---------------------------------------------------------------------------------------- #
# Priors and options                                                                       #
# ---------------------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    "model, want",
    [
        ("beta-binomial", {"alpha": 1.0, "beta": 1.0}),
        ("normal", {"mu": 0.0, "kappa": 1e-6, "alpha": 1.0, "beta": 1.0}),
        ("lognormal", {"mu": 0.0, "kappa": 1e-6, "alpha": 1.0, "beta": 1.0}),
        ("exponential", {"alpha": 1.0, "beta": 1.0}),
        ("poisson", {"alpha": 1.0, "beta": 1.0}),
    ],
)
def test_default_priors(model, want):
    req = prepare(model, [1, 0, 1] if model == "beta-binomial" else [1, 2, 3])
    assert req.prior == want
    assert all(type(v) is float for v in req.prior.values())


def test_default_priors_never_depend_on_data():
    a = prepare("normal", [1e6, 2e6]).prior
    b = prepare("normal", [-5.0, 5.0]).prior
    assert a == b


def test_returned_prior_is_a_fresh_dict():
    req = prepare("normal", [1.0])
    req.prior["mu"] = 99.0
    assert models.default_prior("normal")["mu"] == 0.0
    assert prepare("normal", [1.0]).prior["mu"] == 0.0


def test_partial_prior_is_filled_with_defaults():
    req = prepare("normal", [1.0], {"mu": -3, "kappa": np.float32(0.5)})
    assert req.prior == {"mu": -3.0, "kappa": 0.5, "alpha": 1.0, "beta": 1.0}
    assert type(req.prior["mu"]) is float


@pytest.mark.parametrize(
    "model, prior, pattern",
    [
        ("beta-binomial", {"alpha": -1}, r"prior\['alpha'\] = -1.0 must be positive"),
        ("beta-binomial", {"beta": 0}, r"prior\['beta'\] = 0.0 must be positive"),
        ("beta-binomial", {"mu": 0.0}, r"unknown prior key 'mu' for model 'beta-binomial'; allowed keys: 'alpha', 'beta'"),
        ("normal", {"sigma": 1.0}, r"unknown prior key 'sigma' for model 'normal'; allowed keys: 'mu', 'kappa', 'alpha', 'beta'"),
        ("normal", {"kappa": 0.0}, r"prior\['kappa'\] = 0.0 must be positive"),
        ("normal", {"mu": math.nan}, r"prior\['mu'\] = nan is not finite"),
        ("normal", {"beta": math.inf}, r"prior\['beta'\] = inf is not finite"),
        ("normal", {"alpha": True}, r"prior\['alpha'\] = True is a bool"),
        ("normal", {"alpha": "2"}, r"prior\['alpha'\] = '2' is not a real number"),
        ("normal", {"alpha": None}, r"prior\['alpha'\] = None is not a real number"),
        ("normal", {"alpha": 1 + 1j}, r"prior\['alpha'\] = \(1\+1j\) is not a real number"),
        ("exponential", {"alpha": 10**400}, r"prior\['alpha'\] = .* too large"),
        ("poisson", [1.0, 2.0], r"prior must be a dict or None, got list"),
    ],
)
def test_bad_priors(model, prior, pattern):
    with pytest.raises(ModelError, match=pattern):
        prepare(model, [1, 2, 3] if model != "beta-binomial" else [1, 0, 1], prior)


def test_prior_is_checked_before_the_data():
    with pytest.raises(ModelError, match=r"prior\['alpha'\]"):
        prepare("normal", [math.nan], {"alpha": -1.0})


def test_options():
    assert prepare("normal", [1.0], None, {}).options == {}
    assert prepare("normal", [1.0], None, None).options == {}
    with pytest.raises(ModelError, match=r"unknown option 'x' for model 'normal'; this model takes no options"):
        prepare("normal", [1.0], None, {"x": 1})
    with pytest.raises(ModelError, match=r"options must be a dict or None, got list"):
        prepare("normal", [1.0], None, ["x"])


def test_option_table_is_extensible(monkeypatch):
    def tolerance(value, name):
        v = float(value)
        if not v > 0:
            raise ModelError(f"{name} = {value!r} must be positive")
        return v

    normal = models.family("normal")
    models.register(dataclasses.replace(normal, options={"tolerance": tolerance}), replace=True)
    try:
        assert prepare("normal", [1.0], None, {"tolerance": 1}).options == {"tolerance": 1.0}
        with pytest.raises(ModelError, match=r"options\['tolerance'\] = -1 must be positive"):
            prepare("normal", [1.0], None, {"tolerance": -1})
        with pytest.raises(ModelError, match=r"unknown option 'components' for model 'normal'; allowed options: 'tolerance'"):
            prepare("normal", [1.0], None, {"components": 2})
    finally:
        models.register(normal, replace=True)
    assert models.model_names().index("normal") == 1 and prepare("normal", [1.0]).options == {}


# ---------------------------------------------------------------------------------------- #
# auto                                                                                     #
# ---------------------------------------------------------------------------------------- #

RNG_N = 1000


def test_auto_successes_trials():
    req = prepare("auto", {"successes": 3, "trials": 10})
    assert req.model == "beta-binomial" and req.counts == (3, 10)
    assert "'successes' and 'trials'" in req.reason


@pytest.mark.parametrize(
    "data",
    [
        np.random.default_rng(11).random(RNG_N) < 0.3,
        (np.random.default_rng(11).random(RNG_N) < 0.3).astype(np.int64),
        (np.random.default_rng(11).random(RNG_N) < 0.3).astype(np.float64).tolist(),
    ],
)
def test_auto_binary_data(data):
    req = prepare("auto", data)
    assert req.model == "beta-binomial"
    assert req.counts == (int(np.count_nonzero(np.asarray(data))), RNG_N)
    assert req.reason


def test_auto_lognormal_sample():
    x = np.random.default_rng(2024).lognormal(1.0, 0.8, RNG_N)
    req = prepare("auto", x)
    assert req.model == "lognormal"
    assert req.values is x
    assert "BIC" in req.reason and "lognormal" in req.reason and "exponential" in req.reason


def test_auto_exponential_sample():
    x = np.random.default_rng(2025).exponential(3.0, RNG_N)
    req = prepare("auto", x)
    assert req.model == "exponential"
    assert "chose exponential" in req.reason


def test_auto_reason_states_the_figures():
    x = np.random.default_rng(5).exponential(2.0, 400)
    reason = prepare("auto", x).reason
    n, mean = x.size, x.mean()
    ll_exp = -n * (math.log(mean) + 1.0)
    assert f"exponential {ll_exp:.2f}" in reason
    assert f"(BIC {math.log(n) - 2 * ll_exp:.2f})" in reason


def test_auto_positive_normal_sample():
    x = np.random.default_rng(2026).normal(50.0, 5.0, 3000)
    assert x.min() > 0
    assert prepare("auto", x).model == "normal"


def test_auto_poisson_counts():
    x = np.random.default_rng(2027).poisson(4.0, RNG_N)
    req = prepare("auto", x)
    assert req.model == "poisson"
    np.testing.assert_array_equal(req.values, x)
    assert "non-negative integers" in req.reason


def test_auto_negative_values_give_normal():
    x = np.random.default_rng(2028).normal(0.0, 1.0, RNG_N)
    req = prepare("auto", x)
    assert req.model == "normal" and req.values is x
    assert "negative" in req.reason


def test_auto_with_zeros_and_reals_skips_lognormal():
    x = np.concatenate([[0.0], np.random.default_rng(1).exponential(1.0, 200)])
    req = prepare("auto", x)
    assert req.model == "exponential"
    assert "lognormal" not in req.reason.split("chose")[0]


def test_auto_single_positive_value_defaults_to_lognormal():
    req = prepare("auto", [2.5])
    assert req.model == "lognormal" and "fewer than 2 distinct" in req.reason


def test_auto_is_deterministic():
    x = np.random.default_rng(9).lognormal(0.0, 1.0, 500)
    a, b = prepare("auto", x), prepare("auto", x.copy())
    assert (a.model, a.reason) == (b.model, b.reason)


def _compound(seed, severity):
    rng = np.random.default_rng(seed)
    conv = rng.random(3000) < 0.2
    draws = rng.lognormal(3.0, 1.0, 3000) if severity == "lognormal" else rng.exponential(20.0, 3000)
    return conv, np.where(conv, draws, 0.0)


@pytest.mark.parametrize("severity", ["lognormal", "exponential"])
def test_auto_compound_severity(severity):
    conv, value = _compound(31, severity)
    for data in (
        {"converted": conv, "value": value},
        FakeFrame(converted=conv, value=value),
        [{"converted": bool(c), "value": float(v)} for c, v in zip(conv, value)],
    ):
        req = prepare("auto", data)
        assert req.model == f"compound-beta-{severity}"
        assert req.counts == (int(conv.sum()), conv.size)
        np.testing.assert_array_equal(req.values, value[conv])
        assert "BIC" in req.reason


def test_auto_compound_aggregates_decide_by_keys():
    req = prepare("auto", {"users": 10, "converters": 3, "sum": 30.0})
    assert req.model == "compound-beta-exponential" and req.stats == {"n": 3.0, "sum": 30.0}
    req = prepare("auto", {"users": 10, "converters": 3, "mean_log": 1.0, "sd_log": 1.0})
    assert req.model == "compound-beta-lognormal"
    req = prepare("auto", {"users": 10, "converters": 0})
    assert req.model == "compound-beta-lognormal" and "no severity values" in req.reason


def test_auto_normal_and_lognormal_aggregates():
    req = prepare("auto", {"n": 4, "mean": 1.0, "sd": 2.0})
    assert req.model == "normal" and req.stats == {"n": 4.0, "mean": 1.0, "m2": 12.0}
    req = prepare("auto", {"n": 4, "sum_log": 4.0, "sum_log_squares": 16.0})
    assert req.model == "lognormal" and req.stats == {"n": 4.0, "mean": 1.0, "m2": 12.0}


def test_auto_values_key():
    req = prepare("auto", {"values": [3, 1, 4, 1, 5]})
    assert req.model == "poisson"


@pytest.mark.parametrize(
    "data, pattern",
    [
        ({"n": 3, "sum": 5}, r"auto cannot choose .*'exponential' and 'poisson'"),
        ({"foo": 1}, r"data has keys \{'foo'\}, which 'auto' does not recognise"),
        ([], r"values is empty"),
        ([1.0, math.nan], r"values\[1\] = nan is not finite"),
        ([1.0, None], r"values\[1\] = None is not a real number"),
        (np.zeros((2, 2)), r"shape \(2, 2\)"),
        (None, r"data is None"),
    ],
)
def test_auto_bad_data(data, pattern):
    with pytest.raises(DataError, match=pattern):
        prepare("auto", data)


def test_auto_checks_prior_and_options_against_the_chosen_model():
    with pytest.raises(ModelError, match=r"unknown prior key 'mu' for model 'beta-binomial'"):
        prepare("auto", [0, 1, 1], {"mu": 1.0})
    assert prepare("auto", [-1.0, 2.0], {"mu": 1.0}).prior["mu"] == 1.0
    with pytest.raises(ModelError, match=r"unknown option 'x' for model 'poisson'"):
        prepare("auto", [0, 2, 3], None, {"x": 1})


def test_choose_model_matches_prepare():
    x = np.random.default_rng(4).lognormal(0.0, 1.0, 300)
    model, reason = _auto.choose_model(x)
    req = prepare("auto", x)
    assert (model, reason) == (req.model, req.reason)


# ---------------------------------------------------------------------------------------- #
# Scalar validators                                                                        #
# ---------------------------------------------------------------------------------------- #


@pytest.mark.parametrize("level, want", [(0.95, 0.95), (np.float32(0.5), 0.5), (np.float64(0.99), 0.99), (1e-9, 1e-9)])
def test_validate_level_ok(level, want):
    got = _validate.validate_level(level)
    assert got == pytest.approx(want) and type(got) is float


@pytest.mark.parametrize(
    "level, pattern",
    [
        (0, r"level = 0 must be strictly between 0 and 1"),
        (1.0, r"level = 1.0 must be strictly between 0 and 1"),
        (-0.5, r"level = -0.5 must be"),
        (95, r"level = 95 must be"),
        (math.nan, r"level = nan must be"),
        (True, r"level = True is a bool"),
        ("0.9", r"level = '0.9' is not a real number"),
        (None, r"level = None is not a real number"),
        (10**400, r"must be strictly between"),
    ],
)
def test_validate_level_bad(level, pattern):
    with pytest.raises(DataError, match=pattern):
        _validate.validate_level(level)


def test_validate_level_custom_name():
    with pytest.raises(DataError, match=r"^lower = 2.0 must be"):
        _validate.validate_level(2.0, name="lower")


@pytest.mark.parametrize("n, want", [(0, 0), (10, 10), (1e6, 1_000_000), (np.int64(7), 7), (np.uint64(7), 7), (2**48, 2**48), (np.float64(3.0), 3)])
def test_validate_count_ok(n, want):
    got = _validate.validate_count(n)
    assert got == want and type(got) is int


@pytest.mark.parametrize(
    "n, pattern",
    [
        (-1, r"n = -1 must be non-negative"),
        (2.5, r"n = 2.5 is not an integer"),
        (True, r"n = True is a bool"),
        (np.bool_(True), r"n = True is a bool"),
        (2**48 + 1, r"n = 281474976710657 exceeds the limit 281474976710656"),
        (math.nan, r"n = nan is not finite"),
        (math.inf, r"n = inf is not finite"),
        ("5", r"n = '5' is not a real number"),
    ],
)
def test_validate_count_bad(n, pattern):
    with pytest.raises(DataError, match=pattern):
        _validate.validate_count(n)


def test_validate_batch_size():
    assert _validate.validate_batch_size(1) == 1
    assert _validate.validate_batch_size(1e6) == 1_000_000
    with pytest.raises(DataError, match=r"batch_size = 0 must be at least 1"):
        _validate.validate_batch_size(0)
    with pytest.raises(DataError, match=r"batch_size = -3 must be non-negative"):
        _validate.validate_batch_size(-3)
    with pytest.raises(DataError, match=r"^size = 0 must be at least 1"):
        _validate.validate_batch_size(0, name="size")
