"""Time to fit a 3-component normal mixture to 10^6 points: bayesworker vs scikit-learn.

    python bench/bench_mixture.py [--n 1000000] [--threads N] [--repeat 3]

Both fit the same data (a 3-component 1-D mixture) with variational Bayes: bayesworker's
``normal-mixture`` (components=3, tolerance 1e-8, at most 500 iterations) and
scikit-learn's ``BayesianGaussianMixture`` (n_components=3, Dirichlet-distribution weight
prior, tol 1e-3 on the lower bound per sample, max_iter 500, k-means init, one init). The
two stop by different rules, so iterations are printed too. scikit-learn is needed for
this benchmark only (``pip install scikit-learn``); it is not a dependency.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import bayesworker as bw


def data(n: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    u = rng.random(n)
    return np.where(u < 0.5, rng.normal(-4, 1, n),
                    np.where(u < 0.8, rng.normal(1, 0.7, n), rng.normal(6, 1.5, n)))


def best_of(f, repeat: int):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = f()
        times.append(time.perf_counter() - t)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    from sklearn.mixture import BayesianGaussianMixture

    x = data(args.n)
    with bw.InferenceWorker(threads=args.threads, seed=1) as w:
        t_bw, res = best_of(lambda: w.run_inference_sync("normal-mixture", x, components=3,
                                                         timeout=600), args.repeat)
        post = res.posterior
        print(f"bayesworker  threads={w.threads}: {t_bw:.3f} s, "
              f"{res.diagnostics.iterations} iterations, means {np.round(post.mean(), 3)}, "
              f"weights {np.round(post.weights()[0], 3)}")

    def sk():
        m = BayesianGaussianMixture(n_components=3, weight_concentration_prior_type=
                                    "dirichlet_distribution", max_iter=500, random_state=0)
        return m.fit(x.reshape(-1, 1))

    t_sk, m = best_of(sk, args.repeat)
    order = np.argsort(m.means_[:, 0])
    print(f"scikit-learn {__import__('sklearn').__version__}: {t_sk:.3f} s, {m.n_iter_} "
          f"iterations, means {np.round(m.means_[order, 0], 3)}, "
          f"weights {np.round(m.weights_[order], 3)}")
    print(f"ratio sklearn / bayesworker: {t_sk / t_bw:.1f}x (n = {args.n}, best of "
          f"{args.repeat})")


if __name__ == "__main__":
    main()
