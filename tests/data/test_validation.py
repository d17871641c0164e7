"""Every bad folder fails before training with one line that names the file and the problem."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mantis.data.datasets import ChangeDetectionFolder, SegmentationFolder
from mantis.data.errors import DataError
from mantis.data.io import write_image
from tests.data.helpers import make_cd_folder, make_seg_folder


def error_of(root: Path, **kwargs: object) -> str:
    with pytest.raises(DataError) as caught:
        ChangeDetectionFolder(root, patch_size=32, **kwargs)  # type: ignore[arg-type]
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_missing_root_and_missing_sub_folder(tmp_path: Path) -> None:
    assert error_of(tmp_path / "nowhere") == f"{tmp_path / 'nowhere'}: dataset folder not found"
    make_cd_folder(tmp_path)
    (tmp_path / "label" / "a.png").unlink()
    (tmp_path / "label" / "b.png").unlink()
    (tmp_path / "label" / "c.png").unlink()
    (tmp_path / "label").rmdir()
    assert error_of(tmp_path).startswith(f"{tmp_path / 'label'}: folder not found")


def test_empty_folder(tmp_path: Path) -> None:
    for name in ("A", "B", "label"):
        (tmp_path / name).mkdir()
    (tmp_path / "A" / "notes.txt").write_text("not an image")
    assert error_of(tmp_path).startswith(f"{tmp_path / 'A'}: no images found")


def test_image_without_its_mask_or_its_other_date(tmp_path: Path) -> None:
    make_cd_folder(tmp_path)
    (tmp_path / "label" / "b.png").unlink()
    assert (
        error_of(tmp_path)
        == f"{tmp_path / 'A' / 'b.png'}: has no matching file in {tmp_path / 'label'} (same name or same stem)"
    )
    make_cd_folder(tmp_path)
    (tmp_path / "B" / "c.png").unlink()
    assert error_of(tmp_path).startswith(f"{tmp_path / 'A' / 'c.png'}: has no matching file in {tmp_path / 'B'}")


def test_second_date_without_first(tmp_path: Path) -> None:
    make_cd_folder(tmp_path)
    write_image(tmp_path / "B" / "extra.png", np.zeros((3, 64, 64), np.uint8))
    assert error_of(tmp_path) == f"{tmp_path / 'B' / 'extra.png'}: has no matching file in {tmp_path / 'A'}"


def test_dates_of_different_size_or_band_count(tmp_path: Path) -> None:
    make_cd_folder(tmp_path)
    write_image(tmp_path / "B" / "b.png", np.zeros((3, 64, 60), np.uint8))
    assert error_of(tmp_path) == f"{tmp_path / 'B' / 'b.png'}: is 64x60 pixels but {tmp_path / 'A' / 'b.png'} is 64x64"
    make_cd_folder(tmp_path)
    write_image(tmp_path / "B" / "b.png", np.zeros((4, 64, 64), np.uint8))
    assert error_of(tmp_path) == f"{tmp_path / 'B' / 'b.png'}: has 4 bands but {tmp_path / 'A' / 'b.png'} has 3"


def test_samples_with_different_band_counts(tmp_path: Path) -> None:
    make_cd_folder(tmp_path, names=("a",), bands=3)
    make_cd_folder(tmp_path, names=("b",), bands=1)
    assert error_of(tmp_path).startswith(
        f"{tmp_path / 'A' / 'b.png'}: has 1 bands but {tmp_path / 'A' / 'a.png'} has 3"
    )


def test_mask_of_another_size(tmp_path: Path) -> None:
    make_cd_folder(tmp_path)
    write_image(tmp_path / "label" / "a.png", np.zeros((1, 32, 64), np.uint8))
    assert error_of(tmp_path).startswith(f"{tmp_path / 'label' / 'a.png'}: is 32x64 pixels")


@pytest.mark.parametrize("folder", ["A", "B", "label"])
def test_truncated_file(tmp_path: Path, folder: str) -> None:
    make_cd_folder(tmp_path)
    path = tmp_path / folder / "b.png"
    path.write_bytes(path.read_bytes()[:-200])
    assert error_of(tmp_path).startswith(f"{path}: cannot read image (")


def test_truncated_geotiff_and_unreadable_file(tmp_path: Path) -> None:
    make_cd_folder(tmp_path, suffix=".tif", dtype="uint16", bands=4)
    path = tmp_path / "B" / "a.tif"
    path.write_bytes(path.read_bytes()[:-3000])
    assert error_of(tmp_path).startswith(f"{path}: cannot read image (")
    make_cd_folder(tmp_path, suffix=".tif", dtype="uint16", bands=4)
    (tmp_path / "A" / "c.tif").write_bytes(b"\x00" * 100)
    assert error_of(tmp_path).startswith(f"{tmp_path / 'A' / 'c.tif'}: cannot read image (")


def test_mask_values_that_fit_no_class(tmp_path: Path) -> None:
    make_cd_folder(tmp_path)
    write_image(tmp_path / "label" / "c.png", np.full((1, 64, 64), 7, np.uint8))
    assert error_of(tmp_path) == (
        f"{tmp_path / 'label' / 'c.png'}: mask value(s) 7 fit no class (known values: 0, 1, 255; "
        "set mask_mapping or num_classes)"
    )
    root = make_seg_folder(tmp_path / "seg", num_classes=5)
    with pytest.raises(DataError, match=r"masks/a.png: mask value\(s\) 3, 4 fit no class"):
        SegmentationFolder(root, num_classes=3)


def test_split_file_problems(tmp_path: Path) -> None:
    make_cd_folder(tmp_path)
    assert error_of(tmp_path, split_file=tmp_path / "none.txt") == f"{tmp_path / 'none.txt'}: split file not found"
    (tmp_path / "list.txt").write_text("a.png\nzzz.png\n")
    assert error_of(tmp_path, split_file=tmp_path / "list.txt") == (
        f"{tmp_path / 'list.txt'}: line 2: 'zzz.png' is not in {tmp_path / 'A'}"
    )
    (tmp_path / "empty.txt").write_text("\n# nothing\n")
    assert (
        error_of(tmp_path, split_file=tmp_path / "empty.txt") == f"{tmp_path / 'empty.txt'}: split file lists no files"
    )


def test_a_good_folder_passes(tmp_path: Path) -> None:
    make_cd_folder(tmp_path, suffix=".tif", dtype="uint16", bands=4)
    assert len(ChangeDetectionFolder(tmp_path, patch_size=32, train=False)) == 3 * 4


def test_validate_checks_again_after_a_file_breaks(tmp_path: Path) -> None:
    make_cd_folder(tmp_path)
    data = ChangeDetectionFolder(tmp_path, patch_size=32)
    data.validate()
    path = tmp_path / "label" / "a.png"
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(DataError, match=r"label/a.png: cannot read image"):
        data.validate()
    assert len(ChangeDetectionFolder(tmp_path, patch_size=32, check=False)) == 3 * 4  # headers only
