"""Variational mixtures of csrc/mixture.c: parameter recovery, degenerate data, scale
invariance, a monotone ELBO on every fit, an independent NumPy ELBO, agreement with a long
Gibbs run, bit-identical results whatever the block order, thread count or SIMD variant, and
a sanitizer run of a pthreads driver.

The library is built with `build_core` of tests/c/conftest.py, loaded by path (tests/ has a
conftest.py of its own, so a plain `import conftest` could pick the wrong one); the fixture
here does not depend on it, so `pytest --noconftest tests/c/test_mixture.py` also works.
"""

import ctypes
import importlib.util
import math
import os
import pathlib
import subprocess
import threading

import numpy as np
import pytest
from scipy import special

_spec = importlib.util.spec_from_file_location(
    "bw_ctest_helpers", pathlib.Path(__file__).with_name("conftest.py"))
_h = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_h)
CSRC = _h.CSRC

LOG_2PI = math.log(2 * math.pi)


# ------------------------------------------------------------------------------------------
# The library and a driver
# ------------------------------------------------------------------------------------------

class Spec(ctypes.Structure):
    _fields_ = [("K", ctypes.c_int), ("log_scale", ctypes.c_int),
                ("alpha0", ctypes.c_double), ("m0", ctypes.c_double),
                ("kappa0", ctypes.c_double), ("a0", ctypes.c_double), ("b0", ctypes.c_double),
                ("tol", ctypes.c_double), ("max_iter", ctypes.c_int),
                ("key", ctypes.c_uint64), ("plain", ctypes.c_int)]


class Component(ctypes.Structure):
    _fields_ = [("weight_alpha", ctypes.c_double), ("m", ctypes.c_double),
                ("kappa", ctypes.c_double), ("a", ctypes.c_double), ("b", ctypes.c_double)]


def _declare(lib):
    P = ctypes.c_void_p
    D = ctypes.POINTER(ctypes.c_double)
    lib.bw_mix_spec_default.argtypes = [ctypes.POINTER(Spec), ctypes.c_int, ctypes.c_int]
    lib.bw_mix_spec_default.restype = None
    lib.bw_mix_new.argtypes = [ctypes.POINTER(Spec), P, ctypes.c_size_t,
                               ctypes.POINTER(_h.Error)]
    lib.bw_mix_new.restype = P
    lib.bw_mix_nblocks.argtypes = [P]
    lib.bw_mix_nblocks.restype = ctypes.c_size_t
    lib.bw_mix_estep_block.argtypes = [P, ctypes.c_size_t]
    lib.bw_mix_estep_block.restype = None
    lib.bw_mix_mstep.argtypes = [P]
    lib.bw_mix_iterations.argtypes = [P]
    lib.bw_mix_converged.argtypes = [P]
    lib.bw_mix_elbo.argtypes = [P, ctypes.POINTER(ctypes.c_size_t)]
    lib.bw_mix_elbo.restype = D
    lib.bw_mix_components.argtypes = [P, ctypes.POINTER(Component)]
    lib.bw_mix_standardisation.argtypes = [P, D, D]
    lib.bw_mix_standardisation.restype = None
    lib.bw_mix_free.argtypes = [P]
    lib.bw_mix_free.restype = None
    return lib


@pytest.fixture(scope="module")
def builder(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mixcore")
    return lambda flags=(): _declare(_h.build_core(["mixture.c", "status.c"], tmp, flags))


@pytest.fixture(scope="module")
def lib(builder):
    return builder()


class Fit:
    """The outcome of one fit: ELBO history, components (data scale), standardisation."""

    def __init__(self, **kw):
        self.__dict__.update(kw)

    @property
    def weights(self):
        return self.comps[:, 0] / self.comps[:, 0].sum()

    @property
    def means(self):
        return self.comps[:, 1]

    @property
    def sigma2(self):
        """E[sigma^2] = b / (a - 1) (inf for a <= 1: an empty component)."""
        a, b = self.comps[:, 3], self.comps[:, 4]
        out = np.full(a.shape, np.inf)
        np.divide(b, a - 1, out=out, where=a > 1)
        return out


def make_spec(K, log=False, key=1, **over):
    sp = Spec()
    lib_spec_default(sp, K, log)
    sp.key = key
    for name, v in over.items():
        assert hasattr(Spec, name), name
        setattr(sp, name, v)
    return sp


def lib_spec_default(sp, K, log):
    # the documented defaults (mixture.h); checked against the C ones in a test
    sp.K, sp.log_scale = K, int(log)
    sp.alpha0, sp.m0, sp.kappa0, sp.a0, sp.b0 = 1.0, 0.0, 1e-3, 0.5, 0.05
    sp.tol, sp.max_iter, sp.key, sp.plain = 1e-8, 500, 0, 0


def new(lib, x, sp, full=False):
    """(mixture or None, error message); with full, the bw_error itself."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    err = _h.Error()
    m = lib.bw_mix_new(ctypes.byref(sp), x.ctypes.data if x.size else None, x.size,
                       ctypes.byref(err))
    return m, (err if full else err.msg.decode())


def run_blocks(lib, m, order, threads):
    nb = lib.bw_mix_nblocks(m)
    blocks = list(range(nb))
    if order == "reverse":
        blocks.reverse()
    elif order == "shuffle":
        blocks = list(np.random.default_rng(nb).permutation(nb))
    if threads <= 1:
        for b in blocks:
            lib.bw_mix_estep_block(m, int(b))
        return
    # ctypes releases the GIL around each call: the blocks really run on several pthreads
    ts = [threading.Thread(target=lambda part=blocks[t::threads]: [
        lib.bw_mix_estep_block(m, int(b)) for b in part]) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def fit(lib, x, K, log=False, key=1, order="forward", threads=1, **over):
    """Run a fit to the end; checks the invariants every fit must satisfy."""
    sp = make_spec(K, log, key, **over)
    m, err = new(lib, x, sp)
    assert m, err
    try:
        while True:
            run_blocks(lib, m, order, threads)
            rc = lib.bw_mix_mstep(m)
            if rc != 0:
                break
        assert rc == 1
        assert lib.bw_mix_mstep(m) == 1          # finished fits stay finished
        n = ctypes.c_size_t()
        e = lib.bw_mix_elbo(m, ctypes.byref(n))
        elbo = np.array(e[:n.value])
        cs = (Component * 8)()
        k = lib.bw_mix_components(m, cs)
        comps = np.array([[c.weight_alpha, c.m, c.kappa, c.a, c.b] for c in cs[:k]])
        loc, scale = ctypes.c_double(), ctypes.c_double()
        lib.bw_mix_standardisation(m, ctypes.byref(loc), ctypes.byref(scale))
        f = Fit(rc=rc, iterations=lib.bw_mix_iterations(m), converged=lib.bw_mix_converged(m),
                elbo=elbo, comps=comps, loc=loc.value, scale=scale.value, spec=sp,
                n=np.size(x))
    finally:
        lib.bw_mix_free(m)
    check_invariants(f, K)
    return f


def check_invariants(f, K):
    assert len(f.comps) == K
    assert 1 <= len(f.elbo) <= f.iterations <= f.spec.max_iter
    assert np.all(np.isfinite(f.elbo)) and np.all(np.isfinite(f.comps))
    # the ELBO never decreases by more than rounding
    e = f.elbo
    assert np.all(e[1:] >= e[:-1] - 1e-9 * np.abs(e[:-1])), np.diff(e)
    assert np.all(np.diff(f.means) >= 0)                  # ordered by mean
    assert np.all(f.comps[:, [0, 2, 3, 4]] > 0)
    # weight_alpha = alpha0 + N_k, kappa = kappa0 + N_k, a = a0 + N_k / 2
    N = f.comps[:, 0] - f.spec.alpha0
    assert np.allclose(f.comps[:, 2], f.spec.kappa0 + N, rtol=1e-12, atol=1e-9)
    assert np.allclose(f.comps[:, 3], f.spec.a0 + N / 2, rtol=1e-12, atol=1e-9)
    assert N.sum() == pytest.approx(f.n, rel=1e-12)


# ------------------------------------------------------------------------------------------
# Data (fixed seeds)
# ------------------------------------------------------------------------------------------

def bimodal(n=1000, seed=11):
    rng = np.random.default_rng(seed)
    z = rng.random(n) < 0.4
    return np.where(z, rng.normal(-5, 1, n), rng.normal(5, 1, n))


LN_TRUE = [(0.6, 2.3, 0.2), (0.3, 3.9, 0.2), (0.1, 5.3, 0.3)]    # weight, mu, sigma


def lognormal3(n=1000, seed=12):
    rng = np.random.default_rng(seed)
    u = rng.random(n)
    k = np.searchsorted(np.cumsum([w for w, _, _ in LN_TRUE]), u, side="right")
    k = np.minimum(k, 2)
    mu = np.array([m for _, m, _ in LN_TRUE])[k]
    sd = np.array([s for _, _, s in LN_TRUE])[k]
    return np.exp(rng.normal(mu, sd))


# ------------------------------------------------------------------------------------------
# Independent ELBO (SciPy's digamma and gammaln)
# ------------------------------------------------------------------------------------------

def numpy_elbo(f, x):
    """The ELBO of the reported q(pi) q(mu, tau) with q(z) re-optimised, on the data scale
    (log scale for lognormal, then minus sum log x), with the prior mapped to that scale."""
    sp = f.spec
    y = np.log(x) if sp.log_scale else np.asarray(x, float)
    m0 = f.loc + f.scale * sp.m0
    k0, a0, b0, al0 = sp.kappa0, sp.a0, sp.b0 * f.scale ** 2, sp.alpha0
    alpha, m, kap, a, b = f.comps.T
    K = len(alpha)
    elogpi = special.digamma(alpha) - special.digamma(alpha.sum())
    elogtau = special.digamma(a) - np.log(b)
    etau = a / b
    logrho = (elogpi + 0.5 * elogtau - 0.5 * LOG_2PI
              - 0.5 * (1 / kap + etau * (y[:, None] - m) ** 2))
    lse = special.logsumexp(logrho, axis=1, keepdims=True)
    r = np.exp(logrho - lse)
    L = np.sum(r * (logrho - (logrho - lse)))          # E[log p(y, z | ...)] + H[q(z)]
    L += special.gammaln(K * al0) - K * special.gammaln(al0) + (al0 - 1) * elogpi.sum()
    L -= special.gammaln(alpha.sum()) - special.gammaln(alpha).sum() + (
        (alpha - 1) * elogpi).sum()
    L += np.sum(0.5 * (np.log(k0) - LOG_2PI) + 0.5 * elogtau
                - 0.5 * k0 * (1 / kap + etau * (m - m0) ** 2)
                + a0 * np.log(b0) - special.gammaln(a0) + (a0 - 1) * elogtau - b0 * etau)
    L -= np.sum(0.5 * (np.log(kap) - LOG_2PI) + 0.5 * elogtau - 0.5
                + a * np.log(b) - special.gammaln(a) + (a - 1) * elogtau - a)
    if sp.log_scale:
        L -= y.sum()
    return L


# ------------------------------------------------------------------------------------------
# Validation
# ------------------------------------------------------------------------------------------

def test_defaults_match_header(lib):
    sp = Spec()
    lib.bw_mix_spec_default(ctypes.byref(sp), 3, 1)
    mine = make_spec(3, True, key=0)
    for name, _ in Spec._fields_:
        assert getattr(sp, name) == getattr(mine, name), name


@pytest.mark.parametrize("K,log,x,over,needle", [
    (0, False, [1.0, 2.0], {}, "K = 0"),
    (9, False, [1.0, 2.0], {}, "K = 9"),
    (2, False, [], {}, "n = 0"),
    (2, False, [1.0, np.nan, 3.0], {}, (_h.RULE_FINITE, 1, "value at index 1 = nan is not finite")),
    (2, False, [1.0, 2.0, np.inf], {}, (_h.RULE_FINITE, 2, "value at index 2 = inf")),
    (2, True, [1.0, 0.0, 3.0], {}, (_h.RULE_POSITIVE, 1, "value at index 1 = 0 is not positive")),
    (2, True, [1.0, 2.0, -3.0], {}, (_h.RULE_POSITIVE, 2, "value at index 2 = -3")),
    (2, False, [1.0, 2e100], {}, (_h.RULE_BOUNDED, 1, "index 1 = 2e+100 exceeds 1e+100")),
    (2, False, [1.0, 2.0], {"alpha0": 0.0}, "alpha0"),
    (2, False, [1.0, 2.0], {"kappa0": -1.0}, "kappa0"),
    (2, False, [1.0, 2.0], {"a0": np.inf}, "a0"),
    (2, False, [1.0, 2.0], {"b0": np.nan}, "b0"),
    (2, False, [1.0, 2.0], {"m0": np.inf}, "m0"),
    (2, False, [1.0, 2.0], {"tol": -1.0}, "tol"),
    (2, False, [1.0, 2.0], {"max_iter": 0}, "max_iter"),
])
def test_invalid_input(lib, K, log, x, over, needle):
    """Bad options and priors are BW_E_DOMAIN naming the field; bad values BW_E_VALUE naming
    their rule, index and value."""
    m, err = new(lib, np.array(x, dtype=float), make_spec(K, log, **over), full=True)
    assert not m
    msg = err.msg.decode()
    if isinstance(needle, tuple):
        rule, index, text = needle
        assert (err.status, err.rule, err.has_index, err.index) == (_h.E_VALUE, rule, 1, index)
        assert err.value == x[index] or (np.isnan(err.value) and np.isnan(x[index]))
    else:
        assert err.status == _h.E_DOMAIN, msg
        text = needle
    assert text in msg


# ------------------------------------------------------------------------------------------
# Parameter recovery
# ------------------------------------------------------------------------------------------

def test_bimodal_recovery(lib):
    x = bimodal()
    f = fit(lib, x, 2)
    assert f.converged
    assert f.means == pytest.approx([-5, 5], abs=0.2)
    assert f.weights == pytest.approx([0.4, 0.6], abs=0.05)
    assert np.sqrt(f.sigma2) == pytest.approx([1, 1], abs=0.12)


def test_lognormal_recovery(lib):
    """Data-scale component means exp(mu + sigma^2 / 2) ~ 10.2, 50.4, 209.6.

    Tolerance: the posterior sd of log E[X | k] = mu + sigma^2 / 2 is about
    sqrt(Var mu + Var(sigma^2) / 4), Var mu = E[sigma^2] / kappa, Var sigma^2 =
    E[sigma^2]^2 / (a - 2) (inverse gamma); the truth lies within 4 of those of the posterior
    mean (the posterior is centred on the sample, which is itself about one sd off)."""
    x = lognormal3()
    f = fit(lib, x, 3, log=True)
    assert f.converged
    a, kap = f.comps[:, 3], f.comps[:, 2]
    s2 = f.sigma2
    log_mean = f.means + s2 / 2
    sd = np.sqrt(s2 / kap + s2 ** 2 / (a - 2) / 4)
    truth = np.array([m + s ** 2 / 2 for _, m, s in LN_TRUE])
    assert np.exp(truth) == pytest.approx([10.18, 50.4, 209.6], rel=0.01)
    assert np.all(np.abs(log_mean - truth) < 4 * sd), (np.exp(log_mean), 4 * sd)
    assert np.all(4 * sd < 0.15)                    # and the tolerance is a tight one
    assert f.weights == pytest.approx([w for w, _, _ in LN_TRUE], abs=0.05)


def test_unimodal_no_spurious_split(lib):
    rng = np.random.default_rng(13)
    for seed in range(4):
        x = np.random.default_rng(seed).normal(0, 1, 1000)
        f = fit(lib, x, 2, key=int(rng.integers(1 << 62)))
        merged = abs(f.means[1] - f.means[0]) < 0.3
        emptied = f.weights.min() < 0.02
        assert merged or emptied, (f.means, f.weights)
        assert f.converged


def test_surplus_components_empty(lib):
    x = bimodal()
    f2 = fit(lib, x, 2)
    f4 = fit(lib, x, 4)
    assert f4.converged and f4.iterations < 100
    live = f4.weights > 0.02
    assert live.sum() == 2
    assert f4.means[live] == pytest.approx(f2.means, abs=0.05)


# ------------------------------------------------------------------------------------------
# Choosing K by the ELBO (for components="auto")
# ------------------------------------------------------------------------------------------

def test_elbo_prefers_true_k(lib):
    x = bimodal()
    e = {K: fit(lib, x, K).elbo[-1] for K in (1, 2, 3)}
    assert e[2] > e[1] + 100                     # bimodal: two beat one by far
    assert e[2] > e[3]
    y = np.random.default_rng(5).normal(0, 1, 1000)
    u = {K: fit(lib, y, K).elbo[-1] for K in (1, 2, 3)}
    assert u[1] > u[2] - 1 and u[1] > u[3] - 1   # unimodal: one is not beaten
    z = lognormal3()
    ln = {K: fit(lib, z, K, log=True).elbo[-1] for K in (1, 2, 3, 4)}
    assert max(ln, key=ln.get) == 3
    # a lognormal mixture explains positive skewed data better than a normal one
    assert ln[3] > fit(lib, z, 3).elbo[-1]


# ------------------------------------------------------------------------------------------
# The ELBO itself
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["bimodal2", "bimodal3", "lognormal3", "identical", "tiny"])
def test_elbo_matches_numpy(lib, case):
    """The reported ELBO equals an independent computation from the reported parameters
    (q(z) re-optimised there, so the NumPy value may exceed the C one by the last step's
    gain: about tol |ELBO| at most)."""
    if case == "bimodal2":
        x, K, log = bimodal(), 2, False
    elif case == "bimodal3":
        x, K, log = bimodal(300), 3, False
    elif case == "lognormal3":
        x, K, log = lognormal3(), 3, True
    elif case == "identical":
        x, K, log = np.full(50, 2.5), 2, True
    else:
        x, K, log = bimodal(200) * 1e-6, 2, False
    f = fit(lib, x, K, log=log)
    c, py = f.elbo[-1], numpy_elbo(f, x)
    assert py >= c - 1e-9 * abs(c)
    assert py - c <= 2e-8 * abs(c) + 1e-9


# ------------------------------------------------------------------------------------------
# Degenerate data and extreme scales
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("K", [1, 2, 5])
def test_identical_values(lib, K, log):
    x = np.full(100, 7.25)
    f = fit(lib, x, K, log=log)
    assert f.converged
    centre = math.log(7.25) if log else 7.25
    big = np.argmax(f.weights)
    assert f.means[big] == pytest.approx(centre, rel=1e-12)
    assert f.weights[big] > 0.95


@pytest.mark.parametrize("n,K", [(1, 1), (1, 8), (2, 5), (3, 8), (7, 8)])
def test_fewer_values_than_components(lib, n, K):
    x = np.random.default_rng(n).normal(3, 2, n)
    f = fit(lib, x, K)
    assert f.converged
    fl = fit(lib, np.exp(x), K, log=True)
    assert fl.converged


def test_outlier_gets_its_own_component(lib):
    """The robust standardisation keeps one huge value from flattening the rest."""
    x = np.append(np.random.default_rng(3).normal(0, 1, 1000), 1e9)
    f = fit(lib, x, 2)
    assert f.weights[0] > 0.99
    assert f.means[0] == pytest.approx(0, abs=0.1)
    assert math.sqrt(f.sigma2[0]) == pytest.approx(1, abs=0.1)
    # one value: its mean is shrunk towards the median by kappa0 / (kappa0 + 1) = 0.1%
    assert f.means[1] == pytest.approx(1e9 / (1 + 1e-3), rel=1e-6)


@pytest.mark.parametrize("c", [1e-6, 1e9, 1e-140, 3.7e90])
def test_scale_invariance(lib, c):
    """Fitting c x gives the fit of x mapped by x -> c x, and the ELBO minus n log c."""
    x = bimodal(500)
    base = fit(lib, x, 3)
    f = fit(lib, c * x, 3)
    assert f.iterations == base.iterations
    assert f.comps[:, [0, 2, 3]] == pytest.approx(base.comps[:, [0, 2, 3]], rel=1e-9)
    assert f.means / c == pytest.approx(base.means, rel=1e-9, abs=1e-9)
    assert f.comps[:, 4] / c ** 2 == pytest.approx(base.comps[:, 4], rel=1e-9)
    assert f.elbo == pytest.approx(base.elbo - x.size * math.log(c), rel=1e-10)
    # lognormal-mixture: a scale factor is a shift of log x
    z = lognormal3(400)
    lb, lf = fit(lib, z, 2, log=True), fit(lib, c * z, 2, log=True)
    assert lf.means - math.log(c) == pytest.approx(lb.means, abs=1e-9)
    assert lf.comps[:, [0, 2, 3, 4]] == pytest.approx(lb.comps[:, [0, 2, 3, 4]], rel=1e-8)
    assert lf.elbo == pytest.approx(lb.elbo - z.size * math.log(c), rel=1e-10)


@pytest.mark.parametrize("shift", [1e9, -1e6])
def test_location_invariance(lib, shift):
    x = bimodal(500)
    base = fit(lib, x, 2)
    f = fit(lib, x + shift, 2)                     # rounded: |error| <= ulp(1e9) ~ 1.2e-7
    assert f.means - shift == pytest.approx(base.means, abs=1e-5)
    assert f.comps[:, [0, 2, 3, 4]] == pytest.approx(base.comps[:, [0, 2, 3, 4]], rel=1e-5)
    assert f.elbo[-1] == pytest.approx(base.elbo[-1], rel=1e-6)


def test_tiny_and_huge_values_recover(lib):
    for c in (1e-6, 1e9):
        f = fit(lib, c * bimodal(), 2)
        assert f.means / c == pytest.approx([-5, 5], abs=0.2)
        assert f.weights == pytest.approx([0.4, 0.6], abs=0.05)


def test_max_iter(lib):
    f = fit(lib, bimodal(), 3, max_iter=3, tol=0.0)
    assert f.iterations == 3 and not f.converged


def test_plain_coordinate_ascent(lib):
    """Without over-relaxation and merges every iteration is kept; same answer when the
    components are well separated."""
    x = bimodal()
    p, a = fit(lib, x, 2, plain=1), fit(lib, x, 2)
    assert len(p.elbo) == p.iterations
    assert p.means == pytest.approx(a.means, abs=1e-4)
    assert p.elbo[-1] == pytest.approx(a.elbo[-1], rel=1e-7)


# ------------------------------------------------------------------------------------------
# Against a long Gibbs run
# ------------------------------------------------------------------------------------------

def gibbs(x, prior, sweeps, burn, seed, init_means):
    """Collapsed-free Gibbs sampler for the same model on the data scale:
    z | pi, mu, tau; pi | z ~ Dirichlet; (mu_k, tau_k) | z ~ normal-gamma."""
    m0, k0, a0, b0, al0 = prior
    rng = np.random.default_rng(seed)
    K, n = len(init_means), x.size
    mu = np.array(init_means, float)
    tau = np.ones(K) / np.var(x)
    pi = np.full(K, 1.0 / K)
    out = np.empty((sweeps - burn, 3, K))
    for s in range(sweeps):
        logp = np.log(pi) + 0.5 * np.log(tau) - 0.5 * tau * (x[:, None] - mu) ** 2
        p = np.exp(logp - logp.max(axis=1, keepdims=True))
        cdf = np.cumsum(p, axis=1)
        z = (rng.random(n)[:, None] * cdf[:, -1:] > cdf).sum(axis=1)
        cnt = np.bincount(z, minlength=K).astype(float)
        sx = np.bincount(z, weights=x, minlength=K)
        xbar = np.where(cnt > 0, sx / np.maximum(cnt, 1), 0.0)
        ss = np.bincount(z, weights=(x - xbar[z]) ** 2, minlength=K)
        pi = rng.dirichlet(al0 + cnt)
        kn = k0 + cnt
        mn = (k0 * m0 + cnt * xbar) / kn
        an = a0 + cnt / 2
        bn = b0 + 0.5 * ss + 0.5 * k0 * cnt / kn * (xbar - m0) ** 2
        tau = rng.gamma(an, 1 / bn)
        mu = rng.normal(mn, 1 / np.sqrt(kn * tau))
        if s >= burn:
            out[s - burn] = [mu, pi, 1 / tau]
    return out


def test_agrees_with_gibbs(lib):
    """Posterior means of mu_k, pi_k and sigma_k^2 against 6000 Gibbs sweeps on the same
    data and prior.  Tolerance: 4 Monte Carlo standard errors (batch means) plus 10% of the
    posterior sd (mean-field VB is nearly exact for well separated components: q(z) is
    almost degenerate, and q(mu, tau) is then the exact conditional posterior)."""
    x = bimodal(600, seed=21)
    f = fit(lib, x, 2)
    sp = f.spec
    prior = (f.loc + f.scale * sp.m0, sp.kappa0, sp.a0, sp.b0 * f.scale ** 2, sp.alpha0)
    draws = gibbs(x, prior, 6500, 500, seed=5, init_means=f.means)
    # no label switching for components this far apart
    assert np.all(draws[:, 0, 0] < draws[:, 0, 1])
    batches = draws.reshape(50, -1, 3, 2).mean(axis=1)
    mcse = batches.std(axis=0, ddof=1) / math.sqrt(50)
    gmean, gsd = draws.mean(axis=0), draws.std(axis=0)
    alpha, m, kap, a, b = f.comps.T
    vb = np.array([m, alpha / alpha.sum(), b / (a - 1)])
    tol = 4 * mcse + 0.1 * gsd
    assert np.all(np.abs(vb - gmean) < tol), (vb, gmean, tol)
    # and the spread of mu_k: VB's Student-t sd against the Gibbs sd
    vb_sd_mu = np.sqrt(b / ((a - 1) * kap))
    assert vb_sd_mu == pytest.approx(gsd[0], rel=0.15)


# ------------------------------------------------------------------------------------------
# Determinism
# ------------------------------------------------------------------------------------------

def _bits(f):
    return np.concatenate([f.elbo, f.comps.ravel()]).view(np.uint64)


def test_block_order_and_threads(lib):
    x = np.concatenate([bimodal(60000, seed=31), lognormal3(40000, seed=32)])
    ref = fit(lib, x, 4)
    assert ref.iterations > 3
    for order, threads in [("reverse", 1), ("shuffle", 1), ("forward", 2), ("shuffle", 3)]:
        f = fit(lib, x, 4, order=order, threads=threads)
        assert np.array_equal(_bits(f), _bits(ref)), (order, threads)


def test_keys(lib):
    x = bimodal(3000)
    a, b = fit(lib, x, 3, key=7), fit(lib, x, 3, key=7)
    assert np.array_equal(_bits(a), _bits(b))
    # another key may start elsewhere but lands on the same two clusters
    c = fit(lib, x, 3, key=8)
    assert c.elbo[-1] == pytest.approx(a.elbo[-1], rel=1e-6)


def _compiler_accepts(flag, tmp):
    """True if the C compiler builds a trivial file with flag (e.g. -march=native)."""
    src = tmp / "probe.c"
    src.write_text("int main(void) { return 0; }\n")
    cc = os.environ.get("CC", "cc")
    proc = subprocess.run([cc, flag, str(src), "-o", str(tmp / "probe")], capture_output=True)
    return proc.returncode == 0


def test_simd_variants_agree(builder, tmp_path):
    """The baseline build (no dispatch) and the dispatching build (AVX2 / AVX-512 where the
    CPU has them) give the same bits; so does -march=native where the compiler takes the
    flag (there, a failed build fails the test)."""
    x = np.concatenate([bimodal(20000, seed=41), 3 + lognormal3(15000, seed=42)])
    libs = [builder(("-DBW_NO_SIMD_DISPATCH",)), builder()]
    if _compiler_accepts("-march=native", tmp_path):
        libs.append(builder(("-march=native",)))
    ref = [fit(libs[0], x, K) for K in (1, 3, 5)]
    for other in libs[1:]:
        for K, r in zip((1, 3, 5), ref):
            assert np.array_equal(_bits(fit(other, x, K)), _bits(r))


# ------------------------------------------------------------------------------------------
# Sanitizers and speed
# ------------------------------------------------------------------------------------------

SAN_DRIVER = r"""
#include "mixture.h"
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rs = 0x9E3779B97F4A7C15ULL;
static double unif(void) { rs ^= rs << 13; rs ^= rs >> 7; rs ^= rs << 17;
                           return ((double)(rs >> 11) + 0.5) * 0x1p-53; }
static double gauss(void) { return sqrt(-2 * log(unif())) * cos(6.283185307179586 * unif()); }

typedef struct { bw_mix *m; int tid; pthread_barrier_t *bar; volatile int *stop; } targ;

static void *worker(void *p)
{
    targ *a = p;
    for (;;) {
        pthread_barrier_wait(a->bar);
        if (*a->stop) return NULL;
        size_t nb = bw_mix_nblocks(a->m);
        for (size_t b = (size_t)a->tid; b < nb; b += 2) bw_mix_estep_block(a->m, b);
        pthread_barrier_wait(a->bar);
    }
}

typedef struct { double elbo[1000]; size_t len; bw_mix_component c[8]; int K, it; } result;

static int fit(const bw_mix_spec *sp, const double *x, size_t n, int threads, result *r)
{
    bw_error err;
    bw_mix *m = bw_mix_new(sp, x, n, &err);
    if (!m) { fprintf(stderr, "new failed: %s\n", err.msg); return -1; }
    int rc;
    if (threads) {
        pthread_barrier_t bar; volatile int stop = 0; pthread_t th[2]; targ ta[2];
        pthread_barrier_init(&bar, NULL, 3);
        for (int t = 0; t < 2; t++) {
            ta[t] = (targ){m, t, &bar, &stop};
            pthread_create(&th[t], NULL, worker, &ta[t]);
        }
        do {
            pthread_barrier_wait(&bar);
            pthread_barrier_wait(&bar);
            rc = bw_mix_mstep(m);
        } while (rc == 0);
        stop = 1;
        pthread_barrier_wait(&bar);
        for (int t = 0; t < 2; t++) pthread_join(th[t], NULL);
        pthread_barrier_destroy(&bar);
    } else {
        do {
            for (size_t b = bw_mix_nblocks(m); b-- > 0;) bw_mix_estep_block(m, b);
            rc = bw_mix_mstep(m);
        } while (rc == 0);
    }
    memset(r, 0, sizeof *r);
    const double *e = bw_mix_elbo(m, &r->len);
    memcpy(r->elbo, e, r->len * sizeof *e);
    r->K = bw_mix_components(m, r->c);
    r->it = bw_mix_iterations(m);
    bw_mix_free(m);
    return rc;
}

static int check(const char *name, const bw_mix_spec *sp, const double *x, size_t n)
{
    result a, b;
    int ra = fit(sp, x, n, 0, &a), rb = fit(sp, x, n, 1, &b);
    if (ra != 1 || rb != 1) { fprintf(stderr, "%s: rc %d %d\n", name, ra, rb); return 1; }
    if (a.len != b.len || memcmp(a.elbo, b.elbo, a.len * sizeof(double)) ||
        memcmp(a.c, b.c, sizeof a.c)) {
        fprintf(stderr, "%s: serial and threaded fits differ\n", name);
        return 1;
    }
    return 0;
}

int main(void)
{
    int fails = 0;
    size_t n = 65537;             /* odd, just above the k-means subsample size */
    double *x = malloc(n * sizeof *x);
    bw_mix_spec sp;
    for (size_t i = 0; i < n; i++) x[i] = unif() < 0.4 ? -5 + gauss() : 5 + gauss();
    bw_mix_spec_default(&sp, 3, 0);
    sp.key = 7;
    fails += check("bimodal K=3", &sp, x, n);
    n = 40000;
    for (size_t i = 0; i < n; i++) x[i] = 1e9 * x[i];
    sp.K = 2;
    fails += check("bimodal x1e9 K=2", &sp, x, n);
    for (size_t i = 0; i < n; i++)
        x[i] = exp(unif() < 0.7 ? 1 + 0.3 * gauss() : 3 + 0.5 * gauss());
    bw_mix_spec_default(&sp, 2, 1);
    fails += check("lognormal K=2", &sp, x, n);
    for (size_t i = 0; i < 100; i++) x[i] = 3.7;
    bw_mix_spec_default(&sp, 4, 0);
    fails += check("identical K=4", &sp, x, 100);
    sp.log_scale = 1;
    fails += check("identical log K=4", &sp, x, 100);
    bw_mix_spec_default(&sp, 8, 0);
    fails += check("n=1 K=8", &sp, x, 1);
    x[1] = 1e-6;
    fails += check("n=2 K=8", &sp, x, 2);
    bw_error err;
    x[5] = NAN;
    bw_mix_spec_default(&sp, 2, 0);
    if (bw_mix_new(&sp, x, 10, &err) || err.status != BW_E_VALUE || err.index != 5) fails++;
    x[5] = -1;
    sp.log_scale = 1;
    if (bw_mix_new(&sp, x, 10, &err) || err.rule != BW_RULE_POSITIVE || err.index != 5) fails++;
    free(x);
    printf(fails ? "FAILED\n" : "ALL OK\n");
    return fails != 0;
}
"""


def test_sanitizers(tmp_path):
    """A pthreads driver under AddressSanitizer (with leak checking) and UBSan: serial and
    two-thread fits agree bit for bit, invalid input is rejected, nothing leaks."""
    src = tmp_path / "mix_san.c"
    src.write_text(SAN_DRIVER)
    exe = tmp_path / "mix_san"
    cc = os.environ.get("CC", "cc")
    cmd = [cc, "-O1", "-g", "-std=c11", "-Wall", "-Wextra", "-Werror", "-D_GNU_SOURCE",
           "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
           "-fno-omit-frame-pointer", "-I", str(CSRC), str(src), str(CSRC / "mixture.c"),
           str(CSRC / "status.c"),
           "-o", str(exe), "-lm", "-pthread"]
    build = subprocess.run(cmd, capture_output=True, text=True)
    if build.returncode != 0:
        if "sanitize" in build.stderr or "asan" in build.stderr:
            pytest.skip("the compiler has no AddressSanitizer runtime")
        pytest.fail(build.stderr)
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
               UBSAN_OPTIONS="print_stacktrace=1")
    run = subprocess.run([str(exe)], capture_output=True, text=True, env=env, timeout=120)
    if "LeakSanitizer does not work under ptrace" in run.stderr:
        env["ASAN_OPTIONS"] = "detect_leaks=0"
        run = subprocess.run([str(exe)], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "ALL OK" in run.stdout


def test_a_fit_runs_exactly_its_iterations(lib):
    """K = 3 on 10^6 values with tol = 0 runs exactly max_iter iterations (E- and M-steps)
    and its ELBO history never falls.  (How long an iteration takes is a benchmark's
    business: bench/bench_mixture.py.)"""
    x = lognormal3(1_000_000, seed=51)
    sp = make_spec(3, True, key=3, tol=0.0, max_iter=20)
    m, err = new(lib, x, sp)
    assert m, err
    try:
        nb = lib.bw_mix_nblocks(m)
        assert nb == -(-x.size // 16384)
        steps = 0
        while True:
            for b in range(nb):
                lib.bw_mix_estep_block(m, b)
            steps += 1
            if lib.bw_mix_mstep(m) != 0:
                break
        assert steps == lib.bw_mix_iterations(m) == 20
        assert not lib.bw_mix_converged(m)
        n = ctypes.c_size_t()
        h = np.ctypeslib.as_array(lib.bw_mix_elbo(m, ctypes.byref(n)), shape=(n.value,))
        assert 1 <= n.value <= 20 and np.all(np.diff(h) >= 0)
    finally:
        lib.bw_mix_free(m)
