"""MultiResUNet (Ibtehaz & Rahman 2020): MultiRes blocks and Res paths on the skips."""

from __future__ import annotations

import keras
from keras import layers

from nuclib.models import blocks


def multires_unet_base(x, *, depth: int = 4, filters: int = 32, alpha: float = 1.67,
                       dropout: float = 0.0, upsampling: str = "transpose",
                       name: str = "multires_unet"):
    """Tensor-to-tensor MultiResUNet body: returns the last decoder feature map.

    Level ``l`` (0 = full resolution) uses ``multires_block(filters * 2**l)``;
    its skip goes through a ``res_path`` of length ``depth - l`` (4, 3, 2, 1
    for the paper's depth 4) with ``filters * 2**l`` channels.

    Args:
        x: ``(N, H, W, C)`` input tensor, H and W multiples of ``2**depth`` or None.
        depth, filters, alpha, dropout, upsampling: as in ``multires_unet``.
        name: prefix of the layer names.

    Returns:
        ``(N, H, W, sum(blocks.multires_split(filters, alpha)))`` tensor: the
        last decoder block, before the head.

    Example:
        >>> x = keras.Input((None, None, 1))
        >>> multires_unet_base(x, depth=2, filters=8, name="m").shape[-1]
        12
    """
    skips = []
    for level in range(depth):
        width = filters * 2**level
        x = blocks.multires_block(x, width, alpha=alpha, name=f"{name}_enc{level}")
        skips.append(blocks.res_path(x, width, depth - level, name=f"{name}_path{level}"))
        x = layers.MaxPooling2D(2, name=f"{name}_pool{level}")(x)
    x = blocks.multires_block(x, filters * 2**depth, alpha=alpha, name=f"{name}_bottleneck")
    if dropout > 0:
        x = layers.Dropout(dropout, name=f"{name}_bottleneck_drop")(x)
    for level in reversed(range(depth)):
        width = filters * 2**level
        x = blocks.upsample(x, width, mode=upsampling, name=f"{name}_up{level}")
        x = layers.Concatenate(name=f"{name}_concat{level}")([x, skips[level]])
        x = blocks.multires_block(x, width, alpha=alpha, name=f"{name}_dec{level}")
    return x


def multires_unet(*, input_shape=(None, None, 1), head: str = "three_class", depth: int = 4,
                  filters: int = 32, alpha: float = 1.67, dropout: float = 0.0,
                  upsampling: str = "transpose", logits: bool = False, n_rays: int = 32,
                  name: str = "multires_unet") -> keras.Model:
    """Build a MultiResUNet.

    Inputs must have sides that are multiples of ``2**depth`` (the tiled
    inferencer and ``nuclib.models.predict`` pad for you). With the defaults
    (depth 4, filters 32, alpha 1.67) this is the paper's 2-D network
    (about 7.3 M parameters).

    Args:
        input_shape: ``(H, W, C)``, channels-last, C in (1, 3); H and W may be None.
        head: ``"binary"`` (1 channel, sigmoid), ``"star"`` (probability + rays) or ``"three_class"``
            (softmax over background / interior / boundary).
        depth: number of 2x down-sampling stages.
        filters: U-Net-equivalent filters of the first stage; doubled at every stage.
        alpha: MultiRes width multiplier (see ``blocks.multires_block``).
        dropout: dropout rate after the bottleneck block (0 = none, as in the paper).
        upsampling: ``"transpose"`` (Conv2DTranspose, the paper's) or ``"bilinear"``.
        logits: return pre-activation logits instead of probabilities.
        n_rays: rays of a ``head=\"star\"`` (>= 3; ignored by other heads).
        name: model name, also the prefix of every layer name.

    Returns:
        A ``keras.Model`` mapping ``(N, H, W, C)`` to ``(N, H, W, 1 or 3)``.

    Raises:
        ValueError: bad ``input_shape``, ``head``, ``depth``, ``filters``, ``alpha``
            or ``upsampling``.

    Example:
        >>> model = multires_unet(input_shape=(None, None, 1), depth=2, filters=8)
        >>> model.output_shape
        (None, None, None, 3)
    """
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    inputs = blocks.unet_input(input_shape, head=head, depth=depth, filters=filters,
                               upsampling=upsampling, name=name)
    x = multires_unet_base(inputs, depth=depth, filters=filters, alpha=alpha, dropout=dropout,
                           upsampling=upsampling, name=name)
    outputs = blocks.output_head(x, head, logits=logits, n_rays=n_rays,
                                 name=f"{name}_head")
    return keras.Model(inputs, outputs, name=name)
