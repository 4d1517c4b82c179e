"""Quantiles and CDF of the revenue product (conversion rate x lognormal mean) against an
independent SciPy quadrature, at the promised 1e-9 relative, over a grid of posterior sizes.

The product X Y has X ~ Beta (the conversion-rate posterior) and Y the NIG_LNMEAN lognormal
mean; the oracle is tests/c/test_summary.py's: scipy.integrate.quad over logit X of
f_X F_Y(t / X), with F_Y on a vectorised Gauss-Legendre grid over log s whose two resolutions
are checked to agree far below the tolerance.  The sizes run from a handful of converters to
tens of thousands, and the lognormal posterior from 3 values to 10^4 (the loose frame, where
the oracle's plain arithmetic keeps its digits).
"""

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
