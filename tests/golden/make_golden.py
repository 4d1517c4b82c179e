"""Record the golden file: the summaries and draws of every model for one seed and one call
sequence.  Run once, before a redesign, with the code whose behaviour must be kept:

    python tests/golden/make_golden.py

tests/test_golden.py replays the same sequence and asserts the same bits.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "golden.json")
SEED = 20261130
N_DRAWS = 2000
LEVELS = (0.95, 0.5, 0.99)


def _data():
    """The fixed call sequence: (model, data, keyword arguments)."""
    rng = np.random.default_rng(11)
    conv = rng.random(400) < 0.2
    value = np.where(conv, rng.lognormal(2.0, 0.7, 400), 0.0)
    expo = np.where(conv, rng.exponential(3.0, 400), 0.0)
    normal = rng.normal(3.0, 2.0, 300)
    logn = rng.lognormal(1.0, 0.5, 300)
    bimodal = np.concatenate([rng.normal(-5, 1, 160), rng.normal(5, 1, 240)])
    trimodal = np.concatenate([rng.lognormal(np.log(10), 0.2, 150),
                               rng.lognormal(np.log(50), 0.2, 150),
                               rng.lognormal(np.log(200), 0.2, 150)])
    mixconv = rng.random(500) < 0.9
    mixval = np.where(mixconv[:450], trimodal[:450], 0.0)
    return [
        ("beta-binomial", {"successes": 65, "trials": 1000}, {}),
        ("beta-binomial", conv, {"prior": {"alpha": 2.0, "beta": 5.0}}),
        ("normal", normal, {}),
        ("normal", {"n": 50, "mean": 1.5, "sd": 0.4}, {}),
        ("lognormal", logn, {}),
        ("exponential", rng.exponential(2.0, 200), {}),
        ("gamma", {"n": 30, "sum": 45.0}, {}),
        ("poisson", rng.poisson(3.0, 250).astype(float), {}),
        ("compound-beta-lognormal", {"converted": conv, "value": value}, {}),
        ("compound-beta-exponential", {"converted": conv, "value": expo}, {}),
        ("normal-mixture", bimodal, {"components": 2}),
        ("lognormal-mixture", trimodal, {"components": "auto", "max_components": 3}),
        ("compound-beta-lognormalmixture",
         {"converted": mixconv[:450], "value": mixval}, {"components": 3}),
        ("auto", logn, {}),
    ]


def _bits(a) -> list[str]:
    """Every float64 as its exact hex form (bit-for-bit comparison, NaN-safe)."""
    return [float(x).hex() for x in np.asarray(a, dtype=np.float64).ravel()]


def _proxy_record(post) -> dict:
    rec = {"mean": _bits(post.mean()), "variance": _bits(post.variance())}
    for level in LEVELS:
        rec[f"ci{level}"] = _bits(post.credible_interval(level))
    return rec


def record(bw) -> list[dict]:
    """Run the call sequence on a fresh worker and return what it produced."""
    out = []
    with bw.InferenceWorker(threads=2, seed=SEED) as worker:
        for model, data, kw in _data():
            res = worker.run_inference_sync(model, data, **kw)
            post = res.posterior
            rec = {"model": model, "model_type": res.diagnostics.model_type,
                   "post": _proxy_record(post)}
            for part in ("frequency", "severity"):
                sub = getattr(post, part, None)
                if sub is not None:
                    rec[part] = _proxy_record(sub)
            if hasattr(post, "expected_value_per_user"):
                rec["evpu"] = _bits([post.expected_value_per_user()])
            rec["draws"] = _bits(post.sample_sync(N_DRAWS))
            rec["draws_more"] = _bits(post.sample_sync(7))
            if hasattr(post, "sample_predictive_sync"):
                rec["predictive"] = _bits(post.sample_predictive_sync(500))
            if hasattr(post, "weights"):
                w, ci = post.weights()
                rec["weights"] = _bits(w) + _bits(ci)
            sev = getattr(post, "severity", None)
            if sev is not None:
                rec["severity_draws"] = _bits(sev.sample_sync(500))
                if hasattr(sev, "sample_predictive_sync"):
                    rec["severity_predictive"] = _bits(sev.sample_predictive_sync(300))
            out.append(rec)
    return out


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(HERE, "..", "..", "python"))
    import bayesworker as bw
    with open(GOLDEN, "w") as f:
        json.dump(record(bw), f, indent=0)
    print(f"wrote {GOLDEN}")
