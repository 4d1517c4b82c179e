/*
 * summary.c -- exact posterior summaries of bw_quantity: mean, variance, CDF, quantiles and
 * central intervals (declared in bw_dist.h).
 *
 * Closed forms where they exist (Beta, Student t, Gamma, inverse Gamma through the special
 * functions of specfun.c).  Otherwise deterministic adaptive Gauss-Kronrod quadrature:
 *
 *   NIG_LNMEAN   X = exp(mu + s/2), s ~ InvGamma(alpha, beta), mu | s ~ N(m, s / kappa).
 *                With G = beta / s ~ Gamma(alpha, 1) and w = log G (density
 *                exp(alpha w - e^w) / Gamma(alpha)), log X | w ~ N(m + s/2, s/kappa), so
 *                P(X <= x) = int Phi(z(w)) dens(w) dw,  z = (log x - m - s/2) sqrt(kappa/s).
 *   products     P(X Y <= t) = E_X[F_Y(t / X)], an integral over a smooth variable of the
 *                outer factor X (logit for Beta, log for Gamma / inverse Gamma) with F_Y in
 *                closed form or by the NIG_LNMEAN quadrature (nested).
 *
 * Quantiles: Newton steps on log(tail) - log(target) in log x (or x where the quantity can be
 * negative), the density coming out of the same quadrature, inside a bisection bracket.
 * A Beta rate times a lognormal mean (revenue per user) has its own method: one integral
 * over a table of the lognormal mean's tails that every step, end and level of a setup
 * shares ("Rate x lognormal mean" below), with the general product quadrature behind it.
 *
 * Nothing here keeps state between calls; work memory is on the stack (a few tens of kB),
 * but for that table (one heap block of ~200 kB per call, freed before it returns).
 */
#include <math.h>
#include <stdlib.h>

#include "bw_dist.h"
#include "specfun.h"

/* ======================================================================================== */
/* Small helpers                                                                             */
/* ======================================================================================== */

static int finite_pos(double v)
{
    return isfinite(v) && v > 0.0;
}

/* log(1 + e^t) without overflow. */
static double softplus(double t)
{
    return t > 0.0 ? t + log1p(exp(-t)) : log1p(exp(t));
}

/* Lower or upper tail of N(0,1) at z and the density, sharing one exponential: with
 * u = |z| / sqrt(2) rounded and du its rounding error, Phi(-|z|) = erfc(u + du) / 2. */
static void norm_tail_pdf(double z, int upper, double *tail, double *pdf)
{
    if (isinf(z)) {
        *tail = (z > 0.0) != (upper != 0) ? 1.0 : 0.0;
        *pdf = 0.0;
        return;
    }
    const double s1h = 0.70710678118654757274, s1l = -4.8336466567264565e-17;
    const double isqpi = 0.56418958354775628695, isq2pi = 0.39894228040143267794;
    double a = fabs(z), u = a * s1h, du = fma(a, s1h, -u) + a * s1l;
    double e = exp(-u * u);
    double small = 0.5 * erfc(u) - du * isqpi * e;          /* Phi(-|z|) */
    int want_small = (z < 0.0) != (upper != 0);
    *tail = want_small ? small : 1.0 - small;
    *pdf = isq2pi * e * (1.0 - 2.0 * u * du);               /* exp(-z^2/2) / sqrt(2 pi) */
}

/* a + b = *s + *e exactly (Knuth's two-sum). */
static void two_sum(double a, double b, double *s, double *e)
{
    double x = a + b, bb = x - a;
    *s = x;
    *e = (a - (x - bb)) + (b - bb);
}

/* exp(a + b) to about an ulp also where a + b is large and rounds: exp(s) (1 + e) with
 * s + e = a + b exactly.  exp_add(a, 0) is exp(a), bit for bit. */
static double exp_add(double a, double b)
{
    double s, e;
    two_sum(a, b, &s, &e);
    double x = exp(s);
    return isfinite(s) && e != 0.0 ? fma(x, e, x) : x;
}

/* log(x) - m for finite x > 0, to 2e-20 absolute plus an ulp of the result, also where
 * log x and m agree in most of their digits.  log x = k ln 2 + 2 atanh(f), f = (y - 1) / (y
 * + 1), y = x 2^-k in [sqrt(1/2), sqrt 2), |f| <= 0.172: 2 f and 2 f^3 / 3 are carried in two
 * doubles each, the rest of the series (below 6e-5) in one; then m is taken off exactly. */
static double log_diff(double x, double m)
{
    const double ln2_hi = 6.93147180369123816490e-01;   /* 32 bits: k ln2_hi is exact */
    const double ln2_lo = 1.90821492927058770002e-10;
    int k;
    double y = frexp(x, &k);
    if (y < 0.70710678118654752440) {
        y *= 2.0;
        k--;
    }
    double num = y - 1.0, den, den_lo;                   /* num is exact */
    two_sum(y, 1.0, &den, &den_lo);
    double f = num / den, f_lo = (fma(-f, den, num) - f * den_lo) / den;
    double f2 = f * f, f2_lo = fma(f, f, -f2);
    double c = f2 * f, c_lo = fma(f2, f, -c) + f2_lo * f;         /* f^3 */
    double t3 = 2.0 * c / 3.0;
    double t3_lo = (fma(-t3, 3.0, 2.0 * c) + 2.0 * c_lo) / 3.0;
    double rest = 0.0;
    for (int j = 29; j >= 5; j -= 2)                     /* next term below 3e-25 */
        rest = rest * f2 + 2.0 / j;
    rest *= c * f2;                                       /* 2 f^5 / 5 + 2 f^7 / 7 + ... */
    double s1, e1, s2, e2, s3, e3;
    two_sum((double)k * ln2_hi, -m, &s1, &e1);
    two_sum(s1, 2.0 * f, &s2, &e2);
    two_sum(s2, t3, &s3, &e3);
    /* f_lo enters through d(2 atanh f)/df = 2 / (1 - f^2) */
    return s3 + (e1 + e2 + e3 + (double)k * ln2_lo + 2.0 * f_lo / (1.0 - f2) + t3_lo + rest);
}

/* A quadrature that ran out of panels is still accepted when its error estimate (which is
 * pessimistic) is below 1e-10 of the value. */
static int quad_status(int st, double err, double value)
{
    return st == BW_E_NUMERIC && err <= 1e-10 * fabs(value) ? BW_OK : st;
}

/* Truncation mass of quadrature ranges for a tail target: the neglected mass must be
 * negligible against the tail being computed. */
static double range_eps(double tail)
{
    double e = 1e-14 * tail;
    if (e > 1e-20)
        e = 1e-20;
    if (e < 1e-300)
        e = 1e-300;
    return e;
}

/* Initial quadrature panels: edges at quantiles of the integration variable, for the
 * probabilities eps, 1e-8, 1e-3, 0.1, 1/2 and their complements, so that every panel
 * carries a sensible share of the mass whatever the shape. */
#define QE_NT 3
#define QE_PANELS (2 * QE_NT + 2)
#define QE_NODES (QE_PANELS * BW_GK_NODES)

typedef int (*var_quantile_fn)(const void *ctx, double p, double q, double *v);

static int quantile_edges(var_quantile_fn f, const void *ctx, double eps, double *edges)
{
    static const double tails[QE_NT] = {1e-8, 1e-3, 0.1};
    int k = 0, st = f(ctx, eps, 1.0 - eps, &edges[k++]);
    for (int i = 0; i < QE_NT && !st; i++)
        st = f(ctx, tails[i], 1.0 - tails[i], &edges[k++]);
    if (!st)
        st = f(ctx, 0.5, 0.5, &edges[k++]);
    for (int i = QE_NT - 1; i >= 0 && !st; i--)
        st = f(ctx, 1.0 - tails[i], tails[i], &edges[k++]);
    if (!st)
        st = f(ctx, 1.0 - eps, eps, &edges[k++]);
    if (st)
        return st;
    for (int i = 0; i < QE_PANELS; i++) {
        if (!(edges[i + 1] > edges[i])) {
            /* degenerate (should not happen): equal panels over the full range */
            double lo = edges[0], hi = edges[QE_PANELS];
            if (!(hi > lo) || !isfinite(lo) || !isfinite(hi))
                return BW_E_NUMERIC;
            for (int j = 1; j < QE_PANELS; j++)
                edges[j] = lo + (hi - lo) * ((double)j / QE_PANELS);
            break;
        }
    }
    return BW_OK;
}

/* ======================================================================================== */
/* Parameters                                                                                */
/* ======================================================================================== */

static int dist_valid(const bw_dist *d)
{
    switch (d->kind) {
    case BW_KIND_BETA:
    case BW_KIND_GAMMA:
    case BW_KIND_INVGAMMA:
        return finite_pos(d->p[0]) && finite_pos(d->p[1]);
    case BW_KIND_NIG_MEAN:
    case BW_KIND_NIG_LNMEAN:
        return isfinite(d->p[0]) && finite_pos(d->p[1]) && finite_pos(d->p[2])
               && finite_pos(d->p[3]);
    default:
        return 0;
    }
}

static int quantity_valid(const bw_quantity *q)
{
    if (!q || (q->nfactors != 1 && q->nfactors != 2))
        return 0;
    for (int i = 0; i < q->nfactors; i++)
        if (!dist_valid(&q->f[i]))
            return 0;
    return 1;
}

static int is_positive_kind(int kind)
{
    return kind != BW_KIND_NIG_MEAN;
}

/* Student t parameters of NIG_MEAN: df = 2 alpha, scale = sqrt(beta / (alpha kappa)). */
static void nig_t(const bw_dist *d, double *df, double *scale)
{
    *df = 2.0 * d->p[2];
    *scale = sqrt(d->p[3] / (d->p[2] * d->p[1]));
}

/* ======================================================================================== */
/* NIG_LNMEAN: the lognormal mean as a Gamma mixture of normals in log space                 */
/* ======================================================================================== */

/*
 * Two frames for the same integrals.
 *
 * Loose: over w = log G in absolute terms, solving in T = log x, with z = (T - m) r - c,
 * r = sqrt(kappa / s), c = sqrt(kappa s) / 2.
 *
 * Tight: when log X is concentrated (a posterior from many values), absolute arithmetic
 * loses what matters: T - m and c cancel, w is known to an ulp of log alpha only, and the
 * truncated variance comes out of terms 1e10 times larger than itself.  So everything is
 * taken relative to the centre, in units of the spread:
 *     s0 = beta / alpha,  h = s0 / 2,  sigma = sqrt(s0 / kappa),  c0 = sqrt(kappa s0) / 2,
 *     u = (log X - m - h) / sigma,   t = sqrt(alpha) x,  x = log(G / alpha),  s = s0 e^-x,
 * so that U | t ~ N(c0 expm1(-x), e^-x), P(U <= u | t) = Phi(u e^(x/2) + 2 c0 sinh(x/2)),
 * and t has the density exp(-alpha (expm1(x) - x) - delta(alpha)) / sqrt(2 pi) (near
 * N(0, 1) for large alpha).  Every term is now a relative one.
 *
 * Both share the integrand z = u a - b at a node: loose u = T - m, a = r, b = c; tight
 * a = e^(x/2), b = -2 c0 sinh(x/2).
 *
 * The tight frame serves alpha >= LNM_TIGHT_ALPHA with a variance of log X (about s0 / kappa
 * + s0^2 / (4 alpha)) below LNM_TIGHT_VAR.  The loose truncated variance cancels to noise
 * there: its quadrature fails from about 2e-10 down (in a sweep of 3,000 data posteriors,
 * 30 % of those between 4e-11 and 2e-10 got through, none below 3e-11).  Elsewhere the
 * loose frame is kept, bit for bit, and the tight moments only step in where its moments
 * fail (up to a variance of LNM_FALLBACK_VAR).
 */

/* Relative tolerance of the cheap quadratures used for the first root-finding steps. */
#define COARSE_RTOL 1e-8
#define LNM_PANELS QE_PANELS
#define LNM_NODES QE_NODES
#define LNM_TIGHT_ALPHA 10.0
#define LNM_TIGHT_VAR 2e-11
#define LNM_FALLBACK_VAR 1e-6        /* the tight moments are sound far beyond LNM_TIGHT_VAR */

typedef struct {
    double m, kappa, alpha, beta;
    int tight;                       /* the frame */
    double h, sigma, c0, isa;        /* tight: s0 / 2, sqrt(s0 / kappa), sqrt(kappa s0) / 2,
                                        1 / sqrt(alpha) */
    double spread;                   /* tight: about the sd of U, sqrt(1 + c0^2 / alpha) */
    double edges[LNM_PANELS + 1];    /* panels in w (or t), all but 2 eps of the mass */
    double lkb, lkob;                /* log(kappa / beta), log(kappa beta) */
    double lalpha, ldens0;           /* log alpha, constant of the log density of w (or t) */
    double a[LNM_NODES];             /* a and b of z = u a - b at the initial nodes */
    double b[LNM_NODES];
    double g[LNM_NODES];             /* density of w (or t) */
} lnm_t;

/* alpha >= LNM_TIGHT_ALPHA and the variance of log X below vmax (and not so tiny that
 * sigma^2 leaves the normal range). */
static int lnm_tight_below(const bw_dist *d, double vmax)
{
    double s0 = d->p[3] / d->p[2], v = s0 / d->p[1];
    return d->p[2] >= LNM_TIGHT_ALPHA && v + 0.25 * s0 * (s0 / d->p[2]) < vmax && v > 1e-290;
}

static int lnm_is_tight(const bw_dist *d)
{
    return lnm_tight_below(d, LNM_TIGHT_VAR);
}

/* Log density of w = log G, G ~ Gamma(alpha, 1): alpha w - e^w - lgamma(alpha), the
 * constant precomputed; for large alpha in the cancellation-free form
 * alpha log1pmx(e^w / alpha - 1) + log sqrt(alpha / 2 pi) - delta(alpha). */
static double lnm_logdens(const lnm_t *L, double w)
{
    double x = exp(w);
    if (L->alpha >= 10.0) {
        double d = expm1(w - L->lalpha);
        double t = d > -0.5 ? L->alpha * bw_log1pmx(d) : L->alpha * (w - L->lalpha) - (x - L->alpha);
        return t + L->ldens0;
    }
    return L->alpha * w - x + L->ldens0;
}

/* a, b and the density g at the node variable v (w, or t). */
static void lnm_point(const lnm_t *L, double v, double *a, double *b, double *g)
{
    if (L->tight) {
        double x = v * L->isa, e = expm1(x);
        *a = exp(0.5 * x);
        *b = -2.0 * L->c0 * sinh(0.5 * x);
        *g = exp((e > -0.5 ? L->alpha * bw_log1pmx(e) : L->alpha * (x - e)) + L->ldens0);
        return;
    }
    *a = exp(0.5 * (L->lkb + v));
    *b = 0.5 * exp(0.5 * (L->lkob - v));
    *g = exp(lnm_logdens(L, v));
}

static int gamma_logq(const void *ctx, double p, double q, double *v)
{
    return bw_gamma_inc_inv(*(const double *)ctx, p, q, v);
}

/* Quantile of t (tight frame); only the panels depend on its accuracy. */
static int tight_tq(const void *ctx, double p, double q, double *v)
{
    const lnm_t *L = ctx;
    int st = bw_gamma_inc_inv(L->alpha, p, q, v);
    *v = (*v - L->lalpha) / L->isa;
    return st;
}

static int lnm_setup(lnm_t *L, const bw_dist *d, double eps, int tight)
{
    L->m = d->p[0];
    L->kappa = d->p[1];
    L->alpha = d->p[2];
    L->beta = d->p[3];
    L->lkb = log(L->kappa) - log(L->beta);
    L->lkob = log(L->kappa) + log(L->beta);
    L->lalpha = log(L->alpha);
    L->ldens0 = L->alpha >= 10.0 ? 0.5 * L->lalpha - 0.91893853320467274178 - bw_stirlerr(L->alpha)
                                 : -bw_lgamma(L->alpha);
    L->tight = tight;
    int st;
    if (tight) {
        double s0 = L->beta / L->alpha;
        L->h = 0.5 * s0;
        L->sigma = sqrt(s0 / L->kappa);
        L->c0 = 0.5 * sqrt(L->kappa * s0);
        L->isa = 1.0 / sqrt(L->alpha);
        L->spread = sqrt(1.0 + L->c0 * (L->c0 / L->alpha));
        L->ldens0 -= 0.5 * L->lalpha;                   /* dw/dt = 1 / sqrt(alpha) */
        st = quantile_edges(tight_tq, L, eps, L->edges);
    } else {
        st = quantile_edges(gamma_logq, &L->alpha, eps, L->edges);
    }
    if (st)
        return st;
    for (int k = 0; k < LNM_NODES; k++)
        lnm_point(L, bw_gk_node(L->edges, k), &L->a[k], &L->b[k], &L->g[k]);
    return BW_OK;
}

static void lnm_node_data(const lnm_t *L, double v, int node, double *a, double *b, double *g)
{
    if (node >= 0) {
        *a = L->a[node];
        *b = L->b[node];
        *g = L->g[node];
    } else {
        lnm_point(L, v, a, b, g);
    }
}

/* The frame variable at log x = T: T - m (loose), or u. */
static double lnm_u(const lnm_t *L, double T)
{
    return L->tight ? ((T - L->m) - L->h) / L->sigma : T - L->m;
}

typedef struct {
    const lnm_t *L;
    double u;       /* T - m, or u */
    int upper;
} lnm_cdf_ctx;

/* out[0] = tail at u given the node variable, times its density; out[1] = density of u. */
static void lnm_cdf_f(void *vctx, double v, int node, double *out)
{
    const lnm_cdf_ctx *cx = vctx;
    double r, c, g, tail, pdf;
    lnm_node_data(cx->L, v, node, &r, &c, &g);
    double z = cx->u * r - c;
    if (g == 0.0 || isnan(z)) {
        out[0] = out[1] = 0.0;
        return;
    }
    norm_tail_pdf(z, cx->upper, &tail, &pdf);
    out[0] = g * tail;
    out[1] = g * r * pdf;
}

/* Lower (or upper) tail at the frame variable u and the density of u there (coarse: to
 * COARSE_RTOL, for the first steps of root finding). */
static int lnm_tail(const lnm_t *L, double u, int upper, int coarse, double *tail, double *dens)
{
    lnm_cdf_ctx cx = {L, u, upper};
    double res[2], err;
    int st = bw_quad_gk(lnm_cdf_f, &cx, 2, L->edges, LNM_PANELS, coarse ? COARSE_RTOL : 1e-14,
                        0.0, res, &err);
    st = quad_status(st, err, res[0]);
    *tail = fmin(fmax(res[0], 0.0), 1.0);
    *dens = fmax(res[1], 0.0);
    return st;
}

/* The same at log x = T, with the density of log X. */
static int lnm_tail_T(const lnm_t *L, double T, int upper, int coarse, double *tail,
                      double *dens)
{
    int st = lnm_tail(L, lnm_u(L, T), upper, coarse, tail, dens);
    if (L->tight)
        *dens /= L->sigma;
    return st;
}

/* ======================================================================================== */
/* Tail root finding (shared by NIG_LNMEAN and products)                                     */
/* ======================================================================================== */

/* tail(ctx, u, upper, &tail, &dens): the lower or upper tail of the quantity at u (u = log
 * x for positive quantities, u = x otherwise) and the density of u. */
typedef int (*tail_fn)(void *ctx, double u, int upper, double *tail, double *dens);

typedef struct {
    tail_fn f;
    void *ctx;
    int upper;
    double ltarget;
} tail_root_ctx;

static int tail_root_g(void *vctx, double u, double *g, double *dg)
{
    tail_root_ctx *c = vctx;
    double t, d;
    int st = c->f(c->ctx, u, c->upper, &t, &d);
    if (st)
        return st;
    double lt = log(t);
    *g = c->upper ? c->ltarget - lt : lt - c->ltarget;
    *dg = d / t;
    return BW_OK;
}

/* Solve tail(u) = target for the tail with the smaller target of (p, q). */
static int tail_solve(tail_fn f, void *ctx, double p, double q, double u0, double step,
                      double atol, double rtol, double *u)
{
    tail_root_ctx c = {f, ctx, q < p, 0.0};
    c.ltarget = c.upper ? log(q) : log(p);
    return bw_root_newton(tail_root_g, &c, u0, step, -INFINITY, INFINITY, atol, rtol, u);
}

/* ======================================================================================== */
/* NIG_LNMEAN: CDF, quantile, truncated moments                                              */
/* ======================================================================================== */

/* Root finding in the frame variable: T = log x (loose) or u (tight). */
static int lnm_tail_fn(void *ctx, double v, int upper, double *tail, double *dens)
{
    const lnm_t *L = ctx;
    return lnm_tail(L, L->tight ? v : v - L->m, upper, 0, tail, dens);
}

/* Starting point: both parts of log X = m + s/2 + sqrt(s/kappa) Z at their level (p, q),
 * in the frame variable. */
static int lnm_guess(const lnm_t *L, double p, double q, double *T0, double *step)
{
    double lg_p, lg_m;
    int st = bw_gamma_inc_inv(L->alpha, q, p, &lg_p);   /* s is decreasing in G */
    if (!st)
        st = bw_gamma_inc_inv(L->alpha, 0.5, 0.5, &lg_m);
    if (st)
        return st;
    double z = q < p ? -bw_norm_quantile(q) : bw_norm_quantile(p), Tm;
    if (L->tight) {
        /* u = c0 expm1(-x) + e^(-x/2) Z */
        double xp = lg_p - L->lalpha, xm = lg_m - L->lalpha;
        *T0 = L->c0 * expm1(-xp) + z * exp(-0.5 * xp);
        Tm = L->c0 * expm1(-xm);
        *step = fmax(fabs(*T0 - Tm), exp(-0.5 * xm));
    } else {
        double sp = L->beta * exp(-lg_p), sm = L->beta * exp(-lg_m);
        *T0 = L->m + 0.5 * sp + z * sqrt(sp / L->kappa);
        Tm = L->m + 0.5 * sm;
        *step = fmax(fabs(*T0 - Tm), sqrt(sm / L->kappa));
    }
    if (!isfinite(*T0) || !isfinite(*step) || *step <= 0.0) {
        *T0 = Tm;
        *step = 1.0;
    }
    return BW_OK;
}

/* The (p, q) quantile in the frame variable of L (tight: to 1e-13 of the spread of U). */
static int lnm_solve(lnm_t *L, double p, double q, double *v)
{
    double v0, step;
    int st = lnm_guess(L, p, q, &v0, &step);
    if (!st)
        st = tail_solve(lnm_tail_fn, L, p, q, v0, step, L->tight ? 1e-13 * L->spread : 1e-14,
                        2e-16, v);
    return st;
}

/* log of the (p, q) quantile of NIG_LNMEAN as hi + lo: (T, 0) loose, (m, h + sigma u)
 * tight, so that its exponential keeps its digits. */
static int lnm_logquantile(const bw_dist *d, double p, double q, double *hi, double *lo)
{
    lnm_t L;
    double v = NAN;
    int st = lnm_setup(&L, d, range_eps(fmin(p, q)), lnm_is_tight(d));
    if (!st)
        st = lnm_solve(&L, p, q, &v);
    *hi = L.tight ? L.m : v;
    *lo = L.tight ? L.h + L.sigma * v : 0.0;
    return st;
}

static int lnm_cdf(const bw_dist *d, double x, double *out)
{
    if (!(x > 0.0)) {
        *out = 0.0;
        return BW_OK;
    }
    if (x == INFINITY) {
        *out = 1.0;
        return BW_OK;
    }
    double T = log(x), eps = 1e-20, lo, hi, dens;
    int tight = lnm_is_tight(d);
    for (int pass = 0; pass < 2; pass++) {
        lnm_t L;
        int st = lnm_setup(&L, d, eps, tight);
        double u = tight ? (log_diff(x, L.m) - L.h) / L.sigma : T - L.m;
        if (!st)
            st = lnm_tail(&L, u, 0, 0, &lo, &dens);
        if (!st && lo > 0.5) {
            st = lnm_tail(&L, u, 1, 0, &hi, &dens);
            lo = 1.0 - hi;
        }
        if (st)
            return st;
        double tail = fmin(lo, 1.0 - lo);
        if (tail >= 1e-6 || range_eps(tail) >= eps)
            break;
        eps = range_eps(tail);
    }
    *out = lo;
    return BW_OK;
}

typedef struct {
    const lnm_t *L;
    double T;       /* truncation point, log q */
    double lc;      /* log of the unit c: moments are taken in units of c (pass 2: about c) */
    double shift;   /* pass 2: values scaled by exp(-shift) where they could overflow */
    int second;     /* 0: P and E[X 1{X <= q}] / c; 1: E[(X/c - 1)^2 1{X <= q}] e^-shift */
} lnm_mom_ctx;

/* exp(a + b) for a log-magnitude a and a log-probability b whose sum is bounded, where a
 * may be +inf and b -inf far out in the mixture (the product tends to 0 there). */
static double exp_sum(double a, double b)
{
    double e = a + b;
    return isnan(e) ? 0.0 : exp(e);
}

/* For log X | w ~ N(mu, v), mu = m + s/2, v = s/kappa, sd = 1/r, and the truncation
 * z = (T - mu) / sd:  E[e^Y 1{Y <= T}] = e^(mu + v/2) Phi(z - sd),
 * E[e^2Y 1{Y <= T}] = e^(2 mu + 2 v) Phi(z - 2 sd).  All in units of the centre c. */
static void lnm_mom_f(void *vctx, double w, int node, double *out)
{
    const lnm_mom_ctx *cx = vctx;
    const lnm_t *L = cx->L;
    double r, c, g;
    lnm_node_data(L, w, node, &r, &c, &g);
    double sd = 1.0 / r, v = sd * sd, s = v * L->kappa;
    out[0] = out[1] = 0.0;
    if (g == 0.0 || !(s < 1e300))
        return;                                       /* no mass, or s beyond any use */
    double z = (cx->T - L->m) * r - c;
    double d = L->m + 0.5 * s - cx->lc;              /* mu - log c */
    if (!cx->second) {
        out[0] = g * bw_norm_cdf(z);
        out[1] = g * exp_sum(d + 0.5 * v, bw_norm_logcdf(z - sd));
        return;
    }
    double a1 = d + 0.5 * v, a2 = 2.0 * d + 2.0 * v, val;
    if (cx->shift == 0.0 && z > 2.0 * sd) {
        /* all three tilted laws mostly below the truncation: the untruncated value (no
         * cancellation of the 1s, through expm1) minus the parts above it */
        double full = expm1(a2) - 2.0 * expm1(a1);
        double up = exp_sum(a2, bw_norm_logcdf(2.0 * sd - z))
                    - 2.0 * exp_sum(a1, bw_norm_logcdf(sd - z)) + bw_norm_cdf(-z);
        val = full - up;
    } else {
        double k = -cx->shift;
        val = exp_sum(a2 + k, bw_norm_logcdf(z - 2.0 * sd))
              - 2.0 * exp_sum(a1 + k, bw_norm_logcdf(z - sd)) + exp_sum(k, bw_norm_logcdf(z));
    }
    out[0] = g * fmax(val, 0.0);
}

/* Truncated moments in the loose frame: two passes about a typical value. */
static int lnm_moments_loose(const bw_dist *d, double *mean, double *var)
{
    double T, T_lo, lg;
    int st = lnm_logquantile(d, BW_TRUNC_LEVEL, 1.0 - BW_TRUNC_LEVEL, &T, &T_lo);
    if (!st)
        st = bw_gamma_inc_inv(d->p[2], 0.5, 0.5, &lg);
    if (st)
        return st;
    if (T > 1000.0) {
        /* q beyond e^1000: the mass just below q alone (density of log X ~ 1e-4 alpha / T
         * there) puts the truncated mean, and so the variance, past the double range */
        *mean = *var = INFINITY;
        return BW_OK;
    }
    lnm_t L;
    st = lnm_setup(&L, d, 1e-20, 0);
    if (st)
        return st;
    /* pass 1: P(X <= q) and E[X 1{X <= q}] in units of a typical value exp(lc0) (the
     * conditional mean of log X at the median s), kept within e^700 of q so that no term
     * overflows: the integrand is below e^(T - lc0) */
    double lc0 = fmin(T, fmax(L.m + 0.5 * L.beta * exp(-lg), T - 700.0));
    lnm_mom_ctx cx = {&L, T, lc0, 0.0, 0};
    double r1[2], err;
    st = bw_quad_gk(lnm_mom_f, &cx, 2, L.edges, LNM_PANELS, 1e-14, 0.0, r1, &err);
    st = quad_status(st, err, r1[0]);
    if (st)
        return st;
    if (!(r1[0] > 0.0 && r1[1] > 0.0 && isfinite(r1[1])))
        return BW_E_NUMERIC;
    double lc = lc0 + log(r1[1] / r1[0]);            /* log E[X | X <= q] */
    *mean = exp(lc);
    if (!isfinite(*mean)) {
        *var = INFINITY;
        return BW_OK;
    }
    /* pass 2: E[(X/c - 1)^2 | X <= q] about c = the truncated mean, scaled by e^-shift
     * when (q/c)^2 could overflow */
    cx.lc = lc;
    cx.second = 1;
    cx.shift = T - lc > 300.0 ? 2.0 * (T - lc) - 600.0 : 0.0;
    double r2[2];
    st = bw_quad_gk(lnm_mom_f, &cx, 2, L.edges, LNM_PANELS, 1e-14, 0.0, r2, &err);
    st = quad_status(st, err, r2[0]);
    if (st)
        return st;
    *var = exp(2.0 * lc + cx.shift + log(r2[0] / r1[0]));
    return isnan(*var) ? BW_E_NUMERIC : BW_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Truncated moments, tight frame                                                            */
/* ---------------------------------------------------------------------------------------- */

#define LNM_SERIES_MAX 60

typedef struct {
    const lnm_t *L;
    double uq;      /* truncation point q, in u */
} lnm_tmom_ctx;

/* Given t, log X - m - h = D = d + sd Z with d = sigma c0 expm1(-x) = (s - s0) / 2 and
 * sd = sigma e^(-x/2), and X <= q iff Z <= zeta = uq a - b.  With M_j = E[Z^j 1{Z <= zeta}]
 * (M_0 = Phi, M_1 = -phi, M_j = (j - 1) M_{j-2} - zeta^(j-1) phi: stable, its two terms
 * share a sign or cancel by at most a factor 2) and the Taylor series about d, which
 * converge fast as sd is tiny:
 *   E[expm1(D) 1]   = expm1(d) M_0 + e^d sum_{j>=1} sd^j M_j / j!,
 *   E[expm1(D)^2 1] = expm1(d)^2 M_0 + sum_{j>=1} 2 e^d (2^(j-1) e^d - 1) sd^j M_j / j!,
 * both free of the cancellation of the closed forms.  out = those two and P(Z <= zeta),
 * times the density of t: {E[expm1(D)^2 1], P, E[expm1(D) 1]} (the most demanding first,
 * as it steers the quadrature). */
static void lnm_tmom_f(void *vctx, double t, int node, double *out)
{
    const lnm_tmom_ctx *cx = vctx;
    double a, b, g, Phi, phi;
    lnm_node_data(cx->L, t, node, &a, &b, &g);
    double zeta = cx->uq * a - b, sd = cx->L->sigma / a, d = sd * b;
    out[0] = out[1] = out[2] = 0.0;
    if (g == 0.0 || isnan(zeta) || !isfinite(d))
        return;
    norm_tail_pdf(zeta, 0, &Phi, &phi);
    double ed = exp(d), em = expm1(d);
    double e1 = em * Phi, e2 = em * em * Phi, n1 = fabs(e1), n2 = e2;
    double mprev = Phi, mj = -phi, pw = phi;       /* M_{j-1}, M_j, zeta^(j-1) phi */
    double f = sd, k = ed;                         /* sd^j / j!, 2^(j-1) e^d */
    int small = 0;
    for (int j = 1; j < LNM_SERIES_MAX && small < 2; j++) {
        if (j > 1) {
            pw = phi > 0.0 ? pw * zeta : 0.0;
            double mn = (j - 1) * mprev - pw;
            mprev = mj;
            mj = mn;
            f *= sd / j;
            k *= 2.0;
        }
        double c1 = ed * f * mj, c2 = 2.0 * ed * (j > 1 ? k - 1.0 : em) * f * mj;
        e1 += c1;
        e2 += c2;
        n1 += fabs(c1);
        n2 += fabs(c2);
        small = fabs(c1) <= 1e-17 * n1 && fabs(c2) <= 1e-17 * n2 ? small + 1 : 0;
    }
    out[0] = g * e2;
    out[1] = g * Phi;
    out[2] = g * e1;
}

/* Truncated mean and variance in the tight frame, in one quadrature: with
 * r1 = E[expm1(D) | X <= q] and e2 = E[expm1(D)^2 | X <= q], the mean is e^(m + h) (1 + r1)
 * and the variance mean^2 (e2 - r1^2) / (1 + r1)^2, where r1^2 is a small part of e2. */
static int lnm_moments_tight(const bw_dist *d, double *mean, double *var)
{
    lnm_t L;
    double uq, res[3], err;
    int st = lnm_setup(&L, d, 1e-20, 1);
    if (!st)
        st = lnm_solve(&L, BW_TRUNC_LEVEL, 1.0 - BW_TRUNC_LEVEL, &uq);
    if (st)
        return st;
    if (L.m + (L.h + L.sigma * uq) > 1000.0) {
        *mean = *var = INFINITY;                    /* as in the loose frame */
        return BW_OK;
    }
    lnm_tmom_ctx cx = {&L, uq};
    st = bw_quad_gk(lnm_tmom_f, &cx, 3, L.edges, LNM_PANELS, 1e-14, 0.0, res, &err);
    st = quad_status(st, err, res[0]);
    if (st)
        return st;
    double r1 = res[2] / res[1], rv = res[0] / res[1] - r1 * r1;
    if (!(res[1] > 0.0 && rv >= 0.0 && r1 > -1.0))
        return BW_E_NUMERIC;
    *mean = exp_add(L.m, L.h + log1p(r1));
    double sd = *mean * (sqrt(rv) / (1.0 + r1));
    *var = isfinite(*mean) ? sd * sd : INFINITY;
    return BW_OK;
}

/* Truncated mean and variance of NIG_LNMEAN: those of X given X <= q_{BW_TRUNC_LEVEL}.
 * Either may be +inf when it exceeds the double range (absurdly heavy tails). */
static int lnm_moments(const bw_dist *d, double *mean, double *var)
{
    if (lnm_is_tight(d))
        return lnm_moments_tight(d, mean, var);
    int st = lnm_moments_loose(d, mean, var);
    if (st == BW_E_NUMERIC && lnm_tight_below(d, LNM_FALLBACK_VAR))
        st = lnm_moments_tight(d, mean, var);
    return st;
}

/* ======================================================================================== */
/* One distribution: moments, CDF, quantiles                                                 */
/* ======================================================================================== */

static int dist_moments(const bw_dist *d, double *mean, double *var)
{
    double a = d->p[0], b = d->p[1];
    switch (d->kind) {
    case BW_KIND_BETA: {
        double n = a + b;
        *mean = a / n;
        *var = (a / n) * (b / n) / (n + 1.0);
        return BW_OK;
    }
    case BW_KIND_NIG_MEAN: {
        /* t_{2 alpha}: the centre m is reported as the mean also when 2 alpha <= 1 */
        double kappa = d->p[1], alpha = d->p[2], beta = d->p[3];
        *mean = d->p[0];
        *var = alpha > 1.0 ? beta / (kappa * (alpha - 1.0)) : INFINITY;
        return BW_OK;
    }
    case BW_KIND_GAMMA:
        *mean = a / b;
        *var = a / (b * b);
        return BW_OK;
    case BW_KIND_INVGAMMA:
        *mean = a > 1.0 ? b / (a - 1.0) : INFINITY;
        *var = a > 2.0 ? (b / (a - 1.0)) * (b / (a - 1.0)) / (a - 2.0) : INFINITY;
        return BW_OK;
    case BW_KIND_NIG_LNMEAN:
        return lnm_moments(d, mean, var);
    default:
        return BW_E_DOMAIN;
    }
}

static int dist_cdf(const bw_dist *d, double x, double *out)
{
    double a = d->p[0], b = d->p[1], lo, hi;
    switch (d->kind) {
    case BW_KIND_BETA:
        if (x <= 0.0)
            lo = 0.0;
        else if (x >= 1.0)
            lo = 1.0;
        else
            bw_beta_inc(a, b, x, 1.0 - x, &lo, &hi);
        break;
    case BW_KIND_NIG_MEAN: {
        double df, scale;
        nig_t(d, &df, &scale);
        bw_t_cdf(df, (x - d->p[0]) / scale, &lo, &hi);
        break;
    }
    case BW_KIND_GAMMA:
        if (x <= 0.0)
            lo = 0.0;
        else
            bw_gamma_inc(a, b * x, &lo, &hi);
        break;
    case BW_KIND_INVGAMMA:
        if (x <= 0.0)
            lo = 0.0;
        else
            bw_gamma_inc(a, b / x, &hi, &lo);
        break;
    case BW_KIND_NIG_LNMEAN:
        return lnm_cdf(d, x, out);
    default:
        return BW_E_DOMAIN;
    }
    *out = lo;
    return BW_OK;
}

static int dist_logquantile(const bw_dist *d, double p, double q, double *out);

/* Quantile with lower-tail probability p and upper-tail probability q = 1 - p. */
static int dist_quantile(const bw_dist *d, double p, double q, double *out)
{
    double a = d->p[0], b = d->p[1], lx, x;
    int st;
    switch (d->kind) {
    case BW_KIND_BETA:
        st = bw_beta_inc_inv(a, b, p, q, NAN, &x, NULL, NULL, NULL);
        *out = x;
        return st;
    case BW_KIND_NIG_MEAN: {
        double df, scale, t;
        nig_t(d, &df, &scale);
        st = bw_t_quantile(df, p, q, &t);
        *out = d->p[0] + scale * t;
        return st;
    }
    case BW_KIND_GAMMA:
    case BW_KIND_INVGAMMA:
        st = dist_logquantile(d, p, q, &lx);
        *out = exp(lx);
        return st;
    case BW_KIND_NIG_LNMEAN: {
        double lo;
        st = lnm_logquantile(d, p, q, &lx, &lo);
        *out = exp_add(lx, lo);
        return st;
    }
    default:
        return BW_E_DOMAIN;
    }
}

/* log of the quantile of a positive kind (also where the quantile itself under/overflows). */
static int dist_logquantile(const bw_dist *d, double p, double q, double *out)
{
    double a = d->p[0], b = d->p[1], lx;
    int st;
    switch (d->kind) {
    case BW_KIND_BETA:
        return bw_beta_inc_inv(a, b, p, q, NAN, NULL, NULL, out, NULL);
    case BW_KIND_GAMMA:
        st = bw_gamma_inc_inv(a, p, q, &lx);
        *out = lx - log(b);
        return st;
    case BW_KIND_INVGAMMA:
        st = bw_gamma_inc_inv(a, q, p, &lx);
        *out = log(b) - lx;
        return st;
    case BW_KIND_NIG_LNMEAN: {
        double lo;
        st = lnm_logquantile(d, p, q, &lx, &lo);
        *out = lx + lo;
        return st;
    }
    default:
        return BW_E_DOMAIN;
    }
}

/* ======================================================================================== */
/* Products: P(X Y <= t) = E_X[F_Y(t / X)]                                                   */
/* ======================================================================================== */

#define OUTER_PANELS QE_PANELS
#define OUTER_NODES QE_NODES

typedef struct {
    const bw_dist *outer, *inner;
    int real;                        /* inner can be negative: work in t, not log t */
    double edges[OUTER_PANELS + 1];  /* panels in the outer variable v */
    double g[OUTER_NODES];           /* density of v at the initial nodes */
    double lx[OUTER_NODES];          /* log X at the initial nodes */
    lnm_t lnm;                       /* inner NIG_LNMEAN data */
    double u;                        /* current argument: log t, or t */
    int upper;
    int coarse;                      /* loose quadrature tolerances (pre-solve) */
    int status;                      /* first failure inside the integrand */
} prod_t;

/* Outer variable: logit x (Beta), log G with G ~ Gamma(a, 1) (Gamma: X = G / b, inverse
 * Gamma: X = b / G).  Log density of v and log X at v. */
static void outer_point(const bw_dist *d, double v, double *g, double *lx)
{
    double a = d->p[0], b = d->p[1];
    if (d->kind == BW_KIND_BETA) {
        double lxx = -softplus(-v), lyy = -softplus(v);
        *g = exp(bw_beta_logkernel(a, b, exp(lxx), exp(lyy), lxx, lyy));
        *lx = lxx;
    } else {
        *g = exp(bw_gamma_logkernel(a, exp(v), v));
        *lx = d->kind == BW_KIND_GAMMA ? v - log(b) : log(b) - v;
    }
}

/* Quantile of the outer variable v (logit for Beta, log G otherwise). */
static int outer_vq(const void *ctx, double p, double q, double *v)
{
    const bw_dist *d = ctx;
    if (d->kind == BW_KIND_BETA) {
        double lx, ly;
        int st = bw_beta_inc_inv(d->p[0], d->p[1], p, q, NAN, NULL, NULL, &lx, &ly);
        *v = lx - ly;
        return st;
    }
    return bw_gamma_inc_inv(d->p[0], p, q, v);
}

/* Tail of the inner factor Y at log y = T (positive kinds) or at y (NIG_MEAN), and the
 * density of log Y (resp. Y) there. */
static int inner_tail(const prod_t *P, double arg, int upper, double *tail, double *dens)
{
    const bw_dist *d = P->inner;
    double a = d->p[0], b = d->p[1], lo, hi, llo, lhi, lk;
    switch (d->kind) {
    case BW_KIND_NIG_LNMEAN:
        return lnm_tail_T(&P->lnm, arg, upper, P->coarse, tail, dens);
    case BW_KIND_NIG_MEAN: {
        double df, scale;
        nig_t(d, &df, &scale);
        double t = (arg - d->p[0]) / scale;
        bw_t_cdf(df, t, &lo, &hi);
        *tail = upper ? hi : lo;
        *dens = exp(bw_t_logpdf(df, t)) / scale;
        return BW_OK;
    }
    case BW_KIND_GAMMA:
    case BW_KIND_INVGAMMA: {
        /* Gamma: Y <= y iff G <= b y; inverse Gamma: Y <= y iff G >= b / y */
        double lg = d->kind == BW_KIND_GAMMA ? log(b) + arg : log(b) - arg;
        bw_gamma_inc_log(a, exp(lg), lg, &lo, &hi, &llo, &lhi);
        if (d->kind == BW_KIND_INVGAMMA) {
            double t = lo;
            lo = hi, hi = t;
        }
        *tail = upper ? hi : lo;
        *dens = exp(bw_gamma_logkernel(a, exp(lg), lg));
        return BW_OK;
    }
    case BW_KIND_BETA:
        if (arg >= 0.0) {
            *tail = upper ? 0.0 : 1.0;
            *dens = 0.0;
            return BW_OK;
        }
        {
            double x = exp(arg), y = -expm1(arg), ly = log1p(-x);
            bw_beta_inc_log(a, b, x, y, arg, ly, &lo, &hi, &llo, &lhi);
            lk = bw_beta_logkernel(a, b, x, y, arg, ly);
            *tail = upper ? hi : lo;
            *dens = exp(lk - ly);       /* x f(x) = kernel / y */
        }
        return BW_OK;
    default:
        return BW_E_DOMAIN;
    }
}

static void prod_f(void *vctx, double v, int node, double *out)
{
    prod_t *P = vctx;
    double g, lx, tail, dens;
    if (node >= 0) {
        g = P->g[node];
        lx = P->lx[node];
    } else {
        outer_point(P->outer, v, &g, &lx);
    }
    if (g == 0.0) {
        out[0] = out[1] = 0.0;
        return;
    }
    int st;
    if (P->real) {
        /* Y <= t / x; dF/dt = f_Y(t / x) / x (x may be tiny: keep 0 * inf out) */
        double ix = exp(-lx);
        st = inner_tail(P, P->u == 0.0 ? 0.0 : P->u * ix, P->upper, &tail, &dens);
        dens = dens > 0.0 ? dens * ix : 0.0;
    } else {
        st = inner_tail(P, P->u - lx, P->upper, &tail, &dens);
    }
    if (st && !P->status)
        P->status = st;
    out[0] = g * tail;
    out[1] = g * dens;
}

/* Pick the outer factor: a positive kind with a closed-form density (not NIG_LNMEAN);
 * prefer an inner factor with a cheap CDF (not Beta). */
static int prod_pick(const bw_quantity *q, const bw_dist **outer, const bw_dist **inner)
{
    const bw_dist *f0 = &q->f[0], *f1 = &q->f[1];
    int o0 = f0->kind == BW_KIND_BETA || f0->kind == BW_KIND_GAMMA || f0->kind == BW_KIND_INVGAMMA;
    int o1 = f1->kind == BW_KIND_BETA || f1->kind == BW_KIND_GAMMA || f1->kind == BW_KIND_INVGAMMA;
    if (o0 && (!o1 || f1->kind != BW_KIND_BETA || f0->kind == BW_KIND_BETA)) {
        *outer = f0, *inner = f1;
        return BW_OK;
    }
    if (o1) {
        *outer = f1, *inner = f0;
        return BW_OK;
    }
    return BW_E_DOMAIN;
}

static int prod_setup(prod_t *P, const bw_quantity *q, double eps)
{
    int st = prod_pick(q, &P->outer, &P->inner);
    if (st)
        return st;
    P->real = !is_positive_kind(P->inner->kind);
    P->status = BW_OK;
    P->coarse = 0;
    st = quantile_edges(outer_vq, P->outer, eps, P->edges);
    if (st)
        return st;
    for (int k = 0; k < OUTER_NODES; k++)
        outer_point(P->outer, bw_gk_node(P->edges, k), &P->g[k], &P->lx[k]);
    if (P->inner->kind == BW_KIND_NIG_LNMEAN)
        return lnm_setup(&P->lnm, P->inner, eps, lnm_is_tight(P->inner));
    return BW_OK;
}

/* Tail of the product at u (log t, or t when real) and the density of u. */
static int prod_tail(void *vctx, double u, int upper, double *tail, double *dens)
{
    prod_t *P = vctx;
    P->u = u;
    P->upper = upper;
    P->status = BW_OK;
    double res[2], err;
    int st = bw_quad_gk(prod_f, P, 2, P->edges, OUTER_PANELS, P->coarse ? COARSE_RTOL : 1e-13,
                        0.0, res, &err);
    st = quad_status(st, err, res[0]);
    if (!st)
        st = P->status;
    *tail = fmin(fmax(res[0], 0.0), 1.0);
    *dens = fmax(res[1], 0.0);
    return st;
}

static int prod_cdf(const bw_quantity *q, double x, double *out)
{
    const bw_dist *outer, *inner;
    int st = prod_pick(q, &outer, &inner);
    if (st)
        return st;
    int real = !is_positive_kind(inner->kind);
    if (!real && !(x > 0.0)) {
        *out = 0.0;
        return BW_OK;
    }
    if (x == INFINITY || x == -INFINITY) {
        *out = x > 0.0 ? 1.0 : 0.0;
        return BW_OK;
    }
    double u = real ? x : log(x), eps = 1e-20, lo, hi, dens;
    for (int pass = 0; pass < 2; pass++) {
        prod_t P;
        st = prod_setup(&P, q, eps);
        if (!st)
            st = prod_tail(&P, u, 0, &lo, &dens);
        if (!st && lo > 0.5) {
            st = prod_tail(&P, u, 1, &hi, &dens);
            lo = 1.0 - hi;
        }
        if (st)
            return st;
        double tail = fmin(lo, 1.0 - lo);
        if (tail >= 1e-6 || range_eps(tail) >= eps)
            break;
        eps = range_eps(tail);
    }
    *out = lo;
    return BW_OK;
}

/* Solve for the (p, q) quantile of a product in u from u0: Newton on cheap (COARSE_RTOL)
 * tails first, then one Newton step on the full-accuracy tails, which leaves an error of
 * about step^2 / scale; only if that could exceed the tolerance does full Newton go on. */
static int prod_solve(prod_t *P, double p, double q, double u0, double scale, double atol,
                      double *u)
{
    double u1, t, d;
    P->coarse = 1;
    int st = tail_solve(prod_tail, P, p, q, u0, scale, 1e-9 * scale, 0.0, &u1);
    P->coarse = 0;
    if (st)
        u1 = u0;
    int upper = q < p;
    st = prod_tail(P, u1, upper, &t, &d);
    if (st)
        return st;
    double dn = (upper ? log(t) - log(q) : log(p) - log(t)) * t / d;
    if (isfinite(dn) && dn * dn <= 0.01 * atol * scale) {
        *u = u1 + dn;
        return BW_OK;
    }
    return tail_solve(prod_tail, P, p, q, isfinite(dn) ? u1 + dn : u1, scale, atol, 2e-16, u);
}

/* A positive product whose quantile lies beyond the double range (start u0 far out, and the
 * tail at the range end confirms it): *out = +inf or 0 without a costly far-out solve. */
static int beyond_double_range(prod_t *P, double p, double q, double u0, double *out)
{
    const double umax = 709.78, umin = -744.4;     /* log DBL_MAX, log of the least subnormal */
    if (!(u0 > umax - 20.0 || u0 < umin + 20.0) || isnan(u0))
        return 0;
    int upper = q < p, hi = u0 > 0.0;
    double t, d;
    P->coarse = 1;
    int st = prod_tail(P, hi ? umax : umin, upper, &t, &d);
    P->coarse = 0;
    if (st)
        return 0;
    /* beyond the top end: F(umax) < p, i.e. S(umax) > q; below the bottom: F(umin) > p */
    int beyond = hi ? (upper ? t > q : t < p) : (upper ? t < q : t > p);
    if (beyond)
        *out = hi ? INFINITY : 0.0;
    return beyond;
}

/* Quantiles (p, q) of a product, sharing the setup of P.  Start: log X and log Y (or X and
 * Y for a real product) taken as independent normals matched at their medians and at the
 * level (or at the quartile, near the centre), whose sum is then normal. */
static int prod_quantile(prod_t *P, double p, double q, double *out)
{
    const bw_dist *X = P->outer, *Y = P->inner;
    /* the spread is measured on the side of the target, at its level or at the quartile */
    int upper = q < p;
    double ps = fmin(fmin(p, q), 0.25), pl = upper ? 1.0 - ps : ps, pu = upper ? ps : 1.0 - ps;
    double zs = -bw_norm_quantile(ps), z = upper ? -bw_norm_quantile(q) : bw_norm_quantile(p);
    if (!upper)
        zs = -zs;
    double mx, sx, my, sy, u;
    int st = dist_logquantile(X, 0.5, 0.5, &mx);
    if (!st)
        st = dist_logquantile(X, pl, pu, &sx);
    if (!P->real) {
        if (!st)
            st = dist_logquantile(Y, 0.5, 0.5, &my);
        if (!st)
            st = dist_logquantile(Y, pl, pu, &sy);
        if (st)
            return st;
        double sd = hypot((sx - mx) / zs, (sy - my) / zs), u0 = mx + my + z * sd;
        if (!(sd > 0.0) || !isfinite(sd))
            sd = 1.0;
        if (beyond_double_range(P, p, q, u0, out))
            return BW_OK;
        st = prod_solve(P, p, q, u0, sd, 1e-13, &u);
        *out = exp(u);
        return st;
    }
    /* real product: X Y with Y location-scale t; spread of X Y ~ |Y| spread of X + X spread of Y */
    if (!st)
        st = dist_quantile(Y, 0.5, 0.5, &my);
    if (!st)
        st = dist_quantile(Y, pl, pu, &sy);
    if (st)
        return st;
    double ex = exp(mx), sd = (ex * fabs(sy - my) + fabs(my) * ex * fabs(expm1(sx - mx))) / fabs(zs);
    if (!(sd > 0.0) || !isfinite(sd))
        sd = 1.0;
    double u0 = ex * my + z * sd;
    st = prod_solve(P, p, q, u0, sd, 1e-13 * fmax(sd, fabs(u0)), &u);
    *out = u;
    return st;
}

/* ======================================================================================== */
/* Rate x lognormal mean: one integral over a shared table of the lognormal mean's tails      */
/* ======================================================================================== */
/*
 * Revenue per user R = X Y with X ~ Beta(a, b) (the conversion rate) and Y the lognormal
 * mean (NIG_LNMEAN).  With l = log X, whose density f_L has a closed form, and y = log Y:
 *     P(R <= e^U) = int f_L(U - y) F_Y(y) dy,    P(R > e^U) = int f_L(U - y) S_Y(y) dy,
 * and the density of U = log R is int f_L(U - y) f_Y(y) dy.  The y nodes do not depend on
 * U: Gauss-Kronrod (10, 21) on subpanels of Y's approximate quantile panels, none wider than
 * CV_WIDTH sds of l.  F_Y, S_Y and f_Y at a node (the NIG_LNMEAN quadrature: a sum over the
 * Gauss-Kronrod nodes of lnm_t's initial panels) are computed once, when some U first needs
 * the subpanel, and then serve every Newton step, both ends of an interval and every level
 * of one setup; a tail is a sum of closed-form f_L values over that table.  Beyond Y's
 * panels F_Y = 1 above and S_Y = 1 below, to within the truncation eps: those parts of the
 * integrals are Beta tails.
 *
 * Everything is in Y's frame variable v (lnm_t): log Y = m + off + sc v (loose: off 0,
 * sc 1; tight: off h, sc sigma), so that l = c - sc v with c = (U - m) - off; l - log(a/n)
 * is carried to ~1e-20 (an error there shifts the whole density of l, and the quantile).
 *
 * Error control.  The (10, 21) pair's errors fall like r^-20 and r^-32 for an analytic
 * integrand, so a Kronrod - Gauss difference d leaves the Kronrod value about d^1.6 off;
 * the estimate used is d^1.5 (QUADPACK's rule without its safety factor).
 *   - A table value carries its estimate; a tail whose table values could be off by more
 *     than CV_TAB_TOL of it (each weighted by f_L) has those values computed again on an
 *     inner rule refined where they need it (or by the adaptive lnm_tail), and is summed
 *     again.  Refinements last for one quantile only, so that a quantile's numbers do not
 *     depend on the levels solved before it in the same setup.
 *   - The y integral of the tail at the solution must have d <= CV_GK_REL of it.
 *   - f_L has a kink at l = 0 (X = 1) where b is small; such a rate, with mass near 1, is
 *     not the table's.
 * Any of these failing, or a table outgrowing CV_SLOTS, hands the quantile to the general
 * product quadrature (prod_quantile).  Newton's steps are Halley's here (the density's
 * derivative comes with the table), and the last one is applied together with the
 * rounding of e^U.  Accuracy: a few 1e-17 relative on posteriors with tens of converters
 * or more (the golden one's ends are correctly rounded: tests/golden/
 * check_compound_entries.py), ~1e-12 where a handful of values give the lognormal mean a
 * power-law tail; the promise is 1e-9.
 */

#define CV_WIDTH 3.0                 /* widest subpanel, in sds of log X */
#define CV_SLOTS 96                  /* subpanels one setup may tabulate */
#define CV_GK_REL 1e-9               /* accepted Kronrod - Gauss difference, relative */
#define CV_INNER_REL 1e-15           /* error estimate of a table value taken as 0, relative */
#define CV_TAB_TOL 1e-16             /* accepted error of a tail from its table values */
#define CV_MAXSUB 1e6                /* subpanels per Y panel, at most */
#define CV_KINK_B 40.0               /* b from which f_L's end at X = 1 is smooth enough */

typedef struct {
    int panel;                       /* Y panel, and the subpanel in it */
    double sub;
    double v[BW_GK_NODES];           /* nodes in v and the Kronrod and Gauss weights */
    double wk[BW_GK_NODES], wg[BW_GK_NODES];
    double F[BW_GK_NODES];           /* P(V <= v), P(V > v) and the density of V */
    double S[BW_GK_NODES], f[BW_GK_NODES];
    double err[BW_GK_NODES];         /* their error estimate (absolute) */
    double w[BW_GK_NODES];           /* the node's weight in the last tail */
    int refined;                     /* some value comes from cv_refine */
} cv_slot;

/* An inner rule: Gauss-Kronrod (10, 21) on panels of lnm_t's node variable; at each node
 * z = v a - b and the Kronrod and Gauss weights times the node variable's density. */
#define CV_IPANELS 40                /* panels of the refined inner rule, at most */
typedef struct {
    int np;
    double lo[CV_IPANELS], hi[CV_IPANELS];
    double a[CV_IPANELS * BW_GK_NODES], b[CV_IPANELS * BW_GK_NODES];
    double kw[CV_IPANELS * BW_GK_NODES], gw[CV_IPANELS * BW_GK_NODES];
} cv_rule;

typedef struct {
    double a, b;                     /* X ~ Beta(a, b) */
    double lp0, lp0_lo;              /* log(a/n) = lp0 + lp0_lo */
    double lq0, rab, kf;             /* log(b/n), a/b, constant of log f_L */
    lnm_t L;                         /* Y, in its frame */
    double off, sc;
    cv_rule base;                    /* the inner rule: lnm_t's panels */
    cv_rule fine;                    /* the same, refined where some table value needed it */
    double e[QE_PANELS + 1];         /* Y's panels in v */
    double h[QE_PANELS];             /* and the width of their subpanels */
    double llo, lhi;                 /* eps-quantiles of l */
    double eps;                      /* mass left outside e[0] .. e[QE_PANELS], each side */
    double gkdiff;                   /* |Kronrod - Gauss| of the last tail */
    int status;                      /* first failure while tabulating */
    int nslot;
    cv_slot slot[CV_SLOTS];
} cv_t;

/* log f_L(l), the density of l = log X at l < 0, given l and d = l - log x0 (to about 1e-20
 * absolute: an error in d shifts the whole density, and the quantiles with it), and in
 * *dlog its derivative a - (b - 1) x / y.  With x = e^l, y = 1 - x, x0 = a/n, y0 = b/n:
 * dx = x/x0 - 1 = expm1(d) and dy = y/y0 - 1 = -(a/b) dx, so
 *     log f_L = a log1pmx(dx) + b log1pmx(dy) - log1p(dy) + a log x0 + (b - 1) log y0 - log B
 * with no cancellation (a dx + b dy = 0 took the linear terms out). */
static double cv_logfl(const cv_t *C, double l, double d, double *dlog)
{
    if (!(l < 0.0)) {
        *dlog = 0.0;
        return -INFINITY;
    }
    double dx = expm1(d), dy = -C->rab * dx, ly, ty;
    if (dy > -0.5) {
        double lm = bw_log1pmx(dy);
        ly = lm + dy;                                               /* log(y / y0) */
        ty = C->b * lm;
    } else {
        ly = log(-expm1(l)) - C->lq0;
        ty = C->b * (ly - dy);
    }
    double tx = dx > -0.5 ? C->a * bw_log1pmx(dx) : C->a * (d - dx);
    /* x / y = (a/b) (x / x0) (y0 / y) */
    *dlog = C->a - (C->b - 1.0) * C->rab * ((1.0 + dx) / (dy > -0.5 ? 1.0 + dy : exp(ly)));
    return tx + ty - ly + C->kf;
}

static void cv_beta_consts(cv_t *C)
{
    double a = C->a, b = C->b, n = a + b, x0 = a / n;
    C->lp0 = log(x0);
    /* log(a/n) - lp0: the rounding of the log and of the quotient */
    C->lp0_lo = log_diff(x0, C->lp0) + fma(-n, x0, a) / (n * x0);
    C->lq0 = log(b / n);
    C->rab = a / b;
    /* a log x0 + b log y0 - log B(a, b), in Stirling form for large shapes, minus log y0 */
    double k = a >= 10.0 && b >= 10.0
                   ? 0.5 * log((a / n) * b) - 0.91893853320467274178 - bw_stirlerr(a)
                         - bw_stirlerr(b) + bw_stirlerr(n)
                   : a * C->lp0 + b * C->lq0 - bw_lbeta(a, b);
    C->kf = k - C->lq0;
}

/* P(l <= t) (upper = 0) or P(l > t), a Beta tail at x = e^t. */
static double cv_ltail(const cv_t *C, double t, int upper)
{
    if (!(t < 0.0))
        return upper ? 0.0 : 1.0;
    double lo, hi, llo, lhi;
    bw_beta_inc_log(C->a, C->b, exp(t), -expm1(t), t, log(-expm1(t)), &lo, &hi, &llo, &lhi);
    return upper ? hi : lo;
}

/* v of log Y at log G = lg and a normal deviate z: the parts of log Y = m + s/2 + sqrt(s /
 * kappa) Z at the given s = beta / G and Z (the frame's guesses of lnm_guess). */
static double cv_vguess(const lnm_t *L, double lg, double z)
{
    if (L->tight) {
        double x = lg - L->lalpha;
        return L->c0 * expm1(-x) + z * exp(-0.5 * x);
    }
    double s = L->beta * exp(-lg);
    return 0.5 * s + z * sqrt(s / L->kappa);
}

/* Y's panels: at the probabilities eps, 1e-8, 1e-3, 0.1, 1/2 and their complements, the
 * extreme of the guesses with s at its own quantiles (both sides) or its median. */
static int cv_edges(cv_t *C)
{
    static const double pr[QE_NT + 1] = {0.0, 1e-8, 1e-3, 0.1};
    double lgm, lg[2], v[QE_PANELS + 1];
    int st = bw_gamma_inc_inv(C->L.alpha, 0.5, 0.5, &lgm);
    v[QE_NT + 1] = cv_vguess(&C->L, lgm, 0.0);
    for (int i = 0; i <= QE_NT && !st; i++) {
        double p = i ? pr[i] : C->eps, z = -bw_norm_quantile(p);
        st = bw_gamma_inc_inv(C->L.alpha, p, 1.0 - p, &lg[0]);
        if (!st)
            st = bw_gamma_inc_inv(C->L.alpha, 1.0 - p, p, &lg[1]);
        double lo = cv_vguess(&C->L, lgm, -z), hi = cv_vguess(&C->L, lgm, z);
        for (int j = 0; j < 2; j++) {
            lo = fmin(lo, cv_vguess(&C->L, lg[j], -z));
            hi = fmax(hi, cv_vguess(&C->L, lg[j], z));
        }
        v[i] = lo;
        v[QE_PANELS - i] = hi;
    }
    if (st)
        return st;
    for (int i = 0; i <= QE_PANELS; i++) {
        if (!isfinite(v[i]))
            return BW_E_NUMERIC;
        /* keep them increasing (the guesses are not quantiles) */
        C->e[i] = i && !(v[i] > C->e[i - 1]) ? C->e[i - 1] + fabs(C->e[i - 1]) * 1e-12 + 1e-300
                                             : v[i];
    }
    return BW_OK;
}

/* Both tails of V and its density at v by the inner rule; *bad: 1 if the error estimate of
 * the smaller tail is above its tolerance. */
/* Panel p of R on [lo, hi]; nodes without density (or where z would not be finite) get
 * weight 0. */
static void cv_panel(const lnm_t *L, double lo, double hi, cv_rule *R, int p)
{
    double x[BW_GK_NODES], wk[BW_GK_NODES], wg[BW_GK_NODES];
    bw_gk_rule(lo, hi, x, wk, wg);
    R->lo[p] = lo;
    R->hi[p] = hi;
    for (int k = 0, n = p * BW_GK_NODES; k < BW_GK_NODES; k++, n++) {
        double a, b, g;
        lnm_point(L, x[k], &a, &b, &g);
        int live = isfinite(a) && isfinite(b) && g > 0.0;
        R->kw[n] = live ? wk[k] * g : 0.0;
        R->gw[n] = live ? wg[k] * g : 0.0;
        R->a[n] = live ? a : 0.0;
        R->b[n] = live ? b : 0.0;
    }
}

/* The error estimate of Kronrod sums whose smaller tail is kt with |Kronrod - Gauss| d:
 * kt (d / kt)^1.5, QUADPACK's rule without its safety factor 200^1.5 (the pair's errors fall
 * like r^-20 and r^-32 for an analytic integrand, so d^1.6 would do). */
static double cv_gkerr(double kt, double d)
{
    double r = kt > 0.0 ? fmin(d / kt, 1.0) : 1.0;
    return kt > 0.0 ? kt * (r * sqrt(r)) : d;
}

/* Both tails of V and its density at v by the nodes [n0, n0 + m) of R, and the error
 * estimate of the smaller tail. */
static double cv_sums(const cv_rule *R, int n0, int m, double v, double out[5])
{
    bw_norm_mix(R->a + n0, R->b + n0, R->kw + n0, R->gw + n0, m, v, out);
    int lower = out[0] <= out[1];
    return cv_gkerr(lower ? out[0] : out[1], fabs(lower ? out[0] - out[3] : out[1] - out[4]));
}

/* The table's values at node i of s, from the base inner rule; its error estimate (0 where
 * below CV_INNER_REL of the smaller tail: as good as it gets) in s->err[i], for cv_tail to
 * judge. */
static void cv_value(const cv_t *C, cv_slot *s, int i)
{
    double r[5], e = cv_sums(&C->base, 0, C->base.np * BW_GK_NODES, s->v[i], r);
    s->F[i] = r[0];
    s->S[i] = r[1];
    s->f[i] = r[2];
    s->err[i] = e <= CV_INNER_REL * fmin(r[0], r[1]) ? 0.0 : e;
}

/* Node i of s again, where its error matters to a tail (tol: the absolute error it may
 * keep): panel by panel on the refined rule, bisecting the panel of the largest error
 * estimate (for this and every later value) until the sum of the estimates is below tol.
 * If the rule runs out of panels, the adaptive lnm_tail (its error taken as 0). */
static int cv_refine(cv_t *C, cv_slot *s, int i, double tol)
{
    cv_rule *R = &C->fine;
    double v = s->v[i];
    s->refined = 1;
    for (;;) {
        double sum[3] = {0.0, 0.0, 0.0}, err = 0.0, emax = -1.0;
        int pmax = 0;
        for (int p = 0; p < R->np; p++) {
            double r[5], e = cv_sums(R, p * BW_GK_NODES, BW_GK_NODES, v, r);
            for (int c = 0; c < 3; c++)
                sum[c] += r[c];
            err += e;
            if (e > emax)
                emax = e, pmax = p;
        }
        if (err <= tol || err <= CV_INNER_REL * fmin(sum[0], sum[1])) {
            s->F[i] = sum[0];
            s->S[i] = sum[1];
            s->f[i] = sum[2];
            s->err[i] = err;
            return BW_OK;
        }
        if (R->np == CV_IPANELS)
            break;
        double lo = R->lo[pmax], hi = R->hi[pmax], mid = 0.5 * (lo + hi);
        cv_panel(&C->L, lo, mid, R, pmax);
        cv_panel(&C->L, mid, hi, R, R->np++);
    }
    int upper = s->S[i] < s->F[i];
    double t, d;
    int st = lnm_tail(&C->L, v, upper, 0, &t, &d);
    s->F[i] = upper ? 1.0 - t : t;
    s->S[i] = upper ? t : 1.0 - t;
    s->f[i] = d;
    s->err[i] = 0.0;
    return st;
}

/* Subpanel j of Y panel k, tabulated on first use; NULL (C->status set) when the table is
 * full. */
static cv_slot *cv_get(cv_t *C, int k, double j)
{
    for (int i = 0; i < C->nslot; i++)
        if (C->slot[i].panel == k && C->slot[i].sub == j)
            return &C->slot[i];
    if (C->nslot == CV_SLOTS) {
        C->status = BW_E_NUMERIC;
        return NULL;
    }
    cv_slot *s = &C->slot[C->nslot++];
    double lo = C->e[k] + j * C->h[k], hi = fmin(C->e[k] + (j + 1.0) * C->h[k], C->e[k + 1]);
    bw_gk_rule(lo, hi, s->v, s->wk, s->wg);
    for (int i = 0; i < BW_GK_NODES; i++)
        cv_value(C, s, i);
    s->panel = k;
    s->sub = j;
    s->refined = 0;
    return s;
}

/* Back to the base rule's values and the unrefined inner rule: what a quantile computes
 * then depends on its own steps only, not on the quantiles solved before it. */
static void cv_forget(cv_t *C)
{
    for (int n = 0; n < C->nslot; n++) {
        cv_slot *s = &C->slot[n];
        for (int i = 0; s->refined && i < BW_GK_NODES; i++)
            cv_value(C, s, i);
        s->refined = 0;
    }
    if (C->fine.np != C->base.np)
        C->fine = C->base;
}

/* The subpanels whose nodes reach l = c - sc v in [llo, lhi], in turn: *k, *j start at -1
 * and the call moves them to the next (0 when done). */
static int cv_next(const cv_t *C, double va, double vb, int *k, double *j)
{
    for (;;) {
        if (*k >= 0) {
            double nsub = ceil((C->e[*k + 1] - C->e[*k]) / C->h[*k]);
            double hi = fmin(vb, C->e[*k + 1]);
            if (*j + 1.0 <= fmin(floor((hi - C->e[*k]) / C->h[*k]), nsub - 1.0)) {
                *j += 1.0;
                return 1;
            }
        }
        if (++*k == QE_PANELS)
            return 0;
        double lo = fmax(va, C->e[*k]), hi = fmin(vb, C->e[*k + 1]);
        if (hi >= lo) {
            double nsub = ceil((C->e[*k + 1] - C->e[*k]) / C->h[*k]);
            *j = fmin(fmax(floor((lo - C->e[*k]) / C->h[*k]), 0.0), nsub - 1.0);
            return 1;
        }
    }
}

/* Tail of R at e^U (upper or lower), the density of U and its derivative (out[0 .. 2]).
 * Table values whose error could matter to this tail (weighted by f_L, above CV_TAB_TOL of
 * the tail together) are computed again to that accuracy (cv_refine), and the sum taken
 * again. */
static int cv_tail(cv_t *C, double U, int upper, double out[3])
{
    /* l = c - sc v, c = (U - m) - off, and l - log x0 = (c0 - sc v) + c1 to ~1e-20 */
    double c, e1, e2, c0, e3;
    two_sum(U, -C->L.m, &c, &e1);
    two_sum(c, -C->off, &c, &e2);
    two_sum(c, -C->lp0, &c0, &e3);
    double c1 = ((e1 + e2) + e3) - C->lp0_lo, sc = C->sc;
    double va = (c - C->lhi) / sc, vb = (c - C->llo) / sc;
    /* beyond the panels: F_Y = 1 above the top (lower tail), S_Y = 1 below the bottom (a
     * Beta tail, below eps where l is beyond its eps-quantile) */
    double lb = c - sc * C->e[upper ? 0 : QE_PANELS];
    double beyond = (upper ? lb > C->lhi : lb < C->llo) ? 0.0 : cv_ltail(C, lb, upper);
    for (int pass = 0; pass < 3; pass++) {
        double sum = 0.0, diff = 0.0, den = 0.0, den1 = 0.0, terr = 0.0, emax = 0.0;
        int k = -1;
        double j = -1.0;
        while (cv_next(C, va, vb, &k, &j)) {
            cv_slot *s = cv_get(C, k, j);
            if (!s)
                return C->status;
            double pk = 0.0, pg = 0.0;
            for (int i = 0; i < BW_GK_NODES; i++) {
                double sv = sc * s->v[i], dlog;
                double fl = exp(cv_logfl(C, c - sv, (c0 - sv) + c1, &dlog));
                s->w[i] = s->wk[i] * fl;              /* this tail's weight of node i */
                if (fl == 0.0)
                    continue;
                double t = fl * (upper ? s->S[i] : s->F[i]);
                pk += s->wk[i] * t;
                pg += s->wg[i] * t;
                den += s->w[i] * s->f[i];
                den1 += s->w[i] * s->f[i] * dlog;
                terr += s->w[i] * s->err[i];
                emax = fmax(emax, s->w[i] * s->err[i]);
            }
            sum += pk;
            diff += fabs(pk - pg);
        }
        out[0] = fmin(sc * sum + beyond, 1.0);
        out[1] = den;
        out[2] = den1;
        C->gkdiff = sc * diff;
        double tol = CV_TAB_TOL * out[0];
        if (!(sc * terr > tol) || pass == 2)
            return BW_OK;
        /* make exact the nodes that carry the error, the largest first */
        k = -1;
        j = -1.0;
        while (cv_next(C, va, vb, &k, &j)) {
            cv_slot *s = cv_get(C, k, j);
            for (int i = 0; i < BW_GK_NODES; i++) {
                double we = s->w[i] * s->err[i];
                if (sc * we > 0.125 * tol || (we == emax && we > 0.0)) {
                    int st = cv_refine(C, s, i, 0.0625 * tol / (sc * s->w[i]));
                    if (st)
                        return st;
                }
            }
        }
    }
    return BW_OK;
}

static int cv_setup(cv_t *C, const bw_dist *X, const bw_dist *Y, double eps)
{
    C->a = X->p[0];
    C->b = X->p[1];
    cv_beta_consts(C);
    C->eps = eps;
    C->status = BW_OK;
    C->nslot = 0;
    int st = lnm_setup(&C->L, Y, fmin(eps, 1e-20), lnm_is_tight(Y));
    if (st)
        return st;
    C->off = C->L.tight ? C->L.h : 0.0;
    C->sc = C->L.tight ? C->L.sigma : 1.0;
    for (int i = 0; i < LNM_PANELS; i++)
        cv_panel(&C->L, C->L.edges[i], C->L.edges[i + 1], &C->base, i);
    C->base.np = LNM_PANELS;
    C->fine = C->base;
    st = dist_logquantile(X, eps, 1.0 - eps, &C->llo);
    if (!st)
        st = dist_logquantile(X, 1.0 - eps, eps, &C->lhi);
    if (!st)
        st = cv_edges(C);
    if (st)
        return st;
    /* the ends leave at most eps outside, or they move out */
    for (int side = 0; side < 2; side++) {
        int k = side ? QE_PANELS : 0, ok = 0;
        for (int tries = 0; tries < 8 && !ok; tries++) {
            double r[5];
            cv_sums(&C->base, 0, C->base.np * BW_GK_NODES, C->e[k], r);
            ok = r[side ? 1 : 0] <= eps;
            if (!ok)
                C->e[k] += 2.0 * (C->e[k] - C->e[side ? k - 1 : 1]);
        }
        if (!ok)
            return BW_E_NUMERIC;
    }
    /* sd of l (delta method: Var X / E[X]^2), and the subpanel widths in v */
    double n = C->a + C->b, width = CV_WIDTH * sqrt(C->b / (C->a * (n + 1.0))) / C->sc;
    double widest = 0.0;
    for (int k = 0; k < QE_PANELS; k++) {
        double w = C->e[k + 1] - C->e[k];
        C->h[k] = w / fmin(fmax(ceil(w / width), 1.0), CV_MAXSUB);
        widest = fmax(widest, C->sc * C->h[k]);
    }
    /* f_L ends at l = 0 (X = 1) like (-l)^(b-1): a subpanel across that end integrates a
     * kink, harmless for large b or where no mass comes near X = 1, else not the table's */
    if (C->b < CV_KINK_B && cv_ltail(C, -widest, 1) > 1e-20)
        return BW_E_NUMERIC;
    return BW_OK;
}

/* Solve h(U) = 0 for h = log T(U) - log p (lower tail) or log q - log T(U) (upper), both
 * increasing, by Halley's steps (h' = D/T, h'' = D'/T -+ (D/T)^2 from the density D and
 * its derivative) inside a bracket (bisection where a step leaves it or the iteration
 * stalls), from u0 walking by sd while no bracket is known.  Stops when the step is below
 * 1e-6 sd (Halley's error being cubic, the root is then U + step to ~1e-18 sd): *u is the
 * last point evaluated and *dn that last step, for the caller to apply together with the
 * rounding of e^U.  The tail of the last evaluation stays in out. */
static int cv_solve(cv_t *C, int upper, double target, double u0, double sd, double *u,
                    double *dn, double out[3])
{
    double lo = -INFINITY, hi = INFINITY, U = u0, walk = sd, last = INFINITY;
    for (int it = 0; it < 200; it++) {
        int st = cv_tail(C, U, upper, out);
        if (st)
            return st;
        double T = out[0], h1 = out[1] / T;
        double h = upper ? log(target) - log(T) : log(T) - log(target);
        if (isnan(h))
            return BW_E_NUMERIC;
        if (h <= 0.0)
            lo = U;
        if (h >= 0.0)
            hi = U;
        double step = NAN;
        if (isfinite(h) && h1 > 0.0 && isfinite(h1)) {
            double h2 = out[2] / T + (upper ? h1 * h1 : -h1 * h1);
            double den = 1.0 - 0.5 * h * h2 / (h1 * h1);
            step = -h / h1 / (den >= 0.5 && den <= 2.0 ? den : 1.0);
            if (fabs(step) <= 1e-6 * sd) {      /* what remains after it: ~1e-18 sd */
                *u = U;
                *dn = step;
                return BW_OK;
            }
        }
        double un = U + step;
        int inside = un > lo && un < hi && fabs(step) <= 0.5 * last;
        if (!inside && isfinite(lo) && isfinite(hi)) {
            un = 0.5 * (lo + hi);               /* bisection */
            if (!(un > lo && un < hi))
                return BW_E_NUMERIC;
        } else if (!inside && !(un > lo && un < hi)) {
            un = isfinite(lo) ? U + walk : U - walk;    /* no bracket yet: walk out */
            walk *= 2.0;
        }
        last = fabs(un - U);
        U = un;
    }
    return BW_E_NUMERIC;
}

/* The (p, q) quantile of R from the table, or BW_E_NUMERIC where its error control says the
 * general quadrature must take it.  Start: log X and log Y as normals matched at their
 * medians and at the level (or the quartile, near the centre). */
static int cv_quantile(cv_t *C, const bw_dist *X, double p, double q, double *out)
{
    int upper = q < p;
    double ps = fmin(fmin(p, q), 0.25), pl = upper ? 1.0 - ps : ps, pu = upper ? ps : 1.0 - ps;
    double zs = upper ? -bw_norm_quantile(ps) : bw_norm_quantile(ps);
    double z = upper ? -bw_norm_quantile(q) : bw_norm_quantile(p);
    double mx, sx, lgm, lgs;
    int st = dist_logquantile(X, 0.5, 0.5, &mx);
    if (!st)
        st = dist_logquantile(X, pl, pu, &sx);
    if (!st)
        st = bw_gamma_inc_inv(C->L.alpha, 0.5, 0.5, &lgm);
    if (!st)
        st = bw_gamma_inc_inv(C->L.alpha, pu, pl, &lgs);      /* s falls as G grows */
    if (st)
        return st;
    double vm = cv_vguess(&C->L, lgm, 0.0), vs = cv_vguess(&C->L, lgs, zs);
    double sd = hypot((sx - mx) / zs, C->sc * (vs - vm) / zs);
    if (!(sd > 0.0) || !isfinite(sd))
        sd = 1.0;
    double u0 = mx + C->L.m + C->off + C->sc * vm + z * sd, u = u0, dn = 0.0;
    double t[3] = {0.0, 0.0, 0.0};
    cv_forget(C);
    st = cv_solve(C, upper, upper ? q : p, u0, sd, &u, &dn, t);
    if (!st && !(C->gkdiff <= CV_GK_REL * t[0] && t[0] > 0.0 && t[1] > 0.0))
        st = BW_E_NUMERIC;
    if (st)
        return st;
    /* e^(u + dn) with one rounding: e = e^u rounded, and u - log e exactly from log_diff */
    double e = exp(u);
    *out = e > 0.0 && isfinite(e) ? fma(e, expm1(dn - log_diff(e, u)), e) : e;
    return BW_OK;
}

/* The rate (Beta) and lognormal-mean factors of q, if that is what it is. */
static int rate_lnmean(const bw_quantity *q, const bw_dist **X, const bw_dist **Y)
{
    if (q->nfactors != 2)
        return 0;
    int i = q->f[0].kind == BW_KIND_BETA ? 0 : 1;
    *X = &q->f[i];
    *Y = &q->f[1 - i];
    return (*X)->kind == BW_KIND_BETA && (*Y)->kind == BW_KIND_NIG_LNMEAN;
}

/* Quantiles (p[i], q[i]) of a rate x lognormal mean from one table; those its error
 * control refuses come from the general product quadrature. */
static int cv_quantiles(const bw_quantity *q, const double *p, const double *qq, int n,
                        double *out)
{
    const bw_dist *X = NULL, *Y = NULL;
    double tmin = 0.5;
    for (int i = 0; i < n; i++)
        tmin = fmin(tmin, fmin(p[i], qq[i]));
    /* the same setup for every ordinary level, so that a level's numbers do not depend on
     * the others computed with it */
    cv_t *C = malloc(sizeof *C);         /* ~100 kB: on the heap, not a worker's stack */
    int ok = C && rate_lnmean(q, &X, &Y) && cv_setup(C, X, Y, fmin(1e-20, 1e-16 * tmin)) == BW_OK;
    int st = BW_OK;
    for (int i = 0; i < n && !st; i++) {
        if (ok && cv_quantile(C, X, p[i], qq[i], &out[i]) == BW_OK)
            continue;
        prod_t P;
        st = prod_setup(&P, q, range_eps(fmin(p[i], qq[i])));
        if (!st)
            st = prod_quantile(&P, p[i], qq[i], &out[i]);
    }
    free(C);
    return st;
}

/* ======================================================================================== */
/* Public entry points                                                                       */
/* ======================================================================================== */

/* Each factor's mean and variance (1 and 0 for the missing second factor of a single one). */
static int factor_moments(const bw_quantity *q, double m[2], double v[2])
{
    m[1] = 1.0;
    v[1] = 0.0;
    int st = dist_moments(&q->f[0], &m[0], &v[0]);
    if (!st && q->nfactors == 2)
        st = dist_moments(&q->f[1], &m[1], &v[1]);
    return st;
}

/* The quantity's mean from its factors'; BW_E_DOMAIN for an infinite mean times a zero
 * mean (no value). */
static int quantity_mean(const double m[2], double *out)
{
    double mean = m[0] * m[1];
    if (isnan(mean))
        return BW_E_DOMAIN;
    *out = mean;
    return BW_OK;
}

/* The quantity's variance from its factors': for a product of independent factors
 * E[X^2] E[Y^2] - (E[X] E[Y])^2 = vx vy + vx my^2 + vy mx^2, free of cancellation. */
static double quantity_variance(int nfactors, const double m[2], const double v[2])
{
    if (nfactors == 1)
        return v[0];
    if (isinf(v[0]) || isinf(v[1]))
        return INFINITY;
    return v[0] * v[1] + v[0] * m[1] * m[1] + v[1] * m[0] * m[0];
}

int bw_mean(const bw_quantity *q, double *out)
{
    double m[2], v[2];
    if (!quantity_valid(q) || !out)
        return BW_E_DOMAIN;
    int st = factor_moments(q, m, v);
    return st ? st : quantity_mean(m, out);
}

int bw_variance(const bw_quantity *q, double *out)
{
    double m[2], v[2];
    if (!quantity_valid(q) || !out)
        return BW_E_DOMAIN;
    int st = factor_moments(q, m, v);
    if (!st)
        *out = quantity_variance(q->nfactors, m, v);
    return st;
}

int bw_moments(const bw_quantity *q, double *mean, double *var)
{
    double m[2], v[2];
    if (!quantity_valid(q) || !mean || !var)
        return BW_E_DOMAIN;
    int st = factor_moments(q, m, v);
    if (!st)
        st = quantity_mean(m, mean);
    if (!st)
        *var = quantity_variance(q->nfactors, m, v);
    return st;
}

int bw_product_moments(const double m[2], const double v[2], double *mean, double *var)
{
    int st = quantity_mean(m, mean);
    if (!st)
        *var = quantity_variance(2, m, v);
    return st;
}

int bw_cdf(const bw_quantity *q, double x, double *out)
{
    if (!quantity_valid(q) || !out || isnan(x))
        return BW_E_DOMAIN;
    if (q->nfactors == 1)
        return dist_cdf(&q->f[0], x, out);
    return prod_cdf(q, x, out);
}

static int quantile_pq(const bw_quantity *q, double p, double qq, double *out)
{
    const bw_dist *X, *Y;
    if (q->nfactors == 1)
        return dist_quantile(&q->f[0], p, qq, out);
    if (rate_lnmean(q, &X, &Y))
        return cv_quantiles(q, &p, &qq, 1, out);
    prod_t P;
    int st = prod_setup(&P, q, range_eps(fmin(p, qq)));
    if (!st)
        st = prod_quantile(&P, p, qq, out);
    return st;
}

static int level_valid(double level)
{
    return level > 0.0 && level < 1.0;
}

int bw_quantile(const bw_quantity *q, double level, double *out)
{
    if (!quantity_valid(q) || !out || !level_valid(level))
        return BW_E_DOMAIN;
    double v;
    int st = quantile_pq(q, level, 1.0 - level, &v);
    if (st)
        return st;
    if (isnan(v))
        return BW_E_NUMERIC;
    *out = v;
    return BW_OK;
}

int bw_intervals(const bw_quantity *q, const double *levels, int n, double (*out)[2])
{
    if (!quantity_valid(q) || !out || !levels || n < 0)
        return BW_E_DOMAIN;
    for (int i = 0; i < n; i++)
        if (!level_valid(levels[i]))
            return BW_E_DOMAIN;
    const bw_dist *X, *Y;
    if (!rate_lnmean(q, &X, &Y) || n > BW_MAX_LEVELS || n == 0) {
        for (int i = 0; i < n; i++) {
            int st = bw_interval(q, levels[i], out[i]);
            if (st)
                return st;
        }
        return BW_OK;
    }
    /* one table for every end: (tail, body) and (body, tail) per level */
    double p[2 * BW_MAX_LEVELS] = {0}, qq[2 * BW_MAX_LEVELS] = {0}, x[2 * BW_MAX_LEVELS];
    for (int i = 0; i < n; i++) {
        double tail = 0.5 * (1.0 - levels[i]), body = 0.5 * (1.0 + levels[i]);
        p[2 * i] = qq[2 * i + 1] = tail;
        qq[2 * i] = p[2 * i + 1] = body;
    }
    int st = cv_quantiles(q, p, qq, 2 * n, x);
    for (int i = 0; i < n && !st; i++) {
        if (isnan(x[2 * i]) || isnan(x[2 * i + 1]))
            return BW_E_NUMERIC;
        out[i][0] = x[2 * i];
        out[i][1] = x[2 * i + 1];
    }
    return st;
}

int bw_interval(const bw_quantity *q, double level, double out[2])
{
    if (!quantity_valid(q) || !out || !level_valid(level))
        return BW_E_DOMAIN;
    const bw_dist *X, *Y;
    if (rate_lnmean(q, &X, &Y))
        return bw_intervals(q, &level, 1, (double (*)[2])out);
    double tail = 0.5 * (1.0 - level), body = 0.5 * (1.0 + level), lo, hi;
    int st;
    if (q->nfactors == 1) {
        st = dist_quantile(&q->f[0], tail, body, &lo);
        if (!st)
            st = dist_quantile(&q->f[0], body, tail, &hi);
    } else {
        prod_t P;
        st = prod_setup(&P, q, range_eps(tail));
        if (!st)
            st = prod_quantile(&P, tail, body, &lo);
        if (!st)
            st = prod_quantile(&P, body, tail, &hi);
    }
    if (st)
        return st;
    if (isnan(lo) || isnan(hi))
        return BW_E_NUMERIC;
    out[0] = lo;
    out[1] = hi;
    return BW_OK;
}

/* ======================================================================================== */
/* Density                                                                                   */
/* ======================================================================================== */

/* Density of one distribution at x: closed forms, or the density of log X that the
 * NIG_LNMEAN quadrature carries, divided by x. */
static int dist_pdf(const bw_dist *d, double x, double *out)
{
    double a = d->p[0], b = d->p[1];
    if (d->kind == BW_KIND_NIG_MEAN) {
        double df, scale;
        nig_t(d, &df, &scale);
        *out = exp(bw_t_logpdf(df, (x - d->p[0]) / scale)) / scale;
        return BW_OK;
    }
    if (!(x > 0.0) || isinf(x) || (d->kind == BW_KIND_BETA && x >= 1.0)) {
        *out = 0.0;
        return BW_OK;
    }
    double lx = log(x), lg;
    switch (d->kind) {
    case BW_KIND_BETA: {
        double y = 1.0 - x, ly = log1p(-x);
        *out = exp(bw_beta_logkernel(a, b, x, y, lx, ly) - lx - ly);
        return BW_OK;
    }
    case BW_KIND_GAMMA:
    case BW_KIND_INVGAMMA:
        lg = d->kind == BW_KIND_GAMMA ? log(b) + lx : log(b) - lx;
        *out = exp(bw_gamma_logkernel(a, exp(lg), lg) - lx);
        return BW_OK;
    default:
        return BW_E_DOMAIN;
    }
}

/* Both tails at u from one setup: the lower tail and the density of u, and the upper tail
 * computed directly where it is the smaller one. */
static int both_tails(tail_fn f, void *ctx, double u, double *lower, double *upper,
                      double *dens)
{
    double t;
    int st = f(ctx, u, 0, lower, dens);
    if (!st && *lower > 0.5) {
        st = f(ctx, u, 1, upper, &t);
        *lower = 1.0 - *upper;
    } else {
        *upper = 1.0 - *lower;
    }
    return st;
}

int bw_tails_pdf(const bw_quantity *q, double x, double *lower, double *upper, double *pdf)
{
    if (!quantity_valid(q) || !lower || !upper || !pdf || isnan(x))
        return BW_E_DOMAIN;
    int lnm = q->nfactors == 1 && q->f[0].kind == BW_KIND_NIG_LNMEAN;
    if (q->nfactors == 1 && !lnm) {
        int st = dist_cdf(&q->f[0], x, lower);
        *upper = 1.0 - *lower;
        return st ? st : dist_pdf(&q->f[0], x, pdf);
    }
    prod_t P;
    int real = 0, st;
    if (!lnm) {
        st = prod_setup(&P, q, 1e-20);
        if (st)
            return st;
        real = P.real;
    }
    if (!real && !(x > 0.0 && isfinite(x))) {
        *lower = x > 0.0 ? 1.0 : 0.0;
        *upper = 1.0 - *lower;
        *pdf = 0.0;
        return BW_OK;
    }
    double u = real ? x : log(x), dens = 0.0;
    if (lnm) {
        /* the tight frame's variable is (log x - m - h) / sigma: its density is sigma
         * times that of log x */
        int tight = lnm_is_tight(&q->f[0]);
        st = lnm_setup(&P.lnm, &q->f[0], 1e-20, tight);
        double v = tight ? (log_diff(x, P.lnm.m) - P.lnm.h) / P.lnm.sigma : u;
        if (!st)
            st = both_tails(lnm_tail_fn, &P.lnm, v, lower, upper, &dens);
        if (tight)
            dens /= P.lnm.sigma;
    } else {
        st = both_tails(prod_tail, &P, u, lower, upper, &dens);
    }
    *pdf = real ? dens : dens / x;
    return st;
}

int bw_pdf(const bw_quantity *q, double x, double *out)
{
    double lo, hi;
    return bw_tails_pdf(q, x, &lo, &hi, out);
}
