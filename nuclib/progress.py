"""One progress-bar behaviour for all of nuclib.

Every long loop in nuclib (tiles, blocks, images, files, training data) shows
its bar through ``progress_bar``, with the same rules:

- **On by default, switched off with ``progress=False``** (``--no-progress``
  on the command line).
- **Only work that lasts is shown**: a bar appears after ``DELAY`` seconds,
  so a call that finishes sooner prints nothing, and never for a single
  step (one tile, one image).
- **One bar per user-visible step**: while a nuclib bar is open, the bars
  of the work it contains stay hidden (``segment_many`` shows one bar over
  images, not one per image over its tiles; ``segment`` shows the final
  pass, not the diameter-estimation passes).
- **Log lines go through the bar** (``write``) so they do not break it.

Example:
    >>> from nuclib.progress import progress_bar
    >>> total = 0
    >>> for n in progress_bar(range(3), desc="counting", unit="n"):
    ...     with progress_bar(total=1, desc="inner") as inner:   # hidden: an outer bar is open
    ...         total += n
    ...         inner.update(1)
    >>> total
    3
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

# Seconds before a bar is drawn: short calls (one small image) stay silent.
DELAY = 1.0

_open = 0  # nuclib bars open in this process, over all threads
_lock = threading.Lock()


def _opened(total, desc: str, unit: str, enabled: bool):
    """Open a tqdm bar, hidden when disabled or when another nuclib bar is open."""
    global _open
    from tqdm.auto import tqdm

    with _lock:
        # A single step has no progress to show (one tile, one image).
        visible = enabled and _open == 0 and (total is None or total > 1)
        _open += 1
    # leave=False: a finished bar makes room for the next step's output.
    return tqdm(total=total, desc=desc, unit=unit, disable=not visible, delay=DELAY,
                leave=False, dynamic_ncols=True)


def _closed(bar) -> None:
    global _open
    bar.close()
    with _lock:
        _open -= 1


@contextmanager
def _manual(total, desc, unit, enabled):
    bar = _opened(total, desc, unit, enabled)
    try:
        yield bar
    finally:
        _closed(bar)


def _tracked(items, total, desc, unit, enabled) -> Iterator:
    bar = _opened(total, desc, unit, enabled)
    try:
        for item in items:
            yield item
            bar.update(1)
    finally:
        _closed(bar)


def progress_bar(iterable: Iterable | None = None, *, total: int | None = None,
                 desc: str = "", unit: str = "it", enabled: bool = True):
    """A progress bar over ``iterable``, or a context manager updated by hand.

    Args:
        iterable: items to loop over; ``total`` defaults to its ``len``.
            Without it, returns a context manager whose value has
            ``update(n)``.
        total: number of steps (for the bar's percentage).
        desc: what is counted ("tiles", "blocks", "images").
        unit: the unit shown after the rate.
        enabled: ``False`` hides the bar (the ``progress=`` option of the
            calling function).

    Returns:
        An iterator over ``iterable``'s items, or a context manager.

    Example:
        >>> with progress_bar(total=2, desc="tiles", enabled=False) as bar:
        ...     bar.update(2)
        >>> list(progress_bar("ab", desc="letters"))
        ['a', 'b']
    """
    if iterable is None:
        return _manual(total, desc, unit, enabled)
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    return _tracked(iterable, total, desc, unit, enabled)


def write(message: str, *, file=None) -> None:
    """Print a log line without breaking an open progress bar (``tqdm.write``).

    Args:
        message: the line to print.
        file: stream (default ``sys.stdout``).

    Example:
        >>> write("image.png: 12 nuclei")
        image.png: 12 nuclei
    """
    from tqdm.auto import tqdm

    tqdm.write(message, file=sys.stdout if file is None else file)
