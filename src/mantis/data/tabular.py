"""Tables: a CSV file of numeric columns and one target column, for the ``mlp`` under ``mantis fit``.

- Features: every numeric column but the target (or the ``features`` given); a row with an empty or
  non-numeric feature cell is refused in one line naming the file, the row and the column.
- Target: class labels (any text or numbers; class ids follow their sorted order, names kept as
  ``class_names``).
- Split: a seeded random split of the rows (``val_fraction``, ``test_fraction``), or a ``split_column``
  holding ``train``/``val``/``test``.
- Standardisation: each feature's mean and standard deviation over the training rows only; they are saved in
  the checkpoint (``band_mean``/``band_std``), so the same values scale new rows.

Batches: ``{"image": B x F float32, "label": B int64}`` (the keys ``ClassificationTask`` reads).
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from mantis.data.loaders import ClassificationDataModule, Stage
from mantis.data.splits import random_split
from mantis.io.errors import DataError

__all__ = ["TabularDataModule", "read_table"]

_STAGES = ("train", "val", "test")


def read_table(path: str | os.PathLike[str]) -> tuple[list[str], list[list[str]]]:
    """``(header, rows)`` of a CSV file (cells as text); one-line errors for a missing or empty file."""
    file = Path(path)
    if not file.is_file():
        raise DataError(file, "no such file")
    try:
        with file.open(newline="", encoding="utf-8-sig") as handle:
            rows = [row for row in csv.reader(handle) if row and any(cell.strip() for cell in row)]
    except (UnicodeDecodeError, csv.Error) as error:
        raise DataError(file, f"cannot read as CSV ({error})") from None
    if len(rows) < 2:
        raise DataError(file, "needs a header row and at least one data row")
    header = [cell.strip() for cell in rows[0]]
    for number, row in enumerate(rows[1:], 2):
        if len(row) != len(header):
            raise DataError(file, f"row {number} has {len(row)} cells but the header has {len(header)}")
    return header, rows[1:]


def _number(cell: str) -> float | None:
    try:
        value = float(cell)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


class TabularDataModule(ClassificationDataModule):
    """Rows of a CSV file as feature vectors and class labels (see the module docstring).

    Args:
        path: The CSV file.
        target: Name of the column to predict.
        features: Feature columns (default: every column but the target and the split column whose cells
            are all numbers).
        split_column: Column naming each row's split (``train``, ``val``, ``test``), or ``None`` for a
            seeded random split.
        val_fraction: Share of rows for validation (random split).
        test_fraction: Share of rows for testing (random split).
        standardize: Scale features to mean 0, standard deviation 1 with the training rows' statistics.
        batch_size: Rows per batch.
        num_workers: Data-loader workers (rows are in memory: 0 is fastest).
        seed: Seed of the random split.
    """

    spatial_dims = None  # feature vectors

    def __init__(
        self,
        path: str,
        target: str,
        features: Sequence[str] | None = None,
        *,
        split_column: str | None = None,
        val_fraction: float = 0.2,
        test_fraction: float = 0.2,
        standardize: bool = True,
        batch_size: int = 32,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, num_workers)
        self.path = Path(path)
        self.target_column = target
        self.splits: dict[str, TensorDataset] = {}
        self._load(list(features) if features is not None else None, split_column, val_fraction, test_fraction, seed)
        self._standardize = standardize
        train = self._features["train"]
        if standardize and len(train):
            std = train.std(axis=0)
            self._mean = [float(v) for v in train.mean(axis=0)]
            self._std = [float(v) if v > 0 else 1.0 for v in std]  # constant columns stay 0
        else:
            self._mean = self._std = None

    def _load(self, features: list[str] | None, split_column: str | None, val: float, test: float, seed: int) -> None:
        header, rows = read_table(self.path)
        for name in [self.target_column, split_column, *(features or [])]:
            if name is not None and name not in header:
                raise DataError(self.path, f"has no column {name!r} (columns: {', '.join(header)})")
        target_at = header.index(self.target_column)
        split_at = header.index(split_column) if split_column else None
        if features is None:
            skip = {target_at, split_at}
            features = [
                h for i, h in enumerate(header) if i not in skip and all(_number(r[i]) is not None for r in rows)
            ]
            if not features:
                raise DataError(self.path, f"has no numeric column besides {self.target_column!r}")
        columns = [header.index(name) for name in features]
        values = np.zeros((len(rows), len(columns)), dtype=np.float32)
        for r, row in enumerate(rows):
            for c, at in enumerate(columns):
                value = _number(row[at])
                if value is None:
                    raise DataError(self.path, f"row {r + 2}, column {header[at]!r}: {row[at]!r} is not a number")
                values[r, c] = value
        labels = [row[target_at].strip() for row in rows]
        if any(not label for label in labels):
            raise DataError(self.path, f"row {labels.index('') + 2}: empty {self.target_column!r}")
        numeric = all(_number(label) is not None for label in labels)
        names = sorted(set(labels), key=(lambda v: float(v)) if numeric else None)
        if len(names) < 2:
            raise DataError(self.path, f"column {self.target_column!r} holds one class only ({names[0]!r})")
        ids = np.array([names.index(label) for label in labels], dtype=np.int64)
        self.feature_names = features
        self._class_names = names
        if split_at is not None:
            where = [row[split_at].strip().lower() for row in rows]
            unknown = sorted(set(where) - set(_STAGES))
            if unknown:
                raise DataError(self.path, f"column {split_column!r} holds {unknown[0]!r}; use train, val or test")
            index = {stage: [i for i, w in enumerate(where) if w == stage] for stage in _STAGES}
        else:
            parts = random_split([f"{i:09d}" for i in range(len(rows))], val, test, seed)
            index = {stage: sorted(int(i) for i in parts.get(stage, [])) for stage in _STAGES}
        if not index["train"]:
            raise DataError(self.path, "no training rows (lower val_fraction and test_fraction)")
        self._features = {stage: values[index[stage]] for stage in _STAGES}
        self._labels = {stage: ids[index[stage]] for stage in _STAGES}

    # -- what the task is given (linked by the CLI) --------------------------------------------------------

    @property
    def in_channels(self) -> int:
        """Number of feature columns."""
        return len(self.feature_names)

    # -- Lightning --------------------------------------------------------------------------------------

    def setup(self, stage: str | None = None) -> None:
        """Scaled tensors of every split."""
        for name in _STAGES:
            x = self._features[name]
            if self._mean is not None and self._std is not None:
                mean, std = np.asarray(self._mean, np.float32), np.asarray(self._std, np.float32)
                x = ((x - mean) / std).astype(np.float32)
            self.splits[name] = TensorDataset(torch.from_numpy(x), torch.from_numpy(self._labels[name]))

    def _loader(self, stage: Stage) -> DataLoader[Any] | list[Any]:
        data = self.splits.get(stage)
        if data is None or len(data) == 0:
            return []
        train = stage == "train"
        return DataLoader(
            _Rows(data),
            batch_size=self.batch_size,
            shuffle=train,
            drop_last=train and len(data) > self.batch_size,
            num_workers=self.num_workers,
            generator=torch.Generator().manual_seed(0) if not train else None,
        )


class _Rows(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    """Rows of a TensorDataset as ``{"image": features, "label": class id}``."""

    def __init__(self, data: TensorDataset) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        features, label = self.data[index]
        return {"image": features, "label": label}
