"""Images by class folders: a tiny synthetic set (a bright disk, stripes, or neither) learnt through
`mantis fit`; splits, sizes and standardisation checked against NumPy; bad folders give one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from mantis.cli import main
from mantis.data.image_classes import ImageClassesDataModule
from mantis.io.errors import DataError
from mantis.io.raster import read_image, write_image
from mantis.models import create_model

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "image_classes.yaml"
CLASSES = ("disk", "plain", "stripes")


def _picture(kind: str, rng: np.random.Generator, bands: int = 4) -> np.ndarray:
    """A uint16 bands x H x W image of the class ``kind``, of a random size between 18 and 26 pixels."""
    height, width = (int(v) for v in rng.integers(18, 27, size=2))
    image = rng.normal(1000.0, 40.0, size=(bands, height, width))
    rows, cols = np.mgrid[:height, :width]
    if kind == "disk":  # classes that flips and quarter turns keep
        image[:, (rows - height / 2) ** 2 + (cols - width / 2) ** 2 < 36] += 400.0
    elif kind == "stripes":
        image[:, (rows if rng.integers(2) else cols) % 6 < 3] += 400.0
    return image.astype(np.uint16)


def _class_folders(root: Path, per_class: int, seed: int = 0, bands: int = 4) -> Path:
    rng = np.random.default_rng(seed)
    for kind in CLASSES:
        (root / kind).mkdir(parents=True)
        for i in range(per_class):
            write_image(root / kind / f"{i:02d}.tif", _picture(kind, rng, bands))
    return root


def test_cnn_learns_disks_and_stripes_through_the_cli(tmp_path: Path) -> None:
    root = _class_folders(tmp_path / "images", per_class=15)
    config = yaml.safe_load(CONFIG.read_text())
    config["trainer"] = {"max_epochs": 12, "accelerator": "cpu", "enable_progress_bar": False}
    config["model"]["init_args"]["model_kwargs"]["widths"] = [8, 16]
    config["data"]["init_args"].update({"root": str(root), "image_size": 16, "batch_size": 8})
    config["run_dir"] = str(tmp_path / "run")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    assert main(["fit", "--config", str(tmp_path / "c.yaml"), "--test_after_fit", "true"]) == 0
    record = json.loads((tmp_path / "run" / "test_metrics.json").read_text())
    assert record["model_kwargs"]["in_channels"] == 4 and record["model_kwargs"]["num_classes"] == 3
    assert record["metrics"]["accuracy"] >= 0.8  # 9 test images; a constant guess scores 0.33

    # the checkpoint keeps the training images' band statistics, in stored units
    data = ImageClassesDataModule(str(root))
    pixels = np.concatenate([read_image(f).reshape(4, -1) for f in data.files["train"]], axis=1).astype(np.float64)
    best = next((tmp_path / "run" / "checkpoints").glob("best-*.ckpt"))
    hparams = torch.load(best, weights_only=True)["hyper_parameters"]
    np.testing.assert_allclose(hparams["band_mean"], pixels.mean(axis=1), rtol=1e-6)
    np.testing.assert_allclose(hparams["band_std"], pixels.std(axis=1), rtol=1e-5)
    assert hparams["class_names"] == list(CLASSES)


def test_fractions_are_per_class_and_seeded(tmp_path: Path) -> None:
    root = _class_folders(tmp_path / "images", per_class=10)
    data = ImageClassesDataModule(str(root), val_fraction=0.2, test_fraction=0.3, seed=4)
    for stage, count in (("train", 5), ("val", 2), ("test", 3)):
        assert np.bincount(data._labels[stage], minlength=3).tolist() == [count] * 3
        assert all(f.parent.name == CLASSES[k] for f, k in zip(data.files[stage], data._labels[stage]))
    every = sorted(f for stage in ("train", "val", "test") for f in data.files[stage])
    assert every == sorted(root.glob("*/*.tif"))  # each image in exactly one split
    again = ImageClassesDataModule(str(root), val_fraction=0.2, test_fraction=0.3, seed=4)
    assert again.files == data.files


def test_split_folders_crop_and_resize(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    for stage in ("train", "val"):
        for kind in ("a", "b"):
            (tmp_path / stage / kind).mkdir(parents=True)
            write_image(tmp_path / stage / kind / "x.tif", rng.integers(0, 255, size=(3, 30, 40), dtype=np.uint8))
    data = ImageClassesDataModule(str(tmp_path), image_size=16, size_policy="crop", mean=[10.0] * 3, std=[2.0] * 3)
    assert [len(data.files[s]) for s in ("train", "val", "test")] == [2, 2, 0]
    assert data.test_dataloader() == []
    data.setup()
    sample = data.splits["val"][0]
    stored = read_image(tmp_path / "val" / "a" / "x.tif").astype(np.float32)
    expected = (stored[:, 7:23, 12:28] - 10.0) / 2.0  # the centred 16 x 16 square
    np.testing.assert_allclose(sample["image"].numpy(), expected)
    batch = next(iter(data.train_dataloader()))
    assert batch["image"].shape == (2, 3, 16, 16) and batch["label"].dtype == torch.int64
    resized = ImageClassesDataModule(str(tmp_path), image_size=12, d4=False)
    resized.setup()
    image = resized.splits["val"][1]["image"]
    assert image.shape == (3, 12, 12) and abs(float(image.mean())) < 1.0  # standardised with training stats
    network = create_model("fractal_resnet", in_channels=3, num_classes=2, nf=8, depth=2, nheads_start=2)
    assert network(batch["image"]).shape == (2, 2)  # the FracTAL encoder classifies the same batches


def _broken(tmp_path: Path, problem: str) -> tuple[Path, str]:
    root = _class_folders(tmp_path / "images", per_class=3)
    if problem == "empty":
        (root / "zebra").mkdir()
        return root, f"{root / 'zebra'}: no images found (looked for .png, .jpg, .jpeg, .tif, .tiff)"
    if problem == "truncated":
        file = root / "plain" / "01.tif"
        file.write_bytes(file.read_bytes()[:-200])
        return root, "TRUNCATED"
    if problem == "bands":
        write_image(root / "stripes" / "99.tif", np.zeros((3, 20, 20), dtype=np.uint16))
        return root, f"{root / 'stripes' / '99.tif'}: has 3 bands but {root / 'disk' / '00.tif'} has 4"
    for kind in CLASSES[1:]:
        for file in (root / kind).iterdir():
            file.unlink()
        (root / kind).rmdir()
    return root, f"{root}: has one class folder only ('disk'); classification needs two or more"


@pytest.mark.parametrize("problem", ["empty", "bands", "one_class", "truncated"])
def test_bad_class_folders_give_one_line(tmp_path: Path, problem: str) -> None:
    root, message = _broken(tmp_path, problem)
    with pytest.raises(DataError) as error:
        ImageClassesDataModule(str(root), val_fraction=0.0, test_fraction=0.0)
    if problem == "truncated":  # the reader's own words, after the file's name
        assert str(error.value).startswith(f"{root / 'plain' / '01.tif'}: ") and "\n" not in str(error.value)
    else:
        assert str(error.value) == message


def test_an_empty_class_folder_ends_mantis_fit_with_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, message = _broken(tmp_path, "empty")
    args = ["fit", "--config", str(CONFIG), "--data.init_args.root", str(root), "--run_dir", str(tmp_path / "run")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"mantis fit: error: {message}"]
    assert not (tmp_path / "run").exists()  # nothing half-written
