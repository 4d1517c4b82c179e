"""Draws of csrc/sample.c: Philox known answers, the counter layout, reproducibility, and the
distributions (one-sample KS against scipy at fixed seeds, exact moments, extreme shapes).

The C library is built by the `core_builder` fixture of tests/c/conftest.py; its ctypes
helpers are loaded from that file by path (tests/ has a conftest.py of its own, so a plain
`import conftest` could pick the wrong one).
"""

import ctypes
import importlib.util
import math
import pathlib

import numpy as np
import pytest
from scipy import integrate, stats

_spec = importlib.util.spec_from_file_location(
    "bw_ctest_helpers", pathlib.Path(__file__).with_name("conftest.py"))
_h = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_h)
quantity, Quantity, Stream = _h.quantity, _h.Quantity, _h.Stream
BETA, NIG_MEAN, NIG_LNMEAN, GAMMA, INVGAMMA = (
    _h.BETA, _h.NIG_MEAN, _h.NIG_LNMEAN, _h.GAMMA, _h.INVGAMMA)


# ------------------------------------------------------------------------------------------
# The library
# ------------------------------------------------------------------------------------------

class Lib:
    """bw_sample and friends over ctypes, returning NumPy arrays."""

    def __init__(self, cdll):
        self.c = cdll
        cdll.bw_sample.argtypes = [ctypes.POINTER(Quantity), Stream, ctypes.c_uint64,
                                   ctypes.c_size_t, ctypes.c_void_p]
        cdll.bw_sample.restype = None
        cdll.bw_sample_variant.argtypes = [ctypes.c_int] + cdll.bw_sample.argtypes
        cdll.bw_sample_variant.restype = ctypes.c_int
        cdll.bw_stream_key.argtypes = [ctypes.c_uint64, ctypes.c_uint64]
        cdll.bw_stream_key.restype = ctypes.c_uint64
        cdll.bw_philox4x32_10.argtypes = [ctypes.POINTER(ctypes.c_uint32)] * 3
        cdll.bw_philox4x32_10.restype = None

    def sample(self, q, n, start=0, key=0x1234_5678_9ABC_DEF0, tag=0):
        out = np.empty(n)
        self.c.bw_sample(ctypes.byref(q), Stream(key, tag), start, n, out.ctypes.data)
        return out

    def sample_variant(self, variant, q, n, start=0, key=7, tag=0):
        out = np.empty(n)
        rc = self.c.bw_sample_variant(variant, ctypes.byref(q), Stream(key, tag), start, n,
                                      out.ctypes.data)
        return out if rc == 0 else None

    def key(self, seed, seq):
        return self.c.bw_stream_key(seed, seq)

    def philox(self, ctr, key):
        c = (ctypes.c_uint32 * 4)(*ctr)
        k = (ctypes.c_uint32 * 2)(*key)
        o = (ctypes.c_uint32 * 4)()
        self.c.bw_philox4x32_10(c, k, o)
        return list(o)


@pytest.fixture(scope="module")
def lib(core_builder):
    return Lib(core_builder(["sample.c"]))


def bits(x):
    return np.ascontiguousarray(x).view(np.uint64)


# ------------------------------------------------------------------------------------------
# Philox4x32-10 known answers (Random123's kat_vectors)
# ------------------------------------------------------------------------------------------

KAT = [
    ([0, 0, 0, 0], [0, 0], [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]),
    ([0xFFFFFFFF] * 4, [0xFFFFFFFF] * 2, [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]),
    ([0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344], [0xA4093822, 0x299F31D0],
     [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]),
]


@pytest.mark.parametrize("ctr,key,want", KAT)
def test_philox_known_answers(lib, ctr, key, want):
    assert lib.philox(ctr, key) == want


@pytest.mark.parametrize("ctr,key,want", KAT)
def test_reference_philox_known_answers(ctr, key, want):
    out = _philox(*(np.array([w], dtype=np.uint64) for w in ctr), *key)
    assert [int(w[0]) for w in out] == want


# ------------------------------------------------------------------------------------------
# A NumPy reference of the documented scheme (counter layout, uniforms, kernels), operation
# for operation: IEEE double arithmetic is the same in NumPy, so it must match bit for bit.
# ------------------------------------------------------------------------------------------

U64 = np.uint64
MASK32 = U64(0xFFFFFFFF)
LN2_HI = float.fromhex("0x1.62e42fefa3800p-1")
LN2_LO = float.fromhex("0x1.ef35793c76730p-45")
LOG2E = float.fromhex("0x1.71547652b82fep+0")
PIO2 = float.fromhex("0x1.921fb54442d18p+0")
MAGIC = float.fromhex("0x1.8p52")
MAGIC_BITS = U64(0x4338000000000000)
LOGC = [float.fromhex(h) for h in (
    "0x1.2b584aae78a57p-3", "0x1.39fe606542ddep-3", "0x1.7462b4ab2ef6bp-3",
    "0x1.c71c62e5800a1p-3", "0x1.2492492df148dp-2", "0x1.99999999952e2p-2",
    "0x1.5555555555558p-1")]
EXPC = [float.fromhex(h) for h in (
    "0x1.1f730349868cep-29", "0x1.af4de97ca4194p-26", "0x1.27e4db646b17ep-22",
    "0x1.71de0231960ebp-19", "0x1.a01a01a6d889cp-16", "0x1.a01a01abe7fe1p-13",
    "0x1.6c16c16c162d4p-10", "0x1.11111111100dcp-7", "0x1.5555555555556p-5",
    "0x1.5555555555557p-3", "0x1.0000000000000p-1")]
SINC = [float.fromhex(h) for h in (
    "0x1.5e0b19f8b1451p-33", "-0x1.ae600b02b6262p-26", "0x1.71de37968a100p-19",
    "-0x1.a01a019e83aaep-13", "0x1.1111111110bb2p-7", "-0x1.5555555555555p-3")]
COSC = [float.fromhex(h) for h in (
    "-0x1.8ff9d439a204ap-37", "0x1.1eea7f259b344p-29", "-0x1.27e4f8e4a2e74p-22",
    "0x1.a01a019de131fp-16", "-0x1.6c16c16c15d79p-10", "0x1.5555555555551p-5",
    "-0x1p-1")]


def _f(u):
    return u.view(np.float64)


def _u(x):
    return np.ascontiguousarray(x, dtype=np.float64).view(U64)


def _philox(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 on uint64 arrays holding 32-bit words."""
    c0, c1, c2, c3 = (np.asarray(c, dtype=U64) for c in (c0, c1, c2, c3))
    k0, k1 = int(k0), int(k1)
    for _ in range(10):
        p0 = U64(0xD2511F53) * c0
        p1 = U64(0xCD9E8D57) * c2
        c0, c1, c2, c3 = ((p1 >> U64(32)) ^ c1 ^ U64(k0), p1 & MASK32,
                          (p0 >> U64(32)) ^ c3 ^ U64(k1), p0 & MASK32)
        k0 = (k0 + 0x9E3779B9) & 0xFFFFFFFF
        k1 = (k1 + 0xBB67AE85) & 0xFFFFFFFF
    return c0, c1, c2, c3


def _u01(lo, hi):
    k = ((hi << U64(32)) | lo) >> U64(11)
    x = _f((k >> U64(1)) | U64(0x3FF0000000000000))
    u = x - np.where((k & U64(1)) == 1, 1.0 - 2.0 ** -53, 1.0)
    return np.where(u == 0.0, 2.0 ** -54, u)


def _log(x):
    x = np.asarray(x, dtype=np.float64)
    sub = x < 2.0 ** -1022
    xs = np.where(sub, x * 2.0 ** 54, x)
    eadj = np.where(sub, -54.0, 0.0)
    b = _u(xs)
    k = (b - U64(0x0006A09E667F3BCD)) >> U64(52)
    m = _f(b - ((k - U64(1022)) << U64(52)))
    e = ((_f(k | U64(0x4330000000000000)) - 2.0 ** 52) - 1022.0) + eadj
    f = m - 1.0
    s = f / (2.0 + f)
    z = s * s
    p = z * LOGC[0] + LOGC[1]
    for c in LOGC[2:]:
        p = p * z + c
    lm = s * 2.0 + (s * z) * p
    return e * LN2_HI + (lm + e * LN2_LO)


def _clog(x):
    """log of a constant, by the same kernel (sample.c does not use libm's log)."""
    return float(_log(np.array([x]))[0])


def _exp(x):
    x = np.asarray(x, dtype=np.float64)
    x = np.where(x > 1400.0, 1400.0, x)
    x = np.where(x < -1400.0, -1400.0, x)
    t = x * LOG2E + MAGIC
    nd = t - MAGIC
    n = _u(t) - MAGIC_BITS
    r = (x - nd * LN2_HI) - nd * LN2_LO
    p = r * EXPC[0] + EXPC[1]
    for c in EXPC[2:]:
        p = p * r + c
    p = 1.0 + (r + (r * r) * p)
    a = ((n + U64(2048)) >> U64(1)) - U64(1024)
    c = n - a
    s1 = _f((a + U64(1023)) << U64(52))
    s2 = _f((c + U64(1023)) << U64(52))
    return (p * s1) * s2


def _sincos2pi(u):
    y = 4.0 * u
    t = y + MAGIC
    qd = t - MAGIC
    q = _u(t) - MAGIC_BITS
    th = (y - qd) * PIO2
    z = th * th
    s = z * SINC[0] + SINC[1]
    for c in SINC[2:]:
        s = s * z + c
    s = th + (th * z) * s
    c = z * COSC[0] + COSC[1]
    for k in COSC[2:]:
        c = c * z + k
    c = 1.0 + z * c
    swap = (q & U64(1)) == 1
    negc = (((q + U64(1)) >> U64(1)) & U64(1)) << U64(63)
    negs = ((q >> U64(1)) & U64(1)) << U64(63)
    return _f(_u(np.where(swap, s, c)) ^ negc), _f(_u(np.where(swap, c, s)) ^ negs)


def _mt(d, c, z, u):
    x = 1.0 + c * z
    vv = x * x * x
    pos = x > 0.0
    vs = np.where(pos, vv, 1.0)
    z2 = z * z
    acc = pos & (u < 1.0 - 0.0331 * (z2 * z2))
    full = 0.5 * z2 + d * ((1.0 - vs) + _log(vs))
    acc = acc | (pos & (_log(u) < full))
    return acc, np.where(acc, vs, 1.0)


def _round(jbase, r, pos, tag, key):
    """Round r of positions pos: (z1, z2, v1, v2)."""
    k0, k1 = key & 0xFFFFFFFF, key >> 32
    c1, c2 = pos & MASK32, pos >> U64(32)
    t = np.full_like(pos, tag)
    x = _philox(np.full_like(pos, jbase + 1 + 2 * r), c1, c2, t, k0, k1)
    y = _philox(np.full_like(pos, jbase + 2 + 2 * r), c1, c2, t, k0, k1)
    u1, u2 = _u01(x[0], x[1]), _u01(x[2], x[3])
    cs, sn = _sincos2pi(u2)
    rad = np.sqrt(-2.0 * _log(u1))
    return rad * cs, rad * sn, _u01(y[0], y[1]), _u01(y[2], y[3])


def _ref_factor(dist, jbase, pos, tag, key):
    kind, p = dist[0], [float(v) for v in dist[1:]]
    shapes = {BETA: p[:2], GAMMA: p[:1], INVGAMMA: p[:1]}.get(kind, p[2:3])
    z1, z2, v1, v2 = _round(jbase, 0, pos, tag, key)
    vs, lgs = [], []
    for slot, a in enumerate(shapes):
        a1 = a + 1.0 if a < 1.0 else a
        d = a1 - 1.0 / 3.0
        c = 1.0 / math.sqrt(9.0 * d)
        acc, v = _mt(d, c, (z1, z2)[slot], (v1, v2)[slot])
        for i in np.flatnonzero(~acc):          # later rounds, one position at a time
            r = 1
            while True:
                zz1, zz2, vv1, vv2 = _round(jbase, r, pos[i:i + 1], tag, key)
                ok, vr = _mt(d, c, (zz1, zz2)[slot], (vv1, vv2)[slot])
                if ok[0]:
                    v[i] = vr[0]
                    break
                r += 1
        lg = _clog(d) + _log(v)
        if a < 1.0:
            k0, k1 = key & 0xFFFFFFFF, key >> 32
            x = _philox(np.full_like(pos, jbase), pos & MASK32, pos >> U64(32),
                        np.full_like(pos, tag), k0, k1)
            ub = _u01(x[2 * slot], x[2 * slot + 1])
            lg = lg + _log(ub) * (1.0 / a)
            lg = np.where(lg < -1e300, -1e300, lg)
        vs.append(d * v)                        # the variate (unused in log space)
        lgs.append(lg)
    if kind == BETA:
        if min(p[:2]) < 1.0 or max(p[:2]) > 1e300:
            diff = lgs[0] - lgs[1]
            t = _exp(-np.abs(diff))
            inv = 1.0 / (1.0 + t)
            return np.where(diff >= 0.0, inv, t * inv)
        return vs[0] / (vs[0] + vs[1])
    if kind == GAMMA:
        return _exp(lgs[0] - _clog(p[1])) if p[0] < 1.0 else vs[0] / p[1]
    if kind == INVGAMMA:
        return _exp(_clog(p[1]) - lgs[0]) if p[0] < 1.0 else p[1] / vs[0]
    m, kappa, alpha, beta = p
    if alpha < 1.0:
        ws = _exp(0.5 * (_clog(beta) - lgs[0]))
    else:
        ws = np.sqrt(beta / vs[0])
    zk = (1.0 / math.sqrt(kappa)) * z2
    if kind == NIG_MEAN:
        return m + np.where(zk == 0.0, 0.0, ws * zk)
    return _exp(m + ws * (0.5 * ws + zk))


def reference(factors, start, n, tag, key):
    """Draws start .. start + n - 1 of the quantity, as documented in sample.c."""
    pos = np.arange(n, dtype=U64) + U64(start)
    with np.errstate(over="ignore"):    # +inf draws are legitimate for extreme parameters
        x = _ref_factor(factors[0], 0, pos, tag, key)
        if len(factors) == 2:
            y = _ref_factor(factors[1], 1 << 31, pos, tag, key)
            x = np.where((x == 0.0) | (y == 0.0), 0.0, x * y)
    return x


REF_CASES = [
    [(BETA, 120.5, 880.5)],
    [(BETA, 0.8, 0.9)],
    [(BETA, 2.0, 0.3)],
    [(GAMMA, 7.3, 2.0)],
    [(GAMMA, 0.05, 3.0)],
    [(INVGAMMA, 3.5, 2.0)],
    [(INVGAMMA, 0.5, 2.0)],
    [(NIG_MEAN, 1.5, 4.0, 3.0, 2.0)],
    [(NIG_LNMEAN, 0.5, 20.0, 10.0, 3.0)],
    [(NIG_LNMEAN, 0.5, 2.0, 0.7, 3.0)],
    [(BETA, 3.0, 40.0), (NIG_LNMEAN, 1.0, 9.0, 5.0, 2.0)],
]


@pytest.mark.parametrize("factors", REF_CASES, ids=lambda f: "x".join(str(d) for d in f))
def test_counter_layout_matches_reference(lib, factors):
    key, tag = 0xDEADBEEF_0BADF00D, 0x5A5A
    for start in (0, 2**32 - 700):              # crosses into hi32(i) = 1
        got = lib.sample(quantity(*factors), 1500, start=start, key=key, tag=tag)
        want = reference(factors, start, 1500, tag, key)
        assert np.array_equal(bits(got), bits(want))


# ------------------------------------------------------------------------------------------
# Reproducibility
# ------------------------------------------------------------------------------------------

SPLIT_CASES = [
    [(BETA, 120.5, 880.5)],
    [(BETA, 1e-3, 1e-3)],
    [(NIG_LNMEAN, 0.5, 20.0, 10.0, 3.0)],
    [(GAMMA, 0.5, 1.0)],
    [(BETA, 0.8, 0.9), (NIG_MEAN, 2.0, 5.0, 1.5, 1.0)],
]


@pytest.mark.parametrize("factors", SPLIT_CASES, ids=lambda f: "x".join(str(d) for d in f))
def test_split_invariance(lib, factors):
    q = quantity(*factors)
    start, n = 123_456_789, 20_000
    whole = lib.sample(q, n, start=start)
    rng = np.random.default_rng(5)
    for _ in range(5):
        cuts = np.sort(rng.choice(np.arange(1, n), size=rng.integers(1, 60), replace=False))
        cuts = np.concatenate([[0], cuts, [n]])
        parts = [lib.sample(q, int(b - a), start=start + int(a)) for a, b in zip(cuts, cuts[1:])]
        assert np.array_equal(bits(np.concatenate(parts)), bits(whole))
    # single draws, anywhere
    for i in rng.integers(0, n, 20):
        assert bits(lib.sample(q, 1, start=start + int(i)))[0] == bits(whole)[i]


def test_threads(lib):
    """Concurrent calls from many threads (ctypes releases the GIL) give the same bits as
    one call: no shared state."""
    from concurrent.futures import ThreadPoolExecutor

    q = quantity((BETA, 0.8, 0.9), (NIG_LNMEAN, 0.5, 20.0, 10.0, 3.0))
    n, piece = 400_000, 12_345
    whole = lib.sample(q, n, start=77)
    starts = list(range(0, n, piece))
    with ThreadPoolExecutor(max_workers=8) as ex:
        parts = list(ex.map(lambda a: lib.sample(q, min(piece, n - a), start=77 + a), starts))
    assert np.array_equal(bits(np.concatenate(parts)), bits(whole))


def test_variants_agree(lib):
    """Baseline, AVX2 and AVX-512 variants (those the CPU has) give the same bits."""
    for factors in REF_CASES + SPLIT_CASES:
        q = quantity(*factors)
        outs = [lib.sample_variant(v, q, 3001, start=999) for v in range(3)]
        outs = [o for o in outs if o is not None]
        assert len(outs) >= 1
        for o in outs[1:]:
            assert np.array_equal(bits(o), bits(outs[0]))
        assert np.array_equal(bits(lib.sample(q, 3001, start=999, key=7)), bits(outs[0]))


def test_streams_differ(lib):
    q = quantity((BETA, 2.0, 3.0))
    base = lib.sample(q, 10_000, key=11, tag=0)
    others = [lib.sample(q, 10_000, key=11, tag=1), lib.sample(q, 10_000, key=12, tag=0),
              lib.sample(q, 10_000, key=11 + 2**32, tag=0),
              lib.sample(q, 10_000, start=10_000, key=11, tag=0)]
    for o in others:
        assert not np.any(bits(o) == bits(base))
        assert abs(np.corrcoef(o, base)[0, 1]) < 0.05
    # the two factors of a product use disjoint counters: independent
    prod = quantity((GAMMA, 4.0, 1.0), (GAMMA, 4.0, 1.0))
    single = lib.sample(quantity((GAMMA, 4.0, 1.0)), 50_000)
    both = lib.sample(prod, 50_000)
    second = both / single
    assert abs(np.corrcoef(single, second)[0, 1]) < 0.03


def test_stream_keys(lib):
    keys = {lib.key(2024, s) for s in range(5000)}
    assert len(keys) == 5000
    keys |= {lib.key(seed, 0) for seed in range(10_000, 15_000)}
    assert len(keys) == 10_000
    # neighbouring sequence numbers give unrelated keys: about half the bits flip
    flips = [bin(lib.key(7, s) ^ lib.key(7, s + 1)).count("1") for s in range(2000)]
    assert 30 < np.mean(flips) < 34
    assert lib.key(1, 2) == lib.key(1, 2)
    # and unrelated streams
    a = lib.sample(quantity((BETA, 1.0, 1.0)), 20_000, key=lib.key(9, 0))
    b = lib.sample(quantity((BETA, 1.0, 1.0)), 20_000, key=lib.key(9, 1))
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.03


# ------------------------------------------------------------------------------------------
# Distributions: one-sample KS at fixed seeds (deterministic), with teeth
# ------------------------------------------------------------------------------------------

N_KS = 100_000


def ks(x, cdf):
    return stats.kstest(x, cdf).pvalue


@pytest.mark.parametrize("a,b", [(120.5, 880.5), (0.8, 0.9), (1.0, 1.0), (0.05, 0.3),
                                 (0.5, 50.0), (3.0, 0.2), (1e5, 1e5), (2.0, 2.0)])
def test_beta_ks(lib, a, b):
    x = lib.sample(quantity((BETA, a, b)), N_KS, key=101)
    assert np.all((x >= 0) & (x <= 1))
    assert ks(x, stats.beta(a, b).cdf) > 1e-3


@pytest.mark.parametrize("a", [0.05, 0.5, 1.0, 7.3, 1e4])
def test_gamma_ks(lib, a):
    x = lib.sample(quantity((GAMMA, a, 2.5)), N_KS, key=202)
    assert ks(x, stats.gamma(a, scale=1 / 2.5).cdf) > 1e-3


@pytest.mark.parametrize("a", [0.3, 2.5, 40.0])
def test_invgamma_ks(lib, a):
    x = lib.sample(quantity((INVGAMMA, a, 1.7)), N_KS, key=303)
    assert ks(x, stats.invgamma(a, scale=1.7).cdf) > 1e-3


@pytest.mark.parametrize("m,kappa,alpha,beta", [(1.5, 4.0, 3.0, 2.0), (-2.0, 0.01, 0.6, 5.0),
                                                (0.0, 1e4, 200.0, 180.0)])
def test_nig_mean_ks(lib, m, kappa, alpha, beta):
    x = lib.sample(quantity((NIG_MEAN, m, kappa, alpha, beta)), N_KS, key=404)
    t = stats.t(2 * alpha, loc=m, scale=math.sqrt(beta / (alpha * kappa)))
    assert ks(x, t.cdf) > 1e-3


def lnmean_log_cdf(m, kappa, alpha, beta):
    """CDF of log X = mu + s/2 under NIG: E_s[Phi((y - m - s/2) / sqrt(s/kappa))], by
    quadrature over s ~ InvGamma(alpha, beta) on a grid of y, interpolated between."""
    sdist = stats.invgamma(alpha, scale=beta)
    lo, hi, med = sdist.ppf(1e-12), sdist.ppf(1 - 1e-9), sdist.median()
    lnorm = alpha * math.log(beta) - math.lgamma(alpha)

    def cdf_at(y):
        def f(s):
            phi = 0.5 * math.erfc(-(y - m - s / 2) / math.sqrt(2 * s / kappa))
            return phi * math.exp(lnorm - (alpha + 1) * math.log(s) - beta / s)
        return integrate.quad(f, lo, hi, limit=200, epsabs=1e-11, points=[med])[0]

    mu_sd = math.sqrt(beta / (alpha * kappa))
    s_hi = sdist.ppf(1 - 1e-6)
    grid = np.linspace(m - 8 * mu_sd, m + s_hi / 2 + 8 * math.sqrt(s_hi / kappa), 500)
    vals = np.maximum.accumulate(np.array([cdf_at(y) for y in grid]))
    return lambda y: np.interp(y, grid, vals, left=0.0, right=1.0)


@pytest.mark.parametrize("m,kappa,alpha,beta", [(0.5, 20.0, 10.0, 3.0), (2.0, 3.0, 4.0, 1.0)])
def test_nig_lnmean_ks(lib, m, kappa, alpha, beta):
    x = lib.sample(quantity((NIG_LNMEAN, m, kappa, alpha, beta)), N_KS, key=505)
    assert np.all(x > 0)
    cdf = lnmean_log_cdf(m, kappa, alpha, beta)
    assert ks(np.log(x), cdf) > 1e-3
    # teeth: the same oracle rejects a neighbouring posterior
    wrong = lnmean_log_cdf(m, kappa, alpha * 1.1, beta)
    assert ks(np.log(x), wrong) < 1e-3


def test_product_two_sample(lib):
    """BETA x NIG_LNMEAN against an independent NumPy composition (two-sample KS)."""
    a, b, m, kappa, alpha, beta = 30.0, 970.0, 3.0, 50.0, 25.0, 12.0
    x = lib.sample(quantity((BETA, a, b), (NIG_LNMEAN, m, kappa, alpha, beta)), N_KS, key=606)
    g = np.random.default_rng(2024)
    s = beta / g.gamma(alpha, size=N_KS)
    mu = m + np.sqrt(s / kappa) * g.standard_normal(N_KS)
    y = g.beta(a, b, size=N_KS) * np.exp(mu + s / 2)
    assert stats.ks_2samp(x, y).pvalue > 1e-3
    y_wrong = g.beta(a * 1.05, b, size=N_KS) * np.exp(mu + s / 2)
    assert stats.ks_2samp(x, y_wrong).pvalue < 1e-3


def test_ks_has_teeth(lib):
    """The KS checks above reject a slightly wrong parameter at these sample sizes."""
    x = lib.sample(quantity((BETA, 120.5, 880.5)), N_KS, key=101)
    assert ks(x, stats.beta(122.5, 880.5).cdf) < 1e-3
    x = lib.sample(quantity((BETA, 0.8, 0.9)), N_KS, key=101)
    assert ks(x, stats.beta(0.84, 0.9).cdf) < 1e-3
    x = lib.sample(quantity((GAMMA, 0.05, 2.5)), N_KS, key=202)
    assert ks(x, stats.gamma(0.055, scale=1 / 2.5).cdf) < 1e-3
    x = lib.sample(quantity((NIG_MEAN, 1.5, 4.0, 3.0, 2.0)), N_KS, key=404)
    assert ks(x, stats.t(6.0, loc=1.5, scale=math.sqrt(2.0 / 12.0) * 1.03).cdf) < 1e-3


# ------------------------------------------------------------------------------------------
# Moments within five standard errors of the exact values
# ------------------------------------------------------------------------------------------

def check_moments(x, mean, var):
    n = x.size
    se_mean = math.sqrt(var / n)
    assert abs(x.mean() - mean) < 5 * se_mean
    c = x - x.mean()
    se_var = math.sqrt(max(np.mean(c ** 4) - np.mean(c ** 2) ** 2, 0.0) / n)
    assert abs(x.var() - var) < 5 * se_var + 1e-300


@pytest.mark.parametrize("factors,mean,var", [
    ([(BETA, 120.5, 880.5)], 120.5 / 1001, 120.5 * 880.5 / (1001 ** 2 * 1002)),
    ([(BETA, 0.8, 0.9)], 0.8 / 1.7, 0.8 * 0.9 / (1.7 ** 2 * 2.7)),
    ([(GAMMA, 0.5, 2.0)], 0.25, 0.125),
    ([(GAMMA, 1e4, 3.0)], 1e4 / 3, 1e4 / 9),
    ([(INVGAMMA, 6.0, 2.0)], 0.4, 4.0 / (25 * 4)),
    ([(NIG_MEAN, 1.0, 2.0, 4.0, 3.0)], 1.0, 3.0 / (2.0 * 3.0)),
    ([(BETA, 2.0, 8.0), (GAMMA, 5.0, 0.5)], 0.2 * 10.0,
     (2 * 3 / (10 * 11)) * (5 * 6 / 0.25) - (0.2 * 10.0) ** 2),
])
def test_moments(lib, factors, mean, var):
    x = lib.sample(quantity(*factors), 400_000, key=707)
    check_moments(x, mean, var)


# ------------------------------------------------------------------------------------------
# Extreme and invalid parameters
# ------------------------------------------------------------------------------------------

EXTREME = [
    [(BETA, 1e-3, 1e-3)], [(BETA, 1e-3, 1e3)], [(BETA, 1e3, 1e-3)], [(BETA, 1e8, 1e8)],
    [(BETA, 1e-300, 1e-300)], [(BETA, 1e-310, 2.0)], [(BETA, 1e305, 1e305)],
    [(GAMMA, 1e-3, 1.0)], [(GAMMA, 1e8, 1e-3)], [(GAMMA, 1e-3, 1e-300)],
    [(INVGAMMA, 1e-3, 1.0)], [(INVGAMMA, 1e8, 1e8)],
    [(NIG_MEAN, 0.0, 1e-300, 1e-3, 1e300)], [(NIG_MEAN, 5.0, 1e300, 1e8, 1e-300)],
    [(NIG_LNMEAN, 0.0, 1e-3, 1e-3, 1e3)], [(NIG_LNMEAN, -800.0, 1e6, 1e6, 1e-6)],
    [(BETA, 1e-3, 1e-3), (NIG_LNMEAN, 0.0, 1e-3, 1e-3, 1e3)],
    [(BETA, 1e-3, 1.0), (INVGAMMA, 1e-3, 1.0)],
]


@pytest.mark.parametrize("factors", EXTREME, ids=lambda f: "x".join(str(d) for d in f))
def test_never_nan(lib, factors):
    x = lib.sample(quantity(*factors), 20_000, key=808)
    assert not np.any(np.isnan(x))
    if factors[0][0] == BETA and len(factors) == 1:
        assert np.all((x >= 0) & (x <= 1))
    if factors[0][0] in (GAMMA, INVGAMMA, NIG_LNMEAN):
        assert np.all(x >= 0)


def test_tiny_shapes_keep_resolution(lib):
    """Beta(1e-3, 1e-3) is nearly Bernoulli(1/2) on {0, 1}: both ends, half each."""
    x = lib.sample(quantity((BETA, 1e-3, 1e-3)), 100_000, key=909)
    assert abs(np.mean(x > 0.5) - 0.5) < 0.01
    # log space keeps small draws down to the subnormals instead of flushing them all to 0
    small = x[x < 0.5]
    assert np.mean(small > 0) > 0.05


@pytest.mark.parametrize("factors", [
    [(BETA, 0.0, 1.0)], [(BETA, -1.0, 1.0)], [(BETA, float("nan"), 1.0)],
    [(GAMMA, float("inf"), 1.0)], [(NIG_MEAN, float("nan"), 1.0, 1.0, 1.0)],
    [(NIG_LNMEAN, 0.0, 0.0, 1.0, 1.0)], [(7, 1.0, 1.0)],
    [(BETA, 1.0, 1.0), (GAMMA, 1.0, 0.0)],
])
def test_invalid_parameters_give_nan(lib, factors):
    x = lib.sample(quantity(*factors), 50)
    assert np.all(np.isnan(x))


def test_zero_count_and_bad_nfactors(lib):
    q = quantity((BETA, 2.0, 2.0))
    assert lib.sample(q, 0).size == 0
    q.nfactors = 3
    assert np.all(np.isnan(lib.sample(q, 10)))
