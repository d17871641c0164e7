"""Reading rasters by windows and writing predictions by rows, atomically.

TIFF/GeoTIFF go through rasterio (windowed reads, tiled compressed writes, georeference kept); PNG and
JPEG through Pillow, read whole (they are small by nature) and written as PNG.
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import numpy as np

from mantis.inference.errors import InputError
from mantis.io.normalize import normalize_image
from mantis.io.raster import (
    GDAL_SUFFIXES,
    IMAGE_SUFFIXES,
    PIL_SUFFIXES,
    RasterInfo,
    dataset_info,
    image_array,
    is_image_file,
)

__all__ = ["GDAL_SUFFIXES", "IMAGE_SUFFIXES", "PIL_SUFFIXES", "RasterHeader", "RasterReader", "is_image_file"]


def _rasterio() -> Any:
    try:
        import rasterio
    except ImportError:  # pragma: no cover - installed by `make`
        raise InputError("TIFF files need rasterio: pip install 'mantis-cd[geo]'") from None
    return rasterio


def _reason(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 160 else text[:157] + "..."


@dataclass(frozen=True)
class RasterHeader(RasterInfo):
    """A raster's :class:`~mantis.io.raster.RasterInfo` (size, bands, dtype, georeference) and its file."""

    path: Path = field(default_factory=Path)

    @property
    def count(self) -> int:
        """Bands C (rasterio's name for :attr:`bands`)."""
        return self.bands

    @property
    def is_gdal(self) -> bool:
        """Read and written through rasterio (TIFF), rather than Pillow (PNG/JPEG)."""
        return self.path.suffix.lower() in GDAL_SUFFIXES


class RasterReader:
    """Reads rows and columns of a raster (C x h x w), any of them reflected, without loading it whole.

    Use as a context manager. GeoTIFF/TIFF reads are windowed through rasterio; PNG/JPEG are decoded once.

    Args:
        path: PNG, JPEG, TIFF or GeoTIFF file.

    Raises:
        InputError: the file is missing or not a readable raster.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"{self.path}: no such file")
        if not is_image_file(self.path):
            raise InputError(f"{self.path}: not a PNG, JPEG or TIFF file")
        self._ds: Any = None
        self._array: np.ndarray | None = None
        try:
            if self.path.suffix.lower() in GDAL_SUFFIXES:
                rasterio = _rasterio()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    self._ds = rasterio.open(self.path)
                self.header = RasterHeader(**vars(dataset_info(self._ds)), path=self.path)
            else:
                from PIL import Image

                with Image.open(self.path) as image:
                    self._array = image_array(image)  # the training reader's rules
                c, h, w = self._array.shape
                self.header = RasterHeader(height=h, width=w, bands=c, dtype=str(self._array.dtype), path=self.path)
        except InputError:
            raise
        except Exception as error:  # readers raise many unrelated types for corrupt files
            self.close()
            raise InputError(f"{self.path}: not a readable raster ({_reason(error)})") from None

    def read(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Pixels at every (row, col) of the index vectors, all bands: C x len(rows) x len(cols).

        Only the bounding box of the indices is read from disk.
        """
        r0, r1 = int(rows.min()), int(rows.max()) + 1
        c0, c1 = int(cols.min()), int(cols.max()) + 1
        if self._array is not None:
            block = self._array[:, r0:r1, c0:c1]
        else:
            from rasterio.windows import Window

            try:
                block = self._ds.read(window=Window(c0, r0, c1 - c0, r1 - r0))
            except Exception as error:
                raise InputError(f"{self.path}: cannot read rows {r0}-{r1} ({_reason(error)})") from None
        return _take(_take(block, rows - r0, 1), cols - c0, 2)

    def close(self) -> None:
        """Release the file."""
        if self._ds is not None:
            self._ds.close()
            self._ds = None

    def __enter__(self) -> RasterReader:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def _take(a: np.ndarray, index: np.ndarray, axis: int) -> np.ndarray:
    # Interior strips are plain ranges: a view instead of a copy.
    n = a.shape[axis]
    if index.size == n and (n < 2 or (index[0] == 0 and bool(np.all(np.diff(index) == 1)))):
        return a
    return np.take(a, index, axis=axis)


def read_header(path: str | os.PathLike[str]) -> RasterHeader:
    """The :class:`RasterHeader` of ``path``; :class:`InputError` if it is missing or unreadable."""
    with RasterReader(path) as reader:
        return reader.header


def normalise(data: np.ndarray, mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> np.ndarray:
    """Images as the model saw them in training: float32 C x h x w (:func:`mantis.io.normalize_image`).

    With ``mean``/``std`` (per band, from the checkpoint): ``(x - mean) / std``. Without: uint8 images
    are divided by 255, every other dtype is used as it is (cast to float32).
    """
    if mean is None or std is None:
        return normalize_image(data)
    return normalize_image(data, mean, std)


class RowWriter(Protocol):
    """Takes output rows in order (C x n x W) and writes them; ``close`` finishes, ``abort`` gives up."""

    def write(self, row: int, data: np.ndarray) -> None: ...  # noqa: D102

    def close(self) -> None: ...  # noqa: D102

    def abort(self) -> None: ...  # noqa: D102


@dataclass(frozen=True)
class BandSpec:
    """What one output file holds: band count, dtype, nodata, a value scale and band names."""

    count: int
    dtype: str
    nodata: float | None
    scale: float = 1.0
    descriptions: tuple[str, ...] = ()
    tags: tuple[tuple[str, str], ...] = ()


def _block(n: int) -> int:
    return min(256, 16 * max(1, math.ceil(n / 16)))


class GeoTiffWriter:
    """Writes a tiled, deflate-compressed (Geo)TIFF by whole tile rows, keeping the input's georeference.

    Rows arrive in order in any amount; they are buffered up to a full tile row so that every tile is
    compressed exactly once and memory stays at one tile row.
    """

    def __init__(self, path: Path, header: RasterHeader, spec: BandSpec) -> None:
        rasterio = _rasterio()
        self.spec = spec
        self.block = _block(header.height)
        profile: dict[str, Any] = {
            "driver": "GTiff",
            "height": header.height,
            "width": header.width,
            "count": spec.count,
            "dtype": spec.dtype,
            "nodata": spec.nodata,
            "tiled": True,
            "blockxsize": _block(header.width),
            "blockysize": self.block,
            "compress": "deflate",
            "predictor": 3 if spec.dtype.startswith("float") else 2,
            "BIGTIFF": "IF_SAFER",
        }
        if header.crs is not None:
            profile["crs"] = header.crs
        if header.transform is not None:
            profile["transform"] = header.transform
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.ds = rasterio.open(path, "w", **profile)
        self.pending: list[np.ndarray] = []
        self.pending_rows = 0
        self.row = 0

    def write(self, row: int, data: np.ndarray) -> None:
        """Queue rows ``row .. row + n`` (C x n x W); they must follow the rows written before."""
        if row != self.row + self.pending_rows:
            raise RuntimeError(f"rows must arrive in order: got {row}, expected {self.row + self.pending_rows}")
        self.pending.append(np.ascontiguousarray(data, dtype=self.spec.dtype))
        self.pending_rows += data.shape[1]
        if self.pending_rows >= self.block:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        from rasterio.windows import Window

        buf = np.concatenate(self.pending, axis=1) if len(self.pending) > 1 else self.pending[0]
        n = buf.shape[1] if final else (buf.shape[1] // self.block) * self.block
        if n:
            self.ds.write(buf[:, :n], window=Window(0, self.row, buf.shape[2], n))
            self.row += n
        rest = buf[:, n:]
        self.pending = [rest] if rest.shape[1] else []
        self.pending_rows = rest.shape[1]

    def close(self) -> None:
        """Write what is left, the scales and band names, and close the file."""
        if self.pending:
            self._flush(final=True)
        if self.spec.scale != 1.0:
            self.ds.scales = (self.spec.scale,) * self.spec.count
            self.ds.offsets = (0.0,) * self.spec.count
        for i, name in enumerate(self.spec.descriptions[: self.spec.count], start=1):
            self.ds.set_band_description(i, name)
        if self.spec.tags:
            self.ds.update_tags(**dict(self.spec.tags))
        self.ds.close()

    def abort(self) -> None:
        """Close without finishing."""
        with contextlib.suppress(Exception):  # the file is deleted next; nothing useful to report
            self.ds.close()


class PngWriter:
    """Collects rows of a small raster in memory and writes one PNG (1-4 uint8 bands) on close."""

    MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}

    def __init__(self, path: Path, header: RasterHeader, spec: BandSpec) -> None:
        if spec.dtype != "uint8" or spec.count not in self.MODES:
            raise InputError(
                f"{path.name}: PNG holds 1 to 4 uint8 bands, not {spec.count} {spec.dtype}; use --format tif"
            )
        self.path = path
        self.array = np.zeros((spec.count, header.height, header.width), dtype=np.uint8)

    def write(self, row: int, data: np.ndarray) -> None:
        """Store rows ``row .. row + n`` (C x n x W)."""
        self.array[:, row : row + data.shape[1]] = data

    def close(self) -> None:
        """Encode and write the PNG."""
        from PIL import Image

        image = self.array[0] if self.array.shape[0] == 1 else np.moveaxis(self.array, 0, -1)
        Image.fromarray(np.ascontiguousarray(image), mode=self.MODES[self.array.shape[0]]).save(self.path, format="PNG")

    def abort(self) -> None:
        """Nothing was written yet."""


class AtomicFiles:
    """Temporary files next to their final names, renamed into place only when all are complete.

    On any exception (including KeyboardInterrupt) inside the ``with`` block the temporaries are deleted
    and no final file appears. Temporaries of files whose suffix is in ``keep_suffix`` end with that suffix
    too (GDAL's GeoPackage driver wants ``.gpkg``).
    """

    def __init__(self, finals: Sequence[Path], keep_suffix: Sequence[str] = ()) -> None:
        self.finals = list(finals)
        self.keep_suffix = tuple(keep_suffix)
        self.temps: list[Path] = []

    def __enter__(self) -> list[Path]:
        for final in self.finals:
            final.parent.mkdir(parents=True, exist_ok=True)
            # A unique name in the same folder, so the final rename is atomic; created by the writer.
            tail = final.suffix if final.suffix in self.keep_suffix else ""
            self.temps.append(final.with_name(f".{final.name}.{os.getpid()}-{secrets.token_hex(4)}.partial{tail}"))
        return self.temps

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        if kind is None:
            for temp, final in zip(self.temps, self.finals):
                os.replace(temp, final)
        else:
            for temp in self.temps:
                temp.unlink(missing_ok=True)
