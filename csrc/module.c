/*
 * module.c -- the CPython binding of bayesworker's C core.
 *
 * It only translates: arguments in, NumPy buffers checked, C jobs submitted, results and
 * errors out.  Three heap types live in the module state: Core (one pool and one store),
 * Job (a handle on a submitted job that keeps its arrays alive until the job is finished)
 * and Channel (a completion queue with a file descriptor for the event loop).
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

#include "bw_dist.h"
#include "jobs.h"
#include "pool.h"
#include "store.h"

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
    pid_t pid;
} JobObject;

typedef struct {
    PyObject_HEAD
    bw_channel *ch;
    pid_t pid;
} ChannelObject;

enum { JOB_FIT = 0, JOB_SAMPLE = 1, JOB_INTERVAL = 2, JOB_MIXFIT = 3 };

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
    uint64_t ids[256];
    size_t n;
    do {
        Py_BEGIN_ALLOW_THREADS
        n = bw_channel_drain(self->ch, ids, 256);
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
    } while (n == 256);
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

static PyObject *Job_get_result(JobObject *self, void *c)
{
    (void)c;
    if (atomic_load(&self->job->status) != BW_JOB_OK)
        Py_RETURN_NONE;
    switch (self->kind) {
    case JOB_FIT:
    case JOB_MIXFIT:
        return PyLong_FromUnsignedLongLong(self->job->result_id);
    case JOB_INTERVAL:
        return Py_BuildValue("(dd)", self->job->result[0], self->job->result[1]);
    default:
        Py_RETURN_NONE;
    }
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

static PyObject *doubles_list(const double *x, size_t n)
{
    PyObject *list = PyList_New((Py_ssize_t)n);
    if (!list)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        PyObject *v = PyFloat_FromDouble(x[i]);
        if (!v) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, v);
    }
    return list;
}

static PyObject *Job_get_mixture_report(JobObject *self, void *c)
{
    (void)c;
    if (self->kind != JOB_MIXFIT)
        Py_RETURN_NONE;
    const bw_mix_report *r = bw_mixfit_report(self->job);
    if (!r)
        Py_RETURN_NONE;
    PyObject *fits = PyList_New(r->nK);
    if (!fits)
        return NULL;
    for (int i = 0; i < r->nK; i++) {
        PyObject *d = Py_BuildValue("{s:i,s:d,s:i,s:O}", "K", r->Ks[i], "elbo", r->elbo[i],
                                    "iterations", r->iterations[i], "converged",
                                    r->converged[i] ? Py_True : Py_False);
        if (!d) {
            Py_DECREF(fits);
            return NULL;
        }
        PyList_SET_ITEM(fits, i, d);
    }
    PyObject *hist = doubles_list(r->history, r->history_len);
    if (!hist) {
        Py_DECREF(fits);
        return NULL;
    }
    return Py_BuildValue("{s:N,s:i,s:N,s:d,s:d}", "fits", fits, "chosen", r->chosen,
                         "elbo_history", hist, "loc", r->loc, "scale", r->scale);
}

static PyObject *Job_get_runtime(JobObject *self, void *c)
{
    (void)c;
    if (!bw_job_finished(self->job))
        return PyFloat_FromDouble(bw_monotonic() - self->job->t_submit);
    return PyFloat_FromDouble(self->job->t_end - self->job->t_submit);
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
    {"done", (getter)Job_get_done, NULL, "True once finished (ok, cancelled or failed).", NULL},
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
    {"progress", (getter)Job_get_progress, NULL, "(blocks done, blocks in all).", NULL},
    {"result", (getter)Job_get_result, NULL,
     "A fit's posterior id, an interval's (lo, hi), or None.", NULL},
    {"runtime", (getter)Job_get_runtime, NULL, "Seconds from submission to finish.", NULL},
    {"value", (getter)Job_get_value, NULL,
     "The running figure of an iterative fit (a mixture's current ELBO), or None.", NULL},
    {"mixture_report", (getter)Job_get_mixture_report, NULL,
     "A finished mixture fit's report (per-K ELBOs, the kept fit's ELBO history, ...).",
     NULL},
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

/* Wrap and submit a C job; takes the C job's reference and a new reference to keep.
 * timeout: the seconds of execution time the job may take (< 0: no limit). */
static PyObject *submit(CoreObject *self, bw_job *cjob, int kind, PyObject *keep,
                        PyObject *channel, double timeout)
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
    job->pid = self->pid;
    bw_pool *pool = self->pool;
    if (bw_pool_threads(pool) == 0) {
        Py_BEGIN_ALLOW_THREADS
        bw_pool_submit(pool, cjob, ch);
        Py_END_ALLOW_THREADS
    } else {
        bw_pool_submit(pool, cjob, ch);
    }
    return (PyObject *)job;
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

/* A 1-D, C-contiguous, aligned, native float64 array (writeable if asked), or an error
 * naming the argument. */
static int check_f64(PyObject *obj, const char *name, int writeable)
{
    if (!PyArray_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be a NumPy array, not %.80s", name,
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    PyArrayObject *a = (PyArrayObject *)obj;
    int need = NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED | (writeable ? NPY_ARRAY_WRITEABLE : 0);
    if (PyArray_NDIM(a) != 1 || PyArray_TYPE(a) != NPY_DOUBLE ||
        !PyArray_ISNOTSWAPPED(a) || !PyArray_CHKFLAGS(a, need)) {
        PyErr_Format(PyExc_ValueError,
                     "%s must be a 1-D C-contiguous aligned native float64%s array", name,
                     writeable ? " writeable" : "");
        return -1;
    }
    return 0;
}

static PyObject *Core_fit(CoreObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"model", "prior", "successes", "trials", "values", "stats",
                             "channel", "timeout", NULL};
    int model;
    PyObject *prior, *values, *stats, *channel, *timeout_obj = Py_None;
    long long successes, trials;
    double timeout;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "iOLLOOO|$O", kwlist, &model, &prior,
                                     &successes, &trials, &values, &stats, &channel,
                                     &timeout_obj) ||
        parse_timeout(timeout_obj, &timeout) < 0)
        return NULL;
    if (core_check_open(self) < 0)
        return NULL;
    if (model < BW_M_BETA_BINOMIAL || model > BW_M_COMPOUND_EXPONENTIAL) {
        PyErr_Format(PyExc_ValueError, "model code %d is unknown", model);
        return NULL;
    }
    bw_fit_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.model = model;
    PyObject *seq = PySequence_Fast(prior, "prior must be a sequence of floats");
    if (!seq)
        return NULL;
    Py_ssize_t np = PySequence_Fast_GET_SIZE(seq);
    if (np > 6) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, "prior has more than 6 numbers");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < np; i++) {
        spec.prior[i] = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(seq, i));
        if (spec.prior[i] == -1.0 && PyErr_Occurred()) {
            Py_DECREF(seq);
            return NULL;
        }
    }
    Py_DECREF(seq);
    if (successes < 0 || trials < 0 || successes > trials) {
        PyErr_Format(PyExc_ValueError, "successes = %lld and trials = %lld are inconsistent",
                     successes, trials);
        return NULL;
    }
    spec.successes = successes;
    spec.trials = trials;
    PyObject *keep = NULL;
    if (values != Py_None) {
        if (check_f64(values, "values", 0) < 0)
            return NULL;
        spec.values = (const double *)PyArray_DATA((PyArrayObject *)values);
        spec.n = (size_t)PyArray_DIM((PyArrayObject *)values, 0);
        keep = values;
        Py_INCREF(keep);
    }
    if (stats != Py_None) {
        if (!PyArg_ParseTuple(stats, "ddd;stats must be a tuple of three floats", &spec.stats[0],
                              &spec.stats[1], &spec.stats[2])) {
            Py_XDECREF(keep);
            return NULL;
        }
        spec.have_stats = 1;
    }
    uint64_t id = bw_store_next_id(self->store);
    return submit(self, bw_fit_job(self->store, id, &spec), JOB_FIT, keep, channel, timeout);
}

static PyObject *Core_mix_fit(CoreObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"model", "values", "Ks", "tol", "max_iter", "successes", "trials",
                             "freq_prior", "channel", "timeout", NULL};
    int model, max_iter;
    PyObject *values, *Ks, *channel, *timeout_obj = Py_None;
    double tol, fa, fb, timeout;
    long long successes, trials;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "iOOdiLL(dd)O|$O", kwlist, &model, &values,
                                     &Ks, &tol, &max_iter, &successes, &trials, &fa, &fb,
                                     &channel, &timeout_obj) ||
        parse_timeout(timeout_obj, &timeout) < 0)
        return NULL;
    if (core_check_open(self) < 0 || check_f64(values, "values", 0) < 0)
        return NULL;
    if (model < BW_M_NORMAL_MIXTURE || model > BW_M_COMPOUND_LOGNORMAL_MIXTURE) {
        PyErr_Format(PyExc_ValueError, "model code %d is not a mixture", model);
        return NULL;
    }
    bw_mixfit_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.model = model;
    PyObject *seq = PySequence_Fast(Ks, "Ks must be a sequence of ints");
    if (!seq)
        return NULL;
    Py_ssize_t nK = PySequence_Fast_GET_SIZE(seq);
    if (nK < 1 || nK > BW_MIX_MAX_K) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError, "Ks must list 1 to %d values", BW_MIX_MAX_K);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nK; i++) {
        long K = PyLong_AsLong(PySequence_Fast_GET_ITEM(seq, i));
        if (K == -1 && PyErr_Occurred()) {
            Py_DECREF(seq);
            return NULL;
        }
        if (K < 1 || K > BW_MIX_MAX_K) {
            Py_DECREF(seq);
            PyErr_Format(PyExc_ValueError, "K = %ld must be between 1 and %d", K, BW_MIX_MAX_K);
            return NULL;
        }
        spec.Ks[i] = (int)K;
    }
    Py_DECREF(seq);
    spec.nK = (int)nK;
    if (!(tol >= 0 && isfinite(tol)) || max_iter < 1 || max_iter > 1000000) {
        PyErr_SetString(PyExc_ValueError, "tol must be finite >= 0 and max_iter in 1..1e6");
        return NULL;
    }
    if (successes < 0 || trials < 0 || successes > trials) {
        PyErr_Format(PyExc_ValueError, "successes = %lld and trials = %lld are inconsistent",
                     successes, trials);
        return NULL;
    }
    spec.tol = tol;
    spec.max_iter = max_iter;
    spec.values = (const double *)PyArray_DATA((PyArrayObject *)values);
    spec.n = (size_t)PyArray_DIM((PyArrayObject *)values, 0);
    if (spec.n == 0) {
        PyErr_SetString(PyExc_ValueError, "a mixture needs at least one value");
        return NULL;
    }
    spec.successes = successes;
    spec.trials = trials;
    spec.freq_prior[0] = fa;
    spec.freq_prior[1] = fb;
    uint64_t id = bw_store_next_id(self->store);
    spec.stream_key = bw_stream_key(self->seed, id);
    spec.init_key = spec.stream_key ^ UINT64_C(0x6D69787475726521);   /* "mixture!" */
    Py_INCREF(values);
    return submit(self, bw_mixfit_job(self->store, id, &spec), JOB_MIXFIT, values, channel,
                  timeout);
}

static int reserve_or_get(CoreObject *self, unsigned long long id, int part, Py_ssize_t n,
                          long long start, uint64_t *pos, bw_quantity *q)
{
    int rc;
    if (start < 0) {
        rc = bw_store_reserve(self->store, id, part, (uint64_t)n, pos, q);
        if (rc == 1 && q->nfactors == 0)
            rc = -1;
    } else {
        bw_posterior post;
        rc = bw_store_get(self->store, id, &post);
        if (rc) {
            if (part < 0 || part >= post.nparts || post.part[part].q.nfactors == 0) {
                rc = -1;
            } else {
                *q = post.part[part].q;
                *pos = (uint64_t)start;
            }
        }
    }
    if (rc == 0) {
        raise_status(state_of_type(Py_TYPE(self)), BW_E_NOT_FOUND,
                     "posterior %llu is not in the store (disposed, evicted or cleared)", id);
        return -1;
    }
    if (rc < 0) {
        raise_status(state_of_type(Py_TYPE(self)), BW_E_DOMAIN,
                     "posterior %llu has no part %d (or its stream is spent)", id, part);
        return -1;
    }
    return 0;
}

static int is_mix_stream(int part)
{
    return part == BW_PART_MIX_MEAN || part == BW_PART_MIX_PREDICTIVE ||
           part == BW_PART_MIX_REVENUE;
}

/* A mixture stream: reserve n positions (start < 0) or read the posterior (start >= 0). */
static int mix_reserve_or_get(CoreObject *self, unsigned long long id, int part, Py_ssize_t n,
                              long long start, uint64_t *pos, bw_posterior *post)
{
    int rc;
    if (start < 0) {
        rc = bw_store_reserve_mix(self->store, id, part, (uint64_t)n, pos, post);
    } else {
        rc = bw_store_get(self->store, id, post);
        if (rc && (post->mix.K == 0 ||
                   (part == BW_PART_MIX_REVENUE &&
                    post->model != BW_M_COMPOUND_LOGNORMAL_MIXTURE)))
            rc = -1;
        *pos = (uint64_t)start;
    }
    if (rc == 0) {
        raise_status(state_of_type(Py_TYPE(self)), BW_E_NOT_FOUND,
                     "posterior %llu is not in the store (disposed, evicted or cleared)", id);
        return -1;
    }
    if (rc < 0) {
        raise_status(state_of_type(Py_TYPE(self)), BW_E_DOMAIN,
                     "posterior %llu has no mixture stream %d (or it is spent)", id, part);
        return -1;
    }
    return 0;
}

static PyObject *Core_reserve(CoreObject *self, PyObject *args)
{
    unsigned long long id;
    int part;
    long long n;
    if (!PyArg_ParseTuple(args, "KiL", &id, &part, &n))
        return NULL;
    if (core_check_open(self) < 0)
        return NULL;
    if (n < 0) {
        PyErr_Format(PyExc_ValueError, "n = %lld must be >= 0", n);
        return NULL;
    }
    uint64_t pos;
    if (is_mix_stream(part)) {
        bw_posterior post;
        if (mix_reserve_or_get(self, id, part, (Py_ssize_t)n, -1, &pos, &post) < 0)
            return NULL;
        return PyLong_FromUnsignedLongLong(pos);
    }
    bw_quantity q;
    if (reserve_or_get(self, id, part, (Py_ssize_t)n, -1, &pos, &q) < 0)
        return NULL;
    return PyLong_FromUnsignedLongLong(pos);
}

static PyObject *Core_sample(CoreObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"post_id", "part", "out", "channel", "start", "timeout", NULL};
    unsigned long long id;
    int part;
    PyObject *out, *channel, *timeout_obj = Py_None;
    long long start = -1;
    double timeout;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "KiOO|L$O", kwlist, &id, &part, &out, &channel,
                                     &start, &timeout_obj) ||
        parse_timeout(timeout_obj, &timeout) < 0)
        return NULL;
    if (core_check_open(self) < 0 || check_f64(out, "out", 1) < 0)
        return NULL;
    Py_ssize_t n = PyArray_DIM((PyArrayObject *)out, 0);
    uint64_t pos;
    if (is_mix_stream(part)) {
        bw_posterior *post = malloc(sizeof *post);
        if (!post)
            return PyErr_NoMemory();
        if (mix_reserve_or_get(self, id, part, n, start, &pos, post) < 0) {
            free(post);
            return NULL;
        }
        bw_job *cjob = bw_mix_sample_job(post, part, bw_stream_key(self->seed, id), pos,
                                         (size_t)n,
                                         (double *)PyArray_DATA((PyArrayObject *)out));
        free(post);
        Py_INCREF(out);
        return submit(self, cjob, JOB_SAMPLE, out, channel, timeout);
    }
    bw_quantity q;
    if (reserve_or_get(self, id, part, n, start, &pos, &q) < 0)
        return NULL;
    bw_stream st = {bw_stream_key(self->seed, id), (uint32_t)part};
    Py_INCREF(out);
    return submit(self,
                  bw_sample_job(&q, st, pos, (size_t)n,
                                (double *)PyArray_DATA((PyArrayObject *)out)),
                  JOB_SAMPLE, out, channel, timeout);
}

static PyObject *Core_sample_now(CoreObject *self, PyObject *args)
{
    unsigned long long id;
    int part;
    PyObject *out;
    if (!PyArg_ParseTuple(args, "KiO", &id, &part, &out))
        return NULL;
    if (core_check_open(self) < 0 || check_f64(out, "out", 1) < 0)
        return NULL;
    Py_ssize_t n = PyArray_DIM((PyArrayObject *)out, 0);
    uint64_t pos;
    if (is_mix_stream(part)) {
        bw_posterior *post = malloc(sizeof *post);
        if (!post)
            return PyErr_NoMemory();
        if (mix_reserve_or_get(self, id, part, n, -1, &pos, post) < 0) {
            free(post);
            return NULL;
        }
        double *data = (double *)PyArray_DATA((PyArrayObject *)out);
        uint64_t key = bw_stream_key(self->seed, id);
        Py_BEGIN_ALLOW_THREADS
        bw_mix_draw(post, part, key, 0, pos, (size_t)n, data);
        Py_END_ALLOW_THREADS
        free(post);
        Py_INCREF(out);
        return out;
    }
    bw_quantity q;
    if (reserve_or_get(self, id, part, n, -1, &pos, &q) < 0)
        return NULL;
    bw_stream st = {bw_stream_key(self->seed, id), (uint32_t)part};
    double *data = (double *)PyArray_DATA((PyArrayObject *)out);
    if (n > 4096) {
        Py_BEGIN_ALLOW_THREADS
        bw_sample(&q, st, pos, (size_t)n, data);
        Py_END_ALLOW_THREADS
    } else {
        bw_sample(&q, st, pos, (size_t)n, data);
    }
    Py_INCREF(out);
    return out;
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

static int get_quantity(CoreObject *self, unsigned long long id, int part, bw_quantity *q)
{
    bw_posterior post;
    if (!bw_store_get(self->store, id, &post)) {
        raise_status(state_of_type(Py_TYPE(self)), BW_E_NOT_FOUND,
                     "posterior %llu is not in the store (disposed, evicted or cleared)", id);
        return -1;
    }
    const bw_mixture *mx = &post.mix;
    if (mx->K > 0 && part >= BW_PART_MIX_COMPONENT && part < BW_PART_MIX_COMPONENT + mx->nrep) {
        *q = mx->comp[part - BW_PART_MIX_COMPONENT].q;
        return 0;
    }
    if (mx->K > 0 && part >= BW_PART_MIX_WEIGHT && part < BW_PART_MIX_WEIGHT + mx->nrep) {
        *q = mx->weight[part - BW_PART_MIX_WEIGHT].q;     /* nfactors 0: the constant 1 */
        return 0;
    }
    if (part < 0 || part >= post.nparts || post.part[part].q.nfactors == 0) {
        raise_status(state_of_type(Py_TYPE(self)), BW_E_DOMAIN, "posterior %llu has no part %d",
                     id, part);
        return -1;
    }
    *q = post.part[part].q;
    return 0;
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
        parse_timeout(timeout_obj, &timeout) < 0)
        return NULL;
    if (core_check_open(self) < 0 || check_level(level) < 0)
        return NULL;
    if (part == BW_PART_MIX_MEAN || part == BW_PART_MIX_REVENUE) {
        bw_posterior *post = malloc(sizeof *post);
        uint64_t pos;
        if (!post)
            return PyErr_NoMemory();
        if (mix_reserve_or_get(self, id, part, 0, 0, &pos, post) < 0) {
            free(post);
            return NULL;
        }
        bw_job *cjob = bw_mix_interval_job(post, part, bw_stream_key(self->seed, id), level);
        free(post);
        return submit(self, cjob, JOB_INTERVAL, NULL, channel, timeout);
    }
    bw_quantity q;
    if (get_quantity(self, id, part, &q) < 0)
        return NULL;
    return submit(self, bw_interval_job(&q, level), JOB_INTERVAL, NULL, channel, timeout);
}

static PyObject *Core_interval_now(CoreObject *self, PyObject *args)
{
    unsigned long long id;
    int part;
    double level;
    if (!PyArg_ParseTuple(args, "Kid", &id, &part, &level))
        return NULL;
    if (core_check_open(self) < 0 || check_level(level) < 0)
        return NULL;
    double out[2];
    int rc;
    bw_error err;
    if (part == BW_PART_MIX_MEAN || part == BW_PART_MIX_REVENUE) {
        bw_posterior *post = malloc(sizeof *post);
        uint64_t pos;
        if (!post)
            return PyErr_NoMemory();
        if (mix_reserve_or_get(self, id, part, 0, 0, &pos, post) < 0) {
            free(post);
            return NULL;
        }
        uint64_t key = bw_stream_key(self->seed, id);
        Py_BEGIN_ALLOW_THREADS
        rc = bw_mix_mc_interval(post, part, key, level, out, NULL, &err);
        Py_END_ALLOW_THREADS
        free(post);
    } else {
        bw_quantity q;
        if (get_quantity(self, id, part, &q) < 0)
            return NULL;
        if (q.nfactors == 0)
            return Py_BuildValue("(dd)", 1.0, 1.0);     /* the weight of a lone component */
        Py_BEGIN_ALLOW_THREADS
        rc = bw_interval_checked(&q, level, out, &err);
        Py_END_ALLOW_THREADS
    }
    if (rc != 0)
        return raise_error(state_of_type(Py_TYPE(self)), &err);
    return Py_BuildValue("(dd)", out[0], out[1]);
}

static PyObject *part_dict(const bw_part *p)
{
    PyObject *intervals = PyTuple_New(BW_NCACHED);
    if (!intervals)
        return NULL;
    for (int i = 0; i < BW_NCACHED; i++) {
        PyObject *t = Py_BuildValue("(ddd)", bw_cached_levels[i], p->ci[i][0], p->ci[i][1]);
        if (!t) {
            Py_DECREF(intervals);
            return NULL;
        }
        PyTuple_SET_ITEM(intervals, i, t);
    }
    PyObject *factors = PyTuple_New(p->q.nfactors);
    if (!factors) {
        Py_DECREF(intervals);
        return NULL;
    }
    for (int i = 0; i < p->q.nfactors; i++) {
        const bw_dist *d = &p->q.f[i];
        PyObject *t = Py_BuildValue("(idddd)", d->kind, d->p[0], d->p[1], d->p[2], d->p[3]);
        if (!t) {
            Py_DECREF(intervals);
            Py_DECREF(factors);
            return NULL;
        }
        PyTuple_SET_ITEM(factors, i, t);
    }
    return Py_BuildValue("{s:N,s:d,s:d,s:N,s:K}", "factors", factors, "mean", p->mean,
                         "variance", p->variance, "intervals", intervals, "cursor",
                         (unsigned long long)p->cursor);
}

static PyObject *parts_tuple(const bw_part *parts, int n)
{
    PyObject *t = PyTuple_New(n);
    if (!t)
        return NULL;
    for (int i = 0; i < n; i++) {
        PyObject *d = part_dict(&parts[i]);
        if (!d) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, i, d);
    }
    return t;
}

/* The mixture block of a posterior as a dict (None for other models). */
static PyObject *mixture_dict(const bw_posterior *post)
{
    const bw_mixture *mx = &post->mix;
    if (mx->K == 0)
        Py_RETURN_NONE;
    PyObject *fitted = PyList_New(mx->K);
    if (!fitted)
        return NULL;
    for (int k = 0; k < mx->K; k++) {
        PyObject *d = Py_BuildValue("{s:d,s:d,s:d,s:d,s:d,s:O}", "alpha", mx->alpha[k], "m",
                                    mx->nig[k][0], "kappa", mx->nig[k][1], "a", mx->nig[k][2],
                                    "b", mx->nig[k][3], "reported",
                                    mx->reported[k] ? Py_True : Py_False);
        if (!d) {
            Py_DECREF(fitted);
            return NULL;
        }
        PyList_SET_ITEM(fitted, k, d);
    }
    PyObject *order = PyList_New(mx->nrep);
    if (!order) {
        Py_DECREF(fitted);
        return NULL;
    }
    for (int r = 0; r < mx->nrep; r++)
        PyList_SET_ITEM(order, r, PyLong_FromLong(mx->order[r]));
    int compound = post->model == BW_M_COMPOUND_LOGNORMAL_MIXTURE;
    PyObject *se = PyTuple_New(2);
    if (!se) {
        Py_DECREF(fitted);
        Py_DECREF(order);
        return NULL;
    }
    for (int j = 0; j < 2; j++) {
        PyObject *t = Py_BuildValue(
            "((ddd)(ddd)(ddd))", bw_cached_levels[0], mx->mc_se[j][0][0], mx->mc_se[j][0][1],
            bw_cached_levels[1], mx->mc_se[j][1][0], mx->mc_se[j][1][1], bw_cached_levels[2],
            mx->mc_se[j][2][0], mx->mc_se[j][2][1]);
        if (!t) {
            Py_DECREF(fitted);
            Py_DECREF(order);
            Py_DECREF(se);
            return NULL;
        }
        PyTuple_SET_ITEM(se, j, t);
    }
    PyObject *rev = compound ? part_dict(&mx->revenue) : (Py_INCREF(Py_None), Py_None);
    return Py_BuildValue("{s:i,s:i,s:i,s:d,s:d,s:d,s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:K,s:I}", "K",
                         mx->K, "log_scale", mx->log_scale, "nrep", mx->nrep, "loc", mx->loc,
                         "scale", mx->scale, "alpha0", mx->alpha0, "fitted", fitted, "order",
                         order, "components", parts_tuple(mx->comp, mx->nrep), "weights",
                         parts_tuple(mx->weight, mx->nrep), "mean", part_dict(&mx->mean),
                         "revenue", rev, "mc_se", se, "pred_cursor",
                         (unsigned long long)mx->pred_cursor, "mc_draws",
                         (unsigned int)BW_MIX_MC_DRAWS);
}

static PyObject *posterior_dict(const bw_posterior *post)
{
    PyObject *parts = parts_tuple(post->part, post->nparts);
    if (!parts)
        return NULL;
    PyObject *mix = mixture_dict(post);
    if (!mix) {
        Py_DECREF(parts);
        return NULL;
    }
    return Py_BuildValue("{s:K,s:i,s:N,s:N,s:(dddddd),s:d,s:d,s:d,s:n}", "id",
                         (unsigned long long)post->id, "model", post->model, "parts", parts,
                         "mixture", mix,
                         "stats", post->stats[0], post->stats[1], post->stats[2],
                         post->stats[3], post->stats[4], post->stats[5], "created",
                         post->created, "last_access", post->last_access, "fit_seconds",
                         post->fit_seconds, "bytes", (Py_ssize_t)sizeof(bw_posterior));
}

static PyObject *Core_get(CoreObject *self, PyObject *arg)
{
    unsigned long long id = PyLong_AsUnsignedLongLong(arg);
    if (id == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    if (core_check_open(self) < 0)
        return NULL;
    bw_posterior post;
    if (!bw_store_get(self->store, id, &post)) {
        raise_status(state_of_type(Py_TYPE(self)), BW_E_NOT_FOUND,
                     "posterior %llu is not in the store (disposed, evicted or cleared)", id);
        return NULL;
    }
    return posterior_dict(&post);
}

static PyObject *Core_touch(CoreObject *self, PyObject *arg)
{
    unsigned long long id = PyLong_AsUnsignedLongLong(arg);
    if (id == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    if (!self->store || core_inherited(self))
        Py_RETURN_FALSE;
    return PyBool_FromLong(bw_store_get(self->store, id, NULL));
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
    bw_posterior *arr = NULL;
    size_t n = bw_store_snapshot(self->store, &arr);
    if (!arr)
        return PyErr_NoMemory();
    PyObject *list = PyList_New((Py_ssize_t)n);
    if (!list) {
        free(arr);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        PyObject *d = posterior_dict(&arr[i]);
        if (!d) {
            free(arr);
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, d);
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
     "fit(model, prior, successes, trials, values, stats, channel, *, timeout=None) -> Job"},
    {"mix_fit", (PyCFunction)(void (*)(void))Core_mix_fit, METH_VARARGS | METH_KEYWORDS,
     "mix_fit(model, values, Ks, tol, max_iter, successes, trials, freq_prior, channel, *, "
     "timeout=None) -> Job"},
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
    {"get", (PyCFunction)Core_get, METH_O, "get(post_id) -> dict of the stored posterior"},
    {"touch", (PyCFunction)Core_touch, METH_O,
     "touch(post_id) -> bool: mark the posterior accessed; False if it is gone"},
    {"remove", (PyCFunction)Core_remove, METH_O, "remove(post_id) -> bool"},
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
/* Module                                                                                   */
/* ======================================================================================== */

static PyObject *mod_stream_key(PyObject *m, PyObject *args)
{
    (void)m;
    unsigned long long seed, seq;
    if (!PyArg_ParseTuple(args, "KK", &seed, &seq))
        return NULL;
    return PyLong_FromUnsignedLongLong(bw_stream_key(seed, seq));
}

static PyMethodDef module_methods[] = {
    {"stream_key", mod_stream_key, METH_VARARGS,
     "stream_key(seed, posterior_id) -> the Philox key of that posterior's draws"},
    {NULL, NULL, 0, NULL},
};

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
    PyObject *rules = PyTuple_New(BW_NRULES);
    if (!rules)
        return -1;
    for (int r = 0; r < BW_NRULES; r++)
        PyTuple_SET_ITEM(rules, r, PyUnicode_FromString(bw_rule_names[r]));
    if (PyModule_AddObject(m, "VALUE_RULES", rules) < 0) {
        Py_DECREF(rules);
        return -1;
    }
    if (PyModule_AddIntConstant(m, "SAMPLE_BLOCK", BW_SAMPLE_BLOCK) < 0 ||
        PyModule_AddIntConstant(m, "FIT_BLOCK", BW_FIT_BLOCK) < 0 ||
        PyModule_AddIntConstant(m, "MIX_MC_DRAWS", BW_MIX_MC_DRAWS) < 0 ||
        PyModule_AddObject(m, "TRUNC_LEVEL", PyFloat_FromDouble(BW_TRUNC_LEVEL)) < 0)
        return -1;
    return 0;
}

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
