/*
 * bw_dist.h -- the posterior quantities of bayesworker and the pure-C kernels over them.
 *
 * No Python.h here. A "quantity" is what a posterior proxy reports on: either one
 * distribution (the conversion rate, the mean of the data, ...) or the product of two
 * independent ones (revenue per user = conversion rate x value per converter).
 *
 * Summaries (summary.c) are exact: closed forms or deterministic adaptive quadrature.
 * Draws (sample.c) come from a counter-based Philox4x32-10 stream: draw number i of a
 * stream depends only on (key, tag, i), never on how a request was split into blocks.
 */
#ifndef BW_DIST_H
#define BW_DIST_H

#include <stddef.h>
#include <stdint.h>

#include "bw_status.h"

/* ---------------------------------------------------------------------------------------- */
/* Distributions                                                                            */
/* ---------------------------------------------------------------------------------------- */

enum bw_kind {
    /* p ~ Beta(a, b).                                     p = {a, b}                        */
    BW_KIND_BETA = 1,
    /* mu under a normal-inverse-gamma posterior:
     *   sigma^2 ~ InvGamma(alpha, beta), mu | sigma^2 ~ N(m, sigma^2 / kappa);
     *   marginal: m + sqrt(beta / (alpha kappa)) * t_{2 alpha}.  p = {m, kappa, alpha, beta} */
    BW_KIND_NIG_MEAN = 2,
    /* exp(mu + sigma^2 / 2) under the same NIG posterior (the data-scale mean of a
     * lognormal).  p = {m, kappa, alpha, beta}.  Its mean is infinite: see bw_mean.        */
    BW_KIND_NIG_LNMEAN = 3,
    /* lambda ~ Gamma(shape a, rate b).                    p = {a, b}                        */
    BW_KIND_GAMMA = 4,
    /* 1 / lambda, lambda ~ Gamma(shape a, rate b), i.e. InvGamma(a, scale b).  p = {a, b}  */
    BW_KIND_INVGAMMA = 5,
};

typedef struct {
    int kind;       /* enum bw_kind */
    double p[4];
} bw_dist;

/* One distribution (nfactors == 1: f[0]) or the product of two independent ones
 * (nfactors == 2: f[0] * f[1], f[0] the frequency, f[1] the severity). */
typedef struct {
    int nfactors;
    bw_dist f[2];
} bw_quantity;

/* Truncation used wherever a moment is infinite (BW_KIND_NIG_LNMEAN): moments are those of
 * the quantity conditional on quantity <= its BW_TRUNC_LEVEL quantile. */
#define BW_TRUNC_LEVEL 0.9999

/* The summary kernels return an enum bw_status (bw_status.h): BW_OK, BW_E_DOMAIN (a
 * parameter or level outside its domain) or BW_E_NUMERIC (a root finder or quadrature did
 * not reach its tolerance). */

/* ---------------------------------------------------------------------------------------- */
/* Summaries (summary.c): exact, deterministic, thread-safe (no global state).               */
/* ---------------------------------------------------------------------------------------- */

/* Posterior mean of the quantity.  For BW_KIND_NIG_LNMEAN (alone or as a factor) the
 * truncated mean E[X | X <= q_{BW_TRUNC_LEVEL}] is reported for that factor.  A product's
 * mean is the product of its factors' (possibly truncated) means.  +inf where the mean is
 * infinite in closed form (InvGamma with a <= 1). */
int bw_mean(const bw_quantity *q, double *out);

/* Posterior variance; same truncation rule; for a product of independent factors
 * Var = E[X^2] E[Y^2] - (E[X] E[Y])^2 using the (possibly truncated) moments.
 * +inf where infinite in closed form (InvGamma with a <= 2). */
int bw_variance(const bw_quantity *q, double *out);

/* bw_mean and bw_variance together (the same numbers), each factor's moments computed
 * once; a failure of either is reported as such (call them apart to know which). */
int bw_moments(const bw_quantity *q, double *mean, double *var);

/* bw_moments of a product of two factors from the factors' own (m, v: what bw_moments gives
 * for each alone), the same numbers without computing them again. */
int bw_product_moments(const double m[2], const double v[2], double *mean, double *var);

/* P(quantity <= x). */
int bw_cdf(const bw_quantity *q, double x, double *out);

/* The density of the quantity at x (0 outside its support). */
int bw_pdf(const bw_quantity *q, double x, double *out);

/* P(quantity <= x), P(quantity > x) (the smaller computed directly for the quadrature
 * kinds) and the density at x, from one setup. */
int bw_tails_pdf(const bw_quantity *q, double x, double *lower, double *upper, double *pdf);

/* The level-quantile, 0 < level < 1, to ~1e-13 relative. */
int bw_quantile(const bw_quantity *q, double level, double *out);

/* Central (equal-tailed) credible interval: quantiles (1-level)/2 and (1+level)/2. */
int bw_interval(const bw_quantity *q, double level, double out[2]);

/* The intervals at levels[0 .. n) (n <= BW_MAX_LEVELS), the same numbers as bw_interval at
 * each level, computed from one setup where the quantity allows it (a Beta rate times a
 * lognormal mean: one table of the lognormal mean's tails serves every end). */
#define BW_MAX_LEVELS 8
int bw_intervals(const bw_quantity *q, const double *levels, int n, double (*out)[2]);

/* ---------------------------------------------------------------------------------------- */
/* Draws (sample.c)                                                                          */
/* ---------------------------------------------------------------------------------------- */

/* A stream: a 64-bit Philox key and a 32-bit tag (which part of a posterior is drawn).
 * The 128-bit Philox counter of draw i is {j, lo32(i), hi32(i), tag}, j counting the
 * Philox blocks that draw consumes, so draw i never depends on any other draw. */
typedef struct {
    uint64_t key;
    uint32_t tag;
} bw_stream;

/* Derive a stream key from a worker seed and a posterior's sequence number. */
uint64_t bw_stream_key(uint64_t seed, uint64_t posterior_seq);

/* Fill out[0 .. n) with draws number start .. start+n-1 of the quantity on stream st. */
void bw_sample(const bw_quantity *q, bw_stream st, uint64_t start, size_t n, double *out);

/* log of x[0 .. n) into out, every x finite and > 0: the samplers' vector log (about 1 ulp),
 * bit-identical on every instruction-set variant, so fits agree across machines. */
void bw_log_array(const double *x, double *out, size_t n);

#endif /* BW_DIST_H */
