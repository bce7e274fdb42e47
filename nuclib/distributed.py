"""Many image files, on one machine or a Dask cluster, with a manifest and nothing lost.

``segment_files`` writes ``<stem>_labels.<format>`` (and, if asked,
``<stem>_overlay.png``, ``<stem>_colored.png`` and the head's probabilities
``<stem>_probabilities.tif``) for every input image into one output folder:
the names of ``nuclib segment``. Without a client it runs in this process; with a
``distributed.Client`` each file (or small batch of files, ``files_per_task``)
is a task, and the workers write the outputs themselves, so no label array
passes through the client. What keeps a crash from costing more than time:

* **Atomic outputs.** Every file is written to a temporary name in the
  output folder and renamed (``nuclib.data.io.write_labels``): a file under
  its final name is always complete. Temporary files a killed process left
  behind are removed at the start and the end of every run.
* **The manifest** (``nuclib-manifest.jsonl`` in the output folder) has one
  JSON line per input: ``done`` (with the nuclei count and diameter),
  ``failed`` (with the reason) or ``skipped`` (the output already existed).
  Lines are appended as results arrive, so a killed client loses none of
  the results it saw, and the file is rewritten compactly at the end.
* **Resuming.** An output that exists is kept (unless ``overwrite``), so a
  re-run redoes exactly the inputs without one: those that failed, and
  those a killed run never finished. A task whose worker dies is rerun on
  another worker by the Dask scheduler; one that keeps killing workers is
  reported as failed.
* **Bad files** are reported in the manifest and the result, never stop the
  run.

Each worker process loads the model once (and keeps it for the following
tasks and runs); dask and distributed are imported only when a client is used.

Example:
    >>> from distributed import Client                            # doctest: +SKIP
    >>> report = segment_files("plates/", "results/", client=Client("tcp://head:8786"))  # doctest: +SKIP
    >>> report.counts                                              # doctest: +SKIP
    {'done': 99998, 'failed': 2, 'skipped': 0}
"""

from __future__ import annotations

import json
import os
import re
import socket
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

__all__ = ["segment_files", "FileResult", "FilesReport", "read_manifest", "local_client",
           "output_paths", "extra_output_paths", "write_probabilities", "MANIFEST_NAME",
           "LABEL_SUFFIX", "OVERLAY_SUFFIX", "COLORED_SUFFIX", "PROBABILITIES_SUFFIX"]

LABEL_SUFFIX = "_labels"
OVERLAY_SUFFIX = "_overlay"
COLORED_SUFFIX = "_colored"
PROBABILITIES_SUFFIX = "_probabilities"
MANIFEST_NAME = "nuclib-manifest.jsonl"
STATUSES = ("done", "failed", "skipped")
FORMATS = ("tif", "png")
# Options a file's segmentation takes besides post-processing parameters.
_TILING_OPTIONS = ("tile_size", "overlap")
_SEGMENT_OPTIONS = ("diameter", "tta", *_TILING_OPTIONS)
# tempfile.mkstemp's names: "<prefix><8 characters of this alphabet><suffix>".
_TEMP_TAIL = r"\.[a-z0-9_]{8}"


# ----------------------------------------------------------------------------- records
@dataclass(frozen=True)
class FileResult:
    """What happened to one input file.

    Attributes:
        input: the input file (absolute path).
        status: ``"done"`` (segmented, now or by an earlier run), ``"failed"``
            or ``"skipped"`` (its outputs already existed and were kept).
        labels: the labels file (``None`` when no output name could be given).
        overlay: the overlay file, or ``None`` without overlays.
        nuclei: nuclei found (``done`` only).
        diameter: the nucleus diameter used, in pixels (``done`` with a model
            trained at one nucleus size).
        reason: why it failed or was skipped.
        worker: who segmented it (``host:pid``, or the Dask worker's address).
        seconds: time spent on it by the worker.
        time: when the record was made (ISO 8601, local time).
        probabilities: the probabilities file, or ``None`` without them.
        colored: the coloured labels file, or ``None`` without it.

    Example:
        >>> FileResult("/in/a.png", "failed", reason="ValueError: cannot read image").status
        'failed'
    """

    input: str
    status: str
    labels: str | None = None
    overlay: str | None = None
    nuclei: int | None = None
    diameter: float | None = None
    reason: str | None = None
    worker: str | None = None
    seconds: float | None = None
    time: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S"))
    probabilities: str | None = None
    colored: str | None = None


@dataclass
class FilesReport:
    """The outcome of ``segment_files``: one ``FileResult`` per input, in input order.

    Attributes:
        results: the records.
        manifest: the manifest file in the output folder.
        segmented: inputs segmented by this run (the others were done before,
            skipped or failed).

    Example:
        >>> report = FilesReport([FileResult("/a.png", "done"), FileResult("/b.png", "failed",
        ...                                                                  reason="bad")],
        ...                      Path("out/nuclib-manifest.jsonl"))
        >>> report.counts, report.ok
        ({'done': 1, 'failed': 1, 'skipped': 0}, False)
    """

    results: list[FileResult]
    manifest: Path
    segmented: int = 0
    overlays_only: int = 0

    @property
    def counts(self) -> dict[str, int]:
        """``{"done": n, "failed": m, "skipped": k}``."""
        return {status: sum(r.status == status for r in self.results) for status in STATUSES}

    @property
    def failed(self) -> list[FileResult]:
        """The failed inputs' records."""
        return [r for r in self.results if r.status == "failed"]

    @property
    def ok(self) -> bool:
        """No input failed."""
        return not self.failed


def read_manifest(path) -> dict[str, FileResult]:
    """The last record of each input in a manifest (a file or the output folder holding it).

    A line cut short by a killed process is ignored; it is the last one, and
    the file it describes is either complete or absent.

    Args:
        path: ``nuclib-manifest.jsonl`` or the folder holding it.

    Returns:
        ``{input path: FileResult}``; empty when there is no manifest.

    Example:
        >>> read_manifest("/nonexistent")
        {}
    """
    path = Path(path)
    if path.is_dir() or not path.suffix:
        path = path / MANIFEST_NAME
    records: dict[str, FileResult] = {}
    if not path.is_file():
        return records
    names = set(FileResult.__dataclass_fields__)
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict) and data.get("status") in STATUSES and "input" in data:
            record = FileResult(**{k: v for k, v in data.items() if k in names})
            records[record.input] = record
    return records


class _Manifest:
    """Appends records as they arrive; rewrites the file compactly (atomically) at the end."""

    def __init__(self, folder: Path):
        self.path = folder / MANIFEST_NAME
        self.records = read_manifest(self.path)
        self._file = None

    def add(self, record: FileResult) -> None:
        self.records[record.input] = record
        if self._file is None:
            self._file = open(self.path, "a", encoding="utf-8")
        self._file.write(json.dumps(asdict(record)) + "\n")
        self._file.flush()  # a killed client keeps every line it wrote

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def rewrite(self) -> None:
        self.close()
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=self.path.suffix,
                                   dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                for record in self.records.values():
                    file.write(json.dumps(asdict(record)) + "\n")
            from nuclib._files import set_default_permissions

            set_default_permissions(tmp)
            os.replace(tmp, self.path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise


# ----------------------------------------------------------------------------- planning
def output_paths(image, out, *, format: str = "tif", overlay: bool = False):
    """The output files of one input: the names ``nuclib segment`` writes.

    Args:
        image: the input image file.
        out: the output folder.
        format: ``"tif"`` (32-bit labels) or ``"png"`` (16-bit).
        overlay: also name the overlay.

    Returns:
        ``(labels path, overlay path or None)``.

    Example:
        >>> output_paths("plate1/a01.tif", "results", overlay=True)
        (PosixPath('results/a01_labels.tif'), PosixPath('results/a01_overlay.png'))
    """
    stem = Path(image).stem
    out = Path(out)
    return (out / f"{stem}{LABEL_SUFFIX}.{format}",
            out / f"{stem}{OVERLAY_SUFFIX}.png" if overlay else None)


def extra_output_paths(image, out, *, probabilities: bool = False, colored: bool = False):
    """The optional outputs of one input besides labels and overlay (``nuclib segment``'s names).

    Args:
        image: the input image file.
        out: the output folder.
        probabilities: name the probabilities file (``--save-probabilities``).
        colored: name the coloured labels (``--colored-labels``).

    Returns:
        ``(probabilities path or None, coloured labels path or None)``.

    Example:
        >>> extra_output_paths("plate1/a01.tif", "results", probabilities=True, colored=True)
        (PosixPath('results/a01_probabilities.tif'), PosixPath('results/a01_colored.png'))
    """
    stem = Path(image).stem
    out = Path(out)
    return (out / f"{stem}{PROBABILITIES_SUFFIX}.tif" if probabilities else None,
            out / f"{stem}{COLORED_SUFFIX}.png" if colored else None)


def write_probabilities(path, probs) -> Path:
    """Write a head's probabilities as a float32 TIFF, channels last, atomically.

    The file is written to a temporary name beside ``path`` and renamed, as
    every output of ``segment_files`` (a crash never leaves half a file under
    the final name). ``tifffile.imread(path)`` and
    ``nuclib.data.read_image(path, channel="all")`` read it back as
    ``(H, W, K)``.

    Args:
        path: destination ending in ``.tif`` or ``.tiff``.
        probs: ``(H, W, K)`` (or ``(H, W)``, written as K = 1) probabilities,
            as ``Segmenter.predict`` returns them.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        ValueError: a name that is not a TIFF, or an array that is not HxW or HxWxK.

    Example:
        >>> write_probabilities("out/a01_probabilities.tif", seg.predict(image))  # doctest: +SKIP
        PosixPath('out/a01_probabilities.tif')
    """
    import numpy as np
    import tifffile

    from nuclib._files import write_atomically

    path = Path(path)
    if path.suffix.lower() not in (".tif", ".tiff"):
        raise ValueError(f"cannot write probabilities to {path}: expected a .tif or .tiff name "
                         "(float32 pixels)")
    data = np.asarray(probs, dtype=np.float32)
    if data.ndim == 2:
        data = data[..., None]
    if data.ndim != 3:
        raise ValueError(f"probabilities for {path} have shape {data.shape}; expected HxWxK")
    # One page of K samples per pixel (contiguous), whatever K is: tifffile's
    # shape metadata gives back (H, W, K), also for K = 1. The temporary name
    # is one _remove_stale_temporaries recognises.
    layout = {"planarconfig": "contig"} if data.shape[2] > 1 else {}
    return write_atomically(path, lambda tmp: tifffile.imwrite(
        tmp, data, photometric="minisblack", compression="zlib", **layout))


def _expand(inputs) -> list[Path]:
    from nuclib.data.io import IMAGE_SUFFIXES, list_images

    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    files: list[Path] = []
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            files += list_images(path) if any(
                p.suffix.lower() in IMAGE_SUFFIXES for p in path.iterdir()) else []
        elif path.exists():
            files.append(path)
        else:
            raise FileNotFoundError(f"input not found: {path} (expected image files or "
                                    "folders)")
    return list(dict.fromkeys(p.resolve() for p in files))  # each file once


@dataclass(frozen=True)
class _Job:
    """One input's work, sent to a worker: paths are strings (machine-independent).

    Each optional path is None when that output is not to be written (not
    asked for, or already there and kept).
    """

    image: str
    labels: str
    overlay: str | None
    segment: bool  # compute the labels (else read them, for what is drawn from them)
    probabilities: str | None = None  # run the model for these even if the labels exist
    colored: str | None = None

    @property
    def predict(self) -> bool:
        """Whether the model runs for this job."""
        return self.segment or self.probabilities is not None


def _plan(files, out: Path, manifest: _Manifest, *, format: str, overlay: bool,
          overwrite: bool, probabilities: bool = False, colored: bool = False):
    """``(jobs, records)``: what is left to do, and the records of what is not."""
    jobs, records, seen = [], [], {}
    for path in files:
        key = str(path)
        labels, over = output_paths(path, out, format=format, overlay=overlay)
        probs, colour = extra_output_paths(path, out, probabilities=probabilities,
                                           colored=colored)
        if path.stem in seen:
            records.append(FileResult(key, "failed", reason=(
                f"its name clashes with {seen[path.stem]}; outputs would overwrite each other "
                "(segment the folders into separate output folders)")))
            continue
        seen[path.stem] = path
        segment = overwrite or not labels.exists()
        draw = over is not None and (overwrite or not over.exists())
        # Probabilities and coloured labels are each written only where missing.
        probs_to_write = probs is not None and (overwrite or not probs.exists())
        colour_to_write = colour is not None and (overwrite or not colour.exists())
        if segment or draw or probs_to_write or colour_to_write:
            jobs.append(_Job(key, str(labels), None if over is None else str(over), segment,
                             str(probs) if probs_to_write else None,
                             str(colour) if colour_to_write else None))
            continue
        before = manifest.records.get(key)
        if before is not None and before.status == "done" and before.labels == str(labels):
            records.append(before)  # finished by an earlier run: keep its record
        else:
            records.append(FileResult(key, "skipped", str(labels),
                                      None if over is None else str(over),
                                      reason="outputs already exist (overwrite=True, or "
                                             "--overwrite, redoes them)",
                                      probabilities=None if probs is None else str(probs),
                                      colored=None if colour is None else str(colour)))
    return jobs, records


def _remove_stale_temporaries(out: Path, names: Iterable[Path]) -> int:
    """Remove the temporary files that a killed writer of these outputs left behind."""
    wanted = {}
    for path in names:
        wanted.setdefault(path.suffix.lower(), []).append(re.escape(path.stem))
    patterns = [re.compile(rf"^\.(?:{'|'.join(stems)}){_TEMP_TAIL}{re.escape(suffix)}$")
                for suffix, stems in wanted.items()]
    removed = 0
    for entry in os.scandir(out):
        if entry.name.startswith(".") and any(p.match(entry.name) for p in patterns):
            try:
                os.unlink(entry.path)
                removed += 1
            except FileNotFoundError:
                pass
    return removed


def _check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".nuclib-write-test.", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise OSError(f"cannot write into the output folder {out}: {err.strerror or err}; "
                      "expected a writable folder") from err


# ----------------------------------------------------------------------------- the work
_LOCK = threading.Lock()  # one model call at a time per process; loads guarded too
_SEGMENTERS: dict = {}
_LOADS = 0  # models this process has loaded (a worker loads each model once)


def _worker_segmenter(model, source: str, engine: str | None):
    """The process's segmenter for ``model``, loaded on first use."""
    global _LOADS
    if not isinstance(model, (str, Path)):
        return model  # a Segmenter given to a local run
    key = (str(model), source, engine)
    with _LOCK:
        if key not in _SEGMENTERS:
            from nuclib.zoo import load_pretrained

            _SEGMENTERS[key] = load_pretrained(str(model), source=source, engine=engine)
            _LOADS += 1
        return _SEGMENTERS[key]


def _check_options(segmenter, options: dict) -> dict:
    """Split ``segment_files``' options into segment and post-processing ones; check them."""
    from nuclib.postprocess.thresholds import check_postprocess

    segment = {k: options[k] for k in _SEGMENT_OPTIONS if options.get(k) is not None}
    post = {k: v for k, v in options.items() if k not in _SEGMENT_OPTIONS}
    post = check_postprocess(segmenter.head, post)
    diameter = segment.get("diameter")
    if diameter is not None:
        from nuclib.diameter import check_diameter

        check_diameter(diameter, segmenter.config["diameter"], segmenter.name)
    _check_tiling(segmenter, **{k: segment[k] for k in _TILING_OPTIONS if k in segment})
    return {**segment, **post}


def _check_tiling(segmenter, tile_size=None, overlap=None) -> dict:
    """The tiling overrides as ``predict_scaled`` takes them; raise ValueError if unusable.

    Checked twice: as settings (the model's tiling settings with these
    changed: whole numbers, an overlap below half the tile), then against
    the network (a tile side a multiple of its stride, room for the
    overlap), by building the inferencer the images will use. The same
    checks as ``nuclib segment --tile-size/--overlap``.
    """
    tiling = {k: v for k, v in (("tile_size", tile_size), ("overlap", overlap))
              if v is not None}
    if tiling:
        segmenter.config.copy(tiling=tiling)  # a copy: the worker's model keeps its own
        segmenter.inferencer(progress=False, **tiling).check_tiles()
    return tiling


def _check_on_worker(model, source, engine, options) -> dict:
    return _check_options(_worker_segmenter(model, source, engine), options)


def _who() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:{os.getpid()}"


def _process(job: _Job, segmenter, options: dict) -> FileResult:
    """Segment one file and write its outputs; a failure becomes a ``failed`` record."""
    from nuclib.data.io import read_image, read_labels, write_image, write_labels

    start = time.perf_counter()
    nuclei = diameter = None
    try:
        image = read_image(job.image)
        if job.predict:
            post = {k: v for k, v in options.items() if k not in _SEGMENT_OPTIONS}
            tiling = {k: options[k] for k in _TILING_OPTIONS if options.get(k) is not None}
            with _LOCK:  # threads of one worker share its model
                pred = segmenter.predict_scaled(image, diameter=options.get("diameter"),
                                                tta=options.get("tta"), progress=False,
                                                **tiling)
            # Outside the lock: another thread's network pass runs meanwhile.
            labels = segmenter.labels_from(pred, **post) if job.segment else None
            probs = (segmenter.postprocessor.probs_at_size(pred)
                     if job.probabilities is not None else None)
            if probs is not None:
                write_probabilities(job.probabilities, probs)
            if labels is not None:
                write_labels(job.labels, labels)
                nuclei = int(labels.max())
            diameter = pred.diameter
        if not job.segment:
            # The labels exist and are kept: what is drawn is drawn from them.
            labels = read_labels(job.labels)
        if job.overlay is not None:
            from nuclib.viz import overlay_rgb

            write_image(job.overlay, overlay_rgb(image, labels))
        if job.colored is not None:
            from nuclib.viz import colorize_labels

            write_image(job.colored, colorize_labels(labels))
    except Exception as err:  # one bad file never stops the run: it is reported
        return FileResult(job.image, "failed", job.labels, job.overlay,
                          reason=f"{type(err).__name__}: {err}", worker=_who(),
                          seconds=round(time.perf_counter() - start, 3),
                          probabilities=job.probabilities, colored=job.colored)
    if diameter is not None and diameter != diameter:  # nan: no nucleus to measure
        diameter = None
    return FileResult(job.image, "done", job.labels, job.overlay, nuclei=nuclei,
                      diameter=None if diameter is None else round(float(diameter), 3),
                      worker=_who(), seconds=round(time.perf_counter() - start, 3),
                      probabilities=job.probabilities, colored=job.colored)


def _run_jobs(jobs: list[_Job], model, source: str, engine, options: dict) -> list[dict]:
    """A task: segment a batch of files on a worker; return their records as dicts."""
    segmenter = _worker_segmenter(model, source, engine)
    return [asdict(_process(job, segmenter, options)) for job in jobs]


# ----------------------------------------------------------------------------- the API
def segment_files(inputs, out, *, model="dsb-3class", client=None, overwrite: bool = False,
                  progress: bool = True, format: str = "tif", overlay: bool = False,
                  probabilities: bool = False, colored: bool = False,
                  source: str = "auto", engine: str | None = None, files_per_task: int = 1,
                  max_pending: int | None = None,
                  on_result: Callable[[FileResult], None] | None = None,
                  **segment_options) -> FilesReport:
    """Segment image files into an output folder, locally or on a Dask cluster.

    Writes ``<stem>_labels.<format>`` (and ``<stem>_overlay.png`` with
    ``overlay``, ``<stem>_probabilities.tif`` with ``probabilities``,
    ``<stem>_colored.png`` with ``colored``) for each input, atomically, and
    records every input in the folder's manifest (``nuclib-manifest.jsonl``).
    Outputs that exist are kept unless ``overwrite``, so running the same
    call again finishes an interrupted run and retries the files that failed.

    Args:
        inputs: an image file, a folder (its images, sorted) or a list of both.
        out: the output folder (created).
        model: a zoo name, ``hf://owner/repo`` or a model directory, loaded
            once per worker process; without a client also a ``Segmenter``.
        client: a ``distributed.Client``; ``None`` runs in this process.
        overwrite: redo outputs that exist.
        progress: show a progress bar over files (``nuclib.progress``).
        format: label files as ``"tif"`` (32-bit) or ``"png"`` (16-bit).
        overlay: also write ``<stem>_overlay.png`` (drawn from the labels
            on disk when only the overlay is missing).
        probabilities: also write the head's probabilities at the image's
            size, ``<stem>_probabilities.tif`` (float32, channels last;
            ``write_probabilities``). Missing ones are predicted again,
            existing labels kept.
        colored: also write ``<stem>_colored.png``, each nucleus filled in
            its own colour (``nuclib.viz.colorize_labels``).
        source, engine: passed to ``nuclib.load_pretrained``.
        files_per_task: files per Dask task (more: less scheduling overhead
            for tiny images; fewer: finer load balancing and retries).
        max_pending: most tasks submitted at a time (default: four per
            worker thread), so millions of files never sit in the scheduler.
        on_result: called in this process with each ``FileResult`` as it
            arrives (e.g. to log, or to stop a run).
        **segment_options: ``diameter``, ``tta``, tiling (``tile_size``,
            ``overlap``, in pixels, as for ``Segmenter.predict_scaled``) and
            post-processing parameters (``min_size=30``, ...), as for
            ``Segmenter.segment``.

    Returns:
        A ``FilesReport`` (one record per input, the manifest's path).

    Raises:
        FileNotFoundError: an input that does not exist.
        OSError: the output folder cannot be written.
        ValueError: an unknown format, option or post-processing parameter,
            or a ``Segmenter`` object given with a client.
        ImportError: a client was given but ``distributed`` is missing.

    Example:
        >>> report = segment_files("images/", "results/", diameter=18)   # doctest: +SKIP
        >>> [r.reason for r in report.failed]                            # doctest: +SKIP
        ['ValueError: cannot read image images/broken.png: ...']
    """
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; expected one of {FORMATS}")
    if int(files_per_task) < 1:
        raise ValueError(f"files_per_task must be >= 1, got {files_per_task}")
    if client is not None and not isinstance(model, (str, Path)):
        raise ValueError(f"with a client, model must be a zoo name, hf://owner/repo or a model "
                         f"directory that every worker loads itself; got a "
                         f"{type(model).__name__}")
    if isinstance(model, (str, Path)) and Path(model).expanduser().is_dir():
        model = str(Path(model).expanduser().resolve())  # workers may run elsewhere
    if engine is None and isinstance(model, (str, Path)):
        from nuclib.engines import default_engine

        engine = default_engine()  # the client's choice: workers' environments may differ
    out = Path(out).resolve()
    files = _expand(inputs)
    _check_writable(out)
    manifest = _Manifest(out)
    formats = {output for path in files
               for output in (*output_paths(path, out, format=format, overlay=overlay),
                              *extra_output_paths(path, out, probabilities=probabilities,
                                                  colored=colored))
               if output}
    _remove_stale_temporaries(out, formats)
    jobs, records = _plan(files, out, manifest, format=format, overlay=overlay,
                          overwrite=overwrite, probabilities=probabilities, colored=colored)
    results = {r.input: r for r in records}
    report = FilesReport([], manifest.path)

    def arrived(record: FileResult, job: _Job) -> None:
        results[record.input] = record
        manifest.add(record)
        if record.status == "done":
            report.segmented += job.segment
            report.overlays_only += not job.segment and job.overlay is not None
        if on_result is not None:
            on_result(record)

    try:
        for record in records:
            manifest.add(record)
        if jobs:
            run = _run_local if client is None else _run_on_cluster
            run(jobs, client, model, source, engine, segment_options, arrived,
                files_per_task=int(files_per_task), max_pending=max_pending,
                progress=progress)
    finally:
        manifest.close()
        # Whatever a killed worker was writing when it died.
        _remove_stale_temporaries(out, formats)
    manifest.rewrite()
    report.results = [results[str(path)] for path in files]
    return report


def _run_local(jobs, client, model, source, engine, options, arrived, *, files_per_task,
               max_pending, progress) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from nuclib.progress import progress_bar

    segmenter = _worker_segmenter(model, source, engine)
    options = _check_options(segmenter, options) if any(j.predict for j in jobs) else {}
    # Two threads: while one holds the model (_process's lock), the other
    # post-processes and writes its file, so that work hides behind the network.
    # Results arrive in input order; at most two images are in memory.
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="nuclib-files")
    try:
        results = pool.map(lambda job: _process(job, segmenter, options), jobs)
        for job, record in zip(progress_bar(jobs, desc="segmenting", unit="image",
                                            enabled=progress), results):
            arrived(record, job)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # Ctrl-C: no new file starts


def _run_on_cluster(jobs, client, model, source, engine, options, arrived, *, files_per_task,
                    max_pending, progress) -> None:
    try:
        from distributed import as_completed
    except ImportError as err:  # pragma: no cover - exercised only without distributed
        raise ImportError("segment_files with a client needs distributed: "
                          "pip install 'nuclib[dask]'") from err
    from nuclib.progress import progress_bar

    if any(j.predict for j in jobs):
        # Checked on a worker (which loads the model it keeps anyway), before any
        # file is sent: a bad option fails once, not once per file.
        options = client.submit(_check_on_worker, model, source, engine, options,
                                pure=False).result()
    batches = [jobs[i:i + files_per_task] for i in range(0, len(jobs), files_per_task)]
    if max_pending is None:
        threads = sum(client.nthreads().values()) or 1
        max_pending = 4 * threads
    max_pending = max(int(max_pending), 1)
    pending = {}
    queue = iter(batches)

    def submit(n: int, running) -> None:
        for batch in queue:
            future = client.submit(_run_jobs, batch, model, source, engine, options,
                                   pure=False)
            pending[future] = batch
            running.add(future)
            n -= 1
            if n <= 0:
                return

    running = as_completed()
    submit(max_pending, running)
    with progress_bar(total=len(jobs), desc="segmenting", unit="image",
                      enabled=progress) as bar:
        for future in running:
            batch = pending.pop(future)
            try:
                records = [FileResult(**data) for data in future.result()]
            except Exception as err:  # the task itself died (e.g. it killed its workers)
                reason = f"{type(err).__name__}: {err}"
                if type(err).__name__ == "KilledWorker":
                    reason = (f"the worker processes running it died repeatedly ({err}); "
                              "the image may need more memory than a worker has")
                records = [FileResult(job.image, "failed", job.labels, job.overlay,
                                      reason=reason, probabilities=job.probabilities,
                                      colored=job.colored) for job in batch]
            finally:
                future.release()
            for job, record in zip(batch, records):
                arrived(record, job)
                bar.update(1)
            submit(1, running)


def local_client(workers: int, *, threads_per_worker: int = 1, **cluster_options):
    """A ``distributed.Client`` on a new ``LocalCluster`` of worker processes.

    Each worker is its own process with one thread by default: the model's
    own arithmetic already uses the cores it is given, and a worker that
    crashes takes only its own task with it. Close the client (``with``
    block) to stop the cluster.

    Args:
        workers: worker processes.
        threads_per_worker: threads per worker.
        **cluster_options: passed to ``distributed.LocalCluster``.

    Returns:
        A ``distributed.Client`` whose ``close()`` also closes the cluster.

    Raises:
        ValueError: fewer than one worker.
        ImportError: ``distributed`` is missing (``pip install 'nuclib[dask]'``).

    Example:
        >>> with local_client(2) as client:                              # doctest: +SKIP
        ...     segment_files("images/", "results/", client=client)
    """
    if int(workers) < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    try:
        from distributed import Client
    except ImportError as err:
        raise ImportError("local_client needs distributed: pip install 'nuclib[dask]'") from err
    settings = {"n_workers": int(workers), "threads_per_worker": int(threads_per_worker),
                "processes": True, "dashboard_address": None,
                # Workers start quietly: TensorFlow's C++ start-up lines are noise here.
                "env": {"TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}}
    settings.update(cluster_options)
    # A client that starts its own cluster closes it when it is closed.
    return Client(**settings)
