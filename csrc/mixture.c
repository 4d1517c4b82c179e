/*
 * mixture.c -- normal and lognormal mixtures by mean-field variational Bayes (mixture.h).
 *
 * Sections: special functions; the standardisation; the M-step and the ELBO;
 * initialisation (k-means++, Lloyd); the public functions, with the E-step kernel and,
 * before bw_mix_mstep, the over-relaxation and merge moves.
 *
 * Notation (all on the standardised scale y): for component k after an E-step,
 *     N_k = sum_i r_ik,  s1_k = sum_i r_ik (y_i - c_k),  s2_k = sum_i r_ik (y_i - c_k)^2,
 * where the shift c_k is the component mean m_k the E-step used (sums about a nearby point
 * keep the scatter accurate), and H = -sum_ik r_ik log r_ik.
 */
#include "mixture.h"

#include "philox.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__FAST_MATH__)
#error "mixture.c relies on IEEE arithmetic: do not compile it with -ffast-math or -Ofast"
#endif

/* Bit-identical results need every a * b + c rounded twice, never fused (the same rule as
 * sample.c): then each lane of a vectorised loop computes exactly what the scalar loop
 * would. */
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
/* no-trapping-math only lets the compiler if-convert compares (the floors and maxima of
 * the E-step) into vector selects; no value changes. */
#pragma GCC optimize("fp-contract=off", "no-trapping-math")
#endif

#define LANES 8                     /* fixed accumulator lanes of the E-step sums */
#define CHUNK 128                   /* values per inner E-step chunk (a multiple of LANES) */
#define SLOT 32                     /* doubles per block slot: N[8] s1[8] s2[8] H, padded */
#define SUBSAMPLE 65536             /* most values k-means++ and Lloyd look at */
#define LLOYD_ITERS 25
#define T_FLOOR (-300.0)            /* log-responsibility floor relative to the best */
#define MAX_ITER_CAP 1000000
#define LOG_2PI 1.8378770664093454836
#define MAD_TO_SD 1.482602218505602 /* 1 / Phi^-1(3/4) */
#define MIX_TAG UINT32_C(0x6D6978)  /* "mix" */

/* The E-step kernel is compiled for SSE2 (the x86-64 baseline), AVX2 and AVX-512F and the
 * loader picks the widest the CPU has (GCC function multiversioning: an ifunc, resolved
 * once).  The variants give the same bits: every lane performs the same IEEE operations in
 * the same order (no contraction, no reassociation; the lane sums are explicit), only more
 * lanes at a time.  Define BW_NO_SIMD_DISPATCH to build the baseline only. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    !defined(BW_NO_SIMD_DISPATCH)
#define ESTEP_CLONES __attribute__((target_clones("default", "avx2", "avx512f")))
#else
#define ESTEP_CLONES
#endif

#define ETA_START 2.0              /* first over-relaxation factor after a plain step */
#define ETA_MAX 64.0
#define MERGE_PERIOD 10             /* a merge is proposed every MERGE_PERIOD iterations */
#define MERGE_MEMORY 40             /* ... skipping pairs rejected this recently */
#define MERGE_MIN_N 0.01            /* components lighter than this are not merged */

enum { STEP_PLAIN = 0, STEP_EXTRAPOLATED = 1, STEP_MERGE = 2 };

/* q(pi) and q(mu, tau) on the standardised scale, with the E-step coefficients they imply:
 * log rho_ik = ec_k - eh_k (y_i - m_k)^2 + const. */
typedef struct {
    double alpha[BW_MIX_MAX_K], m[BW_MIX_MAX_K], kappa[BW_MIX_MAX_K];
    double a[BW_MIX_MAX_K], b[BW_MIX_MAX_K];
    double ec[BW_MIX_MAX_K], eh[BW_MIX_MAX_K];
} qpar;

/* The statistics of q(z) the M-step needs: per component the weight N, the weighted mean
 * ybar and the weighted scatter V = sum_i r_ik (y_i - ybar_k)^2. */
typedef struct {
    double N[BW_MIX_MAX_K], ybar[BW_MIX_MAX_K], V[BW_MIX_MAX_K];
} stats;

struct bw_mix {
    int K, log_scale, max_iter, accelerate;
    double alpha0, m0, kappa0, a0, b0, tol;
    size_t n, nblocks;
    double *y;                      /* standardised values */
    double loc, scale;
    double jac;                     /* ELBO(x) = ELBO(y) - jac */
    qpar q;                         /* what the next E-step uses */
    qpar qacc;                      /* the last accepted fit (what is reported) */
    stats tacc;                     /* the statistics qacc was computed from */
    stats tbase;                    /* the statistics q was computed from */
    int step;                       /* what q is: STEP_PLAIN = M(tacc), or a trial */
    uint64_t pair_bit;              /* the pair a STEP_MERGE trial merges */
    uint64_t tried_final;           /* pairs rejected on the current plateau */
    uint64_t tried_recent;          /* pairs rejected in the last MERGE_MEMORY iterations */
    double eta;                     /* current over-relaxation factor */
    double lacc;                    /* last accepted ELBO(y) */
    double *part;                   /* nblocks * SLOT partial sums */
    double *elbo;                   /* accepted ELBO history, data scale */
    size_t nelbo;
    int iter, converged, done;
};

/* ======================================================================================== */
/* Special functions                                                                         */
/* ======================================================================================== */

/* psi(x) for x > 0: the recurrence psi(x) = psi(x + 1) - 1/x up to x >= 10, then the
 * asymptotic series ln x - 1/(2x) - sum B_2j / (2j x^2j) to x^-14 (error < 1e-17 there). */
static double digamma(double x)
{
    double r = 0;
    while (x < 10) {
        r -= 1 / x;
        x += 1;
    }
    double f = 1 / (x * x);
    double s = f * (1.0 / 12 - f * (1.0 / 120 - f * (1.0 / 252 - f * (1.0 / 240
               - f * (1.0 / 132 - f * (691.0 / 32760 - f * (1.0 / 12)))))));
    return r + log(x) - 0.5 / x - s;
}

static double lgam(double x)
{
    int sign;
    return lgamma_r(x, &sign);
}

/* e^t for T_FLOOR <= t <= 0, branch-free so that loops over it vectorise: t = k ln2 + r
 * with k = round(t / ln2) (the 1.5 * 2^52 trick, which leaves k in the low mantissa bits),
 * |r| <= ln2 / 2 (ln2 split in a 32-bit head and a tail: k * head is exact), e^r by its
 * Taylor polynomial of degree 12 (truncation error < 2e-16 relative), times 2^k built
 * from bits.  A few ulps; e^0 = 1 exactly. */
static inline double exp_neg(double t)
{
    const double shift = 0x1.8p52;
    double kd = t * 0x1.71547652b82fep0 + shift;
    uint64_t ki;
    memcpy(&ki, &kd, sizeof ki);
    kd -= shift;
    double r = (t - kd * 0x1.62e42feep-1) - kd * 0x1.a39ef35793c76p-33;
    double p = 1.0 / 479001600;
    p = p * r + 1.0 / 39916800;
    p = p * r + 1.0 / 3628800;
    p = p * r + 1.0 / 362880;
    p = p * r + 1.0 / 40320;
    p = p * r + 1.0 / 5040;
    p = p * r + 1.0 / 720;
    p = p * r + 1.0 / 120;
    p = p * r + 1.0 / 24;
    p = p * r + 1.0 / 6;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    uint64_t sb = (ki + 1023) << 52;
    double s;
    memcpy(&s, &sb, sizeof s);
    return p * s;
}

/* ======================================================================================== */
/* Standardisation                                                                           */
/* ======================================================================================== */

static void swapd(double *a, double *b)
{
    double t = *a;
    *a = *b;
    *b = t;
}

static int cmp_double(const void *pa, const void *pb)
{
    double a = *(const double *)pa, b = *(const double *)pb;
    return (a > b) - (a < b);
}

/* The k-th smallest of a[0..n) (0-based), permuting a so that a[0..k) <= a[k] <= a[k+1..n):
 * quickselect with a median-of-three pivot and a three-way partition (ties cost nothing),
 * falling back to qsort of the remaining range after too many rounds (no quadratic case). */
static double select_kth(double *a, size_t n, size_t k)
{
    ptrdiff_t lo = 0, hi = (ptrdiff_t)n - 1, want = (ptrdiff_t)k;
    int budget = 16;
    for (size_t m = n; m > 1; m >>= 1)
        budget += 2;
    while (hi > lo) {
        if (budget-- == 0) {
            qsort(a + lo, (size_t)(hi - lo + 1), sizeof *a, cmp_double);
            return a[want];
        }
        double x = a[lo], y = a[lo + (hi - lo) / 2], z = a[hi];
        double p = x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y));
        ptrdiff_t lt = lo, i = lo, gt = hi;
        while (i <= gt) {
            if (a[i] < p)
                swapd(&a[lt++], &a[i++]);
            else if (a[i] > p)
                swapd(&a[i], &a[gt--]);
            else
                i++;
        }
        if (want < lt)
            hi = lt - 1;
        else if (want > gt)
            lo = gt + 1;
        else
            return p;
    }
    return a[want];
}

/* Median of a[0..n), permuting a. */
static double median(double *a, size_t n)
{
    size_t h = n / 2;
    double upper = select_kth(a, n, h);
    if (n % 2)
        return upper;
    double lower = a[0];
    for (size_t i = 1; i < h; i++)
        if (a[i] > lower)
            lower = a[i];
    return 0.5 * lower + 0.5 * upper;
}

/* Validate x, fill m->y with the standardised values and set loc, scale and jac.
 * scratch: n doubles.  Returns 0, or -1 after writing err. */
static int standardise(bw_mix *m, const double *x, size_t n, double *scratch, bw_error *err)
{
    double *y = m->y, lo = INFINITY, hi = -INFINITY, sumlog = 0;
    for (size_t i = 0; i < n; i++) {
        double v = x[i];
        if (!isfinite(v))
            return bw_fail_value(err, BW_RULE_FINITE, i, v, 0);
        if (m->log_scale) {
            if (!(v > 0))
                return bw_fail_value(err, BW_RULE_POSITIVE, i, v, 0);
            v = log(v);
            sumlog += v;
        } else if (fabs(v) > BW_MIX_MAX_ABS_X) {
            /* the variance of larger values overflows */
            return bw_fail_value(err, BW_RULE_BOUNDED, i, v, BW_MIX_MAX_ABS_X);
        }
        y[i] = v;
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    memcpy(scratch, y, n * sizeof *y);
    double loc = median(scratch, n);
    for (size_t i = 0; i < n; i++)
        scratch[i] = fabs(y[i] - loc);
    double scale = MAD_TO_SD * median(scratch, n);
    double half_range = 0.5 * hi - 0.5 * lo;
    if (!(scale > 0) && half_range > 0) {
        /* more than half the values tie: the standard deviation, computed on values
         * divided by the half range so that no square overflows */
        double mean = 0, ss = 0;
        for (size_t i = 0; i < n; i++)
            mean += y[i] / half_range;
        mean /= (double)n;
        for (size_t i = 0; i < n; i++) {
            double d = y[i] / half_range - mean;
            ss += d * d;
        }
        scale = half_range * sqrt(ss / (double)n);
    }
    if (!(scale > 0))
        scale = fabs(loc) > 0 ? fabs(loc) : 1.0;
    if (scale < half_range * 0x1p-38)
        scale = half_range * 0x1p-38;
    if (scale < 1e-150)
        scale = 1e-150;
    for (size_t i = 0; i < n; i++)
        y[i] = (y[i] - loc) / scale;
    m->loc = loc;
    m->scale = scale;
    m->jac = (double)n * log(scale) + sumlog;
    return 0;
}

/* ======================================================================================== */
/* M-step and ELBO                                                                           */
/* ======================================================================================== */

/* The closed-form q(pi), q(mu, tau) of statistics t into *q, with the E-step
 * coefficients; Q gets the weighted scatter about the new means, sum_i r_ik (y_i - m_k)^2,
 * which the ELBO needs. */
static void m_step(const bw_mix *m, const stats *t, qpar *q, double *Q)
{
    const int K = m->K;
    double asum = 0;
    for (int k = 0; k < K; k++) {
        double N = t->N[k];
        double kap = m->kappa0 + N;
        double mn = (m->kappa0 * m->m0 + N * t->ybar[k]) / kap;
        double dy = t->ybar[k] - mn, dm = mn - m->m0;
        Q[k] = t->V[k] + N * dy * dy;
        q->alpha[k] = m->alpha0 + N;
        q->kappa[k] = kap;
        q->m[k] = mn;
        q->a[k] = m->a0 + 0.5 * N;
        q->b[k] = m->b0 + 0.5 * (Q[k] + m->kappa0 * dm * dm);
        asum += q->alpha[k];
    }
    double psum = digamma(asum);
    for (int k = 0; k < K; k++) {
        double elogpi = digamma(q->alpha[k]) - psum;
        double elogtau = digamma(q->a[k]) - log(q->b[k]);
        q->ec[k] = elogpi + 0.5 * elogtau - 0.5 / q->kappa[k];
        q->eh[k] = 0.5 * q->a[k] / q->b[k];
    }
}

/* Statistics from the E-step sums (n, s1, s2) taken about the shifts c. */
static void stats_from_sums(int K, const double *n, const double *s1, const double *s2,
                            const double *c, stats *t)
{
    for (int k = 0; k < K; k++) {
        double N = n[k] > 0 ? n[k] : 0;
        double v = 0, yb = c[k];
        if (N > 0) {
            yb = c[k] + s1[k] / N;
            v = s2[k] - s1[k] * (s1[k] / N);
        }
        t->N[k] = N;
        t->ybar[k] = yb;
        t->V[k] = v > 0 ? v : 0;
    }
}

/* The full ELBO on the standardised scale for q(z) summarised by (N, Q, H) and the current
 * q(pi), q(mu, tau):
 *   E[log p(y | z, mu, tau)] + E[log p(z | pi)] + E[log p(pi)] + E[log p(mu, tau)]
 *   - E[log q(pi)] - E[log q(mu, tau)] + H. */
static double elbo_std(const bw_mix *m, const qpar *q, const double *N, const double *Q,
                       double H)
{
    const int K = m->K;
    double asum = 0;
    for (int k = 0; k < K; k++)
        asum += q->alpha[k];
    double psum = digamma(asum);
    double a0 = m->a0, b0 = m->b0, k0 = m->kappa0;
    double prior_tau_const = a0 * log(b0) - lgam(a0);
    double sum_elogpi = 0, L = 0;
    for (int k = 0; k < K; k++) {
        double elogpi = digamma(q->alpha[k]) - psum;
        double a = q->a[k], b = q->b[k], kap = q->kappa[k];
        double elogtau = digamma(a) - log(b);
        double etau = a / b;
        double dm = q->m[k] - m->m0;
        sum_elogpi += elogpi;
        /* likelihood: sum_i r_ik E[log N(y_i | mu_k, 1/tau_k)] */
        L += 0.5 * N[k] * (elogtau - LOG_2PI) - 0.5 * (N[k] / kap + etau * Q[k]);
        /* assignments: E[log p(z | pi)] */
        L += N[k] * elogpi;
        /* prior of (mu_k, tau_k) */
        L += 0.5 * (log(k0) - LOG_2PI) + 0.5 * elogtau - 0.5 * k0 * (1 / kap + etau * dm * dm);
        L += prior_tau_const + (a0 - 1) * elogtau - b0 * etau;
        /* minus E[log q(mu_k, tau_k)] */
        L -= 0.5 * (log(kap) - LOG_2PI) + 0.5 * elogtau - 0.5;
        L -= a * log(b) - lgam(a) + (a - 1) * elogtau - a;
        /* minus E[log q(pi)], the per-component part */
        L -= -lgam(q->alpha[k]) + (q->alpha[k] - 1) * elogpi;
    }
    /* E[log p(pi)] and the normaliser of q(pi) */
    L += lgam(K * m->alpha0) - K * lgam(m->alpha0) + (m->alpha0 - 1) * sum_elogpi;
    L -= lgam(asum);
    return L + H;
}

/* ======================================================================================== */
/* Initialisation                                                                            */
/* ======================================================================================== */

/* Uniform number j in [0, 1) of the initialisation stream (53 bits of one Philox block). */
static double init_uniform(uint64_t key, uint32_t j)
{
    uint32_t ctr[4] = {j, 0, 0, MIX_TAG};
    uint32_t k[2] = {(uint32_t)key, (uint32_t)(key >> 32)};
    uint32_t out[4];
    bw_philox_block(ctr, k, out);
    uint64_t bits = ((uint64_t)out[0] << 32 | out[1]) >> 11;
    return (double)bits * 0x1p-53;
}

static void sort_small(double *c, int K)
{
    for (int i = 1; i < K; i++) {
        double v = c[i];
        int j = i - 1;
        while (j >= 0 && c[j] > v) {
            c[j + 1] = c[j];
            j--;
        }
        c[j + 1] = v;
    }
}

/* Index of the centre nearest to v (the lowest index on ties). */
static int nearest(const double *c, int K, double v)
{
    int best = 0;
    double bd = fabs(v - c[0]);
    for (int k = 1; k < K; k++) {
        double d = fabs(v - c[k]);
        if (d < bd) {
            bd = d;
            best = k;
        }
    }
    return best;
}

/* The subsample initialise() looks at: every step-th value, ns of them. */
static size_t subsample_size(size_t n, size_t *step)
{
    *step = (n + SUBSAMPLE - 1) / SUBSAMPLE;
    return (n + *step - 1) / *step;
}

/* k-means++ and Lloyd on a strided subsample (scratch: 2 ns doubles), then the M-step on
 * the hard assignment of every value to its nearest centre. */
static void initialise(bw_mix *m, uint64_t key, double *scratch)
{
    const int K = m->K;
    const size_t n = m->n;
    size_t step;
    size_t ns = subsample_size(n, &step);
    double *sub = scratch, *d2 = scratch + ns;
    for (size_t j = 0; j < ns; j++)
        sub[j] = m->y[j * step];

    double c[BW_MIX_MAX_K];
    uint32_t draw = 0;
    size_t pick = (size_t)(init_uniform(key, draw++) * (double)ns);
    c[0] = sub[pick < ns ? pick : ns - 1];
    for (size_t j = 0; j < ns; j++)
        d2[j] = (sub[j] - c[0]) * (sub[j] - c[0]);
    for (int k = 1; k < K; k++) {
        double tot = 0;
        for (size_t j = 0; j < ns; j++)
            tot += d2[j];
        double u = init_uniform(key, draw++);
        if (tot > 0) {
            double target = u * tot, acc = 0;
            pick = ns;
            size_t last = 0;
            for (size_t j = 0; j < ns; j++) {
                if (d2[j] > 0)
                    last = j;
                acc += d2[j];
                if (acc > target && d2[j] > 0) {
                    pick = j;
                    break;
                }
            }
            if (pick == ns)     /* rounding left the target beyond the total */
                pick = last;
        } else {
            pick = (size_t)(u * (double)ns);
            if (pick >= ns)
                pick = ns - 1;
        }
        c[k] = sub[pick];
        for (size_t j = 0; j < ns; j++) {
            double d = (sub[j] - c[k]) * (sub[j] - c[k]);
            if (d < d2[j])
                d2[j] = d;
        }
    }

    sort_small(c, K);
    for (int it = 0; it < LLOYD_ITERS; it++) {
        double sum[BW_MIX_MAX_K] = {0}, cnt[BW_MIX_MAX_K] = {0};
        for (size_t j = 0; j < ns; j++) {
            int k = nearest(c, K, sub[j]);
            sum[k] += sub[j];
            cnt[k] += 1;
        }
        int changed = 0;
        for (int k = 0; k < K; k++) {
            double v = cnt[k] > 0 ? sum[k] / cnt[k] : c[k];
            if (v != c[k])
                changed = 1;
            c[k] = v;
        }
        sort_small(c, K);
        if (!changed)
            break;
    }

    double N[BW_MIX_MAX_K] = {0}, s1[BW_MIX_MAX_K] = {0}, s2[BW_MIX_MAX_K] = {0};
    double Q[BW_MIX_MAX_K];
    for (size_t i = 0; i < n; i++) {
        int k = nearest(c, K, m->y[i]);
        double d = m->y[i] - c[k];
        N[k] += 1;
        s1[k] += d;
        s2[k] += d * d;
    }
    stats_from_sums(K, N, s1, s2, c, &m->tacc);
    m_step(m, &m->tacc, &m->qacc, Q);
    m->q = m->qacc;
    m->tbase = m->tacc;
    m->step = STEP_PLAIN;
    m->eta = 1;
}

/* ======================================================================================== */
/* Public functions                                                                          */
/* ======================================================================================== */

void bw_mix_spec_default(bw_mix_spec *spec, int K, int log_scale)
{
    memset(spec, 0, sizeof *spec);
    spec->K = K;
    spec->log_scale = log_scale;
    spec->alpha0 = BW_MIX_DEFAULT_ALPHA0;
    spec->m0 = BW_MIX_DEFAULT_M0;
    spec->kappa0 = BW_MIX_DEFAULT_KAPPA0;
    spec->a0 = BW_MIX_DEFAULT_A0;
    spec->b0 = BW_MIX_DEFAULT_B0;
    spec->tol = BW_MIX_DEFAULT_TOL;
    spec->max_iter = BW_MIX_DEFAULT_MAX_ITER;
    spec->key = 0;
}

static int check_positive(const char *name, double v, bw_error *err)
{
    char s[32];
    if (isfinite(v) && v > 0)
        return 0;
    return bw_fail(err, BW_E_DOMAIN, "prior %s = %s must be finite and > 0", name,
                   bw_fmt(s, sizeof s, v));
}

bw_mix *bw_mix_new(const bw_mix_spec *spec, const double *x, size_t n, bw_error *err)
{
    char s[32];
    if (spec->K < 1 || spec->K > BW_MIX_MAX_K) {
        bw_fail(err, BW_E_DOMAIN, "K = %d must be between 1 and %d", spec->K, BW_MIX_MAX_K);
        return NULL;
    }
    if (check_positive("alpha0", spec->alpha0, err) ||
        check_positive("kappa0", spec->kappa0, err) || check_positive("a0", spec->a0, err) ||
        check_positive("b0", spec->b0, err))
        return NULL;
    if (!isfinite(spec->m0)) {
        bw_fail(err, BW_E_DOMAIN, "prior m0 = %s must be finite", bw_fmt(s, sizeof s, spec->m0));
        return NULL;
    }
    if (!(isfinite(spec->tol) && spec->tol >= 0)) {
        bw_fail(err, BW_E_DOMAIN, "tol = %s must be finite and >= 0",
                bw_fmt(s, sizeof s, spec->tol));
        return NULL;
    }
    if (spec->max_iter < 1 || spec->max_iter > MAX_ITER_CAP) {
        bw_fail(err, BW_E_DOMAIN, "max_iter = %d must be between 1 and %d", spec->max_iter,
                MAX_ITER_CAP);
        return NULL;
    }
    if (n < 1 || !x) {
        bw_fail(err, BW_E_DOMAIN, "a mixture needs at least one value (got n = %zu)", n);
        return NULL;
    }
    if (n > (SIZE_MAX / sizeof(double)) / 2) {
        bw_fail(err, BW_E_NOMEM, "n = %zu values is too many to hold in memory", n);
        return NULL;
    }

    bw_mix *m = calloc(1, sizeof *m);
    double *scratch = NULL;
    if (!m)
        goto oom;
    m->K = spec->K;
    m->log_scale = spec->log_scale ? 1 : 0;
    m->max_iter = spec->max_iter;
    m->accelerate = !spec->plain;
    m->alpha0 = spec->alpha0;
    m->m0 = spec->m0;
    m->kappa0 = spec->kappa0;
    m->a0 = spec->a0;
    m->b0 = spec->b0;
    m->tol = spec->tol;
    m->n = n;
    m->nblocks = (n + BW_MIX_BLOCK - 1) / BW_MIX_BLOCK;
    m->y = malloc(n * sizeof *m->y);
    m->part = calloc(m->nblocks * SLOT, sizeof *m->part);
    m->elbo = malloc((size_t)m->max_iter * sizeof *m->elbo);
    size_t step, nscratch = 2 * subsample_size(n, &step);   /* initialise() */
    if (nscratch < n)
        nscratch = n;                                         /* standardise() */
    scratch = malloc(nscratch * sizeof *scratch);
    if (!m->y || !m->part || !m->elbo || !scratch)
        goto oom;
    if (standardise(m, x, n, scratch, err) != 0) {
        free(scratch);
        bw_mix_free(m);
        return NULL;
    }
    initialise(m, spec->key, scratch);
    free(scratch);
    return m;

oom:
    bw_fail(err, BW_E_NOMEM, "out of memory for a mixture of %zu values", n);
    free(scratch);
    bw_mix_free(m);
    return NULL;
}

size_t bw_mix_nblocks(const bw_mix *m)
{
    return m->nblocks;
}

ESTEP_CLONES
static void estep_kernel(bw_mix *m, size_t blk)
{
    const int K = m->K;
    const size_t lo = blk * (size_t)BW_MIX_BLOCK;
    const size_t hi = m->n - lo < BW_MIX_BLOCK ? m->n : lo + BW_MIX_BLOCK;
    double mk[BW_MIX_MAX_K], ec[BW_MIX_MAX_K], eh[BW_MIX_MAX_K];
    for (int k = 0; k < K; k++) {
        mk[k] = m->q.m[k];
        ec[k] = m->q.ec[k];
        eh[k] = m->q.eh[k];
    }

    /* Block sums, per component and lane: lane j holds values j, j + LANES, ... of every
     * chunk, so the summation order is fixed by the code, not by the vector width. */
    double accN[BW_MIX_MAX_K][LANES], acc1[BW_MIX_MAX_K][LANES], acc2[BW_MIX_MAX_K][LANES];
    double accT[LANES], prod[LANES];
    memset(accN, 0, sizeof accN);
    memset(acc1, 0, sizeof acc1);
    memset(acc2, 0, sizeof acc2);
    for (int j = 0; j < LANES; j++) {
        accT[j] = 0;
        prod[j] = 1;
    }
    long expo = 0;                  /* sum_i log S_i = sum_j log prod_j + expo ln 2 */

    double pad[CHUNK], w[CHUNK], mx[CHUNK], S[CHUNK], inv[CHUNK], et[CHUNK];
    double t[BW_MIX_MAX_K][CHUNK], e[BW_MIX_MAX_K][CHUNK];
    for (int i = 0; i < CHUNK; i++)
        w[i] = 1;

    for (size_t off = lo; off < hi; off += CHUNK) {
        const double *yv = m->y + off;
        if (hi - off < CHUNK) {     /* the last, partial chunk: pad with weight 0 */
            size_t cnt = hi - off;
            for (size_t i = 0; i < CHUNK; i++) {
                pad[i] = i < cnt ? yv[i] : yv[0];
                w[i] = i < cnt ? 1 : 0;
            }
            yv = pad;
        }
        /* t = log rho up to a constant; mx = its maximum over k */
        for (int i = 0; i < CHUNK; i++)
            mx[i] = -INFINITY;
        for (int k = 0; k < K; k++) {
            double c = mk[k], h = eh[k], g = ec[k];
            for (int i = 0; i < CHUNK; i++) {
                double dd = yv[i] - c;
                double tt = g - h * dd * dd;
                t[k][i] = tt;
                mx[i] = tt > mx[i] ? tt : mx[i];
            }
        }
        /* e = exp(t - mx) (exponent floored at T_FLOOR), S = sum_k e >= 1,
         * et = sum_k e (t - mx) */
        for (int i = 0; i < CHUNK; i++) {
            S[i] = 0;
            et[i] = 0;
        }
        for (int k = 0; k < K; k++) {
            for (int i = 0; i < CHUNK; i++) {
                double tt = t[k][i] - mx[i];
                tt = tt > T_FLOOR ? tt : T_FLOOR;
                double ee = exp_neg(tt);
                e[k][i] = ee;
                S[i] += ee;
                et[i] += ee * tt;
            }
        }
        /* r_ik = e_ik w_i / S_i and log r_ik = (t_ik - mx_i) - log S_i, so
         * -sum_k r_ik log r_ik = log S_i - et_i w_i / S_i */
        for (int i = 0; i < CHUNK; i++) {
            inv[i] = w[i] / S[i];
            et[i] *= inv[i];
            S[i] = S[i] * w[i] + (1 - w[i]);        /* padding contributes log 1 */
        }
        for (int k = 0; k < K; k++) {
            double c = mk[k];
            double aN[LANES] = {0}, a1[LANES] = {0}, a2[LANES] = {0};
            for (int i = 0; i < CHUNK; i += LANES) {
                for (int j = 0; j < LANES; j++) {
                    double r = e[k][i + j] * inv[i + j];
                    double dd = yv[i + j] - c;
                    double rd = r * dd;
                    aN[j] += r;
                    a1[j] += rd;
                    a2[j] += rd * dd;
                }
            }
            for (int j = 0; j < LANES; j++) {
                accN[k][j] += aN[j];
                acc1[k][j] += a1[j];
                acc2[k][j] += a2[j];
            }
        }
        /* sum_i r log r pieces, and sum_i log S_i through lane products (S_i in [1, K]:
         * CHUNK / LANES = 16 factors stay far from overflow), renormalised by frexp */
        for (int i = 0; i < CHUNK; i += LANES) {
            for (int j = 0; j < LANES; j++) {
                accT[j] += et[i + j];
                prod[j] *= S[i + j];
            }
        }
        for (int j = 0; j < LANES; j++) {
            int ex;
            prod[j] = frexp(prod[j], &ex);
            expo += ex;
        }
    }

    double *slot = m->part + blk * SLOT;
    for (int k = 0; k < K; k++) {
        double sN = 0, s1 = 0, s2 = 0;
        for (int j = 0; j < LANES; j++) {
            sN += accN[k][j];
            s1 += acc1[k][j];
            s2 += acc2[k][j];
        }
        slot[k] = sN;
        slot[BW_MIX_MAX_K + k] = s1;
        slot[2 * BW_MIX_MAX_K + k] = s2;
    }
    double logS = (double)expo * 0.69314718055994530942, srt = 0;
    for (int j = 0; j < LANES; j++) {
        logS += log(prod[j]);
        srt += accT[j];
    }
    slot[3 * BW_MIX_MAX_K] = logS - srt;
}

void bw_mix_estep_block(bw_mix *m, size_t blk)
{
    estep_kernel(m, blk);
}

/* Over-relaxation (Salakhutdinov and Roweis 2003, "Adaptive overrelaxed bound optimization
 * methods", here on the statistics of q(z)): after an accepted iteration whose E-step ran
 * on q = M(tbase) and gave statistics tacc, the next q is M(tbase + eta (tacc - tbase))
 * instead of M(tacc), eta doubling (up to ETA_MAX) while such steps keep raising the ELBO.
 * Extrapolated statistics must stay valid (N >= 0, V >= 0): eta is halved towards 1 until
 * they are.  With plain != 0 (or acceleration off) the next q is the plain M(tacc). */
static void next_q(bw_mix *m, int plain)
{
    const int K = m->K;
    double eta = plain || !m->accelerate ? 1 : m->eta;
    stats ext;
    memset(&ext, 0, sizeof ext);
    while (eta > 1) {
        int ok = 1;
        for (int k = 0; k < K; k++) {
            ext.N[k] = m->tbase.N[k] + eta * (m->tacc.N[k] - m->tbase.N[k]);
            ext.ybar[k] = m->tbase.ybar[k] + eta * (m->tacc.ybar[k] - m->tbase.ybar[k]);
            ext.V[k] = m->tbase.V[k] + eta * (m->tacc.V[k] - m->tbase.V[k]);
            ok = ok && ext.N[k] >= 0 && ext.V[k] >= 0 && isfinite(ext.ybar[k]);
        }
        if (ok)
            break;
        eta = 1 + 0.5 * (eta - 1);
        if (eta < 1.05)
            eta = 1;
    }
    if (eta > 1) {
        double Q[BW_MIX_MAX_K];
        m_step(m, &ext, &m->q, Q);
        m->tbase = ext;
        m->step = STEP_EXTRAPOLATED;
    } else {
        m->q = m->qacc;
        m->tbase = m->tacc;
        m->step = STEP_PLAIN;
    }
}

/* Merge moves.  Coordinate ascent empties a surplus component only very slowly (thousands
 * of iterations when two components share one cluster).  So every MERGE_PERIOD iterations,
 * and on every plateau before convergence is declared, the next q is proposed from the
 * accepted statistics with two components pooled into one (N, mean and scatter combined
 * exactly) and the other left empty (so it takes its prior and stays out of the way).
 * Candidates are neighbours in the order of the means among components of weight >=
 * MERGE_MIN_N, most overlapping first (smallest |m_i - m_j| / sqrt(b_i/a_i + b_j/a_j)).
 * The trial is accepted like an extrapolation: only if its ELBO after one E- and M-step is
 * not lower than the accepted one.  Returns 0 if a merge was proposed, -1 if no candidate
 * is left (skipping the pairs in `skip`). */
static int propose_merge(bw_mix *m, uint64_t skip)
{
    const int K = m->K;
    const qpar *q = &m->qacc;
    int live[BW_MIX_MAX_K], nl = 0;
    for (int k = 0; k < K; k++) {
        if (m->tacc.N[k] < MERGE_MIN_N)
            continue;
        int j = nl++;
        while (j > 0 && q->m[live[j - 1]] > q->m[k]) {
            live[j] = live[j - 1];
            j--;
        }
        live[j] = k;
    }
    int bi = -1, bj = -1;
    double best = INFINITY;
    for (int p = 0; p + 1 < nl; p++) {
        int i = live[p], j = live[p + 1];
        uint64_t bit = UINT64_C(1) << (i * BW_MIX_MAX_K + j);
        if (skip & bit)
            continue;
        double sep = fabs(q->m[i] - q->m[j]) / sqrt(q->b[i] / q->a[i] + q->b[j] / q->a[j]);
        if (sep < best) {
            best = sep;
            bi = i;
            bj = j;
        }
    }
    if (bi < 0)
        return -1;
    stats t = m->tacc;
    double Ni = t.N[bi], Nj = t.N[bj], N = Ni + Nj, d = t.ybar[bi] - t.ybar[bj];
    t.ybar[bi] = (Ni * t.ybar[bi] + Nj * t.ybar[bj]) / N;
    t.V[bi] = t.V[bi] + t.V[bj] + (Ni * Nj / N) * d * d;
    t.N[bi] = N;
    t.N[bj] = 0;
    t.ybar[bj] = m->m0;
    t.V[bj] = 0;
    double Q[BW_MIX_MAX_K];
    m_step(m, &t, &m->q, Q);
    m->tbase = t;
    m->step = STEP_MERGE;
    m->pair_bit = UINT64_C(1) << (bi * BW_MIX_MAX_K + bj);
    return 0;
}

static int qpar_finite(const qpar *q, int K)
{
    for (int k = 0; k < K; k++)
        if (!(isfinite(q->m[k]) && isfinite(q->b[k]) && q->b[k] > 0 && isfinite(q->ec[k]) &&
              isfinite(q->eh[k])))
            return 0;
    return 1;
}

int bw_mix_mstep(bw_mix *m)
{
    if (m->done)
        return 1;
    const int K = m->K;
    double N[BW_MIX_MAX_K] = {0}, s1[BW_MIX_MAX_K] = {0}, s2[BW_MIX_MAX_K] = {0};
    double Q[BW_MIX_MAX_K], H = 0;
    for (size_t blk = 0; blk < m->nblocks; blk++) {
        const double *slot = m->part + blk * SLOT;
        for (int k = 0; k < K; k++) {
            N[k] += slot[k];
            s1[k] += slot[BW_MIX_MAX_K + k];
            s2[k] += slot[2 * BW_MIX_MAX_K + k];
        }
        H += slot[3 * BW_MIX_MAX_K];
    }
    stats t;
    qpar q;
    memset(&t, 0, sizeof t);
    memset(&q, 0, sizeof q);
    stats_from_sums(K, N, s1, s2, m->q.m, &t);
    m_step(m, &t, &q, Q);
    double L = elbo_std(m, &q, t.N, Q, H);
    m->iter++;
    if (!(isfinite(L) && qpar_finite(&q, K))) {
        m->q = m->qacc;
        m->done = 1;
        return -1;
    }
    if (m->iter % MERGE_MEMORY == 0)
        m->tried_recent = 0;
    if (m->step == STEP_PLAIN || L >= m->lacc) {
        int small = m->nelbo > 0 && fabs(L - m->lacc) <= m->tol * fabs(L);
        int was = m->step;
        m->elbo[m->nelbo++] = L - m->jac;
        m->lacc = L;
        m->qacc = q;
        m->tacc = t;
        if (was == STEP_MERGE || !small)
            m->tried_final = 0;
        if (small && was == STEP_PLAIN) {
            /* a plateau: converged unless a merge not yet tried on it is accepted */
            if (!m->accelerate || m->K == 1 || propose_merge(m, m->tried_final) != 0)
                m->converged = 1;
        } else if (m->accelerate && m->K > 1 && m->iter % MERGE_PERIOD == 0 &&
                   propose_merge(m, m->tried_recent) == 0) {
            /* the periodic merge proposal */
        } else {
            m->eta = was == STEP_EXTRAPOLATED ? (2 * m->eta < ETA_MAX ? 2 * m->eta : ETA_MAX)
                                              : ETA_START;
            next_q(m, small);
        }
    } else {
        /* a trial that lowered the ELBO: back to the accepted fit, a plain step */
        if (m->step == STEP_MERGE) {
            m->tried_final |= m->pair_bit;
            m->tried_recent |= m->pair_bit;
        }
        m->eta = 1;
        next_q(m, 1);
    }
    if (m->converged || m->iter >= m->max_iter) {
        m->q = m->qacc;
        m->done = 1;
        return 1;
    }
    return 0;
}

int bw_mix_iterations(const bw_mix *m)
{
    return m->iter;
}

int bw_mix_converged(const bw_mix *m)
{
    return m->converged;
}

const double *bw_mix_elbo(const bw_mix *m, size_t *len)
{
    if (len)
        *len = m->nelbo;
    return m->elbo;
}

void bw_mix_standardisation(const bw_mix *m, double *loc, double *scale)
{
    if (loc)
        *loc = m->loc;
    if (scale)
        *scale = m->scale;
}

int bw_mix_components(const bw_mix *m, bw_mix_component out[BW_MIX_MAX_K])
{
    const int K = m->K;
    const double s = m->scale;
    for (int k = 0; k < K; k++) {
        bw_mix_component c;
        c.weight_alpha = m->qacc.alpha[k];
        c.m = m->loc + s * m->qacc.m[k];
        c.kappa = m->qacc.kappa[k];
        c.a = m->qacc.a[k];
        c.b = m->qacc.b[k] * s * s;
        if (!(c.b >= DBL_MIN))
            c.b = DBL_MIN;
        int j = k - 1;          /* insertion by m, stable */
        while (j >= 0 && out[j].m > c.m) {
            out[j + 1] = out[j];
            j--;
        }
        out[j + 1] = c;
    }
    return K;
}

void bw_mix_free(bw_mix *m)
{
    if (!m)
        return;
    free(m->y);
    free(m->part);
    free(m->elbo);
    free(m);
}
