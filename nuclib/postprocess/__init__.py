"""Post-processing: probabilities to instance labels, threshold search, tiled inference.

- ``three_class_to_labels``, ``binary_to_labels``, ``otsu_labels``: labels
  (uint32, numbered 1..N) from a three-class map, a foreground map or a raw image.
- ``star_to_labels``: labels from a star head's probability and ray
  distances (polygon NMS); ``distance_to_labels``: labels from three-class
  probabilities plus a normalized distance map (marker-controlled watershed).
- ``optimize_thresholds``: the post-processing parameters that score best on
  validation data.
- ``TiledInferencer``, ``segment_large``, ``segment_dask``,
  ``receptive_field_radius``: inference on images of any size (loaded on
  first use from ``nuclib.postprocess.tiling``).

Example:
    >>> from nuclib.postprocess import three_class_to_labels
    >>> labels = three_class_to_labels(probs)       # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from nuclib.postprocess.instances import (binary_to_labels, fill_holes_per_label, otsu_labels,
                                          remove_small_instances, three_class_to_labels)
from nuclib.postprocess.distance import distance_to_labels
from nuclib.postprocess.star import polygon_nms, star_to_labels
from nuclib.postprocess.thresholds import optimize_thresholds

__all__ = [
    "three_class_to_labels", "binary_to_labels", "otsu_labels",
    "fill_holes_per_label", "remove_small_instances", "optimize_thresholds",
    "star_to_labels", "polygon_nms", "distance_to_labels",
    "TiledInferencer", "segment_large", "segment_dask", "receptive_field_radius",
]

# Tiled inference lives in its own module, loaded on first use.
_TILING = {"TiledInferencer", "segment_large", "segment_dask", "receptive_field_radius"}

if TYPE_CHECKING:  # pragma: no cover
    from nuclib.postprocess.tiling import (TiledInferencer, receptive_field_radius,
                                           segment_dask, segment_large)


def __getattr__(name: str) -> Any:
    if name in _TILING:
        return getattr(importlib.import_module("nuclib.postprocess.tiling"), name)
    raise AttributeError(f"module 'nuclib.postprocess' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
