"""segment_files on a real LocalCluster of worker processes: faults cost time, never a result.

One cluster of two worker processes serves the whole module. The images are
six small fluorescence images of ``val/`` plus one corrupt file, so every
run also shows that a bad file is reported and never stops the others.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
cloudpickle = pytest.importorskip("cloudpickle")

from nuclib import distributed as nd  # noqa: E402
from nuclib.cli import main  # noqa: E402
from nuclib.data.io import read_labels  # noqa: E402

# 256x256 fluorescence images of val/ with 16 to 56 nuclei.
IMAGES = ["20468e8779c43e089dc0ff30f25e6cf3872d5aa6a0fdad6f8aca382da43e8582",
          "2dd9d8c797fc695665326fc8fd0eb5cd292139fa478ccb5acb7fb352f7030063",
          "3852c7e45bd885b9537e276861ab50b99bb42f0f8e717d2f88174c62862ca3ff",
          "55ff2b0ec48b76e10c7ee18add5794005cd551697f96af865c763d50da78dd9c",
          "5953af5080d981b554529971903d8bee9871457a4361b51f04ba04f43793dd8f",
          "7c318172e976ae5a962c9c7a4e9fe46d7fb985765ddd3a3e2108e893a90b92b2"]
BROKEN = "broken.png"

# Functions run on the workers (client.run) travel by value: workers need not
# import this test module.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def inputs(dsb_root, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("inputs")
    for name in IMAGES:
        shutil.copy(dsb_root / "val" / "images" / f"{name}.png", folder / f"{name[:8]}.png")
    (folder / BROKEN).write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    return folder


@pytest.fixture(scope="module")
def reference(inputs, tmp_path_factory) -> dict[str, np.ndarray]:
    """Labels of a local run (no client), by input stem."""
    out = tmp_path_factory.mktemp("local")
    report = nd.segment_files(inputs, out, progress=False)
    assert report.counts == {"done": len(IMAGES), "failed": 1, "skipped": 0}
    return {Path(r.input).stem: read_labels(r.labels) for r in report.results
            if r.status == "done"}


@pytest.fixture(scope="module")
def client():
    with nd.local_client(2) as client:
        yield client


def _loads() -> int:
    from nuclib import distributed

    return distributed._LOADS


def _assert_complete(out: Path, reference: dict) -> None:
    """Exactly one complete labels file per good image, equal to the local run; nothing else."""
    expected = {f"{stem}_labels.tif" for stem in reference} | {nd.MANIFEST_NAME}
    assert {p.name for p in out.iterdir()} == expected  # no temporary file, no stray output
    for stem, labels in reference.items():
        np.testing.assert_array_equal(read_labels(out / f"{stem}_labels.tif"), labels)
    records = nd.read_manifest(out)
    statuses = {Path(k).stem: r.status for k, r in records.items()}
    assert statuses.pop(Path(BROKEN).stem) == "failed"
    assert set(statuses) == set(reference) and set(statuses.values()) <= {"done", "skipped"}


def test_a_local_run_reports_the_bad_file_and_segments_the_rest(inputs, reference, tmp_path):
    report = nd.segment_files(inputs, tmp_path, progress=False)  # again: all kept
    assert report.counts["failed"] == 1 and report.segmented == len(IMAGES)
    (bad,) = report.failed
    assert Path(bad.input).name == BROKEN and "cannot read image" in bad.reason
    assert all(r.nuclei == int(reference[Path(r.input).stem].max())
               for r in report.results if r.status == "done")
    lines = [json.loads(line) for line in report.manifest.read_text().splitlines()]
    assert len(lines) == len(IMAGES) + 1  # rewritten compactly: one line per input
    again = nd.segment_files(inputs, tmp_path, progress=False)
    assert again.segmented == 0  # what is done stays done; the bad file is retried
    assert again.counts == {"done": len(IMAGES), "failed": 1, "skipped": 0}


def test_a_killed_worker_costs_time_never_a_result(client, inputs, reference, tmp_path):
    # What a writer killed mid-write by an earlier run left behind.
    stale = tmp_path / f".{Path(IMAGES[0][:8]).stem}_labels.abcd1234.tif"
    stale.write_bytes(b"half a file")
    pids = client.run(os.getpid)
    killed = []

    def kill_a_busy_worker(record):
        if killed:
            return
        busy = [address for address, keys in client.processing().items() if keys]
        assert busy, "the test needs a worker still busy after the first result"
        os.kill(pids[busy[0]], signal.SIGKILL)
        killed.append(busy[0])

    report = nd.segment_files(inputs, tmp_path, client=client, progress=False,
                              on_result=kill_a_busy_worker)
    assert killed
    assert report.counts == {"done": len(IMAGES), "failed": 1, "skipped": 0}
    _assert_complete(tmp_path, reference)
    client.wait_for_workers(2)  # the nanny restarts the killed worker
    # Every worker process, the restarted one too, loaded the model once.
    assert set(client.run(_loads).values()) <= {0, 1}


_KILL_CLIENT = textwrap.dedent("""
    import os, signal, sys
    from distributed import Client
    from nuclib.distributed import segment_files

    def main():
        done = []
        def stop(record):  # kill -9 this client after two results
            done.append(record)
            if len(done) == 2:
                os.kill(os.getpid(), signal.SIGKILL)
        with Client(sys.argv[1]) as client:
            segment_files(sys.argv[2], sys.argv[3], client=client, progress=False,
                          on_result=stop)

    if __name__ == "__main__":
        main()
""")


def test_a_killed_client_then_a_rerun_finishes_redoing_only_unfinished_work(
        client, inputs, reference, tmp_path, capsys):
    script = tmp_path / "client.py"
    script.write_text(_KILL_CLIENT)
    out = tmp_path / "out"
    address = client.scheduler.address
    run = subprocess.run([sys.executable, str(script), address, str(inputs), str(out)],
                         capture_output=True, text=True)
    assert run.returncode == -signal.SIGKILL, run.stderr
    recorded = nd.read_manifest(out)
    assert 2 <= len(recorded) < len(IMAGES) + 1  # it died mid-run, results kept
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns)
              for p in out.glob("*_labels.tif")}
    assert len(before) < len(IMAGES)

    status = main(["segment", str(inputs), "--out", str(out), "--scheduler", address,
                   "--no-progress"])
    assert status == 1  # the broken file
    summary = capsys.readouterr().err
    segmented = int(summary.split("segmented ")[1].split(",")[0])
    assert 1 <= segmented <= len(IMAGES) - len(before)  # only what was not finished
    for name, stamp in before.items():  # finished files were not redone
        path = out / name
        assert (path.stat().st_ino, path.stat().st_mtime_ns) == stamp
    (script).unlink()
    _assert_complete(out, reference)


def _fill_the_disk() -> None:
    """Make every TIFF write on this worker fail half-way, as on a full disk."""
    import tifffile

    def full(path, *args, **kwargs):
        with open(path, "wb") as file:
            file.write(b"II*\x00 the first bytes")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    tifffile._nuclib_imwrite = getattr(tifffile, "_nuclib_imwrite", tifffile.imwrite)
    tifffile.imwrite = full


def _free_the_disk() -> None:
    import tifffile

    tifffile.imwrite = getattr(tifffile, "_nuclib_imwrite", tifffile.imwrite)


def test_a_write_error_is_reported_and_partial_files_removed(client, inputs, reference,
                                                             tmp_path, capsys):
    address = client.scheduler.address
    client.run(_fill_the_disk)
    try:
        status = main(["segment", str(inputs), "--out", str(tmp_path), "--scheduler", address,
                       "--no-progress"])
    finally:
        client.run(_free_the_disk)
    assert status == 1
    err = capsys.readouterr().err
    assert err.count("FAILED") == len(IMAGES) + 1
    assert err.count("No space left on device") == len(IMAGES)
    assert [p.name for p in tmp_path.iterdir()] == [nd.MANIFEST_NAME]  # no partial file
    records = nd.read_manifest(tmp_path)
    assert all(r.status == "failed" for r in records.values())
    # With room again, the same command retries the failures.
    assert main(["segment", str(inputs), "--out", str(tmp_path), "--scheduler", address,
                 "--no-progress"]) == 1
    _assert_complete(tmp_path, reference)


def test_a_local_write_error_is_reported_too(inputs, reference, tmp_path, monkeypatch):
    import tifffile

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(tifffile, "imwrite", full)
    report = nd.segment_files(inputs, tmp_path, progress=False)
    assert report.counts == {"done": 0, "failed": len(IMAGES) + 1, "skipped": 0}
    assert [p.name for p in tmp_path.iterdir()] == [nd.MANIFEST_NAME]


def test_a_cut_manifest_line_is_ignored(tmp_path):
    good = nd.FileResult("/a.png", "done", "/out/a_labels.tif", nuclei=3)
    (tmp_path / nd.MANIFEST_NAME).write_text(
        json.dumps(good.__dict__) + "\n" + '{"input": "/b.png", "stat')
    assert nd.read_manifest(tmp_path) == {"/a.png": good}


def test_output_names_are_the_cli_s():
    from nuclib import cli

    labels, overlay = nd.output_paths("in/x.png", "out", format="png", overlay=True)
    assert (labels.name, overlay.name) == (f"x{cli.LABEL_SUFFIX}.png", f"x{cli.OVERLAY_SUFFIX}.png")


@pytest.mark.parametrize("argv, message", [
    (["--workers", "0"], "expected at least 1 worker"),
    (["--workers", "2", "--scheduler", "tcp://x:1"], "not allowed with argument"),
])
def test_cluster_options_are_checked_before_anything_starts(argv, message, inputs, tmp_path,
                                                            capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["segment", str(inputs), "--out", str(tmp_path), *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_a_segmenter_object_cannot_be_sent_to_a_cluster(inputs, tmp_path):
    with pytest.raises(ValueError, match="every worker loads itself"):
        nd.segment_files(inputs, tmp_path, model=object(), client=object())
