"""worker.compare: exact comparisons of arms against independent oracles (scipy quadrature
at tight tolerance, the closed beta-beta sum), symmetry, extremes and every bad input."""

import asyncio
import math

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
