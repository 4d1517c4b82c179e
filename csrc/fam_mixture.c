/*
 * fam_mixture.c -- the mixture families' posterior maths: the stored posterior of a fit
 * (fam_mixture.h), its draws, its Monte Carlo intervals, its description, and the three
 * registry rows (normal-mixture, lognormal-mixture, compound-beta-lognormalmixture).
 *
 * Draws.  Draw i of part BW_PART_MIX_MEAN (REVENUE, PREDICTIVE) on stream key depends only
 * on (key, tag offset, i): it composes bw_sample calls at position i on per-component
 * streams (bw_codes.h; r = the reported component's rank):
 *   mean        w_r ~ Gamma(alpha_r, 1) on tag off + BW_TAG_MIX_WEIGHT + r; m_r (the
 *               component's data-scale mean: mu_r, or exp(mu_r + sigma_r^2 / 2)) on tag
 *               off + BW_TAG_MIX_COMPONENT + r; value sum_r w_r m_r / sum_r w_r;
 *   revenue     the mean times a conversion-rate draw on tag off + BW_TAG_MIX_RATE;
 *   predictive  w_r on tag off + BW_TAG_MIX_PRED_WEIGHT + r, a uniform on tag
 *               off + BW_TAG_MIX_PRED_PICK picks r with probability w_r / sum w, and the
 *               value is that component's predictive m + sqrt(b (kappa + 1) / (a kappa))
 *               t_{2a} from tag off + BW_TAG_MIX_PRED_VALUE + r (exp'd for lognormal).
 * User draws use offset 0; the Monte Carlo summaries offset BW_TAG_MIX_MC.
 *
 * Monte Carlo intervals (the mixture mean's and the revenue's, the one summary that is not
 * exact): empirical quantiles (linear interpolation) of draws 0 .. BW_MIX_MC_DRAWS-1 at
 * offset BW_TAG_MIX_MC, deterministic for a posterior, with each endpoint's standard error
 * (half the spread of the order statistics one binomial sd either side).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fam_mixture.h"

#define MIX_PRIOR_KEYS 5            /* alpha0, m0, kappa0, a0, b0 */
#define MAX_ITERATIONS 1000000

/* What tells the three rows apart (bw_family.data). */
typedef struct {
    int log_scale;              /* components on log x */
    int compound;               /* a conversion rate times the mixture */
} mix_kind;

static const mix_kind *kind_of(const bw_fit_spec *spec) { return spec->family->data; }

/* The mixture prior's offset in the prior tuple: a compound's starts with the frequency's. */
static size_t prior_offset(const mix_kind *k) { return k->compound ? 2 : 0; }

void bw_mix_post_spec(const bw_fit_spec *spec, int K, bw_mix_spec *sp)
{
    const double *p = spec->prior + prior_offset(kind_of(spec));
    bw_mix_spec_default(sp, K, kind_of(spec)->log_scale);
    sp->alpha0 = p[0];
    sp->m0 = p[1];
    sp->kappa0 = p[2];
    sp->a0 = p[3];
    sp->b0 = p[4];
    sp->tol = spec->options.tol;
    sp->max_iter = spec->options.max_iter;
    sp->key = spec->stream_key ^ BW_MIX_INIT_SALT;
}

/* ======================================================================================== */
/* Draws                                                                                    */
/* ======================================================================================== */

static void mix_draw(const bw_mix_post *mp, int code, uint64_t key, uint32_t off,
                     uint64_t start, size_t n, double *out)
{
    const int R = mp->nrep;
    const int pred = code == BW_PART_MIX_PREDICTIVE;
    const int revenue = code == BW_PART_MIX_REVENUE;
    const uint32_t tag_w = off + (pred ? BW_TAG_MIX_PRED_WEIGHT : BW_TAG_MIX_WEIGHT);
    const uint32_t tag_v = off + (pred ? BW_TAG_MIX_PRED_VALUE : BW_TAG_MIX_COMPONENT);
    double w[BW_MIX_MAX_K][BW_MIX_DRAW_CHUNK], v[BW_MIX_MAX_K][BW_MIX_DRAW_CHUNK];
    double u[BW_MIX_DRAW_CHUNK];
    for (size_t lo = 0; lo < n; lo += BW_MIX_DRAW_CHUNK) {
        size_t m = n - lo < BW_MIX_DRAW_CHUNK ? n - lo : BW_MIX_DRAW_CHUNK;
        uint64_t pos = start + lo;
        for (int r = 0; r < R; r++) {
            int k = mp->order[r];
            const double *g = mp->nig[k];
            bw_quantity qw = {.nfactors = 1};
            qw.f[0].kind = BW_KIND_GAMMA;
            qw.f[0].p[0] = mp->alpha[k];
            qw.f[0].p[1] = 1.0;
            bw_sample(&qw, (bw_stream){key, tag_w + (uint32_t)r}, pos, m, w[r]);
            bw_quantity qv = {.nfactors = 1};
            if (pred) {
                qv.f[0].kind = BW_KIND_NIG_MEAN;
                qv.f[0].p[0] = g[0];
                qv.f[0].p[1] = g[1] / (g[1] + 1.0);
                qv.f[0].p[2] = g[2];
                qv.f[0].p[3] = g[3];
            } else {
                qv.f[0].kind = mp->log_scale ? BW_KIND_NIG_LNMEAN : BW_KIND_NIG_MEAN;
                memcpy(qv.f[0].p, g, sizeof qv.f[0].p);
            }
            bw_sample(&qv, (bw_stream){key, tag_v + (uint32_t)r}, pos, m, v[r]);
        }
        if (pred) {
            bw_quantity qu = {.nfactors = 1};
            qu.f[0].kind = BW_KIND_BETA;
            qu.f[0].p[0] = qu.f[0].p[1] = 1.0;
            bw_sample(&qu, (bw_stream){key, off + BW_TAG_MIX_PRED_PICK}, pos, m, u);
        } else if (revenue) {
            bw_sample(&mp->freq.q, (bw_stream){key, off + BW_TAG_MIX_RATE}, pos, m, u);
        }
        for (size_t i = 0; i < m; i++) {
            double sw = 0;
            for (int r = 0; r < R; r++)
                sw += w[r][i];
            if (pred) {
                double t = u[i] * sw, c = 0;
                int r = 0;
                for (; r < R - 1; r++) {
                    c += w[r][i];
                    if (t < c)
                        break;
                }
                out[lo + i] = mp->log_scale ? exp(v[r][i]) : v[r][i];
            } else {
                double s = 0;
                for (int r = 0; r < R; r++)
                    s += w[r][i] * v[r][i];
                s /= sw;
                out[lo + i] = revenue ? s * u[i] : s;
            }
        }
    }
}

/* ======================================================================================== */
/* Monte Carlo intervals                                                                    */
/* ======================================================================================== */

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double order_stat(const double *x, size_t M, double h)
{
    if (h <= 0)
        return x[0];
    if (h >= (double)(M - 1))
        return x[M - 1];
    size_t i = (size_t)h;
    double f = h - (double)i;
    return f == 0 ? x[i] : x[i] + f * (x[i + 1] - x[i]);
}

static int mc_intervals(const bw_mix_post *mp, int code, uint64_t key, const double *levels,
                        int nlev, double (*out)[2], double (*se)[2], bw_error *err)
{
    const size_t M = BW_MIX_MC_DRAWS;
    double *x = malloc(M * sizeof *x);
    if (!x)
        return bw_fail(err, BW_E_NOMEM, "out of memory for the %u draws of a mixture "
                       "interval", (unsigned)M);
    mix_draw(mp, code, key, BW_TAG_MIX_MC, 0, M, x);
    qsort(x, M, sizeof *x, cmp_dbl);
    for (int l = 0; l < nlev; l++) {
        for (int e = 0; e < 2; e++) {
            double p = e == 0 ? (1 - levels[l]) / 2 : (1 + levels[l]) / 2;
            double h = p * (double)(M - 1), d = sqrt((double)M * p * (1 - p));
            out[l][e] = order_stat(x, M, h);
            se[l][e] = 0.5 * (order_stat(x, M, h + d) - order_stat(x, M, h - d));
        }
    }
    free(x);
    return 0;
}

/* ======================================================================================== */
/* The stored posterior of a fit                                                            */
/* ======================================================================================== */

/* Reported components (the rule of fam_mixture.h) with the exact summaries of their means
 * and weights, ordered by mean. */
static int report_components(bw_mix_post *mp, const bw_mix_component *comp, bw_error *err)
{
    double A = 0;
    int top = 0;
    for (int k = 0; k < mp->K; k++) {
        mp->alpha[k] = comp[k].weight_alpha;
        mp->nig[k][0] = comp[k].m;
        mp->nig[k][1] = comp[k].kappa;
        mp->nig[k][2] = comp[k].a;
        mp->nig[k][3] = comp[k].b;
        A += comp[k].weight_alpha;
        if (comp[k].weight_alpha > comp[top].weight_alpha)
            top = k;
    }
    char name[40];
    int R = 0;
    for (int k = 0; k < mp->K; k++) {
        mp->reported[k] = mp->alpha[k] - mp->alpha0 >= 1.0 || k == top;
        if (!mp->reported[k])
            continue;
        bw_part cp = {0}, wp = {0};
        cp.q.nfactors = 1;
        cp.q.f[0].kind = mp->log_scale ? BW_KIND_NIG_LNMEAN : BW_KIND_NIG_MEAN;
        memcpy(cp.q.f[0].p, mp->nig[k], sizeof cp.q.f[0].p);
        snprintf(name, sizeof name, "component %d", k);
        if (bw_part_summarise(&cp, name, err) != 0)
            return -1;
        if (mp->K == 1) {       /* the weight is the constant 1 */
            wp.mean = 1;
            wp.variance = 0;
            for (int i = 0; i < BW_NCACHED; i++)
                wp.ci[i][0] = wp.ci[i][1] = 1;
        } else {
            wp.q.nfactors = 1;
            wp.q.f[0].kind = BW_KIND_BETA;
            wp.q.f[0].p[0] = mp->alpha[k];
            wp.q.f[0].p[1] = A - mp->alpha[k];
            snprintf(name, sizeof name, "weight of component %d", k);
            if (bw_part_summarise(&wp, name, err) != 0)
                return -1;
        }
        /* insertion by the reported mean, stable */
        int j = R - 1;
        while (j >= 0 && mp->comp[j].mean > cp.mean) {
            mp->comp[j + 1] = mp->comp[j];
            mp->weight[j + 1] = mp->weight[j];
            mp->order[j + 1] = mp->order[j];
            j--;
        }
        mp->comp[j + 1] = cp;
        mp->weight[j + 1] = wp;
        mp->order[j + 1] = k;
        R++;
    }
    mp->nrep = R;
    return 0;
}

/* The mixture mean M = sum_r w_r m_r over the reported components, w ~ Dirichlet of their
 * alphas (the renormalised Dirichlet), independent of the m_r:
 *   E[M] = sum_r p_r E[m_r],  p_r = alpha_r / Ar;
 *   Var M = sum_r E[w_r^2] Var m_r + sum_r p_r (E[m_r] - E[M])^2 / (Ar + 1),
 *   E[w_r^2] = p_r (alpha_r + 1) / (Ar + 1). */
static void mixture_mean(bw_mix_post *mp)
{
    const int R = mp->nrep;
    double Ar = 0, EM = 0, VM = 0;
    for (int r = 0; r < R; r++)
        Ar += mp->alpha[mp->order[r]];
    for (int r = 0; r < R; r++)
        EM += mp->alpha[mp->order[r]] / Ar * mp->comp[r].mean;
    for (int r = 0; r < R; r++) {
        double a = mp->alpha[mp->order[r]], p = a / Ar, d = mp->comp[r].mean - EM;
        VM += p * (a + 1) / (Ar + 1) * mp->comp[r].variance + p * d * d / (Ar + 1);
    }
    if (!isfinite(EM) || !(VM == VM))
        VM = INFINITY;          /* a component with an infinite (truncated) mean: no NaN */
    mp->mean.mean = EM;
    mp->mean.variance = VM;
}

/* Compound: the conversion rate and revenue = rate x mixture mean (independent). */
static int revenue(bw_mix_post *mp, const bw_fit_spec *spec, bw_error *err)
{
    mp->freq.q.nfactors = 1;
    bw_beta_update(spec->prior, spec->successes, spec->trials, &mp->freq.q.f[0]);
    if (bw_part_summarise(&mp->freq, "frequency", err) != 0)
        return -1;
    double ep = mp->freq.mean, vp = mp->freq.variance, EM = mp->mean.mean, VM = mp->mean.variance;
    mp->revenue.mean = ep * EM;
    mp->revenue.variance = (vp + ep * ep) * (VM + EM * EM) - ep * ep * EM * EM;
    if (!(mp->revenue.variance == mp->revenue.variance) || !isfinite(mp->revenue.mean))
        mp->revenue.variance = INFINITY;
    else if (mp->revenue.variance < 0)
        mp->revenue.variance = 0;
    return 0;
}

int bw_mix_post_build(bw_record *post, const bw_fit_spec *spec, const bw_mix *fit,
                      bw_error *err)
{
    bw_mix_post *mp = bw_mixp(post);
    bw_mix_component comp[BW_MIX_MAX_K];
    mp->K = bw_mix_components(fit, comp);
    mp->log_scale = kind_of(spec)->log_scale;
    mp->compound = kind_of(spec)->compound;
    mp->alpha0 = spec->prior[prior_offset(kind_of(spec))];
    bw_mix_standardisation(fit, &mp->loc, &mp->scale);
    if (report_components(mp, comp, err) != 0)
        return -1;
    mixture_mean(mp);
    mp->nstats = 1;
    mp->stats[0] = (double)spec->n;
    if (mp->compound) {
        if (revenue(mp, spec, err) != 0)
            return -1;
        mp->nstats = 3;
        mp->stats[1] = (double)spec->successes;
        mp->stats[2] = (double)spec->trials;
    }
    const double levels[BW_NCACHED] = BW_CACHED_LEVELS;
    if (mc_intervals(mp, BW_PART_MIX_MEAN, spec->stream_key, levels, BW_NCACHED, mp->mean.ci,
                     mp->mc_se[0], err) != 0)
        return -1;
    if (mp->compound && mc_intervals(mp, BW_PART_MIX_REVENUE, spec->stream_key, levels,
                                     BW_NCACHED, mp->revenue.ci, mp->mc_se[1], err) != 0)
        return -1;
    return 0;
}

/* ======================================================================================== */
/* Operations on a stored posterior                                                          */
/* ======================================================================================== */

/* The cursor slot of a part that can be drawn, or -1. */
static int mix_stream_of(const bw_record *post, int part)
{
    const bw_mix_post *mp = bw_mixp(post);
    if (part == BW_PART_MIX_MEAN)
        return BW_MIX_SLOT_MEAN;
    if (part == BW_PART_MIX_PREDICTIVE)
        return BW_MIX_SLOT_PREDICTIVE;
    if (mp->compound && part == BW_PART_MIX_REVENUE)
        return BW_MIX_SLOT_REVENUE;
    if (mp->compound && part == BW_PART_FREQUENCY)
        return BW_MIX_SLOT_FREQUENCY;
    return -1;
}

static size_t mix_draw_width(const bw_record *post, int part)
{
    return mix_stream_of(post, part) >= 0 ? 1 : 0;
}

static void mix_draw_part(const bw_record *post, int part, uint64_t key, uint64_t start,
                          size_t n, double *out)
{
    const bw_mix_post *mp = bw_mixp(post);
    if (part == BW_PART_FREQUENCY)
        bw_sample(&mp->freq.q, (bw_stream){key, (uint32_t)part}, start, n, out);
    else
        mix_draw(mp, part, key, 0, start, n, out);
}

static int mix_interval(const bw_record *post, int part, uint64_t key, double level,
                        double out[2], double se[2], bw_error *err)
{
    const bw_mix_post *mp = bw_mixp(post);
    se[0] = se[1] = 0;
    if (part == BW_PART_MIX_MEAN || (mp->compound && part == BW_PART_MIX_REVENUE)) {
        double o[1][2], s[1][2];
        if (mc_intervals(mp, part, key, &level, 1, o, s, err) != 0)
            return -1;
        memcpy(out, o[0], sizeof o[0]);
        memcpy(se, s[0], sizeof s[0]);
        return 0;
    }
    const bw_part *p = NULL;
    if (part >= BW_PART_MIX_COMPONENT && part < BW_PART_MIX_COMPONENT + mp->nrep)
        p = &mp->comp[part - BW_PART_MIX_COMPONENT];
    else if (part >= BW_PART_MIX_WEIGHT && part < BW_PART_MIX_WEIGHT + mp->nrep)
        p = &mp->weight[part - BW_PART_MIX_WEIGHT];
    else if (mp->compound && part == BW_PART_FREQUENCY)
        p = &mp->freq;
    if (!p)
        return bw_fail(err, BW_E_DOMAIN, "a %s posterior has no part %d", post->family->name,
                       part);
    if (p->q.nfactors == 0) {   /* the weight of a lone component: the constant 1 */
        out[0] = out[1] = 1.0;
        return 0;
    }
    return bw_quantity_interval(&p->q, level, out, err);
}

static void write_parts(bw_writer *w, const char *key, const bw_part *parts, int n)
{
    w->open(w, key, 1);
    for (int i = 0; i < n; i++)
        bw_write_part(w, NULL, &parts[i], 0);
    w->close(w);
}

static void mix_describe(const bw_record *post, bw_writer *w)
{
    const bw_mix_post *mp = bw_mixp(post);
    static const bw_part unused;
    w->open(w, "parts", 1);     /* a compound's part 0 is its revenue, below */
    if (mp->compound) {
        bw_write_part(w, NULL, &unused, 0);
        bw_write_part(w, NULL, &mp->freq, post->cursor[BW_MIX_SLOT_FREQUENCY]);
    }
    w->close(w);
    w->open(w, "mixture", 0);
    w->integer(w, "K", mp->K);
    w->integer(w, "log_scale", mp->log_scale);
    w->integer(w, "nrep", mp->nrep);
    w->number(w, "loc", mp->loc);
    w->number(w, "scale", mp->scale);
    w->number(w, "alpha0", mp->alpha0);
    w->open(w, "fitted", 1);
    for (int k = 0; k < mp->K; k++) {
        w->open(w, NULL, 0);
        w->number(w, "alpha", mp->alpha[k]);
        w->number(w, "m", mp->nig[k][0]);
        w->number(w, "kappa", mp->nig[k][1]);
        w->number(w, "a", mp->nig[k][2]);
        w->number(w, "b", mp->nig[k][3]);
        w->boolean(w, "reported", mp->reported[k]);
        w->close(w);
    }
    w->close(w);
    w->open(w, "order", 1);
    for (int r = 0; r < mp->nrep; r++)
        w->integer(w, NULL, mp->order[r]);
    w->close(w);
    write_parts(w, "components", mp->comp, mp->nrep);
    write_parts(w, "weights", mp->weight, mp->nrep);
    bw_write_part(w, "mean", &mp->mean, post->cursor[BW_MIX_SLOT_MEAN]);
    if (mp->compound)
        bw_write_part(w, "revenue", &mp->revenue, post->cursor[BW_MIX_SLOT_REVENUE]);
    else
        w->none(w, "revenue");
    const double levels[BW_NCACHED] = BW_CACHED_LEVELS;
    w->open(w, "mc_se", 1);
    for (int j = 0; j < 2; j++) {
        w->open(w, NULL, 1);
        for (int i = 0; i < BW_NCACHED; i++)
            bw_write_numbers(w, NULL, (const double[3]){levels[i], mp->mc_se[j][i][0],
                                                        mp->mc_se[j][i][1]}, 3);
        w->close(w);
    }
    w->close(w);
    w->count(w, "pred_cursor", post->cursor[BW_MIX_SLOT_PREDICTIVE]);
    w->count(w, "mc_draws", BW_MIX_MC_DRAWS);
    w->close(w);
    bw_write_numbers(w, "stats", mp->stats, (size_t)mp->nstats);
}

static int mix_check(const bw_fit_spec *s, bw_error *err)
{
    const bw_fit_options *o = &s->options;
    char t[32];
    if (o->nK < 1 || o->nK > BW_MIX_MAX_K)
        return bw_fail(err, BW_E_DOMAIN, "model %s needs options: 1 to %d numbers of "
                       "components Ks, tol and max_iter", s->family->name, BW_MIX_MAX_K);
    for (int i = 0; i < o->nK; i++)
        if (o->Ks[i] < 1 || o->Ks[i] > BW_MIX_MAX_K)
            return bw_fail(err, BW_E_DOMAIN, "K = %d must be between 1 and %d", o->Ks[i],
                           BW_MIX_MAX_K);
    if (!(o->tol >= 0 && isfinite(o->tol)))
        return bw_fail(err, BW_E_DOMAIN, "tol = %s must be finite and >= 0",
                       bw_fmt(t, sizeof t, o->tol));
    if (o->max_iter < 1 || o->max_iter > MAX_ITERATIONS)
        return bw_fail(err, BW_E_DOMAIN, "max_iter = %d must be between 1 and %d", o->max_iter,
                       MAX_ITERATIONS);
    if (!s->values || s->n == 0)
        return bw_fail(err, BW_E_DOMAIN, "a mixture needs at least one value");
    return 0;
}

static size_t mix_size(const bw_fit_spec *spec)
{
    (void)spec;
    return sizeof(bw_mix_post);
}

/* ======================================================================================== */
/* The rows                                                                                 */
/* ======================================================================================== */

static const char *const parts[] = {"mean", "predictive", "component", "weight", NULL};
static const int part_codes[] = {BW_PART_MIX_MEAN, BW_PART_MIX_PREDICTIVE,
                                 BW_PART_MIX_COMPONENT, BW_PART_MIX_WEIGHT};
static const char *const compound_parts[] = {"revenue", "frequency", "mean", "predictive",
                                             "component", "weight", NULL};
static const int compound_part_codes[] = {BW_PART_MIX_REVENUE, BW_PART_FREQUENCY,
                                          BW_PART_MIX_MEAN, BW_PART_MIX_PREDICTIVE,
                                          BW_PART_MIX_COMPONENT, BW_PART_MIX_WEIGHT};
static const bw_prior_key prior[] = {
    {"alpha0", BW_MIX_DEFAULT_ALPHA0, 0}, {"m0", BW_MIX_DEFAULT_M0, 1},
    {"kappa0", BW_MIX_DEFAULT_KAPPA0, 0}, {"a0", BW_MIX_DEFAULT_A0, 0},
    {"b0", BW_MIX_DEFAULT_B0, 0},         {NULL, 0, 0}};
static const bw_prior_key compound_prior[] = {
    {"frequency.alpha", 1.0, 0},
    {"frequency.beta", 1.0, 0},
    {"severity.alpha0", BW_MIX_DEFAULT_ALPHA0, 0},
    {"severity.m0", BW_MIX_DEFAULT_M0, 1},
    {"severity.kappa0", BW_MIX_DEFAULT_KAPPA0, 0},
    {"severity.a0", BW_MIX_DEFAULT_A0, 0},
    {"severity.b0", BW_MIX_DEFAULT_B0, 0},
    {NULL, 0, 0}};
static const int normal_rules[] = {BW_RULE_FINITE, BW_RULE_BOUNDED, 0};
static const int lognormal_rules[] = {BW_RULE_FINITE, BW_RULE_POSITIVE, 0};
static const char *const stats[] = {"n", NULL};
static const char *const compound_stats[] = {"severity_n", "converters", "users", NULL};
static const bw_constant constants[] = {
    {"MAX_COMPONENTS", BW_MIX_MAX_K, 1, NULL},
    {"MIX_MC_DRAWS", BW_MIX_MC_DRAWS, 1, NULL},
    {"MIXTURE_MAX_ABS", BW_MIX_MAX_ABS_X, 0, NULL},
    {"MIXTURE_TOLERANCE", BW_MIX_DEFAULT_TOL, 0, NULL},
    {"MIXTURE_MAX_ITERATIONS", BW_MIX_DEFAULT_MAX_ITER, 1, NULL},
    {"MAX_ITERATIONS", MAX_ITERATIONS, 1, NULL},
    {"MIXTURE_PRIOR", 0, 0, prior},
    {"PART_MIX_MEAN", BW_PART_MIX_MEAN, 1, NULL},
    {"PART_MIX_PREDICTIVE", BW_PART_MIX_PREDICTIVE, 1, NULL},
    {"PART_MIX_REVENUE", BW_PART_MIX_REVENUE, 1, NULL},
    {"PART_MIX_COMPONENT", BW_PART_MIX_COMPONENT, 1, NULL},
    {"PART_MIX_WEIGHT", BW_PART_MIX_WEIGHT, 1, NULL},
    {NULL, 0, 0, NULL}};

#define MIXTURE_OPS                                                                          \
    .iterative = 1, .constants = constants, .check = mix_check,                              \
    .fit_job = bw_mixture_fit_job, .size = mix_size, .report = bw_mixture_report,            \
    .describe = mix_describe, .draw_width = mix_draw_width, .stream_of = mix_stream_of,      \
    .draw = mix_draw_part, .interval = mix_interval

static const mix_kind normal = {0, 0}, lognormal = {1, 0}, compound = {1, 1};

const bw_family bw_family_normal_mixture = {
    .name = "normal-mixture", .code = 8, .parts = parts, .part_codes = part_codes,
    .prior = prior, .rules = normal_rules, .stats = stats,
    .takes = BW_TAKES_VALUES | BW_TAKES_OPTIONS, .data = &normal, MIXTURE_OPS,
};

const bw_family bw_family_lognormal_mixture = {
    .name = "lognormal-mixture", .code = 9, .parts = parts, .part_codes = part_codes,
    .prior = prior, .rules = lognormal_rules, .stats = stats,
    .takes = BW_TAKES_VALUES | BW_TAKES_OPTIONS, .data = &lognormal, MIXTURE_OPS,
};

const bw_family bw_family_compound_lognormal_mixture = {
    .name = "compound-beta-lognormalmixture", .code = 10, .parts = compound_parts,
    .part_codes = compound_part_codes, .prior = compound_prior, .rules = lognormal_rules,
    .stats = compound_stats, .takes = BW_TAKES_COUNTS | BW_TAKES_VALUES | BW_TAKES_OPTIONS,
    .data = &compound, MIXTURE_OPS,
};
