"""Readers of labelled time series: the UCR/UEA ``.ts`` format and CSV files of one series per row.

``.ts`` (the format of the UCR/UEA archives, e.g. ``GunPoint_TRAIN.ts``): ``#`` comment lines, header tags
(``@problemName``, ``@timeStamps false``, ``@missing``, ``@univariate``, ``@dimensions``, ``@equalLength``,
``@seriesLength``, ``@classLabel true <labels>`` or ``false``, ``@targetLabel``; case does not matter), then
``@data`` and one case per line: its dimensions separated by ``:``, the values of a dimension by ``,``, the
label last; ``?`` is a missing value (NaN). Every problem is a :class:`~mantis.io.errors.DataError` naming the
file and the line.

CSV: a header row, one series per row, the label in ``label_column`` and the time steps in the other columns,
in order; empty cells at the end of a row end a shorter series, ``?``/empty cells inside it are missing.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mantis.data.table_io import PARQUET_SUFFIXES, finite_number, read_table, row_number
from mantis.io.errors import DataError

__all__ = ["LabelledSeries", "class_order", "read_series", "read_series_csv", "read_ts"]

MISSING = "?"
_BOOLEAN_TAGS = ("timestamps", "missing", "univariate", "equallength")


@dataclass(frozen=True)
class LabelledSeries:
    """The cases of one file.

    Attributes:
        path: The file read.
        series: One array per case, C x T_i float64 (NaN where missing); every case has the same C.
        labels: One label per case as written in the file (``None`` for a file without labels).
        declared_labels: The classes the header declares (``@classLabel true ...``), in its order;
            ``None`` where the file declares none (CSV).
        name: ``@problemName`` (the file's stem for CSV).
        regression: The labels are target values (``@targetLabel true``), not classes.
    """

    path: Path
    series: list[np.ndarray]
    labels: list[str] | None
    declared_labels: list[str] | None
    name: str
    regression: bool = False

    @property
    def channels(self) -> int:
        """C: dimensions per case."""
        return int(self.series[0].shape[0])

    @property
    def lengths(self) -> list[int]:
        """T_i of every case."""
        return [int(s.shape[1]) for s in self.series]

    @property
    def equal_length(self) -> bool:
        """Whether every case has the same length."""
        return len(set(self.lengths)) == 1


def class_order(labels: Sequence[str]) -> list[str]:
    """Distinct labels in class-id order: numeric order when every label is a number, else text order."""
    distinct = set(labels)
    numeric = all(finite_number(label) is not None for label in distinct)
    return sorted(distinct, key=(lambda v: float(v)) if numeric else None)


def read_series(path: str | os.PathLike[str], label_column: str = "label") -> LabelledSeries:
    """Read a ``.ts``, ``.csv`` or Parquet file of labelled series (chosen by the suffix)."""
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix == ".ts":
        return read_ts(file)
    if suffix == ".csv" or suffix in PARQUET_SUFFIXES:  # one series per row; read_table reads both
        return read_series_csv(file, label_column)
    raise DataError(file, f"unknown series format {suffix or '(no suffix)'!r}; use a .ts, .csv or .parquet file")


# -- .ts ------------------------------------------------------------------------------------------------


@dataclass
class _Header:
    name: str = ""
    univariate: bool | None = None
    dimensions: int | None = None
    equal_length: bool | None = None
    series_length: int | None = None
    labelled: bool = False
    declared: list[str] | None = None
    regression: bool = False


def read_ts(path: str | os.PathLike[str]) -> LabelledSeries:
    """Read a UCR/UEA ``.ts`` file (univariate or multivariate, equal or unequal length).

    Raises:
        DataError: ``"<file>: line N: <problem>"`` for a malformed header or case.
    """
    file = Path(path)
    if not file.is_file():
        raise DataError(file, "no such file")
    try:
        lines = file.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as error:
        raise DataError(file, f"not a text file ({error.reason})") from None
    header = _Header(name=file.stem)
    data_at = None
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not line.startswith("@"):
            raise DataError(file, f"line {number}: a value before @data")
        if line.split()[0].lower() == "@data":
            data_at = number
            break
        _read_tag(file, number, line, header)
    if data_at is None:
        raise DataError(file, "has no @data line")
    series: list[np.ndarray] = []
    labels: list[str] = []
    for number, raw in enumerate(lines[data_at:], data_at + 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        values, label = _read_case(file, number, line, header, series)
        series.append(values)
        if label is not None:
            labels.append(label)
    if not series:
        raise DataError(file, "has no case after @data")
    labelled = labels if header.labelled else None
    return LabelledSeries(file, series, labelled, header.declared, header.name, header.regression)


def _read_tag(file: Path, number: int, line: str, header: _Header) -> None:
    """Record one ``@tag value`` line in ``header``; unknown tags are left alone."""
    tag, *words = line.split()
    tag = tag[1:].lower()
    where = f"line {number}: @{line.split()[0][1:]}"
    if tag in _BOOLEAN_TAGS or tag in ("classlabel", "targetlabel"):
        if not words or words[0].lower() not in ("true", "false"):
            raise DataError(file, f"{where} needs true or false")
        flag = words[0].lower() == "true"
        if tag == "timestamps" and flag:
            raise DataError(file, f"{where} true (values with time stamps) is not supported")
        if tag == "univariate":
            header.univariate = flag
        elif tag == "equallength":
            header.equal_length = flag
        elif tag == "classlabel":
            header.labelled = flag
            header.declared = words[1:] if flag else None
            if flag and not header.declared:
                raise DataError(file, f"{where} true lists no class")
        elif tag == "targetlabel" and flag:
            header.labelled = header.regression = True  # kept as text, like a class
    elif tag in ("dimensions", "serieslength"):
        if len(words) != 1 or not words[0].isdigit() or int(words[0]) < 1:
            raise DataError(file, f"{where} needs a positive whole number")
        setattr(header, "dimensions" if tag == "dimensions" else "series_length", int(words[0]))
    elif tag == "problemname" and words:
        header.name = " ".join(words)


def _read_case(
    file: Path, number: int, line: str, header: _Header, before: list[np.ndarray]
) -> tuple[np.ndarray, str | None]:
    """One case line: C x T values and the label."""
    parts = line.split(":")
    label = None
    if header.labelled:
        if len(parts) < 2:
            raise DataError(file, f"line {number}: no label after the values (':' then the class)")
        label = parts.pop().strip()
        if not label:
            raise DataError(file, f"line {number}: empty label")
        if header.declared is not None and label not in header.declared:
            declared = " ".join(header.declared)
            raise DataError(file, f"line {number}: class {label!r} is not declared by @classLabel ({declared})")
    expected = header.dimensions or (1 if header.univariate else (before[0].shape[0] if before else None))
    if expected is not None and len(parts) != expected:
        raise DataError(file, f"line {number}: {len(parts)} dimensions, expected {expected}")
    rows = [_values(file, number, d, part) for d, part in enumerate(parts, 1)]
    lengths = sorted({len(r) for r in rows})
    if len(lengths) > 1:
        raise DataError(file, f"line {number}: its dimensions have different lengths ({lengths[0]} to {lengths[-1]})")
    if header.equal_length:
        reference = header.series_length or (before[0].shape[1] if before else None)
        if reference is not None and lengths[0] != reference:
            raise DataError(
                file, f"line {number}: length {lengths[0]}, but the header says every series has {reference}"
            )
    return np.stack(rows), label


def _values(file: Path, number: int, dimension: int, text: str) -> np.ndarray:
    """The values of one dimension (``?`` -> NaN)."""
    cells = [cell.strip() for cell in text.split(",")]
    if cells == [""]:
        raise DataError(file, f"line {number}, dimension {dimension}: no values")
    try:
        values = np.asarray(cells, dtype=np.float64)  # the fast path: every cell a number
        if not np.isinf(values).any():
            return values
    except ValueError:
        pass
    out = np.empty(len(cells))
    for i, cell in enumerate(cells):
        value = math.nan if cell == MISSING else _number(cell)
        if value is None:
            raise DataError(file, f"line {number}, dimension {dimension}: {cell!r} is not a number")
        out[i] = value
    return out


# -- CSV ------------------------------------------------------------------------------------------------


def read_series_csv(path: str | os.PathLike[str], label_column: str = "label") -> LabelledSeries:
    """Read a CSV file of one univariate series per row (see the module docstring)."""
    file = Path(path)
    header, rows = read_table(file)
    if label_column not in header:
        raise DataError(file, f"has no column {label_column!r} (columns: {', '.join(header[:8])}, ...)")
    at = header.index(label_column)
    series, labels = [], []
    for index, row in enumerate(rows):
        number = row_number(rows, index)
        label = row[at].strip()
        if not label:
            raise DataError(file, f"row {number}: empty {label_column!r}")
        cells = [cell.strip() for i, cell in enumerate(row) if i != at]
        while cells and cells[-1] == "":
            cells.pop()  # a shorter series
        if not cells:
            raise DataError(file, f"row {number}: no values")
        values = np.empty(len(cells))
        for i, cell in enumerate(cells):
            value = math.nan if cell in ("", MISSING) else _number(cell)
            if value is None:
                column = [h for j, h in enumerate(header) if j != at][i]
                raise DataError(file, f"row {number}, column {column!r}: {cell!r} is not a number")
            values[i] = value
        series.append(values[None])
        labels.append(label)
    return LabelledSeries(file, series, labels, None, file.stem)


def _number(cell: str) -> float | None:
    """The cell as a float (NaN allowed: a missing value), or None (also for an infinite value, which would
    make the channel's statistics infinite)."""
    try:
        value = float(cell)
    except ValueError:
        return None
    return None if math.isinf(value) else value
