"""The one layer for files: reading and writing rasters, the error type for bad input, normalisation.

Training (:mod:`mantis.data`) and prediction (:mod:`mantis.inference`) both read through it, so a file
gives the same array in both.
"""

from mantis.io.errors import DataError
from mantis.io.normalize import dtype_scale, normalize_image
from mantis.io.raster import (
    IMAGE_SUFFIXES,
    RasterInfo,
    Window,
    check_image,
    image_array,
    is_image_file,
    raster_info,
    read_image,
    read_mask,
    write_image,
)

__all__ = [
    "IMAGE_SUFFIXES",
    "DataError",
    "RasterInfo",
    "Window",
    "check_image",
    "dtype_scale",
    "image_array",
    "is_image_file",
    "normalize_image",
    "raster_info",
    "read_image",
    "read_mask",
    "write_image",
]
