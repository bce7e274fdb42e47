"""Helpers that work on any nuclib (or other Keras functional) model."""

from __future__ import annotations

import math

import numpy as np


def _layer_stride(layer) -> tuple[float, float]:
    """How much a layer shrinks (>1) or grows (<1) the spatial size."""
    declared = getattr(layer, "spatial_stride", None)  # custom layers (swin_unet) say so
    if declared is not None:
        return float(declared[0]), float(declared[1])
    kind = type(layer).__name__
    if kind in ("UpSampling2D",):
        s = layer.size if isinstance(layer.size, (tuple, list)) else (layer.size, layer.size)
        return 1 / s[0], 1 / s[1]
    if kind in ("Conv2DTranspose",):
        return 1 / layer.strides[0], 1 / layer.strides[1]
    strides = getattr(layer, "strides", None)
    if strides is not None and len(strides) == 2:
        return float(strides[0]), float(strides[1])
    return 1.0, 1.0


def required_multiple(model) -> int:
    """The factor the input sides must be a multiple of (the model's total stride).

    Walks the layer graph and returns the largest cumulative down-sampling
    factor reached by any layer, e.g. ``2**depth`` for a U-Net, 32 for
    ``mobilenet_unet``. Layers are followed through the functional graph, so
    the model must be flat (no nested sub-models; nuclib's factories are).

    Custom layers may declare two attributes: ``spatial_stride``, a
    ``(rows, columns)`` pair of how much the layer shrinks (> 1) or grows
    (< 1) its input, and ``side_multiple``, the multiple the sides of the
    layer's own input must have (a window size). A layer with
    ``side_multiple = m`` reached at cumulative stride ``s`` makes the
    model's multiple a multiple of ``s * m``: ``swin_unet`` needs
    ``patch_size * 2**(stages - 1) * window_size``.

    Args:
        model: a functional ``keras.Model``.

    Returns:
        The required multiple of the input height and width.

    Example:
        >>> from nuclib.models import unet
        >>> required_multiple(unet(depth=3, filters=4))
        8
    """
    factor: dict[str, float] = {}
    best = 1.0
    needs = []  # side multiples of layers, in input pixels
    for layer in model.layers:
        inbound = []
        for node in getattr(layer, "_inbound_nodes", []):
            for t in node.input_tensors:
                history = getattr(t, "_keras_history", None)
                if history is not None:
                    inbound.append(factor.get(history[0].name, 1.0))
        base = max(inbound) if inbound else 1.0
        sy, sx = _layer_stride(layer)
        factor[layer.name] = base * max(sy, sx)
        best = max(best, factor[layer.name])
        side = getattr(layer, "side_multiple", None)
        if side:
            needs.append(int(round(base * side)))
    return math.lcm(int(round(best)), *needs)


def check_spatial_shape(shape, multiple: int) -> None:
    """Raise ``ValueError`` unless both spatial sides of ``shape`` are multiples of ``multiple``.

    Args:
        shape: ``(H, W)``, ``(H, W, C)`` or ``(N, H, W, C)``.
        multiple: the required multiple, e.g. ``required_multiple(model)``.

    Raises:
        ValueError: a side is not a multiple of ``multiple``.

    Example:
        >>> check_spatial_shape((1, 64, 96, 1), 32)
        >>> check_spatial_shape((60, 64), 32)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: image sides (60, 64) must be multiples of 32 for this model ...
    """
    hw = tuple(shape[1:3]) if len(shape) == 4 else tuple(shape[:2])
    bad = [s for s in hw if s % multiple]
    if bad:
        raise ValueError(f"image sides {hw} must be multiples of {multiple} for this model "
                         f"(its total down-sampling factor); pad the image, or use "
                         f"nuclib.postprocess.TiledInferencer which pads for you")


def predict(model, images, *, batch_size: int = 4) -> np.ndarray:
    """Run ``model`` on a batch after checking the sides fit the model's stride.

    Args:
        model: a Keras model.
        images: float array ``(N, H, W, C)`` or ``(H, W, C)``.
        batch_size: images per forward pass.

    Returns:
        Model output as a NumPy array, with the batch axis iff ``images`` had one.

    Raises:
        ValueError: wrong number of dimensions or sides not multiples of the stride.

    Example:
        >>> import numpy as np
        >>> from nuclib.models import unet
        >>> predict(unet(depth=2, filters=4), np.zeros((16, 16, 1))).shape
        (16, 16, 3)
    """
    arr = np.asarray(images, dtype=np.float32)
    single = arr.ndim == 3
    if arr.ndim not in (3, 4):
        raise ValueError(f"images have {arr.ndim} dimensions {arr.shape}; expected "
                         "(H, W, C) or (N, H, W, C)")
    batch = arr[None] if single else arr
    expected_c = model.input_shape[-1]
    if expected_c is not None and batch.shape[-1] != expected_c:
        raise ValueError(f"images have {batch.shape[-1]} channels; the model expects {expected_c}")
    check_spatial_shape(batch.shape, required_multiple(model))
    out = np.asarray(model.predict(batch, batch_size=batch_size, verbose=0))
    return out[0] if single else out


def _is_head_layer(layer, model) -> bool:
    # Factories name the head's layers f"{model name}_head_..." (blocks.output_head).
    return layer.name.startswith(f"{model.name}_head")


def copy_backbone(source, target) -> int:
    """Copy every weight but the head's from ``source`` into ``target`` (same architecture).

    For starting a model with a new head (say ``"star"``) from one trained
    with another (``"three_class"``): the encoder and decoder carry over,
    the head starts fresh. Layers are paired in order, so the two models
    may have different names (``dsb_3class_enc0_...`` and ``dsb_star_enc0_...``).

    Args:
        source: a trained nuclib factory model.
        target: a model from the same factory and arguments, except the head.

    Returns:
        The number of layers whose weights were copied.

    Raises:
        ValueError: the backbones differ (naming the first pair of layers that
            does not match).

    Example:
        >>> from nuclib.models import unet
        >>> copy_backbone(unet(depth=2, filters=4), unet(depth=2, filters=4, head="star"))
        22
    """
    ours = [layer for layer in source.layers if not _is_head_layer(layer, source)]
    theirs = [layer for layer in target.layers if not _is_head_layer(layer, target)]
    if len(ours) != len(theirs):
        raise ValueError(f"{source.name!r} has {len(ours)} layers before its head but "
                         f"{target.name!r} has {len(theirs)}; expected the same backbone")
    copied = 0
    for a, b in zip(ours, theirs):
        weights = a.get_weights()
        shapes = [w.shape for w in weights]
        expected = [tuple(w.shape) for w in b.weights]
        if type(a) is not type(b) or shapes != expected:
            raise ValueError(f"layer {a.name!r} ({type(a).__name__}, weights {shapes}) does not "
                             f"match {b.name!r} ({type(b).__name__}, weights {expected}); "
                             "expected the same factory and arguments except the head")
        if weights:
            b.set_weights(weights)
            copied += 1
    return copied
