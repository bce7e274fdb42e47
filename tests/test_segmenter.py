"""Segmenter: any 2-D image in, probabilities and instance labels out."""

from __future__ import annotations

import numpy as np
import pytest

from nuclib.models import unet
from nuclib.segmenter import Segmenter


@pytest.fixture(scope="module")
def seg():
    return Segmenter(unet(depth=2, filters=4), {"name": "t", "tiling": {"tile_size": 64}})


@pytest.mark.parametrize("shape,dtype", [((30, 41), np.uint8), ((70, 130), np.uint16),
                                         ((33, 65, 3), np.uint8), ((20, 20, 4), np.uint8),
                                         ((50, 40), np.float64)])
def test_any_image_gives_probabilities_and_labels(seg, shape, dtype, rng):
    image = (rng.random(shape) * 200).astype(dtype)
    probs = seg.predict(image)
    assert probs.shape == shape[:2] + (3,)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-4)
    labels = seg.segment(image)
    assert labels.shape == shape[:2] and labels.dtype == np.uint32


@pytest.mark.parametrize("bad,match", [
    (np.zeros((2, 8, 8, 1)), "dimensions"),
    (np.zeros(10), "dimensions"),
    (np.zeros((0, 5)), "empty"),
    (np.full((8, 8), np.nan), "NaN"),
    (np.zeros((8, 8, 5)), "C in"),
])
def test_unusable_images_name_the_problem(seg, bad, match):
    with pytest.raises(ValueError, match=match):
        seg.segment(bad)


def test_segment_many_accepts_a_folder(seg, tmp_path, rng):
    from nuclib.data.io import write_image

    for i in range(3):
        write_image(tmp_path / f"im{i}.png", (rng.random((24, 30)) * 255).astype(np.uint8))
    out = seg.segment_many(tmp_path, progress=False)
    assert len(out) == 3 and all(o.shape == (24, 30) for o in out)


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="head"):
        Segmenter(None, {"head": "four_class"})
    with pytest.raises(ValueError, match="input_channels"):
        Segmenter(None, {"input_channels": 2})


def test_bright_background_images_are_inverted(seg):
    dark = np.zeros((16, 16), np.uint8)
    dark[4:8, 4:8] = 200
    x_dark = seg.preprocess(dark)
    x_bright = seg.preprocess(255 - dark)
    np.testing.assert_allclose(x_dark, x_bright, atol=1e-6)


def test_models_with_bilinear_upsampling_segment_images_of_several_sizes():
    # Keras 3.15 cannot re-trace bilinear UpSampling2D for a second input shape;
    # the tiled inferencer falls back to the eager call.
    from nuclib.models import attention_unet

    seg = Segmenter(attention_unet(depth=2, filters=4), {"tiling": {"tile_size": 256}})
    for shape in [(64, 64), (40, 50), (100, 30)]:
        assert seg.segment(np.random.default_rng(1).random(shape)).shape == shape
