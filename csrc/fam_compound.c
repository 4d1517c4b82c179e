/*
 * fam_compound.c -- compound-beta-lognormal and compound-beta-exponential: revenue per user
 * = conversion rate x value per converter, the two independent.  Three parts: the revenue
 * (part 0, the product), the frequency (part 1, beta-binomial on converters of users) and
 * the severity (part 2, lognormal or exponential on the converters' values).
 */
#include "conjugate.h"

/* The parts from the frequency and the severity; stats: the severity's, then converters
 * and users. */
static int compound_post(const bw_fit_spec *spec, const double *stats, int nsev,
                         const bw_dist *sev, bw_record *post, bw_error *err)
{
    bw_conj_post *c = bw_conj(post);
    bw_dist freq;
    bw_beta_update(spec->prior, spec->successes, spec->trials, &freq);
    c->nparts = 3;
    c->part[BW_PART_REVENUE].q.nfactors = 2;
    c->part[BW_PART_REVENUE].q.f[0] = freq;
    c->part[BW_PART_REVENUE].q.f[1] = *sev;
    c->part[BW_PART_FREQUENCY].q.nfactors = 1;
    c->part[BW_PART_FREQUENCY].q.f[0] = freq;
    c->part[BW_PART_SEVERITY].q.nfactors = 1;
    c->part[BW_PART_SEVERITY].q.f[0] = *sev;
    c->nstats = nsev + 2;
    for (int i = 0; i < nsev; i++)
        c->stats[i] = stats[i];
    c->stats[nsev] = (double)spec->successes;
    c->stats[nsev + 1] = (double)spec->trials;
    return bw_check_dist(sev, "severity ", stats, spec->family->reducer->stat_names, err);
}

static int lognormal_update(const bw_fit_spec *spec, const double *stats, bw_record *post,
                            bw_error *err)
{
    bw_dist sev;
    bw_nig_update(BW_KIND_NIG_LNMEAN, spec->prior + 2, stats, &sev);
    return compound_post(spec, stats, 3, &sev, post, err);
}

static int exponential_update(const bw_fit_spec *spec, const double *stats, bw_record *post,
                              bw_error *err)
{
    bw_dist sev;
    bw_rate_update(BW_KIND_INVGAMMA, spec->prior + 2, stats, &sev);
    if (bw_rate_check_some_positive(spec, stats, err) != 0)
        return -1;
    return compound_post(spec, stats, 2, &sev, post, err);
}

static const char *const parts[] = {"revenue", "frequency", "severity", NULL};
static const bw_prior_key lognormal_prior[] = {
    {"frequency.alpha", 1.0, 0}, {"frequency.beta", 1.0, 0}, {"severity.mu", 0.0, 1},
    {"severity.kappa", 1e-6, 0}, {"severity.alpha", 1.0, 0},  {"severity.beta", 1.0, 0},
    {NULL, 0, 0}};
static const bw_prior_key exponential_prior[] = {
    {"frequency.alpha", 1.0, 0}, {"frequency.beta", 1.0, 0}, {"severity.alpha", 1.0, 0},
    {"severity.beta", 1.0, 0}, {NULL, 0, 0}};
static const int lognormal_rules[] = {BW_RULE_FINITE, BW_RULE_POSITIVE, 0};
static const int exponential_rules[] = {BW_RULE_FINITE, BW_RULE_NONNEGATIVE,
                                        BW_RULE_SOME_POSITIVE, 0};
static const char *const lognormal_stats[] = {"severity_n", "severity_log_mean",
                                              "severity_log_m2", "converters", "users", NULL};
static const char *const exponential_stats[] = {"severity_n", "severity_sum", "converters",
                                                "users", NULL};

const bw_family bw_family_compound_lognormal = {
    .name = "compound-beta-lognormal", .code = 6, .parts = parts, .prior = lognormal_prior,
    .rules = lognormal_rules, .stats = lognormal_stats, .nvalue_stats = 3,
    .takes = BW_TAKES_COUNTS | BW_TAKES_VALUES | BW_TAKES_STATS,
    .reducer = &bw_reduce_log_moments, .update = lognormal_update, BW_CONJUGATE_OPS,
};

const bw_family bw_family_compound_exponential = {
    .name = "compound-beta-exponential", .code = 7, .parts = parts, .prior = exponential_prior,
    .rules = exponential_rules, .stats = exponential_stats, .nvalue_stats = 2,
    .takes = BW_TAKES_COUNTS | BW_TAKES_VALUES | BW_TAKES_STATS, .reducer = &bw_reduce_sum,
    .update = exponential_update, BW_CONJUGATE_OPS,
};
