/*
 * density.c -- closed-form densities and supports of the posterior quantities (density.h).
 *
 * Every density is computed as exp(log density) through the kernels of specfun.c, which
 * stay accurate for the large shape parameters of big data sets (Stirling forms):
 *
 *   Beta(a, b)             f(x) = K_beta(a, b, x) / (x y),  y = 1 - x
 *   Gamma(a, rate b)       f(x) = K_gamma(a, b x) / x
 *   InvGamma(a, scale b)   f(x) = K_gamma(a, b / x) / x
 *   NIG mean               f(x) = t_{2 alpha}((x - m) / s) / s,  s = sqrt(beta / (alpha kappa))
 *
 * where K_beta = x^a y^b / B(a, b) and K_gamma(a, u) = u^a e^(-u) / Gamma(a).  No state.
 */
#include <math.h>

#include "density.h"
#include "specfun.h"

static int positive_finite(double v) { return v > 0.0 && isfinite(v); }

static int params_valid(const bw_dist *d)
{
    if (d->kind == BW_KIND_NIG_MEAN || d->kind == BW_KIND_NIG_LNMEAN)
        return isfinite(d->p[0]) && positive_finite(d->p[1]) && positive_finite(d->p[2]) &&
               positive_finite(d->p[3]);
    return positive_finite(d->p[0]) && positive_finite(d->p[1]);
}

/* Density at the lower end 0 of a Beta or Gamma of shape a: +inf, `at_one` or 0. */
static double density_at_zero(double a, double at_one)
{
    return a < 1.0 ? INFINITY : a == 1.0 ? at_one : 0.0;
}

static double beta_pdf(double a, double b, double x)
{
    if (x < 0.0 || x > 1.0)
        return 0.0;
    if (x == 0.0)
        return density_at_zero(a, b);           /* Beta(1, b) at 0: b */
    if (x == 1.0)
        return density_at_zero(b, a);
    double y = 1.0 - x;
    return exp(bw_beta_logkernel(a, b, x, y, log(x), log1p(-x)) - log(x) - log(y));
}

/* K_gamma(a, u) / x with u = b x (gamma) or b / x (inverse gamma). */
static double gamma_kernel_over_x(double a, double u, double x)
{
    return exp(bw_gamma_logkernel(a, u, log(u)) - log(x));
}

static double dist_pdf(const bw_dist *d, double x)
{
    double a = d->p[0], b = d->p[1];
    switch (d->kind) {
    case BW_KIND_BETA:
        return beta_pdf(a, b, x);
    case BW_KIND_GAMMA:
        if (x < 0.0 || x == INFINITY)
            return 0.0;
        return x == 0.0 ? density_at_zero(a, b) : gamma_kernel_over_x(a, b * x, x);
    case BW_KIND_INVGAMMA:
        if (x <= 0.0 || x == INFINITY)
            return 0.0;
        return gamma_kernel_over_x(a, b / x, x);
    default: {                                  /* BW_KIND_NIG_MEAN */
        double df = 2.0 * d->p[2], s = sqrt(d->p[3] / (d->p[2] * d->p[1]));
        return exp(bw_t_logpdf(df, (x - d->p[0]) / s)) / s;
    }
    }
}

int bw_has_closed_pdf(const bw_quantity *q)
{
    if (!q || q->nfactors != 1)
        return 0;
    int k = q->f[0].kind;
    return k == BW_KIND_BETA || k == BW_KIND_GAMMA || k == BW_KIND_INVGAMMA ||
           k == BW_KIND_NIG_MEAN;
}

int bw_closed_pdf(const bw_quantity *q, double x, double *out)
{
    if (!bw_has_closed_pdf(q) || !params_valid(&q->f[0]) || isnan(x) || !out)
        return BW_E_DOMAIN;
    *out = dist_pdf(&q->f[0], x);
    return BW_OK;
}

static int dist_support(const bw_dist *d, double *lo, double *hi)
{
    switch (d->kind) {
    case BW_KIND_BETA:
        *lo = 0.0;
        *hi = 1.0;
        return BW_OK;
    case BW_KIND_NIG_MEAN:
        *lo = -INFINITY;
        *hi = INFINITY;
        return BW_OK;
    case BW_KIND_NIG_LNMEAN:
    case BW_KIND_GAMMA:
    case BW_KIND_INVGAMMA:
        *lo = 0.0;
        *hi = INFINITY;
        return BW_OK;
    default:
        return BW_E_DOMAIN;
    }
}

int bw_support(const bw_quantity *q, double *lo, double *hi)
{
    if (!q || (q->nfactors != 1 && q->nfactors != 2) || !lo || !hi)
        return BW_E_DOMAIN;
    int st = dist_support(&q->f[0], lo, hi);
    if (st || q->nfactors == 1)
        return st;
    double lo1, hi1;
    st = dist_support(&q->f[1], &lo1, &hi1);
    if (st)
        return st;
    if (*lo < 0.0 || lo1 < 0.0)                 /* a signed factor: the whole line */
        *lo = -INFINITY, *hi = INFINITY;
    else
        *lo *= lo1, *hi *= hi1;
    return BW_OK;
}
