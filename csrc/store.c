/*
 * store.c -- a chained hash table of posteriors behind one mutex.
 */
#include "store.h"

#include <stdlib.h>
#include <string.h>

#include "bw_status.h"
#include "pool.h"   /* bw_wallclock */

bw_record *bw_record_new(const struct bw_family *family, size_t size)
{
    bw_record *rec = calloc(1, sizeof *rec + size);
    if (rec) {
        rec->family = family;
        rec->size = size;
    }
    return rec;
}

size_t bw_record_bytes(const bw_record *rec) { return sizeof *rec + rec->size; }

bw_record *bw_record_copy(const bw_record *rec)
{
    bw_record *copy = malloc(bw_record_bytes(rec));
    if (copy) {
        memcpy(copy, rec, bw_record_bytes(rec));
        copy->chain = NULL;
    }
    return copy;
}

struct bw_store {
    pthread_mutex_t mu;
    bw_record **buckets;
    size_t nbuckets;            /* a power of two */
    size_t count;
    uint64_t next_id;
};

static size_t bucket_of(const bw_store *s, uint64_t id)
{
    uint64_t h = id * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 32) & (s->nbuckets - 1);
}

bw_store *bw_store_new(void)
{
    bw_store *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->nbuckets = 64;
    s->buckets = calloc(s->nbuckets, sizeof *s->buckets);
    if (!s->buckets) {
        free(s);
        return NULL;
    }
    pthread_mutex_init(&s->mu, NULL);
    return s;
}

static void free_all_locked(bw_store *s)
{
    for (size_t b = 0; b < s->nbuckets; b++) {
        bw_record *p = s->buckets[b];
        while (p) {
            bw_record *next = p->chain;
            free(p);
            p = next;
        }
        s->buckets[b] = NULL;
    }
    s->count = 0;
}

void bw_store_free(bw_store *s)
{
    if (!s)
        return;
    free_all_locked(s);
    free(s->buckets);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

uint64_t bw_store_next_id(bw_store *s)
{
    pthread_mutex_lock(&s->mu);
    uint64_t id = ++s->next_id;
    pthread_mutex_unlock(&s->mu);
    return id;
}

static void grow_locked(bw_store *s)
{
    size_t n = s->nbuckets * 2;
    bw_record **nb = calloc(n, sizeof *nb);
    if (!nb)
        return;                 /* keep the longer chains; still correct */
    bw_record **old = s->buckets;
    size_t oldn = s->nbuckets;
    s->buckets = nb;
    s->nbuckets = n;
    for (size_t b = 0; b < oldn; b++) {
        bw_record *p = old[b];
        while (p) {
            bw_record *next = p->chain;
            size_t i = bucket_of(s, p->id);
            p->chain = s->buckets[i];
            s->buckets[i] = p;
            p = next;
        }
    }
    free(old);
}

int bw_store_insert(bw_store *s, bw_record *post)
{
    pthread_mutex_lock(&s->mu);
    if (s->count + 1 > 2 * s->nbuckets)
        grow_locked(s);
    size_t i = bucket_of(s, post->id);
    post->chain = s->buckets[i];
    s->buckets[i] = post;
    s->count++;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static bw_record *find_locked(bw_store *s, uint64_t id, bw_record ***link)
{
    bw_record **pp = &s->buckets[bucket_of(s, id)];
    while (*pp && (*pp)->id != id)
        pp = &(*pp)->chain;
    if (link)
        *link = pp;
    return *pp;
}

int bw_store_get(bw_store *s, uint64_t id, bw_record **copy)
{
    int rc = BW_OK;
    pthread_mutex_lock(&s->mu);
    bw_record *p = find_locked(s, id, NULL);
    if (!p) {
        rc = BW_E_NOT_FOUND;
    } else {
        p->last_access = bw_wallclock();
        if (copy && !(*copy = bw_record_copy(p)))
            rc = BW_E_NOMEM;
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int bw_store_reserve(bw_store *s, uint64_t id, int slot, uint64_t n, uint64_t *start)
{
    int rc;
    pthread_mutex_lock(&s->mu);
    bw_record *p = find_locked(s, id, NULL);
    if (!p) {
        rc = BW_E_NOT_FOUND;
    } else if (slot < 0 || slot >= BW_MAX_STREAMS || n > UINT64_MAX - p->cursor[slot]) {
        rc = BW_E_DOMAIN;
    } else {
        p->last_access = bw_wallclock();
        *start = p->cursor[slot];
        p->cursor[slot] += n;
        rc = BW_OK;
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int bw_store_remove(bw_store *s, uint64_t id)
{
    bw_record **link;
    pthread_mutex_lock(&s->mu);
    bw_record *p = find_locked(s, id, &link);
    if (p) {
        *link = p->chain;
        s->count--;
    }
    pthread_mutex_unlock(&s->mu);
    free(p);
    return p != NULL;
}

/* Remove the posteriors `keep` says no to; their ids go to a malloc'd array. */
static size_t remove_where(bw_store *s, double before, int all, uint64_t **ids)
{
    pthread_mutex_lock(&s->mu);
    uint64_t *out = malloc((s->count ? s->count : 1) * sizeof *out);
    size_t n = 0;
    for (size_t b = 0; b < s->nbuckets; b++) {
        bw_record **pp = &s->buckets[b];
        while (*pp) {
            bw_record *p = *pp;
            if (all || p->last_access < before) {
                *pp = p->chain;
                if (out)
                    out[n] = p->id;
                n++;
                s->count--;
                free(p);
            } else {
                pp = &p->chain;
            }
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (ids)
        *ids = out;
    else
        free(out);
    return out ? n : 0;
}

size_t bw_store_clear(bw_store *s, uint64_t **ids) { return remove_where(s, 0.0, 1, ids); }

size_t bw_store_evict(bw_store *s, double before, uint64_t **ids)
{
    return remove_where(s, before, 0, ids);
}

static int by_id(const void *a, const void *b)
{
    uint64_t x = (*(bw_record *const *)a)->id, y = (*(bw_record *const *)b)->id;
    return (x > y) - (x < y);
}

size_t bw_store_snapshot(bw_store *s, bw_record ***out)
{
    pthread_mutex_lock(&s->mu);
    bw_record **arr = malloc((s->count ? s->count : 1) * sizeof *arr);
    size_t n = 0;
    for (size_t b = 0; arr && b < s->nbuckets; b++)
        for (bw_record *p = s->buckets[b]; p; p = p->chain) {
            if (!(arr[n] = bw_record_copy(p))) {
                while (n > 0)
                    free(arr[--n]);
                free(arr);
                arr = NULL;
                break;
            }
            n++;
        }
    pthread_mutex_unlock(&s->mu);
    if (arr)
        qsort(arr, n, sizeof *arr, by_id);
    *out = arr;
    return arr ? n : 0;
}

size_t bw_store_count(bw_store *s)
{
    pthread_mutex_lock(&s->mu);
    size_t n = s->count;
    pthread_mutex_unlock(&s->mu);
    return n;
}
