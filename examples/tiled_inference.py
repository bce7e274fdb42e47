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

Run ``python examples/tiled_inference.py`` (about a minute on a 2-core CPU)
or ``--fast`` (a small mosaic, seconds).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from _common import Example, dsb_root, figure, modalities, pretrained_name


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


def tile_layout(length: int, tile: int, overlap: int, multiple: int):
    """Tile starts along one axis and the part of each tile that is kept.

    The layout ``TiledInferencer`` uses with ``blend="crop"``: the axis is
    padded to a multiple of the model's stride, tiles start on stride
    multiples and overlap by at least ``2 * overlap`` pixels, the last one is
    flush with the end, and each pixel is kept from the tile where it lies
    farthest from an inner edge.
    """
    padded = -(-length // multiple) * multiple
    if padded <= tile:
        return [0], [(0, length)]
    step = (tile - 2 * overlap) // multiple * multiple
    starts = list(range(0, padded - tile, step)) + [padded - tile]
    bounds = [0] + [(a + b + tile) // 2 for a, b in zip(starts[1:], starts[:-1])] + [length]
    return starts, list(zip(bounds[:-1], bounds[1:]))


def draw_tiles(ax, shape, tile: int, overlap: int, multiple: int, *, colors=("#00d5ff", "#ff9f1c")):
    from matplotlib.patches import Rectangle

    y_starts, y_kept = tile_layout(shape[0], tile, overlap, multiple)
    x_starts, x_kept = tile_layout(shape[1], tile, overlap, multiple)
    for i, y0 in enumerate(y_starts):
        for j, x0 in enumerate(x_starts):
            color = colors[(i + j) % 2]
            ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), tile, tile, fill=False, lw=0.8,
                                   ls="--", ec=color, alpha=0.7))
            (a, b), (c, d) = y_kept[i], x_kept[j]
            ax.add_patch(Rectangle((c - 0.5, a - 0.5), d - c, b - a, fill=False, lw=1.6,
                                   ec=color))
    return len(y_starts) * len(x_starts)


def main(argv=None) -> None:
    ex = Example(__doc__.splitlines()[0], argv)

    import nuclib
    from nuclib import viz
    from nuclib.data import folder_pairs
    from nuclib.metrics import matching

    segmenter = nuclib.load_pretrained(pretrained_name())
    root = dsb_root()
    modality = modalities(root)
    pairs = folder_pairs(root / "val")
    # fields of one kind (fluorescence) make a believable large image
    fluo = [p for p in pairs if modality.get(Path(p[0]).stem, "fluorescence") == "fluorescence"]
    if ex.fast:
        mosaic, truth = build_mosaic(fluo, 2, 2, size=(128, 128))
    else:
        big = [p for p in fluo if nuclib.data.read_labels(p[1]).shape == (520, 696)] or fluo
        mosaic, truth = build_mosaic(big, 2, 2)
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
    n_tiles = draw_tiles(left, mosaic.shape, tile, overlap, multiple)
    left.set_title(f"{left.get_title()}\n{n_tiles} tiles of {tile} px (dashed), kept cores "
                   f"(solid), {overlap} px context", fontsize="medium")
    # close-up around the first interior tile corner
    y_starts, y_kept = tile_layout(mosaic.shape[0], tile, overlap, multiple)
    x_starts, x_kept = tile_layout(mosaic.shape[1], tile, overlap, multiple)
    cy = y_kept[0][1] if len(y_kept) > 1 else mosaic.shape[0] // 2
    cx = x_kept[0][1] if len(x_kept) > 1 else mosaic.shape[1] // 2
    half = min(32 if ex.fast else 96, cy, cx, mosaic.shape[0] - cy, mosaic.shape[1] - cx)
    window = (slice(cy - half, cy + half), slice(cx - half, cx + half))
    viz.overlay(mosaic[window], labels[window], ax=right, color="instances", linewidth=1.2,
                title="close-up of a tile corner: nuclei on the seams are whole")
    right.axhline(half - 0.5, color="white", lw=0.8, ls=":")
    right.axvline(half - 0.5, color="white", lw=0.8, ls=":")
    ex.save(fig, "tiled_inference")
    ex.done()


if __name__ == "__main__":
    main()
