"""From stored pixel values to network inputs.

With band statistics (``mean``, ``std``, in the units stored in the files, as ``mantis stats`` prints
them) every band is standardised: ``(x - mean) / std``. Without them, uint8 images are divided by 255
and every other dtype goes in as stored (cast to float32); set ``mean``/``std`` for anything but 8-bit
or already-scaled (e.g. reflectance in [0, 1]) data. The rule never depends on an image's content, so
windows of one raster and both dates of a pair are treated alike; prediction applies the same function
(:func:`mantis.inference.raster.normalise` calls it).

:func:`dtype_scale` (a fixed factor per dtype to about [0, 1]) is used for the colour target only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["dtype_scale", "missing_pixels", "normalize_image"]


def dtype_scale(dtype: npt.DTypeLike) -> float:
    """The factor that maps a stored dtype's range to about [0, 1] (for the HSV colour target).

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
    """Standardises each band with ``mean``/``std``; without them divides uint8 images by 255.

    Args:
        image: C x S image (any spatial dims) in stored units, any dtype.
        mean: Per-band means in stored units (C values), or ``None``.
        std: Per-band standard deviations in stored units (C values), or ``None``.
        source_dtype: The dtype the pixels were stored as (default: ``image.dtype``); without
            statistics, uint8 is divided by 255 and anything else is left as stored.

    Returns:
        float32 C x S array.

    Raises:
        ValueError: Only one of mean/std given, their length differs from C, or a std is not positive.
    """
    data = np.array(image, dtype=np.float32)
    if mean is None and std is None:
        stored = np.dtype(source_dtype if source_dtype is not None else np.asarray(image).dtype)
        if stored == np.uint8:
            data /= np.float32(255.0)
        return data
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
    data -= np.asarray(mean, dtype=np.float32).reshape(shape)
    data /= np.asarray(std, dtype=np.float32).reshape(shape)
    return data


def missing_pixels(image: np.ndarray, nodata: float | None) -> np.ndarray:
    """H x W mask of the pixels of a C x H x W image that hold no measurement: a band that is NaN or infinite,
    or every band equal to the file's ``nodata`` value (rasterio's dataset-mask rule). Training ignores them
    and prediction writes nodata there; both give the network 0 (the standardised band mean) in their place."""
    missing = np.zeros(image.shape[1:], dtype=bool)
    if image.dtype.kind == "f":
        missing |= ~np.isfinite(image).all(axis=0)
    if nodata is not None and not np.isnan(nodata):
        missing |= (image == nodata).all(axis=0)
    return missing
