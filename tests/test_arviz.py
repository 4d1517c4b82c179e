"""ArviZ export: shapes, names, means within Monte Carlo error, repeatable draws."""

import sys
import warnings

import numpy as np
import pytest

import bayesworker as bw

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    az = pytest.importorskip("arviz")

DRAWS, CHAINS = 2000, 4
N = DRAWS * CHAINS
Z = 5.0         # a mean is within Z Monte Carlo standard errors of the exact one


def fit(worker, model, data, **options):
    return worker.run_inference_sync(model, data, **options).posterior


def revenue(seed, n=3000, rate=0.1):
    rng = np.random.default_rng(seed)
    conv = (rng.random(n) < rate).astype(float)
    return {"converted": conv, "value": np.where(conv > 0, rng.lognormal(1, 0.5, n), 0.0)}


def assert_mean_within_mc_error(values, exact_mean, exact_sd):
    """The draws' mean is the exact mean up to Z standard errors sd / sqrt(n) (the draws
    are independent: the chains are blocks of one exact sampler)."""
    n = values.size
    assert abs(values.mean() - exact_mean) < Z * exact_sd / np.sqrt(n)


def test_one_posterior(worker):
    post = fit(worker, "beta-binomial", {"successes": 30, "trials": 100})
    data = post.to_arviz(draws=DRAWS, chains=CHAINS)
    assert isinstance(data, az.InferenceData)
    var = data.posterior["conversion_rate"]
    assert var.dims == ("chain", "draw") and var.shape == (CHAINS, DRAWS)
    assert_mean_within_mc_error(var.values, post.mean()[0], post.std()[0])
    # the chains are consecutive blocks of the stream read from position 0
    assert np.array_equal(var.values.ravel(), post.sample_sync(N, start=0))
    assert data.attrs["model"] == "beta-binomial" and data.attrs["stream_start"] == 0
    summary = az.summary(data)
    assert list(summary.index) == ["conversion_rate"]
    assert summary.loc["conversion_rate", "mean"] == pytest.approx(post.mean()[0], abs=0.002)
    assert summary.loc["conversion_rate", "r_hat"] == pytest.approx(1.0, abs=0.01)


def test_repeatable_and_seeded_blocks(worker):
    post = fit(worker, "poisson", np.random.default_rng(1).poisson(3.0, 50))
    one = post.to_arviz(draws=500, chains=2).posterior["rate"].values
    post.sample_sync(1000)                      # moving the stream's cursor changes nothing
    assert np.array_equal(post.to_arviz(draws=500, chains=2).posterior["rate"].values, one)
    other = post.to_arviz(draws=500, chains=2, seed=3).posterior["rate"].values
    assert np.array_equal(other.ravel(), post.sample_sync(1000, start=3 * 1000))
    assert not np.array_equal(other, one)
    with pytest.raises(bw.DataError, match="draws"):
        post.to_arviz(draws=0)
    with pytest.raises(bw.DataError, match="chains"):
        post.to_arviz(chains=1.5)
    with pytest.raises(bw.DataError, match="seed"):
        post.to_arviz(seed=-1)


@pytest.mark.parametrize("case", ["normal", "revenue", "severity", "mixture"])
def test_quantities_and_their_names(worker, case):
    rng = np.random.default_rng(4)
    post = {
        "normal": lambda: fit(worker, "normal", rng.normal(2.0, 1.0, 100)),
        "revenue": lambda: fit(worker, "compound-beta-lognormal", revenue(2)),
        "severity": lambda: fit(worker, "compound-beta-lognormal", revenue(3)).severity,
        "mixture": lambda: fit(worker, "normal-mixture",
                               np.r_[rng.normal(-3, 1, 300), rng.normal(3, 1, 500)],
                               components=2),
    }[case]()
    name = {"normal": "mean", "revenue": "revenue_per_user", "severity": "value_per_converter",
            "mixture": "mixture_mean"}[case]
    values = post.to_arviz(draws=DRAWS, chains=CHAINS).posterior[name].values
    assert values.shape == (CHAINS, DRAWS)
    if case == "mixture":           # its draws are of the mixture mean
        mm = post.mixture_mean()
        assert_mean_within_mc_error(values, mm["mean"], np.sqrt(mm["variance"]))
    else:
        assert_mean_within_mc_error(values, post.mean()[0], post.std()[0])


def test_dirichlet_shares_get_a_category_dimension(worker):
    post = fit(worker, "dirichlet-multinomial", {"red": 12, "green": 3, "blue": 6})
    data = post.to_arviz(draws=DRAWS, chains=CHAINS)
    share = data.posterior["share"]
    assert share.dims == ("chain", "draw", "category")
    assert share.shape == (CHAINS, DRAWS, 3)
    assert list(share.coords["category"].values) == ["red", "green", "blue"]
    assert np.allclose(share.values.sum(axis=-1), 1.0)
    for i in range(3):
        assert_mean_within_mc_error(share.values[..., i], post.mean()[i], post.std()[i])
    assert len(az.summary(data)) == 3


def test_comparison_exports_its_arms(worker):
    pa = fit(worker, "beta-binomial", {"successes": 65, "trials": 1000})
    pb = fit(worker, "beta-binomial", {"successes": 80, "trials": 1000})
    cmp = worker.compare_sync({"A": pa, "B": pb})
    data = cmp.to_arviz(draws=DRAWS, chains=CHAINS)
    var = data.posterior["conversion_rate"]
    assert var.dims == ("chain", "draw", "arm") and var.shape == (CHAINS, DRAWS, 2)
    assert list(var.coords["arm"].values) == ["A", "B"]
    for i, post in enumerate((pa, pb)):
        assert np.array_equal(var.values[..., i].ravel(), post.sample_sync(N, start=0))
    assert list(az.summary(data).index) == ["conversion_rate[A]", "conversion_rate[B]"]
    again = cmp.to_arviz(draws=DRAWS, chains=CHAINS).posterior["conversion_rate"].values
    assert np.array_equal(again, var.values)


def test_group_fits_export_their_groups(worker):
    rng = np.random.default_rng(6)
    n = 3000
    data = {"country": rng.choice(["DE", "FR"], n), "variant": rng.choice(["A", "B"], n),
            "converted": rng.random(n) < 0.2}
    fits = worker.fit_groups_sync(data, by=["country", "variant"], model="beta-binomial",
                                  converted="converted")
    exported = fits.to_arviz(draws=DRAWS, chains=CHAINS)
    var = exported.posterior["conversion_rate"]
    assert var.dims == ("chain", "draw", "group") and var.shape == (CHAINS, DRAWS, 4)
    assert list(var.coords["group"].values) == ["DE, A", "DE, B", "FR, A", "FR, B"]
    for i, key in enumerate(fits):
        assert_mean_within_mc_error(var.values[..., i], fits[key].mean()[0],
                                    fits[key].std()[0])


def test_missing_arviz_says_how_to_install(worker, monkeypatch):
    post = fit(worker, "beta-binomial", {"successes": 3, "trials": 10})
    monkeypatch.setitem(sys.modules, "arviz", None)
    with pytest.raises(ImportError, match=r"pip install bayesworker\[arviz\]"):
        post.to_arviz()
