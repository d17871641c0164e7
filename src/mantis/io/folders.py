"""Image files in folders and how files of several folders are paired: one rule for training and prediction.

A file of the first folder is matched in another folder by the same name, else by the same stem (so
``A/0001.tif`` pairs with ``label/0001.png``); two files of one folder with the same stem are ambiguous and
refused.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from mantis.io.errors import DataError
from mantis.io.raster import IMAGE_SUFFIXES, is_image_file

__all__ = ["files_by_stem", "list_files", "list_images", "match_file", "writable_folder"]


def list_files(folder: str | os.PathLike[str], keep: Callable[[Path], bool]) -> list[Path]:
    """The files directly in ``folder`` that ``keep`` accepts, sorted; hidden files (names starting with ``.``,
    macOS ``._name`` included) are left out.

    Raises:
        DataError: The folder does not exist.
    """
    path = Path(folder)
    if not path.is_dir():
        raise DataError(path, "folder not found")
    return sorted(p for p in path.iterdir() if p.is_file() and keep(p) and not p.name.startswith("."))


def list_images(folder: str | os.PathLike[str]) -> list[Path]:
    """Image files (by suffix, see :data:`~mantis.io.raster.IMAGE_SUFFIXES`) directly in ``folder``, sorted."""
    return list_files(folder, is_image_file)


def files_by_stem(files: list[Path], stem: Callable[[Path], str] = lambda p: p.stem) -> dict[str, Path]:
    """``{stem: file}`` of one folder's files; DataError when two files share a stem (ambiguous).

    ``stem`` names a file without its ending (for ``scan.nii.gz`` the volume readers give ``scan``).
    """
    stems: dict[str, Path] = {}
    for file in files:
        key = stem(file)
        if key in stems:
            raise DataError(file, f"ambiguous: {stems[key].name} in the same folder has the same stem")
        stems[key] = file
    return stems


def match_file(name: str, files: dict[str, Path], folder: Path) -> Path | None:
    """The file of ``folder`` (given as :func:`files_by_stem`) that pairs with file name ``name``, if any."""
    exact = folder / name
    if exact in files.values():
        return exact
    return files.get(Path(name).stem if Path(name).suffix.lower() in IMAGE_SUFFIXES else name)


def writable_folder(folder: str | os.PathLike[str]) -> Path:
    """Check, before any long work, that ``folder`` can be created (if missing) and written; creates nothing
    (a temporary file is written and removed in the folder, or in its nearest existing parent).

    Raises:
        DataError: One line naming the folder and the reason (a file in the way, read-only, no space).
    """
    path = Path(folder)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise DataError(path, f"cannot create the output folder ({existing} is a file, not a folder)")
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".mantis-write-test-") as probe:
            probe.write(b"0")
            probe.flush()
    except OSError as error:
        where = "in the output folder" if existing == path else f"the output folder in {existing}"
        raise DataError(path, f"cannot write {where} ({error.strerror or error})") from None
    return path
