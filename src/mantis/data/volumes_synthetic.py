"""Built-in synthetic volumes: spheres and boxes in noise, with their label volumes (tests and the demo)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

__all__ = ["SYNTHETIC_VOLUME_CLASSES", "synthetic_volume", "synthetic_volumes"]

SYNTHETIC_VOLUME_CLASSES = ["background", "sphere", "box"]
# Mean intensity each class adds; spheres and boxes overlap in value once noise is added, so shape matters too.
_LEVELS = np.array([0.0, 1.5, 0.8], dtype=np.float32)


def synthetic_volume(
    size: Sequence[int] = (48, 48, 48), seed: int = 0, channels: int = 1, noise: float = 0.4
) -> tuple[np.ndarray, np.ndarray]:
    """One volume with its labels: ``(image C x X x Y x Z float32, labels X x Y x Z int64)``.

    Two to five shapes, each a sphere (class 1) or an axis-aligned box (class 2) of 3 to ``min(size) / 5``
    voxels radius (half side), at random places (a later shape covers an earlier one). Every channel is the
    class's level (times a per-channel gain) plus a smooth background field and Gaussian noise of ``noise``.
    """
    shape = tuple(int(n) for n in size)
    if len(shape) != 3 or min(shape) < 8:
        raise ValueError(f"size needs three sides of at least 8 voxels, got {list(size)}")
    if channels < 1:
        raise ValueError(f"channels must be positive, got {channels}")
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, dtype=np.int64)
    grid = np.indices(shape, dtype=np.float32)
    largest = max(4, min(shape) // 5)
    for _ in range(int(rng.integers(2, 6))):
        centre = np.array([rng.uniform(0, n) for n in shape], dtype=np.float32).reshape(3, 1, 1, 1)
        offset = grid - centre
        if rng.random() < 0.5:
            radius = rng.uniform(3, largest)
            labels[(offset**2).sum(0) <= radius**2] = 1
        else:
            half = rng.uniform(3, largest, size=3).astype(np.float32).reshape(3, 1, 1, 1)
            labels[(np.abs(offset) <= half).all(0)] = 2
    image = np.empty((channels, *shape), dtype=np.float32)
    for c in range(channels):
        gain = rng.uniform(0.8, 1.2) if c else 1.0
        field = ndimage.gaussian_filter(rng.normal(0, 1, shape).astype(np.float32), sigma=min(shape) / 6)
        field *= 0.5 / max(float(np.abs(field).max()), 1e-6)  # a slow bias of at most 0.5
        image[c] = _LEVELS[labels] * gain + field + rng.normal(0, noise, shape).astype(np.float32)
    return image, labels


def synthetic_volumes(
    count: int, size: Sequence[int] = (48, 48, 48), seed: int = 0, channels: int = 1
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` volumes of :func:`synthetic_volume`, the i-th drawn from ``(seed, i)``."""
    return [
        synthetic_volume(size, int(np.random.SeedSequence([seed, i]).generate_state(1)[0]), channels)
        for i in range(count)
    ]
