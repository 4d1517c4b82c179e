/*
 * fam_rate.c -- exponential and poisson: a rate lambda ~ Gamma(alpha, rate beta) updated by
 * (n, sum).  Exponential waiting times report their mean 1 / lambda,
 * InvGamma(alpha + n, beta + sum); poisson counts report the rate, Gamma(alpha + sum,
 * beta + n) with n the exposure.
 */
#include <math.h>

#include "conjugate.h"

void bw_rate_update(int kind, const double *prior, const double *st, bw_dist *d)
{
    d->kind = kind;
    if (kind == BW_KIND_INVGAMMA) {
        d->p[0] = prior[0] + st[0];
        d->p[1] = prior[1] + st[1];
    } else {
        d->p[0] = prior[0] + st[1];
        d->p[1] = prior[1] + st[0];
    }
}

int bw_rate_check_some_positive(const bw_fit_spec *spec, const double st[2], bw_error *err)
{
    if (!spec->stats && st[0] > 0 && !(st[1] > 0))
        return bw_fail_value(err, BW_RULE_SOME_POSITIVE, (size_t)st[0], 0, 0);
    return 0;
}

static int exponential_update(const bw_fit_spec *spec, const double *stats, bw_record *post,
                              bw_error *err)
{
    if (bw_rate_check_some_positive(spec, stats, err) != 0)
        return -1;
    return bw_conj_update(spec, stats, 2, bw_rate_update, BW_KIND_INVGAMMA, post, err);
}

static int poisson_update(const bw_fit_spec *spec, const double *stats, bw_record *post,
                          bw_error *err)
{
    return bw_conj_update(spec, stats, 2, bw_rate_update, BW_KIND_GAMMA, post, err);
}

static const char *const exponential_parts[] = {"mean", NULL};
static const char *const poisson_parts[] = {"rate", NULL};
static const bw_prior_key prior[] = {{"alpha", 1.0, 0}, {"beta", 1.0, 0}, {NULL, 0, 0}};
static const int exponential_rules[] = {BW_RULE_FINITE, BW_RULE_NONNEGATIVE,
                                        BW_RULE_SOME_POSITIVE, 0};
static const int poisson_rules[] = {BW_RULE_FINITE, BW_RULE_NONNEGATIVE, BW_RULE_INTEGER, 0};
static const char *const exponential_stats[] = {"n", "sum", NULL};
static const char *const poisson_stats[] = {"exposure", "sum", NULL};

const bw_family bw_family_exponential = {
    .name = "exponential", .code = 4, .parts = exponential_parts, .prior = prior,
    .rules = exponential_rules, .stats = exponential_stats, .nvalue_stats = 2,
    .takes = BW_TAKES_VALUES | BW_TAKES_STATS, .reducer = &bw_reduce_sum,
    .update = exponential_update, BW_CONJUGATE_OPS,
};

const bw_family bw_family_poisson = {
    .name = "poisson", .code = 5, .parts = poisson_parts, .prior = prior,
    .rules = poisson_rules, .stats = poisson_stats, .nvalue_stats = 2,
    .takes = BW_TAKES_VALUES | BW_TAKES_STATS, .reducer = &bw_reduce_counts,
    .update = poisson_update, BW_CONJUGATE_OPS,
};
