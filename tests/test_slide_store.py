"""Whole slides into a zarr store: written by the workers, resumable, the one-process labels.

The slide is a 768x768 mosaic of nine 256x256 fluorescence images of
``val/``, stored as a zarr array (read on the workers); 512-pixel blocks cut
it into 9 to 16 blocks, so many nuclei lie near seams. One LocalCluster of
two worker processes serves the module.
"""

from __future__ import annotations

import csv
import pickle
import sys

import numpy as np
import pytest
from skimage.measure import label

zarr = pytest.importorskip("zarr")
distributed = pytest.importorskip("distributed")
cloudpickle = pytest.importorskip("cloudpickle")

import nuclib  # noqa: E402
from nuclib.data.io import read_image  # noqa: E402
from nuclib.distributed import local_client  # noqa: E402
from nuclib.metrics import matching  # noqa: E402
from nuclib.postprocess.slide_store import WORK_SUFFIX  # noqa: E402
from nuclib.postprocess.stitching import segment_dask, segment_large  # noqa: E402

TILE = 256
OPTIONS = dict(diameter=20, block_size=512, min_overlap=40, context=24, progress=False)

# Functions run on the workers (client.run) travel by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def seg():
    return nuclib.load_pretrained("dsb-3class")


@pytest.fixture(scope="module")
def mosaic(dsb_root) -> np.ndarray:
    with open(dsb_root / "manifest.csv") as file:
        ids = [r["id"] for r in csv.DictReader(file) if r["split"] == "val"
               and r["modality"] == "fluorescence" and (r["height"], r["width"]) == ("256", "256")]
    tiles = [read_image(dsb_root / "val" / "images" / f"{i}.png", as_gray=True) for i in ids[:9]]
    return np.ascontiguousarray(np.concatenate(
        [np.concatenate(tiles[r * 3:(r + 1) * 3], axis=1) for r in range(3)]))


@pytest.fixture(scope="module")
def slide(mosaic, tmp_path_factory):
    """The mosaic as a zarr array on disk, chunked unlike the blocks."""
    path = tmp_path_factory.mktemp("slide") / "slide.zarr"
    array = zarr.create_array(str(path), shape=mosaic.shape, chunks=(200, 200),
                              dtype=mosaic.dtype)
    array[:] = mosaic
    return zarr.open_array(str(path), mode="r")


@pytest.fixture(scope="module")
def reference(seg, mosaic) -> np.ndarray:
    """One process, in memory: Segmenter.segment_large as it was."""
    return seg.segment_large(mosaic, **OPTIONS)


@pytest.fixture(scope="module")
def client():
    with local_client(2) as client:
        yield client


@pytest.fixture
def received(monkeypatch):
    """The pickled size of every task result this process receives from the workers."""
    sizes = []
    original = distributed.Future.result

    def result(self, *args, **kwargs):
        value = original(self, *args, **kwargs)
        sizes.append(len(pickle.dumps(value)))
        return value

    monkeypatch.setattr(distributed.Future, "result", result)
    return sizes


def _loads() -> int:
    from nuclib import slides

    return slides._LOADS


def _assert_same_labels(reference: np.ndarray, labels: np.ndarray) -> None:
    assert labels.dtype == np.uint32 and labels.shape == reference.shape
    # The same nuclei, each once, ids unique across blocks and sequential.
    assert matching(reference, labels, 0.9).accuracy == 1.0
    np.testing.assert_array_equal(np.unique(labels), np.arange(int(reference.max()) + 1))
    # Even the ids: the same running offsets in block order.
    np.testing.assert_array_equal(labels, reference)


def test_workers_write_the_slide_into_zarr_and_only_counts_come_back(
        seg, slide, reference, client, received, tmp_path):
    out = seg.segment_large(slide, out=tmp_path / "labels.zarr", client=client, **OPTIONS)
    assert reference.max() > 100
    assert isinstance(out, zarr.Array) and out.attrs["nuclib"]["complete"] is True
    assert out.attrs["nuclib"]["nuclei"] == int(reference.max())
    _assert_same_labels(reference, out[:])
    # Nothing the size of the labels reached this process: one count per block,
    # nothing per core, and the work store is gone.
    assert received and max(received) < 1000 < reference.nbytes // 100
    assert not (tmp_path / ("labels.zarr" + WORK_SUFFIX)).exists()
    # Each worker process loaded the model once.
    assert set(client.run(_loads).values()) == {1}


def test_segment_dask_on_the_cluster_writes_into_zarr(slide, client, received, tmp_path):
    import dask.array as da

    darr = da.from_zarr(slide).rechunk(192)

    def threshold_label(block):
        return label(block > 60)

    expected = segment_dask(darr, threshold_label, min_overlap=40, progress=False,
                            scheduler="synchronous", on_large="ignore")
    out = segment_dask(darr, threshold_label, min_overlap=40, out=tmp_path / "d.zarr",
                       progress=False, on_large="ignore")  # the client is dask's scheduler
    assert out.chunks == (192, 192) and expected.max() > 100
    np.testing.assert_array_equal(out[:], expected)
    assert received == [] or max(received) < 1000  # dask.compute returns counts only


def test_in_this_process_the_zarr_route_gives_the_same_labels(seg, slide, reference, tmp_path):
    out = seg.segment_large(slide, out=tmp_path / "labels.zarr", **OPTIONS)
    _assert_same_labels(reference, out[:])


class _Flaky:
    """Threshold and label, dying at the ``fail``-th call (a killed run)."""

    identity = "threshold > 100"

    def __init__(self, fail=None):
        self.calls, self.fail = 0, fail

    def __call__(self, block):
        self.calls += 1
        if self.calls == self.fail:
            raise KeyboardInterrupt("killed")
        return label(block > 100)


@pytest.fixture(scope="module")
def spots() -> np.ndarray:
    rng = np.random.default_rng(3)
    image = np.zeros((600, 500), np.uint8)
    for y, x in rng.integers(0, (600, 500), (400, 2)):
        image[max(y - 4, 0):y + 4, max(x - 4, 0):x + 4] = 200
    return image


def test_a_killed_run_resumes_redoing_only_unfinished_blocks(spots, tmp_path):
    options = dict(block_size=128, min_overlap=24, on_large="ignore", progress=False)
    expected = segment_large(spots, _Flaky(), **options)
    path = tmp_path / "labels.zarr"
    with pytest.raises(KeyboardInterrupt):
        segment_large(spots, _Flaky(fail=20), out=path, **options)
    counts = zarr.open_group(str(path) + WORK_SUFFIX, mode="r")["count"][:]
    assert (counts >= 0).sum() == 19
    assert zarr.open_array(str(path)).attrs["nuclib"]["complete"] is False
    again = _Flaky()
    out = segment_large(spots, again, out=path, **options)
    assert again.calls == counts.size - 19  # the 19 done blocks are not redone
    np.testing.assert_array_equal(out[:], expected)
    assert not (tmp_path / ("labels.zarr" + WORK_SUFFIX)).exists()


def test_a_run_killed_while_writing_cores_writes_only_the_rest(spots, tmp_path, monkeypatch):
    from nuclib.postprocess import slide_store

    options = dict(block_size=128, min_overlap=24, on_large="ignore", progress=False)
    expected = segment_large(spots, _Flaky(), **options)
    original, written = slide_store._core_task, []

    def dying(*args):
        if len(written) == 7:
            raise KeyboardInterrupt("killed")
        written.append(args[5])
        return original(*args)

    monkeypatch.setattr(slide_store, "_core_task", dying)
    with pytest.raises(KeyboardInterrupt):
        segment_large(spots, _Flaky(), out=tmp_path / "l.zarr", **options)
    monkeypatch.setattr(slide_store, "_core_task", original)
    again = _Flaky()
    out = segment_large(spots, again, out=tmp_path / "l.zarr", **options)
    assert again.calls == 0  # every block was done: only the cores left are written
    np.testing.assert_array_equal(out[:], expected)


def test_a_complete_output_is_kept_unless_overwrite(spots, tmp_path):
    options = dict(block_size=128, min_overlap=24, on_large="ignore", progress=False)
    path = tmp_path / "labels.zarr"
    segment_large(spots, _Flaky(), out=path, **options)
    with pytest.raises(FileExistsError, match="complete result already.*overwrite=True"):
        segment_large(spots, _Flaky(), out=path, **options)
    segment_large(spots, _Flaky(), out=path, overwrite=True, **options)
    (tmp_path / "other.zarr").mkdir()
    with pytest.raises(FileExistsError, match="not a zarr array.*overwrite=True"):
        segment_large(spots, _Flaky(), out=tmp_path / "other.zarr", **options)


def test_an_unfinished_run_of_other_arguments_is_refused(spots, tmp_path):
    path = tmp_path / "labels.zarr"
    with pytest.raises(KeyboardInterrupt):
        segment_large(spots, _Flaky(fail=3), out=path, block_size=128, min_overlap=24,
                      on_large="ignore", progress=False)
    with pytest.raises(ValueError, match="unfinished run with other arguments.*min_overlap"):
        segment_large(spots, _Flaky(), out=path, block_size=128, min_overlap=20,
                      on_large="ignore", progress=False)


def test_a_client_needs_a_store_the_workers_share(spots, seg, client):
    with pytest.raises(ValueError, match="with a client, out must be a zarr array or a path"):
        segment_large(spots, label, block_size=128, min_overlap=24, client=client,
                      progress=False)
    memory = zarr.create_array(store={}, shape=spots.shape, chunks=(80, 80), dtype="uint32")
    with pytest.raises(ValueError, match="file system every worker sees.*MemoryStore"):
        segment_large(spots, label, block_size=128, min_overlap=24, out=memory, client=client,
                      progress=False)
    in_memory = nuclib.Segmenter(seg.model, seg.config)
    with pytest.raises(ValueError, match="has none; save it"):
        in_memory.segment_large(spots, out="never.zarr", client=client, **OPTIONS)
