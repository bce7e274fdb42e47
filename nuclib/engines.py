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
``openvino``    OpenVINO's CPU plugin, float32                  ``pip install "nuclib[openvino]"``
``onnxruntime`` ONNX Runtime, CPU execution provider            ``pip install "nuclib[onnx]"``
``auto``        ``openvino`` when it is installed, else keras
==============  ==============================================  ================================

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

import importlib.util
import tempfile
import threading
from pathlib import Path

import numpy as np

__all__ = ["ENGINES", "check_engine", "resolve_engine", "make_engine", "is_keras_model",
           "Engine", "OpenVINOEngine", "ONNXRuntimeEngine"]

ENGINES = ("keras", "openvino", "onnxruntime", "auto")
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


def is_keras_model(model) -> bool:
    """Whether a compiled engine can convert ``model`` (a Keras model with ``export``).

    Example:
        >>> is_keras_model(np.tanh)
        False
    """
    return hasattr(model, "export") and hasattr(model, "layers") and hasattr(model, "inputs")


class Engine:
    """A compiled network: ``engine(batch) -> probabilities``, converted on first call.

    Args:
        model: the Keras model to convert (a functional model with one
            ``(None, None, None, C)`` input).

    Raises:
        ValueError: ``model`` is not a Keras model.

    Attributes:
        name: the engine's name.
        model: the Keras model.
        input_shape: the Keras model's input shape (TiledInferencer reads
            the channel count from it).
        multiple: the model's total stride (``nuclib.models.required_multiple``).
        overlap: its receptive-field radius
            (``nuclib.postprocess.tiling.receptive_field_radius``).
    """

    name = "engine"

    def __init__(self, model):
        from nuclib.models.utils import required_multiple
        from nuclib.postprocess.tiling import receptive_field_radius

        if not is_keras_model(model):
            raise ValueError(f"the {self.name} engine converts Keras models; got a "
                             f"{type(model).__name__} (use engine='keras' for other callables)")
        self.model = model
        self.input_shape = tuple(model.input_shape)
        self.multiple = required_multiple(model)
        self.overlap = receptive_field_radius(model)
        self._lock = threading.Lock()
        self._compiled = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model.name!r})"

    def _compile(self, folder: Path):  # pragma: no cover - abstract
        raise NotImplementedError

    def _run(self, compiled, batch: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def compiled(self):
        """The runtime's model, converted and compiled on the first call."""
        with self._lock:
            if self._compiled is None:
                with tempfile.TemporaryDirectory(prefix="nuclib-engine-") as folder:
                    self._compiled = self._compile(Path(folder))
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
        precision: OpenVINO's ``INFERENCE_PRECISION_HINT``: ``"f32"`` (the
            default: the same numbers as Keras up to round-off) or ``"bf16"``
            (faster on CPUs with AVX512-BF16 or AMX, less exact).
        device: the OpenVINO device (``"CPU"``).

    Example:
        >>> engine = OpenVINOEngine(seg.model)                      # doctest: +SKIP
        >>> engine(np.zeros((1, 256, 256, 1), np.float32)).shape     # doctest: +SKIP
        (1, 256, 256, 3)
    """

    name = "openvino"

    def __init__(self, model, *, precision: str = "f32", device: str = "CPU"):
        check_engine("openvino")
        if precision not in ("f32", "bf16"):
            raise ValueError(f"precision must be 'f32' or 'bf16', got {precision!r}")
        super().__init__(model)
        self.precision = precision
        self.device = device
        self._local = threading.local()

    def _compile(self, folder: Path):
        import openvino as ov

        from nuclib.export import export_model

        xml = export_model(self.model, folder / "model.xml", format="openvino")
        core = ov.Core()
        # Read into memory: the temporary folder is deleted after compilation.
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

    def __init__(self, model, *, threads: int = 0):
        check_engine("onnxruntime")
        super().__init__(model)
        self.threads = int(threads)

    def _compile(self, folder: Path):
        import onnxruntime

        from nuclib.export import export_model

        path = export_model(self.model, folder / "model.onnx", format="onnx")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.threads
        session = onnxruntime.InferenceSession(path.read_bytes(), options,
                                               providers=["CPUExecutionProvider"])
        return session, session.get_inputs()[0].name

    def _run(self, compiled, batch):
        session, name = compiled
        return session.run(None, {name: batch})[0]


def make_engine(model, name: str = "keras"):
    """A batch predictor for ``model`` run by engine ``name``.

    Args:
        model: a Keras model (for ``keras``, any callable).
        name: one of ``ENGINES``; ``auto`` is resolved (``resolve_engine``).

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
    if name == "keras":
        return model
    return {"openvino": OpenVINOEngine, "onnxruntime": ONNXRuntimeEngine}[name](model)
