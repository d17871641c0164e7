"""A built-in example of satellite image time series: fields of four land covers told apart by their seasonal
course (phenology), for per-pixel classification (``mantis.data.pixel_series``)."""

from __future__ import annotations

import numpy as np

__all__ = ["PIXEL_SERIES_CLASSES", "synthetic_pixel_stack"]

PIXEL_SERIES_CLASSES = ["bare", "forest", "summer_crop", "winter_crop"]


def _greenness(kind: int, season: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A field's vegetation index over the season (0..1 per date), with a field-specific peak time and height."""
    if kind == 0:  # bare soil: low all year
        return np.full_like(season, 0.1 + 0.05 * rng.random())
    if kind == 1:  # evergreen forest: high, a little higher in summer
        return 0.65 + 0.1 * np.sin(np.pi * season) + 0.05 * rng.random()
    peak = (0.6 if kind == 2 else 0.4) + rng.normal(0.0, 0.06)
    return 0.12 + (0.3 + 0.3 * rng.random()) * np.exp(-(((season - peak) / 0.15) ** 2))


def synthetic_pixel_stack(
    height: int = 48,
    width: int = 48,
    dates: int = 16,
    field_size: int = 8,
    cloud_fraction: float = 0.1,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """``(stack, labels)``: a H x W x T x 2 float32 stack (bands red and near infrared, reflectance) and the
    H x W int64 land-cover ids of :data:`PIXEL_SERIES_CLASSES`.

    The scene is a grid of ``field_size`` square fields, each of one random class; a field's pixels share its
    seasonal course plus noise (0.05), and ``cloud_fraction`` of the (pixel, date) values are missing (NaN).
    """
    rng = np.random.default_rng(seed)
    season = np.linspace(0.0, 1.0, dates)
    stack = np.zeros((height, width, dates, 2), dtype=np.float32)
    labels = np.zeros((height, width), dtype=np.int64)
    corners = [(top, left) for top in range(0, height, field_size) for left in range(0, width, field_size)]
    kinds = rng.permutation(np.arange(len(corners)) % len(PIXEL_SERIES_CLASSES))  # as many fields of each class
    for (top, left), kind in zip(corners, kinds):
        green = _greenness(int(kind), season, rng)
        field = (slice(top, top + field_size), slice(left, left + field_size))
        labels[field] = kind
        stack[field + (slice(None), 0)] = 0.15 - 0.1 * green  # red: absorbed by leaves
        stack[field + (slice(None), 1)] = 0.2 + 0.45 * green  # near infrared: reflected by leaves
    stack += rng.normal(0.0, 0.05, size=stack.shape).astype(np.float32)
    stack[rng.random(stack.shape[:3]) < cloud_fraction] = np.nan  # clouds hide every band of a date
    return stack, labels
