/*
 * reduce.c -- the reducers of raw values: checks against the value rules and block
 * statistics at memory speed, with the same bits on every machine (eight fixed
 * accumulators, lane i % 8, whatever the vector width, combined in a fixed tree; blocks
 * merged in block order).
 */
#include <float.h>
#include <math.h>

#include "bw_dist.h"
#include "family.h"

/* ======================================================================================== */
/* Checks                                                                                   */
/* ======================================================================================== */

/* The rule sets of raw values. */
enum { MODE_FINITE, MODE_POSITIVE, MODE_NONNEGATIVE, MODE_COUNTS };

/* Does x break the mode's rules?  0 if not, else its enum bw_value_rule. */
static int broken_rule(double x, int mode)
{
    if (!isfinite(x))
        return BW_RULE_FINITE;
    if (mode == MODE_POSITIVE && !(x > 0))
        return BW_RULE_POSITIVE;
    if ((mode == MODE_NONNEGATIVE || mode == MODE_COUNTS) && !(x >= 0))
        return BW_RULE_NONNEGATIVE;
    if (mode == MODE_COUNTS && x != floor(x))
        return BW_RULE_INTEGER;
    return 0;
}

/* Index of the first value of x[0 .. m) that breaks the mode's rules, or m. */
static size_t first_invalid(const double *x, size_t m, int mode, int *rule)
{
    /* A branch-free pass finds out whether anything is wrong; the rare bad chunk is
     * scanned again to name the first offender. */
    for (size_t off = 0; off < m; off += BW_REDUCE_CHUNK) {
        size_t k = m - off < BW_REDUCE_CHUNK ? m - off : BW_REDUCE_CHUNK;
        const double *v = x + off;
        int bad = 0;
        switch (mode) {
        case MODE_POSITIVE:
            for (size_t i = 0; i < k; i++)
                bad |= !(v[i] > 0 && v[i] <= DBL_MAX);
            break;
        case MODE_NONNEGATIVE:
            for (size_t i = 0; i < k; i++)
                bad |= !(v[i] >= 0 && v[i] <= DBL_MAX);
            break;
        case MODE_COUNTS:
            for (size_t i = 0; i < k; i++)
                bad |= !(v[i] >= 0 && v[i] <= DBL_MAX && v[i] == floor(v[i]));
            break;
        default:
            for (size_t i = 0; i < k; i++)
                bad |= !(v[i] - v[i] == 0);     /* false for NaN and the infinities */
            break;
        }
        if (bad) {
            for (size_t i = 0; i < k; i++) {
                int r = broken_rule(v[i], mode);
                if (r) {
                    *rule = r;
                    return off + i;
                }
            }
        }
    }
    return m;
}

static size_t check_finite(const double *x, size_t m, int *rule)
{
    return first_invalid(x, m, MODE_FINITE, rule);
}

static size_t check_positive(const double *x, size_t m, int *rule)
{
    return first_invalid(x, m, MODE_POSITIVE, rule);
}

static size_t check_nonnegative(const double *x, size_t m, int *rule)
{
    return first_invalid(x, m, MODE_NONNEGATIVE, rule);
}

static size_t check_counts(const double *x, size_t m, int *rule)
{
    return first_invalid(x, m, MODE_COUNTS, rule);
}

/* ======================================================================================== */
/* Sums and moments                                                                         */
/* ======================================================================================== */

static double tree8(const double a[8])
{
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

static double sum8(const double *v, size_t m)
{
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t i = 0;
    for (; i + 8 <= m; i += 8)
        for (int l = 0; l < 8; l++)
            acc[l] += v[i + l];
    for (; i < m; i++)
        acc[i & 7] += v[i];
    return tree8(acc);
}

/* Sum of (v - c) and of (v - c)^2. */
static void dev8(const double *v, size_t m, double c, double *d1, double *d2)
{
    double a1[8] = {0, 0, 0, 0, 0, 0, 0, 0}, a2[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t i = 0;
    for (; i + 8 <= m; i += 8)
        for (int l = 0; l < 8; l++) {
            double d = v[i + l] - c;
            a1[l] += d;
            a2[l] += d * d;
        }
    for (; i < m; i++) {
        double d = v[i] - c;
        a1[i & 7] += d;
        a2[i & 7] += d * d;
    }
    *d1 = tree8(a1);
    *d2 = tree8(a2);
}

/* Chan et al.'s pairwise update of (count, mean, m2) by another group. */
static void merge_moments(double *n, double *mean, double *m2, double nb, double meanb,
                          double m2b)
{
    if (nb == 0)
        return;
    double nn = *n + nb;
    double delta = meanb - *mean;
    *mean += delta * (nb / nn);
    *m2 += m2b + delta * delta * (*n * nb / nn);
    *n = nn;
}

/* (count, mean, m2) of x[0..n), or of log x, by chunks of BW_REDUCE_CHUNK with a two-pass
 * mean/deviation per chunk merged in order: accurate and deterministic. */
static void block_moments(const double *x, size_t n, int logs, double out[3])
{
    double cnt = 0, mean = 0, m2 = 0;
    double buf[BW_REDUCE_CHUNK];
    for (size_t off = 0; off < n; off += BW_REDUCE_CHUNK) {
        size_t m = n - off < BW_REDUCE_CHUNK ? n - off : BW_REDUCE_CHUNK;
        const double *v = x + off;
        if (logs) {
            bw_log_array(v, buf, m);
            v = buf;
        }
        double cm = sum8(v, m) / (double)m;
        double d1, d2;
        dev8(v, m, cm, &d1, &d2);
        /* correct the mean by the residual sum (compensates rounding in the first sum) */
        cm += d1 / (double)m;
        d2 -= d1 * d1 / (double)m;
        if (d2 < 0)
            d2 = 0;
        merge_moments(&cnt, &mean, &m2, (double)m, cm, d2);
    }
    out[0] = cnt;
    out[1] = mean;
    out[2] = m2;
}

static void moments_block(const double *x, size_t m, double *acc) { block_moments(x, m, 0, acc); }

static void log_moments_block(const double *x, size_t m, double *acc)
{
    block_moments(x, m, 1, acc);
}

static void moments_merge(double *t, const double *acc)
{
    merge_moments(&t[0], &t[1], &t[2], acc[0], acc[1], acc[2]);
}

static void sum_block(const double *x, size_t m, double *acc)
{
    acc[0] = (double)m;
    acc[1] = sum8(x, m);
}

static void sum_merge(double *t, const double *acc)
{
    t[0] += acc[0];
    t[1] += acc[1];
}

/* ======================================================================================== */
/* Overflow: name the first value responsible                                               */
/* ======================================================================================== */

/* The statistics overflowed float64 (which = 1: the sum, hence the mean; which = 2: the
 * sum of squared deviations): fill err naming the first value at which a serial pass (a
 * running sum, or Welford's running mean and sum of squared deviations, of the values or
 * their logs) stops being finite.  Only ever run on that failure. */
static int overflow_failed(bw_error *err, const double *x, size_t n, int logs, int which)
{
    double cnt = 0, mean = 0, m2 = 0, sum = 0;
    size_t i = 0;
    int found = 0;
    for (; i < n && !found; i++) {
        double v = logs ? log(x[i]) : x[i];
        if (which == 1) {
            sum += v;
            found = !isfinite(sum);
        } else {
            cnt += 1;
            double d = v - mean;
            mean += d / cnt;
            m2 += d * (v - mean);
            found = !isfinite(m2);
        }
    }
    const char *what = which == 1 ? "sum" : "sum of squared deviations";
    const char *of = logs ? "the values' logs" : "the values";
    const char *from = which == 1 ? "" : " from their mean";
    if (!found)             /* not reproduced serially: name no value */
        return bw_fail(err, BW_E_NUMERIC, "the %s of %s%s overflows float64; rescale the "
                       "values", what, of, from);
    char v[32];
    i--;
    bw_fail(err, BW_E_NUMERIC,
            "the %s of %s%s overflows float64 at the value at index %zu = %s%s; rescale the "
            "values", what, of, from, i, bw_fmt(v, sizeof v, x[i]),
            which == 2 ? " (values this far apart cannot be fitted)" : "");
    bw_error_at(err, i, x[i]);
    return -1;
}

static int moments_overflowed(const double *t, const double *x, size_t n, bw_error *err)
{
    if (isfinite(t[1]) && isfinite(t[2]))
        return 0;
    return overflow_failed(err, x, n, 0, isfinite(t[1]) ? 2 : 1);
}

static int log_moments_overflowed(const double *t, const double *x, size_t n, bw_error *err)
{
    if (isfinite(t[1]) && isfinite(t[2]))
        return 0;
    return overflow_failed(err, x, n, 1, isfinite(t[1]) ? 2 : 1);
}

static int sum_overflowed(const double *t, const double *x, size_t n, bw_error *err)
{
    return isfinite(t[1]) ? 0 : overflow_failed(err, x, n, 0, 1);
}

/* ======================================================================================== */
/* The reducers                                                                             */
/* ======================================================================================== */

static const char *const moment_names[] = {"n", "mean", "m2", NULL};
static const char *const log_moment_names[] = {"n", "log mean", "log m2", NULL};
static const char *const sum_names[] = {"n", "sum", NULL};
static const char *const no_names[] = {NULL};

const bw_reducer bw_reduce_moments = {3, moment_names, check_finite, moments_block,
                                      moments_merge, moments_overflowed};
const bw_reducer bw_reduce_log_moments = {3, log_moment_names, check_positive,
                                          log_moments_block, moments_merge,
                                          log_moments_overflowed};
const bw_reducer bw_reduce_sum = {2, sum_names, check_nonnegative, sum_block, sum_merge,
                                  sum_overflowed};
const bw_reducer bw_reduce_counts = {2, sum_names, check_counts, sum_block, sum_merge,
                                     sum_overflowed};
const bw_reducer bw_check_counts = {0, no_names, check_counts, NULL, NULL, NULL};
