/*
 * sample.c -- draws from the posterior quantities of bw_dist.h on counter-based streams.
 *
 * Pure C11 plus the GCC/Clang vector extension; no Python.h, no global mutable state: every
 * function is a pure function of its arguments, so any number of threads may call
 * bw_sample at once.
 *
 * ==========================================================================================
 * The reproducibility contract
 * ==========================================================================================
 *
 * Draw number i of stream (key, tag) depends only on (key, tag, i).  Every random bit it uses
 * comes from Philox4x32-10 blocks with
 *
 *     counter = {j, lo32(i), hi32(i), tag},     key = {lo32(key), hi32(key)},
 *
 * where the block number j is laid out per factor of the quantity:
 *
 *     j = J + 0             the "boost" block, read only when a gamma shape is below 1:
 *                           words (0, 1) -> uniform for shape slot 0, (2, 3) -> slot 1
 *     j = J + 1 + 2r        round r, block A: words (0, 1), (2, 3) -> uniforms u1, u2 ->
 *                           Box-Muller normals z1 = R cos(2 pi u2), z2 = R sin(2 pi u2),
 *                           R = sqrt(-2 log u1)
 *     j = J + 2 + 2r        round r, block B: words (0, 1), (2, 3) -> uniforms v1, v2
 *
 *     J = 0 for factor 0 and J = 2^31 for factor 1 of a product, so the two factors of a
 *     product read disjoint blocks of the same position.
 *
 * Words (w, w+1) make a uniform from the 53 high bits of the 64-bit word w+1:w.  Round r
 * offers each gamma variate ("slot") of a factor one Marsaglia-Tsang attempt: slot 0 uses
 * (z1, v1) and slot 1 uses (z2, v2) of that round.  A slot keeps the value of its first
 * accepted round; rounds r >= 1 are read only while a slot is still rejected, and a round's
 * numbers for an already accepted slot are ignored.  BETA uses slots 0 (shape a) and 1
 * (shape b); the other kinds use slot 0 only, and the NIG kinds take the normal of mu from
 * z2 of round 0.  Rejections are rare (under 5% per slot), so almost every draw reads two
 * blocks per factor (three with a shape below 1).
 *
 * So bw_sample gives the same bits however a request is split into calls, threads or
 * batches.  The floating-point work runs in explicit SIMD vectors, every lane executing the
 * same IEEE basic operations (+ - * /, correctly rounded sqrt, no fused multiply-adds: the
 * pragma below turns contraction off), so a draw's bits cannot depend on its lane, and the
 * baseline, AVX2 and AVX-512 variants (chosen at run time on x86-64; define
 * BW_NO_SIMD_DISPATCH to build the baseline only) agree bit for bit.
 *
 * ==========================================================================================
 * Algorithms
 * ==========================================================================================
 *
 * uniform     k 2^-53 for k = 1 .. 2^53-1 from 53 random bits k, and 2^-54 for k = 0:
 *             always in (0, 1).
 * normal      Box-Muller, two independent exact normals from two uniforms.
 * Gamma(a)    Marsaglia and Tsang (2000), "A simple method for generating gamma variables",
 *             with their squeeze, for a >= 1; for a < 1, Gamma(a) = Gamma(a + 1) U^(1/a),
 *             kept in log space: log Gamma(a + 1) + log(U) / a.
 * Beta(a, b)  Ga / (Ga + Gb); from log Ga - log Gb when min(a, b) < 1 (or a shape exceeds
 *             1e300): never 0/0, never NaN, always in [0, 1].
 * NIG         s = beta / Gamma(alpha), w = sqrt(s); NIG_MEAN = m + w Z / sqrt(kappa);
 *             NIG_LNMEAN = exp(m + w (w / 2 + Z / sqrt(kappa))) = exp(mu + s / 2), which
 *             overflows to +inf only when that exponent exceeds ~709.78.
 * GAMMA       Gamma(a) / b;  INVGAMMA  b / Gamma(a)  (through logs when a < 1).
 * product     X0 * X1, with 0 * inf taken as 0 (a zero frequency means no value).
 *
 * log, exp, sin and cos are computed by branch-free vector kernels (sample_simd.h; about
 * one ulp) since libm's scalar calls can be neither vectorised nor trusted to agree across
 * variants.
 *
 * Invalid parameters (a shape, rate, kappa, alpha or beta that is not finite and > 0, a
 * non-finite m, an unknown kind, nfactors not 1 or 2) make every draw NaN: validation
 * belongs to the caller; this only guarantees that nothing loops forever.
 */

#if !defined(__GNUC__)
#error "sample.c needs the GCC/Clang vector extension"
#endif
#if defined(__FAST_MATH__)
#error "sample.c relies on IEEE arithmetic: do not compile it with -ffast-math or -Ofast"
#endif

#include "bw_dist.h"
#include "philox.h"

#include <math.h>
#include <string.h>

#if defined(__SSE2__) || defined(__x86_64__)
#include <immintrin.h>
#endif

/* Bit-identical results need every a * b + c rounded twice, never fused. */
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
/* The vector types are only passed between static functions of this file, so the ABI note
 * GCC gives for wide vectors passed by value does not apply. */
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

/* ======================================================================================== */
/* Constants                                                                                 */
/* ======================================================================================== */

#define BLK 256                          /* positions per block of work */

#define LN2_HI 0x1.62e42fefa3800p-1      /* 42 significant bits: n * LN2_HI is exact */
#define LN2_LO 0x1.ef35793c76730p-45
#define LOG2E 0x1.71547652b82fep+0
#define PIO2 0x1.921fb54442d18p+0
#define ROUND_MAGIC 0x1.8p52             /* (x + ROUND_MAGIC) - ROUND_MAGIC rounds x */

/* ======================================================================================== */
/* Plans: the per-call constants, and the samplers' working memory                           */
/* ======================================================================================== */

#define J_FACTOR1 UINT32_C(0x80000000)
#define MAX_ROUNDS 100000u  /* unreachable with valid shapes: P(reject) < 0.05 per round */
#define LOG_FLOOR (-1e300)  /* log Gamma(a < 1) is clamped here (matters for a < ~4e-299) */

typedef struct {
    int kind;
    int nslots;             /* gamma variates per draw: 2 for BETA, else 1 */
    int boost[2];           /* shape < 1: lifted to shape + 1 times U^(1/shape) */
    int anyboost;
    int logspace;           /* combine from logs of the gamma variates */
    double d[2], c[2], logd[2], inva[2];
    double m, isk;          /* NIG: m and 1/sqrt(kappa) */
    double scale, logscale; /* NIG: beta; GAMMA, INVGAMMA: b */
    uint32_t jbase;
} fplan;

typedef struct {
    uint32_t k0, k1, tag;
    uint64_t rk0[BW_PHILOX_ROUNDS], rk1[BW_PHILOX_ROUNDS];   /* Philox round keys */
    int nfactors;
    fplan f[2];
} splan;

/* Per-block working memory of the samplers (about 31 KiB, on the stack). */
typedef struct {
    uint64_t c1[BLK], c2[BLK];      /* counter words 1 and 2 (the position), one per lane */
    double u[4][BLK];               /* round 0: uniforms u1 u2 v1 v2, then z1 z2 v1 v2 */
    double v[2][BLK];               /* Marsaglia-Tsang v of slots 0 and 1: variate = d v */
    int64_t acc[2][BLK];            /* round-0 acceptance masks */
    double zm[BLK];                 /* NIG: the normal of mu */
    double lg[2][BLK];              /* log of the gamma variates (logspace only) */
    uint16_t ridx[2][2 * BLK];      /* retry lists: position index, slot, round */
    uint8_t rslot[2][2 * BLK];
    uint32_t rround[2][2 * BLK];
} scratch;

/* ======================================================================================== */
/* The vector samplers, one per instruction set                                              */
/* ======================================================================================== */

#define SIMD_ISA_GENERIC 0
#define SIMD_ISA_SSE2 1
#define SIMD_ISA_AVX2 2
#define SIMD_ISA_AVX512 3

/* Baseline: SSE2 on x86-64 (always present), plain vectors elsewhere. */
#define SIMD_VW 2
#if defined(__SSE2__)
#define SIMD_ISA SIMD_ISA_SSE2
#else
#define SIMD_ISA SIMD_ISA_GENERIC
#endif
#define SIMD_ATTR
#define SIMD(n) n##_base
#include "sample_simd.h"
#undef SIMD_VW
#undef SIMD_ISA
#undef SIMD_ATTR
#undef SIMD

#if defined(__x86_64__) && !defined(BW_NO_SIMD_DISPATCH)
#define BW_SIMD_DISPATCH 1

#define SIMD_VW 4
#define SIMD_ISA SIMD_ISA_AVX2
#define SIMD_ATTR __attribute__((target("avx2")))
#define SIMD(n) n##_avx2
#include "sample_simd.h"
#undef SIMD_VW
#undef SIMD_ISA
#undef SIMD_ATTR
#undef SIMD

#define SIMD_VW 8
#define SIMD_ISA SIMD_ISA_AVX512
#define SIMD_ATTR __attribute__((target("avx512f,avx512dq")))
#define SIMD(n) n##_avx512
#include "sample_simd.h"
#undef SIMD_VW
#undef SIMD_ISA
#undef SIMD_ATTR
#undef SIMD
#else
#define BW_SIMD_DISPATCH 0
#endif

/* 0 baseline, 1 AVX2, 2 AVX-512: the widest this build and CPU support. */
static int best_variant(void)
{
#if BW_SIMD_DISPATCH
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq"))
        return 2;
    if (__builtin_cpu_supports("avx2"))
        return 1;
#endif
    return 0;
}

static void run_variant(int variant, const splan *sp, uint64_t start, size_t n, double *out)
{
    switch (variant) {
#if BW_SIMD_DISPATCH
    case 2:
        sample_run_avx512(sp, start, n, out);
        break;
    case 1:
        sample_run_avx2(sp, start, n, out);
        break;
#endif
    default:
        sample_run_base(sp, start, n, out);
        break;
    }
}

/* ======================================================================================== */
/* Planning                                                                                  */
/* ======================================================================================== */

static int pos_finite(double x) { return x > 0.0 && x <= 0x1.fffffffffffffp1023; }

/* log of a constant with the samplers' own kernel, so that no result depends on libm's log
 * (sqrt is correctly rounded everywhere). */
static double plan_log(double x)
{
    vf_base v = vsplat_base(x);
    return vlog_base(v)[0];
}

static void gamma_slot(fplan *fp, int slot, double a)
{
    fp->boost[slot] = a < 1.0;
    double a1 = a < 1.0 ? a + 1.0 : a;
    fp->d[slot] = a1 - 1.0 / 3.0;
    fp->c[slot] = 1.0 / sqrt(9.0 * fp->d[slot]);
    fp->logd[slot] = plan_log(fp->d[slot]);
    fp->inva[slot] = 1.0 / a;
}

static int make_fplan(const bw_dist *dist, uint32_t jbase, fplan *fp)
{
    memset(fp, 0, sizeof *fp);
    fp->kind = dist->kind;
    fp->jbase = jbase;
    const double *p = dist->p;
    switch (dist->kind) {
    case BW_KIND_BETA:
        if (!pos_finite(p[0]) || !pos_finite(p[1]))
            return 0;
        fp->nslots = 2;
        gamma_slot(fp, 0, p[0]);
        gamma_slot(fp, 1, p[1]);
        fp->logspace = fmin(p[0], p[1]) < 1.0 || fmax(p[0], p[1]) > 1e300;
        break;
    case BW_KIND_NIG_MEAN:
    case BW_KIND_NIG_LNMEAN:
        if (!isfinite(p[0]) || !pos_finite(p[1]) || !pos_finite(p[2]) || !pos_finite(p[3]))
            return 0;
        fp->nslots = 1;
        gamma_slot(fp, 0, p[2]);
        fp->logspace = fp->boost[0];
        fp->m = p[0];
        fp->isk = 1.0 / sqrt(p[1]);
        fp->scale = p[3];
        fp->logscale = plan_log(p[3]);
        break;
    case BW_KIND_GAMMA:
    case BW_KIND_INVGAMMA:
        if (!pos_finite(p[0]) || !pos_finite(p[1]))
            return 0;
        fp->nslots = 1;
        gamma_slot(fp, 0, p[0]);
        fp->logspace = fp->boost[0];
        fp->scale = p[1];
        fp->logscale = plan_log(p[1]);
        break;
    default:
        return 0;
    }
    fp->anyboost = fp->boost[0] || (fp->nslots == 2 && fp->boost[1]);
    return 1;
}

/* ======================================================================================== */
/* Public entry points                                                                       */
/* ======================================================================================== */

/* The splitmix64 finaliser: a bijection of 64-bit words with full avalanche. */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

uint64_t bw_stream_key(uint64_t seed, uint64_t posterior_seq)
{
    /* For one seed, seq -> key is a bijection (a Weyl step, then the bijective finaliser),
     * so two posteriors of a worker never share a key; neighbouring seqs give unrelated
     * keys, and the seed passes through its own finaliser round first. */
    uint64_t h = mix64(seed ^ UINT64_C(0x6A09E667F3BCC909));
    return mix64(h + (posterior_seq + 1) * UINT64_C(0x9E3779B97F4A7C15));
}

/* Not in bw_dist.h: hooks for the tests and benchmarks (tests/c/test_sample.py). */
void bw_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);
int bw_sample_variant(int variant, const bw_quantity *q, bw_stream st, uint64_t start,
                      size_t n, double *out);

/* One Philox4x32-10 block (the scalar reference), for the known-answer tests. */
void bw_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4])
{
    bw_philox_block(ctr, key, out);
}

/* Plan the call; 0 if a parameter is invalid. */
static int make_splan(const bw_quantity *q, bw_stream st, splan *sp)
{
    memset(sp, 0, sizeof *sp);
    sp->k0 = (uint32_t)st.key;
    sp->k1 = (uint32_t)(st.key >> 32);
    sp->tag = st.tag;
    uint32_t k0 = sp->k0, k1 = sp->k1;
    for (int r = 0; r < BW_PHILOX_ROUNDS; r++) {
        sp->rk0[r] = k0;
        sp->rk1[r] = k1;
        k0 += BW_PHILOX_W0;
        k1 += BW_PHILOX_W1;
    }
    sp->nfactors = q->nfactors;
    if (q->nfactors != 1 && q->nfactors != 2)
        return 0;
    if (!make_fplan(&q->f[0], 0, &sp->f[0]))
        return 0;
    return q->nfactors == 1 || make_fplan(&q->f[1], J_FACTOR1, &sp->f[1]);
}

static void fill_nan(size_t n, double *out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = NAN;
}

void bw_sample(const bw_quantity *q, bw_stream st, uint64_t start, size_t n, double *out)
{
    if (n == 0)
        return;
    splan sp;
    if (!make_splan(q, st, &sp)) {
        fill_nan(n, out);
        return;
    }
    run_variant(best_variant(), &sp, start, n, out);
}

/* bw_sample on one instruction-set variant (0 baseline, 1 AVX2, 2 AVX-512); -1 if this
 * build or CPU lacks it.  All variants give the same bits. */
int bw_sample_variant(int variant, const bw_quantity *q, bw_stream st, uint64_t start,
                      size_t n, double *out)
{
    if (variant < 0 || variant > best_variant())
        return -1;
    if (n == 0)
        return 0;
    splan sp;
    if (!make_splan(q, st, &sp))
        fill_nan(n, out);
    else
        run_variant(variant, &sp, start, n, out);
    return 0;
}

/* ======================================================================================== */
/* Vector log for the fits                                                                  */
/* ======================================================================================== */

void bw_log_array(const double *x, double *out, size_t n)
{
    switch (best_variant()) {
#if BW_SIMD_DISPATCH
    case 2:
        log_run_avx512(x, out, n);
        break;
    case 1:
        log_run_avx2(x, out, n);
        break;
#endif
    default:
        log_run_base(x, out, n);
        break;
    }
}
