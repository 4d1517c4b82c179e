"""The shared task's data: 200,000 users, the arm each saw, country, converted, revenue."""
import numpy as np
import pandas as pd


def make(n: int = 200_000, seed: int = 20261130) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    variant = rng.choice(["A", "B"], size=n)
    country = rng.choice(["DE", "FR", "GB", "US"], size=n, p=[0.3, 0.2, 0.2, 0.3])
    converted = rng.random(n) < np.where(variant == "B", 0.052, 0.048)
    revenue = np.where(converted, rng.lognormal(np.where(variant == "B", 3.02, 3.0), 0.9), 0.0)
    return pd.DataFrame({"variant": variant, "country": country,
                         "converted": converted, "revenue": revenue.round(2)})
