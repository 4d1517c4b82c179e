/*
 * conjugate.h -- the posterior of a conjugate family: one to three parts, each a quantity
 * (bw_dist.h) with its exact cached summaries, and the sufficient statistics the fit used.
 * Pure C.
 *
 * conjugate.c implements the operations every conjugate row shares (summaries, describe,
 * draws, intervals); each family file adds its update.  A part p draws on stream tag p and
 * keeps its position in the record's cursor[p].
 */
#ifndef BW_CONJUGATE_H
#define BW_CONJUGATE_H

#include "bw_dist.h"
#include "family.h"

#define BW_MAX_STATS 6

extern const double bw_cached_levels[BW_NCACHED];

typedef struct {
    bw_quantity q;              /* nfactors 0: the part is a constant (no summaries to draw) */
    double mean, variance;
    int ci_lazy;                /* 1: ci not computed (each level on its first use) */
    double ci[BW_NCACHED][2];   /* at bw_cached_levels */
} bw_part;

typedef struct {
    int nparts;
    int nstats;
    double stats[BW_MAX_STATS]; /* named by family->stats */
    bw_part part[];             /* nparts */
} bw_conj_post;

/* The payload of a conjugate posterior and its size. */
static inline bw_conj_post *bw_conj(const bw_record *rec) { return (bw_conj_post *)rec->payload; }
size_t bw_conj_size(int nparts);

/* A part's exact cached summaries (mean, variance, the cached intervals); 0, or -1 with
 * err naming the summary, the part (`name`, may be "") and the posterior. */
int bw_part_summarise(bw_part *part, const char *name, bw_error *err);
/* Its cached intervals alone (the same code as bw_part_summarise; clears ci_lazy). */
int bw_part_intervals(bw_part *part, const char *name, bw_error *err);
/* The one at bw_cached_levels[i] into out (the same code and message). */
int bw_part_interval_at(const bw_part *part, int i, const char *name, double out[2],
                        bw_error *err);
/* The central interval at level of q, its failure explained in err; 0 or -1. */
int bw_quantity_interval(const bw_quantity *q, double level, double out[2], bw_error *err);
/* A part as a dict {factors, mean, variance, intervals, cursor} under key. */
void bw_write_part(bw_writer *w, const char *key, const bw_part *p, uint64_t cursor);
/* The parameters of d are finite, or err names the one that overflowed and the data's
 * statistics (stats, named by names: NULL-terminated).  `part` prefixes the posterior's
 * name ("severity " or ""). */
int bw_check_dist(const bw_dist *d, const char *part, const double *stats,
                  const char *const *names, bw_error *err);

/* A one-part posterior of distribution d with its statistics (nstats of them, named by
 * names) for the message of an overflow; 0 or -1 with err. */
int bw_conj_single(bw_record *post, const bw_dist *d, const double *stats, int nstats,
                   const char *const *names, bw_error *err);

/* The same from an update kernel (bw_nig_update, bw_rate_update) of the family's kind on
 * the prior and the reduced statistics (nstats of them). */
typedef void (*bw_update_fn)(int kind, const double *prior, const double *stats, bw_dist *d);
int bw_conj_update(const bw_fit_spec *spec, const double *stats, int nstats, bw_update_fn up,
                   int kind, bw_record *post, bw_error *err);

/* The operations every conjugate row shares. */
int bw_conj_summarise(bw_record *post, bw_error *err);
/* A one-part posterior is summarised without its cached intervals (ci_lazy), which are
 * computed on first use.  Every part's interval at bw_cached_levels[0] (0.95): the cached
 * one, or computed now (a batch fit's summary rows); out has a row per part. */
int bw_conj_interval95(const bw_record *post, double out[][2], bw_error *err);
void bw_conj_describe(const bw_record *post, bw_writer *w);
size_t bw_conj_draw_width(const bw_record *post, int part);
int bw_conj_stream_of(const bw_record *post, int part);
void bw_conj_draw(const bw_record *post, int part, uint64_t key, uint64_t start, size_t n,
                  double *out);
int bw_conj_interval(const bw_record *post, int part, uint64_t key, double level,
                     double out[2], double se[2], bw_error *err);
size_t bw_conj_size_of(const bw_fit_spec *spec);   /* bw_conj_size(parts of the family) */

/* The operations of a conjugate row (its family file adds the constants, the reducer and
 * the update). */
#define BW_CONJUGATE_OPS                                                                     \
    .fit_job = bw_conjugate_fit_job, .size = bw_conj_size_of,                                \
    .summarise = bw_conj_summarise, .describe = bw_conj_describe,                            \
    .draw_width = bw_conj_draw_width, .stream_of = bw_conj_stream_of, .draw = bw_conj_draw,  \
    .interval = bw_conj_interval

/* The conjugate updates, by family file (compound models compose them). */
void bw_beta_update(const double prior[2], int64_t successes, int64_t trials, bw_dist *d);
void bw_nig_update(int kind, const double *prior, const double *stats, bw_dist *d);
/* Exponential (InvGamma of the mean 1/lambda) and poisson (Gamma of the rate): stats are
 * (n, sum); n is the exposure for poisson. */
void bw_rate_update(int kind, const double *prior, const double *stats, bw_dist *d);
/* The exponential rule: some value must be positive when values were given. */
int bw_rate_check_some_positive(const bw_fit_spec *spec, const double stats[2], bw_error *err);

#endif /* BW_CONJUGATE_H */
