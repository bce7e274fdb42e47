"""Classic U-Net (Ronneberger et al. 2015), as used by unet4nuclei."""

from __future__ import annotations

import keras
from keras import layers

from nuclib.models import blocks


def unet_encoder(x, *, depth: int, filters: int, kernel_size: int = 3, batch_norm: bool = True,
                 dropout=0.0, dilation: int = 1, first_kernel_size: int | None = None,
                 name: str):
    """The U-Net's encoder and bottleneck (shared by ``unet_base`` and ``attention_unet_base``).

    ``depth`` stages of ``blocks.conv_block`` (``filters * 2**level``
    channels) each followed by 2x max-pooling, then the bottleneck block;
    ``dropout`` as in ``unet`` (``blocks.stage_dropouts``).

    Args:
        x: ``(N, H, W, C)`` input tensor; H and W multiples of ``2**depth``.
        depth, filters, kernel_size, batch_norm, dropout, dilation,
            first_kernel_size: as in ``unet``.
        name: prefix of every layer name (``f"{name}_enc0_..."``, ``f"{name}_bottleneck_..."``).

    Returns:
        ``(bottleneck, skips)``: the bottleneck's features and the encoder
        stages' outputs before pooling, finest first.

    Raises:
        ValueError: bad ``dropout`` rates.

    Example:
        >>> x = keras.Input((None, None, 1))
        >>> bottom, skips = unet_encoder(x, depth=2, filters=8, name="demo")
        >>> bottom.shape[-1], [s.shape[-1] for s in skips]
        (32, [8, 16])
    """
    rates = blocks.stage_dropouts(dropout, depth)
    conv = dict(kernel_size=kernel_size, batch_norm=batch_norm, dilation_rate=dilation)
    skips = []
    for level in range(depth):
        x = blocks.conv_block(x, filters * 2**level, dropout=rates[level],
                              first_kernel_size=first_kernel_size if level == 0 else None,
                              name=f"{name}_enc{level}", **conv)
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"{name}_pool{level}")(x)
    x = blocks.conv_block(x, filters * 2**depth, dropout=rates[depth],
                          name=f"{name}_bottleneck", **conv)
    return x, skips


def unet_base(x, *, depth: int = 4, filters: int = 32, kernel_size: int = 3,
              batch_norm: bool = True, dropout=0.0, upsampling: str = "transpose",
              dilation: int = 1, first_kernel_size: int | None = None, name: str = "unet"):
    """Tensor-to-tensor U-Net body: returns the last decoder feature map.

    A float ``dropout`` is applied in the two deepest stages (the deepest
    encoder stage and the bottleneck), where the U-Net paper put it; a
    sequence gives each encoder stage and the bottleneck its own rate
    (``blocks.stage_dropouts``). Only ``dropout`` is checked here; ``unet``
    validates the rest.

    Args:
        x: ``(N, H, W, C)`` input tensor; H and W multiples of ``2**depth``.
        depth: number of 2x down-sampling stages.
        filters: filters of the first stage; doubled at every stage.
        kernel_size: convolution kernel size.
        batch_norm: batch normalization after each convolution.
        dropout: a rate for the two deepest stages, or ``depth + 1`` rates
            (encoder stages shallowest first, then the bottleneck).
        upsampling: ``"transpose"`` or ``"bilinear"``.
        dilation: dilation rate of every convolution of the conv blocks.
        first_kernel_size: kernel of the model's first convolution (None:
            ``kernel_size``).
        name: prefix of every layer name.

    Returns:
        ``(N, H, W, filters)`` tensor: the last decoder stage's features.

    Raises:
        ValueError: an unknown ``upsampling`` mode (from ``blocks.upsample``) or
            bad ``dropout`` rates (from ``blocks.stage_dropouts``).

    Example:
        >>> x = keras.Input((None, None, 1))
        >>> tuple(unet_base(x, depth=2, filters=8, name="demo").shape)
        (None, None, None, 8)
    """
    x, skips = unet_encoder(x, depth=depth, filters=filters, kernel_size=kernel_size,
                            batch_norm=batch_norm, dropout=dropout, dilation=dilation,
                            first_kernel_size=first_kernel_size, name=name)
    conv = dict(kernel_size=kernel_size, batch_norm=batch_norm, dilation_rate=dilation)
    for level in reversed(range(depth)):
        x = blocks.upsample(x, filters * 2**level, mode=upsampling, name=f"{name}_up{level}")
        x = layers.Concatenate(name=f"{name}_concat{level}")([x, skips[level]])
        x = blocks.conv_block(x, filters * 2**level, name=f"{name}_dec{level}", **conv)
    return x


def unet(*, input_shape=(None, None, 1), head: str = "three_class", depth: int = 4,
         filters: int = 32, kernel_size: int = 3, batch_norm: bool = True,
         dropout=0.0, upsampling: str = "transpose", dilation: int = 1,
         first_kernel_size: int | None = None, logits: bool = False, n_rays: int = 32,
         name: str = "unet") -> keras.Model:
    """Build a classic U-Net.

    Inputs must have sides that are multiples of ``2**depth`` (the tiled
    inferencer and ``nuclib.models.predict`` pad for you). ``dilation``,
    ``first_kernel_size`` and a per-stage ``dropout`` change no layer names,
    so models built with the defaults keep the layout of earlier versions.

    Args:
        input_shape: ``(H, W, C)``, channels-last, C in (1, 3); H and W may be None.
        head: one of ``nuclib.heads.HEADS``: ``"binary"`` (1 channel, sigmoid),
            ``"star"`` (probability + rays), ``"three_class_distance"`` or
            ``"three_class"`` (softmax over background / interior / boundary).
        depth: number of 2x down-sampling stages.
        filters: filters of the first stage; doubled at every stage.
        kernel_size: convolution kernel size.
        batch_norm: batch normalization after each convolution.
        dropout: a rate (float) for the deepest encoder stage and the
            bottleneck, or a sequence of ``depth + 1`` rates: one per encoder
            stage, shallowest first, then the bottleneck (a stage with rate 0
            gets no Dropout layer).
        upsampling: ``"transpose"`` (Conv2DTranspose) or ``"bilinear"``.
        dilation: dilation rate of every convolution of the encoder,
            bottleneck and decoder blocks (not of the up-sampling or the head):
            a 3x3 convolution with dilation ``d`` sees ``2d + 1`` pixels.
        first_kernel_size: kernel size of the very first convolution (e.g. 7
            for a 7x7 stem); None uses ``kernel_size``.
        logits: return pre-activation logits instead of probabilities.
        n_rays: rays of a ``head=\"star\"`` (>= 3; ignored by other heads).
        name: model name, also the prefix of every layer name.

    Returns:
        A ``keras.Model`` mapping ``(N, H, W, C)`` to ``(N, H, W, head channels)``.

    Raises:
        ValueError: bad ``input_shape``, ``head``, ``depth``, ``filters``,
            ``upsampling``, ``dilation``, ``first_kernel_size`` or ``dropout``.

    Example:
        >>> model = unet(input_shape=(None, None, 1), head="three_class", depth=2, filters=8)
        >>> model.output_shape
        (None, None, None, 3)
        >>> stem = unet(depth=2, filters=8, first_kernel_size=7, dilation=2,
        ...             dropout=[0.0, 0.1, 0.2])
        >>> stem.get_layer("unet_enc0_1_conv").kernel_size
        (7, 7)
    """
    inputs = blocks.unet_input(input_shape, head=head, depth=depth, filters=filters,
                               upsampling=upsampling, name=name)
    blocks.check_stage_options(depth=depth, dilation=dilation,
                               first_kernel_size=first_kernel_size, dropout=dropout)
    x = unet_base(inputs, depth=depth, filters=filters, kernel_size=kernel_size,
                  batch_norm=batch_norm, dropout=dropout, upsampling=upsampling,
                  dilation=dilation, first_kernel_size=first_kernel_size, name=name)
    outputs = blocks.output_head(x, head, logits=logits, n_rays=n_rays,
                                 name=f"{name}_head")
    return keras.Model(inputs, outputs, name=name)
