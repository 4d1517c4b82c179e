/*
 * compare_mc.c -- comparisons by Monte Carlo (compare.h), for requests with an arm that has
 * no tractable integrals: a mixture's mean (a Dirichlet-weighted sum of component means) or
 * a compound mixture's revenue per user.  Every arm of such a request is drawn, the exact
 * ones too, so that all its figures come from one set of joint draws.  Pure C, no Python.h.
 *
 * Streams.  Joint draw j is position j of every arm's stream: arm i draws on the key
 * bw_stream_key(its posterior's key, BW_TAG_CMP_MC + i), through its family's draw op (a
 * drawn arm) or bw_sample on tag BW_TAG_CMP_MC (an exact arm).  So the draws are never a
 * user's, and one posterior given as two arms is two independent arms.
 *
 * The job, in four phases:
 *   pilot    one block per arm: its first PILOT draws; an exact arm's mean and truncation
 *            point (bw_mean and bw_quantile, as compare.c); a heavy drawn arm's truncation
 *            point, the empirical BW_TRUNC_LEVEL quantile of its pilot draws;
 *   edges    (lift intervals asked) one block per non-control arm: its lifts over the
 *            control at the pilot draws, sorted, give the NBINS - 1 edges of each lift's
 *            histogram (PILOT / NBINS pilot lifts per bin);
 *   sweep    one block per CHUNK joint draws: P(best), P(beat control) and P(lift > t) as
 *            integer counts; the losses, the lift means and a drawn arm's mean as per-block
 *            moments (count, mean, sum of squared deviations) merged in block order when the
 *            phase ends; each lift's histogram;
 *   collect  (lift intervals asked) the same draws again: a lift that falls in a bin holding
 *            a sought order statistic is kept (pools sized by the histogram), and the median
 *            and the interval ends are read off the sorted pools: exact empirical quantiles,
 *            linear between neighbouring order statistics (as the mixtures' intervals).
 * Counts are integers, moments are merged in a fixed order and pools are multisets, so a
 * request gives bit-identical figures for any thread count.  Memory, with no array of
 * draws: the per-block moments (draws / CHUNK x arms x 5 x 3 doubles: 120 KB for two arms
 * at 2^20 draws, 15 MB for 32 arms at 2^24), the pilot draws (PILOT doubles per arm, freed
 * after the edges), and per lift a histogram (NBINS counts and edges) and its pools (about
 * draws / NBINS doubles per sought order statistic: 1 KB per 2^20 draws).
 *
 * Definitions (y = x, or -x when lower is better):
 *   P(best_i) = P(y_i = max_j y_j), a tie going to one tied arm chosen by a hash of the
 *   position; P(beat_i) = P(y_i > y_c), a tie counting one half; loss_i = E[max_j y_j - y_i];
 *   loss_vs_i = E[max(y_c - y_i, 0)]; lifts as reported (compare.h), their mean, median,
 *   central intervals and P(lift > t).  Relative lifts need every arm positive (the exact
 *   path's rule): exact arms by their kinds, drawn arms by BW_CMP_POSITIVE.
 * Heavy arms (an infinite mean: a lognormal factor, or BW_CMP_HEAVY): the losses and the
 * lift means are averaged over the joint draws in which every heavy arm is at most its
 * truncation point (the arms being independent, draws of the truncated arms), and a drawn
 * heavy arm's mean over its own draws at most that point; probabilities and quantiles use
 * every draw.  An exact arm's mean is its exact (truncated) mean, as in compare.c.
 * Standard errors: sqrt(p (1 - p) / draws) for a probability, sd / sqrt(n) for a mean of n
 * draws; result.error is the largest of the probabilities'.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "compare.h"
#include "family.h"

#define CHUNK 4096                  /* joint draws per block of the sweep and the collection */
#define PILOT (1u << 16)            /* the first draws: histogram edges, truncation points */
#define NBINS 2048                  /* bins of a lift's histogram */
#define NTARGETS (1 + 2 * BW_CMP_MAX_LEVELS)    /* the median and the interval ends */
#define NPOOLS (2 * NTARGETS)       /* bins holding the order statistics of one lift */

enum { PH_PILOT, PH_EDGES, PH_SWEEP, PH_COLLECT };
enum { F_LOSS, F_LOSS_VS, F_MEAN, F_REL, F_ABS, NFIG };

typedef struct {
    double n, mean, m2;         /* count, mean, sum of squared deviations */
} moments;

/* A mean accumulated in a block: sums of deviations from its first value k. */
typedef struct {
    double k, s1, s2, n;
} acc_t;

/* A lift's histogram: bin b holds edge[b - 1] <= v < edge[b] (bin 0 from -inf, the last to
 * +inf, and NaN), with the pools of the bins that hold a sought order statistic. */
typedef struct {
    double edge[NBINS - 1];
    atomic_uint_fast64_t count[NBINS];
    short pool_of[NBINS];       /* the bin's pool, or -1 */
    int npools;
    double *pool[NPOOLS];
    size_t cap[NPOOLS];
    atomic_size_t fill[NPOOLS];
} hist_t;

typedef struct {
    const bw_quantity *q;       /* an exact arm: the request's quantity */
    const bw_record *post;      /* a drawn arm: its posterior (the request's copy) */
    int part;
    uint64_t key;               /* the key of its comparison draws */
    int positive, heavy;
    double trunc, mean;         /* heavy: the truncation point; exact: the mean */
    double *pilot;              /* its first PILOT draws (pilot and edges phases) */
    hist_t *h[2];               /* relative, absolute lift (non-control arms) */
    atomic_uint_fast64_t best, beats2;      /* P(beat) counted in halves */
    atomic_uint_fast64_t above[BW_CMP_MAX_THRESHOLDS][2];
} mc_arm;

typedef struct {
    bw_cmp_request req;         /* owns src[].post */
    bw_job *job;
    int phase;
    int relok;                  /* every arm positive: relative lifts */
    int lifts;                  /* lift intervals asked */
    double sgn;                 /* 1 higher is better, -1 lower */
    uint64_t n;                 /* joint draws */
    size_t nblocks;             /* of the sweep and the collection */
    size_t nhist;               /* lifts with a histogram */
    mc_arm arm[BW_CMP_MAX_ARMS];
    moments *slot;              /* [block][arm][figure] */
    atomic_int failed;
    bw_cmp_result res;
} mc_ctx;

/* ======================================================================================== */
/* Small pieces                                                                              */
/* ======================================================================================== */

static void arm_draw(const mc_arm *a, uint64_t start, size_t m, double *out)
{
    if (a->post)
        a->post->family->draw(a->post, a->part, a->key, start, m, out);
    else
        bw_sample(a->q, (bw_stream){a->key, BW_TAG_CMP_MC}, start, m, out);
}

/* The lift of x over the control's xc as reported (compare.h): sgn (x / xc - 1) or
 * sgn (x - xc); a zero of either sign becomes +0.0, so that equal lifts have equal bits. */
static double lift_of(const mc_ctx *C, int relative, double x, double xc)
{
    double v = x - xc;
    if (relative)
        v = xc > 0.0 ? x / xc - 1.0 : (x > 0.0 ? INFINITY : 0.0);
    return C->sgn * v + 0.0;
}

/* A block's failure: the first one fills the job's error (blocks fail on many threads). */
static int block_failed(mc_ctx *C, const bw_error *e)
{
    if (!atomic_exchange(&C->failed, 1))
        C->job->err = *e;
    return -1;
}

static int out_of_memory(mc_ctx *C)
{
    bw_error e;
    bw_fail(&e, BW_E_NOMEM, "out of memory for the draws of a Monte Carlo comparison");
    return block_failed(C, &e);
}

static int cmp_nan_last(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    if (isnan(a) || isnan(b))
        return !!isnan(a) - !!isnan(b);
    return (a > b) - (a < b);
}

static double between(double lo, double hi, double f)
{
    return f == 0.0 || lo == hi ? lo : lo + f * (hi - lo);
}

static void acc_add(acc_t *A, double v)
{
    if (A->n == 0.0)
        A->k = v;
    double d = v - A->k;
    A->s1 += d;
    A->s2 += d * d;
    A->n += 1.0;
}

static moments acc_moments(const acc_t *A)
{
    moments m = {A->n, 0.0, 0.0};
    if (A->n > 0.0) {
        m.mean = A->k + A->s1 / A->n;
        m.m2 = fmax(A->s2 - A->s1 * A->s1 / A->n, 0.0);
    }
    return m;
}

/* Chan et al.'s pairwise update: t becomes the moments of t's values and b's. */
static void merge(moments *t, const moments *b)
{
    if (b->n == 0.0)
        return;
    double n = t->n + b->n, d = b->mean - t->mean;
    t->mean += d * b->n / n;
    t->m2 += b->m2 + d * d * t->n * b->n / n;
    t->n = n;
}

static double se_of(const moments *m)
{
    return m->n > 1.0 ? sqrt(m->m2 / (m->n - 1.0) / m->n) : NAN;
}

/* k / N and its standard error. */
static double prob(double k, double N, double *se)
{
    double p = k / N;
    *se = sqrt(p * (1.0 - p) / N);
    return p;
}

/* The bin of v: how many edges are not above it (NaN: all); a branchless binary search. */
static int bin_of(const hist_t *h, double v)
{
    const double *base = h->edge;
    size_t n = NBINS - 1;
    while (n > 1) {
        size_t half = n / 2;
        base = v < base[half] ? base : base + half;
        n -= half;
    }
    return (int)(base - h->edge) + !(v < *base);
}

/* The bin holding the order statistic of rank r (0-based), *before the values below it. */
static int rank_bin(const hist_t *h, uint64_t r, uint64_t *before)
{
    uint64_t cum = 0;
    int b = 0;
    for (; b < NBINS - 1; b++) {
        uint64_t k = atomic_load(&h->count[b]);
        if (cum + k > r)
            break;
        cum += k;
    }
    *before = cum;
    return b;
}

/* The sought probabilities: the median, then each level's interval ends. */
static int targets(const bw_cmp_request *R, double *p)
{
    p[0] = 0.5;
    for (int l = 0; l < R->nlevels; l++) {
        p[1 + 2 * l] = 0.5 * (1.0 - R->levels[l]);
        p[2 + 2 * l] = 0.5 * (1.0 + R->levels[l]);
    }
    return 1 + 2 * R->nlevels;
}

/* The ranks of the order statistics between which the p-quantile of n values lies, and
 * the weight of the second. */
static void ranks(double p, uint64_t n, uint64_t r[2], double *f)
{
    double h = p * (double)(n - 1);
    r[0] = (uint64_t)h;
    r[1] = r[0] + 1 < n ? r[0] + 1 : r[0];
    *f = h - (double)r[0];
}

/* ======================================================================================== */
/* Phases 1 and 2: the pilot draws                                                           */
/* ======================================================================================== */

static int pilot_block(mc_ctx *C, int i)
{
    mc_arm *a = &C->arm[i];
    a->pilot = malloc(PILOT * sizeof *a->pilot);
    if (!a->pilot)
        return out_of_memory(C);
    arm_draw(a, 0, PILOT, a->pilot);
    if (!a->post) {
        bw_error e;
        for (int k = 0; k < a->q->nfactors; k++)
            if (a->q->f[k].kind == BW_KIND_NIG_MEAN && !(a->q->f[k].p[2] > 0.5)) {
                bw_fail(&e, BW_E_DOMAIN, "arm %d: its posterior mean is undefined (Student t "
                        "with at most 1 degree of freedom)", i);
                return block_failed(C, &e);
            }
        int st = bw_mean(a->q, &a->mean);
        a->heavy |= isinf(a->mean);
        if (!st && a->heavy)
            st = bw_quantile(a->q, BW_TRUNC_LEVEL, &a->trunc);
        if (!st)
            return 0;
        bw_fail(&e, st, "arm %d: its mean or its truncation point could not be computed to "
                "full accuracy", i);
        return block_failed(C, &e);
    }
    if (!a->heavy)
        return 0;
    double *s = malloc(PILOT * sizeof *s), f;
    if (!s)
        return out_of_memory(C);
    memcpy(s, a->pilot, PILOT * sizeof *s);
    qsort(s, PILOT, sizeof *s, cmp_nan_last);
    uint64_t r[2];
    ranks(BW_TRUNC_LEVEL, PILOT, r, &f);
    a->trunc = between(s[r[0]], s[r[1]], f);
    free(s);
    return 0;
}

static int edges_block(mc_ctx *C, int i)
{
    const double *xi = C->arm[i].pilot, *xc = C->arm[C->req.control].pilot;
    double *v = malloc(PILOT * sizeof *v);
    if (!v)
        return out_of_memory(C);
    for (int kind = 0; kind < 2; kind++) {
        hist_t *h = C->arm[i].h[kind];
        if (!h)
            continue;
        for (size_t j = 0; j < PILOT; j++)
            v[j] = lift_of(C, kind == BW_CMP_RELATIVE, xi[j], xc[j]);
        qsort(v, PILOT, sizeof *v, cmp_nan_last);
        for (int b = 0; b < NBINS - 1; b++) {
            double e = v[(size_t)(b + 1) * (PILOT / NBINS)];
            h->edge[b] = isnan(e) ? INFINITY : e;
        }
    }
    free(v);
    return 0;
}

static void free_pilots(mc_ctx *C)
{
    for (int i = 0; i < C->req.narms; i++) {
        free(C->arm[i].pilot);
        C->arm[i].pilot = NULL;
    }
}

/* ======================================================================================== */
/* Phases 3 and 4: the joint draws                                                           */
/* ======================================================================================== */

/* Joint draws of block b into x[arm * CHUNK + j] (allocated here); how many, 0 when out of
 * memory. */
static size_t draw_chunk(const mc_ctx *C, size_t b, double **x)
{
    uint64_t start = (uint64_t)b * CHUNK;
    size_t m = C->n - start < CHUNK ? (size_t)(C->n - start) : CHUNK;
    *x = malloc((size_t)C->req.narms * CHUNK * sizeof **x);
    if (!*x)
        return 0;
    for (int a = 0; a < C->req.narms; a++)
        arm_draw(&C->arm[a], start, m, *x + (size_t)a * CHUNK);
    return m;
}

/* The best arm at joint draw j (position pos); a tie goes to one of the tied arms, picked by
 * a hash of the position. */
static int winner(const mc_ctx *C, const double *x, size_t j, uint64_t pos, double *top)
{
    int n = C->req.narms, win = 0, ties = 1;
    *top = C->sgn * x[j];
    for (int a = 1; a < n; a++) {
        double y = C->sgn * x[(size_t)a * CHUNK + j];
        if (y > *top)
            *top = y, win = a, ties = 1;
        else if (y == *top)
            ties++;
    }
    if (ties > 1) {
        uint64_t pick = bw_stream_key(pos, BW_TAG_CMP_MC) % (uint64_t)ties;
        for (win = 0; !(C->sgn * x[(size_t)win * CHUNK + j] == *top && pick-- == 0); win++)
            ;
    }
    return win;
}

/* Every heavy arm at most its truncation point at joint draw j. */
static int within(const mc_ctx *C, const double *x, size_t j)
{
    for (int a = 0; a < C->req.narms; a++)
        if (C->arm[a].heavy && !(x[(size_t)a * CHUNK + j] <= C->arm[a].trunc))
            return 0;
    return 1;
}

/* A block's counts, added to the shared ones when it ends (hist: per lift with a histogram,
 * in arm order, relative then absolute, NBINS counts). */
typedef struct {
    uint64_t best[BW_CMP_MAX_ARMS], beats2[BW_CMP_MAX_ARMS];
    uint64_t above[BW_CMP_MAX_ARMS][BW_CMP_MAX_THRESHOLDS][2];
    acc_t acc[BW_CMP_MAX_ARMS][NFIG];
    uint32_t *hist[BW_CMP_MAX_ARMS][2];
    uint32_t counts[];
} sweep_t;

/* The figures of arm a != control at joint draw j. */
static void sweep_lifts(mc_ctx *C, sweep_t *S, int a, double xa, double xc, int in)
{
    const bw_cmp_request *R = &C->req;
    const mc_arm *A = &C->arm[a];
    double ya = C->sgn * xa, yc = C->sgn * xc;
    double lift[2] = {C->relok ? lift_of(C, 1, xa, xc) : NAN, lift_of(C, 0, xa, xc)};
    S->beats2[a] += ya > yc ? 2 : ya == yc;
    if (in)
        acc_add(&S->acc[a][F_LOSS_VS], fmax(yc - ya, 0.0));
    for (int k = C->relok ? 0 : 1; k < 2; k++) {
        if (in)
            acc_add(&S->acc[a][F_REL + k], lift[k]);
        for (int t = 0; t < R->nthresholds; t++)
            S->above[a][t][k] += lift[k] > R->thresholds[t];
        if (A->h[k])
            S->hist[a][k][bin_of(A->h[k], lift[k])]++;
    }
}

static int sweep_block(mc_ctx *C, size_t b)
{
    const bw_cmp_request *R = &C->req;
    int n = R->narms, c = R->control;
    double *x, top;
    size_t m = draw_chunk(C, b, &x);
    sweep_t *S = calloc(1, sizeof *S + C->nhist * NBINS * sizeof(uint32_t));
    if (!m || !S) {
        free(x);
        free(S);
        return out_of_memory(C);
    }
    uint32_t *next = S->counts;
    for (int a = 0; a < n; a++)
        for (int k = 0; k < 2; k++)
            if (C->arm[a].h[k])
                S->hist[a][k] = next, next += NBINS;
    for (size_t j = 0; j < m; j++) {
        S->best[winner(C, x, j, (uint64_t)b * CHUNK + j, &top)]++;
        int in = within(C, x, j);
        double xc = x[(size_t)c * CHUNK + j];
        for (int a = 0; a < n; a++) {
            const mc_arm *A = &C->arm[a];
            double xa = x[(size_t)a * CHUNK + j];
            if (A->post && !(A->heavy && !(xa <= A->trunc)))
                acc_add(&S->acc[a][F_MEAN], xa);
            if (in)
                acc_add(&S->acc[a][F_LOSS], top - C->sgn * xa);
            if (a != c)
                sweep_lifts(C, S, a, xa, xc, in);
        }
    }
    moments *slot = C->slot + b * (size_t)n * NFIG;
    for (int a = 0; a < n; a++) {
        mc_arm *A = &C->arm[a];
        for (int f = 0; f < NFIG; f++)
            slot[a * NFIG + f] = acc_moments(&S->acc[a][f]);
        atomic_fetch_add(&A->best, S->best[a]);
        atomic_fetch_add(&A->beats2, S->beats2[a]);
        for (int k = 0; k < 2; k++) {
            for (int t = 0; t < R->nthresholds; t++)
                atomic_fetch_add(&A->above[t][k], S->above[a][t][k]);
            for (int h = 0; S->hist[a][k] && h < NBINS; h++)
                if (S->hist[a][k][h])
                    atomic_fetch_add_explicit(&A->h[k]->count[h], S->hist[a][k][h],
                                              memory_order_relaxed);
        }
    }
    free(S);
    free(x);
    return 0;
}

static int collect_block(mc_ctx *C, size_t b)
{
    int c = C->req.control;
    double *x;
    size_t m = draw_chunk(C, b, &x);
    if (!m) {
        free(x);
        return out_of_memory(C);
    }
    const double *xc = x + (size_t)c * CHUNK;
    for (int a = 0; a < C->req.narms; a++) {
        const double *xa = x + (size_t)a * CHUNK;
        for (int k = 0; k < 2; k++) {
            hist_t *h = C->arm[a].h[k];
            for (size_t j = 0; h && j < m; j++) {
                double v = lift_of(C, k == BW_CMP_RELATIVE, xa[j], xc[j]);
                int p = h->pool_of[bin_of(h, v)];
                if (p < 0)
                    continue;
                size_t i = atomic_fetch_add_explicit(&h->fill[p], 1, memory_order_relaxed);
                if (i < h->cap[p])
                    h->pool[p][i] = v;
            }
        }
    }
    free(x);
    return 0;
}

/* ======================================================================================== */
/* Results                                                                                   */
/* ======================================================================================== */

/* The sweep's figures of arm a into the result; the largest standard error of its
 * probabilities. */
static double arm_results(mc_ctx *C, int a)
{
    const bw_cmp_request *R = &C->req;
    mc_arm *A = &C->arm[a];
    bw_cmp_arm *o = &C->res.arm[a];
    double N = (double)C->n, err = 0.0;
    moments tot[NFIG] = {{0}};
    for (size_t b = 0; b < C->nblocks; b++)
        for (int f = 0; f < NFIG; f++)
            merge(&tot[f], &C->slot[(b * (size_t)R->narms + (size_t)a) * NFIG + f]);
    o->truncated = A->heavy;
    o->mean = A->post ? tot[F_MEAN].mean : A->mean;
    o->se_mean = A->post ? se_of(&tot[F_MEAN]) : 0.0;
    if (R->full) {
        o->prob_best = prob((double)atomic_load(&A->best), N, &o->se_best);
        o->loss = tot[F_LOSS].mean;
        o->se_loss = se_of(&tot[F_LOSS]);
        o->loss_vs = 0.0;
        o->se_loss_vs = 0.0;
        err = o->se_best;
    }
    if (a == R->control)
        return err;
    if (R->full) {
        o->prob_beats = prob(0.5 * (double)atomic_load(&A->beats2), N, &o->se_beats);
        o->loss_vs = tot[F_LOSS_VS].mean;
        o->se_loss_vs = se_of(&tot[F_LOSS_VS]);
        err = fmax(err, o->se_beats);
    }
    for (int k = C->relok ? 0 : 1; k < 2; k++) {
        for (int t = 0; t < R->nthresholds; t++) {
            o->above[t][k] = prob((double)atomic_load(&A->above[t][k]), N, &o->se_above[t][k]);
            err = fmax(err, o->se_above[t][k]);
        }
        for (int l = 0; l < R->nlevels; l++)
            o->lift[l][k][BW_CMP_MEAN] = tot[F_REL + k].mean;
        if (R->nlevels)
            o->se_lift_mean[k] = se_of(&tot[F_REL + k]);
    }
    return err;
}

/* Pools for the bins of every sought order statistic; 0 or -1 (out of memory). */
static int pools_setup(mc_ctx *C)
{
    double p[NTARGETS], f;
    int nt = targets(&C->req, p);
    for (int a = 0; a < C->req.narms; a++) {
        for (int k = 0; k < 2; k++) {
            hist_t *h = C->arm[a].h[k];
            if (!h)
                continue;
            for (int b = 0; b < NBINS; b++)
                h->pool_of[b] = -1;
            for (int t = 0; t < 2 * nt; t++) {
                uint64_t r[2], before;
                ranks(p[t / 2], C->n, r, &f);
                int b = rank_bin(h, r[t % 2], &before);
                if (h->pool_of[b] >= 0)
                    continue;
                int q = h->npools++;
                h->pool_of[b] = (short)q;
                h->cap[q] = (size_t)atomic_load(&h->count[b]);
                h->pool[q] = malloc((h->cap[q] ? h->cap[q] : 1) * sizeof *h->pool[q]);
                if (!h->pool[q])
                    return -1;
            }
        }
    }
    return 0;
}

/* The order statistic of rank r of a lift (its bin's pool sorted). */
static double order_stat(const hist_t *h, uint64_t r)
{
    uint64_t before;
    int b = rank_bin(h, r, &before);
    return h->pool[h->pool_of[b]][r - before];
}

/* The lifts' medians and intervals from the pools; 0 or -1 (a pool not filled). */
static int lift_results(mc_ctx *C)
{
    const bw_cmp_request *R = &C->req;
    double p[NTARGETS], f;
    int nt = targets(R, p);
    for (int a = 0; a < R->narms; a++) {
        for (int k = 0; k < 2; k++) {
            hist_t *h = C->arm[a].h[k];
            for (int q = 0; h && q < h->npools; q++) {
                if (atomic_load(&h->fill[q]) != h->cap[q])
                    return -1;
                qsort(h->pool[q], h->cap[q], sizeof *h->pool[q], cmp_nan_last);
            }
            for (int t = 0; h && t < nt; t++) {
                uint64_t r[2];
                ranks(p[t], C->n, r, &f);
                double v = between(order_stat(h, r[0]), order_stat(h, r[1]), f);
                double *o = C->res.arm[a].lift[t ? (t - 1) / 2 : 0][k];
                if (t == 0)
                    for (int l = 0; l < R->nlevels; l++)
                        C->res.arm[a].lift[l][k][BW_CMP_MEDIAN] = v;
                else
                    o[t % 2 ? BW_CMP_LO : BW_CMP_HI] = v;
            }
        }
    }
    return 0;
}

/* ======================================================================================== */
/* The job                                                                                   */
/* ======================================================================================== */

static int next_phase(mc_ctx *C, int phase, size_t nblocks)
{
    C->phase = phase;
    C->job->nblocks = nblocks;
    return BW_JOB_AGAIN;
}

static int mc_block(bw_job *job, size_t b)
{
    mc_ctx *C = job->ctx;
    switch (C->phase) {
    case PH_PILOT:
        return pilot_block(C, (int)b);
    case PH_EDGES:    /* the non-control arms */
        return edges_block(C, (int)b + ((int)b >= C->req.control));
    case PH_SWEEP:
        return sweep_block(C, b);
    default:
        return collect_block(C, b);
    }
}

static int mc_finish(bw_job *job)
{
    mc_ctx *C = job->ctx;
    switch (C->phase) {
    case PH_PILOT:
        if (C->lifts)
            return next_phase(C, PH_EDGES, (size_t)C->req.narms - 1);
        /* fall through */
    case PH_EDGES:
        free_pilots(C);
        return next_phase(C, PH_SWEEP, C->nblocks);
    case PH_SWEEP:
        C->res.error = 0.0;
        for (int a = 0; a < C->req.narms; a++)
            C->res.error = fmax(C->res.error, arm_results(C, a));
        if (!C->lifts)
            return 0;
        if (pools_setup(C) == 0)
            return next_phase(C, PH_COLLECT, C->nblocks);
        bw_fail(&job->err, BW_E_NOMEM, "out of memory for the lift quantiles of a Monte "
                "Carlo comparison");
        return -1;
    default:
        if (lift_results(C) == 0)
            return 0;
        bw_fail(&job->err, BW_E_NUMERIC, "the second pass of a Monte Carlo comparison did "
                "not reproduce its first");
        return -1;
    }
}

static void release_sources(bw_cmp_source *src)
{
    for (int i = 0; i < BW_CMP_MAX_ARMS; i++) {
        free(src[i].post);
        src[i].post = NULL;
    }
}

static void mc_free(void *p)
{
    mc_ctx *C = p;
    for (int a = 0; a < BW_CMP_MAX_ARMS; a++) {
        for (int k = 0; k < 2; k++) {
            hist_t *h = C->arm[a].h[k];
            for (int q = 0; h && q < h->npools; q++)
                free(h->pool[q]);
            free(h);
        }
    }
    free_pilots(C);
    release_sources(C->req.src);
    free(C->slot);
    free(C);
}

/* Every figure NaN until computed (a probability's standard error with it). */
static void result_nan(bw_cmp_arm *o)
{
    double *runs[] = {&o->lift[0][0][0], &o->above[0][0], &o->se_above[0][0],
                      &o->se_lift_mean[0]};
    size_t lens[] = {sizeof o->lift, sizeof o->above, sizeof o->se_above,
                     sizeof o->se_lift_mean};
    for (int r = 0; r < 4; r++)
        for (size_t k = 0; k < lens[r] / sizeof(double); k++)
            runs[r][k] = NAN;
    o->prob_best = o->prob_beats = o->loss = o->loss_vs = NAN;
    o->se_best = o->se_beats = o->se_loss = o->se_loss_vs = NAN;
    o->log_mean[0] = o->log_mean[1] = NAN;
}

static void arm_init(mc_ctx *C, int i)
{
    const bw_cmp_source *s = &C->req.src[i];
    mc_arm *a = &C->arm[i];
    a->q = &C->req.arm[i];
    a->post = s->post;
    a->part = s->part;
    a->key = bw_stream_key(s->key, BW_TAG_CMP_MC + (uint64_t)i);
    a->trunc = INFINITY;
    a->positive = !a->post || (s->flags & BW_CMP_POSITIVE);
    a->heavy = a->post && (s->flags & BW_CMP_HEAVY);
    for (int k = 0; !a->post && k < a->q->nfactors; k++) {
        a->positive &= a->q->f[k].kind != BW_KIND_NIG_MEAN;
        a->heavy |= a->q->f[k].kind == BW_KIND_NIG_LNMEAN;
    }
    C->relok &= a->positive;
    result_nan(&C->res.arm[i]);
}

int bw_compare_mc_wanted(const bw_cmp_request *req)
{
    for (int i = 0; i < req->narms && i < BW_CMP_MAX_ARMS; i++)
        if (req->src[i].post)
            return 1;
    return 0;
}

int bw_compare_mc_check(const bw_cmp_request *req, bw_error *err)
{
    if (!bw_compare_mc_wanted(req))
        return 0;
    if (req->draws && (req->draws < BW_CMP_MC_DRAWS || req->draws > BW_CMP_MC_MAX_DRAWS))
        return bw_fail(err, BW_E_DOMAIN, "draws = %llu must be between %u (2^20) and %u "
                       "(2^24) for a Monte Carlo comparison",
                       (unsigned long long)req->draws, BW_CMP_MC_DRAWS, BW_CMP_MC_MAX_DRAWS);
    for (int i = 0; i < req->narms; i++)
        if (req->src[i].flags & ~(BW_CMP_POSITIVE | BW_CMP_HEAVY))
            return bw_fail(err, BW_E_DOMAIN, "arm %d: flags = %d is not a combination of "
                           "BW_CMP_POSITIVE and BW_CMP_HEAVY", i, req->src[i].flags);
    return 0;
}

bw_job *bw_compare_mc_job(const bw_cmp_request *req)
{
    mc_ctx *C = calloc(1, sizeof *C);
    if (!C) {
        bw_cmp_request copy = *req;
        release_sources(copy.src);
        return NULL;
    }
    C->req = *req;
    const bw_cmp_request *R = &C->req;
    C->n = R->draws ? R->draws : BW_CMP_MC_DRAWS;
    C->nblocks = (size_t)((C->n + CHUNK - 1) / CHUNK);
    C->sgn = R->higher ? 1.0 : -1.0;
    C->lifts = R->nlevels > 0;
    C->relok = 1;
    C->res.narms = R->narms;
    C->res.nlevels = R->nlevels;
    C->res.nthresholds = R->nthresholds;
    C->res.draws = C->n;
    for (int i = 0; i < R->narms; i++)
        arm_init(C, i);
    int ok = (C->slot = malloc(C->nblocks * (size_t)R->narms * NFIG * sizeof *C->slot)) != NULL;
    for (int i = 0; ok && C->lifts && i < R->narms; i++) {
        for (int k = C->relok ? 0 : 1; ok && i != R->control && k < 2; k++)
            ok = (C->arm[i].h[k] = calloc(1, sizeof(hist_t))) != NULL && ++C->nhist;
    }
    if (!ok) {
        mc_free(C);
        return NULL;
    }
    bw_job *job = bw_job_new((size_t)R->narms, mc_block, mc_finish, C, mc_free);
    if (job)
        C->job = job;
    return job;
}

const bw_cmp_result *bw_compare_mc_result(const bw_job *job)
{
    return job->block == mc_block ? &((const mc_ctx *)job->ctx)->res : NULL;
}

void bw_compare_release(bw_cmp_request *req)
{
    release_sources(req->src);
}
