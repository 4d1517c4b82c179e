/*
 * store.h -- the posterior store: every fitted posterior under a unique id.  Pure C.
 *
 * A posterior has one part (its quantity) or, for compound models, three: the revenue per
 * user (part 0), the frequency (part 1) and the severity (part 2).  Each part carries its
 * exact cached summaries and its own stream position.  All access goes through the store's
 * mutex; callers get copies, never pointers into the store.
 */
#ifndef BW_STORE_H
#define BW_STORE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "bw_dist.h"

#define BW_MAX_PARTS 3
#define BW_NCACHED 3          /* cached interval levels: 0.95, 0.90, 0.80 */
extern const double bw_cached_levels[BW_NCACHED];

enum bw_model {
    BW_M_BETA_BINOMIAL = 1,
    BW_M_NORMAL = 2,
    BW_M_LOGNORMAL = 3,
    BW_M_EXPONENTIAL = 4,
    BW_M_POISSON = 5,
    BW_M_COMPOUND_LOGNORMAL = 6,
    BW_M_COMPOUND_EXPONENTIAL = 7,
    BW_M_NORMAL_MIXTURE = 8,
    BW_M_LOGNORMAL_MIXTURE = 9,
    BW_M_COMPOUND_LOGNORMAL_MIXTURE = 10,     /* compound-beta-lognormalmixture */
};

typedef struct {
    bw_quantity q;
    double mean, variance;
    double ci[BW_NCACHED][2];
    uint64_t cursor;            /* the next stream position to hand out */
} bw_part;

/* ---------------------------------------------------------------------------------------- */
/* Mixtures (models 8..10): the variational posterior of mixture.h, stored as fitted, plus   */
/* the summaries of the components that are reported.                                       */
/*                                                                                           */
/* The empty-component rule: a fitted component whose responsibility count                 */
/* N_k = alpha_k - alpha0 is below 1 (less than one value's worth of data; mixture.h leaves */
/* such a component at its prior, whose mean may be undefined) is not reported: it has no   */
/* entry in comp[] / weight[], it is left out of the mixture mean and of predictive draws   */
/* (the Dirichlet renormalised over the reported components is again Dirichlet with their   */
/* alphas), and it stays listed in alpha[] / nig[] with reported[k] = 0.  The component    */
/* with the largest N_k is always reported.                                                  */
/*                                                                                           */
/* Part codes (not indices into part[]) that the draws and intervals of a mixture use:      */
/* ---------------------------------------------------------------------------------------- */
#define BW_MIX_STORE_MAXK 8
#define BW_PART_MIX_MEAN 8          /* the mixture's data-scale mean sum_k w_k m_k */
#define BW_PART_MIX_PREDICTIVE 9    /* a new data value from the posterior predictive */
#define BW_PART_MIX_REVENUE 10      /* compound: conversion rate x mixture mean */
#define BW_PART_MIX_COMPONENT 16    /* + k: reported component k's data-scale mean */
#define BW_PART_MIX_WEIGHT 24       /* + k: reported component k's weight */

typedef struct {
    int K;                      /* components fitted (0: not a mixture) */
    int log_scale;              /* 1: lognormal mixture (components on log x) */
    int nrep;                   /* components reported (see the rule above) */
    int order[BW_MIX_STORE_MAXK];    /* reported component r is fitted component order[r];
                                      * reported ones ordered by their reported mean */
    int reported[BW_MIX_STORE_MAXK]; /* per fitted component: 1 if reported */
    double loc, scale;          /* the standardisation of mixture.h */
    double alpha0;              /* the Dirichlet prior's alpha0 */
    double alpha[BW_MIX_STORE_MAXK];   /* q(pi) = Dirichlet(alpha), fitted order (by m) */
    double nig[BW_MIX_STORE_MAXK][4];  /* q(mu_k, sigma_k^2): m, kappa, a, b (data or log
                                        * scale): sigma^2 ~ InvGamma(a, b),
                                        * mu | sigma^2 ~ N(m, sigma^2 / kappa) */
    bw_part comp[BW_MIX_STORE_MAXK];   /* reported r: the component's data-scale mean */
    bw_part weight[BW_MIX_STORE_MAXK]; /* reported r: Beta(alpha, sum(alpha) - alpha)
                                        * (K == 1: the constant 1, q.nfactors == 0) */
    bw_part mean;               /* the mixture mean; q unused (nfactors 0); its cached
                                 * intervals are Monte Carlo quantiles (see jobs.h) */
    bw_part revenue;            /* compound only: rate x mixture mean, likewise */
    double mc_se[2][BW_NCACHED][2];    /* Monte Carlo standard errors of mean.ci and
                                        * revenue.ci */
    uint64_t pred_cursor;       /* the predictive stream's next position */
} bw_mixture;

typedef struct bw_posterior {
    uint64_t id;                /* also the stream sequence number */
    int model;
    int nparts;
    bw_part part[BW_MAX_PARTS];
    double stats[6];            /* the sufficient statistics the fit used (model-specific) */
    double created, last_access;   /* wall-clock seconds */
    double fit_seconds;
    bw_mixture mix;             /* mixtures only (mix.K == 0 otherwise) */
    struct bw_posterior *chain; /* hash chain, store-private */
} bw_posterior;

typedef struct bw_store bw_store;

bw_store *bw_store_new(void);
void bw_store_free(bw_store *store);
/* Hand out the next posterior id (1, 2, ...: the order of the calls). */
uint64_t bw_store_next_id(bw_store *store);
/* Take ownership of a heap-allocated posterior; returns 0, or -1 if out of memory (the
 * posterior is then freed). */
int bw_store_insert(bw_store *store, bw_posterior *post);
/* Copy a posterior out and mark it accessed; returns 1 if found. */
int bw_store_get(bw_store *store, uint64_t id, bw_posterior *copy);
/* Reserve n stream positions of one part: *start gets the first, *q the quantity.
 * Returns 1 if found, 0 if the posterior is gone, -1 if the part does not exist or the
 * stream position would overflow. */
int bw_store_reserve(bw_store *store, uint64_t id, int part, uint64_t n,
                     uint64_t *start, bw_quantity *q);
int bw_store_remove(bw_store *store, uint64_t id);
/* Remove everything; fills a malloc'd array of the removed ids (caller frees). */
size_t bw_store_clear(bw_store *store, uint64_t **ids);
/* Remove every posterior not accessed since the wall-clock time `before`. */
size_t bw_store_evict(bw_store *store, double before, uint64_t **ids);
/* Copies of every posterior, ordered by id, in a malloc'd array (caller frees). */
size_t bw_store_snapshot(bw_store *store, bw_posterior **out);
size_t bw_store_count(bw_store *store);
/* Mixtures: reserve n positions of the stream of part code BW_PART_MIX_MEAN,
 * BW_PART_MIX_PREDICTIVE or BW_PART_MIX_REVENUE; *copy gets the posterior.  Returns 1 if
 * found, 0 if the posterior is gone, -1 if it has no such stream or it would overflow. */
int bw_store_reserve_mix(bw_store *store, uint64_t id, int code, uint64_t n,
                         uint64_t *start, bw_posterior *copy);

#endif /* BW_STORE_H */
