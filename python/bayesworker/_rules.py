"""Value rules: what raw values must satisfy, checked in blocks, and the messages saying so.

The C core names its rules ("finite", "positive", "nonnegative", "integer",
"some_positive"; :mod:`bayesworker._table` gives each model's list and their codes). Here
each name is a NumPy predicate and a message, so Python can check values itself (and
name the first offender) and word a value the C core refused the same way
(:func:`value_error`). Either way the ``DataError`` is made by
:func:`bayesworker._inputs.refused`: it carries the rule, the position and the value, so
:mod:`bayesworker._frames` can name the row label and column of a DataFrame instead.

>>> import numpy as np
>>> from bayesworker._rules import check_values
>>> check_values("lognormal", np.array([1.0, -2.0]), [1.0, -2.0], "values", ("finite", "positive"))
Traceback (most recent call last):
    ...
bayesworker._errors.DataError: values[1] = -2.0 must be positive for model 'lognormal'
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ._errors import DataError
from ._inputs import Namer, refused
from ._table import rule_name

__all__ = ["Rule", "CHUNK", "FINITE", "BINARY", "check", "check_values", "value_error"]

#: A predicate over one block of each array (True where an element passes) and the words
#: that follow "<name>[i] = <value>" when one does not.
Rule = tuple[Callable[..., np.ndarray], str]

#: Arrays are scanned in blocks of this many elements, so checks use bounded extra memory.
CHUNK = 1 << 18

FINITE: Rule = (np.isfinite, "is not finite")
BINARY: Rule = (lambda b: (b == 0) | (b == 1), "is not 0 or 1")

# The C core's per-element rules, by name; "{model!r}" is filled in.
_ELEMENT: dict[str, Rule] = {
    "finite": FINITE,
    "positive": (lambda b: b > 0, "must be positive for model {model!r}"),
    "nonnegative": (lambda b: b >= 0, "must be non-negative for model {model!r}"),
    "integer": (lambda b: b == np.floor(b), "is not an integer (model {model!r} needs counts)"),
}
# The name of each rule the messages' DataError reports as its ``rule``.
_NAMES = {pred: name for name, (pred, _) in _ELEMENT.items()} | {BINARY[0]: "binary"}
# Its rules over the whole array.
_WHOLE: dict[str, tuple[Callable[[np.ndarray], bool], str]] = {
    "some_positive": (lambda x: bool(np.any(x > 0)),
                      "all {n} values in {name} are 0; model {model!r} needs at least one "
                      "positive value"),
}


def check(arrays: tuple[np.ndarray, ...], rules: Sequence[Rule], shown: Any,
          item: Namer) -> None:
    """Raise DataError at the first index where any rule fails, with that rule's message.

    Each rule's predicate gets one block of each array and returns a bool mask of the
    elements that pass. Blocks bound the memory used by temporary masks. ``shown[i]`` is
    the value the message shows (the user's own element).
    """
    n = arrays[0].shape[0]
    for start in range(0, n, CHUNK):
        blocks = tuple(a[start : start + CHUNK] for a in arrays)
        masks = [ok(*blocks) for ok, _ in rules]
        good = masks[0] if len(masks) == 1 else np.logical_and.reduce(masks)
        if not good.all():
            j = int(np.argmin(good))
            ok, msg = next(r for mask, r in zip(masks, rules) if not mask[j])
            i = start + j
            raise refused(item(i), i, shown[i], msg, rule=_NAMES.get(ok))


def check_values(model: str, x: np.ndarray, shown: Any, name: str, rules: Sequence[str],
                 extra: Sequence[Rule] = ()) -> None:
    """Check float64 values ``x`` of ``model`` against the named C rules, then ``extra``."""
    element = [(_ELEMENT[r][0], _ELEMENT[r][1].format(model=model))
               for r in rules if r in _ELEMENT]
    element += extra
    if element:
        check((x,), element, shown, lambda i: f"{name}[{i}]")
    for r in rules:
        if r in _WHOLE and not _WHOLE[r][0](x):
            raise DataError(_WHOLE[r][1].format(n=x.shape[0], name=name, model=model))


def value_error(model: str, name: str, rule: int, index: float, value: float) -> DataError:
    """The ``DataError`` for a value the C core refused (rule code, index and value from it).

    >>> str(value_error("lognormal", "values", 2, 3, -2.0))
    "values[3] = -2.0 must be positive for model 'lognormal'"
    """
    which = rule_name(rule)
    if which in _WHOLE:
        exc = DataError(_WHOLE[which][1].format(n=int(index), name=name, model=model))
        exc.rule, exc.field = which, name
        return exc
    text = _ELEMENT[which][1].format(model=model) if which in _ELEMENT else "is invalid"
    return refused(f"{name}[{int(index)}]", int(index), float(value), text, rule=which)
