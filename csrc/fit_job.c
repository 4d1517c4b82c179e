/*
 * fit_job.c -- the fit job of every conjugate family: check and reduce the raw values in
 * blocks, merge the partial statistics in block order (the result does not depend on the
 * thread count), update the prior, compute the cached summaries, publish the posterior.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "conjugate.h"
#include "family.h"

#define MAX_ACC 4                   /* partial statistics per block, at most */

typedef struct {
    bw_fit_head h;
    double *stats;              /* a copy of the request's statistics (or NULL) */
    const bw_reducer *red;
    double *partial;            /* red->nacc per block */
    size_t *bad;                /* per block: the first refused value's index, or SIZE_MAX */
    int *bad_rule;              /* and the rule it broke */
} fit_ctx;

void *bw_fit_ctx_new(size_t size, bw_store *store, uint64_t post_id, const bw_fit_spec *spec)
{
    bw_fit_head *h = calloc(1, size);
    if (!h)
        return NULL;
    h->store = store;
    h->post_id = post_id;
    h->spec = *spec;
    h->prior = malloc((spec->nprior ? spec->nprior : 1) * sizeof *h->prior);
    if (!h->prior) {
        free(h);
        return NULL;
    }
    memcpy(h->prior, spec->prior, spec->nprior * sizeof *h->prior);
    h->spec.prior = h->prior;
    return h;
}

void bw_fit_ctx_free(void *ctx)
{
    bw_fit_head *h = ctx;
    free(h->prior);
    free(h);
}

static void fit_ctx_free(void *p)
{
    fit_ctx *c = p;
    free(c->stats);
    free(c->partial);
    free(c->bad);
    free(c->bad_rule);
    bw_fit_ctx_free(c);
}

static int fit_block(bw_job *job, size_t b)
{
    fit_ctx *c = job->ctx;
    size_t lo = b * (size_t)BW_FIT_BLOCK;
    size_t m = c->h.spec.n - lo < BW_FIT_BLOCK ? c->h.spec.n - lo : BW_FIT_BLOCK;
    const double *x = c->h.spec.values + lo;
    int rule = 0;
    size_t bad = c->red->check(x, m, &rule);
    if (bad < m) {
        /* Recorded, not failed: every block runs, so the error names the first refused
         * value of the whole array whatever the thread count. */
        c->bad[b] = lo + bad;
        c->bad_rule[b] = rule;
        return 0;
    }
    if (c->red->nacc)
        c->red->block(x, m, c->partial + (size_t)c->red->nacc * b);
    return 0;
}

int bw_publish(bw_job *job, bw_store *store, bw_record *post)
{
    post->id = job->result_id = ((bw_fit_head *)job->ctx)->post_id;
    post->created = post->last_access = bw_wallclock();
    post->fit_seconds = bw_monotonic() - job->t_start;
    return bw_store_insert(store, post);
}

/* The updated, summarised posterior of s from its statistics; NULL with err. */
static bw_record *conj_posterior(const bw_fit_spec *s, const double *stats, bw_error *err)
{
    const bw_family *fam = s->family;
    bw_record *post = bw_record_new(fam, fam->size(s));
    if (!post) {
        bw_fail(err, BW_E_NOMEM, "out of memory for the posterior");
        return NULL;
    }
    if (fam->update(s, stats, post, err) != 0 || fam->summarise(post, err) != 0) {
        free(post);
        return NULL;
    }
    return post;
}

static int fit_finish(bw_job *job)
{
    fit_ctx *c = job->ctx;
    const bw_fit_spec *s = &c->h.spec;
    double total[MAX_ACC] = {0, 0, 0, 0};
    const double *stats = s->stats ? s->stats : total;

    for (size_t b = 0; c->bad && b < job->nblocks; b++)
        if (c->bad[b] != SIZE_MAX)
            return bw_fail_value(&job->err, c->bad_rule[b], c->bad[b], s->values[c->bad[b]], 0);
    if (c->partial) {
        for (size_t b = 0; b < job->nblocks; b++)
            c->red->merge(total, c->partial + (size_t)c->red->nacc * b);
        if (c->red->overflowed(total, s->values, s->n, &job->err) != 0)
            return -1;
    }
    bw_record *post = conj_posterior(s, stats, &job->err);
    if (!post || bw_publish(job, c->h.store, post) != 0) {
        free(post);
        return -1;
    }
    return 0;
}

bw_job *bw_conjugate_fit_job(bw_store *store, uint64_t post_id, const bw_fit_spec *spec)
{
    fit_ctx *c = bw_fit_ctx_new(sizeof *c, store, post_id, spec);
    if (!c)
        return NULL;
    c->red = spec->family->reducer;
    if (spec->stats) {
        c->stats = malloc((spec->nstats ? spec->nstats : 1) * sizeof *c->stats);
        if (!c->stats) {
            fit_ctx_free(c);
            return NULL;
        }
        memcpy(c->stats, spec->stats, spec->nstats * sizeof *c->stats);
        c->h.spec.stats = c->stats;
    }
    size_t nblocks = 0;
    if (c->red && !spec->stats && spec->values && spec->n > 0) {
        nblocks = (spec->n + BW_FIT_BLOCK - 1) / BW_FIT_BLOCK;
        c->bad = malloc(nblocks * sizeof *c->bad);
        c->bad_rule = calloc(nblocks, sizeof *c->bad_rule);
        if (c->red->nacc)
            c->partial = calloc((size_t)c->red->nacc * nblocks, sizeof *c->partial);
        if (!c->bad || !c->bad_rule || (c->red->nacc && !c->partial)) {
            fit_ctx_free(c);
            return NULL;
        }
        for (size_t b = 0; b < nblocks; b++)
            c->bad[b] = SIZE_MAX;
    } else {
        c->h.spec.n = 0;
    }
    /* A fit with nothing to reduce still runs its finish step on the pool: one empty block. */
    bw_job *job = bw_job_new(nblocks ? nblocks : 1, fit_block, fit_finish, c, fit_ctx_free);
    if (job && !nblocks)
        job->block = NULL;
    return job;
}

/* ======================================================================================== */
/* Many fits of one family at once: one job, each block fits a run of groups               */
/* ======================================================================================== */

#define BATCH_GROUPS 64             /* groups per block (few values each) */
#define BATCH_VALUES (8 * BW_FIT_BLOCK)  /* or fewer groups, when they hold many values */

typedef struct {
    bw_fit_head h;              /* the template: family, prior; no data */
    bw_batch_spec b;            /* its arrays are the caller's, kept alive by it */
    size_t *first;              /* block k fits groups first[k] .. first[k+1]-1 */
    bw_record **posts;          /* per group, until published */
    size_t *bad;                /* per block: its first failing group, or SIZE_MAX */
    bw_error *errs;             /* and that group's error */
} batch_ctx;

static void batch_ctx_free(void *p)
{
    batch_ctx *c = p;
    if (c->posts)
        for (size_t g = 0; g < c->b.ngroups; g++)
            free(c->posts[g]);
    free(c->first);
    free(c->posts);
    free(c->bad);
    free(c->errs);
    bw_fit_ctx_free(c);
}

/* The statistics of values x[0 .. n) reduced as a single fit reduces them (blocks of
 * BW_FIT_BLOCK merged in order: the same numbers), checked by the same rules. */
static int reduce_values(const bw_reducer *red, const double *x, size_t n, double *total,
                         bw_error *err)
{
    for (size_t lo = 0; lo < n; lo += BW_FIT_BLOCK) {
        size_t m = n - lo < BW_FIT_BLOCK ? n - lo : BW_FIT_BLOCK;
        int rule = 0;
        size_t bad = red->check(x + lo, m, &rule);
        if (bad < m)
            return bw_fail_value(err, rule, lo + bad, x[lo + bad], 0);
        if (red->nacc) {
            double acc[MAX_ACC] = {0, 0, 0, 0};
            red->block(x + lo, m, acc);
            red->merge(total, acc);
        }
    }
    return red->nacc && n ? red->overflowed(total, x, n, err) : 0;
}

/* Group g's summaries into its row of b->summaries: per part mean, variance, then the
 * cached intervals (lo, hi) in bw_cached_levels order; a one-part posterior's are left
 * for their first use (conjugate.c), so its row has the 95 % one only (ci95, the same
 * numbers) and NaN for the others. */
static void batch_summaries(const bw_batch_spec *b, size_t g, const bw_record *post,
                            const double ci95[][2])
{
    const bw_conj_post *cp = bw_conj(post);
    double *row = b->summaries + g * b->summary_width;
    for (int i = 0; i < cp->nparts && (size_t)(i + 1) * BW_BATCH_PART_WIDTH <= b->summary_width;
         i++, row += BW_BATCH_PART_WIDTH) {
        const bw_part *p = &cp->part[i];
        row[0] = p->mean;
        row[1] = p->variance;
        for (int k = 0; k < BW_NCACHED; k++) {
            row[2 + 2 * k] = k == 0 ? ci95[i][0] : p->ci_lazy ? NAN : p->ci[k][0];
            row[3 + 2 * k] = k == 0 ? ci95[i][1] : p->ci_lazy ? NAN : p->ci[k][1];
        }
    }
}

static int batch_one(batch_ctx *c, size_t g, bw_error *err)
{
    const bw_batch_spec *b = &c->b;
    bw_fit_spec s = c->h.spec;
    double total[MAX_ACC] = {0, 0, 0, 0};
    if (b->counts) {
        s.successes = b->counts[2 * g];
        s.trials = b->counts[2 * g + 1];
    }
    if (b->stats) {
        s.stats = b->stats + g * b->nstats;
        s.nstats = b->nstats;
    } else if (b->values) {
        s.values = b->values + b->offsets[g];
        s.n = (size_t)(b->offsets[g + 1] - b->offsets[g]);
        if (s.family->reducer && reduce_values(s.family->reducer, s.values, s.n, total, err))
            return -1;
    }
    bw_record *post = conj_posterior(&s, s.stats ? s.stats : total, err);
    if (!post)
        return -1;
    double ci95[BW_MAX_PARTS][2];
    if (bw_conj_interval95(post, ci95, err) != 0) {    /* a summary row's 95 % interval */
        free(post);
        return -1;
    }
    post->id = b->ids[g];
    if (b->summaries)
        batch_summaries(b, g, post, (const double (*)[2])ci95);
    c->posts[g] = post;
    return 0;
}

static int batch_block(bw_job *job, size_t k)
{
    batch_ctx *c = job->ctx;
    for (size_t g = c->first[k]; g < c->first[k + 1]; g++) {
        if (atomic_load(&job->cancel))
            return 0;
        if (batch_one(c, g, &c->errs[k]) != 0) {
            c->bad[k] = g;      /* reported by the finish step: the first in group order */
            return 0;
        }
    }
    return 0;
}

static int batch_finish(bw_job *job)
{
    batch_ctx *c = job->ctx;
    for (size_t k = 0; k < job->nblocks; k++) {
        if (c->bad[k] != SIZE_MAX) {
            job->err = c->errs[k];
            c->b.ids[c->bad[k]] = 0;
            return -1;
        }
    }
    double now = bw_wallclock(), took = bw_monotonic() - job->t_start;
    for (size_t g = 0; g < c->b.ngroups; g++) {
        bw_record *post = c->posts[g];
        c->posts[g] = NULL;
        post->created = post->last_access = now;
        post->fit_seconds = took;
        bw_store_insert(c->h.store, post);
    }
    job->result_id = c->b.ngroups ? c->b.ids[0] : 0;
    return 0;
}

bw_job *bw_conjugate_batch_job(bw_store *store, const bw_fit_spec *tmpl,
                               const bw_batch_spec *batch)
{
    batch_ctx *c = bw_fit_ctx_new(sizeof *c, store, 0, tmpl);
    if (!c)
        return NULL;
    c->b = *batch;
    size_t G = batch->ngroups, nblocks = 0;
    c->first = malloc((G + 2) * sizeof *c->first);
    c->posts = calloc(G ? G : 1, sizeof *c->posts);
    if (!c->first || !c->posts) {
        batch_ctx_free(c);
        return NULL;
    }
    /* Blocks of BATCH_GROUPS groups, or fewer where the groups hold many values. */
    c->first[0] = 0;
    for (size_t g = 0; g < G;) {
        size_t end = g, values = 0;
        while (end < G && end - g < BATCH_GROUPS && values < BATCH_VALUES) {
            if (batch->values && !batch->stats)
                values += (size_t)(batch->offsets[end + 1] - batch->offsets[end]);
            end++;
        }
        c->first[++nblocks] = g = end;
    }
    if (!nblocks)
        c->first[++nblocks] = 0;     /* no groups: one empty block */
    c->bad = malloc(nblocks * sizeof *c->bad);
    c->errs = calloc(nblocks, sizeof *c->errs);
    if (!c->bad || !c->errs) {
        batch_ctx_free(c);
        return NULL;
    }
    for (size_t k = 0; k < nblocks; k++)
        c->bad[k] = SIZE_MAX;
    return bw_job_new(nblocks, batch_block, batch_finish, c, batch_ctx_free);
}
