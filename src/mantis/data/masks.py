"""Turning stored mask values into class ids.

A mapping ``{stored value: class id}`` decides what each stored value means; a class id may be the
ignore index (unlabelled). Defaults (:func:`default_mask_mapping`):

- binary (``num_classes == 2``): ``{0: 0, 1: 1, 255: 1}``, so both 0/1 and 0/255 masks (LEVIR-CD, WHU)
  work; no stored value means "ignore" unless you map one, e.g. ``{0: 0, 255: 1, 128: 255}``.
- multi-class: ``{0: 0, 1: 1, ..., K-1: K-1, ignore_index: ignore_index}``.

Stored values absent from the mapping are errors, found before training by the datasets' checks.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from mantis.io.errors import DataError

__all__ = ["MaskDecoder", "default_mask_mapping"]


def default_mask_mapping(num_classes: int, ignore_index: int = 255) -> dict[int, int]:
    """The stored-value-to-class mapping used when none is configured (see the module docstring).

    Args:
        num_classes: K.
        ignore_index: Class id of unlabelled pixels.

    Returns:
        ``{stored value: class id}``.
    """
    if num_classes == 2:
        mapping = {0: 0, 1: 1, 255: 1}
        mapping.setdefault(ignore_index, ignore_index)
        return mapping
    mapping = {k: k for k in range(num_classes)}
    mapping[ignore_index] = ignore_index
    return mapping


class MaskDecoder:
    """Maps stored mask values to class ids, refusing values that fit no class.

    Args:
        num_classes: K; class ids are 0 .. K-1.
        mapping: ``{stored value: class id or ignore_index}``; ``None`` for :func:`default_mask_mapping`.
        ignore_index: Class id of unlabelled pixels.

    Raises:
        ValueError: The mapping sends a value to something that is neither a class nor ``ignore_index``.
    """

    def __init__(self, num_classes: int, mapping: Mapping[int, int] | None = None, ignore_index: int = 255) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        raw = default_mask_mapping(num_classes, ignore_index) if mapping is None else mapping
        self.mapping = {int(key): int(value) for key, value in raw.items()}
        for key, value in self.mapping.items():
            if value != ignore_index and not 0 <= value < num_classes:
                raise ValueError(
                    f"mask_mapping sends {key} to {value}, which is neither a class in [0, {num_classes}) "
                    f"nor ignore_index={ignore_index}"
                )
        low = min(self.mapping)
        high = max(self.mapping)
        self._offset = low
        self._table = np.full(high - low + 1, -1, dtype=np.int64)
        for key, value in self.mapping.items():
            self._table[key - low] = value

    def __call__(self, mask: np.ndarray, path: str | os.PathLike[str] | None = None) -> np.ndarray:
        """Decodes a stored mask.

        Args:
            mask: Stored values, shape S (integers, or floats holding integers).
            path: File the mask came from, named in errors.

        Returns:
            int64 class ids (or ``ignore_index``), shape S.

        Raises:
            DataError: A value fits no class.
        """
        values = np.asarray(mask)
        if values.dtype.kind == "f":
            if not np.all(np.isfinite(values)) or not np.array_equal(values, np.round(values)):
                raise DataError(path, "mask holds non-integer values; masks must hold class values")
            values = values.astype(np.int64)
        if values.dtype.kind not in "iub":
            raise DataError(path, f"mask has dtype {values.dtype}; expected integers")
        index = values.astype(np.int64) - self._offset
        inside = (index >= 0) & (index < len(self._table))
        decoded = np.where(inside, self._table[np.clip(index, 0, len(self._table) - 1)], -1)
        if (decoded < 0).any():
            bad = sorted({int(v) for v in np.unique(values[decoded < 0])})
            shown = ", ".join(str(v) for v in bad[:5]) + (", ..." if len(bad) > 5 else "")
            known = ", ".join(str(v) for v in sorted(self.mapping))
            raise DataError(
                path,
                f"mask value(s) {shown} fit no class (known values: {known}; set mask_mapping or num_classes)",
            )
        return decoded
