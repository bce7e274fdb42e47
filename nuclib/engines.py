"""Inference engines: run a Segmenter's network with Keras, OpenVINO or ONNX Runtime.

An engine is a callable mapping a float32 batch ``(N, h, w, C)`` to the
``(N, h, w, K)`` probabilities, which ``nuclib.postprocess.TiledInferencer``
takes in place of the Keras model. The compiled engines convert the Keras
model once, on first use (``nuclib.export.export_model`` into a temporary
folder, read back into memory), and carry the Keras model's total stride
(``multiple``) and receptive-field radius (``overlap``) so that tiling is
identical to the Keras engine's.

==============  ==============================================  ================================
engine          runs the network with                           install
==============  ==============================================  ================================
``keras``       Keras (TensorFlow), ``predict_on_batch``        (always there)
``openvino``    OpenVINO's CPU plugin, bf16 where native        (a dependency of nuclib)
``onnxruntime`` ONNX Runtime, CPU execution provider            ``pip install "nuclib[onnx]"``
``auto``        ``openvino`` when it is installed, else keras
==============  ==============================================  ================================

The compiled engines convert on the TensorFlow backend (Keras's exports from
JAX and PyTorch cannot trace a U-Net of any size). On JAX or PyTorch, ``auto``
runs a model directory's cached conversion when there is one and Keras
otherwise; ``openvino`` and ``onnxruntime`` need the cached conversion.

A ``Segmenter`` built in code runs ``keras`` unless told otherwise; one loaded
from a model directory runs ``default_engine()``: ``$NUCLIB_ENGINE``, else
``auto``.

**Precision.** OpenVINO runs in bfloat16 where the CPU computes it natively
(AVX512-BF16 or AMX, ``cpu_computes_bfloat16``) and in float32 elsewhere
(``precision="auto"``); ``"f32"`` and ``"bf16"`` force one. Measured on
``dsb-3class`` (2 cores with AMX, ``python benchmarks/engines.py``): bf16
runs a 1024x1024 tile 2.4x faster than OpenVINO f32 (0.71 s against 1.68 s;
Keras 2.03 s); on all 67 ``val/`` images its labels score within 0.003 of
float32's (``docs/benchmarks.md``, "Engines").

**Cache.** Converting a Keras model (``nuclib.export.export_model``) takes
about ten seconds, so the converted file is kept on disk, keyed by a digest
of the model's architecture and weights (``model_digest``), in
``cache_dir()``: ``$NUCLIB_CACHE_DIR``, else ``$XDG_CACHE_HOME/nuclib``, else
``~/.cache/nuclib``, under ``engines/``. A later process with the same
model reads the file instead of converting (about 0.3 s). Entries are
written atomically, so a crash never leaves half a model there; a folder
that cannot be written is skipped with a warning (the conversion then
happens in memory, as before).

**Without Keras.** A model directory's converted network is found again
from the directory's files alone: ``remember_directory`` records, under a
digest of the directory's Keras files (``nuclib.model_dir.keras_files_digest``),
the loaded model's digest and what tiling needs (input shape, stride,
receptive field; ``network_facts``). ``engine_from_cache`` then builds the
engine from the converted file without importing Keras or TensorFlow, which
is most of a small job's time (``Segmenter.from_directory`` does this; the
Keras model is loaded only if something asks for ``segmenter.model``).

The OpenVINO engine compiles one model with dynamic batch, height and width
rather than one per tile shape: measured on ``dsb-3class`` (2 shared AVX2
cores, ``python benchmarks/engines.py``), a model reshaped and compiled for
the tile ran 1024x1024 tiles only 5% faster (1.78 s against 1.87 s; Keras
3.98 s) and 256x256 ones 15% faster (110 ms against 131 ms), but would cost a
compilation (about 0.4 s, and a slower first run) for every new tile shape,
that is for every new image size, which the dynamic model does not.

Example:
    >>> import numpy as np
    >>> from nuclib.models import unet
    >>> engine = make_engine(unet(depth=2, filters=4), "openvino")  # doctest: +SKIP
    >>> engine(np.zeros((1, 32, 32, 1), np.float32)).shape          # doctest: +SKIP
    (1, 32, 32, 3)
    >>> engine.multiple, engine.overlap                              # doctest: +SKIP
    (4, 23)
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np

__all__ = ["ENGINES", "PRECISIONS", "check_engine", "default_engine", "resolve_engine", "make_engine",
           "is_keras_model", "converts", "cpu_computes_bfloat16", "resolve_precision", "cache_dir",
           "model_digest", "network_facts", "remember_directory", "engine_from_cache",
           "Engine", "OpenVINOEngine", "ONNXRuntimeEngine"]

ENGINES = ("keras", "openvino", "onnxruntime", "auto")
PRECISIONS = ("auto", "f32", "bf16")
# /proc/cpuinfo flags of CPUs that compute bfloat16 natively.
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
# What each compiled engine needs: import names and the nuclib extra installing them.
_NEEDS = {"openvino": (("openvino",), "openvino"),
          "onnxruntime": (("onnxruntime", "onnx", "tf2onnx"), "onnx")}


def check_engine(name) -> None:
    """Raise ``ValueError`` for an unknown engine or one whose package is missing.

    Args:
        name: one of ``ENGINES``.

    Raises:
        ValueError: an unknown name, or ``openvino`` / ``onnxruntime`` not
            installed (the message names ``pip install "nuclib[openvino]"`` or
            ``"nuclib[onnx]"``).

    Example:
        >>> check_engine("keras")
        >>> check_engine("tensorrt")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: unknown engine 'tensorrt'; expected one of ('keras', 'openvino', ...
    """
    from nuclib.export import require

    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r}; expected one of {ENGINES} (openvino: "
                         f'pip install "nuclib[openvino]", onnxruntime: '
                         f'pip install "nuclib[onnx]")')
    if name in _NEEDS:
        modules, extra = _NEEDS[name]
        require(modules, extra, f"engine {name!r}")


def default_engine(saved: str | None = None) -> str:
    """The engine a model directory runs with when none is asked for:
    ``$NUCLIB_ENGINE``, else the one its ``nuclib.json`` names (``saved``:
    directories written before 0.2 may), else ``"auto"`` (OpenVINO when
    installed, else Keras).

    Raises:
        ValueError: the engine named is unknown (see ``check_engine``).

    Example:
        >>> import os
        >>> default_engine() == os.environ.get("NUCLIB_ENGINE", "auto")
        True
    """
    name = os.environ.get("NUCLIB_ENGINE") or saved or "auto"
    try:
        check_engine(name)
    except ValueError as err:
        where = "NUCLIB_ENGINE" if os.environ.get("NUCLIB_ENGINE") else "nuclib.json"
        raise ValueError(f"{where}: {err}") from None
    return name


def resolve_engine(name) -> str:
    """The engine that runs: ``auto`` becomes ``openvino`` when installed, else ``keras``.

    Args:
        name: one of ``ENGINES``.

    Returns:
        ``"keras"``, ``"openvino"`` or ``"onnxruntime"``.

    Raises:
        ValueError: see ``check_engine``.

    Example:
        >>> resolve_engine("keras")
        'keras'
    """
    check_engine(name)
    if name == "auto":
        return "openvino" if importlib.util.find_spec("openvino") is not None else "keras"
    return name


def cpu_computes_bfloat16(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX).

    Elsewhere bfloat16 is emulated, slower than float32.

    Args:
        cpuinfo: the Linux CPU description to read the instruction-set flags
            from (a missing file, as on macOS or Windows, counts as no).

    Example:
        >>> cpu_computes_bfloat16("/nonexistent")
        False
    """
    try:
        flags = set(Path(cpuinfo).read_text().split())
    except OSError:
        return False
    return any(flag in flags for flag in BF16_FLAGS)


def resolve_precision(precision) -> str:
    """``"f32"`` or ``"bf16"``: ``auto`` becomes bf16 where it is native, else f32.

    Args:
        precision: one of ``PRECISIONS``.

    Raises:
        ValueError: an unknown precision.

    Example:
        >>> resolve_precision("f32")
        'f32'
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected one of {PRECISIONS}")
    if precision == "auto":
        return "bf16" if cpu_computes_bfloat16() else "f32"
    return precision


def cache_dir() -> Path:
    """Where converted models are kept: ``$NUCLIB_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/nuclib``, else ``~/.cache/nuclib`` (then ``engines/``).

    Example:
        >>> cache_dir().name
        'engines'
    """
    root = os.environ.get("NUCLIB_CACHE_DIR")
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = Path(xdg) / "nuclib" if xdg else Path.home() / ".cache" / "nuclib"
    return Path(root) / "engines"


def model_digest(model) -> str:
    """sha256 of a Keras model's architecture and weights: the key of its cache entry.

    Two models with the same layers and weights get the same digest; a
    change to any weight changes it.

    Example:
        >>> from nuclib.models import unet
        >>> model = unet(depth=2, filters=4)
        >>> model_digest(model) == model_digest(model)
        True
    """
    digest = hashlib.sha256(model.to_json().encode())
    for weight in model.weights:
        array = np.ascontiguousarray(np.asarray(weight))
        digest.update(f"{weight.path}:{array.dtype}:{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def network_facts(model) -> dict:
    """What tiling needs of a Keras model, and its digest: kept beside its converted file.

    Returns:
        ``{"model_name", "model_digest", "input_shape", "multiple", "overlap",
        "approximate_layer"}`` (JSON-ready): the model's name, ``model_digest``,
        input shape, total stride (``nuclib.models.required_multiple``), and
        the tile overlap with the layer that makes tiles approximate, if any
        (``nuclib.postprocess.tiling.default_overlap``).

    Example:
        >>> from nuclib.models import unet
        >>> facts = network_facts(unet(depth=2, filters=4))
        >>> facts["input_shape"], facts["multiple"]
        ([None, None, None, 1], 4)
    """
    from nuclib.models.utils import required_multiple
    from nuclib.postprocess.tiling import default_overlap

    overlap, approximate_layer = default_overlap(model)
    return {"model_name": model.name, "model_digest": model_digest(model),
            "input_shape": list(model.input_shape), "multiple": int(required_multiple(model)),
            "overlap": int(overlap), "approximate_layer": approximate_layer}


def _directory_record(key: str) -> Path:
    return cache_dir() / "directories" / f"{key[:32]}.json"


def remember_directory(key: str, facts: dict) -> bool:
    """Record that the model directory with digest ``key`` holds the network ``facts``
    describes, so that ``engine_from_cache`` finds its converted file without Keras.

    Call it right after loading the directory, before anything can change the
    model's weights: the record says what the files hold.

    Args:
        key: ``nuclib.model_dir.keras_files_digest`` of the directory.
        facts: ``network_facts`` of the model loaded from it.

    Returns:
        Whether the record was written (False where the cache cannot be written).

    Example:
        >>> remember_directory(keras_files_digest(folder), network_facts(model))  # doctest: +SKIP
        True
    """
    path = _directory_record(key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
        with os.fdopen(fd, "w") as fh:
            json.dump(facts, fh)
        os.replace(tmp, path)
    except OSError:
        return False
    return True


def engine_from_cache(key: str, name: str, precision: str = "auto") -> Engine | None:
    """The compiled engine of a model directory whose conversion is cached, built
    without importing Keras; None when it is not cached (or ``name`` is ``keras``).

    Args:
        key: ``nuclib.model_dir.keras_files_digest`` of the directory.
        name: one of ``ENGINES`` (``auto`` is resolved).
        precision: the OpenVINO engine's (``PRECISIONS``).

    Example:
        >>> engine = engine_from_cache(keras_files_digest(folder), "openvino")  # doctest: +SKIP
        >>> engine.model is None, engine.multiple                               # doctest: +SKIP
        (True, 16)
    """
    name = resolve_engine(name)
    if name == "keras":
        return None
    try:
        facts = json.loads(_directory_record(key).read_text())
    except (OSError, ValueError):
        return None
    kind = OpenVINOEngine if name == "openvino" else ONNXRuntimeEngine
    path = _entry(kind.format, facts["model_digest"]) / kind.file_name
    if not path.is_file():
        return None
    options = {"precision": precision} if kind is OpenVINOEngine else {}
    return kind(None, converted=path, facts=facts, **options)


def _entry(fmt: str, digest: str) -> Path:
    return cache_dir() / f"{fmt}-{digest[:32]}"


def _cached_export(model, file_name: str, fmt: str, digest: str) -> Path | None:
    """The model converted to ``fmt``, from the cache or converted into it; None
    where the cache folder cannot be written (the caller converts in memory)."""
    from nuclib.export import export_model

    entry = _entry(fmt, digest)
    if (entry / file_name).is_file():
        return entry / file_name
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{entry.name}-", dir=entry.parent))
    except OSError as err:
        warnings.warn(f"cannot write the engine cache {entry.parent} ({err}); converting in "
                      f"memory (set NUCLIB_CACHE_DIR to a writable folder to keep it)",
                      stacklevel=4)
        return None
    try:
        export_model(model, staging / file_name, format=fmt)
        try:
            # Atomic: another process may have filled the entry meanwhile, then keep theirs.
            os.replace(staging, entry)
        except OSError:
            if not (entry / file_name).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return entry / file_name


def converts(model) -> bool:
    """Whether ``engine="auto"`` can convert ``model`` here: a Keras model, on the
    TensorFlow backend (``nuclib.export.require_tensorflow_backend``). Elsewhere
    ``auto`` runs Keras, unless a model directory's conversion is cached.

    Example:
        >>> converts(lambda batch: batch)
        False
    """
    from nuclib.export import traces_here

    return is_keras_model(model) and traces_here()


def is_keras_model(model) -> bool:
    """Whether a compiled engine can convert ``model`` (a Keras model with ``export``).

    Example:
        >>> is_keras_model(np.tanh)
        False
    """
    return hasattr(model, "export") and hasattr(model, "layers") and hasattr(model, "inputs")


def check_engine_runs(engine: str, model) -> None:
    """Raise ``ValueError`` when a compiled ``engine`` is asked to run something that is
    not a Keras model (it converts Keras models; ``keras`` and ``auto`` run any callable).

    Example:
        >>> check_engine_runs("openvino", np.tanh)
        Traceback (most recent call last):
        ...
        ValueError: engine 'openvino' converts Keras models; got a ufunc (use engine='keras' or 'auto')
    """
    if engine in ("openvino", "onnxruntime") and model is not None and not is_keras_model(model):
        raise ValueError(f"engine {engine!r} converts Keras models; got a "
                         f"{type(model).__name__} (use engine='keras' or 'auto')")


class Engine:
    """A compiled network: ``engine(batch) -> probabilities``, converted on first call.

    Args:
        model: the Keras model to convert (a functional model with one
            ``(None, None, None, C)`` input), or None with ``converted``.
        converted: an already converted file of this engine's format (from
            the cache, ``engine_from_cache``): no Keras model is needed.
        facts: ``network_facts`` of the model; required with ``converted``,
            else computed from ``model``.

    Raises:
        ValueError: ``model`` is not a Keras model, or neither a model nor a
            converted file with its facts is given.

    Attributes:
        name: the engine's name.
        model: the Keras model (None for an engine built from ``converted``).
        input_shape: the Keras model's input shape (TiledInferencer reads
            the channel count from it).
        multiple: the model's total stride (``nuclib.models.required_multiple``).
        overlap: its receptive-field radius
            (``nuclib.postprocess.tiling.default_overlap``).
        approximate_layer: the layer that makes tiles approximate, or None.
    """

    name = "engine"

    def __init__(self, model=None, *, converted: Path | None = None, facts: dict | None = None):
        if model is None:
            if converted is None or facts is None:
                raise ValueError(f"the {self.name} engine needs a Keras model, or a converted "
                                 f"file with its network_facts")
        elif not is_keras_model(model):
            raise ValueError(f"the {self.name} engine converts Keras models; got a "
                             f"{type(model).__name__} (use engine='keras' for other callables)")
        elif facts is None:
            facts = network_facts(model)
        self.model = model
        self.model_name = facts["model_name"]
        self.input_shape = tuple(facts["input_shape"])
        self.multiple = facts["multiple"]
        self.overlap = facts["overlap"]
        self.approximate_layer = facts.get("approximate_layer")  # absent in older caches
        self._converted = None if converted is None else Path(converted)
        self._lock = threading.Lock()
        self._compiled = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model_name!r})"

    # File name and nuclib.export format of the converted model.
    file_name = ""
    format = ""

    def _compile(self, path: Path):  # pragma: no cover - abstract
        raise NotImplementedError

    def _run(self, compiled, batch: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def compiled(self):
        """The runtime's model, converted (or read from the cache) and compiled on the first call."""
        from nuclib.export import export_model

        with self._lock:
            if self._compiled is None and self._converted is not None:
                self._compiled = self._compile(self._converted)
            if self._compiled is None:
                # The digest of the weights now, not the facts' (taken earlier): a
                # model changed in place since must not fill the other model's entry.
                path = _cached_export(self.model, self.file_name, self.format,
                                      model_digest(self.model))
                if path is not None:
                    self._compiled = self._compile(path)
                else:
                    with tempfile.TemporaryDirectory(prefix="nuclib-engine-") as folder:
                        path = export_model(self.model, Path(folder) / self.file_name,
                                            format=self.format)
                        self._compiled = self._compile(path)
            return self._compiled

    def __call__(self, batch) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if batch.ndim != 4 or batch.shape[-1] != self.input_shape[-1]:
            raise ValueError(f"{self.name} engine: expected a float32 batch (N, h, w, "
                             f"{self.input_shape[-1]}), got shape {batch.shape}")
        bad = [s for s in batch.shape[1:3] if s % self.multiple]
        if bad:
            raise ValueError(f"{self.name} engine: height and width {batch.shape[1:3]} must "
                             f"be multiples of {self.multiple} (the model's total stride)")
        return self._run(self.compiled(), batch)


class OpenVINOEngine(Engine):
    """The network compiled by OpenVINO's CPU plugin, dynamic in batch, height and width.

    Args:
        model: the Keras model.
        precision: OpenVINO's ``INFERENCE_PRECISION_HINT``: ``"auto"`` (the
            default: bf16 where the CPU computes it natively, else f32),
            ``"f32"`` (the same numbers as Keras up to round-off) or ``"bf16"``
            (2-3x faster on CPUs with AVX512-BF16 or AMX; probabilities
            within a few hundredths).
        device: the OpenVINO device (``"CPU"``).

    Example:
        >>> engine = OpenVINOEngine(seg.model)                      # doctest: +SKIP
        >>> engine(np.zeros((1, 256, 256, 1), np.float32)).shape     # doctest: +SKIP
        (1, 256, 256, 3)
    """

    name = "openvino"
    file_name = "model.xml"
    format = "openvino"

    def __init__(self, model=None, *, precision: str = "auto", device: str = "CPU",
                 converted: Path | None = None, facts: dict | None = None):
        check_engine("openvino")
        self.precision = resolve_precision(precision)
        super().__init__(model, converted=converted, facts=facts)
        self.device = device
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"OpenVINOEngine(model={self.model_name!r}, precision={self.precision!r})"

    def _compile(self, xml: Path):
        import openvino as ov

        core = ov.Core()
        # Read into memory: the file may be a temporary one, deleted after compilation.
        weights = ov.Tensor(np.fromfile(xml.with_suffix(".bin"), np.uint8))
        ov_model = core.read_model(xml.read_bytes(), weights)
        return core.compile_model(ov_model, self.device,
                                  {"INFERENCE_PRECISION_HINT": self.precision})

    def _run(self, compiled, batch):
        # One infer request per thread (a request runs one inference at a time).
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = compiled.create_infer_request()
        # ``share_inputs``: no copy of the (contiguous) batch; the outputs are copied.
        result = request.infer({0: batch}, share_inputs=True, share_outputs=False)
        return np.asarray(result[0])


class ONNXRuntimeEngine(Engine):
    """The network converted to ONNX (tf2onnx) and run by ONNX Runtime on the CPU.

    Args:
        model: the Keras model.
        threads: ONNX Runtime's intra-op threads (0: its default, one per
            physical core).

    Example:
        >>> engine = ONNXRuntimeEngine(seg.model)                   # doctest: +SKIP
        >>> engine(np.zeros((1, 256, 256, 1), np.float32)).shape     # doctest: +SKIP
        (1, 256, 256, 3)
    """

    name = "onnxruntime"
    file_name = "model.onnx"
    format = "onnx"

    def __init__(self, model=None, *, threads: int = 0, converted: Path | None = None,
                 facts: dict | None = None):
        check_engine("onnxruntime")
        super().__init__(model, converted=converted, facts=facts)
        self.threads = int(threads)

    def _compile(self, path: Path):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.threads
        session = onnxruntime.InferenceSession(path.read_bytes(), options,
                                               providers=["CPUExecutionProvider"])
        return session, session.get_inputs()[0].name

    def _run(self, compiled, batch):
        session, name = compiled
        return session.run(None, {name: batch})[0]


def make_engine(model, name: str = "keras", precision: str = "auto", *,
                facts: dict | None = None):
    """A batch predictor for ``model`` run by engine ``name``.

    Args:
        model: a Keras model (for ``keras``, any callable).
        name: one of ``ENGINES``; ``auto`` is resolved (``resolve_engine``).
        precision: the OpenVINO engine's (``PRECISIONS``); the other engines
            compute in float32.
        facts: ``network_facts`` of ``model`` when already known (not recomputed).

    Returns:
        ``model`` itself for ``keras``; an ``OpenVINOEngine`` or
        ``ONNXRuntimeEngine`` otherwise.

    Raises:
        ValueError: an unknown or uninstalled engine (see ``check_engine``).

    Example:
        >>> from nuclib.models import unet
        >>> model = unet(depth=2, filters=4)
        >>> make_engine(model, "keras") is model
        True
    """
    name = resolve_engine(name)
    resolve_precision(precision)
    if name == "keras":
        return model
    if name == "openvino":
        return OpenVINOEngine(model, precision=precision, facts=facts)
    return ONNXRuntimeEngine(model, facts=facts)
