/*
 * bw_status.h -- the one set of statuses of the C core, its value rules and its error
 * record.  Pure C, no Python.h.
 *
 * Every function of the core that can fail returns an enum bw_status, or fills a bw_error
 * (a status, a human message and, for a refused input value, which rule it broke, where and
 * what it was).  The binding turns a bw_error into a Python exception in one function
 * (module.c, error_exception); no message contains a status number.
 */
#ifndef BW_STATUS_H
#define BW_STATUS_H

#include <stddef.h>

enum bw_status {
    BW_OK = 0,
    BW_E_DOMAIN = 1,        /* a bad argument: a parameter, level, part or size outside its
                             * domain */
    BW_E_NUMERIC = 2,       /* a numerical failure: a sum overflowed float64, a root finder
                             * or a quadrature did not reach its tolerance */
    BW_E_NOMEM = 3,         /* out of memory */
    BW_E_VALUE = 4,         /* an input value broke its model's value rule */
    BW_E_CANCELLED = 5,     /* the job was cancelled */
    BW_E_TIMEOUT = 6,       /* the job used up its execution time */
    BW_E_NOT_FOUND = 7,     /* the posterior is not in the store */
};
#define BW_NSTATUS 8

/* Why an input value was refused (bw_error.rule). */
enum bw_value_rule {
    BW_RULE_NONE = 0,
    BW_RULE_FINITE = 1,         /* NaN or an infinity */
    BW_RULE_POSITIVE = 2,       /* <= 0 where logs are taken */
    BW_RULE_NONNEGATIVE = 3,    /* < 0 for counts and waiting times */
    BW_RULE_INTEGER = 4,        /* not a whole number where counts are expected */
    BW_RULE_SOME_POSITIVE = 5,  /* every value 0 where one must be positive (index: how many) */
    BW_RULE_BOUNDED = 6,        /* |x| above a model's bound (mixtures: BW_MIX_MAX_ABS_X) */
};
#define BW_NRULES 7

/* Names, as exported to Python: bw_status_names[s] ("ok", "bad argument", ...) and
 * bw_rule_names[r] ("", "finite", "positive", "nonnegative", "integer", "some_positive",
 * "bounded"). */
extern const char *const bw_status_names[BW_NSTATUS];
extern const char *const bw_rule_names[BW_NRULES];

typedef struct {
    int status;                 /* enum bw_status; BW_OK: no error */
    int rule;                   /* BW_E_VALUE: the enum bw_value_rule broken */
    int has_index;              /* index and value name one input value (BW_E_VALUE, and a
                                 * BW_E_NUMERIC overflow caused by a value) */
    double index, value;
    char msg[320];              /* a sentence for a user, without status numbers */
} bw_error;

/* Fill e with status and a printf-style message; returns -1 (so `return bw_fail(...)`). */
int bw_fail(bw_error *e, int status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* A refused value: BW_E_VALUE with the rule's sentence, e.g.
 * "value at index 3 = nan is not finite"; for BW_RULE_SOME_POSITIVE index is the number of
 * values ("all 12 values are 0; ...").  `bound` is the bound of BW_RULE_BOUNDED.
 * Returns -1. */
int bw_fail_value(bw_error *e, int rule, size_t index, double value, double bound);

/* Attach the input value at `index` to an error (an overflow it caused). */
void bw_error_at(bw_error *e, size_t index, double value);

/* x in its shortest round-trip form ("0.95", "1e+200", "nan"); buf of at least 32 bytes. */
const char *bw_fmt(char *buf, size_t len, double x);

#endif /* BW_STATUS_H */
