/*
 * jobs.c -- fits, draws and intervals as pool jobs.
 */
#include "jobs.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ======================================================================================== */
/* Summaries of a part                                                                      */
/* ======================================================================================== */

/* "Beta(alpha = 2, beta = 5)" and the like: a distribution for a message. */
static const char *dist_text(const bw_dist *d, char *buf, size_t len)
{
    char a[32], b[32], c[32], e[32];
    switch (d->kind) {
    case BW_KIND_BETA:
        snprintf(buf, len, "Beta(%s, %s)", bw_fmt(a, 32, d->p[0]), bw_fmt(b, 32, d->p[1]));
        break;
    case BW_KIND_GAMMA:
    case BW_KIND_INVGAMMA:
        snprintf(buf, len, "%s(shape %s, %s %s)",
                 d->kind == BW_KIND_GAMMA ? "Gamma" : "InvGamma", bw_fmt(a, 32, d->p[0]),
                 d->kind == BW_KIND_GAMMA ? "rate" : "scale", bw_fmt(b, 32, d->p[1]));
        break;
    default:
        snprintf(buf, len, "normal-inverse-gamma(m %s, kappa %s, alpha %s, beta %s)",
                 bw_fmt(a, 32, d->p[0]), bw_fmt(b, 32, d->p[1]), bw_fmt(c, 32, d->p[2]),
                 bw_fmt(e, 32, d->p[3]));
    }
    return buf;
}

/* Fill err for a summary kernel's status rc on q: which summary, of what, and why. */
static int summary_failed(bw_error *err, int rc, const char *name, const char *what,
                          const bw_quantity *q)
{
    char d0[200], d1[200];
    const char *why = rc == BW_E_DOMAIN ? "a parameter is outside its domain"
                                        : "the computation did not converge";
    if (q->nfactors == 2)
        return bw_fail(err, rc, "the %s%s%s of the posterior %s x %s cannot be computed: %s",
                       name, *name ? " " : "", what, dist_text(&q->f[0], d0, sizeof d0),
                       dist_text(&q->f[1], d1, sizeof d1), why);
    return bw_fail(err, rc, "the %s%s%s of the posterior %s cannot be computed: %s", name,
                   *name ? " " : "", what, dist_text(&q->f[0], d0, sizeof d0), why);
}

int bw_part_summarise(bw_part *part, const char *name, bw_error *err)
{
    int rc = bw_mean(&part->q, &part->mean);
    if (rc != BW_OK)
        return summary_failed(err, rc, name, "mean", &part->q);
    rc = bw_variance(&part->q, &part->variance);
    if (rc != BW_OK)
        return summary_failed(err, rc, name, "variance", &part->q);
    for (int i = 0; i < BW_NCACHED; i++) {
        rc = bw_interval(&part->q, bw_cached_levels[i], part->ci[i]);
        if (rc != BW_OK) {
            char what[64];
            snprintf(what, sizeof what, "%g%% credible interval", 100 * bw_cached_levels[i]);
            return summary_failed(err, rc, name, what, &part->q);
        }
    }
    return BW_OK;
}

int bw_interval_checked(const bw_quantity *q, double level, double out[2], bw_error *err)
{
    int rc = bw_interval(q, level, out);
    if (rc == BW_OK)
        return 0;
    char what[64], lv[32];
    snprintf(what, sizeof what, "credible interval at level %s", bw_fmt(lv, sizeof lv, level));
    return summary_failed(err, rc, "", what, q);
}

/* ======================================================================================== */
/* Fits                                                                                     */
/* ======================================================================================== */

enum reduce_mode { REDUCE_NONE, REDUCE_MOMENTS, REDUCE_LOG_MOMENTS, REDUCE_SUM, REDUCE_COUNTS };

typedef struct {
    bw_store *store;
    uint64_t post_id;
    bw_fit_spec spec;
    int mode;
    double *partial;            /* 3 per block: count, mean, m2 (or count, sum, -) */
    size_t *bad;                /* per block: the first invalid value's index, or SIZE_MAX */
    int *bad_rule;              /* and which rule it broke (enum bw_value_rule) */
} fit_ctx;

static void fit_ctx_free(void *p)
{
    fit_ctx *c = p;
    free(c->partial);
    free(c->bad);
    free(c->bad_rule);
    free(c);
}

/* Chan et al.'s pairwise update of (count, mean, m2) by another group. */
static void merge_moments(double *n, double *mean, double *m2, double nb, double meanb,
                          double m2b)
{
    if (nb == 0)
        return;
    double nn = *n + nb;
    double delta = meanb - *mean;
    *mean += delta * (nb / nn);
    *m2 += m2b + delta * delta * (*n * nb / nn);
    *n = nn;
}

/* ---------------------------------------------------------------------------------------- */
/* Validation and sums at memory speed, with the same bits on every machine: eight fixed     */
/* accumulators (lane i % 8) whatever the vector width, combined in a fixed tree.            */
/* ---------------------------------------------------------------------------------------- */

#define FIT_CHUNK 2048

static double tree8(const double a[8])
{
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

static double sum8(const double *v, size_t m)
{
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t i = 0;
    for (; i + 8 <= m; i += 8)
        for (int l = 0; l < 8; l++)
            acc[l] += v[i + l];
    for (; i < m; i++)
        acc[i & 7] += v[i];
    return tree8(acc);
}

/* Sum of (v - c) and of (v - c)^2. */
static void dev8(const double *v, size_t m, double c, double *d1, double *d2)
{
    double a1[8] = {0, 0, 0, 0, 0, 0, 0, 0}, a2[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t i = 0;
    for (; i + 8 <= m; i += 8)
        for (int l = 0; l < 8; l++) {
            double d = v[i + l] - c;
            a1[l] += d;
            a2[l] += d * d;
        }
    for (; i < m; i++) {
        double d = v[i] - c;
        a1[i & 7] += d;
        a2[i & 7] += d * d;
    }
    *d1 = tree8(a1);
    *d2 = tree8(a2);
}

/* Does x[i] break the mode's rule?  0 if not, else its enum bw_value_rule. */
static int broken_rule(double x, int mode)
{
    if (!isfinite(x))
        return BW_RULE_FINITE;
    if (mode == REDUCE_LOG_MOMENTS && !(x > 0))
        return BW_RULE_POSITIVE;
    if ((mode == REDUCE_SUM || mode == REDUCE_COUNTS) && !(x >= 0))
        return BW_RULE_NONNEGATIVE;
    if (mode == REDUCE_COUNTS && x != floor(x))
        return BW_RULE_INTEGER;
    return 0;
}

/* Index of the first value of x[0 .. m) that breaks the mode's rule, or m. */
static size_t first_invalid(const double *x, size_t m, int mode, int *rule)
{
    /* A branch-free pass finds out whether anything is wrong; the rare bad chunk is
     * scanned again to name the first offender. */
    for (size_t off = 0; off < m; off += FIT_CHUNK) {
        size_t k = m - off < FIT_CHUNK ? m - off : FIT_CHUNK;
        const double *v = x + off;
        int bad = 0;
        switch (mode) {
        case REDUCE_LOG_MOMENTS:
            for (size_t i = 0; i < k; i++)
                bad |= !(v[i] > 0 && v[i] <= DBL_MAX);
            break;
        case REDUCE_SUM:
            for (size_t i = 0; i < k; i++)
                bad |= !(v[i] >= 0 && v[i] <= DBL_MAX);
            break;
        case REDUCE_COUNTS:
            for (size_t i = 0; i < k; i++)
                bad |= !(v[i] >= 0 && v[i] <= DBL_MAX && v[i] == floor(v[i]));
            break;
        default:
            for (size_t i = 0; i < k; i++)
                bad |= !(v[i] - v[i] == 0);     /* false for NaN and the infinities */
            break;
        }
        if (bad) {
            for (size_t i = 0; i < k; i++) {
                int r = broken_rule(v[i], mode);
                if (r) {
                    *rule = r;
                    return off + i;
                }
            }
        }
    }
    return m;
}

/* (count, mean, m2) of x[0..n), or of log x, by chunks of FIT_CHUNK with a two-pass
 * mean/deviation per chunk merged in order: accurate and deterministic. */
static void block_moments(const double *x, size_t n, int logs, double out[3])
{
    double cnt = 0, mean = 0, m2 = 0;
    double buf[FIT_CHUNK];
    for (size_t off = 0; off < n; off += FIT_CHUNK) {
        size_t m = n - off < FIT_CHUNK ? n - off : FIT_CHUNK;
        const double *v = x + off;
        if (logs) {
            bw_log_array(v, buf, m);
            v = buf;
        }
        double cm = sum8(v, m) / (double)m;
        double d1, d2;
        dev8(v, m, cm, &d1, &d2);
        /* correct the mean by the residual sum (compensates rounding in the first sum) */
        cm += d1 / (double)m;
        d2 -= d1 * d1 / (double)m;
        if (d2 < 0)
            d2 = 0;
        merge_moments(&cnt, &mean, &m2, (double)m, cm, d2);
    }
    out[0] = cnt;
    out[1] = mean;
    out[2] = m2;
}

static int fit_block(bw_job *job, size_t b)
{
    fit_ctx *c = job->ctx;
    size_t lo = b * (size_t)BW_FIT_BLOCK;
    size_t m = c->spec.n - lo < BW_FIT_BLOCK ? c->spec.n - lo : BW_FIT_BLOCK;
    const double *x = c->spec.values + lo;
    double *out = c->partial + 3 * b;
    int rule = 0;
    size_t bad = first_invalid(x, m, c->mode, &rule);
    if (bad < m) {
        /* Recorded, not failed: every block runs, so the error names the first invalid
         * value of the whole array whatever the thread count. */
        c->bad[b] = lo + bad;
        c->bad_rule[b] = rule;
        return 0;
    }
    if (c->mode == REDUCE_SUM || c->mode == REDUCE_COUNTS) {
        out[0] = (double)m;
        out[1] = sum8(x, m);
        out[2] = 0;
    } else {
        block_moments(x, m, c->mode == REDUCE_LOG_MOMENTS, out);
    }
    return 0;
}

static void set_nig(bw_dist *d, int kind, const double prior[4], double n, double mean,
                    double m2)
{
    double mu0 = prior[0], k0 = prior[1], a0 = prior[2], b0 = prior[3];
    double kn = k0 + n;
    d->kind = kind;
    d->p[0] = (k0 * mu0 + n * mean) / kn;
    d->p[1] = kn;
    d->p[2] = a0 + 0.5 * n;
    d->p[3] = b0 + 0.5 * m2 + 0.5 * (k0 * n / kn) * (mean - mu0) * (mean - mu0);
}

/* The values' statistics overflowed float64 (which = 1: their sum, hence their mean;
 * which = 2: their sum of squared deviations): fill err naming the first value at which a
 * serial pass (a running sum, or Welford's running mean and sum of squared deviations, of
 * the values or their logs) stops being finite.  Only ever run on that failure. */
static int overflow_failed(bw_error *err, const double *x, size_t n, int logs, int which)
{
    double cnt = 0, mean = 0, m2 = 0, sum = 0;
    size_t i = 0;
    int found = 0;
    for (; i < n && !found; i++) {
        double v = logs ? log(x[i]) : x[i];
        if (which == 1) {
            sum += v;
            found = !isfinite(sum);
        } else {
            cnt += 1;
            double d = v - mean;
            mean += d / cnt;
            m2 += d * (v - mean);
            found = !isfinite(m2);
        }
    }
    const char *what = which == 1 ? "sum" : "sum of squared deviations";
    const char *of = logs ? "the values' logs" : "the values";
    const char *from = which == 1 ? "" : " from their mean";
    if (!found)             /* not reproduced serially: name no value */
        return bw_fail(err, BW_E_NUMERIC, "the %s of %s%s overflows float64; rescale the "
                       "values", what, of, from);
    char v[32];
    i--;
    bw_fail(err, BW_E_NUMERIC,
            "the %s of %s%s overflows float64 at the value at index %zu = %s%s; rescale the "
            "values", what, of, from, i, bw_fmt(v, sizeof v, x[i]),
            which == 2 ? " (values this far apart cannot be fitted)" : "");
    bw_error_at(err, i, x[i]);
    return -1;
}

/* The posterior's parameters are finite, or err says which overflowed and why.  st: the
 * data's statistics, named by stat_names (NULL-terminated). */
static int check_update(bw_error *err, const bw_dist *d, const char *part, const double *st,
                        const char *const *stat_names)
{
    static const char *const nig[4] = {"m", "kappa", "alpha", "beta"};
    static const char *const two[2] = {"alpha", "beta"};
    int is_nig = d->kind == BW_KIND_NIG_MEAN || d->kind == BW_KIND_NIG_LNMEAN;
    for (int j = 0; j < (is_nig ? 4 : 2); j++) {
        if (isfinite(d->p[j]))
            continue;
        char stats[160] = "", v[32];
        size_t len = 0;
        for (int k = 0; stat_names[k] && len < sizeof stats; k++)
            len += (size_t)snprintf(stats + len, sizeof stats - len, "%s%s = %s",
                                    k ? ", " : "", stat_names[k], bw_fmt(v, sizeof v, st[k]));
        return bw_fail(err, BW_E_NUMERIC,
                       "updating the prior with the data's statistics (%s) overflows float64: "
                       "the %sposterior's %s is %s; the data are too large, or too far from "
                       "the prior", stats, part, is_nig ? nig[j] : two[j],
                       bw_fmt(v, sizeof v, d->p[j]));
    }
    return 0;
}

/* The last step of every fit: stamp the posterior's times, hand it to the store and make
 * its id the job's result.  Returns 0, or -1 with job->err set. */
static int publish_posterior(bw_job *job, bw_store *store, bw_posterior *post,
                             uint64_t post_id)
{
    post->created = post->last_access = bw_wallclock();
    post->fit_seconds = bw_monotonic() - job->t_start;
    if (bw_store_insert(store, post) != 0)
        return bw_fail(&job->err, BW_E_NOMEM, "out of memory storing the posterior");
    job->result_id = post_id;
    return 0;
}

static int fit_finish(bw_job *job)
{
    fit_ctx *c = job->ctx;
    const bw_fit_spec *s = &c->spec;
    double st[3] = {0, 0, 0};

    if (c->bad) {
        for (size_t b = 0; b < job->nblocks; b++) {
            if (c->bad[b] != SIZE_MAX)
                return bw_fail_value(&job->err, c->bad_rule[b], c->bad[b],
                                     s->values[c->bad[b]], 0);
        }
    }
    if (s->have_stats) {
        memcpy(st, s->stats, sizeof st);
    } else if (c->mode != REDUCE_NONE && c->partial) {
        size_t nb = job->nblocks;
        if (c->mode == REDUCE_SUM || c->mode == REDUCE_COUNTS) {
            for (size_t b = 0; b < nb; b++) {
                st[0] += c->partial[3 * b];
                st[1] += c->partial[3 * b + 1];
            }
        } else {
            for (size_t b = 0; b < nb; b++)
                merge_moments(&st[0], &st[1], &st[2], c->partial[3 * b],
                              c->partial[3 * b + 1], c->partial[3 * b + 2]);
        }
        if (!isfinite(st[1]) || !isfinite(st[2]))
            return overflow_failed(&job->err, s->values, s->n, c->mode == REDUCE_LOG_MOMENTS,
                                   isfinite(st[1]) ? 2 : 1);
    }

    bw_posterior *post = calloc(1, sizeof *post);
    if (!post)
        return bw_fail(&job->err, BW_E_NOMEM, "out of memory storing the posterior");
    post->id = c->post_id;
    post->model = s->model;
    post->nparts = 1;

    bw_dist sev = {0};
    int compound = s->model == BW_M_COMPOUND_LOGNORMAL || s->model == BW_M_COMPOUND_EXPONENTIAL;
    const double *sev_prior = compound ? s->prior + 2 : s->prior;
    switch (s->model) {
    case BW_M_BETA_BINOMIAL:
        sev.kind = BW_KIND_BETA;
        sev.p[0] = s->prior[0] + (double)s->successes;
        sev.p[1] = s->prior[1] + (double)(s->trials - s->successes);
        post->stats[0] = (double)s->successes;
        post->stats[1] = (double)s->trials;
        break;
    case BW_M_NORMAL:
        set_nig(&sev, BW_KIND_NIG_MEAN, sev_prior, st[0], st[1], st[2]);
        break;
    case BW_M_LOGNORMAL:
    case BW_M_COMPOUND_LOGNORMAL:
        set_nig(&sev, BW_KIND_NIG_LNMEAN, sev_prior, st[0], st[1], st[2]);
        break;
    case BW_M_EXPONENTIAL:
    case BW_M_COMPOUND_EXPONENTIAL:
        sev.kind = BW_KIND_INVGAMMA;
        sev.p[0] = sev_prior[0] + st[0];
        sev.p[1] = sev_prior[1] + st[1];
        break;
    case BW_M_POISSON:
        sev.kind = BW_KIND_GAMMA;
        sev.p[0] = sev_prior[0] + st[1];
        sev.p[1] = sev_prior[1] + st[0];
        break;
    default:
        free(post);
        return bw_fail(&job->err, BW_E_DOMAIN, "unknown model code %d", s->model);
    }
    if ((s->model == BW_M_EXPONENTIAL || s->model == BW_M_COMPOUND_EXPONENTIAL) &&
        !s->have_stats && st[0] > 0 && !(st[1] > 0)) {
        free(post);
        return bw_fail_value(&job->err, BW_RULE_SOME_POSITIVE, (size_t)st[0], 0, 0);
    }
    static const char *const moments[] = {"n", "mean", "m2", NULL};
    static const char *const log_moments[] = {"n", "log mean", "log m2", NULL};
    static const char *const sums[] = {"n", "sum", NULL};
    const char *const *names = c->mode == REDUCE_MOMENTS       ? moments
                               : c->mode == REDUCE_LOG_MOMENTS ? log_moments
                                                               : sums;
    if (s->model != BW_M_BETA_BINOMIAL &&
        check_update(&job->err, &sev, compound ? "severity " : "", st, names) != 0) {
        free(post);
        return -1;
    }
    if (s->model != BW_M_BETA_BINOMIAL) {
        post->stats[0] = st[0];
        post->stats[1] = st[1];
        post->stats[2] = st[2];
    }

    if (compound) {
        bw_dist freq = {.kind = BW_KIND_BETA};
        freq.p[0] = s->prior[0] + (double)s->successes;
        freq.p[1] = s->prior[1] + (double)(s->trials - s->successes);
        post->nparts = 3;
        post->part[0].q.nfactors = 2;
        post->part[0].q.f[0] = freq;
        post->part[0].q.f[1] = sev;
        post->part[1].q.nfactors = 1;
        post->part[1].q.f[0] = freq;
        post->part[2].q.nfactors = 1;
        post->part[2].q.f[0] = sev;
        post->stats[3] = (double)s->successes;
        post->stats[4] = (double)s->trials;
    } else {
        post->part[0].q.nfactors = 1;
        post->part[0].q.f[0] = sev;
    }

    static const char *const part_names[BW_MAX_PARTS] = {"revenue per user", "frequency",
                                                          "severity"};
    for (int i = 0; i < post->nparts; i++) {
        if (bw_part_summarise(&post->part[i], compound ? part_names[i] : "", &job->err) != 0) {
            free(post);
            return -1;
        }
    }
    return publish_posterior(job, c->store, post, c->post_id);
}

bw_job *bw_fit_job(bw_store *store, uint64_t post_id, const bw_fit_spec *spec)
{
    fit_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->store = store;
    c->post_id = post_id;
    c->spec = *spec;
    switch (spec->model) {
    case BW_M_NORMAL:
        c->mode = REDUCE_MOMENTS;
        break;
    case BW_M_LOGNORMAL:
    case BW_M_COMPOUND_LOGNORMAL:
        c->mode = REDUCE_LOG_MOMENTS;
        break;
    case BW_M_EXPONENTIAL:
    case BW_M_COMPOUND_EXPONENTIAL:
        c->mode = REDUCE_SUM;
        break;
    case BW_M_POISSON:
        c->mode = REDUCE_COUNTS;
        break;
    default:
        c->mode = REDUCE_NONE;
    }
    size_t nblocks = 0;
    if (c->mode != REDUCE_NONE && !spec->have_stats && spec->values && spec->n > 0) {
        nblocks = (spec->n + BW_FIT_BLOCK - 1) / BW_FIT_BLOCK;
        c->partial = calloc(3 * nblocks, sizeof *c->partial);
        c->bad = malloc(nblocks * sizeof *c->bad);
        c->bad_rule = calloc(nblocks, sizeof *c->bad_rule);
        if (!c->partial || !c->bad || !c->bad_rule) {
            fit_ctx_free(c);
            return NULL;
        }
        for (size_t b = 0; b < nblocks; b++)
            c->bad[b] = SIZE_MAX;
    } else if (!spec->have_stats) {
        c->spec.n = 0;
    }
    /* A fit with nothing to reduce still runs its finish step on the pool: one empty block. */
    bw_job *job = bw_job_new(nblocks ? nblocks : 1, fit_block, fit_finish, c, fit_ctx_free);
    if (job && !nblocks)
        job->block = NULL;
    return job;
}

/* ======================================================================================== */
/* Draws                                                                                    */
/* ======================================================================================== */

typedef struct {
    bw_quantity q;
    bw_stream st;
    uint64_t start;
    size_t n;
    double *out;
} sample_ctx;

static int sample_block(bw_job *job, size_t b)
{
    sample_ctx *c = job->ctx;
    size_t lo = b * (size_t)BW_SAMPLE_BLOCK;
    size_t m = c->n - lo < BW_SAMPLE_BLOCK ? c->n - lo : BW_SAMPLE_BLOCK;
    bw_sample(&c->q, c->st, c->start + lo, m, c->out + lo);
    return 0;
}

bw_job *bw_sample_job(const bw_quantity *q, bw_stream st, uint64_t start, size_t n,
                      double *out)
{
    sample_ctx *c = malloc(sizeof *c);
    if (!c)
        return NULL;
    c->q = *q;
    c->st = st;
    c->start = start;
    c->n = n;
    c->out = out;
    return bw_job_new((n + BW_SAMPLE_BLOCK - 1) / BW_SAMPLE_BLOCK, sample_block, NULL, c, free);
}

/* ======================================================================================== */
/* Intervals                                                                                */
/* ======================================================================================== */

typedef struct {
    bw_quantity q;
    double level;
} interval_ctx;

static int interval_block(bw_job *job, size_t b)
{
    (void)b;
    interval_ctx *c = job->ctx;
    return bw_interval_checked(&c->q, c->level, job->result, &job->err);
}

bw_job *bw_interval_job(const bw_quantity *q, double level)
{
    interval_ctx *c = malloc(sizeof *c);
    if (!c)
        return NULL;
    c->q = *q;
    c->level = level;
    return bw_job_new(1, interval_block, NULL, c, free);
}

/* ======================================================================================== */
/* Mixture draws                                                                            */
/* ======================================================================================== */

#define MIXD_CHUNK 256

void bw_mix_draw(const bw_posterior *post, int code, uint64_t key, uint32_t off,
                 uint64_t start, size_t n, double *out)
{
    const bw_mixture *mx = &post->mix;
    const int R = mx->nrep;
    const int pred = code == BW_PART_MIX_PREDICTIVE;
    const int revenue = code == BW_PART_MIX_REVENUE;
    double w[BW_MIX_STORE_MAXK][MIXD_CHUNK], v[BW_MIX_STORE_MAXK][MIXD_CHUNK];
    double u[MIXD_CHUNK];
    for (size_t lo = 0; lo < n; lo += MIXD_CHUNK) {
        size_t m = n - lo < MIXD_CHUNK ? n - lo : MIXD_CHUNK;
        uint64_t pos = start + lo;
        for (int r = 0; r < R; r++) {
            int k = mx->order[r];
            const double *g = mx->nig[k];
            bw_quantity qw = {.nfactors = 1};
            qw.f[0].kind = BW_KIND_GAMMA;
            qw.f[0].p[0] = mx->alpha[k];
            qw.f[0].p[1] = 1.0;
            bw_sample(&qw, (bw_stream){key, off + (pred ? 64u : 16u) + (uint32_t)r}, pos, m,
                      w[r]);
            bw_quantity qv = {.nfactors = 1};
            if (pred) {
                qv.f[0].kind = BW_KIND_NIG_MEAN;
                qv.f[0].p[0] = g[0];
                qv.f[0].p[1] = g[1] / (g[1] + 1.0);
                qv.f[0].p[2] = g[2];
                qv.f[0].p[3] = g[3];
            } else {
                qv.f[0].kind = mx->log_scale ? BW_KIND_NIG_LNMEAN : BW_KIND_NIG_MEAN;
                memcpy(qv.f[0].p, g, sizeof qv.f[0].p);
            }
            bw_sample(&qv, (bw_stream){key, off + (pred ? 96u : 32u) + (uint32_t)r}, pos, m,
                      v[r]);
        }
        if (pred) {
            bw_quantity qu = {.nfactors = 1};
            qu.f[0].kind = BW_KIND_BETA;
            qu.f[0].p[0] = qu.f[0].p[1] = 1.0;
            bw_sample(&qu, (bw_stream){key, off + 80u}, pos, m, u);
        } else if (revenue) {
            bw_sample(&post->part[1].q, (bw_stream){key, off + 48u}, pos, m, u);
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
                out[lo + i] = mx->log_scale ? exp(v[r][i]) : v[r][i];
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

typedef struct {
    bw_posterior post;
    int code;
    uint64_t key, start;
    size_t n;
    double *out;
} mixsample_ctx;

static int mixsample_block(bw_job *job, size_t b)
{
    mixsample_ctx *c = job->ctx;
    size_t lo = b * (size_t)BW_SAMPLE_BLOCK;
    size_t m = c->n - lo < BW_SAMPLE_BLOCK ? c->n - lo : BW_SAMPLE_BLOCK;
    bw_mix_draw(&c->post, c->code, c->key, 0, c->start + lo, m, c->out + lo);
    return 0;
}

bw_job *bw_mix_sample_job(const bw_posterior *post, int code, uint64_t key, uint64_t start,
                          size_t n, double *out)
{
    mixsample_ctx *c = malloc(sizeof *c);
    if (!c)
        return NULL;
    c->post = *post;
    c->code = code;
    c->key = key;
    c->start = start;
    c->n = n;
    c->out = out;
    return bw_job_new((n + BW_SAMPLE_BLOCK - 1) / BW_SAMPLE_BLOCK, mixsample_block, NULL, c,
                      free);
}

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

static int mc_intervals(const bw_posterior *post, int code, uint64_t key, const double *levels,
                        int nlev, double (*out)[2], double (*se)[2], bw_error *err)
{
    if (!(post->mix.K > 0 && (code == BW_PART_MIX_MEAN || code == BW_PART_MIX_REVENUE)))
        return bw_fail(err, BW_E_DOMAIN, "part %d has no Monte Carlo interval", code);
    const size_t M = BW_MIX_MC_DRAWS;
    double *x = malloc(M * sizeof *x);
    if (!x)
        return bw_fail(err, BW_E_NOMEM, "out of memory for the %u draws of a mixture "
                       "interval", (unsigned)M);
    bw_mix_draw(post, code, key, BW_MIX_MC_TAG, 0, M, x);
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

int bw_mix_mc_interval(const bw_posterior *post, int code, uint64_t key, double level,
                       double out[2], double se[2], bw_error *err)
{
    char lv[32];
    if (!(level > 0 && level < 1))
        return bw_fail(err, BW_E_DOMAIN, "level = %s must be strictly between 0 and 1",
                       bw_fmt(lv, sizeof lv, level));
    double o[1][2] = {{0, 0}}, s[1][2] = {{0, 0}};
    int rc = mc_intervals(post, code, key, &level, 1, o, s, err);
    if (rc == 0) {
        out[0] = o[0][0];
        out[1] = o[0][1];
        if (se) {
            se[0] = s[0][0];
            se[1] = s[0][1];
        }
    }
    return rc;
}

typedef struct {
    bw_posterior post;
    int code;
    uint64_t key;
    double level;
} mixinterval_ctx;

static int mixinterval_block(bw_job *job, size_t b)
{
    (void)b;
    mixinterval_ctx *c = job->ctx;
    return bw_mix_mc_interval(&c->post, c->code, c->key, c->level, job->result,
                              job->result + 2, &job->err);
}

bw_job *bw_mix_interval_job(const bw_posterior *post, int code, uint64_t key, double level)
{
    mixinterval_ctx *c = malloc(sizeof *c);
    if (!c)
        return NULL;
    c->post = *post;
    c->code = code;
    c->key = key;
    c->level = level;
    return bw_job_new(1, mixinterval_block, NULL, c, free);
}

/* ======================================================================================== */
/* Mixture fits                                                                             */
/* ======================================================================================== */

typedef struct {
    bw_store *store;
    uint64_t post_id;
    bw_mixfit_spec spec;
    int ki;                     /* index into spec.Ks of the fit running */
    int stage;                  /* 0: next phase initialises; 1: iterating */
    bw_mix *m;                  /* the fit running */
    bw_mix *best;               /* the best finished fit so far */
    bw_mix_report report;
    double *history;            /* a copy of the kept fit's ELBO history */
    int ok;                     /* report complete */
} mixfit_ctx;

static void mixfit_ctx_free(void *p)
{
    mixfit_ctx *c = p;
    if (c->m != c->best)
        bw_mix_free(c->m);
    bw_mix_free(c->best);
    free(c->history);
    free(c);
}

static void set_value(bw_job *job, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    atomic_store(&job->value_bits, bits);
}

static int mixfit_block(bw_job *job, size_t b)
{
    mixfit_ctx *c = job->ctx;
    if (c->stage == 0) {
        bw_mix_spec sp;
        bw_mix_spec_default(&sp, c->spec.Ks[c->ki],
                            c->spec.model != BW_M_NORMAL_MIXTURE);
        sp.tol = c->spec.tol;
        sp.max_iter = c->spec.max_iter;
        sp.key = c->spec.init_key;
        c->m = bw_mix_new(&sp, c->spec.values, c->spec.n, &job->err);
        return c->m ? 0 : -1;
    }
    bw_mix_estep_block(c->m, b);
    return 0;
}

/* Exact summaries of a reported component's mean and weight, and of the mixture mean. */
static int mixfit_store(bw_job *job, mixfit_ctx *c)
{
    bw_mix_component comp[BW_MIX_MAX_K];
    const int K = bw_mix_components(c->best, comp);
    const int log_scale = c->spec.model != BW_M_NORMAL_MIXTURE;
    bw_posterior *post = calloc(1, sizeof *post);
    if (!post)
        return bw_fail(&job->err, BW_E_NOMEM, "out of memory storing the posterior");
    post->id = c->post_id;
    post->model = c->spec.model;
    bw_mixture *mx = &post->mix;
    mx->K = K;
    mx->log_scale = log_scale;
    mx->alpha0 = BW_MIX_DEFAULT_ALPHA0;
    bw_mix_standardisation(c->best, &mx->loc, &mx->scale);
    double A = 0;
    int top = 0;
    for (int k = 0; k < K; k++) {
        mx->alpha[k] = comp[k].weight_alpha;
        mx->nig[k][0] = comp[k].m;
        mx->nig[k][1] = comp[k].kappa;
        mx->nig[k][2] = comp[k].a;
        mx->nig[k][3] = comp[k].b;
        A += comp[k].weight_alpha;
        if (comp[k].weight_alpha > comp[top].weight_alpha)
            top = k;
    }
    char name[32];
    int R = 0;
    for (int k = 0; k < K; k++) {
        mx->reported[k] = mx->alpha[k] - mx->alpha0 >= 1.0 || k == top;
        if (!mx->reported[k])
            continue;
        bw_part cp = {0}, wp = {0};
        cp.q.nfactors = 1;
        cp.q.f[0].kind = log_scale ? BW_KIND_NIG_LNMEAN : BW_KIND_NIG_MEAN;
        memcpy(cp.q.f[0].p, mx->nig[k], sizeof cp.q.f[0].p);
        snprintf(name, sizeof name, "component %d", k);
        if (bw_part_summarise(&cp, name, &job->err) != 0) {
            free(post);
            return -1;
        }
        if (K == 1) {           /* the weight is the constant 1 */
            wp.mean = 1;
            wp.variance = 0;
            for (int i = 0; i < BW_NCACHED; i++)
                wp.ci[i][0] = wp.ci[i][1] = 1;
        } else {
            wp.q.nfactors = 1;
            wp.q.f[0].kind = BW_KIND_BETA;
            wp.q.f[0].p[0] = mx->alpha[k];
            wp.q.f[0].p[1] = A - mx->alpha[k];
            snprintf(name, sizeof name, "weight of component %d", k);
            if (bw_part_summarise(&wp, name, &job->err) != 0) {
                free(post);
                return -1;
            }
        }
        /* insertion by the reported mean, stable */
        int j = R - 1;
        while (j >= 0 && mx->comp[j].mean > cp.mean) {
            mx->comp[j + 1] = mx->comp[j];
            mx->weight[j + 1] = mx->weight[j];
            mx->order[j + 1] = mx->order[j];
            j--;
        }
        mx->comp[j + 1] = cp;
        mx->weight[j + 1] = wp;
        mx->order[j + 1] = k;
        R++;
    }
    mx->nrep = R;

    /* The mixture mean M = sum_r w_r m_r over the reported components, w ~ Dirichlet of
     * their alphas (the renormalised Dirichlet), independent of the m_r:
     *   E[M] = sum_r p_r E[m_r],  p_r = alpha_r / Ar;
     *   Var M = sum_r E[w_r^2] Var m_r + sum_r p_r (E[m_r] - E[M])^2 / (Ar + 1),
     *   E[w_r^2] = p_r (alpha_r + 1) / (Ar + 1). */
    double Ar = 0, EM = 0, VM = 0;
    for (int r = 0; r < R; r++)
        Ar += mx->alpha[mx->order[r]];
    for (int r = 0; r < R; r++)
        EM += mx->alpha[mx->order[r]] / Ar * mx->comp[r].mean;
    for (int r = 0; r < R; r++) {
        double a = mx->alpha[mx->order[r]], p = a / Ar, d = mx->comp[r].mean - EM;
        VM += p * (a + 1) / (Ar + 1) * mx->comp[r].variance + p * d * d / (Ar + 1);
    }
    if (!isfinite(EM) || !(VM == VM))
        VM = INFINITY;          /* a component with an infinite (truncated) mean: no NaN */
    mx->mean.mean = EM;
    mx->mean.variance = VM;

    if (c->spec.model == BW_M_COMPOUND_LOGNORMAL_MIXTURE) {
        bw_dist freq = {.kind = BW_KIND_BETA};
        freq.p[0] = c->spec.freq_prior[0] + (double)c->spec.successes;
        freq.p[1] = c->spec.freq_prior[1] + (double)(c->spec.trials - c->spec.successes);
        post->nparts = 2;       /* part 0 is unused (nfactors 0): see mix.revenue */
        post->part[1].q.nfactors = 1;
        post->part[1].q.f[0] = freq;
        if (bw_part_summarise(&post->part[1], "frequency", &job->err) != 0) {
            free(post);
            return -1;
        }
        double ep = post->part[1].mean, vp = post->part[1].variance;
        mx->revenue.mean = ep * EM;
        mx->revenue.variance = (vp + ep * ep) * (VM + EM * EM) - ep * ep * EM * EM;
        if (!(mx->revenue.variance == mx->revenue.variance) || !isfinite(mx->revenue.mean))
            mx->revenue.variance = INFINITY;
        else if (mx->revenue.variance < 0)
            mx->revenue.variance = 0;
        post->stats[3] = (double)c->spec.successes;
        post->stats[4] = (double)c->spec.trials;
    }
    post->stats[0] = (double)c->spec.n;
    post->stats[1] = mx->loc;
    post->stats[2] = mx->scale;

    int rc = mc_intervals(post, BW_PART_MIX_MEAN, c->spec.stream_key, bw_cached_levels,
                          BW_NCACHED, mx->mean.ci, mx->mc_se[0], &job->err);
    if (rc == 0 && c->spec.model == BW_M_COMPOUND_LOGNORMAL_MIXTURE)
        rc = mc_intervals(post, BW_PART_MIX_REVENUE, c->spec.stream_key, bw_cached_levels,
                          BW_NCACHED, mx->revenue.ci, mx->mc_se[1], &job->err);
    if (rc != 0) {
        free(post);
        return -1;
    }
    return publish_posterior(job, c->store, post, c->post_id);
}

static int mixfit_finish(bw_job *job)
{
    mixfit_ctx *c = job->ctx;
    const size_t per_k = (size_t)c->spec.max_iter + 1;
    if (c->stage == 0) {
        c->stage = 1;
        job->nblocks = bw_mix_nblocks(c->m);
        return BW_JOB_AGAIN;
    }
    int rc = bw_mix_mstep(c->m);
    size_t len;
    const double *h = bw_mix_elbo(c->m, &len);
    if (len)
        set_value(job, h[len - 1]);
    if (rc == 0)
        return BW_JOB_AGAIN;
    if (rc < 0)
        return bw_fail(&job->err, BW_E_NUMERIC,
                       "the variational fit of a mixture of %d components produced a "
                       "non-finite parameter or ELBO after %d iterations",
                       c->spec.Ks[c->ki], bw_mix_iterations(c->m));
    bw_mix_report *r = &c->report;
    r->Ks[c->ki] = c->spec.Ks[c->ki];
    r->elbo[c->ki] = len ? h[len - 1] : -INFINITY;
    r->iterations[c->ki] = bw_mix_iterations(c->m);
    r->converged[c->ki] = bw_mix_converged(c->m);
    r->nK = c->ki + 1;
    if (!c->best || r->elbo[c->ki] > r->elbo[r->chosen]) {
        bw_mix_free(c->best);
        c->best = c->m;
        r->chosen = c->ki;
    } else {
        bw_mix_free(c->m);
    }
    c->m = NULL;
    if (++c->ki < c->spec.nK) {
        c->stage = 0;
        job->nblocks = 1;
        /* progress: the next K starts at its share of phases_total (phase_end adds 1) */
        atomic_store(&job->phase, (size_t)c->ki * per_k - 1);
        return BW_JOB_AGAIN;
    }
    h = bw_mix_elbo(c->best, &len);
    c->history = malloc((len ? len : 1) * sizeof *c->history);
    if (!c->history)
        return bw_fail(&job->err, BW_E_NOMEM, "out of memory for the ELBO history");
    memcpy(c->history, h, len * sizeof *h);
    r->history = c->history;
    r->history_len = len;
    bw_mix_standardisation(c->best, &r->loc, &r->scale);
    set_value(job, r->elbo[r->chosen]);
    if (mixfit_store(job, c) != 0)
        return -1;
    atomic_store(&job->phase, job->phases_total - 1);
    c->ok = 1;
    return 0;
}

bw_job *bw_mixfit_job(bw_store *store, uint64_t post_id, const bw_mixfit_spec *spec)
{
    mixfit_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->store = store;
    c->post_id = post_id;
    c->spec = *spec;
    bw_job *job = bw_job_new(1, mixfit_block, mixfit_finish, c, mixfit_ctx_free);
    if (job) {
        job->phases_total = (size_t)spec->nK * ((size_t)spec->max_iter + 1);
        set_value(job, NAN);
    }
    return job;
}

const bw_mix_report *bw_mixfit_report(const bw_job *job)
{
    if (atomic_load(&((bw_job *)job)->status) != BW_JOB_OK || job->finish != mixfit_finish)
        return NULL;
    const mixfit_ctx *c = job->ctx;
    return c->ok ? &c->report : NULL;
}
