"""Tiled inference on a large mosaic, with the tile grid drawn on it.

Builds a large image from DSB2018 validation images (a 2 x 2 mosaic of
520 x 696 fluorescence fields and their labels), segments it with the
pretrained ``dsb-3class`` through ``Segmenter.segment`` (which cuts it into
overlapping tiles with ``nuclib.postprocess.TiledInferencer``), and checks the
point of the overlap: the tiled probabilities equal a one-piece prediction,
so nuclei that cross tile borders come out whole.

Figure ``tiled_inference.png``: the mosaic with every tile (dashed) and the
part of it that is kept (solid; the rest is context, the model's
receptive-field radius), the segmented nuclei, and a close-up of a tile
corner.

Run ``python examples/tiled_inference.py`` (seconds on a 2-core CPU)
or ``--fast`` (a small mosaic, seconds).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from _common import Example, dsb_root, figure, pretrained_name

from nuclib.evaluation import read_modalities


def build_mosaic(pairs, rows: int, cols: int, size: tuple[int, int] | None = None):
    """Image and labels of ``rows x cols`` validation fields side by side (labels kept unique)."""
    from nuclib.data import read_image, read_labels
    from nuclib.data.normalize import to_grayscale

    images, labels = [], []
    offset = 0
    for image_path, label_path in pairs[: rows * cols]:
        image = to_grayscale(read_image(image_path))
        lab = read_labels(label_path).astype(np.uint32)
        if size is not None:
            image, lab = image[: size[0], : size[1]], lab[: size[0], : size[1]]
        lab[lab > 0] += offset
        offset = int(lab.max())
        images.append(image)
        labels.append(lab)
    h = min(im.shape[0] for im in images)
    w = min(im.shape[1] for im in images)
    grid = [[k * cols + j for j in range(cols)] for k in range(rows)]
    mosaic = np.block([[images[i][:h, :w] for i in row] for row in grid])
    truth = np.block([[labels[i][:h, :w] for i in row] for row in grid])
    return mosaic.astype(np.float32), truth


def kept_cores(starts: list[int], tile: int, length: int) -> list[tuple[int, int]]:
    """The part of each tile that is kept along one axis (``blend="crop"``).

    Neighbouring tiles share at least twice the overlap; the border between
    what each keeps lies in the middle of the shared part, so every kept pixel
    is at least ``overlap`` pixels from its tile's inner edges.
    """
    bounds = [0] + [(a + b + tile) // 2 for a, b in zip(starts[1:], starts[:-1])] + [length]
    return list(zip(bounds[:-1], bounds[1:]))


def tile_grid(inferencer, shape):
    """Tile shape, the tiles' (row, col) origins, and each axis' kept cores."""
    (tile_h, tile_w), origins = inferencer.tile_origins(shape)
    rows = sorted({y for y, _ in origins})
    cols = sorted({x for _, x in origins})
    return (tile_h, tile_w), origins, kept_cores(rows, tile_h, shape[0]), \
        kept_cores(cols, tile_w, shape[1])


def draw_tiles(ax, inferencer, shape, *, colors=("#00d5ff", "#ff9f1c")) -> int:
    """Draw every tile (dashed) and the core kept from it (solid); return the tile count."""
    from matplotlib.patches import Rectangle

    (tile_h, tile_w), origins, y_cores, x_cores = tile_grid(inferencer, shape)
    rows = sorted({y for y, _ in origins})
    cols = sorted({x for _, x in origins})
    for y0, x0 in origins:
        i, j = rows.index(y0), cols.index(x0)
        color = colors[(i + j) % 2]
        ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), tile_w, tile_h, fill=False, lw=0.8,
                               ls="--", ec=color, alpha=0.7))
        (a, b), (c, d) = y_cores[i], x_cores[j]
        ax.add_patch(Rectangle((c - 0.5, a - 0.5), d - c, b - a, fill=False, lw=1.6, ec=color))
    return len(origins)


def main(argv=None) -> None:
    ex = Example(__doc__.splitlines()[0], argv)

    import nuclib
    from nuclib import viz
    from nuclib.data import folder_pairs
    from nuclib.metrics import matching

    segmenter = nuclib.load_pretrained(pretrained_name())
    root = dsb_root()
    modality = read_modalities(root)
    pairs = folder_pairs(root / "val")
    # fields of one kind (fluorescence) make a believable large image
    fluo = [p for p in pairs if modality.get(Path(p[0]).stem, "fluorescence") == "fluorescence"]
    if ex.fast:
        mosaic, truth = build_mosaic(fluo, 2, 2, size=(128, 128))
    else:
        big = [p for p in fluo if nuclib.data.read_labels(p[1]).shape == (520, 696)] or fluo
        mosaic, truth = build_mosaic(big, 2, 2)
    if segmenter.config["diameter"]:
        # Zoom the mosaic once so its nuclei have the model's size: the tiles drawn below
        # are then the ones the model sees (Segmenter.segment would zoom by itself).
        from nuclib.data.scale import rescale_image, rescale_labels

        factor = segmenter.config["diameter"] / segmenter.estimate_diameter(mosaic)
        mosaic = rescale_image(mosaic, factor)
        truth = rescale_labels(truth, shape=mosaic.shape)
        print(f"zoomed by {factor:.2f} so that nuclei are {segmenter.config['diameter']:g} px "
              "across, as in training")
        segmenter = nuclib.Segmenter(segmenter.model, {**segmenter.config, "diameter": None})
    print(f"mosaic {mosaic.shape[0]} x {mosaic.shape[1]} px with {int(truth.max())} nuclei")

    inferencer = segmenter.inferencer()
    overlap, multiple = inferencer.overlap, inferencer.multiple
    tile = inferencer.tile_size[0]
    if ex.fast:  # a tile small enough that even the small mosaic is cut into 2 x 2 tiles
        tile = max(2 * overlap + multiple, (min(mosaic.shape) + 2 * overlap) // 2)
        tile = -(-tile // multiple) * multiple
    print(f"tiles of {tile} px; the model's receptive-field radius {overlap} px is the "
          f"context kept around each tile; stride {multiple}")

    started = time.perf_counter()
    probs = segmenter.predict(mosaic, tile_size=tile, progress=not ex.fast)
    tiled_seconds = time.perf_counter() - started
    whole = -(-max(mosaic.shape) // multiple) * multiple
    started = time.perf_counter()
    probs_whole = segmenter.predict(mosaic, tile_size=whole)
    whole_seconds = time.perf_counter() - started
    difference = float(np.abs(probs - probs_whole).max())
    print(f"tiled {tiled_seconds:.1f} s, one piece {whole_seconds:.1f} s; largest difference "
          f"between them {difference:.2e}")

    labels = segmenter.postprocess(probs)
    score = matching(truth, labels, thresh=0.5)
    print(f"{int(labels.max())} nuclei found; at IoU 0.5: precision {score.precision:.3f}, "
          f"recall {score.recall:.3f}")

    fig = figure((15, 6.6))
    left, right = fig.subplots(1, 2, width_ratios=[1.6, 1])
    viz.overlay(mosaic, labels, ax=left, color="yellow", linewidth=0.6,
                title=f"{int(labels.max())} nuclei, tiled: max |tiled - whole| = {difference:.1e}")
    tiled = segmenter.inferencer(tile_size=tile)
    n_tiles = draw_tiles(left, tiled, mosaic.shape)
    left.set_title(f"{left.get_title()}\n{n_tiles} tiles of {tile} px (dashed), kept cores "
                   f"(solid), {overlap} px context", fontsize="medium")
    # close-up of the tile corner whose seams cross the most nuclei
    _, _, y_cores, x_cores = tile_grid(tiled, mosaic.shape)
    corners = [(b, d) for _, b in y_cores[:-1] for _, d in x_cores[:-1]] or \
        [(mosaic.shape[0] // 2, mosaic.shape[1] // 2)]
    half = 32 if ex.fast else 80

    def crossing(corner):
        y, x = corner
        seams = np.concatenate([labels[y, max(x - half, 0):x + half],
                                labels[max(y - half, 0):y + half, x]])
        return len(np.unique(seams[seams > 0]))

    cy, cx = max(corners, key=crossing)
    half = min(half, cy, cx, mosaic.shape[0] - cy, mosaic.shape[1] - cx)
    window = (slice(cy - half, cy + half), slice(cx - half, cx + half))
    viz.overlay(mosaic[window], labels[window], ax=right, color="instances", linewidth=1.2,
                title="close-up of a tile corner (dotted: where kept cores meet)\n"
                      "nuclei on the seams come out whole")
    right.axhline(half - 0.5, color="white", lw=0.8, ls=":")
    right.axvline(half - 0.5, color="white", lw=0.8, ls=":")
    ex.save(fig, "tiled_inference")
    ex.done()


if __name__ == "__main__":
    main()
