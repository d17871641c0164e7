"""Classification of whole time series: ``.ts`` (UCR/UEA) or CSV files for ``ClassificationTask``.

- Files: ``train_path`` and ``test_path``, or ``aeon_dataset: GunPoint``, which reads the
  ``<name>_TRAIN.ts``/``<name>_TEST.ts`` files that the installed ``aeon`` package ships (no download).
- Split: ``val_fraction`` of the training cases, stratified by class and seeded, for validation; without a
  test file, ``test_fraction`` of them for testing.
- Lengths (``unequal_length``): ``resample`` (default) stretches every series linearly to ``series_length``
  (default: the longest training series), as the UCR/UEA deep-learning review did; ``pad`` keeps the values
  and pads at the end with 0 (the training mean once standardised; a raw 0 with ``standardize: false``;
  longer series are cut) and batches carry ``valid``
  (B x T, True at real steps); ``error`` refuses series of different lengths.
- Standardisation: each channel's mean and standard deviation over the training cases only, kept in the
  checkpoint (``band_mean``/``band_std``); missing values (``?``) are then filled along time.
- Augmentation of training cases, ``augment`` (:class:`~mantis.data.series_augment.SeriesAugment`: ``scale``,
  ``jitter``, ``window_slice``, ``time_warp``, each 0 = off), drawn per sample from (seed, epoch, position).

Batches: ``{"image": B x C x T float32, "label": B int64}`` (plus ``"valid"`` with ``pad``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from mantis.data.former_keywords import augment_with_former
from mantis.data.loaders import ClassificationDataModule, OrderedLoaders, Stage
from mantis.data.sampling import SampleKey, split_key
from mantis.data.series_augment import SeriesAugment, fill_missing, resample
from mantis.data.series_io import LabelledSeries, class_order, read_series
from mantis.io.errors import DataError

__all__ = ["SeriesDataModule", "aeon_dataset_files", "channel_statistics", "stratified_parts", "stratified_split"]

UnequalLength = Literal["resample", "pad", "error"]
_STAGES: tuple[Stage, ...] = ("train", "val", "test")


def aeon_dataset_files(name: str) -> tuple[Path, Path]:
    """``(train, test)`` ``.ts`` files of a data set bundled with the installed ``aeon`` package.

    The package is located, not imported (importing it starts numba), and nothing is downloaded.
    """
    spec = importlib.util.find_spec("aeon")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            None, f"aeon_dataset {name!r} needs the aeon package (pip install aeon), which is not installed"
        )
    folder = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
    train, test = folder / name / f"{name}_TRAIN.ts", folder / name / f"{name}_TEST.ts"
    if not (train.is_file() and test.is_file()):
        bundled = sorted({p.parent.name for p in folder.glob("*/*_TEST.ts") if p.name == f"{p.parent.name}_TEST.ts"})
        raise DataError(folder, f"aeon ships no data set {name!r} as .ts files; bundled: {', '.join(bundled)}")
    return train, test


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(kept, held_out)`` sorted indices: ``round(fraction * n_k)`` cases of each class k held out (at least
    one where the fraction is above 0 and the class has two cases or more), chosen by ``seed``."""
    rng = np.random.default_rng(seed)
    held: list[int] = []
    for k in np.unique(labels):
        members = np.flatnonzero(labels == k)
        count = round(fraction * len(members))
        if fraction > 0 and len(members) > 1:
            count = min(max(count, 1), len(members) - 1)
        held += rng.permutation(members)[:count].tolist()
    out = np.zeros(len(labels), dtype=bool)
    out[held] = True
    return np.flatnonzero(~out), np.flatnonzero(out)


def stratified_parts(labels: np.ndarray, val: float, test: float, seed: int) -> dict[Stage, np.ndarray]:
    """Sorted indices of ``labels`` per split: ``val`` of each class held out for validation (``seed``), then
    ``test`` of each class (as a share of all) for testing (``seed + 1``); the rest trains.

    Raises:
        ValueError: a fraction outside [0, 1), or the two leave nothing to train on (they sum to 1 or more).
    """
    if not (0.0 <= val < 1.0 and 0.0 <= test < 1.0 and val + test < 1.0):
        raise ValueError(f"val_fraction {val} and test_fraction {test} must be in [0, 1) and sum to less than 1")
    keep, held_val = stratified_split(labels, val, seed)
    held_test = np.zeros(0, dtype=np.int64)
    if test > 0:
        kept, held = stratified_split(labels[keep], test / (1.0 - val), seed + 1)
        keep, held_test = keep[kept], keep[held]
    return {"train": keep, "val": held_val, "test": held_test}


def channel_statistics(values: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of C x M values, missing ones (NaN) ignored; a channel never
    observed gets 0 and 1, a constant one standard deviation 1 (so it stays 0)."""
    with np.errstate(invalid="ignore"):
        mean, std = np.nanmean(values, axis=1), np.nanstd(values, axis=1)
    mean = np.where(np.isfinite(mean), mean, 0.0)
    std = np.where(np.isfinite(std) & (std > 0), std, 1.0)
    return [float(v) for v in mean], [float(v) for v in std]


class SeriesDataModule(OrderedLoaders, ClassificationDataModule):
    """Labelled time series from ``.ts`` or CSV files (see the module docstring).

    Args:
        train_path: Training file (``.ts`` or ``.csv``).
        test_path: Test file (same format), or ``None``.
        aeon_dataset: Name of a data set bundled with ``aeon`` (``GunPoint``, ``ArrowHead``, ``BasicMotions``,
            ``JapaneseVowels``, ``OSULeaf``, ...), instead of the two paths.
        label_column: Column of the labels in CSV files.
        val_fraction: Share of each class of the training file held out for validation.
        test_fraction: Share of each class held out for testing when there is no test file.
        unequal_length: ``resample``, ``pad`` or ``error`` (see the module docstring).
        series_length: Length every series is brought to (``None``: the longest training series).
        standardize: Scale each channel with the training cases' mean and standard deviation.
        augment: Augmentation of training cases
            (:class:`~mantis.data.series_augment.SeriesAugment`: ``scale``, ``jitter``, ``window_slice``,
            ``time_warp``; ``None``: none).
        batch_size: Series per batch.
        num_workers: Data-loader workers (series are in memory: 0 is fastest).
        seed: Seed of the validation (and test) split.
    """

    spatial_dims = 1  # C x T samples

    def __init__(
        self,
        train_path: str | None = None,
        test_path: str | None = None,
        *,
        aeon_dataset: str | None = None,
        label_column: str = "label",
        val_fraction: float = 0.2,
        test_fraction: float = 0.0,
        unequal_length: UnequalLength = "resample",
        series_length: int | None = None,
        standardize: bool = True,
        augment: SeriesAugment | None = None,
        batch_size: int = 16,
        num_workers: int = 0,
        seed: int = 0,
        **former: float,  # scale=, jitter=, ...: the former spelling of augment (deprecated)
    ) -> None:
        super().__init__(batch_size, num_workers)
        if unequal_length not in ("resample", "pad", "error"):
            raise ValueError(f"unequal_length must be 'resample', 'pad' or 'error', got {unequal_length!r}")
        if series_length is not None and series_length < 2:
            raise ValueError(f"series_length must be at least 2, got {series_length}")
        for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value}")
        self.augment = augment_with_former(augment, former, SeriesAugment, type(self).__name__)
        self.unequal_length: UnequalLength = unequal_length
        if aeon_dataset is not None:
            if train_path is not None or test_path is not None:
                raise ValueError("give aeon_dataset or train_path/test_path, not both")
            train_file, test_file = aeon_dataset_files(aeon_dataset)
            train_path, test_path = str(train_file), str(test_file)
        if train_path is None:
            raise ValueError("give train_path (a .ts or .csv file) or aeon_dataset")
        train = read_series(train_path, label_column)
        test = read_series(test_path, label_column) if test_path is not None else None
        self._class_names = self._classes(train, test)
        cases, labels = train.series, self._ids(train)
        index = stratified_parts(labels, val_fraction, test_fraction if test is None else 0.0, seed)
        keep, val, test_index = index["train"], index["val"], index["test"]
        if not len(keep):
            raise DataError(train.path, "no training cases left (lower val_fraction and test_fraction)")
        self._raw: dict[Stage, list[np.ndarray]] = {
            "train": [cases[i] for i in keep],
            "val": [cases[i] for i in val],
            "test": test.series if test is not None else [cases[i] for i in test_index],
        }
        self._labels: dict[Stage, np.ndarray] = {
            "train": labels[keep],
            "val": labels[val],
            "test": self._ids(test) if test is not None else labels[test_index],
        }
        files: dict[Stage, Path] = {
            "train": train.path,
            "val": train.path,
            "test": test.path if test is not None else train.path,
        }
        self.length = self._length(series_length, files)
        self._mean, self._std = self._statistics(standardize)
        self.splits: dict[Stage, _SeriesCases] = {}
        # what mantis predict needs to bring new series to the training length (kept in checkpoints)
        self.save_hyperparameters(
            {"series_length": self.length, "unequal_length": unequal_length, "label_column": label_column},
            logger=False,
        )

    # -- reading ------------------------------------------------------------------------------------------

    @staticmethod
    def _classes(train: LabelledSeries, test: LabelledSeries | None) -> list[str]:
        if train.labels is None:
            raise DataError(train.path, "has no class labels (@classLabel false)")
        if train.regression:
            raise DataError(
                train.path, "holds regression targets (@targetLabel true); series are classified (@classLabel)"
            )
        names = class_order(train.declared_labels or train.labels)
        if len(names) < 2:
            raise DataError(train.path, f"holds one class only ({names[0]!r})")
        if test is not None:
            if test.labels is None:
                raise DataError(test.path, "has no class labels (@classLabel false)")
            unknown = sorted(set(test.labels) - set(names))
            if unknown:
                raise DataError(
                    test.path, f"class {unknown[0]!r} is not among the training classes ({', '.join(names)})"
                )
            if test.channels != train.channels:
                raise DataError(test.path, f"{test.channels} dimensions, but the training file has {train.channels}")
        return names

    def _ids(self, data: LabelledSeries) -> np.ndarray:
        assert data.labels is not None
        return np.array([self._class_names.index(label) for label in data.labels], dtype=np.int64)

    def _length(self, series_length: int | None, files: dict[Stage, Path]) -> int:
        """The one length of every batch; ``error`` refuses series of other lengths, naming their file."""
        longest = max(s.shape[1] for s in self._raw["train"])
        length = series_length or longest
        if self.unequal_length == "error":
            for stage in _STAGES:
                other = sorted({s.shape[1] for s in self._raw[stage]} - {length})
                if other:
                    raise DataError(
                        files[stage],
                        f"has series of {other[0]} steps, not {length}, and unequal_length is 'error'; "
                        "set unequal_length to resample or pad",
                    )
        return int(length)

    def _statistics(self, standardize: bool) -> tuple[list[float] | None, list[float] | None]:
        """Per-channel mean and standard deviation of the training cases' values (missing ones ignored)."""
        if not standardize:
            return None, None
        return channel_statistics(np.concatenate(self._raw["train"], axis=1))

    # -- what the task is given (linked by the CLI) --------------------------------------------------------

    @property
    def in_channels(self) -> int:
        """C: dimensions per series."""
        return int(self._raw["train"][0].shape[0])

    # -- Lightning ----------------------------------------------------------------------------------------

    def setup(self, stage: str | None = None) -> None:
        """Standardised, gap-filled cases of every split."""
        for name in _STAGES:
            cases = [self._prepare(x) for x in self._raw[name]]
            augment = self.augment if name == "train" else SeriesAugment()
            self.splits[name] = _SeriesCases(cases, self._labels[name], self.length, self.unequal_length, augment)

    def _prepare(self, x: np.ndarray) -> np.ndarray:
        if self._mean is not None and self._std is not None:
            x = (x - np.asarray(self._mean)[:, None]) / np.asarray(self._std)[:, None]
        x = fill_missing(x)
        return np.nan_to_num(x, nan=0.0).astype(np.float32)  # a channel never observed: the mean


class _SeriesCases(Dataset[dict[str, torch.Tensor]]):
    """Prepared cases as ``{"image": C x length, "label": id}``, augmented when keyed with a seed."""

    def __init__(
        self,
        cases: list[np.ndarray],
        labels: np.ndarray,
        length: int,
        unequal_length: UnequalLength,
        augment: SeriesAugment,
    ) -> None:
        self.cases = cases
        self.labels = labels
        self.length = length
        self.pad = unequal_length == "pad"
        self.augment = augment

    def __len__(self) -> int:
        return len(self.cases)

    def __getitem__(self, key: SampleKey) -> dict[str, torch.Tensor]:
        index, rng = split_key(key)
        x = self.cases[index]
        if rng is not None and self.augment.active:
            x = self.augment(x, rng)
        sample = {"label": torch.tensor(int(self.labels[index]))}
        if self.pad:
            steps = min(x.shape[1], self.length)
            padded = np.zeros((x.shape[0], self.length), dtype=np.float32)  # 0: the training mean
            padded[:, :steps] = x[:, :steps]
            x = padded
            sample["valid"] = torch.arange(self.length) < steps
        elif x.shape[1] != self.length:
            x = resample(x, self.length)
        sample["image"] = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        return sample
