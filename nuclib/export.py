"""Export a model's network for other runtimes: ONNX, OpenVINO IR, TF SavedModel.

Built on Keras 3's ``keras.Model.export``. The exported network is the
Segmenter's Keras model alone, without pre- or post-processing: its input
``image`` is a float32 batch ``(N, H, W, C)`` normalized as
``Segmenter.preprocess`` does it, its output the ``(N, H, W, K)``
probabilities of ``Segmenter.predict`` (before any zoom). The batch size,
height and width are dynamic (the networks are fully convolutional); the
channel count is fixed. Height and width must be multiples of the model's
total stride, ``nuclib.models.required_multiple(model)`` (16 for the zoo's
depth-4 U-Net): pad the image (e.g. reflect) to a multiple and crop the
output, or tile as ``nuclib.postprocess.TiledInferencer`` does.

=============== ============================ ==================================
format          written                      needs (besides TensorFlow)
=============== ============================ ==================================
``onnx``        one ``.onnx`` file           ``tf2onnx``, ``onnx``:
                                             ``pip install "nuclib[onnx]"``
``openvino``    ``.xml`` + ``.bin`` beside   ``openvino``:
                                             ``pip install "nuclib[openvino]"``
``saved_model`` a SavedModel folder          nothing more
=============== ============================ ==================================

Files are written to a temporary sibling and renamed into place, so a
crash never leaves a half-written model under the final name, and an
existing output is never replaced unless ``overwrite=True``.

Example:
    >>> import nuclib
    >>> from nuclib.export import export_model
    >>> export_model(nuclib.load_pretrained("dsb-3class"), "dsb-3class.onnx")  # doctest: +SKIP
    PosixPath('dsb-3class.onnx')
    >>> import onnxruntime, numpy as np                          # doctest: +SKIP
    >>> session = onnxruntime.InferenceSession("dsb-3class.onnx")  # doctest: +SKIP
    >>> batch = np.zeros((1, 256, 256, 1), np.float32)             # doctest: +SKIP
    >>> session.run(None, {"image": batch})[0].shape               # doctest: +SKIP
    (1, 256, 256, 3)
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import shutil
import tempfile
import warnings
from pathlib import Path

__all__ = ["FORMATS", "INPUT_NAME", "export_model", "exported_paths", "require"]

FORMATS = ("onnx", "openvino", "saved_model")
INPUT_NAME = "image"

_KERAS_FORMAT = {"onnx": "onnx", "openvino": "openvino", "saved_model": "tf_saved_model"}
_SUFFIX = {"onnx": ".onnx", "openvino": ".xml", "saved_model": ""}
# Import names each format needs, and the extra that installs them.
_NEEDS = {"onnx": (("tf2onnx", "onnx"), "onnx"), "openvino": (("openvino",), "openvino"),
          "saved_model": ((), None)}


def require_format(format: str, what: str | None = None) -> None:
    """Raise ``ValueError`` naming the ``pip install`` unless ``format``'s packages are installed.

    Args:
        format: one of ``FORMATS``.
        what: how the message names the format (default ``export format 'onnx'``).

    Example:
        >>> require_format("saved_model")   # TensorFlow itself: nothing more to install
    """
    if format not in FORMATS:
        raise ValueError(f"unknown export format {format!r}; expected one of {FORMATS}")
    modules, extra = _NEEDS[format]
    if modules:
        require(modules, extra, what or f"export format {format!r}")


def traces_here() -> bool:
    """Whether this Keras backend can trace nuclib's networks for export: TensorFlow only
    (see ``require_tensorflow_backend``).

    Example:
        >>> import keras
        >>> traces_here() == (keras.backend.backend() == "tensorflow")
        True
    """
    import keras

    return keras.backend.backend() == "tensorflow"


def require_tensorflow_backend(what: str) -> None:
    """Raise ``ValueError`` unless Keras runs on TensorFlow, where nuclib's exports are traced.

    Keras exports through ``jax2tf`` on JAX and ``torch.jit.trace`` on PyTorch,
    and neither traces a U-Net with dynamic height and width (a concatenation of
    symbolic shapes, a 1x1 trace input). A model exported once on TensorFlow runs
    anywhere: the compiled engines read a cached conversion on any backend.

    Args:
        what: what needs it, for the message.

    Example:
        >>> import keras
        >>> if keras.backend.backend() == "tensorflow":
        ...     require_tensorflow_backend("export format 'onnx'")
    """
    import keras

    if not traces_here():
        raise ValueError(f"{what} is traced through TensorFlow, but Keras runs on "
                         f"{keras.backend.backend()!r}: "
                         "run it once with KERAS_BACKEND=tensorflow (a model directory's "
                         "conversion is cached and then runs on every backend), or use "
                         "engine='keras'")


def require(modules, extra: str, what: str) -> None:
    """Raise ``ValueError`` naming ``pip install "nuclib[extra]"`` unless all ``modules`` import.

    Only looks the modules up (``importlib.util.find_spec``); nothing is imported.

    Args:
        modules: import names, e.g. ``("openvino",)``.
        extra: the nuclib extra that installs them.
        what: what needs them, for the message (``"format 'onnx'"``).

    Raises:
        ValueError: a module is not installed.

    Example:
        >>> require(("json",), "onnx", "nothing")
        >>> require(("no_such_module_xyz",), "onnx", "format 'onnx'")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: format 'onnx' needs no_such_module_xyz, which is not installed: pip ...
    """
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ValueError(f"{what} needs {', '.join(missing)}, which "
                         f"{'is' if len(missing) == 1 else 'are'} not installed: "
                         f'pip install "nuclib[{extra}]"')


def exported_paths(path, format: str = "onnx") -> list[Path]:
    """Every path ``export_model(..., path, format=format)`` writes, main one first.

    The format's suffix (``.onnx``, ``.xml``) is appended when ``path`` lacks it;
    OpenVINO writes the weights (``.bin``) beside the ``.xml``.

    Args:
        path: the output path as given.
        format: one of ``FORMATS``.

    Returns:
        ``[main]`` or, for OpenVINO, ``[xml, bin]``.

    Raises:
        ValueError: an unknown format.

    Example:
        >>> [str(p) for p in exported_paths("out/model", "openvino")]
        ['out/model.xml', 'out/model.bin']
        >>> [str(p) for p in exported_paths("model.onnx", "onnx")]
        ['model.onnx']
    """
    if format not in FORMATS:
        raise ValueError(f"unknown export format {format!r}; expected one of {FORMATS}")
    path = Path(path).expanduser()
    suffix = _SUFFIX[format]
    if suffix and path.suffix != suffix:
        path = path.with_name(path.name + suffix)
    if format == "openvino":
        return [path, path.with_suffix(".bin")]
    return [path]


def _keras_model(segmenter_or_model):
    """The Keras model of a Segmenter (duck-typed: its ``.model``) or a Keras model."""
    model = segmenter_or_model
    if isinstance(model, (str, os.PathLike)):
        raise ValueError(f"expected a Segmenter or a Keras model, got the name {str(model)!r}; "
                         f"load it first: nuclib.load_pretrained({str(model)!r}).export(path)")
    if not hasattr(model, "inputs") and hasattr(getattr(model, "model", None), "inputs"):
        model = model.model  # a Segmenter
    if not (hasattr(model, "export") and hasattr(model, "inputs")):
        raise ValueError(f"expected a Segmenter or a Keras model, got "
                         f"{type(segmenter_or_model).__name__}")
    if len(model.inputs) != 1:
        raise ValueError(f"model {model.name!r} has {len(model.inputs)} inputs; nuclib exports "
                         "models with one image input")
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4 or not isinstance(shape[-1], int):
        raise ValueError(f"model {model.name!r} takes inputs of shape {shape}; expected "
                         "(batch, height, width, channels) with a fixed channel count")
    return model


def _input_signature(model):
    """One float32 input ``image`` of shape ``(None, None, None, C)``: any batch, any size."""
    import tensorflow as tf

    channels = int(model.inputs[0].shape[-1])
    return [tf.TensorSpec((None, None, None, channels), tf.float32, name=INPUT_NAME)]


def _move_into_place(tmp: Path, target: Path, overwrite: bool) -> None:
    """Rename ``tmp`` (a file or folder) to ``target``; never replace one unless ``overwrite``."""
    if tmp.is_dir():
        old = None
        if target.exists():
            if not overwrite:
                raise FileExistsError(f"{target} exists; pass overwrite=True to replace it")
            # The old export steps aside before the new one takes its name, and is
            # deleted only then: at every moment one complete export sits at target.
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
            old.rmdir()
            target.rename(old)
        tmp.rename(target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()
        return
    if overwrite:
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(tmp, target)  # atomic
        return
    try:
        os.link(tmp, target)  # atomic, and fails if target appeared meanwhile
    except FileExistsError:
        raise FileExistsError(f"{target} exists; pass overwrite=True to replace it") from None
    except OSError:  # a file system without hard links
        if target.exists():
            raise FileExistsError(f"{target} exists; pass overwrite=True to replace it") from None
        os.replace(tmp, target)
        return
    tmp.unlink()


def export_model(segmenter_or_model, path, *, format: str = "onnx",
                 overwrite: bool = False) -> Path:
    """Export the network of a Segmenter (or a Keras model) for another runtime.

    Calls ``keras.Model.export`` with a float32 input named ``image`` of
    shape ``(None, None, None, C)``: batch, height and width dynamic, the
    channel count fixed. Height and width must be multiples of
    ``nuclib.models.required_multiple(model)`` (16 for the zoo's U-Net).
    The output is the model's ``(N, H, W, K)`` probabilities; normalization
    (``Segmenter.preprocess``) and post-processing (``Segmenter.postprocess``)
    are not part of it.

    Args:
        segmenter_or_model: a ``Segmenter`` (anything with a Keras ``.model``)
            or a Keras model. For a zoo name or model directory, load it
            first: ``nuclib.load_pretrained(name).export(path)``. (This module
            knows networks only, so that the Segmenter and the engines can
            use it.)
        path: the output: a ``.onnx`` file, an OpenVINO ``.xml`` (its
            ``.bin`` is written beside it), or a SavedModel folder. The
            suffix is appended when missing (see ``exported_paths``).
        format: ``"onnx"``, ``"openvino"`` or ``"saved_model"``.
        overwrite: replace existing outputs.

    Returns:
        The main path written (the ``.onnx``, the ``.xml`` or the folder).

    Raises:
        ValueError: an unknown format, a model that is not a one-input image
            model, or the format's package not installed (the message names
            ``pip install "nuclib[onnx]"`` or ``"nuclib[openvino]"``).
        FileExistsError: an output exists and ``overwrite`` is False.

    Example:
        >>> from nuclib.models import unet
        >>> from nuclib.segmenter import Segmenter
        >>> seg = Segmenter(unet(depth=2, filters=4))
        >>> export_model(seg, "tiny.onnx")                       # doctest: +SKIP
        PosixPath('tiny.onnx')
    """
    targets = exported_paths(path, format)
    require_format(format)
    require_tensorflow_backend(f"export format {format!r}")
    if not overwrite:
        for target in targets:
            if target.exists():
                raise FileExistsError(f"{target} exists; pass overwrite=True to replace it")
    model = _keras_model(segmenter_or_model)
    main = targets[0]
    main.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{main.name}.", dir=main.parent))
    try:
        staged = [tmp / t.name for t in targets]
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            # Keras' and tf2onnx's prints, and Keras' own tf2onnx patch warning on NumPy 2
            warnings.filterwarnings("ignore", message=r".*np\.object", category=FutureWarning)
            model.export(str(staged[0]), format=_KERAS_FORMAT[format], verbose=False,
                         input_signature=_input_signature(model))
        from nuclib._files import set_default_permissions

        for item in staged:
            if item.is_dir():
                set_default_permissions(item, directory=True)
        # The weights before the graph: once the .xml is there, its .bin is too.
        for item, target in reversed(list(zip(staged, targets))):
            _move_into_place(item, target, overwrite)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return main
