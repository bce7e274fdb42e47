"""``ScaledPrediction``: probabilities in the model's space, with the zoom that made them.

The one value the Segmenter's parts hand each other: the preprocessor zooms
an image by ``factor`` so that nuclei have the training size, the network
predicts there, the diameter estimate may leave its labels of that very map
(``measured``), and the postprocessor brings labels and probabilities back to
the image's ``shape``.

Example:
    >>> import numpy as np
    >>> pred = ScaledPrediction(np.zeros((80, 100, 3), np.float32), 2.0, (40, 50), 10.0)
    >>> pred.factor, pred.shape, pred.measured
    (2.0, (40, 50), None)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["ScaledPrediction"]


@dataclass
class ScaledPrediction:
    """Probabilities in the model's space: the image zoomed by ``factor``.

    Attributes:
        probs: ``(h, w, K)`` probabilities of the zoomed image.
        factor: zoom applied to the image (1.0: none).
        shape: ``(H, W)`` of the original image.
        diameter: the nucleus diameter (original pixels) the zoom is based
            on; ``None`` when the model has no training diameter, ``nan``
            when no nucleus was found to measure.
        measured: ``(post-processing parameters, labels)`` when the diameter
            was measured on these very probabilities: ``Postprocessor.labels_at_size``
            reuses the labels instead of post-processing the same map twice.
    """

    probs: np.ndarray
    factor: float
    shape: tuple
    diameter: float | None
    measured: tuple | None = field(default=None, repr=False, compare=False)
