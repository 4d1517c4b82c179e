"""Notebook display (one-line reprs, HTML tables), summaries as data, repeatable sampling."""

import asyncio
import re
import sys

import numpy as np
import pytest

import bayesworker as bw
from bayesworker._display import MEAN_OUTSIDE, to_html


@pytest.fixture(scope="module")
def worker():
    with bw.InferenceWorker(threads=1, seed=21) as w:
        yield w


def tiny_segment():
    """2 converters among 200 users: a lognormal severity with a huge truncated mean."""
    value = np.zeros(200)
    value[:2] = [0.5, 3.0]
    return {"converted": (value > 0).astype(float), "value": value}


def columns_of(html):
    return re.findall(r"<th[^>]*>([^<]*)</th>", html)


def assert_themeable(html):
    """No colour of its own: everything inherits the notebook theme."""
    assert not re.search(r"#[0-9a-fA-F]{3,6}\b|rgb|hsl|background", html)
    assert not re.search(r"(?<!current)color", html, re.IGNORECASE)


def test_proxy_html_and_repr(worker):
    res = worker.run_inference_sync("beta-binomial", {"successes": 65, "trials": 1000})
    post = res.posterior
    html = post._repr_html_()
    assert_themeable(html)
    assert columns_of(html) == ["quantity", "mean", "median", "sd", "95% interval"]
    lo, hi = post.credible_interval(0.95)[0]
    assert f"[{lo:.4g}, {hi:.4g}]" in html and f"{post.median()[0]:.4g}" in html
    assert "\u2020" not in html
    for obj in (post, res, res.diagnostics):
        assert "\n" not in repr(obj) and len(repr(obj)) < 200
    html = res._repr_html_()
    assert columns_of(html) == ["quantity", "model", "mean", "median", "sd", "95% interval",
                                "n", "prior", "converged", "iterations", "runtime"]
    assert ">1000<" in html and "alpha=1, beta=1" in html and ">yes<" in html
    d = res.diagnostics._repr_html_()
    assert "converged" in columns_of(d) and "runtime" in columns_of(d)
    post.dispose_sync()
    assert "gone" in post._repr_html_() and "gone" in repr(post)


def test_mean_outside_its_interval_is_flagged(worker):
    res = worker.run_inference_sync("compound-beta-lognormal", tiny_segment())
    sev = res.posterior.severity
    lo, hi = sev.credible_interval(0.95)[0]
    assert sev.mean()[0] > 1e6 * hi          # the heavy-tailed truncated mean
    html = sev._repr_html_()
    cols = columns_of(html)
    assert cols.index("median") < cols.index("mean")
    assert html.count("\u2020") == 2 and MEAN_OUTSIDE in html     # the mark and its note
    assert repr(sev).index("median=") < repr(sev).index("mean=")
    table = res._repr_html_()
    assert table.count('class="bw-flag"') == 2        # revenue and severity, not frequency


def test_every_proxy_kind_displays(worker):
    x = np.r_[np.random.default_rng(0).normal(-5, 1, 300), np.random.default_rng(1).normal(5, 1, 300)]
    rng = np.random.default_rng(2)
    conv = (rng.random(300) < 0.5).astype(float)
    value = np.where(conv > 0, rng.lognormal(1, 0.5, 300), 0.0)
    posts = [
        worker.run_inference_sync("normal-mixture", x, components=2).posterior,
        worker.run_inference_sync("compound-beta-lognormalmixture",
                                  {"converted": conv, "value": value}, components=1).posterior,
        worker.run_inference_sync("dirichlet-multinomial", {"counts": [1, 2, 3]}).posterior,
    ]
    quantities = [["component 1", "component 2", "mixture mean"],
                  ["revenue", "frequency", "severity: component 1", "severity: mixture mean"],
                  ["0", "1", "2"]]
    for post, want in zip(posts, quantities):
        html = post._repr_html_()
        assert_themeable(html)
        rows = re.findall(r"<tr><td[^>]*>([^<]*)</td>", html)
        assert rows == want
        assert "\n" not in repr(post)


def test_to_html_rows_of_dicts():
    html = to_html([{"group": "DE", "mean": 1.0, "ci_95_lower": 0.5, "ci_95_upper": 2.0,
                     "converged": False, "runtime": 0.0123},
                    {"group": "<FR>", "mean": 3.0, "ci_95_lower": 2.5, "ci_95_upper": 2.9}],
                   caption="groups", notes=["a note"])
    assert columns_of(html) == ["group", "mean", "95% interval", "converged", "runtime"]
    assert "&lt;FR&gt;" in html and "12.3 ms" in html and ">no<" in html and "a note" in html
    assert html.count('class="bw-flag"') == 1          # 3.0 outside [2.5, 2.9]


def test_summaries_are_frames(worker):
    pd = pytest.importorskip("pandas")
    res = worker.run_inference_sync("compound-beta-exponential", tiny_segment())
    frame = res.posterior.summary(levels=(0.9, 0.95))
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.index) == ["revenue", "frequency", "severity"]
    assert list(frame.columns) == ["mean", "median", "sd", "ci_90_lower", "ci_90_upper",
                                   "ci_95_lower", "ci_95_upper"]
    sev = res.posterior.severity
    assert frame.loc["severity", "ci_90_upper"] == sev.credible_interval(0.9)[0, 1]
    assert frame.loc["severity", "median"] == sev.median()[0]
    assert frame.loc["frequency", "sd"] == res.posterior.frequency.std()[0]
    full = res.summary()
    assert {"model", "n", "prior", "converged", "iterations", "runtime"} <= set(full.columns)
    assert (full["n"] == 200).all() and full["converged"].all()
    with pytest.raises(ValueError):
        res.posterior.summary(levels=(1.5,))


def test_summaries_without_pandas(worker, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    res = worker.run_inference_sync("beta-binomial", {"successes": 5, "trials": 50})
    rows = res.posterior.summary()
    assert isinstance(rows, list) and rows[0]["quantity"] == "beta-binomial"
    assert rows[0]["ci_95_lower"] == res.posterior.credible_interval()[0, 0]
    assert res.summary()[0]["n"] == 50


def test_start_draws_positions_without_moving_the_cursor(worker):
    post = worker.run_inference_sync("beta-binomial", {"successes": 5, "trials": 50}).posterior
    again = post.sample_sync(5, start=10)
    assert np.array_equal(again, post.sample_sync(5, start=10))
    stream = post.sample_sync(20)                       # the cursor was never moved
    assert np.array_equal(stream[10:15], again)
    assert np.array_equal(asyncio.run(post.sample(3, start=17)), stream[17:])
    assert np.array_equal(post.sample_sync(4), post.sample_sync(24, start=0)[20:])
    big = post.sample_sync(5000, start=7)               # a long one, on the workers
    assert np.array_equal(big[:13], post.sample_sync(13, start=7))
    d = worker.run_inference_sync("dirichlet-multinomial", {"counts": [1, 2, 3]}).posterior
    first = d.sample_sync(6)
    assert np.array_equal(d.sample_sync(3, start=2), first[2:5])
    assert d.sample_sync(3, start=2).shape == (3, 3)
    with pytest.raises(bw.DataError, match="start"):
        post.sample_sync(3, start=-1)
