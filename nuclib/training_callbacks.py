"""Keras callbacks used by the training recipe."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np


class SamplePrediction(keras.callbacks.Callback):
    """Save the model's prediction of one image after every epoch (watch it learn).

    Writes ``epoch_###.png``: the input on the left, the class probabilities
    as RGB (background red, interior green, boundary blue; or the foreground
    probability in gray for binary heads, the object
    probability for star heads) on the right.

    Args:
        image_path: the sample image file.
        out_dir: folder for the PNGs.
        preprocess: image → float32 HxWxC model input.
        zoom: zoom factor applied after ``preprocess``: for a model trained
            at one nucleus size, training diameter / the sample's nucleus
            diameter, so the panels show what the model sees at inference.

    Example:
        >>> cb = SamplePrediction("examples/data/sample.png", "runs/x/epochs",
        ...                       preprocess=prepare_image, zoom=1.4)   # doctest: +SKIP
    """

    def __init__(self, image_path, out_dir, *, preprocess, zoom: float = 1.0):
        super().__init__()
        from nuclib.data.io import read_image
        from nuclib.data.scale import rescale_image

        if not zoom > 0:
            raise ValueError(f"zoom must be a positive factor, got {zoom!r}")
        self.out_dir = Path(out_dir)
        self.x = preprocess(read_image(image_path))
        if zoom != 1.0:
            self.x = rescale_image(self.x, zoom)
        self._cropped = None

    def on_epoch_end(self, epoch, logs=None):
        from nuclib.data.io import write_image
        from nuclib.models.utils import required_multiple

        if self._cropped is None:
            # Crop once to the model's stride (16 for a depth-4 U-Net, 32 for MobileNetV2).
            m = required_multiple(self.model)
            h, w = (s // m * m for s in self.x.shape[:2])
            self._cropped = self.x[:h, :w]
        probs = np.asarray(self.model(self._cropped[None], training=False))[0].astype(np.float32)
        if probs.shape[-1] != 3:  # binary, or a star head's object probability
            probs = np.repeat(probs[..., :1], 3, axis=-1)
        left = np.repeat(self._cropped[..., :1], 3, axis=-1)
        panel = np.concatenate([left, probs], axis=1)
        write_image(self.out_dir / f"epoch_{epoch + 1:03d}.png",
                    (np.clip(panel, 0, 1) * 255).astype(np.uint8))
