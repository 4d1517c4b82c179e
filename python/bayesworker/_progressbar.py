"""Progress bars: tqdm (``tqdm.auto``: a widget in Jupyter, text in a terminal) driven by the
progress reports the bridge already makes, and the package's options.

A long call takes ``progress=``: ``True`` shows a bar, ``False`` none, ``None`` (the default)
follows ``bw.set_options(progress=...)``, whose ``"auto"`` shows a bar for any call that
runs longer than a second (the bar opens at the first report after that second). tqdm is
optional: without it a bar that was asked for warns once and the call runs without one.

>>> import bayesworker as bw
>>> bw.set_options(progress="auto"); bw.get_options()["progress"]
'auto'
>>> bw.set_options(progress=False)
"""

from __future__ import annotations

import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ._progress import Progress

__all__ = ["set_options", "get_options", "progress_listener", "bar_over_batches",
           "bar_over_batches_async", "AUTO_AFTER"]

#: Seconds a call runs before ``progress="auto"`` shows its bar.
AUTO_AFTER = 1.0
_MODES = (True, False, "auto")
_options: dict[str, Any] = {"progress": False}
_warned = [False]
# The clock of "auto" (a test replaces it; nothing here sleeps or measures for a test).
_clock = time.monotonic


def set_options(*, progress: bool | str | None = None) -> None:
    """Set package-wide options. ``progress``: ``False`` (the default), ``True`` (a bar
    for every long call) or ``"auto"`` (a bar for any call running longer than a second)."""
    if progress is not None:
        _options["progress"] = _mode(progress, "progress")


def get_options() -> dict[str, Any]:
    """The package-wide options (a copy)."""
    return dict(_options)


def _mode(value: Any, name: str) -> bool | str:
    if not any(value is m or (isinstance(m, str) and value == m) for m in _MODES):
        raise ValueError(f"{name} = {value!r} must be True, False or 'auto'")
    return value


def _tqdm() -> Any:
    """tqdm.auto.tqdm (a widget in Jupyter), its text bar in a notebook without ipywidgets
    (where tqdm.auto would warn on every import), or None (warning once) where tqdm is not
    installed."""
    try:
        import importlib.util
        if importlib.util.find_spec("ipywidgets") is None:
            from tqdm.std import tqdm
        else:
            from tqdm.auto import tqdm
    except ImportError:
        if not _warned[0]:
            _warned[0] = True
            warnings.warn("progress bars need tqdm (pip install tqdm); running without one",
                          RuntimeWarning, stacklevel=4)
        return None
    return tqdm


class _Bar:
    """One bar, opened on demand: at once (``True``) or after AUTO_AFTER s (``"auto"``)."""

    def __init__(self, mode: bool | str, desc: str, unit: str) -> None:
        self.mode, self.desc, self.unit = mode, desc, unit
        self.start = _clock()
        self.bar: Any = None
        self.shown = 0

    def show(self, done: int, total: int) -> None:
        if self.bar is None:
            if self.mode == "auto" and _clock() - self.start < AUTO_AFTER:
                return
            tqdm = _tqdm()
            if tqdm is None:
                self.mode = False
                return
            self.bar = tqdm(total=total, desc=self.desc, unit=self.unit)
        if self.bar.total != total:
            self.bar.total = total
            self.bar.refresh()
        if done > self.shown:
            self.bar.update(done - self.shown)
            self.shown = done

    def counter(self, n: int) -> "_Counter":
        """A pass-through of batches of draws (``n`` in all) that moves this bar."""
        return _Counter(self, n)

    def close(self, finished: bool) -> None:
        if self.bar is not None:
            if finished and self.bar.total and self.shown < self.bar.total:
                self.bar.update(self.bar.total - self.shown)
            self.bar.close()


class _Counter:
    """Counts the draws of the batches it passes through; ``finished`` once all ``n``."""

    def __init__(self, bar: _Bar, n: int) -> None:
        self.bar, self.n, self.done = bar, n, 0

    @property
    def finished(self) -> bool:
        return self.done >= self.n

    def __call__(self, batch: Any) -> Any:
        self.done += len(batch)
        self.bar.show(self.done, self.n)
        return batch


def _resolve(progress: Any) -> bool | str:
    return _options["progress"] if progress is None else _mode(progress, "progress")


@contextmanager
def progress_listener(progress: Any, on_progress: Callable[[Progress], None] | None,
                      desc: str) -> Iterator[Callable[[Progress], None] | None]:
    """The on_progress to pass to a call: ``on_progress`` itself when no bar is wanted,
    else a listener that drives a bar and forwards every report to ``on_progress``."""
    mode = _resolve(progress)
    if mode is False:
        yield on_progress
        return
    bar = _Bar(mode, desc, "block")

    def listener(p: Progress) -> None:
        if p.total_iterations:
            bar.show(p.iteration, p.total_iterations)
        if on_progress is not None:
            on_progress(p)

    finished = False
    try:
        yield listener
        finished = True
    finally:
        bar.close(finished)


def bar_over_batches(batches: Iterator[Any], n: int, progress: Any,
                     desc: str) -> Iterator[Any]:
    """``batches`` (arrays of draws, ``n`` in all), with a bar counting draws if one is
    wanted (else ``batches`` itself); closing the result closes ``batches``."""
    mode = _resolve(progress)
    return batches if mode is False else _counted(batches, n, _Bar(mode, desc, "draw"))


def _counted(batches: Any, n: int, bar: _Bar) -> Iterator[Any]:
    counted = bar.counter(n)
    try:
        yield from map(counted, batches)
    finally:
        bar.close(counted.finished)
        batches.close()


def bar_over_batches_async(batches: AsyncIterator[Any], n: int, progress: Any,
                           desc: str) -> AsyncIterator[Any]:
    """The async twin of :func:`bar_over_batches`."""
    mode = _resolve(progress)
    return batches if mode is False else _counted_async(batches, n, _Bar(mode, desc, "draw"))


async def _counted_async(batches: Any, n: int, bar: _Bar) -> AsyncIterator[Any]:
    counted = bar.counter(n)
    try:
        async for batch in batches:
            yield counted(batch)
    finally:
        bar.close(counted.finished)
        await batches.aclose()
