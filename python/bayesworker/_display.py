"""Tables for notebooks: rows of dicts as compact HTML that reads in light and dark themes.

One function does it, :func:`to_html`, for every object that displays itself (results,
proxies, diagnostics, and any later table such as group fits or comparisons): give it rows
of dicts, one per line of the table, columns in the order of the keys. It

- merges ``ci_<level>_lower`` / ``ci_<level>_upper`` pairs into one ``<level>% interval``
  cell;
- flags a mean that lies outside its own 95 % interval (the truncated mean of a lognormal
  with very little data can be 1e11 against an interval of [0.08, 7.3]): the median is
  shown before the mean and the mean is marked, with a note under the table;
- formats numbers to four significant digits, runtimes in s / ms, priors as ``key=value``.

No colour is set anywhere: the table inherits the notebook theme's text and background, so
it reads the same in JupyterLab's light and dark themes.

>>> print(to_html([{"quantity": "rate", "mean": 0.1, "ci_95_lower": 0.05,
...                 "ci_95_upper": 0.2}]).count("<tr"))
2
"""

from __future__ import annotations

import html
import math
import re
from typing import Any

__all__ = ["to_html", "display_rows", "format_value", "MEAN_OUTSIDE"]

#: The note shown under a table whose mean lies outside its 95 % interval.
MEAN_OUTSIDE = ("mean outside its own 95% interval: the posterior has a very heavy right "
                "tail (a lognormal mean is reported truncated at its 99.99% quantile), so "
                "the mean is dominated by the tail; read the median and the interval")

_CI = re.compile(r"^ci_(.+)_lower$")
_FLAG_MARK = "\u2020"        # dagger
_TABLE_STYLE = "border-collapse: collapse; font-variant-numeric: tabular-nums;"
_CELL_STYLE = "text-align: right; padding: 0.15em 0.6em;"
_HEAD_STYLE = "text-align: right; padding: 0.15em 0.6em; border-bottom: 1px solid currentColor;"
_LABELS = {"sd": "sd", "n": "n", "converged": "converged", "runtime": "runtime"}


def format_value(value: Any, key: str = "") -> str:
    """One cell's text (not escaped): 4 significant digits, intervals as ``[lo, hi]``,
    booleans as yes / no, runtimes in s or ms, dicts as ``key=value`` lists."""
    if value is None:
        return "\u2014"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        parts = []
        for k, v in value.items():
            text = format_value(v)
            parts.append(f"{k}: {text}" if isinstance(v, dict) else f"{k}={text}")
        return "; ".join(parts) if any(isinstance(v, dict) for v in value.values()) \
            else ", ".join(parts)
    if isinstance(value, (tuple, list)) and len(value) == 2 and \
            all(isinstance(v, (int, float)) for v in value):
        return f"[{format_value(value[0])}, {format_value(value[1])}]"
    if isinstance(value, float) or hasattr(value, "dtype"):
        v = float(value)
        if key == "runtime" and math.isfinite(v):
            return f"{v * 1e3:.3g} ms" if v < 1 else f"{v:.3g} s"
        if v.is_integer() and abs(v) < 1e15:
            return str(int(v))
        return f"{v:.4g}"
    return str(value)


def _merge_intervals(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        m = _CI.match(key)
        if m and f"ci_{m.group(1)}_upper" in row:
            out[f"{m.group(1)}% interval"] = (value, row[f"ci_{m.group(1)}_upper"])
        elif not (key.startswith("ci_") and key.endswith("_upper")):
            out[key] = value
    return out


def _mean_outside(row: dict[str, Any]) -> bool:
    mean, ci = row.get("mean"), row.get("95% interval")
    if mean is None or ci is None or any(v is None for v in ci):
        return False
    return not (ci[0] <= mean <= ci[1])


def display_rows(rows: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]],
                                                      list[set[str]]]:
    """(columns, rows, flagged cells per row) of a table: intervals merged, and the median
    moved before the mean when some mean lies outside its 95 % interval."""
    merged = [_merge_intervals(r) for r in rows]
    flags = [{"mean"} if _mean_outside(r) else set() for r in merged]
    columns: list[str] = []
    for r in merged:
        columns.extend(k for k in r if k not in columns)
    if any(flags) and "median" in columns and "mean" in columns:
        columns.remove("median")
        columns.insert(columns.index("mean"), "median")
    return columns, merged, flags


def to_html(rows: list[dict[str, Any]], caption: str | None = None,
            notes: list[str] | tuple[str, ...] = ()) -> str:
    """``rows`` as an HTML table (see the module docstring); ``caption`` above it,
    ``notes`` under it."""
    columns, merged, flags = display_rows(rows)
    head = "".join(f'<th style="{_HEAD_STYLE}">{html.escape(_LABELS.get(c, c))}</th>'
                   for c in columns)
    body = []
    for row, flagged in zip(merged, flags):
        cells = []
        for c in columns:
            text = html.escape(format_value(row.get(c), c))
            if c in flagged:
                cells.append(f'<td style="{_CELL_STYLE} font-style: italic;" class="bw-flag" '
                             f'title="{html.escape(MEAN_OUTSIDE)}">{text}{_FLAG_MARK}</td>')
            else:
                cells.append(f'<td style="{_CELL_STYLE}">{text}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    all_notes = ([f"{_FLAG_MARK} {MEAN_OUTSIDE}"] if any(flags) else []) + list(notes)
    cap = (f'<caption style="caption-side: top; text-align: left; font-weight: bold;">'
           f'{html.escape(caption)}</caption>' if caption else "")
    foot = "".join(f'<div style="font-size: smaller; opacity: 0.8;">{html.escape(n)}</div>'
                   for n in all_notes)
    return (f'<div class="bw-display"><table class="bw-table" style="{_TABLE_STYLE}">{cap}'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{foot}</div>")
