/*
 * draw_jobs.c -- the two jobs every family's stored posterior serves through its row:
 * draws of a part (blocks of about BW_SAMPLE_BLOCK doubles, position-addressed, so the
 * bits do not depend on the blocks or the threads) and a credible interval.
 */
#include <stdlib.h>

#include "family.h"

typedef struct {
    bw_record *post;
    int part;
    uint64_t key, start;
    size_t n, width, per_block;
    double *out;
    double level;
} part_ctx;

static void part_ctx_free(void *p)
{
    part_ctx *c = p;
    free(c->post);
    free(c);
}

static part_ctx *part_ctx_new(bw_record *post, int part, uint64_t key)
{
    part_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        free(post);
        return NULL;
    }
    c->post = post;
    c->part = part;
    c->key = key;
    return c;
}

/* Doubles drawn between two yield points of a draw block (tens of microseconds of work):
 * a block is drawn in pieces, so a worker never keeps its core from a waiting event loop
 * for long (pool.c, bw_pool_yield_point).  Draws are addressed by position, so the pieces
 * change no bit. */
#define DRAW_PIECE 4096

static int draw_block(bw_job *job, size_t b)
{
    part_ctx *c = job->ctx;
    size_t lo = b * c->per_block;
    size_t m = c->n - lo < c->per_block ? c->n - lo : c->per_block;
    size_t piece = c->width < DRAW_PIECE ? DRAW_PIECE / c->width : 1;
    for (size_t done = 0; done < m; done += piece) {
        size_t k = m - done < piece ? m - done : piece;
        c->post->family->draw(c->post, c->part, c->key, c->start + lo + done, k,
                              c->out + (lo + done) * c->width);
        bw_pool_yield_point();
    }
    return 0;
}

bw_job *bw_draw_job(bw_record *post, int part, uint64_t key, uint64_t start, size_t n,
                    double *out)
{
    part_ctx *c = part_ctx_new(post, part, key);
    if (!c)
        return NULL;
    c->start = start;
    c->n = n;
    c->out = out;
    c->width = post->family->draw_width(post, part);
    c->per_block = c->width < BW_SAMPLE_BLOCK ? BW_SAMPLE_BLOCK / c->width : 1;
    return bw_job_new((n + c->per_block - 1) / c->per_block, draw_block, NULL, c,
                      part_ctx_free);
}

static int interval_block(bw_job *job, size_t b)
{
    (void)b;
    part_ctx *c = job->ctx;
    return c->post->family->interval(c->post, c->part, c->key, c->level, job->result,
                                     job->result + 2, &job->err);
}

bw_job *bw_interval_job(bw_record *post, int part, uint64_t key, double level)
{
    part_ctx *c = part_ctx_new(post, part, key);
    if (!c)
        return NULL;
    c->level = level;
    return bw_job_new(1, interval_block, NULL, c, part_ctx_free);
}
