"""Exact posterior summaries of the pure-C core (csrc/summary.c, csrc/specfun.c) against SciPy.

The contract is agreement with an independent SciPy computation to 1e-9 relative (most values
agree to ~1e-13).  Where SciPy's own inverse functions are known to lose digits (Beta ppf with
one parameter ~1e3 and the other ~1e7; incomplete gamma with shape >= 1e6) the oracle is
SciPy's forward distribution function (a "backward" check in quantile units) or, for the
Gamma family with huge shapes, the Cornish-Fisher expansion whose truncation error is stated
where it is used.
"""

import ctypes
import importlib.util
import math
import pathlib
import sys

import numpy as np
import pytest
from scipy import integrate, optimize, special, stats


def _harness():
    """tests/c/conftest.py as a module.

    The plain `from conftest import ...` works only while no other rootless conftest.py (the
    suite has tests/conftest.py) holds the name "conftest" in sys.modules, so take it by path.
    """
    path = pathlib.Path(__file__).resolve().with_name("conftest.py")
    mod = sys.modules.get("conftest")
    if mod is not None and pathlib.Path(getattr(mod, "__file__", "") or ".").resolve() == path:
        return mod
    spec = importlib.util.spec_from_file_location("bw_c_conftest", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


_h = _harness()
quantity, Quantity = _h.quantity, _h.Quantity
BETA, NIG_MEAN, NIG_LNMEAN, GAMMA, INVGAMMA = _h.BETA, _h.NIG_MEAN, _h.NIG_LNMEAN, _h.GAMMA, _h.INVGAMMA

BW_OK, BW_E_DOMAIN, BW_E_NOCONV = 0, 1, 2
TRUNC = 0.9999                  # BW_TRUNC_LEVEL
RTOL = 1e-9                     # the contract
LEVELS = [1e-6, 0.005, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.975, 0.995, 1 - 1e-6]


# ---------------------------------------------------------------------------------------------
# The library
# ---------------------------------------------------------------------------------------------

class Core:
    """ctypes face of bw_mean / bw_variance / bw_cdf / bw_quantile / bw_interval."""

    def __init__(self, lib):
        D, Q = ctypes.c_double, ctypes.POINTER(Quantity)
        for name in ("bw_mean", "bw_variance"):
            getattr(lib, name).argtypes = [Q, ctypes.POINTER(D)]
        for name in ("bw_cdf", "bw_quantile"):
            getattr(lib, name).argtypes = [Q, D, ctypes.POINTER(D)]
        lib.bw_interval.argtypes = [Q, D, ctypes.POINTER(D)]
        self.lib = lib

    def call(self, name, q, *args):
        """(status, value) of one entry point; value is a pair for bw_interval."""
        n = 2 if name == "bw_interval" else 1
        out = (ctypes.c_double * n)(*([-7.0] * n))
        st = getattr(self.lib, name)(ctypes.byref(q), *[ctypes.c_double(a) for a in args], out)
        return st, (list(out) if n == 2 else out[0])

    def _ok(self, name, q, *args):
        st, v = self.call(name, q, *args)
        assert st == BW_OK, f"{name}{args} returned status {st}"
        assert not np.any(np.isnan(v)), f"{name}{args} gave NaN"
        return v

    def mean(self, q):
        return self._ok("bw_mean", q)

    def var(self, q):
        return self._ok("bw_variance", q)

    def cdf(self, q, x):
        return self._ok("bw_cdf", q, x)

    def quantile(self, q, level):
        return self._ok("bw_quantile", q, level)

    def interval(self, q, level):
        return self._ok("bw_interval", q, level)


@pytest.fixture(scope="module")
def core(core_builder):
    return Core(core_builder(["specfun.c", "summary.c"]))


def rel(a, b):
    return abs(a - b) / abs(b) if b != 0 else abs(a)


def ref_quantile(dist, level):
    """SciPy quantile, through the upper tail above 1/2 so that 1 - level stays exact."""
    return dist.ppf(level) if level <= 0.5 else dist.isf(1.0 - level)


# ---------------------------------------------------------------------------------------------
# The numbers of the brief
# ---------------------------------------------------------------------------------------------

def test_beta_examples(core):
    q = quantity((BETA, 82, 28))                       # Beta(80, 20) after 2 of 10
    assert core.mean(q) == pytest.approx(0.7454545455, abs=1e-10)
    lo, hi = core.interval(q, 0.95)
    assert lo == pytest.approx(0.66043149, abs=5e-9)
    assert hi == pytest.approx(0.82202702, abs=5e-9)
    lo, hi = core.interval(quantity((BETA, 31, 71)), 0.95)
    assert lo == pytest.approx(0.21897873, abs=5e-9)
    assert hi == pytest.approx(0.39614713, abs=5e-9)


# ---------------------------------------------------------------------------------------------
# Closed-form families against SciPy
# ---------------------------------------------------------------------------------------------

BETA_AB = [0.05, 0.5, 1.0, 2.5, 31.0, 82.0, 1e3, 1e5, 1e7]
# SciPy's beta.ppf / isf lose digits (to ~1e-5) for these; its forward betainc does not.
SCIPY_BETA_PPF_WEAK = {(1e3, 1e7), (1e7, 1e3)}


@pytest.mark.parametrize("a", BETA_AB)
def test_beta_quantiles(core, a):
    for b in BETA_AB:
        q, dist = quantity((BETA, a, b)), stats.beta(a, b)
        for level in LEVELS:
            x = core.quantile(q, level)
            # backward: SciPy's tail at our quantile, in quantile units (tail error / (x f(x)))
            upper = level > 0.5
            tail = special.betaincc(a, b, x) if upper else special.betainc(a, b, x)
            target = 1.0 - level if upper else level
            assert abs(tail - target) / (x * dist.pdf(x)) < RTOL, (a, b, level, x)
            if (a, b) not in SCIPY_BETA_PPF_WEAK:
                assert rel(x, ref_quantile(dist, level)) < RTOL, (a, b, level, x)
        lo, hi = core.interval(q, 0.9)           # (1 - 0.9) / 2 is 0.05 to one rounding
        assert rel(lo, core.quantile(q, 0.05)) < 1e-12 and rel(hi, core.quantile(q, 0.95)) < 1e-12


@pytest.mark.parametrize("a", BETA_AB)
def test_beta_moments_and_cdf(core, a):
    for b in BETA_AB:
        q, dist = quantity((BETA, a, b)), stats.beta(a, b)
        assert rel(core.mean(q), dist.mean()) < 1e-14
        assert rel(core.var(q), dist.var()) < 1e-13
        for x in (dist.ppf(0.001), dist.median(), dist.isf(0.01)):
            if 0.0 < x < 1.0:
                assert rel(core.cdf(q, x), special.betainc(a, b, x)) < RTOL, (a, b, x)
    q = quantity((BETA, a, 3.0))
    assert core.cdf(q, 0.0) == 0.0 and core.cdf(q, -1.0) == 0.0 and core.cdf(q, 1.0) == 1.0


T_ALPHA = [0.5, 1.0, 1.5, 2.5, 5.0, 50.0, 5e3, 5e5, 5e7]       # df = 2 alpha: 1 .. 1e8
T_LOC = [(0.0, 1.0, 1.0), (3.0, 50.0, 7.0), (-2e3, 1e4, 3e5)]    # (m, kappa, beta)


@pytest.mark.parametrize("alpha", T_ALPHA)
def test_nig_mean_student_t(core, alpha):
    df = 2 * alpha
    for m, kappa, beta in T_LOC:
        q = quantity((NIG_MEAN, m, kappa, alpha, beta))
        scale = math.sqrt(beta / (alpha * kappa))
        dist = stats.t(df, loc=m, scale=scale)
        for level in LEVELS:
            v = core.quantile(q, level)
            ref = ref_quantile(dist, level)
            # relative to the scale too: near the centre m the quantile itself may be ~0
            assert abs(v - ref) < RTOL * max(abs(ref), scale), (alpha, m, level, v, ref)
        assert core.mean(q) == m
        if alpha > 1:
            assert rel(core.var(q), dist.var()) < 1e-13
        else:
            assert core.var(q) == math.inf
        for x in (m - 3 * scale, m + 0.1 * scale, m + 40 * scale):
            assert rel(core.cdf(q, x), dist.cdf(x)) < RTOL


def cornish_fisher_gamma(a, level):
    """Gamma(a, 1) quantile from Cornish-Fisher to O(1/a) in the standardized variable.

    The omitted terms are O(a^-3/2) in the standardized variable, i.e. O(a^-2) relative in x:
    below 1e-11 for a >= 1e6 at the levels used (|z| <= 4.8), far inside RTOL.
    """
    z = special.ndtri(level) if level <= 0.5 else -special.ndtri(1.0 - level)
    w = z + (z * z - 1) / (3 * math.sqrt(a)) + (z ** 3 - 7 * z) / (36 * a)
    return a + math.sqrt(a) * w


GAMMA_SHAPES = [0.05, 0.3, 1.0, 2.5, 19.5, 20.5, 100.0, 1e4, 1e5, 1e6, 1e8]


@pytest.mark.parametrize("a", GAMMA_SHAPES)
def test_gamma_and_inverse_gamma(core, a):
    for b in (0.01, 3.0):
        qg, qi = quantity((GAMMA, a, b)), quantity((INVGAMMA, a, b))
        g, ig = stats.gamma(a, scale=1 / b), stats.invgamma(a, scale=b)
        for level in LEVELS:
            xg, xi = core.quantile(qg, level), core.quantile(qi, level)
            if a <= 1e5:
                # SciPy's incomplete gamma and its inverse are accurate up to here
                assert rel(xg, ref_quantile(g, level)) < RTOL, (a, b, level)
                assert rel(xi, ref_quantile(ig, level)) < RTOL, (a, b, level)
            else:
                assert rel(xg, cornish_fisher_gamma(a, level) / b) < RTOL, (a, b, level)
                assert rel(xi, b / cornish_fisher_gamma(a, 1.0 - level)) < RTOL, (a, b, level)
        # the median of 1/lambda is 1 / the median of lambda
        assert rel(core.quantile(qi, 0.5) * core.quantile(qg, 0.5), 1.0) < 1e-14
        assert rel(core.mean(qg), a / b) < 1e-15 and rel(core.var(qg), a / b ** 2) < 1e-15
        if a > 1:
            assert rel(core.mean(qi), ig.mean()) < 1e-14
        else:
            assert core.mean(qi) == math.inf
        if a > 2:
            assert rel(core.var(qi), ig.var()) < 1e-13
        else:
            assert core.var(qi) == math.inf
        if a <= 1e5:
            for x in (g.ppf(1e-3), g.median(), g.isf(1e-4)):
                assert rel(core.cdf(qg, x), g.cdf(x)) < RTOL
                assert rel(core.cdf(qi, 1 / x), ig.cdf(1 / x)) < RTOL


# ---------------------------------------------------------------------------------------------
# NIG_LNMEAN: X = exp(mu + s/2), s ~ InvGamma(alpha, beta), mu | s ~ N(m, s / kappa)
# ---------------------------------------------------------------------------------------------

def log_invgamma_density_of_log(alpha, beta, u):
    """log density of u = log s for s ~ InvGamma(alpha, scale beta), without cancellation.

    With G = beta e^-u ~ Gamma(alpha, 1): alpha log G - G - lgamma(alpha).  For large alpha
    the Stirling form alpha (log1p(d) - d) + log sqrt(alpha / 2 pi) - delta(alpha),
    d = G / alpha - 1, keeps ~1e-13 where the plain form would cancel to ~1e-9.
    """
    G = beta * np.exp(-u)
    if alpha < 10:
        return alpha * np.log(G) - G - special.gammaln(alpha)
    d = G / alpha - 1
    lm = np.where(np.abs(d) < 0.01,
                  -sum((-d) ** j / j for j in range(2, 12)) * 1.0,   # log1p(d) - d, series
                  np.log1p(d) - d)
    r2 = 1.0 / (alpha * alpha)
    delta = (1 / 12 - r2 * (1 / 360 - r2 * (1 / 1260 - r2 / 1680))) / alpha
    return alpha * lm + 0.5 * math.log(alpha / (2 * math.pi)) - delta


def s_breakpoints(alpha, beta):
    """log s at InvGamma quantiles: the mass outside the outer two is 2e-22."""
    ps = [1e-22, 1e-12, 1e-6, 1e-3, 0.1, 0.5]
    lo = [math.log(beta / stats.gamma.isf(p, alpha)) for p in ps]
    hi = [math.log(beta / stats.gamma.ppf(p, alpha)) for p in reversed(ps[:-1])]
    return lo + hi


def lnm_tail_oracle(m, kappa, alpha, beta, x, upper=False):
    """P(X <= x) (or P(X > x)) by scipy.integrate.quad over log s, piecewise at quantiles."""
    T = math.log(x)

    def f(u):
        s = math.exp(u)
        z = (T - m - s / 2) * math.sqrt(kappa / s)
        return math.exp(log_invgamma_density_of_log(alpha, beta, u)) * special.ndtr(-z if upper else z)

    pts = s_breakpoints(alpha, beta)
    return sum(integrate.quad(f, a, b, epsabs=0, epsrel=1e-13, limit=200)[0]
               for a, b in zip(pts[:-1], pts[1:]))


def lnm_quantile_oracle(m, kappa, alpha, beta, level, near):
    """brentq on log x of the oracle's tail, bracketed around `near` (any start would do)."""
    upper = level > 0.5
    target = 1.0 - level if upper else level
    sign = -1.0 if upper else 1.0

    def g(T):
        t = lnm_tail_oracle(m, kappa, alpha, beta, math.exp(T), upper)
        return sign * (math.log(max(t, 1e-300)) - math.log(target))

    d, c = 1e-6, math.log(near)
    while g(c - d) > 0:
        d *= 4
    lo, d = c - d, 1e-6
    while g(c + d) < 0:
        d *= 4
    return math.exp(optimize.brentq(g, lo, c + d, xtol=1e-15, rtol=4 * np.finfo(float).eps))


LNM_CASES = [
    (0.5, 20.0, 10.0, 8.0),         # moderate
    (3.0, 1000.0, 500.0, 400.0),    # many observations
    (-1.0, 5.0, 2.5, 3.0),          # few: heavy right tail
    (1.0, 4.0, 1.5, 2.5),           # very few: alpha < 2, infinite variance of s
]


@pytest.mark.parametrize("m,kappa,alpha,beta", LNM_CASES)
def test_nig_lnmean_quantiles(core, m, kappa, alpha, beta):
    q = quantity((NIG_LNMEAN, m, kappa, alpha, beta))
    for level in (1e-6, 0.025, 0.5, 0.975):
        v = core.quantile(q, level)
        ref = lnm_quantile_oracle(m, kappa, alpha, beta, level, v)
        assert rel(v, ref) < RTOL, (level, v, ref)
    # the far upper tail, as a backward check (the brentq oracle is slow out there)
    v = core.quantile(q, 1 - 1e-6)
    if v == math.inf:   # beyond the double range (alpha = 1.5: log x ~ 1e4), and rightly so
        assert lnm_tail_oracle(m, kappa, alpha, beta, 1e300, upper=True) > 1e-6
    else:
        assert rel(lnm_tail_oracle(m, kappa, alpha, beta, v, upper=True), 1e-6) < RTOL
    lo, hi = core.interval(q, 0.95)
    assert rel(lo, core.quantile(q, 0.025)) < 1e-12 and rel(hi, core.quantile(q, 0.975)) < 1e-12


@pytest.mark.parametrize("m,kappa,alpha,beta", LNM_CASES + [(0.0, 1e6, 5e5, 5e5)])
def test_nig_lnmean_cdf(core, m, kappa, alpha, beta):
    q = quantity((NIG_LNMEAN, m, kappa, alpha, beta))
    for level in (1e-4, 0.3, 0.9):
        x = core.quantile(q, level)
        for xx in (x, x * 1.0001):
            assert rel(core.cdf(q, xx), lnm_tail_oracle(m, kappa, alpha, beta, xx)) < RTOL
    assert core.cdf(q, 0.0) == 0.0 and core.cdf(q, -3.0) == 0.0


def truncated_moments_oracle(m, kappa, alpha, beta, T):
    """E[X 1{log X <= T}], E[X^2 1{log X <= T}] and P(log X <= T) as double integrals.

    Inner: over y = log X given s, the integrand e^(k y) N(y; m + s/2, s/kappa) integrated
    numerically (800-node composite Gauss-Legendre in the standardized variable on
    [-40, (T - mu)/sd], where the normal density is below 1e-300 past the left end), not by
    the lognormal closed form the C code uses.  Outer: quad over log s.
    """
    gx, gw = special.roots_legendre(40)

    def inner(u):
        s = math.exp(u)
        mu, sd = m + s / 2, math.sqrt(s / kappa)
        tau = (T - mu) / sd
        if tau < -38:
            return np.zeros(3)
        edges = np.linspace(-40.0, tau, 21)
        a, b = edges[:-1, None], edges[1:, None]
        z = (0.5 * (a + b) + 0.5 * (b - a) * gx).ravel()
        w = (0.5 * (b - a) * gw).ravel() * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
        y = mu + sd * z
        dens = math.exp(log_invgamma_density_of_log(alpha, beta, u))
        return dens * np.array([w.sum(), (w * np.exp(y)).sum(), (w * np.exp(2 * y)).sum()])

    pts = s_breakpoints(alpha, beta)
    out = np.zeros(3)
    for k in range(3):
        out[k] = sum(integrate.quad(lambda u: inner(u)[k], a, b, epsabs=0, epsrel=1e-12,
                                    limit=200)[0] for a, b in zip(pts[:-1], pts[1:]))
    return out


@pytest.mark.parametrize("m,kappa,alpha,beta", [(0.5, 20.0, 10.0, 8.0), (-1.0, 5.0, 2.5, 3.0)])
def test_nig_lnmean_truncated_moments(core, m, kappa, alpha, beta):
    q = quantity((NIG_LNMEAN, m, kappa, alpha, beta))
    T = math.log(core.quantile(q, TRUNC))
    p0, m1, m2 = truncated_moments_oracle(m, kappa, alpha, beta, T)
    assert rel(p0, TRUNC) < 1e-10
    mean, var = m1 / p0, m2 / p0 - (m1 / p0) ** 2
    assert rel(core.mean(q), mean) < RTOL
    assert rel(core.var(q), var) < RTOL
    # the reported mean is below the untruncated one, which is infinite
    assert core.mean(q) < core.quantile(q, TRUNC)


def test_nig_lnmean_narrow_variance_has_no_cancellation(core):
    """sd/mean ~ 1e-3: E[X^2] - E[X]^2 would lose 6 digits; the C code works about the mean."""
    m, kappa, alpha, beta = 0.0, 1e6, 5e5, 5e5
    q = quantity((NIG_LNMEAN, m, kappa, alpha, beta))
    # log X is nearly N(m + E[s]/2, E[s]/kappa + Var[s]/4); the truncation at 3.7 sd changes
    # the moments by ~1e-4 relative, so the lognormal values are a check to ~1e-3
    es, vs = beta / (alpha - 1), beta ** 2 / ((alpha - 1) ** 2 * (alpha - 2))
    mu, v = m + es / 2, es / kappa + vs / 4
    assert rel(core.mean(q), math.exp(mu + v / 2)) < 1e-4
    assert rel(core.var(q), math.expm1(v) * math.exp(2 * mu + v)) < 2e-3


# ---------------------------------------------------------------------------------------------
# Products X * Y of independent factors
# ---------------------------------------------------------------------------------------------

_GL_X, _GL_W = special.roots_legendre(24)


def lnm_tail_grid(m, kappa, alpha, beta, panels):
    """Vectorised NIG_LNMEAN tails: composite Gauss-Legendre over log s with `panels` panels
    of 24 nodes between the 1e-22 quantiles.  Agreement of two resolutions (asserted in the
    tests that use it) is its accuracy statement."""
    pts = s_breakpoints(alpha, beta)
    edges = np.linspace(pts[0], pts[-1], panels + 1)
    a, b = edges[:-1, None], edges[1:, None]
    u = (0.5 * (a + b) + 0.5 * (b - a) * _GL_X).ravel()
    w = (0.5 * (b - a) * _GL_W).ravel() * np.exp(log_invgamma_density_of_log(alpha, beta, u))
    s = np.exp(u)

    def tail(T, upper):
        z = (T - m - s / 2) * np.sqrt(kappa / s)
        return float((special.ndtr(-z if upper else z) * w).sum())

    return tail


def product_tail_oracle(fx, fy, t, upper=False, panels=60):
    """P(X Y <= t) (or > t) = E_X[F_Y(t / X)] by quad over logit X (X ~ Beta) or log G
    (X ~ Gamma); F_Y by SciPy (inverse Gamma) or the vectorised NIG_LNMEAN grid.

    Accuracy ~1e-12: quad to epsrel 1e-12 on panels between the outer factor's quantiles
    (mass outside 2e-22), the inner grid checked against a finer one to 1e-12."""
    kind, a, b = fx
    if fy[0] == NIG_LNMEAN:
        grid = lnm_tail_grid(*fy[1:], panels)

        def FY(logy):
            return grid(logy, upper)
    elif fy[0] == INVGAMMA:
        ay, by = fy[1:]

        def FY(logy):       # Y <= y  iff  G >= by / y
            g = by * math.exp(-logy)
            return special.gammainc(ay, g) if upper else special.gammaincc(ay, g)
    if kind == BETA:
        def lx_of(v):
            return -np.logaddexp(0.0, -v)

        def dens(v):
            return math.exp(a * lx_of(v) - b * np.logaddexp(0.0, v) - special.betaln(a, b))
        qs = [special.logit(stats.beta.ppf(p, a, b)) for p in (1e-22, 1e-12, 1e-6, 0.01, 0.2)]
        qs += [special.logit(stats.beta.isf(p, a, b)) for p in (0.5, 0.2, 0.01, 1e-6, 1e-12, 1e-22)]
    else:   # GAMMA(a, rate b): X = G / b, v = log G
        def lx_of(v):
            return v - math.log(b)

        def dens(v):
            return math.exp(a * v - math.exp(v) - special.gammaln(a))
        qs = [math.log(stats.gamma.ppf(p, a)) for p in (1e-22, 1e-12, 1e-6, 0.01, 0.2)]
        qs += [math.log(stats.gamma.isf(p, a)) for p in (0.5, 0.2, 0.01, 1e-6, 1e-12, 1e-22)]

    def f(v):
        return dens(v) * FY(math.log(t) - float(lx_of(v)))

    return sum(integrate.quad(f, lo, hi, epsabs=0, epsrel=1e-12, limit=200)[0]
               for lo, hi in zip(qs[:-1], qs[1:]))


PRODUCTS = [
    ((BETA, 65, 936), (NIG_LNMEAN, 3.5, 66.0, 35.0, 30.0)),        # revenue per user
    ((BETA, 3, 50), (NIG_LNMEAN, 1.0, 4.0, 3.0, 2.5)),             # very few converters
    ((BETA, 650, 9351), (INVGAMMA, 651, 650 * 30.0)),              # exponential severity
    ((BETA, 2, 9), (INVGAMMA, 3, 40.0)),
    ((GAMMA, 40, 8.0), (INVGAMMA, 12, 30.0)),
]


@pytest.mark.parametrize("fx,fy", PRODUCTS)
def test_product_quantiles(core, fx, fy):
    q = quantity(fx, fy)
    if fy[0] == NIG_LNMEAN:
        # the oracle's inner grid: two resolutions agree far below the tolerance
        g1, g2 = lnm_tail_grid(*fy[1:], 60), lnm_tail_grid(*fy[1:], 90)
        for T in (fy[1] - 1, fy[1], fy[1] + 2):
            for up in (False, True):
                assert rel(g1(T, up), g2(T, up)) < 1e-12
    for level in (1e-6, 0.025, 0.5, 0.975, 1 - 1e-6):
        t = core.quantile(q, level)
        upper = level > 0.5
        target = 1.0 - level if upper else level
        assert rel(product_tail_oracle(fx, fy, t, upper), target) < RTOL, (level, t)
    lo, hi = core.interval(q, 0.95)
    assert rel(lo, core.quantile(q, 0.025)) < 1e-12 and rel(hi, core.quantile(q, 0.975)) < 1e-12
    x = core.quantile(q, 0.3)
    assert rel(core.cdf(q, x), product_tail_oracle(fx, fy, x)) < RTOL
    assert rel(core.cdf(q, 2 * x), product_tail_oracle(fx, fy, 2 * x)) < RTOL
    assert core.cdf(q, 0.0) == 0.0


def test_product_with_a_real_factor(core):
    """Beta x Student t (NIG_MEAN can be negative): P(XY <= t) = E_X[F_Y(t / X)]."""
    a, b, my, ky, ay, by = 20.0, 30.0, 0.4, 10.0, 6.0, 5.0
    q = quantity((BETA, a, b), (NIG_MEAN, my, ky, ay, by))
    td = stats.t(2 * ay, loc=my, scale=math.sqrt(by / (ay * ky)))

    def oracle(t, upper):
        f = (lambda x: stats.beta.pdf(x, a, b) * (td.sf(t / x) if upper else td.cdf(t / x)))
        lo, hi = stats.beta.ppf(1e-18, a, b), stats.beta.isf(1e-18, a, b)
        return integrate.quad(f, lo, hi, epsabs=0, epsrel=1e-13, limit=200)[0]

    for level in (1e-6, 0.025, 0.3, 0.5, 0.975, 1 - 1e-6):
        t = core.quantile(q, level)
        upper = level > 0.5
        assert rel(oracle(t, upper), 1.0 - level if upper else level) < RTOL, (level, t)
    lo, hi = core.interval(q, 0.9)
    assert lo < 0.0 < core.quantile(q, 0.5) < hi          # the product does cross zero
    assert rel(core.cdf(q, -0.05), oracle(-0.05, False)) < RTOL


def test_product_moments(core):
    fx, fy = (BETA, 650, 9351), (INVGAMMA, 651, 650 * 30.0)
    q = quantity(fx, fy)
    X, Y = stats.beta(*fx[1:]), stats.invgamma(fy[1], scale=fy[2])
    assert rel(core.mean(q), X.mean() * Y.mean()) < 1e-14
    ex2, ey2 = X.var() + X.mean() ** 2, Y.var() + Y.mean() ** 2
    assert rel(core.var(q), ex2 * ey2 - (X.mean() * Y.mean()) ** 2) < 1e-9
    # NIG_LNMEAN factor: its truncated moments enter the same formulas
    fy = (NIG_LNMEAN, 0.5, 20.0, 10.0, 8.0)
    q, qy = quantity(fx, fy), quantity(fy)
    my, vy = core.mean(qy), core.var(qy)
    assert rel(core.mean(q), X.mean() * my) < 1e-14
    assert rel(core.var(q), ex2 * (vy + my * my) - (X.mean() * my) ** 2) < 1e-9
    # an infinite factor variance makes the product's infinite
    assert core.var(quantity(fx, (INVGAMMA, 1.5, 2.0))) == math.inf
    assert core.mean(quantity(fx, (INVGAMMA, 0.8, 2.0))) == math.inf


# ---------------------------------------------------------------------------------------------
# Domain
# ---------------------------------------------------------------------------------------------

BAD_FACTORS = [
    (BETA, 0.0, 1.0), (BETA, -1.0, 2.0), (BETA, 1.0, math.inf), (BETA, math.nan, 1.0),
    (GAMMA, 1.0, 0.0), (INVGAMMA, math.inf, 1.0),
    (NIG_MEAN, math.nan, 1.0, 1.0, 1.0), (NIG_MEAN, 0.0, 0.0, 1.0, 1.0),
    (NIG_LNMEAN, 0.0, 1.0, -2.0, 1.0), (NIG_LNMEAN, math.inf, 1.0, 2.0, 1.0),
    (99, 1.0, 1.0),
]


@pytest.mark.parametrize("bad", BAD_FACTORS)
def test_domain_errors_parameters(core, bad):
    for q in (quantity(bad), quantity((BETA, 2, 3), bad), quantity(bad, (INVGAMMA, 3, 2))):
        for name, args in (("bw_mean", ()), ("bw_variance", ()), ("bw_cdf", (0.5,)),
                           ("bw_quantile", (0.5,)), ("bw_interval", (0.9,))):
            st, v = core.call(name, q, *args)
            assert st == BW_E_DOMAIN, (name, bad)
            assert v == -7.0 or v == [-7.0, -7.0], "output written on error"


def test_domain_errors_levels_and_shapes(core):
    q = quantity((BETA, 2, 3))
    for level in (0.0, 1.0, -0.5, 1.5, math.nan, math.inf):
        assert core.call("bw_quantile", q, level)[0] == BW_E_DOMAIN
        assert core.call("bw_interval", q, level)[0] == BW_E_DOMAIN
    assert core.call("bw_cdf", q, math.nan)[0] == BW_E_DOMAIN
    for n in (0, 3, -1):
        bad = quantity((BETA, 2, 3))
        bad.nfactors = n
        assert core.call("bw_mean", bad)[0] == BW_E_DOMAIN
    # no CDF or quantile for a product without a positive factor of closed-form density
    pair = quantity((NIG_LNMEAN, 0.0, 1.0, 2.0, 1.0), (NIG_LNMEAN, 1.0, 2.0, 3.0, 1.0))
    assert core.call("bw_quantile", pair, 0.5)[0] == BW_E_DOMAIN
    assert core.call("bw_cdf", pair, 1.0)[0] == BW_E_DOMAIN
    assert core.call("bw_mean", pair)[0] == BW_OK


def test_extreme_but_valid_inputs_give_numbers(core):
    """Tiny and huge parameters and levels: statuses OK, no NaN, ordered intervals (ends may be
    0 or inf where the quantile leaves the double range; a truncated mean may be inf)."""
    cases = [
        quantity((BETA, 0.05, 0.05)), quantity((BETA, 1e7, 0.05)), quantity((BETA, 0.05, 1e7)),
        quantity((GAMMA, 0.05, 1e-3)), quantity((INVGAMMA, 1e8, 1e8)),
        quantity((NIG_MEAN, 0.0, 1e-3, 0.05, 1e3)), quantity((NIG_LNMEAN, 0.0, 0.5, 0.6, 0.3)),
        quantity((NIG_LNMEAN, -30.0, 1e8, 1e8, 1e8)), quantity((NIG_LNMEAN, 0.0, 1e8, 0.06, 1e-6)),
        quantity((BETA, 1, 1e6), (INVGAMMA, 1.2, 5.0)),
        quantity((BETA, 0.05, 30.0), (NIG_MEAN, 0.0, 1e-3, 0.05, 1e3)),
    ]
    for q in cases:
        median = core.quantile(q, 0.5)
        for level in (1e-9, 0.95, 1 - 1e-9):
            lo, hi = core.interval(q, level)
            assert lo <= median <= hi
        assert core.mean(q) == core.mean(q)
        assert core.var(q) >= 0.0
