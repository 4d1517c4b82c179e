/*
 * sample_simd.h -- the vector kernels and the block sampler of sample.c, compiled once per
 * instruction set.  Not a public header: only sample.c includes it, after defining
 *
 *     SIMD_VW     doubles per vector: 2, 4 or 8 (the native width of SIMD_ISA)
 *     SIMD_ISA    SIMD_ISA_GENERIC, SIMD_ISA_SSE2, SIMD_ISA_AVX2 or SIMD_ISA_AVX512
 *     SIMD_ATTR   function attributes for that instruction set (a target attribute)
 *     SIMD(n)     the name n decorated for that instruction set (n##_avx2, ...)
 *
 * and the shared types fplan, splan and scratch.  Every function it defines carries the
 * decorated name; sample.c calls SIMD(sample_run) (and the baseline's vlog for constants).
 * The short names are macros, undefined again at the end.
 *
 * Every lane computes the same function of its position with IEEE basic operations and a
 * correctly rounded sqrt only, no contraction into fused multiply-adds (sample.c turns it
 * off), so all variants give the same bits; the tests compare them.
 *
 * Only operations that the SSE2 baseline has natively are used on 64-bit lanes: double
 * arithmetic and compares, integer add, subtract, logical shifts and bitwise operations,
 * plus the 32 x 32 -> 64-bit multiply (pmuludq and its wider forms) for Philox.  In
 * particular there are no 64-bit integer compares or integer-to-double conversions.
 */

#define vf SIMD(vf)
#define vu SIMD(vu)
#define vi SIMD(vi)
#define vsplat SIMD(vsplat)
#define vusplat SIMD(vusplat)
#define vload SIMD(vload)
#define vstore SIMD(vstore)
#define vuload SIMD(vuload)
#define viload SIMD(viload)
#define vistore SIMD(vistore)
#define vsel SIMD(vsel)
#define vabs SIMD(vabs)
#define vany SIMD(vany)
#define vmul32 SIMD(vmul32)
#define vsqrt SIMD(vsqrt)
#define vlog SIMD(vlog)
#define vexp SIMD(vexp)
#define vsincos2pi SIMD(vsincos2pi)
#define vu01 SIMD(vu01)
#define vbox_muller SIMD(vbox_muller)
#define vphilox SIMD(vphilox)
#define vphilox2 SIMD(vphilox2)
#define vmt_attempt SIMD(vmt_attempt)
#define round0 SIMD(round0)
#define retries SIMD(retries)
#define gamma_logs SIMD(gamma_logs)
#define factor_block SIMD(factor_block)
#define quantity_block SIMD(quantity_block)

#define VW SIMD_VW
#define INL static inline SIMD_ATTR

typedef double vf __attribute__((vector_size(8 * VW)));
typedef uint64_t vu __attribute__((vector_size(8 * VW)));
typedef int64_t vi __attribute__((vector_size(8 * VW)));

/* ======================================================================================== */
/* Vector helpers                                                                            */
/* ======================================================================================== */

INL vf vsplat(double s)
{
    vf v;
    for (int i = 0; i < VW; i++)
        v[i] = s;
    return v;
}

INL vu vusplat(uint64_t s)
{
    vu v;
    for (int i = 0; i < VW; i++)
        v[i] = s;
    return v;
}

INL vf vload(const double *p)
{
    vf v;
    memcpy(&v, p, sizeof v);
    return v;
}

INL void vstore(double *p, vf v) { memcpy(p, &v, sizeof v); }

INL vu vuload(const uint64_t *p)
{
    vu v;
    memcpy(&v, p, sizeof v);
    return v;
}

INL vi viload(const int64_t *p)
{
    vi v;
    memcpy(&v, p, sizeof v);
    return v;
}

INL void vistore(int64_t *p, vi v) { memcpy(p, &v, sizeof v); }

/* m ? a : b lane by lane, m all ones or all zeros in each lane. */
INL vf vsel(vi m, vf a, vf b) { return (vf)(((vi)a & m) | ((vi)b & ~m)); }

INL vf vabs(vf x) { return (vf)((vu)x & UINT64_C(0x7FFFFFFFFFFFFFFF)); }

INL int vany(vi m)
{
    int64_t r = 0;
    for (int i = 0; i < VW; i++)
        r |= m[i];
    return r != 0;
}

/* lo32(a) * m, the full 64-bit product, in every lane. */
INL vu vmul32(vu a, uint32_t m)
{
#if SIMD_ISA == SIMD_ISA_AVX512
    return (vu)_mm512_mul_epu32((__m512i)a, _mm512_set1_epi64((long long)m));
#elif SIMD_ISA == SIMD_ISA_AVX2
    return (vu)_mm256_mul_epu32((__m256i)a, _mm256_set1_epi64x((long long)m));
#elif SIMD_ISA == SIMD_ISA_SSE2
    return (vu)_mm_mul_epu32((__m128i)a, _mm_set1_epi64x((long long)m));
#else
    return (a & UINT64_C(0xFFFFFFFF)) * (uint64_t)m;
#endif
}

/* Correctly rounded sqrt (IEEE), so every variant agrees. */
INL vf vsqrt(vf x)
{
#if SIMD_ISA == SIMD_ISA_AVX512
    return (vf)_mm512_sqrt_pd((__m512d)x);
#elif SIMD_ISA == SIMD_ISA_AVX2
    return (vf)_mm256_sqrt_pd((__m256d)x);
#elif SIMD_ISA == SIMD_ISA_SSE2
    return (vf)_mm_sqrt_pd((__m128d)x);
#else
    for (int i = 0; i < VW; i++)
        x[i] = sqrt(x[i]);
    return x;
#endif
}

/* ======================================================================================== */
/* Elementary functions                                                                      */
/* ======================================================================================== */

/*
 * Natural log of positive finite x (subnormals included).
 * x = 2^e m with m in [sqrt(1/2), sqrt(2)); log m = 2 atanh(s) = 2s + s^3 R(s^2) with
 * s = (m - 1)/(m + 1), |s| <= 0.1716, R a degree-6 polynomial fitted (Chebyshev, in
 * 50-digit arithmetic) to (2 atanh(s) - 2s)/s^3 on [0, 0.02944] to 5e-16 relative; the
 * s^3 R term is under 2% of the result, so the total error is about one ulp.
 */
INL vf vlog(vf x)
{
    vi sub = (vi)(x < 0x1p-1022);
    vf xs = vsel(sub, x * 0x1p54, x);
    vf eadj = (vf)(sub & (vi)vsplat(-54.0));
    vu b = (vu)xs;
    /* the mantissa bits of sqrt(1/2): k = biased exponent of x / sqrt(1/2), rounded down */
    vu k = (b - UINT64_C(0x0006A09E667F3BCD)) >> 52;
    vf m = (vf)(b - ((k - 1022) << 52));                    /* in [sqrt(1/2), sqrt(2)) */
    vf e = (((vf)(k | UINT64_C(0x4330000000000000)) - 0x1p52) - 1022.0) + eadj;
    vf f = m - 1.0;                                         /* exact (Sterbenz) */
    vf s = f / (2.0 + f);
    vf z = s * s;
    vf p = z * 0x1.2b584aae78a57p-3 + 0x1.39fe606542ddep-3;
    p = p * z + 0x1.7462b4ab2ef6bp-3;
    p = p * z + 0x1.c71c62e5800a1p-3;
    p = p * z + 0x1.2492492df148dp-2;
    p = p * z + 0x1.99999999952e2p-2;
    p = p * z + 0x1.5555555555558p-1;
    vf lm = s * 2.0 + (s * z) * p;
    return e * LN2_HI + (lm + e * LN2_LO);
}

/*
 * exp(x), x not NaN: +inf above ~709.78, 0 (through the subnormals) below ~-745.
 * x = n ln2 + r, |r| <= ln2/2 (Cody-Waite, exact n ln2_hi); exp(r) = 1 + r + r^2 E(r) with
 * E a degree-10 polynomial fitted to (exp(r) - 1 - r)/r^2 to 5e-18 relative; then times
 * 2^a 2^(n-a), a = floor(n/2), so that every n of the clamped range scales in range.
 */
INL vf vexp(vf x)
{
    x = vsel((vi)(x > 1400.0), vsplat(1400.0), x);
    x = vsel((vi)(x < -1400.0), vsplat(-1400.0), x);
    vf t = x * LOG2E + ROUND_MAGIC;
    vf nd = t - ROUND_MAGIC;
    vu n = (vu)t - (vu)vsplat(ROUND_MAGIC);                 /* round(x / ln2), two's compl. */
    vf r = (x - nd * LN2_HI) - nd * LN2_LO;
    vf p = r * 0x1.1f730349868cep-29 + 0x1.af4de97ca4194p-26;
    p = p * r + 0x1.27e4db646b17ep-22;
    p = p * r + 0x1.71de0231960ebp-19;
    p = p * r + 0x1.a01a01a6d889cp-16;
    p = p * r + 0x1.a01a01abe7fe1p-13;
    p = p * r + 0x1.6c16c16c162d4p-10;
    p = p * r + 0x1.11111111100dcp-7;
    p = p * r + 0x1.5555555555556p-5;
    p = p * r + 0x1.5555555555557p-3;
    p = p * r + 0x1.0000000000000p-1;
    p = 1.0 + (r + (r * r) * p);
    vu a = ((n + 2048) >> 1) - 1024;                        /* |n| <= 2020 */
    vu c = n - a;
    vf s1 = (vf)((a + 1023) << 52);
    vf s2 = (vf)((c + 1023) << 52);
    return (p * s1) * s2;
}

/*
 * cos(2 pi u) and sin(2 pi u), u in (0, 1): 4u = q + f exactly with |f| <= 1/2,
 * t = f pi/2; sin t = t + t^3 S(t^2), cos t = 1 + t^2 C(t^2) on |t| <= pi/4 with S of degree
 * 5 and C of degree 6 fitted like vlog's (2e-16 and 2e-18 relative); then q quarter turns.
 */
INL void vsincos2pi(vf u, vf *cs, vf *sn)
{
    vf y = 4.0 * u;
    vf t = y + ROUND_MAGIC;
    vf qd = t - ROUND_MAGIC;
    vu q = (vu)t - (vu)vsplat(ROUND_MAGIC);
    vf th = (y - qd) * PIO2;
    vf z = th * th;
    vf s = z * 0x1.5e0b19f8b1451p-33 - 0x1.ae600b02b6262p-26;
    s = s * z + 0x1.71de37968a100p-19;
    s = s * z - 0x1.a01a019e83aaep-13;
    s = s * z + 0x1.1111111110bb2p-7;
    s = s * z - 0x1.5555555555555p-3;
    s = th + (th * z) * s;
    vf c = z * -0x1.8ff9d439a204ap-37 + 0x1.1eea7f259b344p-29;
    c = c * z - 0x1.27e4f8e4a2e74p-22;
    c = c * z + 0x1.a01a019de131fp-16;
    c = c * z - 0x1.6c16c16c15d79p-10;
    c = c * z + 0x1.5555555555551p-5;
    c = c * z - 0.5;
    c = 1.0 + z * c;
    vi swap = (vi)(vusplat(0) - (q & 1));                   /* odd quadrants swap */
    vu negc = (((q + 1) >> 1) & 1) << 63;                   /* quadrants 1, 2 */
    vu negs = ((q >> 1) & 1) << 63;                         /* quadrants 2, 3 */
    *cs = (vf)((vu)vsel(swap, s, c) ^ negc);
    *sn = (vf)((vu)vsel(swap, c, s) ^ negs);
}

/* ======================================================================================== */
/* Philox, uniforms, normals                                                                 */
/* ======================================================================================== */

/* Philox4x32-10 in every lane: counter {j, c1, c2, tag}, words in the low lane halves. */
INL void vphilox(vu j, vu c1, vu c2, const splan *sp, vu x[4])
{
    vu a0 = j, a1 = c1, a2 = c2, a3 = vusplat(sp->tag);
    for (int r = 0; r < BW_PHILOX_ROUNDS; r++) {
        vu p0 = vmul32(a0, BW_PHILOX_M0);
        vu p1 = vmul32(a2, BW_PHILOX_M1);
        a0 = (p1 >> 32) ^ a1 ^ sp->rk0[r];
        a2 = (p0 >> 32) ^ a3 ^ sp->rk1[r];
        a1 = p1;                 /* only lo32 matters from here on */
        a3 = p0;
    }
    const uint64_t lo = UINT64_C(0xFFFFFFFF);
    x[0] = a0 & lo;
    x[1] = a1 & lo;
    x[2] = a2 & lo;
    x[3] = a3 & lo;
}

/* Blocks j and j + 1 together (two independent chains for the pipelines). */
INL void vphilox2(vu j, vu c1, vu c2, const splan *sp, vu x[4], vu y[4])
{
    vu a0 = j, a1 = c1, a2 = c2, a3 = vusplat(sp->tag);
    vu b0 = j + 1, b1 = c1, b2 = c2, b3 = a3;
    for (int r = 0; r < BW_PHILOX_ROUNDS; r++) {
        vu p0 = vmul32(a0, BW_PHILOX_M0);
        vu p1 = vmul32(a2, BW_PHILOX_M1);
        vu q0 = vmul32(b0, BW_PHILOX_M0);
        vu q1 = vmul32(b2, BW_PHILOX_M1);
        a0 = (p1 >> 32) ^ a1 ^ sp->rk0[r];
        a2 = (p0 >> 32) ^ a3 ^ sp->rk1[r];
        b0 = (q1 >> 32) ^ b1 ^ sp->rk0[r];
        b2 = (q0 >> 32) ^ b3 ^ sp->rk1[r];
        a1 = p1;
        a3 = p0;
        b1 = q1;
        b3 = q0;
    }
    const uint64_t lo = UINT64_C(0xFFFFFFFF);
    x[0] = a0 & lo;
    x[1] = a1 & lo;
    x[2] = a2 & lo;
    x[3] = a3 & lo;
    y[0] = b0 & lo;
    y[1] = b1 & lo;
    y[2] = b2 & lo;
    y[3] = b3 & lo;
}

/* Uniforms in (0, 1) from word pairs (lo, hi): k = the top 53 bits of hi:lo, u = k 2^-53
 * built from bits (no integer-to-double conversion), and 2^-54 if k = 0. */
INL vf vu01(vu lo, vu hi)
{
    vu k = ((hi << 32) | lo) >> 11;
    vf x = (vf)((k >> 1) | UINT64_C(0x3FF0000000000000));  /* 1 + (k >> 1) 2^-52 */
    vi odd = (vi)(vusplat(0) - (k & 1));
    vf u = x - vsel(odd, vsplat(1.0 - 0x1p-53), vsplat(1.0));   /* k 2^-53, exact */
    return vsel((vi)(u == 0.0), vsplat(0x1p-54), u);
}

/* Box-Muller: z1 = r cos(2 pi u2), z2 = r sin(2 pi u2), r = sqrt(-2 log u1). */
INL void vbox_muller(vf u1, vf u2, vf *z1, vf *z2)
{
    vf r = vsqrt(-2.0 * vlog(u1));
    vf c, s;
    vsincos2pi(u2, &c, &s);
    *z1 = r * c;
    *z2 = r * s;
}

/* ======================================================================================== */
/* Marsaglia-Tsang                                                                           */
/* ======================================================================================== */

/* One attempt per lane for shape d + 1/3 (c = 1/sqrt(9d)) with normal z and uniform u.
 * Returns the acceptance mask; *v = (1 + c z)^3 where accepted (the variate is d v), 1
 * elsewhere.  The log test runs only when some lane's squeeze fails. */
INL vi vmt_attempt(vf d, vf c, vf z, vf u, vf *v)
{
    vf x = 1.0 + c * z;
    vf vv = x * x * x;
    vi pos = (vi)(x > 0.0);
    vf vs = vsel(pos, vv, vsplat(1.0));
    vf z2 = z * z;
    vi acc = pos & (vi)(u < 1.0 - 0.0331 * (z2 * z2));
    vi need = pos & ~acc;
    if (vany(need)) {
        vf full = 0.5 * z2 + d * ((1.0 - vs) + vlog(vs));
        acc |= need & (vi)(vlog(u) < full);
    }
    *v = vsel(acc, vs, vsplat(1.0));
    return acc;
}

/* ======================================================================================== */
/* One factor over one block of positions                                                    */
/* ======================================================================================== */

/* Round 0 for positions [0, nl) of the block (nl a multiple of VW).  Three passes (Philox,
 * Box-Muller, Marsaglia-Tsang) with short independent iterations, so that out-of-order
 * execution overlaps the long dependency chains of neighbouring vectors. */
static SIMD_ATTR void round0(const fplan *fp, const splan *sp, scratch *w, int nl)
{
    const vu ja = vusplat(fp->jbase + 1);
    for (int i = 0; i < nl; i += VW) {
        vu x[4], y[4];
        vphilox2(ja, vuload(w->c1 + i), vuload(w->c2 + i), sp, x, y);
        vstore(w->u[0] + i, vu01(x[0], x[1]));
        vstore(w->u[1] + i, vu01(x[2], x[3]));
        vstore(w->u[2] + i, vu01(y[0], y[1]));
        vstore(w->u[3] + i, vu01(y[2], y[3]));
    }
    for (int i = 0; i < nl; i += VW) {
        vf z1, z2;
        vbox_muller(vload(w->u[0] + i), vload(w->u[1] + i), &z1, &z2);
        vstore(w->u[0] + i, z1);
        vstore(w->u[1] + i, z2);
    }
    const vf d0 = vsplat(fp->d[0]), c0 = vsplat(fp->c[0]);
    for (int i = 0; i < nl; i += VW) {
        vf v;
        vistore(w->acc[0] + i, vmt_attempt(d0, c0, vload(w->u[0] + i), vload(w->u[2] + i), &v));
        vstore(w->v[0] + i, v);
    }
    if (fp->nslots == 2) {
        const vf d1 = vsplat(fp->d[1]), c1 = vsplat(fp->c[1]);
        for (int i = 0; i < nl; i += VW) {
            vf v;
            vistore(w->acc[1] + i,
                    vmt_attempt(d1, c1, vload(w->u[1] + i), vload(w->u[3] + i), &v));
            vstore(w->v[1] + i, v);
        }
    } else {
        memcpy(w->zm, w->u[1], (size_t)nl * sizeof(double));
    }
}

/* Rounds 1, 2, ... for the (position, slot) pairs that round 0 rejected, VW at a time. */
static SIMD_ATTR void retries(const fplan *fp, const splan *sp, scratch *w, int nl)
{
    int cur = 0, n = 0;
    for (int s = 0; s < fp->nslots; s++)
        for (int i = 0; i < nl; i++)
            if (!w->acc[s][i]) {
                w->ridx[0][n] = (uint16_t)i;
                w->rslot[0][n] = (uint8_t)s;
                w->rround[0][n] = 1;
                n++;
            }
    const vf d0 = vsplat(fp->d[0]), c0 = vsplat(fp->c[0]);
    const vf d1 = vsplat(fp->d[1]), c1 = vsplat(fp->c[1]);
    while (n > 0) {
        int nn = 0;
        for (int g = 0; g < n; g += VW) {
            uint64_t ja[VW], p1[VW], p2[VW];
            int64_t sm[VW];
            for (int l = 0; l < VW; l++) {
                int e = g + l < n ? g + l : g;          /* pad with a repeat of lane 0 */
                int i = w->ridx[cur][e];
                ja[l] = fp->jbase + 1 + 2 * w->rround[cur][e];
                p1[l] = w->c1[i];
                p2[l] = w->c2[i];
                sm[l] = -(int64_t)w->rslot[cur][e];
            }
            vu x[4], y[4];
            vphilox2(vuload(ja), vuload(p1), vuload(p2), sp, x, y);
            vf z1, z2, v;
            vbox_muller(vu01(x[0], x[1]), vu01(x[2], x[3]), &z1, &z2);
            vi m = viload(sm);
            vf u = vsel(m, vu01(y[2], y[3]), vu01(y[0], y[1]));
            vi a = vmt_attempt(vsel(m, d1, d0), vsel(m, c1, c0), vsel(m, z2, z1), u, &v);
            for (int l = 0; l < VW && g + l < n; l++) {
                int e = g + l;
                int i = w->ridx[cur][e], s = w->rslot[cur][e];
                uint32_t r = w->rround[cur][e];
                if (a[l]) {
                    w->v[s][i] = v[l];
                } else if (r + 1 >= MAX_ROUNDS) {
                    w->v[s][i] = NAN;                   /* unreachable with valid shapes */
                } else {
                    w->ridx[1 - cur][nn] = (uint16_t)i;
                    w->rslot[1 - cur][nn] = (uint8_t)s;
                    w->rround[1 - cur][nn] = r + 1;
                    nn++;
                }
            }
        }
        cur = 1 - cur;
        n = nn;
    }
}

/* Logs of the gamma variates: log d + log v, plus log(U) / a for a boosted shape. */
static SIMD_ATTR void gamma_logs(const fplan *fp, const splan *sp, scratch *w, int nl)
{
    if (fp->anyboost) {
        const vu j0 = vusplat(fp->jbase);
        for (int i = 0; i < nl; i += VW) {
            vu x[4];
            vphilox(j0, vuload(w->c1 + i), vuload(w->c2 + i), sp, x);
            vstore(w->u[0] + i, vu01(x[0], x[1]));
            vstore(w->u[1] + i, vu01(x[2], x[3]));
        }
    }
    for (int s = 0; s < fp->nslots; s++) {
        const double ld = fp->logd[s], ia = fp->inva[s];
        if (fp->boost[s]) {
            for (int i = 0; i < nl; i += VW) {
                vf lg = (ld + vlog(vload(w->v[s] + i))) + vlog(vload(w->u[s] + i)) * ia;
                vstore(w->lg[s] + i, vsel((vi)(lg < LOG_FLOOR), vsplat(LOG_FLOOR), lg));
            }
        } else {
            for (int i = 0; i < nl; i += VW)
                vstore(w->lg[s] + i, ld + vlog(vload(w->v[s] + i)));
        }
    }
}

/* The factor's values at positions [0, nl) of the block into out. */
static SIMD_ATTR void factor_block(const fplan *fp, const splan *sp, scratch *w, int nl,
                                   double *restrict out)
{
    round0(fp, sp, w, nl);
    retries(fp, sp, w, nl);
    if (fp->logspace)
        gamma_logs(fp, sp, w, nl);

    const vf d0 = vsplat(fp->d[0]), d1 = vsplat(fp->d[1]);
    const vf sc = vsplat(fp->scale), lsc = vsplat(fp->logscale);
    for (int i = 0; i < nl; i += VW) {
        vf r;
        switch (fp->kind) {
        case BW_KIND_BETA:
            if (fp->logspace) {
                vf diff = vload(w->lg[0] + i) - vload(w->lg[1] + i);
                vf t = vexp(-vabs(diff));
                vf inv = 1.0 / (1.0 + t);
                r = vsel((vi)(diff >= 0.0), inv, t * inv);
            } else {
                vf g0 = d0 * vload(w->v[0] + i), g1 = d1 * vload(w->v[1] + i);
                r = g0 / (g0 + g1);
            }
            break;
        case BW_KIND_GAMMA:
            if (fp->logspace)
                r = vexp(vload(w->lg[0] + i) - lsc);
            else
                r = (d0 * vload(w->v[0] + i)) / sc;
            break;
        case BW_KIND_INVGAMMA:
            if (fp->logspace)
                r = vexp(lsc - vload(w->lg[0] + i));
            else
                r = sc / (d0 * vload(w->v[0] + i));
            break;
        default: {   /* BW_KIND_NIG_MEAN, BW_KIND_NIG_LNMEAN (make_fplan checked the kind) */
            vf ws;   /* sqrt(s), s = beta / Gamma(alpha) */
            if (fp->logspace)
                ws = vexp(0.5 * (lsc - vload(w->lg[0] + i)));
            else
                ws = vsqrt(sc / (d0 * vload(w->v[0] + i)));
            vf zk = fp->isk * vload(w->zm + i);
            if (fp->kind == BW_KIND_NIG_MEAN)
                r = fp->m + vsel((vi)(zk == 0.0), vsplat(0.0), ws * zk);   /* no inf * 0 */
            else
                r = vexp(fp->m + ws * (0.5 * ws + zk));
            break;
        }
        }
        vstore(out + i, r);
    }
}

/* All factors of the quantity at positions pos0 .. pos0 + nl - 1 (nl a multiple of VW). */
static SIMD_ATTR void quantity_block(const splan *sp, scratch *w, uint64_t pos0, int nl,
                                     double *restrict out)
{
    for (int l = 0; l < nl; l++) {
        uint64_t p = pos0 + (uint64_t)l;
        w->c1[l] = (uint32_t)p;
        w->c2[l] = (uint32_t)(p >> 32);
    }
    factor_block(&sp->f[0], sp, w, nl, out);
    if (sp->nfactors == 2) {
        double y[BLK];
        factor_block(&sp->f[1], sp, w, nl, y);
        for (int i = 0; i < nl; i += VW) {
            vf a = vload(out + i), b = vload(y + i);
            vi zero = (vi)(a == 0.0) | (vi)(b == 0.0);
            vstore(out + i, vsel(zero, vsplat(0.0), a * b));    /* 0 * inf -> 0 */
        }
    }
}

/* Draws start .. start + n - 1 of the planned quantity into out. */
static SIMD_ATTR void SIMD(sample_run)(const splan *sp, uint64_t start, size_t n, double *out)
{
    scratch w;
    size_t done = 0;
    while (done < n) {
        size_t take = n - done < BLK ? n - done : BLK;
        uint64_t pos = start + done;
        if (take == BLK) {
            quantity_block(sp, &w, pos, BLK, out + done);
        } else {
            double tmp[BLK];
            int nl = (int)((take + VW - 1) / VW * VW);
            quantity_block(sp, &w, pos, nl, tmp);
            memcpy(out + done, tmp, take * sizeof(double));
        }
        done += take;
    }
}

/* log of x[0 .. n), every x finite and > 0 (the caller validates), into out. */
static SIMD_ATTR void SIMD(log_run)(const double *x, double *out, size_t n)
{
    size_t i = 0;
    for (; i + VW <= n; i += VW)
        vstore(out + i, vlog(vload(x + i)));
    if (i < n) {
        double tmp[VW];
        for (int l = 0; l < VW; l++)
            tmp[l] = i + (size_t)l < n ? x[i + (size_t)l] : 1.0;
        vstore(tmp, vlog(vload(tmp)));
        memcpy(out + i, tmp, (n - i) * sizeof(double));
    }
}

#undef vf
#undef vu
#undef vi
#undef vsplat
#undef vusplat
#undef vload
#undef vstore
#undef vuload
#undef viload
#undef vistore
#undef vsel
#undef vabs
#undef vany
#undef vmul32
#undef vsqrt
#undef vlog
#undef vexp
#undef vsincos2pi
#undef vu01
#undef vbox_muller
#undef vphilox
#undef vphilox2
#undef vmt_attempt
#undef round0
#undef retries
#undef gamma_logs
#undef factor_block
#undef quantity_block
#undef VW
#undef INL
