"""bayesworker against its baselines, measured in the same process, alternating.

    python bench/run.py            # full sizes (a few minutes on 2 cores)
    python bench/run.py --quick    # smaller sizes, under a minute

Each case runs bayesworker and its baseline in turn, `repeat` times, and reports both
medians and their ratio (baseline / bayesworker, so > 1 means bayesworker is faster), with
the thread count. Memory cases run in a fresh subprocess each and report peak RSS growth.
Timings on shared machines are noisy: compare ratios from one run, not absolute times.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

import bayesworker as bw

ROWS: list[tuple[str, str, float, str, float, str, str]] = []


def fmt_time(sec: float) -> str:
    if sec < 1e-3:
        return f"{sec * 1e6:.1f} us"
    if sec < 0.01:
        return f"{sec * 1e3:.2f} ms"
    if sec < 1:
        return f"{sec * 1e3:.1f} ms"
    return f"{sec:.2f} s"


def row(case: str, ours: float, base: float, threads: str, target: str, unit="time") -> None:
    ratio = base / ours if ours > 0 else float("inf")
    shown = (fmt_time(ours), fmt_time(base)) if unit == "time" else (f"{ours:.3g}", f"{base:.3g}")
    ROWS.append((case, shown[0], ours, shown[1], ratio, threads, target))
    print(f"  {case:<52} bw {shown[0]:>10}  base {shown[1]:>10}  ratio {ratio:6.2f}  "
          f"threads {threads:<4} target {target}", flush=True)


def alternate(ours, base, repeat: int) -> tuple[float, float]:
    """Median seconds of ours() and base(), run alternately."""
    t_ours, t_base = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        ours()
        t_ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        base()
        t_base.append(time.perf_counter() - t0)
    return statistics.median(t_ours), statistics.median(t_base)


def beta_post(worker, a, b):
    """A posterior Beta(a, b): prior Beta(a - floor(a/2)... ) built from a prior plus counts."""
    s = int(a) - 1 if a > 2 else 0
    f = int(b) - 1 if b > 2 else 0
    prior = {"alpha": a - s, "beta": b - f}
    return worker.run_inference_sync("beta-binomial", {"successes": s, "trials": s + f},
                                     prior=prior).posterior


# ------------------------------------------------------------------------------------------
def case_draws(n: int, repeat: int, threads_all: int) -> None:
    rng = np.random.default_rng(1)
    for a, b in ((120.5, 880.5), (0.8, 0.9)):
        for threads in (threads_all, 1):
            with bw.InferenceWorker(threads=threads, seed=1) as w:
                post = beta_post(w, a, b)
                assert post.parameters == {"alpha": a, "beta": b}
                ours, base = alternate(lambda: post.sample_sync(n), lambda: rng.beta(a, b, n),
                                       repeat)
            target = ">= 3x" if threads == threads_all and threads_all > 1 else ">= 1.5x"
            row(f"{n:.0e} draws beta({a}, {b})", ours, base, str(threads), target)

    x = np.random.default_rng(2).lognormal(3, 0.8, 1000)
    with bw.InferenceWorker(threads=threads_all, seed=1) as w:
        post = w.run_inference_sync("lognormal", x).posterior
        p = post.parameters
        mu, kappa, alpha, beta = p["mu"], p["kappa"], p["alpha"], p["beta"]

        def numpy_lnmean():
            s = beta / rng.standard_gamma(alpha, n)
            m = mu + np.sqrt(s / kappa) * rng.standard_normal(n)
            return np.exp(m + s / 2)

        ours, base = alternate(lambda: post.sample_sync(n), numpy_lnmean, repeat)
        row(f"{n:.0e} draws lognormal data-scale mean", ours, base, str(threads_all), ">= 3x")

        conv = np.random.default_rng(3).random(20_000) < 0.05
        val = np.where(conv, np.random.default_rng(4).lognormal(3, 0.8, 20_000), 0.0)
        rev = w.run_inference_sync("compound-beta-lognormal",
                                   {"converted": conv, "value": val}).posterior
        fp, sp = rev.parameters["frequency"], rev.parameters["severity"]

        def numpy_revenue():
            p_ = rng.beta(fp["alpha"], fp["beta"], n)
            s = sp["beta"] / rng.standard_gamma(sp["alpha"], n)
            m = sp["mu"] + np.sqrt(s / sp["kappa"]) * rng.standard_normal(n)
            return p_ * np.exp(m + s / 2)

        ours, base = alternate(lambda: rev.sample_sync(n), numpy_revenue, repeat)
        row(f"{n:.0e} draws revenue per user (compound)", ours, base, str(threads_all), ">= 3x")


def case_scaling(sizes, repeat: int, threads_all: int) -> None:
    for n in sizes:
        with bw.InferenceWorker(threads=1, seed=1) as w1, \
                bw.InferenceWorker(threads=threads_all, seed=1) as w2:
            p1, p2 = beta_post(w1, 120.5, 880.5), beta_post(w2, 120.5, 880.5)
            ours, base = alternate(lambda: p2.sample_sync(n), lambda: p1.sample_sync(n), repeat)
        row(f"scaling {n:.0e} draws: {threads_all} threads vs 1", ours, base,
            f"{threads_all}v1", ">= 1.8x")


def case_roundtrip(repeat: int) -> None:
    async def go():
        rng = np.random.default_rng(5)
        async with bw.InferenceWorker(seed=1) as w:
            post = beta_post(w, 120.5, 880.5)
            await post.sample(1)
            await asyncio.to_thread(rng.beta, 120.5, 880.5, 1)
            ours, base = [], []
            for _ in range(repeat):
                t0 = time.perf_counter()
                await post.sample(1)
                ours.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                await asyncio.to_thread(rng.beta, 120.5, 880.5, 1)
                base.append(time.perf_counter() - t0)
            return statistics.median(ours), statistics.median(base), w.threads

    ours, base, threads = asyncio.run(go())
    row("await post.sample(1) round trip", ours, base, str(threads), "<= 0.3x and <= 25 us")


def case_loop_lag(n: int, runs: int) -> None:
    """A 1 ms heartbeat's oversleep while n draws and 16 lognormal fits run, `runs` times,
    for ``sample(n)`` (fresh memory: one n-draw array) and ``sample_batched(n, 10**6)``.
    The baseline: the same heartbeat with nothing to do, between the runs (the floor of
    this machine now; NumPy's ``beta`` in ``asyncio.to_thread`` is no baseline: it keeps
    the GIL, and the loop stalls for the whole draw). Reported: the worst max and the worst
    p99 over the runs, and how many runs met both targets.
    (bench/loop_lag.py has more variants, fresh processes, and the stalls' causes.)"""
    x = np.random.default_rng(6).lognormal(3, 1, 200_000)

    async def heartbeat(stop, lags, period=0.001):
        while not stop.is_set():
            t0 = time.perf_counter()
            await asyncio.sleep(period)
            lags.append(time.perf_counter() - t0 - period)

    async def ours(post, batched):
        if batched:
            async for _ in post.sample_batched(n, 10**6):
                pass
        else:
            a = await post.sample(n)
            del a                               # dropped on the loop thread, as a user's is

    async def one(w, draws=None) -> tuple[float, float]:
        stop, lags = asyncio.Event(), []
        hb = asyncio.create_task(heartbeat(stop, lags))
        await asyncio.sleep(0.05)
        if draws is None:
            await asyncio.sleep(0.5)
        else:
            await asyncio.gather(draws, *(w.run_inference("lognormal", x) for _ in range(16)))
        stop.set()
        await hb
        return max(lags), float(np.quantile(lags, 0.99))

    async def go():
        async with bw.InferenceWorker(seed=1) as w:
            post = beta_post(w, 120.5, 880.5)
            await w.run_inference("lognormal", x)          # warm: imports, first use
            res: dict[str, list[tuple[float, float]]] = {"idle": []}
            for _ in range(runs):
                for name in ("sample", "batched"):
                    res.setdefault(name, []).append(await one(w, ours(post, name == "batched")))
                    res["idle"].append(await one(w))
            return res, w.threads

    res, threads = asyncio.run(go())
    labels = {"sample": f"sample({n:.0e})", "batched": f"sample_batched({n:.0e}, 1e6)"}
    for name, label in labels.items():
        mine, base = res[name], res["idle"]
        ok = sum(1 for m, p in mine if m <= 0.005 and p <= 0.001)
        target = f"max <= 5 ms, p99 <= 1 ms in {runs}/{runs} runs: {ok}/{runs}"
        row(f"loop lag worst max, {label} + 16 fits", max(m for m, _ in mine),
            max(m for m, _ in base), str(threads), target)
        row(f"loop lag worst p99, {label} + 16 fits", max(p for _, p in mine),
            max(p for _, p in base), str(threads), target)


def case_fit(n: int, repeat: int) -> None:
    x = np.random.default_rng(7).lognormal(3, 1, n)
    with bw.InferenceWorker(seed=1) as w:
        def numpy_fit():
            lx = np.log(x)
            return lx.sum(), (lx * lx).sum()

        ours, base = alternate(lambda: w.run_inference_sync("lognormal", x), numpy_fit, repeat)
        w.clear_all()
        row(f"fit lognormal to {n:.0e} values", ours, base, str(w.threads), ">= 2x")


def case_many_fits(k: int, repeat: int, levels: tuple[float, ...] = (0.95,),
                   target: str = ">= 20x") -> None:
    """k gathered beta-binomial fits, then each one's mean, variance and central intervals
    at `levels` read from its proxy, against a scipy frozen Beta giving the same numbers."""
    from scipy import stats

    rng = np.random.default_rng(8)
    trials = rng.integers(100, 10_000, k)
    succ = (trials * rng.uniform(0.01, 0.2, k)).astype(int)

    async def ours_async(w):
        res = await asyncio.gather(*(w.run_inference("beta-binomial",
                                                     {"successes": int(s), "trials": int(t)})
                                     for s, t in zip(succ, trials)))
        for r in res:
            p = r.posterior
            p.mean(), p.variance()
            for level in levels:
                p.credible_interval(level)
        w.clear_all()

    def base():
        for s, t in zip(succ, trials):
            d = stats.beta(1 + s, 1 + t - s)
            d.mean(), d.var()
            for level in levels:
                d.interval(level)

    with bw.InferenceWorker(seed=1) as w:
        loop = asyncio.new_event_loop()
        try:
            ours, basetime = alternate(lambda: loop.run_until_complete(ours_async(w)), base,
                                       repeat)
        finally:
            loop.close()
        cis = "/".join(f"{100 * level:g}" for level in levels)
        row(f"{k} beta-binomial fits + mean, var, {cis}% CI (gather)", ours, basetime,
            str(w.threads), target)



# -- issue 11: many requests at speed ---------------------------------------------------------
def case_one_fit(repeat: int) -> None:
    """One awaited conjugate fit, median of `repeat` in sequence, against a scipy frozen
    Beta with its mean, variance and three intervals (the same numbers). The two run in
    alternating blocks of `repeat` / 4 calls in a row each, so that both see the same load
    and neither is timed straight after the other has filled the caches."""
    from scipy import stats

    def scipy_fit():
        d = stats.beta(66, 936)
        d.mean(), d.var(), d.interval(0.95), d.interval(0.9), d.interval(0.8)

    async def go():
        async with bw.InferenceWorker(seed=1) as w:
            data = {"successes": 65, "trials": 1000}
            for _ in range(200):
                await w.run_inference("beta-binomial", data)
            scipy_fit()
            ours, base = [], []
            for _ in range(4):
                for _ in range(repeat // 4):
                    t0 = time.perf_counter()
                    await w.run_inference("beta-binomial", data)
                    ours.append(time.perf_counter() - t0)
                for _ in range(repeat // 4):
                    t0 = time.perf_counter()
                    scipy_fit()
                    base.append(time.perf_counter() - t0)
            return statistics.median(ours), statistics.median(base), w.threads

    ours, base, threads = asyncio.run(go())
    row("one awaited beta-binomial fit (median)", ours, base, str(threads), "<= 50 us")


def _segments(k: int, users: int, seed: int = 11):
    """k revenue segments of `users` users each: (segment, converted, revenue)."""
    rng = np.random.default_rng(seed)
    seg = np.repeat(np.arange(k), users)
    conv = rng.random(k * users) < rng.uniform(0.02, 0.1, k)[seg]
    conv[::users] = True        # every segment has a converter (a compound fit needs one)
    rev = np.where(conv, rng.lognormal(3, 0.8, k * users), 0.0)
    return seg, conv, rev


def case_compound_one(repeat: int) -> None:
    """One compound-beta-lognormal fit with its mean and 95 % interval, against
    bayesian-testing's DeltaLognormalDataTest on the same data (one variant); then the
    interval at a level never asked before (exact: two product quantiles) against that
    test's Monte Carlo interval at the same level (its evaluate(interval_alpha=level))."""
    from bayesian_testing.experiments import DeltaLognormalDataTest

    _, conv, rev = _segments(1, 2000)
    with bw.InferenceWorker(seed=1) as w:
        def ours():
            p = w.run_inference_sync("compound-beta-lognormal",
                                     {"converted": conv, "value": rev}).posterior
            return p.mean(), p.credible_interval(0.95)

        test = DeltaLognormalDataTest()
        test.add_variant_data("A", rev.tolist())

        o, b = alternate(ours, lambda: test.evaluate(seed=1), repeat)
        row("one compound-beta-lognormal fit + mean + 95 %", o, b, str(w.threads), "<= 2 ms")
        p = w.run_inference_sync("compound-beta-lognormal",
                                 {"converted": conv, "value": rev}).posterior
        levels = iter(np.linspace(0.51, 0.99, 2 * repeat + 2))    # each one new: no cache
        base_levels = iter(np.linspace(0.51, 0.99, 2 * repeat + 2))
        o, b = alternate(lambda: p.credible_interval(float(next(levels))),
                         lambda: test.evaluate(seed=1, interval_alpha=float(next(base_levels))),
                         repeat)
        row("compound interval at a new level (uncached)", o, b, str(w.threads), "<= 1 ms")


def case_segment_revenue(k: int, repeat: int) -> None:
    """k segment revenue fits with 95 % intervals (fit_groups) against
    DeltaLognormalDataTest evaluating the same segments (one test, k variants)."""
    from bayesian_testing.experiments import DeltaLognormalDataTest

    seg, conv, rev = _segments(k, 500)
    data = {"segment": seg, "converted": conv, "revenue": rev}
    lists = [rev[seg == i].tolist() for i in range(k)]
    with bw.InferenceWorker(seed=1) as w:
        def ours():
            fits = w.fit_groups_sync(data, by="segment", model="compound-beta-lognormal",
                                     converted="converted", value="revenue")
            return fits.summary()

        def base():
            t = DeltaLognormalDataTest()
            for i, x in enumerate(lists):
                t.add_variant_data(f"s{i}", x)
            return t.evaluate(seed=1)

        o, b = alternate(ours, base, repeat)
        w.clear_all()
        row(f"{k} segment revenue fits + 95 % (fit_groups)", o, b, str(w.threads),
            ">= 2x and <= 2 s")


def case_groups(k: int, rows: int, k_compound: int, repeat: int) -> None:
    """fit_groups on a DataFrame (the group-by included) against pandas' own group-by
    sums of the same columns (the floor any per-group analysis pays)."""
    import pandas as pd

    rng = np.random.default_rng(12)
    seg = rng.integers(0, k, rows)
    df = pd.DataFrame({"country": seg // 100, "variant": seg % 100,
                       "converted": rng.random(rows) < 0.05})
    with bw.InferenceWorker(seed=1) as w:
        o, b = alternate(
            lambda: w.fit_groups_sync(df, by=["country", "variant"], model="beta-binomial",
                                      converted="converted"),
            lambda: df.groupby(["country", "variant"])["converted"].agg(["sum", "count"]),
            repeat)
        w.clear_all()
        row(f"fit_groups {k:.0e} beta-binomial segments ({rows:.0e} rows)", o, b,
            str(w.threads), "<= 1 s")
        seg, conv, rev = _segments(k_compound, 100)
        df2 = pd.DataFrame({"segment": seg, "converted": conv, "revenue": rev})
        o, b = alternate(
            lambda: w.fit_groups_sync(df2, by="segment", model="compound-beta-lognormal",
                                      converted="converted", value="revenue"),
            lambda: df2.groupby("segment")["revenue"].agg(["sum", "count"]), 1)
        w.clear_all()
        row(f"fit_groups {k_compound:.0e} compound segments ({k_compound * 100:.0e} rows)", o,
            b, str(w.threads), "1e4 <= 10 s")

MEMORY_SCRIPT = r"""
import json, sys, numpy as np, bayesworker as bw
def rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
kind, n, b = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with bw.InferenceWorker(seed=1) as w:
    post = w.run_inference_sync("beta-binomial", {"successes": 120, "trials": 1000})
    post = post.posterior
    post.sample_sync(1000)
    base = rss()
    if kind == "batched":
        total = 0
        for batch in post.sample_batched_sync(n, b):
            total += batch.size
        assert total == n
        out = {"growth": rss() - base, "unit": 8 * b}
    else:
        a = post.sample_sync(n)
        out = {"growth": rss() - base, "unit": a.nbytes}
print(json.dumps(out))
"""


def case_memory(n_batched: int, batch: int, n_whole: int) -> None:
    for kind, n, b, target in (("batched", n_batched, batch, "<= 4 batches"),
                               ("whole", n_whole, 1, "<= array + 5 %")):
        proc = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, kind, str(n), str(b)],
                              capture_output=True, text=True, check=True)
        res = json.loads(proc.stdout)
        ratio = res["growth"] / res["unit"]
        label = (f"sample_batched({n:.0e}, {b:.0e}) peak RSS growth / batch bytes"
                 if kind == "batched" else f"sample({n:.0e}) peak RSS growth / array bytes")
        ROWS.append((label, f"{res['growth'] / 2**20:.1f} MiB", res["growth"],
                     f"{res['unit'] / 2**20:.1f} MiB", ratio, "all", target))
        print(f"  {label:<52} growth {res['growth'] / 2**20:8.1f} MiB  unit "
              f"{res['unit'] / 2**20:8.1f} MiB  ratio {ratio:6.3f}  target {target}", flush=True)


def _beta_oracle(a1, b1, a2, b2):
    """P(X2 > X1) and the expected losses E[(X2 - X1)^+], E[(X1 - X2)^+] of two beta arms,
    and the lift's distribution function r -> P(X2 / X1 - 1 <= r): scipy quadrature at
    1e-13 with break points at both arms' quantiles (the 1e-12 oracle of the rows)."""
    from scipy import integrate, stats

    d1, d2 = stats.beta(a1, b1), stats.beta(a2, b2)
    lo, hi = min(d1.ppf(1e-16), d2.ppf(1e-16)), max(d1.isf(1e-16), d2.isf(1e-16))
    pts = sorted(float(d.ppf(q)) for d in (d1, d2) for q in (1e-8, 1e-3, .05, .5, .95, .999))

    def quad(f):
        return integrate.quad(f, lo, hi, epsabs=0, epsrel=1e-13, limit=2000, points=pts)[0]
    p = quad(lambda x: d2.pdf(x) * d1.cdf(x))
    loss1 = quad(lambda x: d1.cdf(x) * d2.sf(x))        # E[(X2 - X1)^+]: the risk of arm 1
    loss2 = quad(lambda x: d2.cdf(x) * d1.sf(x))
    return p, loss1, loss2, lambda r: quad(lambda y: d1.pdf(y) * d2.cdf((1 + r) * y))


def case_compare(repeat: int) -> None:
    """Decisions: worker.compare (exact quadrature) against NumPy draws and bayesian-testing,
    measured in this run, with each one's error against a 1e-12 oracle."""
    print("\ncompare: beta, ten-arm and compound comparisons")
    data = {"A": (60, 1000), "B": (63, 1000)}
    prior = {"alpha": 0.5, "beta": 0.5}          # bayesian-testing's default prior
    with bw.InferenceWorker(seed=5) as w:
        two = {n: w.run_inference_sync("beta-binomial", {"successes": s, "trials": t},
                                       prior=prior).posterior for n, (s, t) in data.items()}
        ten = {n: w.run_inference_sync("beta-binomial", {"successes": 60 + 3 * i,
                                                         "trials": 1000}).posterior
               for i, n in enumerate("ABCDEFGHIJ")}
        _, conv, rev = _segments(2, 2000)
        half = len(conv) // 2
        comp = {n: w.run_inference_sync("compound-beta-lognormal",
                                        {"converted": conv[sl], "value": rev[sl]}).posterior
                for n, sl in (("A", slice(0, half)), ("B", slice(half, None)))}
        few = {}
        for n, k, seed in (("A", 2, 1), ("B", 3, 2)):     # 2 and 3 converters of 200 users
            r = np.random.default_rng(seed)
            c = np.zeros(200, bool)
            c[:k] = True
            few[n] = w.run_inference_sync("compound-beta-lognormal", {
                "converted": c, "value": np.where(c, r.lognormal(3, 0.8, 200), 0.0)}).posterior

        async def everything(arms):
            """The full set: every figure of the comparison with 95 % lift intervals."""
            c = await w.compare(arms)
            c.prob_beats_control(), c.prob_best(), c.expected_loss()
            c.expected_loss(vs="control"), c.lift(), c.lift(relative=False), c.decision()
            return c

        loop = asyncio.new_event_loop()

        def awaited(arms, n):
            return statistics.median(_timed(lambda: loop.run_until_complete(everything(arms)))
                                     for _ in range(n))
        rng = np.random.default_rng(1)
        (sa, ta), (sb, tb) = data["A"], data["B"]
        a1, b1, a2, b2 = sa + 0.5, ta - sa + 0.5, sb + 0.5, tb - sb + 0.5

        def numpy_way():
            xa, xb = rng.beta(a1, b1, 10**7), rng.beta(a2, b2, 10**7)
            best = np.maximum(xa, xb)
            return (np.mean(xb > xa), np.mean(best - xa), np.mean(best - xb),
                    np.quantile(xb / xa - 1, [0.025, 0.5, 0.975]))

        def bt():
            t = BinaryDataTest()
            t.add_variant_data_agg("A", ta, sa)
            t.add_variant_data_agg("B", tb, sb)
            return {r["variant"]: r for r in t.evaluate(sim_count=20_000)}
        try:
            from bayesian_testing.experiments import BinaryDataTest
        except ImportError:
            BinaryDataTest = None
        ours2 = awaited(two, repeat)
        base_np = statistics.median(_timed(numpy_way) for _ in range(3))
        base_bt = statistics.median(_timed(bt) for _ in range(repeat)) if BinaryDataTest \
            else float("nan")
        ours2b = awaited(two, repeat)             # again, after the baselines (same run)
        ours2 = min(ours2, ours2b)
        ours10 = awaited(ten, max(3, repeat // 5))
        ours_c = awaited(comp, max(3, repeat // 10))
        ours_f = awaited(few, max(3, repeat // 10))
        loop.close()
        row("two beta arms, every figure, awaited vs NumPy 1e7 draws", ours2, base_np, "all",
            ">= 100x, <= 1 ms")
        if BinaryDataTest:
            row("two beta arms, awaited vs bayesian-testing 20k sims", ours2, base_bt, "all",
                ">= 10x")
        row("ten beta arms, awaited (target <= 10 ms) vs 10 ms", ours10, 0.010, "all",
            ">= 1 (10 ms)")
        row("two compound-beta-lognormal arms, awaited vs 50 ms", ours_c, 0.050, "all",
            ">= 1 (50 ms)")
        row("compound arms of 2 and 3 converters in 200, awaited vs 50 ms", ours_f, 0.050,
            "all", ">= 1 (50 ms)")
        # errors against the oracles
        p, loss_a, loss_b, lift_cdf = _beta_oracle(a1, b1, a2, b2)
        cmp2 = w.compare_sync(two)
        e_ours = max(abs(cmp2.prob_best()["B"] - p), 1e-17)
        e_loss = max(abs(cmp2.expected_loss()["A"] / loss_a - 1),
                     abs(cmp2.expected_loss()["B"] / loss_b - 1), 1e-17)
        li = cmp2.lift()["B"]
        e_lift = max(abs(lift_cdf(li["interval"][0]) - 0.025),
                     abs(lift_cdf(li["interval"][1]) - 0.975), 1e-17)
        rng = np.random.default_rng(2)
        npv = numpy_way()
        row("  |P(best) - oracle|: bw vs NumPy 1e7", e_ours, abs(npv[0] - p), "-", ">= 100x",
            "error")
        row("  relative expected-loss error: bw vs NumPy 1e7", e_loss,
            max(abs(npv[1] / loss_a - 1), abs(npv[2] / loss_b - 1)), "-", ">= 100x", "error")
        row("  lift interval ends, |cdf - level|: bw vs NumPy 1e7", e_lift,
            max(abs(lift_cdf(npv[3][0]) - 0.025), abs(lift_cdf(npv[3][2]) - 0.975)), "-",
            ">= 100x", "error")
        if BinaryDataTest:
            runs = [bt() for _ in range(20)]
            row("  |P(best) - oracle|: bw vs bayesian-testing (median of 20)", e_ours,
                statistics.median(abs(r["B"]["prob_being_best"] - p) for r in runs), "-",
                ">= 100x", "error")
            row("  relative expected-loss error: bw vs bayesian-testing", e_loss,
                statistics.median(abs(r["A"]["expected_loss"] / loss_a - 1) for r in runs),
                "-", ">= 100x", "error")
        # the structure oracle of the tests (scipy's beta and gamma quantiles only)
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                        "tests"))
        from test_compare import compound_oracle
        oracle_f = compound_oracle(few["A"].parameters, few["B"].parameters)
        e_f = max(abs(w.compare_sync(few).prob_beats_control()["B"] - oracle_f), 1e-17)
        row("  few-converter compound |P(B > A) - oracle| vs the 1e-7 target", e_f, 1e-7,
            "-", ">= 1", "error")


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def issue11_cases(q: bool) -> None:
    """The rows of issue 11 (many small requests, segments, the loop lag), at full or quick
    sizes: run alone by --issue11 and as part of the whole run."""
    case_many_fits(1000 if q else 10_000, 1 if q else 3)
    case_many_fits(1000 if q else 10_000, 1 if q else 3, (0.95, 0.9, 0.8), "info")
    case_one_fit(300 if q else 2000)
    case_compound_one(5 if q else 11)
    case_segment_revenue(100 if q else 1000, 1)
    case_groups(10**4 if q else 10**5, 10**6 if q else 10**7, 1000 if q else 10**4,
                1 if q else 3)
    case_loop_lag(10**7 if q else 10**8, 2 if q else 5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes, under a minute")
    ap.add_argument("--issue11", action="store_true", help="only the rows of issue 11")
    ap.add_argument("--compare", action="store_true", help="only the rows of worker.compare")
    args = ap.parse_args()
    q = args.quick
    threads_all = bw.default_threads()
    print(f"bayesworker {bw.__version__}, NumPy {np.__version__}, Python "
          f"{platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs, "
          f"thread budget {threads_all}{' (quick)' if q else ''}")
    if args.compare:
        case_compare(20 if q else 100)
        return print_table()
    if args.issue11:
        issue11_cases(q)
        return print_table()
    case_draws(10**6 if q else 10**7, 3 if q else 5, threads_all)
    case_scaling((10**6,) if q else (10**6, 10**7), 5 if q else 7, threads_all)
    case_roundtrip(300 if q else 2000)
    case_fit(10**6 if q else 10**7, 3 if q else 5)
    issue11_cases(q)
    case_memory(10**8 if q else 10**9, 10**6, 10**7 if q else 10**8)
    case_compare(20 if q else 100)
    print_table()


def print_table() -> None:
    print("\n| case | bayesworker | baseline | ratio (baseline / bw) | threads | target |")
    print("|---|---|---|---|---|---|")
    for case, ours, _, base, ratio, threads, target in ROWS:
        print(f"| {case} | {ours} | {base} | {ratio:.2f} | {threads} | {target} |")


if __name__ == "__main__":
    main()
