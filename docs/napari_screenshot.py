"""The napari screenshot of the "Use nuclib models in other tools" page, taken headless.

Runs napari in a real (virtual) X display so that the canvas is drawn:
Xvfb is started when there is no DISPLAY (Debian: ``apt-get install xvfb
libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1``, the last three for Qt's xcb
platform). The widget segments the bundled
fluorescence sample with ``dsb-3class`` exactly as a user would (its worker
thread included), then the whole window is saved::

    python docs/napari_screenshot.py            # writes docs/img/napari-segment-nuclei.png
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "img" / "napari-segment-nuclei.png"


def main() -> int:
    server = None
    if not os.environ.get("DISPLAY"):
        read, write = os.pipe()
        server = subprocess.Popen([shutil.which("Xvfb") or "Xvfb", "-displayfd", str(write),
                                   "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
                                  pass_fds=(write,))
        os.close(write)
        with os.fdopen(read) as fh:
            os.environ["DISPLAY"] = ":" + fh.readline().strip()
    try:
        os.environ["QT_QPA_PLATFORM"] = "xcb"  # a real window: the canvas is drawn
        import napari
        from qtpy.QtCore import QEventLoop

        from nuclib.napari.samples import fluorescence
        from nuclib.napari.widget import SegmentWidget

        viewer = napari.Viewer(title="nuclib in napari")
        viewer.window.resize(1400, 820)
        data, kwargs, _ = fluorescence()[0]
        viewer.add_image(data, **kwargs)
        widget = SegmentWidget(viewer)
        viewer.window.add_dock_widget(widget, name="Segment nuclei", area="right")
        loop = QEventLoop()
        widget.finished.connect(lambda _status: loop.quit())
        widget.button.native.click()
        loop.exec()
        labels = viewer.layers["fluorescence nuclei"]
        labels.contour = 2  # outlines: the nuclei and the image under them both show
        viewer.reset_view()
        OUT.parent.mkdir(parents=True, exist_ok=True)
        viewer.screenshot(str(OUT), canvas_only=False, flash=False)
        print(f"{widget.status}; wrote {OUT}")
        viewer.close()
    finally:
        if server is not None:
            server.terminate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
