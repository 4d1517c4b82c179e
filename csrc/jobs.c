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

int bw_part_summarise(bw_part *part, char *err, size_t errlen)
{
    int rc = bw_mean(&part->q, &part->mean);
    if (rc != BW_OK) {
        snprintf(err, errlen, "posterior mean failed (status %d)", rc);
        return rc;
    }
    rc = bw_variance(&part->q, &part->variance);
    if (rc != BW_OK) {
        snprintf(err, errlen, "posterior variance failed (status %d)", rc);
        return rc;
    }
    for (int i = 0; i < BW_NCACHED; i++) {
        rc = bw_interval(&part->q, bw_cached_levels[i], part->ci[i]);
        if (rc != BW_OK) {
            snprintf(err, errlen, "credible interval at level %g failed (status %d)",
                     bw_cached_levels[i], rc);
            return rc;
        }
    }
    return BW_OK;
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

static int fit_finish(bw_job *job)
{
    fit_ctx *c = job->ctx;
    const bw_fit_spec *s = &c->spec;
    double st[3] = {0, 0, 0};

    if (c->bad) {
        for (size_t b = 0; b < job->nblocks; b++) {
            if (c->bad[b] != SIZE_MAX) {
                job->error_code = c->bad_rule[b];
                job->result[0] = (double)c->bad[b];
                job->result[1] = s->values[c->bad[b]];
                snprintf(job->errmsg, sizeof job->errmsg, "values[%zu] = %.17g is invalid",
                         c->bad[b], s->values[c->bad[b]]);
                return -1;
            }
        }
    }
    if (s->have_stats) {
        memcpy(st, s->stats, sizeof st);
    } else if (c->mode != REDUCE_NONE) {
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
    }

    bw_posterior *post = calloc(1, sizeof *post);
    if (!post) {
        snprintf(job->errmsg, sizeof job->errmsg, "out of memory storing the posterior");
        return -1;
    }
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
        snprintf(job->errmsg, sizeof job->errmsg, "unknown model code %d", s->model);
        return -1;
    }
    if ((s->model == BW_M_EXPONENTIAL || s->model == BW_M_COMPOUND_EXPONENTIAL) &&
        !s->have_stats && st[0] > 0 && !(st[1] > 0)) {
        free(post);
        job->error_code = BW_RULE_SOME_POSITIVE;
        job->result[0] = st[0];
        snprintf(job->errmsg, sizeof job->errmsg, "all %.0f values are 0", st[0]);
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

    static const char *const part_names[BW_MAX_PARTS] = {"", "frequency ", "severity "};
    for (int i = 0; i < post->nparts; i++) {
        char err[200];
        if (bw_part_summarise(&post->part[i], err, sizeof err) != BW_OK) {
            snprintf(job->errmsg, sizeof job->errmsg, "%s%s", compound ? part_names[i] : "",
                     err);
            free(post);
            return -1;
        }
    }
    post->created = post->last_access = bw_wallclock();
    post->fit_seconds = bw_monotonic() - job->t_start;
    if (bw_store_insert(c->store, post) != 0) {
        snprintf(job->errmsg, sizeof job->errmsg, "out of memory storing the posterior");
        return -1;
    }
    job->result_id = c->post_id;
    return 0;
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
    int rc = bw_interval(&c->q, c->level, job->result);
    if (rc != BW_OK) {
        job->error_code = rc;
        snprintf(job->errmsg, sizeof job->errmsg,
                 "credible interval at level %.17g failed (status %d)", c->level, rc);
        return -1;
    }
    return 0;
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
