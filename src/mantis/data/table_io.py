"""Reading tables as ``(header, rows of text cells)``: CSV, Parquet, and scikit-learn's bundled data sets.

Cells stay text, so every source is checked by the same rules afterwards (``mantis.data.tabular``). Row
numbers in messages count the header as row 1 and blank lines too, as a spreadsheet shows a CSV file
(:func:`row_number`).
"""

from __future__ import annotations

import csv
import importlib
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from mantis.io.errors import DataError

__all__ = [
    "PARQUET_SUFFIXES",
    "SKLEARN_DATASETS",
    "Rows",
    "feature_matrix",
    "finite_number",
    "read_table",
    "row_number",
    "sklearn_table",
]

PARQUET_SUFFIXES = (".parquet", ".pq")
#: scikit-learn loaders of the tables that ship inside the package (no download) and their kind.
SKLEARN_DATASETS = {
    "iris": ("load_iris", "classification"),
    "wine": ("load_wine", "classification"),
    "breast_cancer": ("load_breast_cancer", "classification"),
    "diabetes": ("load_diabetes", "regression"),
}

Table = tuple[list[str], list[list[str]]]


class Rows(list[list[str]]):
    """The data rows of a CSV file, each with its row number in the file (blank lines are left out)."""

    def __init__(self, rows: list[list[str]], numbers: list[int]) -> None:
        super().__init__(rows)
        self.numbers = numbers


def row_number(rows: list[list[str]], index: int) -> int:
    """The row number a spreadsheet shows for data row ``index`` (the header is row 1)."""
    return rows.numbers[index] if isinstance(rows, Rows) else index + 2


def finite_number(cell: str) -> float | None:
    """A table cell as a finite float, or None (empty, text, NaN or infinite): one rule for every table."""
    try:
        value = float(cell)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def feature_matrix(path: str | os.PathLike[str], table: Table, features: list[str]) -> np.ndarray:
    """N x F float32 values of the named columns, for training and prediction alike.

    Raises:
        DataError: a cell that is empty or not a finite number (naming the file, the row and the column).
    """
    header, rows = table
    columns = [header.index(name) for name in features]
    values = np.zeros((len(rows), len(columns)), dtype=np.float32)
    for r, row in enumerate(rows):
        for c, at in enumerate(columns):
            value = finite_number(row[at])
            if value is None:
                raise DataError(path, f"row {row_number(rows, r)}, column {header[at]!r}: {row[at]!r} is not a number")
            values[r, c] = value
    return values


def read_table(path: str | os.PathLike[str]) -> Table:
    """``(header, rows)`` of a CSV or Parquet file (cells as text); one-line errors for a missing or empty file.

    Parquet files (``.parquet``, ``.pq``) need pyarrow (``pip install 'mantis[table]'``); empty (null) cells
    become ``""`` as in a CSV file.
    """
    file = Path(path)
    if not file.is_file():
        raise DataError(file, "no such file")
    header, rows = _read_parquet(file) if file.suffix.lower() in PARQUET_SUFFIXES else _read_csv(file)
    if not rows:
        raise DataError(file, "needs a header row and at least one data row")
    return header, rows


def _read_csv(file: Path) -> Table:
    try:
        with file.open(newline="", encoding="utf-8-sig") as handle:
            numbered = [(n, row) for n, row in enumerate(csv.reader(handle), 1) if any(c.strip() for c in row)]
    except (UnicodeDecodeError, csv.Error) as error:
        raise DataError(file, f"cannot read as CSV ({error})") from None
    if len(numbered) < 2:
        raise DataError(file, "needs a header row and at least one data row")
    header = [cell.strip() for cell in numbered[0][1]]
    for number, row in numbered[1:]:
        if len(row) != len(header):
            raise DataError(file, f"row {number} has {len(row)} cells but the header has {len(header)}")
    return header, Rows([row for _, row in numbered[1:]], [n for n, _ in numbered[1:]])


def _read_parquet(file: Path) -> Table:
    try:
        parquet: Any = importlib.import_module("pyarrow.parquet")
    except ImportError:
        raise DataError(
            file, "reading Parquet needs pyarrow (pip install 'mantis[table]' or pip install pyarrow)"
        ) from None
    try:
        table = parquet.read_table(file)
    except Exception as error:  # pyarrow raises its own error types for corrupt or non-Parquet files
        raise DataError(file, f"cannot read as Parquet ({str(error).splitlines()[0]})") from None
    columns = [[_cell(value) for value in column.to_pylist()] for column in table.columns]
    return [str(name).strip() for name in table.column_names], [list(row) for row in zip(*columns)]


def _cell(value: Any) -> str:
    # repr-exact text of numbers, so that the float read back is the stored one
    return "" if value is None else str(value)


def sklearn_table(name: str) -> tuple[Table, str]:
    """``((header, rows), kind)`` of a table bundled with the installed scikit-learn (no download).

    The target column is ``target``: class names for classification (iris, wine, breast_cancer), numbers for
    regression (diabetes, in its original units: ``load_diabetes(scaled=False)``).
    """
    if name not in SKLEARN_DATASETS:
        raise ValueError(f"sklearn_dataset must be one of {', '.join(SKLEARN_DATASETS)}, got {name!r}")
    try:
        datasets: Any = importlib.import_module("sklearn.datasets")
    except ImportError:
        raise ValueError(f"sklearn_dataset {name!r} needs scikit-learn (pip install scikit-learn)") from None
    loader, kind = SKLEARN_DATASETS[name]
    bunch = getattr(datasets, loader)(**({"scaled": False} if name == "diabetes" else {}))
    header = [*map(str, bunch.feature_names), "target"]
    if kind == "classification":
        targets = [str(bunch.target_names[int(y)]) for y in bunch.target]
    else:
        targets = [repr(float(y)) for y in bunch.target]
    rows = [[*(repr(float(v)) for v in x), y] for x, y in zip(bunch.data, targets)]
    return (header, rows), kind
