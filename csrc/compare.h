/*
 * compare.h -- decisions between arms: P(beat control), P(best), expected loss and lift,
 * exact (deterministic adaptive quadrature over the arms' densities and distribution
 * functions), computed as one job on the workers.  Pure C, no Python.h.
 *
 * With X_1 .. X_n independent and "higher is better":
 *   P(best_i)         = int f_i prod_{j != i} F_j
 *   P(X_i > X_c)      = int f_i F_c, symmetrised: p_ic / (p_ic + p_ci)
 *   loss_i            = E[max_j X_j - X_i]   = int F_i (1 - prod_{j != i} F_j) dt
 *   loss_vs_i         = E[max(X_c - X_i, 0)] = int F_i S_c dt
 *   relative lift     = X_i / X_c - 1: P(X_i / X_c <= r) = int f_c(y) F_i(r y) dy
 *   absolute lift     = X_i - X_c:     P(X_i - X_c <= d) = int f_c(y) F_i(d + y) dy
 * (the loss identities: (b - a)^+ = int 1{a < t < b} dt, no cancellation).  "Lower is
 * better" exchanges F and S, and reports the improvement 1 - X_i / X_c and X_c - X_i.
 *
 * Arms whose mean is infinite (the data-scale mean of a lognormal, and products with it)
 * enter the losses and the lift means as their distribution truncated at the
 * BW_TRUNC_LEVEL quantile, as bw_mean does; result.truncated says so.
 *
 * How (compare.c): every arm is tabulated (F, S and density at the Gauss-Kronrod nodes of
 * panels between its quantiles), arms without closed forms from a private table (the
 * lognormal mean by quadrature over its variance, a product as the convolution of its
 * factors' tables); the probabilities and losses of all arms are one adaptive pass over
 * the union of their panels with an error estimate per integral; the lift's distribution
 * function is a trapezoidal sum over the normal scores of one arm, certified by the sum
 * on twice the nodes.  Accuracy: probabilities to 1e-9 absolute, losses and lift ends to
 * 1e-9 relative for closed-form arms (beta, gamma, inverse gamma, Student t); 1e-7 where
 * a lognormal mean or a product is involved (result.error bounds the probabilities).
 * Cancellation is checked at least once per panel, progress reported per arm and phase.
 */
#ifndef BW_COMPARE_H
#define BW_COMPARE_H

#include "bw_dist.h"
#include "pool.h"

#define BW_CMP_MAX_ARMS 32
#define BW_CMP_MAX_LEVELS 4
#define BW_CMP_MAX_THRESHOLDS 8

/* An arm's draws in a Monte Carlo comparison.  post NULL: the arm is the exact quantity
 * arm[i] (drawn by bw_sample when another arm is drawn); else a heap copy of a stored
 * posterior whose `part` has no tractable integrals (a mixture's mean or revenue per user),
 * drawn through its family's draw op: the request owns it until bw_compare_job takes it. */
struct bw_record;
typedef struct {
    struct bw_record *post;
    int part;
    int flags;                  /* a drawn arm's BW_CMP_POSITIVE | BW_CMP_HEAVY */
    uint64_t key;               /* the posterior's stream key (every arm of a Monte Carlo
                                 * request) */
} bw_cmp_source;

enum {
    BW_CMP_POSITIVE = 1,        /* every draw is > 0: relative lifts are defined */
    BW_CMP_HEAVY = 2,           /* its mean is infinite: truncated like a lognormal arm */
};

typedef struct {
    int narms;                  /* 2 .. BW_CMP_MAX_ARMS */
    int control;                /* index of the control arm */
    int higher;                 /* 1: higher is better; 0: lower is better */
    int full;                   /* 1: P(best), P(beat), losses too; 0: lifts only */
    bw_quantity arm[BW_CMP_MAX_ARMS];
    int nlevels;                /* lift intervals at these levels (0 < level < 1) */
    double levels[BW_CMP_MAX_LEVELS];
    int nthresholds;            /* P(lift > t), relative and absolute, for these t */
    double thresholds[BW_CMP_MAX_THRESHOLDS];
    /* Monte Carlo (compare_mc.c, below): where each arm's draws come from, and how many
     * joint draws (0: BW_CMP_MC_DRAWS); exact requests leave src[].post NULL */
    bw_cmp_source src[BW_CMP_MAX_ARMS];
    uint64_t draws;
} bw_cmp_request;

enum { BW_CMP_RELATIVE = 0, BW_CMP_ABSOLUTE = 1 };
enum { BW_CMP_MEAN = 0, BW_CMP_MEDIAN = 1, BW_CMP_LO = 2, BW_CMP_HI = 3 };

typedef struct {
    double prob_best, prob_beats, loss, loss_vs;
    double mean;                /* the arm's mean (truncated where infinite) */
    int truncated;              /* losses and lift means use the truncated distribution */
    /* E[log factor] of the arm's factors (one factor: [1] is NaN; +inf where infinite, NaN
     * where a factor can be <= 0): the log-scale decomposition of a compound lift */
    double log_mean[2];
    /* lift vs control at levels[k]: [k][relative/absolute][mean, median, lo, hi]; NaN for
     * the control and, relative, where an arm can be <= 0 */
    double lift[BW_CMP_MAX_LEVELS][2][4];
    double above[BW_CMP_MAX_THRESHOLDS][2];     /* P(lift > t), relative and absolute */
    /* Monte Carlo standard errors of the figures above (result.draws > 0; NaN where the
     * figure is, 0 for an exact arm's mean); the lift means' are the same at every level */
    double se_best, se_beats, se_loss, se_loss_vs, se_mean;
    double se_lift_mean[2];
    double se_above[BW_CMP_MAX_THRESHOLDS][2];
} bw_cmp_arm;

typedef struct {
    int narms;
    int nlevels, nthresholds;   /* those of the request: the filled rows of lift and above */
    bw_cmp_arm arm[BW_CMP_MAX_ARMS];
    double error;               /* exact: a bound on the numerical error of the
                                 * probabilities; Monte Carlo: their largest standard error */
    uint64_t draws;             /* 0: exact; else the joint draws of a Monte Carlo result */
} bw_cmp_result;

/* Check a request (arms, control, levels, thresholds); 0 or -1 with err. */
int bw_compare_check(const bw_cmp_request *req, bw_error *err);

/* The comparison as a job (the request copied; check it first); NULL if out of memory.
 * Phase 1 prepares each arm (one block each), phase 2 computes each arm's figures. */
bw_job *bw_compare_job(const bw_cmp_request *req);

/* The result of a finished comparison job (valid while the job lives). */
const bw_cmp_result *bw_compare_result(const bw_job *job);

/* ---------------------------------------------------------------------------------------- */
/* Monte Carlo comparisons (compare_mc.c)                                                    */
/* ---------------------------------------------------------------------------------------- */
/*
 * A request with a drawn arm (src[i].post set) is computed by Monte Carlo for every arm:
 * joint draw j takes position j of each arm's stream (key bw_stream_key(src[i].key,
 * BW_TAG_CMP_MC + i); exact arms on tag BW_TAG_CMP_MC), and `draws` of them are reduced on
 * the fly, in blocks, into every figure of bw_cmp_arm with its standard error.  The same
 * request gives bit-identical results whatever the thread count.  See compare_mc.c.
 */
#define BW_CMP_MC_DRAWS (1u << 20)      /* the default and the least joint draws */
#define BW_CMP_MC_MAX_DRAWS (1u << 24)  /* the most */

/* Some arm of the request is drawn. */
int bw_compare_mc_wanted(const bw_cmp_request *req);
/* The Monte Carlo part of bw_compare_check (draws, flags); 0 or -1 with err. */
int bw_compare_mc_check(const bw_cmp_request *req, bw_error *err);
/* The Monte Carlo comparison job; it takes src[].post (freed with the job, or here when
 * out of memory: then NULL). */
bw_job *bw_compare_mc_job(const bw_cmp_request *req);
/* The result of a finished Monte Carlo job, or NULL if the job is not one. */
const bw_cmp_result *bw_compare_mc_result(const bw_job *job);
/* Free the drawn posteriors of a request that will not be submitted (NULLs them). */
void bw_compare_release(bw_cmp_request *req);

#endif /* BW_COMPARE_H */
