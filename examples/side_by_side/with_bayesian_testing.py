# The same task with bayesian-testing 0.10 (its own Monte Carlo; the plot by hand).
import matplotlib.pyplot as plt
import numpy as np
from bayesian_testing.experiments import BinaryDataTest, DeltaLognormalDataTest
from scipy import stats

from data import make

df = make()
conv, rev = BinaryDataTest(), DeltaLognormalDataTest()
for arm, g in df.groupby("variant"):
    conv.add_variant_data(arm, g["converted"].astype(int).tolist())
    rev.add_variant_data(arm, g["revenue"].tolist())
print(conv.evaluate(), rev.evaluate(), sep="\n")
x = np.linspace(0.045, 0.056, 400)
for row in conv.evaluate():
    a = 1 + row["positives"]
    b = 1 + row["totals"] - row["positives"]
    plt.plot(x, stats.beta(a, b).pdf(x), label=row["variant"])
plt.legend()
plt.savefig("conversion.png")
table = []
for country, g in df.groupby("country"):
    test = DeltaLognormalDataTest()
    for arm, h in g.groupby("variant"):
        test.add_variant_data(arm, h["revenue"].tolist())
    res = {r["variant"]: r for r in test.evaluate()}
    table.append({"country": country, "p_b_best": res["B"]["prob_being_best"],
                  "loss_b": res["B"]["expected_loss"]})
print(table)
