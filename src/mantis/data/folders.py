"""Finding and checking the files of a dataset folder before any training starts.

A dataset folder holds one sub-folder per role, e.g. ``A/``, ``B/``, ``label/`` (LEVIR-CD) or
``images/``, ``masks/``; files of one sample share their name across the sub-folders (or their stem, so
``1.jpg`` may pair with ``1.png``). :func:`index_folder` finds the samples and checks every file, raising
a one-line :class:`~mantis.data.errors.DataError` naming the first bad file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from mantis.data.masks import MaskDecoder
from mantis.data.splits import listed_split
from mantis.io.errors import DataError
from mantis.io.folders import files_by_stem, list_images, match_file
from mantis.io.raster import IMAGE_SUFFIXES, RasterInfo, check_image, raster_info, read_mask

__all__ = ["FolderItem", "index_folder", "list_images", "read_split_file"]


@dataclass(frozen=True)
class FolderItem:
    """One sample of a folder dataset.

    Attributes:
        name: File name in the first sub-folder (e.g. ``"test_2_0000_0000.png"``).
        images: Image paths, one per date (``(A, B)``) or a single one.
        mask: Mask path.
        height: Rows of every image and the mask.
        width: Columns.
        bands: Bands of every image.
        dtype: Stored dtype of the images (picks the default scale).
        nodata: Each image's declared nodata value (``None``: none declared; empty: not read).
    """

    name: str
    images: tuple[Path, ...]
    mask: Path
    height: int
    width: int
    bands: int
    dtype: str
    nodata: tuple[float | None, ...] = ()


def read_split_file(path: str | os.PathLike[str]) -> list[str]:
    """File names listed one per line; blank lines and lines starting with ``#`` are skipped.

    Raises:
        DataError: The file is missing or lists nothing.
    """
    file = Path(path)
    if not file.is_file():
        raise DataError(file, "split file not found")
    names = [line.strip() for line in file.read_text().splitlines()]
    names = [name for name in names if name and not name.startswith("#")]
    if not names:
        raise DataError(file, "split file lists no files")
    return names


def split_from_files(
    root: Path,
    files: Mapping[str, str | None],
    keys: Sequence[str],
    name_of: Callable[[str], tuple[str, ...]],
    missing: str,
    lookup: Callable[[str], str] = str,
) -> dict[str, list[str]]:
    """The split that split files give (:func:`~mantis.data.splits.listed_split` on their lines), for image
    folders and volumes alike.

    Args:
        root: the dataset folder; a list's path is absolute, relative to the working directory, or to it.
        files: stage -> its list file (``None``: not given).
        keys, name_of, lookup: as in :func:`~mantis.data.splits.listed_split`.
        missing: the end of the message for a name that matches no key (e.g. ``"is not in <folder>"``).

    Raises:
        DataError: naming the list file and its line.
    """
    paths = {s: Path(f) if Path(f).is_absolute() or Path(f).exists() else root / f for s, f in files.items() if f}
    listed = {stage: read_split_file(path) for stage, path in paths.items()}
    try:
        return listed_split(keys, listed, name_of, lookup)
    except ValueError as error:
        stage, problem = str(error).split(": ", 1)
        raise DataError(paths[stage], problem.replace("is not in the folder", missing)) from None


def index_folder(
    root: str | os.PathLike[str],
    dirs: Sequence[str],
    decoder: MaskDecoder,
    names: Sequence[str] | None = None,
    split_file: str | os.PathLike[str] | None = None,
    check: bool = True,
) -> list[FolderItem]:
    """Pairs the files of a dataset folder and checks them.

    Checks, each failing with a one-line DataError naming the file: the folders exist and the first is
    not empty; every listed name exists; every image has its other date(s) and its mask, and (without a
    name list) no sub-folder holds a file that matches nothing; every image is readable and complete
    (header and a cheap truncation check); the dates and the mask have the same size; the dates have
    the same band count, and all samples have the band count of the first; every mask is readable and
    holds only values that fit a class (masks are decoded whole: they are small).

    Args:
        root: The dataset folder.
        dirs: Sub-folder names: the image folder(s) first, the mask folder last.
        decoder: Maps stored mask values to classes (and finds values that fit no class).
        names: Restrict to these file names (of the first sub-folder, with or without suffix).
        split_file: Restrict to the names listed in this file (one per line); ignored if ``names`` given.
        check: Run the checks above; ``False`` only reads the image headers (sizes, bands) and trusts
            the rest, for folders already checked.

    Returns:
        The samples, in name order (or list order when names are given).

    Raises:
        DataError: See above.
    """
    base = Path(root)
    if not base.is_dir():
        raise DataError(base, "dataset folder not found")
    if len(dirs) < 2:
        raise ValueError(f"dirs needs at least an image folder and a mask folder, got {list(dirs)}")
    folders = [base / d for d in dirs]
    for folder in folders:
        if not folder.is_dir():
            raise DataError(folder, f"folder not found (expected sub-folders {', '.join(dirs)} in {base})")
    listings = [list_images(folder) for folder in folders]
    if not listings[0]:
        raise DataError(folders[0], f"no images found (looked for {', '.join(IMAGE_SUFFIXES)})")
    stems = [files_by_stem(files) for files in listings]
    source: str | os.PathLike[str] = folders[0]
    if names is None and split_file is not None:
        names = read_split_file(split_file)
        source = split_file
    if names is None:
        firsts = listings[0]
    else:
        firsts = []
        for line, name in enumerate(names, start=1):
            found = match_file(name, stems[0], folders[0])
            if found is None:
                where = f"line {line}: " if split_file is not None and source == split_file else ""
                raise DataError(source, f"{where}{name!r} is not in {folders[0]}")
            firsts.append(found)
        if not firsts:
            raise DataError(source, "no files selected")

    groups: list[tuple[Path, ...]] = []
    for first in firsts:
        group = [first]
        for folder, files in zip(folders[1:], stems[1:]):
            partner = match_file(first.name, files, folder)
            if partner is None:
                raise DataError(first, f"has no matching file in {folder} (same name or same stem)")
            group.append(partner)
        groups.append(tuple(group))
    if names is None:
        first_stems = set(stems[0])
        for listing in listings[1:]:
            for file in listing:
                if file.stem not in first_stems:
                    raise DataError(file, f"has no matching file in {folders[0]}")

    items = []
    reference: tuple[Path, RasterInfo] | None = None
    progress = tqdm(groups, desc=f"checking {base}", unit="sample", disable=len(groups) < 200, leave=False)
    for group in progress:
        *images, mask = group
        infos = [check_image(image) if check else raster_info(image) for image in images]
        first_info = infos[0]
        for image, info in zip(images[1:], infos[1:]):
            if (info.height, info.width) != (first_info.height, first_info.width):
                raise DataError(
                    image,
                    f"is {info.height}x{info.width} pixels but {images[0]} is {first_info.height}x{first_info.width}",
                )
            if info.bands != first_info.bands:
                raise DataError(image, f"has {info.bands} bands but {images[0]} has {first_info.bands}")
        if reference is None:
            reference = (images[0], first_info)
        elif first_info.bands != reference[1].bands:
            raise DataError(
                images[0],
                f"has {first_info.bands} bands but {reference[0]} has {reference[1].bands}; "
                "all images need the same bands",
            )
        if check:
            stored = read_mask(mask)
            if stored.shape != (first_info.height, first_info.width):
                raise DataError(
                    mask,
                    f"is {stored.shape[0]}x{stored.shape[1]} pixels but {images[0]} is "
                    f"{first_info.height}x{first_info.width}",
                )
            decoder(stored, mask)
        items.append(
            FolderItem(
                name=images[0].name,
                images=tuple(images),
                mask=mask,
                height=first_info.height,
                width=first_info.width,
                bands=first_info.bands,
                dtype=first_info.dtype,
                nodata=tuple(info.nodata for info in infos),
            )
        )
    return items
