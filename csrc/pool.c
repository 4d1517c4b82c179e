/*
 * pool.c -- worker threads, block scheduling, job lifetime and completion channels.
 */
#include "pool.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#endif

/* ======================================================================================== */
/* Clocks                                                                                   */
/* ======================================================================================== */

double bw_monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double bw_wallclock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ======================================================================================== */
/* Wake-up fds                                                                              */
/* ======================================================================================== */

/* An fd that counts wake-ups: an eventfd on Linux (rfd == wfd), a pipe elsewhere.  Posting
 * never blocks.  A channel's fd is read without blocking (the event loop polls it); the
 * pool's is a semaphore that idle workers block on, one token each. */
static int wakefd_open(int *rfd, int *wfd, int semaphore)
{
#ifdef __linux__
    int fd = eventfd(0, EFD_CLOEXEC | (semaphore ? EFD_SEMAPHORE : EFD_NONBLOCK));
    if (fd < 0)
        return -1;
    *rfd = *wfd = fd;
#else
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    for (int i = 0; i < 2; i++)
        fcntl(fds[i], F_SETFD, FD_CLOEXEC);
    for (int i = semaphore ? 1 : 0; i < 2; i++)
        fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
    *rfd = fds[0];
    *wfd = fds[1];
#endif
    return 0;
}

static void wakefd_close(int rfd, int wfd)
{
    if (rfd >= 0)
        close(rfd);
    if (wfd != rfd && wfd >= 0)
        close(wfd);
}

/* Add n tokens (eventfd: to its counter; pipe: n bytes).  A full pipe or counter is
 * readable already, so a failed write loses nothing a reader needs. */
static void wakefd_post(int wfd, uint64_t n)
{
#ifdef __linux__
    ssize_t r = write(wfd, &n, sizeof n);
    (void)r;
#else
    char bytes[256] = {0};
    while (n > 0) {
        ssize_t r = write(wfd, bytes, n < sizeof bytes ? (size_t)n : sizeof bytes);
        if (r <= 0)
            break;
        n -= (uint64_t)r;
    }
#endif
}

/* Take one token of a semaphore fd, blocking until there is one. */
static void wakefd_take(int rfd)
{
    uint64_t v;
#ifdef __linux__
    size_t size = sizeof v;
#else
    size_t size = 1;
#endif
    while (read(rfd, &v, size) < 0 && errno == EINTR) {
    }
}

/* ======================================================================================== */
/* Channels                                                                                 */
/* ======================================================================================== */

/*
 * A worker never holds a lock of the channel.  The worker that finishes a job pushes it on
 * the channel's inbox (a lock-free stack) and then makes the fd readable; the thread that
 * drains takes the whole inbox with one atomic exchange.  (With one mutex for both sides,
 * the write that woke the event loop let the loop preempt the lower-priority worker while
 * it still held the mutex; the loop then blocked in its drain until that worker got a core
 * again: 5-44 ms, measured by bench/loop_lag.py on two busy cores.)
 */
struct bw_channel {
    atomic_int refs;            /* memory: owners + jobs that name this channel */
    atomic_int owners;          /* bw_channel_new / bw_channel_incref holders */
    atomic_int closed;          /* no owner left: pushes are dropped */
    _Atomic(bw_job *) inbox;    /* finished jobs, newest first (pushed without a lock) */
    pthread_mutex_t mu;         /* the consumers' side (drain, close); never a worker */
    bw_job *head, *tail;        /* taken from the inbox, oldest first, not handed out (mu) */
    int rfd, wfd;               /* eventfd: rfd == wfd; otherwise a pipe */
};

bw_channel *bw_channel_new(void)
{
    bw_channel *ch = calloc(1, sizeof *ch);
    if (!ch)
        return NULL;
    if (wakefd_open(&ch->rfd, &ch->wfd, 0) != 0) {
        free(ch);
        return NULL;
    }
    pthread_mutex_init(&ch->mu, NULL);
    atomic_init(&ch->refs, 1);
    atomic_init(&ch->owners, 1);
    atomic_init(&ch->closed, 0);
    atomic_init(&ch->inbox, NULL);
    return ch;
}

static void channel_unref(bw_channel *ch);

void bw_channel_incref(bw_channel *ch)
{
    atomic_fetch_add(&ch->owners, 1);
    atomic_fetch_add(&ch->refs, 1);
}

/* Release a list of queued jobs (linked by chan_next): the channel's references. */
static void release_jobs(bw_job *job)
{
    while (job) {
        bw_job *next = job->chan_next;
        bw_job_decref(job);
        job = next;
    }
}

/* The last owner closes the channel: queued jobs are released (they hold the channel's
 * memory, not its queue), and later completions are not queued. */
void bw_channel_decref(bw_channel *ch)
{
    if (!ch)
        return;
    if (atomic_fetch_sub(&ch->owners, 1) == 1) {
        atomic_store(&ch->closed, 1);
        pthread_mutex_lock(&ch->mu);
        bw_job *taken = ch->head;
        ch->head = ch->tail = NULL;
        pthread_mutex_unlock(&ch->mu);
        release_jobs(taken);
        release_jobs(atomic_exchange(&ch->inbox, NULL));
    }
    channel_unref(ch);
}

static void channel_unref(bw_channel *ch)
{
    if (!ch || atomic_fetch_sub(&ch->refs, 1) != 1)
        return;
    /* Every queued job holds a reference to the channel, so the queue is empty here. */
    wakefd_close(ch->rfd, ch->wfd);
    pthread_mutex_destroy(&ch->mu);
    free(ch);
}

int bw_channel_fd(const bw_channel *ch) { return ch->rfd; }

static void channel_make_readable(bw_channel *ch) { wakefd_post(ch->wfd, 1); }

/* Empty the fd (an eventfd in one read; a pipe until it has nothing left). */
static void channel_clear_fd(bw_channel *ch)
{
    char buf[64];
    while (read(ch->rfd, buf, sizeof buf) == (ssize_t)sizeof buf) {
    }
}

/* Called by the worker that finished the job, holding no lock.  The push that finds the
 * inbox empty makes the fd readable; a drain empties the fd before it takes the inbox, so
 * a job pushed after that take finds the inbox empty and signals again: no wake-up is lost
 * (at worst one is spurious, and its drain finds nothing). */
static void channel_push(bw_channel *ch, bw_job *job)
{
    if (atomic_load(&ch->closed))
        return;
    bw_job_incref(job);
    bw_job *old = atomic_load(&ch->inbox);
    do {
        job->chan_next = old;
    } while (!atomic_compare_exchange_weak(&ch->inbox, &old, job));
    if (atomic_load(&ch->closed)) {
        /* Closed while pushing: whoever exchanges the inbox last releases what it holds. */
        release_jobs(atomic_exchange(&ch->inbox, NULL));
        return;
    }
    if (!old)
        channel_make_readable(ch);
}

size_t bw_channel_drain(bw_channel *ch, uint64_t *ids, size_t cap)
{
    bw_job *taken = NULL;
    size_t n = 0;

    pthread_mutex_lock(&ch->mu);
    channel_clear_fd(ch);
    /* The inbox, newest first, goes behind what is left, oldest first. */
    bw_job *in = atomic_exchange(&ch->inbox, NULL), *older = NULL, *newest = in;
    while (in) {
        bw_job *next = in->chan_next;
        in->chan_next = older;
        older = in;
        in = next;
    }
    if (older) {
        if (ch->tail)
            ch->tail->chan_next = older;
        else
            ch->head = older;
        ch->tail = newest;
    }
    while (ch->head && n < cap) {
        bw_job *job = ch->head;
        ch->head = job->chan_next;
        job->chan_next = taken;
        taken = job;
        ids[n++] = job->id;
    }
    if (!ch->head)
        ch->tail = NULL;
    else
        channel_make_readable(ch);      /* more remain: the caller comes back */
    pthread_mutex_unlock(&ch->mu);

    release_jobs(taken);
    return n;
}

/* ======================================================================================== */
/* Jobs                                                                                     */
/* ======================================================================================== */

/* Why the remaining blocks of a job are skipped (job->cancel). */
enum { STOP_NONE = 0, STOP_CANCEL = 1, STOP_FAILED = 2, STOP_TIMEOUT = 3 };

static double monotonic_clock(void *ctx)
{
    (void)ctx;
    return bw_monotonic();
}

bw_job *bw_job_new(size_t nblocks, bw_block_fn block, bw_finish_fn finish,
                   void *ctx, void (*ctx_free)(void *))
{
    bw_job *job = calloc(1, sizeof *job);
    if (!job) {
        if (ctx && ctx_free)
            ctx_free(ctx);
        return NULL;
    }
    atomic_init(&job->refs, 1);
    job->nblocks = nblocks;
    atomic_init(&job->done_blocks, 0);
    atomic_init(&job->cancel, 0);
    atomic_init(&job->status, BW_JOB_PENDING);
    atomic_init(&job->started, 0);
    atomic_init(&job->value_bits, 0);
    job->timeout = -1.0;
    job->clock = monotonic_clock;
    job->block = block;
    job->finish = finish;
    job->ctx = ctx;
    job->ctx_free = ctx_free;
    pthread_mutex_init(&job->mu, NULL);
    pthread_cond_init(&job->cv, NULL);
    job->t_submit = bw_monotonic();
    return job;
}

void bw_job_incref(bw_job *job) { atomic_fetch_add(&job->refs, 1); }

void bw_job_decref(bw_job *job)
{
    if (!job || atomic_fetch_sub(&job->refs, 1) != 1)
        return;
    if (job->ctx && job->ctx_free)
        job->ctx_free(job->ctx);
    if (job->channel)
        channel_unref(job->channel);
    pthread_mutex_destroy(&job->mu);
    pthread_cond_destroy(&job->cv);
    free(job);
}

/* Mark why the job stops unless it is stopping already. */
static void job_stop(bw_job *job, int why)
{
    int none = STOP_NONE;
    atomic_compare_exchange_strong(&job->cancel, &none, why);
}

void bw_job_cancel(bw_job *job) { job_stop(job, STOP_CANCEL); }

/* A thread starts (enter = 1) or stops (enter = 0) executing the job; returns the job's
 * execution time at that moment.  The busy intervals of all threads are merged: the time
 * counts once while any thread executes the job. */
static double exec_mark(bw_job *job, int enter)
{
    pthread_mutex_lock(&job->mu);
    double now = job->clock(job->clock_ctx);
    if (enter) {
        if (job->exec_running++ == 0)
            job->exec_since = now;
    } else if (--job->exec_running == 0) {
        job->exec_total += now - job->exec_since;
    }
    double t = job->exec_total + (job->exec_running ? now - job->exec_since : 0.0);
    pthread_mutex_unlock(&job->mu);
    return t;
}

double bw_job_exec_time(bw_job *job)
{
    pthread_mutex_lock(&job->mu);
    double t = job->exec_total;
    if (job->exec_running)
        t += job->clock(job->clock_ctx) - job->exec_since;
    pthread_mutex_unlock(&job->mu);
    return t;
}

/* Stop the job if its execution time t reached its timeout. */
static void check_timeout(bw_job *job, double t)
{
    if (job->timeout >= 0 && t >= job->timeout)
        job_stop(job, STOP_TIMEOUT);
}

int bw_job_finished(const bw_job *job)
{
    return atomic_load(&((bw_job *)job)->status) != BW_JOB_PENDING;
}

int bw_job_wait(bw_job *job, double timeout)
{
    int finished;
    pthread_mutex_lock(&job->mu);
    if (timeout < 0 || !(timeout < 1e9)) {     /* negative, huge, inf, NaN: forever */
        while (!bw_job_finished(job))
            pthread_cond_wait(&job->cv, &job->mu);
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        double whole = (double)(long long)timeout;
        ts.tv_sec += (time_t)whole;
        ts.tv_nsec += (long)((timeout - whole) * 1e9);
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec += 1;
            ts.tv_nsec -= 1000000000L;
        }
        while (!bw_job_finished(job)) {
            if (pthread_cond_timedwait(&job->cv, &job->mu, &ts) != 0)
                break;      /* ETIMEDOUT; never spin on an error while holding mu */
        }
    }
    finished = bw_job_finished(job);
    pthread_mutex_unlock(&job->mu);
    return finished;
}

/* Fill job->err for an end the pool decided, or that a failing step left unexplained. */
static void job_explain(bw_job *job, int status, double exec_time)
{
    if (status == BW_JOB_TIMEOUT)
        bw_fail(&job->err, BW_E_TIMEOUT,
                "timed out after %.3g s of work (its timeout is %g s); the work was stopped",
                exec_time, job->timeout);
    else if (status == BW_JOB_CANCELLED)
        bw_fail(&job->err, BW_E_CANCELLED, "cancelled (the worker was closed, or the "
                "request was cancelled) after %.3g s of work", exec_time);
    else if (status == BW_JOB_FAILED && job->err.status == BW_OK)
        bw_fail(&job->err, BW_E_NUMERIC, "the computation failed");
}

/* Publish the job's end: status, wake the waiters, queue it on its channel. */
static void job_complete(bw_job *job, int status)
{
    job->t_end = bw_monotonic();
    pthread_mutex_lock(&job->mu);
    atomic_store(&job->status, status);
    pthread_cond_broadcast(&job->cv);
    pthread_mutex_unlock(&job->mu);
    if (job->channel)
        channel_push(job->channel, job);
}

/* The last block of a phase is done: run the finish step.  Returns the job's final status,
 * or BW_JOB_PENDING if the finish step asked for another phase (counters are reset). */
static int phase_end(bw_job *job, double exec_time)
{
    if (job->finish)
        check_timeout(job, exec_time);
    int c = atomic_load(&job->cancel);
    if (c == STOP_FAILED)
        return BW_JOB_FAILED;
    if (c == STOP_TIMEOUT)
        return BW_JOB_TIMEOUT;
    if (c)
        return BW_JOB_CANCELLED;
    if (!job->finish)
        return BW_JOB_OK;
    int r = job->finish(job);
    if (r < 0)
        return BW_JOB_FAILED;
    if (r == BW_JOB_AGAIN && job->nblocks > 0) {
        job->phase++;
        job->next_block = 0;
        atomic_store(&job->done_blocks, 0);
        return BW_JOB_PENDING;
    }
    job->phase++;
    return BW_JOB_OK;
}

/* ======================================================================================== */
/* Pool                                                                                     */
/* ======================================================================================== */

/*
 * Idle workers wait for a token on the pool's wake fd (a semaphore); whoever queues work
 * counts, under mu, how many idle workers it wakes, and posts their tokens after unlocking.
 * Not a condition variable: glibc's pthread_cond_signal and _broadcast may block until the
 * waiters that an earlier signal woke have run (they quiesce the old group of waiters), and
 * those are the lower-priority workers, so the event loop's submissions waited for them
 * (2-8 ms, measured by bench/loop_lag.py).  Posting a token never blocks.
 */
struct bw_pool {
    int nthreads;
    pthread_t *threads;
    pthread_mutex_t mu;
    int wake_r, wake_w;          /* the idle workers' semaphore fd (-1: none, inline pool) */
    size_t sleepers;             /* workers waiting for a token, or about to (mu) */
    size_t tokens;               /* tokens posted for them and not taken yet (mu) */
    pthread_cond_t idle;         /* live reached zero */
    bw_job *head, *tail;         /* jobs with unclaimed blocks */
    size_t live;                 /* submitted, not finished */
    atomic_uint_fast64_t next_id;
    int shutdown;
    bw_clock_fn clock;           /* of execution times */
    void *clock_ctx;
    /* Every live job, for cancel_all: a growable array touched only under mu; each job
     * knows its slot (job->pool_slot), so forgetting one is O(1) whatever the count. */
    bw_job **all;
    size_t nall, capall;
};

static void pool_forget(bw_pool *pool, bw_job *job)
{
    /* called with pool->mu held: the last job moves into the forgotten one's slot */
    size_t slot = job->pool_slot;
    bw_job *last = pool->all[--pool->nall];
    pool->all[slot] = last;
    last->pool_slot = slot;
    pool->live--;
    if (pool->live == 0)
        pthread_cond_broadcast(&pool->idle);
}

/* Wake up to `want` idle workers (mu held); returns how many tokens to post after
 * unlocking (wake_idle). */
static size_t wake_count_locked(bw_pool *pool, size_t want)
{
    size_t idle = pool->sleepers - pool->tokens;
    size_t n = want < idle ? want : idle;
    pool->tokens += n;
    return n;
}

static void wake_idle(bw_pool *pool, size_t n)
{
    if (n)
        wakefd_post(pool->wake_w, n);
}

/* Queue the job (mu held); returns the idle workers to wake once mu is released. */
static size_t pool_enqueue_locked(bw_pool *pool, bw_job *job)
{
    job->queue_next = NULL;
    if (pool->tail)
        pool->tail->queue_next = job;
    else
        pool->head = job;
    pool->tail = job;
    return wake_count_locked(pool, job->nblocks);
}

/* One block of a job has been run by the calling thread (failed: it returned nonzero).
 * Returns 1 if the job went on to another phase. */
static int block_done(bw_pool *pool, bw_job *job, int failed)
{
    if (failed) {
        /* Make the remaining blocks no-ops; the last one to finish reports the failure. */
        atomic_store(&job->cancel, STOP_FAILED);
    }
    /* Read nblocks before the add: once the add is published, the thread that completes the
     * phase may run the finish step, which may change nblocks.  Likewise stop the clock
     * before it: after the add the job may be gone. */
    size_t nblocks = job->nblocks;
    exec_mark(job, 0);
    size_t done = atomic_fetch_add(&job->done_blocks, 1) + 1;
    if (done != nblocks)
        return 0;
    /* The finish step is the job's work too. */
    int status = phase_end(job, exec_mark(job, 1));
    job_explain(job, status, exec_mark(job, 0));
    if (status == BW_JOB_PENDING) {
        if (pool) {
            pthread_mutex_lock(&pool->mu);
            size_t wake = pool_enqueue_locked(pool, job);
            pthread_mutex_unlock(&pool->mu);
            wake_idle(pool, wake);
        }
        return 1;
    }
    /* Off the pool's books first, so a waiter woken by the completion sees it gone;
     * bw_pool_free still joins this thread before the pool goes away. */
    if (pool) {
        pthread_mutex_lock(&pool->mu);
        pool_forget(pool, job);
        pthread_mutex_unlock(&pool->mu);
    }
    job_complete(job, status);
    bw_job_decref(job);        /* the pool's reference */
    return 0;
}

/* Run block b unless the job is stopping; the caller then calls block_done. */
static int run_block(bw_job *job, size_t b)
{
    if (!atomic_exchange(&job->started, 1))
        job->t_start = bw_monotonic();
    check_timeout(job, exec_mark(job, 1));
    if (atomic_load(&job->cancel))
        return 0;
    if (job->block && job->block(job, b) != 0) {
        return 1;
    }
    return 0;
}

/* Worker threads run a little below the threads that submit work (nice + BW_WORKER_NICE,
 * Linux only, per thread), so an event loop competing with them for a core gets the larger
 * share of it.  A lower nice value does not make a waking loop preempt a worker, though:
 * the scheduler (EEVDF) lets a worker finish its slice, and with two workers queued on the
 * loop's core the loop waited up to two ticks (8 ms at 250 Hz) behind them.  So workers
 * also yield: at every yield point (between blocks, and inside the long blocks of a draw)
 * a worker that has run for BW_YIELD_EVERY seconds since it last yielded hands its core to
 * any thread waiting for it.  sched_yield returns at once when none is, so this costs a
 * clock read per yield point and a system call per BW_YIELD_EVERY. */
#ifndef BW_WORKER_NICE
#define BW_WORKER_NICE 5
#endif
#ifndef BW_YIELD_EVERY
#define BW_YIELD_EVERY 2.5e-4
#endif

/* The pool's per-thread state: when this worker last yielded (< 0: not a pool worker, the
 * yield point does nothing; inline jobs run on the submitting thread). */
static _Thread_local double yielded_at = -1.0;

void bw_pool_yield_point(void)
{
    if (yielded_at < 0)
        return;
    double now = bw_monotonic();
    if (now - yielded_at >= BW_YIELD_EVERY) {
        sched_yield();
        yielded_at = bw_monotonic();
    }
}

static void worker_lower_priority(void)
{
#ifdef __linux__
    pid_t tid = (pid_t)syscall(SYS_gettid);
    errno = 0;
    int now = getpriority(PRIO_PROCESS, (id_t)tid);
    if (errno == 0 && now < 19)
        (void)setpriority(PRIO_PROCESS, (id_t)tid, now + BW_WORKER_NICE > 19 ? 19 : now + BW_WORKER_NICE);
#endif
    yielded_at = bw_monotonic();
}

static void *worker_main(void *arg)
{
    bw_pool *pool = arg;
    worker_lower_priority();
    pthread_mutex_lock(&pool->mu);
    for (;;) {
        if (!pool->head && !pool->shutdown) {
            pool->sleepers++;
            pthread_mutex_unlock(&pool->mu);
            wakefd_take(pool->wake_r);
            pthread_mutex_lock(&pool->mu);
            pool->sleepers--;
            pool->tokens--;
            continue;
        }
        if (!pool->head) /* shutdown with nothing left */
            break;
        bw_job *job = pool->head;
        size_t b = job->next_block++;
        /* Round robin: the job goes to the back if it has more blocks, off the queue if not. */
        pool->head = job->queue_next;
        if (!pool->head)
            pool->tail = NULL;
        job->queue_next = NULL;
        if (job->next_block < job->nblocks) {
            if (pool->tail)
                pool->tail->queue_next = job;
            else
                pool->head = job;
            pool->tail = job;
        }
        pthread_mutex_unlock(&pool->mu);

        int failed = run_block(job, b);
        block_done(pool, job, failed);
        bw_pool_yield_point();

        pthread_mutex_lock(&pool->mu);
    }
    pthread_mutex_unlock(&pool->mu);
    return NULL;
}

bw_pool *bw_pool_new(int nthreads)
{
    if (nthreads < 0 || nthreads > 1024) {
        errno = EINVAL;
        return NULL;
    }
    bw_pool *pool = calloc(1, sizeof *pool);
    if (!pool)
        return NULL;
    pthread_mutex_init(&pool->mu, NULL);
    pthread_cond_init(&pool->idle, NULL);
    pool->clock = monotonic_clock;
    pool->wake_r = pool->wake_w = -1;
    if (nthreads > 0) {
        pool->threads = calloc((size_t)nthreads, sizeof *pool->threads);
        if (!pool->threads || wakefd_open(&pool->wake_r, &pool->wake_w, 1) != 0) {
            int err = errno ? errno : ENOMEM;
            bw_pool_free(pool);
            errno = err;
            return NULL;
        }
        for (int i = 0; i < nthreads; i++) {
            if (pthread_create(&pool->threads[i], NULL, worker_main, pool) != 0) {
                int err = errno ? errno : EAGAIN;
                bw_pool_free(pool);
                errno = err;
                return NULL;
            }
            pool->nthreads++;
        }
    }
    return pool;
}

int bw_pool_threads(const bw_pool *pool) { return pool->nthreads; }

size_t bw_pool_live_jobs(bw_pool *pool)
{
    pthread_mutex_lock(&pool->mu);
    size_t n = pool->live;
    pthread_mutex_unlock(&pool->mu);
    return n;
}

void bw_pool_cancel_all(bw_pool *pool)
{
    pthread_mutex_lock(&pool->mu);
    for (size_t i = 0; i < pool->nall; i++)
        bw_job_cancel(pool->all[i]);
    pthread_mutex_unlock(&pool->mu);
}

void bw_pool_set_clock(bw_pool *pool, bw_clock_fn clock, void *ctx)
{
    pool->clock = clock ? clock : monotonic_clock;
    pool->clock_ctx = clock ? ctx : NULL;
}

void bw_pool_free(bw_pool *pool)
{
    if (!pool)
        return;
    bw_pool_cancel_all(pool);
    pthread_mutex_lock(&pool->mu);
    while (pool->live > 0)
        pthread_cond_wait(&pool->idle, &pool->mu);
    pool->shutdown = 1;
    size_t wake = wake_count_locked(pool, (size_t)pool->nthreads);
    pthread_mutex_unlock(&pool->mu);
    wake_idle(pool, wake);
    for (int i = 0; i < pool->nthreads; i++)
        pthread_join(pool->threads[i], NULL);
    wakefd_close(pool->wake_r, pool->wake_w);
    free(pool->threads);
    free(pool->all);
    pthread_mutex_destroy(&pool->mu);
    pthread_cond_destroy(&pool->idle);
    free(pool);
}

static void pool_submit(bw_pool *pool, bw_job *job, bw_channel *channel, int here);

void bw_pool_submit(bw_pool *pool, bw_job *job, bw_channel *channel)
{
    pool_submit(pool, job, channel, pool->nthreads == 0);
}

void bw_pool_submit_here(bw_pool *pool, bw_job *job)
{
    pool_submit(pool, job, NULL, 1);
}

static void pool_submit(bw_pool *pool, bw_job *job, bw_channel *channel, int here)
{
    if (channel) {
        atomic_fetch_add(&channel->refs, 1);
        job->channel = channel;
    }
    job->id = atomic_fetch_add(&pool->next_id, 1) + 1;
    bw_job_incref(job);                   /* the pool's reference, dropped at completion */
    job->t_submit = bw_monotonic();
    job->clock = pool->clock;
    job->clock_ctx = pool->clock_ctx;

    if (job->nblocks == 0) {
        atomic_store(&job->started, 1);
        job->t_start = job->t_submit;
        int status = phase_end(job, 0.0);
        status = status == BW_JOB_PENDING ? BW_JOB_FAILED : status;
        job_explain(job, status, 0.0);
        job_complete(job, status);
        bw_job_decref(job);
        return;
    }

    if (here) {
        /* Inline: every block of every phase on the calling thread, in order. */
        int again;
        do {
            again = 0;
            for (size_t b = 0; b < job->nblocks && !again; b++)
                again = block_done(NULL, job, run_block(job, b));
        } while (again);
        return;
    }

    pthread_mutex_lock(&pool->mu);
    if (pool->nall == pool->capall) {
        size_t cap = pool->capall ? 2 * pool->capall : 64;
        bw_job **grown = realloc(pool->all, cap * sizeof *grown);
        if (!grown) {
            pthread_mutex_unlock(&pool->mu);
            /* Cannot track it: fail the job rather than lose it. */
            bw_fail(&job->err, BW_E_NOMEM, "out of memory while queueing a job");
            atomic_store(&job->started, 1);
            job_complete(job, BW_JOB_FAILED);
            bw_job_decref(job);
            return;
        }
        pool->all = grown;
        pool->capall = cap;
    }
    job->pool_slot = pool->nall;
    pool->all[pool->nall++] = job;
    pool->live++;
    job->next_block = 0;
    size_t wake = pool_enqueue_locked(pool, job);
    pthread_mutex_unlock(&pool->mu);
    wake_idle(pool, wake);
}
