"""Helpers shared by the Python-level tests (not a conftest: tests/c has its own).

Nothing here measures time. A test that must wait waits for a condition (``wait_until``,
``until``); the deadline is a hang guard, generous on purpose, that turns a hang into a
failure naming what never happened. Work that must still be running when a test acts on
it is an *endless fit* (``endless_fit``): it cannot end on its own while the suite runs,
so cancelling, timing out or closing it is never a race with its natural end.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import bayesworker as bw

PKG_PATH = str(Path(bw.__file__).resolve().parents[1])   # where this bayesworker lives
TESTS_DIR = str(Path(__file__).resolve().parent)        # so that children import support

#: Seconds a wait may last before the test fails as hung. Only a hang reaches it.
HANG_GUARD = 60.0

#: 1,000,000 standard normal values. Eight mixture components on one normal crawl: with
#: ``tolerance=0`` the first fit of a worker with seed 1 still raises its ELBO (by 1e-5 to
#: 1e-3 per iteration) after 30,000 iterations (measured once: 847 s on one thread). A fit
#: is deterministic (the same data and seed give the same fit whatever the thread count),
#: so this one runs for tens of thousands of iterations of a million values each, far past
#: any hang guard: it ends by a timeout, a cancellation or close(), never by itself.
ENDLESS_DATA = np.random.default_rng(12).normal(0.0, 1.0, 1_000_000)
ENDLESS_OPTIONS = {"components": 8, "tolerance": 0, "max_iterations": 1_000_000}

#: Two well separated normal clusters (400 at -5, 600 at +5): a two-component mixture.
BIMODAL = np.r_[np.random.default_rng(0).normal(-5, 1, 400),
                np.random.default_rng(1).normal(5, 1, 600)]


def run(coro):
    """Run a coroutine on a fresh event loop (tests stay plain functions)."""
    return asyncio.run(coro)


def wait_until(predicate: Callable[[], Any], what: str, guard: float = HANG_GUARD) -> None:
    """Block until ``predicate()`` is true; fail naming ``what`` if the guard runs out."""
    deadline = time.monotonic() + guard
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"hang guard: {what} did not happen within {guard:g} s")
        time.sleep(0.001)


async def until(predicate: Callable[[], Any], what: str, guard: float = HANG_GUARD) -> None:
    """``wait_until`` for a coroutine: the loop keeps running while it waits."""
    deadline = time.monotonic() + guard
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"hang guard: {what} did not happen within {guard:g} s")
        await asyncio.sleep(0.001)


async def guarded(awaitable, what: str, guard: float = HANG_GUARD):
    """Await ``awaitable``; a hang fails naming ``what`` instead of blocking the suite.
    (Its own exceptions, TimeoutError included, pass through unchanged.)"""
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({task}, timeout=guard)
    if not done:
        task.cancel()
        raise AssertionError(f"hang guard: {what} did not settle within {guard:g} s")
    return task.result()


def endless_fit(worker, **kw):
    """The coroutine of a fit that cannot end on its own (see ``ENDLESS_DATA``)."""
    kw.setdefault("timeout", 3600)
    return worker.run_inference("normal-mixture", ENDLESS_DATA, **ENDLESS_OPTIONS, **kw)


def endless_fit_sync(worker, **kw):
    """Blocking twin of ``endless_fit``: it returns only when stopped (an error) or closed.

    The call runs on a thread of its own, so that if nothing stops the fit the test fails
    at the hang guard instead of blocking the suite for ever.
    """
    kw.setdefault("timeout", 3600)
    outcome: list = []

    def call():
        try:
            outcome.append((True, worker.run_inference_sync("normal-mixture", ENDLESS_DATA,
                                                            **ENDLESS_OPTIONS, **kw)))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            outcome.append((False, exc))

    runner = threading.Thread(target=call, daemon=True, name="endless_fit_sync")
    runner.start()
    runner.join(HANG_GUARD)
    if not outcome:
        raise AssertionError(f"hang guard: a blocking endless fit was not stopped within "
                             f"{HANG_GUARD:g} s")
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def quiet(worker) -> bool:
    """True when no C job of ``worker`` is live and no request waits for delivery."""
    s = worker.stats()
    return s["live_jobs"] == 0 and s["pending_requests"] == 0


def child_env() -> dict[str, str]:
    """The environment of a child interpreter: this bayesworker and this module importable."""
    paths = [PKG_PATH, TESTS_DIR, *filter(None, [os.environ.get("PYTHONPATH")])]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(paths), PYTHONFAULTHANDLER="1")


def run_script(code: str, guard: float = HANG_GUARD, **kw) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter; a hang is a test failure, not a stuck suite."""
    try:
        return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=child_env(),
                              capture_output=True, text=True, timeout=guard, **kw)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"hang guard: the script ran for {guard:g} s; its output:\n"
                    f"{exc.stdout}\n{exc.stderr}")


def os_threads() -> int:
    """Threads of this process (Linux): the pool's threads are among them while it lives."""
    return len(os.listdir("/proc/self/task"))
