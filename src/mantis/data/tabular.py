"""Tables: a CSV or Parquet file of numeric columns and one target column, for the ``mlp`` under ``mantis fit``.

- Source: ``path`` (``.csv``, or ``.parquet``/``.pq`` with pyarrow), or ``sklearn_dataset`` (iris, wine,
  breast_cancer, diabetes: the tables bundled with the installed scikit-learn, target column ``target``).
- Features: every numeric column but the target (or the ``features`` given); a row with an empty or
  non-numeric feature cell is refused in one line naming the file, the row and the column.
- Target (``task``): class labels for ``classification`` (any text or numbers; class ids follow their sorted
  order, names kept as ``class_names``); numbers for ``regression``.
- Split: a seeded random split of the rows (``val_fraction``, ``test_fraction``), or a ``split_column``
  holding ``train``/``val``/``test``.
- Standardisation: each feature's mean and standard deviation over the training rows only; they are saved in
  the checkpoint (``band_mean``/``band_std``), so the same values scale new rows. For regression the target's
  are too (``target_mean``/``target_std``, kept by ``RegressionTask``), so predictions come back in its units.

Batches: ``{"image": B x F float32, "label": B int64}`` (what ``ClassificationTask`` reads), or for regression
``{"image": B x F float32, "target": B x 1 float32}`` in the target's own units (what ``RegressionTask`` reads).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.utils.data import TensorDataset

from mantis.data.loaders import ClassificationDataModule, OrderedLoaders, Stage
from mantis.data.sampling import SampleKey, split_key
from mantis.data.splits import random_split
from mantis.data.table_io import Table, feature_matrix, finite_number, read_table, row_number, sklearn_table
from mantis.io.errors import DataError

__all__ = ["TabularDataModule", "read_table"]

TableTask = Literal["classification", "regression"]
_STAGES: tuple[Stage, ...] = ("train", "val", "test")


def _spread(values: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-column mean and standard deviation of N x F values (a constant column keeps std 1, so it stays 0)."""
    std = values.std(axis=0)
    return [float(v) for v in values.mean(axis=0)], [float(v) if v > 0 else 1.0 for v in std]


class TabularDataModule(OrderedLoaders, ClassificationDataModule):
    """Rows of a table as feature vectors and class labels or values (see the module docstring).

    For regression, ``num_classes`` is the number of outputs (1) and ``class_names`` holds the target's name.

    Args:
        path: The CSV or Parquet file (``None`` with ``sklearn_dataset``).
        target: Name of the column to predict (``target`` in scikit-learn's tables).
        features: Feature columns (default: every column but the target and the split column whose cells
            are all numbers).
        task: ``classification`` (class labels) or ``regression`` (numbers).
        sklearn_dataset: ``iris``, ``wine``, ``breast_cancer`` or ``diabetes`` from the installed scikit-learn,
            instead of ``path``.
        split_column: Column naming each row's split (``train``, ``val``, ``test``), or ``None`` for a
            seeded random split.
        val_fraction: Share of rows for validation (random split).
        test_fraction: Share of rows for testing (random split).
        standardize: Scale features to mean 0, standard deviation 1 with the training rows' statistics.
        standardize_target: For regression, give the task the training rows' target mean and standard
            deviation, which it learns in and converts its predictions back from.
        batch_size: Rows per batch.
        num_workers: Data-loader workers (rows are in memory: 0 is fastest).
        seed: Seed of the random split.
    """

    spatial_dims = None  # feature vectors

    def __init__(
        self,
        path: str | None = None,
        target: str = "target",
        features: Sequence[str] | None = None,
        *,
        task: TableTask = "classification",
        sklearn_dataset: str | None = None,
        split_column: str | None = None,
        val_fraction: float = 0.2,
        test_fraction: float = 0.2,
        standardize: bool = True,
        standardize_target: bool = True,
        batch_size: int = 32,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, num_workers)
        if task not in ("classification", "regression"):
            raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")
        self.task: TableTask = task
        self.target = "target" if task == "regression" else "label"  # the batch key the task reads
        self.target_column = target
        self.splits: dict[Stage, _Rows] = {}
        table = self._source(path, sklearn_dataset)
        self._load(
            table, list(features) if features is not None else None, split_column, val_fraction, test_fraction, seed
        )
        train = self._features["train"]
        self._mean, self._std = _spread(train) if standardize else (None, None)
        self.target_mean: list[float] | None = None
        self.target_std: list[float] | None = None
        if task == "regression" and standardize_target:
            self.target_mean, self.target_std = _spread(self._targets["train"])
        # what mantis predict needs to read new rows: the feature columns in their order (kept in checkpoints)
        self.save_hyperparameters({"feature_names": list(self.feature_names), "target_column": target}, logger=False)

    def _source(self, path: str | None, sklearn_dataset: str | None) -> Table:
        if sklearn_dataset is None:
            if path is None:
                raise ValueError("give path (a .csv or .parquet file) or sklearn_dataset")
            self.path = Path(path)
            return read_table(self.path)
        if path is not None:
            raise ValueError("give path or sklearn_dataset, not both")
        table, kind = sklearn_table(sklearn_dataset)
        if kind != self.task:
            raise ValueError(f"sklearn_dataset {sklearn_dataset!r} is a {kind} table; set task: {kind}")
        self.path = Path(f"sklearn:{sklearn_dataset}")  # names the source in messages
        return table

    def _load(
        self, table: Table, features: list[str] | None, split_column: str | None, val: float, test: float, seed: int
    ) -> None:
        header, rows = table
        for name in [self.target_column, split_column, *(features or [])]:
            if name is not None and name not in header:
                raise DataError(self.path, f"has no column {name!r} (columns: {', '.join(header)})")
        for name in features or []:
            if name in (self.target_column, split_column):
                role = "target" if name == self.target_column else "split"
                raise DataError(self.path, f"feature {name!r} is the {role} column; leave it out of features")
        target_at = header.index(self.target_column)
        split_at = header.index(split_column) if split_column else None
        if features is None:
            skip = {target_at, split_at}
            features = [
                h for i, h in enumerate(header) if i not in skip and all(finite_number(r[i]) is not None for r in rows)
            ]
            if not features:
                raise DataError(self.path, f"has no numeric column besides {self.target_column!r}")
        values = feature_matrix(self.path, (header, rows), features)
        cells = [row[target_at].strip() for row in rows]
        if any(not cell for cell in cells):
            raise DataError(self.path, f"row {row_number(rows, cells.index(''))}: empty {self.target_column!r}")
        targets = self._classes(cells) if self.task == "classification" else self._values(cells, rows)
        self.feature_names = features
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
        self._targets = {stage: targets[index[stage]] for stage in _STAGES}

    def _classes(self, cells: list[str]) -> np.ndarray:
        """Class ids (N int64) of the target cells; the sorted labels become the class names."""
        numeric = all(finite_number(cell) is not None for cell in cells)
        names = sorted(set(cells), key=(lambda v: float(v)) if numeric else None)
        if len(names) < 2:
            raise DataError(self.path, f"column {self.target_column!r} holds one class only ({names[0]!r})")
        self._class_names = names
        lookup = {name: i for i, name in enumerate(names)}
        return np.array([lookup[cell] for cell in cells], dtype=np.int64)

    def _values(self, cells: list[str], rows: list[list[str]]) -> np.ndarray:
        """Target values (N x 1 float32); the one output is named after the column."""
        values = [finite_number(cell) for cell in cells]
        for r, value in enumerate(values):
            if value is None:
                raise DataError(
                    self.path,
                    f"row {row_number(rows, r)}, column {self.target_column!r}: {cells[r]!r} is not a number "
                    "(task: regression needs numbers; use task: classification for labels)",
                )
        self._class_names = [self.target_column]
        return np.array(values, dtype=np.float32)[:, None]

    # -- what the task is given (linked by the CLI) --------------------------------------------------------

    @property
    def in_channels(self) -> int:
        """Number of feature columns."""
        return len(self.feature_names)

    # -- Lightning --------------------------------------------------------------------------------------

    def setup(self, stage: str | None = None) -> None:
        """Scaled feature tensors of every split (targets as read: class ids, or values in their units)."""
        for name in _STAGES:
            x = self._features[name]
            if self._mean is not None and self._std is not None:
                mean, std = np.asarray(self._mean, np.float32), np.asarray(self._std, np.float32)
                x = ((x - mean) / std).astype(np.float32)
            self.splits[name] = _Rows(
                TensorDataset(torch.from_numpy(x), torch.from_numpy(self._targets[name])), self.target
            )


class _Rows(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    """Rows of a TensorDataset as ``{"image": features, key: class id or values}``."""

    def __init__(self, data: TensorDataset, key: str) -> None:
        self.data = data
        self.key = key

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, key: SampleKey) -> dict[str, torch.Tensor]:
        features, target = self.data[split_key(key)[0]]
        return {"image": features, self.key: target}
