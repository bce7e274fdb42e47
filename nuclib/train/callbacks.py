"""Keras callbacks of a training run: ``SamplePrediction`` draws what the model sees each epoch."""

from __future__ import annotations

import os
from pathlib import Path

import keras
import numpy as np


class SamplePrediction(keras.callbacks.Callback):
    """Save the model's prediction of sample images after every epoch (watch it learn).

    Writes ``epoch_###.png``: one row per sample image, the input on the
    left and the class probabilities as RGB on the right (background red,
    interior green, boundary blue; or the foreground probability in gray
    for binary heads, the object probability for star heads). Rows narrower
    than the widest are padded with black.

    Args:
        image_paths: a sample image file, or a list of them (seed 002
            watches several images, and a large one, change from epoch to epoch).
        out_dir: folder for the PNGs.
        preprocess: image → float32 HxWxC model input.
        zoom: zoom factor applied after ``preprocess``: for a model trained
            at one nucleus size, training diameter / the samples' nucleus
            diameter, so the panels show what the model sees at inference.
        tile_size: 0 runs the model on each whole image (cropped to the
            network's stride); a side in pixels runs the tiled inferencer
            (``nuclib.postprocess.TiledInferencer``) instead, so an image too
            large for one pass, such as a whole slide region, is predicted
            tile by tile, seams hidden by the receptive-field overlap.

    Raises:
        ValueError: no image, ``zoom <= 0`` or a negative ``tile_size``.

    Example:
        >>> cb = SamplePrediction(["a.png", "large.tif"], "runs/x/epochs",
        ...                       preprocess=prepare_image, zoom=1.4,
        ...                       tile_size=512)                        # doctest: +SKIP
    """

    def __init__(self, image_paths, out_dir, *, preprocess, zoom: float = 1.0,
                 tile_size: int = 0):
        super().__init__()
        from nuclib.data.io import read_image
        from nuclib.data.scale import rescale_image

        if not zoom > 0:
            raise ValueError(f"zoom must be a positive factor, got {zoom!r}")
        if isinstance(tile_size, bool) or not int(tile_size) == tile_size or tile_size < 0:
            raise ValueError(f"tile_size must be 0 (whole images) or a tile side in pixels, "
                             f"got {tile_size!r}")
        paths = ([image_paths] if isinstance(image_paths, (str, os.PathLike))
                 else list(image_paths))
        if not paths:
            raise ValueError("no sample image given; expected a path or a list of paths")
        self.out_dir = Path(out_dir)
        self.tile_size = int(tile_size)
        self.inputs = [preprocess(read_image(path)) for path in paths]
        if zoom != 1.0:
            self.inputs = [rescale_image(x, zoom) for x in self.inputs]
        self._cropped = None

    def _predict(self, x: np.ndarray) -> np.ndarray:
        if self.tile_size:
            from nuclib.postprocess.tiling import TiledInferencer

            # Built per epoch: the overlap is read from the model, whose weights change.
            tiler = TiledInferencer(self.model, tile_size=self.tile_size, progress=False)
            return np.asarray(tiler.predict(x), np.float32)
        return np.asarray(self.model(x[None], training=False))[0].astype(np.float32)

    def on_epoch_end(self, epoch, logs=None):
        from nuclib.data.io import write_image

        if self._cropped is None:
            if self.tile_size:
                self._cropped = self.inputs  # the tiler pads to the stride itself
            else:
                from nuclib.models.utils import required_multiple

                # Crop once to the model's stride (16 for a depth-4 U-Net, 32 for MobileNetV2).
                m = required_multiple(self.model)
                self._cropped = [x[: x.shape[0] // m * m, : x.shape[1] // m * m]
                                 for x in self.inputs]
        rows = []
        for x in self._cropped:
            probs = self._predict(x)
            if probs.shape[-1] != 3:  # binary, or a star head's object probability
                probs = np.repeat(probs[..., :1], 3, axis=-1)
            rows.append(np.concatenate([np.repeat(x[..., :1], 3, axis=-1), probs], axis=1))
        width = max(row.shape[1] for row in rows)
        panel = np.concatenate([np.pad(row, ((0, 0), (0, width - row.shape[1]), (0, 0)))
                                for row in rows], axis=0)
        write_image(self.out_dir / f"epoch_{epoch + 1:03d}.png",
                    (np.clip(panel, 0, 1) * 255).astype(np.uint8))
