/*
 * stress_core.c -- a standalone stress test of the worker pool, the completion channels and
 * the posterior store (csrc/pool.c, csrc/store.c), meant to run under ThreadSanitizer and
 * under AddressSanitizer + UBSan.  It links nothing else of the core: the jobs here are its
 * own trivial blocks and finish steps.
 *
 *     stress_core [--seed N] [--scale X] [scenario ...]
 *
 * With no scenario it runs the default set: pool, fail, free, inline, store, timeout.  Scenarios whose
 * names start with "bug_" reproduce defects found in pool.c; they are run one by one (see
 * tests/c/test_tsan.py) and fail until the defect is fixed.  "hazard_errmsg_race" is opt-in
 * only (it demonstrates a hazard of the block contract, not a defect of the current callers).
 *
 * Every check that fails prints "FAIL [scenario] ..." to stderr; the exit status is 0 only if
 * none did.  A watchdog ends the program with status 3 if a scenario overruns its deadline
 * (a deadlock or a lost wake-up), printing which one.
 *
 * Build (see test_tsan.py):
 *   cc -std=c11 -O1 -g -fsanitize=thread -D_GNU_SOURCE -Icsrc -DSTRESS_WRAP_WRITE
 *      tests/c/stress_core.c csrc/pool.c csrc/store.c csrc/status.c -Wl,--wrap=write
 *      -lpthread -lm
 * STRESS_WRAP_WRITE (with -Wl,--wrap=write) lets bug_stale_wakeup hold a completion's write
 * to the channel's fd at a chosen moment; without it that scenario reports itself skipped.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pool.h"
#include "store.h"

/* ======================================================================================== */
/* Reporting, randomness, time, the watchdog                                                */
/* ======================================================================================== */

static atomic_int g_nfail;
static _Atomic(const char *) g_phase = "init";
static uint64_t g_seed = 20240611;
static double g_scale = 1.0;

static void failf(const char *fmt, ...)
{
    int k = atomic_fetch_add(&g_nfail, 1);
    if (k >= 40) {
        if (k == 40)
            fprintf(stderr, "FAIL: (further failures not printed)\n");
        return;
    }
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "FAIL [%s] %s\n", atomic_load(&g_phase), msg);
}

#define CHECK(cond, ...)                                                                     \
    do {                                                                                     \
        if (!(cond))                                                                         \
            failf(__VA_ARGS__);                                                              \
    } while (0)

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static unsigned rnd(uint64_t *s, unsigned n) { return (unsigned)(splitmix(s) % n); }

static void sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static int scaled(int n)
{
    int v = (int)(n * g_scale);
    return v < 1 ? 1 : v;
}

static atomic_llong g_deadline_ms;      /* 0: none */
static atomic_int g_watchdog_stop;

static long long now_ms(void) { return (long long)(bw_monotonic() * 1000.0); }

static void *watchdog_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&g_watchdog_stop)) {
        long long d = atomic_load(&g_deadline_ms);
        if (d && now_ms() > d) {
            fprintf(stderr, "FAIL [%s] watchdog: the scenario overran its deadline "
                            "(deadlock, lost wake-up or hang); aborting\n",
                    atomic_load(&g_phase));
            fflush(stderr);
            _exit(3);
        }
        sleep_us(20000);
    }
    return NULL;
}

static void phase(const char *name, int seconds)
{
    atomic_store(&g_phase, name);
    atomic_store(&g_deadline_ms, seconds > 0 ? now_ms() + 1000LL * seconds : 0);
}

static void start_thread(pthread_t *t, void *(*fn)(void *), void *arg)
{
    int rc = pthread_create(t, NULL, fn, arg);
    if (rc != 0) {
        fprintf(stderr, "FAIL: pthread_create: %s\n", strerror(rc));
        _exit(2);
    }
}

/* Wait (bounded) until *flag becomes nonzero; returns 1 if it did. */
static int await_flag(atomic_int *flag, double seconds)
{
    double end = bw_monotonic() + seconds;
    while (!atomic_load(flag)) {
        if (bw_monotonic() > end)
            return 0;
        sleep_us(200);
    }
    return 1;
}

static int fd_readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 0) > 0 && (p.revents & POLLIN);
}

/* ======================================================================================== */
/* An optional gate on write(2) to one fd (pool.c's write is wrapped with --wrap=write)     */
/* ======================================================================================== */

static atomic_int g_gate_fd = -1;       /* the fd whose next write is held */
static atomic_int g_gate_arrived, g_gate_release, g_gate_written;

#ifdef STRESS_WRAP_WRITE
ssize_t __real_write(int fd, const void *buf, size_t n);
ssize_t __wrap_write(int fd, const void *buf, size_t n);

ssize_t __wrap_write(int fd, const void *buf, size_t n)
{
    int armed = atomic_load(&g_gate_fd);
    if (armed >= 0 && fd == armed && atomic_compare_exchange_strong(&g_gate_fd, &armed, -1)) {
        atomic_store(&g_gate_arrived, 1);
        await_flag(&g_gate_release, 10.0);
        ssize_t r = __real_write(fd, buf, n);
        atomic_store(&g_gate_written, 1);
        return r;
    }
    return __real_write(fd, buf, n);
}
#define HAVE_WRITE_GATE 1
#else
#define HAVE_WRITE_GATE 0
#endif

/* ======================================================================================== */
/* Test jobs: a context with per-block hit counters and an output buffer                    */
/* ======================================================================================== */

#define CTX_MAGIC 0x5EEDC0DEF00DBA11ull
#define CTX_DEAD 0xDEADDEADDEADDEADull
#define WORDS 8                         /* output doubles per block */

static atomic_long g_ctx_made, g_ctx_freed;

typedef struct {
    uint64_t magic;
    size_t nblocks;
    uint64_t salt;
    unsigned spin;                      /* busy work per block (LCG steps) */
    long sleep_us;                      /* or a sleep per block */
    int fail_block;                     /* the block that fails, or -1 ... */
    int fail_phase;                     /* ... in this phase (0: the first) */
    int fail_finish;                    /* the finish step number (1, 2, ..) that fails */
    int phases;                         /* phases to run (finish returns BW_JOB_AGAIN) */
    int phases_done;                    /* finish steps that succeeded (finish only) */
    int vary_nblocks;                   /* each new phase has 1..cap blocks */
    int rewrite_nblocks;                /* each new phase stores job->nblocks (unchanged) */
    size_t cap;                         /* blocks the buffers hold */
    atomic_int in_finish;
    int cancel_in_block;                /* the block that cancels its own job, or -1 */
    int gate_block;                     /* the block that waits for *gate, or -1 */
    atomic_int *gate;
    atomic_int *gate_entered;           /* set when gate_block is entered */
    int after_gate_block;               /* waits for *gate_entered first, or -1 */
    int fail_all;                       /* every block fails */
    atomic_int *rendezvous;             /* blocks wait until rendezvous_n have arrived */
    int rendezvous_n;
    int check_order;                    /* inline pools: blocks must run in order */
    atomic_int *hits;
    double *out;
    atomic_int finish_runs;
    atomic_long last_block;
} tctx;

static double expect_word(const tctx *c, size_t b, int i)
{
    return (double)((c->salt ^ (uint64_t)(b * WORDS + (size_t)i)) & 0xFFFFFu);
}

static tctx *tctx_new(size_t nblocks, uint64_t salt)
{
    tctx *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    size_t nb = nblocks ? nblocks : 1;
    c->hits = calloc(nb, sizeof *c->hits);
    c->out = calloc(nb * WORDS, sizeof *c->out);
    if (!c->hits || !c->out) {
        free(c->hits);
        free(c->out);
        free(c);
        return NULL;
    }
    for (size_t b = 0; b < nb; b++)
        atomic_init(&c->hits[b], 0);
    c->magic = CTX_MAGIC;
    c->nblocks = nblocks;
    c->cap = nb;
    c->phases = 1;
    atomic_init(&c->in_finish, 0);
    c->salt = salt;
    c->fail_block = -1;
    c->cancel_in_block = -1;
    c->gate_block = -1;
    c->after_gate_block = -1;
    atomic_init(&c->finish_runs, 0);
    atomic_init(&c->last_block, -1);
    atomic_fetch_add(&g_ctx_made, 1);
    return c;
}

static void tctx_free(void *p)
{
    tctx *c = p;
    if (c->magic != CTX_MAGIC) {
        failf("ctx_free on a context that is not live (magic %#" PRIx64 "): double free?",
              c->magic);
        return;
    }
    c->magic = CTX_DEAD;
    free(c->hits);
    free(c->out);
    free(c);
    atomic_fetch_add(&g_ctx_freed, 1);
}

static int t_block(bw_job *job, size_t b)
{
    tctx *c = job->ctx;
    if (!c || c->magic != CTX_MAGIC) {
        failf("block %zu ran with a dead or foreign context", b);
        return 0;
    }
    if (b >= c->nblocks) {
        failf("block %zu out of range (nblocks %zu)", b, c->nblocks);
        return 0;
    }
    if (atomic_load(&c->in_finish))
        failf("block %zu of job %" PRIu64 " ran while its finish step ran", b, job->id);
    if (bw_job_finished(job))
        failf("block %zu of job %" PRIu64 " ran after the job finished", b, job->id);
    if (atomic_fetch_add(&c->hits[b], 1) != 0)
        failf("block %zu of job %" PRIu64 " ran more than once", b, job->id);
    if (c->check_order) {
        long prev = atomic_exchange(&c->last_block, (long)b);
        if (prev != (long)b - 1)
            failf("inline pool ran block %zu after block %ld (not in order)", b, prev);
    }
    if ((int)b == c->gate_block) {
        atomic_store(c->gate_entered, 1);
        if (!await_flag(c->gate, 10.0))
            failf("block %zu: its gate was never opened", b);
    }
    if ((int)b == c->after_gate_block && !await_flag(c->gate_entered, 10.0))
        failf("block %zu: the gated block was never entered", b);
    if (c->rendezvous) {
        atomic_fetch_add(c->rendezvous, 1);
        double end = bw_monotonic() + 10.0;
        while (atomic_load(c->rendezvous) < c->rendezvous_n && bw_monotonic() < end)
            sched_yield();
    }
    uint64_t x = c->salt + b;
    for (unsigned i = 0; i < c->spin; i++)
        x = x * 6364136223846793005ull + 1442695040888963407ull;
    __asm__ __volatile__("" : : "r"(x));
    if (c->sleep_us)
        sleep_us(c->sleep_us);
    for (int i = 0; i < WORDS; i++)
        c->out[b * WORDS + (size_t)i] = expect_word(c, b, i);
    if ((int)b == c->cancel_in_block)
        bw_job_cancel(job);
    if (((int)b == c->fail_block && c->phases_done == c->fail_phase) || c->fail_all) {
        bw_fail(&job->err, BW_E_NUMERIC, "block %zu failed on purpose", b);
        return 1;
    }
    return 0;
}

static double ctx_checksum(const tctx *c)
{
    double s = 0;
    for (size_t b = 0; b < c->nblocks; b++)
        for (int i = 0; i < WORDS; i++)
            s += expect_word(c, b, i);
    return s;
}

static int t_finish(bw_job *job)
{
    tctx *c = job->ctx;
    if (!c || c->magic != CTX_MAGIC) {
        failf("finish ran with a dead or foreign context");
        return 0;
    }
    if (atomic_exchange(&c->in_finish, 1))
        failf("two finish steps of job %" PRIu64 " ran at once", job->id);
    int run = atomic_fetch_add(&c->finish_runs, 1);
    if (run != c->phases_done)
        failf("finish of job %" PRIu64 " ran again after a failure (run %d, %d phases done)",
              job->id, run + 1, c->phases_done);
    if (run >= c->phases)
        failf("finish of job %" PRIu64 " ran %d times for %d phases", job->id, run + 1,
              c->phases);
    if (job->phase != (size_t)c->phases_done)
        failf("job %" PRIu64 ": job->phase is %zu at finish step %d", job->id, job->phase,
              c->phases_done + 1);
    if (bw_job_finished(job))
        failf("finish of job %" PRIu64 " ran after the job was marked finished", job->id);
    double s = 0;
    for (size_t b = 0; b < c->nblocks; b++) {
        int h = atomic_load(&c->hits[b]);
        if (h != 1)
            failf("finish of job %" PRIu64 ": block %zu ran %d times", job->id, b, h);
        for (int i = 0; i < WORDS; i++) {
            double v = c->out[b * WORDS + (size_t)i];
            if (v != expect_word(c, b, i))
                failf("finish of job %" PRIu64 ": block %zu word %d is %g, expected %g",
                      job->id, b, i, v, expect_word(c, b, i));
            s += v;
        }
    }
    if (c->fail_finish == c->phases_done + 1) {
        bw_fail(&job->err, BW_E_DOMAIN, "finish failed on purpose");
        atomic_store(&c->in_finish, 0);
        return -1;
    }
    c->phases_done++;
    if (c->phases_done < c->phases) {
        /* Another phase: fresh counters, new expected words, maybe another block count. */
        c->salt = c->salt * 6364136223846793005ull + 1442695040888963407ull;
        if (c->vary_nblocks) {
            c->nblocks = 1 + (size_t)((c->salt >> 33) % c->cap);
            job->nblocks = c->nblocks;
        } else if (c->rewrite_nblocks) {
            job->nblocks = c->nblocks;
        }
        if (c->rendezvous)
            atomic_store(c->rendezvous, 0);
        for (size_t b = 0; b < c->cap; b++)
            atomic_store(&c->hits[b], 0);
        atomic_store(&c->last_block, -1);
        atomic_store(&c->in_finish, 0);
        return BW_JOB_AGAIN;
    }
    job->result[0] = (double)c->nblocks;
    job->result[1] = s;
    job->result_id = c->salt;
    atomic_store(&c->in_finish, 0);
    return 0;
}

static bw_job *new_test_job(size_t nblocks, uint64_t salt, tctx **ctx_out)
{
    tctx *c = tctx_new(nblocks, salt);
    if (!c) {
        fprintf(stderr, "FAIL: out of memory\n");
        _exit(2);
    }
    bw_job *job = bw_job_new(nblocks, t_block, t_finish, c, tctx_free);
    if (!job) {
        fprintf(stderr, "FAIL: bw_job_new returned NULL\n");
        _exit(2);
    }
    if (ctx_out)
        *ctx_out = c;
    return job;
}

static const char *status_name(int s)
{
    static const char *const names[] = {"PENDING", "OK", "CANCELLED", "FAILED", "TIMEOUT"};
    return s >= 0 && s <= 4 ? names[s] : "?";
}

/* The checks every finished job must pass.  may_cancel: CANCELLED is acceptable. */
static void check_job_outcome(bw_job *job, const tctx *c, int expect_status, int may_cancel)
{
    int st = atomic_load(&job->status);
    int finish_runs = atomic_load(&((tctx *)c)->finish_runs);
    if (st == BW_JOB_PENDING) {
        failf("job %" PRIu64 " is still PENDING", job->id);
        return;
    }
    if (st != expect_status && !(may_cancel && st == BW_JOB_CANCELLED))
        failf("job %" PRIu64 " ended %s, expected %s%s", job->id, status_name(st),
              status_name(expect_status), may_cancel ? " or CANCELLED" : "");
    for (size_t b = 0; b < c->nblocks; b++) {
        int h = atomic_load(&c->hits[b]);
        if (h > 1 || (st == BW_JOB_OK && h != 1))
            failf("job %" PRIu64 " (%s): block %zu ran %d times", job->id, status_name(st), b,
                  h);
    }
    if (st == BW_JOB_OK) {
        if (finish_runs != c->phases || c->phases_done != c->phases)
            failf("OK job %" PRIu64 ": finish ran %d times (%d succeeded) for %d phases",
                  job->id, finish_runs, c->phases_done, c->phases);
        if (job->phase != (size_t)c->phases)
            failf("OK job %" PRIu64 ": job->phase is %zu after %d phases", job->id,
                  job->phase, c->phases);
        if (job->result[0] != (double)c->nblocks || job->result[1] != ctx_checksum(c))
            failf("OK job %" PRIu64 ": result (%g, %g) is not (%zu, %g)", job->id,
                  job->result[0], job->result[1], c->nblocks, ctx_checksum(c));
    } else if (st == BW_JOB_CANCELLED) {
        if (finish_runs >= c->phases || finish_runs != c->phases_done)
            failf("CANCELLED job %" PRIu64 ": finish ran %d times (%d phases)", job->id,
                  finish_runs, c->phases);
    }
}

/* ======================================================================================== */
/* Scenario pool (and inline): submitters, drainers, cancels, waits                         */
/* ======================================================================================== */

#define MAXCHAN 2

typedef struct {
    bw_job *job;
    tctx *ctx;
    int chan;                           /* channel index, or -1 (waited on instead) */
    int pre_cancel;                     /* cancelled before submit: must end CANCELLED */
    int mid_cancel;
} job_rec;

typedef struct prun prun;

typedef struct {
    prun *run;
    int index;
    bw_channel *ch;
    atomic_long drained;
    atomic_long expected;               /* -1 until the submitters are done */
    atomic_llong give_up_ms;            /* stop waiting for missing jobs after this */
    long spurious;                      /* readable, yet nothing drained */
    long polls;
    uint64_t seed;
} drainer;

typedef struct {
    prun *run;
    int index;
    uint64_t seed;
    job_rec *recs;
    int njobs;
    long waits_timed_out;
    double max_overshoot;
} submitter;

struct prun {
    bw_pool *pool;
    int nthreads;
    uint64_t maxid;
    atomic_int *drain_count;            /* by job id */
    atomic_int *drain_chan;             /* by job id: channel index + 1 */
    _Atomic(bw_job *) *by_id;
    drainer dr[MAXCHAN];
    atomic_int stop_chaos;
    long cancel_alls;
};

static void drain_once(drainer *d, size_t cap, long *got)
{
    uint64_t ids[16];
    size_t n;
    do {
        n = bw_channel_drain(d->ch, ids, cap);
        for (size_t i = 0; i < n; i++) {
            uint64_t id = ids[i];
            if (id == 0 || id > d->run->maxid) {
                failf("channel %d drained an unknown job id %" PRIu64, d->index, id);
                continue;
            }
            if (atomic_fetch_add(&d->run->drain_count[id], 1) != 0)
                failf("job %" PRIu64 " was drained more than once", id);
            atomic_store(&d->run->drain_chan[id], d->index + 1);
            bw_job *job = atomic_load(&d->run->by_id[id]);
            /* The submitter holds a reference to every job until the drainers are joined. */
            if (job && !bw_job_finished(job))
                failf("job %" PRIu64 " was on its channel before it finished", id);
        }
        *got += (long)n;
        atomic_fetch_add(&d->drained, (long)n);
    } while (n == cap);
}

static void *drainer_main(void *arg)
{
    drainer *d = arg;
    int fd = bw_channel_fd(d->ch);
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, 5);
        if (r < 0 && errno != EINTR)
            failf("poll on channel %d: %s", d->index, strerror(errno));
        d->polls++;
        long got = 0;
        drain_once(d, 1 + rnd(&d->seed, 12), &got);
        if (r > 0 && got == 0)
            d->spurious++;
        long exp = atomic_load(&d->expected);
        if (exp >= 0 && atomic_load(&d->drained) >= exp)
            break;
        if (exp >= 0 && now_ms() > atomic_load(&d->give_up_ms))
            break;                      /* the checks below name the missing jobs */
    }
    return NULL;
}

static void *submitter_main(void *arg)
{
    submitter *s = arg;
    prun *run = s->run;
    int i = 0;
    while (i < s->njobs) {
        int batch = 1 + (int)rnd(&s->seed, 8);
        if (batch > s->njobs - i)
            batch = s->njobs - i;
        for (int k = 0; k < batch; k++) {
            job_rec *r = &s->recs[i + k];
            size_t nblocks = 1 + rnd(&s->seed, 64);
            bw_job *job = new_test_job(nblocks, splitmix(&s->seed), &r->ctx);
            r->ctx->spin = rnd(&s->seed, 48);
            if (rnd(&s->seed, 4) == 0)
                r->ctx->phases = 2 + (int)rnd(&s->seed, 3);
            r->job = job;
            r->chan = rnd(&s->seed, 2) ? (int)rnd(&s->seed, MAXCHAN) : -1;
            r->pre_cancel = rnd(&s->seed, 40) == 0;
            if (r->pre_cancel)
                bw_job_cancel(job);
            bw_pool_submit(run->pool, job, r->chan >= 0 ? run->dr[r->chan].ch : NULL);
            uint64_t id = job->id;
            if (id == 0 || id > run->maxid)
                failf("bw_pool_submit gave id %" PRIu64 " outside 1..%" PRIu64, id,
                      run->maxid);
            else if (atomic_exchange(&run->by_id[id], job) != NULL)
                failf("bw_pool_submit gave id %" PRIu64 " twice", id);
        }
        for (int k = 0; k < batch; k++) {
            job_rec *r = &s->recs[i + k];
            if (rnd(&s->seed, 100) < 15) {
                unsigned d = rnd(&s->seed, 4);
                if (d == 1)
                    sched_yield();
                else if (d >= 2)
                    sleep_us(rnd(&s->seed, 300));
                bw_job_cancel(r->job);
                r->mid_cancel = 1;
            }
        }
        for (int k = 0; k < batch; k++) {
            job_rec *r = &s->recs[i + k];
            if (r->chan >= 0)
                continue;
            unsigned mode = rnd(&s->seed, 3);
            if (mode == 0) {
                if (bw_job_wait(r->job, -1.0) != 1)
                    failf("bw_job_wait(-1) returned without the job finished");
            } else if (mode == 1) {
                double t = 0.0005 * (1 + rnd(&s->seed, 8));
                for (;;) {
                    double t0 = bw_monotonic();
                    int done = bw_job_wait(r->job, t);
                    double over = bw_monotonic() - t0 - t;
                    if (over > s->max_overshoot)
                        s->max_overshoot = over;
                    if (done)
                        break;
                    s->waits_timed_out++;
                    if (bw_monotonic() - t0 < t * 0.5)
                        failf("bw_job_wait(%g) timed out after only %g s", t,
                              bw_monotonic() - t0);
                }
            } else {
                while (!bw_job_wait(r->job, 0.0))
                    sched_yield();
            }
            if (!bw_job_finished(r->job))
                failf("bw_job_wait said finished but bw_job_finished says not");
        }
        i += batch;
    }
    return NULL;
}

static void *chaos_main(void *arg)
{
    prun *run = arg;
    uint64_t seed = g_seed ^ 0xC4A05;
    while (!atomic_load(&run->stop_chaos)) {
        sleep_us(300 + rnd(&seed, 3000));
        if (atomic_load(&run->stop_chaos))
            break;
        if (run->cancel_alls < 4 && rnd(&seed, 4) == 0) {
            bw_pool_cancel_all(run->pool);
            run->cancel_alls++;
        }
        (void)bw_pool_live_jobs(run->pool);
    }
    return NULL;
}

static void scenario_pool_threads(int nthreads)
{
    enum { NSUB = 3 };
    int per = scaled(nthreads == 0 ? 150 : 220);
    prun run;
    memset(&run, 0, sizeof run);
    run.nthreads = nthreads;
    run.pool = bw_pool_new(nthreads);
    if (!run.pool) {
        failf("bw_pool_new(%d) failed: %s", nthreads, strerror(errno));
        return;
    }
    CHECK(bw_pool_threads(run.pool) == nthreads, "bw_pool_threads is %d, not %d",
          bw_pool_threads(run.pool), nthreads);
    run.maxid = (uint64_t)(NSUB * per);
    run.drain_count = calloc(run.maxid + 1, sizeof *run.drain_count);
    run.drain_chan = calloc(run.maxid + 1, sizeof *run.drain_chan);
    run.by_id = calloc(run.maxid + 1, sizeof *run.by_id);
    for (uint64_t i = 0; i <= run.maxid; i++) {
        atomic_init(&run.drain_count[i], 0);
        atomic_init(&run.drain_chan[i], 0);
        atomic_init(&run.by_id[i], NULL);
    }
    long freed0 = atomic_load(&g_ctx_freed), made0 = atomic_load(&g_ctx_made);
    double t0 = bw_monotonic();

    pthread_t dth[MAXCHAN], sth[NSUB], chaos;
    for (int c = 0; c < MAXCHAN; c++) {
        drainer *d = &run.dr[c];
        d->run = &run;
        d->index = c;
        d->ch = bw_channel_new();
        if (!d->ch) {
            fprintf(stderr, "FAIL: bw_channel_new failed\n");
            _exit(2);
        }
        atomic_init(&d->drained, 0);
        atomic_init(&d->expected, -1);
        atomic_init(&d->give_up_ms, 0);
        d->seed = g_seed + 77 * (uint64_t)c + (uint64_t)nthreads;
        start_thread(&dth[c], drainer_main, d);
    }
    submitter subs[NSUB];
    for (int i = 0; i < NSUB; i++) {
        subs[i] = (submitter){.run = &run, .index = i, .njobs = per,
                              .seed = g_seed * 31 + (uint64_t)(i * 1000 + nthreads)};
        subs[i].recs = calloc((size_t)per, sizeof(job_rec));
        start_thread(&sth[i], submitter_main, &subs[i]);
    }
    atomic_init(&run.stop_chaos, 0);
    start_thread(&chaos, chaos_main, &run);

    for (int i = 0; i < NSUB; i++)
        pthread_join(sth[i], NULL);
    atomic_store(&run.stop_chaos, 1);
    pthread_join(chaos, NULL);

    long per_chan[MAXCHAN] = {0};
    for (int i = 0; i < NSUB; i++)
        for (int k = 0; k < per; k++)
            if (subs[i].recs[k].chan >= 0)
                per_chan[subs[i].recs[k].chan]++;
    for (int c = 0; c < MAXCHAN; c++) {
        atomic_store(&run.dr[c].give_up_ms, now_ms() + 20000);
        atomic_store(&run.dr[c].expected, per_chan[c]);
    }
    for (int c = 0; c < MAXCHAN; c++)
        pthread_join(dth[c], NULL);

    long n_ok = 0, n_cancel = 0, n_pre = 0, n_mid = 0, n_blocks = 0, timed_out = 0, n_multi = 0;
    double overshoot = 0;
    for (int i = 0; i < NSUB; i++) {
        timed_out += subs[i].waits_timed_out;
        if (subs[i].max_overshoot > overshoot)
            overshoot = subs[i].max_overshoot;
        for (int k = 0; k < per; k++) {
            job_rec *r = &subs[i].recs[k];
            if (bw_job_wait(r->job, -1.0) != 1)
                failf("final bw_job_wait(-1) returned 0");
            int st = atomic_load(&r->job->status);
            check_job_outcome(r->job, r->ctx, BW_JOB_OK, 1);
            if (r->pre_cancel) {
                n_pre++;
                CHECK(st == BW_JOB_CANCELLED, "job cancelled before submit ended %s",
                      status_name(st));
                for (size_t b = 0; b < r->ctx->nblocks; b++)
                    CHECK(atomic_load(&r->ctx->hits[b]) == 0,
                          "job cancelled before submit ran block %zu", b);
            }
            if (nthreads == 0 && !r->pre_cancel)
                CHECK(st == BW_JOB_OK, "inline job not cancelled before submit ended %s",
                      status_name(st));
            n_mid += r->mid_cancel;
            n_multi += r->ctx->phases > 1;
            n_ok += st == BW_JOB_OK;
            n_cancel += st == BW_JOB_CANCELLED;
            n_blocks += (long)r->ctx->nblocks;
            uint64_t id = r->job->id;
            if (id >= 1 && id <= run.maxid) {
                int dc = atomic_load(&run.drain_count[id]);
                int ch = atomic_load(&run.drain_chan[id]);
                if (r->chan >= 0) {
                    CHECK(dc == 1, "channel job %" PRIu64 " drained %d times", id, dc);
                    CHECK(ch == r->chan + 1, "job %" PRIu64 " of channel %d came out of %d",
                          id, r->chan, ch - 1);
                } else {
                    CHECK(dc == 0, "job %" PRIu64 " without a channel was drained", id);
                }
            }
        }
    }
    size_t live = bw_pool_live_jobs(run.pool);
    CHECK(live == 0, "bw_pool_live_jobs is %zu after every job finished", live);
    CHECK(n_ok > 0, "no job ended OK");
    CHECK(overshoot < 2.0, "a timed bw_job_wait overshot its timeout by %.3f s", overshoot);
    long spurious = 0, polls = 0;
    for (int c = 0; c < MAXCHAN; c++) {
        spurious += run.dr[c].spurious;
        polls += run.dr[c].polls;
        CHECK(atomic_load(&run.dr[c].drained) == per_chan[c],
              "channel %d drained %ld jobs, expected %ld", c, atomic_load(&run.dr[c].drained),
              per_chan[c]);
    }

    bw_pool_free(run.pool);
    for (int i = 0; i < NSUB; i++) {
        for (int k = 0; k < per; k++)
            bw_job_decref(subs[i].recs[k].job);
        free(subs[i].recs);
    }
    long made = atomic_load(&g_ctx_made) - made0, freed = atomic_load(&g_ctx_freed) - freed0;
    CHECK(made == NSUB * per && freed == made,
          "%ld contexts made, %ld freed after the pool and every reference went", made, freed);
    for (int c = 0; c < MAXCHAN; c++)
        bw_channel_decref(run.dr[c].ch);
    free(run.drain_count);
    free(run.drain_chan);
    free(run.by_id);
    printf("  pool threads=%d: %d jobs (%ld with 2-4 phases; %ld blocks in first phases), ok=%ld "
           "cancelled=%ld "
           "(pre-submit %ld, mid-flight cancels %ld, cancel_all x%ld), timed waits that "
           "timed out %ld, max overshoot %.1f ms, drainer polls %ld (readable but empty %ld), "
           "%.2f s\n",
           nthreads, NSUB * per, n_multi, n_blocks, n_ok, n_cancel, n_pre, n_mid, run.cancel_alls,
           timed_out, overshoot * 1e3, polls, spurious, bw_monotonic() - t0);
}

static void scenario_pool(void)
{
    int counts[] = {1, 2, 4};
    for (int i = 0; i < 3; i++)
        scenario_pool_threads(counts[i]);
}

/* ======================================================================================== */
/* Scenario fail: a failing block or finish ends FAILED; finish does not run                */
/* ======================================================================================== */

static void run_failing(int nthreads, bw_channel *ch)
{
    bw_pool *pool = bw_pool_new(nthreads);
    if (!pool) {
        failf("bw_pool_new(%d) failed", nthreads);
        return;
    }
    uint64_t seed = g_seed ^ (uint64_t)(nthreads * 131 + (ch != NULL));
    enum { N = 40 };
    bw_job *jobs[N];
    tctx *ctxs[N];
    int kind[N];       /* 0: a block fails, 1: finish fails, 2: empty job, finish fails,
                          3: single failing block, 4: OK neighbour; three phases: 5: the
                          second finish fails, 6: a block of the second phase fails, 7: OK */
    for (int i = 0; i < N; i++) {
        kind[i] = (int)rnd(&seed, 8);
        size_t nb = kind[i] == 2 ? 0 : kind[i] == 3 ? 1 : 2 + rnd(&seed, 30);
        jobs[i] = new_test_job(nb, splitmix(&seed), &ctxs[i]);
        ctxs[i]->spin = rnd(&seed, 32);
        if (kind[i] >= 5)
            ctxs[i]->phases = 3;
        if (kind[i] == 0 || kind[i] == 6)
            ctxs[i]->fail_block = (int)rnd(&seed, (unsigned)nb);
        else if (kind[i] == 3)
            ctxs[i]->fail_block = 0;
        else if (kind[i] == 1 || kind[i] == 2)
            ctxs[i]->fail_finish = 1;
        else if (kind[i] == 5)
            ctxs[i]->fail_finish = 2;
        if (kind[i] == 6)
            ctxs[i]->fail_phase = 1;
        bw_pool_submit(pool, jobs[i], ch);
    }
    long drained = 0;
    for (int i = 0; i < N; i++) {
        CHECK(bw_job_wait(jobs[i], -1.0) == 1, "wait on a failing job returned 0");
        int st = atomic_load(&jobs[i]->status);
        tctx *c = ctxs[i];
        int fr = atomic_load(&c->finish_runs);
        if (kind[i] == 0 || kind[i] == 3 || kind[i] == 6) {
            char want[64];
            snprintf(want, sizeof want, "block %d failed on purpose", c->fail_block);
            CHECK(st == BW_JOB_FAILED, "job with failing block %d of %zu ended %s (threads %d)",
                  c->fail_block, c->nblocks, status_name(st), nthreads);
            CHECK(fr == c->fail_phase, "finish ran %d times on a job whose block failed in "
                  "phase %d", fr, c->fail_phase);
            CHECK(strcmp(jobs[i]->err.msg, want) == 0 && jobs[i]->err.status == BW_E_NUMERIC,
                  "failed job's message is \"%s\" (status %d), expected \"%s\"",
                  jobs[i]->err.msg, jobs[i]->err.status, want);
            CHECK(atomic_load(&c->hits[c->fail_block]) == 1, "the failing block ran %d times",
                  atomic_load(&c->hits[c->fail_block]));
            for (size_t b = 0; b < c->nblocks; b++)
                CHECK(atomic_load(&c->hits[b]) <= 1, "block %zu ran twice", b);
            if (nthreads <= 1)
                for (size_t b = (size_t)c->fail_block + 1; b < c->nblocks; b++)
                    CHECK(atomic_load(&c->hits[b]) == 0,
                          "serial pool ran block %zu after block %d failed", b, c->fail_block);
        } else if (kind[i] == 1 || kind[i] == 2 || kind[i] == 5) {
            CHECK(st == BW_JOB_FAILED, "job whose finish fails ended %s", status_name(st));
            CHECK(fr == c->fail_finish, "finish ran %d times; step %d fails", fr,
                  c->fail_finish);
            CHECK(strcmp(jobs[i]->err.msg, "finish failed on purpose") == 0 &&
                      jobs[i]->err.status == BW_E_DOMAIN,
                  "message \"%s\" after a failing finish", jobs[i]->err.msg);
        } else {
            check_job_outcome(jobs[i], c, BW_JOB_OK, 0);
        }
    }
    if (ch) {
        uint64_t ids[64];
        double end = bw_monotonic() + 10;
        while (drained < N && bw_monotonic() < end) {
            size_t n = bw_channel_drain(ch, ids, 64);
            drained += (long)n;
            if (!n)
                sleep_us(500);
        }
        CHECK(drained == N, "drained %ld of %d failing/finished jobs", drained, N);
    }
    CHECK(bw_pool_live_jobs(pool) == 0, "live jobs after failures: %zu",
          bw_pool_live_jobs(pool));
    bw_pool_free(pool);
    for (int i = 0; i < N; i++)
        bw_job_decref(jobs[i]);
}

static void scenario_fail(void)
{
    long f0 = atomic_load(&g_ctx_freed);
    int counts[] = {0, 1, 2, 4};
    for (int i = 0; i < 4; i++) {
        run_failing(counts[i], NULL);
        bw_channel *ch = bw_channel_new();
        run_failing(counts[i], ch);
        bw_channel_decref(ch);
    }
    CHECK(atomic_load(&g_ctx_freed) - f0 == 8 * 40, "failing jobs: %ld contexts freed of %d",
          atomic_load(&g_ctx_freed) - f0, 8 * 40);
    printf("  fail: 320 jobs on pools of 0/1/2/4 threads, with and without a channel\n");
}

/* ======================================================================================== */
/* Scenario free: bw_pool_free with jobs in flight                                          */
/* ======================================================================================== */

typedef struct {
    bw_job *job;
    int result;
    double waited;
} waiter_arg;

static void *waiter_main(void *arg)
{
    waiter_arg *w = arg;
    double t0 = bw_monotonic();
    w->result = bw_job_wait(w->job, -1.0);
    w->waited = bw_monotonic() - t0;
    return NULL;
}

static void scenario_free(void)
{
    int counts[] = {1, 2, 4};
    double worst = 0;
    long total = 0, cancelled = 0, ok = 0;
    uint64_t seed = g_seed ^ 0xF4EE;
    long f0 = atomic_load(&g_ctx_freed);
    for (int ci = 0; ci < 3; ci++) {
        for (int round = 0; round < 4; round++) {
            int nthreads = counts[ci];
            bw_pool *pool = bw_pool_new(nthreads);
            bw_channel *ch = bw_channel_new();
            if (!pool || !ch) {
                failf("pool/channel creation failed");
                return;
            }
            enum { N = 40 };
            bw_job *jobs[N];
            tctx *ctxs[N];
            int nchan = 0;
            for (int i = 0; i < N; i++) {
                jobs[i] = new_test_job(64, splitmix(&seed), &ctxs[i]);
                ctxs[i]->sleep_us = 100;
                int with = (i & 1);
                nchan += with;
                bw_pool_submit(pool, jobs[i], with ? ch : NULL);
            }
            /* A blocked waiter must be woken by the pool going away. */
            waiter_arg w = {.job = jobs[N - 1]};
            pthread_t wt;
            start_thread(&wt, waiter_main, &w);
            if (round & 1)
                sleep_us(2000);
            double t0 = bw_monotonic();
            bw_pool_free(pool);
            double took = bw_monotonic() - t0;
            if (took > worst)
                worst = took;
            pthread_join(wt, NULL);
            CHECK(w.result == 1, "a waiter blocked in bw_job_wait(-1) got %d", w.result);
            long drained = 0;
            uint64_t ids[8];
            size_t n;
            do {
                n = bw_channel_drain(ch, ids, 8);
                drained += (long)n;
            } while (n == 8);
            CHECK(drained == nchan, "after bw_pool_free the channel held %ld of %d jobs",
                  drained, nchan);
            for (int i = 0; i < N; i++) {
                CHECK(bw_job_finished(jobs[i]), "job not finished after bw_pool_free");
                check_job_outcome(jobs[i], ctxs[i], BW_JOB_OK, 1);
                int st = atomic_load(&jobs[i]->status);
                cancelled += st == BW_JOB_CANCELLED;
                ok += st == BW_JOB_OK;
                bw_job_decref(jobs[i]);
            }
            total += N;
            bw_channel_decref(ch);
        }
    }
    CHECK(cancelled > 0, "bw_pool_free cancelled none of %ld jobs in flight", total);
    CHECK(worst < 5.0, "bw_pool_free took %.2f s with jobs in flight", worst);
    /* Pools created and freed at once, idle, and with only empty jobs. */
    for (int i = 0; i < 12; i++) {
        bw_pool *pool = bw_pool_new(1 + i % 4);
        if (i % 3 == 0) {
            bw_job *job = new_test_job(0, (uint64_t)i, NULL);
            bw_pool_submit(pool, job, NULL);
            CHECK(atomic_load(&job->status) == BW_JOB_OK, "an empty job ended %s",
                  status_name(atomic_load(&job->status)));
            bw_job_decref(job);
            total++;
            ok++;
        }
        bw_pool_free(pool);
    }
    bw_pool_free(NULL);
    long freed = atomic_load(&g_ctx_freed) - f0;
    CHECK(freed == total, "%ld of %ld contexts freed after bw_pool_free", freed, total);
    printf("  free: %ld jobs, pool freed with jobs in flight 12 times (cancelled %ld, ok %ld), "
           "slowest bw_pool_free %.1f ms\n", total, cancelled, ok, worst * 1e3);
}

/* ======================================================================================== */
/* Scenario inline: nthreads == 0                                                           */
/* ======================================================================================== */

static void scenario_inline(void)
{
    bw_pool *pool = bw_pool_new(0);
    bw_channel *ch = bw_channel_new();
    if (!pool || !ch) {
        failf("inline pool/channel creation failed");
        return;
    }
    CHECK(bw_pool_threads(pool) == 0, "inline pool has %d threads", bw_pool_threads(pool));
    long f0 = atomic_load(&g_ctx_freed);
    uint64_t ids[4];

    /* Runs to the end, in order, before submit returns; its channel is readable at once. */
    tctx *c;
    bw_job *job = new_test_job(17, 5, &c);
    c->check_order = 1;
    bw_pool_submit(pool, job, ch);
    CHECK(bw_job_finished(job), "inline submit returned before the job finished");
    check_job_outcome(job, c, BW_JOB_OK, 0);
    CHECK(bw_job_wait(job, 0.0) == 1, "bw_job_wait(0) on a finished inline job returned 0");
    CHECK(fd_readable(bw_channel_fd(ch)), "channel fd not readable after an inline job");
    CHECK(bw_channel_drain(ch, ids, 4) == 1 && ids[0] == job->id,
          "inline job not on its channel");
    CHECK(!fd_readable(bw_channel_fd(ch)), "channel fd still readable after draining it");
    CHECK(bw_pool_live_jobs(pool) == 0, "inline pool counts live jobs");
    bw_job_decref(job);

    /* Cancelled before submit: no block runs. */
    job = new_test_job(9, 6, &c);
    bw_job_cancel(job);
    bw_pool_submit(pool, job, NULL);
    CHECK(atomic_load(&job->status) == BW_JOB_CANCELLED, "pre-cancelled inline job ended %s",
          status_name(atomic_load(&job->status)));
    for (size_t b = 0; b < 9; b++)
        CHECK(atomic_load(&c->hits[b]) == 0, "pre-cancelled inline job ran block %zu", b);
    CHECK(atomic_load(&c->finish_runs) == 0, "pre-cancelled inline job ran its finish");
    bw_job_decref(job);

    /* Cancelled from inside block 4: blocks 5.. are skipped. */
    job = new_test_job(12, 7, &c);
    c->cancel_in_block = 4;
    bw_pool_submit(pool, job, NULL);
    CHECK(atomic_load(&job->status) == BW_JOB_CANCELLED, "self-cancelled inline job ended %s",
          status_name(atomic_load(&job->status)));
    for (size_t b = 0; b < 12; b++)
        CHECK(atomic_load(&c->hits[b]) == (b <= 4), "self-cancelled inline job: block %zu "
              "ran %d times", b, atomic_load(&c->hits[b]));
    CHECK(atomic_load(&c->finish_runs) == 0, "cancelled inline job ran its finish");
    bw_job_decref(job);

    /* Three phases, in order, all before submit returns. */
    job = new_test_job(5, 10, &c);
    c->check_order = 1;
    c->phases = 3;
    bw_pool_submit(pool, job, NULL);
    check_job_outcome(job, c, BW_JOB_OK, 0);
    CHECK(job->phase == 3, "inline three-phase job: job->phase is %zu", job->phase);
    bw_job_decref(job);

    /* An empty job runs its finish. */
    job = new_test_job(0, 8, &c);
    bw_pool_submit(pool, job, ch);
    CHECK(atomic_load(&job->status) == BW_JOB_OK && atomic_load(&c->finish_runs) == 1,
          "empty inline job ended %s with %d finish runs",
          status_name(atomic_load(&job->status)), atomic_load(&c->finish_runs));
    CHECK(bw_channel_drain(ch, ids, 4) == 1, "empty inline job not on its channel");
    bw_job_decref(job);
    bw_pool_cancel_all(pool);       /* nothing to cancel: must be harmless */
    bw_pool_free(pool);
    bw_channel_decref(ch);
    CHECK(atomic_load(&g_ctx_freed) - f0 == 5, "inline jobs: %ld of 5 contexts freed",
          atomic_load(&g_ctx_freed) - f0);

    /* The concurrent harness with nthreads == 0: submitters on their own threads. */
    scenario_pool_threads(0);
    printf("  inline: ordered run, pre-cancel, self-cancel, three phases, empty job, channel "
           "fd state\n");
}

/* ======================================================================================== */
/* Scenario store                                                                           */
/* ======================================================================================== */

enum { ST_NONE = 0, ST_IN = 1, ST_REMOVED = 2, ST_CLEARED = 3, ST_EVICTED = 4 };

typedef struct {
    uint64_t id;
    int part;
    uint64_t start, n;
} resv;

typedef struct {
    bw_store *store;
    uint64_t maxid;
    atomic_int *state;                  /* by id */
    atomic_ullong latest;               /* highest id inserted */
    atomic_int inserters_left;          /* phase B: the sweeper runs until this is 0 */
    int hot_lo, hot_n;                  /* phase A: reserve only these ids */
} sshared;

typedef struct {
    sshared *sh;
    uint64_t seed;
    int ops;
    resv *log;
    size_t nlog, caplog;
    long found, gone, invalid;
} sworker;

static int nparts_of(uint64_t id) { return id % 3 == 0 ? 3 : 1; }
static int stale_of(uint64_t id) { return id % 4 == 1; }

/* The payload of the test's records: the store copies it whole and never reads it.  Its
 * size varies with the id, as a family's does. */
typedef struct {
    uint64_t id;
    int nparts;
    double p[3][2], mean[3];
    double tail[];              /* id % 5 extra doubles */
} tpayload;

static size_t payload_size(uint64_t id) { return sizeof(tpayload) + (id % 5) * sizeof(double); }

static bw_record *make_post(uint64_t id)
{
    bw_record *r = bw_record_new(NULL, payload_size(id));
    if (!r) {
        fprintf(stderr, "FAIL: out of memory\n");
        _exit(2);
    }
    tpayload *p = (tpayload *)r->payload;
    r->id = id;
    p->id = id;
    p->nparts = nparts_of(id);
    for (int k = 0; k < p->nparts; k++) {
        p->p[k][0] = (double)id;
        p->p[k][1] = (double)k;
        p->mean[k] = (double)id + k;
    }
    for (uint64_t i = 0; i < id % 5; i++)
        p->tail[i] = (double)(id + i);
    double now = bw_wallclock();
    r->created = r->last_access = stale_of(id) ? now - 1000.0 : now;
    return r;
}

static void check_copy(const bw_record *r, uint64_t id, const char *what)
{
    const tpayload *p = (const tpayload *)r->payload;
    CHECK(r->id == id, "%s: copy of %" PRIu64 " has id %" PRIu64, what, id, r->id);
    CHECK(r->chain == NULL, "%s: copy of %" PRIu64 " exposes the store's hash chain", what, id);
    CHECK(r->size == payload_size(id) && bw_record_bytes(r) == sizeof *r + payload_size(id),
          "%s: copy of %" PRIu64 " has %zu bytes of payload", what, id, r->size);
    CHECK(p->id == id && p->nparts == nparts_of(id), "%s: copy of %" PRIu64 " has a foreign "
          "payload (id %" PRIu64 ", %d parts)", what, id, p->id, p->nparts);
    for (int k = 0; k < p->nparts && k < 3; k++)
        CHECK(p->p[k][0] == (double)id && p->p[k][1] == (double)k && p->mean[k] == (double)id + k,
              "%s: copy of %" PRIu64 " part %d is torn or foreign", what, id, k);
    for (uint64_t i = 0; i < id % 5; i++)
        CHECK(p->tail[i] == (double)(id + i), "%s: copy of %" PRIu64 " lost its payload's "
              "tail", what, id);
}

static void mark_removed(sshared *sh, uint64_t id, int how, const char *by)
{
    if (id == 0 || id > sh->maxid) {
        failf("%s returned an unknown id %" PRIu64, by, id);
        return;
    }
    int expect = ST_IN;
    if (!atomic_compare_exchange_strong(&sh->state[id], &expect, how))
        failf("%s removed id %" PRIu64 " whose state was %d (removed twice, or never "
              "inserted)", by, id, expect);
}

static uint64_t pick_id(sshared *sh, uint64_t *seed)
{
    if (sh->hot_n)
        return (uint64_t)sh->hot_lo + rnd(seed, (unsigned)sh->hot_n);
    uint64_t hi = atomic_load(&sh->latest);
    if (hi == 0)
        return 1;
    uint64_t span = hi < 48 ? hi : 48;  /* mostly recent ids, sometimes any */
    if (rnd(seed, 8) == 0)
        return 1 + splitmix(seed) % hi;
    return hi - splitmix(seed) % span;
}

static void *s_inserter(void *arg)
{
    sworker *w = arg;
    sshared *sh = w->sh;
    for (int i = 0; i < w->ops; i++) {
        uint64_t id = bw_store_next_id(sh->store);
        if (id > sh->maxid) {
            failf("bw_store_next_id gave %" PRIu64 " beyond %" PRIu64, id, sh->maxid);
            break;
        }
        int expect = ST_NONE;
        if (!atomic_compare_exchange_strong(&sh->state[id], &expect, ST_IN))
            failf("bw_store_next_id gave id %" PRIu64 " twice", id);
        CHECK(bw_store_insert(sh->store, make_post(id)) == 0, "bw_store_insert failed");
        uint64_t cur = atomic_load(&sh->latest);
        while (cur < id && !atomic_compare_exchange_weak(&sh->latest, &cur, id)) {
        }
        if ((i & 63) == 0)
            sched_yield();
    }
    atomic_fetch_sub(&sh->inserters_left, 1);
    return NULL;
}

static void *s_reserver(void *arg)
{
    sworker *w = arg;
    sshared *sh = w->sh;
    for (int i = 0; i < w->ops; i++) {
        uint64_t id = pick_id(sh, &w->seed);
        unsigned r = rnd(&w->seed, 8);
        /* the streams a posterior of this id uses, and some invalid slots */
        int part = r < 6 ? (int)(r % (unsigned)nparts_of(id)) : r == 6 ? -1 : BW_MAX_STREAMS;
        uint64_t n = 1 + rnd(&w->seed, 1000);
        uint64_t start = 0;
        int rc = bw_store_reserve(sh->store, id, part, n, &start);
        int valid = part >= 0 && part < BW_MAX_STREAMS;
        if (rc == BW_OK) {
            w->found++;
            CHECK(valid, "reserve of slot %d of %" PRIu64 " succeeded", part, id);
            if (w->nlog < w->caplog)
                w->log[w->nlog++] = (resv){id, part, start, n};
            else
                failf("reservation log full");
        } else if (rc == BW_E_DOMAIN) {
            w->invalid++;
            CHECK(!valid, "reserve of valid slot %d of %" PRIu64 " refused", part, id);
        } else {
            w->gone++;
            CHECK(rc == BW_E_NOT_FOUND, "reserve returned %d", rc);
        }
    }
    return NULL;
}

static void *s_getter(void *arg)
{
    sworker *w = arg;
    sshared *sh = w->sh;
    for (int i = 0; i < w->ops; i++) {
        uint64_t id = pick_id(sh, &w->seed);
        bw_record *copy = NULL;
        int rc = bw_store_get(sh->store, id, &copy);
        if (rc == BW_OK) {
            w->found++;
            check_copy(copy, id, "get");
            free(copy);
        } else {
            w->gone++;
            CHECK(rc == BW_E_NOT_FOUND && !copy, "get returned %d", rc);
        }
        if (rnd(&w->seed, 4) == 0)
            (void)bw_store_get(sh->store, id, NULL);
    }
    return NULL;
}

static void *s_remover(void *arg)
{
    sworker *w = arg;
    sshared *sh = w->sh;
    for (int i = 0; i < w->ops; i++) {
        uint64_t id = pick_id(sh, &w->seed);
        if (bw_store_remove(sh->store, id)) {
            w->found++;
            mark_removed(sh, id, ST_REMOVED, "bw_store_remove");
            CHECK(bw_store_get(sh->store, id, NULL) == BW_E_NOT_FOUND, "id %" PRIu64 " found "
                  "after its removal", id);
        } else {
            w->gone++;
        }
        if ((i & 31) == 0)
            sleep_us(50);
    }
    return NULL;
}

/* Snapshots throughout; in phase B also evictions, and two clears (when a third and two
 * thirds of the ids have been handed out), until the inserters are done. */
static void *s_sweeper(void *arg)
{
    sworker *w = arg;
    sshared *sh = w->sh;
    int clears = 0;
    for (int i = 0;; i++) {
        if (sh->hot_n ? i >= w->ops : i >= w->ops && atomic_load(&sh->inserters_left) == 0)
            break;
        bw_record **arr = NULL;
        size_t n = bw_store_snapshot(sh->store, &arr);
        CHECK(arr != NULL, "bw_store_snapshot returned no array");
        for (size_t k = 0; arr && k < n; k++) {
            if (k > 0 && arr[k]->id <= arr[k - 1]->id)
                failf("snapshot not strictly ordered by id at %zu: %" PRIu64 " after %" PRIu64,
                      k, arr[k]->id, arr[k - 1]->id);
            check_copy(arr[k], arr[k]->id, "snapshot");
            if (arr[k]->id == 0 || arr[k]->id > sh->maxid ||
                atomic_load(&sh->state[arr[k]->id]) == ST_NONE)
                failf("snapshot holds an id never handed out: %" PRIu64, arr[k]->id);
        }
        for (size_t k = 0; arr && k < n; k++)
            free(arr[k]);
        free(arr);
        w->found += (long)n;
        if (!sh->hot_n && i % 2 == 1) {
            uint64_t *ids = NULL;
            size_t m = bw_store_evict(sh->store, bw_wallclock() - 500.0, &ids);
            for (size_t k = 0; k < m; k++) {
                CHECK(stale_of(ids[k]), "evicted %" PRIu64 ", which was never idle", ids[k]);
                mark_removed(sh, ids[k], ST_EVICTED, "bw_store_evict");
            }
            free(ids);
            w->gone += (long)m;
        }
        if (!sh->hot_n && clears < 2 &&
            atomic_load(&sh->latest) > (uint64_t)(clears + 1) * sh->maxid / 3) {
            clears++;
            uint64_t *ids = NULL;
            size_t m = bw_store_clear(sh->store, &ids);
            for (size_t k = 0; k < m; k++)
                mark_removed(sh, ids[k], ST_CLEARED, "bw_store_clear");
            free(ids);
            w->invalid += (long)m;
        }
        (void)bw_store_count(sh->store);
        sleep_us(500);
    }
    return NULL;
}

static int cmp_resv(const void *a, const void *b)
{
    const resv *x = a, *y = b;
    if (x->id != y->id)
        return x->id < y->id ? -1 : 1;
    if (x->part != y->part)
        return x->part < y->part ? -1 : 1;
    return (x->start > y->start) - (x->start < y->start);
}

/* Reserved ranges of each (posterior, part) tile [0, total) exactly; surviving posteriors'
 * cursors equal the total. */
static long check_reservations(sshared *sh, sworker *ws, int nw)
{
    size_t total = 0;
    for (int i = 0; i < nw; i++)
        total += ws[i].nlog;
    resv *all = malloc((total ? total : 1) * sizeof *all);
    size_t k = 0;
    for (int i = 0; i < nw; i++)
        for (size_t j = 0; j < ws[i].nlog; j++)
            all[k++] = ws[i].log[j];
    qsort(all, total, sizeof *all, cmp_resv);
    long groups = 0;
    size_t i = 0;
    while (i < total) {
        size_t j = i;
        uint64_t next = 0;
        while (j < total && all[j].id == all[i].id && all[j].part == all[i].part) {
            if (all[j].start != next) {
                failf("posterior %" PRIu64 " part %d: a reservation starts at %" PRIu64
                      ", expected %" PRIu64 " (%s)", all[j].id, all[j].part, all[j].start,
                      next, all[j].start < next ? "overlap" : "gap");
                break;
            }
            next += all[j].n;
            j++;
        }
        while (j < total && all[j].id == all[i].id && all[j].part == all[i].part)
            j++;
        groups++;
        bw_record *copy = NULL;
        if (atomic_load(&sh->state[all[i].id]) == ST_IN &&
            bw_store_get(sh->store, all[i].id, &copy) == BW_OK)
            CHECK(copy->cursor[all[i].part] == next,
                  "posterior %" PRIu64 " slot %d: cursor %" PRIu64 " but %" PRIu64
                  " positions were reserved", all[i].id, all[i].part,
                  copy->cursor[all[i].part], next);
        free(copy);
        i = j;
    }
    free(all);
    return groups;
}

static void store_final_checks(sshared *sh)
{
    size_t in = 0;
    for (uint64_t id = 1; id <= sh->maxid; id++) {
        int st = atomic_load(&sh->state[id]);
        int found = bw_store_get(sh->store, id, NULL) == BW_OK;
        if (st == ST_IN)
            in++;
        if (found != (st == ST_IN))
            failf("id %" PRIu64 ": state %d but bw_store_get says %d", id, st, found);
    }
    CHECK(bw_store_count(sh->store) == in, "bw_store_count %zu, expected %zu",
          bw_store_count(sh->store), in);
    bw_record **arr = NULL;
    size_t n = bw_store_snapshot(sh->store, &arr);
    CHECK(n == in, "final snapshot has %zu posteriors, expected %zu", n, in);
    for (size_t k = 0; arr && k < n; k++)
        free(arr[k]);
    free(arr);
}

static void scenario_store(void)
{
    double t0 = bw_monotonic();
    bw_store *store = bw_store_new();
    if (!store) {
        failf("bw_store_new failed");
        return;
    }
    /* Single-threaded edges: ids in call order, overflow of the stream position. */
    uint64_t a = bw_store_next_id(store), b = bw_store_next_id(store);
    CHECK(a == 1 && b == 2, "first ids are %" PRIu64 ", %" PRIu64, a, b);
    bw_record *p = make_post(1);
    p->cursor[0] = UINT64_MAX - 10;
    bw_store_insert(store, p);
    uint64_t start = 0;
    CHECK(bw_store_reserve(store, 1, 0, 11, &start) == BW_E_DOMAIN, "reserve past 2^64 "
          "accepted");
    CHECK(bw_store_reserve(store, 1, 0, 10, &start) == BW_OK && start == UINT64_MAX - 10,
          "reserve up to 2^64 - 1 refused");
    CHECK(bw_store_reserve(store, 1, 0, 1, &start) == BW_E_DOMAIN, "reserve at 2^64 accepted");
    CHECK(bw_store_reserve(store, 1, BW_MAX_STREAMS, 1, &start) == BW_E_DOMAIN,
          "reserve of a missing stream");
    CHECK(bw_store_reserve(store, 2, 0, 1, &start) == BW_E_NOT_FOUND, "reserve of an absent "
          "id");
    CHECK(bw_store_remove(store, 1) == 1 && bw_store_remove(store, 1) == 0,
          "remove twice");
    uint64_t *ids = NULL;
    CHECK(bw_store_clear(store, &ids) == 0, "clear of an empty store");
    free(ids);
    bw_store_free(store);

    /* Phase A: hot posteriors, reserved from four threads, read and snapshotted alongside. */
    enum { NHOT = 9 };
    int nins = scaled(2500);
    sshared sh;
    memset(&sh, 0, sizeof sh);
    sh.store = bw_store_new();
    sh.maxid = (uint64_t)(NHOT + 2 * nins + 8);
    sh.state = calloc(sh.maxid + 1, sizeof *sh.state);
    for (uint64_t i = 0; i <= sh.maxid; i++)
        atomic_init(&sh.state[i], ST_NONE);
    for (int i = 0; i < NHOT; i++) {
        uint64_t id = bw_store_next_id(sh.store);
        atomic_store(&sh.state[id], ST_IN);
        bw_store_insert(sh.store, make_post(id));
        atomic_store(&sh.latest, id);
    }
    sh.hot_lo = 1;
    sh.hot_n = NHOT;
    enum { NRES = 4 };
    sworker res[NRES], misc[2];
    int rops = scaled(3000);
    for (int i = 0; i < NRES; i++) {
        res[i] = (sworker){.sh = &sh, .seed = g_seed + 1000 + (uint64_t)i, .ops = rops};
        res[i].caplog = 2 * (size_t)rops;
        res[i].log = malloc(res[i].caplog * sizeof(resv));
    }
    misc[0] = (sworker){.sh = &sh, .seed = g_seed + 2000, .ops = rops};
    misc[1] = (sworker){.sh = &sh, .seed = g_seed + 2001, .ops = 30};
    pthread_t th[NRES + 2];
    for (int i = 0; i < NRES; i++)
        start_thread(&th[i], s_reserver, &res[i]);
    start_thread(&th[NRES], s_getter, &misc[0]);
    start_thread(&th[NRES + 1], s_sweeper, &misc[1]);
    for (int i = 0; i < NRES + 2; i++)
        pthread_join(th[i], NULL);
    long hot_groups = check_reservations(&sh, res, NRES);
    long hot_resv = 0;
    for (int i = 0; i < NRES; i++)
        hot_resv += (long)res[i].nlog;
    CHECK(hot_groups == 9 * 1 + 3 * 2, "hot phase reserved %ld (posterior, part) streams, "
          "expected 15", hot_groups);
    store_final_checks(&sh);

    /* Phase B: everything at once -- inserts, reserves, gets, removes, evicts, clears.  The
     * reservation logs carry over: the hot posteriors live on until the first clear. */
    sh.hot_n = 0;
    atomic_store(&sh.inserters_left, 2);
    long resv_a = (long)(res[0].nlog + res[1].nlog);
    sworker ins[2], getr, rem, sweep;
    for (int i = 0; i < 2; i++)
        ins[i] = (sworker){.sh = &sh, .seed = g_seed + 3000 + (uint64_t)i, .ops = nins};
    getr = (sworker){.sh = &sh, .seed = g_seed + 4000, .ops = rops};
    rem = (sworker){.sh = &sh, .seed = g_seed + 5000, .ops = scaled(1200)};
    sweep = (sworker){.sh = &sh, .seed = g_seed + 6000, .ops = 8};
    pthread_t tb[2 + 2 + 3];
    start_thread(&tb[0], s_inserter, &ins[0]);
    start_thread(&tb[1], s_inserter, &ins[1]);
    start_thread(&tb[2], s_reserver, &res[0]);
    start_thread(&tb[3], s_reserver, &res[1]);
    start_thread(&tb[4], s_getter, &getr);
    start_thread(&tb[5], s_remover, &rem);
    start_thread(&tb[6], s_sweeper, &sweep);
    for (int i = 0; i < 7; i++)
        pthread_join(tb[i], NULL);
    long groups = check_reservations(&sh, res, NRES);
    store_final_checks(&sh);
    long n_in = 0, n_rm = 0, n_cl = 0, n_ev = 0;
    for (uint64_t id = 1; id <= sh.maxid; id++) {
        int st = atomic_load(&sh.state[id]);
        n_in += st == ST_IN;
        n_rm += st == ST_REMOVED;
        n_cl += st == ST_CLEARED;
        n_ev += st == ST_EVICTED;
    }
    long inserted = NHOT + 2L * nins;
    CHECK(n_in + n_rm + n_cl + n_ev == inserted, "%ld ids accounted for, %ld inserted",
          n_in + n_rm + n_cl + n_ev, inserted);
    bw_store_free(sh.store);        /* frees the survivors: ASan checks nothing leaks */
    for (int i = 0; i < NRES; i++)
        free(res[i].log);
    free(sh.state);
    printf("  store: hot phase %ld reservations over 15 streams; mixed phase %ld inserts, "
           "%ld reservations over %ld streams (%ld gone, %ld invalid part), %ld gets, "
           "removed %ld, cleared %ld, evicted %ld, kept %ld, %.2f s\n",
           hot_resv, inserted, (long)(res[0].nlog + res[1].nlog) - resv_a, groups,
           res[0].gone + res[1].gone, res[0].invalid + res[1].invalid, getr.found + getr.gone,
           n_rm, n_cl, n_ev, n_in, bw_monotonic() - t0);
}

/* ======================================================================================== */
/* Reproductions of defects (see the report in test_tsan.py's docstring)                    */
/* ======================================================================================== */

/* Each bug_* scenario is a deterministic reproduction of a defect in pool.c; it fails until
 * the defect is fixed.  They are not in the default set: tests/c/test_tsan.py runs each one
 * on its own, so a failure names the defect. */

typedef struct {
    bw_channel *ch;
    size_t n;
} drain_arg;

static void *drain_thread(void *arg)
{
    drain_arg *d = arg;
    uint64_t ids[8];
    d->n = bw_channel_drain(d->ch, ids, 8);
    return NULL;
}

/* pool.c, channel_push vs bw_channel_drain.  channel_push sets ch->signalled under ch->mu but
 * writes the fd after unlocking.  A drain running in that window sees signalled == 1, reads
 * nothing (the write has not happened), clears signalled and takes the job.  The late write
 * then leaves the fd readable with signalled == 0, and every later drain skips the read (it
 * reads only when signalled), so the fd stays readable with an empty channel: a
 * level-triggered watcher (asyncio add_reader) calls drain in a busy loop until some later
 * completion happens to clear it.  The window is reached by any second drain call, e.g. the
 * "call again while it returns cap" loop (module.c Channel_drain) with exactly 256 queued.
 * Here the completion's write is held (--wrap=write) while another thread drains. */
static void bug_stale_wakeup(void)
{
    if (!HAVE_WRITE_GATE) {
        printf("  bug_stale_wakeup: skipped (build with -DSTRESS_WRAP_WRITE "
               "-Wl,--wrap=write)\n");
        return;
    }
    bw_pool *pool = bw_pool_new(1);
    bw_channel *ch = bw_channel_new();
    int fd = bw_channel_fd(ch);
    atomic_store(&g_gate_arrived, 0);
    atomic_store(&g_gate_release, 0);
    atomic_store(&g_gate_written, 0);
    atomic_store(&g_gate_fd, fd);           /* hold the completion's wake-up write */
    bw_job *job = new_test_job(1, 1, NULL);
    bw_pool_submit(pool, job, ch);
    if (!await_flag(&g_gate_arrived, 10.0)) {
        failf("the completion never wrote to the channel fd");
        atomic_store(&g_gate_fd, -1);
        atomic_store(&g_gate_release, 1);
    } else {
        /* The event loop drains while the write is held (from another thread: if the write
         * is done under the channel mutex, that drain waits for it, which is also fine). */
        drain_arg da = {ch, 0};
        pthread_t t;
        start_thread(&t, drain_thread, &da);
        sleep_us(50000);
        atomic_store(&g_gate_release, 1);
        CHECK(await_flag(&g_gate_written, 10.0), "the held write never completed");
        pthread_join(t, NULL);
        uint64_t ids[8];
        size_t n2 = bw_channel_drain(ch, ids, 8);
        CHECK(da.n + n2 == 1, "the job came off the channel %zu times", da.n + n2);
        size_t n3 = bw_channel_drain(ch, ids, 8);
        CHECK(n3 == 0, "a drain of an empty channel returned %zu", n3);
        int stale = fd_readable(fd);
        CHECK(!stale, "stale wake-up: the channel is empty and has just been drained, yet "
                      "its fd is still readable (drain took the job before channel_push's "
                      "write; that write then left the fd readable with signalled == 0, and "
                      "drain never reads it again): an event loop watching the fd spins");
    }
    atomic_store(&g_gate_release, 1);
    bw_job_wait(job, -1.0);
    bw_pool_free(pool);
    bw_job_decref(job);
    bw_channel_decref(ch);
    printf("  bug_stale_wakeup: drain between channel_push's unlock and its write\n");
}

/* pool.c, bw_channel_decref / channel_push.  A queued job holds a reference to its channel
 * (job->channel) and the channel's queue holds a reference to the job (channel_push), so
 * when the channel's owner drops its last reference without draining, neither is ever freed:
 * the job, its context (and the arrays the binding keeps alive for it) and the channel's
 * eventfd leak.  The binding does exactly this: InferenceWorker.close() frees the pool (whose
 * cancelled jobs are pushed on the channel), removes the reader without a final drain, and
 * Channel_dealloc calls bw_channel_decref. */
static void bug_channel_leak(void)
{
    long f0 = atomic_load(&g_ctx_freed);
    bw_pool *pool = bw_pool_new(1);
    bw_channel *ch = bw_channel_new();
    int fd = bw_channel_fd(ch);
    bw_job *job = new_test_job(4, 2, NULL);
    bw_pool_submit(pool, job, ch);
    bw_job_wait(job, -1.0);
    bw_pool_free(pool);             /* joins the worker: the job is on the channel */
    bw_job_decref(job);             /* the submitter's reference */
    bw_channel_decref(ch);          /* the owner's last reference; nothing drained */
    long freed = atomic_load(&g_ctx_freed) - f0;
    errno = 0;
    int still_open = fcntl(fd, F_GETFD) != -1;
    CHECK(freed == 1 && !still_open,
          "channel/job reference cycle: after the last external references to a channel "
          "(holding one undrained job) and to the job were dropped, the job was %s and the "
          "channel's fd %d is %s", freed == 1 ? "freed" : "NOT freed (leaked with its ctx)",
          fd, still_open ? "still open (leaked)" : "closed");
    printf("  bug_channel_leak: channel dropped with an undrained job\n");
}

/* pool.c, bw_job_cancel / block_done.  A failing block records the failure by storing 2 in
 * job->cancel; bw_job_cancel (and bw_pool_cancel_all, and so bw_pool_free) store 1 over it,
 * and job_complete then reports CANCELLED instead of FAILED (the errmsg is set but never
 * surfaced).  Interleaving: block 1 fails on thread B (cancel = 2, done_blocks = 1) while
 * block 0 is still running on thread A; the owner cancels (cancel = 1); block 0 finishes and
 * job_complete sees cancel != 2. */
static void bug_fail_masked(void)
{
    bw_pool *pool = bw_pool_new(2);
    atomic_int gate, entered;
    atomic_init(&gate, 0);
    atomic_init(&entered, 0);
    tctx *c;
    bw_job *job = new_test_job(2, 3, &c);
    c->gate_block = 0;
    c->gate = &gate;
    c->gate_entered = &entered;
    c->after_gate_block = 1;
    c->fail_block = 1;
    bw_pool_submit(pool, job, NULL);
    double end = bw_monotonic() + 10.0;
    while (atomic_load(&job->done_blocks) < 1 && bw_monotonic() < end)
        sleep_us(200);
    CHECK(atomic_load(&job->done_blocks) == 1, "block 1 did not fail while block 0 ran");
    bw_job_cancel(job);             /* e.g. a timeout, or bw_pool_free's cancel_all */
    atomic_store(&gate, 1);
    bw_job_wait(job, -1.0);
    int st = atomic_load(&job->status);
    CHECK(st == BW_JOB_FAILED,
          "a job whose block failed ended %s because it was cancelled afterwards (errmsg "
          "\"%s\" lost): bw_job_cancel overwrote the failure mark cancel == 2 with 1",
          status_name(st), job->err.msg);
    bw_pool_free(pool);
    bw_job_decref(job);
    printf("  bug_fail_masked: cancel after a block failed\n");
}

/* pool.c, bw_job_wait.  For timeout = INFINITY (or any timeout >= 2^63 s, or NaN) the
 * conversions (long long)timeout and (long)((timeout - whole) * 1e9) overflow (undefined
 * behaviour; on x86-64 both give INT64_MIN), so ts.tv_nsec is negative and
 * pthread_cond_timedwait returns EINVAL at once -- without releasing job->mu.  The loop only
 * leaves on ETIMEDOUT, so the waiter spins forever holding job->mu, and the worker finishing
 * the job blocks forever in job_complete on that mutex: the waiter, the worker thread and
 * bw_pool_free all hang.  (module.c Job_wait maps NaN and negatives to 0 but passes inf.) */
typedef struct {
    bw_job *job;
    double timeout;
    atomic_int done;
    int result;
} wait_arg;

static void *timed_waiter(void *arg)
{
    wait_arg *w = arg;
    w->result = bw_job_wait(w->job, w->timeout);
    atomic_store(&w->done, 1);
    return NULL;
}

static void bug_wait_inf(void)
{
    const double timeouts[] = {1e10, INFINITY, 1e19};
    for (int i = 0; i < 3; i++) {
        bw_pool *pool = bw_pool_new(1);
        atomic_int gate, entered;
        atomic_init(&gate, 0);
        atomic_init(&entered, 0);
        tctx *c;
        bw_job *job = new_test_job(1, 9, &c);
        c->gate_block = 0;
        c->gate = &gate;
        c->gate_entered = &entered;
        bw_pool_submit(pool, job, NULL);
        await_flag(&entered, 10.0);
        wait_arg w = {.job = job, .timeout = timeouts[i]};
        atomic_init(&w.done, 0);
        pthread_t t;
        start_thread(&t, timed_waiter, &w);
        sleep_us(50000);
        CHECK(!atomic_load(&w.done), "bw_job_wait(%g) returned %d before the job finished",
              timeouts[i], w.result);
        atomic_store(&gate, 1);
        if (!await_flag(&w.done, 3.0)) {
            failf("bw_job_wait(job, %g) never returned after the job's block ended: the "
                  "deadline overflows, pthread_cond_timedwait fails with EINVAL without "
                  "releasing job->mu, the wait loop retries it forever, and the worker "
                  "blocks in job_complete on job->mu (deadlock)", timeouts[i]);
            fflush(stdout);
            _exit(1);                   /* the waiter and the worker can never be joined */
        }
        pthread_join(t, NULL);
        CHECK(w.result == 1, "bw_job_wait(%g) returned %d", timeouts[i], w.result);
        bw_pool_free(pool);
        bw_job_decref(job);
    }
    printf("  bug_wait_inf: bw_job_wait with timeouts 1e10, inf, 1e19\n");
}

/* pool.c, block_done (line ~335) with a finish step that changes job->nblocks for its next
 * phase (which pool.h allows).  Every thread reads job->nblocks *after* its
 * atomic_fetch_add on done_blocks, so a thread X that added done = k < n and is slow to read
 * nblocks races with the thread Y that added done = n, ran the finish step (which wrote
 * nblocks = k') and reset the phase: X's plain read of nblocks is unordered with Y's write
 * (a data race), and if it sees k' == k, X also runs phase_end -- a second finish step
 * concurrent with the next phase's blocks, a second completion and a second decref of the
 * pool's reference (use after free).  TSan reports the race on job->nblocks. */
static void bug_phase_nblocks(void)
{
    long f0 = atomic_load(&g_ctx_freed);
    uint64_t seed = g_seed ^ 0x9A5E;
    enum { N = 120 };
    bw_pool *pool = bw_pool_new(2);
    /* Deterministic for TSan: both blocks of each phase meet inside the block function, so
     * both were claimed before either thread's add; the finish step stores nblocks (the same
     * value) -- the thread that added first reads nblocks with no order to that store. */
    atomic_int meet;
    atomic_init(&meet, 0);
    tctx *rc;
    bw_job *rjob = new_test_job(2, 12, &rc);
    rc->phases = 6;
    rc->rewrite_nblocks = 1;
    rc->rendezvous = &meet;
    rc->rendezvous_n = 2;
    bw_pool_submit(pool, rjob, NULL);
    bw_job_wait(rjob, -1.0);
    check_job_outcome(rjob, rc, BW_JOB_OK, 0);
    /* And under pressure: phases of 1..4 blocks. */
    bw_job *jobs[N];
    tctx *ctxs[N];
    for (int i = 0; i < N; i++) {
        jobs[i] = new_test_job(4, splitmix(&seed), &ctxs[i]);
        ctxs[i]->phases = 8;
        ctxs[i]->vary_nblocks = 1;
        bw_pool_submit(pool, jobs[i], NULL);
    }
    for (int i = 0; i < N; i++) {
        bw_job_wait(jobs[i], -1.0);
        check_job_outcome(jobs[i], ctxs[i], BW_JOB_OK, 0);
    }
    bw_pool_free(pool);
    bw_job_decref(rjob);
    for (int i = 0; i < N; i++)
        bw_job_decref(jobs[i]);
    CHECK(atomic_load(&g_ctx_freed) - f0 == N + 1, "%ld of %d contexts freed",
          atomic_load(&g_ctx_freed) - f0, N + 1);
    printf("  bug_phase_nblocks: a job whose 6 phases store nblocks, then %d jobs of 8 phases "
           "with 1..4 blocks each\n", N);
}

/* pool.h / module.c: job->phase is a plain size_t that phase_end increments on a worker
 * (pool.c, phase_end) while Job_get_progress (module.c) reads it from the Python thread with
 * no lock and no atomic: a data race on every progress poll of an iterative job.  The poller
 * below reads it exactly as module.c does. */
typedef struct {
    bw_job *job;
    size_t seen;
} progress_arg;

static void *progress_poller(void *arg)
{
    progress_arg *p = arg;
    while (!bw_job_finished(p->job)) {
        size_t ph = p->job->phase;     /* module.c Job_get_progress: job->phase */
        if (ph > p->seen)
            p->seen = ph;
        sched_yield();
    }
    return NULL;
}

static void bug_progress_race(void)
{
    bw_pool *pool = bw_pool_new(1);
    tctx *c;
    bw_job *job = new_test_job(2, 11, &c);
    c->phases = 100;
    c->sleep_us = 200;
    job->phases_total = 100;
    progress_arg pa = {job, 0};
    pthread_t t;
    start_thread(&t, progress_poller, &pa);
    bw_pool_submit(pool, job, NULL);
    bw_job_wait(job, -1.0);
    pthread_join(t, NULL);
    check_job_outcome(job, c, BW_JOB_OK, 0);
    bw_pool_free(pool);
    bw_job_decref(job);
    printf("  bug_progress_race: polled job->phase during 100 phases (saw up to %zu)\n",
           pa.seen);
}

/* The block contract ("returns nonzero after writing job->errmsg") lets two blocks of one job
 * that fail at the same time on two threads write job->errmsg concurrently: a data race and
 * a torn message.  No current caller has multi-block jobs that fail, so this is opt-in. */
static void hazard_errmsg_race(void)
{
    bw_pool *pool = bw_pool_new(2);
    atomic_int meet;
    atomic_init(&meet, 0);
    tctx *c;
    bw_job *job = new_test_job(2, 4, &c);
    c->fail_all = 1;
    c->rendezvous = &meet;
    c->rendezvous_n = 2;
    bw_pool_submit(pool, job, NULL);
    bw_job_wait(job, -1.0);
    CHECK(atomic_load(&job->status) == BW_JOB_FAILED, "job ended %s",
          status_name(atomic_load(&job->status)));
    bw_pool_free(pool);
    bw_job_decref(job);
    printf("  hazard_errmsg_race: two blocks failed together (TSan reports the race)\n");
}

/* ======================================================================================== */
/* Execution-time timeouts                                                                  */
/* ======================================================================================== */
/*
 * A job's timeout bounds its execution time: the seconds during which at least one thread
 * executes one of its blocks or its finish step.  These checks drive the pool with a clock
 * of their own (bw_pool_set_clock) that only the jobs advance, so every figure is exact and
 * nothing depends on how fast the machine is; one thread makes the block counts exact too.
 * Real time appears only in hang guards, and in the last check, where a job that runs on
 * the monotonic clock must end by timing out.
 */

typedef struct {
    atomic_llong s;                     /* fake time in whole seconds: differences are exact */
} fake_clock;

static double fake_now(void *ctx) { return (double)atomic_load(&((fake_clock *)ctx)->s); }

typedef struct {
    fake_clock *clock;
    long long advance_s;                /* per block */
    long long finish_s;                 /* per finish step */
    int phases;                         /* finish steps asking for another phase */
    atomic_int blocks_run, finishes_run;
    /* a gate: the block announces itself, then waits for release */
    atomic_int *arrived, *release;
    int both;                           /* two blocks meet before the clock moves */
    double spin_s;                      /* real seconds each block spins (monotonic) */
} xctx;

static int x_block(bw_job *job, size_t b)
{
    xctx *c = job->ctx;
    atomic_fetch_add(&c->blocks_run, 1);
    if (c->arrived) {
        atomic_fetch_add(c->arrived, 1);
        if (c->both) {
            double end = bw_monotonic() + 20.0;          /* hang guard */
            while (atomic_load(c->arrived) < 2 && bw_monotonic() < end)
                sleep_us(100);
            if (b == 0) {
                atomic_fetch_add(&c->clock->s, c->advance_s);
                atomic_store(c->release, 1);
            }
        }
        await_flag(c->release, 20.0);
        return 0;
    }
    if (c->spin_s > 0) {
        double end = bw_monotonic() + c->spin_s;
        while (bw_monotonic() < end) {
        }
    }
    if (c->clock)
        atomic_fetch_add(&c->clock->s, c->advance_s);
    return 0;
}

static int x_finish(bw_job *job)
{
    xctx *c = job->ctx;
    int k = atomic_fetch_add(&c->finishes_run, 1);
    if (c->clock)
        atomic_fetch_add(&c->clock->s, c->finish_s);
    return k + 1 < c->phases ? BW_JOB_AGAIN : 0;
}

static bw_job *x_job(size_t nblocks, xctx *c, int with_finish, double timeout)
{
    bw_job *job = bw_job_new(nblocks, x_block, with_finish ? x_finish : NULL, c, NULL);
    if (!job) {
        fprintf(stderr, "FAIL: out of memory\n");
        _exit(2);
    }
    job->timeout = timeout;
    return job;
}

static void x_wait(bw_job *job, const char *what)
{
    if (!bw_job_wait(job, 30.0))                          /* hang guard */
        failf("%s: the job did not finish within 30 s", what);
}

/* Check a finished job's status, blocks run (blocks < 0: any) and execution time
 * (exec < 0: any, else exact). */
static void x_expect(bw_job *job, const xctx *c, int status, int blocks, double exec,
                     const char *what)
{
    int st = atomic_load(&job->status);
    CHECK(st == status, "%s ended %s, expected %s", what, status_name(st), status_name(status));
    CHECK(blocks < 0 || atomic_load(&c->blocks_run) == blocks, "%s: %d blocks ran, expected %d",
          what, atomic_load(&c->blocks_run), blocks);
    CHECK(exec < 0 || bw_job_exec_time(job) == exec, "%s: execution time %g, expected %g",
          what, bw_job_exec_time(job), exec);
}

/* Run a job of nblocks blocks of c (with x_finish if finish) on a pool of `threads` threads
 * on clock clk (NULL: the monotonic clock) to its end; the caller checks and drops it. */
static bw_job *x_run(int threads, fake_clock *clk, xctx *c, size_t nblocks, int finish,
                     double timeout, const char *what)
{
    bw_pool *pool = bw_pool_new(threads);
    if (clk)
        bw_pool_set_clock(pool, fake_now, clk);
    bw_job *job = x_job(nblocks, c, finish, timeout);
    bw_pool_submit(pool, job, NULL);
    x_wait(job, what);
    bw_pool_free(pool);
    return job;
}

static void scenario_timeout(void)
{
    fake_clock clk;
    atomic_init(&clk.s, 0);

    /* 1. Time in the queue does not count.  H holds the only thread while the clock moves
     *    1000 s on; Q, queued behind it with a timeout of 5 s, then runs and succeeds. */
    {
        bw_pool *pool = bw_pool_new(1);
        bw_pool_set_clock(pool, fake_now, &clk);
        atomic_int arrived, release;
        atomic_init(&arrived, 0);
        atomic_init(&release, 0);
        xctx hc = {.clock = &clk, .arrived = &arrived, .release = &release};
        xctx qc = {.clock = &clk};
        bw_job *h = x_job(1, &hc, 0, -1.0);
        bw_job *q = x_job(4, &qc, 0, 5.0);
        bw_pool_submit(pool, h, NULL);
        CHECK(await_flag(&arrived, 20.0), "the holding job never started");
        bw_pool_submit(pool, q, NULL);
        atomic_fetch_add(&clk.s, 1000);
        CHECK(bw_job_exec_time(q) == 0.0, "a queued job has execution time %g",
              bw_job_exec_time(q));
        CHECK(bw_job_exec_time(h) == 1000.0, "the running job has execution time %g, "
              "expected 1000", bw_job_exec_time(h));
        CHECK(!bw_job_finished(q), "the queued job finished while the thread was held");
        atomic_store(&release, 1);
        x_wait(q, "queued job");
        x_wait(h, "holding job");
        CHECK(atomic_load(&q->status) == BW_JOB_OK, "a job queued for 1000 s with a timeout "
              "of 5 s of work ended %s", status_name(atomic_load(&q->status)));
        CHECK(atomic_load(&qc.blocks_run) == 4, "%d of 4 blocks ran",
              atomic_load(&qc.blocks_run));
        CHECK(bw_job_exec_time(q) == 0.0, "the queued job's execution time is %g, expected 0",
              bw_job_exec_time(q));
        CHECK(bw_job_exec_time(h) == 1000.0, "the holding job's execution time is %g",
              bw_job_exec_time(h));
        bw_pool_free(pool);
        bw_job_decref(h);
        bw_job_decref(q);
    }

    /* 2. A long job times out at the first block boundary at or past its timeout: each
     *    block takes 1 s, the timeout is 5 s, so exactly blocks 0..4 run. */
    {
        xctx c = {.clock = &clk, .advance_s = 1};
        bw_job *job = x_run(1, &clk, &c, 100, 0, 5.0, "long job");
        x_expect(job, &c, BW_JOB_TIMEOUT, 5, 5.0, "a job past its timeout");
        CHECK(strstr(job->err.msg, "timed out after 5 s of work") != NULL &&
                  job->err.status == BW_E_TIMEOUT,
              "timeout message \"%s\"", job->err.msg);
        bw_job_cancel(job);
        CHECK(atomic_load(&job->status) == BW_JOB_TIMEOUT, "a cancel after the end changed "
              "the status");
        bw_job_decref(job);
    }

    /* 3. Finish steps are work too: 0 s blocks, 2 s finish steps, timeout 5 s: the finish
     *    steps end at 2, 4, 6 s, and the block of the fourth phase starts past 5 s. */
    {
        xctx c = {.clock = &clk, .finish_s = 2, .phases = 100};
        bw_job *job = x_run(1, &clk, &c, 1, 1, 5.0, "multi-phase job");
        x_expect(job, &c, BW_JOB_TIMEOUT, 3, 6.0, "a multi-phase job");
        CHECK(atomic_load(&c.finishes_run) == 3, "%d finish steps ran, expected 3",
              atomic_load(&c.finishes_run));
        bw_job_decref(job);
    }

    /* 4. Two threads executing one job at the same time count the time once. */
    {
        atomic_int arrived, release;
        atomic_init(&arrived, 0);
        atomic_init(&release, 0);
        xctx c = {.clock = &clk, .advance_s = 10, .arrived = &arrived,
                  .release = &release, .both = 1};
        bw_job *job = x_run(2, &clk, &c, 2, 0, -1.0, "two-thread job");
        x_expect(job, &c, BW_JOB_OK, 2, 10.0, "two threads busy together for 10 s");
        bw_job_decref(job);
    }

    /* 5. Inline pools count the inline run; a timeout of 0 allows no block at all. */
    {
        xctx c = {.clock = &clk, .advance_s = 1};
        bw_job *job = x_run(0, &clk, &c, 10, 0, 3.0, "inline job");
        x_expect(job, &c, BW_JOB_TIMEOUT, 3, 3.0, "an inline job");
        xctx z = {.clock = &clk, .advance_s = 1};
        bw_job *zero = x_run(0, &clk, &z, 3, 0, 0.0, "timeout-0 job");
        x_expect(zero, &z, BW_JOB_TIMEOUT, 0, 0.0, "a job with timeout 0");
        bw_job_decref(job);
        bw_job_decref(zero);
    }

    /* 6. On the monotonic clock, a job of a million 0.1 ms blocks with a timeout of 20 ms of
     *    work ends by timing out, long before its last block. */
    {
        xctx c = {.spin_s = 1e-4};
        bw_job *job = x_run(2, NULL, &c, 1000000, 0, 0.02, "real-clock job");
        x_expect(job, &c, BW_JOB_TIMEOUT, -1, -1.0, "the real-clock job");
        CHECK(atomic_load(&c.blocks_run) < 1000000, "every block ran");
        CHECK(bw_job_exec_time(job) >= 0.02, "execution time %g below the timeout",
              bw_job_exec_time(job));
        bw_job_decref(job);
    }
}

/* ======================================================================================== */
/* main                                                                                     */
/* ======================================================================================== */

typedef struct {
    const char *name;
    void (*fn)(void);
    int seconds;                        /* watchdog deadline */
    int in_default;
} scenario;

static const scenario scenarios[] = {
    {"pool", scenario_pool, 60, 1},
    {"fail", scenario_fail, 30, 1},
    {"free", scenario_free, 30, 1},
    {"inline", scenario_inline, 30, 1},
    {"store", scenario_store, 60, 1},
    {"timeout", scenario_timeout, 60, 1},
    {"bug_stale_wakeup", bug_stale_wakeup, 20, 0},
    {"bug_channel_leak", bug_channel_leak, 20, 0},
    {"bug_fail_masked", bug_fail_masked, 20, 0},
    {"bug_wait_inf", bug_wait_inf, 20, 0},
    {"bug_phase_nblocks", bug_phase_nblocks, 30, 0},
    {"bug_progress_race", bug_progress_race, 30, 0},
    {"hazard_errmsg_race", hazard_errmsg_race, 20, 0},
};

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *chosen[32];
    int nchosen = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            g_seed = strtoull(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "--scale") && i + 1 < argc)
            g_scale = atof(argv[++i]);
        else if (nchosen < 32)
            chosen[nchosen++] = argv[i];
    }
    const size_t nsc = sizeof scenarios / sizeof scenarios[0];
    for (int i = 0; i < nchosen; i++) {
        int known = 0;
        for (size_t k = 0; k < nsc; k++)
            known |= !strcmp(chosen[i], scenarios[k].name);
        if (!known) {
            fprintf(stderr, "unknown scenario %s; known:", chosen[i]);
            for (size_t k = 0; k < nsc; k++)
                fprintf(stderr, " %s", scenarios[k].name);
            fprintf(stderr, "\n");
            return 2;
        }
    }
    printf("stress_core: seed %" PRIu64 ", scale %g\n", g_seed, g_scale);
    pthread_t wd;
    start_thread(&wd, watchdog_main, NULL);
    double t_all = bw_monotonic();
    for (size_t k = 0; k < nsc; k++) {
        int run = nchosen == 0 ? scenarios[k].in_default : 0;
        for (int i = 0; i < nchosen; i++)
            run |= !strcmp(chosen[i], scenarios[k].name);
        if (!run)
            continue;
        int before = atomic_load(&g_nfail);
        double t0 = bw_monotonic();
        phase(scenarios[k].name, scenarios[k].seconds);
        scenarios[k].fn();
        phase(scenarios[k].name, 0);
        printf("%s %s (%.2f s)\n", atomic_load(&g_nfail) == before ? "ok  " : "FAIL",
               scenarios[k].name, bw_monotonic() - t0);
    }
    atomic_store(&g_watchdog_stop, 1);
    pthread_join(wd, NULL);
    int nf = atomic_load(&g_nfail);
    printf("stress_core: %s, %d failed check%s, %.2f s\n", nf ? "FAILED" : "passed", nf,
           nf == 1 ? "" : "s", bw_monotonic() - t_all);
    return nf ? 1 : 0;
}
