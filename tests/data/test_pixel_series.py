"""Pixel time series: stacks in either layout (and as a GeoTIFF) give the same series; statistics, gap filling and
splits against NumPy; a 1D cnn learns the synthetic scene through `mantis fit`; bad stacks give one line."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from mantis.cli import main
from mantis.data.pixel_series import PixelSeriesDataModule, classify_stack
from mantis.data.pixel_series_synthetic import synthetic_pixel_stack
from mantis.io.errors import DataError
from mantis.io.raster import write_image
from mantis.models import create_model

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "pixel_series.yaml"
H, W, T, C = 6, 5, 7, 3


def _files(tmp_path: Path) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    stack = rng.normal(100.0, 10.0, size=(H, W, T, C)).astype(np.float32)
    labels = rng.integers(0, 3, size=(H, W))
    labels[0, :] = 255  # unlabelled
    np.save(tmp_path / "hwtc.npy", stack)
    np.save(tmp_path / "tchw.npy", stack.transpose(2, 3, 0, 1))
    write_image(tmp_path / "stack.tif", stack.transpose(2, 3, 0, 1).reshape(T * C, H, W))  # date by date
    np.save(tmp_path / "labels.npy", labels)
    write_image(tmp_path / "labels.tif", labels[None].astype(np.uint8))
    return stack, labels


def test_layouts_and_geotiff_give_the_same_series(tmp_path: Path) -> None:
    stack, labels = _files(tmp_path)
    common = {"labels_path": str(tmp_path / "labels.npy"), "val_fraction": 0.25, "test_fraction": 0.0}
    hwtc = PixelSeriesDataModule(str(tmp_path / "hwtc.npy"), **common)
    tchw = PixelSeriesDataModule(str(tmp_path / "tchw.npy"), layout="TCHW", **common)
    raster = {**common, "labels_path": str(tmp_path / "labels.tif")}  # labels as a raster too
    tif = PixelSeriesDataModule(str(tmp_path / "stack.tif"), bands_per_date=C, **raster)
    assert hwtc.in_channels == C and hwtc.length == T and hwtc.class_names == ["0", "1", "2"]
    for other in (tchw, tif):
        for stage in ("train", "val"):
            np.testing.assert_array_equal(other._raw[stage], hwtc._raw[stage])
            np.testing.assert_array_equal(other._labels[stage], hwtc._labels[stage])
    rows, cols = hwtc.pixels["train"]
    np.testing.assert_array_equal(hwtc._raw["train"][0], stack[rows[0], cols[0]].T)  # C x T of that pixel
    np.testing.assert_array_equal(hwtc._labels["train"], labels[rows, cols])
    assert sum(len(hwtc._labels[s]) for s in ("train", "val", "test")) == int((labels != 255).sum())
    # band statistics over the training pixels' dates only
    train = stack[rows, cols]  # N x T x C
    np.testing.assert_allclose(hwtc.mean, train.reshape(-1, C).mean(0), rtol=1e-5)
    np.testing.assert_allclose(hwtc.std, train.reshape(-1, C).std(0), rtol=1e-4)


def test_missing_dates_are_filled_along_time_after_scaling(tmp_path: Path) -> None:
    stack, _ = _files(tmp_path)
    stack[1:, :, 3, :] = np.nan  # a cloud over every labelled pixel on date 3
    np.save(tmp_path / "hwtc.npy", stack)
    data = PixelSeriesDataModule(str(tmp_path / "hwtc.npy"), str(tmp_path / "labels.npy"), test_fraction=0.0)
    data.setup()
    x = data.splits["val"][0]["image"].numpy()
    rows, cols = data.pixels["val"]
    scaled = (stack[rows[0], cols[0]].T - np.float32(data.mean)[:, None]) / np.float32(data.std)[:, None]
    np.testing.assert_allclose(x[:, [0, 1, 2, 4, 5, 6]], scaled[:, [0, 1, 2, 4, 5, 6]], rtol=1e-5)
    np.testing.assert_allclose(x[:, 3], (scaled[:, 2] + scaled[:, 4]) / 2, rtol=1e-5)  # linear between neighbours


def test_block_split_keeps_blocks_together_and_classes_balanced() -> None:
    data = PixelSeriesDataModule(synthetic_size=32, split_block=8, val_fraction=0.25, test_fraction=0.25)
    blocks = {}
    for stage in ("train", "val", "test"):
        rows, cols = data.pixels[stage]
        for block in set(zip(rows // 8, cols // 8)):
            assert blocks.setdefault(block, stage) == stage  # no block in two splits
        assert np.bincount(data._labels[stage], minlength=4).tolist() == [len(rows) // 4] * 4


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            "layout",
            "{stack}: is 7 x 3 pixels (H x W x dates x bands: (7, 3, 6, 5)) but {labels} is 6 x 5; "
            "with layout TCHW it would fit",
        ),
        ("dims", "{stack}: holds 3 dimensions (6, 5, 21); a stack has 4 (H x W x dates x bands)"),
        ("label", "{labels}: label 7 is not a class id 0..2 (set num_classes, class_names or ignore_index)"),
        ("inf", "{stack}: holds infinite values at labelled pixels (missing values are NaN)"),
    ],
)
def test_bad_stacks_give_one_line(tmp_path: Path, change: str, message: str) -> None:
    stack, labels = _files(tmp_path)
    path = tmp_path / "hwtc.npy"
    if change == "layout":
        np.save(path, stack.transpose(2, 3, 0, 1))  # a TCHW file read as HWTC
    elif change == "dims":
        np.save(path, stack.reshape(H, W, T * C))
    elif change == "inf":
        stack[3, 3, 2, 1] = np.inf  # one infinite value made its band's statistics infinite
        labels[3, 3] = 1
        np.save(path, stack)
        np.save(tmp_path / "labels.npy", labels)
    else:
        labels[2, 2] = 7
        np.save(tmp_path / "labels.npy", labels)
    with pytest.raises(DataError) as error:
        PixelSeriesDataModule(str(path), str(tmp_path / "labels.npy"), num_classes=3 if change == "label" else None)
    assert str(error.value) == message.format(stack=path, labels=tmp_path / "labels.npy")


def test_a_raster_stack_needs_bands_per_date(tmp_path: Path) -> None:
    _files(tmp_path)
    with pytest.raises(DataError, match=r"stack.tif: has 21 bands, not a multiple of bands_per_date=4"):
        PixelSeriesDataModule(str(tmp_path / "stack.tif"), str(tmp_path / "labels.npy"), bands_per_date=4)
    with pytest.raises(DataError, match=r"stack.tif: a raster stack needs bands_per_date"):
        PixelSeriesDataModule(str(tmp_path / "stack.tif"), str(tmp_path / "labels.npy"))
    with pytest.raises(ValueError, match=r"^bands_per_date must be positive, got 0$"):  # not a ZeroDivisionError
        PixelSeriesDataModule(str(tmp_path / "stack.tif"), str(tmp_path / "labels.npy"), bands_per_date=0)


def test_cnn_learns_the_synthetic_scene_and_maps_it(tmp_path: Path) -> None:
    config = yaml.safe_load(CONFIG.read_text())
    config["trainer"] = {"max_epochs": 4, "accelerator": "cpu", "enable_progress_bar": False}
    config["data"]["init_args"].update({"synthetic_size": 32, "split_block": 8})
    config["run_dir"] = str(tmp_path / "run")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    assert main(["fit", "--config", str(tmp_path / "c.yaml"), "--test_after_fit", "true"]) == 0
    record = json.loads((tmp_path / "run" / "test_metrics.json").read_text())
    assert record["model_kwargs"]["in_channels"] == 2 and record["model_kwargs"]["num_classes"] == 4
    assert record["metrics"]["accuracy"] >= 0.6  # 256 test pixels of 4 balanced classes: chance is 0.25

    # the checkpoint's network maps a whole stack: its test pixels get the classes the test scored
    checkpoint = torch.load(record["checkpoint"], map_location="cpu", weights_only=True)
    hp = checkpoint["hyper_parameters"]
    network = create_model(hp["model"], **hp["model_kwargs"])
    network.load_state_dict({k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items()})
    stack, labels = synthetic_pixel_stack(32, 32, 16, seed=0)
    classes = classify_stack(network, stack, hp["band_mean"], hp["band_std"], batch_size=100)
    rows, cols = PixelSeriesDataModule(synthetic_size=32, split_block=8).pixels["test"]
    accuracy = float((classes[rows, cols] == labels[rows, cols]).mean())
    assert classes.shape == (32, 32) and accuracy == pytest.approx(record["metrics"]["accuracy"], abs=1e-9)


def test_single_pixel_splits_warn_that_scores_flatter() -> None:
    with pytest.warns(UserWarning, match="split_block 1 puts neighbouring pixels .* in different splits"):
        PixelSeriesDataModule(synthetic_size=16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        PixelSeriesDataModule(synthetic_size=16, split_block=4)
        PixelSeriesDataModule(synthetic_size=16, val_fraction=0.0, test_fraction=0.0)
