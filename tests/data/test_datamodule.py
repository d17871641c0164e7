"""Data modules: splits, checks before training, batches, reproducibility, YAML configuration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from jsonargparse import ArgumentParser

from mantis.data.augment import Augment
from mantis.data.datamodule import ChangeDetectionDataModule, SegmentationDataModule
from mantis.data.errors import DataError
from tests.data.helpers import make_cd_folder, make_seg_folder


def test_synthetic_change_detection_batches() -> None:
    data = ChangeDetectionDataModule(patch_size=32, batch_size=4, num_train=8, num_val=4, bands=4, multitask=True)
    assert (data.in_channels, data.num_classes) == (4, 2)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    assert batch["image1"].shape == (4, 4, 32, 32) and batch["mask"].shape == (4, 32, 32)
    assert batch["boundary"].shape == (4, 2, 32, 32)
    assert len(data.val_dataloader()) == 1


def test_synthetic_segmentation_defaults() -> None:
    data = SegmentationDataModule(patch_size=32, batch_size=2, num_train=2, colour=True)
    assert (data.in_channels, data.num_classes) == (3, 3)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    assert batch["colour"].shape == (2, 3, 32, 32)


def test_training_batches_are_reproducible_when_seeded() -> None:
    def module() -> ChangeDetectionDataModule:
        data = ChangeDetectionDataModule(patch_size=32, batch_size=2, num_train=4, augment=Augment(rotate_zoom_p=1.0))
        data.setup("fit")
        return data

    def epoch(data: ChangeDetectionDataModule) -> list[torch.Tensor]:
        return [batch["image1"] for batch in data.train_dataloader()]

    torch.manual_seed(0)
    data = module()
    first, second = epoch(data), epoch(data)
    torch.manual_seed(0)
    again = epoch(module())
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(torch.equal(a, b) for a, b in zip(first, second))  # epochs differ


def test_random_split_of_a_flat_folder(tmp_path: Path) -> None:
    make_cd_folder(tmp_path, names=[f"{i:02d}" for i in range(10)], size=(32, 32))
    data = ChangeDetectionDataModule(str(tmp_path), patch_size=32, val_fraction=0.2, test_fraction=0.1)
    names = data.plan.names
    assert [len(names[s] or []) for s in ("train", "val", "test")] == [7, 2, 1]
    assert set(names["train"] or []) | set(names["val"] or []) | set(names["test"] or []) == {
        f"{i:02d}.png" for i in range(10)
    }
    again = ChangeDetectionDataModule(str(tmp_path), patch_size=32, val_fraction=0.2, test_fraction=0.1)
    assert again.plan.names == names
    assert data.in_channels == 3


def test_split_sub_folders_and_missing_test_split(tmp_path: Path) -> None:
    make_cd_folder(tmp_path / "train", names=("a", "b"), size=(32, 32))
    make_cd_folder(tmp_path / "val", names=("c",), size=(32, 32))
    data = ChangeDetectionDataModule(str(tmp_path), patch_size=32, batch_size=2)
    data.setup("fit")
    assert len(data.train_dataloader().dataset) == 2 and len(data.val_dataloader().dataset) == 1
    with pytest.raises(DataError, match="no test split"):
        data.setup("test")


def test_split_files(tmp_path: Path) -> None:
    make_seg_folder(tmp_path, names=("a", "b", "c", "d"), size=(32, 32))
    (tmp_path / "val.txt").write_text("b.png\n")
    (tmp_path / "test.txt").write_text("d\n")
    data = SegmentationDataModule(str(tmp_path), num_classes=3, patch_size=32, val_file="val.txt", test_file="test.txt")
    assert data.plan.names == {"val": ["b.png"], "test": ["d.png"], "train": ["a.png", "c.png"]}
    # a name no file answers to, or a file in two splits (a leak), is one line naming the list and its line
    (tmp_path / "test.txt").write_text("d\ne.tif\n")
    with pytest.raises(DataError, match=r"test\.txt: line 2: 'e\.tif' is not in .*image"):
        SegmentationDataModule(str(tmp_path), num_classes=3, val_file="val.txt", test_file="test.txt").plan  # noqa: B018
    (tmp_path / "test.txt").write_text("d\nb.tif\n")
    with pytest.raises(DataError, match=r"test\.txt: line 2: 'b\.tif' is listed twice \(or in two splits\)"):
        SegmentationDataModule(str(tmp_path), num_classes=3, val_file="val.txt", test_file="test.txt").plan  # noqa: B018


def test_bad_files_stop_setup_before_training(tmp_path: Path) -> None:
    make_cd_folder(tmp_path / "train", names=("a", "b"), size=(32, 32))
    (tmp_path / "train" / "label" / "b.png").unlink()
    data = ChangeDetectionDataModule(str(tmp_path), patch_size=32)
    with pytest.raises(DataError, match="b.png: has no matching file"):
        data.setup("fit")
    missing = ChangeDetectionDataModule(str(tmp_path / "nowhere"))  # files are looked at on first use
    with pytest.raises(DataError, match="nowhere: dataset folder not found"):
        missing.in_channels  # noqa: B018
    with pytest.raises(DataError, match="nowhere: dataset folder not found"):
        missing.setup("fit")


def test_configured_from_yaml_with_nested_augmentation(tmp_path: Path) -> None:
    parser = ArgumentParser()
    parser.add_class_arguments(ChangeDetectionDataModule, "data")
    config = tmp_path / "data.yaml"
    config.write_text(
        "data:\n  patch_size: 32\n  mean: [0.5, 0.5, 0.5]\n  std: [0.2, 0.2, 0.2]\n"
        "  mask_mapping: {0: 0, 255: 1}\n  augment:\n    rotate_zoom_p: 0.0\n    identity_p: 0.2\n"
    )
    data = parser.instantiate(parser.parse_path(config)).data
    assert isinstance(data, ChangeDetectionDataModule)
    assert data.augment == Augment(rotate_zoom_p=0.0, identity_p=0.2)
    assert data.mean == [0.5, 0.5, 0.5] and data.mask_mapping == {0: 0, 255: 1}
    none = parser.instantiate(parser.parse_args(["--data.augment=null"])).data
    assert none.augment is None


def test_band_statistics_of_the_training_split_by_default(tmp_path: Path) -> None:
    from mantis.data.io import read_image

    make_cd_folder(tmp_path, names=[f"{i:02d}" for i in range(5)], size=(32, 32))
    (tmp_path / "val.txt").write_text("00.png\n")
    data = ChangeDetectionDataModule(str(tmp_path), patch_size=32, val_file="val.txt", test_fraction=0.0)
    # the four training pairs, both dates pooled; the validation pair does not count
    pixels = np.concatenate(
        [read_image(tmp_path / d / f"{i:02d}.png").reshape(3, -1) for d in ("A", "B") for i in range(1, 5)], axis=1
    ).astype(np.float64)
    np.testing.assert_allclose(data.mean, pixels.mean(1), rtol=1e-9)
    np.testing.assert_allclose(data.std, pixels.std(1), rtol=1e-9)
    data.setup("fit")
    batch = next(iter(data.val_dataloader()))
    raw = read_image(tmp_path / "A" / "00.png").astype(np.float32)
    want = (raw - np.asarray(data.mean, np.float32)[:, None, None]) / np.asarray(data.std, np.float32)[:, None, None]
    np.testing.assert_allclose(batch["image1"][0].numpy(), want, rtol=1e-5, atol=1e-5)
    fixed = ChangeDetectionDataModule(str(tmp_path), patch_size=32, auto_stats=False)
    assert fixed.mean is None and fixed.std is None
    given = ChangeDetectionDataModule(str(tmp_path), patch_size=32, mean=[1.0, 2.0, 3.0], std=[1.0, 1.0, 1.0])
    assert given.mean == [1.0, 2.0, 3.0]


def test_synthetic_statistics_come_from_training_scenes() -> None:
    data = SegmentationDataModule(patch_size=32, bands=4)
    assert len(data.mean or []) == 4 and all(0.0 < m < 1.0 for m in data.mean or [])
    assert all(s > 0 for s in data.std or [])


def test_statistics_read_at_most_64_files_evenly_spread() -> None:
    from mantis.data.datasets import evenly as _evenly

    items = [Path(f"{i:03d}") for i in range(200)]
    picked = _evenly(items, 64)
    assert len(picked) == 64 and picked[0] == items[0] and picked[-1] == items[-1]
    assert len(set(picked)) == 64
    assert _evenly(items[:10], 64) == items[:10]
    assert _evenly(items, 1) == items[:1] and _evenly(items, 0) == []  # no division by count - 1


def test_loader_workers_and_pinned_memory_follow_the_trainers_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from mantis.data.loaders import auto_workers
    from mantis.data.series import SeriesDataModule

    # CPU: no workers (they would take the model's cores); GPUs: each device's cores but one, 1 to 8.
    assert [auto_workers(False, 64), auto_workers(True, 16), auto_workers(True, 16, 4), auto_workers(True, 2, 4)] == [
        0,
        8,
        3,
        1,
    ]
    monkeypatch.setattr("os.cpu_count", lambda: 6)
    # Image folders read and augment files (workers by default); series are in memory (0 by default).
    for module, in_memory in (
        (SegmentationDataModule(patch_size=32, batch_size=2, num_train=4), False),
        (SeriesDataModule(aeon_dataset="GunPoint", batch_size=8), True),
    ):
        module.setup("fit")
        loader = module.train_dataloader()
        assert (loader.num_workers, loader.pin_memory) == (0, False)  # no trainer: the CPU
        for kind, devices, want in (("cpu", 1, 0), ("cuda", 1, 5), ("cuda", 2, 2)):
            module.trainer = SimpleNamespace(  # type: ignore[assignment]
                strategy=SimpleNamespace(root_device=torch.device(kind)), num_devices=devices, world_size=1
            )
            loader = module.train_dataloader()
            assert (loader.num_workers, loader.pin_memory) == (0 if in_memory else want, kind == "cuda")
        module.num_workers = 3  # a number given is kept
        assert module.train_dataloader().num_workers == 3
