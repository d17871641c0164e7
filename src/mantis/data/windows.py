"""Windows over large images: a regular grid for evaluation, random positions for training."""

from __future__ import annotations

import numpy as np

from mantis.io.raster import Window

__all__ = ["grid_windows", "pad_to", "random_window"]


def _starts(length: int, size: int, stride: int) -> list[int]:
    if length <= size:
        return [0]
    starts = list(range(0, length - size + 1, stride))
    if starts[-1] != length - size:
        starts.append(length - size)  # the last window ends exactly at the border
    return starts


def grid_windows(height: int, width: int, size: int, stride: int | None = None) -> list[Window]:
    """Windows on a regular grid that cover the whole image, in row-major order.

    Windows start at multiples of ``stride``; where the image length is not a multiple, one more window
    is aligned with the bottom (right) border, overlapping its neighbour. A side shorter than ``size``
    gets one window of that side's full length (the caller pads it).

    Args:
        height: Image rows.
        width: Image columns.
        size: Window side.
        stride: Step between window starts (default ``size``: no overlap but at the border).

    Returns:
        The windows, each ``(row, col, min(size, height), min(size, width))``.
    """
    if size < 1:
        raise ValueError(f"window size must be positive, got {size}")
    step = size if stride is None else stride
    if step < 1:
        raise ValueError(f"window stride must be positive, got {step}")
    rows, cols = _starts(height, size, step), _starts(width, size, step)
    return [Window(r, c, min(size, height), min(size, width)) for r in rows for c in cols]


def random_window(rng: np.random.Generator, height: int, width: int, size: int) -> Window:
    """A window at a uniformly random position fully inside the image (the whole side if shorter).

    Args:
        rng: Random generator.
        height: Image rows.
        width: Image columns.
        size: Window side.

    Returns:
        ``(row, col, min(size, height), min(size, width))``.
    """
    row = int(rng.integers(0, height - size + 1)) if height > size else 0
    col = int(rng.integers(0, width - size + 1)) if width > size else 0
    return Window(row, col, min(size, height), min(size, width))


def pad_to(array: np.ndarray, size: int) -> np.ndarray:
    """Reflect-pads the last two axes at the bottom and right up to ``size`` (no-op if already there).

    Args:
        array: ... x h x w array with h, w <= size.
        size: Target side.

    Returns:
        ... x max(h, size) x max(w, size) array.
    """
    height, width = array.shape[-2:]
    if height >= size and width >= size:
        return array
    widths = [(0, 0)] * (array.ndim - 2) + [(0, max(size - height, 0)), (0, max(size - width, 0))]
    return np.pad(array, widths, mode="symmetric")
