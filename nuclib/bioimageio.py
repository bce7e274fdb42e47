"""bioimage.io model packages: nuclib models in Fiji (deepImageJ), QuPath, ilastik and napari.

A bioimage.io package is one zip: a ``rdf.yaml`` description (written and
validated with ``bioimageio.spec``, in the spec's current model format) and
the files it names. ``export_bioimageio`` writes one for any nuclib model,
a zoo model or a user's own:

============================== =================================================
in the package                 what it is
============================== =================================================
weights                        Keras v3 (``model.keras``, the trained network),
                               ONNX (``weights.onnx``) and a TensorFlow
                               SavedModel (``tf_saved_model.zip``): the formats
                               deepImageJ, QuPath, ilastik and bioimageio.core run
input ``image``                axes ``batch, y, x, channel``; y and x any
                               multiple of the network's stride from a minimum
                               above twice the halo; raw intensities (float32)
preprocessing                  nuclib's percentile normalization as declared
                               steps: ``scale_range`` per image and channel, then
                               ``clip`` to [0, 1] (and ``scale_linear`` -1, +1
                               for a package made to invert, e.g. bright-field)
output ``probabilities``       the head's channels (``background, interior,
                               boundary`` for three-class models), same size as
                               the input, with ``halo`` = the receptive field
                               radius: tiles cropped by it equal the whole image
test tensors                   a bundled sample image at the model's nucleus
                               size, and the network's output for it
cover, README.md, nuclib.json  picture of the test tile and its nuclei; the model
                               card plus how to use the package; nuclib's settings
license, cite, training_data   as the model records them: DSB2018 only for models
                               trained on it (``nuclib.model_card.trained_on_dsb``)
============================== =================================================

What the package cannot carry is nuclib's post-processing (seeded
watershed, polygon NMS): its output is the probabilities, and the package's
description, README and ``config.nuclib`` say how nuclib turns them into
nuclei. Nor can it zoom: models trained at one nucleus size (the zoo's, 20
pixels) expect images at that size, as the README says.

Writing needs ``bioimageio.spec`` and, for ONNX weights, ``tf2onnx``:
``pip install "nuclib[bioimageio]"``. The package is assembled in a
temporary folder and moved into place; an existing file is never replaced
unless ``overwrite=True``.

Example:
    >>> import nuclib
    >>> from nuclib.bioimageio import export_bioimageio
    >>> export_bioimageio(nuclib.load_pretrained("dsb-3class"), "dsb-3class.zip")  # doctest: +SKIP
    PosixPath('dsb-3class.zip')
    >>> from bioimageio.core import test_model                  # doctest: +SKIP
    >>> test_model("dsb-3class.zip").status                      # doctest: +SKIP
    'passed'
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from nuclib.heads import DESCRIPTIONS
from nuclib.model_card import DSB_CITATION, model_card, trained_on_dsb

__all__ = ["WEIGHT_FORMATS", "INPUT_ID", "OUTPUT_ID", "package_path", "channel_names",
           "tile_sizes", "export_bioimageio"]

# The bioimage.io names of the weight formats written, the trained network first.
WEIGHT_FORMATS = ("keras_v3", "onnx", "tensorflow_saved_model_bundle")
INPUT_ID = "image"
OUTPUT_ID = "probabilities"
# The test tile's side at least (and the stride's multiple above the halo's minimum).
TEST_SIDE = 256
# The cover is at most this many pixels high (bioimage.io asks for < 500 kB, 2:1).
COVER_HEIGHT = 256

NUCLIB_URL = "https://github.com/nuclib/nuclib"
DSB_DOI = "10.1038/s41592-019-0612-7"
DSB_URL = "https://bbbc.broadinstitute.org/BBBC038"
DSB_AUTHORS = ("Juan C. Caicedo", "Allen Goodman", "Kyle W. Karhohs", "Anne E. Carpenter")
# The architecture papers, by nuclib factory name.
ARCHITECTURE_CITATIONS = {
    "unet": ("Ronneberger, Fischer and Brox. U-Net: Convolutional Networks for Biomedical "
             "Image Segmentation. MICCAI 2015.", "10.1007/978-3-319-24574-4_28"),
    "mobilenet_unet": ("Sandler et al. MobileNetV2: Inverted Residuals and Linear "
                       "Bottlenecks. CVPR 2018.", "10.1109/CVPR.2018.00474"),
    "star": ("Schmidt, Weigert, Broaddus and Myers. Cell Detection with Star-Convex "
             "Polygons. MICCAI 2018.", "10.1007/978-3-030-00934-2_30"),
}
# What each head's nuclei come from, for the 128-character output description.
_SHORT = {
    "three_class": "softmax background/interior/boundary; nuclib grows interior seeds by watershed",
    "binary": "sigmoid foreground; nuclib splits touching nuclei by a distance watershed",
    "star": "object probability, then ray distances; nuclib keeps polygons by NMS (StarDist)",
    "three_class_distance": "3-class softmax, then normalized edge distance; nuclib: watershed",
}


def package_path(path) -> Path:
    """The zip file ``export_bioimageio(..., path)`` writes: ``path`` with ``.zip`` added if missing.

    Args:
        path: the output as given (``~`` is expanded).

    Returns:
        The ``.zip`` path.

    Example:
        >>> str(package_path("out/dsb-3class")), str(package_path("m.zip"))
        ('out/dsb-3class.zip', 'm.zip')
    """
    path = Path(path).expanduser()
    return path if path.suffix.lower() == ".zip" else path.with_name(path.name + ".zip")


def channel_names(head: str, channels: int) -> list[str]:
    """The names of a head's output channels, in ``nuclib.heads`` order.

    Args:
        head: one of ``nuclib.heads.HEADS``.
        channels: the network's output channel count.

    Returns:
        One name per channel.

    Raises:
        ValueError: a channel count the head does not have.

    Example:
        >>> channel_names("three_class", 3)
        ['background', 'interior', 'boundary']
        >>> channel_names("star", 4)
        ['probability', 'ray0', 'ray1', 'ray2']
    """
    names = {"three_class": ["background", "interior", "boundary"], "binary": ["foreground"],
             "three_class_distance": ["background", "interior", "boundary", "distance"]}
    if head == "star":
        out = ["probability"] + [f"ray{k}" for k in range(channels - 1)]
    else:
        out = names.get(head)
    if out is None or len(out) != channels:
        raise ValueError(f"a {head!r} model with {channels} output channels; expected the "
                         f"head's {len(out) if out else '?'} channels ({out})")
    return out


def tile_sizes(multiple: int, halo: int) -> tuple[int, int]:
    """``(minimum, step)`` of the input's y and x sizes in the package.

    bioimage.io consumers crop ``halo`` pixels from each side of an output
    tile, so a tile must be larger than twice the halo; it must also be a
    multiple of the network's stride.

    Args:
        multiple: ``nuclib.models.required_multiple(model)``.
        halo: the receptive field radius.

    Returns:
        The smallest multiple of ``multiple`` above ``2 * halo``, and ``multiple``.

    Example:
        >>> tile_sizes(16, 107)
        (224, 16)
    """
    return multiple * -(-(2 * halo + 1) // multiple), multiple


def export_bioimageio(segmenter, path, *, weight_formats=WEIGHT_FORMATS, test_image=None,
                      diameter: float | None = None, invert: bool | None = None,
                      license: str | None = None, authors=None,
                      overwrite: bool = False) -> Path:
    """Write a bioimage.io model package (a ``.zip``) of a nuclib model.

    Steps:

    1. Checks: the output, the formats and their packages, the network.
    2. The test tile: a sample image (or ``test_image``) zoomed to the
       model's nucleus size, cropped to a valid tile; its normalization as
       the package declares it, and the network's output.
    3. The weights, the test tensors, the cover, the README and nuclib's
       settings, in a temporary folder.
    4. The description, validated by ``bioimageio.spec``, zipped with its
       files beside the output and moved into place.

    Args:
        segmenter: a ``nuclib.Segmenter`` with a Keras model (any engine).
        path: the output ``.zip`` (the suffix is added when missing).
        weight_formats: any of ``WEIGHT_FORMATS``; the Keras weights are the
            others' parent and always included.
        test_image: the test tensor's source, an array or image file;
            default the bundled fluorescence sample (``nuclib.samples``).
        diameter: the test image's nucleus size in pixels; default
            measured by the model (known for the bundled sample).
        invert: declare an inversion after the normalization (images with
            dark nuclei, such as bright-field). Default: the model's
            ``invert`` when it is fixed, else False (nuclib's "auto"
            inversion depends on the image, which a package cannot express).
        license: an SPDX identifier; default the model's ``license``, else
            ``CC0-1.0`` for models trained on DSB2018 (CC0 data), else none.
        authors: names (or ``{"name": ..., "affiliation": ...}`` dicts);
            default the model's ``authors``, else "nuclib developers" for
            DSB2018 models and "unknown" for others.
        overwrite: replace an existing output.

    Returns:
        The path of the zip written.

    Raises:
        ValueError: an unknown weight format, a package not installed (the
            message names the ``pip install``), a model without a Keras
            network, or an unusable test image.
        FileExistsError: the output exists and ``overwrite`` is False.

    Example:
        >>> from nuclib.models import unet
        >>> from nuclib.segmenter import Segmenter
        >>> seg = Segmenter(unet(depth=2, filters=4), {"name": "tiny-model"})
        >>> export_bioimageio(seg, "tiny.zip")                     # doctest: +SKIP
        PosixPath('tiny.zip')
    """
    # 1. Checks, before anything is computed.
    target = package_path(path)
    formats = _check_formats(weight_formats)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; pass overwrite=True to replace it")
    model = getattr(segmenter, "model", None)
    if not (hasattr(model, "export") and hasattr(model, "inputs")):
        raise ValueError(f"expected a Segmenter with a Keras model, got "
                         f"{type(segmenter).__name__} with {type(model).__name__}")
    config = segmenter.as_dict()
    invert = _invert(config, invert)

    from nuclib.models.utils import required_multiple
    from nuclib.postprocess.tiling import default_overlap

    channels = int(config["input_channels"])
    multiple, (halo, _) = required_multiple(model), default_overlap(model)
    minimum, step = tile_sizes(multiple, halo)

    # 2. The test tile, its declared normalization and the network's output.
    raw = _test_tile(segmenter, test_image, diameter, max(minimum, _round_up(TEST_SIDE, step)))
    x = _declared_preprocessing(raw, config, invert)
    probs = np.asarray(model.predict_on_batch(x[None]), np.float32)
    labels = segmenter.postprocess(probs[0])
    names = channel_names(config["head"], probs.shape[-1])

    target.parent.mkdir(parents=True, exist_ok=True)
    # Absolute: bioimageio.spec resolves the files' paths against the stage itself.
    stage = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent)).resolve()
    try:
        # 3. The files.
        np.save(stage / "test_input.npy", raw[None].astype(np.float32))
        np.save(stage / "test_output.npy", probs)
        _write_cover(stage / "cover.png", raw, labels)
        weights = _write_weights(model, stage, formats)
        (stage / "README.md").write_text(_readme(config, names, raw.shape, halo, minimum,
                                                 step, invert, int(labels.max())))
        (stage / "nuclib.json").write_text(json.dumps(_settings(config), indent=2,
                                                      default=_json_default) + "\n")
        # 4. The description, validated, and the zip.
        descr = _description(config, stage, weights, names, channels, halo, minimum, step,
                             invert, license, authors)
        from bioimageio.spec import save_bioimageio_package

        zipped = stage / target.name
        save_bioimageio_package(descr, output_path=zipped)
        from nuclib._files import set_default_permissions

        set_default_permissions(zipped)
        _move_into_place(zipped, target, overwrite)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return target


# --------------------------------------------------------------------------- checks
def _check_formats(weight_formats) -> tuple[str, ...]:
    from nuclib.export import require, require_format

    formats = (weight_formats,) if isinstance(weight_formats, str) else tuple(weight_formats)
    unknown = [f for f in formats if f not in WEIGHT_FORMATS]
    if unknown or not formats:
        raise ValueError(f"unknown weight formats {unknown or formats}; expected some of "
                         f"{WEIGHT_FORMATS}")
    require(("bioimageio.spec",), "bioimageio", "a bioimage.io package")
    if "onnx" in formats:
        require_format("onnx", "ONNX weights in a bioimage.io package")
    # The Keras weights are what the others were converted from: always there.
    return tuple(f for f in WEIGHT_FORMATS if f in formats or f == "keras_v3")


def _invert(config: dict, invert) -> bool:
    if invert is None:
        return config.get("invert") is True
    if not isinstance(invert, bool):
        raise ValueError(f"invert must be True, False or None, got {invert!r}")
    return invert


def _round_up(value: int, step: int) -> int:
    return step * -(-value // step)


# --------------------------------------------------------------------------- test tile
def _test_tile(segmenter, test_image, diameter, side: int) -> np.ndarray:
    """``(side, side, C)`` raw intensities of the model's channels at its nucleus size."""
    from nuclib.data.io import read_image
    from nuclib.data.normalize import model_channels
    from nuclib.data.scale import rescale_image, scale_for_diameter
    from nuclib.samples import DIAMETERS, sample_image

    config = segmenter.as_dict()
    if test_image is None:
        # The small sample when it covers the tile at the model's scale, else the large one.
        name = "fluorescence"
        image = sample_image(name)
        trained = config.get("diameter")
        factor = scale_for_diameter(DIAMETERS[name], trained) if trained else 1.0
        if min(image.shape[:2]) * factor < side:
            name = "fluorescence_large"
            image = sample_image(name)
        diameter = diameter or DIAMETERS.get(name)
    else:
        image = read_image(test_image) if isinstance(test_image, (str, os.PathLike)) \
            else np.asarray(test_image)
    x = model_channels(image, int(config["input_channels"]))
    trained = config.get("diameter")
    if trained:
        if diameter is None:
            diameter = segmenter.estimate_diameter(image, progress=False)
        if not (np.isfinite(diameter) and diameter > 0):
            raise ValueError("no nucleus found in the test image to measure its size; pass "
                             "diameter= or another test_image")
        x = rescale_image(x, scale_for_diameter(diameter, trained))
        if x.ndim == 2:
            x = x[..., None]
    # Centre crop; reflected padding for a small image (as nuclib's tiling pads).
    h, w = x.shape[:2]
    y0, x0 = max((h - side) // 2, 0), max((w - side) // 2, 0)
    x = x[y0:y0 + side, x0:x0 + side]
    pad = [(0, side - x.shape[0]), (0, side - x.shape[1]), (0, 0)]
    if any(p[1] for p in pad[:2]):
        x = np.pad(x, pad, mode="symmetric")
    return np.ascontiguousarray(x, np.float32)


def _declared_preprocessing(raw: np.ndarray, config: dict, invert: bool) -> np.ndarray:
    """The package's preprocessing as nuclib computes it: the test output's input.

    ``scale_range`` over y and x per channel is ``percentile_normalize``, then
    ``clip`` to [0, 1] as ``prepare_image`` does, then the optional inversion.
    """
    from nuclib.data.normalize import percentile_normalize

    norm = config["normalize"]
    x = percentile_normalize(raw, norm["low"], norm["high"], clip=True)
    return (1.0 - x if invert else x).astype(np.float32)


def _preprocessing(config: dict, invert: bool) -> list:
    from bioimageio.spec.model.v0_5 import (ClipDescr, ClipKwargs, ScaleLinearDescr,
                                            ScaleLinearKwargs, ScaleRangeDescr,
                                            ScaleRangeKwargs)

    norm = config["normalize"]
    steps = [ScaleRangeDescr(kwargs=ScaleRangeKwargs(
                 axes=["y", "x"], min_percentile=float(norm["low"]),
                 max_percentile=float(norm["high"]))),
             ClipDescr(kwargs=ClipKwargs(min=0.0, max=1.0))]
    if invert:
        steps.append(ScaleLinearDescr(kwargs=ScaleLinearKwargs(gain=-1.0, offset=1.0)))
    return steps


# --------------------------------------------------------------------------- files
def _write_cover(path: Path, raw: np.ndarray, labels: np.ndarray) -> None:
    """The test tile beside its nuclei's outlines, 2:1, at most ``COVER_HEIGHT`` high."""
    import cv2

    from nuclib.data.io import write_image
    from nuclib.viz import display_image, overlay_rgb

    image = raw[..., 0] if raw.shape[2] == 1 else raw
    left = np.round(display_image(image) * 255).astype(np.uint8)
    cover = np.concatenate([left, overlay_rgb(image, labels)], axis=1)
    if cover.shape[0] > COVER_HEIGHT:
        width = cover.shape[1] * COVER_HEIGHT // cover.shape[0]
        cover = cv2.resize(cover, (width, COVER_HEIGHT), interpolation=cv2.INTER_AREA)
    write_image(path, cover)


def _write_weights(model, stage: Path, formats) -> dict[str, Path]:
    """``{format: file}`` for each weight format, written into ``stage``."""
    import keras

    from nuclib.export import export_model

    out = {}
    out["keras_v3"] = stage / "model.keras"
    keras.saving.save_model(model, out["keras_v3"])
    if "onnx" in formats:
        out["onnx"] = export_model(model, stage / "weights.onnx")
    if "tensorflow_saved_model_bundle" in formats:
        out["tensorflow_saved_model_bundle"] = _write_saved_model(model, stage)
    return out


def _write_saved_model(model, stage: Path) -> Path:
    """A SavedModel whose ``serve`` endpoint returns ``{OUTPUT_ID: probabilities}``, zipped.

    Named input and output, because bioimage.io's TensorFlow runners (and
    deepImageJ) look the tensors up by name in the signature.
    """
    import contextlib
    import io

    import keras
    import tensorflow as tf

    folder = stage / "tf_saved_model"
    archive = keras.export.ExportArchive()
    archive.track(model)
    channels = int(model.inputs[0].shape[-1])
    spec = tf.TensorSpec((None, None, None, channels), tf.float32, name=INPUT_ID)
    archive.add_endpoint("serve", lambda image: {OUTPUT_ID: model(image, training=False)},
                         input_signature=[spec])
    with contextlib.redirect_stdout(io.StringIO()):
        archive.write_out(str(folder), verbose=False)
    zipped = stage / "tf_saved_model.zip"
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as zf:
        for item in sorted(folder.rglob("*")):
            zf.write(item, item.relative_to(folder).as_posix())
    shutil.rmtree(folder)
    return zipped


def _settings(config: dict) -> dict:
    """What nuclib needs to turn the package's output into nuclei, and where it came from."""
    from nuclib._version import __version__

    keys = ("name", "head", "input_channels", "normalize", "invert", "postprocess", "tiling",
            "diameter", "architecture", "architecture_args", "parameters", "license")
    out = {k: config[k] for k in keys if k in config}
    training = config.get("training") or {}
    out["training_data"] = training.get("data")
    out["nuclib_version"] = __version__
    return out


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def _readme(config, names, shape, halo, minimum, step, invert, n_test) -> str:
    """The model card, then how to use the package and what its output means."""
    head = config["head"]
    trained = config.get("diameter")
    norm = config["normalize"]
    card = model_card(config)
    # The card's Hub front matter belongs to the Hub, not to this page.
    if card.startswith("---"):
        card = card.split("\n---\n", 1)[-1].lstrip("\n")
    lines = [card.rstrip(), "", "## This bioimage.io package", "",
             f"- **input** `{INPUT_ID}`: axes batch, y, x, channel ({config['input_channels']} "
             f"channel{'s' if config['input_channels'] > 1 else ''}), float32 raw intensities; "
             f"y and x at least {minimum} and a multiple of {step}.",
             f"- **preprocessing**: the {norm['low']:g} and {norm['high']:g} percentiles of each "
             "image and channel mapped to 0 and 1 (`scale_range`), clipped to [0, 1]"
             + (", then inverted (1 - x) so dark nuclei become bright." if invert else
                ". Nuclei must be bright on a dark background (fluorescence); invert "
                "bright-field and stained images first, or export with `invert=True`."),
             f"- **output** `{OUTPUT_ID}`: {', '.join(names)} ({DESCRIPTIONS.get(head, head)}). "
             "The package stops at these probabilities: bioimage.io has no step for nuclib's "
             "post-processing.",
             f"- **tiling**: halo {halo} pixels (the network's receptive field radius); tiles "
             f"cropped by the halo on each side give the whole image's output exactly.",
             ]
    if trained:
        lines.append(f"- **nucleus size**: trained with nuclei zoomed to {trained:g} pixels "
                     "across. Rescale images so their nuclei are about that size before "
                     "running the package; nuclib measures and zooms by itself.")
    lines += ["", "### Nuclei from the probabilities", "",
              "nuclib turns the output into instance labels with the settings in "
              "`nuclib.json` (its `postprocess` table):", "",
              "```python", "import json, numpy as np", "from nuclib.postprocess.thresholds import KINDS",
              "settings = json.load(open(\"nuclib.json\"))",
              f"probs = np.load(\"test_output.npy\")[0]   # (H, W, {len(names)})",
              f"labels = KINDS[{head!r}](probs, **settings[\"postprocess\"])", "```", "",
              "or, with the nuclib model itself, all steps at once (zoom included): "
              f"`nuclib.load_pretrained({config.get('name', 'model')!r}).segment(image)`.", "",
              "## Validation", "",
              f"The package's test input is a {shape[0]} x {shape[1]} tile of a DSB2018 sample "
              "image bundled with nuclib"
              + (f", zoomed to {trained:g}-pixel nuclei" if trained else "")
              + f"; its test output is the Keras network's, in which nuclib finds {n_test} "
              "nuclei. `bioimageio test` runs the input through every weight format and "
              "compares the result with that output.",
              "Scores of the model on annotated images are in the model card above; measure "
              "it on your own with `nuclib evaluate`.", ""]
    return "\n".join(lines)


def _description(config, stage, weights, names, channels, halo, minimum, step, invert,
                 license, authors):
    """The ``bioimageio.spec`` model description of the files in ``stage``."""
    import keras
    import tensorflow as tf
    from bioimageio.spec import ValidationContext
    from bioimageio.spec.model import v0_5 as spec

    head = config["head"]
    dsb = "DSB2018" in str((config.get("training") or {}).get("data", ""))
    from_dsb = trained_on_dsb(config)
    name = str(config.get("name") or "model")
    trained = config.get("diameter")
    cites = [spec.CiteEntry(text="nuclib: cell nucleus segmentation with Keras 3.",
                            url=NUCLIB_URL)]
    if from_dsb:
        cites.append(spec.CiteEntry(text=DSB_CITATION, doi=DSB_DOI))
    paper = ARCHITECTURE_CITATIONS.get("star" if head == "star" else config.get("architecture"))
    if paper:
        cites.append(spec.CiteEntry(text=paper[0], doi=paper[1]))
    if license is None:
        license = config.get("license") or ("CC0-1.0" if dsb else None)
    if authors is None:
        authors = config.get("authors") or (["nuclib developers"] if from_dsb else ["unknown"])
    people = [spec.Author(**a) if isinstance(a, dict) else spec.Author(name=str(a))
              for a in authors]
    description = (f"nuclib {name}: {DESCRIPTIONS.get(head, head).split(';')[0]} for cell "
                   "nuclei in 2-D images"
                   + (f" at {trained:g}-pixel nuclei" if trained else "")
                   + ". Outputs probabilities; nuclib's post-processing "
                   "(README) turns them into instance labels.")
    space = spec.ParameterizedSize(min=minimum, step=step)
    inputs = [spec.InputTensorDescr(
        id=spec.TensorId(INPUT_ID),
        description=("raw image, nuclei bright" if not invert else "raw image, nuclei dark")
        + "; normalized by the declared preprocessing",
        axes=[spec.BatchAxis(),
              spec.SpaceInputAxis(id=spec.AxisId("y"), size=space),
              spec.SpaceInputAxis(id=spec.AxisId("x"), size=space),
              spec.ChannelAxis(channel_names=[spec.Identifier(n) for n in (
                  ["intensity"] if channels == 1 else ["red", "green", "blue"])])],
        test_tensor=spec.FileDescr(source=stage / "test_input.npy"),
        preprocessing=_preprocessing(config, invert))]
    outputs = [spec.OutputTensorDescr(
        id=spec.TensorId(OUTPUT_ID),
        description=_SHORT.get(head, head)[:128],
        axes=[spec.BatchAxis(),
              spec.SpaceOutputAxisWithHalo(id=spec.AxisId("y"), halo=halo,
                                           size=spec.SizeReference(
                                               tensor_id=spec.TensorId(INPUT_ID),
                                               axis_id=spec.AxisId("y"))),
              spec.SpaceOutputAxisWithHalo(id=spec.AxisId("x"), halo=halo,
                                           size=spec.SizeReference(
                                               tensor_id=spec.TensorId(INPUT_ID),
                                               axis_id=spec.AxisId("x"))),
              spec.ChannelAxis(channel_names=[spec.Identifier(n) for n in names])],
        test_tensor=spec.FileDescr(source=stage / "test_output.npy"))]
    backend = keras.backend.backend()
    entries = {"keras_v3": spec.KerasV3WeightsDescr(
        source=weights["keras_v3"], keras_version=spec.Version(keras.__version__),
        backend=(backend, spec.Version(_backend_version(backend))),
        comment="the trained network (nuclib's Keras model)")}
    if "onnx" in weights:
        import onnx

        opset = max(o.version for o in onnx.load(str(weights["onnx"]), load_external_data=False)
                    .opset_import if o.domain in ("", "ai.onnx"))
        entries["onnx"] = spec.OnnxWeightsDescr(source=weights["onnx"], opset_version=opset,
                                                parent="keras_v3",
                                                comment="converted by keras.Model.export (tf2onnx)")
    if "tensorflow_saved_model_bundle" in weights:
        entries["tensorflow_saved_model_bundle"] = spec.TensorflowSavedModelBundleWeightsDescr(
            source=weights["tensorflow_saved_model_bundle"],
            tensorflow_version=spec.Version(tf.__version__), parent="keras_v3",
            comment=f"keras.export.ExportArchive; endpoint 'serve' returns {{{OUTPUT_ID!r}: ...}}")
    tags = ["nuclei", "instance-segmentation", "2d", "fluorescence-light-microscopy", "nuclib",
            "keras", "tensorflow", "onnx", "deepimagej", "ilastik"]
    if config.get("architecture") in ("unet", "mobilenet_unet"):
        tags.append("unet")
    if dsb:
        tags.append("dsb2018")
    training_data = None
    if dsb:
        training_data = spec.DatasetDescr(
            name="DSB2018 nuclei (BBBC038v1)", license="CC0-1.0", source=DSB_URL,
            description=("2018 Data Science Bowl stage 1 training images with the "
                         "community-fixed masks: fluorescence, bright-field and histology."),
            cite=[spec.CiteEntry(text=DSB_CITATION, doi=DSB_DOI)], tags=["nuclei", "dsb2018"],
            authors=[spec.Author(name=n) for n in DSB_AUTHORS])
    with ValidationContext(root=stage, perform_io_checks=True):
        return spec.ModelDescr(
            name=_spec_name(name), description=description[:1024],
            authors=people, cite=cites, license=license, git_repo=NUCLIB_URL, tags=tags,
            covers=[spec.FileDescr(source=stage / "cover.png")],
            documentation=spec.FileDescr(source=stage / "README.md"),
            attachments=[spec.FileDescr(source=stage / "nuclib.json")],
            inputs=inputs, outputs=outputs, weights=spec.WeightsDescr(**entries),
            training_data=training_data,
            timestamp=spec.Datetime(datetime.datetime.now(datetime.timezone.utc)),
            config=spec.Config(bioimageio=spec.BioimageioConfig(
                                   architecture_type=str(config.get("architecture", "unet"))[:32],
                                   modality="fluorescence light microscopy",
                                   target_structure=["nuclei"], task="instance segmentation",
                                   model_parameter_count=config.get("parameters")),
                               nuclib=_settings(config)))


def _spec_name(name: str) -> str:
    """A name bioimage.io accepts: 5 to 128 of letters, digits, ``_+- ()``."""
    import re

    clean = re.sub(r"[^A-Za-z0-9_+\- ()]", "-", name)
    return (clean if len(clean) >= 5 else f"nuclib {clean}")[:128]


def _backend_version(backend: str) -> str:
    import importlib

    return importlib.import_module(backend).__version__


def _move_into_place(tmp: Path, target: Path, overwrite: bool) -> None:
    """Rename ``tmp`` to ``target`` atomically; never replace one unless ``overwrite``."""
    if overwrite:
        os.replace(tmp, target)
        return
    try:
        os.link(tmp, target)  # fails if target appeared meanwhile
    except FileExistsError:
        raise FileExistsError(f"{target} exists; pass overwrite=True to replace it") from None
    except OSError:  # a file system without hard links
        if target.exists():
            raise FileExistsError(f"{target} exists; pass overwrite=True to replace it") \
                from None
        os.replace(tmp, target)
