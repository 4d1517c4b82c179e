/*
 * fam_mixture.h -- the stored posterior of the three mixture families (normal-mixture,
 * lognormal-mixture, compound-beta-lognormalmixture), shared by fam_mixture.c (its maths,
 * draws, intervals and rows) and mixture_job.c (the iterative fit).  Pure C.
 *
 * The posterior is the variational posterior of mixture.h, stored as fitted, plus the
 * summaries of the components that are reported.
 *
 * The empty-component rule: a fitted component whose responsibility count
 * N_k = alpha_k - alpha0 is below 1 (less than one value's worth of data; mixture.h leaves
 * such a component at its prior, whose mean may be undefined) is not reported: it has no
 * entry in comp[] / weight[], it is left out of the mixture mean and of predictive draws
 * (the Dirichlet renormalised over the reported components is again Dirichlet with their
 * alphas), and it stays listed in alpha[] / nig[] with reported[k] = 0.  The component
 * with the largest N_k is always reported.
 *
 * Streams (cursor slots of the record): the mixture mean, the predictive, the compound's
 * revenue and its frequency.
 */
#ifndef BW_FAM_MIXTURE_H
#define BW_FAM_MIXTURE_H

#include "conjugate.h"
#include "mixture.h"

enum { BW_MIX_SLOT_MEAN, BW_MIX_SLOT_PREDICTIVE, BW_MIX_SLOT_REVENUE, BW_MIX_SLOT_FREQUENCY };

typedef struct {
    int K;                      /* components fitted */
    int log_scale;              /* 1: lognormal mixture (components on log x) */
    int compound;               /* 1: compound-beta-lognormalmixture */
    int nrep;                   /* components reported (the rule above) */
    int order[BW_MIX_MAX_K];    /* reported component r is fitted component order[r];
                                 * reported ones ordered by their reported mean */
    int reported[BW_MIX_MAX_K]; /* per fitted component: 1 if reported */
    double loc, scale;          /* the standardisation of mixture.h */
    double alpha0;              /* the Dirichlet prior's alpha0 */
    double alpha[BW_MIX_MAX_K]; /* q(pi) = Dirichlet(alpha), fitted order (by m) */
    double nig[BW_MIX_MAX_K][4];       /* q(mu_k, sigma_k^2): m, kappa, a, b (data or log
                                        * scale): sigma^2 ~ InvGamma(a, b),
                                        * mu | sigma^2 ~ N(m, sigma^2 / kappa) */
    bw_part comp[BW_MIX_MAX_K]; /* reported r: the component's data-scale mean */
    bw_part weight[BW_MIX_MAX_K];      /* reported r: Beta(alpha, sum(alpha) - alpha)
                                        * (K == 1: the constant 1, q.nfactors == 0) */
    bw_part mean;               /* the mixture mean; q unused (nfactors 0); its cached
                                 * intervals are Monte Carlo quantiles (below) */
    bw_part revenue;            /* compound only: rate x mixture mean, likewise */
    bw_part freq;               /* compound only: the conversion rate */
    double mc_se[2][BW_NCACHED][2];    /* Monte Carlo standard errors of mean.ci and
                                        * revenue.ci */
    int nstats;
    double stats[3];            /* named by the family's stats */
} bw_mix_post;

static inline bw_mix_post *bw_mixp(const bw_record *rec) { return (bw_mix_post *)rec->payload; }

/* The stored posterior of a finished fit: the reported components with their exact
 * summaries, the mixture mean's closed-form mean and variance and its Monte Carlo
 * intervals.  0, or -1 with err. */
int bw_mix_post_build(bw_record *post, const bw_fit_spec *spec, const bw_mix *fit,
                      bw_error *err);

/* The mixture engine's settings of a request: K, the prior (from the prior tuple), the
 * options and the initialisation key. */
void bw_mix_post_spec(const bw_fit_spec *spec, int K, bw_mix_spec *sp);

/* mixture_job.c: the fit job (all K of spec->options in turn, the best ELBO kept) and its
 * report. */
bw_job *bw_mixture_fit_job(bw_store *store, uint64_t post_id, const bw_fit_spec *spec);
void bw_mixture_report(const bw_job *job, bw_writer *w);

#endif /* BW_FAM_MIXTURE_H */
