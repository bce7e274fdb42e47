"""Post-processing: probabilities (or raw images) to instance labels."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from nuclib.data.targets import three_class
from nuclib.metrics.matching import matching
from nuclib.postprocess import (binary_to_labels, fill_holes_per_label, otsu_labels,
                                remove_small_instances, three_class_to_labels)

# (centre y, centre x, radius): three touching pairs/triples and two loners, 128x128
DISKS = [(30, 30, 11), (30, 50, 11), (50, 40, 11), (90, 90, 12), (90, 111, 10),
         (100, 30, 9), (60, 100, 7)]


def draw_disks(disks=DISKS, shape=(128, 128)) -> np.ndarray:
    """Instance labels of disks; where they overlap, the earlier disk wins."""
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    labels = np.zeros(shape, np.int32)
    for i, (cy, cx, r) in enumerate(disks, start=1):
        labels[((yy - cy) ** 2 + (xx - cx) ** 2 < r ** 2) & (labels == 0)] = i
    return labels


def noisy_probs(labels, rng, sigma=1.0, noise=0.05) -> np.ndarray:
    """The inner-boundary three-class map, blurred and noised, renormalized to sum to 1."""
    probs = three_class(labels, boundary="inner", one_hot=True)
    probs = ndi.gaussian_filter(probs, (sigma, sigma, 0))
    probs = np.clip(probs + rng.normal(0, noise, probs.shape), 1e-3, None)
    return (probs / probs.sum(axis=2, keepdims=True)).astype(np.float32)


def test_fixture_has_touching_nuclei():
    labels = draw_disks()
    pairs = np.concatenate([
        np.stack([labels[:, :-1].ravel(), labels[:, 1:].ravel()], axis=1),
        np.stack([labels[:-1].ravel(), labels[1:].ravel()], axis=1)])
    touching = {(int(min(a, b)), int(max(a, b))) for a, b in pairs if a and b and a != b}
    assert {(1, 2), (1, 3), (2, 3), (4, 5)} <= touching


def test_exact_inner_three_class_map_is_recovered_exactly():
    truth = draw_disks()
    probs = three_class(truth, boundary="inner", one_hot=True)
    labels = three_class_to_labels(probs)
    m = matching(truth, labels, thresh=1.0)
    assert (m.tp, m.fp, m.fn) == (len(DISKS), 0, 0)


def test_blurred_noisy_map_recovers_every_touching_nucleus(rng):
    truth = draw_disks()
    labels = three_class_to_labels(noisy_probs(truth, rng))
    m = matching(truth, labels, thresh=0.8)
    assert (m.tp, m.fp, m.fn) == (len(DISKS), 0, 0)


def test_output_is_sequential_uint32(rng):
    truth = draw_disks()
    labels = three_class_to_labels(noisy_probs(truth, rng))
    assert labels.dtype == np.uint32 and labels.shape == truth.shape
    assert np.array_equal(np.unique(labels), np.arange(len(DISKS) + 1))


def test_docstring_example_two_touching_rectangles():
    truth = np.zeros((12, 12), np.int32)
    truth[2:10, 1:6] = 1
    truth[2:10, 6:11] = 2
    probs = three_class(truth, boundary="inner", one_hot=True)
    assert np.array_equal(three_class_to_labels(probs, min_size=0, min_seed_size=1), truth)


def _bridge_probs(bridge=(0.0, 0.6, 0.4)) -> np.ndarray:
    """Two 9x9 nuclei (interior 7x7, one-pixel boundary ring) joined by a 3-pixel bridge."""
    probs = np.zeros((11, 23, 3), np.float32)
    probs[...] = (1, 0, 0)
    probs[1:10, 1:10] = (0, 0, 1)
    probs[1:10, 13:22] = (0, 0, 1)
    probs[2:9, 2:9] = (0, 1, 0)
    probs[2:9, 14:21] = (0, 1, 0)
    probs[5, 9:14] = bridge
    return probs


def test_boundary_boost_separates_a_weak_bridge():
    probs = _bridge_probs()  # p_interior 0.6 > p_boundary 0.4 on the bridge
    merged = three_class_to_labels(probs, boundary_boost=1.0, min_size=0)
    split = three_class_to_labels(probs, boundary_boost=2.0, min_size=0)
    assert merged.max() == 1
    assert split.max() == 2
    # the bridge pixels still belong to nuclei (foreground), split between the two
    assert np.all(split[5, 9:14] > 0)


def test_seed_threshold_and_foreground_threshold():
    probs = _bridge_probs(bridge=(0.0, 0.6, 0.4))
    # a seed threshold above 0.6 keeps the bridge out of the seeds
    assert three_class_to_labels(probs, seed_threshold=0.7, min_size=0).max() == 2
    # the 9x9 squares: 81 pixels each plus 3 bridge pixels between them
    labels = three_class_to_labels(probs, seed_threshold=0.7, min_size=0)
    assert np.count_nonzero(labels) == 2 * 81 + 3
    # a pure-boundary ring counts as foreground only while 1 - p_bg > threshold
    ring = np.zeros((9, 9, 3), np.float32)
    ring[...] = (1, 0, 0)
    ring[1:8, 1:8] = (0.3, 0.0, 0.7)
    ring[3:6, 3:6] = (0.0, 1.0, 0.0)
    assert np.count_nonzero(three_class_to_labels(ring, min_size=0, min_seed_size=1)) == 49
    assert np.count_nonzero(three_class_to_labels(ring, min_size=0, min_seed_size=1,
                                                  foreground_threshold=0.8)) == 9


def _missed_boundary_probs() -> tuple[np.ndarray, np.ndarray]:
    """Two touching disks (radius 12, centres 18 px apart) whose shared boundary the
    "model" missed: interior everywhere inside, boundary only on the outer rim."""
    truth = draw_disks([(20, 20, 12), (20, 38, 12)], shape=(40, 60))
    probs = three_class(truth > 0, boundary="inner", one_hot=True).astype(np.float32)
    return truth, probs


def test_seed_split_height_splits_seeds_joined_by_a_neck():
    truth, probs = _missed_boundary_probs()
    assert three_class_to_labels(probs, min_size=0).max() == 1  # one seed: merged
    labels = three_class_to_labels(probs, min_size=0, seed_split_height=2.0)
    m = matching(truth, labels, thresh=0.8)
    assert (m.tp, m.fp, m.fn) == (2, 0, 0)
    # the seed (disks minus a 1-px rim) peaks 11 px deep at both centres and 7 px at
    # the neck: a dynamic of 4 px, so 4.5 px keeps it whole
    assert three_class_to_labels(probs, min_size=0, seed_split_height=3.5).max() == 2
    assert three_class_to_labels(probs, min_size=0, seed_split_height=4.5).max() == 1


def test_seed_split_height_leaves_separated_nuclei_and_ellipses_alone(rng):
    truth = draw_disks()
    probs = noisy_probs(truth, rng)
    whole, split = three_class_to_labels(probs), three_class_to_labels(probs, seed_split_height=2.0)
    # the same seven objects, pixel for pixel (numbered in another order)
    assert whole.max() == split.max() == 7
    assert matching(whole, split, thresh=0.999).tp == 7
    yy, xx = np.mgrid[:40, :100]
    ellipse = (((yy - 20) / 7.0) ** 2 + ((xx - 50) / 40.0) ** 2 < 1).astype(np.int32)
    elongated = three_class(ellipse, boundary="inner", one_hot=True).astype(np.float32)
    assert three_class_to_labels(elongated, seed_split_height=2.0).max() == 1
    with pytest.raises(ValueError, match="seed_split_height must be >= 0"):
        three_class_to_labels(probs, seed_split_height=-1)


def test_min_size_min_seed_size_and_unseeded_objects():
    truth = np.zeros((20, 20), np.int32)
    truth[2:12, 2:12] = 1   # 100 px
    truth[15:18, 15:18] = 2  # 9 px, a single interior pixel
    probs = three_class(truth, boundary="inner", one_hot=True)
    assert three_class_to_labels(probs, min_size=0).max() == 2  # tiny one kept, unseeded
    assert three_class_to_labels(probs, min_size=10).max() == 1
    assert three_class_to_labels(probs, min_size=0, keep_unseeded=False).max() == 1
    assert three_class_to_labels(probs, min_size=0, min_seed_size=1,
                                 keep_unseeded=False).max() == 2


def test_fill_holes_in_three_class_output():
    truth = np.zeros((16, 16), np.int32)
    truth[2:14, 2:14] = 1
    probs = three_class(truth, boundary="inner", one_hot=True)
    probs[7:9, 7:9] = (1, 0, 0)  # a 2x2 hole predicted as background
    assert np.count_nonzero(three_class_to_labels(probs, min_size=0)) == 144
    assert np.count_nonzero(three_class_to_labels(probs, min_size=0, fill_holes=False)) == 140


def test_dilation_and_erosion_exact_areas():
    truth = np.zeros((20, 20), np.int32)
    truth[5:15, 5:15] = 1
    probs = three_class(truth, boundary="inner", one_hot=True)
    assert np.count_nonzero(three_class_to_labels(probs, min_size=0)) == 100
    # expand_labels grows by Euclidean distance 1: one pixel on each side, no corners
    assert np.count_nonzero(three_class_to_labels(probs, min_size=0, dilation=1)) == 140
    assert np.count_nonzero(three_class_to_labels(probs, min_size=0, dilation=-1)) == 64


def test_from_logits_matches_softmaxed_probabilities(rng):
    truth = draw_disks()
    probs = noisy_probs(truth, rng)
    logits = np.log(probs) + 3.0  # softmax is shift-invariant
    assert np.array_equal(three_class_to_labels(logits, from_logits=True),
                          three_class_to_labels(probs))


@pytest.mark.parametrize("shape, hint", [
    ((8, 8, 2), "expected HxWx3"),
    ((8, 8), "binary_to_labels"),
    ((8, 8, 1), "binary_to_labels"),
    ((1, 8, 8, 3), "probs[0]"),
])
def test_three_class_rejects_wrong_shapes(shape, hint):
    with pytest.raises(ValueError, match="expected HxWx3") as info:
        three_class_to_labels(np.full(shape, 0.3, np.float32))
    assert hint in str(info.value)


def test_three_class_rejects_nan_logits_and_integers():
    probs = np.full((8, 8, 3), 1 / 3, np.float32)
    probs[2, 2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        three_class_to_labels(probs)
    logits = np.random.default_rng(1).normal(0, 4, (8, 8, 3)).astype(np.float32)
    with pytest.raises(ValueError, match="logits.*softmax.*from_logits=True"):
        three_class_to_labels(logits)
    with pytest.raises(ValueError, match="dtype uint8.*np.eye"):
        three_class_to_labels(np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="seed_threshold must lie in"):
        three_class_to_labels(np.full((8, 8, 3), 1 / 3, np.float32), seed_threshold=2)
    with pytest.raises(ValueError, match="min_size must be a whole number"):
        three_class_to_labels(np.full((8, 8, 3), 1 / 3, np.float32), min_size=-1)


def test_tiny_rounding_outside_unit_interval_is_accepted():
    truth = draw_disks()
    probs = three_class(truth, boundary="inner", one_hot=True) * (1 + 1e-4)
    assert three_class_to_labels(probs).max() == len(DISKS)


def test_all_background_gives_empty_labels():
    probs = np.zeros((10, 12, 3), np.float32)
    probs[..., 0] = 1
    labels = three_class_to_labels(probs)
    assert labels.dtype == np.uint32 and labels.shape == (10, 12) and labels.max() == 0


# --- helpers ---------------------------------------------------------------


def test_fill_holes_per_label_fills_own_holes_only():
    labels = np.array([
        [1, 1, 1, 2, 2, 2],
        [1, 0, 1, 2, 0, 2],
        [1, 1, 1, 2, 0, 2],
        [0, 0, 0, 2, 2, 2],
    ])
    assert fill_holes_per_label(labels).tolist() == [
        [1, 1, 1, 2, 2, 2],
        [1, 1, 1, 2, 2, 2],
        [1, 1, 1, 2, 2, 2],
        [0, 0, 0, 2, 2, 2],
    ]
    shared = np.array([
        [1, 1, 2, 2],
        [1, 0, 0, 2],
        [1, 1, 2, 2],
    ])  # a hole enclosed by two objects belongs to neither
    assert fill_holes_per_label(shared).tolist() == shared.tolist()


def test_remove_small_instances_renumbers_in_order():
    labels = np.array([[7, 7, 0, 3, 9, 9, 9]])
    assert remove_small_instances(labels, 2).tolist() == [[1, 1, 0, 0, 2, 2, 2]]
    out = remove_small_instances(np.array([[0, 10 ** 9, 10 ** 9, 5]]), 0)
    assert out.dtype == np.uint32 and out.tolist() == [[0, 2, 2, 1]]


# --- binary ------------------------------------------------------------------


def _two_touching_disks() -> np.ndarray:
    return draw_disks([(20, 20, 12), (20, 38, 12)], shape=(40, 60))


@pytest.mark.parametrize("split", [True, "distance", "h_maxima", "peak_local_max"])
def test_binary_splits_two_touching_disks(split):
    truth = _two_touching_disks()
    labels = binary_to_labels((truth > 0).astype(np.float32), split=split)
    m = matching(truth, labels, thresh=0.8)
    assert (m.tp, m.fp, m.fn) == (2, 0, 0)
    assert labels.dtype == np.uint32


def test_binary_without_split_merges_and_accepts_hxwx1():
    truth = _two_touching_disks()
    prob = (truth > 0).astype(np.float32)[..., None]
    assert binary_to_labels(prob, split=False).max() == 1
    assert np.array_equal(binary_to_labels(prob), binary_to_labels(prob[..., 0]))


def test_binary_h_maxima_does_not_split_an_elongated_nucleus():
    yy, xx = np.mgrid[:40, :100]
    ellipse = ((yy - 20) / 7.0) ** 2 + ((xx - 50) / 40.0) ** 2 < 1
    assert binary_to_labels(ellipse.astype(np.float32)).max() == 1


def test_binary_split_height_is_the_dynamic_of_the_weaker_peak():
    # peaks of the distance map: 12 px at both centres, 8 px at the neck, dynamic 4
    mask = (_two_touching_disks() > 0).astype(np.float32)
    assert binary_to_labels(mask, split_height=4.0).max() == 2
    assert binary_to_labels(mask, split_height=4.5).max() == 1


def test_binary_fills_own_holes_but_not_a_gap_between_nuclei():
    truth = _two_touching_disks()
    mask = truth > 0
    mask[19:21, 28:30] = False      # a gap right at the neck, shared by both nuclei
    mask[14:17, 14:17] = False      # a hole inside the left nucleus only
    labels = binary_to_labels(mask.astype(np.float32))
    assert labels.max() == 2
    assert np.all(labels[19:21, 28:30] == 0)
    assert np.all(labels[14:17, 14:17] == labels[20, 10]) and labels[20, 10] > 0


def test_binary_threshold_min_size_and_holes():
    prob = np.zeros((20, 20), np.float32)
    prob[2:10, 2:10] = 0.7
    prob[5:7, 5:7] = 0.1        # a hole
    prob[14:17, 14:17] = 0.9     # 9 px
    assert binary_to_labels(prob, min_size=0).max() == 2
    assert binary_to_labels(prob, min_size=10).max() == 1
    assert binary_to_labels(prob, threshold=0.8, min_size=0).max() == 1
    assert np.count_nonzero(binary_to_labels(prob, min_size=10)) == 64
    assert np.count_nonzero(binary_to_labels(prob, min_size=10, fill_holes=False)) == 60


def test_binary_errors():
    with pytest.raises(ValueError, match="three_class_to_labels"):
        binary_to_labels(np.full((8, 8, 3), 0.3, np.float32))
    with pytest.raises(ValueError, match="logits"):
        binary_to_labels(np.full((8, 8), 3.0, np.float32))
    with pytest.raises(ValueError, match="NaN"):
        binary_to_labels(np.full((8, 8), np.nan, np.float32))
    with pytest.raises(ValueError, match="unknown split method"):
        binary_to_labels(np.full((8, 8), 0.9, np.float32), split="random_walker")
    logits = np.where(_two_touching_disks() > 0, 4.0, -4.0).astype(np.float32)
    assert binary_to_labels(logits, from_logits=True).max() == 2


# --- Otsu ----------------------------------------------------------------------


# touching pairs but no cluster of three: smoothing fills the gap inside a triple
# junction, which the 1-px split height then cuts out as a small extra object
OTSU_DISKS = [(30, 30, 11), (30, 51, 11), (70, 40, 11), (90, 90, 12), (90, 111, 10),
              (100, 30, 9), (60, 100, 7)]


def _fluorescence(rng) -> tuple[np.ndarray, np.ndarray]:
    truth = draw_disks(OTSU_DISKS)
    image = np.where(truth > 0, 160.0, 25.0) + rng.normal(0, 12, truth.shape)
    return np.clip(image, 0, 255).astype(np.uint8), truth


def test_otsu_fluorescence_finds_every_nucleus(rng):
    image, truth = _fluorescence(rng)
    labels = otsu_labels(image)
    m = matching(truth, labels, thresh=0.7)
    assert (m.tp, m.fp, m.fn) == (len(OTSU_DISKS), 0, 0)
    assert labels.dtype == np.uint32


def test_otsu_inverts_bright_field_automatically(rng):
    image, truth = _fluorescence(rng)
    labels = otsu_labels(255 - image)
    m = matching(truth, labels, thresh=0.7)
    assert (m.tp, m.fp, m.fn) == (len(OTSU_DISKS), 0, 0)
    # forcing no inversion segments the background instead
    assert matching(truth, otsu_labels(255 - image, invert=False), thresh=0.5).tp == 0


def test_otsu_on_rgb_histology_like_image(rng):
    truth = draw_disks(OTSU_DISKS)
    image = np.empty(truth.shape + (3,), np.float32)
    image[...] = (235, 200, 220)                 # pink background
    image[truth > 0] = (90, 40, 130)             # purple nuclei
    image = np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8)
    m = matching(truth, otsu_labels(image), thresh=0.7)
    assert (m.tp, m.fp, m.fn) == (len(OTSU_DISKS), 0, 0)


def test_otsu_constant_image_and_errors():
    assert otsu_labels(np.full((10, 10), 7, np.uint8)).max() == 0
    with pytest.raises(ValueError, match="expected HxW or HxWxC"):
        otsu_labels(np.zeros((2, 8, 8, 3)))
    with pytest.raises(ValueError, match="invert must be"):
        otsu_labels(np.zeros((8, 8)), invert="yes")


@pytest.mark.parametrize("seed", range(4))
def test_the_distance_transform_is_scipys(seed):
    """The seed-splitting distance (OpenCV's exact transform) equals scipy's EDT,
    at the image border too, and with no background pixel at all."""
    from nuclib.postprocess.instances import _distance

    rng = np.random.default_rng(seed)
    mask = ndi.gaussian_filter(rng.random((90, 130)), 3) > 0.5
    mask[:, :seed + 1] = True  # objects cut by the border
    np.testing.assert_allclose(_distance(mask), ndi.distance_transform_edt(mask), atol=1e-5)
    full = np.ones((7, 9), bool)
    np.testing.assert_array_equal(_distance(full), ndi.distance_transform_edt(full))


def test_flooding_only_components_with_several_peaks_is_the_watershed():
    """Seed splitting floods only the seed components that hold several distance maxima;
    a single-maximum component is its seed's basin, the rest the full watershed's (up to
    ties between pixels of equal distance)."""
    from skimage.segmentation import watershed

    from nuclib.postprocess.instances import _FULL, _distance, _flood_from_peaks, _max3x3

    mask = draw_disks() > 0  # touching disks join through necks; two are alone
    distance = _distance(mask)
    peaks = mask & (distance == _max3x3(distance))
    np.testing.assert_array_equal(peaks, mask & (distance == ndi.maximum_filter(distance, 3)))
    seeds, n = ndi.label(peaks, structure=_FULL)
    full = watershed(-distance, markers=seeds, mask=mask, connectivity=1)
    ours = _flood_from_peaks(distance, seeds, n, peaks, mask)
    components, count = ndi.label(mask)
    several = [c for c in range(1, count + 1)
               if len(np.unique(seeds[(components == c) & peaks])) > 1]
    assert several and len(several) < count  # both kinds are present
    assert (ours != full).mean() < 1e-3
    single = ~np.isin(components, several) & mask
    np.testing.assert_array_equal(ours[single], full[single])
