/*
 * mixture.h -- finite mixtures of normals fitted by mean-field variational Bayes.  Pure C.
 *
 * Models: "normal-mixture" on the values x, and "lognormal-mixture" = the same on log x
 * (every x > 0).  Write x' for the fitted values (x, or log x).
 *
 * ==========================================================================================
 * Model (Bishop, PRML section 10.2, in one dimension with a normal-gamma prior)
 * ==========================================================================================
 *
 *     pi                  ~ Dirichlet(alpha0, ..., alpha0)                  (K weights)
 *     tau_k               ~ Gamma(a0, rate b0)                             (precision)
 *     mu_k | tau_k        ~ N(m0, 1 / (kappa0 tau_k))
 *     z_i | pi            ~ Categorical(pi)
 *     y_i | z_i = k       ~ N(mu_k, 1 / tau_k)
 *
 * fitted to the STANDARDISED values y_i = (x'_i - loc) / scale (below), with the mean-field
 * family q(z) q(pi) prod_k q(mu_k, tau_k): q(pi) = Dirichlet(alpha_1..K) and q(mu_k, tau_k)
 * normal-gamma (m_k, kappa_k, a_k, b_k), i.e. tau_k ~ Gamma(a_k, rate b_k) and
 * mu_k | tau_k ~ N(m_k, 1 / (kappa_k tau_k)).  Coordinate ascent: an E-step (q(z), the
 * responsibilities) then an M-step (q(pi), q(mu, tau), both in closed form), each of which
 * maximises the evidence lower bound (ELBO) over its factors.
 *
 * Plain coordinate ascent is slow wherever components overlap, and a surplus component
 * (K above what the data support) takes thousands of iterations to empty.  Two safeguarded
 * trial moves fix that (spec.plain = 1 turns both off):
 *   - over-relaxation (Salakhutdinov and Roweis 2003) on the statistics of q(z): the next
 *     q(pi) q(mu, tau) is fitted to t_base + eta (t - t_base) instead of t, eta doubling
 *     (2 .. 64) while such steps keep raising the ELBO;
 *   - merge moves: every 10 iterations, and on every plateau before convergence is
 *     declared, two neighbouring components (the most overlapping pair first) are pooled
 *     into one, the other left empty with its prior.
 * A trial is kept only if the ELBO after its E- and M-step is not lower than the last
 * accepted one; otherwise the fit returns to the accepted state and takes a plain step.
 * Every recorded ELBO is that of a genuine q(z) q(pi) q(mu, tau) and at least the one
 * before it: the history is monotone.  Convergence (a relative ELBO change <= tol) is only
 * declared on a plain step after every candidate merge was tried on the plateau.
 *
 * ==========================================================================================
 * Standardisation and the prior: a documented decision
 * ==========================================================================================
 *
 * A mixture's fit depends on where its prior puts the components, so a prior fixed on the
 * data's own scale is either wrong for 1e-6-sized values or for 1e9-sized ones.  We buy
 * scale and location invariance by stating the prior on a standardised scale that IS
 * computed from the data -- from its location and spread only, nothing else -- which is the
 * one exception to "priors are never built from the data":
 *
 *     loc   = the median of x' (the mean of the two middle values for even n);
 *     scale = 1.482602218505602 * MAD, MAD = the median of |x'_i - loc| (the normal-consistent
 *             median absolute deviation: robust, so a few outliers do not squash the rest);
 *             if MAD = 0 (more than half the values tie), the population standard deviation
 *             of x'; if that is 0 too (all values equal), |loc|, or 1 when loc = 0;
 *             then raised to at least 2^-38 * (max x' - min x') / 2 (so |y| <= 2^39) and to
 *             at least 1e-150 (so that b0 scale^2 stays a normal double).
 *
 * The prior is then stated on y (bw_mix_spec_default):
 *
 *     alpha0 = 1          uniform on the simplex
 *     m0     = 0          centred at the median
 *     kappa0 = 1e-3       mu_k within about +-30 component sds of the median (an
 *                         empty component is then 1 / kappa0 = 1000 component variances
 *                         wide in the E-step: it stays empty)
 *     a0     = 0.5, b0 = 0.05
 *                         prior guess sigma_k^2 = b0 / a0 = 0.1 (sigma_k ~ 0.32 scale
 *                         units) with the weight of one observation (2 a0 = 1).
 *
 * The fitted variational parameters are mapped back exactly (the normal-gamma family is
 * closed under x' = loc + scale * y):  m -> loc + scale * m,  b -> b * scale^2, kappa, a
 * and alpha unchanged.  So the fit of c * x + d equals the fit of x mapped by the same
 * affine map (up to rounding), for every c > 0 and d.
 *
 * ELBO.  Reported as a lower bound on log p(x_1..n), the density of the ORIGINAL values:
 *     ELBO(x) = ELBO(y) - n log(scale)                      (normal-mixture)
 *     ELBO(x) = ELBO(y) - n log(scale) - sum_i log x_i      (lognormal-mixture: the
 *                                                             Jacobian of x -> log x)
 * so it is comparable across K, and between a normal and a lognormal mixture on the same
 * data.  (The stopping rule looks at ELBO(y), which is invariant under rescaling.)
 *
 * ==========================================================================================
 * Running a fit
 * ==========================================================================================
 *
 *     bw_mix *m = bw_mix_new(&spec, x, n, err, sizeof err);    init: k-means++ and Lloyd
 *     do {
 *         for (size_t b = 0; b < bw_mix_nblocks(m); b++)         any order, any threads
 *             bw_mix_estep_block(m, b);
 *         rc = bw_mix_mstep(m);                                  serial
 *     } while (rc == 0);                                         1: done; < 0: failure
 *
 * An iteration is one E-step and one M-step, whether it is kept or a rejected trial:
 * max_iter bounds them, bw_mix_iterations counts them, and the ELBO history has one entry
 * per kept iteration (so it may be shorter).
 *
 * As a pool job: one phase per iteration whose blocks are E-step blocks, the finish step
 * calling bw_mix_mstep (0 -> BW_JOB_AGAIN).  The M-step reduces the block partials in
 * block order, so the result is bit-identical whatever the number of threads and however
 * the blocks were distributed (inner loops use fixed 8-lane accumulators; no fused
 * multiply-adds).  On x86-64 Linux with GCC the E-step kernel is also compiled for AVX2 and
 * AVX-512F and picked at load time; all variants give the same bits
 * (BW_NO_SIMD_DISPATCH builds the baseline only).
 *
 * Initialisation (deterministic): k-means++ (D^2 seeding) on an evenly strided subsample
 * of at most 65536 values, with uniforms from Philox4x32-10 (philox.h) under the 64-bit
 * spec.key and counter {j, 0, 0, 0x6D6978 "mix"}, j = 0, 1, ... ; up to 25 Lloyd
 * iterations on that subsample; each value is then assigned to its nearest centre (ties:
 * the lower centre) and the M-step is run on those hard responsibilities.
 *
 * Degenerate data are not errors: with n < K, tied values or a component that empties,
 * the surplus components keep (nearly) their prior -- their responsibilities are floored at
 * e^-300 relative to the best component, never exactly 0 -- and nothing is NaN.  An empty
 * component has a = a0 = 0.5 <= 1: its E[sigma^2] = b / (a - 1) is infinite; its weight
 * alpha0 / (n + K alpha0) says it is empty.
 *
 * Known limits of the prior: a component's E[sigma^2] is about v + 2 b0 / N_k on the
 * standardised scale (v its sample variance), so clusters narrower than about
 * sqrt(0.1 / N_k) scale units are widened to that.  Conversely b0 is what keeps a
 * component from collapsing onto a few tied values (rounded prices, say) and buying a
 * large ELBO with a spike; a smaller b0 would make that cheaper.
 */
#ifndef BW_MIXTURE_H
#define BW_MIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "bw_status.h"

#define BW_MIX_MAX_K 8
#define BW_MIX_BLOCK 16384            /* values per E-step block */

/* Defaults (bw_mix_spec_default); the prior ones are on the standardised scale. */
#define BW_MIX_DEFAULT_ALPHA0 1.0
#define BW_MIX_DEFAULT_M0 0.0
#define BW_MIX_DEFAULT_KAPPA0 1e-3
#define BW_MIX_DEFAULT_A0 0.5
#define BW_MIX_DEFAULT_B0 0.05
#define BW_MIX_DEFAULT_TOL 1e-8
#define BW_MIX_DEFAULT_MAX_ITER 500

typedef struct {
    int K;                    /* 1..8 */
    int log_scale;            /* 1: lognormal-mixture (fit log x; x must be > 0) */
    double alpha0, m0, kappa0, a0, b0;   /* prior on the standardised scale */
    double tol;               /* >= 0: stop when a plain step changes the standardised
                               * ELBO by at most tol * |ELBO| (default 1e-8) */
    int max_iter;             /* 1 .. 1000000, default 500 */
    uint64_t key;             /* Philox key for the seeded k-means++ initialisation */
    int plain;                /* 1: plain coordinate ascent: no over-relaxation, no merge
                               * moves (default 0: both on, see above) */
} bw_mix_spec;

typedef struct bw_mix bw_mix;

/* Every field at its default, with the given K, log_scale and key = 0. */
void bw_mix_spec_default(bw_mix_spec *spec, int K, int log_scale);

/* Validate (1 <= K <= 8; priors finite with alpha0, kappa0, a0, b0 > 0; tol finite >= 0;
 * 1 <= max_iter <= 1e6; n >= 1; every x finite, > 0 for log_scale, |x| <= BW_MIX_MAX_ABS_X
 * otherwise), standardise into a private copy (x is not kept: the caller may free it on
 * return) and initialise.  NULL with err filled on invalid input (BW_E_DOMAIN naming the
 * field, or BW_E_VALUE naming the value and its rule: finite, positive or bounded) or when
 * out of memory (BW_E_NOMEM). */
#define BW_MIX_MAX_ABS_X 1e100
bw_mix *bw_mix_new(const bw_mix_spec *spec, const double *x, size_t n, bw_error *err);

/* E-step blocks per iteration: ceil(n / BW_MIX_BLOCK). */
size_t bw_mix_nblocks(const bw_mix *m);

/* Responsibilities of the values of block b under the current q(pi), q(mu, tau) and their
 * partial sufficient statistics into block b's own slot.  Thread-safe for distinct b. */
void bw_mix_estep_block(bw_mix *m, size_t b);

/* Serial, after every block of the iteration ran: reduce the partials in block order,
 * update q(pi) and q(mu, tau), compute the ELBO, keep or reject the iteration (above) and
 * set up the next one.  Returns 0 to continue, 1 when converged or max_iter reached
 * (further calls do nothing and return 1), or -1 on a numerical failure (a non-finite
 * parameter or ELBO; not expected: the last accepted fit is kept). */
int bw_mix_mstep(bw_mix *m);

int bw_mix_iterations(const bw_mix *m);     /* iterations (E- and M-steps) done */
int bw_mix_converged(const bw_mix *m);      /* 1 if the tolerance was met */

/* ELBO after each kept iteration (original data scale, see above), nondecreasing; *len gets
 * the count.  The last entry is the ELBO of the fit bw_mix_components reports. */
const double *bw_mix_elbo(const bw_mix *m, size_t *len);

/* The standardisation used: y = (x' - loc) / scale. */
void bw_mix_standardisation(const bw_mix *m, double *loc, double *scale);

/* q(pi_k) = Dirichlet(weight_alpha...), q(mu, tau) = normal-gamma(m, kappa, a, b), on the
 * data scale (for lognormal-mixture: the scale of log x). */
typedef struct {
    double weight_alpha;
    double m, kappa, a, b;
} bw_mix_component;

/* Fills out[0..K) ordered by m ascending (for lognormal: the log-scale location; ties keep
 * the internal order) and returns K. */
int bw_mix_components(const bw_mix *m, bw_mix_component out[BW_MIX_MAX_K]);

void bw_mix_free(bw_mix *m);

#endif /* BW_MIXTURE_H */
