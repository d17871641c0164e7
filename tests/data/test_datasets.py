"""Folder datasets: sample values, windows, padding, masks, normalisation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mantis.data.augment import Augment
from mantis.data.datasets import ChangeDetectionFolder, SegmentationFolder
from mantis.data.errors import DataError
from mantis.data.io import read_image, read_mask, write_image
from mantis.data.windows import grid_windows, random_window
from tests.data.helpers import make_cd_folder, make_seg_folder


def test_change_detection_sample_values(tmp_path: Path) -> None:
    root = make_cd_folder(tmp_path, names=("x", "y"), size=(32, 32))
    data = ChangeDetectionFolder(root, patch_size=32, train=False)
    assert len(data) == 2 and data.in_channels == 3
    sample = data[1]
    assert list(sample) == ["image1", "image2", "mask"]
    assert sample["image1"].dtype == torch.float32 and sample["mask"].dtype == torch.int64
    expected = read_image(root / "B" / "y.png").astype(np.float32) / 255
    assert np.allclose(sample["image2"].numpy(), expected)
    assert np.array_equal(sample["mask"].numpy(), read_mask(root / "label" / "y.png") // 255)


def test_mean_std_are_applied_per_band_in_stored_units(tmp_path: Path) -> None:
    root = make_cd_folder(tmp_path, names=("x",), size=(16, 16))
    mean, std = [10.0, 20.0, 30.0], [2.0, 4.0, 8.0]
    sample = ChangeDetectionFolder(root, patch_size=16, train=False, mean=mean, std=std)[0]
    raw = read_image(root / "A" / "x.png").astype(np.float32)
    expected = (raw - np.array(mean, np.float32)[:, None, None]) / np.array(std, np.float32)[:, None, None]
    assert np.allclose(sample["image1"].numpy(), expected)
    with pytest.raises(DataError, match="has 3 bands but mean has 2 values"):
        ChangeDetectionFolder(root, patch_size=16, mean=[0.0, 0.0], std=[1.0, 1.0])


def test_without_statistics_only_uint8_is_rescaled(tmp_path: Path) -> None:
    root = make_cd_folder(tmp_path, names=("x",), size=(16, 16), bands=5, suffix=".tif", dtype="uint16")
    sample = ChangeDetectionFolder(root, patch_size=16, train=False)[0]
    assert sample["image1"].shape == (5, 16, 16)
    assert np.array_equal(sample["image1"].numpy(), read_image(root / "A" / "x.tif").astype(np.float32))


def test_grid_windows_tile_a_large_image_exactly(tmp_path: Path) -> None:
    windows = grid_windows(100, 70, 32)
    assert [w.row for w in windows[::3]] == [0, 32, 64, 68]
    assert [w.col for w in windows[:3]] == [0, 32, 38]
    cover = np.zeros((100, 70), dtype=int)
    for w in windows:
        assert w.height == w.width == 32
        cover[w.row : w.row + 32, w.col : w.col + 32] += 1
    assert cover.min() == 1
    assert len(grid_windows(64, 64, 32)) == 4 and len(grid_windows(64, 64, 32, stride=16)) == 9

    root = make_cd_folder(tmp_path, names=("big",), size=(100, 70), bands=4, suffix=".tif", dtype="uint16")
    data = ChangeDetectionFolder(root, patch_size=32, train=False)
    assert len(data) == len(windows) == 12
    full = read_image(root / "A" / "big.tif").astype(np.float32)
    mosaic = np.zeros_like(full)
    for index in range(len(data)):
        item, window = data.locate(index)
        patch = data[index]["image1"].numpy()
        mosaic[:, window.row : window.row + 32, window.col : window.col + 32] = patch
    assert np.allclose(mosaic, full)


def test_training_windows_are_random_and_inside(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        window = random_window(rng, 100, 70, 32)
        assert 0 <= window.row <= 68 and 0 <= window.col <= 38
    root = make_cd_folder(tmp_path, names=("big",), size=(100, 70))
    data = ChangeDetectionFolder(root, patch_size=32, train=True)
    assert len(data) == 12  # one epoch: as many windows as the grid has
    assert len(ChangeDetectionFolder(root, patch_size=32, samples_per_image=5)) == 5
    full = read_image(root / "A" / "big.png").astype(np.float32) / 255
    torch.manual_seed(0)
    patches = [data[0]["image1"].numpy() for _ in range(4)]
    assert not all(np.array_equal(patches[0], p) for p in patches[1:])
    for patch in patches:  # each is a crop of the image somewhere
        found = any(np.allclose(full[:, r : r + 32, c : c + 32], patch) for r in range(69) for c in range(39))
        assert found


def test_small_images_are_reflect_padded_or_refused(tmp_path: Path) -> None:
    root = make_cd_folder(tmp_path, names=("s",), size=(20, 24))
    sample = ChangeDetectionFolder(root, patch_size=32, train=False)[0]
    assert sample["image1"].shape == (3, 32, 32) and sample["mask"].shape == (32, 32)
    image = sample["image1"].numpy()
    assert np.allclose(image[:, 20:, :24], image[:, 19:7:-1, :24])  # rows mirrored past the border
    mask = sample["mask"].numpy()
    assert np.array_equal(mask[20:, :24], mask[19:7:-1, :24])
    with pytest.raises(DataError, match=r"s.png: is 20x24 pixels, smaller than patch_size=32"):
        ChangeDetectionFolder(root, patch_size=32, small_images="error")
    whole = ChangeDetectionFolder(root, patch_size=None, train=True)[0]
    assert whole["image1"].shape == (3, 20, 24)


def test_folder_names_mask_suffix_and_split_file(tmp_path: Path) -> None:
    root = make_cd_folder(
        tmp_path, names=("1", "2", "3"), dirs=("prev", "curr", "label"), suffix=".jpg", mask_suffix=".png"
    )
    (tmp_path / "val.txt").write_text("# validation\n2.jpg\n\n3\n")
    data = ChangeDetectionFolder(root, dirs=("prev", "curr", "label"), split_file="val.txt", patch_size=64, train=False)
    assert [item.name for item in data.items] == ["2.jpg", "3.jpg"]
    assert data.items[0].mask.name == "2.png"


def test_split_sub_folder(tmp_path: Path) -> None:
    make_cd_folder(tmp_path / "train", names=("a", "b"))
    make_cd_folder(tmp_path / "test", names=("c",))
    assert len(ChangeDetectionFolder(tmp_path, split="test", patch_size=64, train=False)) == 1


def test_mask_mapping_and_ignore_index(tmp_path: Path) -> None:
    write_image(tmp_path / "A" / "m.png", np.zeros((3, 4, 4), np.uint8))
    write_image(tmp_path / "B" / "m.png", np.zeros((3, 4, 4), np.uint8))
    write_image(tmp_path / "label" / "m.png", np.array([[0, 255, 128, 0]] * 4, np.uint8))
    with pytest.raises(DataError, match="mask value"):
        ChangeDetectionFolder(tmp_path, patch_size=4)
    data = ChangeDetectionFolder(
        tmp_path, patch_size=4, train=False, mask_mapping={0: 0, 255: 1, 128: 99}, ignore_index=99
    )
    assert data[0]["mask"][0].tolist() == [0, 1, 99, 0]


def test_multitask_targets_are_made_after_augmentation(tmp_path: Path) -> None:
    root = make_cd_folder(tmp_path, names=("x",), size=(32, 32))
    data = ChangeDetectionFolder(root, patch_size=32, multitask=True, augment=Augment(rotate_zoom_p=1.0))
    torch.manual_seed(1)
    sample = data[0]
    assert list(sample) == ["image1", "image2", "mask", "segmentation", "boundary", "distance"]
    assert sample["segmentation"].shape == (2, 32, 32)
    assert torch.equal(sample["segmentation"].argmax(0), sample["mask"])


def test_segmentation_folder_with_colour(tmp_path: Path) -> None:
    root = make_seg_folder(tmp_path, num_classes=4, size=(40, 40))
    data = SegmentationFolder(root, num_classes=4, patch_size=32, train=False, multitask=True, colour=True)
    assert len(data) == 3 * 4
    sample = data[0]
    assert list(sample) == ["image", "mask", "segmentation", "boundary", "distance", "colour"]
    assert sample["colour"].shape == (3, 32, 32) and sample["colour"].min() >= 0 and sample["colour"].max() <= 1
    assert set(np.unique(sample["mask"].numpy())) <= {0, 1, 2, 3}


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "float32"])
def test_training_and_inference_normalise_alike(dtype: str) -> None:
    raster = pytest.importorskip("mantis.inference.raster")
    from mantis.data.normalize import normalize_image

    data = (np.random.default_rng(0).random((3, 5, 5)) * 200).astype(dtype)
    assert np.array_equal(normalize_image(data), raster.normalise(data))
    mean, std = [1.0, 2.0, 3.0], [2.0, 3.0, 4.0]
    assert np.allclose(normalize_image(data, mean, std), raster.normalise(data, mean, std))


def test_16_bit_images_without_statistics_warn(tmp_path: Path) -> None:
    root = make_cd_folder(tmp_path, names=("x",), size=(16, 16), suffix=".tif", dtype="uint16")
    with pytest.warns(UserWarning, match="run `mantis stats`"):
        ChangeDetectionFolder(root, patch_size=16)


def test_missing_pixels_rule() -> None:
    from mantis.io import missing_pixels

    image = np.ones((2, 3, 3), np.float32)
    image[0, 0, 0] = np.nan  # one band NaN: missing
    image[1, 0, 1] = np.inf  # one band infinite: missing
    image[:, 2, 2] = -9999.0  # every band at nodata: missing
    image[0, 1, 1] = -9999.0  # one band at nodata: a measurement
    expected = np.zeros((3, 3), bool)
    expected[0, 0] = expected[0, 1] = expected[2, 2] = True
    assert np.array_equal(missing_pixels(image, -9999.0), expected)
    expected[2, 2] = False
    assert np.array_equal(missing_pixels(image, None), expected)
    assert not missing_pixels(np.zeros((1, 2, 2), np.uint8), None).any()


def test_pixels_without_measurement_are_ignored_not_fed_as_nan(tmp_path: Path) -> None:
    """A float GeoTIFF with NaN pixels and a uint16 one with a declared nodata value: the mask is ignore_index
    there and the network sees the band mean (0 once standardised), never NaN."""
    root = tmp_path / "seg"
    image = np.full((2, 16, 16), 100.0, np.float32)
    image[:, :4, :4] = np.nan
    write_image(root / "images" / "a.tif", image)
    counts = np.full((2, 16, 16), 200, np.uint16)
    counts[:, 8:, 8:] = 0
    write_image(root / "images" / "b.tif", counts, nodata=0)
    for name in ("a.tif", "b.tif"):
        write_image(root / "masks" / name, np.ones((16, 16), np.uint8))
    dataset = SegmentationFolder(root, patch_size=None, train=False, num_classes=2, mean=[50.0, 50.0], std=[10.0, 10.0])
    for index, (rows, cols) in enumerate([(slice(0, 4), slice(0, 4)), (slice(8, 16), slice(8, 16))]):
        sample = dataset[index]
        assert torch.isfinite(sample["image"]).all()
        assert (sample["image"][:, rows, cols] == 0).all()  # the band mean, standardised
        assert (sample["mask"][rows, cols] == 255).all()
        assert (sample["mask"] == 1).sum() == 16 * 16 - sample["mask"][rows, cols].numel()
