"""Per-pixel classification of satellite image time series: every labelled pixel of a stack of dates is one
series (bands x dates) for ``ClassificationTask`` with a 1D network (``cnn``, ``fractal_resnet``).

- Stack (``stack_path``): a ``.npy`` of H x W x T x C values (``layout: HWTC``, the default) or T x C x H x W
  (``layout: TCHW``), T dates and C bands; or a GeoTIFF (any raster :mod:`mantis.io` reads) whose T x C bands
  are ordered date by date (all bands of the first date, then of the second, ...), with ``bands_per_date: C``.
  NaN values are missing (clouds): after standardisation they are filled along time (the series rule).
- Labels (``labels_path``): a ``.npy`` of H x W class ids, or a single-band raster; ``ignore_index`` marks
  unlabelled pixels, which are not used. Ids run from 0 to K - 1 (``class_names`` names them).
- Split: seeded, per class (``val_fraction``, ``test_fraction``) over pixels, or over square blocks of
  ``split_block`` pixels by their most common class (neighbouring pixels look alike: blocks keep them in one
  split, for honest scores).
- Without files, :func:`~mantis.data.pixel_series_synthetic.synthetic_pixel_stack` makes a built-in scene.
- Standardisation per band over the training pixels and dates (kept in the checkpoint as ``band_mean`` and
  ``band_std``); the series augmentations of ``augment`` (``scale``, ``jitter``, ``window_slice``, ``time_warp``).

Batches: ``{"image": B x C x T float32, "label": B int64}``; :func:`classify_stack` maps a whole stack.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from mantis.data.former_keywords import augment_with_former
from mantis.data.loaders import ClassificationDataModule, OrderedLoaders, Stage
from mantis.data.pixel_series_synthetic import PIXEL_SERIES_CLASSES, synthetic_pixel_stack
from mantis.data.sampling import SampleKey, split_key
from mantis.data.series import channel_statistics, stratified_parts
from mantis.data.series_augment import SeriesAugment, fill_missing
from mantis.io.errors import DataError
from mantis.io.raster import read_image, read_mask

__all__ = ["PixelSeriesDataModule", "classify_stack", "prepare_series", "read_labels", "read_stack"]

Layout = Literal["HWTC", "TCHW"]
_STAGES: tuple[Stage, ...] = ("train", "val", "test")


def read_stack(path: str | Path, layout: Layout = "HWTC", bands_per_date: int | None = None) -> np.ndarray:
    """The stack of ``path`` as an H x W x T x C array (a view of a memory-mapped ``.npy`` where possible)."""
    file = Path(path)
    if not file.is_file():
        raise DataError(file, "no such file")
    if file.suffix.lower() != ".npy":
        if bands_per_date is None:
            raise DataError(file, "a raster stack needs bands_per_date (its bands are dates x bands, date by date)")
        bands = read_image(file)
        if bands.shape[0] % bands_per_date:
            raise DataError(file, f"has {bands.shape[0]} bands, not a multiple of bands_per_date={bands_per_date}")
        dates = bands.shape[0] // bands_per_date
        return bands.reshape(dates, bands_per_date, *bands.shape[1:]).transpose(2, 3, 0, 1)
    try:
        stack = np.load(file, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as error:
        raise DataError(file, f"cannot read as .npy ({error})") from None
    if stack.ndim != 4:
        raise DataError(file, f"holds {stack.ndim} dimensions {stack.shape}; a stack has 4 ({_describe(layout)})")
    if not np.issubdtype(stack.dtype, np.number) or np.issubdtype(stack.dtype, np.complexfloating):
        raise DataError(file, f"holds {stack.dtype} values, not real numbers")
    return stack if layout == "HWTC" else stack.transpose(2, 3, 0, 1)


def _describe(layout: Layout) -> str:
    return "H x W x dates x bands" if layout == "HWTC" else "dates x bands x H x W"


def read_labels(path: str | Path) -> np.ndarray:
    """H x W class ids of a ``.npy`` file or a single-band raster."""
    file = Path(path)
    if file.suffix.lower() != ".npy":
        return read_mask(file)
    if not file.is_file():
        raise DataError(file, "no such file")
    try:
        labels = np.load(file, allow_pickle=False)
    except (ValueError, OSError) as error:
        raise DataError(file, f"cannot read as .npy ({error})") from None
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(file, f"labels must be H x W integers, this file holds {labels.dtype} {labels.shape}")
    return labels


def _check_shapes(stack: np.ndarray, labels: np.ndarray, stack_file: str, labels_file: str, layout: Layout) -> None:
    """One line when the stack's H x W differ from the labels', suggesting the other layout where it fits."""
    if stack.shape[:2] == labels.shape:
        return
    raw = stack if layout == "HWTC" else stack.transpose(2, 3, 0, 1)  # the file's own axis order
    other: Layout = "TCHW" if layout == "HWTC" else "HWTC"
    fits = (raw.shape[2:] if other == "TCHW" else raw.shape[:2]) == labels.shape
    hint = f"; with layout {other} it would fit" if fits else ""
    raise DataError(
        stack_file,
        f"is {stack.shape[0]} x {stack.shape[1]} pixels ({_describe(layout)}: {raw.shape}) but {labels_file} is "
        f"{labels.shape[0]} x {labels.shape[1]}{hint}",
    )


def _split(
    rows: np.ndarray, cols: np.ndarray, ids: np.ndarray, block: int, val: float, test: float, seed: int
) -> dict[Stage, np.ndarray]:
    """Pixel indices per split: pixels by class, or ``block`` x ``block`` squares by their most common class."""
    if block == 1:
        return stratified_parts(ids, val, test, seed)
    width = int(cols.max()) // block + 1
    blocks = (rows // block) * width + cols // block
    names, members = np.unique(blocks, return_inverse=True)
    counts = np.zeros((len(names), int(ids.max()) + 1), dtype=np.int64)
    np.add.at(counts, (members, ids), 1)
    parts = stratified_parts(counts.argmax(1), val, test, seed)
    return {stage: np.flatnonzero(np.isin(members, chosen)) for stage, chosen in parts.items()}


class PixelSeriesDataModule(OrderedLoaders, ClassificationDataModule):
    """Labelled pixels of a stack of dates as series of C bands x T dates (see the module docstring).

    Args:
        stack_path: The stack (``.npy`` or a raster), or ``None`` for the built-in synthetic scene.
        labels_path: The class ids (``.npy`` or a single-band raster) of the same H x W.
        layout: ``HWTC`` or ``TCHW``: the axis order of a ``.npy`` stack.
        bands_per_date: C of a raster stack (its T x C bands ordered date by date).
        class_names: Names of the K classes (default: the ids, or the synthetic classes).
        num_classes: K (default: the largest labelled id + 1).
        ignore_index: Label of unlabelled pixels.
        val_fraction: Share of each class's pixels (or of the blocks) held out for validation.
        test_fraction: Share held out for testing.
        split_block: Side of the square blocks that go to one split together (1: single pixels, by class).
        standardize: Scale each band with the training pixels' mean and standard deviation.
        augment: Augmentation of training series, as in ``SeriesDataModule``
            (:class:`~mantis.data.series_augment.SeriesAugment`; ``None``: none).
        synthetic_size: Side of the synthetic scene in pixels.
        synthetic_dates: Dates of the synthetic scene.
        batch_size: Pixels per batch.
        num_workers: Data-loader workers (pixels are in memory: 0 is fastest).
        seed: Seed of the split (and of the synthetic scene).
    """

    spatial_dims = 1  # C x T samples

    def __init__(
        self,
        stack_path: str | None = None,
        labels_path: str | None = None,
        *,
        layout: Layout = "HWTC",
        bands_per_date: int | None = None,
        class_names: Sequence[str] | None = None,
        num_classes: int | None = None,
        ignore_index: int = 255,
        val_fraction: float = 0.2,
        test_fraction: float = 0.2,
        split_block: int = 1,
        standardize: bool = True,
        augment: SeriesAugment | None = None,
        synthetic_size: int = 64,
        synthetic_dates: int = 16,
        batch_size: int = 64,
        num_workers: int = 0,
        seed: int = 0,
        **former: float,  # scale=, jitter=, ...: the former spelling of augment (deprecated)
    ) -> None:
        super().__init__(batch_size, num_workers)
        if layout not in ("HWTC", "TCHW"):
            raise ValueError(f"layout must be 'HWTC' or 'TCHW', got {layout!r}")
        if split_block < 1:
            raise ValueError(f"split_block must be positive, got {split_block}")
        if bands_per_date is not None and bands_per_date < 1:
            raise ValueError(f"bands_per_date must be positive, got {bands_per_date}")
        for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value}")
        self.augment = augment_with_former(augment, former, SeriesAugment, type(self).__name__)
        if stack_path is None:
            if labels_path is not None:
                raise ValueError("labels_path needs stack_path")
            stack, labels = synthetic_pixel_stack(synthetic_size, synthetic_size, synthetic_dates, seed=seed)
            class_names = class_names or PIXEL_SERIES_CLASSES
            source = "the synthetic scene"
        else:
            if labels_path is None:
                raise ValueError("stack_path needs labels_path (H x W class ids)")
            stack, labels = read_stack(stack_path, layout, bands_per_date), read_labels(labels_path)
            _check_shapes(stack, labels, stack_path, labels_path, layout)
            source = labels_path
        self._class_names = self._classes(labels, source, class_names, num_classes, ignore_index)
        rows, cols = np.nonzero(labels != ignore_index)
        ids = labels[rows, cols].astype(np.int64)
        # N x C x T series of the labelled pixels (reads only those from a memory-mapped file)
        series = np.asarray(stack[rows, cols], dtype=np.float32).transpose(0, 2, 1)
        if np.isinf(series).any():  # one would make its band's statistics infinite
            raise DataError(stack_path or source, "holds infinite values at labelled pixels (missing values are NaN)")
        if split_block == 1 and (val_fraction or test_fraction):
            warnings.warn(
                "PixelSeriesDataModule: split_block 1 puts neighbouring pixels (one field) in different splits, so "
                "validation and test scores measure memory of fields; set split_block (e.g. 8) for honest scores",
                UserWarning,
                stacklevel=2,
            )
        index = _split(rows, cols, ids, split_block, val_fraction, test_fraction, seed)
        self.pixels = {stage: (rows[index[stage]], cols[index[stage]]) for stage in _STAGES}  # where each came from
        self._raw = {stage: series[index[stage]] for stage in _STAGES}
        self._labels = {stage: ids[index[stage]] for stage in _STAGES}
        if not len(self._labels["train"]):
            raise DataError(source, "no training pixels left (lower val_fraction and test_fraction)")
        self._mean, self._std = self._statistics() if standardize else (None, None)
        self.splits: dict[Stage, _PixelSeries] = {}

    @staticmethod
    def _classes(
        labels: np.ndarray,
        source: str,
        names: Sequence[str] | None,
        num_classes: int | None,
        ignore_index: int,
    ) -> list[str]:
        found = np.unique(labels[labels != ignore_index])
        if not len(found):
            raise DataError(source, f"has no labelled pixel (every label is ignore_index {ignore_index})")
        k = num_classes or (len(names) if names else int(found.max()) + 1)
        bad = found[(found < 0) | (found >= k)]
        if len(bad):
            raise DataError(
                source,
                f"label {int(bad[0])} is not a class id 0..{k - 1} (set num_classes, class_names or ignore_index)",
            )
        if names is not None and len(names) != k:
            raise ValueError(f"{len(names)} class_names given for {k} classes")
        if k < 2:
            raise DataError(source, "holds one class only; classification needs two or more")
        return [str(n) for n in names] if names else [str(i) for i in range(k)]

    def _statistics(self) -> tuple[list[float], list[float]]:
        """Per-band mean and standard deviation of the training pixels over all dates (missing values ignored)."""
        train = self._raw["train"]
        return channel_statistics(train.transpose(1, 0, 2).reshape(train.shape[1], -1))

    @property
    def in_channels(self) -> int:
        """C: bands per date."""
        return int(self._raw["train"].shape[1])

    @property
    def length(self) -> int:
        """T: dates per series."""
        return int(self._raw["train"].shape[2])

    def setup(self, stage: str | None = None) -> None:
        """Standardised, gap-filled series of every split."""
        for name in _STAGES:
            augment = self.augment if name == "train" else SeriesAugment()
            self.splits[name] = _PixelSeries(
                prepare_series(self._raw[name], self._mean, self._std), self._labels[name], augment
            )


def prepare_series(series: np.ndarray, mean: Sequence[float] | None, std: Sequence[float] | None) -> np.ndarray:
    """N x C x T series standardised per band, their missing dates filled along time (a band never observed: 0)."""
    x = np.array(series, dtype=np.float32)
    if mean is not None and std is not None:
        x = (x - np.asarray(mean, np.float32)[:, None]) / np.asarray(std, np.float32)[:, None]
    for i in np.flatnonzero(np.isnan(x).any(axis=(1, 2))):  # only the pixels with gaps
        x[i] = fill_missing(x[i])
    return np.nan_to_num(x, nan=0.0)


class _PixelSeries(Dataset[dict[str, torch.Tensor]]):
    """Prepared N x C x T series as ``{"image": C x T, "label": id}``, augmented when keyed with a seed."""

    def __init__(self, series: np.ndarray, labels: np.ndarray, augment: SeriesAugment) -> None:
        self.series, self.labels, self.augment = series, labels, augment

    def __len__(self) -> int:
        return len(self.series)

    def __getitem__(self, key: SampleKey) -> dict[str, torch.Tensor]:
        index, rng = split_key(key)
        x = self.series[index]
        if rng is not None and self.augment.active:
            x = self.augment(x, rng)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
            "label": torch.tensor(int(self.labels[index])),
        }


@torch.no_grad()
def classify_stack(
    network: nn.Module,
    stack: np.ndarray,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    batch_size: int = 4096,
) -> np.ndarray:
    """The H x W class map of an H x W x T x C stack: every pixel's series through ``network`` (B x C x T ->
    B x K), standardised with the training statistics (a checkpoint's ``band_mean``/``band_std``)."""
    height, width, dates, bands = stack.shape
    network.eval()
    device = next(network.parameters()).device
    out = np.zeros(height * width, dtype=np.int64)
    flat = stack.reshape(height * width, dates, bands)
    for start in range(0, len(flat), batch_size):
        x = prepare_series(flat[start : start + batch_size].transpose(0, 2, 1), mean, std)
        out[start : start + batch_size] = network(torch.from_numpy(x).to(device)).argmax(1).cpu().numpy()
    return out.reshape(height, width)
