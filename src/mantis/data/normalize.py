"""From stored pixel values to network inputs: per-band standardisation, or a fixed per-dtype scale.

Band statistics (``mean``, ``std``) are in the units stored in the files, as ``mantis stats`` prints
them. Without statistics an image is multiplied by a fixed factor chosen by its stored dtype: 1/255 for
uint8, 1/65535 for uint16, 1/max for other integer types, 1 for floats (assumed already scaled, e.g.
reflectance). The factor never depends on the image's content, so windows of one raster and both dates
of a pair are scaled alike (no seams, no hidden radiometric correction).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["dtype_scale", "normalize_image"]


def dtype_scale(dtype: npt.DTypeLike) -> float:
    """The factor that maps a stored dtype's range to about [0, 1].

    Args:
        dtype: Stored pixel dtype, e.g. ``np.uint8``.

    Returns:
        1/255 for uint8, 1/65535 for uint16, 1/max for other integers, 1.0 for floats and bools.
    """
    kind = np.dtype(dtype)
    if np.issubdtype(kind, np.integer):
        return 1.0 / float(np.iinfo(kind).max)
    return 1.0


def normalize_image(
    image: np.ndarray,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    source_dtype: npt.DTypeLike | None = None,
) -> np.ndarray:
    """Standardises each band with ``mean``/``std``, or scales by the stored dtype when they are None.

    Args:
        image: C x S image (any spatial dims) in stored units, any dtype.
        mean: Per-band means in stored units (C values), or ``None``.
        std: Per-band standard deviations in stored units (C values), or ``None``.
        source_dtype: The dtype the pixels were stored as (default: ``image.dtype``); picks the scale
            when no statistics are given.

    Returns:
        float32 C x S array.

    Raises:
        ValueError: Only one of mean/std given, their length differs from C, or a std is not positive.
    """
    data = np.asarray(image, dtype=np.float32)
    if mean is None and std is None:
        scale = dtype_scale(source_dtype if source_dtype is not None else np.asarray(image).dtype)
        return data * np.float32(scale) if scale != 1.0 else data.copy()
    if mean is None or std is None:
        raise ValueError("give both mean and std, or neither")
    if len(mean) != data.shape[0] or len(std) != data.shape[0]:
        raise ValueError(
            f"mean and std need one value per band: the image has {data.shape[0]} bands, "
            f"mean has {len(mean)} and std has {len(std)}"
        )
    if min(std) <= 0:
        raise ValueError(f"std values must be positive, got {list(std)}")
    shape = (-1,) + (1,) * (data.ndim - 1)
    mean_array = np.asarray(mean, dtype=np.float32).reshape(shape)
    std_array = np.asarray(std, dtype=np.float32).reshape(shape)
    return (data - mean_array) / std_array
