"""The worker pool, the completion channels and the posterior store under sanitizers.

tests/c/stress_core.c is a standalone C program that hammers csrc/pool.c and csrc/store.c
(and links nothing else of the core): pools of 0, 1, 2 and 4 threads with several submitter
threads, channel drainers polling the fd, random cancels, cancel_all, failing blocks and
finish steps, bw_pool_free with jobs in flight, and the store under concurrent insert,
reserve, get, remove, evict, clear and snapshot, and execution-time timeouts on a clock of its
own (time queued behind other jobs does not count; a long job stops at the first block boundary
past its timeout; finish steps count; two threads on one job count the time once).  It checks its own invariants (every job
finishes exactly once, every block runs at most once and exactly once in an OK job, every
channel job is drained exactly once, reserved stream ranges tile [0, total), ...) and exits
nonzero on any failed check.

Here it is built three ways and run:

* ThreadSanitizer (-fsanitize=thread), with halt_on_error;
* AddressSanitizer + UBSan (+ float-cast-overflow), with leak detection;
* a plain -O2 -Wall -Wextra -Werror build, which must compile clean.

A sanitizer report, a failed check, a hang (the program's own watchdog, then a 120 s
timeout) or a missing sanitizer runtime fails the test; nothing is skipped.

The `bug_*` scenarios are deterministic reproductions of defects found in csrc/pool.c; each
runs on its own (test_defect_reproduction) and fails until the defect is fixed:

* bug_stale_wakeup  -- channel_push writes the fd after unlocking; a drain in between leaves
                       the fd readable forever with an empty channel (event loop busy-spins).
* bug_channel_leak  -- the channel's queue and the job reference each other; dropping the
                       channel without draining leaks both (and the eventfd).
* bug_fail_masked   -- bw_job_cancel overwrites the failure mark (cancel == 2) with 1, so a
                       failed job is reported CANCELLED.
* bug_wait_inf      -- bw_job_wait(job, inf or >= 2^63 s) overflows the deadline,
                       pthread_cond_timedwait returns EINVAL without releasing job->mu and the
                       loop spins holding it: the waiter and the finishing worker deadlock.
* bug_phase_nblocks -- block_done reads job->nblocks after its fetch_add on done_blocks,
                       racing with a finish step that changes nblocks for the next phase
                       (TSan only: the race is reported, the double finish it allows is rare).
* bug_progress_race -- job->phase is a plain size_t written by phase_end on a worker and
                       read by module.c's progress getter on the Python thread (TSan only).

Environment: CC (compiler, default cc), BW_STRESS_SCALE (work multiplier, default 4),
BW_STRESS_SEED (the program's seed; it prints the one it used).
"""

from __future__ import annotations

import os
import pathlib
import platform
import shutil
import subprocess

import pytest

HERE = pathlib.Path(__file__).resolve().parent
CSRC = HERE.parents[1] / "csrc"
STRESS = HERE / "stress_core.c"
SOURCES = [STRESS, CSRC / "pool.c", CSRC / "store.c", CSRC / "status.c"]
CC = os.environ.get("CC", "cc")
RUN_TIMEOUT = 120
BUILD_TIMEOUT = 120
SCALE = os.environ.get("BW_STRESS_SCALE", "4")
SEED = os.environ.get("BW_STRESS_SEED")

COMMON = ["-std=c11", "-g", "-D_GNU_SOURCE", "-I", str(CSRC)]
# The stress program holds one write(2) of pool.c at a chosen moment (bug_stale_wakeup).
WRAP_CFLAGS = ["-DSTRESS_WRAP_WRITE"]
WRAP_LDFLAGS = ["-Wl,--wrap=write"]
LIBS = ["-lpthread", "-lm"]

FLAVOURS = {
    "tsan": {
        "cflags": ["-O1", "-fsanitize=thread"],
        "env": {"TSAN_OPTIONS": "halt_on_error=1 exitcode=66 second_deadlock_stack=1"},
        "reports": ["WARNING: ThreadSanitizer", "ERROR: ThreadSanitizer",
                    "FATAL: ThreadSanitizer"],
    },
    "asan": {
        "cflags": ["-O1", "-fsanitize=address,undefined,float-cast-overflow",
                   "-fno-omit-frame-pointer"],
        "env": {"ASAN_OPTIONS": "detect_leaks=1",
                "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1"},
        "reports": ["ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"],
    },
    "plain": {
        "cflags": ["-O2", "-Wall", "-Wextra", "-Werror"],
        "env": {},
        "reports": [],
    },
}

PROBE_C = r"""
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
static int shared;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static void *work(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    shared++;
    pthread_mutex_unlock(&mu);
    return NULL;
}
int main(void)
{
    pthread_t t;
    int *p = malloc(sizeof *p);
    pthread_create(&t, NULL, work, NULL);
    work(NULL);
    pthread_join(t, NULL);
    *p = shared;
    printf("probe %d\n", *p);
    free(p);
    return 0;
}
"""


def _tail(text: str, lines: int = 80) -> str:
    parts = text.splitlines()
    return "\n".join(parts[-lines:]) if len(parts) > lines else text


def _run(cmd, env=None, timeout=RUN_TIMEOUT):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        pytest.fail(f"timed out after {timeout} s (hang or deadlock): {' '.join(cmd)}\n"
                    f"--- stdout ---\n{_tail(out)}\n--- stderr ---\n{_tail(err)}")
    except FileNotFoundError as exc:
        pytest.fail(f"cannot run {cmd[0]!r}: {exc}")


def _env(flavour: str) -> dict:
    env = dict(os.environ)
    env.update(FLAVOURS[flavour]["env"])
    return env


class Built:
    def __init__(self, flavour: str, exe: pathlib.Path, prefix: list[str]):
        self.flavour = flavour
        self.exe = exe
        self.prefix = prefix            # e.g. setarch -R for TSan on high-entropy ASLR

    def run(self, *args: str):
        cmd = [*self.prefix, str(self.exe), *args]
        if SEED:
            cmd += ["--seed", SEED]
        proc = _run(cmd, env=_env(self.flavour))
        return cmd, proc


def _probe(flavour: str, tmp: pathlib.Path) -> list[str]:
    """Compile and run a trivial threaded program with the flavour's flags; fail clearly if
    the compiler or its sanitizer runtime is missing.  Returns the command prefix to use."""
    if shutil.which(CC) is None:
        pytest.fail(f"no C compiler: {CC!r} is not on PATH (set CC)")
    src = tmp / "probe.c"
    src.write_text(PROBE_C)
    exe = tmp / f"probe_{flavour}"
    cmd = [CC, *COMMON, *FLAVOURS[flavour]["cflags"], str(src), "-o", str(exe), *LIBS]
    proc = _run(cmd, timeout=BUILD_TIMEOUT)
    if proc.returncode != 0:
        pytest.fail(f"the compiler cannot build with {FLAVOURS[flavour]['cflags']} (is the "
                    f"sanitizer runtime, e.g. libtsan/libasan/libubsan, installed?):\n"
                    f"{' '.join(cmd)}\n{proc.stderr}")
    proc = _run([str(exe)], env=_env(flavour), timeout=60)
    if proc.returncode == 0 and "probe 2" in proc.stdout:
        return []
    if flavour == "tsan" and "unexpected memory mapping" in proc.stderr \
            and shutil.which("setarch"):
        # Older libtsan cannot map its shadow under high-entropy ASLR: run without ASLR.
        prefix = ["setarch", platform.machine(), "-R"]
        again = _run([*prefix, str(exe)], env=_env(flavour), timeout=60)
        if again.returncode == 0 and "probe 2" in again.stdout:
            return prefix
    pytest.fail(f"a trivial program built with {FLAVOURS[flavour]['cflags']} does not run "
                f"(sanitizer runtime broken here?): exit {proc.returncode}\n"
                f"{_tail(proc.stdout)}\n{_tail(proc.stderr)}")


_BUILDS: dict[str, Built] = {}


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("stress_core")


@pytest.fixture(scope="module")
def build(build_dir):
    def get(flavour: str) -> Built:
        if flavour in _BUILDS and _BUILDS[flavour].exe.exists():
            return _BUILDS[flavour]
        prefix = _probe(flavour, build_dir)
        exe = build_dir / f"stress_core_{flavour}"
        cmd = [CC, *COMMON, *FLAVOURS[flavour]["cflags"], *WRAP_CFLAGS, *map(str, SOURCES),
               *WRAP_LDFLAGS, "-o", str(exe), *LIBS]
        proc = _run(cmd, timeout=BUILD_TIMEOUT)
        if proc.returncode != 0:
            pytest.fail(f"building stress_core ({flavour}) failed:\n{' '.join(cmd)}\n"
                        f"{proc.stdout}{proc.stderr}")
        _BUILDS[flavour] = Built(flavour, exe, prefix)
        return _BUILDS[flavour]
    return get


def _check(built: Built, cmd, proc, what: str) -> None:
    reports = [m for m in FLAVOURS[built.flavour]["reports"]
               if m in proc.stderr or m in proc.stdout]
    if proc.returncode != 0 or reports:
        why = f"exit status {proc.returncode}"
        if proc.returncode == 66:
            why += " (ThreadSanitizer report)"
        elif proc.returncode == 3:
            why += " (the program's watchdog: a hang)"
        if reports:
            why += f"; sanitizer report: {', '.join(reports)}"
        pytest.fail(f"{what} under {built.flavour}: {why}\n$ {' '.join(cmd)}\n"
                    f"--- stdout ---\n{_tail(proc.stdout)}\n"
                    f"--- stderr ---\n{_tail(proc.stderr, 120)}")


def test_execution_time_timeouts(build):
    """Queued time does not count toward a job's timeout; a long job times out (the
    "timeout" scenario of stress_core.c, driven by a clock the jobs advance)."""
    built = build("plain")
    cmd, proc = built.run("timeout")
    _check(built, cmd, proc, "scenario timeout")
    assert "ok   timeout" in proc.stdout, proc.stdout


def test_plain_build_is_warning_free_and_passes(build, build_dir):
    built = build("plain")
    # The variant without the write(2) wrapper must compile clean too.
    obj = build_dir / "stress_core_nowrap.o"
    cmd = [CC, *COMMON, *FLAVOURS["plain"]["cflags"], "-c", str(STRESS), "-o", str(obj)]
    proc = _run(cmd, timeout=BUILD_TIMEOUT)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stderr}"
    cmd, proc = built.run("--scale", SCALE)
    _check(built, cmd, proc, "the default scenarios")


@pytest.mark.parametrize("flavour", ["tsan", "asan"])
def test_stress_under_sanitizer(build, flavour):
    built = build(flavour)
    cmd, proc = built.run("--scale", SCALE)
    _check(built, cmd, proc, "the default scenarios (pool, fail, free, inline, store, timeout)")
    assert "stress_core: passed" in proc.stdout, proc.stdout
    for name in ("pool", "fail", "free", "inline", "store", "timeout"):
        assert f"ok   {name}" in proc.stdout, f"scenario {name} did not report ok:\n" \
                                                f"{proc.stdout}"


# (scenario, flavour): deterministic ones under both sanitizers; the two data races only
# show under ThreadSanitizer.
DEFECTS = [(name, flavour)
           for name in ("bug_stale_wakeup", "bug_channel_leak", "bug_fail_masked",
                        "bug_wait_inf")
           for flavour in ("tsan", "asan")]
DEFECTS += [("bug_phase_nblocks", "tsan"), ("bug_progress_race", "tsan")]


@pytest.mark.parametrize("scenario,flavour", DEFECTS,
                         ids=[f"{name}-{flavour}" for name, flavour in DEFECTS])
def test_defect_reproduction(build, scenario, flavour):
    """Deterministic reproductions of defects in csrc/pool.c (see the module docstring)."""
    built = build(flavour)
    cmd, proc = built.run(scenario)
    _check(built, cmd, proc, f"scenario {scenario}")
