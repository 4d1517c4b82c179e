"""Build parts of the pure-C core (no Python.h) into a shared library for ctypes tests."""

import ctypes
import hashlib
import os
import pathlib
import subprocess
import sys

import pytest

CSRC = pathlib.Path(__file__).resolve().parents[2] / "csrc"


def build_core(sources, tmp_dir, extra_flags=()):
    """Compile csrc/<sources> into one shared library under tmp_dir and load it."""
    paths = [CSRC / s for s in sources]
    digest = hashlib.sha1()
    for p in paths:
        digest.update(p.read_bytes())
    for h in sorted(CSRC.glob("*.h")):
        digest.update(h.read_bytes())
    digest.update(" ".join(extra_flags).encode())
    out = pathlib.Path(tmp_dir) / f"libbwcore_{digest.hexdigest()[:12]}.so"
    if not out.exists():
        cc = os.environ.get("CC", "cc")
        cmd = [cc, "-O2", "-std=c11", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared",
               "-D_GNU_SOURCE", "-I", str(CSRC), *extra_flags, *map(str, paths),
               "-o", str(out), "-lm", "-lpthread"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.fail(f"building the C core failed:\n{' '.join(cmd)}\n{proc.stderr}")
    return ctypes.CDLL(str(out))


@pytest.fixture(scope="session")
def core_builder(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ccore")
    return lambda sources, extra_flags=(): build_core(sources, tmp, extra_flags)


class Dist(ctypes.Structure):
    _fields_ = [("kind", ctypes.c_int), ("p", ctypes.c_double * 4)]


class Quantity(ctypes.Structure):
    _fields_ = [("nfactors", ctypes.c_int), ("f", Dist * 2)]


class Stream(ctypes.Structure):
    _fields_ = [("key", ctypes.c_uint64), ("tag", ctypes.c_uint32)]


BETA, NIG_MEAN, NIG_LNMEAN, GAMMA, INVGAMMA = 1, 2, 3, 4, 5


class Error(ctypes.Structure):
    """bw_error of csrc/bw_status.h."""
    _fields_ = [("status", ctypes.c_int), ("rule", ctypes.c_int), ("has_index", ctypes.c_int),
                ("index", ctypes.c_double), ("value", ctypes.c_double),
                ("msg", ctypes.c_char * 320)]


# enum bw_status and enum bw_value_rule of csrc/bw_status.h
OK, E_DOMAIN, E_NUMERIC, E_NOMEM, E_VALUE = 0, 1, 2, 3, 4
RULE_FINITE, RULE_POSITIVE, RULE_BOUNDED = 1, 2, 6


def quantity(*factors):
    """quantity((BETA, a, b)) or quantity((BETA, a, b), (NIG_LNMEAN, m, k, al, be))."""
    q = Quantity()
    q.nfactors = len(factors)
    for i, (kind, *params) in enumerate(factors):
        q.f[i].kind = kind
        for j, v in enumerate(params):
            q.f[i].p[j] = float(v)
    return q
