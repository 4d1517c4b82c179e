"""Quantiles and CDF of the revenue product (conversion rate x lognormal mean) against an
independent SciPy quadrature, at the promised 1e-9 relative, over a grid of posterior sizes
and the regimes that stress the method (one to three converters: a power-law tail of the
lognormal mean; a severity much wider than the rate; a rate near 1; levels 1e-6 from the
ends), and against a 20-digit mpmath quadrature (tests/golden/check_compound_entries.py's)
for the golden posterior and a few-converter one.  Also: several levels from one setup
(bw_intervals) give the numbers of one level at a time, and the vector kernel of the sums
of normal tails gives the same bits on every instruction set.

The product X Y has X ~ Beta (the conversion-rate posterior) and Y the NIG_LNMEAN lognormal
mean; the oracle is tests/c/test_summary.py's: scipy.integrate.quad over logit X of
f_X F_Y(t / X), with F_Y on a vectorised Gauss-Legendre grid over log s whose two resolutions
are checked to agree far below the tolerance.  The sizes run from a handful of converters to
tens of thousands, and the lognormal posterior from 3 values to 10^4 (the loose frame, where
the oracle's plain arithmetic keeps its digits).
"""

import ctypes
import importlib.util
import math
import pathlib

import pytest

_C = pathlib.Path(__file__).resolve().parent / "c"


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


_summary = _load("bw_c_test_summary_pq", _C / "test_summary.py")
_harness = _summary._h          # the same ctypes classes as the Core wrapper's
BETA, NIG_LNMEAN = _harness.BETA, _harness.NIG_LNMEAN
RTOL = 1e-9


@pytest.fixture(scope="module")
def core(tmp_path_factory):
    lib = _harness.build_core(["specfun.c", "summary.c"], tmp_path_factory.mktemp("pq"))
    return _summary.Core(lib)


def rate_posterior(users, converters):
    """Beta posterior of the conversion rate under the default Beta(1, 1) prior."""
    return (BETA, 1.0 + converters, 1.0 + users - converters)


def lognormal_posterior(n, mean_log=3.0, sd_log=0.8):
    """NIG_LNMEAN posterior of the lognormal mean from n values with the given log-scale
    moments, under the default prior (mu 0, kappa 1e-6, alpha 1, beta 1)."""
    k0, m0, a0, b0 = 1e-6, 0.0, 1.0, 1.0
    kn = k0 + n
    mn = (k0 * m0 + n * mean_log) / kn
    an = a0 + 0.5 * n
    bn = b0 + 0.5 * n * sd_log ** 2 + 0.5 * k0 * n * (mean_log - m0) ** 2 / kn
    return (NIG_LNMEAN, mn, kn, an, bn)


RATES = [(60, 3), (2000, 100), (200000, 10000)]
SEVERITIES = [3, 100, 10000]


def oracle(fx, fy, t, upper=False):
    return _summary.product_tail_oracle(fx, fy, t, upper)


@pytest.mark.parametrize("n", SEVERITIES)
def test_oracle_inner_grid_is_converged(n):
    fy = lognormal_posterior(n)
    g1, g2 = _summary.lnm_tail_grid(*fy[1:], 60), _summary.lnm_tail_grid(*fy[1:], 90)
    for T in (fy[1] - 0.5, fy[1], fy[1] + 0.5):
        for up in (False, True):
            assert _summary.rel(g1(T, up), g2(T, up)) < 1e-12


@pytest.mark.parametrize("users,converters", RATES)
@pytest.mark.parametrize("n", SEVERITIES)
def test_product_quantiles_and_cdf(core, users, converters, n):
    fx, fy = rate_posterior(users, converters), lognormal_posterior(n)
    q = _harness.quantity(fx, fy)
    for level in (0.025, 0.5, 0.975):
        t = core.quantile(q, level)
        upper = level > 0.5
        target = 1.0 - level if upper else level
        assert _summary.rel(oracle(fx, fy, t, upper), target) < RTOL, (level, t)
    lo, hi = core.interval(q, 0.9)
    assert _summary.rel(oracle(fx, fy, lo), 0.05) < RTOL
    assert _summary.rel(oracle(fx, fy, hi, True), 0.05) < RTOL
    # the CDF between and beyond the quantiles (points on the product's own scale: the
    # oracle's ranges leave out 2e-22 of the mass, so far tails are not its to judge)
    q10, q90 = core.quantile(q, 0.1), core.quantile(q, 0.9)
    for x in (q10, math.sqrt(q10 * q90), q90, q90 * (q90 / q10) ** 0.5):
        assert _summary.rel(core.cdf(q, x), oracle(fx, fy, x)) < RTOL, x
    assert math.isclose(core.cdf(q, core.quantile(q, 0.5)), 0.5, rel_tol=RTOL)


# ---------------------------------------------------------------------------------------- #
# The regimes of the shared-table method (csrc/summary.c, "Rate x lognormal mean")          #
# ---------------------------------------------------------------------------------------- #

REGIMES = {   # (Beta a, b), NIG_LNMEAN (m, kappa, alpha, beta)
    "golden": ((97.0, 305.0), (1.9023628268373598, 96.000001, 49.0, 22.726793351220923)),
    "one converter": ((2.0, 100.0), (3.5332, 1.000001, 1.5, 1.00001)),
    "three converters": ((4.0, 98.0), (3.0, 3.000001, 2.5, 2.2)),
    "wide severity": ((101.0, 901.0), (1.0, 100.000001, 51.0, 450.0)),
    "rate near 0.9": ((901.0, 101.0), (1.0, 900.000001, 451.0, 289.0)),
    "segment": ((11.0, 491.0), (3.0, 10.000001, 6.0, 4.2)),
}
LEVELS = (1e-6, 0.025, 0.5, 0.975, 1.0 - 1e-6)


def regime(name):
    (a, b), nig = REGIMES[name]
    fx, fy = (BETA, a, b), (NIG_LNMEAN, *nig)
    return fx, fy, _harness.quantity(fx, fy)


@pytest.mark.parametrize("name", sorted(REGIMES))
def test_regimes_against_scipy(core, name):
    fx, fy, q = regime(name)
    for level in LEVELS:
        t = core.quantile(q, level)
        upper = level > 0.5
        target = 1.0 - level if upper else level
        if math.isinf(t):
            # beyond the double range (one converter: log revenue has a power-law tail):
            # the largest double is still below the quantile
            assert oracle(fx, fy, 1.7e308, upper) > target, (level, t)
            continue
        assert _summary.rel(oracle(fx, fy, t, upper), target) < RTOL, (level, t)


@pytest.fixture(scope="module")
def builder(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pq_levels")
    return lambda sources, flags=(): _harness.build_core(sources, tmp, flags)


def _levels_lib(builder, flags=()):
    lib = builder(["specfun.c", "summary.c"], flags)
    D = ctypes.c_double
    lib.bw_intervals.argtypes = [ctypes.POINTER(_harness.Quantity), ctypes.POINTER(D),
                                 ctypes.c_int, ctypes.POINTER(D)]
    lib.bw_interval.argtypes = [ctypes.POINTER(_harness.Quantity), D, ctypes.POINTER(D)]
    return lib


def _intervals(lib, q, levels):
    n = len(levels)
    out = (ctypes.c_double * (2 * n))()
    assert lib.bw_intervals(ctypes.byref(q), (ctypes.c_double * n)(*levels), n, out) == 0
    return [(out[2 * i], out[2 * i + 1]) for i in range(n)]


@pytest.mark.parametrize("name", sorted(REGIMES))
def test_levels_together_are_the_levels_alone(builder, name):
    lib = _levels_lib(builder)
    q = regime(name)[2]
    levels = (0.95, 0.9, 0.8)
    for level, pair in zip(levels, _intervals(lib, q, levels)):
        one = (ctypes.c_double * 2)()
        assert lib.bw_interval(ctypes.byref(q), level, one) == 0
        assert (one[0], one[1]) == pair, level


def test_same_bits_on_every_instruction_set(builder):
    """The SSE2 build of the normal-tail kernel (no dispatch) and the dispatched one (AVX2
    where the CPU has it) give the same intervals, bit for bit."""
    base = _levels_lib(builder, ("-DBW_NO_SIMD_DISPATCH",))
    best = _levels_lib(builder)
    for name in sorted(REGIMES):
        q = regime(name)[2]
        assert _intervals(base, q, (0.95, 0.5)) == _intervals(best, q, (0.95, 0.5)), name


def _mp_revenue():
    path = pathlib.Path(__file__).resolve().parent / "golden" / "check_compound_entries.py"
    return _load("bw_check_compound_entries", path)


@pytest.mark.parametrize("name,level", [("golden", 0.025), ("golden", 0.975),
                                        ("three converters", 0.975)])
def test_against_mpmath(core, name, level):
    """20 digits, Gauss-Legendre over both variables (the golden check's oracle, whose
    resolution 3 agrees with resolution 4 to ~1e-20 on the golden posterior)."""
    mp = pytest.importorskip("mpmath")
    oracle_mod = _mp_revenue()
    (a, b), nig = REGIMES[name]
    t = core.quantile(regime(name)[2], level)
    upper = level > 0.5
    with mp.workdps(20):
        tail, _ = oracle_mod.Revenue(a, b, *nig, degree=3).tail_density(mp.log(t), upper)
    target = 1.0 - level if upper else level
    assert abs(float(tail) / target - 1.0) < 1e-12, (t, float(tail))


def test_normal_tail_kernel_against_mpmath(builder):
    """bw_norm_mix's Phi(z), Phi(-z) and phi(z), each to a few ulps relative (the smaller
    tail computed directly), on both instruction-set builds."""
    mp = pytest.importorskip("mpmath")
    D, P = ctypes.c_double, ctypes.POINTER(ctypes.c_double)
    zs = [-37.5 + 75.0 * i / 400 + 1e-3 * math.sin(i) for i in range(401)]
    for flags in ((), ("-DBW_NO_SIMD_DISPATCH",)):
        lib = builder(["specfun.c"], flags)
        lib.bw_norm_mix.argtypes = [P, P, P, P, ctypes.c_int, D, P]
        one, zero, out = D(1.0), D(0.0), (D * 5)()
        worst = 0.0
        with mp.workdps(30):
            for z in zs:
                lib.bw_norm_mix(ctypes.byref(one), ctypes.byref(zero), ctypes.byref(one),
                                ctypes.byref(one), 1, z, out)
                for got, want in ((out[0], mp.ncdf(z)), (out[1], mp.ncdf(-z)),
                                  (out[2], mp.npdf(z))):
                    worst = max(worst, float(abs(got / want - 1)))
                assert out[3] == out[0] and out[4] == out[1]
        assert worst < 8 * 2.0 ** -53, (flags, worst)
