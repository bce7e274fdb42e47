"""Small, named building blocks shared by the model factories.

Every block takes a tensor and a ``name`` prefix and returns a tensor; each
layer it creates is named ``f"{name}_..."`` so that a model built from blocks
has unique, readable layer names prefixed with the model's name.

Example:
    >>> import keras
    >>> from nuclib.models import blocks
    >>> x = keras.Input((None, None, 1))
    >>> y = blocks.conv_block(x, 16, name="demo_enc0")
    >>> tuple(y.shape)
    (None, None, None, 16)
"""

from __future__ import annotations

import keras
from keras import layers

HEADS = ("binary", "three_class")
UPSAMPLING_MODES = ("transpose", "bilinear")


def conv_bn_act(x, filters: int, *, kernel_size: int = 3, batch_norm: bool = True,
                activation: str = "relu", name: str):
    """Conv2D ('same' padding) → optional BatchNorm → activation.

    The convolution has no bias when batch norm follows (BN's beta replaces it).

    Example:
        >>> x = keras.Input((None, None, 3))
        >>> conv_bn_act(x, 8, name="m_c1").shape[-1]
        8
    """
    x = layers.Conv2D(filters, kernel_size, padding="same", use_bias=not batch_norm,
                      kernel_initializer="he_normal", name=f"{name}_conv")(x)
    if batch_norm:
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
    if activation:
        x = layers.Activation(activation, name=f"{name}_{activation}")(x)
    return x


def conv_block(x, filters: int, *, kernel_size: int = 3, batch_norm: bool = True,
               dropout: float = 0.0, activation: str = "relu", name: str):
    """Two ``conv_bn_act`` layers with optional dropout between them (U-Net stage).

    Example:
        >>> x = keras.Input((None, None, 1))
        >>> conv_block(x, 16, dropout=0.1, name="m_enc0").shape[-1]
        16
    """
    x = conv_bn_act(x, filters, kernel_size=kernel_size, batch_norm=batch_norm,
                    activation=activation, name=f"{name}_1")
    if dropout > 0:
        x = layers.Dropout(dropout, name=f"{name}_drop")(x)
    return conv_bn_act(x, filters, kernel_size=kernel_size, batch_norm=batch_norm,
                       activation=activation, name=f"{name}_2")


def upsample(x, filters: int, *, mode: str = "transpose", name: str):
    """Double the spatial size: a stride-2 transposed conv, or bilinear resize + 1x1 conv.

    Example:
        >>> x = keras.Input((8, 8, 32))
        >>> tuple(upsample(x, 16, mode="bilinear", name="m_up").shape)
        (None, 16, 16, 16)
    """
    if mode == "transpose":
        return layers.Conv2DTranspose(filters, 2, strides=2, padding="same",
                                      kernel_initializer="he_normal", name=f"{name}_tconv")(x)
    if mode == "bilinear":
        x = layers.UpSampling2D(2, interpolation="bilinear", name=f"{name}_resize")(x)
        return layers.Conv2D(filters, 1, padding="same", kernel_initializer="he_normal",
                             name=f"{name}_proj")(x)
    raise ValueError(f"unknown upsampling mode {mode!r}; expected one of {UPSAMPLING_MODES}")


def output_head(x, head: str, *, logits: bool = False, name: str):
    """1x1 convolution to the head's channels, then sigmoid / softmax unless ``logits``.

    ``"binary"`` gives 1 channel (foreground probability); ``"three_class"``
    gives 3 channels in the order (background, interior, boundary). The
    activation runs in float32 so mixed-precision models stay calibrated.

    Example:
        >>> x = keras.Input((None, None, 16))
        >>> output_head(x, "three_class", name="m").shape[-1]
        3
    """
    check_head(head)
    channels = 1 if head == "binary" else 3
    x = layers.Conv2D(channels, 1, padding="same", dtype="float32", name=f"{name}_logits")(x)
    if logits:
        return x
    activation = "sigmoid" if head == "binary" else "softmax"
    return layers.Activation(activation, dtype="float32", name=f"{name}_{activation}")(x)


def check_head(head: str) -> None:
    """Raise ``ValueError`` unless ``head`` is one of ``HEADS``."""
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; expected one of {HEADS}")


def check_input_shape(input_shape, *, divisor: int | None = None) -> tuple:
    """Validate a channels-last ``(H, W, C)`` input shape with C in (1, 3).

    ``H`` and ``W`` may be ``None`` (any size); when given they must be
    multiples of ``divisor`` (the model's total down-sampling factor).

    Returns:
        The shape as a tuple.

    Raises:
        ValueError: wrong length, unsupported channel count, or a side that
            is not a multiple of ``divisor``.

    Example:
        >>> check_input_shape((None, None, 1))
        (None, None, 1)
    """
    shape = tuple(input_shape)
    if len(shape) != 3:
        raise ValueError(f"input_shape {shape} has {len(shape)} dimensions; "
                         "expected (height, width, channels), e.g. (None, None, 1)")
    if shape[2] not in (1, 3):
        raise ValueError(f"input_shape {shape} has {shape[2]} channels; expected 1 or 3 "
                         "(channels-last)")
    for side in shape[:2]:
        if side is not None and (side <= 0 or (divisor and side % divisor)):
            raise ValueError(f"input_shape {shape}: side {side} is not a positive multiple of "
                             f"{divisor}; use None for any size or a multiple of {divisor}")
    return shape
