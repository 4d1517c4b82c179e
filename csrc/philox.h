/*
 * philox.h -- Philox4x32-10, the counter-based generator of Salmon, Moraes, Dror and Shaw,
 * "Parallel random numbers: as easy as 1, 2, 3" (SC'11), as static inline functions.
 *
 * A block maps a 128-bit counter {c0, c1, c2, c3} and a 64-bit key {k0, k1} to 128 random
 * bits.  Ten rounds; each round multiplies c0 and c2 by fixed odd constants, keeps the
 * 64-bit products, and mixes high halves with the other two words and the round key; the
 * key is bumped by two Weyl constants between rounds.  The known-answer vectors of the
 * Random123 distribution (kat_vectors) hold for bw_philox_block below; see
 * tests/c/test_sample.py.
 *
 * This is the scalar reference form.  sample_simd.h computes the same function on SIMD
 * lanes (one 32-bit word per 64-bit lane, with the 32 x 32 -> 64-bit multiplies of
 * SSE2/AVX2/AVX-512); the tests check that the two agree bit for bit.
 *
 * No state, no globals: pure functions of (counter, key).
 */
#ifndef BW_PHILOX_H
#define BW_PHILOX_H

#include <stdint.h>

#define BW_PHILOX_M0 UINT32_C(0xD2511F53)
#define BW_PHILOX_M1 UINT32_C(0xCD9E8D57)
#define BW_PHILOX_W0 UINT32_C(0x9E3779B9)   /* golden ratio */
#define BW_PHILOX_W1 UINT32_C(0xBB67AE85)   /* sqrt(3) - 1 */
#define BW_PHILOX_ROUNDS 10

/* ---------------------------------------------------------------------------------------- */
/* Scalar                                                                                    */
/* ---------------------------------------------------------------------------------------- */

static inline void bw_philox_round(uint32_t c[4], uint32_t k0, uint32_t k1)
{
    uint64_t p0 = (uint64_t)BW_PHILOX_M0 * c[0];
    uint64_t p1 = (uint64_t)BW_PHILOX_M1 * c[2];
    uint32_t n0 = (uint32_t)(p1 >> 32) ^ c[1] ^ k0;
    uint32_t n1 = (uint32_t)p1;
    uint32_t n2 = (uint32_t)(p0 >> 32) ^ c[3] ^ k1;
    uint32_t n3 = (uint32_t)p0;
    c[0] = n0;
    c[1] = n1;
    c[2] = n2;
    c[3] = n3;
}

/* out = Philox4x32-10(ctr, key).  out may alias ctr. */
static inline void bw_philox_block(const uint32_t ctr[4], const uint32_t key[2],
                                   uint32_t out[4])
{
    uint32_t c[4] = {ctr[0], ctr[1], ctr[2], ctr[3]};
    uint32_t k0 = key[0], k1 = key[1];
    for (int r = 0; r < BW_PHILOX_ROUNDS; r++) {
        bw_philox_round(c, k0, k1);
        k0 += BW_PHILOX_W0;
        k1 += BW_PHILOX_W1;
    }
    out[0] = c[0];
    out[1] = c[1];
    out[2] = c[2];
    out[3] = c[3];
}

#endif /* BW_PHILOX_H */
