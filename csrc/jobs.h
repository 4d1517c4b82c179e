/*
 * jobs.h -- the three kinds of work the binding submits: fits, draws and intervals.
 * Pure C; each constructor returns a job ready for bw_pool_submit (NULL if out of memory).
 */
#ifndef BW_JOBS_H
#define BW_JOBS_H

#include "bw_dist.h"
#include "pool.h"
#include "store.h"

/* Values reduced per block by a fit, and draws per block of a sampling job: each is about a
 * millisecond of work, the cancellation grain. */
#define BW_FIT_BLOCK 65536
#define BW_SAMPLE_BLOCK 32768

/* Why a fit refused a value (job->error_code; job->result[0] is its index, result[1] the
 * value).  Fits check raw values in the same pass that reduces them. */
enum bw_value_rule {
    BW_RULE_FINITE = 1,         /* NaN or an infinity */
    BW_RULE_POSITIVE = 2,       /* <= 0 where logs are taken */
    BW_RULE_NONNEGATIVE = 3,    /* < 0 for exponential and poisson */
    BW_RULE_INTEGER = 4,        /* not a whole number for poisson */
    BW_RULE_SOME_POSITIVE = 5,  /* exponential values all 0 (result[0]: how many) */
};

typedef struct {
    int model;                  /* enum bw_model */
    /* beta: {alpha, beta}; normal/lognormal: {mu, kappa, alpha, beta}; exponential/poisson:
     * {alpha, beta} (shape, rate); compound: {alpha, beta, <severity prior...>} */
    double prior[6];
    int64_t successes, trials;  /* beta-binomial; compound: converters, users */
    const double *values;       /* raw values to reduce (NULL with have_stats) */
    size_t n;
    int have_stats;
    /* normal/lognormal: {n, mean, m2} (log scale for lognormal); exponential/poisson:
     * {n, sum} (n is the exposure for poisson) */
    double stats[3];
} bw_fit_spec;

/* A fit: reduces spec->values in fixed blocks (the result does not depend on the thread
 * count), updates the prior, computes the exact cached summaries and inserts the posterior
 * as `post_id` into the store.  The values must stay alive until the job finishes. */
bw_job *bw_fit_job(bw_store *store, uint64_t post_id, const bw_fit_spec *spec);

/* Draws start .. start+n-1 of q on stream st into out[0 .. n). */
bw_job *bw_sample_job(const bw_quantity *q, bw_stream st, uint64_t start, size_t n,
                      double *out);

/* The central interval at `level`; the result lands in job->result[0..1]. */
bw_job *bw_interval_job(const bw_quantity *q, double level);

/* Compute a part's exact cached summaries (mean, variance, the cached intervals);
 * returns a bw_status and writes a message naming the failing summary on error. */
int bw_part_summarise(bw_part *part, char *err, size_t errlen);

#endif /* BW_JOBS_H */
