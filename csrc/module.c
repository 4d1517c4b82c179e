/*
 * module.c -- the CPython binding of bayesworker's C core.
 *
 * It only translates: arguments in, NumPy buffers checked, C jobs submitted, results and
 * errors out.  It knows no model: every request goes to the family's row in the registry
 * (family.h), and posteriors and reports are described by their family through a writer
 * that builds Python dicts and tuples.  Three heap types live in the module state: Core
 * (one pool and one store), Job (a handle on a submitted job that keeps its arrays alive
 * until the job is finished) and Channel (a completion queue with a file descriptor for
 * the event loop).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#define PY_ARRAY_UNIQUE_SYMBOL bayesworker_ARRAY_API
#include <numpy/arrayobject.h>

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <unistd.h>

#include "bw_codes.h"
#include "bw_dist.h"
#include "compare.h"
#include "conjugate.h"
#include "density.h"
#include "family.h"
#include "pool.h"
#include "store.h"

/* Completed job ids taken off a channel per call into C. */
#define DRAIN_BATCH 256
/* Draws made on the calling thread (sample_now) above this many doubles release the GIL. */
#define NOW_NOGIL_DOUBLES 4096
/* Nesting of the dicts and tuples a family may write. */
#define WRITER_DEPTH 16

/* ======================================================================================== */
/* Module state                                                                             */
/* ======================================================================================== */

typedef struct {
    PyTypeObject *CoreType;
    PyTypeObject *JobType;
    PyTypeObject *ChannelType;
    PyObject *DataError;        /* bayesworker._errors, imported when the module loads */
    PyObject *ModelError;
    PyObject *DisposedError;
} module_state;

static module_state *state_of_type(PyTypeObject *tp)
{
    return (module_state *)PyType_GetModuleState(tp);
}

/*
 * Fork: a child process inherits these objects but not the worker threads, and any mutex
 * may have been held by a thread that no longer exists.  So every object remembers the
 * process that made it; in any other process it is "inherited": unusable (Core methods
 * raise, Core.closed is True) and, when released, its C memory is left alone rather than
 * freed through locks that may never be released.
 */
typedef struct {
    PyObject_HEAD
    bw_pool *pool;
    bw_store *store;
    uint64_t seed;
    int threads;
    pid_t pid;
} CoreObject;

typedef struct {
    PyObject_HEAD
    bw_job *job;
    PyObject *keep;             /* arrays the C job reads or writes */
    int kind;                   /* JOB_FIT, JOB_SAMPLE, JOB_INTERVAL */
    const bw_family *family;    /* a fit's family (its report), else NULL */
    pid_t pid;
} JobObject;

typedef struct {
    PyObject_HEAD
    bw_channel *ch;
    pid_t pid;
} ChannelObject;

enum { JOB_FIT = 0, JOB_SAMPLE = 1, JOB_INTERVAL = 2, JOB_COMPARE = 3 };

/* ======================================================================================== */
/* Errors                                                                                   */
/* ======================================================================================== */

/* The one translation of a C failure (a bw_error: status, message, detail) into a Python
 * exception instance:
 *   BW_E_NOMEM                 MemoryError
 *   BW_E_VALUE                 bayesworker.DataError with .rule (a name of VALUE_RULES),
 *                              .index and .value of the refused value
 *   BW_E_NUMERIC, BW_E_DOMAIN  bayesworker.ModelError (with .index and .value when a value
 *                              caused it)
 *   BW_E_NOT_FOUND             bayesworker.DisposedError
 *   BW_E_CANCELLED             RuntimeError
 *   BW_E_TIMEOUT               TimeoutError */
static PyObject *error_exception(module_state *st, const bw_error *e)
{
    PyObject *type;
    switch (e->status) {
    case BW_E_NOMEM:
        type = PyExc_MemoryError;
        break;
    case BW_E_VALUE:
        type = st->DataError;
        break;
    case BW_E_NOT_FOUND:
        type = st->DisposedError;
        break;
    case BW_E_CANCELLED:
        type = PyExc_RuntimeError;
        break;
    case BW_E_TIMEOUT:
        type = PyExc_TimeoutError;
        break;
    default:
        type = st->ModelError;
    }
    PyObject *exc = PyObject_CallFunction(type, "s", e->msg[0] ? e->msg : "the computation failed");
    if (!exc || !e->has_index)
        return exc;
    PyObject *rule = e->status == BW_E_VALUE && e->rule > 0 && e->rule < BW_NRULES
                         ? PyUnicode_FromString(bw_rule_names[e->rule])
                         : (Py_INCREF(Py_None), Py_None);
    PyObject *index = PyLong_FromDouble(e->index);
    PyObject *value = PyFloat_FromDouble(e->value);
    if (!rule || !index || !value || PyObject_SetAttrString(exc, "rule", rule) < 0 ||
        PyObject_SetAttrString(exc, "index", index) < 0 ||
        PyObject_SetAttrString(exc, "value", value) < 0)
        Py_CLEAR(exc);
    Py_XDECREF(rule);
    Py_XDECREF(index);
    Py_XDECREF(value);
    return exc;
}

/* Raise the exception of e; returns NULL. */
static PyObject *raise_error(module_state *st, const bw_error *e)
{
    PyObject *exc = error_exception(st, e);
    if (exc) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return NULL;
}

/* Raise a failure of the given status with a printf-style message; returns NULL. */
static PyObject *raise_status(module_state *st, int status, const char *fmt, ...)
{
    bw_error e;
    memset(&e, 0, sizeof e);
    e.status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.msg, sizeof e.msg, fmt, ap);
    va_end(ap);
    return raise_error(st, &e);
}

/* ======================================================================================== */
/* Channel                                                                                  */
/* ======================================================================================== */

static void Channel_dealloc(ChannelObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    if (self->pid == getpid())
        bw_channel_decref(self->ch);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyObject *Channel_fileno(ChannelObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromLong(bw_channel_fd(self->ch));
}

static PyObject *Channel_drain(ChannelObject *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *list = PyList_New(0);
    if (!list)
        return NULL;
    uint64_t ids[DRAIN_BATCH];
    size_t n;
    do {
        Py_BEGIN_ALLOW_THREADS
        n = bw_channel_drain(self->ch, ids, DRAIN_BATCH);
        Py_END_ALLOW_THREADS
        for (size_t i = 0; i < n; i++) {
            PyObject *v = PyLong_FromUnsignedLongLong(ids[i]);
            if (!v || PyList_Append(list, v) < 0) {
                Py_XDECREF(v);
                Py_DECREF(list);
                return NULL;
            }
            Py_DECREF(v);
        }
    } while (n == DRAIN_BATCH);
    return list;
}

static PyMethodDef Channel_methods[] = {
    {"fileno", (PyCFunction)Channel_fileno, METH_NOARGS,
     "The file descriptor that becomes readable when jobs finish."},
    {"drain", (PyCFunction)Channel_drain, METH_NOARGS,
     "Ids of the jobs finished since the last drain."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot Channel_slots[] = {
    {Py_tp_dealloc, Channel_dealloc},
    {Py_tp_methods, Channel_methods},
    {Py_tp_doc, "A completion channel: finished jobs, and a file descriptor to watch."},
    {0, NULL},
};

static PyType_Spec Channel_spec = {
    "bayesworker._core.Channel", sizeof(ChannelObject), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    Channel_slots,
};

/* ======================================================================================== */
/* The writer families describe posteriors and reports with (family.h)                      */
/* ======================================================================================== */

typedef struct {
    bw_writer w;                /* first: the families see only this */
    PyObject *obj[WRITER_DEPTH];    /* open containers: a dict, or a list made a tuple */
    const char *key[WRITER_DEPTH];  /* where each goes in its parent */
    int tuple[WRITER_DEPTH];
    int depth;
    int failed;
} py_writer;

/* Put v (a new reference, NULL on a failed allocation) under key in the open container. */
static void pw_put(py_writer *p, const char *key, PyObject *v)
{
    if (!v || p->failed || p->depth == 0) {
        p->failed = 1;
        Py_XDECREF(v);
        return;
    }
    PyObject *top = p->obj[p->depth - 1];
    if ((key ? PyDict_SetItemString(top, key, v) : PyList_Append(top, v)) < 0)
        p->failed = 1;
    Py_DECREF(v);
}

static void pw_open(bw_writer *w, const char *key, int tuple)
{
    py_writer *p = (py_writer *)w;
    if (p->failed || p->depth == WRITER_DEPTH) {
        p->failed = 1;
        return;
    }
    PyObject *o = tuple ? PyList_New(0) : PyDict_New();
    if (!o) {
        p->failed = 1;
        return;
    }
    p->obj[p->depth] = o;
    p->key[p->depth] = key;
    p->tuple[p->depth] = tuple;
    p->depth++;
}

static void pw_close(bw_writer *w)
{
    py_writer *p = (py_writer *)w;
    if (p->depth <= 1) {        /* never close the root */
        p->failed = 1;
        return;
    }
    p->depth--;
    PyObject *o = p->obj[p->depth];
    PyObject *v = p->tuple[p->depth] ? PyList_AsTuple(o) : (Py_INCREF(o), o);
    Py_DECREF(o);
    pw_put(p, p->key[p->depth], v);
}

static void pw_number(bw_writer *w, const char *key, double v)
{
    pw_put((py_writer *)w, key, PyFloat_FromDouble(v));
}

static void pw_integer(bw_writer *w, const char *key, long long v)
{
    pw_put((py_writer *)w, key, PyLong_FromLongLong(v));
}

static void pw_count(bw_writer *w, const char *key, uint64_t v)
{
    pw_put((py_writer *)w, key, PyLong_FromUnsignedLongLong(v));
}

static void pw_boolean(bw_writer *w, const char *key, int v)
{
    pw_put((py_writer *)w, key, PyBool_FromLong(v));
}

static void pw_none(bw_writer *w, const char *key)
{
    Py_INCREF(Py_None);
    pw_put((py_writer *)w, key, Py_None);
}

/* A writer into root (a dict or a list; borrowed). */
static void pw_init(py_writer *p, PyObject *root)
{
    memset(p, 0, sizeof *p);
    p->w = (bw_writer){pw_open, pw_close, pw_number, pw_integer, pw_count, pw_boolean, pw_none};
    p->obj[0] = root;
    p->depth = 1;
}

/* Finish: unwind what a failed write left open; 0, or -1 with a Python error set. */
static int pw_done(py_writer *p)
{
    while (p->depth > 1)
        Py_DECREF(p->obj[--p->depth]);
    if (p->failed && !PyErr_Occurred())
        PyErr_SetString(PyExc_RuntimeError, "describing a posterior failed");
    return p->failed ? -1 : 0;
}

/* ======================================================================================== */
/* Job                                                                                      */
/* ======================================================================================== */

static void Job_dealloc(JobObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    if (self->job && self->pid == getpid()) {
        if (!bw_job_finished(self->job)) {
            /* The arrays must outlive the C work: stop it and wait (about a block). */
            bw_job_cancel(self->job);
            Py_BEGIN_ALLOW_THREADS
            bw_job_wait(self->job, -1.0);
            Py_END_ALLOW_THREADS
        }
        bw_job_decref(self->job);
    }
    Py_XDECREF(self->keep);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyObject *Job_cancel(JobObject *self, PyObject *Py_UNUSED(ignored))
{
    bw_job_cancel(self->job);
    Py_RETURN_NONE;
}

static PyObject *Job_wait(JobObject *self, PyObject *arg)
{
    double timeout = -1.0;
    if (arg != Py_None) {
        timeout = PyFloat_AsDouble(arg);
        if (timeout == -1.0 && PyErr_Occurred())
            return NULL;
        if (!(timeout >= 0))
            timeout = 0;
    }
    int done;
    Py_BEGIN_ALLOW_THREADS
    done = bw_job_wait(self->job, timeout);
    Py_END_ALLOW_THREADS
    return PyBool_FromLong(done);
}

static PyObject *Job_get_id(JobObject *self, void *c)
{
    (void)c;
    return PyLong_FromUnsignedLongLong(self->job->id);
}

static PyObject *Job_get_done(JobObject *self, void *c)
{
    (void)c;
    return PyBool_FromLong(bw_job_finished(self->job));
}

static PyObject *Job_get_status(JobObject *self, void *c)
{
    (void)c;
    static const char *const names[] = {"pending", "ok", "cancelled", "failed", "timeout"};
    int s = atomic_load(&self->job->status);
    return PyUnicode_FromString(names[s]);
}

static PyObject *Job_get_exec_time(JobObject *self, void *c)
{
    (void)c;
    return PyFloat_FromDouble(bw_job_exec_time(self->job));
}

static PyObject *Job_get_exception(JobObject *self, void *c)
{
    (void)c;
    int s = atomic_load(&self->job->status);
    if (s == BW_JOB_PENDING || s == BW_JOB_OK)
        Py_RETURN_NONE;
    return error_exception(state_of_type(Py_TYPE(self)), &self->job->err);
}

static PyObject *Job_get_error(JobObject *self, void *c)
{
    (void)c;
    int s = atomic_load(&self->job->status);
    if (s == BW_JOB_PENDING || s == BW_JOB_OK)
        Py_RETURN_NONE;
    return PyUnicode_FromString(self->job->err.msg);
}

static PyObject *Job_get_progress(JobObject *self, void *c)
{
    (void)c;
    bw_job *job = self->job;
    if (job->phases_total > 0)    /* iterative: count iterations, not blocks */
        return Py_BuildValue("(nn)", (Py_ssize_t)job->phase, (Py_ssize_t)job->phases_total);
    size_t done = atomic_load(&job->done_blocks);
    return Py_BuildValue("(nn)", (Py_ssize_t)done, (Py_ssize_t)job->nblocks);
}

/* A comparison's figures: a dict of per-arm tuples (see Core.compare). */
static PyObject *compare_dict(const bw_cmp_result *r)
{
    PyObject *holder = PyList_New(0);
    if (!holder)
        return NULL;
    py_writer p;
    pw_init(&p, holder);
    bw_writer *w = &p.w;
    double col[BW_CMP_MAX_ARMS];
    int n = r->narms;
    w->open(w, NULL, 0);
#define CMP_COLUMN(key, expr)                                                                \
    do {                                                                                     \
        for (int i = 0; i < n; i++)                                                          \
            col[i] = (expr);                                                                 \
        bw_write_numbers(w, key, col, (size_t)n);                                            \
    } while (0)
    CMP_COLUMN("prob_best", r->arm[i].prob_best);
    CMP_COLUMN("prob_beats", r->arm[i].prob_beats);
    CMP_COLUMN("loss", r->arm[i].loss);
    CMP_COLUMN("loss_vs", r->arm[i].loss_vs);
    CMP_COLUMN("mean", r->arm[i].mean);
    CMP_COLUMN("truncated", (double)r->arm[i].truncated);
    CMP_COLUMN("log_mean_frequency", r->arm[i].log_mean[0]);
    CMP_COLUMN("log_mean_severity", r->arm[i].log_mean[1]);
    CMP_COLUMN("se_prob_best", r->arm[i].se_best);
    CMP_COLUMN("se_prob_beats", r->arm[i].se_beats);
    CMP_COLUMN("se_loss", r->arm[i].se_loss);
    CMP_COLUMN("se_loss_vs", r->arm[i].se_loss_vs);
    CMP_COLUMN("se_mean", r->arm[i].se_mean);
    CMP_COLUMN("se_lift_mean_relative", r->arm[i].se_lift_mean[BW_CMP_RELATIVE]);
    CMP_COLUMN("se_lift_mean_absolute", r->arm[i].se_lift_mean[BW_CMP_ABSOLUTE]);
    static const char *const kinds[2] = {"relative", "absolute"};
    for (int k = 0; k < 2; k++) {
        w->open(w, kinds[k], 1);                 /* per level: per figure: per arm */
        for (int l = 0; l < r->nlevels; l++) {
            w->open(w, NULL, 1);
            for (int f = 0; f < 4; f++)
                CMP_COLUMN(NULL, r->arm[i].lift[l][k][f]);
            w->close(w);
        }
        w->close(w);
    }
    for (int k = 0; k < 4; k++) {               /* P(lift > t), then its standard error */
        char key[32];
        snprintf(key, sizeof key, "%sabove_%s", k < 2 ? "" : "se_", kinds[k % 2]);
        w->open(w, key, 1);                      /* per threshold: per arm */
        for (int t = 0; t < r->nthresholds; t++)
            CMP_COLUMN(NULL, k < 2 ? r->arm[i].above[t][k] : r->arm[i].se_above[t][k % 2]);
        w->close(w);
    }
#undef CMP_COLUMN
    w->number(w, "error", r->error);
    w->count(w, "draws", r->draws);
    w->close(w);
    PyObject *d = NULL;
    if (pw_done(&p) == 0) {
        d = PyList_GET_ITEM(holder, 0);
        Py_INCREF(d);
    }
    Py_DECREF(holder);
    return d;
}

static PyObject *Job_get_result(JobObject *self, void *c)
{
    (void)c;
    if (atomic_load(&self->job->status) != BW_JOB_OK)
        Py_RETURN_NONE;
    if (self->kind == JOB_FIT)
        return PyLong_FromUnsignedLongLong(self->job->result_id);
    if (self->kind == JOB_INTERVAL)
        return Py_BuildValue("(dd)", self->job->result[0], self->job->result[1]);
    if (self->kind == JOB_COMPARE)
        return compare_dict(bw_compare_result(self->job));
    Py_RETURN_NONE;
}

static PyObject *Job_get_report(JobObject *self, void *c)
{
    (void)c;
    if (!self->family || !self->family->report ||
        atomic_load(&self->job->status) != BW_JOB_OK)
        Py_RETURN_NONE;
    PyObject *holder = PyList_New(0);
    if (!holder)
        return NULL;
    py_writer p;
    pw_init(&p, holder);
    self->family->report(self->job, &p.w);
    PyObject *r = NULL;
    if (pw_done(&p) == 0) {
        r = PyList_GET_SIZE(holder) ? PyList_GET_ITEM(holder, 0) : Py_None;
        Py_INCREF(r);
    }
    Py_DECREF(holder);
    return r;
}

static PyObject *Job_get_value(JobObject *self, void *c)
{
    (void)c;
    if (self->job->phases_total == 0)
        Py_RETURN_NONE;
    uint64_t bits = atomic_load(&self->job->value_bits);
    double v;
    memcpy(&v, &bits, sizeof v);
    if (isnan(v))
        Py_RETURN_NONE;
    return PyFloat_FromDouble(v);
}

static PyObject *Job_get_runtime(JobObject *self, void *c)
{
    (void)c;
    if (!bw_job_finished(self->job))
        return PyFloat_FromDouble(bw_monotonic() - self->job->t_submit);
    return PyFloat_FromDouble(self->job->t_end - self->job->t_submit);
}

/* A job's timeout: None (no limit: -1) or seconds >= 0 of execution time. */
static int parse_timeout(PyObject *obj, double *out)
{
    *out = -1.0;
    if (obj == Py_None)
        return 0;
    double t = PyFloat_AsDouble(obj);
    if (t == -1.0 && PyErr_Occurred())
        return -1;
    if (!(t >= 0)) {
        PyErr_Format(PyExc_ValueError,
                     "timeout = %R must be None or a number of seconds >= 0", obj);
        return -1;
    }
    *out = t;
    return 0;
}

static PyMethodDef Job_methods[] = {
    {"cancel", (PyCFunction)Job_cancel, METH_NOARGS,
     "Ask the job to stop; it finishes within a block."},
    {"wait", (PyCFunction)Job_wait, METH_O,
     "wait(timeout) -> bool: block (GIL released) until finished or timeout (None: forever)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Job_getset[] = {
    {"id", (getter)Job_get_id, NULL, "Job id, unique within its Core.", NULL},
    {"done", (getter)Job_get_done, NULL, "True once finished.", NULL},
    {"status", (getter)Job_get_status, NULL,
     "'pending', 'ok', 'cancelled', 'failed' or 'timeout'.", NULL},
    {"exec_time", (getter)Job_get_exec_time, NULL,
     "Seconds during which a worker thread was executing the job (0.0 while queued).", NULL},
    {"exception", (getter)Job_get_exception, NULL,
     "None while pending or after success; else the exception that says why it ended.",
     NULL},
    {"error", (getter)Job_get_error, NULL,
     "Why the job did not end OK, as a sentence (str(exception)); None while pending or "
     "after success.", NULL},
    {"progress", (getter)Job_get_progress, NULL,
     "(blocks done, blocks in all), or (iterations, most iterations) of an iterative fit.",
     NULL},
    {"result", (getter)Job_get_result, NULL,
     "A fit's posterior id, an interval's (lo, hi), or None.", NULL},
    {"runtime", (getter)Job_get_runtime, NULL, "Seconds from submission to finish.", NULL},
    {"value", (getter)Job_get_value, NULL,
     "The running figure of an iterative fit (a mixture's current ELBO), or None.", NULL},
    {"report", (getter)Job_get_report, NULL,
     "A finished fit's report from its family (a mixture's per-K ELBOs, ...), or None.",
     NULL},
    {"mixture_report", (getter)Job_get_report, NULL, "The old name of report.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot Job_slots[] = {
    {Py_tp_dealloc, Job_dealloc},
    {Py_tp_methods, Job_methods},
    {Py_tp_getset, Job_getset},
    {Py_tp_doc, "A submitted job of the C core."},
    {0, NULL},
};

static PyType_Spec Job_spec = {
    "bayesworker._core.Job", sizeof(JobObject), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    Job_slots,
};

/* Wrap and submit a C job; takes the C job's reference and a new reference to keep.
 * timeout: the seconds of execution time the job may take (< 0: no limit).  here: run it
 * to its end on this thread, the GIL held (a job of a few microseconds). */
static PyObject *submit_job(CoreObject *self, bw_job *cjob, int kind, const bw_family *family,
                            PyObject *keep, PyObject *channel, double timeout, int here)
{
    module_state *st = state_of_type(Py_TYPE(self));
    if (!cjob) {
        Py_XDECREF(keep);
        return PyErr_NoMemory();
    }
    cjob->timeout = timeout;
    bw_channel *ch = NULL;
    if (channel != Py_None) {
        if (!Py_IS_TYPE(channel, st->ChannelType)) {
            bw_job_decref(cjob);
            Py_XDECREF(keep);
            PyErr_SetString(PyExc_TypeError, "channel must be a Channel or None");
            return NULL;
        }
        ch = ((ChannelObject *)channel)->ch;
    }
    JobObject *job = PyObject_New(JobObject, st->JobType);
    if (!job) {
        bw_job_decref(cjob);
        Py_XDECREF(keep);
        return NULL;
    }
    job->job = cjob;
    job->keep = keep;
    job->kind = kind;
    job->family = family;
    job->pid = self->pid;
    bw_pool *pool = self->pool;
    if (here) {
        bw_pool_submit_here(pool, cjob);
    } else if (bw_pool_threads(pool) == 0) {
        Py_BEGIN_ALLOW_THREADS
        bw_pool_submit(pool, cjob, ch);
        Py_END_ALLOW_THREADS
    } else {
        bw_pool_submit(pool, cjob, ch);
    }
    return (PyObject *)job;
}

static PyObject *submit(CoreObject *self, bw_job *cjob, int kind, const bw_family *family,
                        PyObject *keep, PyObject *channel, double timeout)
{
    return submit_job(self, cjob, kind, family, keep, channel, timeout, 0);
}

/* ======================================================================================== */
/* Core                                                                                     */
/* ======================================================================================== */

static int core_inherited(CoreObject *self) { return self->pid != getpid(); }

static int core_check_open(CoreObject *self)
{
    if (self->pool && core_inherited(self)) {
        PyErr_SetString(PyExc_RuntimeError,
                        "this worker was inherited through fork and is closed in this "
                        "process; create a new InferenceWorker in the child");
        return -1;
    }
    if (!self->pool) {
        PyErr_SetString(PyExc_RuntimeError, "the worker is closed");
        return -1;
    }
    return 0;
}

static PyObject *Core_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"threads", "seed", NULL};
    int threads;
    unsigned long long seed;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "iK", kwlist, &threads, &seed))
        return NULL;
    if (threads < 0 || threads > 1024) {
        PyErr_Format(PyExc_ValueError, "threads = %d must be between 0 and 1024", threads);
        return NULL;
    }
    CoreObject *self = (CoreObject *)type->tp_alloc(type, 0);
    if (!self)
        return NULL;
    self->seed = seed;
    self->threads = threads;
    self->pid = getpid();
    self->store = bw_store_new();
    if (!self->store) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    self->pool = bw_pool_new(threads);
    if (!self->pool) {
        Py_DECREF(self);
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return (PyObject *)self;
}

static void core_close(CoreObject *self)
{
    bw_pool *pool = self->pool;
    bw_store *store = self->store;
    self->pool = NULL;
    self->store = NULL;
    if (core_inherited(self))
        return;     /* the parent's threads and locks: not ours to free (see above) */
    if (pool) {
        Py_BEGIN_ALLOW_THREADS
        bw_pool_free(pool);
        Py_END_ALLOW_THREADS
    }
    bw_store_free(store);
}

static void Core_dealloc(CoreObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    core_close(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyObject *Core_close(CoreObject *self, PyObject *Py_UNUSED(ignored))
{
    core_close(self);
    Py_RETURN_NONE;
}

static PyObject *Core_new_channel(CoreObject *self, PyObject *Py_UNUSED(ignored))
{
    module_state *st = state_of_type(Py_TYPE(self));
    ChannelObject *ch = PyObject_New(ChannelObject, st->ChannelType);
    if (!ch)
        return NULL;
    ch->pid = self->pid;
    ch->ch = bw_channel_new();
    if (!ch->ch) {
        ch->ch = NULL;
        Py_DECREF(ch);
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return (PyObject *)ch;
}

static int check_level(double level)
{
    if (!(level > 0.0 && level < 1.0)) {
        char *text = PyOS_double_to_string(level, 'r', 0, 0, NULL);
        PyErr_Format(PyExc_ValueError, "level = %s must be strictly between 0 and 1",
                     text ? text : "?");
        PyMem_Free(text);
        return -1;
    }
    return 0;
}

/* A C-contiguous, aligned, native float64 array (1-D unless any_ndim; writeable if asked),
 * or an error naming the argument. */
static int check_f64(PyObject *obj, const char *name, int writeable, int any_ndim)
{
    if (!PyArray_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be a NumPy array, not %.80s", name,
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    PyArrayObject *a = (PyArrayObject *)obj;
    int need = NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED | (writeable ? NPY_ARRAY_WRITEABLE : 0);
    if ((!any_ndim && PyArray_NDIM(a) != 1) || PyArray_TYPE(a) != NPY_DOUBLE ||
        !PyArray_ISNOTSWAPPED(a) || !PyArray_CHKFLAGS(a, need)) {
        PyErr_Format(PyExc_ValueError, "%s must be a %sC-contiguous aligned native float64%s "
                     "array", name, any_ndim ? "" : "1-D ", writeable ? " writeable" : "");
        return -1;
    }
    return 0;
}

/* ======================================================================================== */
/* Fits                                                                                     */
/* ======================================================================================== */

/* The family named by model: its code (int) or its name (str). */
static const bw_family *family_of(module_state *st, PyObject *model)
{
    const bw_family *f = NULL;
    if (PyUnicode_Check(model)) {
        const char *name = PyUnicode_AsUTF8(model);
        if (!name)
            return NULL;
        f = bw_family_by_name(name);
    } else if (PyLong_Check(model)) {
        int overflow;
        long code = PyLong_AsLongAndOverflow(model, &overflow);
        if (code == -1 && PyErr_Occurred())
            return NULL;
        f = overflow ? NULL : bw_family_by_code((int)code);
    } else {
        PyErr_Format(PyExc_TypeError, "model must be a name or a code, not %.80s",
                     Py_TYPE(model)->tp_name);
        return NULL;
    }
    if (!f) {
        PyObject *r = PyObject_Repr(model);
        const char *text = r ? PyUnicode_AsUTF8(r) : NULL;
        if (text)
            raise_status(st, BW_E_DOMAIN, "model %.100s is not in the registry (see MODELS)",
                         text);
        Py_XDECREF(r);
    }
    return f;
}

/* A sequence of floats as a PyMem array (*out; NULL when empty) of *n numbers. */
static int doubles_of(PyObject *seq_obj, const char *name, double **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    PyObject *seq = PySequence_Fast(seq_obj, name);
    if (!seq)
        return -1;
    Py_ssize_t len = PySequence_Fast_GET_SIZE(seq);
    double *x = PyMem_Malloc((size_t)(len ? len : 1) * sizeof *x);
    if (!x) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < len; i++) {
        x[i] = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(seq, i));
        if (x[i] == -1.0 && PyErr_Occurred()) {
            PyMem_Free(x);
            Py_DECREF(seq);
            return -1;
        }
    }
    Py_DECREF(seq);
    *out = x;
    *n = (size_t)len;
    return 0;
}

/* options = (Ks, tol, max_iter) of an iterative fit. */
static int options_of(PyObject *obj, bw_fit_options *o)
{
    PyObject *Ks;
    if (!PyArg_ParseTuple(obj, "Odi;options must be (Ks, tol, max_iter)", &Ks, &o->tol,
                          &o->max_iter))
        return -1;
    PyObject *seq = PySequence_Fast(Ks, "Ks must be a sequence of ints");
    if (!seq)
        return -1;
    Py_ssize_t nK = PySequence_Fast_GET_SIZE(seq);
    if (nK < 1 || nK > BW_MIX_MAX_K) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError, "Ks must list 1 to %d numbers of components",
                     BW_MIX_MAX_K);
        return -1;
    }
    for (Py_ssize_t i = 0; i < nK; i++) {
        long K = PyLong_AsLong(PySequence_Fast_GET_ITEM(seq, i));
        if (K == -1 && PyErr_Occurred()) {
            Py_DECREF(seq);
            return -1;
        }
        o->Ks[i] = K < 0 ? 0 : K > BW_MIX_MAX_K ? BW_MIX_MAX_K + 1 : (int)K;
    }
    Py_DECREF(seq);
    o->nK = (int)nK;
    return 0;
}

/* A fit's first steps: its timeout, an open core, a zeroed spec of model's family. */
static int fit_spec_start(CoreObject *self, module_state *st, PyObject *model,
                          PyObject *timeout_obj, double *timeout, bw_fit_spec *spec)
{
    memset(spec, 0, sizeof *spec);
    if (parse_timeout(timeout_obj, timeout) < 0 || core_check_open(self) < 0)
        return -1;
    return (spec->family = family_of(st, model)) ? 0 : -1;
}

static PyObject *Core_fit(CoreObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"model", "prior", "successes", "trials", "values", "stats",
                             "options", "channel", "timeout", "here", NULL};
    module_state *st = state_of_type(Py_TYPE(self));
    PyObject *model, *prior_obj, *values = Py_None, *stats_obj = Py_None, *opts = Py_None;
    PyObject *channel = Py_None, *timeout_obj = Py_None;
    long long successes = 0, trials = 0;
    double timeout, *prior = NULL, *stats = NULL;
    int here = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|$LLOOOOOp", kwlist, &model, &prior_obj,
                                     &successes, &trials, &values, &stats_obj, &opts, &channel,
                                     &timeout_obj, &here))
        return NULL;
    bw_fit_spec spec;
    if (fit_spec_start(self, st, model, timeout_obj, &timeout, &spec) < 0)
        return NULL;
    spec.successes = successes;
    spec.trials = trials;
    if (values != Py_None) {
        if (check_f64(values, "values", 0, 0) < 0)
            return NULL;
        spec.values = (const double *)PyArray_DATA((PyArrayObject *)values);
        spec.n = (size_t)PyArray_DIM((PyArrayObject *)values, 0);
    }
    if (opts != Py_None && options_of(opts, &spec.options) < 0)
        return NULL;
    PyObject *result = NULL;
    if (doubles_of(prior_obj, "prior must be a sequence of floats", &prior, &spec.nprior) < 0 ||
        (stats_obj != Py_None &&
         doubles_of(stats_obj, "stats must be a sequence of floats", &stats, &spec.nstats) < 0))
        goto done;
    spec.prior = prior;
    spec.stats = stats;
    bw_error err;
    if (bw_check_fit(&spec, &err) != 0) {
        raise_error(st, &err);
        goto done;
    }
    uint64_t id = bw_store_next_id(self->store);
    spec.stream_key = bw_stream_key(self->seed, id);
    PyObject *keep = values == Py_None ? NULL : (Py_INCREF(values), values);
    result = submit_job(self, spec.family->fit_job(self->store, id, &spec), JOB_FIT,
                        spec.family, keep, here ? Py_None : channel, timeout, here);
done:
    PyMem_Free(prior);
    PyMem_Free(stats);
    return result;
}

/* obj as a C-contiguous aligned native array of typenum with ndim dimensions (the first
 * of length rows when rows >= 0, the second of length cols when ndim 2 and cols >= 0),
 * writeable if asked; NULL for None when optional; *bad set on error. */
static PyArrayObject *batch_array(PyObject *obj, const char *name, int typenum, int ndim,
                                  Py_ssize_t rows, Py_ssize_t cols, int writeable, int *bad)
{
    if (obj == Py_None)
        return NULL;
    int need = NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED | (writeable ? NPY_ARRAY_WRITEABLE : 0);
    PyArrayObject *a = (PyArrayObject *)obj;
    if (!PyArray_Check(obj) || PyArray_NDIM(a) != ndim || PyArray_TYPE(a) != typenum ||
        !PyArray_ISNOTSWAPPED(a) || !PyArray_CHKFLAGS(a, need) ||
        (rows >= 0 && PyArray_DIM(a, 0) != rows) ||
        (ndim == 2 && cols >= 0 && PyArray_DIM(a, 1) != cols)) {
        PyErr_Format(PyExc_ValueError, "%s must be a C-contiguous native %d-D %s%s array "
                     "(one row per group)", name, ndim,
                     typenum == NPY_DOUBLE ? "float64" : typenum == NPY_INT64 ? "int64" : "uint64",
                     writeable ? " writeable" : "");
        *bad = 1;
    }
    return a;
}

/* Raise e for group g (the exception's .group). */
static PyObject *raise_group_error(module_state *st, const bw_error *e, Py_ssize_t g)
{
    PyObject *exc = error_exception(st, e);
    PyObject *group = exc ? PyLong_FromSsize_t(g) : NULL;
    if (group && PyObject_SetAttrString(exc, "group", group) == 0)
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_XDECREF(group);
    Py_XDECREF(exc);
    return NULL;
}

static PyObject *Core_fit_batch(CoreObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"model", "prior", "ids", "counts", "values", "offsets", "stats",
                             "summaries", "channel", "timeout", NULL};
    module_state *st = state_of_type(Py_TYPE(self));
    PyObject *model, *prior_obj, *ids_o, *counts_o = Py_None, *values_o = Py_None;
    PyObject *offsets_o = Py_None, *stats_o = Py_None, *sum_o = Py_None;
    PyObject *channel = Py_None, *timeout_obj = Py_None;
    double timeout, *prior = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOO|$OOOOOOO", kwlist, &model, &prior_obj,
                                     &ids_o, &counts_o, &values_o, &offsets_o, &stats_o,
                                     &sum_o, &channel, &timeout_obj))
        return NULL;
    bw_fit_spec spec;
    if (fit_spec_start(self, st, model, timeout_obj, &timeout, &spec) < 0)
        return NULL;
    if (spec.family->fit_job != bw_conjugate_fit_job ||
        spec.family->summarise != bw_conj_summarise)
        return raise_status(st, BW_E_DOMAIN, "model %s has no batch fit (it is not a "
                            "conjugate family with parts); fit its groups one by one",
                            spec.family->name);
    int bad = 0;
    PyArrayObject *ids = batch_array(ids_o, "ids", NPY_UINT64, 1, -1, -1, 1, &bad);
    if (bad || !ids) {
        if (!bad)
            PyErr_SetString(PyExc_TypeError, "ids must be a uint64 array");
        return NULL;
    }
    Py_ssize_t G = PyArray_DIM(ids, 0);
    PyArrayObject *counts = batch_array(counts_o, "counts", NPY_INT64, 2, G, 2, 0, &bad);
    PyArrayObject *values = batch_array(values_o, "values", NPY_DOUBLE, 1, -1, -1, 0, &bad);
    PyArrayObject *offsets = batch_array(offsets_o, "offsets", NPY_INT64, 1, G + 1, -1, 0, &bad);
    PyArrayObject *stats = batch_array(stats_o, "stats", NPY_DOUBLE, 2, G, -1, 0, &bad);
    PyArrayObject *sums = batch_array(sum_o, "summaries", NPY_DOUBLE, 2, G, -1, 1, &bad);
    if (bad)
        return NULL;
    if ((values == NULL) != (offsets == NULL) || (values && stats)) {
        PyErr_SetString(PyExc_ValueError, "give values with offsets, or stats, or neither");
        return NULL;
    }
    bw_batch_spec b = {.ngroups = (size_t)G, .ids = PyArray_DATA(ids)};
    b.counts = counts ? PyArray_DATA(counts) : NULL;
    b.stats = stats ? PyArray_DATA(stats) : NULL;
    b.nstats = stats ? (size_t)PyArray_DIM(stats, 1) : 0;
    b.summaries = sums ? PyArray_DATA(sums) : NULL;
    b.summary_width = sums ? (size_t)PyArray_DIM(sums, 1) : 0;
    if (values) {
        b.values = PyArray_DATA(values);
        b.offsets = PyArray_DATA(offsets);
        for (Py_ssize_t g = 0; g < G; g++)
            if (b.offsets[g] < 0 || b.offsets[g + 1] < b.offsets[g])
                return raise_status(st, BW_E_DOMAIN, "offsets[%zd] = %lld and offsets[%zd] = "
                                    "%lld are out of order", g, (long long)b.offsets[g], g + 1,
                                    (long long)b.offsets[g + 1]);
        if (b.offsets[0] != 0 || b.offsets[G] != PyArray_DIM(values, 0))
            return raise_status(st, BW_E_DOMAIN, "offsets must run from 0 to len(values)");
    }
    if (doubles_of(prior_obj, "prior must be a sequence of floats", &prior, &spec.nprior) < 0)
        return NULL;
    spec.prior = prior;
    /* Every group checked here as its own fit would be (its values in the job). */
    bw_error err;
    for (Py_ssize_t g = 0; g < G; g++) {
        bw_fit_spec s = spec;
        if (b.counts) {
            s.successes = b.counts[2 * g];
            s.trials = b.counts[2 * g + 1];
        }
        if (b.stats) {
            s.stats = b.stats + (size_t)g * b.nstats;
            s.nstats = b.nstats;
        } else if (b.values) {
            s.values = b.values + b.offsets[g];
            s.n = (size_t)(b.offsets[g + 1] - b.offsets[g]);
        }
        if (bw_check_fit(&s, &err) != 0) {
            PyMem_Free(prior);
            return raise_group_error(st, &err, g);
        }
    }
    for (Py_ssize_t g = 0; g < G; g++)
        b.ids[g] = bw_store_next_id(self->store);
    PyObject *keep = PyTuple_Pack(6, ids_o, counts_o, values_o, offsets_o, stats_o, sum_o);
    PyObject *result = keep ? submit(self, bw_conjugate_batch_job(self->store, &spec, &b),
                                     JOB_FIT, spec.family, keep, channel, timeout)
                            : NULL;
    PyMem_Free(prior);
    return result;
}

/* ======================================================================================== */
/* Parts of a stored posterior: draws and intervals, through the posterior's family        */
/* ======================================================================================== */

/* A heap copy of the posterior (the caller frees it), or a DisposedError. */
static bw_record *posterior_copy(CoreObject *self, unsigned long long id)
{
    bw_record *post = NULL;
    int rc = bw_store_get(self->store, id, &post);
    if (rc == BW_E_NOT_FOUND)
        raise_status(state_of_type(Py_TYPE(self)), BW_E_NOT_FOUND,
                     "posterior %llu is not in the store (disposed, evicted or cleared)", id);
    else if (rc != BW_OK)
        PyErr_NoMemory();
    return post;
}

/* The posterior, its part's draw width (> 0) and stream slot; NULL with an error if the
 * posterior is gone or the part cannot be drawn. */
static bw_record *drawable(CoreObject *self, unsigned long long id, int part, size_t *width,
                           int *slot)
{
    bw_record *post = posterior_copy(self, id);
    if (!post)
        return NULL;
    *width = post->family->draw_width(post, part);
    *slot = post->family->stream_of(post, part);
    if (*width == 0 || *slot < 0) {
        raise_status(state_of_type(Py_TYPE(self)), BW_E_DOMAIN,
                     "posterior %llu (%s) has no part %d to draw", id, post->family->name, part);
        free(post);
        return NULL;
    }
    return post;
}

/* Reserve n positions of a stream: *pos the first. */
static int reserve(CoreObject *self, unsigned long long id, int slot, uint64_t n, uint64_t *pos)
{
    int rc = bw_store_reserve(self->store, id, slot, n, pos);
    if (rc == BW_OK)
        return 0;
    raise_status(state_of_type(Py_TYPE(self)), rc,
                 rc == BW_E_NOT_FOUND ? "posterior %llu is not in the store (disposed, evicted "
                                        "or cleared)"
                                      : "the stream of posterior %llu is spent",
                 id);
    return -1;
}

static PyObject *Core_reserve(CoreObject *self, PyObject *args)
{
    unsigned long long id;
    int part, slot;
    long long n;
    size_t width;
    uint64_t pos;
    if (!PyArg_ParseTuple(args, "KiL", &id, &part, &n) || core_check_open(self) < 0)
        return NULL;
    if (n < 0) {
        PyErr_Format(PyExc_ValueError, "n = %lld must be >= 0", n);
        return NULL;
    }
    bw_record *post = drawable(self, id, part, &width, &slot);
    if (!post)
        return NULL;
    free(post);
    if (reserve(self, id, slot, (uint64_t)n, &pos) < 0)
        return NULL;
    return PyLong_FromUnsignedLongLong(pos);
}

/* out's draws: out.size / width, or an error if out.size is not a multiple of width. */
static int draws_in(PyObject *out, size_t width, size_t *n)
{
    size_t size = (size_t)PyArray_SIZE((PyArrayObject *)out);
    *n = size / width;
    if (size % width == 0)
        return 0;
    PyErr_Format(PyExc_ValueError, "out has %zu numbers, not a whole number of draws of %zu",
                 size, width);
    return -1;
}

static PyObject *Core_sample(CoreObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"post_id", "part", "out", "channel", "start", "timeout", NULL};
    unsigned long long id;
    int part, slot;
    PyObject *out, *channel, *timeout_obj = Py_None;
    long long start = -1;
    double timeout;
    size_t width, n;
    uint64_t pos;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "KiOO|L$O", kwlist, &id, &part, &out, &channel,
                                     &start, &timeout_obj) ||
        parse_timeout(timeout_obj, &timeout) < 0 || core_check_open(self) < 0 ||
        check_f64(out, "out", 1, 1) < 0)
        return NULL;
    bw_record *post = drawable(self, id, part, &width, &slot);
    if (!post)
        return NULL;
    pos = (uint64_t)start;      /* start >= 0: those positions again, nothing reserved */
    if (draws_in(out, width, &n) < 0 || (start < 0 && reserve(self, id, slot, n, &pos) < 0)) {
        free(post);
        return NULL;
    }
    Py_INCREF(out);
    return submit(self,
                  bw_draw_job(post, part, bw_stream_key(self->seed, id), pos, n,
                              (double *)PyArray_DATA((PyArrayObject *)out)),
                  JOB_SAMPLE, NULL, out, channel, timeout);
}

static PyObject *Core_sample_now(CoreObject *self, PyObject *args)
{
    unsigned long long id;
    int part, slot;
    PyObject *out;
    size_t width, n;
    uint64_t pos;
    if (!PyArg_ParseTuple(args, "KiO", &id, &part, &out) || core_check_open(self) < 0 ||
        check_f64(out, "out", 1, 1) < 0)
        return NULL;
    bw_record *post = drawable(self, id, part, &width, &slot);
    if (!post)
        return NULL;
    if (draws_in(out, width, &n) < 0 || reserve(self, id, slot, n, &pos) < 0) {
        free(post);
        return NULL;
    }
    double *data = (double *)PyArray_DATA((PyArrayObject *)out);
    uint64_t key = bw_stream_key(self->seed, id);
    if (n * width > NOW_NOGIL_DOUBLES) {
        Py_BEGIN_ALLOW_THREADS
        post->family->draw(post, part, key, pos, n, data);
        Py_END_ALLOW_THREADS
    } else {
        post->family->draw(post, part, key, pos, n, data);
    }
    free(post);
    Py_INCREF(out);
    return out;
}

static PyObject *Core_interval(CoreObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"post_id", "part", "level", "channel", "timeout", NULL};
    unsigned long long id;
    int part;
    double level, timeout;
    PyObject *channel, *timeout_obj = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "KidO|$O", kwlist, &id, &part, &level,
                                     &channel, &timeout_obj) ||
        parse_timeout(timeout_obj, &timeout) < 0 || core_check_open(self) < 0 ||
        check_level(level) < 0)
        return NULL;
    bw_record *post = posterior_copy(self, id);
    if (!post)
        return NULL;
    return submit(self, bw_interval_job(post, part, bw_stream_key(self->seed, id), level),
                  JOB_INTERVAL, NULL, NULL, channel, timeout);
}

static PyObject *Core_interval_now(CoreObject *self, PyObject *args)
{
    unsigned long long id;
    int part;
    double level;
    if (!PyArg_ParseTuple(args, "Kid", &id, &part, &level) || core_check_open(self) < 0 ||
        check_level(level) < 0)
        return NULL;
    bw_record *post = posterior_copy(self, id);
    if (!post)
        return NULL;
    double out[2], se[2];
    uint64_t key = bw_stream_key(self->seed, id);
    bw_error err;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = post->family->interval(post, part, key, level, out, se, &err);
    Py_END_ALLOW_THREADS
    free(post);
    if (rc != 0)
        return raise_error(state_of_type(Py_TYPE(self)), &err);
    return Py_BuildValue("(dd)", out[0], out[1]);
}

/* ======================================================================================== */
/* Comparisons of arms                                                                      */
/* ======================================================================================== */

/* The numbers of a tuple into out[0 .. max), *n how many; -1 with an error. */
static int small_doubles(PyObject *obj, const char *name, double *out, int max, int *n)
{
    PyObject *seq = PySequence_Fast(obj, "must be a sequence of numbers");
    if (!seq)
        return -1;
    Py_ssize_t m = PySequence_Fast_GET_SIZE(seq);
    if (m > max) {
        PyErr_Format(PyExc_ValueError, "%s: at most %d numbers, not %zd", name, max, m);
        Py_DECREF(seq);
        return -1;
    }
    for (Py_ssize_t i = 0; i < m; i++) {
        out[i] = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(seq, i));
        if (out[i] == -1.0 && PyErr_Occurred()) {
            Py_DECREF(seq);
            return -1;
        }
    }
    *n = (int)m;
    Py_DECREF(seq);
    return 0;
}

static int quantity_of(PyObject *factors, bw_quantity *q);

/* Arm i = (post_id, part[, how]) into the request: a part of a conjugate posterior (how
 * absent or None); a part the store describes but keeps in no conjugate payload, exact by
 * its factors (how: the factors, e.g. a dirichlet category's Beta); or a part drawn through
 * its family, compared by Monte Carlo (how: its BW_CMP_POSITIVE | BW_CMP_HEAVY flags; the
 * request keeps the posterior's copy). */
static int arm_source(CoreObject *self, PyObject *item, int i, bw_cmp_request *req)
{
    module_state *st = state_of_type(Py_TYPE(self));
    unsigned long long id;
    int part;
    PyObject *how = Py_None;
    if (!PyTuple_Check(item) || !PyArg_ParseTuple(item, "Ki|O", &id, &part, &how)) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "arm %d must be a (post_id, part[, factors or flags]) "
                     "tuple", i);
        return -1;
    }
    bw_record *post = posterior_copy(self, id);
    if (!post)
        return -1;
    req->src[i].key = bw_stream_key(self->seed, id);
    req->src[i].part = part;
    int ok;
    if (PyLong_Check(how)) {
        long flags = PyLong_AsLong(how);
        if (flags == -1 && PyErr_Occurred()) {
            free(post);
            return -1;
        }
        req->src[i].flags = flags < 0 || flags > INT_MAX ? INT_MAX : (int)flags;
        ok = part >= 0 && post->family->draw_width(post, part) == 1;
        if (ok) {
            req->src[i].post = post;
            return 0;
        }
    } else if (how != Py_None) {
        free(post);
        return quantity_of(how, &req->arm[i]);
    } else {
        ok = post->family->summarise == bw_conj_summarise && part >= 0 &&
             part < bw_conj(post)->nparts && bw_conj(post)->part[part].q.nfactors >= 1;
        if (ok)
            req->arm[i] = bw_conj(post)->part[part].q;
    }
    if (!ok)
        raise_status(st, BW_E_DOMAIN,
                     "arm %d (posterior %llu, %s, part %d) has no exact comparison and no "
                     "draws to compare: compare a conjugate part, a category's share or a "
                     "mixture's mean", i, id, post->family->name, part);
    free(post);
    return ok ? 0 : -1;
}

static PyObject *Core_compare(CoreObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"arms", "control", "higher", "levels", "thresholds", "full",
                             "channel", "timeout", "draws", NULL};
    module_state *st = state_of_type(Py_TYPE(self));
    PyObject *arms, *levels, *thresholds, *channel, *timeout_obj = Py_None;
    int higher, full;
    unsigned long long draws = 0;
    double timeout;
    bw_cmp_request req;
    bw_error err;
    memset(&req, 0, sizeof req);
    memset(&err, 0, sizeof err);
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OipOOpO|$OK", kwlist, &arms, &req.control,
                                     &higher, &levels, &thresholds, &full, &channel,
                                     &timeout_obj, &draws) ||
        parse_timeout(timeout_obj, &timeout) < 0 || core_check_open(self) < 0)
        return NULL;
    req.higher = higher;
    req.full = full;
    req.draws = draws;
    PyObject *seq = PySequence_Fast(arms, "arms must be a sequence of (post_id, part) pairs");
    if (!seq)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    req.narms = n > BW_CMP_MAX_ARMS ? BW_CMP_MAX_ARMS + 1 : (int)n;
    int rc = 0;
    for (Py_ssize_t i = 0; i < n && i < BW_CMP_MAX_ARMS && rc == 0; i++)
        rc = arm_source(self, PySequence_Fast_GET_ITEM(seq, i), (int)i, &req);
    Py_DECREF(seq);
    if (rc < 0 ||
        small_doubles(levels, "levels", req.levels, BW_CMP_MAX_LEVELS, &req.nlevels) < 0 ||
        small_doubles(thresholds, "thresholds", req.thresholds, BW_CMP_MAX_THRESHOLDS,
                      &req.nthresholds) < 0) {
        bw_compare_release(&req);
        return NULL;
    }
    if (bw_compare_check(&req, &err) != 0) {
        bw_compare_release(&req);
        return raise_error(st, &err);
    }
    return submit(self, bw_compare_job(&req), JOB_COMPARE, NULL, NULL, channel, timeout);
}

/* ======================================================================================== */
/* The store                                                                                */
/* ======================================================================================== */

/* A stored posterior as a dict: the header's fields, then what its family describes. */
static PyObject *posterior_dict(const bw_record *post)
{
    PyObject *d = Py_BuildValue("{s:K,s:i,s:s,s:d,s:d,s:d,s:n}", "id",
                                (unsigned long long)post->id, "model", post->family->code,
                                "model_type", post->family->name, "created", post->created,
                                "last_access", post->last_access, "fit_seconds",
                                post->fit_seconds, "bytes", (Py_ssize_t)bw_record_bytes(post));
    if (!d)
        return NULL;
    py_writer p;
    pw_init(&p, d);
    post->family->describe(post, &p.w);
    if (pw_done(&p) < 0)
        Py_CLEAR(d);
    return d;
}

static PyObject *Core_get(CoreObject *self, PyObject *arg)
{
    unsigned long long id = PyLong_AsUnsignedLongLong(arg);
    if ((id == (unsigned long long)-1 && PyErr_Occurred()) || core_check_open(self) < 0)
        return NULL;
    bw_record *post = posterior_copy(self, id);
    if (!post)
        return NULL;
    PyObject *d = posterior_dict(post);
    free(post);
    return d;
}

static PyObject *Core_touch(CoreObject *self, PyObject *arg)
{
    unsigned long long id = PyLong_AsUnsignedLongLong(arg);
    if (id == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    if (!self->store || core_inherited(self))
        Py_RETURN_FALSE;
    return PyBool_FromLong(bw_store_get(self->store, id, NULL) == BW_OK);
}

static PyObject *Core_remove(CoreObject *self, PyObject *arg)
{
    unsigned long long id = PyLong_AsUnsignedLongLong(arg);
    if (id == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    if (!self->store || core_inherited(self))
        Py_RETURN_FALSE;
    return PyBool_FromLong(bw_store_remove(self->store, id));
}

/* Remove every posterior of a uint64 array of ids (0: none); returns how many were there.
 * One call for a group fit's many posteriors. */
static PyObject *Core_remove_many(CoreObject *self, PyObject *arg)
{
    PyArrayObject *ids = (PyArrayObject *)PyArray_FROMANY(arg, NPY_UINT64, 1, 1,
                                                          NPY_ARRAY_CARRAY_RO);
    if (!ids)
        return NULL;
    Py_ssize_t removed = 0;
    if (self->store && !core_inherited(self)) {
        const uint64_t *v = (const uint64_t *)PyArray_DATA(ids);
        npy_intp n = PyArray_DIM(ids, 0);
        Py_BEGIN_ALLOW_THREADS
        for (npy_intp i = 0; i < n; i++)
            removed += v[i] != 0 && bw_store_remove(self->store, v[i]);
        Py_END_ALLOW_THREADS
    }
    Py_DECREF(ids);
    return PyLong_FromSsize_t(removed);
}

static PyObject *ids_list(uint64_t *ids, size_t n)
{
    PyObject *list = PyList_New((Py_ssize_t)n);
    if (!list) {
        free(ids);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        PyObject *v = PyLong_FromUnsignedLongLong(ids[i]);
        if (!v) {
            free(ids);
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, v);
    }
    free(ids);
    return list;
}

static PyObject *Core_clear(CoreObject *self, PyObject *Py_UNUSED(ignored))
{
    if (!self->store || core_inherited(self))
        return PyList_New(0);
    uint64_t *ids = NULL;
    size_t n = bw_store_clear(self->store, &ids);
    return ids_list(ids, n);
}

static PyObject *Core_evict(CoreObject *self, PyObject *arg)
{
    double before = PyFloat_AsDouble(arg);
    if (before == -1.0 && PyErr_Occurred())
        return NULL;
    if (!self->store || core_inherited(self))
        return PyList_New(0);
    uint64_t *ids = NULL;
    size_t n = bw_store_evict(self->store, before, &ids);
    return ids_list(ids, n);
}

static PyObject *Core_snapshot(CoreObject *self, PyObject *Py_UNUSED(ignored))
{
    if (!self->store || core_inherited(self))
        return PyList_New(0);
    bw_record **arr = NULL;
    size_t n = bw_store_snapshot(self->store, &arr);
    if (!arr)
        return PyErr_NoMemory();
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; i < n; i++) {
        PyObject *d = list ? posterior_dict(arr[i]) : NULL;
        if (d)
            PyList_SET_ITEM(list, (Py_ssize_t)i, d);
        else
            Py_CLEAR(list);
        free(arr[i]);
    }
    free(arr);
    return list;
}

static PyObject *Core_live_jobs(CoreObject *self, PyObject *Py_UNUSED(ignored))
{
    if (!self->pool || core_inherited(self))
        return PyLong_FromLong(0);
    return PyLong_FromSize_t(bw_pool_live_jobs(self->pool));
}

static PyObject *Core_cancel_all(CoreObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->pool && !core_inherited(self))
        bw_pool_cancel_all(self->pool);
    Py_RETURN_NONE;
}

static PyObject *Core_get_threads(CoreObject *self, void *c)
{
    (void)c;
    return PyLong_FromLong(self->threads);
}

static PyObject *Core_get_seed(CoreObject *self, void *c)
{
    (void)c;
    return PyLong_FromUnsignedLongLong(self->seed);
}

static PyObject *Core_get_closed(CoreObject *self, void *c)
{
    (void)c;
    return PyBool_FromLong(self->pool == NULL || core_inherited(self));
}

static PyObject *Core_get_inherited(CoreObject *self, void *c)
{
    (void)c;
    return PyBool_FromLong(core_inherited(self));
}

static PyMethodDef Core_methods[] = {
    {"close", (PyCFunction)Core_close, METH_NOARGS,
     "Cancel every job, wait for them, stop the threads and free every posterior."},
    {"new_channel", (PyCFunction)Core_new_channel, METH_NOARGS, "A new completion channel."},
    {"fit", (PyCFunction)(void (*)(void))Core_fit, METH_VARARGS | METH_KEYWORDS,
     "fit(model, prior, *, successes=0, trials=0, values=None, stats=None, options=None, "
     "channel=None, timeout=None, here=False) -> Job (here: run on this thread now)"},
    {"fit_batch", (PyCFunction)(void (*)(void))Core_fit_batch, METH_VARARGS | METH_KEYWORDS,
     "fit_batch(model, prior, ids, *, counts=None, values=None, offsets=None, stats=None, "
     "summaries=None, channel=None, timeout=None) -> Job: one fit per group (ids filled)"},
    {"reserve", (PyCFunction)Core_reserve, METH_VARARGS,
     "reserve(post_id, part, n) -> first stream position of n reserved draws"},
    {"sample", (PyCFunction)(void (*)(void))Core_sample, METH_VARARGS | METH_KEYWORDS,
     "sample(post_id, part, out, channel, start=-1, *, timeout=None) -> Job filling out"},
    {"sample_now", (PyCFunction)Core_sample_now, METH_VARARGS,
     "sample_now(post_id, part, out) -> out, drawn on this thread (for small requests)"},
    {"interval", (PyCFunction)(void (*)(void))Core_interval, METH_VARARGS | METH_KEYWORDS,
     "interval(post_id, part, level, channel, *, timeout=None) -> Job"},
    {"interval_now", (PyCFunction)Core_interval_now, METH_VARARGS,
     "interval_now(post_id, part, level) -> (lo, hi), computed on this thread"},
    {"compare", (PyCFunction)(void (*)(void))Core_compare, METH_VARARGS | METH_KEYWORDS,
     "compare(arms, control, higher, levels, thresholds, full, channel, *, timeout=None, "
     "draws=0) -> Job whose result is a dict of the comparison's figures"},
    {"get", (PyCFunction)Core_get, METH_O, "get(post_id) -> dict of the stored posterior"},
    {"touch", (PyCFunction)Core_touch, METH_O,
     "touch(post_id) -> bool: mark the posterior accessed; False if it is gone"},
    {"remove", (PyCFunction)Core_remove, METH_O, "remove(post_id) -> bool"},
    {"remove_many", (PyCFunction)Core_remove_many, METH_O,
     "remove_many(ids: uint64 array) -> how many of them were stored"},
    {"clear", (PyCFunction)Core_clear, METH_NOARGS, "clear() -> ids removed"},
    {"evict", (PyCFunction)Core_evict, METH_O,
     "evict(before) -> ids of posteriors last accessed before the wall-clock time"},
    {"snapshot", (PyCFunction)Core_snapshot, METH_NOARGS, "every stored posterior, by id"},
    {"live_jobs", (PyCFunction)Core_live_jobs, METH_NOARGS, "jobs not yet finished"},
    {"cancel_all", (PyCFunction)Core_cancel_all, METH_NOARGS, "cancel every job"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Core_getset[] = {
    {"threads", (getter)Core_get_threads, NULL, "worker threads (0: inline)", NULL},
    {"seed", (getter)Core_get_seed, NULL, "the 64-bit seed of every stream", NULL},
    {"closed", (getter)Core_get_closed, NULL,
     "True after close(), and in a process that inherited this Core through fork", NULL},
    {"inherited", (getter)Core_get_inherited, NULL,
     "True in a process that inherited this Core through fork", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot Core_slots[] = {
    {Py_tp_new, Core_new},
    {Py_tp_dealloc, Core_dealloc},
    {Py_tp_methods, Core_methods},
    {Py_tp_getset, Core_getset},
    {Py_tp_doc, "Core(threads, seed): one worker pool and one posterior store."},
    {0, NULL},
};

static PyType_Spec Core_spec = {
    "bayesworker._core.Core", sizeof(CoreObject), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE, Core_slots,
};

/* ======================================================================================== */
/* Module: the exported numbers                                                             */
/* ======================================================================================== */

/* A tuple of C strings (n < 0: up to the NULL). */
static PyObject *names_tuple(const char *const *names, Py_ssize_t n)
{
    if (n < 0)
        for (n = 0; names[n]; n++) {
        }
    PyObject *t = PyTuple_New(n);
    for (Py_ssize_t i = 0; t && i < n; i++) {
        PyObject *s = PyUnicode_FromString(names[i]);
        if (!s)
            Py_CLEAR(t);
        else
            PyTuple_SET_ITEM(t, i, s);
    }
    return t;
}

/* A tuple of (key, value) pairs under key. */
static void write_pairs(py_writer *p, const char *key, const bw_prior_key *pairs)
{
    p->w.open(&p->w, key, 1);
    for (int i = 0; pairs[i].key; i++) {
        p->w.open(&p->w, NULL, 1);
        pw_put(p, NULL, PyUnicode_FromString(pairs[i].key));
        p->w.number(&p->w, NULL, pairs[i].value);
        p->w.close(&p->w);
    }
    p->w.close(&p->w);
}

/* One registry row as a dict (see _core.pyi, MODELS). */
static PyObject *family_dict(const bw_family *f)
{
    PyObject *d = PyDict_New();
    if (!d)
        return NULL;
    py_writer p;
    pw_init(&p, d);
    bw_writer *w = &p.w;
    PyObject *name = PyUnicode_FromString(f->name);
    pw_put(&p, "name", name);
    w->integer(w, "code", f->code);
    pw_put(&p, "parts", names_tuple(f->parts, -1));
    w->open(w, "part_codes", 1);
    for (int i = 0; f->parts[i]; i++)
        w->integer(w, NULL, f->part_codes ? f->part_codes[i] : i);
    w->close(w);
    write_pairs(&p, "prior", f->prior);
    w->boolean(w, "prior_per_category", f->prior_per_category);
    w->open(w, "rules", 1);
    for (int i = 0; f->rules[i]; i++)
        pw_put(&p, NULL, PyUnicode_FromString(bw_rule_names[f->rules[i]]));
    w->close(w);
    pw_put(&p, "stats", names_tuple(f->stats, -1));
    pw_put(&p, "value_stats", names_tuple(f->stats, f->nvalue_stats));
    w->open(w, "data", 1);
    static const char *const takes[] = {"counts", "values", "stats", "options"};
    for (int i = 0; i < 4; i++)
        if (f->takes & (1 << i))
            pw_put(&p, NULL, PyUnicode_FromString(takes[i]));
    w->close(w);
    w->boolean(w, "iterative", f->iterative);
    if (pw_done(&p) < 0)
        Py_CLEAR(d);
    return d;
}

/* MODELS (a dict per registry row), and every family's own constants, into the module
 * dict. */
static void write_registry(py_writer *p)
{
    PyObject *models = PyTuple_New((Py_ssize_t)bw_nfamilies);
    for (size_t i = 0; models && i < bw_nfamilies; i++) {
        PyObject *d = family_dict(bw_families[i]);
        if (!d)
            Py_CLEAR(models);
        else
            PyTuple_SET_ITEM(models, (Py_ssize_t)i, d);
    }
    pw_put(p, "MODELS", models);
    for (size_t i = 0; i < bw_nfamilies; i++)
        for (const bw_constant *c = bw_families[i]->constants; c && c->name; c++) {
            if (c->pairs)
                write_pairs(p, c->name, c->pairs);
            else if (c->is_int)
                p->w.integer(&p->w, c->name, (long long)c->value);
            else
                p->w.number(&p->w, c->name, c->value);
        }
}

/* The core's own numbers (bw_codes.h, bw_dist.h, bw_status.h) into the module dict. */
static void write_constants(py_writer *p)
{
    static const struct {
        const char *name;
        long long value;
    } ints[] = {
        {"SAMPLE_BLOCK", BW_SAMPLE_BLOCK},     {"FIT_BLOCK", BW_FIT_BLOCK},
        {"DIST_BETA", BW_KIND_BETA},           {"DIST_NIG_MEAN", BW_KIND_NIG_MEAN},
        {"DIST_NIG_LNMEAN", BW_KIND_NIG_LNMEAN}, {"DIST_GAMMA", BW_KIND_GAMMA},
        {"DIST_INVGAMMA", BW_KIND_INVGAMMA},   {"PART_VALUE", BW_PART_VALUE},
        {"PART_REVENUE", BW_PART_REVENUE},     {"PART_FREQUENCY", BW_PART_FREQUENCY},
        {"PART_SEVERITY", BW_PART_SEVERITY},
        {"CMP_MC_DRAWS", BW_CMP_MC_DRAWS},     {"CMP_MC_MAX_DRAWS", BW_CMP_MC_MAX_DRAWS},
        {"CMP_POSITIVE", BW_CMP_POSITIVE},     {"CMP_HEAVY", BW_CMP_HEAVY},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        p->w.integer(&p->w, ints[i].name, ints[i].value);
    const double levels[BW_NCACHED] = BW_CACHED_LEVELS;
    bw_write_numbers(&p->w, "CACHED_LEVELS", levels, BW_NCACHED);
    p->w.number(&p->w, "TRUNC_LEVEL", BW_TRUNC_LEVEL);
    pw_put(p, "VALUE_RULES", names_tuple(bw_rule_names, BW_NRULES));
    pw_put(p, "STATUSES", names_tuple(bw_status_names, BW_NSTATUS));
}

static int module_exec(PyObject *m)
{
    module_state *st = PyModule_GetState(m);
    if (PyArray_ImportNumPyAPI() < 0)
        return -1;
    st->ChannelType = (PyTypeObject *)PyType_FromModuleAndSpec(m, &Channel_spec, NULL);
    if (!st->ChannelType || PyModule_AddType(m, st->ChannelType) < 0)
        return -1;
    st->JobType = (PyTypeObject *)PyType_FromModuleAndSpec(m, &Job_spec, NULL);
    if (!st->JobType || PyModule_AddType(m, st->JobType) < 0)
        return -1;
    st->CoreType = (PyTypeObject *)PyType_FromModuleAndSpec(m, &Core_spec, NULL);
    if (!st->CoreType || PyModule_AddType(m, st->CoreType) < 0)
        return -1;
    PyObject *errors = PyImport_ImportModule("bayesworker._errors");
    if (!errors)
        return -1;
    st->DataError = PyObject_GetAttrString(errors, "DataError");
    st->ModelError = PyObject_GetAttrString(errors, "ModelError");
    st->DisposedError = PyObject_GetAttrString(errors, "DisposedError");
    Py_DECREF(errors);
    if (!st->DataError || !st->ModelError || !st->DisposedError)
        return -1;
    py_writer p;
    pw_init(&p, PyModule_GetDict(m));
    write_constants(&p);
    write_registry(&p);
    return pw_done(&p);
}

static PyObject *mod_stream_key(PyObject *m, PyObject *args)
{
    (void)m;
    unsigned long long seed, seq;
    if (!PyArg_ParseTuple(args, "KK", &seed, &seq))
        return NULL;
    return PyLong_FromUnsignedLongLong(bw_stream_key(seed, seq));
}

/* ======================================================================================== */
/* Distribution functions of one quantity, elementwise over an array                        */
/* ======================================================================================== */

/* Elements above which the distribution functions release the GIL. */
#define DIST_NOGIL_ELEMENTS 32

/* A quantity from its factors as a posterior describes them: ((kind, p0, p1, p2, p3),) or
 * two such tuples (a product).  0, or -1 with a TypeError. */
static int quantity_of(PyObject *factors, bw_quantity *q)
{
    PyObject *seq = PySequence_Fast(factors, "factors must be a tuple of (kind, p0, p1, p2, p3)");
    if (!seq)
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    int rc = 0;
    if (n != 1 && n != 2) {
        PyErr_Format(PyExc_TypeError, "factors must hold 1 or 2 distributions, not %zd", n);
        rc = -1;
    }
    q->nfactors = (int)n;
    for (Py_ssize_t i = 0; rc == 0 && i < n; i++) {
        bw_dist *d = &q->f[i];
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i), "idddd;factors[i] must be "
                              "(kind, p0, p1, p2, p3)", &d->kind, &d->p[0], &d->p[1],
                              &d->p[2], &d->p[3]))
            rc = -1;
    }
    Py_DECREF(seq);
    return rc;
}

typedef int (*point_fn)(const bw_quantity *q, double x, double *out);

/* NaN maps to NaN (a missing value), every other x through bw_cdf. */
static int point_cdf(const bw_quantity *q, double x, double *out)
{
    if (isnan(x)) {
        *out = NAN;
        return BW_OK;
    }
    return bw_cdf(q, x, out);
}

/* The quantile at level p in [0, 1]: the support's ends at 0 and 1; NaN maps to NaN. */
static int point_ppf(const bw_quantity *q, double p, double *out)
{
    double lo, hi;
    if (isnan(p)) {
        *out = NAN;
        return BW_OK;
    }
    if (p > 0.0 && p < 1.0)
        return bw_quantile(q, p, out);
    if (p != 0.0 && p != 1.0)
        return BW_E_DOMAIN;
    int st = bw_support(q, &lo, &hi);
    *out = p == 0.0 ? lo : hi;
    return st;
}

static int point_pdf(const bw_quantity *q, double x, double *out)
{
    if (isnan(x)) {
        *out = NAN;
        return BW_OK;
    }
    /* closed forms where they exist; the lognormal mean and products by quadrature */
    return bw_has_closed_pdf(q) ? bw_closed_pdf(q, x, out) : bw_pdf(q, x, out);
}

/* f of the quantity at every element of x (any shape): a new float64 array of x's shape.
 * The first failing element is named in the error (its flat index and value). */
static PyObject *map_quantity(PyObject *m, PyObject *args, point_fn f, const char *name,
                              const char *arg)
{
    PyObject *factors, *xobj;
    bw_quantity q;
    if (!PyArg_ParseTuple(args, "OO", &factors, &xobj) || quantity_of(factors, &q) < 0)
        return NULL;
    PyArrayObject *x = (PyArrayObject *)PyArray_FROM_OTF(xobj, NPY_DOUBLE, NPY_ARRAY_IN_ARRAY);
    if (!x)
        return NULL;
    PyArrayObject *out = (PyArrayObject *)PyArray_SimpleNew(PyArray_NDIM(x), PyArray_DIMS(x),
                                                            NPY_DOUBLE);
    if (!out) {
        Py_DECREF(x);
        return NULL;
    }
    const double *in = (const double *)PyArray_DATA(x);
    double *res = (double *)PyArray_DATA(out);
    npy_intp n = PyArray_SIZE(x), i = 0;
    int st = BW_OK;
    if (n > DIST_NOGIL_ELEMENTS) {
        Py_BEGIN_ALLOW_THREADS
        for (; i < n && st == BW_OK; i++)
            st = f(&q, in[i], &res[i]);
        Py_END_ALLOW_THREADS
    } else {
        for (; i < n && st == BW_OK; i++)
            st = f(&q, in[i], &res[i]);
    }
    if (st != BW_OK) {
        char *text = PyOS_double_to_string(in[i - 1], 'r', 0, 0, NULL);
        raise_status(PyModule_GetState(m), st, "%s: %s[%zd] = %s: %s", name, arg,
                     (Py_ssize_t)(i - 1), text ? text : "?",
                     st == BW_E_DOMAIN ? "outside the function's domain"
                                       : "the computation did not reach its tolerance");
        PyMem_Free(text);
        Py_CLEAR(out);
    }
    Py_DECREF(x);
    return (PyObject *)out;
}

static PyObject *mod_cdf(PyObject *m, PyObject *args)
{
    return map_quantity(m, args, point_cdf, "cdf", "x");
}

static PyObject *mod_ppf(PyObject *m, PyObject *args)
{
    return map_quantity(m, args, point_ppf, "ppf", "q");
}

static PyObject *mod_pdf(PyObject *m, PyObject *args)
{
    return map_quantity(m, args, point_pdf, "pdf", "x");
}

static PyMethodDef module_methods[] = {
    {"stream_key", mod_stream_key, METH_VARARGS,
     "stream_key(seed, posterior_id) -> the Philox key of that posterior's draws"},
    {"cdf", mod_cdf, METH_VARARGS,
     "cdf(factors, x) -> P(quantity <= x) elementwise, an array of x's shape"},
    {"ppf", mod_ppf, METH_VARARGS,
     "ppf(factors, q) -> the q-quantiles (q in [0, 1]) elementwise, an array of q's shape"},
    {"pdf", mod_pdf, METH_VARARGS,
     "pdf(factors, x) -> the density elementwise (closed form, or quadrature for a lognormal "
     "mean or a product)"},
    {NULL, NULL, 0, NULL},
};

static int module_traverse(PyObject *m, visitproc visit, void *arg)
{
    module_state *st = PyModule_GetState(m);
    Py_VISIT(st->CoreType);
    Py_VISIT(st->JobType);
    Py_VISIT(st->ChannelType);
    Py_VISIT(st->DataError);
    Py_VISIT(st->ModelError);
    Py_VISIT(st->DisposedError);
    return 0;
}

static int module_clear(PyObject *m)
{
    module_state *st = PyModule_GetState(m);
    Py_CLEAR(st->CoreType);
    Py_CLEAR(st->JobType);
    Py_CLEAR(st->ChannelType);
    Py_CLEAR(st->DataError);
    Py_CLEAR(st->ModelError);
    Py_CLEAR(st->DisposedError);
    return 0;
}

static void module_free(void *m) { module_clear((PyObject *)m); }

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
    {0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT,
    .m_name = "bayesworker._core",
    .m_doc = "The C core of bayesworker: worker pool, posterior store, exact summaries, draws.",
    .m_size = sizeof(module_state),
    .m_methods = module_methods,
    .m_slots = module_slots,
    .m_traverse = module_traverse,
    .m_clear = module_clear,
    .m_free = module_free,
};

PyMODINIT_FUNC PyInit__core(void) { return PyModuleDef_Init(&moduledef); }
