"""dirichlet-multinomial at the _core level (csrc/fam_dirichlet.c): exact Beta marginals
against scipy, Dirichlet draws whose moments match within their sampling error, draws that
do not depend on threads or batches, and clear refusals of bad input."""

import math

import numpy as np
import pytest
from scipy import stats

import bayesworker as bw
from bayesworker import _core

MODEL = "dirichlet-multinomial"
ROW = next(m for m in _core.MODELS if m["name"] == MODEL)
SHARES = _core.PART_SHARES
CAT = _core.PART_CATEGORY
REL = 1e-12


@pytest.fixture
def core():
    c = _core.Core(2, 2024)
    yield c
    c.close()


def fit(core, counts, prior=None):
    counts = np.asarray(counts, dtype=np.float64)
    prior = tuple(float(a) for a in (prior if prior is not None else np.ones(counts.size)))
    job = core.fit(MODEL, prior, values=counts)
    assert job.wait(60)
    if job.status != "ok":
        raise job.exception
    return job.result


def draw(core, post, n, start=0):
    k = core.get(post)["dirichlet"]["k"]
    out = np.empty((n, k))
    job = core.sample(post, SHARES, out, None, start=start)
    assert job.wait(120) and job.status == "ok", job.exception
    return out


def test_the_row():
    assert ROW["prior"] == (("alpha", 1.0),) and ROW["prior_per_category"]
    assert ROW["rules"] == ("finite", "nonnegative", "integer")
    assert ROW["data"] == ("values",) and not ROW["iterative"]
    assert ROW["part_codes"] == (SHARES, CAT) and _core.MAX_CATEGORIES == 1024


CASES = [
    ([3, 0, 7], [1, 1, 1]),
    ([0, 0], [0.5, 0.5]),
    ([120, 3, 0, 45, 9], [0.3, 2.5, 1.0, 1e-3, 7.0]),
    ([5000, 2, 1], [1, 1, 1]),
    (list(range(50)), list(np.linspace(0.2, 3.0, 50))),
]


def _close(got, want):
    assert got == pytest.approx(want, rel=REL, abs=0), (got, want)


@pytest.mark.parametrize("counts, prior", CASES)
def test_marginals_are_the_exact_betas(core, counts, prior):
    post = fit(core, counts, prior)
    info = core.get(post)
    a = np.asarray(prior, dtype=float) + np.asarray(counts, dtype=float)
    assert info["dirichlet"]["alpha"] == tuple(a)
    assert info["stats"] == (float(sum(counts)),)
    for i, part in enumerate(info["parts"]):
        b = math.fsum(a[j] for j in range(a.size) if j != i)
        ref = stats.beta(a[i], b)
        assert part["factors"] == ((_core.DIST_BETA, a[i], part["factors"][0][2], 0.0, 0.0),)
        _close(part["factors"][0][2], b)
        _close(part["mean"], ref.mean())
        _close(part["variance"], ref.var())
        for level, lo, hi in part["intervals"]:
            _close(lo, ref.ppf((1 - level) / 2))
            _close(hi, ref.ppf((1 + level) / 2))
        for level in (0.5, 0.99, 0.999):
            lo, hi = core.interval_now(post, CAT + i, level)
            _close(lo, ref.ppf((1 - level) / 2))
            _close(hi, ref.ppf((1 + level) / 2))
    job = core.interval(post, CAT + len(counts) - 1, 0.9, None)
    assert job.wait(60) and job.result == core.interval_now(post, CAT + len(counts) - 1, 0.9)


def test_draw_moments_match_within_their_sampling_error(core):
    counts, prior = [30, 5, 0, 12], [1.0, 1.0, 0.5, 2.0]
    post = fit(core, counts, prior)
    a = np.add(counts, prior)
    a0 = a.sum()
    n = 200_000
    x = draw(core, post, n)
    assert x.shape == (n, 4) and np.isfinite(x).all() and (x >= 0).all() and (x <= 1).all()
    np.testing.assert_allclose(x.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    mean = a / a0
    var = a * (a0 - a) / (a0**2 * (a0 + 1))
    # 5 standard errors: of a mean sqrt(var / n); of a variance var sqrt((kurt + 2) / n)
    # with the Beta marginal's excess kurtosis
    kurt = np.array([stats.beta(ai, a0 - ai).stats(moments="k") for ai in a], dtype=float)
    assert np.all(np.abs(x.mean(axis=0) - mean) < 5 * np.sqrt(var / n))
    assert np.all(np.abs(x.var(axis=0) - var) < 5 * var * np.sqrt((kurt + 2) / n))
    # a covariance, against its empirical standard error
    c = x - x.mean(axis=0)
    prod = c[:, 0] * c[:, 3]
    cov = -a[0] * a[3] / (a0**2 * (a0 + 1))
    assert abs(prod.mean() - cov) < 5 * prod.std() / math.sqrt(n)


def test_tiny_alphas_give_proper_vectors(core):
    post = fit(core, [0, 0, 0], [1e-3, 2e-3, 5e-4])
    x = draw(core, post, 50_000)
    assert np.isfinite(x).all()
    np.testing.assert_allclose(x.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    # nearly every draw puts nearly all the mass on one category, in proportion to alpha
    top = np.bincount(x.argmax(axis=1), minlength=3) / x.shape[0]
    a = np.array([1e-3, 2e-3, 5e-4])
    assert np.all(np.abs(top - a / a.sum()) < 5 * np.sqrt(a / a.sum() / x.shape[0]) + 1e-3)


def test_draws_do_not_depend_on_threads_batches_or_the_calling_thread():
    counts, prior = [4, 9, 1, 0, 6], [1, 1, 1, 1, 0.3]
    ref = None
    for threads in (0, 1, 3):
        c = _core.Core(threads, 77)
        try:
            post = fit(c, counts, prior)
            whole = draw(c, post, 70_001)
            parts = np.concatenate([draw(c, post, 1, start=0), draw(c, post, 32_768, start=1),
                                    draw(c, post, 37_232, start=32_769)])
            now = c.sample_now(post, SHARES, np.empty(5 * 100))     # a flat out: n * k
            assert np.array_equal(whole, parts)
            assert np.array_equal(now.reshape(100, 5), whole[:100])
            if ref is None:
                ref = whole
            assert np.array_equal(whole, ref), threads
        finally:
            c.close()
    # another seed, other draws
    c = _core.Core(1, 78)
    try:
        assert not np.array_equal(draw(c, fit(c, counts, prior), 10), ref[:10])
    finally:
        c.close()


def test_the_stream_continues_and_is_reserved(core):
    post = fit(core, [1, 2, 3])
    out = np.empty((10, 3))
    j = core.sample(post, SHARES, out, None)
    assert j.wait(60) and j.status == "ok"
    assert core.reserve(post, SHARES, 5) == 10
    assert core.get(post)["dirichlet"]["cursor"] == 15
    assert np.array_equal(out, draw(core, post, 10, start=0))


@pytest.mark.parametrize("counts, rule, index", [
    ([3, -1, 2], "nonnegative", 1),
    ([3, 1.5, 2], "integer", 1),
    ([3, 1, math.nan], "finite", 2),
    ([3, 1, math.inf], "finite", 2),
])
def test_bad_counts_are_data_errors_naming_the_category(core, counts, rule, index):
    with pytest.raises(bw.DataError) as e:
        fit(core, counts)
    assert (e.value.rule, e.value.index) == (rule, index)
    assert f"value at index {index}" in str(e.value)


@pytest.mark.parametrize("counts, prior, match", [
    ([1, 2, 3, 4], [1, 1, 1], "the prior has 3 alphas but the counts have 4 categories"),
    ([1, 2], [1, 1, 1], "the prior has 3 alphas but the counts have 2 categories"),
    ([5], [1], "takes the counts of 2 to 1024 categories, not 1"),
    ([0] * 1025, [1] * 1025, "takes the counts of 2 to 1024 categories, not 1025"),
    ([1, 2, 3], [1, 0, 1], r"prior alpha\[1\] = 0 must be finite and > 0"),
    ([1, 2, 3], [1, 1, -math.inf], r"prior alpha\[2\] = -inf must be finite"),
])
def test_bad_requests_are_refused_before_any_work(core, counts, prior, match):
    with pytest.raises(bw.ModelError, match=match):
        fit(core, counts, prior)
    assert core.live_jobs() == 0


def test_a_request_must_give_counts(core):
    with pytest.raises(bw.ModelError, match="takes the counts"):
        core.fit(MODEL, (1.0, 1.0))
    with pytest.raises(bw.ModelError, match="takes no successes"):
        core.fit(MODEL, (1.0, 1.0), values=np.ones(2), successes=1, trials=2)


def test_parts_that_do_not_exist_are_refused(core):
    post = fit(core, [1, 2, 3])
    with pytest.raises(ValueError, match="whole number of draws of 3"):
        core.sample(post, SHARES, np.empty(10), None)
    with pytest.raises(bw.ModelError, match="has no part 33 to draw"):
        core.sample(post, CAT + 1, np.empty(3), None)
    with pytest.raises(bw.ModelError, match="has no part 35"):
        core.interval_now(post, CAT + 3, 0.5)


def test_the_largest_k_fits_and_its_record_grows_with_k(core):
    small = core.get(fit(core, [1, 2]))["bytes"]
    big_post = fit(core, np.arange(1024) % 3)
    big = core.get(big_post)["bytes"]
    assert big > 250 * small > 0
    x = draw(core, big_post, 64)
    np.testing.assert_allclose(x.sum(axis=1), 1.0, rtol=0, atol=1e-12)
