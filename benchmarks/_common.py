"""Shared helpers for nuclib's benchmarks: machine baselines, timing, Markdown tables.

Benchmarks report their figures as ratios against a baseline measured in the
same process (the machine's 3x3-convolution or matmul throughput), so a table
from a laptop and one from a server can be compared. Run from the repository
root as ``python benchmarks/<topic>.py``; the script's folder is on
``sys.path``, so ``from _common import ...`` works.

Example:
    >>> from _common import conv3x3_gflops, median_seconds, print_table
    >>> baseline = conv3x3_gflops(size=32, repeats=1)          # doctest: +SKIP
    >>> seconds = median_seconds(lambda: sum(range(1000)))
    >>> print_table([{"what": "sum", "ms": seconds * 1e3}])   # doctest: +SKIP
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path


def dsb2018_root() -> Path:
    """The DSB2018 data: ``$NUCLIB_DSB2018``, else ``../shared/data/dsb2018`` beside the repo."""
    return Path(os.environ.get("NUCLIB_DSB2018",
                               Path(__file__).resolve().parents[2] / "shared" / "data" / "dsb2018"))


def median_seconds(fn: Callable[[], object], *, warmup: int = 1, repeats: int = 5) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeats`` calls after ``warmup`` calls.

    Warm-up calls absorb one-off costs (graph tracing, memory allocation,
    thread-pool start-up); the median resists the odd slow call.

    Args:
        fn: the work to time, called with no arguments.
        warmup: untimed calls first (>= 0).
        repeats: timed calls (>= 1).

    Returns:
        The median duration in seconds.

    Raises:
        ValueError: ``warmup < 0`` or ``repeats < 1``.

    Example:
        >>> median_seconds(lambda: None, warmup=0, repeats=3) < 1.0
        True
    """
    if warmup < 0 or repeats < 1:
        raise ValueError(f"need warmup >= 0 and repeats >= 1, got warmup={warmup}, "
                         f"repeats={repeats}")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def conv3x3_gflops(*, size: int = 128, channels: int = 64, batch: int = 8,
                   repeats: int = 5) -> float:
    """The machine's throughput on a dense 3x3 convolution with TensorFlow, in GFLOP/s.

    Times ``tf.nn.conv2d`` ('same' padding, float32, channels-last) of a
    ``(batch, size, size, channels)`` tensor with a ``3x3xchannelsxchannels``
    kernel inside a ``tf.function``; one multiply-add counts as 2 FLOPs. This
    is the reference rate of a mid-width U-Net convolution: wider layers can
    beat it, thin, depthwise or memory-bound layers fall short.

    Args:
        size: height and width of the input.
        channels: input and output channels.
        batch: images per call.
        repeats: timed calls (after two warm-up calls).

    Returns:
        GFLOP/s (1e9 FLOPs per second).

    Example:
        >>> conv3x3_gflops(size=16, channels=8, batch=1, repeats=1) > 0  # doctest: +SKIP
        True
    """
    import tensorflow as tf

    x = tf.random.normal((batch, size, size, channels))
    kernel = tf.random.normal((3, 3, channels, channels))
    conv = tf.function(lambda x, k: tf.nn.conv2d(x, k, strides=1, padding="SAME"))
    # .numpy() waits for the result, so the timing covers the whole convolution.
    seconds = median_seconds(lambda: conv(x, kernel).numpy(), warmup=2, repeats=repeats)
    flops = 2 * batch * size * size * 9 * channels * channels
    return flops / seconds / 1e9


def matmul_gflops(*, n: int = 1024, repeats: int = 5) -> float:
    """The machine's float32 matrix-multiply throughput with TensorFlow, in GFLOP/s.

    Times an ``n x n`` by ``n x n`` product (``2 n**3`` FLOPs) inside a
    ``tf.function``.

    Args:
        n: matrix side.
        repeats: timed calls (after two warm-up calls).

    Returns:
        GFLOP/s.

    Example:
        >>> matmul_gflops(n=64, repeats=1) > 0  # doctest: +SKIP
        True
    """
    import tensorflow as tf

    a = tf.random.normal((n, n))
    b = tf.random.normal((n, n))
    matmul = tf.function(tf.linalg.matmul)
    seconds = median_seconds(lambda: matmul(a, b).numpy(), warmup=2, repeats=repeats)
    return 2 * n**3 / seconds / 1e9


def markdown_table(rows: Sequence[dict], columns: Sequence[str] | None = None, *,
                   digits: int = 3) -> str:
    """Format dictionaries as a GitHub Markdown table (floats to ``digits`` significant digits).

    Args:
        rows: one dict per row.
        columns: column order; default the keys of the first row.
        digits: significant digits of float cells.

    Returns:
        The table as a string (header, separator, one line per row).

    Raises:
        ValueError: no rows.

    Example:
        >>> print(markdown_table([{"model": "unet", "ms": 12.345}]))
        | model | ms |
        |---|---|
        | unet | 12.3 |
    """
    if not rows:
        raise ValueError("markdown_table needs at least one row")
    columns = list(columns or rows[0])

    def cell(value):
        if isinstance(value, float):
            return f"{value:.{digits}g}"
        if isinstance(value, int) and abs(value) >= 10_000:
            return f"{value:,}"
        return str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def print_table(rows: Sequence[dict], columns: Sequence[str] | None = None, *,
                digits: int = 3) -> None:
    """Print ``markdown_table(rows, columns, digits=digits)``."""
    print(markdown_table(rows, columns, digits=digits))
