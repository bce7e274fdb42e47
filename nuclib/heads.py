"""The heads a nuclib model can have: one name per kind of output, used everywhere.

The same names are the model factories' ``head=``, the training targets'
``target=``, the ``Segmenter``'s ``head`` and the post-processing ``kind``.
Channel order of each head's output:

- ``"three_class"``: (background, interior, boundary) probabilities.
- ``"binary"``: the foreground probability.
- ``"star"``: the object probability, then ``n_rays`` distances in pixels
  from the pixel to its nucleus' edge along rays at angles ``2πk/n_rays``
  (rows grow with ``sin``, columns with ``cos``, as in StarDist).
- ``"three_class_distance"``: the three-class probabilities, then the
  distance to the nucleus' edge divided by the largest in that nucleus.

This module imports nothing heavy, so any room may use it.

Example:
    >>> from nuclib.heads import HEADS, head_channels
    >>> head_channels("star", n_rays=32), head_channels("three_class_distance")
    (33, 4)
"""

from __future__ import annotations

HEADS = ("three_class", "binary", "star", "three_class_distance")

# What each head's output is and how nuclib turns it into nuclei (for model cards).
DESCRIPTIONS = {
    "three_class": "background / interior / boundary probabilities (softmax); interior seeds "
                   "grown over the foreground by watershed (`three_class_to_labels`)",
    "binary": "foreground probability (sigmoid); touching nuclei split by a watershed on the "
              "mask's distance transform (`binary_to_labels`)",
    "star": "object probability (sigmoid), then the distance from each pixel to its nucleus' "
            "edge along each of n rays (StarDist's star-convex polygons); candidate polygons "
            "kept by non-maximum suppression and painted (`star_to_labels`)",
    "three_class_distance": "background / interior / boundary probabilities, then each "
                            "pixel's distance to its nucleus' edge over the largest in that "
                            "nucleus; watershed seeded from the distance maxima "
                            "(`distance_to_labels`)",
}


def check_head(head: str, n_rays: int = 32) -> None:
    """Raise ``ValueError`` unless ``head`` is one of ``HEADS`` (and, for star, ``n_rays >= 3``).

    Args:
        head: the head name to check.
        n_rays: rays of a star head.

    Raises:
        ValueError: ``head`` is not in ``HEADS``, or a star head with fewer than 3 rays.

    Example:
        >>> check_head("three_class")
        >>> check_head("3class")
        Traceback (most recent call last):
        ...
        ValueError: unknown head '3class'; expected one of ('three_class', 'binary', 'star', 'three_class_distance')
    """
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; expected one of {HEADS}")
    if head == "star" and (isinstance(n_rays, bool) or not float(n_rays).is_integer()
                           or n_rays < 3):
        raise ValueError(f"n_rays must be a whole number >= 3 (a polygon needs three "
                         f"corners), got {n_rays!r}")


def head_channels(head: str, n_rays: int = 32) -> int:
    """Output channels of a head: 3, 1, ``1 + n_rays`` or 4 (in ``HEADS`` order).

    Args:
        head: one of ``HEADS``.
        n_rays: rays of a star head.

    Returns:
        The number of output channels.

    Raises:
        ValueError: an unknown head, or a star head with fewer than 3 rays.

    Example:
        >>> head_channels("star", n_rays=16)
        17
    """
    check_head(head, n_rays)
    return {"three_class": 3, "binary": 1, "three_class_distance": 4}.get(head, 1 + int(n_rays))
