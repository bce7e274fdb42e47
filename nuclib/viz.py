"""Pictures: instance overlays, error maps, score curves, probability panels.

Every plotting function returns a ``matplotlib.figure.Figure`` built without
pyplot, so it works without a display (no backend is selected, nothing is
shown, nothing accumulates in pyplot's figure list); save it with
``fig.savefig("out.png")`` or let Jupyter display it. Pass ``ax`` to draw into
an existing figure instead. Matplotlib (the ``viz`` extra,
``pip install "nuclib[viz]"``) is imported only inside the plotting
functions, which without it raise a ``ModuleNotFoundError`` saying so;
``overlay_rgb`` needs only numpy and scikit-image.

Example:
    >>> import numpy as np
    >>> image = np.zeros((32, 32), np.uint8); labels = np.zeros((32, 32), np.uint32)
    >>> labels[8:20, 8:20] = 1
    >>> fig = overlay(image, labels)
    >>> fig.savefig("overlay.png")                    # doctest: +SKIP
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

# Colour-blind-safe (Okabe-Ito) colours for the error map categories.
ERROR_COLORS = {"matched": "#009E73", "missed": "#D55E00", "extra": "#0072B2"}
CLASS_NAMES = {1: ("foreground",), 3: ("background", "interior", "boundary")}
METRIC_LABELS = {
    "accuracy": "accuracy = tp / (tp + fp + fn)",
    "f1": "F1",
    "precision": "precision",
    "recall": "recall",
    "panoptic_quality": "panoptic quality",
    "mean_matched_score": "mean matched IoU",
    "mean_true_score": "mean true score",
}


VIZ_EXTRA_HINT = 'pip install "nuclib[viz]"'


def _matplotlib(submodule: str | None = None):
    """``matplotlib`` (or ``matplotlib.<submodule>``), or an error that says how to install it.

    Matplotlib is the optional ``viz`` extra, so a plain install lacks it; a
    bare ``No module named 'matplotlib'`` would not say which extra to add.
    """
    import importlib

    try:
        # The package first: a submodule found in sys.modules would hide its absence.
        module = importlib.import_module("matplotlib")
        return importlib.import_module(f"matplotlib.{submodule}") if submodule else module
    except ModuleNotFoundError as err:
        if not (err.name or "").startswith("matplotlib"):
            raise  # something matplotlib itself needs: show the real error
        raise ModuleNotFoundError(
            f"nuclib.viz draws with matplotlib, which is not installed: {VIZ_EXTRA_HINT} "
            "(or pip install matplotlib). overlay_rgb needs only numpy and scikit-image.",
            name="matplotlib") from err


# ---------------------------------------------------------------------------
# Arrays (no matplotlib)


def _check_image(image) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] in (1, 3, 4):
        pass
    elif arr.ndim != 2:
        raise ValueError(f"image has shape {arr.shape}; expected HxW or HxWxC with C in "
                         "(1, 3, 4)")
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"image has dtype {arr.dtype}; expected a numeric array")
    if arr.size == 0:
        raise ValueError(f"image is empty (shape {arr.shape})")
    return arr


def _check_labels(labels, shape, name: str = "labels") -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2 or not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool):
        raise ValueError(f"{name} has shape {arr.shape} and dtype {arr.dtype}; expected an "
                         "HxW integer instance label image")
    if arr.shape != tuple(shape):
        raise ValueError(f"{name} has shape {arr.shape} but the image is {tuple(shape)}; "
                         "expected the same height and width")
    return arr


def display_image(image, *, normalize: bool = True, low: float = 0.5,
                  high: float = 99.8) -> np.ndarray:
    """Any microscopy image → float32 HxWx3 RGB in [0, 1] for display.

    Grayscale is repeated into three channels; alpha is dropped. With
    ``normalize`` the ``low`` and ``high`` percentiles (taken over all
    channels together, so colours keep their balance) map to 0 and 1; without
    it integer images are divided by their dtype's maximum and float images
    are clipped to [0, 1].

    Args:
        image: HxW or HxWxC (C in 1, 3, 4), any numeric dtype.
        normalize: stretch the contrast by percentiles.
        low, high: the percentiles.

    Returns:
        float32 array ``(H, W, 3)`` in [0, 1].

    Raises:
        ValueError: unusable shape or dtype.

    Example:
        >>> display_image(np.array([[0, 255]], np.uint8), normalize=False)[0, 1].tolist()
        [1.0, 1.0, 1.0]
    """
    arr = _check_image(image)
    if arr.ndim == 2:
        arr = arr[..., None]
    arr = arr[..., :3]
    if normalize:
        x = arr.astype(np.float32)
        finite = x[np.isfinite(x)]
        lo, hi = np.percentile(finite, (low, high)) if finite.size else (0.0, 1.0)
        x = (x - lo) / max(float(hi - lo), 1e-6)
    elif np.issubdtype(arr.dtype, np.integer):
        x = arr.astype(np.float32) / float(np.iinfo(arr.dtype).max)
    else:
        x = arr.astype(np.float32)
    x = np.clip(np.nan_to_num(x), 0.0, 1.0)
    if x.shape[2] == 1:
        x = np.repeat(x, 3, axis=2)
    return np.ascontiguousarray(x, dtype=np.float32)


def _rgb_tuple(color) -> np.ndarray:
    """A colour as three floats in [0, 1]: a name/hex string, or an RGB triple (0-255 or 0-1)."""
    if isinstance(color, str):
        to_rgb = _matplotlib("colors").to_rgb

        return np.array(to_rgb(color), np.float32)
    rgb = np.asarray(color, np.float32).ravel()
    if rgb.shape != (3,):
        raise ValueError(f"color {color!r} is not a colour; expected a name, '#rrggbb' or an "
                         "RGB triple")
    return rgb / 255.0 if rgb.max() > 1.0 else rgb


def overlay_rgb(image, labels, *, color=(255, 255, 0), normalize: bool = True) -> np.ndarray:
    """Instance outlines burnt into an RGB copy of the image (no matplotlib needed).

    Each object's outermost pixels (``find_boundaries(mode="inner")``, so
    outlines of touching nuclei both show and none spills into the
    background) take ``color``; every other pixel is the display image
    (grayscale repeated in R, G and B). Used by ``nuclib segment --overlay``.

    Args:
        image: HxW or HxWxC image, any numeric dtype.
        labels: HxW integer instance labels of the same height and width.
        color: outline colour, an RGB triple (0-255) or a name/hex string.
        normalize: stretch the image contrast first (see ``display_image``).

    Returns:
        uint8 array ``(H, W, 3)``.

    Raises:
        ValueError: unusable image, labels of another size, a bad colour.

    Example:
        >>> labels = np.zeros((5, 5), np.uint32); labels[1:4, 1:4] = 1
        >>> out = overlay_rgb(np.zeros((5, 5), np.uint8), labels, normalize=False)
        >>> out[1, 1].tolist(), out[2, 2].tolist()
        ([255, 255, 0], [0, 0, 0])
    """
    from skimage.segmentation import find_boundaries

    arr = _check_image(image)
    lab = _check_labels(labels, arr.shape[:2])
    rgb = _rgb_tuple(color)
    out = np.round(display_image(arr, normalize=normalize) * 255).astype(np.uint8)
    edge = find_boundaries(lab, mode="inner", connectivity=1)
    out[edge] = np.round(rgb * 255).astype(np.uint8)
    return out


def _contour_segments(labels: np.ndarray) -> tuple[list[np.ndarray], list[int]]:
    """(x, y) outline polygons of every object, and the id of each polygon."""
    from scipy import ndimage as ndi
    from skimage.measure import find_contours

    segments, owners = [], []
    if not labels.any():
        return segments, owners
    for index, box in enumerate(ndi.find_objects(labels), start=1):
        if box is None:
            continue
        y0, x0 = box[0].start - 1, box[1].start - 1
        crop = np.zeros((box[0].stop - box[0].start + 2, box[1].stop - box[1].start + 2),
                        np.float32)
        crop[1:-1, 1:-1] = labels[box] == index
        for contour in find_contours(crop, 0.5):
            segments.append(np.column_stack([contour[:, 1] + x0, contour[:, 0] + y0]))
            owners.append(index)
    return segments, owners


# ---------------------------------------------------------------------------
# Figures


def _figure_and_axes(ax, figsize):
    """A new pyplot-free figure with one axes, or the given axes and its figure."""
    if ax is not None:
        return ax.figure, ax
    Figure = _matplotlib("figure").Figure

    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def _image_figsize(shape, width: float) -> tuple[float, float]:
    """Figure size that fits an image of ``shape`` at ``width`` inches, plus a title line."""
    return width, width * shape[0] / shape[1] + 0.4


def _show(ax, rgb: np.ndarray, title: str | None) -> None:
    ax.imshow(rgb, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)


def overlay(image, labels, *, ax=None, color="yellow", linewidth: float = 1.0,
            normalize: bool = True, title: str | None = None, figsize=None):
    """Instance outlines drawn as vector contours on the image.

    Args:
        image: HxW or HxWxC image, any numeric dtype.
        labels: HxW integer instance labels of the same size.
        ax: draw into this axes instead of a new figure.
        color: a matplotlib colour for every outline, or ``"instances"`` for
            one colour per nucleus (cycling through ``tab20``).
        linewidth: outline width in points.
        normalize: stretch the image contrast (see ``display_image``).
        title: axes title; default ``"<N> nuclei"``.
        figsize: size of a new figure in inches; default 6 inches wide with
            the image's aspect ratio.

    Returns:
        The ``matplotlib.figure.Figure`` (one image and one ``LineCollection``
        with one polygon per outline).

    Raises:
        ValueError: unusable image or labels of another size.

    Example:
        >>> fig = overlay(image, labels, color="instances")   # doctest: +SKIP
        >>> fig.savefig("overlay.png")                         # doctest: +SKIP
    """
    LineCollection = _matplotlib("collections").LineCollection

    arr = _check_image(image)
    lab = _check_labels(labels, arr.shape[:2])
    fig, ax = _figure_and_axes(ax, figsize or _image_figsize(arr.shape, 6.0))
    n_objects = len(np.unique(lab[lab > 0]))
    _show(ax, display_image(arr, normalize=normalize),
          f"{n_objects} nuclei" if title is None else title)
    segments, owners = _contour_segments(lab)
    if color == "instances":
        colormaps = _matplotlib().colormaps

        palette = colormaps["tab20"]
        colors = [palette(i % 20) for i in owners]
    else:
        colors = [color]
    ax.add_collection(LineCollection(segments, colors=colors, linewidths=linewidth))
    return fig


def _fill(rgb: np.ndarray, mask: np.ndarray, color, alpha: float) -> None:
    rgb[mask] = (1 - alpha) * rgb[mask] + alpha * _rgb_tuple(color)


def error_map(image, y_true, y_pred, *, thresh: float = 0.5, ax=None, alpha: float = 0.45,
              colors: Mapping[str, str] | None = None, normalize: bool = True,
              title: str | None = None, figsize=None):
    """Where a prediction goes wrong: missed, extra and matched nuclei in three colours.

    True and predicted objects are matched one-to-one at IoU >= ``thresh``
    (``nuclib.metrics.matching``). Missed nuclei (false negatives) are filled
    in the ``"missed"`` colour with the true outline, extra predictions
    (false positives) in the ``"extra"`` colour, and matched predictions are
    outlined in the ``"matched"`` colour, as in the evaluation notebook of
    unet4nuclei. A legend names the colours with their counts.

    Args:
        image: HxW or HxWxC image.
        y_true: HxW ground-truth instance labels.
        y_pred: HxW predicted instance labels.
        thresh: IoU a pair needs to count as matched.
        ax: draw into this axes instead of a new figure.
        alpha: opacity of the filled regions.
        colors: override ``ERROR_COLORS`` entries (``"matched"``,
            ``"missed"``, ``"extra"``).
        normalize: stretch the image contrast.
        title: axes title; default the counts and accuracy.
        figsize: size of a new figure in inches; default 7 inches wide with
            the image's aspect ratio.

    Returns:
        The ``matplotlib.figure.Figure``.

    Raises:
        ValueError: label images of another size, or see ``nuclib.metrics.matching``.

    Example:
        >>> fig = error_map(image, truth, prediction, thresh=0.5)   # doctest: +SKIP
    """
    Patch = _matplotlib("patches").Patch
    from skimage.segmentation import find_boundaries

    from nuclib.metrics.matching import matching

    arr = _check_image(image)
    truth = _check_labels(y_true, arr.shape[:2], "y_true")
    pred = _check_labels(y_pred, arr.shape[:2], "y_pred")
    palette = {**ERROR_COLORS, **(colors or {})}
    result = matching(truth, pred, thresh=thresh, report_matches=True)
    matched_true = np.array([t for t, _ in result.matched_pairs], dtype=np.int64)
    matched_pred = np.array([p for _, p in result.matched_pairs], dtype=np.int64)
    missed = (truth > 0) & ~np.isin(truth, matched_true)
    extra = (pred > 0) & ~np.isin(pred, matched_pred)
    matched = (pred > 0) & ~extra

    rgb = display_image(arr, normalize=normalize)
    _fill(rgb, missed, palette["missed"], alpha)
    _fill(rgb, extra, palette["extra"], alpha)
    edges = find_boundaries(np.where(missed, truth, 0), mode="inner")
    rgb[edges] = _rgb_tuple(palette["missed"])
    edges = find_boundaries(np.where(extra, pred, 0), mode="inner")
    rgb[edges] = _rgb_tuple(palette["extra"])
    edges = find_boundaries(np.where(matched, pred, 0), mode="inner")
    rgb[edges] = _rgb_tuple(palette["matched"])

    fig, ax = _figure_and_axes(ax, figsize or _image_figsize(arr.shape, 7.0))
    if title is None:
        title = (f"IoU ≥ {thresh:g}: accuracy {result.accuracy:.3f} "
                 f"(tp {result.tp}, fp {result.fp}, fn {result.fn})")
    _show(ax, rgb, title)
    handles = [Patch(color=palette["matched"], label=f"matched ({result.tp})"),
               Patch(color=palette["missed"], label=f"missed ({result.fn})"),
               Patch(color=palette["extra"], label=f"extra ({result.fp})")]
    ax.legend(handles=handles, loc="upper right", fontsize="small", framealpha=0.8)
    return fig


def _curve(entry, metric: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(thresholds, scores) from a list of matching records or a (thresholds, scores) pair."""
    if (isinstance(entry, tuple) and len(entry) == 2
            and not hasattr(entry[0], "thresh")):
        x, y = (np.asarray(v, dtype=float).ravel() for v in entry)
    else:
        records = [entry] if hasattr(entry, "thresh") else list(entry)
        if not records or not all(hasattr(r, "thresh") for r in records):
            raise ValueError(f"results[{name!r}] must be a list of matching records (from "
                             "nuclib.metrics.matching / matching_dataset with a list of "
                             "thresholds) or a (thresholds, scores) pair")
        if not hasattr(records[0], metric):
            raise ValueError(f"matching records have no metric {metric!r}; expected one of "
                             f"{sorted(METRIC_LABELS)}")
        x = np.array([r.thresh for r in records], dtype=float)
        y = np.array([getattr(r, metric) for r in records], dtype=float)
    if x.shape != y.shape or x.size == 0:
        raise ValueError(f"results[{name!r}] has {x.size} thresholds and {y.size} scores; "
                         "expected the same non-zero number")
    order = np.argsort(x)
    return x[order], y[order]


def score_curve(results, *, metric: str = "accuracy", ax=None, title: str | None = None,
                figsize=(6, 4.5)):
    """Score versus IoU threshold, one line per model.

    Args:
        results: ``{model name: records}`` where records is a list of
            ``Matching`` / ``DatasetMatching`` records (one per threshold,
            e.g. ``matching_dataset(ys_true, ys_pred, thresh=[0.5, 0.55, ...])``)
            or a ``(thresholds, scores)`` pair. A bare list of records is
            drawn as one unnamed model.
        metric: the record field to plot (``"accuracy"``, ``"f1"``,
            ``"precision"``, ``"recall"``, ``"panoptic_quality"``, ...);
            ignored for ``(thresholds, scores)`` pairs.
        ax: draw into this axes instead of a new figure.
        title: axes title.
        figsize: size of a new figure in inches.

    Returns:
        The ``matplotlib.figure.Figure`` (one line per model, and a legend).

    Raises:
        ValueError: empty results, or entries that are neither records nor pairs.

    Example:
        >>> taus = [0.5, 0.6, 0.7, 0.8, 0.9]
        >>> fig = score_curve({"unet": (taus, [0.8, 0.75, 0.6, 0.4, 0.1])})
        >>> len(fig.axes[0].lines)
        1
    """
    if not isinstance(results, Mapping):
        results = {"": results}
    if not results:
        raise ValueError("results is empty; expected {model name: records}")
    curves = {name: _curve(entry, metric, name) for name, entry in results.items()}
    fig, ax = _figure_and_axes(ax, figsize)
    for name, (x, y) in curves.items():
        ax.plot(x, y, marker="o", markersize=3, label=name or None)
    ax.set_xlabel("IoU threshold")
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    ax.set_ylim(0, 1.02)
    ax.grid(True, alpha=0.3)
    if any(results):
        ax.legend()
    if title:
        ax.set_title(title)
    return fig


def probability_panel(image, probs, *, names: Sequence[str] | None = None,
                      normalize: bool = True, cmap: str = "magma", figsize=None):
    """The input image beside each class probability map.

    Args:
        image: HxW or HxWxC image.
        probs: HxWxK probabilities (or HxW for one foreground map) of the same size.
        names: one title per class; default (background, interior, boundary)
            for K = 3, "foreground" for K = 1.
        normalize: stretch the image contrast.
        cmap: colour map for the probabilities (shared 0-1 scale with a colour bar).
        figsize: figure size; default 3.2 inches per panel.

    Returns:
        The ``matplotlib.figure.Figure`` with K + 1 image axes and a colour bar.

    Raises:
        ValueError: probabilities of another size or the wrong number of names.

    Example:
        >>> fig = probability_panel(image, segmenter.predict(image))   # doctest: +SKIP
    """
    Figure = _matplotlib("figure").Figure

    arr = _check_image(image)
    p = np.asarray(probs, dtype=np.float32)
    if p.ndim == 2:
        p = p[..., None]
    if p.ndim != 3 or p.shape[:2] != arr.shape[:2]:
        raise ValueError(f"probs have shape {p.shape} but the image is {arr.shape[:2]}; "
                         "expected HxWxK probabilities of the same height and width")
    k = p.shape[2]
    names = list(names) if names is not None else list(
        CLASS_NAMES.get(k, [f"class {i}" for i in range(k)]))
    if len(names) != k:
        raise ValueError(f"got {len(names)} names for {k} probability channels")
    fig = Figure(figsize=figsize or (3.2 * (k + 1), 3.4), layout="constrained")
    axes = fig.subplots(1, k + 1, squeeze=False)[0]
    _show(axes[0], display_image(arr, normalize=normalize), "image")
    for i in range(k):
        shown = axes[i + 1].imshow(p[..., i], vmin=0.0, vmax=1.0, cmap=cmap,
                                   interpolation="nearest")
        axes[i + 1].set_axis_off()
        axes[i + 1].set_title(names[i])
    fig.colorbar(shown, ax=list(axes[1:]), shrink=0.8, label="probability")
    return fig
