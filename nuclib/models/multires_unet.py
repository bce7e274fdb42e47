"""MultiResUNet (Ibtehaz & Rahman 2020): MultiRes blocks and Res paths on the skips."""

from __future__ import annotations

import keras
from keras import layers

from nuclib.models import blocks


def multires_unet_base(x, *, depth: int = 4, filters: int = 32, alpha: float = 1.67,
                       dropout=0.0, upsampling: str = "transpose", dilation: int = 1,
                       first_kernel_size: int | None = None, name: str = "multires_unet"):
    """Tensor-to-tensor MultiResUNet body: returns the last decoder feature map.

    Level ``l`` (0 = full resolution) uses ``multires_block(filters * 2**l)``;
    its skip goes through a ``res_path`` of length ``depth - l`` (4, 3, 2, 1
    for the paper's depth 4) with ``filters * 2**l`` channels. Dropout
    layers follow the blocks they belong to (``f"{name}_enc{l}_drop"``,
    ``f"{name}_bottleneck_drop"``), so an encoder stage's dropout reaches its
    skip as well as the next stage. Only ``dropout`` is checked here;
    ``multires_unet`` validates the rest.

    Args:
        x: ``(N, H, W, C)`` input tensor, H and W multiples of ``2**depth`` or None.
        depth, filters, alpha, dropout, upsampling, dilation, first_kernel_size:
            as in ``multires_unet``.
        name: prefix of the layer names.

    Returns:
        ``(N, H, W, sum(blocks.multires_split(filters, alpha)))`` tensor: the
        last decoder block, before the head.

    Raises:
        ValueError: bad ``dropout`` rates.

    Example:
        >>> x = keras.Input((None, None, 1))
        >>> multires_unet_base(x, depth=2, filters=8, name="m").shape[-1]
        12
    """
    rates = _multires_dropouts(dropout, depth)
    skips = []
    for level in range(depth):
        width = filters * 2**level
        x = blocks.multires_block(x, width, alpha=alpha, dilation_rate=dilation,
                                  first_kernel_size=first_kernel_size if level == 0 else None,
                                  name=f"{name}_enc{level}")
        if rates[level] > 0:
            x = layers.Dropout(rates[level], name=f"{name}_enc{level}_drop")(x)
        skips.append(blocks.res_path(x, width, depth - level, name=f"{name}_path{level}"))
        x = layers.MaxPooling2D(2, name=f"{name}_pool{level}")(x)
    x = blocks.multires_block(x, filters * 2**depth, alpha=alpha, dilation_rate=dilation,
                              name=f"{name}_bottleneck")
    if rates[depth] > 0:
        x = layers.Dropout(rates[depth], name=f"{name}_bottleneck_drop")(x)
    for level in reversed(range(depth)):
        width = filters * 2**level
        x = blocks.upsample(x, width, mode=upsampling, name=f"{name}_up{level}")
        x = layers.Concatenate(name=f"{name}_concat{level}")([x, skips[level]])
        x = blocks.multires_block(x, width, alpha=alpha, dilation_rate=dilation,
                                  name=f"{name}_dec{level}")
    return x


def _multires_dropouts(dropout, depth: int) -> list[float]:
    """Per-stage rates; a float is the bottleneck's alone, as MultiResUNet always had it."""
    rates = blocks.stage_dropouts(dropout, depth)
    if isinstance(dropout, (int, float)) and not isinstance(dropout, bool):
        # A float kept its earlier meaning (one Dropout after the bottleneck), so
        # recipes written before per-stage rates build the same network.
        rates = [0.0] * depth + [rates[depth]]
    return rates


def multires_unet(*, input_shape=(None, None, 1), head: str = "three_class", depth: int = 4,
                  filters: int = 32, alpha: float = 1.67, dropout=0.0,
                  upsampling: str = "transpose", dilation: int = 1,
                  first_kernel_size: int | None = None, logits: bool = False, n_rays: int = 32,
                  name: str = "multires_unet") -> keras.Model:
    """Build a MultiResUNet.

    Inputs must have sides that are multiples of ``2**depth`` (the tiled
    inferencer and ``nuclib.models.predict`` pad for you). With the defaults
    (depth 4, filters 32, alpha 1.67) this is the paper's 2-D network
    (about 7.3 M parameters). ``dilation``, ``first_kernel_size`` and a
    sequence of ``dropout`` rates are ``unet``'s options applied to the
    MultiRes blocks; at their defaults the network and its layer names are
    those of earlier versions.

    Args:
        input_shape: ``(H, W, C)``, channels-last, C in (1, 3); H and W may be None.
        head: one of ``nuclib.heads.HEADS``: ``"binary"`` (1 channel, sigmoid),
            ``"star"`` (probability + rays), ``"three_class_distance"`` or
            ``"three_class"`` (softmax over background / interior / boundary).
        depth: number of 2x down-sampling stages.
        filters: U-Net-equivalent filters of the first stage; doubled at every stage.
        alpha: MultiRes width multiplier (see ``blocks.multires_block``).
        dropout: a rate (float) after the bottleneck block only (0 = none,
            as in the paper; unlike ``unet``'s float, which also drops in the
            deepest encoder stage), or a sequence of ``depth + 1`` rates: one
            after each encoder block, shallowest first, then the bottleneck's
            (a stage with rate 0 gets no Dropout layer).
        upsampling: ``"transpose"`` (Conv2DTranspose, the paper's) or ``"bilinear"``.
        dilation: dilation rate of the chained 3x3 convolutions of every
            MultiRes block (encoder, bottleneck, decoder; not of the res paths,
            the up-sampling or the head).
        first_kernel_size: kernel size of the model's first chained
            convolution (the ``enc0_3x3`` layer, which sees the image; e.g. 7
            for a 7x7 stem); None keeps 3.
        logits: return pre-activation logits instead of probabilities.
        n_rays: rays of a ``head=\"star\"`` (>= 3; ignored by other heads).
        name: model name, also the prefix of every layer name.

    Returns:
        A ``keras.Model`` mapping ``(N, H, W, C)`` to ``(N, H, W, head channels)``.

    Raises:
        ValueError: bad ``input_shape``, ``head``, ``depth``, ``filters``, ``alpha``,
            ``upsampling``, ``dilation``, ``first_kernel_size`` or ``dropout``.

    Example:
        >>> model = multires_unet(input_shape=(None, None, 1), depth=2, filters=8)
        >>> model.output_shape
        (None, None, None, 3)
        >>> stem = multires_unet(depth=2, filters=8, first_kernel_size=7, dilation=2,
        ...                      dropout=[0.1, 0.0, 0.2])
        >>> stem.get_layer("multires_unet_enc0_3x3_conv").kernel_size
        (7, 7)
        >>> stem.get_layer("multires_unet_enc0_drop").rate
        0.1
    """
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    inputs = blocks.unet_input(input_shape, head=head, depth=depth, filters=filters,
                               upsampling=upsampling, name=name)
    blocks.check_stage_options(depth=depth, dilation=dilation,
                               first_kernel_size=first_kernel_size, dropout=dropout)
    x = multires_unet_base(inputs, depth=depth, filters=filters, alpha=alpha, dropout=dropout,
                           upsampling=upsampling, dilation=dilation,
                           first_kernel_size=first_kernel_size, name=name)
    outputs = blocks.output_head(x, head, logits=logits, n_rays=n_rays,
                                 name=f"{name}_head")
    return keras.Model(inputs, outputs, name=name)
