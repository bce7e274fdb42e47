"""Tiled inference: run a model on images of any size, seamlessly, in bounded memory.

``TiledInferencer`` cuts an image into overlapping tiles, predicts them in
batches and puts the probabilities back together. Its default overlap is the
model's receptive-field radius (``receptive_field_radius``), computed once
from the Keras layer graph (or measured with a one-pixel perturbation probe
for other callables) and cached, so that with ``blend="crop"`` the tiled
output equals whole-image prediction up to float round-off.

Why this is exact: a pixel of a fully convolutional network depends only on
input pixels within its receptive-field radius ``r``; if that whole window
lies inside a tile, the tile computes the same value as the whole image --
provided the tile's feature maps sit on the same grid as the whole image's,
i.e. tile origins are multiples of the model's total stride (16 for a depth-4
U-Net). Tiles are therefore placed on stride multiples of the image padded
(reflect, bottom/right) to a stride multiple (with ``buckets``, further to a
``shape_bucket``, so that compiled engines see few distinct shapes; the
padding depends on the image's size alone, tiled or not), and each tile
contributes only the pixels at least ``overlap`` away from its inner edges. For the zoo's
U-Net (depth 4, 3x3 convolutions) ``r`` is 107 px, so a tile must be at
least ``2 * 107 + 16 = 230`` px, and a 256 px tile keeps only a 32 px core
(1.6% of its work); 1024 px tiles keep 800 px (61%). Choose the largest
tile that fits in memory (see ``benchmarks/tiling.py``).

Big images that do not fit in memory are segmented block by block with
``segment_large`` (or ``segment_dask``), defined in
``nuclib.postprocess.stitching`` and re-exported here.

Example:
    >>> import numpy as np
    >>> from nuclib.models import unet
    >>> inferencer = TiledInferencer(unet(depth=2, filters=4), tile_size=64, progress=False)
    >>> inferencer.predict(np.random.rand(100, 150).astype("float32")).shape
    (100, 150, 3)
"""

from __future__ import annotations

import math
import warnings
import weakref
from typing import Callable

import numpy as np

from nuclib.graph import required_multiple
from nuclib.postprocess.stitching import segment_dask, segment_large

__all__ = ["TiledInferencer", "receptive_field_radius", "default_overlap", "WholeImageLayerError",
           "shape_bucket", "segment_large", "segment_dask"]

BLENDS = ("crop", "gaussian", "linear")

# Layers that act on each pixel independently (they do not widen the receptive field).
_POINTWISE = frozenset({
    "InputLayer", "Activation", "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax",
    "BatchNormalization", "LayerNormalization", "GroupNormalization", "UnitNormalization",
    "Dropout", "SpatialDropout2D", "GaussianNoise", "GaussianDropout", "AlphaDropout",
    "ActivityRegularization", "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum",
    "Concatenate", "Rescaling", "Normalization", "Dense", "Identity", "Masking",
})
_CONVS = frozenset({"Conv2D", "DepthwiseConv2D", "SeparableConv2D"})
_POOLS = frozenset({"MaxPooling2D", "AveragePooling2D"})
_GLOBAL = frozenset({"GlobalAveragePooling2D", "GlobalMaxPooling2D", "Flatten", "Reshape",
                     "Resizing", "Attention", "MultiHeadAttention"})
# Global layers whose output is a summary of their whole input (one value per
# channel): on a tile they summarize the tile instead, which large tiles
# approximate (squeeze-and-excitation blocks of EfficientNet).
_SUMMARIES = frozenset({"GlobalAveragePooling2D", "GlobalMaxPooling2D"})
GLOBAL_LAYERS = ("raise", "ignore")

# Receptive fields are cached per model object (weakly, so models can be freed).
_RADIUS_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


class _NotAnalyzable(Exception):
    """The layer graph holds something whose spatial footprint is unknown."""


class WholeImageLayerError(ValueError):
    """A layer mixes information across the whole image, so no overlap makes tiles exact.

    Attributes:
        layer: the layer's name.
        kind: its class name, e.g. ``"GlobalAveragePooling2D"``.
    """

    def __init__(self, layer: str, kind: str):
        self.layer, self.kind = layer, kind
        hint = ("; receptive_field_radius(model, global_layers='ignore') gives the overlap "
                "that tiles it approximately, as TiledInferencer does by default"
                if kind in _SUMMARIES else "; pass overlap= explicitly to tile anyway")
        super().__init__(f"layer {layer!r} ({kind}) mixes information across the whole "
                         f"image, so tiles cannot reproduce whole-image predictions{hint}")


# --------------------------------------------------------------------------- receptive field
# A feature-map pixel ``i`` of a layer with cumulative stride ("jump") ``J``
# depends on input pixels ``J * i + [lo, hi]``. Each layer maps (lo, hi, J)
# per axis; the radius is max(-lo, hi) at the output.
_IDENTITY = ((0.0, 0.0, 1.0), (0.0, 0.0, 1.0))


def _pair(value) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _conv_axis(state, k, s, d, padding):
    lo, hi, jump = state
    span = d * (k - 1)
    if padding == "same":
        pad_max = span // 2
        pad_min = pad_max if s == 1 else max(span + 1 - s, 0) // 2
    else:
        pad_max = pad_min = 0
    return lo - jump * pad_max, hi + jump * (span - pad_min), jump * s


def _transpose_axis(state, k, s, d, padding):
    lo, hi, jump = state
    span = d * (k - 1)
    pad = max(span + 1 - s, 0) // 2 if padding == "same" else 0
    out_jump = jump / s
    return lo + out_jump * (pad - span), hi + out_jump * pad, out_jump


def _upsample_axis(state, s, interpolation):
    lo, hi, jump = state
    out_jump = jump / s
    if interpolation == "nearest":
        return lo - out_jump * (s - 1), hi, out_jump
    if interpolation == "bilinear":
        return lo - out_jump * 2 * s, hi + out_jump * s, out_jump
    return lo - out_jump * 3 * s, hi + out_jump * 3 * s, out_jump


def _union(states):
    # A per-tile summary (global pooling, with global_layers="ignore") joins a
    # branch without widening it or changing its grid.
    states = [s for s in states if not _is_summary(s)] or states
    return tuple((min(s[a][0] for s in states), max(s[a][1] for s in states),
                  max(s[a][2] for s in states)) for a in range(2))


def _summary(state):
    """The state of a per-tile summary: no input pixel in particular (an empty window,
    which ``_union`` ignores), on the grid it was computed on."""
    return tuple((math.inf, -math.inf, jump) for _, _, jump in state)


def _is_summary(state) -> bool:
    return all(lo > hi for lo, hi, _ in state)


def _apply_layer(layer, state, ignore_global: bool = False):
    kind = type(layer).__name__
    if kind in _POINTWISE:
        return state
    footprint = getattr(layer, "conv_footprint", None)  # custom layers (nuclib.graph)
    if footprint is not None:
        kind, k, s, padding = footprint
        step = _conv_axis if kind == "Conv2D" else _transpose_axis
        return tuple(step(state[a], _pair(k)[a], _pair(s)[a], 1, padding) for a in range(2))
    if kind in _CONVS:
        return tuple(_conv_axis(state[a], _pair(layer.kernel_size)[a], _pair(layer.strides)[a],
                                _pair(layer.dilation_rate)[a], layer.padding) for a in range(2))
    if kind in _POOLS:
        strides = layer.strides if layer.strides is not None else layer.pool_size
        return tuple(_conv_axis(state[a], _pair(layer.pool_size)[a], _pair(strides)[a], 1,
                                layer.padding) for a in range(2))
    if kind == "Conv2DTranspose":
        return tuple(_transpose_axis(state[a], _pair(layer.kernel_size)[a],
                                     _pair(layer.strides)[a], _pair(layer.dilation_rate)[a],
                                     layer.padding) for a in range(2))
    if kind == "UpSampling2D":
        return tuple(_upsample_axis(state[a], _pair(layer.size)[a], layer.interpolation)
                     for a in range(2))
    if kind in ("ZeroPadding2D", "Cropping2D"):
        amounts = layer.padding if kind == "ZeroPadding2D" else layer.cropping
        sign = -1 if kind == "ZeroPadding2D" else 1
        return tuple((lo + sign * jump * amounts[a][0], hi + sign * jump * amounts[a][0], jump)
                     for a, (lo, hi, jump) in enumerate(state))
    if kind in _GLOBAL:
        # With ignore_global, a per-channel summary (and reshaping it) adds no
        # spatial context: the local radius is what the rest of the graph needs.
        if ignore_global and (kind in _SUMMARIES
                              or (kind in ("Reshape", "Flatten") and _is_summary(state))):
            return _summary(state)
        raise WholeImageLayerError(layer.name, kind)
    if hasattr(layer, "operations") and hasattr(layer, "outputs"):  # a nested functional model
        inner = _model_transform(layer, ignore_global)
        return tuple((lo + jump * inner[a][0], hi + jump * inner[a][1], jump * inner[a][2])
                     for a, (lo, hi, jump) in enumerate(state))
    raise _NotAnalyzable(kind)


def _model_transform(model, ignore_global: bool = False):
    """(lo, hi, jump) per spatial axis from the model's input to its outputs."""
    if not hasattr(model, "outputs"):
        raise _NotAnalyzable(type(model).__name__)
    states: dict[int, tuple] = {}
    for op in getattr(model, "operations", None) or model.layers:
        inbound = []
        for node in getattr(op, "_inbound_nodes", []):
            for tensor in node.input_tensors:
                history = getattr(tensor, "_keras_history", None)
                if history is not None and id(history[0]) in states:
                    inbound.append(states[id(history[0])])
        states[id(op)] = _apply_layer(op, _union(inbound) if inbound else _IDENTITY,
                                      ignore_global)
    outputs = [states.get(id(t._keras_history[0]), _IDENTITY) for t in model.outputs]
    return _union(outputs)


def _graph_radius(model, ignore_global: bool = False) -> int:
    transform = _model_transform(model, ignore_global)
    if _is_summary(transform):  # every output is a summary: no spatial context at all
        return 0
    return int(math.ceil(max(max(-lo, hi) for lo, hi, _ in transform) - 1e-9))


def _probe_radius(fn: Callable, channels: int, multiple: int, *, limit: int = 2048) -> int:
    """Measure the receptive-field radius by perturbing single pixels.

    One pixel at each offset modulo ``multiple`` (along the diagonal) is
    changed on a random image; the radius is the farthest output pixel that
    changes. The image grows until the change no longer reaches its border.
    """
    rng = np.random.default_rng(0)
    size = max(64, 4 * multiple)
    size = -(-size // multiple) * multiple
    while size <= limit:
        base = rng.normal(size=(1, size, size, channels)).astype(np.float32)
        centre = (size // 2) // multiple * multiple
        offsets = range(min(multiple, size // 4))
        batch = np.repeat(base, len(offsets) + 1, axis=0)
        for i, r in enumerate(offsets, start=1):
            batch[i, centre + r, centre + r] += 1.0
        # One image per call: some CPU kernels (oneDNN on AVX2) sum in an order
        # that depends on the batch, which would change every output pixel.
        out = np.concatenate([np.asarray(fn(batch[i:i + 1]), dtype=np.float32)
                              for i in range(len(batch))])
        radius, touches_border = 0, False
        for i, r in enumerate(offsets, start=1):
            changed = np.any(out[i] != out[0], axis=-1)
            rows, cols = np.nonzero(changed)
            if rows.size == 0:
                continue
            touches_border |= bool(rows.min() == 0 or cols.min() == 0
                                   or rows.max() == size - 1 or cols.max() == size - 1)
            radius = max(radius, int(np.max(np.abs(rows - centre - r))),
                         int(np.max(np.abs(cols - centre - r))))
        if not touches_border:
            return radius
        size *= 2
    raise ValueError(f"the model's output changes more than {limit // 2} px away from a "
                     "perturbed pixel, so its receptive field cannot be measured; pass "
                     "overlap= explicitly")


def _is_keras_model(model) -> bool:
    return hasattr(model, "predict_on_batch") and hasattr(model, "layers")


def _model_channels(model) -> int | None:
    shape = getattr(model, "input_shape", None)
    if isinstance(shape, tuple) and len(shape) == 4 and isinstance(shape[-1], int):
        return shape[-1]
    return None


def _model_multiple(model) -> int:
    return required_multiple(model) if _is_keras_model(model) else 1


def receptive_field_radius(model, *, channels: int | None = None, method: str = "auto",
                           global_layers: str = "raise") -> int:
    """How many pixels of context each side an output pixel of ``model`` depends on.

    For Keras functional models the radius is computed from the layer graph
    (convolutions, pooling, transposed convolutions, up-sampling, nested
    models, and custom layers that declare a ``conv_footprint``, see
    ``nuclib.graph``), exactly for stride-1 'same' convolutions and
    conservatively for the rest; anything else is measured once by
    perturbing single input pixels. Results are cached per model object.

    Swin-UNet's windowed attention declares the footprint of a
    ``2 * window_size - 1`` 'same' convolution: a token attends only within
    its window, plain or shifted, so never more than ``window_size - 1``
    tokens away, and the masks of the shifted windows only cut attention
    off. Tiles on multiples of the side multiple partition into the whole
    image's windows, so this radius makes tiled equal whole-image
    prediction for it too.

    Global pooling (EfficientNet's squeeze-and-excitation blocks) sees the
    whole input, so no radius makes tiles exact and the default raises.
    ``global_layers="ignore"`` treats each such per-channel summary as
    adding no spatial context and returns the radius of everything else:
    the overlap with which tiles differ from the whole image only through
    the summaries, computed per tile instead of per image.

    Args:
        model: a Keras model or any callable mapping ``(N, h, w, C)`` float32
            batches to ``(N, h, w, K)`` outputs.
        channels: input channels for the probe (default: the model's).
        method: ``"auto"`` (graph, else probe), ``"graph"`` or ``"probe"``.
        global_layers: ``"raise"`` (the default) or ``"ignore"`` (global
            average/max pooling, and reshaping its output, count as no
            context; graph analysis only).

    Returns:
        The radius in pixels; a tile overlap of at least this makes tiled
        prediction equal to whole-image prediction (with ``"ignore"``: equal
        but for the global summaries).

    Raises:
        WholeImageLayerError: (a ``ValueError``) the model has global layers
            (no finite receptive field) and ``global_layers="raise"``, or
            global layers other than pooling (attention over all pixels,
            ``Resizing``).
        ValueError: its graph cannot be analysed with ``method="graph"``,
            the probe needs the channel count and it is unknown, or a bad
            ``method`` / ``global_layers``.

    Example:
        >>> from nuclib.models import unet
        >>> receptive_field_radius(unet(depth=2, filters=4))
        23
    """
    if method not in ("auto", "graph", "probe"):
        raise ValueError(f"unknown method {method!r}; expected 'auto', 'graph' or 'probe'")
    if global_layers not in GLOBAL_LAYERS:
        raise ValueError(f"unknown global_layers {global_layers!r}; expected one of "
                         f"{GLOBAL_LAYERS}")
    ignore_global = global_layers == "ignore"
    key = (method, channels, global_layers)
    try:
        cached = _RADIUS_CACHE.get(model, {})
    except TypeError:  # not weak-referenceable (e.g. a builtin): no caching
        cached = {}
    if key in cached:
        return cached[key]
    radius = None
    if method in ("auto", "graph") and _is_keras_model(model):
        try:
            radius = _graph_radius(model, ignore_global)
        except _NotAnalyzable as err:
            if method == "graph":
                raise ValueError(f"cannot compute the receptive field of layer type {err} "
                                 "from the graph; use method='probe'") from None
    elif method == "graph":
        raise ValueError(f"{type(model).__name__} is not a Keras functional model; "
                         "use method='probe'")
    if radius is None:
        channels = channels or _model_channels(model)
        if channels is None:
            raise ValueError("the model's input channels are unknown; pass channels= "
                             "to measure its receptive field")
        radius = _probe_radius(_batch_predictor(model), channels, _model_multiple(model))
    try:
        _RADIUS_CACHE.setdefault(model, {})[key] = radius
    except TypeError:
        pass
    return radius


def default_overlap(model, *, channels: int | None = None,
                    method: str = "auto") -> tuple[int, str | None]:
    """The overlap ``TiledInferencer`` uses for ``model``, and whether tiles are exact.

    The receptive-field radius (``receptive_field_radius``) when tiles can
    reproduce whole-image prediction. For a model that pools over its whole
    input (EfficientNet's squeeze-and-excitation blocks), no overlap can:
    the radius of everything but the pooling is used, and the second value
    names the first such layer. Tiles then differ from the whole image as
    much as the tile's average features differ from the image's; the
    larger the tile, the smaller the difference.

    Args:
        model: as ``receptive_field_radius``.
        channels, method: as ``receptive_field_radius``.

    Returns:
        ``(overlap, None)`` when tiles are exact, ``(overlap, "name (kind)")``
        when they are approximate.

    Raises:
        WholeImageLayerError: the model mixes the whole image in a way that
            is not a per-channel summary (attention over all pixels).

    Example:
        >>> from nuclib.models import unet
        >>> default_overlap(unet(depth=2, filters=4))
        (23, None)
    """
    try:
        return receptive_field_radius(model, channels=channels, method=method), None
    except WholeImageLayerError as err:
        if err.kind not in _SUMMARIES:
            raise
        radius = receptive_field_radius(model, channels=channels, method=method,
                                        global_layers="ignore")
        return radius, f"{err.layer} ({err.kind})"


def _batch_predictor(model) -> Callable[[np.ndarray], np.ndarray]:
    if not _is_keras_model(model):
        return model
    eager = False

    def predict(batch):
        # predict_on_batch runs a compiled graph in inference mode (batch norm
        # uses its moving statistics) and stops re-tracing after a few shapes.
        nonlocal eager
        if not eager:
            try:
                return model.predict_on_batch(batch)
            except Exception as err:
                # Keras 3.15: bilinear UpSampling2D cannot be traced once Keras
                # relaxes the input shape; the eager call computes the same thing.
                if type(err).__name__ != "OperatorNotAllowedInGraphError":
                    raise
                eager = True
        return np.asarray(model(batch, training=False))

    return predict


# --------------------------------------------------------------------------- tile layout
def _reflect(index: np.ndarray, size: int) -> np.ndarray:
    """Source index of each padded index under ``np.pad(mode="reflect")``."""
    if size == 1:
        return np.zeros_like(index)
    period = 2 * (size - 1)
    r = np.mod(index, period)
    return np.where(r < size, r, period - r)


def shape_bucket(side: int, multiple: int = 1) -> int:
    """``side`` rounded up to its shape bucket: a multiple of ``multiple`` and of an
    eighth of ``side``'s power of two, at most 64 (so at most 1/8 more, and
    never more than 63 pixels).

    Compiled engines (OpenVINO, TensorFlow's traced graphs) prepare each new
    input shape once, at a cost. Zoomed images have a shape each; rounded
    up to buckets, they share fewer. Whether that pays depends on the
    engine and the machine (``benchmarks/shape_buckets.py``).

    Raises:
        ValueError: ``side`` or ``multiple`` is not a whole number >= 1.

    Example:
        >>> [shape_bucket(s, 16) for s in (64, 100, 300, 520, 1000, 5000)]
        [64, 112, 320, 576, 1024, 5056]
    """
    for name, value in (("side", side), ("multiple", multiple)):
        if isinstance(value, bool) or not float(value).is_integer() or value < 1:
            raise ValueError(f"shape_bucket: {name} must be a whole number of pixels >= 1, "
                             f"got {value!r}")
    power = 1 << max(int(side).bit_length() - 4, 0)
    step = multiple * max(1, min(power, 64) // multiple)
    return -(-int(side) // step) * step


def _axis_tiles(padded: int, tile: int, overlap: int, multiple: int):
    """Tile starts along one axis and the [lo, hi) range each tile owns (crop mode).

    Consecutive tiles share at least ``2 * overlap`` pixels; the boundary
    between owners sits in the middle of the shared part, so every owned
    pixel is at least ``overlap`` away from the owner's inner edges.
    """
    if padded <= tile:
        return [0], [(0, padded)]
    step = (tile - 2 * overlap) // multiple * multiple
    starts = list(range(0, padded - tile, step)) + [padded - tile]
    bounds = [0] + [(a + b + tile) // 2 for a, b in zip(starts[1:], starts[:-1])] + [padded]
    return starts, list(zip(bounds[:-1], bounds[1:]))


def _axis_tile_size(padded: int, tile: int, overlap: int, multiple: int) -> int:
    """The smallest tile side (a stride multiple, at most ``tile``) that covers
    ``padded`` pixels with no more tiles than ``tile`` itself needs.

    A 2048 px side with 1024 px tiles and a 107 px overlap needs 3 tiles;
    832 px tiles also need 3, and do 35% less work.
    """
    if padded <= tile:
        return padded

    def count(side: int) -> int:
        step = (side - 2 * overlap) // multiple * multiple
        return -(-(padded - side) // step) + 1

    best, side = tile, tile - multiple
    while side >= 2 * overlap + multiple and count(side) <= count(tile):
        best, side = side, side - multiple
    return best


def _axis_weights(length: int, overlap: int, blend: str, inner_start: bool,
                  inner_end: bool) -> np.ndarray:
    """1-D blending weights of a tile; sides at the image border are not tapered."""
    pos = np.arange(length, dtype=np.float64) + 0.5
    if blend == "gaussian":
        centre, sigma = length / 2, length / 8  # nnU-Net's choice: sigma = tile / 8
        w = np.exp(-((pos - centre) ** 2) / (2 * sigma**2))
        if not inner_start:
            w[pos < centre] = 1.0
        if not inner_end:
            w[pos >= centre] = 1.0
    else:  # linear: a ramp across the 2 * overlap pixels shared with the neighbour
        ramp = max(2 * overlap, 1)
        w = np.ones(length)
        if inner_start:
            w = np.minimum(w, pos / ramp)
        if inner_end:
            w = np.minimum(w, (length - pos) / ramp)
    return np.maximum(w, 1e-6).astype(np.float32)


class TiledInferencer:
    """Predict probabilities for images of any size by overlapping, batched tiles.

    The image is padded (reflect, bottom/right) to a multiple of the model's
    stride (with ``buckets``, to its ``shape_bucket``), covered by tiles whose
    origins are stride multiples and which share ``2 * overlap`` pixels with
    their neighbours, predicted
    ``batch_size`` tiles at a time, and reassembled:

    * ``"crop"``: each pixel comes from the one tile where it is farthest
      from an inner tile edge. With ``overlap`` at least the receptive-field
      radius (the default) this equals whole-image prediction (of the image
      padded the same way) to float round-off.
    * ``"linear"``: tiles are cross-faded with a linear ramp over the shared
      pixels; ``"gaussian"``: weighted by a Gaussian (sigma = tile / 8)
      centred on each tile. Both hide seams when you choose an overlap
      smaller than the receptive field to go faster.

    Memory: the output array (H x W x K float32), a weight map for the
    blends, and one batch of tiles; nothing else grows with the image.

    Args:
        model: a ``keras.Model`` (called through ``predict_on_batch``, i.e.
            in inference mode) or any callable mapping a float32 batch
            ``(N, h, w, C)`` to ``(N, h, w, K)`` probabilities.
        tile_size: largest tile side in pixels (int, or ``(height, width)``);
            a multiple of ``multiple`` and at least ``2 * overlap + multiple``.
            Tiles shrink to the smallest size that covers the image with as
            few tiles; images smaller than a tile are predicted in one piece.
        overlap: context pixels kept on each inner side of a tile. Default:
            the model's receptive-field radius (``receptive_field_radius``),
            computed once per model. For Swin-UNet the radius follows its
            windows (see ``receptive_field_radius``), and tile origins on
            multiples of its side multiple keep the whole image's windows.
        batch_size: tiles per model call; memory grows with it.
        blend: ``"crop"``, ``"linear"`` or ``"gaussian"``.
        buckets: pad each side further, to its ``shape_bucket`` (at most 1/8
            more), so that images of many sizes share a few network input
            shapes, each prepared once by a compiled engine. A side that
            fits one tile is never padded past it. Off by default: on 2 CPU
            cores OpenVINO prepares a new shape in about the time the extra
            pixels cost (``benchmarks/shape_buckets.py``).
        progress: show a progress bar over tiles (``nuclib.progress``).
        multiple: the model's total stride (tile origins and sizes are
            multiples of it). Default: ``nuclib.graph.required_multiple``
            (``nuclib.models.required_multiple``) for Keras models, 1 for
            other callables.
        approximate_layer: for a callable that wraps a model with global
            pooling (a compiled engine): the layer's name, which the warning
            names. Keras models are analysed for it (``default_overlap``).

    Attributes:
        approximate_layer: ``None`` when tiles reproduce whole-image
            prediction; else the layer that pools over the whole input
            (EfficientNet's squeeze-and-excitation), and the first image
            that needs several tiles warns that tiles are approximate.
            For such a Keras model the default overlap is also capped at a
            quarter of the tile, so that half of each tile side is core.
        receptive_field: the uncapped radius where the overlap was capped.

    Raises:
        ValueError: unknown blend, non-positive sizes, a tile size that is not
            a multiple of the stride or leaves no room inside an explicit
            ``overlap`` (the model's own radius is checked when an image first
            needs several tiles, or by ``check_tiles``).

    Example:
        >>> from nuclib.models import unet
        >>> model = unet(depth=3, filters=4)
        >>> inferencer = TiledInferencer(model, tile_size=128, progress=False)
        >>> inferencer.overlap, inferencer.multiple
        (51, 8)
        >>> inferencer.predict(np.zeros((300, 200, 1), np.float32)).shape
        (300, 200, 3)
    """

    def __init__(self, model, *, tile_size=1024, overlap: int | None = None,
                 batch_size: int = 1, blend: str = "crop", buckets: bool = False,
                 progress: bool = True, multiple: int | None = None,
                 approximate_layer: str | None = None):
        if not callable(model):
            raise ValueError(f"model must be callable (a keras.Model or a function), got "
                             f"{type(model).__name__}")
        if blend not in BLENDS:
            raise ValueError(f"unknown blend {blend!r}; expected one of {BLENDS}")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.tile_size = tuple(int(t) for t in _pair(tile_size))
        self.batch_size = int(batch_size)
        self.blend = blend
        self.buckets = bool(buckets)
        self.progress = progress
        self.multiple = int(multiple) if multiple is not None else _model_multiple(model)
        if self.multiple < 1:
            raise ValueError(f"multiple must be >= 1, got {multiple}")
        for side in self.tile_size:
            if side < 1 or side % self.multiple:
                raise ValueError(f"tile_size {tile_size} must be a positive multiple of "
                                 f"{self.multiple} (the model's total stride), e.g. "
                                 f"{max(self.multiple, side // self.multiple * self.multiple)}")
        self._predict_batch = _batch_predictor(model)
        self._overlap, self._explicit = None, False
        self.approximate_layer = approximate_layer
        self.receptive_field = None  # set where the overlap is capped below it
        self._warned = False
        if overlap is not None:
            if int(overlap) < 0:
                raise ValueError(f"overlap must be >= 0, got {overlap}")
            self._set_overlap(int(overlap), explicit=True)
        elif _is_keras_model(model):
            try:
                radius, approximate_layer = default_overlap(model, method="graph")
                self.approximate_layer = self.approximate_layer or approximate_layer
                if approximate_layer is not None:
                    # Tiles are approximate anyway, and the theoretical radius
                    # (518 px for EfficientNetB0) far exceeds the context that
                    # matters: cap it so that half of each tile is core.
                    self.receptive_field = radius
                    radius = min(radius, (min(self.tile_size) - self.multiple) // 4)
            except ValueError:
                # Layers the graph analysis does not know (attention over all
                # pixels): probed when an image first needs more than one tile.
                radius = None
            if radius is not None:
                self._set_overlap(radius, explicit=False)
        elif _model_channels(model) is not None:
            self._set_overlap(receptive_field_radius(model), explicit=False)
        # Otherwise a plain callable: its receptive field is probed on first use,
        # with the channel count of the first image.

    @property
    def overlap(self) -> int | None:
        """Context pixels per inner tile side (None until probed for plain callables)."""
        return self._overlap

    def resolve_overlap(self, channels: int) -> int:
        """The overlap, measured now (``receptive_field_radius``) if it is not known yet.

        Args:
            channels: the input channels to probe a plain callable with.

        Returns:
            The overlap in pixels.

        Raises:
            ValueError: the receptive field cannot be measured (pass
                ``overlap=``), or it leaves tiles no core.

        Example:
            >>> TiledInferencer(np.tanh, tile_size=64).resolve_overlap(1)
            0
        """
        if self._overlap is None:
            self._set_overlap(receptive_field_radius(self.model, channels=channels),
                              explicit=False)
        self.check_tiles()
        return self._overlap

    def _set_overlap(self, overlap: int, *, explicit: bool) -> None:
        self._overlap, self._explicit = overlap, explicit
        if explicit:
            self.check_tiles()

    def check_tiles(self) -> None:
        """Raise unless tiles keep a core inside the overlap (when the overlap is known).

        An explicit ``overlap=`` is checked when the inferencer is built; the
        model's own receptive-field radius only when an image needs more than
        one tile (``predict``, ``tile_origins``), because images that fit one
        tile need no overlap: a Swin-UNet's radius (over 1,000 px) would
        otherwise refuse every image at the default ``tile_size``. Call this
        to check a tiling before any image.

        Raises:
            ValueError: ``tile_size`` is less than ``2 * overlap + multiple``.

        Example:
            >>> TiledInferencer(np.tanh, tile_size=64, overlap=8).check_tiles()
        """
        if self._overlap is None:
            return
        need = 2 * self._overlap + self.multiple
        if min(self.tile_size) < need:
            origin = "" if self._explicit else " (the model's receptive-field radius)"
            raise ValueError(
                f"tile_size {self.tile_size} is too small for overlap {self._overlap}{origin}: "
                f"tiles must be at least 2 * overlap + {self.multiple} = {need} px so that each "
                f"tile keeps a core; use a larger tile_size or a smaller overlap")

    def _warn_approximate(self) -> None:
        if self.approximate_layer is None or self._warned:
            return
        self._warned = True
        capped = ("" if self.receptive_field in (None, self._overlap) else
                  f", and the overlap is {self._overlap} px of a {self.receptive_field} px "
                  f"receptive field")
        warnings.warn(
            f"layer {self.approximate_layer} summarizes its whole input, so each "
            f"{self.tile_size[0]}x{self.tile_size[1]} tile sees its own average, not the "
            f"image's{capped}: tiled predictions approximate whole-image ones (the larger "
            f"the tile_size, the closer). Images that fit one tile are exact.", stacklevel=3)

    def __repr__(self) -> str:
        return (f"TiledInferencer(tile_size={self.tile_size}, overlap={self.overlap}, "
                f"batch_size={self.batch_size}, blend={self.blend!r}, "
                f"multiple={self.multiple})")

    # -- helpers ------------------------------------------------------------
    @staticmethod
    def _check_image(image) -> tuple[int, int, int]:
        shape = tuple(image.shape)
        if len(shape) not in (2, 3):
            raise ValueError(f"image has {len(shape)} dimensions {shape}; expected HxW or HxWxC "
                             "(a single 2-D image; loop over stacks yourself)")
        if min(shape) < 1:
            raise ValueError(f"image is empty (shape {shape})")
        return shape[0], shape[1], (shape[2] if len(shape) == 3 else 1)

    @staticmethod
    def _read_tile(image, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """The tile at padded rows ``ys`` / cols ``xs``, reflected into the image."""
        rows, cols = _reflect(ys, image.shape[0]), _reflect(xs, image.shape[1])
        r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        window = np.asarray(image[r0:r1, c0:c1], dtype=np.float32)
        if len(rows) != r1 - r0 or np.any(np.diff(rows) != 1):
            window = window[rows - r0]
        if len(cols) != c1 - c0 or np.any(np.diff(cols) != 1):
            window = window[:, cols - c0]
        return window if window.ndim == 3 else window[..., None]

    def _run(self, batch: np.ndarray) -> np.ndarray:
        out = np.asarray(self._predict_batch(batch), dtype=np.float32)
        if out.ndim != 4 or out.shape[:3] != batch.shape[:3]:
            raise ValueError(
                f"the model mapped tiles of shape {batch.shape} to {out.shape}; expected "
                f"(N, h, w, K) with the same N, h, w as its input (a fully convolutional "
                f"model with 'same' padding)")
        return out

    def _padded(self, side: int, tile: int) -> int:
        """The padded extent of one axis: a stride multiple, and with ``buckets`` its
        shape bucket, except where the bucket would need a second tile."""
        m = self.multiple
        padded = -(-side // m) * m
        if not self.buckets:
            return padded
        bucket = shape_bucket(padded, m)
        return padded if padded <= tile < bucket else bucket

    def _layout(self, height: int, width: int, overlap: int):
        m = self.multiple
        padded = (self._padded(height, self.tile_size[0]), self._padded(width, self.tile_size[1]))
        tile = tuple(_axis_tile_size(padded[a], self.tile_size[a], overlap, m)
                     for a in range(2))
        return (tile, _axis_tiles(padded[0], tile[0], overlap, m),
                _axis_tiles(padded[1], tile[1], overlap, m))

    def _fits_one_tile(self, height: int, width: int) -> bool:
        m = self.multiple
        return all(-(-side // m) * m <= t for side, t in zip((height, width), self.tile_size))

    def tile_origins(self, shape) -> tuple[tuple[int, int], list[tuple[int, int]]]:
        """The tile shape and the (row, col) origin of every tile ``predict`` runs.

        Args:
            shape: the image's shape, ``(H, W)`` or ``(H, W, C)``.

        Returns:
            ``((tile_height, tile_width), [(row, col), ...])``; tiles past the
            image's bottom/right edge read reflected pixels.

        Raises:
            ValueError: the overlap is still unknown (a plain callable that
                has not predicted yet and was given no ``overlap``).

        Example:
            >>> TiledInferencer(np.tanh, tile_size=64, overlap=8).tile_origins((100, 50))
            ((58, 50), [(0, 0), (42, 0)])
        """
        height, width = int(shape[0]), int(shape[1])
        if not self._fits_one_tile(height, width):
            if self._overlap is None:
                raise ValueError("the overlap is not known yet: pass overlap= or predict once")
            self.check_tiles()
        tile, (y_starts, _), (x_starts, _) = self._layout(height, width, self._overlap or 0)
        return tile, [(y, x) for y in y_starts for x in x_starts]

    # -- prediction ---------------------------------------------------------
    def predict(self, image) -> np.ndarray:
        """Probabilities for one image of any size.

        Args:
            image: HxW or HxWxC array (NumPy, memmap, zarr, anything with
                ``.shape`` and slicing), already normalized as the model
                expects; cast to float32 tile by tile.

        Returns:
            float32 array ``(H, W, K)``.

        Raises:
            ValueError: the image is not 2-D/3-D or empty, its channels do not
                match the model (the message names the conversion), or the
                model changes the spatial size.

        Example:
            >>> probs = TiledInferencer(model, progress=False).predict(image)  # doctest: +SKIP
        """
        from nuclib.progress import progress_bar

        if not hasattr(image, "shape"):  # lists and other sequences
            image = np.asarray(image)
        height, width, channels = self._check_image(image)
        expected = _model_channels(self.model)
        if expected is not None and channels != expected:
            raise ValueError(
                f"image has {channels} channel(s) (shape {tuple(image.shape)}); the model "
                f"expects {expected}. Convert it first: Segmenter.preprocess(image) prepares "
                f"any image for its model, or nuclib.data.prepare_image(image, "
                f"channels={expected}) (grayscale or RGB, percentile-normalized)")
        if not self._fits_one_tile(height, width):
            self.resolve_overlap(channels)
            self._warn_approximate()
        # One tile needs no overlap: its receptive field is never measured.
        overlap = self._overlap or 0
        tile, (y_starts, y_own), (x_starts, x_own) = self._layout(height, width, overlap)
        tiles = [(i, j) for i in range(len(y_starts)) for j in range(len(x_starts))]

        out = weight_sum = None
        weights = {}
        with progress_bar(total=len(tiles), desc="tiles", unit="tile",
                          enabled=self.progress) as bar:
            for first in range(0, len(tiles), self.batch_size):
                chunk = tiles[first:first + self.batch_size]
                batch = np.stack([self._read_tile(image,
                                                  np.arange(y_starts[i], y_starts[i] + tile[0]),
                                                  np.arange(x_starts[j], x_starts[j] + tile[1]))
                                  for i, j in chunk])
                pred = self._run(batch)
                if out is None:
                    out = np.zeros((height, width, pred.shape[-1]), np.float32)
                    if self.blend != "crop":
                        weight_sum = np.zeros((height, width), np.float32)
                for (i, j), p in zip(chunk, pred):
                    y0, x0 = y_starts[i], x_starts[j]
                    if self.blend == "crop":
                        (a, b), (c, d) = y_own[i], x_own[j]
                        b, d = min(b, height), min(d, width)
                        out[a:b, c:d] = p[a - y0:b - y0, c - x0:d - x0]
                        continue
                    key = (i > 0, i < len(y_starts) - 1, j > 0, j < len(x_starts) - 1)
                    if key not in weights:
                        wy = _axis_weights(tile[0], overlap, self.blend, key[0], key[1])
                        wx = _axis_weights(tile[1], overlap, self.blend, key[2], key[3])
                        weights[key] = np.outer(wy, wx)
                    h, w = min(tile[0], height - y0), min(tile[1], width - x0)
                    wt = weights[key][:h, :w]
                    out[y0:y0 + h, x0:x0 + w] += p[:h, :w] * wt[..., None]
                    weight_sum[y0:y0 + h, x0:x0 + w] += wt
                bar.update(len(chunk))
        if weight_sum is not None:
            out /= weight_sum[..., None]
        return out

    def __call__(self, image) -> np.ndarray:
        """Same as ``predict``."""
        return self.predict(image)
