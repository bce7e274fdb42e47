"""Helpers that work on any nuclib (or other Keras functional) model."""

from __future__ import annotations

import numpy as np

from nuclib.graph import required_multiple  # noqa: F401  (re-exported: its old home)


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
