"""The compound revenue-per-user entries of golden.json against 50-digit quadrature.

The interval ends of compound-beta-lognormal's revenue per user come from the product
quadrature, whose method issue 11 changed (one integral over a table of the lognormal
mean's tails, csrc/summary.c); their last bits may move.  This script replays the golden
call sequence, and for every revenue interval end that differs from golden.json computes
the exact quantile with mpmath (50 digits, written here from the model's definition, no
code of bayesworker's):

    R = p exp(mu + s / 2),  p ~ Beta(a, b),  s ~ InvGamma(alpha, beta),
    mu | s ~ N(m, s / kappa);   P(R <= t) = int int f(v) g(w) Phi(z) dv dw

over v = logit p and w = log(beta / s) (a Gamma(alpha) variable's log), with
z = (log t - log p - m - s / 2) sqrt(kappa / s), by Gauss-Legendre on panels between the
factors' quantiles (1e-30 of the mass left out on each side), at two resolutions whose
agreement is printed.  One Newton step from the new value, with the density of log R from
the same sums, gives the exact quantile (the step's own error is the square of ~1e-16).

It prints, per entry, the old and the new value and their errors, asserts that every new
value is at least as accurate as the old one, and with --write replaces exactly those
entries in golden.json (nothing else: the file is rewritten from its own parsed content,
which reproduces it byte for byte, with only those strings changed).  --old REV takes the
old values from golden.json as git revision REV has it (51d438e: before issue 11's
change), to show the comparison once the file holds the new ones.

    PYTHONPATH=python python tests/golden/check_compound_entries.py [--write] [--old REV]
"""

from __future__ import annotations

import json
import os
import sys

import mpmath as mp
from mpmath.calculus.quadrature import GaussLegendre
from scipy import special, stats

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_golden  # noqa: E402

mp.mp.dps = 50
MODEL = "compound-beta-lognormal"
PROBS = (1e-30, 1e-15, 1e-8, 1e-4, 1e-2, 0.1, 0.3)


def _rule(edges, degree):
    """Gauss-Legendre nodes and weights (3 * 2^(degree - 1) per panel) on the panels."""
    nodes = GaussLegendre(mp.mp).calc_nodes(degree, mp.mp.prec)
    xs, ws = [], []
    for a, b in zip(edges[:-1], edges[1:]):
        a, b = mp.mpf(a), mp.mpf(b)
        c, h = (a + b) / 2, (b - a) / 2
        for x, w in nodes:
            xs.append(c + h * x)
            ws.append(h * w)
    return xs, ws


def _edges(ppf, isf, median, transform):
    lo = [transform(ppf(p)) for p in PROBS]
    hi = [transform(isf(p)) for p in reversed(PROBS)]
    return lo + [transform(median)] + hi


class Revenue:
    """The tails and density of log R at one resolution."""

    def __init__(self, a, b, m, kappa, alpha, beta, degree):
        a, b, m, kappa, alpha, beta = (mp.mpf(x) for x in (a, b, m, kappa, alpha, beta))
        fa, fb, fal = float(a), float(b), float(alpha)
        ev = _edges(lambda p: stats.beta.ppf(p, fa, fb), lambda p: stats.beta.isf(p, fa, fb),
                    stats.beta.median(fa, fb), special.logit)
        ew = _edges(lambda p: stats.gamma.ppf(p, fal), lambda p: stats.gamma.isf(p, fal),
                    stats.gamma.median(fal), lambda x: float(mp.log(x)))
        log_b = mp.log(mp.beta(a, b))
        self.outer = []                                 # (log p, weight x density of v)
        for v, w in zip(*_rule(ev, degree)):
            lp, lq = -mp.log1p(mp.exp(-v)), -mp.log1p(mp.exp(v))
            self.outer.append((lp, w * mp.exp(a * lp + b * lq - log_b)))
        log_g = mp.loggamma(alpha)
        self.inner = []                                 # (m + s/2, sqrt(kappa / s), weight)
        for x, w in zip(*_rule(ew, degree)):
            s = beta * mp.exp(-x)
            self.inner.append((m + s / 2, mp.sqrt(kappa / s),
                               w * mp.exp(alpha * x - mp.exp(x) - log_g)))

    def tail_density(self, log_t, upper):
        """P(R <= t) (or > t) and the density of log R at log t."""
        tail = dens = mp.mpf(0)
        for lp, gv in self.outer:
            y, t, d = log_t - lp, mp.mpf(0), mp.mpf(0)
            for mu, r, gw in self.inner:
                z = (y - mu) * r
                t += gw * mp.ncdf(-z if upper else z)
                d += gw * r * mp.npdf(z)
            tail += gv * t
            dens += gv * d
        return tail, dens


def exact_quantile(rev, x, p, upper):
    """The quantile with tail probability p (upper or lower), one Newton step from x."""
    lx = mp.log(mp.mpf(x))
    tail, dens = rev.tail_density(lx, upper)
    step = (tail - mp.mpf(p)) / dens
    return mp.exp(lx + step if upper else lx - step)


def replay():
    import bayesworker as bw
    return make_golden.record(bw)


def _old_golden(rev: str | None, text: str) -> list:
    if rev is None:
        return json.loads(text)
    import subprocess
    path = os.path.relpath(make_golden.GOLDEN, os.path.join(HERE, "..", ".."))
    out = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=HERE, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def main(write: bool, rev: str | None) -> int:
    with open(make_golden.GOLDEN) as f:
        text = f.read()
    current = json.loads(text)
    assert json.dumps(current, indent=0) == text, "golden.json is not in json.dump(indent=0) form"
    golden = _old_golden(rev, text)
    new = replay()
    i = next(k for k, r in enumerate(golden) if r["model"] == MODEL)
    # every other number must be bit-identical: only the revenue interval ends may move
    for k, (g, n) in enumerate(zip(golden, new)):
        for key in g:
            same = g[key] == n[key]
            if k == i and key == "post":
                assert all(g[key][s] == n[key][s] for s in g[key] if not s.startswith("ci")), \
                    "a revenue mean or variance changed"
            elif not same:
                raise AssertionError(f"{g['model']}: {key} changed, which this script may "
                                     "not update")
    import bayesworker as bw
    with bw.InferenceWorker(threads=1, seed=make_golden.SEED) as w:
        model, data, kw = make_golden._data()[i]
        par = w.run_inference_sync(model, data, **kw).posterior.parameters
    f, s = par["frequency"], par["severity"]
    args = (f["alpha"], f["beta"], s["mu"], s["kappa"], s["alpha"], s["beta"])
    revs = [Revenue(*args, degree=d) for d in (3, 4)]
    worst_change, worst_check, changed = 0.0, mp.mpf(0), []
    for key, old_hex in golden[i]["post"].items():
        if not key.startswith("ci"):
            continue
        level = float(key[2:])
        tail = 0.5 * (1.0 - level)                  # the targets as the C code has them
        for end, (o, n) in enumerate(zip(old_hex, new[i]["post"][key])):
            if o == n:
                print(f"{key}[{end}] unchanged {float.fromhex(o)!r}")
                continue
            old, cur = float.fromhex(o), float.fromhex(n)
            exact = [exact_quantile(r, cur, tail, end == 1) for r in revs]
            worst_check = max(worst_check, abs(exact[0] / exact[1] - 1))
            e_old, e_new = (abs(mp.mpf(v) / exact[1] - 1) for v in (old, cur))
            change = abs(cur / old - 1)
            worst_change = max(worst_change, change)
            print(f"{key}[{end}] old {old!r} (error {mp.nstr(e_old, 3)}) new {cur!r} "
                  f"(error {mp.nstr(e_new, 3)}) exact {mp.nstr(exact[1], 22)}; "
                  f"change {change:.3g}")
            assert e_new <= e_old, f"{key}[{end}]: the new value is less accurate"
            changed.append((key, end, n))
    print(f"oracle resolutions agree to {mp.nstr(worst_check, 3)} (relative); "
          f"{len(changed)} entries change, at most {worst_change:.3g} relative")
    if write and changed:
        for key, end, n in changed:
            current[i]["post"][key][end] = n
        with open(make_golden.GOLDEN, "w") as f:
            json.dump(current, f, indent=0)
        print(f"wrote {len(changed)} entries into {make_golden.GOLDEN}")
    return 0


if __name__ == "__main__":
    argv = sys.argv[1:]
    sys.exit(main("--write" in argv, argv[argv.index("--old") + 1] if "--old" in argv else None))
