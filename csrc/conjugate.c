/*
 * conjugate.c -- what every conjugate posterior shares: exact cached summaries, the
 * description of its parts, their draws and their intervals.
 */
#include "conjugate.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

const double bw_cached_levels[BW_NCACHED] = BW_CACHED_LEVELS;

size_t bw_conj_size(int nparts) { return sizeof(bw_conj_post) + (size_t)nparts * sizeof(bw_part); }

size_t bw_conj_size_of(const bw_fit_spec *spec)
{
    int n = 0;
    while (spec->family->parts[n])
        n++;
    return bw_conj_size(n);
}

/* ======================================================================================== */
/* Summaries and their failures                                                             */
/* ======================================================================================== */

/* "Beta(2, 5)" and the like: a distribution for a message. */
static const char *dist_text(const bw_dist *d, char *buf, size_t len)
{
    char a[32], b[32], c[32], e[32];
    switch (d->kind) {
    case BW_KIND_BETA:
        snprintf(buf, len, "Beta(%s, %s)", bw_fmt(a, 32, d->p[0]), bw_fmt(b, 32, d->p[1]));
        break;
    case BW_KIND_GAMMA:
    case BW_KIND_INVGAMMA:
        snprintf(buf, len, "%s(shape %s, %s %s)",
                 d->kind == BW_KIND_GAMMA ? "Gamma" : "InvGamma", bw_fmt(a, 32, d->p[0]),
                 d->kind == BW_KIND_GAMMA ? "rate" : "scale", bw_fmt(b, 32, d->p[1]));
        break;
    default:
        snprintf(buf, len, "normal-inverse-gamma(m %s, kappa %s, alpha %s, beta %s)",
                 bw_fmt(a, 32, d->p[0]), bw_fmt(b, 32, d->p[1]), bw_fmt(c, 32, d->p[2]),
                 bw_fmt(e, 32, d->p[3]));
    }
    return buf;
}

/* Fill err for a summary kernel's status rc on q: which summary, of what, and why. */
static int summary_failed(bw_error *err, int rc, const char *name, const char *what,
                          const bw_quantity *q)
{
    char d0[200], d1[200];
    const char *why = rc == BW_E_DOMAIN ? "a parameter is outside its domain"
                                        : "the computation did not converge";
    if (q->nfactors == 2)
        return bw_fail(err, rc, "the %s%s%s of the posterior %s x %s cannot be computed: %s",
                       name, *name ? " " : "", what, dist_text(&q->f[0], d0, sizeof d0),
                       dist_text(&q->f[1], d1, sizeof d1), why);
    return bw_fail(err, rc, "the %s%s%s of the posterior %s cannot be computed: %s", name,
                   *name ? " " : "", what, dist_text(&q->f[0], d0, sizeof d0), why);
}

/* Mean and variance of a part. */
static int part_moments(bw_part *part, const char *name, bw_error *err)
{
    if (bw_moments(&part->q, &part->mean, &part->variance) == BW_OK)
        return 0;
    int rc = bw_mean(&part->q, &part->mean);      /* which one failed, and why */
    if (rc != BW_OK)
        return summary_failed(err, rc, name, "mean", &part->q);
    rc = bw_variance(&part->q, &part->variance);
    if (rc != BW_OK)
        return summary_failed(err, rc, name, "variance", &part->q);
    return 0;
}

int bw_part_interval_at(const bw_part *part, int i, const char *name, double out[2],
                        bw_error *err)
{
    int rc = bw_interval(&part->q, bw_cached_levels[i], out);
    if (rc == BW_OK)
        return 0;
    char what[64];
    snprintf(what, sizeof what, "%g%% credible interval", 100 * bw_cached_levels[i]);
    return summary_failed(err, rc, name, what, &part->q);
}

int bw_part_intervals(bw_part *part, const char *name, bw_error *err)
{
    if (bw_intervals(&part->q, bw_cached_levels, BW_NCACHED, part->ci) == BW_OK) {
        part->ci_lazy = 0;          /* all levels from one setup (the same numbers) */
        return 0;
    }
    for (int i = 0; i < BW_NCACHED; i++)    /* which level failed, and why */
        if (bw_part_interval_at(part, i, name, part->ci[i], err) != 0)
            return -1;
    part->ci_lazy = 0;
    return 0;
}

int bw_part_summarise(bw_part *part, const char *name, bw_error *err)
{
    return part_moments(part, name, err) != 0 ? -1 : bw_part_intervals(part, name, err);
}

int bw_quantity_interval(const bw_quantity *q, double level, double out[2], bw_error *err)
{
    int rc = bw_interval(q, level, out);
    if (rc == BW_OK)
        return 0;
    char what[64], lv[32];
    snprintf(what, sizeof what, "credible interval at level %s", bw_fmt(lv, sizeof lv, level));
    return summary_failed(err, rc, "", what, q);
}

int bw_check_dist(const bw_dist *d, const char *part, const double *stats,
                  const char *const *names, bw_error *err)
{
    static const char *const nig[4] = {"m", "kappa", "alpha", "beta"};
    static const char *const two[2] = {"alpha", "beta"};
    int is_nig = d->kind == BW_KIND_NIG_MEAN || d->kind == BW_KIND_NIG_LNMEAN;
    for (int j = 0; j < (is_nig ? 4 : 2); j++) {
        if (isfinite(d->p[j]))
            continue;
        char text[160] = "", v[32];
        size_t len = 0;
        for (int k = 0; names[k] && len < sizeof text; k++)
            len += (size_t)snprintf(text + len, sizeof text - len, "%s%s = %s", k ? ", " : "",
                                    names[k], bw_fmt(v, sizeof v, stats[k]));
        return bw_fail(err, BW_E_NUMERIC,
                       "updating the prior with the data's statistics (%s) overflows float64: "
                       "the %sposterior's %s is %s; the data are too large, or too far from "
                       "the prior", text, part, is_nig ? nig[j] : two[j],
                       bw_fmt(v, sizeof v, d->p[j]));
    }
    return 0;
}

int bw_conj_single(bw_record *post, const bw_dist *d, const double *stats, int nstats,
                   const char *const *names, bw_error *err)
{
    bw_conj_post *c = bw_conj(post);
    c->nparts = 1;
    c->part[0].q.nfactors = 1;
    c->part[0].q.f[0] = *d;
    c->nstats = nstats;
    memcpy(c->stats, stats, (size_t)nstats * sizeof *stats);
    return bw_check_dist(d, "", stats, names, err);
}

int bw_conj_update(const bw_fit_spec *spec, const double *stats, int nstats, bw_update_fn up,
                   int kind, bw_record *post, bw_error *err)
{
    bw_dist d;
    up(kind, spec->prior, stats, &d);
    return bw_conj_single(post, &d, stats, nstats, spec->family->reducer->stat_names, err);
}

/* The name of part i in messages ("" for a one-part posterior). */
static const char *part_name(const bw_record *post, int i)
{
    return bw_conj(post)->nparts > 1 ? post->family->parts[i] : "";
}

/* The one-factor part whose distribution is d, or NULL. */
static const bw_part *part_of_dist(const bw_conj_post *c, const bw_dist *d)
{
    for (int i = 0; i < c->nparts; i++) {
        const bw_dist *e = &c->part[i].q.f[0];
        if (c->part[i].q.nfactors == 1 && e->kind == d->kind && e->p[0] == d->p[0] &&
            e->p[1] == d->p[1] && e->p[2] == d->p[2] && e->p[3] == d->p[3])
            return &c->part[i];
    }
    return NULL;
}

int bw_conj_summarise(bw_record *post, bw_error *err)
{
    /* The cached intervals (inverse CDFs, most of a fit's work) wait for their first use:
     * many small fits never ask for them, and a compound's user often asks for one part.
     * One-factor parts first: a product of two of them (a compound's revenue) takes its
     * moments from theirs. */
    bw_conj_post *c = bw_conj(post);
    for (int pass = 1; pass <= 2; pass++) {
        for (int i = 0; i < c->nparts; i++) {
            bw_part *p = &c->part[i];
            if ((p->q.nfactors == 2) != (pass == 2))
                continue;
            const bw_part *x = pass == 2 ? part_of_dist(c, &p->q.f[0]) : NULL;
            const bw_part *y = pass == 2 ? part_of_dist(c, &p->q.f[1]) : NULL;
            double m[2] = {x ? x->mean : 0.0, y ? y->mean : 0.0};
            double v[2] = {x ? x->variance : 0.0, y ? y->variance : 0.0};
            if (!(x && y && bw_product_moments(m, v, &p->mean, &p->variance) == BW_OK) &&
                part_moments(p, part_name(post, i), err) != 0)
                return -1;
            p->ci_lazy = 1;
        }
    }
    return 0;
}

int bw_conj_interval95(const bw_record *post, double out[][2], bw_error *err)
{
    const bw_conj_post *c = bw_conj(post);
    for (int i = 0; i < c->nparts; i++) {
        const bw_part *p = &c->part[i];
        if (!p->ci_lazy)
            out[i][0] = p->ci[0][0], out[i][1] = p->ci[0][1];
        else if (bw_part_interval_at(p, 0, part_name(post, i), out[i], err) != 0)
            return -1;
    }
    return 0;
}

/* ======================================================================================== */
/* Description                                                                              */
/* ======================================================================================== */

void bw_write_part(bw_writer *w, const char *key, const bw_part *p, uint64_t cursor)
{
    w->open(w, key, 0);
    w->open(w, "factors", 1);
    for (int i = 0; i < p->q.nfactors; i++) {
        const bw_dist *d = &p->q.f[i];
        w->open(w, NULL, 1);
        w->integer(w, NULL, d->kind);
        for (int j = 0; j < 4; j++)
            w->number(w, NULL, d->p[j]);
        w->close(w);
    }
    w->close(w);
    w->number(w, "mean", p->mean);
    w->number(w, "variance", p->variance);
    if (p->ci_lazy) {
        w->none(w, "intervals");        /* each level on its first use (Core.interval_now) */
    } else {
        w->open(w, "intervals", 1);
        for (int i = 0; i < BW_NCACHED; i++) {
            const double row[3] = {bw_cached_levels[i], p->ci[i][0], p->ci[i][1]};
            bw_write_numbers(w, NULL, row, 3);
        }
        w->close(w);
    }
    w->count(w, "cursor", cursor);
    w->close(w);
}

void bw_conj_describe(const bw_record *post, bw_writer *w)
{
    const bw_conj_post *c = bw_conj(post);
    w->open(w, "parts", 1);
    for (int i = 0; i < c->nparts; i++)
        bw_write_part(w, NULL, &c->part[i], post->cursor[i]);
    w->close(w);
    w->none(w, "mixture");
    bw_write_numbers(w, "stats", c->stats, (size_t)c->nstats);
}

/* ======================================================================================== */
/* Draws and intervals                                                                      */
/* ======================================================================================== */

static const bw_part *part_of(const bw_record *post, int part)
{
    const bw_conj_post *c = bw_conj(post);
    return part >= 0 && part < c->nparts && c->part[part].q.nfactors > 0 ? &c->part[part] : NULL;
}

size_t bw_conj_draw_width(const bw_record *post, int part) { return part_of(post, part) ? 1 : 0; }

int bw_conj_stream_of(const bw_record *post, int part) { return part_of(post, part) ? part : -1; }

void bw_conj_draw(const bw_record *post, int part, uint64_t key, uint64_t start, size_t n,
                  double *out)
{
    bw_sample(&part_of(post, part)->q, (bw_stream){key, (uint32_t)part}, start, n, out);
}

int bw_conj_interval(const bw_record *post, int part, uint64_t key, double level,
                     double out[2], double se[2], bw_error *err)
{
    (void)key;
    const bw_part *p = part_of(post, part);
    if (!p)
        return bw_fail(err, BW_E_DOMAIN, "a %s posterior has no part %d", post->family->name,
                       part);
    se[0] = se[1] = 0;
    return bw_quantity_interval(&p->q, level, out, err);
}
