"""Per-step segmentation of series: the .npy layout, windows, multitask targets, the synthetic events, and
`mantis fit` with a tiny 1D FracTAL ResUNet."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from mantis.cli import main
from mantis.data.series_augment import SeriesAugment
from mantis.data.series_segmentation import SeriesSegmentationDataModule, synthetic_series_segmentation
from mantis.io.errors import DataError

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _pair(tmp_path: Path, values: np.ndarray, labels: np.ndarray) -> tuple[str, str]:
    np.save(tmp_path / "x.npy", values)
    np.save(tmp_path / "y.npy", labels)
    return str(tmp_path / "x.npy"), str(tmp_path / "y.npy")


def test_synthetic_events_are_labelled_where_the_signal_changes() -> None:
    series, labels = synthetic_series_segmentation(40, length=128, seed=3)
    assert series.shape == (40, 2, 128) and labels.shape == (40, 128) and set(np.unique(labels)) == {0, 1, 2}
    # plateaus raise the level by about 1, bursts oscillate: their steps differ from the background's
    background, plateau = series[:, 0][labels == 0], series[:, 0][labels == 2]
    assert plateau.mean() - background.mean() > 0.5
    steps = np.abs(np.diff(series[:, 0], axis=1))
    assert steps[(labels[:, 1:] == 1) & (labels[:, :-1] == 1)].mean() > 3 * steps[(labels[:, 1:] == 0)].mean()


def test_windows_cover_validation_series_and_targets_follow_the_mask(tmp_path: Path) -> None:
    values = np.arange(4 * 20, dtype=np.float32).reshape(4, 1, 20)
    labels = (np.arange(20)[None].repeat(4, 0) >= 10).astype(np.int64)
    x, y = _pair(tmp_path, values[:, 0], labels)  # N x T: one channel
    module = SeriesSegmentationDataModule(
        x, y, patch_size=8, val_fraction=0.5, test_fraction=0.0, standardize=False, multitask=True
    )
    assert module.in_channels == 1 and module.num_classes == 2 and module.class_names == ["0", "1"]
    module.setup()
    val = module.splits["val"]
    assert len(val) == 2 * 3  # starts 0, 8 and the tail at 12 for each of two series
    tail = val[2]
    series = int(tail["image"][0, 0].item()) // 20
    np.testing.assert_array_equal(tail["image"][0].numpy(), values[series, 0, 12:20])
    assert tail["mask"].tolist() == [1] * 8
    assert tail["segmentation"].shape == (2, 8) and tail["boundary"].shape == (2, 8)
    np.testing.assert_array_equal(tail["segmentation"][1].numpy(), np.ones(8))
    train = module.splits["train"]
    window = train[(0, 11)]
    start = int(window["image"][0, 0].item()) % 20
    assert 0 <= start <= 12 and window["mask"].tolist() == labels[0, start : start + 8].tolist()
    # warped and sliced training windows: each step's label is the label of the step its value was read from
    warped = SeriesSegmentationDataModule(
        x,
        y,
        patch_size=16,
        val_fraction=0.5,
        test_fraction=0.0,
        standardize=False,
        augment=SeriesAugment(time_warp=0.5, window_slice=0.3),
    )
    warped.setup()
    moved = 0
    for key in range(8):
        sample = warped.splits["train"][(key % 2, key)]
        read = np.rint(sample["image"][0].numpy()).astype(np.int64) % 20  # values are 20 n + step
        assert sample["mask"].tolist() == (read >= 10).astype(np.int64).tolist()
        moved += len(set(np.diff(read).tolist())) > 1  # not a plain run of consecutive steps
    assert moved >= 4


def test_bad_pairs_are_named(tmp_path: Path) -> None:
    x, y = _pair(tmp_path, np.zeros((3, 2, 16)), np.zeros((3, 15), dtype=np.int64))
    with pytest.raises(DataError, match=r"y\.npy: has shape \(3, 15\), but the series need \(3, 16\) \(N x T\)"):
        SeriesSegmentationDataModule(x, y)
    x, y = _pair(tmp_path, np.zeros((3, 16)), np.zeros((3, 16)))
    with pytest.raises(DataError, match=r"y\.npy: holds float64 values; labels are whole class ids"):
        SeriesSegmentationDataModule(x, y)
    x, y = _pair(tmp_path, np.zeros((3, 16)), np.full((3, 16), -1))
    with pytest.raises(DataError, match=r"holds the negative label -1 \(set ignore_index for unlabelled steps\)"):
        SeriesSegmentationDataModule(x, y)
    with pytest.raises(DataError, match=r"x\.npy: series of 16 steps are shorter than patch_size 32"):
        SeriesSegmentationDataModule(x, y, patch_size=32, ignore_index=-1, num_classes=2)


def test_fit_a_tiny_1d_fractal_resunet_per_step(tmp_path: Path) -> None:
    config = yaml.safe_load((CONFIGS / "series_segmentation.yaml").read_text())
    config["trainer"] = {"max_epochs": 1, "accelerator": "cpu", "enable_progress_bar": False}
    config["model"]["init_args"]["model_kwargs"].update({"nf": 4, "depth": 2, "nheads_start": 1})
    config["data"]["init_args"].update({"num_synthetic": 10, "synthetic_length": 64, "patch_size": 32})
    del config["data"]["init_args"]["augment"]
    config["data"]["init_args"].update({"scale": 0.1, "time_warp": 0.2})  # the former spelling of augment
    config["run_dir"] = str(tmp_path / "run")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    with pytest.warns(FutureWarning, match=r"data init_args\.scale, init_args\.time_warp: deprecated, now under"):
        assert main(["fit", "--config", str(tmp_path / "c.yaml")]) == 0
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["data"]["init_args"]
    assert saved["augment"] == {"scale": 0.1, "jitter": 0.0, "window_slice": 0.0, "time_warp": 0.2}
    record = json.loads((tmp_path / "run" / "test_metrics.json").read_text())
    assert record["task"] == "segmentation" and record["model_kwargs"]["spatial_dims"] == 1
    assert set(record["metrics"]) >= {"f1_background", "f1_burst", "f1_plateau", "mcc_macro"}
    best = next((tmp_path / "run" / "checkpoints").glob("best-*.ckpt"))
    checkpoint = torch.load(best, weights_only=True)
    hparams = checkpoint["hyper_parameters"]
    assert len(hparams["band_mean"]) == 2 and hparams["class_names"] == ["background", "burst", "plateau"]
    # the training order travels with the weights, so a resumed run continues at the next batch
    assert checkpoint["SeriesSegmentationDataModule"]["complete"] is True
