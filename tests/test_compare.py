"""worker.compare: exact comparisons of arms against independent oracles (scipy quadrature
at tight tolerance, the closed beta-beta sum, and for lognormal means and compound products
Gauss-Legendre over the normal scores of their parts: scipy's quantiles, nothing of
bayesworker), symmetry, extremes, many arms, cancellation and every bad input."""

import asyncio
import math
import pathlib
import re

import numpy as np
import pytest

import bayesworker as bw

scipy = pytest.importorskip("scipy")
from scipy import integrate, special, stats  # noqa: E402


@pytest.fixture(scope="module")
def worker():
    with bw.InferenceWorker(threads=2, seed=11) as w:
        yield w


def beta_arm(w, s, n, prior=None):
    return w.run_inference_sync("beta-binomial", {"successes": s, "trials": n},
                                prior=prior).posterior


def quad(f, lo, hi, points):
    v, _ = integrate.quad(f, lo, hi, epsabs=1e-15, epsrel=1e-13, limit=1000, points=points)
    return v


def beta_beta_sum(a1, b1, a2, b2):
    """P(X2 > X1), X_i ~ Beta(a_i, b_i), integer a2 (Evan Miller's closed form)."""
    total = 0.0
    for i in range(int(a2)):
        total += math.exp(special.betaln(a1 + i, b1 + b2) - math.log(b2 + i)
                          - special.betaln(1 + i, b2) - special.betaln(a1, b1))
    return total


def test_two_beta_arms_against_oracles(worker):
    a, b = beta_arm(worker, 65, 1000), beta_arm(worker, 80, 1000)
    cmp = worker.compare_sync({"A": a, "B": b})
    A, B = stats.beta(66, 936), stats.beta(81, 921)
    pts = [0.04, 0.06, 0.07, 0.08, 0.1]
    p = beta_beta_sum(66, 936, 81, 921)
    assert abs(cmp.prob_beats_control()["B"] - p) < 1e-9
    assert abs(cmp.prob_best()["B"] - p) < 1e-9
    loss_a = quad(lambda x: A.cdf(x) * B.sf(x), 0, 0.3, pts)
    loss_b = quad(lambda x: B.cdf(x) * A.sf(x), 0, 0.3, pts)
    assert cmp.expected_loss()["A"] == pytest.approx(loss_a, rel=1e-9)
    assert cmp.expected_loss()["B"] == pytest.approx(loss_b, rel=1e-9)
    assert cmp.expected_loss(vs="control")["B"] == pytest.approx(loss_b, rel=1e-9)
    assert cmp.error < 1e-9
    # lift: P(B/A <= r) = int f_A(y) F_B(r y) dy at the reported interval ends
    lift = cmp.lift()["B"]
    for q, r in ((0.025, lift["interval"][0]), (0.5, lift["median"]),
                 (0.975, lift["interval"][1])):
        cdf = quad(lambda y: A.pdf(y) * B.cdf((1 + r) * y), 0, 0.3, pts)
        assert cdf == pytest.approx(q, abs=1e-10)
    assert lift["mean"] == pytest.approx(B.mean() * 1001 / 65 - 1, rel=1e-12)
    d = cmp.lift(relative=False, level=0.9)["B"]
    cdf = quad(lambda y: A.pdf(y) * B.cdf(d["interval"][1] + y), 0, 0.3, pts)
    assert cdf == pytest.approx(0.95, abs=1e-10)
    above = cmp.prob_lift_above(0.02)["B"]
    assert above == pytest.approx(quad(lambda y: A.pdf(y) * B.sf(1.02 * y), 0, 0.3, pts),
                                  abs=1e-10)


def test_three_arms_prob_best_oracle(worker):
    arms = {n: beta_arm(worker, s, 1000) for n, s in (("A", 65), ("B", 80), ("C", 70))}
    cmp = worker.compare_sync(arms)
    d = [stats.beta(s + 1, 1000 - s + 1) for s in (65, 80, 70)]
    pts = [0.04, 0.06, 0.07, 0.08, 0.1]
    for i, n in enumerate(arms):
        others = [d[j] for j in range(3) if j != i]
        oracle = quad(lambda x: d[i].pdf(x) * others[0].cdf(x) * others[1].cdf(x), 0, 0.3,
                      pts)
        assert abs(cmp.prob_best()[n] - oracle) < 1e-9
    assert sum(cmp.prob_best().values()) == pytest.approx(1.0, abs=1e-14)


def test_identical_arms_are_exactly_even(worker):
    arms = {n: beta_arm(worker, 30, 500) for n in "ABCD"}
    cmp = worker.compare_sync(arms)
    assert cmp.prob_beats_control() == {"B": 0.5, "C": 0.5, "D": 0.5}
    shares = set(cmp.prob_best().values())
    assert len(shares) == 1 and shares.pop() == pytest.approx(0.25, abs=1e-15)
    assert cmp.lift()["B"]["median"] == pytest.approx(0.0, abs=1e-12)


def test_swapping_arms_mirrors(worker):
    a, b = beta_arm(worker, 12, 300), beta_arm(worker, 20, 310)
    ab = worker.compare_sync({"A": a, "B": b})
    ba = worker.compare_sync({"B": b, "A": a})
    assert ab.prob_best()["A"] == pytest.approx(ba.prob_best()["A"], abs=1e-15)
    assert ab.prob_beats_control()["B"] + ba.prob_beats_control()["A"] == \
        pytest.approx(1.0, abs=1e-14)
    assert ab.expected_loss() == pytest.approx(ba.expected_loss(), rel=1e-13)


def test_lower_is_better_flips(worker):
    a, b = beta_arm(worker, 65, 1000), beta_arm(worker, 80, 1000)
    hi = worker.compare_sync({"A": a, "B": b})
    lo = worker.compare_sync({"A": a, "B": b}, higher_is_better=False)
    assert lo.prob_beats_control()["B"] == pytest.approx(1 - hi.prob_beats_control()["B"],
                                                         abs=1e-14)
    assert lo.expected_loss()["B"] == pytest.approx(hi.expected_loss()["A"], rel=1e-12)
    lh, ll = hi.lift(relative=False)["B"], lo.lift(relative=False)["B"]
    assert ll["interval"] == pytest.approx((-lh["interval"][1], -lh["interval"][0]),
                                           rel=1e-12)
    assert lo.decision(threshold=1e-3)["leader"] == "A"


def test_extreme_posteriors(worker):
    a = beta_arm(worker, 0, 10**7)                  # Beta(1, 10^7 + 1)
    b = beta_arm(worker, 40, 10**4)                 # near-certain winner
    cmp = worker.compare_sync({"A": a, "B": b})
    A, B = stats.beta(1, 10**7 + 1), stats.beta(41, 10**4 - 39)
    assert cmp.prob_beats_control()["B"] == pytest.approx(1.0, abs=1e-12)
    loss_b = quad(lambda x: B.cdf(x) * A.sf(x), 0, 1e-4, [1e-7, 1e-6, 1e-5])
    assert cmp.expected_loss()["B"] == pytest.approx(loss_b, rel=1e-7)
    assert cmp.decision(threshold=1e-3)["action"] == "ship"
    assert cmp.decision(threshold=1e-3)["arm"] == "B"
    assert math.isinf(cmp.lift()["B"]["mean"])      # E[1/X_A] is infinite for a = 1


def test_gamma_and_student_t_arms(worker):
    p1 = worker.run_inference_sync("poisson", {"n": 40, "sum": 120}).posterior
    p2 = worker.run_inference_sync("poisson", {"n": 40, "sum": 140}).posterior
    cmp = worker.compare_sync({"A": p1, "B": p2})
    pa, pb = p1.parameters, p2.parameters
    # gamma vs gamma: P(B > A) is a regularised incomplete beta
    a1, b1, a2, b2 = pa["alpha"], pa["beta"], pb["alpha"], pb["beta"]
    oracle = special.betainc(a1, a2, b2 / (b1 + b2))
    assert abs(cmp.prob_beats_control()["B"] - oracle) < 1e-9
    x = np.linspace(-3, 3, 40)
    n1 = worker.run_inference_sync("normal", x + 0.1).posterior
    n2 = worker.run_inference_sync("normal", x + 0.3).posterior
    cmp = worker.compare_sync({"A": n1, "B": n2})
    T = [stats.t(2 * p["alpha"], p["mu"], math.sqrt(p["beta"] / (p["alpha"] * p["kappa"])))
         for p in (n1.parameters, n2.parameters)]
    pts = [-1, 0, 0.2, 0.4, 1]
    oracle = quad(lambda y: T[1].pdf(y) * T[0].cdf(y), -np.inf, np.inf, None)
    assert abs(cmp.prob_beats_control()["B"] - oracle) < 1e-9
    loss = quad(lambda t: T[0].cdf(t) * T[1].sf(t), -5, 5, pts)
    assert cmp.expected_loss()["A"] == pytest.approx(loss, rel=1e-9)
    with pytest.raises(bw.ModelError, match="relative=False"):
        cmp.lift()


def test_lognormal_arms_are_truncated_and_marked(worker):
    rng = np.random.default_rng(3)
    l1 = worker.run_inference_sync("lognormal", rng.lognormal(1, 1, 30)).posterior
    l2 = worker.run_inference_sync("lognormal", rng.lognormal(1.2, 1, 30)).posterior
    cmp = worker.compare_sync({"A": l1, "B": l2})
    assert cmp.truncated == {"A": True, "B": True}
    assert cmp.summary()["truncated"].all()
    assert 0 < cmp.prob_beats_control()["B"] < 1
    assert cmp.lift(relative=False)["B"]["mean"] == pytest.approx(
        float(l2.mean()[0] - l1.mean()[0]), rel=1e-12)


def test_async_and_summary(worker):
    a, b = beta_arm(worker, 10, 100), beta_arm(worker, 14, 100)

    async def go():
        return await worker.compare({"A": a, "B": b}, control="B")
    cmp = asyncio.run(go())
    assert cmp.arms == ("A", "B") and cmp.control == "B"
    assert list(cmp.prob_beats_control()) == ["A"]
    rows = cmp.summary()
    assert len(rows) == 2
    assert "reason" in cmp.decision()


def test_srm(worker):
    a, b = beta_arm(worker, 10, 1000), beta_arm(worker, 10, 1200)
    cmp = worker.compare_sync({"A": a, "B": b})
    s = cmp.srm()
    chi2 = 2 * (100 ** 2) / 1100
    assert s["chi2"] == pytest.approx(chi2)
    assert s["p_value"] == pytest.approx(stats.chi2.sf(chi2, 1), rel=1e-12)
    assert s["mismatch"] and "sample ratio mismatch" in cmp.decision()["warning"]
    assert cmp.srm(expected={"A": 1000, "B": 1200})["p_value"] == pytest.approx(1.0)
    assert bw.models is not None


def test_bad_inputs(worker):
    a, b = beta_arm(worker, 10, 100), beta_arm(worker, 14, 100)
    with pytest.raises(bw.ModelError, match="2 to 32 arms"):
        worker.compare_sync({"A": a})
    with pytest.raises(bw.ModelError, match="2 to 32 arms"):
        worker.compare_sync({f"a{i}": a for i in range(33)})
    with pytest.raises(bw.ModelError, match="control = 'Z'"):
        worker.compare_sync({"A": a, "B": b}, control="Z")
    p = worker.run_inference_sync("poisson", {"n": 4, "sum": 12}).posterior
    with pytest.raises(bw.ModelError, match="different quantities"):
        worker.compare_sync({"A": a, "P": p})
    with bw.InferenceWorker(threads=0, seed=1) as other:
        c = beta_arm(other, 3, 10)
        with pytest.raises(bw.ModelError, match="'C' belongs to another worker"):
            worker.compare_sync({"A": a, "C": c})
    with pytest.raises(bw.ModelError, match="not a posterior proxy"):
        worker.compare_sync({"A": a, "B": 0.5})
    cmp = worker.compare_sync({"A": a, "B": b})
    with pytest.raises(bw.ModelError, match="level"):
        cmp.lift(level=1.5)
    with pytest.raises(bw.ModelError, match="vs"):
        cmp.expected_loss(vs="B")
    d = beta_arm(worker, 5, 50)
    d.dispose_sync()
    with pytest.raises(bw.DisposedError, match="'D'"):
        worker.compare_sync({"A": a, "D": d})
    m1 = worker.run_inference_sync("dirichlet-multinomial", {"counts": [3, 4, 5]}).posterior
    m2 = worker.run_inference_sync("dirichlet-multinomial", {"counts": [3, 4, 6]}).posterior
    with pytest.raises(bw.ModelError, match="no exact comparison"):
        worker.compare_sync({"A": m1, "B": m2})


def compound_arm(w, users, conv_rate, seed):
    rng = np.random.default_rng(seed)
    conv = rng.random(users) < conv_rate
    value = np.where(conv, rng.lognormal(3, 0.8, users), 0.0)
    return w.run_inference_sync("compound-beta-lognormal",
                                {"converted": conv, "value": value}).posterior


def elog(factor):
    """E[log] of a compound's factor from its parameters (an independent oracle)."""
    if "mu" in factor:
        return factor["mu"] + 0.5 * factor["beta"] / (factor["alpha"] - 1)
    return special.digamma(factor["alpha"]) - special.digamma(factor["alpha"]
                                                              + factor["beta"])


def test_decompose_compound_arms(worker):
    a, b = compound_arm(worker, 2000, 0.05, 1), compound_arm(worker, 2000, 0.06, 2)
    for higher in (True, False):
        cmp = worker.compare_sync({"A": a, "B": b}, higher_is_better=higher)
        d = cmp.decompose()
        assert list(d) == ["B"]
        pa, pb = a.parameters, b.parameters
        sgn = 1 if higher else -1
        dc = sgn * (elog(pb["frequency"]) - elog(pa["frequency"]))
        dv = sgn * (elog(pb["severity"]) - elog(pa["severity"]))
        assert d["B"]["conversion"] == pytest.approx(math.expm1(dc), rel=1e-12, abs=1e-15)
        assert d["B"]["value"] == pytest.approx(math.expm1(dv), rel=1e-12, abs=1e-15)
        assert d["B"]["total"] == pytest.approx(math.expm1(dc + dv), rel=1e-12)
        assert d["B"]["share_conversion"] + d["B"]["share_value"] == pytest.approx(1.0)
        assert d["B"]["share_conversion"] == pytest.approx(dc / (dc + dv), rel=1e-10)
    beta_cmp = worker.compare_sync({"A": beta_arm(worker, 3, 10), "B": beta_arm(worker, 4, 10)})
    with pytest.raises(bw.ModelError, match="compound arms"):
        beta_cmp.decompose()


def test_compound_arms_against_quantile_oracle(worker):
    """P(B > A) = int phi(z) S_B(Q_A(Phi(z))) dz with the arms' own exact cdf and ppf
    (Gauss-Legendre in z), and the lift median and interval ends likewise."""
    a, b = compound_arm(worker, 2000, 0.05, 1), compound_arm(worker, 2000, 0.06, 2)
    cmp = worker.compare_sync({"A": a, "B": b})
    z, wz = np.polynomial.legendre.leggauss(160)
    z, wz = 8.5 * z, 8.5 * wz * stats.norm.pdf(8.5 * z)
    qa = np.asarray(a.ppf(stats.norm.cdf(z)))

    def expect(values):
        return float(np.sum(wz * values))
    assert abs(cmp.prob_beats_control()["B"] - expect(1 - np.asarray(b.cdf(qa)))) < 1e-9
    assert abs(cmp.prob_best()["B"] - expect(1 - np.asarray(b.cdf(qa)))) < 1e-9
    lift = cmp.lift()["B"]
    for q, r in ((0.025, lift["interval"][0]), (0.5, lift["median"]),
                 (0.975, lift["interval"][1])):
        assert abs(expect(np.asarray(b.cdf((1 + r) * qa))) - q) < 1e-9
    assert cmp.error < 1e-9


# -- the panel rule, many arms, kinks, far tails ------------------------------------------

CSRC = pathlib.Path(__file__).resolve().parents[1] / "csrc"


def test_panel_rule_table_is_exact():
    """csrc/compare_rule.h: every entry recomputed in 40-digit arithmetic from the doubles
    of the Gauss-Kronrod nodes (the integral of each Lagrange basis polynomial up to each
    node, and the 10-point Gauss weights), to within an ulp."""
    mp = pytest.importorskip("mpmath")
    if not (CSRC / "compare_rule.h").exists():
        pytest.skip("the C sources are not next to the tests")
    text = (CSRC / "compare_rule.h").read_text()
    blocks = re.findall(r"=\s*\{(.*?)\};", text, re.S)
    table = [float(v) for v in re.findall(r"-?\d\.\d+(?:e-?\d+)?", blocks[0])]
    g10 = [float(v) for v in re.findall(r"-?\d\.\d+(?:e-?\d+)?|\b0\.0\b", blocks[1])]
    assert len(table) == 22 * 21 and len(g10) == 21
    mp.mp.dps = 40
    gk = [  # the nodes of specfun.c (gk_x), as the doubles they are
          0.995657163025808080736, 0.973906528517171720078, 0.930157491355708226001,
          0.865063366688984510732, 0.780817726586416897064, 0.679409568299024406234,
          0.562757134668604683339, 0.433395394129247190799, 0.294392862701460198131,
          0.148874338981631210885]
    x = [mp.mpf(-v) for v in gk] + [mp.mpf(0)] + [mp.mpf(v) for v in reversed(gk)]

    def basis_integral(nodes, k, hi):
        # the Lagrange basis polynomial of node k, integrated from -1 to hi exactly
        coef = [mp.mpf(1)]
        for j, xj in enumerate(nodes):
            if j != k:
                coef = [mp.mpf(0)] + coef
                for i in range(len(coef) - 1):
                    coef[i] -= xj * coef[i + 1]
        den = mp.fprod(nodes[k] - xj for j, xj in enumerate(nodes) if j != k)
        return mp.fsum(c * (hi ** (i + 1) - (-1) ** (i + 1)) / (i + 1)
                       for i, c in enumerate(coef)) / den
    for j in range(22):
        hi = x[j] if j < 21 else mp.mpf(1)
        for k in range(21):
            exact = basis_integral(x, k, hi)
            assert abs(table[21 * j + k] - exact) <= 2 * abs(exact) * 2.0**-53 + 1e-300
    odd = [x[j] for j in range(1, 21, 2)]
    for j in range(21):
        exact = basis_integral(odd, j // 2, mp.mpf(1)) if j % 2 else 0
        assert abs(g10[j] - exact) <= 2 * abs(exact) * 2.0**-53


def test_six_unequal_arms_prob_best_oracle(worker):
    """P(best) of arms of very different sizes and means (the shared grid keeps each arm's
    own panel widths) against scipy quadrature."""
    spec = [(5, 40), (65, 1000), (700, 10000), (14, 300), (3000, 50000), (1, 30)]
    arms = {f"a{i}": beta_arm(worker, s, n) for i, (s, n) in enumerate(spec)}
    cmp = worker.compare_sync(arms, control="a1")
    d = [stats.beta(s + 1, n - s + 1) for s, n in spec]
    pts = sorted({float(q) for x in d for q in x.ppf([1e-6, 0.01, 0.5, 0.99, 1 - 1e-6])})
    for i, name in enumerate(arms):
        others = [d[j] for j in range(len(d)) if j != i]
        oracle = quad(lambda t: d[i].pdf(t) * math.prod(o.cdf(t) for o in others), 0, 1, pts)
        assert abs(cmp.prob_best()[name] - oracle) < 1e-9, name
        loss = quad(lambda t: d[i].cdf(t) * (1 - math.prod(o.cdf(t) for o in others)), 0, 1,
                    pts)
        assert cmp.expected_loss()[name] == pytest.approx(loss, rel=1e-9), name
    assert sum(cmp.prob_best().values()) == pytest.approx(1.0, abs=1e-13)
    assert cmp.error < 1e-9


def test_arms_whose_density_does_not_vanish_at_the_end(worker):
    """Beta(1, 1) and Beta(2, 1) (no data): the densities are 1 and 2t up to t = 1, where
    they stop; P(B > A) = 2/3 exactly, and the lift's interval ends against scipy."""
    a = beta_arm(worker, 0, 0)
    b = beta_arm(worker, 1, 1, prior={"alpha": 1, "beta": 1})
    assert b.parameters == {"alpha": 2.0, "beta": 1.0}
    cmp = worker.compare_sync({"A": a, "B": b})
    assert abs(cmp.prob_beats_control()["B"] - 2 / 3) < 1e-9
    A, B = stats.beta(1, 1), stats.beta(2, 1)
    for rel in (True, False):
        lift = cmp.lift(relative=rel)["B"]
        for q, r in ((0.025, lift["interval"][0]), (0.975, lift["interval"][1])):
            cdf = quad(lambda y: A.pdf(y) * B.cdf((1 + r) * y if rel else r + y), 0, 1,
                       [0.25, 0.5, 0.75])
            assert cdf == pytest.approx(q, abs=1e-9)


def test_arms_far_apart_keep_relative_loss_accuracy(worker):
    """Two arms 20 sd apart: P(beat) is 1 to all digits and the loss of the worse arm is
    about 1e-43, relative to 1e-9 against Simpson's rule on a fine grid of the log
    integrand (scipy's adaptive quadrature misses the narrow overlap)."""
    a, b = beta_arm(worker, 19661, 70352), beta_arm(worker, 17499, 70352)
    cmp = worker.compare_sync({"A": a, "B": b})
    A, B = stats.beta(19662, 50692), stats.beta(17500, 52854)
    x = np.linspace(B.mean(), A.mean(), 400_001)
    ly = A.logcdf(x) + B.logsf(x)
    top = ly.max()
    oracle = math.exp(top) * integrate.simpson(np.exp(ly - top), x=x)
    assert 1e-44 < oracle < 1e-42
    assert cmp.expected_loss()["A"] == pytest.approx(oracle, rel=1e-9)
    assert cmp.prob_beats_control()["B"] < 1e-30


def test_exponential_arms_against_oracle(worker):
    """The exponential model's mean (inverse gamma) against scipy quadrature."""
    rng = np.random.default_rng(8)
    e1 = worker.run_inference_sync("exponential", rng.exponential(3.0, 25)).posterior
    e2 = worker.run_inference_sync("exponential", rng.exponential(3.6, 25)).posterior
    cmp = worker.compare_sync({"A": e1, "B": e2})
    d = [stats.invgamma(p["alpha"], scale=p["beta"]) for p in (e1.parameters, e2.parameters)]
    pts = sorted(float(q) for x in d for q in x.ppf([1e-6, 0.05, 0.5, 0.95]))
    oracle = quad(lambda t: d[1].pdf(t) * d[0].cdf(t), 0, float(d[1].isf(1e-14)), pts)
    assert abs(cmp.prob_beats_control()["B"] - oracle) < 1e-9


# -- lognormal means and compound products: oracles from their structure alone ----------

def normal_scores(n=64, zmax=9.0):
    """Gauss-Legendre nodes in the normal score z on [-zmax, zmax], weighted by phi."""
    x, w = np.polynomial.legendre.leggauss(n)
    return zmax * x, zmax * w * np.exp(-0.5 * (zmax * x) ** 2) / math.sqrt(2 * math.pi)


def sigma2_at(sev, z):
    """sigma^2 = beta / G, G ~ Gamma(alpha, 1), at normal scores z (increasing in z)."""
    g = np.where(z < 0, special.gammainccinv(sev["alpha"], special.ndtr(np.minimum(z, 0))),
                 special.gammaincinv(sev["alpha"], special.ndtr(-np.maximum(z, 0))))
    return sev["beta"] / g


def log_beta_at(freq, z):
    """log of Beta(alpha, beta) at normal scores z, accurate in both tails."""
    lo = special.betaincinv(freq["alpha"], freq["beta"], special.ndtr(np.minimum(z, 0)))
    hi = special.betainccinv(freq["alpha"], freq["beta"], special.ndtr(-np.maximum(z, 0)))
    return np.log(np.where(z < 0, lo, hi))


def lognormal_oracle(sa, sb, c=0.0, n=96):
    """P(log V_B - log V_A > c) for lognormal means V = exp(mu + sigma^2 / 2): given the two
    sigma^2, log V_B - log V_A is normal; Gauss-Legendre over both normal scores."""
    z, w = normal_scores(n)
    s_a, s_b = sigma2_at(sa, z)[:, None], sigma2_at(sb, z)[None, :]
    mu = sb["mu"] - sa["mu"] + (s_b - s_a) / 2 - c
    tau = np.sqrt(s_a / sa["kappa"] + s_b / sb["kappa"])
    return float(np.sum(w[:, None] * w[None, :] * special.ndtr(mu / tau)))


def compound_oracle(pa, pb, c=0.0, n=64):
    """P(log X_B - log X_A > c) for compound-beta-lognormal arms X = P V: given both
    conversion rates and both sigma^2, the difference is normal; Gauss-Legendre over the
    four normal scores (scipy's exact beta and gamma quantiles; nothing of bayesworker)."""
    z, w = normal_scores(n)
    fa, va, fb, vb = pa["frequency"], pa["severity"], pb["frequency"], pb["severity"]
    d = log_beta_at(fb, z)[None, :] - log_beta_at(fa, z)[:, None] - c
    ww = w[:, None] * w[None, :]
    s_a, s_b = sigma2_at(va, z), sigma2_at(vb, z)
    total = 0.0
    for i in range(n):
        mu = vb["mu"] - va["mu"] + (s_b - s_a[i]) / 2
        tau = np.sqrt(s_a[i] / va["kappa"] + s_b / vb["kappa"])
        total += w[i] * np.sum(ww[:, :, None] * w[None, None, :] *
                               special.ndtr((d[:, :, None] + mu) / tau))
    return float(total)


def test_lognormal_arms_against_structure_oracle(worker):
    rng = np.random.default_rng(21)
    for n in (4, 40, 400):
        l1 = worker.run_inference_sync("lognormal", rng.lognormal(1.0, 0.9, n)).posterior
        l2 = worker.run_inference_sync("lognormal", rng.lognormal(1.1, 0.9, n)).posterior
        cmp = worker.compare_sync({"A": l1, "B": l2})
        pa, pb = l1.parameters, l2.parameters
        assert abs(cmp.prob_beats_control()["B"] - lognormal_oracle(pa, pb)) < 1e-7, n
        lift = cmp.lift()["B"]
        for q, r in ((0.025, lift["interval"][0]), (0.5, lift["median"]),
                     (0.975, lift["interval"][1])):
            assert abs(lognormal_oracle(pa, pb, math.log1p(r)) - (1 - q)) < 1e-7, n
        assert cmp.error < 1e-7


@pytest.mark.parametrize("converters", [(2, 3), (5, 8)])
def test_few_converter_compound_arms(worker, converters):
    """Compound arms with 2 and 3 (or 5 and 8) converters in 200 users: the severity's
    spread has so few values behind it that its upper quantiles lie beyond the double
    range; the comparison is still finite and matches the structure oracle to 1e-7."""
    arms = {}
    for name, k, seed in zip("AB", converters, (1, 2)):
        rng = np.random.default_rng(seed)
        conv = np.zeros(200, bool)
        conv[:k] = True
        value = np.where(conv, rng.lognormal(3, 0.8, 200), 0.0)
        arms[name] = worker.run_inference_sync("compound-beta-lognormal",
                                               {"converted": conv, "value": value}).posterior
    cmp = worker.compare_sync(arms)
    pa, pb = arms["A"].parameters, arms["B"].parameters
    assert abs(cmp.prob_beats_control()["B"] - compound_oracle(pa, pb)) < 1e-7
    lift = cmp.lift()["B"]
    assert all(math.isfinite(v) for v in (lift["median"], *lift["interval"]))
    for q, r in ((0.025, lift["interval"][0]), (0.5, lift["median"]),
                 (0.975, lift["interval"][1])):
        assert abs(compound_oracle(pa, pb, math.log1p(r)) - (1 - q)) < 1e-7
    assert all(math.isfinite(v) and v > 0 for v in cmp.expected_loss().values())
    assert cmp.truncated == {"A": True, "B": True}
    assert cmp.error < 1e-7


# -- cancellation -------------------------------------------------------------------------

def test_cancelling_a_comparison_under_way_stops_its_work():
    """32 few-converter compound arms (each a table of its own): once the comparison's
    progress moves, cancelling the awaiting task stops the C job (its loops check the flag
    per panel), nothing stays live, and the worker goes on comparing."""
    from support import quiet, run, until

    async def go():
        async with bw.InferenceWorker(threads=2, seed=7) as w:
            rng = np.random.default_rng(7)
            arms = {}
            for i in range(32):
                conv = np.zeros(200, bool)
                conv[:2 + i % 5] = True
                value = np.where(conv, rng.lognormal(3, 0.8, 200), 0.0)
                arms[f"a{i}"] = (await w.run_inference(
                    "compound-beta-lognormal", {"converted": conv, "value": value})).posterior
            task = asyncio.ensure_future(w.compare(arms))
            # Under way, or (on a machine slower to poll than the job is to finish) done:
            # the test never depends on how long the comparison takes.
            await until(lambda: task.done() or (w.progress.stage == "comparing" and
                                                0.0 < w.progress.fraction < 1.0),
                        "the comparison to be under way")
            if task.cancel():       # not yet done: the cancellation reaches the awaiter
                with pytest.raises(asyncio.CancelledError):
                    await task
            await until(lambda: quiet(w), "the cancelled comparison to stop")
            cmp = await w.compare({"A": arms["a0"], "B": arms["a1"]})
            assert 0.0 < cmp.prob_beats_control()["B"] < 1.0
    run(go())
