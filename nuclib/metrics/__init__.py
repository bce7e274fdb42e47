"""Instance segmentation metrics, and Keras metrics for training.

Instance metrics (numpy and scipy only) compare label images: one-to-one
matching with tp / fp / fn and the scores built on them (identical to
``stardist.matching``), the Kaggle DSB2018 score, the Aggregated Jaccard
Index, the mean best IoU per true nucleus, splits and merges, missed and
extra nuclei by size, and ``evaluate`` for a per-image and per-dataset
``Report``. The Keras training metrics (``DiceCoefficient``,
``JaccardIndex``, ``ClassPrecision``, ``ClassRecall``) load on first use, so
importing this package does not import Keras or TensorFlow.

Example:
    >>> import numpy as np
    >>> from nuclib import metrics
    >>> y = np.zeros((8, 8), np.uint8); y[1:4, 1:4] = 1; y[5:8, 5:8] = 2
    >>> metrics.matching(y, y, thresh=[0.5, 0.9])[1].accuracy
    1.0
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from nuclib.metrics.matching import (
    CRITERIA,
    DatasetMatching,
    Matching,
    label_overlap,
    matching,
    matching_dataset,
)
from nuclib.metrics.report import Report, evaluate
from nuclib.metrics.scores import (
    AREA_BINS,
    DSB_THRESHOLDS,
    SplitsAndMerges,
    aggregated_jaccard_index,
    dsb_score,
    false_negatives_by_area,
    false_positives_by_area,
    mean_best_iou,
    splits_and_merges,
)

__all__ = [
    "matching",
    "matching_dataset",
    "Matching",
    "DatasetMatching",
    "label_overlap",
    "CRITERIA",
    "dsb_score",
    "aggregated_jaccard_index",
    "mean_best_iou",
    "splits_and_merges",
    "SplitsAndMerges",
    "false_negatives_by_area",
    "false_positives_by_area",
    "DSB_THRESHOLDS",
    "AREA_BINS",
    "evaluate",
    "Report",
    "DiceCoefficient",
    "JaccardIndex",
    "ClassPrecision",
    "ClassRecall",
]

# Keras metrics live in nuclib.metrics.training and pull in Keras: load on first use.
_TRAINING = ("DiceCoefficient", "JaccardIndex", "ClassPrecision", "ClassRecall")

if TYPE_CHECKING:  # pragma: no cover
    from nuclib.metrics.training import (
        ClassPrecision,
        ClassRecall,
        DiceCoefficient,
        JaccardIndex,
    )


def __getattr__(name: str) -> Any:
    if name in _TRAINING:
        return getattr(importlib.import_module("nuclib.metrics.training"), name)
    raise AttributeError(f"module 'nuclib.metrics' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
