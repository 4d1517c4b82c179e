/*
 * fam_dirichlet.c -- dirichlet-multinomial: the shares of k categories.
 *
 * Data: k category counts (whole numbers >= 0, a float64 array).  Prior: Dirichlet(alpha_1
 * .. alpha_k), one number per category.  Posterior: Dirichlet(alpha + counts).
 *
 * Summaries are exact: share i's marginal is Beta(a_i, b_i) with a_i the posterior alpha_i
 * and b_i = sum_{j != i} a_j (summed in category order, not a0 - a_i, so a small b_i keeps
 * its digits); its mean, variance and the cached central intervals are those of that Beta,
 * and part BW_DIR_PART_CATEGORY + i gives its interval at any level.
 *
 * Draws (part BW_DIR_PART_SHARES, k doubles per draw, row-major): draw p is the vector
 * G_i / sum_j G_j of k independent G_i ~ Gamma(a_i, 1), each drawn at position p of its own
 * stream, so a draw depends only on (key, p): the same bits whatever the thread count and
 * the batch sizes.  G_i is taken in log space so that no draw is 0/0 when every a_i is
 * small: log G_i = log Gamma(a_i) on tag BW_DIR_TAG_GAMMA + i for a_i >= 1; for a_i < 1
 * log Gamma(a_i + 1) on that tag plus log(U) / a_i with U uniform on tag
 * BW_DIR_TAG_BOOST + i (Gamma(a) = Gamma(a + 1) U^(1/a)); the shares are then
 * exp(log G_i - max) / sum_j exp(log G_j - max).
 */
#include <math.h>
#include <stdio.h>

#include "conjugate.h"

#define BW_DIR_MAX_K 1024           /* most categories */
#define BW_DIR_PART_SHARES 0        /* the share vector (draws) */
#define BW_DIR_PART_CATEGORY 32     /* + i: share i's marginal (summaries, intervals) */
#define BW_DIR_TAG_GAMMA 0u         /* + i: the Gamma stream of category i */
#define BW_DIR_TAG_BOOST ((uint32_t)BW_DIR_MAX_K)   /* + i: its uniforms when a_i < 1 */
#define BW_DIR_CHUNK 256            /* draws per inner chunk */

typedef struct {
    double count;
    double a, b;                /* the marginal Beta(a, b): a = alpha_i + count_i */
    double mean, variance;
    double ci[BW_NCACHED][2];
} dir_category;

typedef struct {
    int k;
    double n;                   /* the total count */
    dir_category cat[];
} dir_post;

static dir_post *dir(const bw_record *rec) { return (dir_post *)rec->payload; }

/* ======================================================================================== */
/* Fit                                                                                      */
/* ======================================================================================== */

static int dir_check(const bw_fit_spec *s, bw_error *err)
{
    if (!s->values || s->n < 2 || s->n > BW_DIR_MAX_K)
        return bw_fail(err, BW_E_DOMAIN, "%s takes the counts of 2 to %d categories, not %zu",
                       s->family->name, BW_DIR_MAX_K, s->values ? s->n : 0);
    if (s->nprior != s->n)
        return bw_fail(err, BW_E_DOMAIN, "the prior has %zu alphas but the counts have %zu "
                       "categories", s->nprior, s->n);
    return 0;
}

static size_t dir_size(const bw_fit_spec *s) { return sizeof(dir_post) + s->n * sizeof(dir_category); }

static int dir_update(const bw_fit_spec *s, const double *stats, bw_record *post, bw_error *err)
{
    (void)stats;
    dir_post *d = dir(post);
    d->k = (int)s->n;
    d->n = 0;
    for (int i = 0; i < d->k; i++) {
        d->cat[i].count = s->values[i];
        d->cat[i].a = s->prior[i] + s->values[i];
        d->n += s->values[i];
    }
    for (int i = 0; i < d->k; i++) {
        double b = 0;
        for (int j = 0; j < d->k; j++)
            b += j == i ? 0.0 : d->cat[j].a;
        d->cat[i].b = b;
        if (!isfinite(d->cat[i].a) || !isfinite(b)) {
            char v[32];
            return bw_fail(err, BW_E_NUMERIC, "updating the prior overflows float64: the "
                           "posterior's alphas sum past the largest double (category %d has "
                           "alpha %s)", i, bw_fmt(v, sizeof v, d->cat[i].a));
        }
    }
    return 0;
}

static bw_quantity marginal(const dir_category *c)
{
    bw_quantity q = {.nfactors = 1};
    q.f[0].kind = BW_KIND_BETA;
    q.f[0].p[0] = c->a;
    q.f[0].p[1] = c->b;
    return q;
}

static int dir_summarise(bw_record *post, bw_error *err)
{
    dir_post *d = dir(post);
    for (int i = 0; i < d->k; i++) {
        dir_category *c = &d->cat[i];
        bw_part p = {.q = marginal(c)};
        char name[40];
        snprintf(name, sizeof name, "share of category %d", i);
        if (bw_part_summarise(&p, name, err) != 0)
            return -1;
        c->mean = p.mean;
        c->variance = p.variance;
        for (int l = 0; l < BW_NCACHED; l++) {
            c->ci[l][0] = p.ci[l][0];
            c->ci[l][1] = p.ci[l][1];
        }
    }
    return 0;
}

/* ======================================================================================== */
/* A stored posterior                                                                       */
/* ======================================================================================== */

static void dir_describe(const bw_record *post, bw_writer *w)
{
    const dir_post *d = dir(post);
    w->open(w, "parts", 1);     /* the marginals, category by category */
    for (int i = 0; i < d->k; i++) {
        const dir_category *c = &d->cat[i];
        bw_part p = {.q = marginal(c), .mean = c->mean, .variance = c->variance};
        for (int l = 0; l < BW_NCACHED; l++) {
            p.ci[l][0] = c->ci[l][0];
            p.ci[l][1] = c->ci[l][1];
        }
        bw_write_part(w, NULL, &p, 0);
    }
    w->close(w);
    w->none(w, "mixture");
    w->open(w, "dirichlet", 0);
    w->integer(w, "k", d->k);
    w->open(w, "alpha", 1);
    for (int i = 0; i < d->k; i++)
        w->number(w, NULL, d->cat[i].a);
    w->close(w);
    w->open(w, "counts", 1);
    for (int i = 0; i < d->k; i++)
        w->number(w, NULL, d->cat[i].count);
    w->close(w);
    w->count(w, "cursor", post->cursor[0]);
    w->close(w);
    bw_write_numbers(w, "stats", &d->n, 1);
}

static size_t dir_draw_width(const bw_record *post, int part)
{
    return part == BW_DIR_PART_SHARES ? (size_t)dir(post)->k : 0;
}

static int dir_stream_of(const bw_record *post, int part)
{
    (void)post;
    return part == BW_DIR_PART_SHARES ? 0 : -1;
}

/* log G_i at positions start .. start+m-1 into lg[0 .. m). */
static void log_gamma_draws(double a, uint64_t key, uint32_t i, uint64_t start, size_t m,
                            double *lg)
{
    double g[BW_DIR_CHUNK], u[BW_DIR_CHUNK];
    bw_quantity q = {.nfactors = 1};
    q.f[0].kind = BW_KIND_GAMMA;
    q.f[0].p[0] = a < 1 ? a + 1 : a;
    q.f[0].p[1] = 1.0;
    bw_sample(&q, (bw_stream){key, BW_DIR_TAG_GAMMA + i}, start, m, g);
    bw_log_array(g, lg, m);
    if (a < 1) {
        q.f[0].kind = BW_KIND_BETA;     /* Beta(1, 1): uniform */
        q.f[0].p[0] = q.f[0].p[1] = 1.0;
        bw_sample(&q, (bw_stream){key, BW_DIR_TAG_BOOST + i}, start, m, g);
        bw_log_array(g, u, m);
        for (size_t j = 0; j < m; j++)
            lg[j] += u[j] / a;
    }
}

static void dir_draw(const bw_record *post, int part, uint64_t key, uint64_t start, size_t n,
                     double *out)
{
    (void)part;
    const dir_post *d = dir(post);
    const size_t k = (size_t)d->k;
    double lg[BW_DIR_CHUNK];
    for (size_t lo = 0; lo < n; lo += BW_DIR_CHUNK) {
        size_t m = n - lo < BW_DIR_CHUNK ? n - lo : BW_DIR_CHUNK;
        double *rows = out + lo * k;
        for (size_t i = 0; i < k; i++) {
            log_gamma_draws(d->cat[i].a, key, (uint32_t)i, start + lo, m, lg);
            for (size_t j = 0; j < m; j++)
                rows[j * k + i] = lg[j];
        }
        for (size_t j = 0; j < m; j++) {
            double *x = rows + j * k, top = x[0], sum = 0;
            for (size_t i = 1; i < k; i++)
                top = x[i] > top ? x[i] : top;
            for (size_t i = 0; i < k; i++)
                sum += x[i] = exp(x[i] - top);
            for (size_t i = 0; i < k; i++)
                x[i] /= sum;
        }
    }
}

static int dir_interval(const bw_record *post, int part, uint64_t key, double level,
                        double out[2], double se[2], bw_error *err)
{
    (void)key;
    const dir_post *d = dir(post);
    int i = part - BW_DIR_PART_CATEGORY;
    if (i < 0 || i >= d->k)
        return bw_fail(err, BW_E_DOMAIN, "a %s posterior of %d categories has no part %d "
                       "(category i is part %d + i)", post->family->name, d->k, part,
                       BW_DIR_PART_CATEGORY);
    se[0] = se[1] = 0;
    bw_quantity q = marginal(&d->cat[i]);
    return bw_quantity_interval(&q, level, out, err);
}

/* ======================================================================================== */
/* The row                                                                                  */
/* ======================================================================================== */

static const char *const parts[] = {"shares", "category", NULL};
static const int part_codes[] = {BW_DIR_PART_SHARES, BW_DIR_PART_CATEGORY};
static const bw_prior_key prior[] = {{"alpha", 1.0, 0}, {NULL, 0, 0}};
static const int rules[] = {BW_RULE_FINITE, BW_RULE_NONNEGATIVE, BW_RULE_INTEGER, 0};
static const char *const stats[] = {"n", NULL};
static const bw_constant constants[] = {
    {"MAX_CATEGORIES", BW_DIR_MAX_K, 1, NULL},
    {"PART_SHARES", BW_DIR_PART_SHARES, 1, NULL},
    {"PART_CATEGORY", BW_DIR_PART_CATEGORY, 1, NULL},
    {NULL, 0, 0, NULL}};

const bw_family bw_family_dirichlet_multinomial = {
    .name = "dirichlet-multinomial", .code = 11, .parts = parts, .part_codes = part_codes,
    .prior = prior, .prior_per_category = 1, .rules = rules, .stats = stats,
    .takes = BW_TAKES_VALUES, .constants = constants, .check = dir_check,
    .fit_job = bw_conjugate_fit_job, .reducer = &bw_check_counts, .size = dir_size,
    .update = dir_update, .summarise = dir_summarise, .describe = dir_describe,
    .draw_width = dir_draw_width, .stream_of = dir_stream_of, .draw = dir_draw,
    .interval = dir_interval,
};
