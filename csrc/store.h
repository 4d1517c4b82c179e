/*
 * store.h -- the posterior store: every fitted posterior under a unique id.  Pure C.
 *
 * A posterior has one part (its quantity) or, for compound models, three: the revenue per
 * user (part 0), the frequency (part 1) and the severity (part 2).  Each part carries its
 * exact cached summaries and its own stream position.  All access goes through the store's
 * mutex; callers get copies, never pointers into the store.
 */
#ifndef BW_STORE_H
#define BW_STORE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "bw_dist.h"

#define BW_MAX_PARTS 3
#define BW_NCACHED 3          /* cached interval levels: 0.95, 0.90, 0.80 */
extern const double bw_cached_levels[BW_NCACHED];

enum bw_model {
    BW_M_BETA_BINOMIAL = 1,
    BW_M_NORMAL = 2,
    BW_M_LOGNORMAL = 3,
    BW_M_EXPONENTIAL = 4,
    BW_M_POISSON = 5,
    BW_M_COMPOUND_LOGNORMAL = 6,
    BW_M_COMPOUND_EXPONENTIAL = 7,
};

typedef struct {
    bw_quantity q;
    double mean, variance;
    double ci[BW_NCACHED][2];
    uint64_t cursor;            /* the next stream position to hand out */
} bw_part;

typedef struct bw_posterior {
    uint64_t id;                /* also the stream sequence number */
    int model;
    int nparts;
    bw_part part[BW_MAX_PARTS];
    double stats[6];            /* the sufficient statistics the fit used (model-specific) */
    double created, last_access;   /* wall-clock seconds */
    double fit_seconds;
    struct bw_posterior *chain; /* hash chain, store-private */
} bw_posterior;

typedef struct bw_store bw_store;

bw_store *bw_store_new(void);
void bw_store_free(bw_store *store);
/* Hand out the next posterior id (1, 2, ...: the order of the calls). */
uint64_t bw_store_next_id(bw_store *store);
/* Take ownership of a heap-allocated posterior; returns 0, or -1 if out of memory (the
 * posterior is then freed). */
int bw_store_insert(bw_store *store, bw_posterior *post);
/* Copy a posterior out and mark it accessed; returns 1 if found. */
int bw_store_get(bw_store *store, uint64_t id, bw_posterior *copy);
/* Reserve n stream positions of one part: *start gets the first, *q the quantity.
 * Returns 1 if found, 0 if the posterior is gone, -1 if the part does not exist or the
 * stream position would overflow. */
int bw_store_reserve(bw_store *store, uint64_t id, int part, uint64_t n,
                     uint64_t *start, bw_quantity *q);
int bw_store_remove(bw_store *store, uint64_t id);
/* Remove everything; fills a malloc'd array of the removed ids (caller frees). */
size_t bw_store_clear(bw_store *store, uint64_t **ids);
/* Remove every posterior not accessed since the wall-clock time `before`. */
size_t bw_store_evict(bw_store *store, double before, uint64_t **ids);
/* Copies of every posterior, ordered by id, in a malloc'd array (caller frees). */
size_t bw_store_snapshot(bw_store *store, bw_posterior **out);
size_t bw_store_count(bw_store *store);

#endif /* BW_STORE_H */
