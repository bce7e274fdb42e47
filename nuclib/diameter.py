"""Measuring the nuclei of an image with the model itself, to zoom it to the training size.

A first pass at the image's own scale finds nuclei; if their median size is
far from the size the model was trained at, a pass at the zoom that size
asks for measures them again (at most three passes over the image). Only a
central window of a large image is looked at, and the first pass (the
probe) only at a smaller central window of it: its one job is to guess the
zoom, and the passes at that zoom, which also are the prediction, check
the guess. The functions take the network pass and the post-processing as
callables, so they know nothing of engines or heads.

Example:
    >>> import numpy as np
    >>> from nuclib.postprocess import three_class_to_labels
    >>> def run(x, factor):  # a stand-in network: bright pixels are nucleus interior
    ...     from nuclib.data.scale import rescale_image
    ...     x = x if factor == 1 else rescale_image(x, factor)
    ...     inside = (x[..., :1] > 0.5).astype(np.float32)
    ...     return np.concatenate([1 - inside, inside, 0 * inside], axis=-1)
    >>> image = np.zeros((120, 120, 1), np.float32)
    >>> image[20:30, 20:30] = image[60:70, 40:50] = image[90:100, 90:100] = 1
    >>> found = estimate(image, run=run, postprocess=lambda p: three_class_to_labels(p, min_size=4),
    ...                  trained=20)
    >>> round(found.diameter), found.factor
    (11, 1.77...)
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import numpy as np

from nuclib.prediction import ScaledPrediction

__all__ = ["AGREEMENT", "PROBE_MIN_NUCLEI", "Estimate", "estimate", "central_window",
           "window_bounds", "check_diameter", "predict_at_training_size"]

# The estimate stops refining once two passes agree within this factor.
AGREEMENT = 1.1
# A probe window with fewer nuclei than this is too few to guess the zoom from:
# the first pass over the whole window is at the image's scale, as without a probe.
PROBE_MIN_NUCLEI = 3


class Estimate(NamedTuple):
    """What ``estimate`` found.

    Attributes:
        diameter: median nucleus diameter in the image's pixels (``nan``: none found).
        factor: the zoom of the last pass.
        probs: the last pass's probabilities (of the window, zoomed by ``factor``).
        measured: ``(post-processing parameters, labels)`` of that pass
            (``ScaledPrediction.measured``).
    """

    diameter: float
    factor: float
    probs: np.ndarray
    measured: tuple


def window_bounds(shape, side: int) -> tuple[int, int, int, int]:
    """``(y0, y1, x0, x1)`` of the window of an image of ``shape`` that the estimate looks at.

    All of an image of at most ``side`` x ``side`` pixels in area (a long,
    narrow one too: a crop would save little and lose the chance to reuse
    the measuring pass as the prediction); else its central ``side`` x
    ``side`` window, clipped to the image.

    Example:
        >>> window_bounds((603, 1272), 1024), window_bounds((2000, 3000), 1024)
        ((0, 603, 0, 1272), (488, 1512, 988, 2012))
    """
    h, w = int(shape[0]), int(shape[1])
    if h * w <= side * side:
        return 0, h, 0, w
    y0, x0 = max((h - side) // 2, 0), max((w - side) // 2, 0)
    return y0, min(y0 + side, h), x0, min(x0 + side, w)


def central_window(x: np.ndarray, side: int) -> np.ndarray:
    """The window of ``x`` that the estimate looks at (``window_bounds``).

    Example:
        >>> central_window(np.zeros((10, 40)), 6).shape, central_window(np.zeros((3, 9)), 6).shape
        ((6, 6), (3, 9))
    """
    y0, y1, x0, x1 = window_bounds(x.shape, side)
    return x[y0:y1, x0:x1]


def _agree(a: float, b: float) -> bool:
    return max(a, b) / min(a, b) < AGREEMENT


def estimate(x: np.ndarray, *, run: Callable[[np.ndarray, float], np.ndarray],
             postprocess: Callable[[np.ndarray], np.ndarray], trained: float,
             params: dict | None = None, probe_side: int | None = None) -> Estimate:
    """The median nucleus diameter of a prepared image, measured by passes of the model.

    1. The probe: a pass at the image's own scale over the central
       ``probe_side`` window of ``x`` (``window_bounds``) guesses the zoom
       to the training size; where that zoom is below 1, a second pass at
       it (a few pixels) guesses again. Skipped when that window holds
       more than half of ``x`` (it would save little); its guess is ignored
       when it found fewer than ``PROBE_MIN_NUCLEI`` nuclei.
    2. A pass over all of ``x`` at that zoom (at the image's scale without a
       probe's guess) measures the nuclei again; while the zoom they ask for
       differs from the pass's by ``AGREEMENT`` or more, a pass at the new
       zoom measures again (at most three passes over ``x``).

    On an image of 520 x 696 pixels, a 256-pixel probe sees a fifth of the
    pixels that a first pass over all of it would.

    Args:
        x: the prepared (normalized) image or window, ``(H, W, C)``.
        run: ``run(x, factor)``: the model's probabilities of ``x`` zoomed by ``factor``.
        postprocess: probabilities → instance labels.
        trained: the nucleus diameter (pixels) the model was trained at.
        params: the post-processing parameters ``postprocess`` uses, recorded
            with its labels (``Estimate.measured``).
        probe_side: the probe window's side (``window_bounds``); None: no probe.

    Returns:
        An ``Estimate``; its ``probs`` and ``measured`` belong to the last
        pass, which is always a pass over all of ``x``.
    """
    from nuclib.data.scale import median_diameter, scale_for_diameter

    def measure(probs, factor):
        labels = postprocess(probs)
        return median_diameter(labels.astype(np.int64)) / factor, (dict(params or {}), labels)

    factor, guess = 1.0, math.nan
    probe = x if probe_side is None else central_window(x, probe_side)
    # A probe over more than half of x would save little and see less.
    if 2 * probe.shape[0] * probe.shape[1] <= x.shape[0] * x.shape[1]:
        found, (_, labels) = measure(run(probe, 1.0), 1.0)
        wanted = scale_for_diameter(found, trained)
        if math.isfinite(found) and wanted < 1 / AGREEMENT:
            # Nuclei larger than the training size: the first pass measures them
            # poorly, and a second look at the zoom they ask for costs little.
            again, (_, more) = measure(run(probe, wanted), wanted)
            if math.isfinite(again):
                found, labels, wanted = again, more, scale_for_diameter(again, trained)
        if math.isfinite(found) and labels.max() >= PROBE_MIN_NUCLEI:
            guess = found
            # near enough to the image's scale: the pass there is the one to keep
            factor = 1.0 if _agree(wanted, 1.0) else wanted
    probs = run(x, factor)
    diameter, measured = measure(probs, factor)
    if not math.isfinite(diameter) and factor != 1.0:
        diameter = guess  # nothing found at the probe's zoom: its guess stays
    for _ in range(2):  # at most two refinements: three passes over x in all
        wanted = scale_for_diameter(diameter, trained)
        if not math.isfinite(diameter) or _agree(wanted, factor):
            break
        factor, probs = wanted, run(x, wanted)
        remeasured, measured = measure(probs, factor)
        if not math.isfinite(remeasured):
            break  # the earlier pass's diameter stays; this pass is the last one
        diameter = remeasured
    return Estimate(diameter, factor, probs, measured)


def check_diameter(diameter, trained, model: str) -> None:
    """Raise ``ValueError`` for a ``diameter`` that a model trained at ``trained`` cannot use.

    Args:
        diameter: the diameter asked for (None: none given, always fine).
        trained: the model's training diameter (None: it works at each image's own scale).
        model: the model's name, for the message.

    Example:
        >>> check_diameter(12.5, 20, "dsb-3class")
        >>> check_diameter(-1, 20, "dsb-3class")
        Traceback (most recent call last):
        ...
        ValueError: diameter must be a positive number of pixels, got -1
    """
    if diameter is None:
        return
    if trained is None:
        raise ValueError(f"model {model!r} was trained at each image's own scale and "
                         "cannot zoom to a nucleus size; call it without diameter")
    if not (isinstance(diameter, (int, float, np.number)) and math.isfinite(diameter)
            and diameter > 0):
        raise ValueError(f"diameter must be a positive number of pixels, got {diameter!r}")


def predict_at_training_size(x: np.ndarray, *, run: Callable[[np.ndarray, float], np.ndarray],
                             measure: Callable[[np.ndarray, bool], Estimate],
                             trained: float | None, side: int, diameter: float | None = None,
                             reuse: bool = True) -> ScaledPrediction:
    """Probabilities of a prepared image zoomed so that its nuclei have the training size.

    1. A model without a training size sees the image as it is (factor 1).
    2. Without a ``diameter``, it is measured (``measure``) on the window
       ``window_bounds(x.shape, side)`` picks. When that window is the whole
       image (and ``reuse``), the measuring pass at the chosen zoom already is
       the prediction: it is returned with its labels, and no pass is repeated.
    3. Otherwise the image is zoomed by ``trained / diameter`` and ``run``.

    Args:
        x: the prepared image, ``(H, W, C)``.
        run: ``run(x, factor)``: the probabilities of ``x`` zoomed by ``factor``.
        measure: ``measure(window, whole)``: the ``Estimate`` of a window
            (``whole``: the window is all of ``x``).
        trained: the nucleus diameter the model was trained at, or None.
        side: the measured window's side (``window_bounds``).
        diameter: the image's nucleus diameter, if known.
        reuse: may return the measuring pass (False when the prediction
            must differ from it, e.g. with TTA or other tiles).

    Returns:
        A ``ScaledPrediction``.

    Example:
        >>> run = lambda x, factor: np.zeros((round(x.shape[0] * factor),) * 2 + (3,))
        >>> pred = predict_at_training_size(np.zeros((40, 40, 1)), run=run, measure=None,
        ...                                 trained=20, side=1024, diameter=10)
        >>> pred.factor, pred.probs.shape
        (2.0, (80, 80, 3))
    """
    from nuclib.data.scale import scale_for_diameter

    if trained is None:
        return ScaledPrediction(run(x, 1.0), 1.0, x.shape[:2], None)
    if diameter is None:
        window = central_window(x, side)
        whole = window.shape == x.shape
        found = measure(window, whole)
        diameter = found.diameter
        if whole and reuse:
            return ScaledPrediction(found.probs, found.factor, x.shape[:2], diameter,
                                    found.measured)
    factor = scale_for_diameter(diameter, trained)
    return ScaledPrediction(run(x, factor), factor, x.shape[:2], float(diameter))
