/*
 * compare.c -- decisions between arms (compare.h): one job in three phases.
 *
 *   phase 1  one block per arm: its kind, quantiles (the quadrature panels), mean, E[1/X],
 *            E[log] of its factors and, where the mean is infinite, its truncation point;
 *            compound arms: their factors' panels and the severity's table instead of the
 *            product's quantiles;
 *   phase 2  one block per arm: its density at every node of the shared grid (the union of
 *            all arms' quantiles), F and S by integrating the density's interpolant from
 *            each end (exact anchors, a mass check, the exact tails as fallback);
 *   phase 3  one block per arm: P(best), the pairwise P(beat control), the expected losses
 *            (adaptive quadrature over the tables) and the lifts (quantiles by Newton on
 *            tail integrals that interpolate the tables).
 *
 * The integration variable u is log t when every arm is positive, t otherwise.  Closed
 * forms give the density of beta, gamma, inverse gamma and Student t arms; a compound's is
 * the convolution in log of its factors' (the severity tabulated); a lone lognormal mean
 * goes through bw_pdf / bw_tails_pdf (nested quadrature).
 */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "compare.h"
#include "specfun.h"

/* ======================================================================================== */
/* Arms                                                                                      */
/* ======================================================================================== */

#define NQ 9
#define Q05 3
#define Q50 4
#define Q95 5
#define MAX_EDGES 141           /* panels of the shared grid: at most 140 */
#define LIFT_PANELS (NQ - 1)
#define LIFT_NODES (LIFT_PANELS * BW_GK_NODES)
#define Z95 1.6448536269514722  /* the 0.95 quantile of N(0, 1) */
#define PI_ 3.14159265358979323846

static const double q_levels[NQ] = {1e-15, 1e-9, 1e-4, 0.05, 0.5, 0.95, 1.0 - 1e-4,
                                    1.0 - 1e-9, 1.0 - 1e-15};

typedef struct {
    bw_quantity q;
    int positive;               /* the arm is > 0 */
    int closed;                 /* one factor with closed forms (its kind), or 0 */
    int heavy;                  /* infinite mean: losses use it truncated at `trunc` */
    double trunc;
    double mean, inv_mean;      /* E[X] (mean()'s truncation where infinite), E[1/X] */
    double log_mean[2];         /* E[log factor] (compare.h) */
    const struct factor_s *fac; /* a compound arm's factors (its density is theirs
                                 * convolved), or NULL */
    double qx[NQ];              /* quantiles at q_levels (NaN where not finite) */
    double *tab;                /* F, S, density in u at the shared grid's nodes */
    double mass_err;            /* |F(first edge) + int density + S(last edge) - 1| */
    int status;                 /* the first failure of its blocks */
    bw_error err;
} arm_t;

/* The standard panel [-1, 1]: its Gauss-Kronrod nodes x, their barycentric weights and
 * the integration matrix W[j][k] = int_{-1}^{x_j} l_k (row GK: int_{-1}^{1} l_k), l_k the
 * Lagrange basis of the nodes (degree 20). */
#define GK BW_GK_NODES
typedef struct {
    double x[GK], bary[GK];
    double W[GK + 1][GK];
} panel_rule;

/* A compound arm's factors as one-factor arms on their own quantile panels (in log); the
 * frequency's log-density at its panels' nodes, the severity's F, S and log-density. */
#define SEV_PANELS (LIFT_PANELS << 4)     /* the severity's panels, halved up to 4 times */
typedef struct factor_s {
    arm_t f[2];
    double edges[2][SEV_PANELS + 1];
    int npanels[2];
    double gp[LIFT_NODES];
    double *tab;                /* 3 * SEV_PANELS * GK values (owned) */
    const panel_rule *rule;
} factor_t;

typedef struct {
    bw_cmp_request req;
    panel_rule rule;
    factor_t fac[BW_CMP_MAX_ARMS];
    bw_job *job;
    int phase;
    int logmode;                /* u = log t (every arm positive), else u = t */
    int nedges;
    double edges[MAX_EDGES];
    arm_t arm[BW_CMP_MAX_ARMS];
    double perr[BW_CMP_MAX_ARMS];       /* error bound of each arm's probabilities */
    double best_raw[BW_CMP_MAX_ARMS];
    bw_cmp_result res;
} cmp_ctx;

static int has_kind(const bw_quantity *q, int kind)
{
    for (int k = 0; k < q->nfactors; k++)
        if (q->f[k].kind == kind)
            return 1;
    return 0;
}

static int conv_density(const struct factor_s *x, double u, double *d);

/* F, S and the density with respect to log t (positive arms) or t (Student t arms) at
 * t = e^lt; closed forms, or the nested quadrature of bw_tails_pdf.  F = S = NULL: the
 * density alone (closed forms skip the distribution function). */
static int arm_eval(const arm_t *a, double t, double lt, double *F, double *S, double *d)
{
    const bw_dist *f = &a->q.f[0];
    double pa = f->p[0], pb = f->p[1], lp, lq, lg, Fv, Sv;
    int tails = F != NULL;
    switch (a->closed) {
    case BW_KIND_BETA:
        if (lt >= 0.0) {
            Fv = 1.0, Sv = 0.0, *d = 0.0;
        } else {
            double y = -expm1(lt), ly = t > 0.5 ? log(y) : log1p(-t);
            if (tails)
                bw_beta_inc_log(pa, pb, t, y, lt, ly, &Fv, &Sv, &lp, &lq);
            *d = exp(bw_beta_logkernel(pa, pb, t, y, lt, ly) - ly);
        }
        break;
    case BW_KIND_GAMMA:
    case BW_KIND_INVGAMMA:
        lg = a->closed == BW_KIND_GAMMA ? log(pb) + lt : log(pb) - lt;
        if (tails && a->closed == BW_KIND_GAMMA)
            bw_gamma_inc(pa, exp(lg), &Fv, &Sv);
        else if (tails)
            bw_gamma_inc(pa, exp(lg), &Sv, &Fv);
        *d = exp(bw_gamma_logkernel(pa, exp(lg), lg));
        break;
    case BW_KIND_NIG_MEAN: {
        double df = 2.0 * f->p[2], scale = sqrt(f->p[3] / (f->p[2] * f->p[1]));
        double z = (t - f->p[0]) / scale;
        if (tails)
            bw_t_cdf(df, z, &Fv, &Sv);
        *d = exp(bw_t_logpdf(df, z)) / scale;
        break;
    }
    default: {
        double pdf;
        if (!tails && a->fac && a->positive)
            return conv_density(a->fac, lt, d);
        int st = tails ? bw_tails_pdf(&a->q, t, &Fv, &Sv, &pdf) : bw_pdf(&a->q, t, &pdf);
        *d = a->positive ? pdf * t : pdf;
        if (tails)
            *F = Fv, *S = Sv;
        return st;
    }
    }
    if (tails)
        *F = Fv, *S = Sv;
    return BW_OK;
}

/* F, S and the density with respect to u at u (F = S = NULL: the density alone). */
static int arm_point(const arm_t *a, int logmode, double u, double *F, double *S, double *d)
{
    if (logmode)
        return arm_eval(a, exp(u), u, F, S, d);
    if (!a->positive)
        return arm_eval(a, u, NAN, F, S, d);
    if (!(u > 0.0)) {
        if (F)
            *F = 0.0, *S = 1.0;
        *d = 0.0;
        return BW_OK;
    }
    int st = arm_eval(a, u, log(u), F, S, d);
    *d /= u;
    return st;
}

/* E[1/V] of the data-scale lognormal mean V = exp(mu + s/2):
 * E[1/V | s] = exp(-m + s (1/kappa - 1) / 2), s = beta / G, G ~ Gamma(alpha, 1). */
typedef struct {
    double alpha, c;
} invl_ctx;

static void invl_f(void *vctx, double w, int node, double *out)
{
    (void)node;
    const invl_ctx *cx = vctx;
    double g = bw_gamma_logkernel(cx->alpha, exp(w), w);
    out[0] = exp(g + cx->c * exp(-w));
}

static int lnm_inv_mean(const bw_dist *d, double *out)
{
    double m = d->p[0], kappa = d->p[1], alpha = d->p[2], beta = d->p[3];
    invl_ctx cx = {alpha, 0.5 * beta * (1.0 / kappa - 1.0)};
    if (cx.c > 0.0) {
        *out = INFINITY;
        return BW_OK;
    }
    double edges[NQ], res, err;
    for (int k = 0; k < NQ; k++) {
        int st = bw_gamma_inc_inv(alpha, q_levels[k], 1.0 - q_levels[k], &edges[k]);
        if (st)
            return st;
    }
    int st = bw_quad_gk(invl_f, &cx, 1, edges, NQ - 1, 1e-13, 0.0, &res, &err);
    if (st && err <= 1e-10 * res)
        st = BW_OK;
    *out = exp(-m) * res;
    return st;
}

/* E[1/X] of one factor (+inf where infinite). */
static int dist_inv_mean(const bw_dist *d, double *out)
{
    double a = d->p[0], b = d->p[1];
    if (d->kind == BW_KIND_NIG_LNMEAN)
        return lnm_inv_mean(d, out);
    /* 1/Beta(a, b): (a + b - 1) / (a - 1); 1/Gamma(a, rate b) ~ InvGamma: b / (a - 1);
     * 1/InvGamma(a, b) ~ Gamma(a, rate b): a / b */
    if (d->kind == BW_KIND_INVGAMMA)
        *out = a / b;
    else if (d->kind == BW_KIND_BETA || d->kind == BW_KIND_GAMMA)
        *out = a > 1.0 ? (d->kind == BW_KIND_BETA ? a + b - 1.0 : b) / (a - 1.0) : INFINITY;
    else
        *out = NAN;
    return BW_OK;
}

/* psi(x), x > 0: raised to x >= 8 by psi(x) = psi(x + 1) - 1/x, then the asymptotic
 * series log x - 1/(2x) - sum_k B_2k / (2k x^2k) (terms to x^-16: below 1e-17 there). */
static double psi(double x)
{
    static const double c[] = {1.0 / 12, -1.0 / 120, 1.0 / 252, -1.0 / 240, 1.0 / 132,
                               -691.0 / 32760, 1.0 / 12, -3617.0 / 8160};
    double shift = 0.0, series = 0.0;
    for (; x < 8.0; x += 1.0)
        shift += 1.0 / x;
    double inv2 = 1.0 / (x * x);
    for (int k = (int)(sizeof c / sizeof c[0]) - 1; k >= 0; k--)
        series = series * inv2 + c[k];
    return log(x) - 0.5 / x - series * inv2 - shift;
}

/* E[log X] of one factor. */
static double dist_log_mean(const bw_dist *d)
{
    double a = d->p[0], b = d->p[1];
    switch (d->kind) {
    case BW_KIND_BETA:
        return psi(a) - psi(a + b);
    case BW_KIND_GAMMA:
        return psi(a) - log(b);
    case BW_KIND_INVGAMMA:
        return log(b) - psi(a);
    case BW_KIND_NIG_LNMEAN:    /* log V = mu + sigma^2 / 2, E[sigma^2] = beta / (alpha - 1) */
        return d->p[2] > 1.0 ? d->p[0] + 0.5 * d->p[3] / (d->p[2] - 1.0) : INFINITY;
    default:
        return NAN;
    }
}

/* The arm's exact quantiles at q_levels (NaN where not finite; the central ones must be). */
static int arm_quantiles(arm_t *a)
{
    for (int k = 0; k < NQ; k++) {
        int sk = bw_quantile(&a->q, q_levels[k], &a->qx[k]);
        if (sk || !isfinite(a->qx[k]) || (a->positive && !(a->qx[k] > 0.0))) {
            a->qx[k] = NAN;
            if (k >= Q05 && k <= Q95)
                return sk ? sk : BW_E_NUMERIC;
        }
    }
    return BW_OK;
}

/* Phase 1 for one arm. */
static int arm_prepare(arm_t *a, int index)
{
    const bw_quantity *q = &a->q;
    a->positive = !has_kind(q, BW_KIND_NIG_MEAN);
    a->closed = q->nfactors == 1 && q->f[0].kind != BW_KIND_NIG_LNMEAN ? q->f[0].kind : 0;
    for (int k = 0; k < q->nfactors; k++)
        if (q->f[k].kind == BW_KIND_NIG_MEAN && q->f[k].p[2] <= 0.5)
            return bw_fail(&a->err, BW_E_DOMAIN, "arm %d: its posterior mean is undefined "
                       "(Student t with at most 1 degree of freedom)", index);
    int st = bw_mean(q, &a->mean);
    a->heavy = has_kind(q, BW_KIND_NIG_LNMEAN) || isinf(a->mean);
    if (!st && a->heavy)
        st = bw_quantile(q, BW_TRUNC_LEVEL, &a->trunc);
    if (!st && (q->nfactors == 1 || !a->positive))
        st = arm_quantiles(a);
    a->inv_mean = 1.0;
    for (int k = 0; k < q->nfactors && !st && a->positive; k++) {
        double v = NAN;
        st = dist_inv_mean(&q->f[k], &v);
        a->inv_mean *= v;
    }
    a->log_mean[0] = dist_log_mean(&q->f[0]);
    a->log_mean[1] = q->nfactors > 1 ? dist_log_mean(&q->f[1]) : NAN;
    if (st)
        return bw_fail(&a->err, st, "arm %d: its quantiles or moments could not be computed "
                       "to full accuracy", index);
    return 0;
}

/* ======================================================================================== */
/* The shared grid                                                                           */
/* ======================================================================================== */

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* Edges in u from quantiles x[0 .. n) (NaN skipped), sorted, without near-duplicates,
 * thinned to at most cap panels; returns how many edges. */
static int make_edges(const double *x, int n, int logmode, double *edges, int cap)
{
    double tmp[BW_CMP_MAX_ARMS * (NQ + 1)];
    int m = 0;
    for (int k = 0; k < n; k++)
        if (isfinite(x[k]))
            tmp[m++] = logmode ? log(x[k]) : x[k];
    qsort(tmp, (size_t)m, sizeof tmp[0], cmp_double);
    int e = 0;
    for (int k = 0; k < m; k++) {
        if (!isfinite(tmp[k]))
            continue;
        if (e > 0 && !(tmp[k] - edges[e - 1] > 1e-12 * fmax(1.0, fabs(tmp[k]))))
            continue;
        if (e == cap + 1) {
            /* thin: keep every other interior edge, then go on */
            int w = 1;
            for (int r = 2; r < e; r += 2)
                edges[w++] = edges[r];
            edges[w++] = edges[e - 1];
            e = w;
        }
        edges[e++] = tmp[k];
    }
    return e;
}

/* int_{-1}^{x} T_m(s) ds. */
static double cheb_integral(int m, double x)
{
    if (m == 0)
        return x + 1.0;
    if (m == 1)
        return 0.5 * (x * x - 1.0);
    double th = acos(fmax(-1.0, fmin(1.0, x))), sg = m % 2 ? 1.0 : -1.0;
    return 0.5 * (cos((m + 1) * th) - sg) / (m + 1) - 0.5 * (cos((m - 1) * th) - sg) / (m - 1);
}

static void rule_init(panel_rule *r)
{
    static const double unit[2] = {-1.0, 1.0};
    enum { N = GK - 1 };        /* l_k has degree N: exact from N + 1 Chebyshev points */
    for (int j = 0; j < GK; j++)
        r->x[j] = bw_gk_node(unit, j);
    for (int k = 0; k < GK; k++) {
        double prod = 1.0, s[N + 1], c[N + 1];
        for (int j = 0; j < GK; j++)
            if (j != k)
                prod *= r->x[k] - r->x[j];
        r->bary[k] = 1.0 / prod;
        for (int i = 0; i <= N; i++) {
            double y = cos(PI_ * i / N), l = r->bary[k];
            for (int j = 0; j < GK; j++)
                if (j != k)
                    l *= y - r->x[j];
            s[i] = l;
        }
        for (int m = 0; m <= N; m++) {
            double acc = 0.0;
            for (int i = 0; i <= N; i++)
                acc += (i == 0 || i == N ? 0.5 : 1.0) * s[i] * cos(PI_ * m * i / N);
            c[m] = acc * (m == 0 || m == N ? 1.0 : 2.0) / N;
        }
        for (int j = 0; j <= GK; j++) {
            double x = j < GK ? r->x[j] : 1.0, acc = 0.0;
            for (int m = 0; m <= N; m++)
                acc += c[m] * cheb_integral(m, x);
            r->W[j][k] = acc;
        }
    }
}

/* Phase 2 for one arm: the density at every node, then F by integrating it from the first
 * edge and S from the last (each tail accurate where it is small), anchored at the exact
 * tails there.  Falls back to the exact F and S at every node where the mass of the
 * tabulation misses 1 by more than CHEAP_TOL. */
#define CHEAP_TOL 1e-12
static int arm_tabulate(const panel_rule *r, const double *edges, int P, int logmode,
                        arm_t *a, double *tab)
{
    int st = BW_OK;
    for (int k = 0; k < P * GK && !st; k++)
        st = arm_point(a, logmode, bw_gk_node(edges, k), NULL, NULL, &tab[3 * k + 2]);
    /* the tails beyond the edges; a compound's edges lie beyond its 1e-15 quantiles */
    double F0 = 0.0, S0, FP, SP = 0.0, dd;
    if (!st && !a->fac)
        st = arm_point(a, logmode, edges[0], &F0, &S0, &dd);
    if (!st && !a->fac)
        st = arm_point(a, logmode, edges[P], &FP, &SP, &dd);
    if (st)
        return st;
    double left = F0, right = SP;
    for (int p = 0; p < P; p++) {
        double h = 0.5 * (edges[p + 1] - edges[p]), *row = tab + 3 * (size_t)p * GK;
        for (int j = 0; j <= GK; j++) {
            double acc = 0.0;
            for (int k = 0; k < GK; k++)
                acc += r->W[j][k] * row[3 * k + 2];
            if (j < GK)
                row[3 * j] = left + h * acc;
            else
                left += h * acc;
        }
    }
    for (int p = P - 1; p >= 0; p--) {
        double h = 0.5 * (edges[p + 1] - edges[p]), *row = tab + 3 * (size_t)p * GK;
        double tot = 0.0;
        for (int k = 0; k < GK; k++)
            tot += r->W[GK][k] * row[3 * k + 2];
        for (int j = 0; j < GK; j++) {
            double acc = 0.0;
            for (int k = 0; k < GK; k++)
                acc += r->W[j][k] * row[3 * k + 2];
            row[3 * j + 1] = right + h * (tot - acc);
        }
        right += h * tot;
    }
    a->mass_err = fabs(left + SP - 1.0);
    for (int k = 0; k < P * GK; k++) {
        double *v = tab + 3 * (size_t)k;
        if (a->mass_err > CHEAP_TOL) {
            st = arm_point(a, logmode, bw_gk_node(edges, k), &v[0], &v[1], &v[2]);
            if (st)
                return st;
        } else if (v[0] <= v[1]) {
            v[0] = fmax(v[0], 0.0), v[1] = 1.0 - v[0];
        } else {
            v[1] = fmax(v[1], 0.0), v[0] = 1.0 - v[1];
        }
    }
    if (a->mass_err > CHEAP_TOL)
        a->mass_err = 0.0;
    return BW_OK;
}

/* F, S and the density at u from a table on panels edges[0 .. P], interpolated on the
 * panel holding u; outside the panels the tails are 0 and 1 (below 1e-15).  F = S = NULL:
 * the density alone. */
static void panel_interp(const panel_rule *r, const double *edges, int P, const double *tab,
                         double u, double *F, double *S, double *d)
{
    int m0 = F ? 0 : 2;
    *d = 0.0;
    if (!(u > edges[0]) || !(u < edges[P])) {
        int above = u >= edges[P];
        if (F)
            *F = above, *S = !above;
        return;
    }
    int lo = 0, hi = P;
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        if (edges[mid] <= u)
            lo = mid;
        else
            hi = mid;
    }
    const double *row = tab + 3 * (size_t)lo * GK;
    double c = 0.5 * (edges[lo] + edges[lo + 1]), h = 0.5 * (edges[lo + 1] - edges[lo]);
    double y = (u - c) / h, num[3] = {0.0, 0.0, 0.0}, den = 0.0;
    for (int k = 0; k < GK; k++) {
        if (y == r->x[k]) {
            if (F)
                *F = row[3 * k], *S = row[3 * k + 1];
            *d = row[3 * k + 2];
            return;
        }
        double w = r->bary[k] / (y - r->x[k]);
        den += w;
        for (int m = m0; m < 3; m++)
            num[m] += w * row[3 * k + m];
    }
    if (F) {
        *F = fmin(fmax(num[0] / den, 0.0), 1.0);
        *S = fmin(fmax(num[1] / den, 0.0), 1.0);
    }
    *d = fmax(num[2] / den, 0.0);
}

/* Arm a at u (the shared grid's variable) from its table. */
static void tab_interp(const cmp_ctx *C, const arm_t *a, double u, double *F, double *S,
                       double *d)
{
    panel_interp(&C->rule, C->edges, C->nedges - 1, a->tab, u, F, S, d);
}

/* ---------------------------------------------------------------------------------------- */
/* Compound arms X = P V: the density of log X is g_P * g_V (convolution) over P's panels,   */
/* g_P closed, g_V read from the severity's table.                                           */
/* ---------------------------------------------------------------------------------------- */

typedef struct {
    const factor_t *x;
    double u;
} conv_ctx;

static void conv_f(void *vctx, double w, int node, double *out)
{
    const conv_ctx *cx = vctx;
    const factor_t *x = cx->x;
    double dp, dv;
    if (node >= 0)
        dp = x->gp[node];
    else if (arm_point(&x->f[0], 1, w, NULL, NULL, &dp))
        dp = 0.0;
    panel_interp(x->rule, x->edges[1], x->npanels[1], x->tab, cx->u - w, NULL, NULL, &dv);
    out[0] = dp * dv;
}

static int conv_density(const factor_t *x, double u, double *d)
{
    conv_ctx cx = {x, u};
    double err;
    int st = bw_quad_gk(conv_f, &cx, 1, x->edges[0], x->npanels[0], 1e-12, 1e-300, d, &err);
    if (st && err <= 1e-9 * fabs(*d) + 1e-300)
        st = BW_OK;
    return st;
}

/* Phase 1 for a compound arm: its factors' quantiles and panels, the frequency's density
 * at their nodes, the severity's table; the arm's panel positions qx are the products of
 * the factors' quantiles at each level (beyond the arm's own in both tails, so its grid
 * covers it), the truncation point its exact quantile. */
static int compound_prepare(cmp_ctx *C, arm_t *a)
{
    factor_t *x = &C->fac[a - C->arm];
    double fq[2][NQ];
    x->rule = &C->rule;
    for (int k = 0; k < 2; k++) {
        arm_t *f = &x->f[k];
        f->q.nfactors = 1;
        f->q.f[0] = a->q.f[k];
        f->positive = 1;
        f->closed = f->q.f[0].kind != BW_KIND_NIG_LNMEAN ? f->q.f[0].kind : 0;
        for (int l = 0; l < NQ; l++) {
            int st = bw_quantile(&f->q, q_levels[l], &fq[k][l]);
            if (st || !(fq[k][l] > 0.0) || !isfinite(fq[k][l]))
                return BW_OK;   /* no shortcut: the exact quantiles and tails */
        }
        x->npanels[k] = make_edges(fq[k], NQ, 1, x->edges[k], LIFT_PANELS) - 1;
        if (x->npanels[k] < 1)
            return BW_OK;
    }
    for (int l = 0; l < NQ; l++)
        a->qx[l] = fq[0][l] * fq[1][l];
    for (int k = 0; k < x->npanels[0] * GK; k++) {
        int st = arm_point(&x->f[0], 1, bw_gk_node(x->edges[0], k), NULL, NULL, &x->gp[k]);
        if (st)
            return st;
    }
    x->tab = malloc(3 * SEV_PANELS * GK * sizeof *x->tab);
    if (!x->tab)
        return BW_E_NOMEM;
    /* the severity's table, its panels halved until its mass is right */
    double *e = x->edges[1];
    int st;
    for (;;) {
        st = arm_tabulate(&C->rule, e, x->npanels[1], 1, &x->f[1], x->tab);
        if (st || x->f[1].mass_err <= CHEAP_TOL || 2 * x->npanels[1] > SEV_PANELS)
            break;
        for (int p = x->npanels[1]; p > 0; p--) {
            e[2 * p] = e[p];
            e[2 * p - 1] = 0.5 * (e[p - 1] + e[p]);
        }
        x->npanels[1] *= 2;
    }
    a->fac = st || x->f[1].mass_err > CHEAP_TOL ? NULL : x;
    return st;
}

static size_t grid_nodes(const cmp_ctx *C)
{
    return (size_t)(C->nedges - 1) * BW_GK_NODES;
}

/* F, S, density of arm a at u (node >= 0: an initial node of the shared grid). */
static int grid_point(const cmp_ctx *C, int a, double u, int node, double *F, double *S,
                      double *d)
{
    const arm_t *A = &C->arm[a];
    if (A->tab && (node >= 0 || A->fac)) {
        if (node < 0) {
            tab_interp(C, A, u, F, S, d);
            return BW_OK;
        }
        const double *r = A->tab + 3 * (size_t)node;
        *F = r[0], *S = r[1], *d = r[2];
        return BW_OK;
    }
    return arm_point(A, C->logmode, u, F, S, d);
}

/* ======================================================================================== */
/* Phase 3: probabilities and losses on the shared grid                                     */
/* ======================================================================================== */

enum { I_BEST, I_BEAT, I_LOSS, I_LOSS_VS };

typedef struct {
    const cmp_ctx *C;
    int what, i, j;             /* the integral, the arm, the other arm (I_BEAT, I_LOSS_VS) */
    int status;
} grid_ctx;

/* The arm's "not better than t" and "better than t" probabilities: (F, S) when higher is
 * better, (S, F) otherwise; truncated at its truncation point for losses of heavy arms. */
static void worse_better(const cmp_ctx *C, int a, double u, double F, double S, int trunc,
                         double *A, double *B)
{
    const arm_t *arm = &C->arm[a];
    if (trunc && arm->heavy) {
        double t = C->logmode ? exp(u) : u, L = BW_TRUNC_LEVEL;
        if (t >= arm->trunc) {
            F = 1.0, S = 0.0;
        } else {
            S = fmax(S - (1.0 - L), 0.0) / L;
            F = fmin(F / L, 1.0);
        }
    }
    *A = C->req.higher ? F : S;
    *B = C->req.higher ? S : F;
}

static void grid_f(void *vctx, double u, int node, double *out)
{
    grid_ctx *g = vctx;
    const cmp_ctx *C = g->C;
    int n = C->req.narms, loss = g->what == I_LOSS || g->what == I_LOSS_VS;
    double F, S, d, Ai, Bi, A, B;
    out[0] = 0.0;
    int st = grid_point(C, g->i, u, node, &F, &S, &d);
    worse_better(C, g->i, u, F, S, loss, &Ai, &Bi);
    double di = d;
    if (g->what == I_BEAT || g->what == I_LOSS_VS) {
        if (!st)
            st = grid_point(C, g->j, u, node, &F, &S, &d);
        worse_better(C, g->j, u, F, S, loss, &A, &B);
        out[0] = g->what == I_BEAT ? di * A : Ai * B * (C->logmode ? exp(u) : 1.0);
    } else {
        /* prod_{j != i} A_j, and 1 - that product without cancellation */
        double prod = 1.0, l1p = 0.0;
        int small = 1;
        for (int j = 0; j < n && !st; j++) {
            if (j == g->i)
                continue;
            st = grid_point(C, j, u, node, &F, &S, &d);
            worse_better(C, j, u, F, S, loss, &A, &B);
            prod *= A;
            if (B > 0.5)
                small = 0;
            else
                l1p += log1p(-B);
        }
        if (g->what == I_BEST)
            out[0] = di * prod;
        else
            out[0] = Ai * (small ? -expm1(l1p) : 1.0 - prod) * (C->logmode ? exp(u) : 1.0);
    }
    if (!isfinite(out[0]))
        out[0] = 0.0;
    if (st && !g->status)
        g->status = st;
}

/* One integral over the shared grid; its error bound in *err. */
static int grid_integral(const cmp_ctx *C, int what, int i, int j, double *value, double *err)
{
    grid_ctx g = {C, what, i, j, BW_OK};
    int st = bw_quad_gk(grid_f, &g, 1, C->edges, C->nedges - 1, 1e-13, 1e-300, value, err);
    if (st && *err <= 1e-10 * fabs(*value) + 1e-16)
        st = BW_OK;
    return st ? st : g.status;
}

/* ======================================================================================== */
/* Phase 3: lifts                                                                            */
/* ======================================================================================== */

typedef struct {
    const cmp_ctx *C;
    int i, c, relative, upper;
    double x;                   /* log r (relative) or d (absolute) */
    double edges[NQ];           /* the control's panels in its variable */
    int npanels;
    double dc[LIFT_NODES];      /* the control's density at their initial nodes */
    int status;
    double target;              /* log of the tail sought (root finding) */
} lift_ctx;

/* Relative: v = log y, the arm at log r + v, density of log R.  Absolute: y = e^v (or v),
 * the arm at d + y, density of D. */
static void lift_f(void *vctx, double v, int node, double *out)
{
    lift_ctx *L = vctx;
    const cmp_ctx *C = L->C;
    const arm_t *arm = &C->arm[L->i];
    double F, S, d, dc, u;
    if (node >= 0)
        dc = L->dc[node];
    else
        tab_interp(C, &C->arm[L->c], v, &F, &S, &dc);
    out[0] = out[1] = 0.0;
    if (dc == 0.0)
        return;
    /* the arm in the grid's variable u; its density in the lift's variable (log r or d) */
    double t = L->relative ? NAN : L->x + (C->logmode ? exp(v) : v), jac = 1.0;
    if (L->relative)
        u = L->x + v;
    else if (C->logmode && !(t > 0.0))
        return;
    else
        u = C->logmode ? log(t) : t, jac = C->logmode ? 1.0 / t : 1.0;
    tab_interp(C, arm, u, &F, &S, &d);
    out[0] = dc * (L->upper ? S : F);
    out[1] = dc * d * jac;
}

static int lift_setup(lift_ctx *L, const cmp_ctx *C, int i, int relative)
{
    memset(L, 0, sizeof *L);
    L->C = C;
    L->i = i;
    L->c = C->req.control;
    L->relative = relative;
    const arm_t *ctl = &C->arm[L->c];
    int ne = make_edges(ctl->qx, NQ, C->logmode, L->edges, LIFT_PANELS);
    L->npanels = ne - 1;
    if (L->npanels < 1)
        return BW_E_NUMERIC;
    double F, S;
    for (int k = 0; k < L->npanels * BW_GK_NODES; k++) {
        double v = bw_gk_node(L->edges, k);
        if (ctl->closed) {
            int st = arm_point(ctl, C->logmode, v, NULL, NULL, &L->dc[k]);
            if (st)
                return st;
        } else {
            tab_interp(C, ctl, v, &F, &S, &L->dc[k]);
        }
    }
    return BW_OK;
}

/* The lower (or upper) tail of the lift at x and its density. */
static int lift_tail(lift_ctx *L, double x, int upper, double *tail, double *dens)
{
    L->x = x;
    L->upper = upper;
    L->status = BW_OK;
    double res[2], err;
    int st = bw_quad_gk(lift_f, L, 2, L->edges, L->npanels, 1e-13, 1e-300, res, &err);
    if (st && err <= 1e-10 * fabs(res[0]) + 1e-18)
        st = BW_OK;
    *tail = fmin(fmax(res[0], 0.0), 1.0);
    *dens = fmax(res[1], 0.0);
    return st ? st : L->status;
}

static int lift_root_g(void *vctx, double x, double *g, double *dg)
{
    lift_ctx *L = vctx;
    if (atomic_load(&L->C->job->cancel))
        return BW_E_CANCELLED;
    double t, d;
    int st = lift_tail(L, x, L->upper, &t, &d);
    if (st)
        return st;
    double lt = log(t);
    *g = L->upper ? L->target - lt : lt - L->target;
    *dg = t > 0.0 ? d / t : 0.0;
    return BW_OK;
}

/* The quantile with lower tail p (upper tail q = 1 - p) of the lift, from x0 by Newton
 * steps of about `step`. */
static int lift_quantile(lift_ctx *L, double p, double q, double x0, double step, double *x)
{
    L->upper = q < p;
    L->target = log(L->upper ? q : p);
    return bw_root_newton(lift_root_g, L, x0, step, -INFINITY, INFINITY, 1e-13 * step, 1e-14,
                          x);
}

/* Centre and spread (a normal's sd matched at 5 % and 95 %) of an arm, in log t or t. */
static void centre_spread(const arm_t *a, int logs, double *m, double *s)
{
    const double *x = a->qx;
    double lo = logs ? log(x[Q05]) : x[Q05], hi = logs ? log(x[Q95]) : x[Q95];
    *m = logs ? log(x[Q50]) : x[Q50];
    *s = (hi - lo) / (2.0 * Z95);
}

/* Mean, median and the central intervals of the lift of arm i (relative or absolute),
 * as reported: X_i / X_c - 1 and X_i - X_c, or 1 - X_i / X_c and X_c - X_i when lower is
 * better.  Then P(lift > t) for the thresholds. */
static int arm_lift(cmp_ctx *C, int i, int relative)
{
    const bw_cmp_request *R = &C->req;
    arm_t *a = &C->arm[i], *c = &C->arm[R->control];
    bw_cmp_arm *out = &C->res.arm[i];
    int kind = relative ? BW_CMP_RELATIVE : BW_CMP_ABSOLUTE, sgn = R->higher ? 1 : -1;
    lift_ctx L;
    int st = lift_setup(&L, C, i, relative);
    if (st)
        return st;
    double mi, si, mc, sc;
    centre_spread(a, relative, &mi, &si);
    centre_spread(c, relative, &mc, &sc);
    double centre = mi - mc, spread = hypot(si, sc), med;
    if (!(spread > 0.0) || !isfinite(spread))
        spread = relative ? 1e-3 : fmax(fabs(centre), 1e-300);
    st = lift_quantile(&L, 0.5, 0.5, centre, spread, &med);
    double mean = relative ? a->mean * c->inv_mean - 1.0 : a->mean - c->mean;
    for (int k = 0; k < R->nlevels && !st; k++) {
        double tail = 0.5 * (1.0 - R->levels[k]), body = 0.5 * (1.0 + R->levels[k]);
        double z = bw_norm_quantile(body), lo, hi;
        st = lift_quantile(&L, tail, body, med - z * spread, spread, &lo);
        if (!st)
            st = lift_quantile(&L, body, tail, med + z * spread, spread, &hi);
        if (st)
            break;
        double *o = out->lift[k][kind];
        if (relative) {
            o[BW_CMP_MEDIAN] = sgn * expm1(med);
            o[BW_CMP_LO] = R->higher ? expm1(lo) : -expm1(hi);
            o[BW_CMP_HI] = R->higher ? expm1(hi) : -expm1(lo);
        } else {
            o[BW_CMP_MEDIAN] = sgn * med;
            o[BW_CMP_LO] = R->higher ? lo : -hi;
            o[BW_CMP_HI] = R->higher ? hi : -lo;
        }
        o[BW_CMP_MEAN] = sgn * mean;
    }
    for (int k = 0; k < R->nthresholds && !st; k++) {
        /* higher: P(R > 1 + t), P(D > t); lower: P(R < 1 - t), P(D < -t) */
        double t = R->thresholds[k], x, tail, dens;
        x = relative ? log1p(sgn * t) : sgn * t;
        if (isnan(x) || x == -INFINITY) {
            out->above[k][kind] = R->higher ? 1.0 : 0.0;
            continue;
        }
        st = lift_tail(&L, x, R->higher, &tail, &dens);
        out->above[k][kind] = tail;
    }
    return st;
}

/* ======================================================================================== */
/* The job                                                                                   */
/* ======================================================================================== */

static void fill_nan(bw_cmp_arm *o)
{
    double *x = &o->lift[0][0][0];
    for (size_t k = 0; k < sizeof o->lift / sizeof *x; k++)
        x[k] = NAN;
    for (int k = 0; k < BW_CMP_MAX_THRESHOLDS; k++)
        o->above[k][0] = o->above[k][1] = NAN;
    o->prob_best = o->prob_beats = o->loss = o->loss_vs = NAN;
}

/* Phase 3 for arm i. */
static int arm_figures(cmp_ctx *C, int i)
{
    const bw_cmp_request *R = &C->req;
    bw_cmp_arm *o = &C->res.arm[i];
    int c = R->control, st = BW_OK;
    double e1 = 0.0, e2 = 0.0, p1, p2;
    if (R->full) {
        st = grid_integral(C, I_BEST, i, -1, &C->best_raw[i], &C->perr[i]);
        C->perr[i] += C->arm[i].mass_err;
        if (!st)
            st = grid_integral(C, I_LOSS, i, -1, &o->loss, &e1);
        if (!st && i != c) {
            st = grid_integral(C, I_BEAT, i, c, &p1, &e1);
            if (!st)
                st = grid_integral(C, I_BEAT, c, i, &p2, &e2);
            if (!st)
                st = grid_integral(C, I_LOSS_VS, i, c, &o->loss_vs, &e2);
            o->prob_beats = p1 / (p1 + p2);
            C->perr[i] = fmax(C->perr[i], e1 + e2 + fabs(p1 + p2 - 1.0));
        } else {
            o->loss_vs = 0.0;
        }
    }
    if (!st && i != c && (R->nlevels || R->nthresholds)) {
        if (C->logmode)
            st = arm_lift(C, i, 1);
        if (!st)
            st = arm_lift(C, i, 0);
    }
    return st;
}

static void cmp_free(void *p)
{
    cmp_ctx *C = p;
    for (int i = 0; i < BW_CMP_MAX_ARMS; i++)
        free(C->arm[i].tab), free(C->fac[i].tab);
    free(C);
}

static int cmp_block(bw_job *job, size_t b)
{
    cmp_ctx *C = job->ctx;
    arm_t *a = &C->arm[b];
    if (a->status)
        return 0;
    if (C->phase == 1) {
        if (arm_prepare(a, (int)b))
            a->status = a->err.status;
        else if (a->q.nfactors == 2 && a->positive) {
            a->status = compound_prepare(C, a);
            if (!a->status && !a->fac)
                a->status = arm_quantiles(a);
            if (a->status)
                bw_fail(&a->err, a->status, "arm %zu: its factors' quantiles or densities "
                        "could not be computed to full accuracy", b);
        }
        return 0;
    }
    if (C->phase == 2) {
        size_t n = grid_nodes(C);
        double *tab = malloc(3 * n * sizeof *tab);
        if (!tab) {
            bw_fail(&a->err, BW_E_NOMEM, "out of memory");
            a->status = BW_E_NOMEM;
            return 0;
        }
        a->status = arm_tabulate(&C->rule, C->edges, C->nedges - 1, C->logmode, a, tab);
        a->tab = tab;
        if (a->status)
            bw_fail(&a->err, a->status, "arm %zu: its distribution function could not be "
                    "evaluated to full accuracy", b);
        return 0;
    }
    int st = arm_figures(C, (int)b);
    if (st)
        a->status = st, bw_fail(&a->err, st, "arm %zu: %s", b,
                                st == BW_E_CANCELLED ? "cancelled"
                                : "an integral of the comparison did not reach its "
                                  "tolerance");
    return 0;
}

static int cmp_finish(bw_job *job)
{
    cmp_ctx *C = job->ctx;
    int n = C->req.narms;
    for (int i = 0; i < n; i++) {
        if (C->arm[i].status) {
            job->err = C->arm[i].err;
            return -1;
        }
    }
    if (C->phase == 1) {
        double qs[BW_CMP_MAX_ARMS * (NQ + 1)];
        int m = 0;
        C->logmode = 1;
        for (int i = 0; i < n; i++) {
            const arm_t *a = &C->arm[i];
            C->logmode &= a->positive;
            C->res.arm[i].mean = a->mean;
            C->res.arm[i].truncated = a->heavy;
            C->res.arm[i].log_mean[0] = a->log_mean[0];
            C->res.arm[i].log_mean[1] = a->log_mean[1];
            for (int k = 0; k < NQ; k++)
                qs[m++] = a->qx[k];
            qs[m++] = a->heavy ? a->trunc : NAN;
        }
        C->nedges = make_edges(qs, m, C->logmode, C->edges, MAX_EDGES - 1);
        if (C->nedges < 2) {
            bw_fail(&job->err, BW_E_NUMERIC, "the arms' distributions are degenerate");
            return -1;
        }
        C->phase = 2;
        return BW_JOB_AGAIN;
    }
    if (C->phase == 2) {
        C->phase = 3;
        return BW_JOB_AGAIN;
    }
    double sum = 0.0, err = 0.0;
    for (int i = 0; i < n; i++) {
        sum += C->best_raw[i];
        err = fmax(err, C->perr[i]);
    }
    for (int i = 0; i < n && C->req.full; i++)
        C->res.arm[i].prob_best = C->best_raw[i] / sum;
    C->res.error = C->req.full ? err + fabs(sum - 1.0) : 0.0;
    return 0;
}

int bw_compare_check(const bw_cmp_request *req, bw_error *err)
{
    char buf[32];
    if (req->narms < 2 || req->narms > BW_CMP_MAX_ARMS)
        return bw_fail(err, BW_E_DOMAIN, "a comparison takes 2 to %d arms, not %d",
                       BW_CMP_MAX_ARMS, req->narms);
    if (req->control < 0 || req->control >= req->narms)
        return bw_fail(err, BW_E_DOMAIN, "control = %d is not an arm index", req->control);
    if (req->nlevels < 0 || req->nlevels > BW_CMP_MAX_LEVELS || req->nthresholds < 0 ||
        req->nthresholds > BW_CMP_MAX_THRESHOLDS)
        return bw_fail(err, BW_E_DOMAIN, "at most %d levels and %d thresholds",
                       BW_CMP_MAX_LEVELS, BW_CMP_MAX_THRESHOLDS);
    for (int k = 0; k < req->nlevels; k++)
        if (!(req->levels[k] > 0.0 && req->levels[k] < 1.0))
            return bw_fail(err, BW_E_DOMAIN, "level = %s must be in (0, 1)",
                           bw_fmt(buf, sizeof buf, req->levels[k]));
    for (int k = 0; k < req->nthresholds; k++)
        if (!isfinite(req->thresholds[k]))
            return bw_fail(err, BW_E_DOMAIN, "threshold = %s must be finite",
                           bw_fmt(buf, sizeof buf, req->thresholds[k]));
    return bw_compare_mc_check(req, err);
}

bw_job *bw_compare_job(const bw_cmp_request *req)
{
    if (bw_compare_mc_wanted(req))      /* an arm without tractable integrals */
        return bw_compare_mc_job(req);
    cmp_ctx *C = calloc(1, sizeof *C);
    if (!C)
        return NULL;
    C->req = *req;
    C->phase = 1;
    rule_init(&C->rule);
    C->res.narms = req->narms;
    for (int i = 0; i < req->narms; i++) {
        C->arm[i].q = req->arm[i];
        fill_nan(&C->res.arm[i]);
    }
    bw_job *job = bw_job_new((size_t)req->narms, cmp_block, cmp_finish, C, cmp_free);
    if (job)
        C->job = job;
    return job;
}

const bw_cmp_result *bw_compare_result(const bw_job *job)
{
    const bw_cmp_result *mc = bw_compare_mc_result(job);
    if (mc)
        return mc;
    return &((const cmp_ctx *)job->ctx)->res;
}
