"""The lognormal mean where its posterior is tight (csrc/summary.c, NIG_LNMEAN), C level.

X = exp(mu + s/2), s ~ InvGamma(alpha, beta), mu | s ~ N(m, s / kappa).  A posterior from
10^6 .. 10^10 values puts log X within 1e-5 .. 1e-9 of its centre; the loose frame's
truncated variance then cancelled to noise and nearly every such fit failed.  The contract: the truncated
mean and variance, the CDF and every quantile right to 1e-9 relative (quantiles: to 1e-9 of
the spread of log X, beyond the rounding of x to a double), for n = 10^3 .. 10^10 values and
log-scale sds 1e-4 .. 5 (smaller n are covered by tests/c/test_summary.py), and the same for
the product Beta x NIG_LNMEAN.

Oracles, independent of the C code's method:
- `Oracle`: the mixture over y = (G - alpha) / sqrt(alpha), G = beta / s ~ Gamma(alpha)
  (linear in G; the C code uses log G), fixed composite Gauss-Legendre (its resolution is
  checked against a finer grid), log x - m - s0/2 in 40-digit decimal arithmetic, and the
  truncated moments by numerical integration over the conditional normal (the C code sums
  Taylor series of partial moments);
- the normal limit: with Var(s) negligible, log X ~ N(m + E[s]/2, E[s]/kappa + Var(s)/4);
- mpmath at 30 digits (when installed) for the numbers quoted in issue 11, and as a check of
  `Oracle` itself.
"""

import importlib.util
import math
import pathlib
from decimal import Decimal, localcontext

import numpy as np
import pytest
from scipy import optimize, special


def _sibling(name):
    """tests/c/<name>.py as a module, taken by path (see _harness in test_summary.py)."""
    path = pathlib.Path(__file__).resolve().with_name(f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"bw_c_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


_ts = _sibling("test_summary")          # its ctypes face of the kernels, and the harness's
Core, quantity, BETA, NIG_LNMEAN = _ts.Core, _ts.quantity, _ts.BETA, _ts.NIG_LNMEAN

ULP1 = 2.0 ** -52
TRUNC = 0.9999                  # BW_TRUNC_LEVEL
TIGHT_VAR = 2e-11               # LNM_TIGHT_VAR of csrc/summary.c: below it, the tight frame
LEVELS = [1e-6, 0.025, 0.5, 0.975, TRUNC]


@pytest.fixture(scope="module")
def core(core_builder):
    return Core(core_builder(["specfun.c", "summary.c"]))


# ---------------------------------------------------------------------------------------------
# Posteriors and the oracle
# ---------------------------------------------------------------------------------------------

def posterior(n, mean_log, sd_log, k0=1e-6, a0=1.0, b0=1.0, mu0=0.0):
    """(m, kappa, alpha, beta) after n values with these log mean and sd (sample sd, n - 1),
    under the lognormal family's default prior (csrc/fam_normal.c)."""
    m2 = (n - 1) * sd_log * sd_log
    kn = k0 + n
    return ((k0 * mu0 + n * mean_log) / kn, kn, a0 + 0.5 * n,
            b0 + 0.5 * m2 + 0.5 * (k0 * n / kn) * (mean_log - mu0) ** 2)


def close(a, b, rel):
    """|a - b| <= rel |b| (pytest.approx would add an absolute 1e-12, far too loose here)."""
    return abs(a - b) <= rel * abs(b)


def var_log(p):
    """About the posterior variance of log X: E[s]/kappa + Var(s)/4 with s at s0."""
    m, kappa, alpha, beta = p
    s0 = beta / alpha
    return s0 / kappa + 0.25 * s0 * s0 / alpha


def decimal_offset(x, m, h):
    """log(x) - m - h to 40 digits, for the doubles x, m and h, as a double."""
    with localcontext() as ctx:
        ctx.prec = 40
        return float(Decimal(x).ln() - Decimal(m) - Decimal(h))


def log1pmx(e):
    """log(1 + e) - e for an array e > -1, a series where the plain form cancels."""
    e = np.asarray(e, dtype=float)
    out = np.log1p(e) - e
    small = np.abs(e) < 0.2
    es, pw, acc = e[small], e[small] ** 2, np.zeros(np.count_nonzero(small))
    for j in range(2, 60):                      # 0.2^60 / 60: far below an ulp
        acc += (-1) ** (j + 1) * pw / j
        pw = pw * es
    out[small] = acc
    return out


_GX, _GW = special.roots_legendre(20)


def legendre(lo, hi, panels):
    """Nodes and weights of composite 20-point Gauss-Legendre on [lo, hi] (arrays, which may
    broadcast: one interval per row)."""
    lo, hi = np.asarray(lo, float)[..., None], np.asarray(hi, float)[..., None]
    t = np.linspace(0.0, 1.0, panels + 1)
    a, b = lo + (hi - lo) * t[:-1], lo + (hi - lo) * t[1:]
    x = 0.5 * (a + b)[..., None] + 0.5 * (b - a)[..., None] * _GX
    w = 0.5 * (b - a)[..., None] * _GW
    return x.reshape(*x.shape[:-2], -1), w.reshape(*w.shape[:-2], -1)


class Oracle:
    """NIG_LNMEAN with alpha >= 300 over y = (G - alpha) / sqrt(alpha).

    With e = y / sqrt(alpha): s = s0 / (1 + e), s0 = beta / alpha, and y's log density is
    alpha log1pmx(e) - log1p(e) - log sqrt(2 pi) - delta(alpha) (Stirling; no cancellation).
    Given y, log X - m - s0/2 ~ N(-s0 e / (2 (1 + e)), s / kappa).  Work variable:
    u = (log x - m - s0/2) / sigma, sigma = sqrt(s0 / kappa).
    """

    def __init__(self, p, panels=80):
        m, kappa, alpha, beta = p
        assert alpha >= 300
        self.m, self.s0 = m, beta / alpha
        self.sigma = math.sqrt(self.s0 / kappa)
        sa = math.sqrt(alpha)
        lo = (special.gammaincinv(alpha, 1e-25) - alpha) / sa
        hi = (special.gammainccinv(alpha, 1e-25) - alpha) / sa
        y, w = legendre(lo, hi, panels)
        e = y / sa
        r = 1.0 / alpha
        delta = r * (1 / 12 - r * r * (1 / 360 - r * r * (1 / 1260 - r * r / 1680)))
        self.wf = w * np.exp(alpha * log1pmx(e) - np.log1p(e)
                             - 0.5 * math.log(2 * math.pi) - delta)
        # given y: U ~ N(mu_y, sd_y^2) in units of sigma
        self.mu = -0.5 * self.s0 * e / (1 + e) / self.sigma
        self.sd = 1.0 / np.sqrt(1 + e)

    def u_of(self, x):
        return decimal_offset(x, self.m, 0.5 * self.s0) / self.sigma

    def x_of(self, u):
        """The double nearest to exp(m + s0/2 + sigma u)."""
        with localcontext() as ctx:
            ctx.prec = 40
            return float((Decimal(self.m) + Decimal(0.5 * self.s0)
                          + Decimal(self.sigma) * Decimal(u)).exp())

    def tail(self, u, upper=False):
        z = (u - self.mu) / self.sd
        return float((self.wf * special.ndtr(-z if upper else z)).sum())

    def quantile_u(self, level):
        upper = level > 0.5
        target = math.log(1.0 - level if upper else level)

        def g(u):
            t = self.tail(u, upper)
            return (math.log(t) - target if t > 0 else -1e3) * (-1 if upper else 1)

        lo, hi = -1.0, 1.0
        while g(lo) > 0:
            lo *= 2
        while g(hi) < 0:
            hi *= 2
        return optimize.brentq(g, lo, hi, xtol=1e-13, rtol=1e-15, maxiter=200)

    def moments(self, zpanels=16):
        """Truncated mean and variance, E[X | X <= q] and Var(X | X <= q), q the 0.9999
        quantile: given y, integrate expm1(D)^k over Z <= zeta numerically, D = log X - m -
        s0/2 = sigma (mu_y + sd_y Z); then mean = e^(m + s0/2) (1 + E1 / P) and variance
        e^(2 (m + s0/2)) (E2 / P - (E1 / P)^2)."""
        uq = self.quantile_u(TRUNC)
        zeta = (uq - self.mu) / self.sd
        keep = zeta > -38
        z, wz = legendre(-40.0, np.minimum(zeta[keep], 40.0), zpanels)
        dens = wz * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
        em = np.expm1(self.sigma * (self.mu[keep, None] + self.sd[keep, None] * z))
        wf = self.wf[keep]
        P = float((self.wf * special.ndtr(zeta)).sum())
        e1 = float((wf * (dens * em).sum(axis=1)).sum()) / P
        e2 = float((wf * (dens * em * em).sum(axis=1)).sum()) / P
        c = math.exp(self.m + 0.5 * self.s0)
        return c * (1.0 + e1), c * c * (e2 - e1 * e1)


# ---------------------------------------------------------------------------------------------
# The issue's numbers
# ---------------------------------------------------------------------------------------------

# n = 10^6, mean_log 0, sd_log 0.01: NIG(0, 1e6 + 1e-6, 500001, 50.99995).  Values by mpmath
# (MpLnm below at 45 digits and 48 pieces; the test's 30 digits and 12 pieces agree to 1e-24):
# truncated mean, truncated variance, 2.5 % and 97.5 % quantiles.
ISSUE_POST = (0.0, 1000000.000001, 500001.0, 50.999950000000005)   # as the fit makes it
ISSUE_MEAN = 1.000050997302789451246157884
ISSUE_VAR = 1.0186527926912076502e-10
ISSUE_CI = (1.000031205416636026793417, 1.000070797766119738478587)


def test_issue_example(core):
    q = quantity((NIG_LNMEAN, *ISSUE_POST))
    assert close(core.mean(q), ISSUE_MEAN, 2.5e-16)
    assert close(core.mean(q), 1.0000509973027895, 3e-16)          # as quoted
    assert close(core.var(q), ISSUE_VAR, 1e-12)
    lo, hi = core.interval(q, 0.95)
    assert close(lo, ISSUE_CI[0], 3e-16)
    assert close(hi, ISSUE_CI[1], 3e-16)
    assert round(lo, 10) == 1.0000312054 and round(hi, 10) == 1.0000707978


class MpLnm:
    """The same integrals in mpmath (30 digits) over t = sqrt(alpha) log(G / alpha), by
    tanh-sinh quadrature on `pieces` equal pieces between the 1e-30 quantiles."""

    def __init__(self, p, pieces=12):
        import mpmath as mp
        self.mp = mp
        mp.mp.dps = 30
        self.m, self.k, self.a, self.b = (mp.mpf(v) for v in p)
        a = self.a
        self.la, self.sa = mp.log(a), mp.sqrt(a)
        self.c = -mp.loggamma(a) - mp.log(self.sa)
        tl = (math.log(special.gammaincinv(p[2], 1e-30)) - math.log(p[2])) * math.sqrt(p[2])
        th = (math.log(special.gammainccinv(p[2], 1e-30)) - math.log(p[2])) * math.sqrt(p[2])
        self.pts = [mp.mpf(tl) + (mp.mpf(th) - tl) * i / pieces for i in range(pieces + 1)]

    def _sg(self, t):
        mp = self.mp
        w = self.la + t / self.sa
        return self.b / mp.exp(w), mp.exp(self.a * w - mp.exp(w) + self.c)

    def _integral(self, f):
        return self.mp.quad(f, self.pts)

    def tail(self, d):
        """P(log X - m <= d)."""
        mp = self.mp

        def f(t):
            s, g = self._sg(t)
            return g * mp.ncdf((d - s / 2) * mp.sqrt(self.k / s))
        return self._integral(f)

    def dens(self, d):
        mp = self.mp

        def f(t):
            s, g = self._sg(t)
            r = mp.sqrt(self.k / s)
            return g * r * mp.npdf((d - s / 2) * r)
        return self._integral(f)

    def quantile_d(self, level, start=None):
        """log q - m at the level: Newton from `start` or the normal limit, steps capped at
        1 sd."""
        mp = self.mp
        s0 = self.b / self.a
        sd = mp.sqrt(s0 / self.k + s0 * s0 / (4 * self.a))
        d = s0 / 2 + mp.mpf(special.ndtri(level)) * sd if start is None else mp.mpf(start)
        target = mp.mpf(level)
        for _ in range(20):
            step = (self.tail(d) - target) / self.dens(d)
            d -= max(min(step, sd), -sd)
            if abs(step) < mp.mpf(10) ** -30 * sd:
                break
        return d

    def moments(self, start=None):
        """Truncated mean and variance via the lognormal partial moments given s."""
        mp = self.mp
        dq = self.quantile_d(TRUNC, start)
        out = []
        for k in (0, 1, 2):
            def f(t, k=k):
                s, g = self._sg(t)
                sd = mp.sqrt(s / self.k)
                tilt = mp.exp(k * s / 2 + k * k * sd * sd / 2)
                return g * tilt * mp.ncdf((dq - s / 2) / sd - k * sd)
            out.append(self._integral(f))
        mean = out[1] / out[0]
        return mean * mp.exp(self.m), (out[2] / out[0] - mean ** 2) * mp.exp(2 * self.m)


def test_issue_numbers_by_mpmath():
    """The constants above (a few seconds: one quadrature per Newton step at 30 digits)."""
    pytest.importorskip("mpmath")
    o = MpLnm(ISSUE_POST)
    mean, var = o.moments()
    assert close(float(mean), ISSUE_MEAN, 1e-18)
    assert close(float(var), ISSUE_VAR, 1e-16)
    for level, ref in zip((0.025, 0.975), ISSUE_CI):
        assert close(float(o.mp.exp(o.quantile_d(level))), ref, 1e-18)


def test_oracle_against_mpmath():
    """The float oracle (used for the grids) against mpmath on one tight posterior."""
    pytest.importorskip("mpmath")
    p = posterior(10 ** 8, 3.0, 0.1)
    o, mp_o = Oracle(p), MpLnm(p)
    h = mp_o.mp.mpf(0.5 * o.s0)
    u = o.quantile_u(0.025)
    d = mp_o.quantile_d(0.025, h + o.sigma * u)
    assert abs(float((d - h) / o.sigma) - u) < 1e-9
    mean, var = o.moments()
    ref_mean, ref_var = mp_o.moments(h + o.sigma * o.quantile_u(TRUNC))
    assert close(mean, float(ref_mean), 1e-14)
    assert close(var, float(ref_var), 1e-11)


# ---------------------------------------------------------------------------------------------
# The grid: n = 10^3 .. 10^10 values, log-scale sd 1e-4 .. 5, both frames
# ---------------------------------------------------------------------------------------------

GRID_N = [10 ** k for k in range(3, 11)]
GRID_SD = [1e-4, 1e-3, 1e-2, 0.03, 0.1, 0.3, 1.0, 2.0, 5.0]
GRID_M = [0.0, 3.0, -7.0, 12.0]


def test_oracle_resolution():
    """The oracle's grids are fine enough: doubling them moves nothing that is tested."""
    for n, sd in ((10 ** 3, 5.0), (10 ** 10, 2.0), (10 ** 10, 1e-4), (10 ** 6, 0.01)):
        p = posterior(n, 1.0, sd)
        a, b = Oracle(p), Oracle(p, panels=160)
        for level in LEVELS:
            assert abs(a.quantile_u(level) - b.quantile_u(level)) < 1e-11 * math.sqrt(
                var_log(p)) / a.sigma
        (m1, v1), (m2, v2) = a.moments(), b.moments(zpanels=32)
        assert close(m1, m2, 1e-15) and close(v1, v2, 1e-12)


@pytest.mark.parametrize("n", GRID_N)
def test_grid_quantiles_and_cdf(core, n):
    for i, sd in enumerate(GRID_SD):
        p = posterior(n, GRID_M[i % len(GRID_M)], sd)
        q, o = quantity((NIG_LNMEAN, *p)), Oracle(p)
        spread = math.sqrt(var_log(p))
        for level in LEVELS:
            x = core.quantile(q, level)
            xt = o.x_of(o.quantile_u(level))          # the true quantile, rounded
            # in log x: 1e-9 of the spread beyond the rounding of x (an ulp relative)
            err = abs(o.u_of(x) - o.u_of(xt)) * o.sigma
            assert err <= 1e-9 * spread + 2 * ULP1, (n, sd, level, x, xt)
            # the CDF at the rounded true quantile, lower tail relative (upper below 0.99)
            ut = o.u_of(xt)
            assert close(core.cdf(q, xt), o.tail(ut), 1e-9), (n, sd, level)
            if 0.5 < level < 0.99:
                assert close(1.0 - core.cdf(q, xt), o.tail(ut, True), 1e-9)


@pytest.mark.parametrize("n", GRID_N)
def test_grid_truncated_moments(core, n):
    for i, sd in enumerate(GRID_SD):
        p = posterior(n, GRID_M[(i + 1) % len(GRID_M)], sd)
        q = quantity((NIG_LNMEAN, *p))
        mean, var = Oracle(p).moments()
        assert close(core.mean(q), mean, 1e-13), (n, sd)
        # the loose frame's variance keeps ~1e-10 just above its threshold; tight ~1e-14
        tol = 1e-12 if var_log(p) < TIGHT_VAR else 1e-9
        assert close(core.var(q), var, tol), (n, sd)


def test_tight_frame_accuracy_in_detail(core):
    """Deep in the tight frame the numbers are far better than the contract: quantiles to an
    ulp of x, CDF to 1e-10 (the 2e-20 of log x - m taken in units of sd 1e-9), moments to
    1e-13."""
    for p in (posterior(10 ** 10, 3.0, 1e-4), posterior(10 ** 9, -2.0, 1e-3),
              posterior(10 ** 8, 8.0, 0.03), posterior(10 ** 10, 0.0, 0.3)):
        assert var_log(p) < TIGHT_VAR
        q, o = quantity((NIG_LNMEAN, *p)), Oracle(p)
        for level in LEVELS:
            xt = o.x_of(o.quantile_u(level))
            assert abs(core.quantile(q, level) - xt) <= 1.5 * ULP1 * xt
            assert close(core.cdf(q, xt), o.tail(o.u_of(xt)), 1e-10)
        mean, var = o.moments()
        assert close(core.mean(q), mean, 1e-15)
        assert close(core.var(q), var, 1e-13)


def test_normal_limit(core):
    """n = 10^10, sd_log 1e-4: log X = m + s/2 + sqrt(s/kappa) Z has mean m + E[s]/2 and
    variance v = E[s]/kappa + Var(s)/4 exactly, skewness g = (k3(s)/8 + 1.5 Var(s)/kappa) /
    v^1.5 ~ 3e-9 and excess kurtosis ~3/alpha ~ 6e-10: normal (with the skewness term of the
    Cornish-Fisher expansion) to ~3e-9 of its sd, so quantiles and truncated moments follow
    in closed form."""
    p = posterior(10 ** 10, 2.0, 1e-4)
    m, kappa, alpha, beta = p
    es, vs = beta / (alpha - 1), beta ** 2 / ((alpha - 1) ** 2 * (alpha - 2))
    k3 = 4 * beta ** 3 / ((alpha - 1) ** 3 * (alpha - 2) * (alpha - 3))
    mu, v = m + es / 2, es / kappa + vs / 4
    sd = math.sqrt(v)
    g = (k3 / 8 + 1.5 * vs / kappa) / sd ** 3
    q = quantity((NIG_LNMEAN, *p))
    for level in LEVELS:
        z = special.ndtri(level)
        x = core.quantile(q, level)
        z += g * (z * z - 1) / 6
        assert abs(decimal_offset(x, m, es / 2) - z * sd) < 5e-9 * sd + 3 * ULP1, level
    zq = special.ndtri(TRUNC)
    mean = math.exp(mu + v / 2) * special.ndtr(zq - sd) / TRUNC
    # E[X^2] - mean^2 cancels in doubles: the truncated variance of N(mu, v) times e^(2 mu),
    # to first order in sd: v (1 - zq phi(zq) / P - (phi(zq) / P)^2)
    phi = math.exp(-0.5 * zq * zq) / math.sqrt(2 * math.pi)
    var = math.exp(2 * mu) * v * (1 - zq * phi / TRUNC - (phi / TRUNC) ** 2)
    assert close(core.mean(q), mean, 1e-15)
    assert close(core.var(q), var, 1e-8)


def test_frames_join_continuously(core):
    """One value either side of the frame threshold, both frames agree with the oracle."""
    sd, n_lo, n_hi = 0.001, 10 ** 4, 10 ** 7
    while n_hi - n_lo > 1:              # the n where var_log crosses TIGHT_VAR
        mid = (n_lo + n_hi) // 2
        n_lo, n_hi = (mid, n_hi) if var_log(posterior(mid, 1.0, sd)) > TIGHT_VAR else (n_lo, mid)
    for n in (n_lo, n_hi):
        p = posterior(n, 1.0, sd)
        q, o = quantity((NIG_LNMEAN, *p)), Oracle(p)
        spread = math.sqrt(var_log(p))
        for level in LEVELS:
            xt = o.x_of(o.quantile_u(level))
            assert abs(math.log(core.quantile(q, level) / xt)) <= 1e-9 * spread + 2 * ULP1
            assert close(core.cdf(q, xt), o.tail(o.u_of(xt)), 1e-9)
        mean, var = o.moments()
        assert close(core.mean(q), mean, 1e-14)
        assert close(core.var(q), var, 1e-9)


def test_extreme_locations(core):
    """log x far from 0 (m = +-700): the tight frame's log x - m keeps its digits, and the
    answers stay finite where they are representable."""
    for m in (700.0, -700.0):
        p = (m, 1e10, 5e9, 1e6)
        q, o = quantity((NIG_LNMEAN, *p)), Oracle(p)
        for level in (0.025, 0.5, 0.975):
            xt = o.x_of(o.quantile_u(level))
            assert close(core.quantile(q, level), xt, 2 * ULP1)
            assert close(core.cdf(q, xt), o.tail(o.u_of(xt)), 1e-9)
    big = quantity((NIG_LNMEAN, 1e300, 1e10, 1e10, 1e6))
    assert core.mean(big) == math.inf and core.quantile(big, 0.5) == math.inf
    small = quantity((NIG_LNMEAN, -1e300, 1e10, 1e10, 1e6))
    assert core.mean(small) == 0.0 and core.var(small) == 0.0 and core.quantile(small, 0.5) == 0.0


# ---------------------------------------------------------------------------------------------
# Products: conversion rate x a tight lognormal mean
# ---------------------------------------------------------------------------------------------

class ProductOracle:
    """P(X Y <= t), X ~ Beta(a, b), Y the NIG_LNMEAN of `Oracle`, as E_Y[F_X(t / Y)]: a smooth
    integrand over Y's (y, Z) when Y is much tighter than X (the C code integrates over X with
    F_Y inside); Z by Gauss-Hermite."""

    def __init__(self, ab, p, panels=8, hermite=24):
        self.a, self.b = ab
        self.o = o = Oracle(p, panels)
        z, wz = np.polynomial.hermite_e.hermegauss(hermite)
        # log Y - m - s0/2 in units of sigma, on the (y, Z) grid
        self.u = o.mu[:, None] + o.sd[:, None] * z[None, :]
        self.w = o.wf[:, None] * (wz / math.sqrt(2 * math.pi))[None, :]

    def tail(self, t, upper=False):
        x = np.minimum(np.exp(self.o.u_of(t) * self.o.sigma - self.o.sigma * self.u), 1.0)
        f = special.betaincc if upper else special.betainc
        return float((self.w * f(self.a, self.b, x)).sum())


PRODUCTS = [   # (users, converters, mean_log, sd_log): severity n = converters
    (10 ** 7, 10 ** 6, 0.0, 0.01),
    (10 ** 5, 10 ** 4, 1.0, 1e-4),
    (10 ** 9, 10 ** 8, -1.0, 0.001),
    (10 ** 10, 10 ** 9, 2.0, 0.1),
]


@pytest.mark.parametrize("users,conv,mean_log,sd_log", PRODUCTS)
def test_product_with_tight_severity(core, users, conv, mean_log, sd_log):
    ab, p = (conv + 1.0, users - conv + 1.0), posterior(conv, mean_log, sd_log)
    q = quantity((BETA, *ab), (NIG_LNMEAN, *p))
    o, fine = ProductOracle(ab, p), ProductOracle(ab, p, panels=12, hermite=36)
    for level in (1e-6, 0.025, 0.5, 0.975, 1 - 1e-6):
        t = core.quantile(q, level)
        upper = level > 0.5
        target = 1.0 - level if upper else level
        # the oracle's own noise: SciPy's betainc with parameters ~1e9 wobbles by ~3e-12
        assert close(o.tail(t, upper), fine.tail(t, upper), 1e-11)
        assert close(o.tail(t, upper), target, 1e-9), (level, t)
    x = core.quantile(q, 0.3)
    assert close(core.cdf(q, x), o.tail(x), 1e-9)
    assert close(core.cdf(q, 1.0001 * x), o.tail(1.0001 * x), 1e-9)
    # moments: those of independent factors, the lognormal mean's truncated
    qy = quantity((NIG_LNMEAN, *p))
    mx, vx = ab[0] / (ab[0] + ab[1]), ab[0] * ab[1] / ((ab[0] + ab[1]) ** 2 * (ab[0] + ab[1] + 1))
    my, vy = core.mean(qy), core.var(qy)
    assert close(core.mean(q), mx * my, 1e-15)
    assert close(core.var(q), vx * vy + vx * my * my + vy * mx * mx, 1e-14)
