"""Progress bars: tqdm driven by the progress reports, with a fake tqdm and a fake clock."""

import asyncio
import sys
import types
import warnings

import numpy as np
import pytest

import bayesworker as bw
from bayesworker import _progressbar


class FakeTqdm:
    made: list["FakeTqdm"] = []

    def __init__(self, total=None, desc=None, unit=None):
        self.total, self.desc, self.unit, self.n = total, desc, unit, 0
        self.closed = False
        FakeTqdm.made.append(self)

    def update(self, k):
        assert k > 0
        self.n += k

    def refresh(self):
        pass

    def close(self):
        self.closed = True


@pytest.fixture
def fake_tqdm(monkeypatch):
    FakeTqdm.made = []
    monkeypatch.setitem(sys.modules, "tqdm", types.ModuleType("tqdm"))
    for name in ("tqdm.auto", "tqdm.std"):      # the widget bar, and the text bar
        mod = types.ModuleType(name)
        mod.tqdm = FakeTqdm
        monkeypatch.setitem(sys.modules, name, mod)
    yield FakeTqdm
    bw.set_options(progress=False)


@pytest.fixture(scope="module")
def worker():
    with bw.InferenceWorker(threads=1, seed=5) as w:
        yield w


def test_fit_and_sample_bars(worker, fake_tqdm):
    seen = []
    res = worker.run_inference_sync("normal", np.arange(100_000.0), progress=True,
                                    on_progress=seen.append)
    bar, = fake_tqdm.made
    assert bar.desc == "fit normal" and bar.closed and bar.n == bar.total > 0
    assert seen and seen[0].stage == "fitting"          # the caller's listener still runs
    post = res.posterior
    draws = post.sample_sync(200_000, progress=True)
    bar = fake_tqdm.made[-1]
    assert bar.desc == "sample normal" and bar.closed and bar.n == bar.total
    assert np.array_equal(asyncio.run(post.sample(10, start=0, progress=True)), draws[:10])
    batches = list(post.sample_batched_sync(25_000, 10_000, progress=True))
    bar = fake_tqdm.made[-1]
    assert (bar.total, bar.n, bar.unit) == (25_000, 25_000, "draw") and bar.closed
    assert sum(map(len, batches)) == 25_000

    async def batched():
        return [b async for b in post.sample_batched(3_000, 1_000, progress=True)]
    assert len(asyncio.run(batched())) == 3 and fake_tqdm.made[-1].n == 3_000


def test_no_bar_unless_asked(worker, fake_tqdm):
    worker.run_inference_sync("normal", np.arange(100.0))
    worker.run_inference_sync("normal", np.arange(100.0), progress=False)
    assert fake_tqdm.made == []
    with pytest.raises(ValueError, match="progress = 'yes'"):
        worker.run_inference_sync("normal", np.arange(100.0), progress="yes")


def test_auto_opens_after_a_second(worker, fake_tqdm, monkeypatch):
    now = [0.0]
    monkeypatch.setattr(_progressbar, "_clock", lambda: now[0])
    bw.set_options(progress="auto")
    assert bw.get_options() == {"progress": "auto"}
    post = worker.run_inference_sync("beta-binomial", {"successes": 5, "trials": 50}).posterior
    assert fake_tqdm.made == []                         # under a second: no bar
    batches = post.sample_batched_sync(3_000, 1_000)
    next(batches)
    assert fake_tqdm.made == []
    now[0] = 1.5                                        # the call has run for 1.5 s
    next(batches)
    bar, = fake_tqdm.made
    assert bar.n == 2_000 and bar.total == 3_000
    next(batches)
    with pytest.raises(StopIteration):
        next(batches)
    assert bar.closed and bar.n == 3_000


def test_without_tqdm_warns_once(worker, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    monkeypatch.setattr(_progressbar, "_warned", [False])
    post = worker.run_inference_sync("beta-binomial", {"successes": 5, "trials": 50}).posterior
    with pytest.warns(RuntimeWarning, match="need tqdm"):
        assert len(list(post.sample_batched_sync(20, 10, progress=True))) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(list(post.sample_batched_sync(20, 10, progress=True))) == 2


def test_text_bar_where_ipywidgets_is_missing(monkeypatch):
    """tqdm.auto warns on every import in a notebook without ipywidgets: the text bar is
    used there instead, and the widget bar where ipywidgets is installed."""
    import importlib.util

    from bayesworker import _progressbar
    pytest.importorskip("tqdm")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "ipywidgets" else real(name, *a))
    import tqdm.std
    assert _progressbar._tqdm() is tqdm.std.tqdm
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: object() if name == "ipywidgets" else real(name, *a))
    import tqdm.auto
    assert _progressbar._tqdm() is tqdm.auto.tqdm


def test_group_fit_and_compare_bars(worker, fake_tqdm):
    """fit_groups (the batch job, and groups fitted one by one) and compare take progress=
    and on_progress= like a fit; the bars finish full and the caller's listener runs."""
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"g": rng.choice(["x", "y", "z"], 3000), "arm": rng.choice(["A", "B"], 3000),
                       "conv": rng.random(3000) < 0.1})
    df["value"] = np.where(df["conv"], rng.lognormal(2, 1, 3000), 0.0)
    seen = []
    fits = worker.fit_groups_sync(df, by=["g", "arm"], model="beta-binomial", converted="conv",
                                  progress=True, on_progress=seen.append)
    bar = fake_tqdm.made[-1]
    assert bar.desc == "fit_groups beta-binomial" and bar.closed and bar.n == bar.total > 0
    assert seen and len(fits) == 6
    seen.clear()
    shares = worker.fit_groups_sync(df, by=["g"], model="dirichlet-multinomial", labels="arm",
                                    progress=True, on_progress=seen.append)   # one by one
    bar = fake_tqdm.made[-1]
    assert bar.closed and (bar.n, bar.total) == (3, 3) and len(shares) == 3
    assert [(p.iteration, p.total_iterations) for p in seen][-1] == (3, 3)
    fits = worker.fit_groups_sync(df, by=["g"], model="compound-beta-lognormal", converted="conv",
                                  value="value")
    seen.clear()
    cmp = worker.compare_sync({"A": fits["x"], "B": fits["y"]}, progress=True,
                              on_progress=seen.append)
    bar = fake_tqdm.made[-1]
    assert bar.desc == "compare" and bar.closed and seen
    assert 0.0 < cmp.prob_beats_control()["B"] < 1.0
