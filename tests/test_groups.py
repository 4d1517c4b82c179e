"""fit_groups: one fit per group, the same numbers as one fit each, clear errors."""

import asyncio

import numpy as np
import pytest

import bayesworker as bw

try:
    import pandas as pd
except ImportError:  # pragma: no cover
    pd = None


def _rows(seed=0, n=2000):
    rng = np.random.default_rng(seed)
    conv = rng.random(n) < 0.2
    return {
        "country": rng.choice(["DE", "FR", "US"], n),
        "variant": rng.choice(["A", "B"], n),
        "converted": conv,
        "revenue": np.where(conv, rng.lognormal(2, 0.7, n), 0.0),
    }


def _mask(data, key):
    return (data["country"] == key[0]) & (data["variant"] == key[1])


@pytest.mark.parametrize("frame", [False, True])
def test_beta_binomial_groups_equal_single_fits(frame):
    data = _rows()
    if frame and pd is None:
        pytest.skip("pandas not installed")
    src = pd.DataFrame(data) if frame else data
    with bw.InferenceWorker(threads=2, seed=3) as w:
        fits = w.fit_groups_sync(src, by=["country", "variant"], model="beta-binomial",
                                 converted="converted")
        assert len(fits) == 6
        assert list(fits) == sorted(fits)
        for key in fits:
            m = _mask(data, key)
            one = w.run_inference_sync("beta-binomial", {"successes": int(data["converted"][m].sum()),
                                                         "trials": int(m.sum())}).posterior
            p = fits[key]
            assert p.mean()[0] == one.mean()[0]
            assert np.array_equal(p.credible_interval(0.8), one.credible_interval(0.8))
            assert p.parameters == one.parameters


def test_compound_and_value_groups_equal_single_fits():
    data = _rows(1)
    with bw.InferenceWorker(threads=2, seed=3) as w:
        fits = w.fit_groups_sync(data, by=["country", "variant"],
                                 model="compound-beta-lognormal", converted="converted",
                                 value="revenue")
        key = ("FR", "B")
        m = _mask(data, key)
        one = w.run_inference_sync("compound-beta-lognormal",
                                   {"converted": data["converted"][m],
                                    "value": data["revenue"][m]}).posterior
        assert fits[key].mean()[0] == one.mean()[0]
        assert fits[key].severity.parameters == one.severity.parameters
        pos = data["revenue"] > 0
        vals = {"g": data["country"][pos], "v": data["revenue"][pos]}
        ln = w.fit_groups_sync(vals, by="g", model="lognormal", value="v")
        one = w.run_inference_sync("lognormal", vals["v"][vals["g"] == "US"]).posterior
        assert ln["US"].mean()[0] == one.mean()[0]
        rows = ln.summary()
        if pd is not None:
            assert list(rows.index) == ["DE", "FR", "US"]
            assert rows.loc["US", "mean"] == one.mean()[0]
            assert rows.loc["US", "ci95_hi"] == one.credible_interval(0.95)[0, 1]
        else:
            assert rows[2]["group"] == "US" and rows[2]["mean"] == one.mean()[0]


def test_async_and_fallback_and_display():
    data = _rows(2, 600)
    pos = data["revenue"] > 0

    async def go():
        async with bw.InferenceWorker(threads=2, seed=5) as w:
            fits = await w.fit_groups(data, by=["variant"], model="beta-binomial",
                                      converted="converted")
            mix = await w.fit_groups({"g": data["variant"][pos], "v": data["revenue"][pos]},
                                     by="g", model="normal", value="v")
            return fits, mix, len(fits), fits["A"].mean()[0], mix["B"].mean()[0]

    fits, mix, n, a, b = asyncio.run(go())
    assert n == 2 and 0 < a < 1
    assert b == pytest.approx(data["revenue"][pos & (data["variant"] == "B")].mean())
    html = fits._repr_html_()
    assert "<table>" in html and "beta-binomial" in html and ">A<" in html
    assert "2 groups" in repr(fits)


def test_errors_name_the_group_and_row():
    data = _rows(3, 300)
    data["revenue"] = data["revenue"].copy()
    with bw.InferenceWorker(threads=1, seed=1) as w:
        with pytest.raises(KeyError, match="no group"):
            w.fit_groups_sync(data, by="variant", model="beta-binomial",
                              converted="converted")[("XX",)]
        with pytest.raises(bw.DataError, match="'nope'"):
            w.fit_groups_sync(data, by="variant", model="beta-binomial", converted="nope")
        bad = {"g": np.array(["a", "a", "b", "b"]), "v": np.array([1.0, 2.0, 3.0, -4.0])}
        with pytest.raises(bw.DataError, match=r"group 'b' \(row 3 of column 'v'\)"):
            w.fit_groups_sync(bad, by="g", model="lognormal", value="v")
        with pytest.raises(bw.DataError, match="group"):
            w.fit_groups_sync({"g": ["a", "b"], "c": [1, 0], "v": [0.0, 0.0]}, by="g",
                              model="compound-beta-lognormal", converted="c", value="v")
        assert w.stats()["posteriors"] == 0


def test_unused_posteriors_go_with_the_group_fits():
    data = _rows(4, 400)
    with bw.InferenceWorker(threads=1, seed=1) as w:
        fits = w.fit_groups_sync(data, by=["country"], model="beta-binomial",
                                 converted="converted")
        kept = fits["DE"]
        assert w.stats()["posteriors"] == 3
        del fits
        import gc
        gc.collect()
        assert w.stats()["posteriors"] == 1
        assert kept.mean()[0] > 0
