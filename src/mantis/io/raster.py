"""Raster reading and writing: PNG and JPEG through Pillow, TIFF and GeoTIFF through rasterio.

The one reader of training and prediction. Images come back channels-first (C x H x W) in their stored
dtype; masks come back as H x W. How Pillow's image modes become bands is decided here, once:

- images: palette PNGs are expanded to RGB (RGBA when the palette has transparency), CMYK, YCbCr, LAB and
  HSV JPEG/PNGs are converted to RGB, bilevel images become uint8 0/255 (like 8-bit grey), an alpha band
  is kept as the last band (RGBA: 4 bands, grey + alpha: 2), 16-bit grey is uint16, 32-bit integer and
  float images keep their type;
- masks: palette PNGs give their palette indices (the class ids of label PNGs), bilevel masks 0/1.

TIFF and GeoTIFF bands are read as stored, whatever their count and dtype. Every failure to read a file
is raised as a one-line :class:`~mantis.io.errors.DataError`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from PIL import Image

from mantis.io.errors import DataError

__all__ = [
    "IMAGE_SUFFIXES",
    "RasterInfo",
    "Window",
    "check_image",
    "dataset_info",
    "image_array",
    "is_image_file",
    "raster_info",
    "read_image",
    "read_mask",
    "write_image",
]

PathLike = str | os.PathLike[str]

PIL_SUFFIXES = (".png", ".jpg", ".jpeg")
GDAL_SUFFIXES = (".tif", ".tiff")
IMAGE_SUFFIXES = PIL_SUFFIXES + GDAL_SUFFIXES

_PIL_DTYPES = {
    "I;16": "uint16",
    "I;16L": "uint16",
    "I;16B": "uint16",
    "I": "int32",
    "F": "float32",
}


class Window(NamedTuple):
    """A rectangle of pixels: top row, left column, height and width."""

    row: int
    col: int
    height: int
    width: int


@dataclass(frozen=True)
class RasterInfo:
    """What a raster's header says, read without decoding pixels.

    Attributes:
        height: Rows.
        width: Columns.
        bands: Number of bands (a palette PNG counts as 1 band of palette indices).
        dtype: NumPy dtype name of the stored pixels, e.g. ``"uint8"``.
        crs: ``rasterio.crs.CRS`` of a GeoTIFF, ``None`` otherwise.
        transform: ``affine.Affine`` pixel-to-map transform of a GeoTIFF, ``None`` otherwise.
        nodata: The GeoTIFF's nodata value, ``None`` if unset.
    """

    height: int
    width: int
    bands: int
    dtype: str
    crs: Any = None
    transform: Any = None
    nodata: float | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(bands, height, width)``."""
        return (self.bands, self.height, self.width)


def is_image_file(path: PathLike) -> bool:
    """Whether ``path`` has a suffix this module reads (case-insensitive)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def _is_gdal(path: PathLike) -> bool:
    return Path(path).suffix.lower() in GDAL_SUFFIXES


def _reason(error: BaseException) -> str:
    while "previous exception" in str(error) and error.__cause__ is not None:
        error = error.__cause__  # rasterio wraps GDAL's message
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 160 else text[:157] + "..."


@contextmanager
def _reading(path: PathLike) -> Iterator[None]:
    """Turns any failure while reading ``path`` into a one-line DataError."""
    try:
        yield
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except Exception as error:  # readers raise many unrelated types for corrupt files
        raise DataError(path, f"cannot read image ({_reason(error)})") from None


def _rasterio() -> Any:
    try:
        import rasterio
    except ImportError:  # pragma: no cover - rasterio is installed by `make`
        raise DataError(None, "reading TIFF files needs rasterio: pip install 'mantis-cd[geo]'") from None
    return rasterio


def _check_window(path: PathLike, window: Window | tuple[int, int, int, int], height: int, width: int) -> Window:
    win = Window(*(int(v) for v in window))
    if win.height <= 0 or win.width <= 0:
        raise ValueError(f"{path}: empty window {tuple(win)}")
    if win.row < 0 or win.col < 0 or win.row + win.height > height or win.col + win.width > width:
        raise ValueError(f"{path}: window {tuple(win)} reaches outside the {height}x{width} image")
    return win


_TO_RGB = ("CMYK", "YCbCr", "LAB", "HSV")


def _image_mode(image: Image.Image) -> str:
    """The Pillow mode an image is read in (see the module's rules)."""
    if image.mode in ("P", "PA"):
        return "RGBA" if image.mode == "PA" or "transparency" in image.info else "RGB"
    if image.mode in _TO_RGB:
        return "RGB"
    if image.mode == "1":
        return "L"
    return image.mode


def _pil_info(path: PathLike, image: Image.Image) -> RasterInfo:
    width, height = image.size
    mode = _image_mode(image)
    bands = Image.getmodebands(mode)
    dtype = _PIL_DTYPES.get(mode, "uint8")
    return RasterInfo(height=height, width=width, bands=bands, dtype=dtype)


def image_array(image: Image.Image) -> np.ndarray:
    """A Pillow image as a C x H x W array by the image rules of this module."""
    mode = _image_mode(image)
    if mode != image.mode:
        image = image.convert(mode)
    return _channels_first(np.asarray(image))


def _mask_array(image: Image.Image) -> np.ndarray:
    """A Pillow image as C x H x W by the mask rules: palette indices, bilevel as 0/1."""
    if image.mode == "1":
        return (np.asarray(image.convert("L")) > 0).astype(np.uint8)[None]
    if image.mode in ("P", "PA"):
        return np.asarray(image.getchannel(0) if image.mode == "PA" else image)[None].copy()
    return image_array(image)


def _channels_first(array: np.ndarray) -> np.ndarray:
    array = array[None] if array.ndim == 2 else np.moveaxis(array, -1, 0)
    return np.ascontiguousarray(array)


def raster_info(path: PathLike) -> RasterInfo:
    """Reads a raster's header (size, bands, dtype, georeference) without decoding its pixels.

    Args:
        path: A PNG, JPEG, TIFF or GeoTIFF file.

    Returns:
        The header as a :class:`RasterInfo`.

    Raises:
        DataError: The file is missing or not a readable raster.
    """
    with _reading(path):
        if not _is_gdal(path):
            with Image.open(path) as image:
                return _pil_info(path, image)
        rasterio = _rasterio()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with rasterio.open(path) as ds:
                return dataset_info(ds)


def dataset_info(ds: Any) -> RasterInfo:
    """The :class:`RasterInfo` of an open rasterio dataset (no georeference when the transform is identity)."""
    georeferenced = ds.crs is not None or not ds.transform.is_identity
    return RasterInfo(
        height=int(ds.height),
        width=int(ds.width),
        bands=int(ds.count),
        dtype=str(ds.dtypes[0]),
        crs=ds.crs,
        transform=ds.transform if georeferenced else None,
        nodata=ds.nodata,
    )


def check_image(path: PathLike) -> RasterInfo:
    """Reads a raster's header and cheaply checks that the file is complete (not truncated).

    PNG: chunk checksums are verified without decompressing. JPEG: the end-of-image marker is looked
    for, and only if it is absent is the image decoded. TIFF: the last block of every band is read
    (truncation cuts the end of a file). Much cheaper than decoding the whole raster.

    Args:
        path: A PNG, JPEG, TIFF or GeoTIFF file.

    Returns:
        The header as a :class:`RasterInfo`.

    Raises:
        DataError: The file is missing, unreadable or truncated.
    """
    info = raster_info(path)
    suffix = Path(path).suffix.lower()
    with _reading(path):
        if suffix == ".png":
            with Image.open(path) as image:
                image.verify()
        elif suffix in (".jpg", ".jpeg"):
            with open(path, "rb") as handle:
                handle.seek(max(0, os.path.getsize(path) - 4096))
                tail = handle.read().rstrip(b"\x00\r\n ")
            if not tail.endswith(b"\xff\xd9"):
                with Image.open(path) as image:
                    image.load()
        elif _is_gdal(path):
            rasterio = _rasterio()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with rasterio.open(path) as ds:
                    block_h, block_w = ds.block_shapes[0]
                    row = (ds.height - 1) // block_h * block_h
                    col = (ds.width - 1) // block_w * block_w
                    win = rasterio.windows.Window(col, row, ds.width - col, ds.height - row)
                    ds.read(window=win)
    return info


def read_image(path: PathLike, window: Window | tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Reads an image, or a window of it, channels-first in its stored dtype (modes by the module's rules).

    GeoTIFFs and TIFFs are read through rasterio and only the window's blocks are decoded, so windows
    of huge rasters are cheap. PNG and JPEG files are decoded whole and then cropped.

    Args:
        path: A PNG, JPEG, TIFF or GeoTIFF file, any band count and dtype.
        window: ``(row, col, height, width)`` inside the image, or ``None`` for the whole image.

    Returns:
        Array of shape C x H x W (H x W of the window), dtype as stored (bilevel images as uint8 0/255,
        palette PNGs expanded to RGB or RGBA).

    Raises:
        DataError: The file is missing, unreadable or truncated.
        ValueError: The window is empty or reaches outside the image.
    """
    return _read(path, window, as_mask=False)


def _read(path: PathLike, window: Window | tuple[int, int, int, int] | None, as_mask: bool) -> np.ndarray:
    with _reading(path):
        if not _is_gdal(path):
            with Image.open(path) as image:
                image.load()
                array = _mask_array(image) if as_mask else image_array(image)
            if window is not None:
                win = _check_window(path, window, array.shape[1], array.shape[2])
                array = np.ascontiguousarray(array[:, win.row : win.row + win.height, win.col : win.col + win.width])
            return array
        rasterio = _rasterio()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with rasterio.open(path) as ds:
                if window is None:
                    return np.asarray(ds.read())
                win = _check_window(path, window, ds.height, ds.width)
                rio_window = rasterio.windows.Window(win.col, win.row, win.width, win.height)
                return np.asarray(ds.read(window=rio_window))


def read_mask(path: PathLike, window: Window | tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Reads a single-band mask (class ids or raw label values), or a window of it.

    A mask stored with several identical bands (e.g. a grey RGB PNG) is accepted and its first band used.
    Palette PNGs give their palette indices, bilevel masks 0/1.

    Args:
        path: A PNG, TIFF or GeoTIFF file (JPEG masks work but lossy compression corrupts labels).
        window: ``(row, col, height, width)`` inside the mask, or ``None`` for the whole mask.

    Returns:
        Array of shape H x W in the stored dtype.

    Raises:
        DataError: The file is unreadable, or has several bands that differ.
    """
    array = _read(path, window, as_mask=True)
    if array.shape[0] > 1 and not all(np.array_equal(array[0], band) for band in array[1:]):
        raise DataError(path, f"a mask must have one band, this one has {array.shape[0]} different bands")
    return array[0]


def write_image(
    path: PathLike,
    array: np.ndarray,
    like: PathLike | RasterInfo | None = None,
    *,
    crs: Any = None,
    transform: Any = None,
    nodata: float | None = None,
    compress: str | None = None,
) -> None:
    """Writes an H x W or C x H x W array as PNG, JPEG or (Geo)TIFF, chosen by the file suffix.

    Args:
        path: Output file; ``.png``/``.jpg``/``.jpeg`` through Pillow, ``.tif``/``.tiff`` through rasterio.
        array: H x W (one band) or C x H x W. PNG takes uint8 with 1, 2, 3 or 4 bands or uint16 with
            one band; JPEG uint8 with 1 or 3 bands; TIFF any band count and dtype.
        like: A raster (path or :class:`RasterInfo`) whose CRS, transform and nodata to copy.
        crs: CRS for a GeoTIFF (anything rasterio accepts, e.g. ``"EPSG:32633"``); overrides ``like``.
        transform: ``affine.Affine`` for a GeoTIFF; overrides ``like``.
        nodata: Nodata value for a GeoTIFF; overrides ``like`` (whose value is copied only if the
            array's dtype can hold it).
        compress: GeoTIFF compression, e.g. ``"deflate"``; ``None`` for none.

    Raises:
        ValueError: The array's shape or dtype cannot be stored in that format.
    """
    data = np.asarray(array)
    if data.dtype == np.bool_:
        data = data.astype(np.uint8)
    if data.ndim == 2:
        data = data[None]
    if data.ndim != 3:
        raise ValueError(f"{path}: expected an H x W or C x H x W array, got shape {data.shape}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if not _is_gdal(path):
        _write_pil(path, data)
        return
    info = raster_info(like) if isinstance(like, (str, os.PathLike)) else like
    rasterio = _rasterio()
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "height": data.shape[1],
        "width": data.shape[2],
        "count": data.shape[0],
        "dtype": data.dtype.name,
        "crs": crs if crs is not None else (info.crs if info is not None else None),
        "transform": transform if transform is not None else (info.transform if info is not None else None),
        "nodata": nodata if nodata is not None else _fitting_nodata(info, data.dtype),
    }
    if compress is not None:
        profile["compress"] = compress
    profile = {key: value for key, value in profile.items() if value is not None}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path, "w", **profile) as ds:
            ds.write(data)


def _fitting_nodata(info: RasterInfo | None, dtype: np.dtype) -> float | None:
    """The template's nodata value if the new dtype can hold it, else None."""
    if info is None or info.nodata is None:
        return None
    if np.issubdtype(dtype, np.integer):
        limits = np.iinfo(dtype)
        value = info.nodata
        if not (np.isfinite(value) and value == int(value) and limits.min <= value <= limits.max):
            return None
    return info.nodata


def _write_pil(path: PathLike, data: np.ndarray) -> None:
    suffix = Path(path).suffix.lower()
    bands = data.shape[0]
    if data.dtype == np.uint16 and bands == 1 and suffix == ".png":
        Image.fromarray(data[0]).save(path)
        return
    allowed = (1, 2, 3, 4) if suffix == ".png" else (1, 3)
    if data.dtype != np.uint8 or bands not in allowed:
        raise ValueError(
            f"{path}: {suffix} stores uint8 with {allowed} bands (or one uint16 band for PNG), "
            f"got {data.dtype} with {bands} bands; use .tif"
        )
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[bands]
    image = Image.fromarray(data[0] if bands == 1 else np.moveaxis(data, 0, -1), mode=mode)
    if suffix == ".png":
        image.save(path)
    else:
        image.save(path, quality=95)
