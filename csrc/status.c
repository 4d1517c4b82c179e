/*
 * status.c -- statuses, value rules and their messages.
 */
#include "bw_status.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const bw_status_names[BW_NSTATUS] = {
    "ok", "bad argument", "numerical failure", "out of memory", "value refused",
    "cancelled", "timeout", "not found",
};

const char *const bw_rule_names[BW_NRULES] = {
    "", "finite", "positive", "nonnegative", "integer", "some_positive", "bounded",
};

int bw_fail(bw_error *e, int status, const char *fmt, ...)
{
    memset(e, 0, sizeof *e);
    e->status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return -1;
}

void bw_error_at(bw_error *e, size_t index, double value)
{
    e->has_index = 1;
    e->index = (double)index;
    e->value = value;
}

const char *bw_fmt(char *buf, size_t len, double x)
{
    if (isnan(x)) {
        snprintf(buf, len, "nan");
        return buf;
    }
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, len, "%.*g", p, x);
        if (strtod(buf, NULL) == x)
            break;
    }
    return buf;
}

int bw_fail_value(bw_error *e, int rule, size_t index, double value, double bound)
{
    static const char *const what[BW_NRULES] = {
        "is invalid", "is not finite", "is not positive (the model takes its log)",
        "is negative", "is not a whole number", "", "exceeds the bound",
    };
    char v[32], b[32];
    if (rule == BW_RULE_SOME_POSITIVE)
        bw_fail(e, BW_E_VALUE, "all %zu values are 0; at least one must be positive", index);
    else if (rule == BW_RULE_BOUNDED)
        bw_fail(e, BW_E_VALUE, "value at index %zu = %s exceeds %s in magnitude", index,
                bw_fmt(v, sizeof v, value), bw_fmt(b, sizeof b, bound));
    else
        bw_fail(e, BW_E_VALUE, "value at index %zu = %s %s", index, bw_fmt(v, sizeof v, value),
                what[rule > 0 && rule < BW_NRULES ? rule : 0]);
    e->rule = rule;
    bw_error_at(e, index, value);
    return -1;
}
