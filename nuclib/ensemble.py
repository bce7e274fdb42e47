"""Ensembles: one Segmenter whose network averages the probabilities of several models.

Members must see the same input and speak the same output: the same head
(and rays), input channels, normalization, inversion and training nucleus
size, so that one preprocessor and one zoom serve them all and their
probabilities mean the same thing. The ensemble's network is a single flat
Keras model: each member's graph is cloned onto one shared input with its
layers renamed ``member<i>_<name>``, and an ``Average`` layer takes the
mean. It is therefore saved, loaded (``safe_mode=True``), tiled, exported
and converted like any other nuclib network, and it runs every member in
one call.

Post-processing takes the first member's parameters unless given; tune
them for the ensemble with ``nuclib.postprocess.optimize_thresholds``, since
averaged maps are smoother than each member's.

Example:
    >>> import numpy as np
    >>> from nuclib import Segmenter
    >>> from nuclib.models import unet
    >>> a = Segmenter(unet(depth=2, filters=4, name="a"))
    >>> b = Segmenter(unet(depth=3, filters=4, name="b"))
    >>> both = ensemble([a, b], name="a+b")
    >>> both.predict(np.zeros((40, 48), np.uint8)).shape, both.about["members"]
    ((40, 48, 3), ['model', 'model'])
"""

from __future__ import annotations

from typing import Sequence

from nuclib.segmenter import Segmenter

__all__ = ["ensemble", "average_models", "SHARED_SETTINGS"]

# Settings every member must share: what goes into the network and what comes out.
SHARED_SETTINGS = ("head", "input_channels", "normalize", "invert", "diameter")


def average_models(models: Sequence, *, name: str = "ensemble"):
    """One flat Keras model that returns the mean of ``models``' outputs on one input.

    Args:
        models: functional Keras models with the same input channels and
            output channels (for example nuclib factories with one head).
        name: the model's name and the name of its ``Average`` layer's prefix.

    Returns:
        A ``keras.Model`` whose layers are copies of the members' layers
        (named ``member<i>_<layer name>``, weights copied), joined by one
        ``Average`` layer.

    Raises:
        ValueError: fewer than two models, or models whose input or output
            channels differ.

    Example:
        >>> from nuclib.models import unet
        >>> mean = average_models([unet(depth=2, filters=4), unet(depth=2, filters=8)])
        >>> mean.output_shape
        (None, None, None, 3)
    """
    import keras

    models = list(models)
    if len(models) < 2:
        raise ValueError(f"an ensemble needs at least two models, got {len(models)}")
    for attribute in ("input_shape", "output_shape"):
        channels = {tuple(m.inputs[0].shape)[-1] if attribute == "input_shape"
                    else tuple(m.outputs[0].shape)[-1] for m in models}
        if len(channels) != 1:
            raise ValueError(f"ensemble members differ in their {attribute.split('_')[0]} "
                             f"channels {sorted(channels)}; expected one value")
    channels = tuple(models[0].inputs[0].shape)[-1]
    image = keras.Input((None, None, channels), name=f"{name}_image")
    outputs = []
    for i, model in enumerate(models):
        def renamed(layer, prefix=f"member{i}_"):
            config = layer.get_config()
            config["name"] = prefix + layer.name
            return layer.__class__.from_config(config)

        copy = keras.models.clone_model(model, input_tensors=image, clone_function=renamed)
        # clone_model builds fresh layers from their configs: copy the weights across.
        copies = {layer.name: layer for layer in copy.layers}
        for original in model.layers:
            if original.weights:
                copies[f"member{i}_{original.name}"].set_weights(original.get_weights())
        outputs.append(copy.outputs[0])
    mean = keras.layers.Average(name=f"{name}_mean", dtype="float32")(outputs)
    return keras.Model(image, mean, name=name)


def ensemble(members: Sequence[Segmenter], *, name: str = "ensemble",
             postprocess: dict | None = None) -> Segmenter:
    """A Segmenter over several Segmenters that averages their probabilities.

    Args:
        members: two or more Segmenters with Keras models whose
            ``SHARED_SETTINGS`` are equal.
        name: the ensemble's name.
        postprocess: post-processing parameters; default: the first member's.

    Returns:
        A ``Segmenter`` with the averaged network (``average_models``), the
        first member's other settings (tiling, TTA, engine), and ``about``
        naming its ``members`` and their architectures.

    Raises:
        ValueError: fewer than two members, members that differ in a shared
            setting (named, with each member's value), or a member without a
            Keras model.

    Example:
        >>> seg = ensemble([nuclib.load_pretrained(d) for d in ("runs/a/model", "runs/b/model")])  # doctest: +SKIP
    """
    members = list(members)
    if len(members) < 2:
        raise ValueError(f"an ensemble needs at least two members, got {len(members)}")
    for key in SHARED_SETTINGS:
        values = [m.config[key] for m in members]
        if any(v != values[0] for v in values[1:]):
            raise ValueError(f"ensemble members differ in {key!r}: "
                             f"{', '.join(f'{m.name}: {v!r}' for m, v in zip(members, values))};"
                             f" members must share {SHARED_SETTINGS}")
    models = [m.model for m in members]
    if any(not hasattr(model, "layers") for model in models):
        raise ValueError("every ensemble member needs a Keras model (one loaded from a "
                         "directory is loaded now); got "
                         f"{[type(model).__name__ for model in models]}")
    first = members[0].config
    config = first.copy(name=name, postprocess=dict(first.postprocess if postprocess is None
                                                    else postprocess))
    about = {"architecture": "ensemble", "members": [m.name for m in members],
             "member_architectures": [m.about.get("architecture", type(m.model).__name__)
                                      for m in members],
             "description": f"mean of the probabilities of {', '.join(m.name for m in members)}"}
    return Segmenter(average_models(models, name="ensemble"), config, about=about)

