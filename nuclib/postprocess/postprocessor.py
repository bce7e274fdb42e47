"""``Postprocessor``: a head's probabilities to instance labels, at the image's size.

The head picks the post-processing (``nuclib.postprocess.thresholds.KINDS``:
one entry per head, so a new head plugs in there and the Segmenter needs no
edit); the config's ``postprocess`` table gives its parameters. Labels are
made in the model's space, where nuclei have the training size, and zoomed
back; probabilities are zoomed back too, with the star head's ray lengths
rescaled to the image's pixels.

Example:
    >>> import numpy as np
    >>> probs = np.zeros((8, 8, 3), np.float32); probs[..., 0] = 1
    >>> probs[2:6, 2:6] = (0, 1, 0)
    >>> post = Postprocessor("three_class", {"min_size": 1})
    >>> int(post(probs).max())
    1
"""

from __future__ import annotations

import numpy as np

__all__ = ["Postprocessor"]


class Postprocessor:
    """Post-processing of one head with one set of parameters.

    Args:
        head: one of ``nuclib.heads.HEADS``.
        params: keyword arguments of the head's post-processing function.
    """

    def __init__(self, head: str, params: dict | None = None):
        from nuclib.heads import check_head

        check_head(head)
        self.head = head
        self.params = dict(params or {})

    def __repr__(self) -> str:
        return f"Postprocessor(head={self.head!r}, params={self.params!r})"

    def __call__(self, probs, **overrides) -> np.ndarray:
        """Probabilities → uint32 instance labels, nuclei numbered 1..N (``overrides``
        replace parameters for this call)."""
        from nuclib.postprocess.thresholds import KINDS

        return KINDS[self.head](probs, **{**self.params, **overrides})

    def labels_at_size(self, pred, **overrides) -> np.ndarray:
        """Instance labels at the original size of a ``ScaledPrediction``.

        Post-processing runs in the model's space (so ``min_size`` and the
        thresholds mean the same for every image); the labels are then
        zoomed back with nearest-neighbour sampling and renumbered 1..N.
        Labels the diameter estimate made of the same map with the same
        parameters (``pred.measured``) are reused.

        Example:
            >>> from nuclib.prediction import ScaledPrediction
            >>> probs = np.zeros((8, 8, 3), np.float32); probs[..., 0] = 1
            >>> probs[2:6, 2:6] = (0, 1, 0)
            >>> pred = ScaledPrediction(probs, 2.0, (4, 4), 5.0)
            >>> Postprocessor("three_class", {"min_size": 1}).labels_at_size(pred).tolist()
            [[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]
        """
        from skimage.segmentation import relabel_sequential

        from nuclib.data.scale import rescale_labels

        params = {**self.params, **overrides}
        if pred.measured is not None and pred.measured[0] == params:
            labels = pred.measured[1]  # the estimate post-processed this map already
        else:
            labels = self(pred.probs, **overrides)
        if pred.factor == 1.0:
            return labels
        labels = rescale_labels(labels, shape=pred.shape)
        # Objects thinner than a pixel of the original grid can vanish: renumber.
        return relabel_sequential(labels)[0].astype(np.uint32)

    def probs_at_size(self, pred) -> np.ndarray:
        """The probabilities of a ``ScaledPrediction`` at the original size (star ray
        lengths in the original image's pixels)."""
        from nuclib.data.scale import rescale_image

        if pred.factor == 1.0:
            return pred.probs
        out = rescale_image(pred.probs, shape=pred.shape)
        if self.head == "star":
            out[..., 1:] /= pred.factor
        return out
