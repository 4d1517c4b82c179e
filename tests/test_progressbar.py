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
    auto = types.ModuleType("tqdm.auto")
    auto.tqdm = FakeTqdm
    monkeypatch.setitem(sys.modules, "tqdm", types.ModuleType("tqdm"))
    monkeypatch.setitem(sys.modules, "tqdm.auto", auto)
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
