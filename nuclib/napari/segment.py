"""What the "Segment nuclei" widget does, without Qt: check a layer's image, segment it.

Kept apart from the widget so that the checks and the numbers can be tested
(and reused) without a viewer, and so that the widget's worker thread runs
plain functions.

Example:
    >>> import numpy as np
    >>> layer_image(np.zeros((5, 64, 64, 3), np.uint8), rgb=True, name="stack")
    Traceback (most recent call last):
    ...
    ValueError: layer 'stack' is a stack of 5 RGB images (shape (5, 64, 64, 3)); Segment nuclei takes one 2-D image: select a single plane (e.g. with Layers > Duplicate, then Image > Split Stack) and segment that
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["ENGINES", "Result", "layer_image", "nucleus_probability", "segment_image"]

ENGINES = ("keras", "openvino", "onnxruntime", "auto")


@dataclass
class Result:
    """One segmentation, ready to become layers.

    Attributes:
        labels: uint32 ``(H, W)`` instance labels, nuclei numbered 1..N.
        probability: float32 ``(H, W)`` probability that a pixel is in a
            nucleus, or None when not asked for.
        diameter: the nucleus diameter used (pixels), None for models
            without a training diameter, nan when none was found.
        factor: the zoom applied before the network.
        info: what the layers' metadata records (model, settings).

    Example:
        >>> Result(np.zeros((2, 2), np.uint32), None, None, 1.0).count
        0
    """

    labels: np.ndarray
    probability: np.ndarray | None
    diameter: float | None
    factor: float
    info: dict = field(default_factory=dict)

    @property
    def count(self) -> int:
        """The number of nuclei."""
        return int(self.labels.max()) if self.labels.size else 0


def layer_image(data, *, rgb: bool, name: str = "image", multiscale: bool = False) -> np.ndarray:
    """The one 2-D image (grayscale, or RGB/RGBA when ``rgb``) of an Image layer's data.

    Args:
        data: the layer's data (NumPy, dask, zarr); for a multiscale layer the
            list of levels, of which the full-resolution one is used.
        rgb: the layer's ``rgb`` flag (its last axis holds colours).
        name: the layer's name, for messages.
        multiscale: the layer's ``multiscale`` flag.

    Returns:
        ``(H, W)`` or ``(H, W, 3|4)`` NumPy array.

    Raises:
        ValueError: a stack (more than one plane), or an image too small or
            not numeric; the message says what to do.

    Example:
        >>> layer_image(np.zeros((64, 80)), rgb=False).shape
        (64, 80)
    """
    if multiscale:
        data = data[0]
    shape = tuple(int(s) for s in data.shape)
    planes = shape[:-1] if rgb else shape
    if rgb and (len(shape) < 3 or shape[-1] not in (3, 4)):
        raise ValueError(f"layer {name!r} is marked RGB but has shape {shape}; expected "
                         "(height, width, 3 or 4)")
    if len(planes) > 2 and int(np.prod(planes[:-2])) == 1:
        # Singleton leading axes (a one-plane stack) hold one image.
        planes = planes[-2:]
        data = np.asarray(data).reshape(planes + ((shape[-1],) if rgb else ()))
    if len(planes) > 2:
        count = int(np.prod(planes[:-2]))
        kind = "RGB images" if rgb else "planes"
        raise ValueError(f"layer {name!r} is a stack of {count} {kind} (shape {shape}); "
                         "Segment nuclei takes one 2-D image: select a single plane (e.g. "
                         "with Layers > Duplicate, then Image > Split Stack) and segment that")
    if len(planes) < 2 or min(planes) < 2:
        raise ValueError(f"layer {name!r} has shape {shape}; expected a 2-D image")
    image = np.asarray(data)
    if not (np.issubdtype(image.dtype, np.number) or image.dtype == bool):
        raise ValueError(f"layer {name!r} holds {image.dtype} values; expected numbers")
    return image


def nucleus_probability(probs: np.ndarray, head: str) -> np.ndarray:
    """The probability that each pixel belongs to a nucleus, from a head's output.

    One minus the background for the three-class heads, the first channel
    (foreground or object probability) for the others.

    Args:
        probs: ``(H, W, K)`` output of the head.
        head: one of ``nuclib.heads.HEADS``.

    Returns:
        float32 ``(H, W)`` in [0, 1].

    Example:
        >>> probs = np.array([[[0.25, 0.5, 0.25]]], np.float32)
        >>> nucleus_probability(probs, "three_class").tolist()
        [[0.75]]
    """
    if head in ("three_class", "three_class_distance"):
        return np.clip(1.0 - probs[..., 0], 0.0, 1.0).astype(np.float32)
    return probs[..., 0].astype(np.float32)


def segment_image(segmenter, image, *, diameter: float | None = None, tta: bool = False,
                  tile_size: int | None = None, probability: bool = False) -> Result:
    """Segment one image as ``Segmenter.segment`` does, optionally with its probability map.

    One prediction serves both outputs: ``predict_scaled`` then
    ``labels_from`` is exactly what ``segment`` computes, so the labels (and
    their count) are the same as ``segmenter.segment(image, diameter=..., tta=...)``.

    Args:
        segmenter: a ``nuclib.Segmenter``.
        image: ``(H, W)`` or ``(H, W, 3|4)`` array (see ``layer_image``).
        diameter: the nuclei's median diameter in pixels; None: measured.
        tta: average over the 8 rotations and mirrors.
        tile_size: the tiled inferencer's tile side; None: the model's.
        probability: also return the nucleus probability at the image's size.

    Returns:
        A ``Result``.

    Example:
        >>> result = segment_image(nuclib.load_pretrained("dsb-3class"), image)  # doctest: +SKIP
        >>> result.count                                                        # doctest: +SKIP
        42
    """
    from nuclib.data.scale import rescale_image

    tiling = {}
    if tile_size and tile_size != segmenter.config["tiling"].get("tile_size"):
        tiling["tile_size"] = int(tile_size)
    pred = segmenter.predict_scaled(image, diameter=diameter, tta=tta, progress=False,
                                    **tiling)
    labels = segmenter.labels_from(pred)
    prob = None
    if probability:
        prob = nucleus_probability(pred.probs, segmenter.head)
        if pred.factor != 1.0:
            prob = rescale_image(prob, shape=pred.shape)
            prob = prob[..., 0] if prob.ndim == 3 else prob
    info = {"model": segmenter.name, "diameter": pred.diameter, "zoom": pred.factor,
            "tta": bool(tta), "engine": segmenter.engine, "nuclei": int(labels.max())}
    return Result(labels, prob, pred.diameter, pred.factor, info)
