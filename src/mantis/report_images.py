"""Pictures of a report: rasters reduced for display, class colours, TP/FP/FN maps, PNG data URIs.

Rasters are read at display size: GeoTIFFs through rasterio's decimated reads (the whole file is never
decoded at full size), PNG/JPEG whole and then reduced. Images are stretched for display from the 2nd to
the 98th percentile of each band, with one stretch for both dates of a pair so that a swipe compares like
with like.
"""

from __future__ import annotations

import base64
import colorsys
import io
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from mantis.io.errors import DataError
from mantis.io.raster import GDAL_SUFFIXES, raster_info, read_image, read_mask

__all__ = [
    "CLASS_COLOURS",
    "COMPARISON_COLOURS",
    "blend",
    "class_colour",
    "class_colours",
    "comparison_codes",
    "display_images",
    "display_shape",
    "png_data_uri",
    "read_reduced",
]

#: TP / FP / FN colours (RGB) of the prediction-vs-reference overlay.
COMPARISON_COLOURS = {"tp": (26, 152, 80), "fp": (215, 48, 39), "fn": (69, 117, 180)}
#: Colours of classes 1, 2, ... (class 0, the background, is left transparent in overlays).
CLASS_COLOURS = (
    (255, 200, 0),
    (230, 25, 75),
    (60, 180, 75),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (128, 128, 0),
)
_OVERLAY_ALPHA = 255  # overlays are opaque where drawn; the page sets their opacity


def display_shape(height: int, width: int, max_side: int) -> tuple[int, int]:
    """(H', W') no larger than ``max_side`` on either side, same aspect (never enlarged)."""
    scale = min(1.0, max_side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def read_reduced(path: Path, shape: tuple[int, int], *, mask: bool) -> np.ndarray:
    """The raster at ``path`` resampled to ``shape``: C x H' x W' (images) or H' x W' (masks, nearest).

    Raises:
        DataError: The file is missing or unreadable (from :mod:`mantis.io.raster`).
    """
    info = raster_info(path)
    if path.suffix.lower() in GDAL_SUFFIXES and (info.height, info.width) != shape:
        import rasterio
        from rasterio.enums import Resampling

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with rasterio.open(path) as ds:  # decimated read: only what the preview needs is decoded
                    resampling = Resampling.nearest if mask else Resampling.average
                    array = np.asarray(ds.read(out_shape=(ds.count, *shape), resampling=resampling))
        except rasterio.errors.RasterioError as error:
            raise DataError(path, f"cannot read image ({' '.join(str(error).split())})") from None
        return array[0] if mask else array
    array = read_mask(path)[None] if mask else read_image(path)
    if array.shape[1:] == shape:
        return array[0] if mask else array
    rows = np.linspace(0, array.shape[1] - 1, shape[0]).round().astype(np.int64)
    cols = np.linspace(0, array.shape[2] - 1, shape[1]).round().astype(np.int64)
    reduced = array[:, rows][:, :, cols]  # nearest: class ids stay class ids
    return reduced[0] if mask else reduced


def display_images(images: Sequence[np.ndarray]) -> list[np.ndarray]:
    """C x H x W images (one, or the two dates) -> H x W x 3 uint8, one 2-98 % stretch per band for all."""
    bands = [np.asarray(img, dtype=np.float64)[:3] if img.shape[0] >= 3 else img[:1] for img in images]
    stacked = np.concatenate([b.reshape(b.shape[0], -1) for b in bands], axis=1)
    finite = np.where(np.isfinite(stacked), stacked, np.nan)
    low = np.nanpercentile(finite, 2, axis=1)[:, None, None]
    high = np.nanpercentile(finite, 98, axis=1)[:, None, None]
    out = []
    for b in bands:
        scaled = np.clip((np.nan_to_num(b, nan=0.0) - low) / np.maximum(high - low, 1e-12), 0, 1)
        rgb = np.repeat(scaled, 3, axis=0) if scaled.shape[0] == 1 else scaled
        out.append((rgb.transpose(1, 2, 0) * 255).round().astype(np.uint8))
    return out


def class_colour(k: int) -> tuple[int, int, int]:
    """RGB of class ``k`` >= 1: :data:`CLASS_COLOURS`, then hues a golden angle apart (no colour repeats)."""
    if k <= len(CLASS_COLOURS):
        return CLASS_COLOURS[k - 1]
    hue = ((k - len(CLASS_COLOURS)) * 0.6180339887) % 1.0
    value = (0.95, 0.75, 0.55)[(k - len(CLASS_COLOURS)) % 3]  # three shades: neighbouring hues stay apart
    r, g, b = colorsys.hsv_to_rgb(hue, 0.8, value)
    return round(r * 255), round(g * 255), round(b * 255)


def class_colours(classes: np.ndarray, num_classes: int) -> np.ndarray:
    """H x W class ids -> H x W x 4 RGBA: classes 1 .. K-1 coloured, 0 and other values transparent."""
    rgba = np.zeros((*classes.shape, 4), dtype=np.uint8)
    for k in range(1, num_classes):
        rgba[classes == k] = (*class_colour(k), _OVERLAY_ALPHA)
    return rgba


def comparison_codes(predicted: np.ndarray, truth: np.ndarray, ignore: np.ndarray) -> dict[str, np.ndarray]:
    """Boolean H x W maps of TP (a foreground class, right), FP (foreground, wrong) and FN (background
    predicted on a foreground reference); background agreements and ignored pixels are in none."""
    keep = ~ignore
    tp = keep & (predicted == truth) & (truth != 0)
    fp = keep & (predicted != 0) & (predicted != truth)
    fn = keep & (predicted == 0) & (truth != 0)
    return {"tp": tp, "fp": fp, "fn": fn}


def comparison_colours(codes: dict[str, np.ndarray]) -> np.ndarray:
    """H x W x 4 RGBA of :func:`comparison_codes` in :data:`COMPARISON_COLOURS`."""
    shape = next(iter(codes.values())).shape
    rgba = np.zeros((*shape, 4), dtype=np.uint8)
    for name, where in codes.items():
        rgba[where] = (*COMPARISON_COLOURS[name], _OVERLAY_ALPHA)
    return rgba


def probability_colours(probability: np.ndarray) -> np.ndarray:
    """H x W probabilities in [0, 1] (NaN: none) -> H x W x 4 RGBA, yellow-red with opacity = probability."""
    p = np.clip(np.nan_to_num(probability, nan=0.0), 0, 1)
    rgba = np.zeros((*p.shape, 4), dtype=np.uint8)
    rgba[..., 0] = 255
    rgba[..., 1] = np.round(220 * (1 - p)).astype(np.uint8)
    rgba[..., 3] = np.round(255 * p).astype(np.uint8)
    return rgba


def blend(rgb: np.ndarray, rgba: np.ndarray, opacity: float = 0.55) -> np.ndarray:
    """``rgba`` drawn over the H x W x 3 ``rgb`` at ``opacity`` (times its own alpha)."""
    alpha = rgba[..., 3:].astype(np.float64) / 255 * opacity
    mixed = rgb.astype(np.float64) * (1 - alpha) + rgba[..., :3].astype(np.float64) * alpha
    return mixed.round().astype(np.uint8)


def png_data_uri(array: np.ndarray) -> str:
    """An H x W x 3 or H x W x 4 uint8 array as a ``data:image/png;base64,...`` URI."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def file_data_uri(path: Path, mime: str = "image/png") -> str:
    """A file's bytes as a data URI."""
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")
