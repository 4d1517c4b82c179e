/*
 * specfun.h -- special functions of the pure-C core (no Python.h).
 *
 * Every function here is pure: no global mutable state, safe to call from any thread.
 * Accuracy targets are stated per function; "relative" means relative to the returned value.
 *
 * Conventions
 *   - Tail pairs: a distribution function is returned as the pair (lower, upper) with
 *     lower + upper = 1, where the smaller of the two is computed directly, so each is
 *     accurate in the relative sense even when it is tiny.
 *   - Inverse functions take the target as a pair (p, q) with q = 1 - p, both as accurately
 *     as the caller knows them (pass q = 1 - p computed exactly, e.g. (1 - level) / 2 for the
 *     upper end of an interval); the smaller one is the one that is matched.
 *   - Arguments are not validated beyond what is said; validation happens at the edge.
 */
#ifndef BW_SPECFUN_H
#define BW_SPECFUN_H

/* ---------------------------------------------------------------------------------------- */
/* Elementary helpers                                                                        */
/* ---------------------------------------------------------------------------------------- */

/* log(1 + x) - x for x > -1, to a few ulps also near 0. */
double bw_log1pmx(double x);

/* The Stirling error delta(x) = lgamma(x) - [(x - 1/2) log x - x + log sqrt(2 pi)], x > 0.
 * Full relative accuracy for x >= 10; for smaller x it is lgamma(x) minus the Stirling part. */
double bw_stirlerr(double x);

/* log Gamma(x) for x > 0 (thread-safe: no signgam).  A few 1e-15 absolute accuracy. */
double bw_lgamma(double x);

/* log B(a, b) for a, b > 0, accurate also when a and b are large (up to 1e300). */
double bw_lbeta(double a, double b);

/* ---------------------------------------------------------------------------------------- */
/* Normal distribution                                                                       */
/* ---------------------------------------------------------------------------------------- */

/* Standard normal density. */
double bw_norm_pdf(double z);

/* Phi(z) = P(Z <= z), to a few ulps relative for z < 0 (use bw_norm_cdf(-z) for the upper
 * tail); underflows to 0 below z = -38.4. */
double bw_norm_cdf(double z);

/* log Phi(z), accurate for every z (asymptotic series below z = -30). */
double bw_norm_logcdf(double z);

/* The p-quantile of N(0, 1), 0 < p < 1, to full double precision (Halley iterations on an
 * accurate Phi).  Returns -inf / +inf for p = 0 / 1 and NaN for p outside [0, 1].  For an
 * upper-tail probability q, -bw_norm_quantile(q) is exact (symmetry). */
double bw_norm_quantile(double p);

/* ---------------------------------------------------------------------------------------- */
/* Gamma distribution: regularized incomplete gamma P(a, x) = gamma(a, x) / Gamma(a)          */
/* ---------------------------------------------------------------------------------------- */

/* log(x^a e^(-x) / Gamma(a)) for a > 0, x >= 0, given x and lx = log(x) (lx may be finite
 * while x underflows).  This is the log density of log(G) at lx for G ~ Gamma(a, 1), and
 * the derivative of P(a, x) with respect to log x. */
double bw_gamma_logkernel(double a, double x, double lx);

/* P(a, x) and Q(a, x) = 1 - P(a, x), a > 0, x >= 0 (+inf allowed); each to ~1e-13 relative.
 * Series, Legendre continued fraction, or Temme's uniform asymptotic expansion (a >= 20). */
void bw_gamma_inc(double a, double x, double *p, double *q);

/* The same with logs: lp = log P, lq = log Q (finite even where P or Q underflows, as long
 * as lx is finite).  x = exp(lx) must hold (x may be 0 or +inf by under/overflow). */
void bw_gamma_inc_log(double a, double x, double lx, double *p, double *q, double *lp,
                      double *lq);

/* Solve P(a, x) = p (equivalently Q(a, x) = q) for x; returns log x in *lx so that tails
 * far beyond the double range still have an answer.  p, q in (0, 1).
 * Returns 0 (BW_OK) or 2 (BW_E_NUMERIC). */
int bw_gamma_inc_inv(double a, double p, double q, double *lx);

/* ---------------------------------------------------------------------------------------- */
/* Beta distribution: regularized incomplete beta I_x(a, b)                                  */
/* ---------------------------------------------------------------------------------------- */

/* log(x^a y^b / B(a, b)) with y = 1 - x, given x, y and their logs lx, ly (so that the
 * caller keeps full accuracy near 0 and 1); accurate for large a and b (Stirling form).
 * x y times the Beta(a, b) density at x; also the density of logit(X). */
double bw_beta_logkernel(double a, double b, double x, double y, double lx, double ly);

/* I_x(a, b) and 1 - I_x(a, b) given x and y = 1 - x (both as accurate as the caller has
 * them).  Continued fraction on the side where it converges, or the integral of the logit
 * density where the fraction would lose digits.  ~1e-13 relative, beyond the problem's own
 * conditioning (an ulp of x moves I by x f(x) / I ulps: 1e4 near the centre of a Beta(1e7,
 * 1e7), so quantiles stay accurate to ~1e-15 there). */
void bw_beta_inc(double a, double b, double x, double y, double *p, double *q);

/* The same with logs of both tails (lp = log I, lq = log(1 - I)); x, y, lx, ly as in
 * bw_beta_logkernel (x or y may underflow to 0 while lx or ly is finite). */
void bw_beta_inc_log(double a, double b, double x, double y, double lx, double ly,
                     double *p, double *q, double *lp, double *lq);

/* Solve I_x(a, b) = p (equivalently 1 - I_x = q) for x.  Returns x, y = 1 - x and their
 * logs (any output pointer may be NULL); the smaller of x and y is the one solved for, so
 * both are accurate.  guess: initial log of the smaller of x, y, or NaN for the default.
 * Returns 0 (BW_OK) or 2 (BW_E_NUMERIC). */
int bw_beta_inc_inv(double a, double b, double p, double q, double guess,
                    double *x, double *y, double *lx, double *ly);

/* ---------------------------------------------------------------------------------------- */
/* Student t distribution                                                                    */
/* ---------------------------------------------------------------------------------------- */

/* P(T <= t) and P(T > t) for T ~ t_df, df > 0 (df >= 1e20 is treated as normal). */
void bw_t_cdf(double df, double t, double *lower, double *upper);

/* log density of t_df at t. */
double bw_t_logpdf(double df, double t);

/* The quantile with lower-tail probability p and upper-tail probability q = 1 - p.
 * Returns 0 (BW_OK) or 2 (BW_E_NUMERIC). */
int bw_t_quantile(double df, double p, double q, double *t);

/* ---------------------------------------------------------------------------------------- */
/* Safeguarded Newton root finder                                                            */
/* ---------------------------------------------------------------------------------------- */

/* f(ctx, u, &g, &dg) evaluates an increasing function g(u) (it may return -inf / +inf far
 * out) and its derivative dg (> 0; 0 or non-finite when unknown).  A nonzero return aborts
 * the solve with that status. */
typedef int (*bw_root_fn)(void *ctx, double u, double *g, double *dg);

/* Find u with g(u) = 0 by Newton steps kept inside the current bracket (false position and
 * bisection, alternately, when a step leaves it or shrinks too slowly), starting at u0 and
 * walking by `step` (doubling) while no bracket is known.  lo / hi: a known bracket end with
 * g(lo) <= 0 <= g(hi), or -inf / +inf.  Converged when the Newton correction (or the
 * bracket) is below atol + rtol |u|.  Returns 0, the callback's status, or 2 (BW_E_NUMERIC). */
int bw_root_newton(bw_root_fn f, void *ctx, double u0, double step, double lo, double hi,
                   double atol, double rtol, double *u);

/* ---------------------------------------------------------------------------------------- */
/* Adaptive Gauss-Kronrod (10, 21) quadrature                                                */
/* ---------------------------------------------------------------------------------------- */

#define BW_GK_NODES 21          /* nodes per panel */
#define BW_QUAD_MAXCOMP 3       /* components of a vector integrand */

/* f(ctx, x, node, out) writes the ncomp components of the integrand at x.  node >= 0 is the
 * index of x among the nodes of the initial panels (panel * BW_GK_NODES + j; its position is
 * bw_gk_node(edges, node), bit for bit), so an integrand may precompute data for them;
 * node = -1 elsewhere. */
typedef void (*bw_integrand)(void *ctx, double x, int node, double *out);

/* Position of initial node `node` for the panels edges[0] < edges[1] < ... */
double bw_gk_node(const double *edges, int node);

/* The rule itself on [a, b]: nodes x[0 .. 20] (bw_gk_node's order), the Kronrod weights wk
 * and the weights wg of the embedded 10-point Gauss rule (0 at the Kronrod-only nodes), both
 * times (b - a) / 2, so that sum wk f(x) and sum wg f(x) are the two estimates of the
 * integral over [a, b]. */
void bw_gk_rule(double a, double b, double *x, double *wk, double *wg);

/* Integrate f from edges[0] to edges[npanels], starting from the panels [edges[i],
 * edges[i+1]] and bisecting the panel with the largest error estimate (QUADPACK's estimate,
 * on component 0) until the total is below max(atol, rtol |result[0]|); at most 300 panels
 * (npanels <= 150).  Returns 0 (BW_OK) or 2 (BW_E_NUMERIC; result still filled in).  abserr
 * may be NULL.  Uses ~16 kB of stack (nested integrals add up). */
int bw_quad_gk(bw_integrand f, void *ctx, int ncomp, const double *edges, int npanels,
               double rtol, double atol, double *result, double *abserr);

/* ---------------------------------------------------------------------------------------- */
/* Normal tails summed over a mixture                                                         */
/* ---------------------------------------------------------------------------------------- */

/* With z_k = v a[k] - b[k] for the m nodes k:
 *   out[0] = sum wk[k] Phi(z_k),  out[1] = sum wk[k] Phi(-z_k),  out[2] = sum wk[k] a[k] phi(z_k),
 *   out[3] = sum wg[k] Phi(z_k),  out[4] = sum wg[k] Phi(-z_k)
 * (two weightings of one rule, e.g. Kronrod and Gauss).  Each Phi to about 2 ulps relative,
 * the smaller of Phi(z), Phi(-z) computed directly; a vector kernel whose bits do not depend
 * on the instruction set.  a, b, wk, wg finite. */
void bw_norm_mix(const double *a, const double *b, const double *wk, const double *wg, int m,
                 double v, double out[5]);

#endif /* BW_SPECFUN_H */
