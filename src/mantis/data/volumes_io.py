"""Volume files: NIfTI (``.nii``, ``.nii.gz``, through nibabel) and NumPy ``.npy``, with their folder pairing.

A volume has three spatial axes, in the order the file stores them (NIfTI: i, j, k; ``.npy``: the first three
axes), and optionally a fourth axis of channels (NIfTI's 4th dimension, e.g. the MRI sequences of the Medical
Segmentation Decathlon; the last axis of a 4-D ``.npy``). Arrays are returned channels first: C x X x Y x Z.
Label volumes hold one class id per voxel (whole numbers; NIfTI labels stored as floats are accepted when every
value is whole).

Files of an image folder and a label folder pair as image files do (:mod:`mantis.io.folders`): the same name,
else the same stem, where the stem of ``brain_001.nii.gz`` is ``brain_001``; two files of one folder with the
same stem are ambiguous and refused.
"""

from __future__ import annotations

import json
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mantis.io.errors import DataError
from mantis.io.folders import files_by_stem, list_files

__all__ = [
    "VOLUME_SUFFIXES",
    "VolumeHeader",
    "is_volume_file",
    "list_volumes",
    "pair_volumes",
    "read_header",
    "read_label_names",
    "read_labels",
    "read_volume",
    "volume_stem",
]

#: File endings read as volumes, longest first (``.nii.gz`` before ``.nii``).
VOLUME_SUFFIXES = (".nii.gz", ".nii", ".npy")
_READ_ERRORS = (OSError, EOFError, ValueError, zlib.error)


def volume_suffix(path: str | os.PathLike[str]) -> str | None:
    """The volume ending of ``path`` (``.nii.gz``, ``.nii`` or ``.npy``, any case), or ``None``."""
    name = Path(path).name.lower()
    return next((s for s in VOLUME_SUFFIXES if name.endswith(s)), None)


def is_volume_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a volume file by its ending."""
    return volume_suffix(path) is not None


def volume_stem(path: str | os.PathLike[str]) -> str:
    """The file name without its volume ending: ``la_003.nii.gz`` -> ``la_003``."""
    name = Path(path).name
    suffix = volume_suffix(path)
    return name[: len(name) - len(suffix)] if suffix else Path(path).stem


def list_volumes(folder: str | os.PathLike[str]) -> list[Path]:
    """Volume files directly in ``folder``, sorted; hidden files (``.name``, macOS ``._name``) left out.

    Raises:
        DataError: the folder does not exist.
    """
    return list_files(folder, is_volume_file)


def pair_volumes(images: Path, labels: Path) -> list[tuple[Path, Path]]:
    """``(image, label)`` files of two folders, paired by the same name, else the same stem.

    Raises:
        DataError: a folder is missing or holds no volumes, or a file has no partner in the other folder.
    """
    image_files, label_files = list_volumes(images), list_volumes(labels)
    if not image_files:
        raise DataError(images, f"no volumes found (looked for {', '.join(VOLUME_SUFFIXES)})")
    label_stems = files_by_stem(label_files, volume_stem)
    image_stems = files_by_stem(image_files, volume_stem)
    pairs = []
    for image in image_files:
        exact = labels / image.name
        label = exact if exact in label_files else label_stems.get(volume_stem(image))
        if label is None:
            raise DataError(image, f"has no matching file in {labels} (same name or same stem)")
        pairs.append((image, label))
    for label in label_files:
        if volume_stem(label) not in image_stems and not (images / label.name).is_file():
            raise DataError(label, f"has no matching file in {images}")
    return pairs


@dataclass(frozen=True)
class VolumeHeader:
    """What a volume file says about itself, read without its voxels.

    Attributes:
        path: the file.
        shape: the three spatial sizes, in file order.
        channels: C (1 for a 3-D array).
        zooms: voxel spacing per spatial axis (NIfTI header; 1.0 for ``.npy``).
        affine: the NIfTI voxel-to-world 4 x 4 matrix (``None`` for ``.npy``).
    """

    path: Path
    shape: tuple[int, int, int]
    channels: int
    zooms: tuple[float, float, float]
    affine: np.ndarray | None = None


def _nibabel(path: Path) -> Any:
    try:
        import nibabel
    except ImportError:
        raise DataError(path, "NIfTI files need nibabel: pip install 'mantis-cd[volume]'") from None
    return nibabel


def _load_nifti(path: Path) -> Any:
    nib = _nibabel(path)
    try:
        return nib.load(path)
    except (nib.filebasedimages.ImageFileError, *_READ_ERRORS) as error:
        raise DataError(path, f"cannot read as NIfTI ({_reason(error)})") from None


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except _READ_ERRORS as error:
        raise DataError(path, f"cannot read as .npy ({_reason(error)})") from None


def _reason(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def _split_shape(path: Path, shape: tuple[int, ...]) -> tuple[tuple[int, int, int], int]:
    """Spatial shape and channel count of an array shape X x Y x Z (x C)."""
    if len(shape) == 3:
        return (shape[0], shape[1], shape[2]), 1
    if len(shape) == 4:
        return (shape[0], shape[1], shape[2]), shape[3]
    raise DataError(path, f"has shape {shape}; a volume needs 3 axes (X x Y x Z) or 4 (X x Y x Z x channels)")


def read_header(path: str | os.PathLike[str]) -> VolumeHeader:
    """Shape, channels, spacing and affine of a volume file (voxels are not read).

    Raises:
        DataError: not a volume file, unreadable, or not 3-D/4-D.
    """
    p = Path(path)
    suffix = volume_suffix(p)
    if suffix is None:
        raise DataError(p, f"not a volume file (expected {', '.join(VOLUME_SUFFIXES)})")
    if not p.is_file():
        raise DataError(p, "no such file")
    if suffix == ".npy":
        array = _load_npy(p)
        if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
            raise DataError(p, f"holds {array.dtype} values; volumes hold real numbers")
        shape, channels = _split_shape(p, tuple(array.shape))
        return VolumeHeader(p, shape, channels, (1.0, 1.0, 1.0))
    image = _load_nifti(p)
    shape, channels = _split_shape(p, tuple(int(n) for n in image.shape))
    zooms = tuple(float(z) for z in image.header.get_zooms()[:3])
    return VolumeHeader(p, shape, channels, (zooms[0], zooms[1], zooms[2]), np.asarray(image.affine, np.float64))


def _voxels(path: Path) -> np.ndarray:
    """The file's voxels as stored (X x Y x Z or X x Y x Z x C); NIfTI scaling applied."""
    if volume_suffix(path) == ".npy":
        try:
            return np.asarray(_load_npy(path))
        except _READ_ERRORS as error:
            raise DataError(path, f"cannot read as .npy ({_reason(error)})") from None
    image = _load_nifti(path)
    try:
        return np.asanyarray(image.dataobj)
    except _READ_ERRORS as error:
        raise DataError(path, f"cannot read the voxels ({_reason(error)})") from None


def read_volume(path: str | os.PathLike[str]) -> np.ndarray:
    """The volume as float32 C x X x Y x Z (channels first).

    Raises:
        DataError: unreadable, of the wrong rank, or holding NaN/infinite values.
    """
    p = Path(path)
    header = read_header(p)
    data = _voxels(p)
    out = np.asarray(data, dtype=np.float32).reshape((*header.shape, header.channels))
    if not np.isfinite(out).all():
        raise DataError(p, "holds NaN or infinite values")
    return np.array(np.moveaxis(out, -1, 0), order="C")  # a copy: memory-mapped .npy files stay read-only


def read_labels(path: str | os.PathLike[str]) -> np.ndarray:
    """The class ids of a label volume, int64 X x Y x Z (a 4th axis of length 1 is dropped).

    Raises:
        DataError: unreadable, several channels, or values that are not whole numbers.
    """
    p = Path(path)
    header = read_header(p)
    if header.channels != 1:
        raise DataError(p, f"a label volume holds one value per voxel, this one has {header.channels} channels")
    data = np.asarray(_voxels(p)).reshape(header.shape)
    if not np.issubdtype(data.dtype, np.integer) and not np.issubdtype(data.dtype, np.bool_):
        whole = np.isfinite(data).all() and bool((data == np.round(data)).all())
        if not whole:
            raise DataError(p, f"holds {data.dtype} values that are not whole numbers; labels are class ids")
    return data.astype(np.int64)


def read_label_names(path: str | os.PathLike[str]) -> list[str] | None:
    """Class names from a Decathlon ``dataset.json`` (``"labels"``): ``{"0": "background", ...}`` (MSD) or
    ``{"background": 0, ...}`` (nnU-Net v2), in class-id order; ``None`` without a usable ``labels`` entry.

    Raises:
        DataError: the file is not valid JSON, or its label ids are not 0, 1, ... K-1.
    """
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(p, f"cannot read as JSON ({_reason(error)})") from None
    labels = data.get("labels") if isinstance(data, dict) else None
    if not isinstance(labels, dict) or not labels:
        return None
    pairs: dict[int, str] = {}
    for key, value in labels.items():
        ident, name = (key, value) if str(key).strip().lstrip("-").isdigit() else (value, key)
        if isinstance(ident, list | tuple):  # nnU-Net v2 regions: not plain classes
            raise DataError(p, f"label {name!r} is a region {ident}; only one id per class is supported")
        try:
            pairs[int(ident)] = str(name)
        except (TypeError, ValueError):
            raise DataError(p, f"label {key!r}: {value!r} is not a class id") from None
    if sorted(pairs) != list(range(len(pairs))):
        raise DataError(p, f"label ids {sorted(pairs)} are not 0 to {len(pairs) - 1}")
    return [pairs[i] for i in range(len(pairs))]
