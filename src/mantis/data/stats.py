"""Per-band mean and standard deviation of image files, streamed (``mantis stats``).

The statistics are in the units stored in the files, which is what the datasets' ``mean`` and ``std``
expect. Nodata pixels (as declared in a GeoTIFF) and non-finite values are left out. Large GeoTIFFs are
read in strips of rows, so memory stays bounded.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from mantis.commands import command_parser, run_command
from mantis.data.folders import list_images
from mantis.io.errors import DataError
from mantis.io.raster import GDAL_SUFFIXES, Window, is_image_file, raster_info, read_image

__all__ = ["BandStats", "compute_band_stats", "main"]


class BandStats:
    """Running per-band count, mean and sum of squared deviations (Chan et al.'s parallel update).

    Args:
        bands: Number of bands C.
    """

    def __init__(self, bands: int) -> None:
        self.count = np.zeros(bands, dtype=np.float64)
        self.mean = np.zeros(bands, dtype=np.float64)
        self.m2 = np.zeros(bands, dtype=np.float64)

    def update(self, chunk: np.ndarray, nodata: float | None = None) -> None:
        """Adds the pixels of a C x ... chunk, skipping ``nodata`` and non-finite values."""
        for band, values in enumerate(np.asarray(chunk).reshape(chunk.shape[0], -1)):
            data = values.astype(np.float64)
            keep = np.isfinite(data)
            if nodata is not None and not np.isnan(nodata):
                keep &= data != nodata
            data = data[keep]
            if data.size == 0:
                continue
            n_new = float(data.size)
            mean_new = float(data.mean())
            m2_new = float(((data - mean_new) ** 2).sum())
            total = self.count[band] + n_new
            delta = mean_new - self.mean[band]
            self.mean[band] += delta * n_new / total
            self.m2[band] += m2_new + delta**2 * self.count[band] * n_new / total
            self.count[band] = total

    def result(self) -> tuple[list[float], list[float]]:
        """``(mean, std)`` per band; std is the population standard deviation (ddof = 0)."""
        std = np.sqrt(self.m2 / np.maximum(self.count, 1.0))
        return [float(v) for v in self.mean], [float(v) for v in std]


def _chunks(path: Path, height: int, width: int, rows: int) -> Iterable[np.ndarray]:
    if path.suffix.lower() not in GDAL_SUFFIXES:
        yield read_image(path)
        return
    for top in range(0, height, rows):
        yield read_image(path, Window(top, 0, min(rows, height - top), width))


def compute_band_stats(
    paths: Iterable[str | os.PathLike[str]], progress: bool = True, rows_per_read: int = 1024
) -> tuple[list[float], list[float]]:
    """Per-band mean and population standard deviation over all pixels of all files.

    Args:
        paths: Image files (PNG, JPEG, TIFF, GeoTIFF), all with the same band count.
        progress: Show a progress bar (on stderr).
        rows_per_read: Rows read at a time from a GeoTIFF.

    Returns:
        ``(mean, std)``: lists of C floats, in stored units.

    Raises:
        DataError: No files, an unreadable file, or files with different band counts.
    """
    files = [Path(p) for p in paths]
    if not files:
        raise DataError(None, "no image files to compute statistics from")
    stats: BandStats | None = None
    first: tuple[Path, int] | None = None
    for path in tqdm(files, desc="band statistics", unit="file", disable=not progress):
        info = raster_info(path)
        if first is None:
            first = (path, info.bands)
            stats = BandStats(info.bands)
        elif info.bands != first[1]:
            raise DataError(path, f"has {info.bands} bands but {first[0]} has {first[1]}")
        assert stats is not None
        for chunk in _chunks(path, info.height, info.width, rows_per_read):
            stats.update(chunk, info.nodata)
    assert stats is not None
    return stats.result()


def _collect(inputs: Sequence[str], recursive: bool) -> list[Path]:
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = (
                sorted(p for p in path.rglob("*") if p.is_file() and is_image_file(p))
                if recursive
                else list_images(path)
            )
            if not found:
                raise DataError(
                    path,
                    "no images found (for a change-detection folder pass its date folders, e.g. root/A root/B)",
                )
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise DataError(path, "no such file or folder")
    return files


def main(argv: Sequence[str] | None = None) -> int:
    """``mantis stats PATH [PATH ...]``: prints ``mean: [...]`` and ``std: [...]`` as YAML.

    Args:
        argv: Command-line arguments after ``stats`` (default: ``sys.argv[1:]``).

    Returns:
        0 on success, 2 with one line on stderr for bad input or usage (:mod:`mantis.commands`).
    """
    parser = command_parser(
        "mantis stats",
        "Per-band mean and std of images (stored units), to paste into a data config. "
        "Pass every folder of images that training uses, e.g. both date folders A and B.",
    )
    parser.add_argument("paths", nargs="+", help="image files or folders of images")
    parser.add_argument("--recursive", action="store_true", help="also look into sub-folders")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    def body() -> int:
        args = parser.parse_args(argv)
        mean, std = compute_band_stats(_collect(args.paths, args.recursive), progress=not args.no_progress)
        print("mean: [" + ", ".join(f"{v:.6g}" for v in mean) + "]")
        print("std: [" + ", ".join(f"{v:.6g}" for v in std) + "]")
        return 0

    return run_command("mantis stats", body)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
