"""Execution-time timeouts at the _core level: a job's timeout bounds the seconds a worker
thread spends executing it, never the time it waits in the queue (csrc/pool.h).

Deadlines here are hang guards; the one real-time figure is a hold long enough (1 s) that
a job's tiny amount of work could never reach a timeout of 0.5 s."""

import math
import time

import numpy as np
import pytest

from bayesworker import _core

HANG_GUARD = 60.0


def _wait(job):
    assert job.wait(HANG_GUARD), "hang guard: the job did not finish"


def core_fit(core, **kw):
    job = core.fit(1, (1.0, 1.0), successes=3, trials=10, **kw)
    _wait(job)
    assert job.status == "ok", job.exception
    return job.result


def test_time_in_the_queue_does_not_count():
    """Small fits queued on one thread behind a backlog of about 8 x their timeout of work
    all succeed: their own work is microseconds."""
    timeout = 0.25
    core = _core.Core(1, 5)
    try:
        post = core_fit(core)
        out = np.empty(_core.SAMPLE_BLOCK, dtype=np.float64)    # one block per job
        probe = core.sample(post, 0, out, None)
        _wait(probe)
        per_job = max(probe.exec_time, 1e-5)
        backlog = [core.sample(post, 0, out, None) for _ in range(int(8 * timeout / per_job))]
        queued = [core.fit("beta-binomial", (1.0, 1.0), successes=3, trials=10,
                           timeout=timeout) for _ in range(20)]
        for j in backlog + queued:
            _wait(j)
        assert [j.status for j in queued] == ["ok"] * 20, [j.exception for j in queued]
        assert all(j.exception is None for j in queued)
        waited = [j.runtime - j.exec_time for j in queued]
        assert min(waited) > timeout, ("the backlog was too short to test anything", waited)
        assert all(0 < j.exec_time < timeout for j in queued)
    finally:
        core.close()


def test_a_cancelled_job_says_so_and_an_ok_job_has_no_exception():
    core = _core.Core(1, 5)
    try:
        post = core_fit(core)
        big = core.sample(post, 0, np.empty(10**8, dtype=np.float64), None)
        waiting = core.interval(post, 0, 0.5, None)
        assert big.exception is None or big.done
        _wait(waiting)
        big.cancel()
        _wait(big)
        assert waiting.status == "ok" and big.status == "cancelled"
        assert isinstance(big.exception, RuntimeError) and waiting.exception is None
    finally:
        core.close()


@pytest.mark.parametrize("threads", [0, 1, 2])
def test_a_long_job_times_out_and_says_after_how_much_work(threads):
    core = _core.Core(threads, 5)
    try:
        post = core_fit(core)
        out = np.empty(10**8, dtype=np.float64)
        job = core.sample(post, 0, out, None, timeout=0.02)
        _wait(job)
        assert job.status == "timeout"
        assert job.exec_time >= 0.02
        exc = job.exception
        assert isinstance(exc, TimeoutError)
        assert "timed out after" in str(exc) and "of work" in str(exc)
        assert core.live_jobs() == 0
    finally:
        core.close()


def test_fit_and_interval_take_a_timeout():
    core = _core.Core(1, 5)
    try:
        post = core_fit(core, timeout=10.0)
        job = core.interval(post, 0, 0.5, None, timeout=0.0)
        _wait(job)
        assert job.status == "timeout" and isinstance(job.exception, TimeoutError)
        job = core.interval(post, 0, 0.5, None, timeout=None)
        _wait(job)
        assert job.status == "ok" and job.exception is None and job.exec_time > 0
    finally:
        core.close()


@pytest.mark.parametrize("bad", [-1.0, math.nan, "1"])
def test_timeout_must_be_none_or_seconds(bad):
    core = _core.Core(0, 5)
    try:
        with pytest.raises((ValueError, TypeError), match="timeout|must be real number"):
            core.fit(1, (1.0, 1.0), successes=3, trials=10, timeout=bad)
    finally:
        core.close()
