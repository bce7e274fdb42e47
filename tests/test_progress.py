"""One progress-bar behaviour: on by default, hidden inside another bar, log lines through it."""

from __future__ import annotations

import numpy as np
import pytest

from nuclib import progress
from nuclib.progress import progress_bar, write
from nuclib.segmenter import Segmenter
from tests.test_segmenter import disk_image, threshold_model


@pytest.fixture()
def bars(monkeypatch):
    """Every bar opened, as ``(desc, visible)``, in order; bars draw at once."""
    import tqdm.auto

    opened = []
    real = tqdm.auto.tqdm

    def recording(*args, **kwargs):
        opened.append((kwargs["desc"], not kwargs["disable"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(tqdm.auto, "tqdm", recording)
    monkeypatch.setattr(progress, "DELAY", 0)
    return opened


@pytest.fixture()
def sized():
    # 128-pixel tiles: the 160x200 test image zoomed x2 needs several.
    return Segmenter(threshold_model, {"diameter": 20, "tiling": {"tile_size": 128, "overlap": 0},
                                       "postprocess": {"min_size": 4}})


def test_a_bar_is_shown_by_default_and_can_be_switched_off(bars, capsys):
    assert list(progress_bar(range(3), desc="items")) == [0, 1, 2]
    assert "items" in capsys.readouterr().err
    list(progress_bar(range(3), desc="hidden", enabled=False))
    assert "hidden" not in capsys.readouterr().err
    assert bars == [("items", True), ("hidden", False)]


def test_quick_work_prints_nothing(capsys):
    # The real delay: a loop that ends within a second never draws its bar.
    list(progress_bar(range(3), desc="quick"))
    assert capsys.readouterr().err == ""


def test_segment_hides_the_sizing_passes_over_a_crop(bars, sized):
    sized.config["estimate_side"] = 96  # sized on a 96-pixel central crop
    image, _ = disk_image(5)  # 10-pixel nuclei: zoomed x2 for the final pass
    assert sized.segment(image).max() > 0
    assert [desc for desc, shown in bars if shown] == ["tiles"]
    assert len(bars) >= 2  # the sizing passes opened bars too, hidden


def test_passes_over_the_whole_image_are_the_prediction_and_show(bars, sized):
    image, _ = disk_image(5)  # smaller than the sizing window: no separate final pass
    sized.segment(image)
    assert bars and all(shown for _, shown in bars)
    before = len(bars)
    sized.segment(image, progress=False)
    assert len(bars) > before and not any(shown for _, shown in bars[before:])


def test_segment_many_shows_one_bar_over_images(bars, sized):
    image, _ = disk_image(5)
    sized.segment_many([image, image], diameter=10)
    assert [desc for desc, shown in bars if shown] == ["segmenting"]
    assert [desc for desc, shown in bars].count("tiles") == 2  # hidden inside


def test_a_failed_loop_does_not_hide_later_bars(bars):
    with pytest.raises(RuntimeError):
        for _ in progress_bar(range(3), desc="failing"):
            raise RuntimeError("bad file")
    with progress_bar(total=2, desc="next") as bar:
        bar.update(2)
    assert bars[-1] == ("next", True)


def test_a_single_step_shows_no_bar(bars):
    list(progress_bar(["one image"], desc="segmenting"))
    assert bars == [("segmenting", False)]


def test_switched_off_outer_bars_still_hide_the_inner_ones(bars):
    for _ in progress_bar(range(2), desc="outer", enabled=False):
        list(progress_bar(range(2), desc="inner"))
    assert not any(shown for _, shown in bars)


def test_log_lines_are_written_through_the_bar(capsys):
    with progress_bar(total=2, desc="files") as bar:
        write("a.png: 3 nuclei")
        bar.update(2)
    assert capsys.readouterr().out == "a.png: 3 nuclei\n"


def test_tiled_inference_shows_its_bar(bars):
    from nuclib.postprocess import TiledInferencer

    TiledInferencer(threshold_model, tile_size=16, overlap=2).predict(np.zeros((40, 40, 1)))
    assert bars == [("tiles", True)]
