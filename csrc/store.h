/*
 * store.h -- the posterior store: every fitted posterior under a unique id.  Pure C.
 *
 * A posterior is a tagged record: a header the store knows (id, family tag, payload size,
 * times, stream cursors) followed by a payload of `size` bytes that only its family reads
 * (family.h).  Records are sized for their family: a beta-binomial posterior carries one
 * part, a mixture its components.  All access goes through the store's mutex; callers get
 * copies, never pointers into the store.
 */
#ifndef BW_STORE_H
#define BW_STORE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "bw_codes.h"

struct bw_family;

typedef struct bw_record {
    uint64_t id;                /* also the stream sequence number */
    const struct bw_family *family;   /* the tag: whose payload this is (opaque here) */
    size_t size;                /* bytes of payload */
    double created, last_access;      /* wall-clock seconds */
    double fit_seconds;
    uint64_t cursor[BW_MAX_STREAMS];  /* each stream's next position to hand out */
    struct bw_record *chain;    /* hash chain, store-private (NULL in copies) */
    double payload[];           /* `size` bytes, 8-byte aligned */
} bw_record;

/* A zeroed record with a payload of `size` bytes (NULL if out of memory). */
bw_record *bw_record_new(const struct bw_family *family, size_t size);
/* A heap copy of a record (NULL if out of memory); free it with free(). */
bw_record *bw_record_copy(const bw_record *rec);
/* Bytes a record takes. */
size_t bw_record_bytes(const bw_record *rec);

typedef struct bw_store bw_store;

bw_store *bw_store_new(void);
void bw_store_free(bw_store *store);
/* Hand out the next posterior id (1, 2, ...: the order of the calls). */
uint64_t bw_store_next_id(bw_store *store);
/* Take ownership of a heap-allocated record (bw_record_new); returns 0. */
int bw_store_insert(bw_store *store, bw_record *rec);
/* Mark a posterior accessed and, if copy is not NULL, give a heap copy of it in *copy.
 * Returns BW_OK, BW_E_NOT_FOUND or BW_E_NOMEM (no copy could be made). */
int bw_store_get(bw_store *store, uint64_t id, bw_record **copy);
/* Reserve n positions of stream `slot` (0 .. BW_MAX_STREAMS-1): *start gets the first.
 * Returns BW_OK, BW_E_NOT_FOUND, or BW_E_DOMAIN if the slot is invalid or the stream
 * position would overflow. */
int bw_store_reserve(bw_store *store, uint64_t id, int slot, uint64_t n, uint64_t *start);
int bw_store_remove(bw_store *store, uint64_t id);
/* Remove everything; fills a malloc'd array of the removed ids (caller frees). */
size_t bw_store_clear(bw_store *store, uint64_t **ids);
/* Remove every posterior not accessed since the wall-clock time `before`. */
size_t bw_store_evict(bw_store *store, double before, uint64_t **ids);
/* Copies of every posterior, ordered by id: a malloc'd array of malloc'd copies (caller
 * frees each and the array); *out is NULL if out of memory. */
size_t bw_store_snapshot(bw_store *store, bw_record ***out);
size_t bw_store_count(bw_store *store);

#endif /* BW_STORE_H */
