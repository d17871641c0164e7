"""The one layer for files: reading and writing rasters, the error type for bad input, normalisation.

Training (:mod:`mantis.data`) and prediction (:mod:`mantis.inference`) both read through it, so a file
gives the same array in both.
"""

from mantis.io import raster as _raster
from mantis.io.errors import DataError
from mantis.io.normalize import dtype_scale, missing_pixels, normalize_image
from mantis.io.raster import *  # noqa: F403

__all__ = ["DataError", "dtype_scale", "missing_pixels", "normalize_image", *_raster.__all__]
