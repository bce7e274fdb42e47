"""Segment images with a pretrained model and plot the overlay.

Loads the pretrained ``dsb-3class`` model (the copy bundled with nuclib, so no
network; every file is checked against its pinned sha256 first), segments one
sample image of each modality in ``examples/data/``, prints the nucleus count
and the agreement with the hand-drawn labels, and draws:

* ``segment_overlay.png``: the nucleus outlines on the fluorescence image;
* ``segment_probabilities.png``: what the network sees (background,
  interior and boundary probabilities);
* ``segment_modalities.png``: fluorescence, histology and bright-field
  images with their outlines.

Run ``python examples/segment_pretrained.py`` (about a minute on a 2-core
CPU) or ``--fast`` (one small crop, seconds).
"""

from __future__ import annotations

from _common import SAMPLES, Example, crop, figure, pretrained_name


def main(argv=None) -> None:
    ex = Example(__doc__.splitlines()[0], argv)

    import nuclib
    from nuclib import viz
    from nuclib.data import read_image, read_labels
    from nuclib.data.scale import rescale_image
    from nuclib.metrics import matching

    segmenter = nuclib.load_pretrained(pretrained_name())
    print(segmenter)

    names = ["fluorescence"] if ex.fast else ["fluorescence", "histology", "brightfield"]
    results = {}
    for name in names:
        image = read_image(SAMPLES / f"{name}.png")
        truth = read_labels(SAMPLES / f"{name}_labels.png")
        if ex.fast:
            image, truth = crop(image, 96), crop(truth, 96)
        # The two halves of segmenter.segment(image): probabilities with the image zoomed
        # so nuclei have the model's size (measured), then labels at the image's size.
        pred = segmenter.predict_scaled(image)
        labels = segmenter.labels_from(pred)
        probs = rescale_image(pred.probs, shape=pred.shape)   # = segmenter.predict(image)
        score = matching(truth, labels, thresh=0.5)
        size = "" if pred.diameter is None else f", nuclei {pred.diameter:.0f} px across"
        print(f"{name:>13}: {image.shape} {image.dtype}{size} -> {int(labels.max())} nuclei "
              f"(hand-drawn: {len(set(truth[truth > 0].ravel()))}); at IoU 0.5 "
              f"precision {score.precision:.2f}, recall {score.recall:.2f}")
        results[name] = (image, truth, probs, labels, score)

    image, _, probs, labels, _ = results["fluorescence"]
    ex.save(viz.overlay(image, labels, color="instances", linewidth=1.2,
                        title=f"{segmenter.name}: {int(labels.max())} nuclei"),
            "segment_overlay")
    ex.save(viz.probability_panel(image, probs), "segment_probabilities")

    fig = figure((4.2 * len(results), 4.6))
    axes = fig.subplots(1, len(results), squeeze=False)[0]
    for ax, (name, (image, truth, _, labels, score)) in zip(axes, results.items()):
        viz.overlay(image, labels, ax=ax, color="yellow", linewidth=0.8,
                    title=f"{name}\n{int(labels.max())} nuclei, F1@0.5 = {score.f1:.2f}")
    ex.save(fig, "segment_modalities")
    ex.done()


if __name__ == "__main__":
    main()
