/*
 * family.h -- a model family: its constants and its operations, one row of the registry.
 * Pure C, no Python.h.
 *
 * The registry (registry.c) is the one list of families.  Everything that depends on the
 * model -- which data a fit takes, its prior, how raw values are checked and reduced, how
 * the prior is updated, which summaries are cached, how parts are drawn and their
 * intervals computed, how the posterior is described -- is reached through the family's
 * row; nothing else in the core or the binding branches on a model.
 *
 * Adding a family: one file defining `const bw_family bw_family_<name>` (its operations and
 * constants) and one line in registry.c.
 */
#ifndef BW_FAMILY_H
#define BW_FAMILY_H

#include <stddef.h>
#include <stdint.h>

#include "bw_codes.h"
#include "bw_status.h"
#include "mixture.h"
#include "pool.h"
#include "store.h"

/* ======================================================================================== */
/* Describing a posterior: a writer the binding implements                                  */
/* ======================================================================================== */
/*
 * A family describes its posterior (and a fit's report) as nested dicts and tuples of
 * numbers through these calls; the binding builds the Python objects.  `key` names the
 * entry in the enclosing dict, and is NULL inside a tuple.  Errors are sticky in the
 * writer: the calls return nothing and the binding checks once at the end.
 */
typedef struct bw_writer bw_writer;
struct bw_writer {
    void (*open)(bw_writer *w, const char *key, int tuple);  /* a dict (0) or tuple (1) */
    void (*close)(bw_writer *w);
    void (*number)(bw_writer *w, const char *key, double v);
    void (*integer)(bw_writer *w, const char *key, long long v);
    void (*count)(bw_writer *w, const char *key, uint64_t v);
    void (*boolean)(bw_writer *w, const char *key, int v);
    void (*none)(bw_writer *w, const char *key);
};

/* A tuple of n numbers under key. */
void bw_write_numbers(bw_writer *w, const char *key, const double *x, size_t n);

/* ======================================================================================== */
/* A fit request                                                                            */
/* ======================================================================================== */

/* What a family's fit takes (bw_family.takes). */
enum {
    BW_TAKES_COUNTS = 1,        /* successes and trials (conversions and users) */
    BW_TAKES_VALUES = 2,        /* raw values (a float64 array) */
    BW_TAKES_STATS = 4,         /* the values' statistics instead of the values */
    BW_TAKES_OPTIONS = 8,       /* (Ks, tol, max_iter) of an iterative fit */
};

typedef struct {
    int Ks[BW_MIX_MAX_K];       /* the component counts to fit, in this order */
    int nK;
    double tol;
    int max_iter;
} bw_fit_options;

typedef struct bw_family bw_family;

typedef struct {
    const bw_family *family;
    const double *prior;        /* in the order of family->prior (one per category where
                                 * family->prior_per_category) */
    size_t nprior;
    int64_t successes, trials;
    const double *values;       /* raw values (NULL: none); kept alive by the caller until
                                 * the job finishes */
    size_t n;
    const double *stats;        /* the values' statistics (NULL: reduce the values) */
    size_t nstats;
    bw_fit_options options;     /* iterative families */
    uint64_t stream_key;        /* the posterior's stream key */
} bw_fit_spec;

/* ======================================================================================== */
/* Reducing raw values (reduce.c)                                                           */
/* ======================================================================================== */
/*
 * A reducer checks a block of raw values against its value rules and reduces it to a few
 * partial statistics; the partials are merged in block order, so the result does not
 * depend on the thread count.  Fits check and reduce in the same pass.
 */
typedef struct {
    int nacc;                   /* partial statistics per block (0: check only) */
    const char *const *stat_names;      /* names of the merged statistics, NULL-terminated */
    /* Index of the first value of x[0 .. m) that breaks a rule (its enum bw_value_rule in
     * *rule), or m. */
    size_t (*check)(const double *x, size_t m, int *rule);
    void (*block)(const double *x, size_t m, double *acc);
    void (*merge)(double *total, const double *acc);   /* total starts at zeros */
    /* The merged statistics overflowed: fill err naming the first value responsible. */
    int (*overflowed)(const double *total, const double *x, size_t n, bw_error *err);
} bw_reducer;

extern const bw_reducer bw_reduce_moments;       /* n, mean, m2 of the values */
extern const bw_reducer bw_reduce_log_moments;   /* n, mean, m2 of their logs (values > 0) */
extern const bw_reducer bw_reduce_sum;           /* n, sum (values >= 0) */
extern const bw_reducer bw_reduce_counts;        /* n, sum (whole values >= 0) */
extern const bw_reducer bw_check_counts;         /* no statistics: whole values >= 0 */

/* ======================================================================================== */
/* The row                                                                                  */
/* ======================================================================================== */

typedef struct {
    const char *key;            /* "alpha", or "frequency.alpha" in compound models */
    double value;               /* its default */
    int sign_free;              /* 1: any finite number; 0: must be finite and > 0 */
} bw_prior_key;

typedef struct {
    const char *name;           /* exported as _core.<name> */
    double value;
    int is_int;
    const bw_prior_key *pairs;  /* instead of a number: a tuple of (key, value) pairs */
} bw_constant;

struct bw_family {
    /* -- constants ------------------------------------------------------------------- */
    const char *name;           /* the model type string, e.g. "beta-binomial" */
    int code;                   /* its number, unique in the registry */
    const char *const *parts;   /* names of the parts a proxy shows, NULL-terminated */
    const int *part_codes;      /* the part code of each name (NULL: 0, 1, 2, ...) */
    const bw_prior_key *prior;  /* the prior tuple's layout and defaults, key NULL ends */
    int prior_per_category;     /* 1: prior[0] repeated once per category */
    const int *rules;           /* value rules of raw values, 0-terminated */
    const char *const *stats;   /* names of the posterior's sufficient statistics */
    int nvalue_stats;           /* the leading statistics that fit(stats=...) takes */
    int takes;                  /* BW_TAKES_* */
    int iterative;              /* fitted by iterations (progress counts them) */
    const bw_constant *constants;   /* the family's own exported numbers (name NULL ends) */
    const void *data;           /* the family's own constants, read only by its operations */

    /* -- fitting --------------------------------------------------------------------- */
    /* Check a request beyond what the binding checks generically (prior length and
     * signs, data present, options); 0 or -1 with err. */
    int (*check)(const bw_fit_spec *spec, bw_error *err);
    /* The fit job: reduces, updates and publishes the posterior under post_id.  NULL if
     * out of memory.  Conjugate families use bw_conjugate_fit_job (fit_job.c). */
    bw_job *(*fit_job)(bw_store *store, uint64_t post_id, const bw_fit_spec *spec);
    const bw_reducer *reducer;  /* conjugate: the reduction of raw values (or NULL) */
    size_t (*size)(const bw_fit_spec *spec);     /* payload bytes of its posterior */
    /* Conjugate: the posterior's parameters from the prior and the statistics (stats: the
     * merged reduction, or spec->stats).  0 or -1 with err. */
    int (*update)(const bw_fit_spec *spec, const double *stats, bw_record *post,
                  bw_error *err);
    /* Conjugate: the posterior's exact cached summaries.  0 or -1 with err. */
    int (*summarise)(bw_record *post, bw_error *err);
    /* A finished fit job's report (mixtures: per-K ELBOs, ...); NULL: none. */
    void (*report)(const bw_job *job, bw_writer *w);

    /* -- a stored posterior ---------------------------------------------------------- */
    void (*describe)(const bw_record *post, bw_writer *w);
    /* Doubles per draw of `part` (1, or k for a vector), 0 if the part cannot be drawn. */
    size_t (*draw_width)(const bw_record *post, int part);
    /* The cursor slot of part's stream (0 .. BW_MAX_STREAMS-1), or -1. */
    int (*stream_of)(const bw_record *post, int part);
    /* Draws start .. start+n-1 of part on the posterior's stream key into
     * out[0 .. n * width). */
    void (*draw)(const bw_record *post, int part, uint64_t key, uint64_t start, size_t n,
                 double *out);
    /* The central interval at level of part (se: its Monte Carlo standard errors, 0 where
     * exact).  0, or -1 with err. */
    int (*interval)(const bw_record *post, int part, uint64_t key, double level,
                    double out[2], double se[2], bw_error *err);
};

/* ======================================================================================== */
/* The registry (registry.c)                                                                */
/* ======================================================================================== */

extern const bw_family *const bw_families[];
extern const size_t bw_nfamilies;
const bw_family *bw_family_by_code(int code);
const bw_family *bw_family_by_name(const char *name);

/* Checks every family shares (prior length and signs, counts, data the family takes);
 * then the family's own check.  0 or -1 with err. */
int bw_check_fit(const bw_fit_spec *spec, bw_error *err);

/* ======================================================================================== */
/* Generic jobs (fit_job.c, draw_jobs.c)                                                    */
/* ======================================================================================== */

/* A conjugate fit: blocks of BW_FIT_BLOCK values checked and reduced by family->reducer,
 * merged in block order, then family->update, and the posterior inserted under post_id
 * then family->summarise, and the posterior inserted under post_id (the job's result_id).
 * Without values (or with spec->stats) one empty block. */
bw_job *bw_conjugate_fit_job(bw_store *store, uint64_t post_id, const bw_fit_spec *spec);

/* Many fits of one conjugate family (its fit_job is bw_conjugate_fit_job and its payload
 * bw_conj_post), one per group, as one job: group g takes counts[2g], counts[2g+1] (if
 * counts), stats[g*nstats ..] (if stats) or values[offsets[g] .. offsets[g+1]) (if values),
 * and the template's prior.  The posteriors are published under ids[g] when every group
 * succeeded; otherwise the job fails with the error of the first failing group g (in
 * group order), whose ids[g] it sets to 0, and publishes none.  summaries (if not NULL):
 * per group summary_width doubles, per part BW_BATCH_PART_WIDTH of them (mean, variance,
 * then lo and hi at each of bw_cached_levels).  Every array is the caller's, kept alive
 * until the job finishes. */
#define BW_BATCH_PART_WIDTH (2 + 2 * BW_NCACHED)
typedef struct {
    size_t ngroups;
    const int64_t *counts;
    const double *values;
    const int64_t *offsets;     /* ngroups + 1 */
    const double *stats;
    size_t nstats;
    uint64_t *ids;
    double *summaries;
    size_t summary_width;
} bw_batch_spec;
bw_job *bw_conjugate_batch_job(bw_store *store, const bw_fit_spec *tmpl,
                               const bw_batch_spec *batch);

/* What every fit job's context starts with. */
typedef struct {
    bw_store *store;
    uint64_t post_id;
    bw_fit_spec spec;           /* its prior points into prior[] (a copy) */
    double *prior;
} bw_fit_head;

/* A zeroed fit context of `size` bytes whose first member is a bw_fit_head, filled from
 * the request (the prior copied); NULL if out of memory.  Free with bw_fit_ctx_free after
 * the context's own members. */
void *bw_fit_ctx_new(size_t size, bw_store *store, uint64_t post_id, const bw_fit_spec *spec);
void bw_fit_ctx_free(void *ctx);

/* Stamp a finished fit's posterior and hand it to the store as the job's result.  0. */
int bw_publish(bw_job *job, bw_store *store, bw_record *post);

/* Draws start .. start+n-1 of part of post (taken: freed with the job) into out; blocks of
 * about BW_SAMPLE_BLOCK doubles. */
bw_job *bw_draw_job(bw_record *post, int part, uint64_t key, uint64_t start, size_t n,
                    double *out);
/* The interval at level of part of post (taken); result[0..1] the interval, result[2..3]
 * its Monte Carlo standard errors. */
bw_job *bw_interval_job(bw_record *post, int part, uint64_t key, double level);

#endif /* BW_FAMILY_H */
