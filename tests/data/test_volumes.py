"""Volumes: NIfTI/.npy reading, folder and Decathlon layouts, splits, training-only statistics, patches,
label-keeping 3D augmentation and the synthetic shapes."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from mantis.data.volumes import VolumeSegmentationDataModule
from mantis.data.volumes_augment import VolumeAugment
from mantis.data.volumes_io import pair_volumes, read_header, read_label_names, read_labels, read_volume
from mantis.data.volumes_synthetic import synthetic_volume
from mantis.io.errors import DataError


def _nifti(path: Path, data: np.ndarray, zooms: tuple[float, ...] = (1.0, 1.0, 1.0)) -> Path:
    affine = np.diag([*zooms[:3], 1.0])
    image = nib.Nifti1Image(data, affine)
    image.header.set_zooms(tuple(zooms) + (1.0,) * (data.ndim - 3))
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, path)
    return path


def _folders(root: Path, count: int, shape: tuple[int, int, int] = (8, 8, 8), seed: int = 0) -> list[np.ndarray]:
    """``count`` one-channel volumes in ``root/images`` (.nii.gz and .npy alternately) with labels in ``masks``."""
    rng = np.random.default_rng(seed)
    volumes = []
    for i in range(count):
        image = rng.normal(10.0 * i, 1.0 + i, shape).astype(np.float32)
        labels = (image > 10.0 * i).astype(np.uint8)
        if i % 2:
            (root / "images").mkdir(parents=True, exist_ok=True)
            (root / "masks").mkdir(parents=True, exist_ok=True)
            np.save(root / "images" / f"v{i}.npy", image)
            np.save(root / "masks" / f"v{i}.npy", labels)
        else:
            _nifti(root / "images" / f"v{i}.nii.gz", image)
            _nifti(root / "masks" / f"v{i}.nii.gz", labels)
        volumes.append(image)
    return volumes


def test_nifti_channels_come_from_the_fourth_axis_and_labels_may_be_whole_floats(tmp_path: Path) -> None:
    data = np.arange(4 * 5 * 6 * 2, dtype=np.float32).reshape(4, 5, 6, 2)
    path = _nifti(tmp_path / "a.nii.gz", data, (2.0, 1.0, 3.5))
    header = read_header(path)
    assert header.shape == (4, 5, 6) and header.channels == 2 and header.zooms == (2.0, 1.0, 3.5)
    np.testing.assert_array_equal(read_volume(path), np.moveaxis(data, -1, 0))
    np.save(tmp_path / "b.npy", data[..., 0].astype(np.int16))
    assert read_volume(tmp_path / "b.npy").shape == (1, 4, 5, 6)
    _nifti(tmp_path / "l.nii", np.full((4, 5, 6), 2.0, np.float32))
    labels = read_labels(tmp_path / "l.nii")
    assert labels.dtype == np.int64 and set(np.unique(labels)) == {2}
    _nifti(tmp_path / "half.nii", np.full((4, 5, 6), 0.5, np.float32))
    with pytest.raises(DataError, match=r"half\.nii: holds float32 values that are not whole numbers"):
        read_labels(tmp_path / "half.nii")
    (tmp_path / "broken.nii.gz").write_bytes(b"not a nifti")
    with pytest.raises(DataError, match=r"broken\.nii\.gz: cannot read as NIfTI"):
        read_header(tmp_path / "broken.nii.gz")
    np.save(tmp_path / "flat.npy", np.zeros((4, 5)))
    with pytest.raises(DataError, match=r"flat\.npy: has shape \(4, 5\); a volume needs 3 axes"):
        read_header(tmp_path / "flat.npy")


def test_files_pair_by_name_then_stem_and_strays_are_named(tmp_path: Path) -> None:
    for folder, name in (("images", "a.nii.gz"), ("images", "b.npy"), ("masks", "a.npy"), ("masks", "b.npy")):
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / name).write_bytes(b"")
    (tmp_path / "images" / "._a.nii.gz").write_bytes(b"")  # macOS metadata: hidden, ignored
    pairs = pair_volumes(tmp_path / "images", tmp_path / "masks")
    assert [(i.name, m.name) for i, m in pairs] == [("a.nii.gz", "a.npy"), ("b.npy", "b.npy")]
    (tmp_path / "masks" / "c.nii").write_bytes(b"")
    with pytest.raises(DataError, match=r"masks/c\.nii: has no matching file in .*images"):
        pair_volumes(tmp_path / "images", tmp_path / "masks")
    (tmp_path / "images" / "c.nii.gz").write_bytes(b"")
    (tmp_path / "images" / "c.npy").write_bytes(b"")
    with pytest.raises(DataError, match=r"ambiguous"):
        pair_volumes(tmp_path / "images", tmp_path / "masks")


def test_a_mask_of_another_shape_is_refused_in_one_line(tmp_path: Path) -> None:
    _folders(tmp_path, 3)
    np.save(tmp_path / "masks" / "v1.npy", np.zeros((8, 8, 9), np.uint8))
    with pytest.raises(DataError, match=r"masks/v1\.npy: is 8x8x9 voxels but .*images/v1\.npy is 8x8x8"):
        VolumeSegmentationDataModule(str(tmp_path), patch_size=8, val_fraction=0.0, test_fraction=0.0)


def test_statistics_come_from_the_training_split_only(tmp_path: Path) -> None:
    volumes = _folders(tmp_path, 5)
    module = VolumeSegmentationDataModule(str(tmp_path), patch_size=8, val_fraction=0.2, test_fraction=0.2)
    train = [volumes[int(Path(f).name[1])] for f in module.files["train"]]
    assert len(train) == 3 and module.in_channels == 1 and module.num_classes == 2
    voxels = np.concatenate([v.ravel() for v in train]).astype(np.float64)
    assert module.mean == pytest.approx([voxels.mean()], rel=1e-6)
    assert module.std == pytest.approx([voxels.std()], rel=1e-6)
    every = np.concatenate([v.ravel() for v in volumes])
    assert abs(module.mean[0] - every.mean()) > 1.0  # the held-out volumes would move it
    given = VolumeSegmentationDataModule(str(tmp_path), patch_size=8, mean=[3.0], std=[2.0], test_fraction=0.2)
    given.setup()
    patch = given.splits["val"][0]["image"][0].numpy()
    raw = volumes[int(Path(given.files["val"][0]).name[1])]
    assert given.mean == [3.0] and np.allclose(patch, (raw - 3.0) / 2.0)  # a checkpoint's statistics, as given


def test_decathlon_layout_names_classes_from_dataset_json(tmp_path: Path) -> None:
    for i in range(3):
        _nifti(tmp_path / "imagesTr" / f"heart_{i}.nii.gz", np.random.default_rng(i).normal(size=(8, 8, 8, 2)))
        _nifti(tmp_path / "labelsTr" / f"heart_{i}.nii.gz", np.full((8, 8, 8), i % 3, np.uint8))
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": {"0": "background", "1": "atrium", "2": "wall"}}))
    module = VolumeSegmentationDataModule(str(tmp_path), patch_size=8, val_fraction=0.0, test_fraction=0.0)
    assert module.class_names == ["background", "atrium", "wall"] and module.in_channels == 2
    (tmp_path / "v2.json").write_text(json.dumps({"labels": {"background": 0, "tumour": 1}}))
    assert read_label_names(tmp_path / "v2.json") == ["background", "tumour"]
    _nifti(tmp_path / "labelsTr" / "heart_2.nii.gz", np.full((8, 8, 8), 3, np.uint8))
    with pytest.raises(DataError, match=r"labelsTr/heart_2\.nii\.gz: holds label 3, outside the classes 0 to 2"):
        VolumeSegmentationDataModule(str(tmp_path), patch_size=8, val_fraction=0.0, test_fraction=0.0)


def test_validation_patches_cover_each_volume_and_training_patches_are_crops(tmp_path: Path) -> None:
    shape = (10, 12, 8)
    image = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for name in ("a", "b"):
        np.save(tmp_path / "images" / f"{name}.npy", image)
        np.save(tmp_path / "masks" / f"{name}.npy", (image % 3).astype(np.int64))
    module = VolumeSegmentationDataModule(
        str(tmp_path), patch_size=[8, 8, 8], val_fraction=0.5, test_fraction=0.0, auto_stats=False, multitask=True
    )
    module.setup()
    seen = np.zeros(shape, dtype=bool)
    for patch in module.splits["val"]:
        first = int(patch["image"][0, 0, 0, 0])
        origin = np.unravel_index(first, shape)
        box = tuple(slice(o, o + 8) for o in origin)
        np.testing.assert_array_equal(patch["image"][0].numpy(), image[box])
        np.testing.assert_array_equal(patch["mask"].numpy(), image[box] % 3)
        assert patch["boundary"].shape == (3, 8, 8, 8)
        seen[box] = True
    assert seen.all() and len(module.splits["val"]) == 2 * 2 * 1
    sample = module.splits["train"][(0, 12345)]
    origin = np.unravel_index(int(sample["image"][0, 0, 0, 0]), shape)
    np.testing.assert_array_equal(sample["image"][0].numpy(), image[tuple(slice(o, o + 8) for o in origin)])


def test_augmentation_moves_image_and_labels_together() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, (6, 6, 4))
    image = np.stack([labels.astype(np.float32), -labels.astype(np.float32)])
    augment = VolumeAugment(flip_axes=(0, 1, 2), flip_p=0.5, rotate_planes=((0, 1), (1, 2)))
    shapes = set()
    for seed in range(20):
        out_image, out_labels = augment(image, labels, np.random.default_rng(seed))
        np.testing.assert_array_equal(out_image[0], out_labels)
        np.testing.assert_array_equal(out_image[1], -out_labels)
        shapes.add(out_labels.shape)
        assert sorted(out_labels.ravel()) == sorted(labels.ravel())  # voxels move, none is invented
    assert shapes == {(6, 6, 4)}  # the (1, 2) plane has sides 6 and 4: half turns only


def test_quarter_turns_across_anisotropic_spacing_are_refused(tmp_path: Path) -> None:
    for i in range(2):
        _nifti(tmp_path / "images" / f"s{i}.nii.gz", np.zeros((8, 8, 8), np.float32), (0.8, 0.8, 5.0))
        _nifti(tmp_path / "masks" / f"s{i}.nii.gz", np.zeros((8, 8, 8), np.uint8), (0.8, 0.8, 5.0))
    args = {"patch_size": 8, "val_fraction": 0.0, "test_fraction": 0.0}
    VolumeSegmentationDataModule(str(tmp_path), augment=VolumeAugment(rotate_planes=[[0, 1]]), **args)  # in-plane
    with pytest.raises(DataError, match=r"s\d\.nii\.gz: voxel spacing 0\.8 along axis 1 and 5 along axis 2 differ"):
        VolumeSegmentationDataModule(str(tmp_path), augment=VolumeAugment(rotate_planes=[[1, 2]]), **args)
    # the former spelling, one keyword per setting, still works, with a deprecation warning
    former = pytest.warns(DeprecationWarning, match=r"rotate_planes are deprecated; pass augment=VolumeAugment")
    with former, pytest.raises(DataError, match=r"along axis 2 differ"):
        VolumeSegmentationDataModule(str(tmp_path), rotate_planes=[[1, 2]], **args)


def test_foreground_patches_hold_foreground() -> None:
    module = VolumeSegmentationDataModule(
        None, patch_size=8, foreground_p=1.0, num_synthetic=4, synthetic_size=32, val_fraction=0.0, test_fraction=0.0
    )
    module.setup()
    train = module.splits["train"]
    assert len(train) == 4 * module.samples_per_volume
    assert all(bool((train[(i % len(train), i)]["mask"] > 0).any()) for i in range(24))


def test_synthetic_shapes_are_spheres_and_boxes_brighter_than_the_background() -> None:
    image, labels = synthetic_volume((40, 40, 40), seed=1, channels=2)
    assert image.shape == (2, 40, 40, 40) and labels.shape == (40, 40, 40)
    pairs = [synthetic_volume((24, 24, 24), seed=seed) for seed in range(6)]
    values = np.concatenate([v[0].ravel() for v, _ in pairs])
    classes = np.concatenate([m.ravel() for _, m in pairs])
    means = [float(values[classes == k].mean()) for k in range(3)]  # every class present
    assert means[1] > means[2] + 0.3 and means[2] > means[0] + 0.3


def test_split_sub_folders_are_the_splits(tmp_path: Path) -> None:
    _folders(tmp_path / "train", 3)
    _folders(tmp_path / "test", 1, seed=1)
    module = VolumeSegmentationDataModule(str(tmp_path), patch_size=8, val_fraction=0.5, test_fraction=0.5)
    assert [Path(f).relative_to(tmp_path).parts[0] for f in module.files["train"]] == ["train"] * 3
    assert module.files["val"] == [] and [Path(f).name for f in module.files["test"]] == ["v0.nii.gz"]
    np.save(tmp_path / "test" / "masks" / "v0.npy", np.full((8, 8, 8), 7, np.uint8))
    (tmp_path / "test" / "masks" / "v0.nii.gz").unlink()
    with pytest.raises(DataError, match=r"test/masks/v0\.npy: holds label 7, outside the classes 0 to 1"):
        VolumeSegmentationDataModule(str(tmp_path), patch_size=8, num_classes=2)


def test_intensity_changes_touch_the_image_only() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, (8, 8, 8))
    image = rng.normal(0, 1, (2, 8, 8, 8)).astype(np.float32) + 5.0
    gained, same = VolumeAugment(gain=0.2)(image, labels, np.random.default_rng(3))
    np.testing.assert_array_equal(same, labels)
    ratio = gained / image  # one factor per channel, drawn anew for each
    assert np.allclose(ratio, ratio[:, :1, :1, :1], rtol=1e-5) and not np.isclose(ratio[0, 0, 0, 0], ratio[1, 0, 0, 0])
    shifted, _ = VolumeAugment(offset=0.5)(image, labels, np.random.default_rng(3))
    step = shifted - image
    assert np.allclose(step, step[:, :1, :1, :1], atol=1e-5) and np.abs(step).max() > 1e-3
    noisy, _ = VolumeAugment(noise=0.1)(image, labels, np.random.default_rng(3))
    assert abs(float((noisy - image).std()) - 0.1) < 0.01 and abs(float((noisy - image).mean())) < 0.01


def test_split_files_choose_the_volumes_of_each_split(tmp_path: Path) -> None:
    _folders(tmp_path, 5)
    (tmp_path / "val.txt").write_text("v1\n# a comment\nv2.nii.gz\n")
    (tmp_path / "test.txt").write_text("v4\n")
    module = VolumeSegmentationDataModule(str(tmp_path), patch_size=8, val_file="val.txt", test_file="test.txt")
    assert {s: [Path(f).name for f in files] for s, files in module.files.items()} == {
        "train": ["v0.nii.gz", "v3.npy"],
        "val": ["v1.npy", "v2.nii.gz"],
        "test": ["v4.nii.gz"],
    }
    (tmp_path / "test.txt").write_text("v4\nv9\n")
    with pytest.raises(DataError, match=r"test\.txt: line 2: 'v9' is not a volume of "):
        VolumeSegmentationDataModule(str(tmp_path), patch_size=8, val_file="val.txt", test_file="test.txt")


def test_an_intensity_range_clips_the_images_before_the_statistics(tmp_path: Path) -> None:
    volumes = _folders(tmp_path, 5)  # volume i holds values around 10 i
    module = VolumeSegmentationDataModule(str(tmp_path), patch_size=8, intensity_range=[5.0, 25.0])
    train = [np.clip(volumes[int(Path(f).name[1])], 5.0, 25.0) for f in module.files["train"]]
    voxels = np.concatenate([v.ravel() for v in train]).astype(np.float64)
    assert module.mean == pytest.approx([voxels.mean()], rel=1e-6)
    assert module.std == pytest.approx([voxels.std()], rel=1e-6)
    assert module.hparams["intensity_range"] == [5.0, 25.0]  # what checkpoints keep for mantis predict
    module.setup()
    patch = module.splits["val"][0]["image"][0].numpy()
    raw = volumes[int(Path(module.files["val"][0]).name[1])]
    assert np.allclose(patch, (np.clip(raw, 5.0, 25.0) - module.mean[0]) / module.std[0], atol=1e-5)
    with pytest.raises(ValueError, match=r"intensity_range must be \[low, high\] with low < high, got \[3.0, 3.0\]"):
        VolumeSegmentationDataModule(str(tmp_path), intensity_range=[3.0, 3.0])
