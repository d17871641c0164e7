"""Tiny dataset folders written on the fly for the data tests."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mantis.data.io import write_image


def image(rng: np.random.Generator, bands: int, height: int, width: int, dtype: str = "uint8") -> np.ndarray:
    """A random C x H x W image of the given dtype."""
    high = 256 if dtype == "uint8" else 4000
    return rng.integers(0, high, size=(bands, height, width)).astype(dtype)


def binary_mask(rng: np.random.Generator, height: int, width: int, on: int = 255) -> np.ndarray:
    """A random H x W mask of 0 and ``on``."""
    return np.where(rng.random((height, width)) < 0.2, on, 0).astype(np.uint8)


def make_cd_folder(
    root: Path,
    names: Sequence[str] = ("a", "b", "c"),
    size: tuple[int, int] = (64, 64),
    bands: int = 3,
    suffix: str = ".png",
    dtype: str = "uint8",
    dirs: Sequence[str] = ("A", "B", "label"),
    mask_suffix: str | None = None,
    seed: int = 0,
) -> Path:
    """Writes a change-detection folder ``root/A``, ``root/B``, ``root/label``; returns ``root``."""
    rng = np.random.default_rng(seed)
    for name in names:
        for folder in dirs[:2]:
            write_image(root / folder / f"{name}{suffix}", image(rng, bands, *size, dtype=dtype))
        write_image(root / dirs[2] / f"{name}{mask_suffix or suffix}", binary_mask(rng, *size))
    return root


def make_seg_folder(
    root: Path,
    names: Sequence[str] = ("a", "b", "c"),
    size: tuple[int, int] = (64, 64),
    bands: int = 3,
    num_classes: int = 3,
    suffix: str = ".png",
    seed: int = 0,
) -> Path:
    """Writes a segmentation folder ``root/images``, ``root/masks`` with class ids; returns ``root``."""
    rng = np.random.default_rng(seed)
    for name in names:
        write_image(root / "images" / f"{name}{suffix}", image(rng, bands, *size))
        write_image(root / "masks" / f"{name}{suffix}", rng.integers(0, num_classes, size=size).astype(np.uint8))
    return root
