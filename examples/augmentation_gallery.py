"""Augmentation gallery: one image and its labels under every augmentation layer.

Applies each of nuclib's joint augmentation layers (``nuclib.data.augment``),
the Keras image-preprocessing layers that ``default_augment`` uses, and the
two ready-made chains (``default_augment``, ``strong_augment``) to the same
fluorescence image and its instance labels. Every panel shows the augmented
image with the augmented labels drawn as outlines, one colour per nucleus id:
geometry moves image and labels together, intensity changes leave the labels
alone, and ids survive (same colour, same nucleus).

Figure ``augmentation_gallery.png``. Any new ``Random*`` layer exported by
``nuclib.data.augment`` appears automatically (with its default arguments
unless ``SETTINGS`` below gives some).

Run ``python examples/augmentation_gallery.py`` (seconds) or ``--fast``
(a small crop).
"""

from __future__ import annotations

import numpy as np

from _common import SAMPLES, Example, figure

# Arguments that make each layer's effect visible at a glance (strong but realistic).
SETTINGS = {
    "RandomFlipRotate90": {},
    "RandomAffine": dict(rotation=30.0, scale=(1.2, 1.3), shear=10.0),
    "RandomGridElastic": dict(points=8, distortion=8.0),
    "RandomElastic": dict(alpha=(30.0, 40.0), sigma=5.0),
    "RandomCrop": dict(height=160, width=160),
    "RandomGamma": dict(gamma=(0.5, 0.5)),
    "RandomGaussianBlur": dict(sigma=(2.0, 2.0)),
    "RandomGaussianNoise": dict(stddev=(0.08, 0.08)),
    "RandomPoissonNoise": dict(peak=(20.0, 20.0)),
}


def layers_to_show(seed: int) -> dict:
    """``{panel title: layer}``: nuclib's layers, the Keras ones, and the two chains."""
    import keras

    from nuclib.data import augment

    shown = {}
    names = [n for n in augment.__all__ if n.startswith("Random")]
    for name in names:
        layer = getattr(augment, name)(**SETTINGS.get(name, {}), seed=seed)
        args = ", ".join(f"{k}={v}" for k, v in SETTINGS.get(name, {}).items())
        shown[f"{name}\n{args}" if args else name] = layer
    f32 = "float32"  # label ids must survive the Keras layers' float arithmetic exactly
    shown.update({
        "keras RandomFlip": keras.layers.RandomFlip("horizontal_and_vertical", seed=seed,
                                                    dtype=f32),
        "keras RandomRotation(0.5)": keras.layers.RandomRotation(0.5, fill_mode="reflect",
                                                                seed=seed, dtype=f32),
        "keras RandomZoom(-0.3, 0.3)": keras.layers.RandomZoom((-0.3, 0.3), fill_mode="reflect",
                                                              seed=seed, dtype=f32),
        "keras RandomContrast(0.3)": keras.layers.RandomContrast(0.3, value_range=(0, 1),
                                                                seed=seed, dtype=f32),
        "keras RandomBrightness(0.1)": keras.layers.RandomBrightness(0.1, value_range=(0, 1),
                                                                    seed=seed, dtype=f32),
        "default_augment()": augment.default_augment(seed=seed),
        "strong_augment()": augment.strong_augment(seed=seed),
    })
    return shown


def main(argv=None) -> None:
    ex = Example(__doc__.splitlines()[0], argv)

    from nuclib import viz
    from nuclib.data import JointAugment, JointLayer, prepare_image, read_image, read_labels

    side = 96 if ex.fast else 256
    image = prepare_image(read_image(SAMPLES / "fluorescence.png"))[:side, :side]
    labels = read_labels(SAMPLES / "fluorescence_labels.png")[:side, :side]
    if ex.fast:
        SETTINGS["RandomCrop"] = dict(height=64, width=64)
    batch = {"images": image[None], "labels": labels[None]}

    panels = {"original": (image, labels)}
    for title, layer in layers_to_show(seed=0).items():
        chain = layer if isinstance(layer, (JointAugment, JointLayer)) else JointAugment([layer])
        out = chain(batch, training=True)
        images, lab = np.asarray(out["images"])[0], np.asarray(out["labels"])[0]
        kept = set(np.unique(lab[lab > 0])) <= set(np.unique(labels))
        if not kept:
            raise AssertionError(f"{title}: the augmented labels hold ids the input does not")
        panels[title] = (np.clip(images, 0, 1), lab)
        print(f"{title.splitlines()[0]:>28}: image {images.shape}, {len(np.unique(lab)) - 1} "
              "nuclei (ids kept)")

    cols = 4
    rows = -(-len(panels) // cols)
    fig = figure((3.2 * cols, 3.45 * rows))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (title, (img, lab)) in zip(axes, panels.items()):
        viz.overlay(img[..., 0], np.maximum(lab, 0).astype(np.uint32), ax=ax,
                    color="instances", linewidth=0.7, normalize=False, title=title)
        ax.title.set_fontsize("small")
    for ax in axes[len(panels):]:
        ax.set_axis_off()
    ex.save(fig, "augmentation_gallery", dpi=72)
    ex.done()


if __name__ == "__main__":
    main()
