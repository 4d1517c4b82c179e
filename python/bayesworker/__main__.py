"""The demo: ``python -m bayesworker``.

Fits a conversion test and a revenue test on synthetic A/B data, prints their exact
summaries, and draws a million posterior samples per arm on the worker threads while a
heartbeat coroutine shows that the event loop kept ticking.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np

import bayesworker as bw


def _ci(post, level=0.95) -> str:
    lo, hi = post.credible_interval(level)[0]
    return f"[{lo:.5g}, {hi:.5g}]"


async def _heartbeat(stop: asyncio.Event, gaps: list[float], period: float = 0.005) -> None:
    last = time.perf_counter()
    while not stop.is_set():
        await asyncio.sleep(period)
        now = time.perf_counter()
        gaps.append(now - last - period)
        last = now


async def main() -> None:
    rng = np.random.default_rng(7)
    users = 20_000
    arms = {}
    for name, rate, mu in (("A", 0.050, 3.00), ("B", 0.056, 3.05)):
        converted = rng.random(users) < rate
        value = np.where(converted, rng.lognormal(mu, 0.8, users), 0.0)
        arms[name] = (converted, value)

    async with bw.InferenceWorker(seed=2024) as worker:
        print(f"bayesworker {bw.__version__}: {worker.threads} worker threads, seed {worker.seed}")
        print("\nConversion rate (beta-binomial, Beta(1, 1) prior)")
        conv = {}
        for name, (converted, _) in arms.items():
            res = await worker.run_inference("beta-binomial", converted)
            conv[name] = res.posterior
            print(f"  {name}: {int(converted.sum())}/{users} converted; mean "
                  f"{res.posterior.mean()[0]:.5f}, 95% CI {_ci(res.posterior)}")

        print("\nRevenue per user (compound-beta-lognormal)")
        rev = {}
        for name, (converted, value) in arms.items():
            res = await worker.run_inference("compound-beta-lognormal",
                                             {"converted": converted, "value": value})
            post = res.posterior
            rev[name] = post
            print(f"  {name}: expected value per user {post.expected_value_per_user():.4f}, "
                  f"95% CI {_ci(post)}; order value {post.severity.mean()[0]:.3f} "
                  f"{_ci(post.severity)} (fit in {res.diagnostics.runtime * 1e3:.2f} ms)")

        print("\nDrawing 1,000,000 posterior samples per arm while the event loop ticks ...")
        stop, gaps = asyncio.Event(), []
        beat = asyncio.create_task(_heartbeat(stop, gaps))
        t0 = time.perf_counter()
        await asyncio.gather(*(p.sample(1_000_000) for p in
                                       (conv["A"], conv["B"], rev["A"], rev["B"])))
        elapsed = time.perf_counter() - t0
        stop.set()
        await beat
        print(f"  {4 * 1_000_000:,} draws in {elapsed * 1e3:.1f} ms; heartbeat ticked "
              f"{len(gaps)} times, largest oversleep {max(gaps, default=0) * 1e3:.2f} ms")
        print("\nDecision (exact, on the workers: worker.compare)")
        cmp = await worker.compare({"A": conv["A"], "B": conv["B"]}, control="A")
        lift = cmp.lift()["B"]
        print(f"  P(B converts better than A) = {cmp.prob_beats_control()['B']:.6f} "
              f"(numerical error < {cmp.error:.1e})")
        print(f"  conversion lift B/A - 1: median {lift['median']:+.2%}, 95% interval "
              f"[{lift['interval'][0]:+.2%}, {lift['interval'][1]:+.2%}]")
        print(f"  expected loss of shipping: {cmp.expected_loss()}")
        decision = cmp.decision(threshold=0.001)
        print(f"  decision: {decision['action']}: {decision['reason']}")

if __name__ == "__main__":
    asyncio.run(main())
