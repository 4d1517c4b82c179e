/*
 * pool.h -- the worker pool, its jobs and the completion channels.  Pure C, no Python.h.
 *
 * A job is split into blocks (about a millisecond of work each).  Worker threads claim
 * blocks round-robin across the active jobs, so one large job uses every thread while many
 * small ones run side by side, and no more than `nthreads` threads are ever busy.  When the
 * last block of a job is done, the thread that did it runs the job's finish step, marks the
 * job done, wakes any blocking waiter and puts the job on its completion channel, whose file
 * descriptor the event loop watches.  Worker threads never call into Python.
 *
 * A pool with nthreads == 0 is the inline fallback: bw_pool_submit runs the whole job on
 * the calling thread before it returns.
 *
 * Timeouts bound a job's execution time, not its time in the queue: the pool measures the
 * wall-clock seconds during which at least one thread was executing one of the job's blocks
 * (or its finish step) and, at every block boundary, stops a job whose execution time
 * reached job->timeout as it stops a cancelled one; the job ends BW_JOB_TIMEOUT.  Inline
 * jobs count the time they run on the calling thread.
 */
#ifndef BW_POOL_H
#define BW_POOL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "bw_status.h"

typedef struct bw_job bw_job;
typedef struct bw_pool bw_pool;
typedef struct bw_channel bw_channel;

/* Work of one block; returns 0, or nonzero after filling job->err (the job fails).  Blocks
 * that may fail together on several threads must not all write job->err: record the
 * failure in the job's context and report it from the finish step. */
typedef int (*bw_block_fn)(bw_job *job, size_t block);
/* Runs after every block of a phase succeeded (not after a cancel or a failure).  Returns
 * 0 when the job is done, BW_JOB_AGAIN to run another phase of job->nblocks blocks (it may
 * change nblocks, >= 1; iterative fits run one iteration a phase, so cancellation is seen
 * between iterations), or a negative number after filling job->err (the job fails). */
typedef int (*bw_finish_fn)(bw_job *job);
#define BW_JOB_AGAIN 1

enum bw_job_status {
    BW_JOB_PENDING = 0,
    BW_JOB_OK = 1,
    BW_JOB_CANCELLED = 2,
    BW_JOB_FAILED = 3,
    BW_JOB_TIMEOUT = 4,         /* its execution time passed job->timeout (below) */
};

/* A clock in seconds (monotonic); the pool measures execution time with it. */
typedef double (*bw_clock_fn)(void *ctx);

struct bw_job {
    uint64_t id;                /* unique within its pool, set by bw_pool_submit */
    atomic_int refs;
    size_t nblocks;
    size_t next_block;          /* guarded by the pool mutex */
    atomic_size_t done_blocks;
    atomic_int cancel;          /* 0, or why the remaining blocks are skipped: 1 cancelled,
                                 * 2 a block failed, 3 the timeout passed */
    atomic_int status;          /* enum bw_job_status; PENDING until finished */
    bw_block_fn block;
    bw_finish_fn finish;
    void *ctx;                  /* owned by the job, released with ctx_free */
    void (*ctx_free)(void *);
    bw_channel *channel;        /* a counted reference, or NULL */
    bw_job *queue_next;         /* run queue (pool mutex) */
    bw_job *chan_next;          /* channel queue (channel mutex) */
    size_t pool_slot;           /* its index in the pool's registry of live jobs (pool mutex) */
    pthread_mutex_t mu;         /* guards the wait below */
    pthread_cond_t cv;
    double t_submit, t_start, t_end;   /* monotonic seconds */
    atomic_int started;
    /* Execution time: the seconds during which at least one thread was executing one of
     * the job's blocks or its finish step (time spent queued does not count).  Kept under
     * mu with the clock copied from the pool at submission. */
    double timeout;             /* the most execution time allowed (< 0 or inf: no limit);
                                 * set before bw_pool_submit, checked at block boundaries */
    int exec_running;           /* threads executing the job now */
    double exec_total;          /* seconds accumulated by closed busy intervals */
    double exec_since;          /* start of the open busy interval (exec_running > 0) */
    bw_clock_fn clock;
    void *clock_ctx;
    bw_error err;               /* why it did not end OK: filled by a failing block or
                                 * finish step (FAILED), or by the pool (CANCELLED,
                                 * TIMEOUT, or out of memory while queueing) */
    atomic_size_t phase;        /* phases finished (iterations of an iterative fit) */
    size_t phases_total;        /* the most phases it may run (0: one-phase job) */
    double result[4];           /* a job's small results (an interval, ...) */
    uint64_t result_id;         /* a fit's posterior id */
    atomic_uint_fast64_t value_bits;   /* a running figure of an iterative fit (the bits of
                                        * a double: the current ELBO of a mixture fit), set
                                        * by its finish step; 0 (+0.0) until then */
};

double bw_monotonic(void);
double bw_wallclock(void);

/* Pool ------------------------------------------------------------------------------------ */
bw_pool *bw_pool_new(int nthreads);         /* NULL on failure (errno set) */
int bw_pool_threads(const bw_pool *pool);
/* Cancel every job, wait for all of them to finish, join the threads, free the pool. */
void bw_pool_free(bw_pool *pool);
/* Number of jobs submitted and not yet finished. */
size_t bw_pool_live_jobs(bw_pool *pool);
/* Ask every unfinished job to stop. */
void bw_pool_cancel_all(bw_pool *pool);
/* The clock of execution times (default: bw_monotonic).  Set it before submitting jobs;
 * tests drive a pool with a clock of their own. */
void bw_pool_set_clock(bw_pool *pool, bw_clock_fn clock, void *ctx);

/* Called by a block function between pieces of its work (each well under BW_YIELD_EVERY,
 * pool.c): on a worker thread that has worked that long since it last yielded, hands the
 * core to any thread waiting for it (an event loop sharing the core wakes up in time).
 * Does nothing on other threads (inline jobs).  Workers also call it between blocks. */
void bw_pool_yield_point(void);

/* Job ------------------------------------------------------------------------------------- */
/* A new job with one reference, owned by the caller; ctx is taken (freed with ctx_free even
 * if this fails).  NULL on allocation failure. */
bw_job *bw_job_new(size_t nblocks, bw_block_fn block, bw_finish_fn finish,
                   void *ctx, void (*ctx_free)(void *));
void bw_job_incref(bw_job *job);
void bw_job_decref(bw_job *job);
/* Hand the job to the pool (the pool takes its own reference).  With a channel, the job is
 * put on it when it finishes.  Inline pools run it to the end here. */
void bw_pool_submit(bw_pool *pool, bw_job *job, bw_channel *channel);
/* Run the job to its end on the calling thread now, whatever the pool's threads (a job
 * shorter than a thread hop); it counts as a job of the pool (ids, clock, timeout). */
void bw_pool_submit_here(bw_pool *pool, bw_job *job);
void bw_job_cancel(bw_job *job);
/* Wait until the job finished or timeout seconds passed (timeout < 0: forever).
 * Returns 1 if finished. */
int bw_job_wait(bw_job *job, double timeout);
int bw_job_finished(const bw_job *job);
/* Execution time so far (0 while queued; final once the job finished). */
double bw_job_exec_time(bw_job *job);

/* Channel --------------------------------------------------------------------------------- */
bw_channel *bw_channel_new(void);           /* one reference; NULL on failure */
void bw_channel_incref(bw_channel *ch);
void bw_channel_decref(bw_channel *ch);
int bw_channel_fd(const bw_channel *ch);
/* Take every finished job off the channel: fills ids[0..cap) and returns how many were
 * taken (call again while it returns cap).  Releases the channel's job references. */
size_t bw_channel_drain(bw_channel *ch, uint64_t *ids, size_t cap);

#endif /* BW_POOL_H */
