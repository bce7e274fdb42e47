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

from nuclib.heads import HEADS, check_head, head_channels  # noqa: F401  (re-exported)

UPSAMPLING_MODES = ("transpose", "bilinear")


def conv_bn_act(x, filters: int, *, kernel_size: int = 3, batch_norm: bool = True,
                activation: str = "relu", strides: int = 1, dilation_rate: int = 1,
                name: str):
    """Conv2D ('same' padding) → optional BatchNorm → activation.

    The convolution has no bias when batch norm follows (BN's beta replaces it).

    Args:
        x: ``(N, H, W, C)`` tensor.
        filters: output channels.
        kernel_size: convolution kernel size.
        batch_norm: add BatchNormalization after the convolution.
        activation: Keras activation name; ``None`` or ``""`` for none.
        strides: convolution stride (2 halves the sides).
        dilation_rate: dilation (atrous rate) of the convolution.
        name: prefix of the layer names.

    Returns:
        ``(N, H / strides, W / strides, filters)`` tensor.

    Example:
        >>> x = keras.Input((None, None, 3))
        >>> conv_bn_act(x, 8, name="m_c1").shape[-1]
        8
    """
    x = layers.Conv2D(filters, kernel_size, strides=strides, padding="same",
                      dilation_rate=dilation_rate, use_bias=not batch_norm,
                      kernel_initializer="he_normal", name=f"{name}_conv")(x)
    if batch_norm:
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
    if activation:
        x = layers.Activation(activation, name=f"{name}_{activation}")(x)
    return x


def conv_block(x, filters: int, *, kernel_size: int = 3, batch_norm: bool = True,
               dropout: float = 0.0, activation: str = "relu", dilation_rate: int = 1,
               first_kernel_size: int | None = None, name: str):
    """Two ``conv_bn_act`` layers with optional dropout between them (U-Net stage).

    Args:
        x: ``(N, H, W, C)`` tensor.
        filters: output channels of both convolutions.
        kernel_size: convolution kernel size.
        batch_norm: batch normalization after each convolution.
        dropout: dropout rate between the two layers; 0 adds no Dropout layer.
        activation: Keras activation name.
        dilation_rate: dilation rate of both convolutions.
        first_kernel_size: kernel size of the first convolution (None: ``kernel_size``).
        name: prefix of the layer names.

    Returns:
        ``(N, H, W, filters)`` tensor.

    Example:
        >>> x = keras.Input((None, None, 1))
        >>> conv_block(x, 16, dropout=0.1, name="m_enc0").shape[-1]
        16
    """
    first = kernel_size if first_kernel_size is None else first_kernel_size
    x = conv_bn_act(x, filters, kernel_size=first, batch_norm=batch_norm,
                    activation=activation, dilation_rate=dilation_rate, name=f"{name}_1")
    if dropout > 0:
        x = layers.Dropout(dropout, name=f"{name}_drop")(x)
    return conv_bn_act(x, filters, kernel_size=kernel_size, batch_norm=batch_norm,
                       activation=activation, dilation_rate=dilation_rate, name=f"{name}_2")


def upsample(x, filters: int, *, mode: str = "transpose", name: str):
    """Double the spatial size: a stride-2 transposed conv, or bilinear resize + 1x1 conv.

    Args:
        x: ``(N, H, W, C)`` tensor.
        filters: output channels.
        mode: ``"transpose"`` (2x2 Conv2DTranspose, stride 2) or
            ``"bilinear"`` (UpSampling2D then a 1x1 Conv2D).
        name: prefix of the layer names.

    Returns:
        ``(N, 2H, 2W, filters)`` tensor.

    Raises:
        ValueError: an unknown ``mode``.

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


def output_head(x, head: str, *, logits: bool = False, n_rays: int = 32, name: str):
    """The output layers of a head; activations run in float32.

    Channel order, everywhere in nuclib:

    - ``"binary"``: 1 channel, foreground probability (sigmoid).
    - ``"three_class"``: 3 channels (background, interior, boundary), softmax.
    - ``"star"``: ``1 + n_rays`` channels: the object probability (sigmoid;
      high near a nucleus' centre), then the distance in pixels from the
      pixel to its nucleus' edge along each ray ``k`` at angle
      ``2πk / n_rays`` (rows grow with ``sin``, as in StarDist). A 3x3
      convolution of 64 features comes first, as StarDist puts 128 after
      its U-Net: 32 distances need more than the last decoder stage's
      width. Distances are linear (post-processing clips them at 0).
    - ``"three_class_distance"``: 4 channels: the three-class softmax, then
      each pixel's distance to its nucleus' edge divided by the largest in
      that nucleus (sigmoid; 1 at centres), which seeds the watershed.

    Args:
        x: ``(N, H, W, C)`` tensor.
        head: one of ``HEADS``.
        logits: return pre-activation values (for ``"star"``: the probability
            channel's logit, distances being linear either way; for
            ``"three_class_distance"``: class logits and the distance's logit).
        n_rays: rays of the star head (>= 3).
        name: prefix of the layer names.

    Returns:
        ``(N, H, W, head_channels(head, n_rays))`` float32 tensor.

    Raises:
        ValueError: an unknown ``head`` or ``n_rays < 3``.

    Example:
        >>> x = keras.Input((None, None, 16))
        >>> output_head(x, "three_class", name="m").shape[-1]
        3
        >>> output_head(x, "star", n_rays=8, name="s").shape[-1]
        9
    """
    check_head(head, n_rays)
    if head == "star":
        x = layers.Conv2D(64, 3, padding="same", activation="relu",
                          kernel_initializer="he_normal", name=f"{name}_features")(x)
        prob = layers.Conv2D(1, 1, dtype="float32", name=f"{name}_prob_logits")(x)
        if not logits:
            prob = layers.Activation("sigmoid", dtype="float32", name=f"{name}_sigmoid")(prob)
        dist = layers.Conv2D(int(n_rays), 1, dtype="float32", name=f"{name}_distances")(x)
        return layers.Concatenate(dtype="float32", name=f"{name}_star")([prob, dist])
    if head == "three_class_distance":
        classes = layers.Conv2D(3, 1, dtype="float32", name=f"{name}_logits")(x)
        distance = layers.Conv2D(1, 1, dtype="float32", name=f"{name}_distance_logits")(x)
        if not logits:
            classes = layers.Activation("softmax", dtype="float32",
                                        name=f"{name}_softmax")(classes)
            distance = layers.Activation("sigmoid", dtype="float32",
                                         name=f"{name}_sigmoid")(distance)
        return layers.Concatenate(dtype="float32", name=f"{name}_joined")([classes, distance])
    channels = 1 if head == "binary" else 3
    x = layers.Conv2D(channels, 1, padding="same", dtype="float32", name=f"{name}_logits")(x)
    if logits:
        return x
    activation = "sigmoid" if head == "binary" else "softmax"
    return layers.Activation(activation, dtype="float32", name=f"{name}_{activation}")(x)


def check_input_shape(input_shape, *, divisor: int | None = None) -> tuple:
    """Validate a channels-last ``(H, W, C)`` input shape with C in (1, 3).

    ``H`` and ``W`` may be ``None`` (any size); when given they must be
    multiples of ``divisor`` (the model's total down-sampling factor).

    Args:
        input_shape: sequence ``(H, W, C)``.
        divisor: required multiple of H and W; ``None`` or 0 only requires
            them to be positive.

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


def pix2pix_upsample(x, filters: int, *, size: int = 3, dropout: float = 0.0, name: str):
    """The pix2pix decoder block: stride-2 Conv2DTranspose → BatchNorm → Dropout → ReLU.

    Written after ``tensorflow_examples.models.pix2pix.upsample`` (not on PyPI):
    the transposed convolution has no bias (batch norm follows) and a
    N(0, 0.02) kernel initializer, as in the pix2pix paper.

    Args:
        x: ``(N, H, W, C)`` tensor.
        filters: output channels.
        size: kernel size of the transposed convolution.
        dropout: dropout rate; 0 adds no Dropout layer.
        name: prefix of the layer names.

    Returns:
        ``(N, 2H, 2W, filters)`` tensor.

    Example:
        >>> x = keras.Input((8, 8, 32))
        >>> tuple(pix2pix_upsample(x, 16, dropout=0.5, name="m_up").shape)
        (None, 16, 16, 16)
    """
    init = keras.initializers.RandomNormal(0.0, 0.02)
    x = layers.Conv2DTranspose(filters, size, strides=2, padding="same", use_bias=False,
                               kernel_initializer=init, name=f"{name}_tconv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    if dropout > 0:
        x = layers.Dropout(dropout, name=f"{name}_drop")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def attention_gate(skip, gating, inter_filters: int, *, gating_stride: int = 2, name: str):
    """Additive attention gate (Oktay et al. 2018): re-weights ``skip`` pixel by pixel.

    ``alpha = sigmoid(psi(relu(theta(skip) + up(phi(gating)))))`` with 1x1
    convolutions ``theta``, ``phi`` (to ``inter_filters`` channels) and ``psi``
    (to 1 channel); the gate returns ``skip * alpha`` (alpha broadcast over
    channels). The gating signal comes from the coarser decoder level, so its
    projection is bilinearly up-sampled by ``gating_stride`` to the skip's size
    (1x1 convolution and bilinear up-sampling commute, so projecting first is
    the cheap order).

    Args:
        skip: ``(N, H, W, C)`` encoder features.
        gating: ``(N, H / s, W / s, G)`` decoder features, ``s = gating_stride``.
        inter_filters: channels of the intermediate (attention) space.
        gating_stride: how much coarser ``gating`` is than ``skip`` (1 = same size).
        name: prefix of the layer names.

    Returns:
        ``(N, H, W, C)`` tensor: the gated skip.

    Example:
        >>> skip = keras.Input((16, 16, 8))
        >>> gating = keras.Input((8, 8, 16))
        >>> tuple(attention_gate(skip, gating, 4, name="m_att").shape)
        (None, 16, 16, 8)
    """
    theta = layers.Conv2D(inter_filters, 1, use_bias=False, name=f"{name}_theta")(skip)
    phi = layers.Conv2D(inter_filters, 1, name=f"{name}_phi")(gating)
    if gating_stride != 1:
        phi = layers.UpSampling2D(gating_stride, interpolation="bilinear",
                                  name=f"{name}_phi_up")(phi)
    act = layers.Add(name=f"{name}_add")([theta, phi])
    act = layers.Activation("relu", name=f"{name}_relu")(act)
    psi = layers.Conv2D(1, 1, name=f"{name}_psi")(act)
    alpha = layers.Activation("sigmoid", name=f"{name}_alpha")(psi)
    return layers.Multiply(name=f"{name}_gate")([skip, alpha])


def multires_split(filters: int, alpha: float = 1.67) -> tuple[int, int, int]:
    """Channels of the three chained 3x3 convolutions of a MultiRes block.

    ``W = alpha * filters`` split as W/6, W/3, W/2 (the original code's
    ``int(W*0.167)``, ``int(W*0.333)``, ``int(W*0.5)``), each at least 1.

    Args:
        filters: the U-Net-equivalent filter count ``U``.
        alpha: width multiplier.

    Returns:
        The three channel counts, smallest first.

    Example:
        >>> multires_split(32)
        (8, 17, 26)
    """
    width = alpha * filters
    return tuple(max(1, int(width * f)) for f in (0.167, 0.333, 0.5))


def multires_block(x, filters: int, *, alpha: float = 1.67, dilation_rate: int = 1,
                   first_kernel_size: int | None = None, name: str):
    """MultiRes block (Ibtehaz & Rahman 2020): a cheap stand-in for 3x3/5x5/7x7 convs.

    Three chained 3x3 conv-BN-ReLU layers (receptive fields 3, 5, 7) with
    ``multires_split(filters, alpha)`` channels are concatenated, batch
    normalized, added to a 1x1 conv-BN shortcut, then ReLU and BatchNorm.

    Args:
        x: ``(N, H, W, C)`` tensor.
        filters: the U-Net-equivalent filter count ``U``.
        alpha: width multiplier ``W = alpha * U`` (1.67 in the paper).
        dilation_rate: dilation of the three chained convolutions (not of the
            1x1 shortcut, which a dilation would not change).
        first_kernel_size: kernel size of the first of the chained
            convolutions (None: 3); the layer keeps its name ``f"{name}_3x3"``.
        name: prefix of the layer names.

    Returns:
        ``(N, H, W, sum(multires_split(filters, alpha)))`` tensor.

    Example:
        >>> x = keras.Input((None, None, 1))
        >>> multires_block(x, 32, name="m_mres0").shape[-1]
        51
        >>> multires_block(x, 32, dilation_rate=2, first_kernel_size=7, name="m_wide").shape[-1]
        51
    """
    c3, c5, c7 = multires_split(filters, alpha)
    shortcut = conv_bn_act(x, c3 + c5 + c7, kernel_size=1, activation=None,
                           name=f"{name}_shortcut")
    first = 3 if first_kernel_size is None else first_kernel_size
    a = conv_bn_act(x, c3, kernel_size=first, dilation_rate=dilation_rate, name=f"{name}_3x3")
    b = conv_bn_act(a, c5, dilation_rate=dilation_rate, name=f"{name}_5x5")
    c = conv_bn_act(b, c7, dilation_rate=dilation_rate, name=f"{name}_7x7")
    out = layers.Concatenate(name=f"{name}_concat")([a, b, c])
    out = layers.BatchNormalization(name=f"{name}_concat_bn")(out)
    out = layers.Add(name=f"{name}_add")([shortcut, out])
    out = layers.Activation("relu", name=f"{name}_relu")(out)
    return layers.BatchNormalization(name=f"{name}_bn")(out)


def res_path(x, filters: int, length: int, *, name: str):
    """Res path (Ibtehaz & Rahman 2020): ``length`` residual 3x3 units on a skip connection.

    Each unit is ``BN(ReLU(conv3x3-BN-ReLU(x) + conv1x1-BN(x)))``; the chain
    narrows the semantic gap between encoder and decoder features, so shallow
    skips get longer paths.

    Args:
        x: ``(N, H, W, C)`` tensor.
        filters: channels of every unit.
        length: number of residual units (>= 1).
        name: prefix of the layer names.

    Returns:
        ``(N, H, W, filters)`` tensor.

    Raises:
        ValueError: ``length < 1``.

    Example:
        >>> x = keras.Input((None, None, 51))
        >>> res_path(x, 32, 4, name="m_path0").shape[-1]
        32
    """
    if length < 1:
        raise ValueError(f"res_path length must be >= 1, got {length}")
    for i in range(length):
        shortcut = conv_bn_act(x, filters, kernel_size=1, activation=None,
                               name=f"{name}_{i}_shortcut")
        out = conv_bn_act(x, filters, name=f"{name}_{i}_conv")
        out = layers.Add(name=f"{name}_{i}_add")([shortcut, out])
        out = layers.Activation("relu", name=f"{name}_{i}_relu")(out)
        x = layers.BatchNormalization(name=f"{name}_{i}_bn")(out)
    return x


def unet_input(input_shape, *, head: str, depth: int, filters: int, upsampling: str, name: str):
    """Validate the arguments shared by the U-Net-style factories; return their ``keras.Input``.

    Args:
        input_shape: ``(H, W, C)``; sides, if given, multiples of ``2**depth``.
        head: ``"binary"`` or ``"three_class"``.
        depth: number of 2x down-sampling stages (>= 1).
        filters: filters of the first stage (>= 1).
        upsampling: one of ``UPSAMPLING_MODES``.
        name: model name; the input layer is ``f"{name}_input"``.

    Returns:
        The model's ``keras.Input`` tensor.

    Raises:
        ValueError: any argument out of range, naming it and what was expected.

    Example:
        >>> x = unet_input((None, None, 1), head="binary", depth=2, filters=8,
        ...                upsampling="transpose", name="m")
        >>> tuple(x.shape)
        (None, None, None, 1)
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    if filters < 1:
        raise ValueError(f"filters must be >= 1, got {filters}")
    if upsampling not in UPSAMPLING_MODES:
        raise ValueError(f"unknown upsampling {upsampling!r}; expected one of "
                         f"{UPSAMPLING_MODES}")
    check_head(head)
    shape = check_input_shape(input_shape, divisor=2**depth)
    return keras.Input(shape, name=f"{name}_input")


def stage_dropouts(dropout, depth: int) -> list[float]:
    """Dropout rates of the ``depth`` encoder stages and the bottleneck, shallowest first.

    A float keeps the U-Net paper's placement: the rate in the deepest
    encoder stage and the bottleneck, 0 elsewhere. A sequence gives one rate
    per stage: ``depth`` encoder stages, then the bottleneck.

    Args:
        dropout: a rate in [0, 1), or a sequence of ``depth + 1`` such rates.
        depth: number of encoder stages (down-sampling steps).

    Returns:
        ``depth + 1`` rates: encoder stage 0 (full resolution) first, the bottleneck last.

    Raises:
        ValueError: a rate outside [0, 1), or a sequence of the wrong length.

    Example:
        >>> stage_dropouts(0.3, 3)
        [0.0, 0.0, 0.3, 0.3]
        >>> stage_dropouts([0.0, 0.1, 0.2, 0.3], 3)
        [0.0, 0.1, 0.2, 0.3]
    """
    if isinstance(dropout, (int, float)) and not isinstance(dropout, bool):
        rates = [0.0] * (depth - 1) + [float(dropout)] * 2 if depth >= 1 else [float(dropout)]
    else:
        try:
            rates = [float(r) for r in dropout]
        except (TypeError, ValueError):
            raise ValueError(f"dropout must be a rate or a sequence of {depth + 1} rates, got "
                             f"{dropout!r}") from None
        if len(rates) != depth + 1:
            raise ValueError(f"dropout has {len(rates)} rates {tuple(rates)}; expected "
                             f"{depth + 1}: one per encoder stage ({depth}) and the bottleneck")
    bad = [r for r in rates if not 0.0 <= r < 1.0]
    if bad:
        raise ValueError(f"dropout rates must be in [0, 1), got {dropout!r}")
    return rates


def check_positive_int(value, what: str, *, allow_none: bool = False) -> None:
    """Raise ``ValueError`` unless ``value`` is a whole number >= 1 (or None if allowed).

    Args:
        value: the value to check (``True`` is not a number here).
        what: the argument's name, for the message.
        allow_none: accept None too.

    Raises:
        ValueError: naming ``what``, the value and what was expected.

    Example:
        >>> check_positive_int(3, "dilation")
        >>> check_positive_int(0, "dilation")
        Traceback (most recent call last):
        ...
        ValueError: dilation must be a whole number >= 1, got 0
    """
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a whole number >= 1"
                         f"{' or None' if allow_none else ''}, got {value!r}")


def check_stage_options(*, depth: int, dilation, first_kernel_size, dropout) -> list[float]:
    """Check the U-Net-family options ``dilation``, ``first_kernel_size`` and ``dropout``.

    ``unet``, ``attention_unet`` and ``multires_unet`` share these arguments
    with the same meaning; this is their one check.

    Args:
        depth: number of encoder stages.
        dilation: a whole number >= 1.
        first_kernel_size: a whole number >= 1, or None.
        dropout: a rate or ``depth + 1`` rates (see ``stage_dropouts``).

    Returns:
        ``stage_dropouts(dropout, depth)``.

    Raises:
        ValueError: a bad value, naming the argument and what was expected.

    Example:
        >>> check_stage_options(depth=2, dilation=2, first_kernel_size=7, dropout=0.1)
        [0.0, 0.1, 0.1]
    """
    check_positive_int(dilation, "dilation")
    check_positive_int(first_kernel_size, "first_kernel_size", allow_none=True)
    return stage_dropouts(dropout, depth)


def _url_fetch_failure(err: BaseException) -> bool:
    """Whether ``err`` is what ``keras.utils.get_file`` raises when it cannot download."""
    import urllib.error

    return (isinstance(err, (urllib.error.URLError, ConnectionError, TimeoutError))
            or str(err).startswith("URL fetch failure"))


def application_backbone(application: str, x, **kwargs):
    """Build ``keras.applications.<application>(include_top=False)`` on ``x``'s graph.

    ``weights`` (in ``kwargs``) is None (random initialization), ``"imagenet"``
    (Keras downloads the file once into its cache, ``$KERAS_HOME/models``, and
    reads it from there afterwards) or the path of a weights file: a Keras 3
    ``.weights.h5`` file or a legacy Keras 2 ``.h5`` file such as the
    ImageNet file itself.

    Args:
        application: a ``keras.applications`` constructor name, e.g. ``"MobileNetV2"``.
        x: the Keras tensor the backbone starts from (``input_tensor``).
        **kwargs: further arguments of the constructor, ``weights`` among them.

    Returns:
        The backbone ``keras.Model``; its layers run on ``x`` (see ``adopt_layers``).

    Raises:
        FileNotFoundError: ``weights`` is a path that does not exist.
        ValueError: the weights file does not fit the backbone.
        ConnectionError: ``weights="imagenet"``, the file is not in Keras'
            cache and cannot be downloaded; the message says where to put a
            copy or how to pass a local file instead.

    Example:
        >>> x = keras.Input((None, None, 3))
        >>> application_backbone("MobileNetV2", x, alpha=0.35, weights=None).name
        'mobilenetv2_0.35_None'
    """
    import os
    import re

    weights = kwargs.pop("weights", None)
    settings = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    expected = f"keras.applications.{application}(include_top=False{', ' if settings else ''}" \
               f"{settings})"
    if weights is not None and weights != "imagenet":
        weights = os.fspath(weights)
        if not os.path.isfile(weights):
            raise FileNotFoundError(
                f"encoder_weights file {weights!r} does not exist; expected None, 'imagenet' "
                f"or the path of a {expected} weights file")
    constructor = getattr(keras.applications, application)
    try:
        return constructor(input_tensor=x, include_top=False, weights=weights, **kwargs)
    except Exception as err:  # noqa: BLE001  (get_file raises a bare Exception)
        if weights == "imagenet" and _url_fetch_failure(err):
            url = re.search(r"URL fetch failure on (\S+?): ", str(err))
            url = url.group(1) if url else "the weights file"
            fname = url.rsplit("/", 1)[-1] if url.startswith("http") else "<file>.h5"
            # Where keras.utils.get_file looks first (the cache it downloads into).
            home = os.environ.get("KERAS_HOME", os.path.join("~", ".keras"))
            cache = os.path.join(os.path.expanduser(home), "models")
            raise ConnectionError(
                f"could not download the ImageNet weights of {expected} ({err}); this "
                f"machine seems to be offline. On a machine with network, download {url}, "
                f"then either copy it to {os.path.join(cache, fname)} (Keras' cache, "
                "$KERAS_HOME/models: encoder_weights='imagenet' then works offline) or "
                f"pass the file: encoder_weights='/path/to/{fname}'") from err
        if weights is None or weights == "imagenet" or not isinstance(err, ValueError):
            raise
        # Keras' message can print whole weight tensors: keep its first line and the shapes.
        detail = str(err).splitlines()[0]
        shapes = re.search(r"variable\.shape=\(.*?\), Received: value\.shape=\(.*?\)",
                           str(err))
        if shapes:
            detail += " " + shapes.group(0)
        description = f"a {application} encoder" + (f" with {settings.replace(chr(39), '')}"
                                                     if settings else "")
        raise ValueError(f"could not load encoder_weights {weights!r} into {description}: "
                         f"{detail}. Expected weights of {expected}") from err


def adopt_layers(backbone, x, *, name: str, bn_momentum: float | None = None) -> list:
    """Rename a backbone's layers ``f"{name}_<keras name>"`` so the model built on it is flat.

    The layers that compute ``x`` itself (the model's input, a channel
    repeat) belong to the caller and are left alone.

    Args:
        backbone: a model built on ``x`` (``application_backbone``).
        x: the tensor the backbone was built on.
        name: prefix of the layer names, e.g. ``"mobilenet_unet_encoder"``.
        bn_momentum: if given, the momentum of every batch norm of the backbone.

    Returns:
        The backbone's own layers, renamed.

    Example:
        >>> x = keras.Input((None, None, 3))
        >>> backbone = application_backbone("MobileNetV2", x, alpha=0.35)
        >>> adopt_layers(backbone, x, name="m_encoder")[0].name
        'm_encoder_Conv1'
    """
    upstream = {id(layer) for layer in keras.Model(backbone.inputs, x).layers}
    own = [layer for layer in backbone.layers if id(layer) not in upstream]
    for layer in own:
        layer.name = f"{name}_{layer.name}"
        if bn_momentum is not None and isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = bn_momentum
    return own
