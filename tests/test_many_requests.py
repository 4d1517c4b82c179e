"""Many small requests at once (issue 11): the bookkeeping of thousands of jobs in flight.

The pool keeps every live job in a registry that forgets one in O(1) (its slot moves to the
job that was last); the bridge keeps the awaited calls per event loop, reaping a loop's calls
only once that loop is seen closed. These tests check what those structures must keep true:
every job is forgotten exactly once whatever the order jobs finish in, cancel_all still
reaches every live job, and a closed loop's calls go while another loop's stay and arrive.
"""

import asyncio
import gc
import select

import numpy as np

import bayesworker as bw
from bayesworker._fit import fit_kwargs
from bayesworker._request import prepare


def test_thousands_of_jobs_finish_in_any_order_and_cancel_all_reaches_the_rest():
    with bw.InferenceWorker(threads=2, seed=3) as w:
        core = w._core          # private: to submit C jobs without a loop
        ch = core.new_channel()
        quick = fit_kwargs(prepare("beta-binomial", {"successes": 5, "trials": 50}))
        post = w.run_inference_sync("normal", [1.0, 2.0, 3.0]).posterior
        jobs = []
        for i in range(3000):
            if i % 500 == 0:    # long jobs among the quick ones: they finish last
                jobs.append(core.sample(post.id, 0, np.empty(10**7), ch, -1, timeout=60.0))
            else:
                jobs.append(core.fit(**quick, channel=ch, timeout=30.0))
        core.cancel_all()
        for job in jobs:
            assert job.wait(30.0)
        assert w.stats()["live_jobs"] == 0
        statuses = {job.status for job in jobs}
        assert statuses <= {"ok", "cancelled"}, statuses
        drained = set()
        while len(drained) < len(jobs):     # a waiter may wake before the channel hears
            ready, _, _ = select.select([ch.fileno()], [], [], 30.0)   # hang guard only
            assert ready, f"{len(jobs) - len(drained)} jobs never reached the channel"
            drained.update(ch.drain())
        assert drained == {job.id for job in jobs}
        # the pool still takes and finishes work after all that
        assert w.run_inference_sync("beta-binomial", {"successes": 1, "trials": 2}) \
            .posterior.mean()[0] == 0.5


def test_a_closed_loops_calls_are_reaped_and_another_loops_arrive():
    with bw.InferenceWorker(threads=2, seed=4) as w:
        post = w.run_inference_sync("normal", [1.0, 2.0, 3.0]).posterior
        dead = asyncio.new_event_loop()
        tasks = [dead.create_task(post.sample(3_000_000)) for _ in range(3)]
        dead.run_until_complete(asyncio.sleep(0.001))
        assert len(w._bridge.pending) >= 1      # private: the calls awaited on `dead`
        dead.close()
        del tasks, dead
        gc.collect()

        async def live():
            fits = await asyncio.gather(*(
                w.run_inference("beta-binomial", {"successes": i, "trials": 1000})
                for i in range(200)))
            return [f.posterior.mean()[0] for f in fits]

        means = asyncio.run(live())
        assert means == [(1 + i) / 1002 for i in range(200)]
        w.stats()                               # reaps the closed loop's calls
        assert w.stats()["pending_requests"] == 0


def test_group_rows_match_the_lazy_intervals_and_release_frees_all_but_the_held():
    data = {"g": np.repeat(np.arange(50), 20),
            "c": (np.arange(1000) * 7919 % 13 < 3)}
    with bw.InferenceWorker(threads=2, seed=5) as w:
        fits = w.fit_groups_sync(data, by="g", model="beta-binomial", converted="c")
        rows = fits.summary()
        lo = rows["ci95_lo"] if not isinstance(rows, list) else [r["ci95_lo"] for r in rows]
        held = fits[7]
        for g in (0, 7, 49):
            ci = fits[g].credible_interval(0.95)        # computed on first use, in C
            assert ci[0, 0] == list(lo)[g]              # the batch's 95 % row: same numbers
        assert w.stats()["posteriors"] == 50
        del fits, rows, ci
        gc.collect()
        assert w.stats()["posteriors"] == 1             # only the held proxy's posterior
        assert held.credible_interval(0.8).shape == (1, 2)


def test_integer_group_codes_by_counting_equal_pandas_factorize():
    pd = __import__("pytest").importorskip("pandas")
    from bayesworker._groups import _codes
    rng = np.random.default_rng(6)
    columns = [rng.integers(-5, 50, 1000), rng.integers(0, 10**6, 100).astype(np.uint32),
               np.array([-100, 100, 5, 5], dtype=np.int8), np.array([2**62, 5]),
               np.array([2**64 - 1, 2**64 - 2], dtype=np.uint64), np.arange(10)]
    for col in columns:
        codes, labels = _codes(col)
        want_codes, want_labels = pd.factorize(col, sort=True, use_na_sentinel=False)
        assert codes.tolist() == want_codes.tolist(), col.dtype
        assert labels.tolist() == np.asarray(want_labels).tolist(), col.dtype
        assert labels.dtype == np.asarray(want_labels).dtype


def test_instant_fits_match_fits_on_the_worker_threads_and_leave_nothing_pending():
    # beta-binomial from counts is instant (computed on the calling thread); the same
    # posterior from raw 0/1 values is reduced and fitted on the workers: same numbers
    values = np.zeros(400)
    values[:37] = 1.0

    async def both(w):
        seen = []
        fast = await w.run_inference("beta-binomial", {"successes": 37, "trials": 400},
                                     on_progress=seen.append)
        assert w._bridge.pending == {}                  # private: no future was needed
        slow = await w.run_inference("beta-binomial", values)
        return fast.posterior, slow.posterior, seen

    with bw.InferenceWorker(threads=2, seed=9) as w:
        fast, slow, seen = asyncio.run(both(w))
        assert [p.fraction for p in seen] == [0.0, 1.0]
        for level in (0.95, 0.9, 0.8, 0.5):
            assert (fast.credible_interval(level) == slow.credible_interval(level)).all()
        assert fast.mean()[0] == slow.mean()[0] and fast.variance()[0] == slow.variance()[0]
        assert (fast.sample_sync(5000) != slow.sample_sync(5000)).any()   # two posteriors
        assert w.stats()["live_jobs"] == 0 and w.stats()["pending_requests"] == 0
