# The task with bayesworker today: per-arm summaries, a plot, a per-segment table.
import bayesworker as bw
from data import make

df = make()
with bw.InferenceWorker(seed=1) as w:
    conv = {a: w.run_inference_sync("beta-binomial", g, converted="converted").posterior
            for a, g in df.groupby("variant")}
    rev = {a: w.run_inference_sync("compound-beta-lognormal", g, converted="converted",
                                   value="revenue").posterior for a, g in df.groupby("variant")}
    print(w.compare_sync(conv).summary(), w.compare_sync(rev).summary(), sep="\n")
    bw.plot_posteriors(conv).figure.savefig("conversion.png")
    fits = w.fit_groups_sync(df, by=["country", "variant"], model="compound-beta-lognormal",
                             converted="converted", value="revenue")
    print(fits.compare_sync(arm="variant", control="A").summary())
