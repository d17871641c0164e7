"""Tiny dataset folders and configs written on the fly for the task and CLI tests."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from mantis.data.io import write_image
from mantis.data.synthetic import synthetic_change_pair, synthetic_segmentation_scene

TINY_CD_MODEL = {"nf": 8, "depth": 2, "nheads_start": 2, "psp_depth": 2}
TINY_SEG_MODEL = {"nf": 8, "depth": 2, "nheads_start": 2, "psp_depth": 2}


def make_cd_folder(
    root: Path,
    count: int = 6,
    size: int = 32,
    suffix: str = ".png",
    dirs: Sequence[str] = ("A", "B", "label"),
    bands: int = 3,
) -> Path:
    """LEVIR-CD style folder of ``count`` synthetic pairs: 8-bit PNG (or 16-bit GeoTIFF), 0/255 masks."""
    for i in range(count):
        pair = synthetic_change_pair(i, size, bands=bands)
        for key, folder in zip(("image1", "image2"), dirs[:2]):
            if suffix == ".png":
                data = (pair[key] * 255).round().astype(np.uint8)
            else:
                data = (pair[key] * 10000).round().astype(np.uint16)
            write_image(root / folder / f"tile_{i}{suffix}", data)
        write_image(root / dirs[2] / f"tile_{i}{suffix}", (pair["mask"] * 255).astype(np.uint8))
    return root


def make_seg_folder(root: Path, count: int = 6, size: int = 32) -> Path:
    """``images/`` + ``masks/`` folder of synthetic scenes with class ids 0, 1, 2."""
    for i in range(count):
        scene = synthetic_segmentation_scene(i, size)
        write_image(root / "images" / f"s{i}.png", (scene["image"] * 255).round().astype(np.uint8))
        write_image(root / "masks" / f"s{i}.png", scene["mask"].astype(np.uint8))
    return root


def tiny_trainer(**overrides: Any) -> dict[str, Any]:
    """Trainer settings for a fast CPU test run."""
    return {
        "max_epochs": 1,
        "accelerator": "cpu",
        "devices": 1,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
        "log_every_n_steps": 1,
        **overrides,
    }


def write_config(path: Path, config: dict[str, Any]) -> Path:
    """Write a YAML config; returns its path."""
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def cd_config(root: Path | None, run_dir: Path, **data: Any) -> dict[str, Any]:
    """A complete tiny change-detection config on the folder ``root`` (None: synthetic pairs)."""
    return {
        "seed_everything": 0,
        "run_dir": str(run_dir),
        "trainer": tiny_trainer(),
        "model": {
            "class_path": "mantis.tasks.ChangeDetectionTask",
            "init_args": {"model": "ceecnet_v1", "model_kwargs": dict(TINY_CD_MODEL)},
        },
        "data": {
            "class_path": "mantis.data.ChangeDetectionDataModule",
            "init_args": {
                "root": None if root is None else str(root),
                "patch_size": 32,
                "batch_size": 2,
                "augment": None,
                "val_fraction": 0.2,
                "test_fraction": 0.2,
                **data,
            },
        },
    }
