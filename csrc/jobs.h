/*
 * jobs.h -- the three kinds of work the binding submits: fits, draws and intervals.
 * Pure C; each constructor returns a job ready for bw_pool_submit (NULL if out of memory).
 */
#ifndef BW_JOBS_H
#define BW_JOBS_H

#include "bw_dist.h"
#include "mixture.h"
#include "pool.h"
#include "store.h"

/* Values reduced per block by a fit, and draws per block of a sampling job: each is about a
 * millisecond of work, the cancellation grain. */
#define BW_FIT_BLOCK 65536
#define BW_SAMPLE_BLOCK 32768

/* Fits check raw values in the same pass that reduces them; a refused value fails the job
 * with BW_E_VALUE (job->err names the rule, the index and the value: bw_status.h). */

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

/* Compute a part's exact cached summaries (mean, variance, the cached intervals); returns
 * 0, or -1 with err naming the failing summary, the part (`name`, may be "") and the
 * posterior's parameters. */
int bw_part_summarise(bw_part *part, const char *name, bw_error *err);

/* bw_interval with its failure explained in err; returns 0 or -1. */
int bw_interval_checked(const bw_quantity *q, double level, double out[2], bw_error *err);

/* ---------------------------------------------------------------------------------------- */
/* Mixture fits (mixture.h) as multi-phase jobs                                              */
/* ---------------------------------------------------------------------------------------- */
/*
 * For each K of spec->Ks in turn: one phase of one block runs bw_mix_new; then one phase per
 * iteration whose blocks are bw_mix_estep_block and whose finish step runs bw_mix_mstep
 * (0 -> another phase).  So cancellation and timeouts take effect within one iteration.
 * job->phases_total = nK * (max_iter + 1); job->value_bits holds the current ELBO.  The fit
 * with the highest final ELBO (original data scale, comparable across K) is kept (ties: the
 * earlier K); the others are freed as soon as they lose.  The posterior is stored with its
 * reported components (store.h: the empty-component rule), their exact summaries, the
 * mixture mean's closed-form mean and variance and its Monte Carlo intervals (below).
 */
typedef struct {
    int model;                  /* BW_M_NORMAL_MIXTURE, _LOGNORMAL_MIXTURE, _COMPOUND_... */
    int Ks[BW_MIX_MAX_K];       /* the K's to fit, in this order */
    int nK;
    double tol;
    int max_iter;
    const double *values;       /* kept alive by the caller until the job finishes */
    size_t n;
    uint64_t init_key;          /* k-means++ key of mixture.h */
    uint64_t stream_key;        /* the posterior's stream key (Monte Carlo summaries) */
    int64_t successes, trials;  /* compound: converters, users */
    double freq_prior[2];       /* compound: Beta prior of the conversion rate */
} bw_mixfit_spec;

typedef struct {
    int nK;
    int Ks[BW_MIX_MAX_K];
    double elbo[BW_MIX_MAX_K];  /* final ELBO of each K (original data scale) */
    int iterations[BW_MIX_MAX_K];
    int converged[BW_MIX_MAX_K];
    int chosen;                 /* index into Ks of the fit kept */
    const double *history;      /* the kept fit's ELBO history */
    size_t history_len;
    double loc, scale;          /* its standardisation */
} bw_mix_report;

bw_job *bw_mixfit_job(bw_store *store, uint64_t post_id, const bw_mixfit_spec *spec);
/* The report of a mixture fit job that finished OK (NULL otherwise); valid while the job
 * lives. */
const bw_mix_report *bw_mixfit_report(const bw_job *job);

/*
 * Mixture draws.  Draw i of part code BW_PART_MIX_MEAN (REVENUE, PREDICTIVE) on stream key
 * depends only on (key, tag_offset, i): it composes bw_sample calls at position i on
 * per-component streams (r = the reported component's rank):
 *   mean        w_r ~ Gamma(alpha_r, 1) on tag off+16+r; m_r (the component's data-scale
 *               mean: mu_r, or exp(mu_r + sigma_r^2 / 2)) on tag off+32+r;
 *               value sum_r w_r m_r / sum_r w_r;
 *   revenue     the mean times a conversion-rate draw on tag off+48;
 *   predictive  w_r on tag off+64+r, a uniform on tag off+80 picks r with probability
 *               w_r / sum w, and the value is that component's predictive
 *               m + sqrt(b (kappa + 1) / (a kappa)) t_{2a} from tag off+96+r (exp'd for
 *               lognormal).
 * User draws use tag_offset 0; the Monte Carlo summaries tag_offset BW_MIX_MC_TAG.
 */
#define BW_MIX_MC_TAG 128u
#define BW_MIX_MC_DRAWS (1u << 17)
void bw_mix_draw(const bw_posterior *post, int code, uint64_t key, uint32_t tag_offset,
                 uint64_t start, size_t n, double *out);
bw_job *bw_mix_sample_job(const bw_posterior *post, int code, uint64_t key, uint64_t start,
                          size_t n, double *out);
/* The central interval at `level` of the mixture mean (code BW_PART_MIX_MEAN) or revenue
 * (BW_PART_MIX_REVENUE): empirical quantiles (linear interpolation) of draws 0 ..
 * BW_MIX_MC_DRAWS-1 on tag offset BW_MIX_MC_TAG, deterministic for a posterior; se gets
 * each endpoint's Monte Carlo standard error (half the spread of the order statistics one
 * binomial sd either side).  Returns 0, or -1 with err filled. */
int bw_mix_mc_interval(const bw_posterior *post, int code, uint64_t key, double level,
                       double out[2], double se[2], bw_error *err);
bw_job *bw_mix_interval_job(const bw_posterior *post, int code, uint64_t key, double level);

#endif /* BW_JOBS_H */
