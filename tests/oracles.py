"""Independent references for the tests: closed forms and scipy quadrature, written from the
mathematics (README, "Models and priors" and "The lognormal mean"), never from the code
under test.
"""

from __future__ import annotations

import numpy as np
from scipy import integrate, optimize, stats

#: The lognormal mean is reported truncated at this posterior quantile (README).
TRUNCATION = 0.9999


def nig_posterior(x, mu0=0.0, k0=1e-6, a0=1.0, b0=1.0):
    """The normal-inverse-gamma update of (mu0, k0, a0, b0) by the values ``x``."""
    x = np.asarray(x, dtype=float)
    n, xbar = x.size, x.mean()
    m2 = ((x - xbar) ** 2).sum()
    kn = k0 + n
    return ((k0 * mu0 + n * xbar) / kn, kn, a0 + n / 2,
            b0 + m2 / 2 + k0 * n * (xbar - mu0) ** 2 / (2 * kn))


def lnmean_cdf(t, mu, kappa, alpha, beta):
    """P(mu' + s/2 <= t) under the NIG posterior (s ~ InvGamma(alpha, beta), mu' | s ~
    N(mu, s / kappa)), by quadrature over s: the cdf of log E[x] for lognormal x."""
    ig = stats.invgamma(alpha, scale=beta)

    def f(s):
        return stats.norm.cdf((t - mu - s / 2) * np.sqrt(kappa / s)) * ig.pdf(s)

    lo, hi = ig.ppf(1e-15), ig.ppf(1 - 1e-15)
    pts = np.geomspace(lo, hi, 12)
    return sum(integrate.quad(f, a, b, epsabs=0, epsrel=1e-13, limit=200)[0]
               for a, b in zip(pts[:-1], pts[1:]))


def lnmean_quantile(level, *params):
    """The ``level`` quantile of the data-scale mean exp(mu' + s/2), by root finding."""
    mu, kappa, alpha, beta = params
    center = mu + beta / (alpha + 1) / 2
    lo, hi = center - 5, center + 5
    while lnmean_cdf(lo, *params) > level:
        lo -= 5
    while lnmean_cdf(hi, *params) < level:
        hi += 5
    return np.exp(optimize.brentq(lambda t: lnmean_cdf(t, *params) - level, lo, hi,
                                  xtol=1e-14, rtol=1e-14))


def lnmean_truncated_moments(mu, kappa, alpha, beta, level=TRUNCATION):
    """Mean and variance of m = exp(mu' + s/2) given m <= its ``level`` quantile.

    E[m^k 1{Y <= q} | s] for Y = mu' + s/2 ~ N(mu + s/2, s/kappa) is the lognormal partial
    moment exp(k m + k^2 v / 2) Phi((q - m - k v) / sqrt(v)); integrated over s.
    """
    q = np.log(lnmean_quantile(level, mu, kappa, alpha, beta))
    ig = stats.invgamma(alpha, scale=beta)

    def partial(s, k):
        m, v = mu + s / 2, s / kappa
        return np.exp(k * m + k * k * v / 2) * stats.norm.cdf((q - m - k * v) / np.sqrt(v)) \
            * ig.pdf(s)

    lo, hi = ig.ppf(1e-15), ig.ppf(1 - 1e-15)
    e1 = integrate.quad(partial, lo, hi, args=(1,), epsabs=0, epsrel=1e-12, limit=400)[0]
    e2 = integrate.quad(partial, lo, hi, args=(2,), epsabs=0, epsrel=1e-12, limit=400)[0]
    mean = e1 / level
    return mean, e2 / level - mean ** 2


def dirichlet_weighted_sum(alphas, means, variances):
    """Mean and variance of M = sum_k w_k m_k for w ~ Dirichlet(alphas) independent of
    independent m_k with the given means and variances (Dirichlet moments:
    E[w_j w_k] = a_j a_k / (A (A + 1)), E[w_k^2] = a_k (a_k + 1) / (A (A + 1)))."""
    a = np.asarray(alphas, dtype=float)
    m = np.asarray(means, dtype=float)
    v = np.asarray(variances, dtype=float)
    A = a.sum()
    ww = np.outer(a, a) / (A * (A + 1)) + np.diag(a) / (A * (A + 1))
    mm = np.outer(m, m) + np.diag(v)
    mean = float(a @ m / A)
    return mean, float((ww * mm).sum() - mean ** 2)
