"""Block-wise against whole-image labels on a mosaic of val/ fluorescence images.

For each diameter, ``seg.segment(mosaic, diameter=d)`` (the whole image) is
compared with ``seg.segment_large(mosaic, diameter=d, ...)`` and with the
naive block-wise route, ``stitching.segment_large(mosaic, lambda b:
seg.segment(b, diameter=d), ...)`` (each block normalized and zoomed on its
own), by ``matching`` at IoU 0.5 and 0.9. Times are relative to the
whole-image call in the same process.

Run from the repository root::

    python benchmarks/segment_large.py --side 2000 --block-size 768 --diameters 20 11.8
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from _common import print_table

from nuclib.evaluation import read_manifest

DSB = Path(os.environ.get("NUCLIB_DSB2018", Path(__file__).resolve().parents[2] / "shared" /
                          "data" / "dsb2018"))
TILE = 256


def mosaic(side: int) -> np.ndarray:
    """A side x side mosaic of the 256x256 fluorescence images of val/, repeated as needed."""
    from nuclib.data.io import read_image

    ids = [r["id"] for r in read_manifest(DSB, split="val", modality="fluorescence",
                                          height=256, width=256)]
    tiles = [read_image(DSB / "val" / "images" / f"{i}.png", as_gray=True) for i in ids]
    k = -(-side // TILE)
    rows = [np.concatenate([tiles[(r * k + c) % len(tiles)] for c in range(k)], axis=1)
            for r in range(k)]
    return np.ascontiguousarray(np.concatenate(rows)[:side, :side])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=2000)
    parser.add_argument("--block-size", type=int, default=768)
    parser.add_argument("--min-overlap", type=int, default=48)
    parser.add_argument("--context", type=int, default=32)
    parser.add_argument("--diameters", type=float, nargs="+", default=[20.0, 11.8])
    parser.add_argument("--quick", action="store_true", help="a 768 px mosaic, 512 px blocks")
    args = parser.parse_args()
    if args.quick:
        args.side, args.block_size = 768, 512
    import nuclib
    from nuclib.metrics import matching
    from nuclib.postprocess.stitching import segment_large as naive_blocks

    image = mosaic(args.side)
    seg = nuclib.load_pretrained("dsb-3class")
    rows = []
    for d in args.diameters:
        start = time.perf_counter()
        whole = seg.segment(image, diameter=d, progress=False)
        whole_s = time.perf_counter() - start
        routes = {
            "Segmenter.segment_large": lambda: seg.segment_large(
                image, diameter=d, block_size=args.block_size, min_overlap=args.min_overlap,
                context=args.context, progress=False),
            "naive blocks": lambda: naive_blocks(
                image, lambda b: seg.segment(b, diameter=d, progress=False),
                block_size=args.block_size, progress=False),
        }
        for name, run in routes.items():
            start = time.perf_counter()
            labels = run()
            seconds = time.perf_counter() - start
            rows.append({"diameter": d, "zoom": round(20 / d, 2) if abs(20 / d - 1) > 0.05
                         else 1.0, "route": name,
                         "nuclei (whole vs blocks)": f"{whole.max()} vs {labels.max()}",
                         "AP@0.5": round(matching(whole, labels, 0.5).accuracy, 3),
                         "AP@0.9": round(matching(whole, labels, 0.9).accuracy, 3),
                         "time vs whole": round(seconds / whole_s, 2)})
    print(f"\n### Block-wise vs whole image: {args.side}x{args.side} mosaic of val/ "
          f"fluorescence images, block_size {args.block_size}, min_overlap "
          f"{args.min_overlap}, context {args.context}\n")
    print_table(rows)


if __name__ == "__main__":
    main()
