"""A large image segmented block by block, with the whole image's result.

``Segmenter.segment_large`` (defined here, as ``segment_large(segmenter, image,
...)``) reads one block at a time and still gives what ``Segmenter.segment``
gives on the whole image, because nothing a block does depends on where the
block was cut:

1. **Intensities**: the normalization percentiles and the inversion choice
   are computed once, from the whole image (a strided sample of at most
   ``max_samples`` pixels, read band by band, so a memmap or zarr array is
   never loaded whole; an image that small is used whole, exactly).
2. **Nucleus size**: the diameter is measured once, on the same central
   window ``segment`` measures, normalized with the whole image's levels.
3. **Zoom on one grid**: the image is zoomed by one factor on one global
   pixel grid. Each block computes exactly the zoomed pixels ``cv2.resize``
   computes for the whole image (the same bilinear or area weights), and
   starts on a multiple of the network's stride, so the tiled network sees
   what it sees on the whole image.
4. **Context**: each block reads, around what it keeps, the network's
   receptive field plus ``context`` pixels for post-processing (a nucleus's
   split from its neighbours depends on the whole clump), and keeps only the
   nuclei it owns (``nuclib.postprocess.stitching``); labels are mapped back
   to the original pixels with the whole image's nearest-neighbour grid.

Example:
    >>> seg = nuclib.load_pretrained("dsb-3class")                     # doctest: +SKIP
    >>> slide = nuclib.data.read_image("slide.tif", memmap=True)         # doctest: +SKIP
    >>> labels = seg.segment_large(slide, block_size=4096)              # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass

import numpy as np

__all__ = ["segment_large", "Levels", "image_levels", "zoom_taps"]

# At most this many pixels are read to compute the image's percentiles.
MAX_SAMPLES = 1 << 22


@dataclass(frozen=True)
class Levels:
    """How a whole image's intensities are mapped for the network.

    Attributes:
        lo, hi: per channel, the intensities mapped to 0 and 1.
        invert: whether the normalized image is inverted (nuclei made bright).

    Example:
        >>> Levels((10.0,), (900.0,), False).hi
        (900.0,)
    """

    lo: tuple
    hi: tuple
    invert: bool


def _bands(shape, rows: int):
    for start in range(0, shape[0], rows):
        yield slice(start, min(start + rows, shape[0]))


def image_levels(image, *, channels: int = 1, low: float = 1.0, high: float = 99.8,
                 invert="auto", max_samples: int = MAX_SAMPLES, band: int = 1024) -> Levels:
    """The normalization levels of a whole image, as ``prepare_image`` computes them.

    Args:
        image: HxW or HxWxC array-like with slicing (NumPy, memmap, zarr).
        channels: the model's input channels (1 or 3).
        low, high: percentiles.
        invert: ``"auto"``, True or False (as in ``prepare_image``).
        max_samples: at most this many pixels are used (a regular stride);
            images that small are used whole, and the levels are exact.
        band: rows read at a time.

    Returns:
        ``Levels``.

    Example:
        >>> levels = image_levels(np.arange(100, dtype=np.uint8).reshape(10, 10), low=0, high=100)
        >>> levels.lo, levels.hi, levels.invert
        ((0.0,), (99.0,), False)
    """
    from nuclib.data.normalize import is_color, model_channels, scale_levels

    height, width = image.shape[:2]
    step = max(1, math.ceil(math.sqrt(height * width / max(int(max_samples), 1))))
    samples, color = [], False
    # Bands start on multiples of the stride, so the sample is one regular grid.
    rows = max(band // step, 1) * step
    for rows_slice in _bands(image.shape, rows):
        chunk = np.asarray(image[rows_slice])[::step, ::step]
        color = color or is_color(chunk)
        samples.append(model_channels(chunk, channels).reshape(-1, channels))
    sample = np.concatenate(samples)
    lo = np.percentile(sample, low, axis=0)
    hi = np.percentile(sample, high, axis=0)
    if invert == "auto":
        normalized = scale_levels(sample[:, None, :], lo, hi, clip=True)
        invert = color or float(np.median(normalized)) > 0.5
    return Levels(tuple(float(v) for v in lo), tuple(float(v) for v in hi), bool(invert))


# --------------------------------------------------------------------------- the zoom grid
def zoom_taps(size: int, new_size: int, method: str):
    """Source indices and weights of each zoomed pixel along one axis, as ``cv2.resize``.

    Args:
        size: source pixels.
        new_size: zoomed pixels.
        method: ``"linear"`` (cv2.INTER_LINEAR, enlarging) or ``"area"``
            (cv2.INTER_AREA, shrinking).

    Returns:
        ``(index, weight)``: int64 and float32 arrays ``(new_size, taps)``;
        zoomed pixel ``d`` is ``sum_t weight[d, t] * source[index[d, t]]``.

    Raises:
        ValueError: an unknown method.

    Example:
        >>> index, weight = zoom_taps(2, 4, "linear")
        >>> index.tolist(), weight.tolist()
        ([[0, 1], [0, 1], [0, 1], [1, 1]], [[1.0, 0.0], [0.75, 0.25], [0.25, 0.75], [1.0, 0.0]])
    """
    scale = 1.0 / (new_size / size)  # cv2: scale_x = 1. / inv_scale_x
    if method == "linear":
        pos = np.float32((np.arange(new_size) + 0.5) * scale - 0.5)
        start = np.floor(pos).astype(np.int64)
        frac = (pos - start.astype(np.float32)).astype(np.float32)
        low_edge, high_edge = start < 0, start >= size - 1
        frac[low_edge | high_edge] = 0
        start = np.clip(start, 0, size - 1)
        index = np.stack([start, np.minimum(start + 1, size - 1)], axis=1)
        weight = np.stack([np.float32(1) - frac, frac], axis=1).astype(np.float32)
        return index, weight
    if method != "area":
        raise ValueError(f"unknown zoom method {method!r}; expected 'linear' or 'area'")
    rows = []
    for d in range(new_size):  # cv2's computeResizeAreaTab
        fsx1 = d * scale
        fsx2 = fsx1 + scale
        cell = min(scale, size - fsx1)
        sx1, sx2 = math.ceil(fsx1), math.floor(fsx2)
        sx2 = min(sx2, size - 1)
        sx1 = min(sx1, sx2)
        taps = []
        if sx1 - fsx1 > 1e-3:
            taps.append((sx1 - 1, (sx1 - fsx1) / cell))
        taps += [(sx, 1.0 / cell) for sx in range(sx1, sx2)]
        if fsx2 - sx2 > 1e-3:
            taps.append((sx2, min(min(fsx2 - sx2, 1.0), cell) / cell))
        rows.append(taps)
    width = max(len(t) for t in rows)
    index = np.zeros((new_size, width), np.int64)
    weight = np.zeros((new_size, width), np.float32)
    for d, taps in enumerate(rows):
        for t, (sx, w) in enumerate(taps):
            index[d, t], weight[d, t] = sx, w
        index[d, len(taps):] = taps[-1][0]  # padding taps of weight 0
    return index, weight


def _resample_axis(x: np.ndarray, index: np.ndarray, weight: np.ndarray, axis: int):
    out = None
    for t in range(index.shape[1]):
        w = weight[:, t].reshape([-1 if a == axis else 1 for a in range(x.ndim)])
        term = np.take(x, index[:, t], axis=axis) * w
        out = term if out is None else out + term
    return out.astype(np.float32, copy=False)


@dataclass(frozen=True)
class _Grid:
    """The whole image's zoom: its size, and per axis the taps and the way back."""

    shape: tuple[int, int]
    zoomed: tuple[int, int]
    taps: tuple  # per axis: (index, weight), or None for no zoom
    back: tuple  # per axis: the zoomed pixel each original pixel takes its label from

    @classmethod
    def make(cls, shape, factor: float):
        from nuclib.data.scale import scaled_shape

        shape = (int(shape[0]), int(shape[1]))
        zoomed = scaled_shape(shape, factor) if factor != 1.0 else shape
        if zoomed == shape:
            taps = (None, None)
        else:
            method = "area" if zoomed[0] * zoomed[1] < shape[0] * shape[1] else "linear"
            taps = tuple(zoom_taps(shape[a], zoomed[a], method) for a in range(2))
        # nuclib.data.scale.rescale_labels' nearest-neighbour grid.
        back = tuple(np.minimum(((np.arange(shape[a]) + 0.5) * zoomed[a] / shape[a])
                                .astype(np.int64), zoomed[a] - 1) for a in range(2))
        return cls(shape, zoomed, taps, back)

    def inside(self, axis: int, lo: int, hi: int, multiple: int) -> tuple[int, int]:
        """Zoomed pixels computable from source pixels [lo, hi), starting on the stride grid."""
        if self.taps[axis] is None:
            first, last = lo, hi
        else:
            index = self.taps[axis][0]
            ok = (index.min(axis=1) >= lo) & (index.max(axis=1) < hi)
            where = np.flatnonzero(ok)
            first, last = int(where[0]), int(where[-1]) + 1
        first = -(-first // multiple) * multiple
        return first, max(last, first)

    def zoom(self, window: np.ndarray, origin, rows, cols) -> np.ndarray:
        """Zoomed pixels ``rows`` x ``cols`` (global ranges) from a window read at ``origin``."""
        x = window
        for axis, (first, last) in enumerate((rows, cols)):
            if self.taps[axis] is None:
                sl = [slice(None)] * x.ndim
                sl[axis] = slice(first - origin[axis], last - origin[axis])
                x = x[tuple(sl)]
            else:
                index, weight = self.taps[axis]
                x = _resample_axis(x, index[first:last] - origin[axis], weight[first:last],
                                   axis)
        return np.ascontiguousarray(x, dtype=np.float32)


class _BlockSegmenter:
    """``segment_fn(window, region)`` for ``stitching.segment_large``: one block on the
    whole image's levels, zoom grid and stride grid."""

    def __init__(self, segmenter, levels: Levels, grid: _Grid, postprocess: dict):
        self.segmenter = segmenter
        self.levels = levels
        self.grid = grid
        self.postprocess = postprocess

    def __call__(self, window: np.ndarray, region) -> np.ndarray:
        from nuclib.data.normalize import prepare_image

        config = self.segmenter.config
        x = prepare_image(window, channels=config.input_channels,
                          levels=(self.levels.lo, self.levels.hi), invert=self.levels.invert)
        inferencer = self.segmenter.inferencer(progress=False)
        origin = (region[0].start, region[1].start)
        spans = [self.grid.inside(a, region[a].start, region[a].stop, inferencer.multiple)
                 for a in range(2)]
        labels = np.zeros(window.shape[:2], np.uint32)
        if any(last <= first for first, last in spans):
            return labels
        zoomed = self.grid.zoom(x, origin, *spans)
        found = self.segmenter.postprocess(inferencer.predict(zoomed), **self.postprocess)
        # Back to original pixels on the whole image's grid; pixels whose zoomed
        # pixel lies outside this block's zoomed window stay 0 (context only).
        picks = []
        for a in range(2):
            source = self.grid.back[a][region[a].start:region[a].stop]
            valid = (source >= spans[a][0]) & (source < spans[a][1])
            picks.append((valid, np.clip(source - spans[a][0], 0, found.shape[a] - 1)))
        labels[:] = found[picks[0][1][:, None], picks[1][1][None, :]]
        labels[~(picks[0][0][:, None] & picks[1][0][None, :])] = 0
        return labels


# ------------------------------------------------------------------- blocks on Dask workers
_LOCK = threading.Lock()  # one model call at a time per worker process; loads guarded too
_SEGMENTERS: dict = {}
_GRIDS: dict = {}
_LOADS = 0  # models this process has loaded (a worker loads each model once)


@dataclass(frozen=True)
class _ModelSource:
    """How a worker gets the client's segmenter: its model directory and config."""

    cls: type
    directory: str
    config_json: str

    def load(self):
        """The process's segmenter, loaded on first use (as ``segment_files``' workers do)."""
        global _LOADS
        with _LOCK:
            if self not in _SEGMENTERS:
                config = json.loads(self.config_json)
                # The client's engine and settings; a cached conversion runs without Keras.
                segmenter = self.cls.from_directory(self.directory, engine=config["engine"])
                segmenter.config = config
                _SEGMENTERS[self] = segmenter
                _LOADS += 1
            return _SEGMENTERS[self]


def _model_source(segmenter) -> _ModelSource:
    directory = getattr(segmenter, "directory", None)
    if directory is None:
        raise ValueError("with a client, every worker loads the model from its directory, and "
                         "this Segmenter has none; save it (seg.save(DIR)) and use "
                         "Segmenter.from_directory(DIR) or nuclib.load_pretrained(DIR)")
    return _ModelSource(type(segmenter), str(directory),
                        json.dumps(segmenter.config.to_dict(), sort_keys=True, default=str))


class _WorkerBlocks:
    """``_BlockSegmenter`` for Dask workers: small to send (the model and the zoom grid
    are made once per worker process), the same labels."""

    def __init__(self, source: _ModelSource, levels: Levels, shape, factor: float,
                 postprocess: dict, identity: str):
        self.source, self.levels, self.shape, self.factor = source, levels, shape, factor
        self.postprocess, self.identity = postprocess, identity

    def __call__(self, window: np.ndarray, region) -> np.ndarray:
        segmenter = self.source.load()
        key = (tuple(self.shape), self.factor)
        with _LOCK:
            if key not in _GRIDS:
                _GRIDS.clear()  # one slide at a time: its taps are O(height + width)
                _GRIDS[key] = _Grid.make(self.shape, self.factor)
        blocks = _BlockSegmenter(segmenter, self.levels, _GRIDS[key], self.postprocess)
        with _LOCK:  # threads of one worker share its model
            return blocks(window, region)


def segment_large(segmenter, image, *, diameter: float | None = None, block_size: int = 2048,
                  min_overlap: int = 128, context: int | None = None, out=None,
                  on_large: str = "warn", max_samples: int = MAX_SAMPLES,
                  client=None, overwrite: bool = False, progress: bool = True,
                  **postprocess):
    """Segment an image of any size block by block, as ``segmenter.segment`` would whole.

    See the module's description for how: levels, diameter and zoom grid
    are the whole image's; each block adds the network's receptive field and
    ``context`` pixels for post-processing around what it keeps.

    Args:
        segmenter: a ``nuclib.Segmenter``.
        image: HxW or HxWxC array-like with slicing (NumPy array or memmap,
            zarr array, ``read_image(path, memmap=True)``); one block is read
            at a time.
        diameter: the nuclei's median diameter in pixels; measured once
            (as ``segment`` does) when omitted, for models trained at one size.
        block_size: side of the window read per block (original pixels);
            it must exceed ``2 * (min_overlap + context + network context)``.
        min_overlap: the largest nucleus (pixels per axis) stitched exactly.
        context: post-processing context around each block's kept region
            (original pixels); default ``min_overlap``.
        out: an integer (H, W) array to write into (a memmap, ...); default
            a new uint32 NumPy array. A zarr array, or a path where one is
            created, is written core by core and resumably
            (``nuclib.postprocess.slide_store``): a re-run after a crash
            redoes only the blocks and cores not marked done.
        client: a ``distributed.Client``: blocks are segmented on its workers,
            which load the model once each (from the segmenter's directory,
            which they must see) and write ``out`` (a zarr array or path on a
            shared file system) themselves; levels and diameter are computed
            here, once. A zarr or memmap image is read on the workers.
        overwrite: replace a complete zarr ``out`` (else FileExistsError).
        on_large: ``"warn"``, ``"raise"`` or ``"ignore"`` for nuclei larger
            than ``min_overlap`` crossing block borders.
        max_samples: pixels sampled for the normalization percentiles.
        progress: show a progress bar over blocks.
        **postprocess: post-processing parameters that replace the model's.

    Returns:
        ``out``: uint32 labels 1..N of the image's height and width (the
        zarr array, with a zarr ``out``).

    Raises:
        ValueError: an unusable image, diameter or post-processing parameter,
            a ``block_size`` too small for the context (the minimum named),
            or a client with a segmenter that has no model directory.
        FileExistsError: a complete zarr ``out`` without ``overwrite``.

    Example:
        >>> from nuclib.models import unet
        >>> from nuclib.segmenter import Segmenter
        >>> seg = Segmenter(unet(depth=2, filters=4))
        >>> segment_large(seg, np.zeros((300, 200), np.uint8), block_size=256,
        ...               min_overlap=32, progress=False).shape
        (300, 200)
    """
    from nuclib.data.normalize import prepare_image
    from nuclib.data.scale import scale_for_diameter
    from nuclib.diameter import check_diameter, window_bounds
    from nuclib.postprocess.stitching import segment_large as stitch
    from nuclib.postprocess.thresholds import check_postprocess

    shape = tuple(getattr(image, "shape", ()))
    if len(shape) not in (2, 3) or min(shape) < 1:
        raise ValueError(f"image has shape {shape}; expected a non-empty HxW or HxWxC "
                         "array-like with .shape and slicing")
    check_diameter(diameter, segmenter.config.diameter, segmenter.name)
    postprocess = check_postprocess(segmenter.head, postprocess) if postprocess else {}
    config = segmenter.config
    norm = config.normalize
    levels = image_levels(image, channels=config.input_channels, low=norm.low,
                          high=norm.high, invert=config.invert, max_samples=max_samples)
    factor = 1.0
    if config.diameter is not None:
        if diameter is None:
            # segment's own measurement: the central window, on the whole image's levels.
            y0, y1, x0, x1 = window_bounds(shape, config.estimate_side)
            window = prepare_image(np.asarray(image[y0:y1, x0:x1]),
                                   channels=config.input_channels,
                                   levels=(levels.lo, levels.hi), invert=levels.invert)
            diameter, factor, _, _ = segmenter.estimate_prepared(window)
            if window.shape[:2] != shape[:2]:  # as segment: the zoom of the final diameter
                factor = scale_for_diameter(diameter, config.diameter)
        else:
            factor = scale_for_diameter(diameter, config.diameter)
    grid = _Grid.make(shape, factor)
    inferencer = segmenter.inferencer(progress=False)
    inferencer.resolve_overlap(config.input_channels)  # measured once, before any block
    zoom = grid.zoomed[0] / grid.shape[0]
    context = int(min_overlap if context is None else context)
    if context < 0:
        raise ValueError(f"context must be >= 0, got {context}")
    # Receptive field and stride alignment in zoomed pixels, a source pixel or
    # two of interpolation support, then the post-processing context.
    network = math.ceil((inferencer.overlap + inferencer.multiple) / zoom) + math.ceil(1 / zoom)
    total = network + 1 + context
    if block_size <= 2 * (min_overlap + total):
        raise ValueError(
            f"block_size {block_size} is too small: at zoom {zoom:.3g} each block needs "
            f"{total} px of context (network {network + 1}, post-processing {context}) and "
            f"{min_overlap} px of overlap per side; use block_size > "
            f"{2 * (min_overlap + total)}")
    # What a resumed run must share with the one it finishes (in this process or not).
    identity = json.dumps({"model": segmenter.name, "levels": [levels.lo, levels.hi,
                                                               levels.invert],
                           "zoomed": grid.zoomed, "postprocess": postprocess},
                          sort_keys=True, default=str)
    if client is not None:
        segment_fn = _WorkerBlocks(_model_source(segmenter), levels, shape[:2], factor,
                                   postprocess, identity)
    else:
        segment_fn = _BlockSegmenter(segmenter, levels, grid, postprocess)
        segment_fn.identity = identity
    return stitch(image, segment_fn, block_size=block_size, min_overlap=min_overlap,
                  context=total, out=out, on_large=on_large, locate=True, client=client,
                  overwrite=overwrite, progress=progress)
