/*
 * registry.c -- the one list of model families, and the checks every fit request passes
 * whatever its family.  A family is added by one line in bw_families (and its own file).
 */
#include <math.h>
#include <string.h>

#include "family.h"

extern const bw_family bw_family_beta_binomial, bw_family_normal, bw_family_lognormal,
    bw_family_exponential, bw_family_poisson, bw_family_compound_lognormal,
    bw_family_compound_exponential, bw_family_normal_mixture, bw_family_lognormal_mixture,
    bw_family_compound_lognormal_mixture, bw_family_dirichlet_multinomial;

const bw_family *const bw_families[] = {
    &bw_family_beta_binomial,
    &bw_family_normal,
    &bw_family_lognormal,
    &bw_family_exponential,
    &bw_family_poisson,
    &bw_family_compound_lognormal,
    &bw_family_compound_exponential,
    &bw_family_normal_mixture,
    &bw_family_lognormal_mixture,
    &bw_family_compound_lognormal_mixture,
    &bw_family_dirichlet_multinomial,
};
const size_t bw_nfamilies = sizeof bw_families / sizeof bw_families[0];

const bw_family *bw_family_by_code(int code)
{
    for (size_t i = 0; i < bw_nfamilies; i++)
        if (bw_families[i]->code == code)
            return bw_families[i];
    return NULL;
}

const bw_family *bw_family_by_name(const char *name)
{
    for (size_t i = 0; i < bw_nfamilies; i++)
        if (strcmp(bw_families[i]->name, name) == 0)
            return bw_families[i];
    return NULL;
}

void bw_write_numbers(bw_writer *w, const char *key, const double *x, size_t n)
{
    w->open(w, key, 1);
    for (size_t i = 0; i < n; i++)
        w->number(w, NULL, x[i]);
    w->close(w);
}

/* The prior: as many numbers as the family's layout (or >= 1 per category), each finite
 * and, unless its key is signed, > 0. */
static int check_prior(const bw_fit_spec *s, bw_error *err)
{
    const bw_family *f = s->family;
    size_t want = 0;
    while (f->prior[want].key)
        want++;
    if (f->prior_per_category ? s->nprior < 1 : s->nprior != want)
        return bw_fail(err, BW_E_DOMAIN, "the prior of model %s has %zu numbers; it takes %s%zu",
                       f->name, s->nprior, f->prior_per_category ? "one per category, not " : "",
                       f->prior_per_category ? s->nprior : want);
    for (size_t i = 0; i < s->nprior; i++) {
        const bw_prior_key *k = &f->prior[f->prior_per_category ? 0 : i];
        double v = s->prior[i];
        if (isfinite(v) && (k->sign_free || v > 0))
            continue;
        char text[32];
        if (f->prior_per_category)
            return bw_fail(err, BW_E_DOMAIN, "prior %s[%zu] = %s must be finite%s", k->key, i,
                           bw_fmt(text, sizeof text, v), k->sign_free ? "" : " and > 0");
        return bw_fail(err, BW_E_DOMAIN, "prior %s = %s must be finite%s", k->key,
                       bw_fmt(text, sizeof text, v), k->sign_free ? "" : " and > 0");
    }
    return 0;
}

int bw_check_fit(const bw_fit_spec *s, bw_error *err)
{
    const bw_family *f = s->family;
    if (check_prior(s, err) != 0)
        return -1;
    if (s->successes < 0 || s->trials < 0 || s->successes > s->trials)
        return bw_fail(err, BW_E_DOMAIN, "successes = %lld and trials = %lld are inconsistent",
                       (long long)s->successes, (long long)s->trials);
    if (!(f->takes & BW_TAKES_COUNTS) && (s->successes || s->trials))
        return bw_fail(err, BW_E_DOMAIN, "model %s takes no successes or trials", f->name);
    if (!(f->takes & BW_TAKES_VALUES) && s->values)
        return bw_fail(err, BW_E_DOMAIN, "model %s takes no values", f->name);
    if (s->stats && !(f->takes & BW_TAKES_STATS))
        return bw_fail(err, BW_E_DOMAIN, "model %s takes no statistics", f->name);
    if (s->stats && s->nstats != (size_t)f->nvalue_stats)
        return bw_fail(err, BW_E_DOMAIN, "model %s takes %d statistics, not %zu", f->name,
                       f->nvalue_stats, s->nstats);
    if (s->stats && s->values)
        return bw_fail(err, BW_E_DOMAIN, "give values or their statistics, not both");
    if (s->options.nK && !(f->takes & BW_TAKES_OPTIONS))
        return bw_fail(err, BW_E_DOMAIN, "model %s takes no options", f->name);
    if (f->check && f->check(s, err) != 0)
        return -1;
    return 0;
}
