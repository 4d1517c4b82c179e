/*
 * compare.c -- decisions between arms (compare.h): one job in three phases.
 *
 *   phase 1  per arm: its kind, quantile positions, mean, E[1/X], E[log] of its factors
 *            and, where the mean is infinite, its truncation point.  Arms without closed
 *            forms (the lognormal mean, compound products) get a private table here: the
 *            density of log X on panels from its quantiles (a compound's is the
 *            convolution of its factors' tables), F and S integrated from it;
 *   phase 2  per arm: its table on the shared grid (the union of all arms' quantile
 *            positions, thinned to about each arm's own panel widths): closed forms are
 *            evaluated at every node and F, S integrated from the density (exact anchors,
 *            a mass check, the exact tails where it fails); private tables are
 *            interpolated.  Then its quantile nodes, if a lift sums over them;
 *   phase 3  P(best), P(beat control) and the expected losses of every arm together, in
 *            one adaptive Gauss-Kronrod pass over the shared grid (every integrand on the
 *            same nodes, each with its own error estimate), and per arm its lifts
 *            (quantiles by Newton on the lift's distribution function, a trapezoidal sum
 *            over normal scores certified by the sum on twice the nodes).
 *
 * Each unit of work (an arm, the pass, an arm's lifts) is a block of its phase, except
 * that a comparison of up to three closed-form arms runs each phase as one block (quicker
 * on one thread than handed between threads).  Loops check for cancellation at least once
 * per panel; progress counts units.  The integration variable u is log t when every arm is
 * positive, t otherwise.
 */
#include <float.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "compare.h"
#include "specfun.h"

#include "compare_rule.h"

/* ======================================================================================== */
/* Constants                                                                                 */
/* ======================================================================================== */

#define NQ 9
#define Q05 3
#define Q50 4
#define Q95 5
#define GK BW_GK_NODES
#define MAX_PANELS 180          /* the shared grid and every private table */
#define Z95 1.6448536269514722  /* the 0.95 quantile of N(0, 1) */
#define MASS_TOL 1e-12          /* |F(first edge) + int density + S(last edge) - 1| */
#define MASS_TOL_PRIV 1e-9      /* the same for private tables (products, lognormal means) */
#define EDGE_TOL 1e-14          /* the most mass a table may leave beyond each end */

static const double q_levels[NQ] = {1e-15, 1e-9, 1e-4, 0.05, 0.5, 0.95, 1.0 - 1e-4,
                                    1.0 - 1e-9, 1.0 - 1e-15};

static int cancelled(const bw_job *job)
{
    return atomic_load(&job->cancel) != 0;
}

/* ======================================================================================== */
/* Tables: F, S and the density of a distribution at the Gauss-Kronrod nodes of panels      */
/* ======================================================================================== */

/* The standard panel [-1, 1]: its nodes (ascending) and their barycentric weights; the
 * integration matrix and the Gauss weights are cmp_rule_W and cmp_rule_G10. */
typedef struct {
    double x[GK], bary[GK];
} panel_rule;

static void rule_init(panel_rule *r)
{
    static const double unit[2] = {-1.0, 1.0};
    for (int j = 0; j < GK; j++)
        r->x[j] = bw_gk_node(unit, j);
    for (int k = 0; k < GK; k++) {
        double prod = 1.0;
        for (int j = 0; j < GK; j++)
            if (j != k)
                prod *= r->x[k] - r->x[j];
        r->bary[k] = 1.0 / prod;
    }
}

typedef struct {
    int P;                      /* panels */
    double *e;                  /* P + 1 edges */
    double *v;                  /* per panel p, its nodes' F, S and density in three columns:
                                 * v[(3 p + c) GK + j], c = COL_F, COL_S, COL_D (tab_at) */
    double *Fe, *Se;            /* F and S at the edges */
    double mass_err;            /* |F(e[0]) + int density + S(e[P]) - 1| */
    double *mem;                /* the allocation holding all of the above */
} table_t;

static void table_free(table_t *T)
{
    free(T->mem);
    memset(T, 0, sizeof *T);
}

static int table_alloc(table_t *T, int P, const double *edges)
{
    size_t nv = (size_t)3 * (size_t)P * GK, ne = (size_t)P + 1;
    double *m = malloc((nv + 3 * ne) * sizeof *m);
    if (!m)
        return BW_E_NOMEM;
    free(T->mem);
    T->mem = m;
    T->P = P;
    T->v = m;
    T->Fe = m + nv;
    T->Se = T->Fe + ne;
    T->e = T->Se + ne;
    memmove(T->e, edges, ne * sizeof *edges);
    T->mass_err = 0.0;
    return BW_OK;
}

enum { COL_F, COL_S, COL_D };

/* Column c of panel p (its GK nodes). */
static double *tab_col(const table_t *T, int p, int c)
{
    return T->v + (size_t)(3 * p + c) * GK;
}

/* Value c at node k (panel k / GK, node k % GK). */
static double *tab_at(const table_t *T, int k, int c)
{
    return tab_col(T, k / GK, c) + k % GK;
}

static double node_u(const table_t *T, int k)
{
    return bw_gk_node(T->e, k);
}

/* Make F + S = 1, keeping the smaller of the two (the accurate one). */
static void tails_pair(double *F, double *S)
{
    if (*F <= *S) {
        *F = fmax(*F, 0.0);
        *S = 1.0 - *F;
    } else {
        *S = fmax(*S, 0.0);
        *F = 1.0 - *S;
    }
}

/* F and S at T's nodes and edges from the densities at its nodes and the tails beyond its
 * ends, F0 = F(e[0]) and SP = S(e[P]): the interpolant of the density integrated exactly
 * on each panel (cmp_rule_W), F accumulated from the left and S from the right, each
 * accurate where it is small; sets mass_err.  The pairs are made consistent by tab_settle. */
static void tab_integrate(table_t *T, double F0, double SP)
{
    int P = T->P;
    double left = F0, right = SP;
    /* within each panel: the integral up to each node into the F column, the panel's total
     * into Fe[p + 1] for now */
    for (int p = 0; p < P; p++) {
        double h = 0.5 * (T->e[p + 1] - T->e[p]), *Fc = tab_col(T, p, COL_F);
        const double *dc = tab_col(T, p, COL_D);
        for (int j = 0; j <= GK; j++) {
            double acc = 0.0;
            for (int k = 0; k < GK; k++)
                acc += cmp_rule_W[j][k] * dc[k];
            if (j < GK)
                Fc[j] = h * acc;
            else
                T->Fe[p + 1] = h * acc;
        }
    }
    /* S from the right, with the panels' totals */
    T->Se[P] = SP;
    for (int p = P - 1; p >= 0; p--) {
        double *Fc = tab_col(T, p, COL_F), *Sc = tab_col(T, p, COL_S), tot = T->Fe[p + 1];
        for (int j = 0; j < GK; j++)
            Sc[j] = right + (tot - Fc[j]);
        right += tot;
        T->Se[p] = right;
    }
    /* F from the left */
    T->Fe[0] = F0;
    for (int p = 0; p < P; p++) {
        double *Fc = tab_col(T, p, COL_F);
        for (int j = 0; j < GK; j++)
            Fc[j] += left;
        left += T->Fe[p + 1];
        T->Fe[p + 1] = left;
    }
    T->mass_err = fabs(left + SP - 1.0);
}

static void tab_settle(table_t *T)
{
    for (int k = 0; k < T->P * GK; k++)
        tails_pair(tab_at(T, k, COL_F), tab_at(T, k, COL_S));
    for (int p = 0; p <= T->P; p++)
        tails_pair(&T->Fe[p], &T->Se[p]);
}

/* The barycentric weights bary_k / (y - x_k) of the panel's nodes at y in [-1, 1] into w,
 * their sum into *den; returns the node y falls on (then w is not set), or -1. */
static int bary_weights(const panel_rule *r, double y, double *w, double *den)
{
    double dl[GK], sum = 0.0;
    int hit = -1;
    for (int k = 0; k < GK; k++)
        dl[k] = y - r->x[k];
    for (int k = 0; k < GK; k++)
        if (dl[k] == 0.0)
            hit = k;
    if (hit >= 0)
        return hit;
    for (int k = 0; k < GK; k++)
        w[k] = r->bary[k] / dl[k];
    for (int k = 0; k < GK; k++)
        sum += w[k];
    *den = sum;
    return -1;
}

/* The interpolant of a column at the point of bary_weights. */
static double bary_value(const double *w, double den, int hit, const double *col)
{
    if (hit >= 0)
        return col[hit];
    double acc = 0.0;
    for (int k = 0; k < GK; k++)
        acc += w[k] * col[k];
    return acc / den;
}

/* The panel of T holding u (e[0] < u < e[P]) and u's position y in it. */
static int tab_find(const table_t *T, double u, double *y)
{
    int lo = 0, hi = T->P;
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        if (T->e[mid] <= u)
            lo = mid;
        else
            hi = mid;
    }
    double c = 0.5 * (T->e[lo] + T->e[lo + 1]), h = 0.5 * (T->e[lo + 1] - T->e[lo]);
    *y = (u - c) / h;
    return lo;
}

/* F, S and the density at u, interpolated on the panel holding it (F = S = NULL: the
 * density alone); outside the panels the tails are 0 and 1. */
static void tab_eval(const panel_rule *r, const table_t *T, double u, double *F, double *S,
                     double *d)
{
    *d = 0.0;
    if (!(u > T->e[0]) || !(u < T->e[T->P])) {
        int above = u >= T->e[T->P];
        if (F)
            *F = above, *S = !above;
        return;
    }
    double y, w[GK], den = 1.0;
    int p = tab_find(T, u, &y), hit = bary_weights(r, y, w, &den);
    if (F) {
        *F = fmin(fmax(bary_value(w, den, hit, tab_col(T, p, COL_F)), 0.0), 1.0);
        *S = fmin(fmax(bary_value(w, den, hit, tab_col(T, p, COL_S)), 0.0), 1.0);
    }
    *d = fmax(bary_value(w, den, hit, tab_col(T, p, COL_D)), 0.0);
}

/* One tail (COL_F or COL_S) and the density at u (tab_eval for a single tail). */
static void tab_tail(const panel_rule *r, const table_t *T, double u, int col, double *t,
                     double *d)
{
    *d = 0.0;
    if (!(u > T->e[0]) || !(u < T->e[T->P])) {
        *t = (u >= T->e[T->P]) == (col == COL_F);
        return;
    }
    double y, w[GK], den = 1.0;
    int p = tab_find(T, u, &y), hit = bary_weights(r, y, w, &den);
    *t = fmin(fmax(bary_value(w, den, hit, tab_col(T, p, col)), 0.0), 1.0);
    *d = fmax(bary_value(w, den, hit, tab_col(T, p, COL_D)), 0.0);
}

/* The u where T's lower tail (upper = 0) or upper tail (upper = 1) is p: the panel and the
 * pair of nodes around it from the table, then Newton steps on the interpolant kept inside
 * that bracket.  Clamped to T's ends. */
static double tab_quantile(const panel_rule *r, const table_t *T, double p, int upper)
{
    int P = T->P;
    const double *tail_e = upper ? T->Se : T->Fe;
    double sg = upper ? -1.0 : 1.0;     /* the tail grows with u (lower) or falls */
    if (!(sg * (p - tail_e[0]) > 0.0))
        return T->e[0];
    if (!(sg * (tail_e[P] - p) > 0.0))
        return T->e[P];
    int lo = 0, hi = P;
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        if (sg * (tail_e[mid] - p) <= 0.0)
            lo = mid;
        else
            hi = mid;
    }
    const double *tc = tab_col(T, lo, upper ? COL_S : COL_F), *dc = tab_col(T, lo, COL_D);
    double c = 0.5 * (T->e[lo] + T->e[lo + 1]), h = 0.5 * (T->e[lo + 1] - T->e[lo]);
    /* the bracketing nodes (the panel's ends as nodes -1 and +1), with the slopes of the
     * log tail there */
    double ya = -1.0, yb = 1.0, ta = tail_e[lo], tb = tail_e[lo + 1], ga = NAN, gb = NAN;
    for (int k = 0; k < GK; k++) {
        if (sg * (tc[k] - p) <= 0.0) {
            ya = r->x[k], ta = tc[k], ga = sg * dc[k] * h / ta;
        } else {
            yb = r->x[k], tb = tc[k], gb = sg * dc[k] * h / tb;
            break;
        }
    }
    /* start from the cubic Hermite interpolant of the log tail, else its chord */
    double y = ya + (yb - ya) * 0.5;
    if (ta > 0.0 && tb > 0.0 && ta != tb) {
        double la = log(ta), lb = log(tb), lp = log(p), dy = yb - ya, s = (lp - la) / (lb - la);
        y = ya + dy * s;
        if (isfinite(ga) && isfinite(gb)) {
            /* one Newton step on the Hermite cubic in s from the chord's root */
            double m0 = ga * dy / (lb - la), m1 = gb * dy / (lb - la);
            for (int it = 0; it < 2; it++) {
                double s2 = s * s, s3 = s2 * s;
                double hv = (-2 * s3 + 3 * s2) + m0 * (s3 - 2 * s2 + s) + m1 * (s3 - s2);
                double hd = (-6 * s2 + 6 * s) + m0 * (3 * s2 - 4 * s + 1) + m1 * (3 * s2 - 2 * s);
                double sn = hd > 0.0 ? s - (hv - (lp - la) / (lb - la)) / hd : s;
                if (!(sn > 0.0 && sn < 1.0))
                    break;
                s = sn;
            }
            y = ya + dy * s;
        }
    }
    for (int it = 0; it < 40; it++) {
        double w[GK], den = 1.0;
        int hit = bary_weights(r, y, w, &den);
        double t = bary_value(w, den, hit, tc), dd = bary_value(w, den, hit, dc);
        if (sg * (t - p) <= 0.0)
            ya = y;
        else
            yb = y;
        double slope = sg * dd * h, yn = sg * slope > 0.0 ? y - (t - p) / slope : NAN;
        int newton = yn > ya && yn < yb;
        if (!newton)
            yn = 0.5 * (ya + yb);
        double dy = fabs(yn - y);
        y = yn;
        /* Newton converges quadratically: a step this small leaves an error below 1e-13 */
        if ((newton && dy <= 1e-7) || yb - ya <= 1e-13)
            break;
    }
    return c + h * y;
}

/* ---------------------------------------------------------------------------------------- */
/* Panels                                                                                    */
/* ---------------------------------------------------------------------------------------- */

/* The widest panel allowed at distance dist beyond the bulk of width bulk. */
static double tail_width(double bulk, double dist)
{
    return fmax(bulk, 2.0 * dist);
}

typedef struct {
    double x;
    int keep;
} edge_pos;

/* Half the narrowest own panel (of the arms' quantile positions qa) holding or touching
 * x, or 0. */
static double own_half_width(const double *qa, int narm, double x)
{
    double w = INFINITY;
    for (int j = 0; j < narm; j++) {
        const double *q = qa + (size_t)j * NQ;
        for (int k = 0; k + 1 < NQ; k++)
            if (q[k] <= x && x <= q[k + 1])
                w = fmin(w, q[k + 1] - q[k]);
    }
    return isfinite(w) ? 0.5 * w : 0.0;
}

/* Edges from positions x[0 .. n) (non-finite skipped), sorted, without near-duplicates,
 * the positions of narm arms' quantile levels qa[narm][NQ] (ascending, NaN skipped) giving
 * each arm's own panels: a position closer to the last edge kept than half the narrowest
 * own panel holding it is dropped (many similar arms do not multiply the panels; each arm
 * keeps panels about as narrow as its own), unless keep marks it (a kink).  The first and
 * last positions stay.  Then the panels beyond the bulk [lo, hi] are split, from the end
 * nearer the bulk out, so that none is much wider than max(hi - lo, twice its distance to
 * the bulk) (algebraic tails get geometric panels).  At most cap panels.  Returns how many
 * edges (< 2: degenerate). */
static int make_edges(const double *x, const int *keep, int n, const double *qa, int narm,
                      double lo, double hi, double *edges, int cap)
{
    edge_pos s[BW_CMP_MAX_ARMS * (NQ + 1)];
    int ns = 0, m = 0;
    for (int k = 0; k < n && ns < (int)(sizeof s / sizeof s[0]); k++)
        if (isfinite(x[k]))
            s[ns].x = x[k], s[ns++].keep = keep ? keep[k] : 0;
    for (int a = 1; a < ns; a++)        /* insertion sort: a few hundred at most */
        for (int b = a; b > 0 && s[b].x < s[b - 1].x; b--) {
            edge_pos tmp = s[b];
            s[b] = s[b - 1];
            s[b - 1] = tmp;
        }
    for (int k = 0; k < ns; k++) {
        int last = k == ns - 1;
        if (m > 0 && !(s[k].x - s[m - 1].x > 1e-12 * fmax(1.0, fabs(s[k].x)))) {
            s[m - 1].keep |= s[k].keep;
            continue;
        }
        if (m > 0 && !last && !s[k].keep &&
            s[k].x - s[m - 1].x < own_half_width(qa, narm, s[k].x))
            continue;
        /* the last position stays; the one kept before it goes if too close */
        if (last && m > 1 && !s[m - 1].keep &&
            s[k].x - s[m - 1].x < own_half_width(qa, narm, s[m - 1].x))
            m--;
        s[m++] = s[k];
    }
    double bulk = hi - lo;
    int e = 0, split = isfinite(bulk) && bulk > 0.0;
    for (int k = 0; k < m; k++) {
        if (e == cap + 1) {     /* out of room: the last position ends the panels */
            edges[cap] = fmax(edges[cap], s[m - 1].x);
            break;
        }
        double a = e ? edges[e - 1] : s[k].x, b = s[k].x, stack[64];
        int ns2 = 0;
        while (split && e && a >= hi && e < cap) {          /* right tail: out from a */
            double w = tail_width(bulk, a - hi);
            if (!(b - a > 1.5 * w))
                break;
            edges[e++] = a += w;
        }
        while (split && e && b <= lo && ns2 < 64 && e + ns2 < cap) {  /* left: out from b */
            double w = tail_width(bulk, lo - b);
            if (!(b - a > 1.5 * w))
                break;
            stack[ns2++] = b -= w;
        }
        while (ns2 > 0)
            edges[e++] = stack[--ns2];
        edges[e++] = s[k].x;
    }
    return e;
}

/* ======================================================================================== */
/* Distributions                                                                             */
/* ======================================================================================== */

/* F, S and the density of a closed-form distribution: with respect to log t at t = e^lt
 * (positive kinds), or t (Student t).  F = S = NULL: the density alone. */
static void closed_eval(const bw_dist *f, double t, double lt, double *F, double *S,
                        double *d)
{
    double pa = f->p[0], pb = f->p[1], lp, lq, lg, Fv = 0.0, Sv = 1.0;
    int tails = F != NULL;
    switch (f->kind) {
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
        lg = f->kind == BW_KIND_GAMMA ? log(pb) + lt : log(pb) - lt;
        if (tails && f->kind == BW_KIND_GAMMA)
            bw_gamma_inc(pa, exp(lg), &Fv, &Sv);
        else if (tails)
            bw_gamma_inc(pa, exp(lg), &Sv, &Fv);
        *d = exp(bw_gamma_logkernel(pa, exp(lg), lg));
        break;
    default: {                  /* BW_KIND_NIG_MEAN */
        double df = 2.0 * f->p[2], scale = sqrt(f->p[3] / (f->p[2] * f->p[1]));
        double z = (t - f->p[0]) / scale;
        if (tails)
            bw_t_cdf(df, z, &Fv, &Sv);
        *d = exp(bw_t_logpdf(df, z)) / scale;
        break;
    }
    }
    if (tails)
        *F = Fv, *S = Sv;
}

/* ---------------------------------------------------------------------------------------- */
/* The lognormal mean V = exp(mu + sigma^2 / 2), NIG_LNMEAN {m, kappa, alpha, beta}, in    */
/* u = log V: with G = beta / sigma^2 ~ Gamma(alpha, 1), s = beta / G, u ~ N(m + s/2, s /   */
/* kappa) given G; so with w = log G, r = sqrt(kappa G / beta), c = sqrt(kappa beta / G) / 2 */
/* and z = (u - m) r - c:  density(u) = int p(w) r phi(z) dw, F(u) = int p(w) Phi(z) dw.     */
/* ---------------------------------------------------------------------------------------- */

#define LNM_NODES ((NQ - 1) * GK)

typedef struct {
    double m, kappa, alpha, beta;
    double edges[NQ];           /* panels in w: Gamma(alpha, 1) quantiles of log G */
    double r[LNM_NODES], c[LNM_NODES], pw[LNM_NODES];   /* at their initial nodes */
} lnm_t;

static void lnm_node(const lnm_t *L, double w, double *r, double *c, double *pw)
{
    double G = exp(w);
    *r = sqrt(L->kappa * G / L->beta);
    *c = 0.5 * sqrt(L->kappa * L->beta / G);
    *pw = exp(bw_gamma_logkernel(L->alpha, G, w));
}

static int lnm_setup(lnm_t *L, const bw_dist *d)
{
    L->m = d->p[0], L->kappa = d->p[1], L->alpha = d->p[2], L->beta = d->p[3];
    for (int k = 0; k < NQ; k++) {
        int st = bw_gamma_inc_inv(L->alpha, q_levels[k], 1.0 - q_levels[k], &L->edges[k]);
        if (st || (k && !(L->edges[k] > L->edges[k - 1])))
            return st ? st : BW_E_NUMERIC;
    }
    for (int k = 0; k < LNM_NODES; k++)
        lnm_node(L, bw_gk_node(L->edges, k), &L->r[k], &L->c[k], &L->pw[k]);
    return BW_OK;
}

typedef struct {
    const lnm_t *L;
    double u;
    int tails;                  /* 0: density; 1: lower tail and density; 2: upper tail */
    int cached;                 /* the initial nodes are L's (its panels) */
} lnm_ctx;

static void lnm_f(void *vctx, double w, int node, double *out)
{
    const lnm_ctx *cx = vctx;
    const lnm_t *L = cx->L;
    double r, c, pw;
    if (node >= 0 && cx->cached)
        r = L->r[node], c = L->c[node], pw = L->pw[node];
    else
        lnm_node(L, w, &r, &c, &pw);
    double z = (cx->u - L->m) * r - c;
    out[0] = out[1] = 0.0;
    if (pw == 0.0 || isnan(z))
        return;
    double dens = pw * r * bw_norm_pdf(z);
    if (!cx->tails) {
        out[0] = dens;
        return;
    }
    out[0] = pw * bw_norm_cdf(cx->tails == 1 ? z : -z);
    out[1] = dens;
}

static int lnm_quad(lnm_ctx *cx, const double *edges, int npanels, double *res)
{
    double err;
    int st = bw_quad_gk(lnm_f, cx, cx->tails ? 2 : 1, edges, npanels, 1e-12, 1e-300, res,
                        &err);
    return st && !(err <= 1e-9 * fabs(res[0]) + 1e-300) ? st : BW_OK;
}

/* The density of u = log V (F != NULL: and F, S) at u.  Below m, over L's panels in w;
 * above, z = A e^(w/2) - B e^(-w/2) increases with w and the integrand lives where |z| is
 * moderate, a window that narrows far out (where G = beta / (2 (u - m)) is deep in its
 * lower tail): there the window is integrated alone, and the tails are the mass of w on
 * either side of it (Phi(z) is 0 or 1 there to 1e-23). */
#define LNM_ZW 10.0
static int lnm_eval(const lnm_t *L, double u, double *F, double *S, double *d)
{
    lnm_ctx cx = {L, u, 0, 1};
    double res[2] = {0.0, 0.0};
    int st;
    if (!(u > L->m)) {
        if (!F)
            return lnm_quad(&cx, L->edges, NQ - 1, d);
        cx.tails = 1;
        st = lnm_quad(&cx, L->edges, NQ - 1, res);
        *F = fmin(fmax(res[0], 0.0), 1.0);
        *S = 1.0 - *F;
        *d = fmax(res[1], 0.0);
        return st;
    }
    static const double zs[] = {-LNM_ZW, -4.0, -1.5, 0.0, 1.5, 4.0, LNM_ZW};
    enum { NW = sizeof zs / sizeof zs[0] };
    double A = (u - L->m) * sqrt(L->kappa / L->beta), B = 0.5 * sqrt(L->kappa * L->beta);
    double w[NW];
    for (int k = 0; k < NW; k++)
        w[k] = 2.0 * log((zs[k] + sqrt(zs[k] * zs[k] + 4.0 * A * B)) / (2.0 * A));
    cx.cached = 0;
    if (!F)
        return lnm_quad(&cx, w, NW - 1, d);
    double below, above, lo_in, hi_in;
    bw_gamma_inc(L->alpha, exp(w[0]), &below, &lo_in);
    bw_gamma_inc(L->alpha, exp(w[NW - 1]), &hi_in, &above);
    cx.tails = 1;
    st = lnm_quad(&cx, w, NW - 1, res);
    *F = fmin(res[0] + above, 1.0);
    *d = fmax(res[1], 0.0);
    cx.tails = 2;
    if (!st)
        st = lnm_quad(&cx, w, NW - 1, res);
    *S = fmin(res[0] + below, 1.0);
    return st;
}

/* Positions in u beyond its quantiles at q_levels: both parts of u = m + s/2 + sqrt(s /
 * kappa) Z at their own level (the tables check the mass beyond their ends). */
static int lnm_positions(const lnm_t *L, double *x)
{
    for (int k = 0; k < NQ; k++) {
        double lg;
        int st = bw_gamma_inc_inv(L->alpha, 1.0 - q_levels[k], q_levels[k], &lg);
        if (st)
            return st;
        double s = L->beta * exp(-lg), z = k < NQ / 2 ? bw_norm_quantile(q_levels[k])
                                                    : -bw_norm_quantile(1.0 - q_levels[k]);
        x[k] = L->m + 0.5 * s + z * sqrt(s / L->kappa);
    }
    return BW_OK;
}

/* ======================================================================================== */
/* Arms                                                                                      */
/* ======================================================================================== */

/* Quantile nodes for trapezoidal sums over normal scores z: level L has the step
 * h_L = 0.5 / 2^L and the nodes z = j h_L, |z| <= ZMAX (level L - 1 is every other one). */
#define ZLEVELS 5
#define ZMAX 7.75
static int zn_half(int L)       /* the nodes are j = -half .. half */
{
    return (int)floor(ZMAX / (0.5 / (double)(1 << L)) + 1e-9);
}

typedef struct {
    int level;                  /* the finest level computed, -1: none */
    double *u;                  /* its nodes, in the grid's variable (owned) */
} znodes_t;

/* The normalised trapezoid weights of every level, w[L][0 .. 2 half_L] (of N(0, 1) at the
 * nodes), and their sums before normalising: phi(z + h) = phi(z) e^(-h^2 / 2) e^(-h z),
 * the last factor geometric in z. */
#define ZW_TOTAL (31 + 63 + 125 + 249 + 497)
typedef struct {
    double buf[ZW_TOTAL];
    const double *w[ZLEVELS];
    double sum[ZLEVELS];
} zweights_t;

static void zweights_init(zweights_t *zw)
{
    double *w = zw->buf;
    for (int L = 0; L < ZLEVELS; L++) {
        int half = zn_half(L);
        double h = 0.5 / (double)(1 << L), c = exp(-0.5 * h * h), q = c * c;
        double phi = 0.3989422804014327, r = 1.0, sum = phi;
        w[half] = phi;
        for (int j = 1; j <= half; j++) {
            phi *= c * r;       /* r = e^(-h z) at z = (j - 1) h */
            r *= q;
            w[half + j] = w[half - j] = phi;
            sum += 2.0 * phi;
        }
        for (int j = 0; j <= 2 * half; j++)
            w[j] /= sum;
        zw->w[L] = w;
        zw->sum[L] = sum;
        w += 2 * half + 1;
    }
}

/* One factor of an arm (its only one, or one of a compound's two) with its table in
 * log t: closed forms, or the lognormal mean (lnm). */
typedef struct {
    bw_dist d;
    lnm_t *lnm;                 /* owned, for BW_KIND_NIG_LNMEAN */
    double qu[NQ];              /* positions of its quantile levels in log t */
    table_t tab;
    znodes_t zn;
} factor_t;

enum { ARM_CLOSED = 1, ARM_TABLE = 2 };

typedef struct {
    bw_quantity q;
    int how;                    /* ARM_CLOSED: closed forms; ARM_TABLE: a private table */
    int positive;               /* the arm is > 0 */
    int heavy;                  /* infinite mean: losses use it truncated at `trunc` */
    double trunc;
    double mean, inv_mean;      /* E[X] (mean()'s truncation where infinite), E[1/X] */
    double log_mean[2];         /* E[log factor] (compare.h) */
    double qu[NQ];              /* its quantiles at q_levels: log t (positive) or t */
    factor_t fac[2];            /* ARM_TABLE: its factors' tables */
    table_t own;                /* ARM_TABLE with two factors: its private table */
    const table_t *priv;        /* ARM_TABLE: the private table (own, or fac[0].tab) */
    table_t grid;               /* on the shared grid */
    znodes_t zn;                /* quantile nodes for the lifts */
    int lift_over;              /* some lift is summed over its quantile nodes */
    double own_lo, own_hi;      /* its range (first and last quantile positions) on the grid */
    int bfast;                  /* a beta arm with a, b >= 10: bk holds the constants of */
    double bk[3];               /* its density (beta_density) */
    int status;                 /* the first failure of its blocks */
    bw_error err;
} arm_t;

typedef struct {
    bw_cmp_request req;
    panel_rule rule;
    bw_job *job;
    int phase;
    int logmode;                /* u = log t (every arm positive), else u = t */
    int nedges;
    double edges[MAX_PANELS + 1];
    int nlift, lift_arm[BW_CMP_MAX_ARMS];      /* phase 3: the arms with lifts */
    int nunits, per;            /* the units of the phase (cmp_unit), per block */
    zweights_t zw;
    int int_status;             /* phase 3 integrals */
    bw_error int_err;
    double best_raw[BW_CMP_MAX_ARMS], perr[BW_CMP_MAX_ARMS];
    bw_cmp_result res;
    arm_t arm[];                /* req.narms of them */
} cmp_ctx;

static int has_kind(const bw_quantity *q, int kind)
{
    for (int k = 0; k < q->nfactors; k++)
        if (q->f[k].kind == kind)
            return 1;
    return 0;
}

/* The constants of a Beta(a, b) density in log t for a, b >= 10 (bw_beta_logkernel's
 * Stirling form): the part not depending on t, log(a / n), log(b / n). */
static void beta_consts(arm_t *a)
{
    double pa = a->q.f[0].p[0], pb = a->q.f[0].p[1], n = pa + pb;
    a->bfast = a->how == ARM_CLOSED && a->q.f[0].kind == BW_KIND_BETA && pa >= 10.0 &&
               pb >= 10.0;
    if (a->bfast) {
        a->bk[0] = 0.5 * log((pa / n) * pb) - 0.91893853320467274178 - bw_stirlerr(pa) -
                   bw_stirlerr(pb) + bw_stirlerr(n);
        a->bk[1] = log(pa / n);
        a->bk[2] = log(pb / n);
    }
}

/* The density of log t at u = log t of a beta arm with bfast set: t^a (1 - t)^(b - 1) / B,
 * as a log1pmx (t / t0) + b log1pmx ((1 - t) / (1 - t0)) plus constants, t0 = a / n. */
static double beta_density(const arm_t *a, double u)
{
    if (!(u < 0.0))
        return 0.0;
    double pa = a->q.f[0].p[0], pb = a->q.f[0].p[1], t = exp(u), y = -expm1(u);
    double ly = t > 0.5 ? log(y) : log1p(-t);
    double dx = fma(t, pb, -y * pa) / pa, dy = fma(y, pa, -t * pb) / pb;
    double tx = dx > -0.5 ? pa * bw_log1pmx(dx) : pa * (u - a->bk[1]) - pa * dx;
    double ty = dy > -0.5 ? pb * bw_log1pmx(dy) : pb * (ly - a->bk[2]) - pb * dy;
    return exp(tx + ty + a->bk[0] - ly);
}

/* F, S and the density of a closed-form arm in the grid's variable u, exactly.  F = S =
 * NULL: the density alone. */
static void arm_exact(const arm_t *a, int logmode, double u, double *F, double *S, double *d)
{
    if (!F && logmode && a->bfast) {
        *d = beta_density(a, u);
        return;
    }
    double t = logmode ? exp(u) : u, lt = logmode ? u : NAN;
    if (a->positive && !logmode) {
        if (!(u > 0.0)) {
            if (F)
                *F = 0.0, *S = 1.0;
            *d = 0.0;
            return;
        }
        lt = log(u);
    }
    closed_eval(&a->q.f[0], t, lt, F, S, d);
    if (a->positive && !logmode)
        *d /= u;
}

/* The arm at the grid position u: exactly (exact = 1, closed forms) or from its tables. */
static void arm_at(const cmp_ctx *C, const arm_t *a, double u, int exact, double *F,
                   double *S, double *d)
{
    if (a->how == ARM_CLOSED) {
        if (exact)
            arm_exact(a, C->logmode, u, F, S, d);
        else
            tab_eval(&C->rule, &a->grid, u, F, S, d);
    } else if (C->logmode) {
        tab_eval(&C->rule, a->priv, u, F, S, d);
    } else if (!(u > 0.0)) {
        if (F)
            *F = 0.0, *S = 1.0;
        *d = 0.0;
    } else {
        tab_eval(&C->rule, a->priv, log(u), F, S, d);
        *d /= u;
    }
}

/* One tail (COL_F or COL_S) of the arm and its density at the grid position u, from its
 * tables. */
static void arm_tail(const cmp_ctx *C, const arm_t *a, double u, int col, double *t,
                     double *d)
{
    if (a->how != ARM_TABLE) {
        tab_tail(&C->rule, &a->grid, u, col, t, d);
    } else if (C->logmode) {
        tab_tail(&C->rule, a->priv, u, col, t, d);
    } else if (!(u > 0.0)) {
        *t = col == COL_S, *d = 0.0;
    } else {
        tab_tail(&C->rule, a->priv, log(u), col, t, d);
        *d /= u;
    }
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

/* psi'(x) and psi''(x), x > 0: raised to x >= 8 (psi'(x) = psi'(x + 1) + 1/x^2,
 * psi''(x) = psi''(x + 1) - 2/x^3), then their asymptotic series. */
static void psi12(double x, double *p1, double *p2)
{
    double s1 = 0.0, s2 = 0.0;
    for (; x < 8.0; x += 1.0)
        s1 += 1.0 / (x * x), s2 -= 2.0 / (x * x * x);
    double i1 = 1.0 / x, i2 = i1 * i1;
    *p1 = s1 + i1 + i2 * (0.5 + i1 * (1.0 / 6 + i2 * (-1.0 / 30 + i2 * (1.0 / 42 + i2 * (
                    -1.0 / 30 + i2 * 5.0 / 66)))));
    *p2 = s2 - i2 * (1.0 + i1 + i2 * (0.5 + i2 * (-1.0 / 6 + i2 * (1.0 / 6 + i2 * (
                    -3.0 / 10 + i2 * 5.0 / 6)))));
}

/* Positions of the quantile levels of a closed-form distribution, in log t (positive kinds)
 * or t: the panels' edges need no more than a position near each level.  Positive kinds
 * are log-concave in log t with known cumulants of log t (differences of polygammas); when
 * these are close to a normal's (shape parameters >= 10, skewness below 0.5):
 * Cornish-Fisher positions of the bulk levels, Newton steps on the log of the exact tail
 * for the two outermost levels (the ends of the tables, which must hold all but 1e-15 of
 * the mass; log-concave: they converge from either side) to within a thousandth of the sd,
 * and the levels between linearly in the normal score.  Otherwise the exact quantiles. */
static int closed_positions(const bw_dist *f, double *qu)
{
    double a = f->p[0], b = f->p[1], k1 = 0.0, k2 = 0.0, k3 = 0.0, p1a, p2a, p1b, p2b;
    if (f->kind != BW_KIND_NIG_MEAN) {
        psi12(a, &p1a, &p2a);
        if (f->kind == BW_KIND_BETA) {
            psi12(a + b, &p1b, &p2b);
            k1 = psi(a) - psi(a + b), k2 = p1a - p1b, k3 = p2a - p2b;
        } else {
            k1 = f->kind == BW_KIND_GAMMA ? psi(a) - log(b) : log(b) - psi(a);
            k2 = p1a;
            k3 = f->kind == BW_KIND_GAMMA ? p2a : -p2a;
        }
    }
    double sd = sqrt(k2), gam = k3 / (k2 * sd), z[NQ];
    if (f->kind == BW_KIND_NIG_MEAN || !(fabs(gam) < 0.5) || a < 10.0 ||
        (f->kind == BW_KIND_BETA && b < 10.0)) {
        /* far from normal in log t (or Student t): the exact quantiles */
        bw_quantity one = {1, {*f, *f}};
        for (int k = 0; k < NQ; k++) {
            int st = bw_quantile(&one, q_levels[k], &qu[k]);
            if (f->kind != BW_KIND_NIG_MEAN)
                qu[k] = qu[k] > 0.0 ? log(qu[k]) : NAN;
            if (st || !isfinite(qu[k]))
                return st ? st : BW_E_NUMERIC;
        }
        return BW_OK;
    }
    for (int k = 0; k < NQ; k++) {
        double p = q_levels[k], q = 1.0 - p;
        z[k] = k < NQ / 2 ? bw_norm_quantile(p) : -bw_norm_quantile(q);
        qu[k] = k1 + sd * (z[k] + (z[k] * z[k] - 1.0) * gam / 6.0);
        /* h = +-(log tail - log target), increasing in u, inside a bracket [lo, hi] */
        double lo = -INFINITY, hi = INFINITY, walk = sd;
        for (int it = 0; it < 60 && (k == 0 || k == NQ - 1); it++) {
            double F, S, d, u = qu[k];
            closed_eval(f, exp(u), u, &F, &S, &d);
            double t = k ? S : F, h = (log(t) - log(k ? q : p)) * (k ? -1.0 : 1.0);
            if (h > 0.0)
                hi = u;
            else
                lo = u;
            double un = u - h * t / d;
            if (!(un > lo && un < hi)) {        /* out of the bracket or of the support */
                un = isfinite(lo) && isfinite(hi) ? 0.5 * (lo + hi) : h > 0.0 ? u - walk
                                                                                 : u + walk;
                walk *= 2.0;
            }
            qu[k] = un;
            if (fabs(un - u) <= 1e-3 * sd)
                break;
        }
    }
    /* the levels between the bulk and the ends linearly in z (a Cornish-Fisher expansion
     * this far out need not even be monotone) */
    for (int k = 1; k < Q05; k++) {
        qu[k] = qu[0] + (qu[Q05] - qu[0]) * (z[k] - z[0]) / (z[Q05] - z[0]);
        qu[NQ - 1 - k] = qu[NQ - 1] + (qu[Q95] - qu[NQ - 1]) * (z[NQ - 1 - k] - z[NQ - 1]) /
                                          (z[Q95] - z[NQ - 1]);
    }
    return BW_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Private tables                                                                            */
/* ---------------------------------------------------------------------------------------- */

/* A distribution in u = log t to tabulate: its density (to tol absolute, where that
 * matters), and its tails at the ends (F != NULL). */
typedef int (*point_fn)(void *ctx, double u, double tol, double *F, double *S, double *d);

/* Tabulate a distribution on panels from the positions x[0 .. NQ) (its quantile levels, or
 * beyond them): the ends moved out until the mass beyond each is below EDGE_TOL, the tails
 * split (make_edges), the density at every node (to 1e-10 over its panel's width); the
 * panels halved while the mass misses 1 by more than MASS_TOL_PRIV (at most 3 times).
 * Cancellation is checked per panel. */
static int tab_build(const cmp_ctx *C, table_t *T, const double *x, point_fn f, void *ctx)
{
    double pos[NQ], e[MAX_PANELS + 1], F0, S0, FP, SP, d;
    memcpy(pos, x, sizeof pos);
    if (!isfinite(pos[0]) || !isfinite(pos[NQ - 1]) || !(pos[Q95] > pos[Q05]))
        return BW_E_NUMERIC;
    double spread = pos[Q95] - pos[Q05];
    int st = BW_OK;
    for (int k = 0; k < 40 && !st; k++) {
        st = f(ctx, pos[0], 0.0, &F0, &S0, &d);
        if (st || F0 <= EDGE_TOL)
            break;
        pos[0] -= spread * (double)(1 << (k < 20 ? k : 20));
    }
    for (int k = 0; k < 40 && !st; k++) {
        st = f(ctx, pos[NQ - 1], 0.0, &FP, &SP, &d);
        if (st || SP <= EDGE_TOL)
            break;
        pos[NQ - 1] += spread * (double)(1 << (k < 20 ? k : 20));
    }
    if (st || F0 > EDGE_TOL || SP > EDGE_TOL)
        return st ? st : BW_E_NUMERIC;
    int ne = make_edges(pos, NULL, NQ, pos, 1, pos[Q05], pos[Q95], e, MAX_PANELS / 4);
    for (int round = 0; ne >= 2; round++) {
        st = table_alloc(T, ne - 1, e);
        for (int p = 0; p < T->P && !st; p++) {
            if (cancelled(C->job))
                return BW_E_CANCELLED;
            double tol = 1e-10 / (T->e[p + 1] - T->e[p]);
            for (int j = 0; j < GK && !st; j++) {
                int k = p * GK + j;
                st = f(ctx, node_u(T, k), tol, NULL, NULL, tab_at(T, k, COL_D));
            }
        }
        if (st)
            return st;
        tab_integrate(T, F0, SP);
        if (T->mass_err <= MASS_TOL_PRIV) {
            tab_settle(T);
            return BW_OK;
        }
        if (round == 3 || 2 * (ne - 1) > MAX_PANELS)
            break;
        for (int p = ne - 1; p > 0; p--) {
            e[2 * p] = e[p];
            e[2 * p - 1] = 0.5 * (e[p - 1] + e[p]);
        }
        ne = 2 * ne - 1;
    }
    return BW_E_NUMERIC;
}

static int factor_point(void *ctx, double u, double tol, double *F, double *S, double *d)
{
    (void)tol;
    const factor_t *f = ctx;
    if (f->lnm)
        return lnm_eval(f->lnm, u, F, S, d);
    closed_eval(&f->d, exp(u), u, F, S, d);
    return BW_OK;
}

/* A factor's table in log t: closed forms on positions near their quantiles, or the
 * lognormal mean on positions beyond its quantiles. */
static int factor_build(const cmp_ctx *C, factor_t *f)
{
    int st = BW_OK;
    if (f->d.kind == BW_KIND_NIG_LNMEAN) {
        f->lnm = malloc(sizeof *f->lnm);
        if (!f->lnm)
            return BW_E_NOMEM;
        st = lnm_setup(f->lnm, &f->d);
        if (!st)
            st = lnm_positions(f->lnm, f->qu);
    } else {
        st = closed_positions(&f->d, f->qu);
    }
    return st ? st : tab_build(C, &f->tab, f->qu, factor_point, f);
}

/* The quantile nodes of level L of a table (in log t; exp: in t), computed once. */
static int zn_ensure(const panel_rule *r, znodes_t *zn, const table_t *T, int L, int expo)
{
    if (zn->level >= L)
        return BW_OK;
    int half = zn_half(L);
    double *u = malloc((size_t)(2 * half + 1) * sizeof *u), h = 0.5 / (double)(1 << L);
    if (!u)
        return BW_E_NOMEM;
    for (int j = -half; j <= half; j++) {
        double z = j * h;
        double v = j == 0 ? tab_quantile(r, T, 0.5, 0)
                          : tab_quantile(r, T, bw_norm_cdf(-fabs(z)), j > 0);
        u[j + half] = expo ? exp(v) : v;
    }
    free(zn->u);
    zn->u = u;
    zn->level = L;
    return BW_OK;
}

/* Sums over the quantile nodes of one table at level L (fine) and L - 1 (base): the nodes
 * of L - 1 are those of L at odd offsets (L = 1) or even ones.  A fine sum is ratio times
 * the base sum plus the sum over the other nodes with the fine weights. */
typedef struct {
    int L, n;
    const double *u;            /* node j of level L is u[j * stride] */
    int stride;
    const double *wf, *wb;      /* the weights of levels L and L - 1 */
    double ratio;
} zsum_t;

/* Level L (<= zn->level) of the nodes zn. */
static void zsum_init(zsum_t *z, const zweights_t *zw, int L, const znodes_t *zn)
{
    z->L = L;
    z->n = 2 * zn_half(L) + 1;
    z->stride = 1 << (zn->level - L);
    z->u = zn->u + (zn_half(zn->level) - zn_half(L) * z->stride);
    z->wf = zw->w[L];
    z->wb = zw->w[L - 1];
    z->ratio = zw->sum[L - 1] / zw->sum[L];
}

static double zsum_u(const zsum_t *z, int j)
{
    return z->u[j * z->stride];
}

/* The index in the base rule of fine node j, or -1. */
static int zsum_base(const zsum_t *z, int j)
{
    int off = z->L == 1 ? 1 : 0;
    return (j - off) % 2 == 0 && j >= off ? (j - off) / 2 : -1;
}

/* ---------------------------------------------------------------------------------------- */
/* Compound arms X = P V: the density of log X is the convolution of its factors', a       */
/* trapezoidal sum over the quantile nodes of the narrower factor                           */
/* ---------------------------------------------------------------------------------------- */

typedef struct {
    const cmp_ctx *C;
    arm_t *a;
    int over;                   /* the factor summed over first (its quantile nodes) */
    int status;
} conv_ctx;

/* The sums of level L over the quantile nodes of factor `over` (out: F, S, density; the
 * tails only if tails); returns how far the base sum is from the fine one, in units of
 * the tolerance (<= 1: certified). */
static double conv_level(conv_ctx *cx, int over, int L, double u, double tol, int tails,
                         double *out, int *st)
{
    factor_t *fa = &cx->a->fac[over];
    const table_t *tb = &cx->a->fac[1 - over].tab;
    const panel_rule *r = &cx->C->rule;
    *st = zn_ensure(r, &fa->zn, &fa->tab, L, 0);
    if (*st)
        return INFINITY;
    zsum_t z;
    zsum_init(&z, &cx->C->zw, L, &fa->zn);
    double fine[3] = {0.0, 0.0, 0.0}, base[3] = {0.0, 0.0, 0.0}, v[3];
    for (int j = 0; j < z.n; j++) {
        tab_eval(r, tb, u - zsum_u(&z, j), tails ? &v[0] : NULL, tails ? &v[1] : NULL, &v[2]);
        int b = zsum_base(&z, j);
        for (int m = tails ? 0 : 2; m < 3; m++) {
            fine[m] += z.wf[j] * v[m];
            if (b >= 0)
                base[m] += z.wb[b] * v[m];
        }
    }
    memcpy(out, fine, sizeof fine);
    return tails ? fabs(fine[0] - base[0]) / (1e-13 + 1e-8 * fmin(fine[0], fine[1]))
                 : fabs(fine[2] - base[2]) / (tol + 1e-8 * fine[2] + 1e-300);
}

/* The density of log X at u (F != NULL: and its tails), certified: over the frequency's
 * nodes (log P <= 0 has no heavy tail: summing over a heavy-tailed factor's sparse tail
 * nodes can miss a narrow summand at every level alike), else the severity's, then the
 * finer levels of the better of the two. */
static int conv_point(void *ctx, double u, double tol, double *F, double *S, double *d)
{
    conv_ctx *cx = ctx;
    double out[2][3], ex[2];
    int st = BW_OK, pick = cx->over;
    ex[0] = conv_level(cx, pick, 1, u, tol, F != NULL, out[0], &st);
    if (!st && ex[0] > 1.0) {
        ex[1] = conv_level(cx, 1 - pick, 1, u, tol, F != NULL, out[1], &st);
        if (ex[1] < ex[0]) {
            pick = 1 - pick;
            memcpy(out[0], out[1], sizeof out[0]);
            ex[0] = ex[1];
        }
    }
    for (int L = 2; !st && ex[0] > 1.0 && L < ZLEVELS; L++)
        ex[0] = conv_level(cx, pick, L, u, tol, F != NULL, out[0], &st);
    *d = out[0][2];
    if (F)
        *F = out[0][0], *S = out[0][1];
    /* a point a little short of its tolerance at the finest level stays: the mass check of
     * the whole table decides */
    return st ? st : ex[0] > 100.0 ? BW_E_NUMERIC : BW_OK;
}

/* Phase 1 for a compound arm: its factors' tables, then its own on positions beyond its
 * quantiles (the sums of its factors' at each level). */
static int compound_build(const cmp_ctx *C, arm_t *a)
{
    for (int k = 0; k < 2; k++) {
        a->fac[k].d = a->q.f[k];
        a->fac[k].zn.level = -1;
        int st = factor_build(C, &a->fac[k]);
        if (st)
            return st;
    }
    const double *q0 = a->fac[0].qu, *q1 = a->fac[1].qu;
    double x[NQ];
    for (int k = 0; k < NQ; k++)
        x[k] = q0[k] + q1[k];
    conv_ctx cx = {C, a, 0, BW_OK};
    return tab_build(C, &a->own, x, conv_point, &cx);
}

/* ---------------------------------------------------------------------------------------- */
/* Phase 1                                                                                   */
/* ---------------------------------------------------------------------------------------- */

/* The arm's quantile positions at q_levels in its variable (closed_positions). */
static int closed_quantiles(arm_t *a)
{
    return closed_positions(&a->q.f[0], a->qu);
}

/* A private table for an arm without closed forms: its factor's (the lognormal mean) or
 * the convolution of its two factors'; its quantiles and truncation point from it. */
static int private_build(const cmp_ctx *C, arm_t *a)
{
    int st;
    if (a->q.nfactors == 1) {
        a->fac[0].d = a->q.f[0];
        a->fac[0].zn.level = -1;
        st = factor_build(C, &a->fac[0]);
        a->priv = &a->fac[0].tab;
    } else {
        st = compound_build(C, a);
        a->priv = &a->own;
    }
    if (st)
        return st;
    for (int k = 0; k < NQ; k++) {
        double p = q_levels[k], q = 1.0 - p;
        a->qu[k] = tab_quantile(&C->rule, a->priv, p < q ? p : q, p > q);
    }
    if (a->heavy)
        a->trunc = exp(tab_quantile(&C->rule, a->priv, 1.0 - BW_TRUNC_LEVEL, 1));
    return BW_OK;
}

/* Phase 1 for one arm. */
static int arm_prepare(const cmp_ctx *C, arm_t *a, int index)
{
    const bw_quantity *q = &a->q;
    a->positive = !has_kind(q, BW_KIND_NIG_MEAN);
    a->how = q->nfactors == 1 && q->f[0].kind != BW_KIND_NIG_LNMEAN ? ARM_CLOSED : ARM_TABLE;
    a->zn.level = -1;
    for (int k = 0; k < q->nfactors; k++)
        if (q->f[k].kind == BW_KIND_NIG_MEAN && q->f[k].p[2] <= 0.5)
            return bw_fail(&a->err, BW_E_DOMAIN, "arm %d: its posterior mean is undefined "
                           "(Student t with at most 1 degree of freedom)", index);
    int st = bw_mean(q, &a->mean);
    a->heavy = has_kind(q, BW_KIND_NIG_LNMEAN) || isinf(a->mean);
    if (!st && a->how == ARM_TABLE) {
        st = private_build(C, a);
        if (st == BW_E_CANCELLED || st == BW_E_NOMEM)
            return bw_fail(&a->err, st, st == BW_E_NOMEM ? "out of memory" : "cancelled");
        if (st)
            return bw_fail(&a->err, st, "arm %d: its distribution could not be tabulated to "
                           "the promised accuracy", index);
    }
    beta_consts(a);
    if (!st && a->how != ARM_TABLE) {
        st = closed_quantiles(a);
        if (!st && a->heavy)
            st = bw_quantile(q, BW_TRUNC_LEVEL, &a->trunc);
    }
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
/* Phase 2: the arms on the shared grid                                                      */
/* ======================================================================================== */

/* Closed forms: the density at every node, then F by integrating it from the first edge and
 * S from the last, anchored at the exact tails there; the exact F and S at every node
 * where the mass misses 1 by more than MASS_TOL.  Private tables: interpolated. */
static int arm_tabulate(const cmp_ctx *C, arm_t *a)
{
    table_t *T = &a->grid;
    int st = table_alloc(T, C->nedges - 1, C->edges), P = T->P;
    if (st)
        return st;
    int closed = a->how == ARM_CLOSED;
    for (int p = 0; p < P; p++) {
        if (cancelled(C->job))
            return BW_E_CANCELLED;
        double *Fc = tab_col(T, p, COL_F), *Sc = tab_col(T, p, COL_S);
        double *dc = tab_col(T, p, COL_D);
        for (int j = 0; j < GK; j++) {
            double u = node_u(T, p * GK + j);
            if (closed)
                arm_exact(a, C->logmode, u, NULL, NULL, &dc[j]);
            else
                arm_at(C, a, u, 0, &Fc[j], &Sc[j], &dc[j]);
        }
    }
    double F0 = 0.0, S0, FP, SP = 0.0, dd;
    if (!closed) {
        for (int p = 0; p <= P; p++)
            arm_at(C, a, T->e[p], 0, &T->Fe[p], &T->Se[p], &dd);
        T->mass_err = a->priv->mass_err;
        tab_settle(T);
        return BW_OK;
    }
    arm_exact(a, C->logmode, T->e[0], &F0, &S0, &dd);
    arm_exact(a, C->logmode, T->e[P], &FP, &SP, &dd);
    tab_integrate(T, F0, SP);
    if (T->mass_err > MASS_TOL) {
        for (int k = 0; k < P * GK; k++) {
            if (k % GK == 0 && cancelled(C->job))
                return BW_E_CANCELLED;
            arm_exact(a, C->logmode, node_u(T, k), tab_at(T, k, COL_F), tab_at(T, k, COL_S),
                      tab_at(T, k, COL_D));
        }
        for (int p = 0; p <= P; p++)
            arm_exact(a, C->logmode, T->e[p], &T->Fe[p], &T->Se[p], &dd);
        T->mass_err = 0.0;
    }
    tab_settle(T);
    return BW_OK;
}

/* Phase 2 for one arm: its grid table, then (lifts asked for) its quantile nodes. */
static int arm_phase2(const cmp_ctx *C, arm_t *a)
{
    int st = arm_tabulate(C, a);
    if (st || !a->lift_over)
        return st;
    if (a->how == ARM_TABLE)
        return zn_ensure(&C->rule, &a->zn, a->priv, 1, !C->logmode);
    return zn_ensure(&C->rule, &a->zn, &a->grid, 1, 0);
}

/* ======================================================================================== */
/* Phase 3: P(best), P(beat control) and the expected losses, one pass over the grid        */
/* ======================================================================================== */

/* Components of the integrand, per arm i: */
enum { C_BEST, C_LOSS, C_BEAT, C_BEATC, C_LOSSVS, NCOMP };
/*   best   = g_i prod_{j != i} A_j                 (P(i is the best))
 *   loss   = A'_i (1 - prod_{j != i} A'_j) dt/du   (E[max_j X_j - X_i])
 *   beat   = g_i A_c,  beatc = g_c A_i              (P(i beats c), P(c beats i))
 *   lossvs = A'_i B'_c dt/du                        (E[max(X_c - X_i, 0)])
 * with A_j = P(X_j not better than t) (F when higher is better), B_j = 1 - A_j, and A', B'
 * the same for the arm truncated at its truncation point (heavy arms, for losses). */

typedef struct {
    double a, b;                /* the panel */
    double *val, *err;          /* NCOMP * narms each */
} gpanel;

/* The integrand at u from the arms' F, S and density there. */
static void grid_integrand(const cmp_ctx *C, double u, const double *F, const double *S,
                           const double *d, double *out)
{
    const bw_cmp_request *R = &C->req;
    int n = R->narms, c = R->control;
    double A[BW_CMP_MAX_ARMS], At[BW_CMP_MAX_ARMS], Bt[BW_CMP_MAX_ARMS];
    double tpre[BW_CMP_MAX_ARMS + 1], tsuf[BW_CMP_MAX_ARMS + 1];
    double lpre[BW_CMP_MAX_ARMS + 1], lsuf[BW_CMP_MAX_ARMS + 1];
    double bpre[BW_CMP_MAX_ARMS + 1], bsuf[BW_CMP_MAX_ARMS + 1];
    double t = C->logmode ? exp(u) : 1.0, jac = C->logmode ? t : 1.0;
    for (int j = 0; j < n; j++) {
        double Fj = F[j], Sj = S[j];
        A[j] = R->higher ? Fj : Sj;
        const arm_t *a = &C->arm[j];
        if (a->heavy) {
            double x = C->logmode ? t : u, L = BW_TRUNC_LEVEL;
            if (x >= a->trunc) {
                Fj = 1.0, Sj = 0.0;
            } else {
                Sj = fmax(Sj - (1.0 - L), 0.0) / L;
                Fj = fmin(Fj / L, 1.0);
            }
        }
        At[j] = R->higher ? Fj : Sj;
        Bt[j] = R->higher ? Sj : Fj;
    }
    /* the logs only where some arm has every other B'_j small: the second largest is */
    double b1 = -1.0, b2 = -1.0;
    for (int j = 0; j < n; j++)
        if (Bt[j] > b1)
            b2 = b1, b1 = Bt[j];
        else if (Bt[j] > b2)
            b2 = Bt[j];
    int logs = n > 2 && b2 <= 0.5;
    tpre[0] = 1.0, lpre[0] = bpre[0] = 0.0;
    for (int j = 0; j < n; j++) {
        tpre[j + 1] = tpre[j] * At[j];
        lpre[j + 1] = lpre[j] + (logs && Bt[j] <= 0.5 ? log1p(-Bt[j]) : 0.0);
        bpre[j + 1] = fmax(bpre[j], Bt[j]);
    }
    tsuf[n] = 1.0, lsuf[n] = bsuf[n] = 0.0;
    for (int j = n - 1; j >= 0; j--) {
        tsuf[j] = tsuf[j + 1] * At[j];
        lsuf[j] = lsuf[j + 1] + (logs && Bt[j] <= 0.5 ? log1p(-Bt[j]) : 0.0);
        bsuf[j] = fmax(bsuf[j + 1], Bt[j]);
    }
    for (int i = 0; i < n; i++) {
        double *o = out + NCOMP * i;
        /* 1 - prod_{j != i} A'_j without cancellation when every B'_j is small */
        double others = n == 2 ? Bt[1 - i]
                        : fmax(bpre[i], bsuf[i + 1]) <= 0.5 ? -expm1(lpre[i] + lsuf[i + 1])
                                                           : 1.0 - tpre[i] * tsuf[i + 1];
        /* prod_{j != i} A_j in arm order, so that identical arms get identical shares */
        double best = 1.0;
        for (int j = 0; j < n; j++)
            if (j != i)
                best *= A[j];
        o[C_BEST] = d[i] * best;
        o[C_LOSS] = At[i] * others * jac;
        o[C_BEAT] = i == c ? 0.0 : d[i] * A[c];
        o[C_BEATC] = i == c ? 0.0 : d[c] * A[i];
        o[C_LOSSVS] = i == c ? 0.0 : At[i] * Bt[c] * jac;
        for (int k = 0; k < NCOMP; k++)
            if (!isfinite(o[k]))
                o[k] = 0.0;
    }
}

/* One panel of the pass: every component's Kronrod sum and QUADPACK's error estimate
 * (asc min(1, (200 |K - G| / asc)^1.5), floored at a few ulps of the absolute integral).
 * first >= 0: the panel is initial panel `first` of the grid (the arms' tables there, but
 * with exact = 2 not where it leaves an arm's own range: the tables keep only absolute
 * accuracy far beyond an arm's own tails). */
static void grid_panel(const cmp_ctx *C, gpanel *pp, int first, int exact, double *work)
{
    int n = C->req.narms, nc = NCOMP * n;
    double F[BW_CMP_MAX_ARMS], S[BW_CMP_MAX_ARMS], d[BW_CMP_MAX_ARMS];
    double ends[2] = {pp->a, pp->b}, h = 0.5 * (pp->b - pp->a);
    for (int j = 0; j < GK; j++) {
        double u = bw_gk_node(ends, j);
        for (int a = 0; a < n; a++) {
            const arm_t *A = &C->arm[a];
            /* exact = 2: the arms evaluated exactly where the panel leaves their own range */
            int outside = !(pp->a >= A->own_lo && pp->b <= A->own_hi);
            if (first >= 0 && !(exact == 2 && outside)) {
                int k = first * GK + j;
                F[a] = *tab_at(&A->grid, k, COL_F), S[a] = *tab_at(&A->grid, k, COL_S);
                d[a] = *tab_at(&A->grid, k, COL_D);
            } else {
                arm_at(C, A, u, 1, &F[a], &S[a], &d[a]);
            }
        }
        grid_integrand(C, u, F, S, d, work + (size_t)j * nc);
    }
    for (int k = 0; k < nc; k++) {
        double K = 0.0, G = 0.0, kabs = 0.0, asc = 0.0;
        for (int j = 0; j < GK; j++) {
            double f = work[(size_t)j * nc + k];
            K += cmp_rule_W[GK][j] * f;
            G += cmp_rule_G10[j] * f;
            kabs += cmp_rule_W[GK][j] * fabs(f);
        }
        double mean = 0.5 * K;
        for (int j = 0; j < GK; j++)
            asc += cmp_rule_W[GK][j] * fabs(work[(size_t)j * nc + k] - mean);
        double err = fabs((K - G) * h);
        asc *= fabs(h);
        if (asc > 0.0 && err > 0.0) {
            double r = fmin(1.0, 200.0 * err / asc);
            err = asc * r * sqrt(r);
        }
        pp->val[k] = K * h;
        pp->err[k] = fmax(err, 4.0 * DBL_EPSILON * kabs * fabs(h));
    }
}

/* Tolerance of component k (of arm k / NCOMP): probabilities absolute, losses relative. */
static double comp_tol(int k, double value)
{
    int what = k % NCOMP;
    if (what == C_LOSS || what == C_LOSSVS)
        return 1e-11 * fabs(value) + 1e-300;
    return 1e-12;
}

/* The pass: the initial panels from the tables, then the panel of the largest error
 * relative to its tolerance bisected (the arms evaluated exactly at the new nodes) until
 * every component meets its tolerance. */
static int grid_pass(cmp_ctx *C, int exact)
{
    const bw_cmp_request *R = &C->req;
    int n = R->narms, nc = NCOMP * n, P0 = C->nedges - 1, cap = P0 + 200, st = BW_OK;
    gpanel *pan = malloc((size_t)cap * sizeof *pan);
    double *mem = malloc(((size_t)cap * 2 * nc + (size_t)GK * nc + 2 * (size_t)nc) *
                         sizeof *mem);
    if (!pan || !mem) {
        free(pan), free(mem);
        return BW_E_NOMEM;
    }
    double *work = mem + (size_t)cap * 2 * nc, *tot = work + (size_t)GK * nc, *etot = tot + nc;
    for (int p = 0; p < cap; p++)
        pan[p].val = mem + (size_t)p * 2 * nc, pan[p].err = pan[p].val + nc;
    int np = 0;
    for (; np < P0 && !st; np++) {
        if (cancelled(C->job)) {
            st = BW_E_CANCELLED;
            break;
        }
        pan[np].a = C->edges[np], pan[np].b = C->edges[np + 1];
        grid_panel(C, &pan[np], np, exact, work);
    }
    while (!st) {
        memset(tot, 0, 2 * (size_t)nc * sizeof *tot);
        for (int p = 0; p < np; p++)
            for (int k = 0; k < nc; k++)
                tot[k] += pan[p].val[k], etot[k] += pan[p].err[k];
        double worst = 0.0;
        int wp = -1;
        for (int k = 0; k < nc; k++) {
            double tol = comp_tol(k, tot[k]);
            if (!(etot[k] > tol))
                continue;
            for (int p = 0; p < np; p++)
                if (pan[p].err[k] / tol > worst)
                    worst = pan[p].err[k] / tol, wp = p;
        }
        if (wp < 0)
            break;
        if (np == cap || cancelled(C->job)) {
            st = np == cap ? BW_E_NUMERIC : BW_E_CANCELLED;
            break;
        }
        double a = pan[wp].a, b = pan[wp].b, m = 0.5 * (a + b);
        pan[wp].b = m;
        pan[np].a = m, pan[np].b = b;
        grid_panel(C, &pan[wp], -1, exact, work);
        grid_panel(C, &pan[np++], -1, exact, work);
    }
    if (st == BW_E_NUMERIC) {
        /* out of panels: good enough if every component meets its target */
        st = BW_OK;
        for (int k = 0; k < nc; k++)
            if (etot[k] > 100.0 * comp_tol(k, tot[k]))
                st = BW_E_NUMERIC;
    }
    /* a loss so small that it lies where some arm is beyond its own 1e-15 tails (arms far
     * apart): again with those arms exact there */
    double t0 = C->edges[0], t1 = C->edges[P0];
    double width = C->logmode ? exp(t1) - exp(t0) : t1 - t0;
    for (int k = 0; k < nc && !st && exact < 2; k++)
        if ((k % NCOMP == C_LOSS || (k % NCOMP == C_LOSSVS && k / NCOMP != R->control)) &&
            tot[k] < 1e-11 * width) {
            free(pan);
            free(mem);
            return grid_pass(C, 2);
        }
    if (!st) {
        int c = R->control;
        for (int i = 0; i < n; i++) {
            const double *v = tot + NCOMP * i, *e = etot + NCOMP * i;
            const table_t *T = &C->arm[i].grid;
            bw_cmp_arm *o = &C->res.arm[i];
            C->best_raw[i] = v[C_BEST];
            /* the mass beyond the grid's ends is not in the integrals */
            C->perr[i] = e[C_BEST] + C->arm[i].grid.mass_err + T->Fe[0] + T->Se[T->P];
            o->loss = v[C_LOSS];
            if (i == c) {
                o->loss_vs = 0.0;
                continue;
            }
            double p1 = v[C_BEAT], p2 = v[C_BEATC];
            o->prob_beats = p1 / (p1 + p2);
            o->loss_vs = v[C_LOSSVS];
            C->perr[i] = fmax(C->perr[i], e[C_BEAT] + e[C_BEATC] + fabs(p1 + p2 - 1.0));
        }
    }
    free(pan);
    free(mem);
    return st;
}

/* ======================================================================================== */
/* Phase 3: lifts                                                                            */
/* ======================================================================================== */

/* The lift's distribution function as a trapezoidal sum over the normal scores of one arm
 * (its quantile nodes) of the other's tails at shifted points:
 *   relative (v = log r):  P(log X_i - log X_c <= v) = E_c[F_i(v + U_c)] = E_i[S_c(U_i - v)]
 *   absolute (v = d):      P(X_i - X_c <= d)         = E_c[F_i(d + X_c)] = E_i[S_c(X_i - d)]
 * summed by the rules of two levels (base, and fine = base and the nodes between): their
 * difference certifies the base sum, and the level is raised until it does.  The sum runs
 * over the narrower arm; for an absolute lift of positive arms whose distribution function
 * starts slowly (slow_start) over the control when d >= 0 and over the arm when d < 0, so
 * that the shifted point stays positive (where it crosses 0 the summand has a kink, y^a
 * for a tail like y^a, and the sums converge slowly). */
typedef struct {
    const arm_t *over, *other;
    zsum_t z;
    znodes_t local;             /* nodes of levels beyond the arm's own (owned) */
} lift_side;

typedef struct {
    const cmp_ctx *C;
    int relative, by_sign, side;        /* side 0: over the control; 1: over the arm */
    int gk;                     /* the sums never certified (a kink: a density that does not
                                 * vanish at the end of its support): adaptive quadrature */
    lift_side sd[2];
    int upper;                  /* the tail solved for */
    double target;              /* log of its target */
    double last_v, last[2];     /* the last base sum: where, tail and density */
    double tol;                 /* absolute tolerance of the sums (more for larger tails) */
} lift_ctx;

static int lift_side_at(const lift_ctx *L, double v)
{
    return L->by_sign ? v < 0.0 : L->side;
}

/* The other arm's tail (the lift's lower or upper tail given the summed arm at u) and its
 * density with respect to the lift at v. */
static void lift_point(const lift_ctx *L, const lift_side *sd, int over_c, double v, double u,
                       double *tail, double *d)
{
    const cmp_ctx *C = L->C;
    double x, jac = 1.0;
    if (L->relative) {
        x = over_c ? v + u : u - v;
    } else {
        double t = C->logmode ? exp(u) : u, y = over_c ? v + t : t - v;
        x = y;
        if (C->logmode) {
            x = y > 0.0 ? log(y) : -INFINITY;
            jac = y > 0.0 ? 1.0 / y : 0.0;
        }
    }
    /* over the control: F_i is the lower tail; over the arm: S_c is */
    int col = (L->upper != 0) == over_c ? COL_S : COL_F;
    if (x == -INFINITY) {
        *tail = col == COL_S, *d = 0.0;
        return;
    }
    arm_tail(C, sd->other, x, col, tail, d);
    *d = isfinite(jac) ? *d * jac : 0.0;
}

typedef struct {
    const lift_ctx *L;
    const lift_side *sd;
    int over_c;
    double v;
} lift_gk_ctx;

static void lift_gk_f(void *vctx, double u, int node, double *out)
{
    const lift_gk_ctx *g = vctx;
    const table_t *T = &g->sd->over->grid;
    double dens, tail, d;
    if (node >= 0)
        dens = *tab_at(T, node, COL_D);
    else
        tab_eval(&g->L->C->rule, T, u, NULL, NULL, &dens);
    lift_point(g->L, g->sd, g->over_c, g->v, u, &tail, &d);
    out[0] = dens * tail, out[1] = dens * d;
}

/* The lower (or upper) tail of the lift at v and its density: by the base rule (odd = 0)
 * or over the fine rule's other nodes (odd = 1, with the fine weights); in gk mode by
 * adaptive quadrature over the summed arm's grid table (odd: nothing more). */
static int lift_sums(lift_ctx *L, double v, int odd, double *out)
{
    int side = lift_side_at(L, v), over_c = side == 0;
    const lift_side *sd = &L->sd[side];
    double acc[2] = {0.0, 0.0};
    if (L->gk) {
        const table_t *T = &sd->over->grid;
        lift_gk_ctx g = {L, sd, over_c, v};
        double err;
        int st = odd ? BW_OK : bw_quad_gk(lift_gk_f, &g, 2, T->e, T->P, 1e-12, 1e-16, acc,
                                          &err);
        out[0] = acc[0], out[1] = acc[1];
        return st && !(err <= 1e-9 * acc[0] + 1e-12) ? st : BW_OK;
    }
    for (int j = 0; j < sd->z.n; j++) {
        int b = zsum_base(&sd->z, j);
        if ((b < 0) != odd)
            continue;
        double tail, d, w = odd ? sd->z.wf[j] : sd->z.wb[b];
        lift_point(L, sd, over_c, v, zsum_u(&sd->z, j), &tail, &d);
        acc[0] += w * tail, acc[1] += w * d;
    }
    out[0] = acc[0], out[1] = acc[1];
    return BW_OK;
}

/* The fine sums at the last base sum's point (gk mode: the same). */
static void lift_fine(lift_ctx *L, double *fine)
{
    double ratio = L->gk ? 1.0 : L->sd[lift_side_at(L, L->last_v)].z.ratio;
    lift_sums(L, L->last_v, 1, fine);
    fine[0] = fmin(fmax(fine[0] + ratio * L->last[0], 0.0), 1.0);
    fine[1] += ratio * L->last[1];
}

static int lift_root_g(void *vctx, double v, double *g, double *dg)
{
    lift_ctx *L = vctx;
    if (cancelled(L->C->job))
        return BW_E_CANCELLED;
    int st = lift_sums(L, v, 0, L->last);
    if (st)
        return st;
    L->last_v = v;
    double t = fmin(fmax(L->last[0], 0.0), 1.0), lt = log(t);
    *g = L->upper ? L->target - lt : lt - L->target;
    *dg = t > 0.0 ? L->last[1] / t : 0.0;
    return BW_OK;
}

/* Raise the rules of the last sum's side one level (the new nodes from its arm's table). */
static int lift_raise(lift_ctx *L)
{
    lift_side *sd = &L->sd[lift_side_at(L, L->last_v)];
    int next = sd->z.L + 1;
    if (next >= ZLEVELS) {
        /* no level certifies: a kink in the summand; adaptive quadrature instead */
        if (L->gk || sd->over->grid.P > 150)
            return BW_E_NUMERIC;
        L->gk = 1;
        return BW_OK;
    }
    const arm_t *a = sd->over;
    const table_t *T = a->how == ARM_TABLE ? a->priv : &a->grid;
    int st = zn_ensure(&L->C->rule, &sd->local, T, next,
                       a->how == ARM_TABLE && !L->C->logmode);
    if (!st)
        zsum_init(&sd->z, &L->C->zw, next, &sd->local);
    return st;
}

/* Is the base sum certified by the fine one?  (To the accuracy of the arms' tables.) */
static int lift_certified(const lift_ctx *L, const double *fine)
{
    return fabs(L->last[0] - fine[0]) <= L->tol * (1.0 + 100.0 * fine[0]);
}

/* The quantile with lower tail p (upper tail q = 1 - p) of the lift, from v0 by Newton
 * steps of about `step`: the root of the base rule, certified by the fine rule at the last
 * Newton iterate, then one Newton step of the fine rule from there. */
static int lift_quantile(lift_ctx *L, double p, double q, double v0, double step, double *v)
{
    L->upper = q < p;
    double tgt = L->upper ? q : p;
    L->target = log(tgt);
    for (;;) {
        int st = bw_root_newton(lift_root_g, L, v0, step, -INFINITY, INFINITY, 1e-8 * step,
                                0.0, v);
        if (st)
            return st;
        double fine[2];
        lift_fine(L, fine);
        if (lift_certified(L, fine)) {
            if (fine[1] > 0.0)
                *v = L->last_v + (L->upper ? fine[0] - tgt : tgt - fine[0]) / fine[1];
            return BW_OK;
        }
        st = lift_raise(L);
        if (st)
            return st;
        v0 = *v;
    }
}

/* P(lift > v) (upper = 1) or P(lift < v), certified. */
static int lift_tail(lift_ctx *L, double v, int upper, double *tail)
{
    L->upper = upper;
    for (;;) {
        double fine[2];
        int st = lift_sums(L, v, 0, L->last);
        if (st)
            return st;
        L->last_v = v;
        lift_fine(L, fine);
        if (lift_certified(L, fine)) {
            *tail = fine[0];
            return BW_OK;
        }
        st = lift_raise(L);
        if (st)
            return st;
    }
}

/* Centre and spread (a normal's sd matched at 5 % and 95 %) of an arm, in log t (logs)
 * or t. */
static void centre_spread(const arm_t *a, int logs, double *m, double *s)
{
    double q[3] = {a->qu[Q05], a->qu[Q50], a->qu[Q95]};
    for (int k = 0; k < 3; k++)
        if (a->positive && !logs)
            q[k] = exp(q[k]);
    *m = q[1];
    *s = (q[2] - q[0]) / (2.0 * Z95);
}

/* Does the arm's distribution function start at 0 slower than t^10 (a beta or gamma shape
 * below 10, also as a compound's frequency)?  Then an absolute lift's summand has a kink
 * where the shifted point crosses 0 (lift_side_at). */
static int slow_start(const arm_t *a)
{
    const bw_dist *f = &a->q.f[0];
    return (f->kind == BW_KIND_BETA || f->kind == BW_KIND_GAMMA) && f->p[0] < 10.0;
}

/* Are the absolute lifts of arm i summed by the sign of the shift (lift_side_at)? */
static int by_sign(const cmp_ctx *C, int i)
{
    return C->logmode && (slow_start(&C->arm[i]) || slow_start(&C->arm[C->req.control]));
}

/* Is the lift of arm i summed over the control's quantile nodes?  Over the narrower arm
 * (in log t for relative lifts, in t for absolute ones), except that an absolute lift of
 * positive arms keeps the relative lift's arm when their spreads in t are within a factor
 * 2 (either serves; one arm's quantile nodes then do for both). */
static int over_control(const cmp_ctx *C, int i, int relative)
{
    double m, sa, sc, la, lc;
    centre_spread(&C->arm[i], relative, &m, &sa);
    centre_spread(&C->arm[C->req.control], relative, &m, &sc);
    if (!relative && C->logmode && sa < 2.0 * sc && sc < 2.0 * sa) {
        centre_spread(&C->arm[i], 1, &m, &la);
        centre_spread(&C->arm[C->req.control], 1, &m, &lc);
        return !(la < lc);
    }
    return !(sa < sc);
}

static void lift_setup(lift_ctx *L, const cmp_ctx *C, int i, int relative)
{
    const arm_t *a = &C->arm[i], *c = &C->arm[C->req.control];
    memset(L, 0, sizeof *L);
    L->C = C;
    L->relative = relative;
    L->by_sign = !relative && by_sign(C, i);
    L->side = !over_control(C, i, relative);
    for (int s = 0; s < 2; s++) {
        lift_side *sd = &L->sd[s];
        sd->over = s ? a : c;
        sd->other = s ? c : a;
        sd->local.level = -1;
        if (sd->over->zn.level >= 1)
            zsum_init(&sd->z, &C->zw, 1, &sd->over->zn);
    }
    /* private tables (compound products, lognormal means) are accurate to about 1e-10 */
    L->tol = a->how == ARM_TABLE || c->how == ARM_TABLE ? 1e-10 : 1e-12;
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
    lift_setup(&L, C, i, relative);
    double mi, si, mc, sc;
    centre_spread(a, relative, &mi, &si);
    centre_spread(c, relative, &mc, &sc);
    double centre = mi - mc, spread = hypot(si, sc), med;
    if (!(spread > 0.0) || !isfinite(spread))
        spread = relative ? 1e-3 : fmax(fabs(centre), 1e-300);
    int st = lift_quantile(&L, 0.5, 0.5, centre, spread, &med);
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
        double t = R->thresholds[k], x = relative ? log1p(sgn * t) : sgn * t;
        if (isnan(x) || x == -INFINITY) {
            out->above[k][kind] = R->higher ? 1.0 : 0.0;
            continue;
        }
        st = lift_tail(&L, x, R->higher, &out->above[k][kind]);
    }
    free(L.sd[0].local.u);
    free(L.sd[1].local.u);
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

static void factor_free(factor_t *f)
{
    free(f->lnm);
    table_free(&f->tab);
    free(f->zn.u);
}

static void cmp_free(void *p)
{
    cmp_ctx *C = p;
    for (int i = 0; i < C->req.narms; i++) {
        arm_t *a = &C->arm[i];
        factor_free(&a->fac[0]);
        factor_free(&a->fac[1]);
        table_free(&a->own);
        table_free(&a->grid);
        free(a->zn.u);
    }
    free(C);
}

static const char *phase_failure(int st, int phase)
{
    if (st == BW_E_CANCELLED)
        return "cancelled";
    if (st == BW_E_NOMEM)
        return "out of memory";
    return phase == 2 ? "its distribution function could not be evaluated to full accuracy"
                      : "an integral of the comparison did not reach its tolerance";
}

/* Unit u of the current phase: an arm (phases 1 and 2), the integrals (phase 3, unit 0 when
 * asked for) or an arm's lifts. */
static void cmp_unit(cmp_ctx *C, int u)
{
    if (C->phase == 3 && C->req.full && u == 0) {
        int st = grid_pass(C, 1);
        if (st) {
            C->int_status = st;
            bw_fail(&C->int_err, st, "%s", phase_failure(st, 3));
        }
        return;
    }
    int i = C->phase == 3 ? C->lift_arm[u - (C->req.full ? 1 : 0)] : u, st = BW_OK;
    arm_t *a = &C->arm[i];
    if (a->status)
        return;
    if (C->phase == 1) {
        if (arm_prepare(C, a, i))
            a->status = a->err.status;
        return;
    }
    if (C->phase == 2) {
        st = arm_phase2(C, a);
    } else {
        if (C->logmode)
            st = arm_lift(C, i, 1);
        if (!st)
            st = arm_lift(C, i, 0);
    }
    if (st)
        a->status = st, bw_fail(&a->err, st, "arm %d: %s", i, phase_failure(st, C->phase));
}

/* A block: units [b per, (b + 1) per) of the phase (per = 1, or all of them for a small
 * comparison: one thread, no hand-over between phases). */
static int cmp_block(bw_job *job, size_t b)
{
    cmp_ctx *C = job->ctx;
    for (int u = (int)b * C->per; u < ((int)b + 1) * C->per && u < C->nunits; u++) {
        cmp_unit(C, u);
        atomic_fetch_add(&job->phase, 1);
    }
    return 0;
}

/* The blocks of a phase of nunits units. */
static size_t cmp_blocks(cmp_ctx *C, int nunits)
{
    C->nunits = nunits;
    return (size_t)((nunits + C->per - 1) / C->per);
}

/* Phase 1 done: the shared grid from every arm's quantiles and truncation point. */
static int grid_make(cmp_ctx *C)
{
    int n = C->req.narms, m = 0, keep[BW_CMP_MAX_ARMS * (NQ + 1)];
    double qs[BW_CMP_MAX_ARMS * (NQ + 1)], qa[BW_CMP_MAX_ARMS * NQ];
    double lo = INFINITY, hi = -INFINITY;
    C->logmode = 1;
    for (int i = 0; i < n; i++)
        C->logmode &= C->arm[i].positive;
    for (int i = 0; i < n; i++) {
        arm_t *a = &C->arm[i];
        for (int k = 0; k < NQ; k++) {
            double x = a->qu[k];
            qs[m] = qa[i * NQ + k] = a->positive && !C->logmode ? exp(x) : x;
            keep[m++] = 0;
        }
        a->own_lo = isfinite(qs[m - NQ]) ? qs[m - NQ] : -INFINITY;
        a->own_hi = isfinite(qs[m - 1]) ? qs[m - 1] : INFINITY;
        qs[m] = a->heavy ? (C->logmode ? log(a->trunc) : a->trunc) : NAN;
        keep[m++] = 1;
        lo = fmin(lo, qs[m - 1 - NQ + Q05]);
        hi = fmax(hi, qs[m - 1 - NQ + Q95]);
    }
    C->nedges = make_edges(qs, keep, m, qa, n, lo, hi, C->edges, MAX_PANELS);
    return C->nedges >= 2;
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
    if (C->int_status) {
        job->err = C->int_err;
        return -1;
    }
    if (C->phase == 1) {
        for (int i = 0; i < n; i++) {
            const arm_t *a = &C->arm[i];
            C->res.arm[i].mean = a->mean;
            C->res.arm[i].truncated = a->heavy;
            C->res.arm[i].log_mean[0] = a->log_mean[0];
            C->res.arm[i].log_mean[1] = a->log_mean[1];
        }
        if (!grid_make(C)) {
            bw_fail(&job->err, BW_E_NUMERIC, "the arms' distributions are degenerate");
            return -1;
        }
        /* the arms whose quantile nodes the lifts sum over: both, for absolute lifts of
         * positive arms (lift_side_at) */
        for (int i = 0; i < n && (C->req.nlevels || C->req.nthresholds); i++) {
            for (int rel = 0; rel <= C->logmode && i != C->req.control; rel++) {
                int oc = over_control(C, i, rel), both = !rel && by_sign(C, i);
                C->arm[oc || both ? C->req.control : i].lift_over = 1;
                C->arm[!oc || both ? i : C->req.control].lift_over = 1;
            }
        }
        C->phase = 2;
        job->nblocks = cmp_blocks(C, n);
        return BW_JOB_AGAIN;
    }
    if (C->phase == 2) {
        C->phase = 3;
        C->nlift = 0;
        for (int i = 0; i < n && (C->req.nlevels || C->req.nthresholds); i++)
            if (i != C->req.control)
                C->lift_arm[C->nlift++] = i;
        job->nblocks = cmp_blocks(C, C->nlift + (C->req.full ? 1 : 0));
        if (job->nblocks == 0)
            return 0;
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
    atomic_store(&job->phase, job->phases_total - 1);
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
    cmp_ctx *C = calloc(1, sizeof *C + (size_t)req->narms * sizeof C->arm[0]);
    if (!C)
        return NULL;
    C->req = *req;
    C->phase = 1;
    rule_init(&C->rule);
    zweights_init(&C->zw);
    C->res.narms = req->narms;
    C->res.nlevels = req->nlevels;
    C->res.nthresholds = req->nthresholds;
    for (int i = 0; i < req->narms; i++) {
        C->arm[i].q = req->arm[i];
        fill_nan(&C->res.arm[i]);
    }
    /* a few closed-form arms are quicker on one thread than handed between threads */
    int small = req->narms <= 3;
    for (int i = 0; i < req->narms; i++)
        small &= req->arm[i].nfactors == 1 && req->arm[i].f[0].kind != BW_KIND_NIG_LNMEAN;
    C->per = small ? BW_CMP_MAX_ARMS + 1 : 1;
    bw_job *job = bw_job_new(cmp_blocks(C, req->narms), cmp_block, cmp_finish, C, cmp_free);
    if (job) {
        C->job = job;
        /* progress: one step per block of each phase (an arm, the integrals, a lift) and
         * per finish step; the last finish completes it */
        job->phases_total = 3 * (size_t)req->narms + 4;
        double nan = NAN;
        uint64_t bits;
        memcpy(&bits, &nan, sizeof bits);
        atomic_store(&job->value_bits, bits);
    }
    return job;
}

const bw_cmp_result *bw_compare_result(const bw_job *job)
{
    const bw_cmp_result *mc = bw_compare_mc_result(job);
    if (mc)
        return mc;
    return &((const cmp_ctx *)job->ctx)->res;
}
