/*
 * mixture_job.c -- the fit of a mixture family as a multi-phase pool job.
 *
 * For each K of the request's options in turn: one phase of one block runs bw_mix_new; then
 * one phase per iteration whose blocks are bw_mix_estep_block and whose finish step runs
 * bw_mix_mstep (0 -> another phase).  So cancellation and timeouts take effect within one
 * iteration.  job->phases_total = nK * (max_iter + 1); job->value_bits holds the current
 * ELBO.  The fit with the highest final ELBO (original data scale, comparable across K) is
 * kept (ties: the earlier K); the others are freed as soon as they lose.  The posterior is
 * built by fam_mixture.c (bw_mix_post_build).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fam_mixture.h"

typedef struct {
    int nK;
    int Ks[BW_MIX_MAX_K];
    double elbo[BW_MIX_MAX_K];  /* final ELBO of each K (original data scale) */
    int iterations[BW_MIX_MAX_K];
    int converged[BW_MIX_MAX_K];
    int chosen;                 /* index into Ks of the fit kept */
    double *history;            /* the kept fit's ELBO history */
    size_t history_len;
    double loc, scale;          /* its standardisation */
} mix_report;

typedef struct {
    bw_fit_head h;
    int ki;                     /* index into Ks of the fit running */
    int stage;                  /* 0: next phase initialises; 1: iterating */
    bw_mix *m;                  /* the fit running */
    bw_mix *best;               /* the best finished fit so far */
    mix_report report;
    int ok;                     /* report complete */
} mixfit_ctx;

static void mixfit_ctx_free(void *p)
{
    mixfit_ctx *c = p;
    if (c->m != c->best)
        bw_mix_free(c->m);
    bw_mix_free(c->best);
    free(c->report.history);
    bw_fit_ctx_free(c);
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
        bw_mix_post_spec(&c->h.spec, c->h.spec.options.Ks[c->ki], &sp);
        c->m = bw_mix_new(&sp, c->h.spec.values, c->h.spec.n, &job->err);
        return c->m ? 0 : -1;
    }
    bw_mix_estep_block(c->m, b);
    return 0;
}

/* The best fit is final: its report and its posterior. */
static int mixfit_store(bw_job *job, mixfit_ctx *c)
{
    mix_report *r = &c->report;
    size_t len;
    const double *h = bw_mix_elbo(c->best, &len);
    r->history = malloc((len ? len : 1) * sizeof *r->history);
    if (!r->history)
        return bw_fail(&job->err, BW_E_NOMEM, "out of memory for the ELBO history");
    memcpy(r->history, h, len * sizeof *h);
    r->history_len = len;
    bw_mix_standardisation(c->best, &r->loc, &r->scale);
    set_value(job, r->elbo[r->chosen]);
    bw_record *post = bw_record_new(c->h.spec.family, c->h.spec.family->size(&c->h.spec));
    if (!post)
        return bw_fail(&job->err, BW_E_NOMEM, "out of memory for the posterior");
    if (bw_mix_post_build(post, &c->h.spec, c->best, &job->err) != 0 ||
        bw_publish(job, c->h.store, post) != 0) {
        free(post);
        return -1;
    }
    return 0;
}

static int mixfit_finish(bw_job *job)
{
    mixfit_ctx *c = job->ctx;
    const bw_fit_options *o = &c->h.spec.options;
    const size_t per_k = (size_t)o->max_iter + 1;
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
                       o->Ks[c->ki], bw_mix_iterations(c->m));
    mix_report *r = &c->report;
    r->Ks[c->ki] = o->Ks[c->ki];
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
    if (++c->ki < o->nK) {
        c->stage = 0;
        job->nblocks = 1;
        /* progress: the next K starts at its share of phases_total (phase_end adds 1) */
        atomic_store(&job->phase, (size_t)c->ki * per_k - 1);
        return BW_JOB_AGAIN;
    }
    if (mixfit_store(job, c) != 0)
        return -1;
    atomic_store(&job->phase, job->phases_total - 1);
    c->ok = 1;
    return 0;
}

bw_job *bw_mixture_fit_job(bw_store *store, uint64_t post_id, const bw_fit_spec *spec)
{
    mixfit_ctx *c = bw_fit_ctx_new(sizeof *c, store, post_id, spec);
    if (!c)
        return NULL;
    bw_job *job = bw_job_new(1, mixfit_block, mixfit_finish, c, mixfit_ctx_free);
    if (job) {
        job->phases_total = (size_t)spec->options.nK * ((size_t)spec->options.max_iter + 1);
        set_value(job, NAN);
    }
    return job;
}

void bw_mixture_report(const bw_job *job, bw_writer *w)
{
    const mixfit_ctx *c = job->ctx;
    if (job->finish != mixfit_finish || !c->ok) {
        w->none(w, NULL);
        return;
    }
    const mix_report *r = &c->report;
    w->open(w, NULL, 0);
    w->open(w, "fits", 1);
    for (int i = 0; i < r->nK; i++) {
        w->open(w, NULL, 0);
        w->integer(w, "K", r->Ks[i]);
        w->number(w, "elbo", r->elbo[i]);
        w->integer(w, "iterations", r->iterations[i]);
        w->boolean(w, "converged", r->converged[i]);
        w->close(w);
    }
    w->close(w);
    w->integer(w, "chosen", r->chosen);
    bw_write_numbers(w, "elbo_history", r->history, r->history_len);
    w->number(w, "loc", r->loc);
    w->number(w, "scale", r->scale);
    w->close(w);
}
