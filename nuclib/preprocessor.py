"""``Preprocessor``: a raw image to the network's input, and the zoom to the training size.

Normalization (percentiles), inversion of bright backgrounds, channel count
and zoom: everything the Segmenter does to an image before the network sees
it, built from the settings of a model's config.

Example:
    >>> import numpy as np
    >>> pre = Preprocessor(channels=3)
    >>> x = pre(np.arange(20, dtype=np.uint8).reshape(4, 5))
    >>> x.shape, x.dtype, pre.zoom(x, 2.0).shape
    ((4, 5, 3), dtype('float32'), (8, 10, 3))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Preprocessor"]


@dataclass(frozen=True)
class Preprocessor:
    """Raw image → normalized float32 ``(H, W, channels)`` model input.

    Args:
        channels: the network's input channels (1 or 3).
        low, high: normalization percentiles (``nuclib.data.prepare_image``).
        invert: ``"auto"`` (bright backgrounds inverted), True or False.

    Example:
        >>> Preprocessor.from_config({"input_channels": 1, "invert": False,
        ...                           "normalize": {"low": 1.0, "high": 99.8}}).channels
        1
    """

    channels: int = 1
    low: float = 1.0
    high: float = 99.8
    invert: bool | str = "auto"

    @classmethod
    def from_config(cls, config: dict) -> "Preprocessor":
        """The preprocessor of a Segmenter config (``input_channels``, ``normalize``, ``invert``)."""
        norm = config["normalize"]
        return cls(channels=config["input_channels"], low=norm["low"], high=norm["high"],
                   invert=config["invert"])

    def __call__(self, image) -> np.ndarray:
        """The normalized ``(H, W, channels)`` float32 image, values in [0, 1].

        Raises:
            ValueError: not a 2-D image (HxW or HxWxC), an empty one, or one
                ``prepare_image`` refuses (dtype, non-finite values).
        """
        from nuclib.data.normalize import prepare_image

        arr = np.asarray(image)
        if arr.ndim not in (2, 3):
            raise ValueError(f"image has {arr.ndim} dimensions {arr.shape}; expected HxW or "
                             "HxWxC (a single 2-D image; loop over stacks yourself)")
        if min(arr.shape[:2]) < 1:
            raise ValueError(f"image is empty (shape {arr.shape})")
        return prepare_image(arr, channels=self.channels, low=self.low, high=self.high,
                             invert=self.invert)

    @staticmethod
    def zoom(x: np.ndarray, factor: float) -> np.ndarray:
        """``x`` zoomed by ``factor`` (``nuclib.data.scale.rescale_image``); itself at 1."""
        from nuclib.data.scale import rescale_image

        return x if factor == 1.0 else rescale_image(x, factor)
