"""Compiled kernel for star-convex distance targets (numba; loaded on first use).

Marching a ray pixel by pixel until it leaves its object cannot be
vectorized without materializing every (pixel, ray, step) triple, which is
40x the work numba does with early exits. The kernel follows StarDist's
reference implementation (``stardist.geometry.geom2d._py_star_dist``) step
for step, so targets agree with StarDist's to float32 precision.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def star_distances_kernel(labels: np.ndarray, n_rays: int) -> np.ndarray:  # pragma: no cover
    """``(H, W, n_rays)`` float32 distances; ray k points along angle 2πk/n (row += sin)."""
    h, w = labels.shape
    out = np.zeros((h, w, n_rays), np.float32)
    step = np.float32(2.0 * np.pi / n_rays)
    sin = np.empty(n_rays, np.float32)
    cos = np.empty(n_rays, np.float32)
    for k in range(n_rays):
        sin[k] = np.sin(np.float32(k) * step)
        cos[k] = np.cos(np.float32(k) * step)
    for i in range(h):
        for j in range(w):
            value = labels[i, j]
            if value <= 0:
                continue
            for k in range(n_rays):
                dy, dx = sin[k], cos[k]
                y, x = np.float32(0.0), np.float32(0.0)
                while True:
                    y += dy
                    x += dx
                    ii = int(np.round(i + y))
                    jj = int(np.round(j + x))
                    if ii < 0 or ii >= h or jj < 0 or jj >= w or labels[ii, jj] != value:
                        # The last step overshot the boundary: step back to its middle.
                        t = np.float32(1.0) - np.float32(0.5) / max(abs(dy), abs(dx))
                        y -= t * dy
                        x -= t * dx
                        out[i, j, k] = np.sqrt(y * y + x * x)
                        break
    return out
