"""The napari plugin: a "Segment nuclei" widget, sample images and a label writer.

Installed with ``pip install "nuclib[napari]"`` (napari and a Qt binding);
napari finds it through the ``napari.manifest`` entry point
(``nuclib.napari:napari.yaml``). The rest of nuclib never imports this
package, napari or Qt: the widget calls the ``Segmenter`` like any other user.

============================ ===================================================
module                       what it holds
============================ ===================================================
``nuclib.napari.segment``    the widget's work without Qt: checking a layer's
                             image, segmenting it, the probability map
``nuclib.napari.widget``     ``SegmentWidget`` (magicgui): model, diameter, TTA,
                             engine, tile size; runs in a worker thread
``nuclib.napari.samples``    sample data: the images of ``nuclib.samples``
``nuclib.napari.writer``     labels as a 16-bit TIFF (32-bit above 65535 ids)
============================ ===================================================

Example:
    >>> import napari                                          # doctest: +SKIP
    >>> viewer = napari.Viewer()                               # doctest: +SKIP
    >>> viewer.open_sample("nuclib", "fluorescence")           # doctest: +SKIP
    >>> viewer.window.add_plugin_dock_widget("nuclib", "Segment nuclei")  # doctest: +SKIP
"""

from __future__ import annotations

import os
import sys

__all__ = ["import_backend"]


def import_backend() -> None:
    """Import Keras (and its backend) so that its bundled LLVM binds to itself.

    On Linux without a GPU driver, napari draws with Mesa's llvmpipe, which
    loads Mesa's LLVM; TensorFlow (and jaxlib) carry their own LLVM, and a
    backend loaded after napari's canvas ran LLVM's start-up code against
    Mesa's copy and crashed. Loaded with ``RTLD_DEEPBIND`` its symbols bind
    within it first. Does nothing when Keras is already imported or off Linux.

    Example:
        >>> import_backend()                                    # doctest: +SKIP
    """
    if "keras" in sys.modules or not hasattr(os, "RTLD_DEEPBIND"):
        return
    flags = sys.getdlopenflags()
    sys.setdlopenflags(flags | os.RTLD_DEEPBIND)
    try:
        import keras  # noqa: F401
    finally:
        sys.setdlopenflags(flags)
