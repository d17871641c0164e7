"""New series prepared as ``SeriesDataModule`` prepared its cases: standardised with the checkpoint's statistics,
gaps filled along time, then brought to the training length by the training's unequal-length policy.

Files: a ``.ts`` file (labels, if any, are not used), or a CSV file of one univariate series per row whose every
column but the training's ``label_column`` (when present) is a time step, in order; empty cells at the end of a
row end a shorter series, ``?`` or empty cells inside it are missing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mantis.data.series_augment import fill_missing, resample
from mantis.data.series_io import MISSING, read_ts
from mantis.data.table_io import read_table, row_number
from mantis.inference.errors import InputError

__all__ = ["SERIES_SUFFIXES", "prepare_series", "read_series_inputs"]

SERIES_SUFFIXES = (".ts", ".csv")


def _csv_series(file: Path, label_column: str) -> list[np.ndarray]:
    """1 x T_i values of each row (a label column, if present, left out as in training)."""
    header, rows = read_table(file)
    steps = [i for i, name in enumerate(header) if name != label_column]
    series = []
    for index, row in enumerate(rows):
        number = row_number(rows, index)
        cells = [row[i].strip() for i in steps]
        while cells and cells[-1] == "":
            cells.pop()  # a shorter series
        if not cells:
            raise InputError(f"{file}: row {number}: no values")
        values = np.empty(len(cells))
        for j, cell in enumerate(cells):
            try:
                value = math.nan if cell in ("", MISSING) else float(cell)
            except ValueError:
                value = math.inf  # refused below
            if math.isinf(value):  # as training refuses it: the network would give NaN probabilities
                raise InputError(f"{file}: row {number}, column {header[steps[j]]!r}: {cell!r} is not a number")
            values[j] = value
        series.append(values[None])
    return series


def prepare_series(
    x: np.ndarray, length: int, policy: str, mean: Sequence[float] | None, std: Sequence[float] | None
) -> np.ndarray:
    """One C x T_i series as training gave it to the network: C x ``length`` float32.

    ``resample`` interpolates linearly to ``length`` steps; ``pad`` keeps the first ``length`` steps and pads
    with 0 (the training mean once standardised); ``error`` takes series of ``length`` steps only (checked by
    the caller).
    """
    if mean is not None and std is not None:
        x = (x - np.asarray(mean)[:, None]) / np.asarray(std)[:, None]
    x = np.nan_to_num(fill_missing(x), nan=0.0).astype(np.float32)  # a channel never observed: the mean
    if policy == "pad":
        out = np.zeros((x.shape[0], length), dtype=np.float32)
        steps = min(x.shape[1], length)
        out[:, :steps] = x[:, :steps]
        return out
    return resample(x, length) if x.shape[1] != length else x


def read_series_inputs(
    path: Path,
    settings: Mapping[str, Any],
    channels: int | None,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
) -> tuple[list[str], np.ndarray]:
    """Ids (positions from 0) and N x C x L float32 series of a ``.ts`` or CSV file, prepared for the network.

    Args:
        path: the file.
        settings: the data module's settings kept in the checkpoint (``series_length``, ``unequal_length``,
            ``label_column``).
        channels: C the network takes (``None``: not checked).
        mean: per-channel means of the training cases, or ``None`` (not standardised).
        std: the matching standard deviations.

    Raises:
        InputError: one line naming the file and the problem (channels, a length that ``error`` refuses, a cell).
    """
    length, policy = int(settings["series_length"]), str(settings["unequal_length"])
    if path.suffix.lower() == ".ts":
        series = read_ts(path).series
    else:
        series = _csv_series(path, str(settings.get("label_column", "label")))
    got = int(series[0].shape[0])
    if channels is not None and got != channels:
        raise InputError(f"{path}: series of {got} dimensions, but the model takes {channels}")
    out = np.empty((len(series), got, length), dtype=np.float32)
    for i, x in enumerate(series):
        if policy == "error" and x.shape[1] != length:
            raise InputError(
                f"{path}: series {i} has {x.shape[1]} steps, not {length}, and the model was trained with "
                "unequal_length 'error'"
            )
        out[i] = prepare_series(x, length, policy, mean, std)
    return [str(i) for i in range(len(series))], out
