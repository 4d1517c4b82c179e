"""One error path (csrc/bw_status.h, module.c error_exception): every failure of the C core
reaches Python as the exception its status names, with a message a user understands and
never an internal status number or a scaled level."""

import math
import pathlib
import re

import numpy as np
import pytest

import bayesworker as bw
from bayesworker import _core

CSRC = pathlib.Path(__file__).resolve().parents[1] / "csrc"


@pytest.fixture
def core():
    c = _core.Core(1, 7)
    yield c
    c.close()


def fit(core, model, prior, values=None, stats=None, successes=0, trials=0):
    job = core.fit(model, prior, successes=successes, trials=trials,
                   values=None if values is None else np.asarray(values, dtype=np.float64),
                   stats=stats)
    assert job.wait(60)
    return job


NORMAL, LOGNORMAL, EXPONENTIAL, POISSON = 2, 3, 4, 5
NIG = (0.0, 1e-6, 1.0, 1.0)


@pytest.mark.parametrize("model, values, rule, index, text", [
    (NORMAL, [1.0, math.nan, 3.0], "finite", 1, "value at index 1 = nan is not finite"),
    (LOGNORMAL, [1.0, 2.0, -2.0], "positive", 2, "value at index 2 = -2 is not positive"),
    (EXPONENTIAL, [1.0, -0.5], "nonnegative", 1, "value at index 1 = -0.5 is negative"),
    (POISSON, [1.0, 2.0, 3.0, 2.5], "integer", 3, "value at index 3 = 2.5 is not a whole"),
    (EXPONENTIAL, [0.0, 0.0, 0.0], "some_positive", 3, "all 3 values are 0"),
])
def test_a_refused_value_is_a_data_error_naming_rule_index_and_value(core, model, values, rule,
                                                                     index, text):
    prior = NIG if model in (NORMAL, LOGNORMAL) else (1.0, 1.0)
    job = fit(core, model, prior, values)
    exc = job.exception
    assert job.status == "failed" and isinstance(exc, bw.DataError)
    assert (exc.rule, exc.index) == (rule, index)
    assert text in str(exc) and str(exc) == job.error
    if rule != "some_positive":
        assert exc.value == values[index] or (math.isnan(exc.value) and math.isnan(values[index]))
    assert exc.rule in _core.VALUE_RULES


def test_the_first_refused_value_is_named_whatever_the_blocks():
    x = np.ones(3 * _core.FIT_BLOCK)
    x[[_core.FIT_BLOCK + 5, 2 * _core.FIT_BLOCK + 1]] = -1.0
    for threads in (0, 2):
        c = _core.Core(threads, 1)
        try:
            exc = fit(c, LOGNORMAL, NIG, x).exception
            assert (exc.rule, exc.index, exc.value) == ("positive", _core.FIT_BLOCK + 5, -1.0)
        finally:
            c.close()


def test_overflowing_squares_say_which_value_overflows_what(core):
    exc = fit(core, NORMAL, NIG, [1e200, -1e200, 3.0]).exception
    assert isinstance(exc, bw.ModelError) and not isinstance(exc, bw.DataError)
    assert "sum of squared deviations of the values" in str(exc)
    assert "overflows float64" in str(exc) and "index 1 = -1e+200" in str(exc)
    assert (exc.index, exc.value) == (1, -1e200)


def test_an_overflowing_sum_names_the_value(core):
    exc = fit(core, EXPONENTIAL, (1.0, 1.0), [1.0, 1e308, 1e308, 2.0]).exception
    assert isinstance(exc, bw.ModelError)
    assert "sum of the values overflows float64" in str(exc) and "index 2 = 1e+308" in str(exc)


def test_an_overflowing_update_names_the_parameter_and_the_statistics(core):
    exc = fit(core, NORMAL, NIG, stats=(3.0, 1e200, 2.0)).exception
    assert isinstance(exc, bw.ModelError)
    assert "posterior's beta is inf" in str(exc) and "mean = 1e+200" in str(exc)


def test_a_summary_failure_names_the_summary_and_the_posterior(core):
    # a posterior that overflows no parameter but has none of its summaries: a Gamma of
    # shape 1e-300 and rate 1e300 (the rate's mean underflows to 0 ...)
    # (a one-part fit leaves its intervals for their first use: they fail there)
    job = fit(core, POISSON, (1e-300, 1e300), [0.0])
    exc = job.exception
    if exc is None:
        with pytest.raises(bw.ModelError) as info:
            core.interval_now(job.result, 0, 0.95)
        exc = info.value
    assert isinstance(exc, bw.ModelError), job.status
    assert "of the posterior Gamma(shape" in str(exc) and "cannot be computed" in str(exc)


def test_a_posterior_not_in_the_store_is_disposed_error(core):
    job = fit(core, 1, (1.0, 1.0), successes=3, trials=10)
    post = job.result
    assert core.remove(post)
    out = np.empty(10)
    for call in (lambda: core.get(post), lambda: core.reserve(post, 0, 5),
                 lambda: core.sample(post, 0, np.empty(10_000), None),
                 lambda: core.sample_now(post, 0, out),
                 lambda: core.interval(post, 0, 0.5, None),
                 lambda: core.interval_now(post, 0, 0.5)):
        with pytest.raises(bw.DisposedError, match=f"posterior {post} is not in the store"):
            call()


def test_a_missing_part_is_a_model_error(core):
    post = fit(core, 1, (1.0, 1.0), successes=3, trials=10).result
    with pytest.raises(bw.ModelError, match="has no part 2"):
        core.interval_now(post, 2, 0.5)


def test_the_public_api_reports_the_overflow():
    with bw.InferenceWorker(threads=0, seed=1) as w:
        with pytest.raises(bw.ModelError, match=r"overflows float64 .*index 1 = -1e\+200"):
            w.run_inference_sync("normal", [1e200, -1e200, 3.0])


def test_no_message_carries_a_status_number_or_a_scaled_level():
    """The C sources format no status number and no level scaled to an integer."""
    bad = re.compile(r'"[^"]*(\(status %|status %d|/1e6|%d/1e)[^"]*"')
    hits = [f"{p.name}: {m.group(0)}" for p in sorted(CSRC.glob("*.c"))
            for m in bad.finditer(p.read_text())]
    assert not hits, hits
