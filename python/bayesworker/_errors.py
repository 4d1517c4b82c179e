"""Exceptions raised by bayesworker.

Every error the package reports on purpose is a :class:`BayesworkerError`. The two
validation errors are also :class:`ValueError` s, so code that already catches
``ValueError`` keeps working; a disposed posterior is a :class:`RuntimeError`.

>>> from bayesworker._errors import BayesworkerError, DataError
>>> try:
...     raise DataError("data['successes'] = 12 exceeds data['trials'] = 10")
... except ValueError as exc:
...     print(type(exc).__name__, isinstance(exc, BayesworkerError))
DataError True
"""

from __future__ import annotations

__all__ = ["BayesworkerError", "ModelError", "DataError", "DisposedError"]


class BayesworkerError(Exception):
    """Base class of every exception bayesworker raises on purpose."""


class ModelError(BayesworkerError, ValueError):
    """The model request is invalid: unknown model type, unknown option, or a bad prior.

    The message names the offending field and value, e.g.
    ``unknown model type 'betabinomial'; expected one of ...`` or
    ``prior['alpha'] = -1.0 must be positive``.
    """


class DataError(BayesworkerError, ValueError):
    """The data (or a count, level or size argument) is invalid.

    The message names the offending field, index and value, e.g.
    ``values[3] = nan is not finite``.
    """


class DisposedError(BayesworkerError, RuntimeError):
    """The posterior behind a proxy is gone: disposed, evicted, or its worker closed."""
