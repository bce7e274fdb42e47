"""What a Keras layer graph says about image sides: the stride and side multiple of a model.

A leaf module (it imports no other part of nuclib), so that the models, which
declare these properties, and post-processing, which tiles any callable, both
use it without knowing each other. ``nuclib.models.required_multiple`` is
the same function.

Custom layers tell the analyses here and in ``nuclib.postprocess.tiling``
what they do to space through three attributes (nuclib's Swin-UNet layers
set them):

- ``spatial_stride``: ``(rows, columns)``, how much the layer shrinks (> 1)
  or grows (< 1) its input;
- ``side_multiple``: the multiple the sides of the layer's own input must
  have (a window size);
- ``conv_footprint``: ``(kind, kernel_size, strides, padding)``, the
  standard layer (``"Conv2D"`` or ``"Conv2DTranspose"``) whose receptive
  field contains the layer's, for ``receptive_field_radius``.

Example:
    >>> import keras
    >>> inputs = keras.Input((None, None, 1))
    >>> x = keras.layers.Conv2D(4, 3, strides=2, padding="same")(inputs)
    >>> required_multiple(keras.Model(inputs, keras.layers.UpSampling2D(2)(x)))
    2
"""

from __future__ import annotations

import math


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
