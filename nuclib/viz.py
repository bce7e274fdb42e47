"""Pictures: instance overlays, coloured label images, error maps, score curves,
probability panels, training curves.

Every plotting function returns a ``matplotlib.figure.Figure`` built without
pyplot, so it works without a display (no backend is selected, nothing is
shown, nothing accumulates in pyplot's figure list); save it with
``fig.savefig("out.png")`` or let Jupyter display it. Pass ``ax`` to draw into
an existing figure instead. Matplotlib (the ``viz`` extra,
``pip install "nuclib[viz]"``) is imported only inside the plotting
functions, which without it raise a ``ModuleNotFoundError`` saying so;
``overlay_rgb`` and ``colorize_labels`` need only numpy and scikit-image.

Example:
    >>> import numpy as np
    >>> image = np.zeros((32, 32), np.uint8); labels = np.zeros((32, 32), np.uint32)
    >>> labels[8:20, 8:20] = 1
    >>> fig = overlay(image, labels)
    >>> fig.savefig("overlay.png")                    # doctest: +SKIP
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from nuclib.labels import check_labels

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

# What nuclib.train writes into a run folder: the Keras history (under "history")
# and the CSVLogger's log, one row per epoch; the model directory is <run>/model.
HISTORY_FILES = ("history.json", "log.csv")
# Per-epoch values that are settings, not scores: not drawn unless asked for.
SCHEDULE_KEYS = ("learning_rate", "lr")


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
    lab = check_labels(labels, shape=arr.shape[:2])
    rgb = _rgb_tuple(color)
    out = np.round(display_image(arr, normalize=normalize) * 255).astype(np.uint8)
    edge = find_boundaries(lab, mode="inner", connectivity=1)
    out[edge] = np.round(rgb * 255).astype(np.uint8)
    return out


def _palette(n: int = 24) -> np.ndarray:
    """``n`` saturated, bright colours (uint8 RGB) with hues spread around the circle.

    Alternate entries differ in brightness as well as hue, so that even
    neighbours in the list read apart.
    """
    from skimage.color import hsv2rgb

    hue = (np.arange(n) * 7 % n) / n  # 7 is coprime with 24: consecutive entries far apart
    sat = np.where(np.arange(n) % 2, 0.65, 1.0)
    val = np.where(np.arange(n) % 3 == 2, 0.75, 1.0)
    rgb = hsv2rgb(np.stack([hue, sat, val], axis=1)[None])[0]
    return np.round(rgb * 255).astype(np.uint8)


def _touching(values: np.ndarray, n: int) -> list[set]:
    """For each object index 1..n of a sequential label image, the indices touching it."""
    pairs = []
    for a, b in ((values[:, 1:], values[:, :-1]), (values[1:], values[:-1]),
                 (values[1:, 1:], values[:-1, :-1]), (values[1:, :-1], values[:-1, 1:])):
        differ = (a != b) & (a > 0) & (b > 0)
        pairs.append(np.stack([a[differ], b[differ]], axis=1))
    neighbours: list[set] = [set() for _ in range(n + 1)]
    edges = np.unique(np.sort(np.concatenate(pairs), axis=1), axis=0)
    for a, b in edges.tolist():
        neighbours[a].add(b)
        neighbours[b].add(a)
    return neighbours


def colorize_labels(labels, seed: int = 0) -> np.ndarray:
    """Instance labels as a filled RGB image: each nucleus one colour, background black.

    Colours come from a palette of 24 saturated hues (``_palette``). Nuclei
    that touch (8-connectivity) never share a colour, nor do consecutive
    ids (watershed ids often run along neighbours); among the colours left,
    each nucleus draws one at random, so the picture does not depend on
    which ids the segmentation happened to give. The same labels and
    ``seed`` always give the same picture. Used by ``nuclib segment
    --colored-labels``.

    Args:
        labels: HxW integer instance labels (0 = background; ids need not
            be sequential).
        seed: seed of the colour draw.

    Returns:
        uint8 array ``(H, W, 3)``; background pixels are ``(0, 0, 0)``.

    Raises:
        ValueError: labels that are not a 2-D integer array, or negative ids.

    Example:
        >>> labels = np.array([[1, 1, 2, 2, 0, 7]])
        >>> rgb = colorize_labels(labels)
        >>> rgb.shape, rgb.dtype, rgb[0, 4].tolist()
        ((1, 6, 3), dtype('uint8'), [0, 0, 0])
        >>> bool((rgb[0, 0] != rgb[0, 2]).any()), rgb[0, 0].tolist() == rgb[0, 1].tolist()
        (True, True)
    """
    arr = check_labels(labels)
    ids, values = np.unique(arr, return_inverse=True)
    values = values.reshape(arr.shape)
    if ids[0] != 0:  # no background pixel: index 0 must still mean background
        ids, values = np.concatenate([[0], ids]), values + 1
    n = len(ids) - 1
    palette = _palette()
    neighbours = _touching(values, n)
    rng = np.random.default_rng(seed)
    choice = np.zeros(n + 1, np.intp)
    used_count = np.zeros(len(palette), np.int64)
    for i in range(1, n + 1):
        taken = {int(choice[j]) for j in neighbours[i] if j < i}
        if i > 1:
            taken.add(int(choice[i - 1]))
        free = [c for c in range(len(palette)) if c not in taken]
        if free:
            choice[i] = free[int(rng.integers(len(free)))]
        else:  # more than 24 neighbours: reuse the least used colour
            choice[i] = int(np.argmin(used_count))
        used_count[choice[i]] += 1
    lut = np.zeros((n + 1, 3), np.uint8)
    lut[1:] = palette[choice[1:]]
    return lut[values]


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
    lab = check_labels(labels, shape=arr.shape[:2])
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
    truth = check_labels(y_true, name="y_true", shape=arr.shape[:2])
    pred = check_labels(y_pred, name="y_pred", shape=arr.shape[:2])
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


# ---------------------------------------------------------------------------
# Training curves


def _history_from_file(path: Path) -> dict:
    """The per-epoch lists of a ``history.json`` (``nuclib train``'s or a bare dict) or a
    Keras ``CSVLogger`` log."""
    if path.suffix.lower() == ".csv":
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        if not rows:
            raise ValueError(f"{path} has no epoch rows; expected a Keras CSVLogger log "
                             "with a header row and one row per epoch")
        columns = [c for c in rows[0] if c != "epoch"]

        def number(text):
            try:
                return float(text)
            except (TypeError, ValueError):
                return float("nan")

        return {c: [number(row[c]) for row in rows] for c in columns}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err
    return data


def _find_history_file(folder: Path) -> Path:
    """The history file of a run folder, or of the run folder around a model directory."""
    places = [folder]
    if (folder / "nuclib.json").is_file():  # a model directory: nuclib train's <run>/model
        places.append(folder.parent)
    for place in places:
        for name in HISTORY_FILES:
            if (place / name).is_file():
                return place / name
    raise FileNotFoundError(
        f"no training history in {folder}: expected {' or '.join(HISTORY_FILES)} (written by "
        "nuclib train into the run folder; a model directory's run folder is its parent)")


def training_history(history) -> dict[str, np.ndarray]:
    """Per-epoch training values as ``{name: float array}``, from anything that holds them.

    Args:
        history: a Keras ``History`` (what ``model.fit`` returns), a dict of
            per-epoch lists (``History.history``), the dict ``nuclib train``
            returns or writes as ``history.json`` (the lists under
            ``"history"``), or a path: a ``history.json``, a Keras
            ``CSVLogger`` log (``log.csv``; its ``epoch`` column dropped), a
            ``nuclib train`` run folder, or a model directory written by it
            (its run folder, the parent, holds the files).

    Returns:
        ``{name: float64 array}``, every array one value per epoch (NaN where
        a log left a cell empty), in the input's order.

    Raises:
        FileNotFoundError: a path that does not exist, or a folder without
            ``history.json`` or ``log.csv``.
        ValueError: no per-epoch lists, lists of different lengths or with
            values that are not numbers.

    Example:
        >>> training_history({"loss": [0.9, 0.5], "val_loss": [1.0, 0.7]})["val_loss"].tolist()
        [1.0, 0.7]
    """
    source = "history"
    if isinstance(history, (str, Path)):
        path = Path(history).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"training history {path} does not exist; expected a "
                                    f"history.json, a log.csv, a run folder or a model directory")
        if path.is_dir():
            path = _find_history_file(path)
        source, history = str(path), _history_from_file(path)
    elif hasattr(history, "history") and isinstance(history.history, Mapping):
        history = history.history  # a keras.callbacks.History
    if isinstance(history, Mapping) and isinstance(history.get("history"), Mapping):
        history = history["history"]  # nuclib train's result / history.json
    if not isinstance(history, Mapping) or not history:
        raise ValueError(f"{source} is a {type(history).__name__}, not a training history; "
                         "expected a keras History, a dict of per-epoch lists such as "
                         "{'loss': [...], 'val_loss': [...]}, or a history.json / log.csv path")
    out = {}
    for name, values in history.items():
        try:
            arr = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{source}[{name!r}] holds {values!r}; expected a list of numbers, "
                             "one per epoch") from None
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError(f"{source}[{name!r}] has shape {arr.shape}; expected a non-empty "
                             "list of numbers, one per epoch")
        out[str(name)] = arr
    lengths = {name: len(v) for name, v in out.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"{source} has lists of different lengths {lengths}; expected one "
                         "value per epoch in each")
    return out


def _best_epoch(values: np.ndarray, monitor: str, mode: str) -> int | None:
    """1-based epoch of the best value of ``monitor`` (None when every value is NaN)."""
    if np.all(np.isnan(values)):
        return None
    if mode == "auto":
        mode = "min" if "loss" in monitor else "max"
    return int(np.nanargmin(values) if mode == "min" else np.nanargmax(values)) + 1


def plot_training_history(history, metrics: Sequence[str] | None = None, ax=None, *,
                          monitor: str | None = None, mode: str = "auto", figsize=None):
    """Loss and metrics per epoch, training and validation, with the best epoch marked.

    One axes per quantity (``loss`` first): the training curve, the
    validation curve (``val_<name>``) when there is one, and a dashed
    vertical line at the best epoch of ``monitor`` (the epoch a
    ``ModelCheckpoint(save_best_only=True)`` on it keeps), named in the
    legend.

    Args:
        history: a Keras ``History``, a dict of per-epoch lists, or the
            training record of a ``nuclib train`` run (its ``history.json``,
            ``log.csv``, run folder or model directory); see
            ``training_history``.
        metrics: names to draw (without ``val_``); default every quantity
            of the history but the learning rate, ``loss`` first.
        ax: draw into this axes (one quantity) or these axes (one per
            quantity) instead of a new figure.
        monitor: the value whose best epoch is marked; default
            ``val_loss`` when there is one, else ``loss``.
        mode: ``"min"``, ``"max"`` or ``"auto"`` (min for names containing
            "loss", else max), as Keras' ``ModelCheckpoint``.
        figsize: size of a new figure in inches; default 4.2 x 3.4 per axes.

    Returns:
        The ``matplotlib.figure.Figure``. Each axes has the title of its
        quantity, x label "epoch" (epochs counted from 1), lines labelled
        "training" and "validation", and the best-epoch line.

    Raises:
        ValueError: an unusable history (see ``training_history``), an
            unknown metric or monitor, a bad mode, or ``ax`` not matching
            the number of metrics.
        FileNotFoundError: a history path that does not exist.

    Example:
        >>> fig = plot_training_history({"loss": [0.9, 0.5, 0.6], "val_loss": [1.0, 0.7, 0.8],
        ...                              "dice": [0.5, 0.7, 0.8], "val_dice": [0.4, 0.6, 0.7]})
        >>> [a.get_title() for a in fig.axes], fig.axes[0].get_legend_handles_labels()[1]
        (['loss', 'dice'], ['training', 'validation', 'best epoch 2'])
    """
    values = training_history(history)
    names = [k for k in values if not k.startswith("val_")]
    names += [k[4:] for k in values if k.startswith("val_") and k[4:] not in values]
    if metrics is None:
        metrics = [k for k in names if k not in SCHEDULE_KEYS]
        metrics.sort(key=lambda k: k != "loss")  # loss first, the rest in the input's order
    else:
        metrics = [metrics] if isinstance(metrics, str) else list(metrics)
        unknown = [m for m in metrics if m not in names]
        if unknown or not metrics:
            raise ValueError(f"metrics {unknown or metrics!r} not in the history; expected some "
                             f"of {names}")
    if not metrics:
        raise ValueError(f"the history holds only {names}; nothing to draw")
    if monitor is None:
        monitor = "val_loss" if "val_loss" in values else "loss"
    if monitor not in values:
        raise ValueError(f"monitor {monitor!r} is not in the history; expected one of "
                         f"{list(values)}")
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode {mode!r}; expected 'auto', 'min' or 'max'")
    if ax is None:
        Figure = _matplotlib("figure").Figure

        fig = Figure(figsize=figsize or (4.2 * len(metrics), 3.4), layout="constrained")
        axes = list(fig.subplots(1, len(metrics), squeeze=False)[0])
    else:
        axes = list(ax) if isinstance(ax, (list, tuple, np.ndarray)) else [ax]
        if len(axes) != len(metrics):
            raise ValueError(f"got {len(axes)} axes for {len(metrics)} metrics {metrics}; "
                             "expected one axes per metric")
        fig = axes[0].figure
    MaxNLocator = _matplotlib("ticker").MaxNLocator

    best = _best_epoch(values[monitor], monitor, mode)
    epochs = np.arange(1, len(values[monitor]) + 1)
    for axes_, name in zip(axes, metrics):
        if name in values:
            axes_.plot(epochs, values[name], marker="o", markersize=3, label="training")
        if f"val_{name}" in values:
            axes_.plot(epochs, values[f"val_{name}"], marker="o", markersize=3,
                       label="validation")
        if best is not None:
            axes_.axvline(best, color="0.4", linestyle="--", linewidth=1,
                          label=f"best epoch {best}")
        axes_.set_xlabel("epoch")
        axes_.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes_.set_title(name)
        axes_.grid(True, alpha=0.3)
        axes_.legend(fontsize="small")
    return fig
