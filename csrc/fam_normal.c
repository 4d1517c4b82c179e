/*
 * fam_normal.c -- normal and lognormal: the mean of the values (of their logs) under a
 * normal-inverse-gamma prior,
 *     sigma^2 ~ InvGamma(alpha, beta),  mu | sigma^2 ~ N(mu0, sigma^2 / kappa),
 * updated by (n, mean, m2) of the values (of their logs).  The lognormal's quantity is the
 * data-scale mean exp(mu + sigma^2 / 2) (bw_dist.h, BW_KIND_NIG_LNMEAN).
 */
#include "conjugate.h"

void bw_nig_update(int kind, const double *prior, const double *st, bw_dist *d)
{
    double mu0 = prior[0], k0 = prior[1], a0 = prior[2], b0 = prior[3];
    double n = st[0], mean = st[1], m2 = st[2];
    double kn = k0 + n;
    d->kind = kind;
    d->p[0] = (k0 * mu0 + n * mean) / kn;
    d->p[1] = kn;
    d->p[2] = a0 + 0.5 * n;
    d->p[3] = b0 + 0.5 * m2 + 0.5 * (k0 * n / kn) * (mean - mu0) * (mean - mu0);
}

static int normal_update(const bw_fit_spec *spec, const double *stats, bw_record *post,
                         bw_error *err)
{
    return bw_conj_update(spec, stats, 3, bw_nig_update, BW_KIND_NIG_MEAN, post, err);
}

static int lognormal_update(const bw_fit_spec *spec, const double *stats, bw_record *post,
                            bw_error *err)
{
    return bw_conj_update(spec, stats, 3, bw_nig_update, BW_KIND_NIG_LNMEAN, post, err);
}

static const char *const parts[] = {"mean", NULL};
static const bw_prior_key prior[] = {
    {"mu", 0.0, 1}, {"kappa", 1e-6, 0}, {"alpha", 1.0, 0}, {"beta", 1.0, 0}, {NULL, 0, 0}};
static const int normal_rules[] = {BW_RULE_FINITE, 0};
static const int lognormal_rules[] = {BW_RULE_FINITE, BW_RULE_POSITIVE, 0};
static const char *const normal_stats[] = {"n", "mean", "m2", NULL};
static const char *const lognormal_stats[] = {"n", "log_mean", "log_m2", NULL};

const bw_family bw_family_normal = {
    .name = "normal", .code = 2, .parts = parts, .prior = prior, .rules = normal_rules,
    .stats = normal_stats, .nvalue_stats = 3, .takes = BW_TAKES_VALUES | BW_TAKES_STATS,
    .reducer = &bw_reduce_moments, .update = normal_update, BW_CONJUGATE_OPS,
};

const bw_family bw_family_lognormal = {
    .name = "lognormal", .code = 3, .parts = parts, .prior = prior, .rules = lognormal_rules,
    .stats = lognormal_stats, .nvalue_stats = 3, .takes = BW_TAKES_VALUES | BW_TAKES_STATS,
    .reducer = &bw_reduce_log_moments, .update = lognormal_update, BW_CONJUGATE_OPS,
};
