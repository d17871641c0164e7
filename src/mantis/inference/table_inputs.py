"""New table rows prepared as ``TabularDataModule`` prepared its rows: the training's feature columns in their
order, read as numbers and standardised with the checkpoint's statistics (float32, as in training).

Ids: a column named ``id`` that is not a feature gives each row's id; without one, ids are row positions from 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mantis.data.table_io import PARQUET_SUFFIXES, feature_matrix, read_table
from mantis.inference.errors import InputError

__all__ = ["ID_COLUMN", "TABLE_SUFFIXES", "read_table_inputs"]

TABLE_SUFFIXES = (".csv", *PARQUET_SUFFIXES)
ID_COLUMN = "id"


def read_table_inputs(
    path: Path, features: Sequence[str], mean: Sequence[float] | None, std: Sequence[float] | None
) -> tuple[list[str], np.ndarray]:
    """Ids and N x F float32 standardised features of a CSV or Parquet file.

    Raises:
        InputError: a feature column is missing, or a cell is empty or not a number (one line naming the file,
            the row and the column).
    """
    header, rows = read_table(path)
    missing = [name for name in features if name not in header]
    if missing:
        raise InputError(f"{path}: has no column {missing[0]!r}, a feature of the model ({', '.join(features)})")
    values = feature_matrix(path, (header, rows), list(features))
    if mean is not None and std is not None:
        values = ((values - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)).astype(np.float32)
    if ID_COLUMN in header and ID_COLUMN not in features:
        at = header.index(ID_COLUMN)
        return [row[at].strip() for row in rows], values
    return [str(i) for i in range(len(rows))], values
