"""Data from pandas and Polars: column keywords on run_inference, errors naming the column
and row label, Decimal, nullable and pyarrow-backed columns (_frames.py, _inputs.py)."""

from __future__ import annotations

import asyncio
import io
import math
from decimal import Decimal

import numpy as np
import pytest

import bayesworker as bw
from bayesworker import _frames, _inputs

pd = pytest.importorskip("pandas")

REVENUE = [12.0, 3.5, 30.25, 8.0, 1.75, 4.5]
CONVERTED = [1, 0, 1, 1, 0, 1]


@pytest.fixture
def w():
    with bw.InferenceWorker(threads=1, seed=7) as worker:
        yield worker


def fit(w, model, data, **kw):
    return w.run_inference_sync(model, data, **kw).posterior


def refusal(w, model, data, **kw):
    with pytest.raises(bw.DataError) as info:
        w.run_inference_sync(model, data, **kw)
    assert w.error is info.value            # the worded error is also the worker's error
    return info.value


def located(exc, column, label, value_text, rule, index=None):
    """``exc`` names ``column`` and row ``label`` (and carries them and the position
    ``index``, by default the label: a RangeIndex, Polars), not the position."""
    index = label if index is None else index
    text = str(exc)
    assert text.startswith(f"column {column!r}, row {label!r}: value {value_text} "), text
    assert "values[" not in text and "data[" not in text, text
    assert (exc.column, exc.label, exc.index, exc.rule) == (column, label, index, rule)


# ---------------------------------------------------------------------------------------- #
# Errors name the column and the row label                                                 #
# ---------------------------------------------------------------------------------------- #


@pytest.mark.parametrize("index, label", [
    (None, 3),                                                  # RangeIndex
    (["a", "b", "c", "d", "e", "f"], "d"),                      # string labels
    ([10, 20, 30, 334, 40, 50], 334),                           # integer labels
    (pd.MultiIndex.from_tuples([("DE", 1), ("DE", 2), ("FR", 1), ("FR", 2), ("US", 1),
                                ("US", 2)]), ("FR", 2)),        # MultiIndex: a tuple
])
def test_a_refused_value_is_named_by_its_column_and_row_label(w, index, label):
    rev = list(REVENUE)
    rev[3] = -5.0
    df = pd.DataFrame({"conv": CONVERTED, "revenue": rev}, index=index)
    # checked by the C core (lognormal), and in Python (the compound rows)
    located(refusal(w, "lognormal", df, value="revenue"), "revenue", label, "-5.0",
            "positive", 3)
    exc = refusal(w, "compound-beta-lognormal", df, converted="conv", value="revenue")
    located(exc, "revenue", label, "-5.0", None, 3)
    assert exc.value == -5.0 and exc.field == "data['value']"
    # a Series of the frame, without keywords: the Series' name and index
    located(refusal(w, "lognormal", df["revenue"]), "revenue", label, "-5.0", "positive", 3)
    conv = df["conv"].copy()
    conv.iloc[3] = 2
    located(refusal(w, "beta-binomial", conv), "conv", label, "2", "binary", 3)


def test_a_dict_of_series_names_its_keys_and_the_series_labels(w):
    s = pd.Series([1.0, 2.0, -3.0], index=["x", "y", "z"])
    exc = refusal(w, "compound-beta-lognormal", {"converted": pd.Series([1, 1, 1], index=s.index),
                                                 "value": s})
    located(exc, "value", "z", "-3.0", None, 2)


def test_plain_input_keeps_its_positions_and_attributes(w):
    exc = refusal(w, "lognormal", [1.0, 2.0, -4.0])
    assert str(exc) == "values[2] = -4.0 must be positive for model 'lognormal'"
    assert (exc.rule, exc.index, exc.value, exc.label, exc.column) == (
        "positive", 2, -4.0, None, None)
    exc = refusal(w, "beta-binomial", np.array([0, 1, 5]))
    assert str(exc) == "values[2] = 5 is not 0 or 1"
    assert (exc.rule, exc.index, exc.value, exc.field) == ("binary", 2, 5, "values")


def test_polars_rows_are_numbered(w):
    pl = pytest.importorskip("polars")
    df = pl.DataFrame({"conv": CONVERTED, "revenue": [1.0, 2.0, 3.0, 4.0, -1.0, 5.0]})
    located(refusal(w, "lognormal", df, value="revenue"), "revenue", 4, "-1.0", "positive")
    located(refusal(w, "lognormal", df["revenue"]), "revenue", 4, "-1.0", "positive")
    exc = refusal(w, "compound-beta-lognormal", df, converted="conv", value="revenue")
    located(exc, "revenue", 4, "-1.0", None)


def test_strings_and_dates_in_a_numeric_column_name_the_row_and_value(w):
    df = pd.DataFrame({"revenue": [1.0, "n/a", 3.0]}, index=["p", "q", "r"])
    exc = refusal(w, "lognormal", df, value="revenue")
    located(exc, "revenue", "q", "'n/a'", None, 1)
    assert "is not a real number" in str(exc)
    dates = pd.DataFrame({"when": pd.to_datetime(["2024-01-02", "2024-01-03"])},
                         index=["p", "q"])
    exc = refusal(w, "lognormal", dates, value="when")
    located(exc, "when", "p", "Timestamp('2024-01-02 00:00:00')", None, 0)
    assert "dtype datetime64" in str(exc)
    # plain arrays keep their dtype message, now with the first element
    with pytest.raises(bw.DataError, match=r"values has dtype <U1; expected real numbers "
                                           r"\(values\[0\] = 'a'\)"):
        w.run_inference_sync("normal", np.array(["a", "b"]))


def test_an_error_without_a_row_names_the_column(w):
    exc = refusal(w, "exponential", pd.DataFrame({"v": [0.0, 0.0]}), value="v")
    assert str(exc) == ("all 2 values in column 'v' are 0; model 'exponential' needs at "
                        "least one positive value")
    exc = refusal(w, "lognormal", pd.DataFrame({"v": []}, dtype=float), value="v")
    assert str(exc).startswith("column 'v' is empty")
    exc = refusal(w, "compound-beta-lognormal",
                  {"c": [1, 0, 1], "v": [1.0, 2.0]}, converted="c", value="v")
    assert str(exc) == "column 'c' has 3 entries but column 'v' has 2; they must have the same length"


def test_async_refusals_are_worded_the_same(w):
    df = pd.DataFrame({"r": [1.0, -2.0]}, index=["x", "y"])

    async def go():
        with pytest.raises(bw.DataError) as info:
            await w.run_inference("lognormal", df, value="r")
        return info.value

    exc = asyncio.run(go())
    located(exc, "r", "y", "-2.0", "positive", 1)
    assert w.error is exc


# ---------------------------------------------------------------------------------------- #
# Decimal                                                                                  #
# ---------------------------------------------------------------------------------------- #


def test_decimal_values_fit_exactly_like_floats(w):
    dec = [Decimal(repr(v)) for v in REVENUE]
    for model in ("lognormal", "normal", "exponential"):
        want = fit(w, model, REVENUE).mean()
        for data in (dec, np.array(dec, dtype=object), pd.Series(dec, dtype=object)):
            assert fit(w, model, data).mean() == want
    want = fit(w, "compound-beta-lognormal", {"converted": CONVERTED, "value": REVENUE})
    got = fit(w, "compound-beta-lognormal", {"converted": CONVERTED, "value": dec})
    assert got.mean() == want.mean()
    records = [{"converted": c, "value": v} for c, v in zip(CONVERTED, dec)]
    assert fit(w, "compound-beta-lognormal", records).mean() == want.mean()
    pa = pytest.importorskip("pyarrow")
    arrow = pd.Series(dec, dtype=pd.ArrowDtype(pa.decimal128(10, 2)))
    assert fit(w, "lognormal", arrow).mean() == fit(w, "lognormal", REVENUE).mean()


@pytest.mark.parametrize("bad, same", [(Decimal("NaN"), math.nan),
                                       (Decimal("Infinity"), math.inf),
                                       (Decimal("-Infinity"), -math.inf),
                                       (Decimal("sNaN"), math.nan)])
def test_a_non_finite_decimal_is_refused_like_the_float(w, bad, same):
    for model in ("lognormal", "normal"):
        with pytest.raises(bw.DataError) as want:
            w.run_inference_sync(model, [1.0, same, 2.0])
        with pytest.raises(bw.DataError) as got:
            w.run_inference_sync(model, [Decimal(1), bad, Decimal(2)])
        assert str(got.value) == str(want.value) and "is not finite" in str(got.value)


# ---------------------------------------------------------------------------------------- #
# Nullable and pyarrow-backed dtypes                                                       #
# ---------------------------------------------------------------------------------------- #


@pytest.mark.parametrize("dtype", ["Int64", "Float64", "int64[pyarrow]", "double[pyarrow]"])
def test_nullable_and_arrow_numbers_fit_like_numpy(w, dtype):
    if "pyarrow" in dtype:
        pytest.importorskip("pyarrow")
    counts = [3, 1, 4, 1, 5, 9]
    want = fit(w, "poisson", np.array(counts, dtype=np.int64)).mean()
    assert fit(w, "poisson", pd.Series(counts, dtype=dtype)).mean() == want
    assert fit(w, "poisson", pd.DataFrame({"k": pd.array(counts, dtype=dtype)}),
               value="k").mean() == want


@pytest.mark.parametrize("dtype", ["Int64", "Float64", "int64[pyarrow]", "double[pyarrow]"])
def test_a_missing_number_is_refused_like_nan(w, dtype):
    if "pyarrow" in dtype:
        pytest.importorskip("pyarrow")
    s = pd.Series([3, None, 4], dtype=dtype, index=["a", "b", "c"], name="k")
    with pytest.raises(bw.DataError) as nan:
        w.run_inference_sync("poisson", [3.0, math.nan, 4.0])
    assert str(nan.value) == "values[1] = nan is not finite"
    located(refusal(w, "poisson", s), "k", "b", "<NA>", "finite", 1)
    located(refusal(w, "poisson", pd.DataFrame({"k": s}), value="k"), "k", "b", "<NA>",
            "finite", 1)


@pytest.mark.parametrize("dtype", ["boolean", "bool[pyarrow]"])
def test_nullable_booleans(w, dtype):
    if "pyarrow" in dtype:
        pytest.importorskip("pyarrow")
    flags = [True, False, True, True]
    want = fit(w, "beta-binomial", np.array(flags)).mean()
    assert fit(w, "beta-binomial", pd.Series(flags, dtype=dtype)).mean() == want
    df = pd.DataFrame({"c": pd.array(flags, dtype=dtype), "v": [2.0, 0.0, 3.0, 4.0]})
    assert fit(w, "beta-binomial", df, converted="c").mean() == want
    with_na = pd.Series([True, None, False], dtype=dtype, name="c")
    located(refusal(w, "beta-binomial", with_na), "c", 1, "<NA>", "binary")
    assert "is not 0 or 1" in str(refusal(w, "beta-binomial", [1.0, math.nan, 0.0]))


def test_a_missing_value_of_a_non_converter_is_allowed_as_nan_is(w):
    rev = pd.array([12.0, None, 30.25, 8.0, None, 4.5], dtype="Float64")
    want = fit(w, "compound-beta-lognormal", {"converted": CONVERTED,
                                              "value": [12.0, math.nan, 30.25, 8.0, math.nan, 4.5]})
    df = pd.DataFrame({"c": CONVERTED, "v": rev})
    assert fit(w, "compound-beta-lognormal", df, converted="c", value="v").mean() == want.mean()
    conv = list(CONVERTED)
    conv[1] = 1                                     # a converter with a missing value
    exc = refusal(w, "compound-beta-lognormal", pd.DataFrame({"c": conv, "v": rev}),
                  converted="c", value="v")
    located(exc, "v", 1, "<NA>", None)
    assert str(exc).endswith("is not finite")


def test_a_frame_read_with_the_pyarrow_backend(w):
    pytest.importorskip("pyarrow")
    csv = "conv,revenue,day\n1,12.0,mon\n0,,mon\n1,30.25,tue\n1,8.0,tue\n"
    df = pd.read_csv(io.StringIO(csv), dtype_backend="pyarrow")
    assert "pyarrow" in str(df["conv"].dtype)
    want = fit(w, "compound-beta-lognormal", {"converted": [1, 0, 1, 1],
                                              "value": [12.0, math.nan, 30.25, 8.0]})
    got = fit(w, "compound-beta-lognormal", df, converted="conv", value="revenue")
    assert got.mean() == want.mean()
    located(refusal(w, "lognormal", df, value="revenue"), "revenue", 1, "<NA>", "finite")
    located(refusal(w, "lognormal", df, value="day"), "day", 0, "'mon'", None)


# ---------------------------------------------------------------------------------------- #
# Polars                                                                                   #
# ---------------------------------------------------------------------------------------- #


def test_polars_frames_and_series_fit_like_pandas(w):
    pl = pytest.importorskip("polars")
    df = pl.DataFrame({"conv": CONVERTED, "revenue": REVENUE, "flag": [c == 1 for c in CONVERTED]})
    want = fit(w, "compound-beta-lognormal", {"converted": CONVERTED, "value": REVENUE}).mean()
    assert fit(w, "compound-beta-lognormal", df, converted="conv", value="revenue").mean() == want
    assert fit(w, "lognormal", df["revenue"]).mean() == fit(w, "lognormal", REVENUE).mean()
    assert fit(w, "beta-binomial", df, converted="flag").mean() == \
        fit(w, "beta-binomial", CONVERTED).mean()
    agg = pl.DataFrame({"s": [3, 4], "t": [10, 12]})
    assert fit(w, "beta-binomial", agg, successes="s", trials="t").mean() == \
        fit(w, "beta-binomial", {"successes": 7, "trials": 22}).mean()
    nulls = pl.DataFrame({"v": [1.0, None, 2.0]})
    located(refusal(w, "lognormal", nulls, value="v"), "v", 1, "None", "finite")
    dec = pl.Series("d", [Decimal(repr(v)) for v in REVENUE])
    assert fit(w, "lognormal", dec).mean() == fit(w, "lognormal", REVENUE).mean()


def test_polars_group_fits(w):
    pl = pytest.importorskip("polars")
    df = pl.DataFrame({"g": ["a", "a", "b", "b"], "c": [1, 0, 1, 1]})
    fits = w.fit_groups_sync(df, by="g", model="beta-binomial", converted="c")
    assert fits["b"].mean() == fit(w, "beta-binomial", [1, 1]).mean()


# ---------------------------------------------------------------------------------------- #
# Column keywords                                                                          #
# ---------------------------------------------------------------------------------------- #


def test_keywords_name_the_columns_of_raw_rows(w):
    df = pd.DataFrame({"conv": CONVERTED, "revenue": REVENUE, "other": "x"})
    want = fit(w, "compound-beta-lognormal", {"converted": CONVERTED, "value": REVENUE})
    got = fit(w, "compound-beta-lognormal", df, converted="conv", value="revenue")
    assert got.mean() == want.mean() and got.frequency.mean() == want.frequency.mean()
    assert fit(w, "lognormal", df, value="revenue").mean() == fit(w, "lognormal", REVENUE).mean()
    assert fit(w, "lognormal", df, values="revenue").mean() == fit(w, "lognormal", REVENUE).mean()
    assert fit(w, "beta-binomial", df, converted="conv").mean() == \
        fit(w, "beta-binomial", {"successes": 4, "trials": 6}).mean()
    cols = {"c": CONVERTED, "r": REVENUE}                   # a dict of columns
    assert fit(w, "compound-beta-lognormal", cols, converted="c", value="r").mean() == want.mean()
    # without keywords, a frame is read from the columns named like the fields
    named = pd.DataFrame({"converted": CONVERTED, "value": REVENUE})
    assert fit(w, "compound-beta-lognormal", named).mean() == want.mean()
    assert fit(w, "auto", df, converted="conv", value="revenue").mean() == want.mean()


def test_keywords_name_aggregate_columns_summed_over_rows(w):
    daily = pd.DataFrame({"conv": [3, 5, 2], "users": [40, 55, 25]}, index=["mo", "tu", "we"])
    want = fit(w, "beta-binomial", {"successes": 10, "trials": 120}).mean()
    assert fit(w, "beta-binomial", daily, successes="conv", trials="users").mean() == want
    one = fit(w, "beta-binomial", daily.iloc[:1], successes="conv", trials="users").mean()
    assert one == fit(w, "beta-binomial", {"successes": 3, "trials": 40}).mean()
    sums = pd.DataFrame({"n": [2, 3], "s": [5.0, 7.5]})
    assert fit(w, "exponential", sums, n="n", sum="s").mean() == \
        fit(w, "exponential", {"n": 5, "sum": 12.5}).mean()


def test_means_and_sds_of_rows_are_pooled(w):
    rng = np.random.default_rng(3)
    parts = [rng.normal(2.0, 1.5, k) for k in (4, 7, 1)]
    rows = pd.DataFrame({"n": [len(p) for p in parts], "m": [p.mean() for p in parts],
                         "s": [p.std(ddof=1) if len(p) > 1 else math.nan for p in parts]})
    want = fit(w, "normal", np.concatenate(parts))
    got = fit(w, "normal", rows, n="n", mean="m", sd="s")
    assert got.mean() == pytest.approx(want.mean(), rel=1e-12)
    assert got.variance() == pytest.approx(want.variance(), rel=1e-10)
    y = [rng.lognormal(1.0, 0.5, k) for k in (3, 5)]
    agg = pd.DataFrame({"users": [50, 60], "conv": [3, 5],
                        "ml": [np.log(p).mean() for p in y],
                        "sl": [np.log(p).std(ddof=1) for p in y]})
    raw = {"converted": [1] * 8 + [0] * 102, "value": [*np.concatenate(y), *[0.0] * 102]}
    got = fit(w, "compound-beta-lognormal", agg, users="users", converters="conv",
              mean_log="ml", sd_log="sl")
    assert got.mean() == pytest.approx(fit(w, "compound-beta-lognormal", raw).mean(),
                                       rel=1e-10)


def test_a_refused_aggregate_row_is_named(w):
    daily = pd.DataFrame({"conv": [3, 50], "users": [40, 20]}, index=["mo", "tu"])
    exc = refusal(w, "beta-binomial", daily, successes="conv", trials="users")
    assert str(exc) == "row 'tu': column 'conv' = 50 exceeds column 'users' = 20"
    assert (exc.label, exc.index) == ("tu", 1)
    bad = pd.DataFrame({"conv": [3, "x"], "users": [40, 20]}, index=["mo", "tu"])
    located(refusal(w, "beta-binomial", bad, successes="conv", trials="users"),
            "conv", "tu", "'x'", None, 1)


def test_an_unknown_keyword_lists_the_fields_of_the_model(w):
    df = pd.DataFrame({"revenue": REVENUE})
    with pytest.raises(bw.ModelError) as info:
        w.run_inference_sync("lognormal", df, revnue="revenue")
    text = str(info.value)
    assert "revnue='revenue'" in text and "'lognormal'" in text
    for name in _frames.fields("lognormal").names:
        assert f"{name}=" in text
    with pytest.raises(bw.ModelError, match=r"its data fields are converted=, value=; its "
                                            r"options are components=, max_components="):
        w.run_inference_sync("compound-beta-lognormalmixture", df, severity="revenue")
    assert _frames.fields("beta-binomial").names == ("converted", "values", "successes",
                                                     "trials")
    assert set(_frames.fields("compound-beta-exponential").names) == {
        "converted", "value", "users", "converters", "n", "sum"}


def test_a_missing_column_is_named_with_the_columns_there_are(w):
    df = pd.DataFrame({"conv": CONVERTED, "revenue": REVENUE})
    want = "column 'value' (value=) is not in the data; its columns: 'conv', 'revenue'"
    exc = refusal(w, "compound-beta-lognormal", df, converted="conv", value="value")
    assert str(exc) == want
    with pytest.raises(bw.DataError) as groups:          # fit_groups: the same words
        w.fit_groups_sync(df.assign(g=1), by="g", model="lognormal", value="value")
    assert str(groups.value) == want.replace("'revenue'", "'revenue', 'g'")


def test_keywords_that_are_not_a_form_or_not_on_a_frame(w):
    df = pd.DataFrame({"conv": CONVERTED, "revenue": REVENUE})
    exc = refusal(w, "compound-beta-lognormal", df, converted="conv")
    assert "converted= are not a data form of model 'compound-beta-lognormal'" in str(exc)
    exc = refusal(w, "lognormal", REVENUE, value="revenue")
    assert "data is a list" in str(exc)
    exc = refusal(w, "lognormal", df)
    assert "name the columns to fit" in str(exc) and "value=" in str(exc)
    # a bad prior is told before a data problem, as for any request
    with pytest.raises(bw.ModelError, match="prior"):
        w.run_inference_sync("lognormal", df, prior={"mu": "x"})
    # keywords that are options stay options; plain data keeps the options' own message
    mix = fit(w, "normal-mixture", df, value="revenue", components=1)
    assert mix.mean() == fit(w, "normal-mixture", REVENUE, components=1).mean()
    with pytest.raises(bw.ModelError, match="unknown option 'components' for model 'lognormal'"):
        w.run_inference_sync("lognormal", REVENUE, components=2)


def test_series_values_reads_numpy_backed_columns_in_place():
    s = pd.Series(np.array(REVENUE))
    assert np.shares_memory(_inputs.series_values(s), s.to_numpy())
    assert _inputs.series_values(REVENUE) is REVENUE
    arr = _inputs.as_1d(pd.Series([1, None], dtype="Int64"), "values", allow_bool=False)
    assert arr.dtype == np.float64 and math.isnan(arr[1])
