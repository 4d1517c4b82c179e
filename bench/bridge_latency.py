"""Latency of one awaited beta-binomial fit: this tree against an older revision, one run.

    python bench/bridge_latency.py [--old REV] [--rounds R] [--fits N]

REV (default ff1658e, before the bridge module) is exported with ``git archive`` and
built in a temporary directory. The two versions run in alternating subprocesses, R
rounds each; every subprocess times N awaited fits one at a time after a warm-up, and
prints its median. The figures: the median of the medians, in microseconds, and their
ratio. A timing claim, so it lives here and not in tests/.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = r"""
import asyncio, statistics, sys, time
import bayesworker as bw
N = int(sys.argv[1])

async def main():
    async with bw.InferenceWorker(threads=2, seed=1) as w:
        data = {"successes": 65, "trials": 1000}
        for _ in range(200):
            await w.run_inference("beta-binomial", data)
        times = []
        for _ in range(N):
            t0 = time.perf_counter()
            await w.run_inference("beta-binomial", data)
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

print(asyncio.run(main()) * 1e6)
"""


def build(rev: str, where: Path) -> Path:
    """The package of ``rev``, built in ``where``; returns its python/ directory."""
    tree = where / rev
    if not (tree / "python" / "bayesworker").exists():
        tree.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace", "-q"],
                       cwd=tree, check=True, capture_output=True)
    return tree / "python"


def median_of(path: Path, fits: int) -> float:
    env = dict(os.environ, PYTHONPATH=str(path))
    out = subprocess.run([sys.executable, "-c", PROBE, str(fits)], env=env, check=True,
                         capture_output=True, text=True).stdout
    return float(out.strip())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", default="ff1658e")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--fits", type=int, default=2000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        versions = {args.old: build(args.old, Path(tmp)), "this tree": ROOT / "python"}
        medians: dict[str, list[float]] = {k: [] for k in versions}
        for _ in range(args.rounds):
            for name, path in versions.items():
                medians[name].append(median_of(path, args.fits))
    for name, ms in medians.items():
        print(f"{name:>10}: median {statistics.median(ms):7.1f} us per awaited fit "
              f"(rounds: {', '.join(f'{m:.1f}' for m in ms)})")
    old, new = (statistics.median(m) for m in medians.values())
    print(f"this tree / {args.old}: {new / old:.3f}")


if __name__ == "__main__":
    main()
