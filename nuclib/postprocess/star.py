"""Star-convex polygons to instance labels: candidates, polygon NMS, rasterization.

The star head predicts, at every pixel, the probability that it lies near
a nucleus' centre and the distance from it to the nucleus' edge along
``n_rays`` rays (StarDist, Schmidt et al. 2018). ``star_to_labels`` turns
those maps into instances:

1. Candidates are the pixels whose probability exceeds ``prob_threshold``
   (on every ``grid``-th row and column), sorted by decreasing probability.
2. Each candidate's polygon has corners ``(r + d_k sin φ_k, c + d_k cos φ_k)``.
3. Greedy non-maximum suppression keeps a polygon unless it overlaps a
   kept, more probable one by IoU above ``nms_threshold`` (exact polygon
   areas, compiled with numba; see ``nuclib.postprocess._star_nms``).
4. Kept polygons are painted from the least to the most probable, so where
   two overlap the more probable wins, as StarDist paints them.
5. Objects under ``min_size`` pixels are dropped and the rest numbered 1..N.

Example:
    >>> from nuclib.data.targets import star
    >>> labels = np.zeros((32, 32), np.int32); labels[8:20, 6:18] = 1
    >>> maps = star(labels, n_rays=16); maps[..., 0] = np.clip(maps[..., 0], 0, 1)
    >>> out = star_to_labels(maps, prob_threshold=0.5)
    >>> int(out.max()), abs(int((out == 1).sum()) - 144) < 20
    (1, True)
"""

from __future__ import annotations

import numpy as np

from nuclib.postprocess.instances import _check_size, _check_threshold, remove_small_instances


def check_star_maps(maps, *, from_logits: bool = False) -> np.ndarray:
    """Validate star-head output ``(H, W, 1 + n_rays)``; return it as float32.

    Args:
        maps: probability channel, then ``n_rays >= 3`` distance channels.
        from_logits: the probability channel holds logits (a sigmoid is applied).

    Returns:
        A float32 copy, with the probability in [0, 1] and negative
        distances clipped to 0.

    Raises:
        ValueError: wrong rank or channel count, NaN or infinite values, or
            probabilities outside [0, 1] (naming the fix).

    Example:
        >>> check_star_maps(np.zeros((4, 4, 9), np.float32)).shape
        (4, 4, 9)
    """
    arr = np.asarray(maps)
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"star maps have dtype {arr.dtype}; expected floats (probability, "
                         "then distances)")
    if arr.ndim != 3 or arr.shape[2] < 4:
        hint = "; for a batch of one pass maps[0]" if arr.ndim == 4 and arr.shape[0] == 1 else ""
        if arr.ndim == 3 and arr.shape[2] == 3:
            hint = "; this looks like three-class probabilities: use three_class_to_labels"
        raise ValueError(f"star maps have shape {arr.shape}; expected HxWx(1 + n_rays) with "
                         f"n_rays >= 3 (object probability, then one distance per ray){hint}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"star maps are empty (shape {arr.shape})")
    if not np.isfinite(arr).all():
        raise ValueError(f"star maps contain {int((~np.isfinite(arr)).sum())} NaN or infinite "
                         "values; expected finite numbers (did training diverge?)")
    arr = arr.astype(np.float32, copy=True)
    if from_logits:
        arr[..., 0] = 1.0 / (1.0 + np.exp(-arr[..., 0]))
    low, high = float(arr[..., 0].min()), float(arr[..., 0].max())
    if low < -1e-3 or high > 1.0 + 1e-3:
        raise ValueError(f"the probability channel lies outside [0, 1] (min {low:.4g}, max "
                         f"{high:.4g}); it looks like a logit: pass from_logits=True or build "
                         "the model with logits=False")
    arr[..., 0] = np.clip(arr[..., 0], 0.0, 1.0)
    np.maximum(arr[..., 1:], 0.0, out=arr[..., 1:])
    return arr


def ray_angles(n_rays: int) -> np.ndarray:
    """The rays' angles ``2πk / n_rays`` (float32, as the targets use them).

    Args:
        n_rays: number of rays.

    Returns:
        float32 ``(n_rays,)`` angles in radians.

    Example:
        >>> [round(float(a), 4) for a in ray_angles(4)]
        [0.0, 1.5708, 3.1416, 4.7124]
    """
    return np.arange(n_rays, dtype=np.float32) * np.float32(2 * np.pi / n_rays)


def star_polygons(points, distances) -> tuple[np.ndarray, np.ndarray]:
    """Corners of the star-convex polygons around ``points`` with ray ``distances``.

    Args:
        points: ``(n, 2)`` (row, column) centres.
        distances: ``(n, R)`` distances along the rays of ``ray_angles(R)``.

    Returns:
        ``(xs, ys)``: float64 ``(n, R)`` column and row coordinates of the corners.

    Example:
        >>> xs, ys = star_polygons(np.array([[5, 5]]), np.full((1, 4), 2.0))
        >>> xs.round(6).tolist(), ys.round(6).tolist()
        ([[7.0, 5.0, 3.0, 5.0]], [[5.0, 7.0, 5.0, 3.0]])
    """
    points = np.asarray(points, np.float64).reshape(-1, 2)
    distances = np.asarray(distances, np.float64)
    phi = ray_angles(distances.shape[1]).astype(np.float64)
    ys = points[:, :1] + distances * np.sin(phi)
    xs = points[:, 1:] + distances * np.cos(phi)
    return xs, ys


def polygon_nms(points, distances, scores, *, nms_threshold: float = 0.4) -> np.ndarray:
    """Indices of the polygons greedy NMS keeps, most probable first.

    Args:
        points: ``(n, 2)`` (row, column) centres.
        distances: ``(n, R)`` ray distances.
        scores: ``(n,)`` probabilities.
        nms_threshold: IoU above which the less probable polygon is suppressed.

    Returns:
        int64 indices into the inputs, by decreasing score.

    Example:
        >>> pts = np.array([[10, 10], [10, 11], [40, 40]])
        >>> polygon_nms(pts, np.full((3, 8), 5.0), np.array([0.9, 0.8, 0.7])).tolist()
        [0, 2]
    """
    from nuclib.postprocess._star_nms import polygon_areas, star_nms

    nms_threshold = _check_threshold("nms_threshold", nms_threshold)
    scores = np.asarray(scores, np.float64).ravel()
    order = np.argsort(-scores, kind="stable")
    points = np.asarray(points, np.float64).reshape(-1, 2)[order]
    distances = np.asarray(distances, np.float64)[order]
    xs, ys = star_polygons(points, distances)
    # The polygon holds the disk of its shortest ray times cos(π/R): the
    # chord between two adjacent corners comes no closer to the centre.
    inner = distances.min(axis=1) * np.cos(np.pi / distances.shape[1])
    keep = star_nms(xs, ys, polygon_areas(xs, ys), inner, points[:, 1], points[:, 0],
                    nms_threshold)
    return order[keep]


def star_to_labels(maps, *, prob_threshold: float = 0.5, nms_threshold: float = 0.4,
                   grid: int = 1, min_size: int = 0, from_logits: bool = False) -> np.ndarray:
    """Instance labels from a star head's probability and ray distances.

    The steps are listed in the module docstring.

    Args:
        maps: ``(H, W, 1 + n_rays)``: object probability, then ray distances in pixels.
        prob_threshold: smallest probability of a candidate centre.
        nms_threshold: polygon IoU above which the less probable candidate is
            suppressed.
        grid: take candidates on every ``grid``-th row and column only
            (StarDist's output grid): ``grid**2`` times fewer candidates.
        min_size: drop objects smaller than this many pixels.
        from_logits: the probability channel holds logits.

    Returns:
        uint32 HxW labels, nuclei numbered 1..N by decreasing probability.

    Raises:
        ValueError: bad maps (see ``check_star_maps``) or parameters out of range.

    Example:
        >>> maps = np.zeros((20, 20, 9), np.float32)
        >>> maps[10, 10] = [0.9] + [4.0] * 8
        >>> int(star_to_labels(maps).max())
        1
    """
    from skimage.draw import polygon as draw_polygon

    arr = check_star_maps(maps, from_logits=from_logits)
    prob_threshold = _check_threshold("prob_threshold", prob_threshold)
    nms_threshold = _check_threshold("nms_threshold", nms_threshold)
    grid = _check_size("grid", grid)
    if grid < 1:
        raise ValueError(f"grid must be a whole number >= 1, got {grid}")
    min_size = _check_size("min_size", min_size)
    h, w = arr.shape[:2]
    prob = arr[::grid, ::grid, 0]
    rows, cols = np.nonzero(prob > prob_threshold)
    points = np.stack([rows, cols], axis=1) * grid
    labels = np.zeros((h, w), np.uint32)
    if not len(points):
        return labels
    distances = arr[points[:, 0], points[:, 1], 1:]
    scores = arr[points[:, 0], points[:, 1], 0]
    kept = polygon_nms(points, distances, scores, nms_threshold=nms_threshold)
    xs, ys = star_polygons(points[kept], distances[kept])
    # Paint the least probable first, so the most probable wins where polygons overlap.
    for number in range(len(kept), 0, -1):
        rr, cc = draw_polygon(ys[number - 1], xs[number - 1], shape=(h, w))
        labels[rr, cc] = number
    return remove_small_instances(labels, min_size)


def rays_from_view(maps, turns: int, mirror: bool) -> np.ndarray:
    """Re-index the rays of maps predicted on a rotated / mirrored view of an image.

    For test-time augmentation: the view is ``np.rot90(image, turns)``, then
    mirrored left-right if ``mirror``. A ray that points along angle φ in
    the view points along ``π - φ`` in the unmirrored view and along
    ``φ + turns·π/2`` in the original, so the distance channels are
    permuted accordingly (pixels are not moved; undo the flips on the
    spatial axes as usual).

    Args:
        maps: ``(H, W, 1 + R)`` star maps of the view, R a multiple of 4.
        turns: quarter turns of ``np.rot90`` applied to make the view.
        mirror: the view was mirrored after turning.

    Returns:
        Maps of the same shape whose ray k points along angle 2πk/R of the original.

    Raises:
        ValueError: R not a multiple of 4 (quarter turns would fall between rays).

    Example:
        >>> maps = np.arange(9, dtype=np.float32).reshape(1, 1, 9)
        >>> rays_from_view(maps, 1, False)[0, 0].tolist()
        [0.0, 7.0, 8.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    """
    arr = np.asarray(maps)
    n_rays = arr.shape[-1] - 1
    if n_rays % 4:
        raise ValueError(f"test-time augmentation needs n_rays divisible by 4 so that quarter "
                         f"turns map rays onto rays; this model has {n_rays}")
    index = np.arange(n_rays) - turns * n_rays // 4  # the view's ray of each original ray
    if mirror:
        index = n_rays // 2 - index
    index %= n_rays
    out = arr.copy()
    out[..., 1:] = arr[..., 1:][..., index]
    return out
