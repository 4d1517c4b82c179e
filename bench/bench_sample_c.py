"""Single-thread throughput of csrc/sample.c against NumPy's Generator (PCG64).

Builds the pure-C sampler into a temporary shared library (cc -O3, or with --native also
-march=native), calls bw_sample through ctypes into preallocated arrays, and prints draws per
second for each distribution next to NumPy's rate for the same distribution in the same run.

    python bench/bench_sample_c.py                 # 10^7 draws, best of 3
    python bench/bench_sample_c.py --n 1000000 --repeat 5 --variants --native

On x86-64, bw_sample picks the widest instruction-set variant the CPU has (AVX-512, AVX2 or
the SSE2 baseline); --variants also times each variant on its own.
"""

import argparse
import ctypes
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
CSRC = ROOT / "csrc"

BETA, NIG_MEAN, NIG_LNMEAN, GAMMA, INVGAMMA = 1, 2, 3, 4, 5
VARIANTS = {0: "baseline", 1: "avx2", 2: "avx512"}


class Dist(ctypes.Structure):
    _fields_ = [("kind", ctypes.c_int), ("p", ctypes.c_double * 4)]


class Quantity(ctypes.Structure):
    _fields_ = [("nfactors", ctypes.c_int), ("f", Dist * 2)]


class Stream(ctypes.Structure):
    _fields_ = [("key", ctypes.c_uint64), ("tag", ctypes.c_uint32)]


def quantity(*factors):
    q = Quantity()
    q.nfactors = len(factors)
    for i, (kind, *params) in enumerate(factors):
        q.f[i].kind = kind
        for j, v in enumerate(params):
            q.f[i].p[j] = float(v)
    return q


def build(tmp, native):
    cc = os.environ.get("CC", "cc")
    out = pathlib.Path(tmp) / "libbwsample.so"
    flags = ["-O3", "-std=c11", "-Wall", "-Wextra", "-fPIC", "-shared", "-D_GNU_SOURCE"]
    if native:
        flags.append("-march=native")
    cmd = [cc, *flags, "-I", str(CSRC), str(CSRC / "sample.c"), "-o", str(out), "-lm"]
    subprocess.run(cmd, check=True)
    lib = ctypes.CDLL(str(out))
    lib.bw_sample.argtypes = [ctypes.POINTER(Quantity), Stream, ctypes.c_uint64,
                              ctypes.c_size_t, ctypes.c_void_p]
    lib.bw_sample.restype = None
    lib.bw_sample_variant.argtypes = [ctypes.c_int] + lib.bw_sample.argtypes
    lib.bw_sample_variant.restype = ctypes.c_int
    return lib


def best_rate(fn, n, repeat):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return n / best


LN = (0.5, 20.0, 10.0, 3.0)     # NIG posterior: m, kappa, alpha, beta


def numpy_cases(g, n):
    def lnmean():
        s = LN[3] / g.gamma(LN[2], 1.0, n)
        mu = LN[0] + np.sqrt(s / LN[1]) * g.standard_normal(n)
        return np.exp(mu + s / 2)

    return {
        "beta(120.5, 880.5)": lambda: g.beta(120.5, 880.5, n),
        "beta(0.8, 0.9)": lambda: g.beta(0.8, 0.9, n),
        "gamma(7.3)": lambda: g.gamma(7.3, 1.0, n),
        "NIG_LNMEAN": lnmean,
        "beta x NIG_LNMEAN": lambda: g.beta(120.5, 880.5, n) * lnmean(),
    }


C_CASES = {
    "beta(120.5, 880.5)": quantity((BETA, 120.5, 880.5)),
    "beta(0.8, 0.9)": quantity((BETA, 0.8, 0.9)),
    "gamma(7.3)": quantity((GAMMA, 7.3, 1.0)),
    "NIG_LNMEAN": quantity((NIG_LNMEAN, *LN)),
    "beta x NIG_LNMEAN": quantity((BETA, 120.5, 880.5), (NIG_LNMEAN, *LN)),
}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10**7)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--native", action="store_true", help="build with -march=native")
    ap.add_argument("--variants", action="store_true", help="time each SIMD variant too")
    args = ap.parse_args(argv)
    n = args.n
    out = np.empty(n)
    g = np.random.Generator(np.random.PCG64(2024))
    with tempfile.TemporaryDirectory() as tmp:
        lib = build(tmp, args.native)
        available = [v for v in VARIANTS
                     if lib.bw_sample_variant(v, ctypes.byref(C_CASES["gamma(7.3)"]),
                                              Stream(1, 0), 0, 1, out.ctypes.data) == 0]
        variants = [None] + (available if args.variants else [])
        np_rates = {name: best_rate(fn, n, args.repeat) for name, fn in numpy_cases(g, n).items()}
        print(f"{n:.0e} draws, best of {args.repeat}, one thread; "
              f"cc -O3{' -march=native' if args.native else ''}; "
              f"bw_sample uses the {VARIANTS[max(available)]} variant")
        head = f"{'distribution':<20} {'numpy M/s':>10}"
        for v in variants:
            label = "bw_sample" if v is None else VARIANTS[v]
            head += f" {label + ' M/s':>15} {'ratio':>6}"
        print(head)
        for name, q in C_CASES.items():
            line = f"{name:<20} {np_rates[name] / 1e6:>10.1f}"
            for v in variants:
                if v is None:
                    def fn(q=q):
                        lib.bw_sample(ctypes.byref(q), Stream(12345, 0), 0, n, out.ctypes.data)
                else:
                    def fn(q=q, v=v):
                        lib.bw_sample_variant(v, ctypes.byref(q), Stream(12345, 0), 0, n,
                                              out.ctypes.data)
                rate = best_rate(fn, n, args.repeat)
                line += f" {rate / 1e6:>15.1f} {rate / np_rates[name]:>6.2f}"
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
