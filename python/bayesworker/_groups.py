"""Fits per group of a table: one batch job for thousands of segments, and their results.

A :class:`GroupPlan` is the request of ``InferenceWorker.fit_groups`` (and its twin
``fit_groups_sync``): the rows of a DataFrame (or a dict of equal-length columns) are
grouped by the ``by`` columns, each group's data is read from the columns named by the
model's data fields (``converted=``, ``value=``, ``successes=``/``trials=``), and every
group is fitted. For a conjugate family the fits are ONE C job (``Core.fit_batch``): the
group-by is a few vectorised NumPy passes, the values are reordered once so each group is
a contiguous run, and the workers write each group's summaries straight into one array.
Other families (mixtures, dirichlet-multinomial, ``auto``, other data forms) are fitted
one request per group, all submitted at once.

The result is a :class:`GroupFits`: ``len``, iteration over the group labels,
``fits[label]`` -> the group's posterior proxy (made on first use), ``summary()`` (a pandas
DataFrame indexed by the labels, or a list of dicts without pandas) and ``_repr_html_``.

>>> import bayesworker as bw
>>> data = {"variant": ["A", "A", "B", "B", "B"], "converted": [0, 1, 1, 1, 0]}
>>> with bw.InferenceWorker(threads=1, seed=1) as w:
...     fits = w.fit_groups_sync(data, by=["variant"], model="beta-binomial",
...                              converted="converted")
...     print(len(fits), list(fits), round(float(fits["B"].mean()[0]), 4))
2 ['A', 'B'] 0.6
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np

from ._bridge import DEFAULT_TIMEOUT, FITTING, Call, Request, Start
from ._errors import DataError, ModelError
from ._frames import column as _column, row_label as _row_label
from ._inputs import as_1d, float64, series_values
from ._progress import Progress
from ._table import core_row, prior_tuple
from .models import AUTO, family, resolve_model_type

__all__ = ["GroupFits", "GroupPlan", "GroupComparisons"]

_PART = 2 + 2 * 3        # doubles per part in a summary row: mean, variance, 3 intervals


# ---------------------------------------------------------------------------------------- #
# Grouping                                                                                 #
# ---------------------------------------------------------------------------------------- #

def _small_int_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """:func:`_codes` of integers spanning a range no wider than a few times their count,
    by counting instead of hashing or sorting (a country or variant code); else None."""
    if values.dtype.kind not in "iu" or values.ndim != 1 or values.shape[0] == 0:
        return None
    lo, hi = int(values.min()), int(values.max())
    if hi - lo > 4 * values.shape[0] + 1024 or hi > np.iinfo(np.int64).max:
        return None
    offset = values.astype(np.int64, copy=False)
    if lo:
        offset = offset - np.int64(lo)
    present = np.bincount(offset, minlength=hi - lo + 1)
    seen = np.flatnonzero(present)
    labels = (seen + lo).astype(values.dtype)
    if seen.shape[0] == present.shape[0]:               # every value in the range occurs
        return offset, labels
    remap = np.zeros(present.shape[0], dtype=np.int64)
    remap[seen] = np.arange(seen.shape[0])
    return remap[offset], labels


def _codes(col: Any) -> tuple[np.ndarray, np.ndarray]:
    """(codes, sorted distinct labels) of one column."""
    values = col.to_numpy() if hasattr(col, "to_numpy") else np.asarray(col)
    small = _small_int_codes(values)
    if small is not None:
        return small
    try:
        import pandas as pd
    except ImportError:
        labels, codes = np.unique(values, return_inverse=True)
        return codes.ravel(), labels
    codes, labels = pd.factorize(values, sort=True, use_na_sentinel=False)
    return codes, np.asarray(labels)


def group_rows(data: Any, by: Sequence[str]) -> tuple[np.ndarray, list[Any], int]:
    """(group of each row, the group labels in sorted order, rows): label = a value of
    ``by[0]``, or a tuple of values when ``by`` has several columns."""
    if isinstance(by, str):
        by = [by]
    by = list(by)
    if not by:
        raise ValueError("by must name at least one column")
    parts = [_codes(_column(data, b, "by")) for b in by]
    n = parts[0][0].shape[0]
    combined = np.zeros(n, dtype=np.int64)
    for codes, labels in parts:
        if codes.shape[0] != n:
            raise DataError("the by columns have different lengths")
        combined = combined * len(labels) + codes
    present = np.bincount(combined) if n else np.zeros(0, dtype=np.int64)
    keys = np.flatnonzero(present)
    if keys.shape[0] == present.shape[0]:       # every combination occurs: codes as they are
        group = combined
    else:
        remap = np.empty(present.shape[0], dtype=np.int64)
        remap[keys] = np.arange(keys.shape[0])
        group = remap[combined]
    per_col = []
    rest = keys
    for codes, labels in reversed(parts):
        per_col.append(labels[rest % len(labels)].tolist())
        rest = rest // len(labels)
    per_col.reverse()
    names = per_col[0] if len(by) == 1 else list(zip(*per_col))
    return group, names, n


# ---------------------------------------------------------------------------------------- #
# The request                                                                              #
# ---------------------------------------------------------------------------------------- #

def _flags(data: Any, name: str) -> np.ndarray:
    x = as_1d(_column(data, name, "converted"), name, allow_bool=True)
    if x.dtype.kind == "b":
        return x
    bad = np.flatnonzero(~((x == 0) | (x == 1)))
    if bad.size:
        raise DataError(f"column {name!r} at row {_row_label(data, int(bad[0]))!r} = "
                        f"{x[bad[0]]!r} must be 0 or 1")
    return x != 0


def _numbers(data: Any, name: str) -> np.ndarray:
    return float64(as_1d(_column(data, name, "value"), name, allow_bool=False))


class _Batch:
    """The arrays of one batch fit, and how a row of ``values`` maps back to the data."""

    def __init__(self, fam: Any, data: Any, cols: Mapping[str, str], group: np.ndarray,
                 ngroups: int) -> None:
        self.counts = self.values = self.offsets = None
        self.order: np.ndarray | None = None
        self.rows = np.bincount(group, minlength=ngroups)
        conv = None
        if "converted" in cols:
            conv = _flags(data, cols["converted"])
            succ = np.bincount(group, weights=conv, minlength=ngroups)
            self.counts = np.stack([succ, self.rows], axis=1).astype(np.int64)
        elif "successes" in cols:
            s = np.bincount(group, _numbers(data, cols["successes"]), ngroups)
            t = np.bincount(group, _numbers(data, cols["trials"]), ngroups)
            if not (np.all(s == np.floor(s)) and np.all(t == np.floor(t))):
                raise DataError("successes and trials must be whole numbers")
            self.counts = np.ascontiguousarray(np.stack([s, t], axis=1).astype(np.int64))
        if "value" in cols:
            v = _numbers(data, cols["value"])
            if conv is not None:        # a compound severity: converters' values > 0
                bad = np.flatnonzero(conv & ~(np.isfinite(v) & (v >= 0)))
                if bad.size:
                    raise DataError(f"column {cols['value']!r} at row "
                                    f"{_row_label(data, int(bad[0]))!r} = {v[bad[0]]!r} must "
                                    "be finite and >= 0 for a converter")
                keep = np.flatnonzero(conv & (v > 0))
            else:
                keep = np.arange(v.shape[0])
            self.order = keep[np.argsort(group[keep], kind="stable")]
            self.values = np.ascontiguousarray(v[self.order])
            self.offsets = np.zeros(ngroups + 1, dtype=np.int64)
            np.cumsum(np.bincount(group[keep], minlength=ngroups), out=self.offsets[1:])

    def check(self, fam: Any, names: list[Any]) -> None:
        """The family's own refusal of a fit (``check_fit``), for the groups it may hit."""
        if fam.check_fit is None or self.offsets is None:
            return
        sizes = np.diff(self.offsets)
        for g in np.flatnonzero(sizes == 0)[:1]:
            try:
                fam.check_fit(SimpleNamespace(values=np.empty(0), stats=None,
                                              counts=tuple(self.counts[g])
                                              if self.counts is not None else None))
            except DataError as exc:
                raise DataError(f"group {names[g]!r}: {exc}") from None


def batchable(fam: Any, cols: Mapping[str, str], options: Mapping[str, Any]) -> bool:
    """Whether the groups of ``fam`` with data keywords ``cols`` are one batch job."""
    row = core_row(fam.name)
    if options or row["iterative"] or row["prior_per_category"] or fam.bind_prior is not None \
            or fam.fit_args is not None:
        return False
    takes = set(row["data"])
    if "counts" in takes and "values" in takes:         # compound
        return set(cols) == {"converted", "value"}
    if "counts" in takes:
        return set(cols) in ({"converted"}, {"successes", "trials"})
    return set(cols) == {"value"}


class GroupPlan:
    """A group fit: its :meth:`request` (value: the :class:`GroupFits`) and
    :meth:`reword`, which names a refused value by its group and row."""

    def __init__(self, worker: Any, data: Any, by: Sequence[str], model: str, prior: Any,
                 timeout: float | None, options: Mapping[str, Any],
                 cols: Mapping[str, str]) -> None:
        if not cols:
            raise DataError("name the data columns as keyword arguments: converted=, "
                            "value=, successes=/trials= (the model's data fields)")
        self.worker, self.data, self.model, self.prior = worker, data, model, prior
        self.timeout, self.options, self.cols = timeout, options, cols
        self.by = by
        self.ids: np.ndarray | None = None
        self.batch: _Batch | None = None
        self.names: list[Any] = []

    def request(self, on_progress: Callable[[Progress], None] | None = None) -> Request:
        """The request of the group fit; its value is the :class:`GroupFits`. Progress is
        the batch job's blocks, or the groups fitted one by one."""
        worker, cols = self.worker, self.cols
        name = resolve_model_type(self.model)
        group, names, _ = group_rows(self.data, self.by)
        self.names = names
        fam = family(name) if name != AUTO else None
        if fam is None or not batchable(fam, cols, self.options):
            return (yield from _one_by_one(worker, self.data, group, names, self.model,
                                           self.prior, self.timeout, self.options,
                                           cols, on_progress))._grouped_by(self.by)
        full_prior = fam.check_prior(self.prior)
        batch = self.batch = _Batch(fam, self.data, cols, group, len(names))
        batch.check(fam, names)
        row = core_row(fam.name)
        ids = self.ids = np.zeros(len(names), dtype=np.uint64)
        summaries = np.empty((len(names), _PART * len(row["parts"])), dtype=np.float64)
        core = worker._core

        def submit(channel: Any, limit: float) -> Any:
            try:
                return core.fit_batch(row["code"], prior_tuple(fam.name, full_prior), ids,
                                      counts=batch.counts, values=batch.values,
                                      offsets=batch.offsets, summaries=summaries,
                                      channel=channel, timeout=limit)
            except DataError as exc:
                g = getattr(exc, "group", None)
                raise DataError(f"group {names[g]!r}: {exc}" if g is not None else str(exc)) \
                    from None

        timeout = self.timeout
        if timeout is None:     # a batch's work grows with its groups: 30 s plus 1 s a group
            timeout = DEFAULT_TIMEOUT + float(len(names))
        job = yield Call(FITTING, submit, timeout=timeout, on_progress=on_progress)
        return GroupFits(worker, fam.name, names, ids, summaries, batch.rows, job.runtime,
                         list(row["parts"]))._grouped_by(self.by)

    def reword(self, exc: Exception) -> Exception:
        """A batch job's refused value named by its group and row; others as they are."""
        ids, batch = self.ids, self.batch
        if not isinstance(exc, DataError) or ids is None or batch is None \
                or not (ids == 0).any():
            return exc
        g = int(np.flatnonzero(ids == 0)[0])
        where = ""
        index = getattr(exc, "index", None)
        if batch.order is not None and index is not None:
            pos = int(batch.order[batch.offsets[g] + int(index)])
            where = f" (row {_row_label(self.data, pos)!r} of column {self.cols['value']!r})"
        return DataError(f"group {self.names[g]!r}{where}: {exc}")


def _one_by_one(worker: Any, data: Any, group: np.ndarray, names: list[Any], model: str,
                prior: Any, timeout: float | None, options: Mapping[str, Any],
                cols: Mapping[str, str],
                on_progress: Callable[[Progress], None] | None = None) -> Request:
    """Every group as its own fit request, all started before any is awaited; progress
    counts the groups fitted."""
    arrays = {field: np.asarray(series_values(_column(data, col, field)))
              for field, col in cols.items()}
    order = np.argsort(group, kind="stable")
    bounds = np.searchsorted(group[order], np.arange(len(names) + 1))
    calls, reqs = [], []
    for g in range(len(names)):
        rows = order[bounds[g]:bounds[g + 1]]
        part = {f: a[rows] for f, a in arrays.items()}
        one = part["value"] if set(part) == {"value"} else part
        try:
            req = worker._prepare(model, one, prior, dict(options))
        except (DataError, ModelError) as exc:
            raise type(exc)(f"group {names[g]!r}: {exc}") from None
        reqs.append(req)
        calls.append(worker._fit_call(req, timeout, None))
    for call in calls:
        yield Start(call)
    results = []
    for g, (req, call) in enumerate(zip(reqs, calls)):
        job = yield call
        results.append(worker._result(req, job))
        if on_progress is not None:
            done = g + 1
            on_progress(Progress(FITTING, done / len(names), done, len(names)))
    return GroupFits.of_results(worker, names, results, np.bincount(group, minlength=len(names)))


# ---------------------------------------------------------------------------------------- #
# The result                                                                               #
# ---------------------------------------------------------------------------------------- #

def _release(bridge: Any, ids: np.ndarray) -> None:
    """The group fit is gone: free the posteriors no proxy holds."""
    held = np.fromiter(list(bridge._handles.keys()), dtype=np.uint64)
    try:
        bridge.core.remove_many(ids[~np.isin(ids, held)] if held.size else ids)
    except Exception:  # noqa: BLE001 - a finaliser never raises
        pass


class GroupFits:
    """One fit per group: ``len``, iteration over the labels, ``fits[label]`` -> proxy,
    ``summary()``, an HTML display, ``compare(arm=...)`` (one comparison per remaining
    group) and ``to_arviz()``. Posteriors no proxy holds are freed with it."""

    def __init__(self, worker: Any, model: str, names: list[Any], ids: np.ndarray,
                 summaries: np.ndarray, rows: np.ndarray, runtime: float,
                 parts: list[str]) -> None:
        self.model_type = model
        self.runtime = runtime
        #: the columns the rows were grouped by (a label holds one value of each)
        self.by: tuple[str, ...] | None = None
        self._worker = worker
        self._names = names
        self._index: dict[Any, int] | None = None
        self._ids = ids
        self._summaries = summaries
        self._rows = rows
        self._parts = parts
        self._proxies: dict[int, Any] = {}
        self._finalizer = weakref.finalize(self, _release, worker._bridge, ids)

    def _grouped_by(self, by: str | Sequence[str]) -> "GroupFits":
        """Record the ``by`` columns of the fit; returns the GroupFits."""
        self.by = (by,) if isinstance(by, str) else tuple(by)
        return self

    @classmethod
    def of_results(cls, worker: Any, names: list[Any], results: list[Any],
                   rows: np.ndarray) -> "GroupFits":
        """From one InferenceResult per group (the group-by-group path)."""
        ids = np.array([r.posterior.id for r in results], dtype=np.uint64)
        summaries = np.empty((len(results), _PART), dtype=np.float64)
        for g, r in enumerate(results):
            p = r.posterior
            lo, hi = np.asarray(p.credible_interval(0.95)).ravel()[:2]
            summaries[g, :4] = float(np.ravel(p.mean())[0]), float(np.ravel(p.variance())[0]), \
                lo, hi
            summaries[g, 4:] = np.nan
        model = results[0].diagnostics.model_type if results else "auto"
        fits = cls(worker, model, names, ids, summaries, rows,
                   sum(r.diagnostics.runtime for r in results), ["value"])
        fits._proxies = {g: r.posterior for g, r in enumerate(results)}
        return fits

    # -- container -----------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._names)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._names)

    def keys(self) -> list[Any]:
        """The group labels, in sorted order."""
        return list(self._names)

    def items(self) -> Iterator[tuple[Any, Any]]:
        """(label, proxy) pairs."""
        return ((k, self[k]) for k in self._names)

    def __contains__(self, label: Any) -> bool:
        return self._position(label) is not None

    def _position(self, label: Any) -> int | None:
        if self._index is None:
            self._index = {k: i for i, k in enumerate(self._names)}
        if isinstance(label, list):
            label = tuple(label)
        return self._index.get(label)

    def __getitem__(self, label: Any) -> Any:
        """The posterior proxy of the group ``label`` (a value, or a tuple of values)."""
        g = self._position(label)
        if g is None:
            raise KeyError(f"no group {label!r} (groups: {len(self)}, e.g. "
                           f"{self._names[:3]!r})")
        return self._proxy(g)

    def _proxy(self, g: int) -> Any:
        proxy = self._proxies.get(g)
        if proxy is None:
            worker = self._worker
            post_id = int(self._ids[g])
            proxy = family(self.model_type).proxy(worker, post_id, self.model_type,
                                                  worker._stored(post_id))
            self._proxies[g] = proxy
        return proxy

    def _label_columns(self) -> list[str]:
        """The names of a label's values: the by columns (``["group"]`` if unknown)."""
        return list(self.by) if self.by else ["group"]

    def _values(self, label: Any) -> tuple:
        """A label as the tuple of its values, one per by column."""
        return label if len(self._label_columns()) > 1 else (label,)

    # -- summaries -----------------------------------------------------------------------
    def _columns(self) -> dict[str, np.ndarray]:
        s = self._summaries
        return {"rows": self._rows, "mean": s[:, 0], "sd": np.sqrt(s[:, 1]),
                "ci95_lo": s[:, 2], "ci95_hi": s[:, 3]}

    def summary(self) -> Any:
        """One row per group (rows, mean, sd, 95 % interval of the model's quantity: the
        revenue per user of a compound model), indexed by the group labels (the index
        levels named after the by columns): a pandas DataFrame, or a list of dicts (with
        a ``group`` key) without pandas."""
        cols = self._columns()
        try:
            import pandas as pd
        except ImportError:
            return [{"group": k, **{c: float(v[g]) if c != "rows" else int(v[g])
                                    for c, v in cols.items()}}
                    for g, k in enumerate(self._names)]
        names = self._label_columns() if self.by else None
        if self._names and isinstance(self._names[0], tuple):
            index = pd.MultiIndex.from_tuples(self._names, names=names)
        else:
            index = pd.Index(self._names, name=names[0] if names else None)
        return pd.DataFrame(cols, index=index)

    def __repr__(self) -> str:
        return f"<GroupFits {self.model_type}: {len(self)} groups>"

    def _repr_html_(self, limit: int = 20) -> str:
        from ._display import to_html
        cols = self._columns()
        rows = []
        for g, label in enumerate(self._names[:limit]):
            row: dict[str, Any] = dict(zip(self._label_columns(), self._values(label)))
            row.update({"rows": int(cols["rows"][g]), "mean": float(cols["mean"][g]),
                        "sd": float(cols["sd"][g]), "ci_95_lower": float(cols["ci95_lo"][g]),
                        "ci_95_upper": float(cols["ci95_hi"][g])})
            rows.append(row)
        more = [f"{len(self) - limit} more groups: see summary()"] if len(self) > limit else []
        return to_html(rows, caption=f"GroupFits {self.model_type}: {len(self)} groups",
                       notes=more)

    # -- comparisons and export ------------------------------------------------------------
    def _arms_by_group(self, arm: str, control: Any) -> dict[Any, dict[str, Any]]:
        """{remaining label: {arm name: proxy}} for a comparison of the ``arm`` column's
        values within each group of the other by columns; a clear error for an unknown
        column, a group with one arm or without the control."""
        columns = self._label_columns()
        if self.by is None or arm not in columns:
            raise DataError(f"arm = {arm!r} is not one of the columns the groups were made "
                            f"by ({', '.join(map(repr, columns))})")
        pos = columns.index(arm)
        members: dict[Any, dict[str, int]] = {}
        for g, label in enumerate(self._names):
            values = self._values(label)
            rest = values[:pos] + values[pos + 1:]
            key = rest[0] if len(rest) == 1 else rest
            members.setdefault(key, {})[str(values[pos])] = g
        for key, arms in members.items():
            where = f"group {key!r}" if len(columns) > 1 else "the groups"
            if len(arms) < 2:
                raise ModelError(f"{where} has only the {arm} {list(arms)}: a comparison "
                                 f"needs at least two arms")
            if str(control) not in arms:
                raise ModelError(f"{where} has no control arm {control!r} (its {arm} "
                                 f"values: {list(arms)})")
        return {key: {name: self._proxy(g) for name, g in arms.items()}
                for key, arms in members.items()}

    def _compare_request(self, arm: str, control: Any, higher_is_better: bool,
                         timeout: float | None) -> Request:
        from ._compare import compare_request
        from ._gather import gather
        groups = self._arms_by_group(arm, control)
        comparisons = yield from gather(
            compare_request(self._worker, arms, str(control), higher_is_better, timeout,
                            None) for arms in groups.values())
        columns = [c for c in self._label_columns() if c != arm]
        return GroupComparisons(columns, arm, {
            key: cmp._keep_arms(arms) for (key, arms), cmp in zip(groups.items(), comparisons)})

    async def compare(self, arm: str = "variant", control: Any = "A",
                      higher_is_better: bool = True, *,
                      timeout: float | None = None) -> "GroupComparisons":
        """Compare the values of the by column ``arm`` (the arms, named by their values as
        strings) within each group of the other by columns, against ``control``: one
        :class:`~bayesworker.Comparison` per remaining group, all computed as one batch of
        jobs on the workers. Returns a :class:`GroupComparisons` (a read-only dict keyed
        by the remaining labels, ``()`` when ``by`` was only ``arm``).

        >>> import bayesworker as bw
        >>> data = {"country": ["DE"] * 4 + ["FR"] * 4, "variant": ["A", "B"] * 4,
        ...         "converted": [0, 1, 1, 1, 0, 0, 1, 1]}
        >>> with bw.InferenceWorker(threads=1, seed=1) as w:
        ...     fits = w.fit_groups_sync(data, by=["country", "variant"],
        ...                              model="beta-binomial", converted="converted")
        ...     cmps = fits.compare_sync(arm="variant", control="A")
        ...     print(list(cmps), round(cmps["DE"].prob_beats_control()["B"], 4))
        ['DE', 'FR'] 0.8
        """
        return await self._worker._bridge.run_async(
            self._compare_request(arm, control, higher_is_better, timeout))

    def compare_sync(self, arm: str = "variant", control: Any = "A",
                     higher_is_better: bool = True, *,
                     timeout: float | None = None) -> "GroupComparisons":
        """Blocking twin of :meth:`compare`."""
        return self._worker._bridge.run_sync(
            self._compare_request(arm, control, higher_is_better, timeout))

    def to_arviz(self, draws: int = 4000, chains: int = 4, seed: int | None = None) -> Any:
        """Every group's draws as ArviZ's data object (``pip install bayesworker[arviz]``):
        one variable of shape (chains, draws, groups), the labels along the dimension
        ``group`` (a tuple label as its values joined by ", "); the draws of all groups
        are one batch of jobs, repeatable like ``post.to_arviz``."""
        from ._arviz import arms_data
        labels = [", ".join(map(str, k)) if isinstance(k, tuple) else str(k)
                  for k in self._names]
        return arms_data({label: self._proxy(g) for g, label in enumerate(labels)}, "group",
                         draws=draws, chains=chains, seed=seed)


class GroupComparisons(Mapping):
    """One :class:`~bayesworker.Comparison` per group: a read-only dict keyed by the group
    labels left when the arm column is taken out of ``by`` (a value, a tuple of values, or
    ``()`` when ``by`` held only the arm column). ``summary()`` stacks the comparisons'
    summaries; the HTML display shows every arm with its group's decision."""

    def __init__(self, columns: list[str], arm: str, comparisons: dict[Any, Any]) -> None:
        #: the by columns that name a group (the arm column left out)
        self.columns = tuple(columns)
        #: the by column whose values are the arms
        self.arm = arm
        self._comparisons = comparisons

    def __getitem__(self, key: Any) -> Any:
        try:
            return self._comparisons[tuple(key) if isinstance(key, list) else key]
        except KeyError:
            raise KeyError(f"no group {key!r} (groups: {list(self._comparisons)[:3]!r} "
                           f"...)") from None

    def __iter__(self) -> Iterator[Any]:
        return iter(self._comparisons)

    def __len__(self) -> int:
        return len(self._comparisons)

    def _values(self, key: Any) -> dict[str, Any]:
        return dict(zip(self.columns, key if len(self.columns) != 1 else (key,)))

    def summary(self) -> Any:
        """Every comparison's ``summary()`` stacked: one row per (group..., arm), a pandas
        DataFrame with that MultiIndex (just ``arm`` when no column is left), or a list of
        dicts with the group columns where pandas is not installed."""
        frames = {key: cmp.summary() for key, cmp in self._comparisons.items()}
        try:
            import pandas as pd
        except ImportError:
            return [{**self._values(key), **row} for key, rows in frames.items()
                    for row in rows]
        if not self.columns:
            return frames[()]
        return pd.concat(list(frames.values()), keys=list(frames),
                         names=[*self.columns, "arm"])

    def __repr__(self) -> str:
        by = ", ".join(self.columns) or "-"
        return f"<GroupComparisons of {self.arm} by {by}: {len(self)} comparisons>"

    def _repr_html_(self, limit: int = 20) -> str:
        from ._display import to_html
        rows, notes = [], []
        for key, cmp in list(self._comparisons.items())[:limit]:
            arm_rows, action, _, warnings = cmp._display()
            for i, row in enumerate(arm_rows):
                rows.append({**self._values(key), **row,
                             "decision": action if i == 0 else None})
            notes.extend(f"{key!r}: {w}" if self.columns else w for w in warnings)
        if len(self) > limit:
            notes.append(f"{len(self) - limit} more groups: see summary()")
        return to_html(rows, caption=f"{len(self)} comparisons of {self.arm}"
                                     + (f" by {', '.join(self.columns)}" if self.columns
                                        else ""), notes=notes)
