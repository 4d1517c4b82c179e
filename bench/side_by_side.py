"""Lines of code for one notebook task, side by side (issue 10): per-arm summaries with
P(best) and expected loss, a density plot, and a per-country revenue table, on the same
200,000-row DataFrame (examples/side_by_side/data.py).

Prints the code lines (not blank, not comments) of each script and, with --run, runs each
in this interpreter and prints its wall time (same run; scripts whose library is missing are
skipped and marked).

    python bench/side_by_side.py [--run]
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent.parent / "examples" / "side_by_side"
SCRIPTS = (("bayesworker now", "with_bayesworker.py", "bayesworker"),
           ("bayesworker before (2026-11-29 API)", "with_bayesworker_before.py", "scipy"),
           ("bayesian-testing 0.10", "with_bayesian_testing.py", "bayesian_testing"))


def code_lines(path: pathlib.Path) -> int:
    return sum(1 for line in path.read_text().splitlines()
               if line.strip() and not line.lstrip().startswith("#"))


def main() -> None:
    run = "--run" in sys.argv[1:]
    print(f"{'script':40s} {'code lines':>10s}" + (f" {'seconds':>9s}" if run else ""))
    for label, name, needs in SCRIPTS:
        path = HERE / name
        row = f"{label:40s} {code_lines(path):10d}"
        if run:
            if importlib.util.find_spec(needs) is None:
                row += f" {'(no ' + needs + ')':>9s}"
            else:
                with tempfile.TemporaryDirectory() as tmp:
                    env = dict(os.environ, MPLBACKEND="Agg",
                               PYTHONPATH=os.pathsep.join([str(HERE)] + sys.path))
                    t0 = time.perf_counter()
                    subprocess.run([sys.executable, str(path)], cwd=tmp, env=env, check=True,
                                   stdout=subprocess.DEVNULL)
                    row += f" {time.perf_counter() - t0:9.2f}"
        print(row)


if __name__ == "__main__":
    main()
