/*
 * fam_beta.c -- beta-binomial: conversions out of trials, p ~ Beta(alpha + successes,
 * beta + trials - successes).
 */
#include "conjugate.h"

void bw_beta_update(const double prior[2], int64_t successes, int64_t trials, bw_dist *d)
{
    d->kind = BW_KIND_BETA;
    d->p[0] = prior[0] + (double)successes;
    d->p[1] = prior[1] + (double)(trials - successes);
}

static int beta_update(const bw_fit_spec *spec, const double *stats, bw_record *post,
                       bw_error *err)
{
    (void)stats;
    bw_dist d;
    bw_beta_update(spec->prior, spec->successes, spec->trials, &d);
    const double counts[2] = {(double)spec->successes, (double)spec->trials};
    return bw_conj_single(post, &d, counts, 2, spec->family->stats, err);
}

static const char *const parts[] = {"rate", NULL};
static const bw_prior_key prior[] = {{"alpha", 1.0, 0}, {"beta", 1.0, 0}, {NULL, 0, 0}};
static const int rules[] = {0};
static const char *const stats[] = {"successes", "trials", NULL};

const bw_family bw_family_beta_binomial = {
    .name = "beta-binomial", .code = 1, .parts = parts, .prior = prior, .rules = rules,
    .stats = stats, .takes = BW_TAKES_COUNTS, .update = beta_update, BW_CONJUGATE_OPS,
};
