"""The size estimate's passes: the probe window, its guesses and the window rule."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nuclib.data.scale import rescale_image
from nuclib.diameter import PROBE_MIN_NUCLEI, estimate, window_bounds
from nuclib.postprocess import three_class_to_labels


def disks(radius: int, shape, *, spacing: int | None = None, rows=None) -> np.ndarray:
    """A prepared (H, W, 1) image of bright disks of ``radius`` on a grid."""
    from skimage.draw import disk

    spacing = spacing or 3 * radius
    image = np.zeros(shape + (1,), np.float32)
    ys = range(spacing // 2 + radius, shape[0] - radius - 1, spacing) if rows is None else rows
    for y in ys:
        for x in range(spacing // 2 + radius, shape[1] - radius - 1, spacing):
            image[disk((y, x), radius, shape=shape)] = 1.0
    return image


class Passes:
    """A stand-in network (bright pixels are nucleus interior) that records its passes."""

    def __init__(self, blind_when_zoomed: bool = False):
        self.calls = []
        self.blind_when_zoomed = blind_when_zoomed

    def __call__(self, x, factor):
        self.calls.append((x.shape[:2], factor))
        x = x if factor == 1 else rescale_image(x, factor)
        inside = (x[..., :1] > 0.5).astype(np.float32)
        if self.blind_when_zoomed and factor != 1:
            inside[:] = 0
        return np.concatenate([1 - inside, inside, 0 * inside], axis=-1)


def run_estimate(image, passes, probe_side):
    return estimate(image, run=passes, trained=20, probe_side=probe_side,
                    postprocess=lambda p: three_class_to_labels(p, min_size=4))


def test_the_probe_guesses_the_zoom_and_one_pass_over_the_image_confirms_it():
    image = disks(5, (320, 400))  # 10-pixel nuclei: zoom 2
    passes = Passes()
    found = run_estimate(image, passes, probe_side=128)
    assert [shape for shape, _ in passes.calls] == [(128, 128), (320, 400)]
    assert passes.calls[0][1] == 1.0 and passes.calls[1][1] == pytest.approx(2.0, rel=0.1)
    assert found.diameter == pytest.approx(10, rel=0.1)
    assert found.factor == passes.calls[-1][1]
    assert found.probs.shape[:2] == tuple(round(s * found.factor) for s in (320, 400))


def test_without_a_probe_the_first_pass_is_over_the_whole_image():
    image = disks(5, (320, 400))
    passes = Passes()
    found = run_estimate(image, passes, probe_side=None)
    assert [c[0] for c in passes.calls] == [(320, 400), (320, 400)]
    assert passes.calls[0][1] == 1.0
    assert found.diameter == pytest.approx(10, rel=0.1)


def test_large_nuclei_get_a_second_cheap_look_in_the_probe():
    image = disks(20, (480, 480), spacing=50)  # 40-pixel nuclei: zoom 0.5
    passes = Passes()
    found = run_estimate(image, passes, probe_side=256)
    shapes = [shape for shape, _ in passes.calls]
    assert shapes[:2] == [(256, 256), (256, 256)]
    assert passes.calls[0][1] == 1.0 and passes.calls[1][1] == pytest.approx(0.5, rel=0.1)
    assert shapes[2:] == [(480, 480)]  # the guess needs no correction
    assert found.diameter == pytest.approx(40, rel=0.1)


def test_no_probe_where_it_would_cover_more_than_half_the_image():
    image = disks(5, (300, 300))  # a 256-pixel probe would hold 73% of it
    passes = Passes()
    run_estimate(image, passes, probe_side=256)
    assert passes.calls[0] == ((300, 300), 1.0)
    passes = Passes()
    run_estimate(disks(5, (300, 440)), passes, probe_side=256)  # 50%: probed
    assert passes.calls[0] == ((256, 256), 1.0)


def test_a_probe_with_too_few_nuclei_is_ignored():
    # Two rows of nuclei, far from the image's centre: the central probe sees none.
    image = disks(5, (400, 400), rows=[20, 380])
    passes = Passes()
    found = run_estimate(image, passes, probe_side=128)
    assert passes.calls[0] == ((128, 128), 1.0)
    assert passes.calls[1] == ((400, 400), 1.0)  # as without a probe
    assert found.diameter == pytest.approx(10, rel=0.1)
    assert PROBE_MIN_NUCLEI > 1


def test_the_probes_guess_stays_when_the_zoomed_pass_finds_nothing():
    image = disks(5, (320, 400))
    passes = Passes(blind_when_zoomed=True)
    found = run_estimate(image, passes, probe_side=128)
    assert len(passes.calls) == 2  # the probe, then one pass at its zoom
    assert found.diameter == pytest.approx(10, rel=0.1)
    assert found.factor == pytest.approx(20 / found.diameter)


def test_nothing_anywhere_gives_nan_at_the_images_scale():
    passes = Passes()
    found = run_estimate(np.zeros((300, 300, 1), np.float32), passes, probe_side=128)
    assert math.isnan(found.diameter) and found.factor == 1.0
    assert passes.calls == [((128, 128), 1.0), ((300, 300), 1.0)]


@pytest.mark.parametrize("shape, side, bounds", [
    ((603, 1272), 1024, (0, 603, 0, 1272)),      # less than 1024² pixels: all of it
    ((2000, 3000), 1024, (488, 1512, 988, 2012)),
    ((100, 5000), 256, (0, 100, 2372, 2628)),    # long and narrow: clipped to the image
    ((256, 256), 256, (0, 256, 0, 256)),
])
def test_the_window_is_the_whole_image_up_to_side_squared_pixels(shape, side, bounds):
    assert window_bounds(shape, side) == bounds
