"""Run folders: claimed atomically, found again to resume, and their CSV log continued rather than replaced.

A run folder is ``runs/<run family>/version_N`` (or ``--run_dir``) and holds ``config.yaml``, the logs and
``checkpoints/``. ``mantis fit --ckpt_path RUN/checkpoints/last.ckpt`` (or ``--ckpt_path last``) continues
that run in its own folder.
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

__all__ = [
    "ContinuingCSVLogger",
    "claim_next_version",
    "latest_checkpoint",
    "missing_folders",
    "remove_empty_folders",
    "run_folder_of",
]

_VERSION = re.compile(r"version_(\d+)")
_SPECIAL_CKPT = ("last", "best", "hpc", "registry")  # Lightning's names, not paths


def _versions(family: Path) -> list[tuple[int, Path]]:
    return [(int(m.group(1)), p) for p in family.glob("version_*") if (m := _VERSION.fullmatch(p.name))]


def claim_next_version(family: Path) -> Path:
    """Create and return ``family/version_N``, N one above the highest: ``mkdir`` is atomic, so two runs
    started together never share a folder."""
    family.mkdir(parents=True, exist_ok=True)
    number = max((n for n, _ in _versions(family)), default=-1) + 1
    while True:
        run_dir = family / f"version_{number}"
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:
            number += 1


def missing_folders(path: Path) -> list[Path]:
    """``path`` and its ancestors that do not exist yet, deepest first (what creating ``path`` would add)."""
    missing = []
    for folder in [path, *path.parents]:
        if folder.exists():
            break
        missing.append(folder)
    return missing


def remove_empty_folders(folders: list[Path]) -> None:
    """Remove those of ``folders`` (deepest first) that exist and are empty: a refused run leaves no trace."""
    for folder in folders:
        try:
            folder.rmdir()  # only succeeds on an empty folder
        except OSError:
            return


def latest_checkpoint(family: Path) -> Path | None:
    """``checkpoints/last.ckpt`` of the newest ``version_N`` of ``family`` that has one."""
    found = [(n, p / "checkpoints" / "last.ckpt") for n, p in _versions(family)]
    found = [(n, p) for n, p in found if p.is_file()]
    return max(found)[1] if found else None


def run_folder_of(ckpt_path: str | os.PathLike[str] | None) -> Path | None:
    """The run folder that holds checkpoint ``ckpt_path`` (``RUN/checkpoints/x.ckpt`` beside
    ``RUN/config.yaml``), or ``None``."""
    if not ckpt_path or str(ckpt_path) in _SPECIAL_CKPT:
        return None
    folder = Path(ckpt_path).resolve().parent
    if folder.name == "checkpoints" and (folder.parent / "config.yaml").is_file():
        return folder.parent
    return None


class _ContinuingWriter(ExperimentWriter):
    """Lightning's CSV writer, except that an existing ``metrics.csv`` is continued: rows logged at step
    ``resume_step`` or later (after the checkpoint, logged again by the resumed run) are dropped, the rest kept."""

    def __init__(self, log_dir: str, resume_step: int) -> None:
        self.resume_step = resume_step  # read by _check_log_dir_exists, which the base __init__ calls
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        path = Path(self.metrics_file_path)
        if not path.is_file():
            return
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            keys = list(reader.fieldnames or [])
            rows = [r for r in reader if _step(r) < self.resume_step]
        temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        with temporary.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=keys)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(temporary, path)
        self.metrics_keys = sorted(keys)


def _step(row: dict[str, Any]) -> float:
    try:
        return float(row.get("step") or 0)
    except ValueError:
        return 0.0


class ContinuingCSVLogger(CSVLogger):
    """``metrics.csv`` in the run folder; a resumed run (``resume_step`` > 0) continues the file.

    Args:
        save_dir: The run folder.
        resume_step: Global step of the checkpoint a run resumes from (0: a new run, the file is new).
    """

    def __init__(self, save_dir: str, resume_step: int = 0) -> None:
        super().__init__(save_dir=save_dir, name="", version="")
        self.resume_step = resume_step

    @property
    def experiment(self) -> Any:
        """The writer (created on first use)."""
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            if self.resume_step > 0:
                self._experiment = _ContinuingWriter(self.log_dir, self.resume_step)
            else:
                self._experiment = ExperimentWriter(log_dir=self.log_dir)
        return self._experiment
