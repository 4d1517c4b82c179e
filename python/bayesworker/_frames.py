"""Data from pandas and Polars: column keywords, row labels, and errors in the user's words.

``run_inference`` takes the model's data field names as keyword arguments naming columns
of a DataFrame (pandas or Polars) or of a dict of columns: ``value="revenue"``,
``converted="conv", value="revenue"``, ``successes="conv", trials="users"``. The fields of
each model (:func:`fields`) are those its data forms already use (``models/``): ``value``
(or ``values``) for one-sample values, ``converted`` for 0/1 outcomes, ``converted`` and
``value`` for compound rows, ``counts`` or ``labels`` for categories, and each aggregate
form's keys. A DataFrame given without keywords is read from the columns that carry the
field names (the first complete form). Rows of an aggregate form are checked one by one
(a refusal names the row) and then combined: counts and sums are added, means and standard
deviations pooled.

:func:`frame_input` turns such a call into the data a family's parser reads, and
:meth:`FrameInput.reword` turns a refusal that names an array position (``values[7]``)
into one naming the column and the row label (``column 'revenue', row 334: value -5.0
...``: the index label of a pandas row, a tuple for a MultiIndex, the row number for
Polars and dicts). ``fit_groups`` reads its columns with the same :func:`column`.

>>> import pandas as pd
>>> import bayesworker as bw
>>> df = pd.DataFrame({"revenue": [3.0, -5.0]}, index=[12, 334])
>>> with bw.InferenceWorker(threads=0, seed=1) as w:
...     try:
...         w.run_inference_sync("lognormal", df, value="revenue")
...     except bw.DataError as exc:
...         print(exc, (exc.column, exc.label, exc.index))
column 'revenue', row 334: value -5.0 must be positive for model 'lognormal' ('revenue', 334, 1)
>>> fields("beta-binomial").names
('converted', 'values', 'successes', 'trials')
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._errors import DataError, ModelError
from ._inputs import as_1d, forms_text, is_frame, library
from ._table import core_row
from ._validate import show
from .models import AUTO, Family, families, family, resolve_model_type
from .models._compound import AGGREGATE_KEYS, ROW_KEYS

__all__ = ["Fields", "fields", "column", "row_label", "FrameInput", "frame_input",
           "labelled"]

Form = tuple[str, ...]

#: Data that is not a DataFrame: without keywords, nothing to do before the fit.
_PLAIN = frozenset({np.ndarray, list, tuple, dict})
#: Raw fields whose column is the data itself (the others go under their key in a dict).
_BARE = frozenset({"value", "values", "converted"})
#: Aggregate fields that are a mean and a standard deviation: pooled, not added.
_POOLED = (("mean", "sd"), ("mean_log", "sd_log"))


# ---------------------------------------------------------------------------------------- #
# The fields of a model                                                                    #
# ---------------------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Fields:
    """The data fields of a model: the forms its columns may take, and its options.

    Attributes:
        model: the model type (canonical, or ``"auto"``).
        raw: forms of raw rows, one value per row (``("converted", "value")``).
        aggregate: aggregate forms, one aggregate per row (``("successes", "trials")``).
        options: the option names the model takes (the other keywords it accepts).
    """

    model: str
    raw: tuple[Form, ...]
    aggregate: tuple[Form, ...]
    options: tuple[str, ...]

    @property
    def names(self) -> tuple[str, ...]:
        """Every field name, in the order of the forms."""
        return tuple(dict.fromkeys(k for form in (*self.raw, *self.aggregate) for k in form))

    def listing(self) -> str:
        """The fields and options as messages list them."""
        text = f"its data fields are {', '.join(f'{k}=' for k in self.names)}"
        opts = ", ".join(f"{k}=" for k in self.options)
        return f"{text}; its options are {opts}" if opts else f"{text}; it takes no options"

    def form(self, keys: set[str]) -> tuple[bool, Form]:
        """``(is aggregate, form)`` of the fields ``keys``; DataError if they are none."""
        for aggregate, forms in ((False, self.raw), (True, self.aggregate)):
            for form in forms:
                if set(form) == keys:
                    return aggregate, form
        given = ", ".join(f"{k}=" for k in sorted(keys))
        raise DataError(f"the columns named by {given} are not a data form of model "
                        f"{self.model!r}; name one of: "
                        f"{forms_text([*self.raw, *self.aggregate])}")


def _family_forms(fam: Family) -> tuple[tuple[Form, ...], tuple[Form, ...]]:
    """(raw forms, aggregate forms) of one family, from its data forms and C table row."""
    row = core_row(fam.name)
    takes = set(row["data"])
    if row["prior_per_category"]:
        return (("counts",), ("labels",)), ()
    if "counts" in takes and "values" in takes:                 # compound rows
        aggs: list[Form] = []
        for sev in (fam.severity.forms if fam.severity is not None else ()):
            aggs += [(*AGGREGATE_KEYS, *sev), (*AGGREGATE_KEYS, *(k for k in sev if k != "n"))]
        if aggs:
            aggs.append(AGGREGATE_KEYS)                         # no severity values at all
        return (ROW_KEYS,), tuple(aggs)
    one = "converted" if "counts" in takes else "value"
    return ((one,), ("values",)), fam.forms


def fields(model_type: Any) -> Fields:
    """The data fields of a model type (``"auto"``: those of every family it may choose)."""
    name = resolve_model_type(model_type)
    fams = [f for f in families() if f.auto is not None] if name == AUTO else [family(name)]
    raw: dict[Form, None] = {}
    agg: dict[Form, None] = {}
    opts: dict[str, None] = {}
    for fam in fams:
        r, a = _family_forms(fam)
        raw.update(dict.fromkeys(r))
        agg.update(dict.fromkeys(a))
    for fam in (families() if name == AUTO else fams):
        opts.update(dict.fromkeys(fam.options))
    return Fields(name, tuple(sorted(raw, key=len, reverse=True)), tuple(agg), tuple(opts))


# ---------------------------------------------------------------------------------------- #
# Columns and rows                                                                         #
# ---------------------------------------------------------------------------------------- #


def _column_names(data: Any) -> list[Any]:
    return list(data.columns) if is_frame(data) else list(data)


def column(data: Any, name: Any, field: str) -> Any:
    """Column ``name`` of ``data`` (a DataFrame-like object or a dict of columns), named
    by the keyword ``field``; a DataError naming it and listing the columns if absent."""
    cols = _column_names(data)
    if name not in cols:
        raise DataError(f"column {name!r} ({field}=) is not in the data; its columns: "
                        f"{', '.join(map(repr, cols))}")
    return data[name]


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def row_label(obj: Any, pos: int) -> Any:
    """The label of row ``pos`` of a pandas DataFrame or Series (its index label, a tuple
    for a MultiIndex); ``pos`` itself for anything else (Polars, a dict of columns)."""
    if library(obj) != "pandas" or not hasattr(obj, "index"):
        return pos
    label = obj.index[pos]
    return tuple(map(_plain, label)) if isinstance(label, tuple) else _plain(label)


def _element(col: Any, pos: int, default: Any) -> Any:
    """The user's own element ``pos`` of a column, as a message shows it."""
    try:
        return _plain(col.iloc[pos] if library(col) == "pandas" else col[pos])
    except Exception:  # noqa: BLE001 - a column that cannot be indexed: the array's value
        return default


# ---------------------------------------------------------------------------------------- #
# The input of a fit                                                                       #
# ---------------------------------------------------------------------------------------- #


class FrameInput:
    """The data and options of a fit as the family reads them, and the columns behind them.

    ``data``: what the family's parser gets; ``options``: the keywords that are options;
    ``columns``: how the parser names an array (``"values"``, ``"data['value']"``) ->
    ``(column name, the user's column)``, for :meth:`reword`.
    """

    __slots__ = ("data", "options", "columns")

    def __init__(self, data: Any, options: dict[str, Any],
                 columns: dict[str, tuple[Any, Any]]) -> None:
        self.data, self.options, self.columns = data, options, columns

    def _where(self, field: str) -> str:
        name = self.columns[field][0]
        return field if name is None else f"column {name!r}"

    def reword(self, exc: BaseException) -> BaseException:
        """``exc`` naming the column and row label where it named an array position (and
        the column where it named an array); other exceptions as they are."""
        if not isinstance(exc, DataError):
            return exc
        field = getattr(exc, "field", None)
        reason = getattr(exc, "reason", None)
        if field in self.columns and reason is not None:
            name, col = self.columns[field]
            label = row_label(col, exc.index)
            value = _element(col, exc.index, exc.value)
            new = DataError(f"{self._where(field)}, row {show(label)}: value {show(value)} "
                            f"{reason}")
            new.rule, new.index, new.value, new.reason = exc.rule, exc.index, value, reason
            new.field, new.label, new.column = field, label, name
            return new
        text = str(exc)
        for field in self.columns:
            where = self._where(field)
            if field.startswith("data["):
                text = text.replace(field, where)
            elif text.startswith(f"{field} "):
                text = where + text[len(field):]
            text = text.replace(f" in {field} ", f" in {where} ")
        return exc if text == str(exc) else DataError(text)


def labelled(data: Any) -> FrameInput | None:
    """The labels of a pandas or Polars Series given as the data itself or in a dict
    (``{"converted": s1, "value": s2}``), for :meth:`FrameInput.reword`; None if there are
    none. (Only needed once a fit is refused, so it is not looked for before.)"""
    if isinstance(data, Mapping):
        cols = {f"data[{k!r}]": (k, v) for k, v in data.items() if library(v)}
    else:
        cols = {"values": (getattr(data, "name", None), data)} if library(data) else {}
    return FrameInput(data, {}, cols) if cols else None


def frame_input(model_type: Any, data: Any, prior: Any,
                options: dict[str, Any]) -> FrameInput | None:
    """The data and options of ``run_inference(model_type, data, prior=prior, **options)``
    with its column keywords applied, or ``None`` when there are no column keywords and
    ``data`` is not a DataFrame (nothing to do; a NumPy array, list or dict is told
    first, by its type; a refusal of a Series is reworded by :func:`labelled`).

    Raises ModelError for a keyword that is neither a data field nor an option of the
    model, and DataError for columns that are missing or do not make a form (after the
    prior and options, as ``prepare`` checks them first).
    """
    if not options and (type(data) in _PLAIN or not is_frame(data)):
        return None
    frame = is_frame(data)
    flds = fields(model_type)
    named = {k: v for k, v in options.items() if k in flds.names}
    if not named and not frame:
        return None
    unknown = [k for k in options if k not in flds.names and k not in flds.options]
    if unknown:
        raise ModelError(f"unknown keyword argument {unknown[0]}={options[unknown[0]]!r} for "
                         f"model {flds.model!r}: {flds.listing()}")
    rest = {k: v for k, v in options.items() if k not in named}
    try:
        return _columns_input(flds, data, named, rest)
    except DataError:
        _check_request(flds.model, prior, rest)     # a bad prior or option is told first
        raise


def _check_request(model: str, prior: Any, options: dict[str, Any]) -> None:
    if model != AUTO:
        fam = family(model)
        fam.check_options(options)
        fam.check_prior(prior)


def _columns_input(flds: Fields, data: Any, named: dict[str, Any],
                   options: dict[str, Any]) -> FrameInput:
    """The input of a fit whose data fields name columns of ``data`` (``named``: field ->
    column; empty: the columns that carry the field names)."""
    if not is_frame(data) and not isinstance(data, Mapping):
        given = ", ".join(f"{k}={v!r}" for k, v in named.items())
        raise DataError(f"{given} names a column, but data is a {type(data).__name__}; "
                        "column keywords need a DataFrame (pandas, Polars) or a dict of "
                        "columns")
    if not named:
        have = set(_column_names(data))
        form = next((f for f in (*flds.raw, *flds.aggregate) if set(f) <= have), None)
        if form is None:
            raise DataError(f"data is a {type(data).__name__} with columns "
                            f"{_column_names(data)!r}; name the columns to fit with keyword "
                            f"arguments (model {flds.model!r}: {flds.listing()})")
        named = {k: k for k in form}
    aggregate, form = flds.form(set(named))
    cols = {f: (named[f], column(data, named[f], f)) for f in form}
    if aggregate:
        return _aggregate_input(flds.model, form, cols, options)
    if len(form) == 1 and form[0] in _BARE:
        (name, col), = cols.values()
        return FrameInput(col, options, {"values": (name, col)})
    return FrameInput({f: col for f, (_, col) in cols.items()}, options,
                      {f"data[{f!r}]": nc for f, nc in cols.items()})


# ---------------------------------------------------------------------------------------- #
# Aggregate rows                                                                           #
# ---------------------------------------------------------------------------------------- #


def _aggregate_input(model: str, form: Form, cols: dict[str, tuple[Any, Any]],
                     options: dict[str, Any]) -> FrameInput:
    """Rows of an aggregate form, each checked by the model as its own aggregate (a refusal
    names the row and the columns), then combined into one aggregate."""
    from ._request import prepare

    keys = {f"data[{f!r}]": nc for f, nc in cols.items()}
    words = FrameInput(None, options, keys)
    try:
        arrays = {f: as_1d(col, f"data[{f!r}]", allow_bool=False) for f, (_, col) in cols.items()}
    except DataError as exc:
        raise words.reword(exc) from None
    n = {a.shape[0] for a in arrays.values()}
    if n != {next(iter(n))}:
        raise DataError(f"the columns {', '.join(repr(c) for c, _ in cols.values())} have "
                        "different lengths")
    rows = [{f: a[i].item() for f, a in arrays.items()} for i in range(n.pop())]
    if not rows:
        raise DataError(f"the columns {', '.join(repr(c) for c, _ in cols.values())} are "
                        f"empty; model {model!r} needs at least one row")
    first = next(iter(cols.values()))[1]
    for i, row in enumerate(rows):
        try:
            prepare(model, row)
        except DataError as exc:
            label = row_label(first, i)
            new = DataError(f"row {show(label)}: {words.reword(exc)}")
            new.index, new.label = i, label
            raise new from None
    data = rows[0] if len(rows) == 1 else _combined(form, arrays)
    return FrameInput(data, options, keys)


def _combined(form: Form, arrays: dict[str, np.ndarray]) -> dict[str, float]:
    """One aggregate of several (each already checked): counts and sums added, a mean and
    sd pooled (the sd of the union of the rows' values, divisor n - 1)."""
    out = {f: math.fsum(arrays[f].tolist()) for f in form}
    for mean_k, sd_k in _POOLED:
        if mean_k not in form:
            continue
        n = arrays["n" if "n" in form else "converters"].astype(np.float64)
        mean, sd = arrays[mean_k].astype(np.float64), arrays[sd_k].astype(np.float64)
        total = float(n.sum())
        m = math.fsum((n * mean).tolist()) / total
        within = np.where(n > 1, (n - 1) * sd * sd, 0.0)          # an sd of one value: 0
        ss = math.fsum(within.tolist()) + math.fsum((n * (mean - m) ** 2).tolist())
        out[mean_k] = m
        out[sd_k] = math.sqrt(ss / (total - 1)) if total > 1 else math.nan
    return out
