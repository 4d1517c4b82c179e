/*
 * bw_codes.h -- the named numbers of the C core: block sizes, cached levels, part codes,
 * stream tags and limits.  Pure C.  The binding exports them to Python (module.c,
 * _core.pyi); Python never repeats them.
 *
 * Family-specific numbers live with their family (mixture.h for the mixture engine's
 * defaults; a family file for its own codes) and are exported through its registry row.
 */
#ifndef BW_CODES_H
#define BW_CODES_H

#include <stdint.h>

/* ---------------------------------------------------------------------------------------- */
/* Blocks: about a millisecond of work each, the grain of cancellation and timeouts          */
/* ---------------------------------------------------------------------------------------- */

#define BW_FIT_BLOCK 65536          /* raw values reduced per block of a fit */
#define BW_SAMPLE_BLOCK 32768       /* scalar draws per block of a sampling job (a vector of
                                     * width w counts w) */
#define BW_REDUCE_CHUNK 2048        /* values per chunk of the two-pass moments of a block */

/* ---------------------------------------------------------------------------------------- */
/* Cached summaries                                                                         */
/* ---------------------------------------------------------------------------------------- */

#define BW_NCACHED 3                /* central intervals cached at every fit: */
#define BW_CACHED_LEVELS {0.95, 0.90, 0.80}

/* ---------------------------------------------------------------------------------------- */
/* Parts: the quantities of a posterior that can be summarised and drawn (a part code        */
/* names one; a conjugate part p draws on stream tag p)                                      */
/* ---------------------------------------------------------------------------------------- */

#define BW_MAX_PARTS 3              /* parts of a conjugate posterior */
#define BW_PART_VALUE 0             /* a one-part model's quantity */
#define BW_PART_REVENUE 0           /* compound: revenue per user = frequency x severity */
#define BW_PART_FREQUENCY 1         /* compound: the conversion rate */
#define BW_PART_SEVERITY 2          /* compound: the value per converter */

/* Mixtures (store-side codes; the components are reported in the order of their means): */
#define BW_PART_MIX_MEAN 8          /* the mixture's data-scale mean sum_r w_r m_r */
#define BW_PART_MIX_PREDICTIVE 9    /* a new data value from the posterior predictive */
#define BW_PART_MIX_REVENUE 10      /* compound mixture: conversion rate x mixture mean */
#define BW_PART_MIX_COMPONENT 16    /* + r: reported component r's data-scale mean */
#define BW_PART_MIX_WEIGHT 24       /* + r: reported component r's weight */

/* Stream positions a posterior keeps (one cursor per stream that hands out positions: a
 * compound mixture has four, the mean, the predictive, the revenue and the frequency). */
#define BW_MAX_STREAMS 4

/* ---------------------------------------------------------------------------------------- */
/* Mixture stream tags: draw i of a mixture quantity composes draws at position i of these   */
/* streams (r = a reported component's rank); see fam_mixture.c.                             */
/* ---------------------------------------------------------------------------------------- */

#define BW_TAG_MIX_WEIGHT 16u       /* + r: Gamma(alpha_r, 1) weights of the mixture mean */
#define BW_TAG_MIX_COMPONENT 32u    /* + r: component r's data-scale mean */
#define BW_TAG_MIX_RATE 48u         /* compound: the conversion rate of a revenue draw */
#define BW_TAG_MIX_PRED_WEIGHT 64u  /* + r: Gamma(alpha_r, 1) weights of a predictive draw */
#define BW_TAG_MIX_PRED_PICK 80u    /* the uniform that picks a predictive draw's component */
#define BW_TAG_MIX_PRED_VALUE 96u   /* + r: component r's predictive value */
#define BW_TAG_MIX_MC 128u          /* added to every tag above for the Monte Carlo
                                     * summaries; user draws add 0 */
#define BW_MIX_MC_DRAWS (1u << 17)  /* draws behind a mixture mean's cached intervals */
#define BW_MIX_DRAW_CHUNK 256       /* draws composed per inner chunk of a mixture draw */
/* The key of a mixture's k-means++ initialisation: the posterior's stream key xor this
 * ("mixture!" in ASCII). */
#define BW_MIX_INIT_SALT UINT64_C(0x6D69787475726521)

/* ---------------------------------------------------------------------------------------- */
/* Comparison stream tag (compare_mc.c)                                                      */
/* ---------------------------------------------------------------------------------------- */

/* A Monte Carlo comparison draws arm i on its own key, bw_stream_key(the posterior's key,
 * BW_TAG_CMP_MC + i), so that none of its draws is a user draw (a family's draws keep their
 * own tags on that key); an exact arm's draws take this tag on it.  Above every tag a family
 * uses (conjugate parts 0..2, mixtures 16..255, dirichlet categories 0..2047). */
#define BW_TAG_CMP_MC 4096u

#endif /* BW_CODES_H */
