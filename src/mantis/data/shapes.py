"""Rasterising simple shapes onto a pixel grid (used by shadows and synthetic scenes)."""

from __future__ import annotations

import numpy as np

__all__ = ["polygon_box", "polygon_mask", "random_polygon"]


def polygon_mask(vertices: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Pixels whose centres lie inside a polygon (even-odd rule).

    Args:
        vertices: N x 2 array of (row, col) vertex coordinates, in pixel units; pixel (i, j) has its
            centre at (i, j). The polygon is closed implicitly.
        shape: (H, W) of the output grid.

    Returns:
        Boolean H x W array.
    """
    out = np.zeros(shape, dtype=bool)
    top, left, inside = polygon_box(vertices, shape)
    out[top : top + inside.shape[0], left : left + inside.shape[1]] = inside
    return out


def polygon_box(vertices: np.ndarray, shape: tuple[int, int]) -> tuple[int, int, np.ndarray]:
    """Like :func:`polygon_mask`, but only over the polygon's bounding box clipped to the grid.

    Args:
        vertices: N x 2 array of (row, col) vertex coordinates.
        shape: (H, W) of the grid.

    Returns:
        ``(top, left, inside)``: the box's top row and left column on the grid, and the boolean
        h x w mask of pixels inside the polygon (h or w is 0 when the polygon misses the grid).
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    top = min(max(int(np.floor(vertices[:, 0].min())), 0), shape[0])
    bottom = max(min(int(np.ceil(vertices[:, 0].max())) + 1, shape[0]), top)
    left = min(max(int(np.floor(vertices[:, 1].min())), 0), shape[1])
    right = max(min(int(np.ceil(vertices[:, 1].max())) + 1, shape[1]), left)
    rows = np.arange(top, bottom, dtype=np.float64)[:, None]
    cols = np.arange(left, right, dtype=np.float64)[None, :]
    inside = np.zeros((bottom - top, right - left), dtype=bool)
    for (r0, c0), (r1, c1) in zip(vertices, np.roll(vertices, -1, axis=0)):
        if r0 == r1:
            continue
        crosses = (r0 > rows) != (r1 > rows)
        col_at_row = c0 + (rows - r0) * (c1 - c0) / (r1 - r0)
        inside ^= crosses & (cols < col_at_row)
    return top, left, inside


def random_polygon(
    rng: np.random.Generator,
    centre: tuple[float, float],
    radius_min: float,
    radius_max: float,
    num_vertices: int,
) -> np.ndarray:
    """A random star-shaped polygon around ``centre``: vertices at sorted random angles and radii.

    Args:
        rng: Random generator.
        centre: (row, col) of the centre.
        radius_min: Smallest vertex distance from the centre, in pixels.
        radius_max: Largest vertex distance from the centre, in pixels.
        num_vertices: Number of vertices (at least 3).

    Returns:
        num_vertices x 2 array of (row, col) vertices.
    """
    angles = np.sort(rng.uniform(0.0, 2.0 * np.pi, size=num_vertices))
    radii = rng.uniform(radius_min, radius_max, size=num_vertices)
    return np.stack([centre[0] + radii * np.sin(angles), centre[1] + radii * np.cos(angles)], axis=1)
