"""Compiled geometry of star-convex polygons: exact intersection areas and greedy NMS.

numba, because NMS is a greedy loop whose every step depends on the last
(which candidates are still alive), and NumPy cannot vectorize it.

Intersection areas are exact for star polygons, by Green's theorem: the
boundary of ``P ∩ Q`` is the part of ``P``'s boundary inside ``Q`` plus the
part of ``Q``'s boundary inside ``P``, so the area is the shoelace sum over
those pieces. Each edge is cut where it crosses the other polygon, and each
piece is kept when its midpoint lies inside (an O(1) test for a star
polygon: only the edge of the point's angular sector can separate it from
the centre). StarDist computes the same
areas with a polygon-clipping library.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def polygon_area(xs, ys):  # pragma: no cover
    """Shoelace area of a simple polygon, whatever its orientation."""
    n = xs.shape[0]
    total = 0.0
    for k in range(n):
        m = (k + 1) % n
        total += xs[k] * ys[m] - xs[m] * ys[k]
    return abs(total) * 0.5


@numba.njit(cache=True, nogil=True)
def _inside(px, py, xs, ys, cx, cy):  # pragma: no cover
    """Is (px, py) inside the star polygon with corners (xs, ys) around centre (cx, cy)?

    O(1), not O(R): corner k lies at angle 2πk/R from the centre, so only
    the edge of the point's angular sector can separate it from the centre.
    """
    n = xs.shape[0]
    theta = np.arctan2(py - cy, px - cx)
    if theta < 0.0:
        theta += 2.0 * np.pi
    k = int(theta * n / (2.0 * np.pi)) % n
    m = (k + 1) % n
    ex, ey = xs[m] - xs[k], ys[m] - ys[k]
    side_point = ex * (py - ys[k]) - ey * (px - xs[k])
    side_centre = ex * (cy - ys[k]) - ey * (cx - xs[k])
    return side_point * side_centre > 0.0


@numba.njit(cache=True, nogil=True)
def _boundary_inside(xs, ys, qx, qy, qcx, qcy, ts):  # pragma: no cover
    """Signed shoelace sum over the parts of polygon (xs, ys)'s edges inside star polygon q."""
    n, m = xs.shape[0], qx.shape[0]
    total = 0.0
    for k in range(n):
        ax, ay = xs[k], ys[k]
        bx, by = xs[(k + 1) % n], ys[(k + 1) % n]
        ex, ey = bx - ax, by - ay
        count = 0
        ts[count] = 0.0
        count += 1
        for j in range(m):
            cx, cy = qx[j], qy[j]
            fx, fy = qx[(j + 1) % m] - cx, qy[(j + 1) % m] - cy
            denom = ex * fy - ey * fx
            if denom == 0.0:
                continue
            t = ((cx - ax) * fy - (cy - ay) * fx) / denom
            u = ((cx - ax) * ey - (cy - ay) * ex) / denom
            if 0.0 < t < 1.0 and 0.0 <= u <= 1.0:
                ts[count] = t
                count += 1
        ts[count] = 1.0
        count += 1
        for a in range(2, count - 1):  # insertion sort: a few crossings, no allocation
            value = ts[a]
            b = a - 1
            while b >= 1 and ts[b] > value:
                ts[b + 1] = ts[b]
                b -= 1
            ts[b + 1] = value
        for c in range(count - 1):
            t0, t1 = ts[c], ts[c + 1]
            if t1 <= t0:
                continue
            tm = 0.5 * (t0 + t1)
            if _inside(ax + tm * ex, ay + tm * ey, qx, qy, qcx, qcy):
                x0, y0 = ax + t0 * ex, ay + t0 * ey
                x1, y1 = ax + t1 * ex, ay + t1 * ey
                total += x0 * y1 - x1 * y0
    return total


@numba.njit(cache=True, nogil=True)
def intersection_area(px, py, pcx, pcy, qx, qy, qcx, qcy):  # pragma: no cover
    """Exact area of the intersection of two star polygons (corners, then centre)."""
    ts = np.empty(max(px.shape[0], qx.shape[0]) + 2, np.float64)
    total = (_boundary_inside(px, py, qx, qy, qcx, qcy, ts)
             + _boundary_inside(qx, qy, px, py, pcx, pcy, ts))
    return abs(total) * 0.5


@numba.njit(cache=True, nogil=True)
def _disk_overlap(r1, r2, d):  # pragma: no cover
    """Area shared by two disks of radii r1, r2 whose centres are d apart."""
    if d >= r1 + r2:
        return 0.0
    if d <= abs(r1 - r2):
        small = min(r1, r2)
        return np.pi * small * small
    a1 = r1 * r1 * np.arccos((d * d + r1 * r1 - r2 * r2) / (2.0 * d * r1))
    a2 = r2 * r2 * np.arccos((d * d + r2 * r2 - r1 * r1) / (2.0 * d * r2))
    k = 0.5 * np.sqrt(max((-d + r1 + r2) * (d + r1 - r2) * (d - r1 + r2) * (d + r1 + r2), 0.0))
    return a1 + a2 - k


@numba.njit(cache=True, nogil=True)
def star_nms(xs, ys, areas, inner, px, py, threshold):  # pragma: no cover
    """Greedy NMS over polygons sorted by decreasing score; True where a polygon is kept.

    ``xs``, ``ys``: ``(n, R)`` corners; ``areas``; ``inner``: the radius of
    a disk around each star centre ``(px, py)`` that lies inside its
    polygon. A polygon is suppressed when its IoU with a kept,
    higher-scoring polygon exceeds ``threshold``. Two bounds skip most exact
    intersections: the bounding boxes' overlap bounds the IoU from above
    (far pairs are kept), and the inner disks' overlap from below (most
    candidates of a nucleus sit near its centre and are suppressed at once).
    Candidates are binned by centre, so each kept polygon meets only its
    neighbours.
    """
    n = xs.shape[0]
    keep = np.zeros(n, np.bool_)
    if n == 0:
        return keep
    x0 = np.empty(n)
    x1 = np.empty(n)
    y0 = np.empty(n)
    y1 = np.empty(n)
    cx = np.empty(n)
    cy = np.empty(n)
    reach = 1.0
    for i in range(n):
        x0[i], x1[i] = xs[i].min(), xs[i].max()
        y0[i], y1[i] = ys[i].min(), ys[i].max()
        cx[i], cy[i] = 0.5 * (x0[i] + x1[i]), 0.5 * (y0[i] + y1[i])
        reach = max(reach, x1[i] - x0[i], y1[i] - y0[i])
    # Buckets of side ``reach``: overlapping polygons have centres at most
    # ``reach`` apart, so the 3x3 cells around a centre hold all candidates.
    gx0, gy0 = cx.min(), cy.min()
    nx = int((cx.max() - gx0) / reach) + 1
    ny = int((cy.max() - gy0) / reach) + 1
    cell = np.empty(n, np.int64)
    for i in range(n):
        cell[i] = int((cy[i] - gy0) / reach) * nx + int((cx[i] - gx0) / reach)
    order = np.argsort(cell, kind="mergesort")  # stable: by score within a cell
    start = np.zeros(nx * ny + 1, np.int64)
    for i in range(n):
        start[cell[i] + 1] += 1
    for c in range(nx * ny):
        start[c + 1] += start[c]
    suppressed = np.zeros(n, np.bool_)
    for i in range(n):
        if suppressed[i]:
            continue
        keep[i] = True
        gx = int((cx[i] - gx0) / reach)
        gy = int((cy[i] - gy0) / reach)
        for yy in range(max(gy - 1, 0), min(gy + 2, ny)):
            for xx in range(max(gx - 1, 0), min(gx + 2, nx)):
                c = yy * nx + xx
                for s in range(start[c], start[c + 1]):
                    j = order[s]
                    if j <= i or suppressed[j]:
                        continue
                    w = min(x1[i], x1[j]) - max(x0[i], x0[j])
                    h = min(y1[i], y1[j]) - max(y0[i], y0[j])
                    if w <= 0.0 or h <= 0.0:
                        continue
                    box = w * h
                    # IoU <= box / (a_i + a_j - box): skip when even that is small.
                    if box <= threshold * (areas[i] + areas[j] - box):
                        continue
                    dist = np.sqrt((px[i] - px[j]) ** 2 + (py[i] - py[j]) ** 2)
                    low = _disk_overlap(inner[i], inner[j], dist)
                    if low > threshold * (areas[i] + areas[j] - low):
                        suppressed[j] = True
                        continue
                    inter = intersection_area(xs[i], ys[i], px[i], py[i],
                                              xs[j], ys[j], px[j], py[j])
                    union = areas[i] + areas[j] - inter
                    if union > 0.0 and inter > threshold * union:
                        suppressed[j] = True
    return keep


@numba.njit(cache=True, nogil=True)
def polygon_areas(xs, ys):  # pragma: no cover
    """Areas of ``(n, R)`` polygons."""
    out = np.empty(xs.shape[0])
    for i in range(xs.shape[0]):
        out[i] = polygon_area(xs[i], ys[i])
    return out
