# The same task with bayesworker before the notebook and decision work (2026-11-29):
# fixed column names, comparisons and the plot by hand from draws and parameters.
import matplotlib.pyplot as plt
import numpy as np
from scipy import stats

import bayesworker as bw
from data import make

df = make()
rows = []
with bw.InferenceWorker(seed=1) as w:
    conv, rev = {}, {}
    for arm, g in df.groupby("variant"):
        conv[arm] = w.run_inference_sync("beta-binomial", g["converted"].to_numpy()).posterior
        rev[arm] = w.run_inference_sync(
            "compound-beta-lognormal",
            {"converted": g["converted"].to_numpy(), "value": g["revenue"].to_numpy()}).posterior
    for name, posts in (("conversion", conv), ("revenue", rev)):
        draws = {a: p.sample_sync(1_000_000) for a, p in posts.items()}
        best = np.argmax(np.stack(list(draws.values())), axis=0)
        top = np.max(np.stack(list(draws.values())), axis=0)
        for i, (a, p) in enumerate(posts.items()):
            lo, hi = p.credible_interval(0.95)[0]
            rows.append({"metric": name, "arm": a, "mean": p.mean()[0], "lo": lo, "hi": hi,
                         "prob_best": np.mean(best == i),
                         "expected_loss": np.mean(top - draws[a])})
    print(rows)
    x = np.linspace(0.045, 0.056, 400)
    for arm, p in conv.items():
        par = p.parameters
        plt.plot(x, stats.beta(par["alpha"], par["beta"]).pdf(x), label=arm)
    plt.legend()
    plt.savefig("conversion.png")
    table = []
    for country, g in df.groupby("country"):
        posts = {}
        for arm, h in g.groupby("variant"):
            posts[arm] = w.run_inference_sync(
                "compound-beta-lognormal",
                {"converted": h["converted"].to_numpy(), "value": h["revenue"].to_numpy()}
            ).posterior
        a, b = posts["A"].sample_sync(1_000_000), posts["B"].sample_sync(1_000_000)
        table.append({"country": country, "p_b_beats_a": np.mean(b > a),
                      "lift": np.median(b / a - 1)})
    print(table)
