/*
 * fit_job.c -- the fit job of every conjugate family: check and reduce the raw values in
 * blocks, merge the partial statistics in block order (the result does not depend on the
 * thread count), update the prior, compute the cached summaries, publish the posterior.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

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

static int fit_finish(bw_job *job)
{
    fit_ctx *c = job->ctx;
    const bw_fit_spec *s = &c->h.spec;
    const bw_family *fam = s->family;
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
    bw_record *post = bw_record_new(fam, fam->size(s));
    if (!post)
        return bw_fail(&job->err, BW_E_NOMEM, "out of memory for the posterior");
    if (fam->update(s, stats, post, &job->err) != 0 || fam->summarise(post, &job->err) != 0 ||
        bw_publish(job, c->h.store, post) != 0) {
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
