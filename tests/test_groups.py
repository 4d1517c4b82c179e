"""fit_groups: one fit per group, the same numbers as one fit each, clear errors."""

import asyncio

import numpy as np
import pytest

import bayesworker as bw
from bayesworker._bridge import Start

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
    assert "<table" in html and "beta-binomial" in html and ">A<" in html
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


# ---------------------------------------------------------------------------------------- #
# GroupFits.compare, and the displays of comparisons (through _display.to_html)            #
# ---------------------------------------------------------------------------------------- #

def _three_arms(seed=7, n=6000):
    data = _rows(seed, n)
    data["variant"] = np.random.default_rng(seed + 1).choice(["A", "B", "C"], n)
    return data


def test_group_compare_is_one_comparison_per_remaining_group():
    data = _three_arms()
    with bw.InferenceWorker(threads=2, seed=3) as w:
        fits = w.fit_groups_sync(data, by=["country", "variant"],
                                 model="compound-beta-lognormal", converted="converted",
                                 value="revenue")
        cmps = fits.compare_sync(arm="variant", control="B")
        assert list(cmps) == ["DE", "FR", "US"] and len(cmps) == 3
        assert cmps.columns == ("country",) and cmps.arm == "variant"
        for country in cmps:
            one = w.compare_sync({v: fits[(country, v)] for v in "ABC"}, control="B")
            got = cmps[country]
            assert got.arms == ("A", "B", "C") and got.control == "B"
            assert got.prob_best() == one.prob_best()
            assert got.expected_loss() == one.expected_loss()
            assert got.lift() == one.lift()
            assert got._arm_posteriors()["C"] is fits[(country, "C")]
        lower = fits.compare_sync(arm="variant", control="B", higher_is_better=False)
        for country in lower:
            assert lower[country].prob_best()["A"] == pytest.approx(
                w.compare_sync({v: fits[(country, v)] for v in "ABC"}, control="B",
                               higher_is_better=False).prob_best()["A"], abs=0)
        summary = cmps.summary()
        if pd is not None:
            assert summary.index.names == ["country", "arm"]
            assert summary.shape[0] == 9
            assert summary.loc[("FR", "C"), "prob_best"] == cmps["FR"].prob_best()["C"]
            assert bool(summary.loc[("US", "B"), "control"])
        else:
            assert len(summary) == 9 and summary[0]["country"] == "DE"


def test_group_compare_gathers_every_comparison_before_waiting():
    data = _three_arms(8, 3000)
    with bw.InferenceWorker(threads=2, seed=3) as w:
        fits = w.fit_groups_sync(data, by=["variant", "country"], model="beta-binomial",
                                 converted="converted")
        request = fits._compare_request("variant", "A", True, None)
        steps = []
        step = next(request)
        while isinstance(step, Start):
            steps.append(step)
            step = request.send(None)
        request.close()
        assert len(steps) == 3                # the three countries' comparison jobs started
        assert step is steps[0].call          # before the first is waited for


def test_group_compare_async_with_the_arm_first_and_no_group_left():
    data = _three_arms(9, 3000)

    async def go():
        async with bw.InferenceWorker(threads=2, seed=5) as w:
            fits = await w.fit_groups(data, by=["variant", "country"],
                                      model="beta-binomial", converted="converted")
            by_country = await fits.compare(arm="variant", control="A")
            only = await w.fit_groups(data, by="variant", model="beta-binomial",
                                      converted="converted")
            whole = await only.compare(control="C")
            direct = await w.compare({v: only[v] for v in "ABC"}, control="C")
            return by_country, whole, direct

    by_country, whole, direct = asyncio.run(go())
    assert list(by_country) == ["DE", "FR", "US"]
    assert list(whole) == [()] and whole.columns == ()
    assert whole[()].prob_best() == direct.prob_best()
    if pd is not None:
        assert list(whole.summary().index) == ["A", "B", "C"]


def test_group_compare_errors_name_the_column_and_group():
    data = _rows(10, 600)
    data["variant"] = np.where((data["country"] == "FR") & (data["variant"] == "A"), "B",
                               data["variant"])
    with bw.InferenceWorker(threads=1, seed=1) as w:
        fits = w.fit_groups_sync(data, by=["country", "variant"], model="beta-binomial",
                                 converted="converted")
        with pytest.raises(bw.DataError, match=r"arm = 'arm' is not one of the columns.*"
                                               r"'country', 'variant'"):
            fits.compare_sync(arm="arm")
        with pytest.raises(bw.ModelError, match=r"group 'FR' has only the variant \['B'\]"):
            fits.compare_sync(arm="variant", control="B")
        small = {"country": ["DE", "DE", "FR", "FR", "FR"], "variant": ["A", "B", "B", "C", "C"],
                 "converted": [1, 0, 1, 0, 1]}
        fits = w.fit_groups_sync(small, by=["country", "variant"], model="beta-binomial",
                                 converted="converted")
        with pytest.raises(bw.ModelError, match=r"group 'FR' has no control arm 'A'"):
            fits.compare_sync(arm="variant", control="A")


def test_comparison_and_group_displays_use_the_shared_table():
    with bw.InferenceWorker(threads=1, seed=1) as w:
        a = w.run_inference_sync("beta-binomial", {"successes": 65, "trials": 1000}).posterior
        b = w.run_inference_sync("beta-binomial", {"successes": 90, "trials": 1300}).posterior
        cmp = w.compare_sync({"A": a, "B": b})
        html = cmp._repr_html_()
        assert 'class="bw-table"' in html and "A (control)" in html
        decision = cmp.decision()
        assert decision["action"] in html and "sample ratio mismatch" in html
        assert "warning" in decision
        assert html.count("sample ratio mismatch") == 1      # a note of its own, once
        balanced = w.compare_sync({"A": a, "B": w.run_inference_sync(
            "beta-binomial", {"successes": 70, "trials": 1000}).posterior})
        html = balanced._repr_html_()
        assert "sample ratio mismatch" not in html and "decision: " in html
        assert f"{balanced.prob_best()['B']:.4g}" in html
        data = _three_arms(11, 3000)
        fits = w.fit_groups_sync(data, by=["country", "variant"], model="beta-binomial",
                                 converted="converted")
        html = fits._repr_html_()
        assert 'class="bw-table"' in html and "<th" in html and ">country<" in html
        assert ">variant<" in html and "95% interval" in html
        cmps = fits.compare_sync(arm="variant", control="A")
        html = cmps._repr_html_()
        assert 'class="bw-table"' in html and ">decision<" in html
        assert html.count("keep running") + html.count("ship") >= 3
        assert "3 comparisons of variant by country" in html
        assert "3 comparisons" in repr(cmps)
