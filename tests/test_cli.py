"""``mantis fit | validate | test`` end to end on tiny generated folders (PNG and GeoTIFF), resume, configs."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from mantis.cli import main
from mantis.data import ChangeDetectionDataModule
from mantis.data.io import read_image
from tests.tasks.folders import TINY_SEG_MODEL, cd_config, make_cd_folder, make_seg_folder, tiny_trainer, write_config

REPO = Path(__file__).resolve().parents[1]
# the training configs (configs/ also holds configs of other commands, e.g. predict.yaml)
CONFIGS = [
    REPO / "configs" / name
    for name in (
        "demo.yaml",
        "levir_cd_ceecnet_v2.yaml",
        "whu_cd.yaml",
        "segmentation_fractal_resunet.yaml",
        "few_images_cd_cpu.yaml",
        "tabular.yaml",
        "tabular_wine.yaml",
        "tabular_diabetes.yaml",
        "image_classes.yaml",
        "pixel_series.yaml",
        "series_gunpoint.yaml",
        "series_gunpoint_fractal.yaml",
        "series_segmentation.yaml",
        "volume_synthetic.yaml",
        "cd_seeds_tiled_test.yaml",
    )
]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _load_ckpt(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_fit_png_folder_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = make_cd_folder(tmp_path / "levir")
    run = tmp_path / "run"
    config = write_config(tmp_path / "cd.yaml", cd_config(data, run))
    assert main(["fit", "--config", str(config), "--test_after_fit", "true"]) == 0

    # the run folder: resolved config, logs, checkpoints, curves, test metrics
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["data"]["init_args"]["root"] == str(data)
    assert saved["data"]["init_args"]["multitask"] is True  # the CLI asks the data for the heads' targets
    assert any(p.name.startswith("events.out.tfevents") for p in run.iterdir())
    rows = _csv_rows(run / "metrics.csv")
    assert any(r.get("val/f1_change") for r in rows) and any(r.get("train/loss_epoch") for r in rows)
    assert (run / "training_curves.png").read_bytes()[:8] == PNG_MAGIC
    checkpoints = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert "last.ckpt" in checkpoints and any(n.startswith("best-") for n in checkpoints)

    # what inference reads from a checkpoint
    ckpt = _load_ckpt(run / "checkpoints" / "last.ckpt")
    hp = ckpt["hyper_parameters"]
    assert hp["model"] == "ceecnet_v1" and hp["task"] == "change_detection"
    assert hp["model_kwargs"]["in_channels"] == 3 and hp["model_kwargs"]["num_classes"] == 2
    # without mean/std: the per-band statistics of the training pairs, both dates pooled
    train = ChangeDetectionDataModule(str(data), patch_size=32, val_fraction=0.2, test_fraction=0.2).plan.names["train"]
    pixels = np.concatenate(
        [read_image(data / d / n).reshape(3, -1) for d in ("A", "B") for n in train or []], axis=1
    ).astype(np.float64)
    np.testing.assert_allclose(hp["band_mean"], pixels.mean(1), rtol=1e-9)
    np.testing.assert_allclose(hp["band_std"], pixels.std(1), rtol=1e-9)
    assert all(k.startswith("model.") for k in ckpt["state_dict"])

    record = json.loads((run / "test_metrics.json").read_text())
    metrics = record["metrics"]
    assert record["stage"] == "test" and record["checkpoint"].endswith(".ckpt")
    for key in ("f1_change", "precision_change", "recall_change", "iou_change", "mcc_change", "accuracy"):
        assert key in metrics
    assert metrics["support_change"] + metrics["support_no_change"] == 32 * 32  # one test tile of 32 x 32
    assert 0.0 <= metrics["accuracy"] <= 1.0
    assert "test metrics written to" in capsys.readouterr().out

    # testing a checkpoint normalises with its statistics, not with statistics of the data at hand
    test_args = ["--data.init_args.root", str(data), "--data.init_args.patch_size", "32"]
    test_args += ["--data.init_args.test_fraction", "0.5", "--trainer.enable_progress_bar", "false"]
    test_run = tmp_path / "test_run"
    assert (
        main(["test", "--ckpt_path", str(run / "checkpoints" / "last.ckpt"), "--run_dir", str(test_run), *test_args])
        == 0
    )
    used = yaml.safe_load((test_run / "config_test.yaml").read_text())["data"]["init_args"]
    assert used["mean"] == hp["band_mean"] and used["std"] == hp["band_std"] and used["auto_stats"] is False

    # the checkpoint is all `mantis predict` needs
    pair = [str(data / "A" / "tile_0.png"), str(data / "B" / "tile_0.png")]
    best = str(next((run / "checkpoints").glob("best-*.ckpt")))
    assert main(["predict", "-c", best, "-i", *pair, "-o", str(tmp_path / "pred"), "--window", "32"]) == 0
    assert [p.name for p in (tmp_path / "pred").iterdir()] == ["tile_0_class.png"]


def test_geotiff_whu_layout_fit_then_validate_and_test(tmp_path: Path) -> None:
    data = make_cd_folder(tmp_path / "whu", count=5, suffix=".tif", dirs=("prev", "curr", "label"), bands=4)
    config = cd_config(data, tmp_path / "fit", dirs=["prev", "curr", "label"], mean=[0.1e4] * 4, std=[0.05e4] * 4)
    config_path = write_config(tmp_path / "whu.yaml", config)
    assert main(["fit", "--config", str(config_path)]) == 0
    ckpt = _load_ckpt(tmp_path / "fit" / "checkpoints" / "last.ckpt")
    assert ckpt["hyper_parameters"]["model_kwargs"]["in_channels"] == 4
    assert ckpt["hyper_parameters"]["band_mean"] == [1000.0] * 4

    best = next((tmp_path / "fit" / "checkpoints").glob("best-*.ckpt"))
    # test from the checkpoint: the network comes from the checkpoint, the data from the command line
    args = ["--data.init_args.root", str(data), "--data.init_args.dirs", "[prev, curr, label]"]
    args += ["--data.init_args.mean", "[1000, 1000, 1000, 1000]", "--data.init_args.std", "[500, 500, 500, 500]"]
    args += ["--data.init_args.patch_size", "32", "--data.init_args.test_fraction", "0.2"]
    args += ["--trainer.enable_progress_bar", "false", "--trainer.accelerator", "cpu"]
    assert main(["test", "--ckpt_path", str(best), "--run_dir", str(tmp_path / "test"), *args]) == 0
    record = json.loads((tmp_path / "test" / "test_metrics.json").read_text())
    assert record["checkpoint"] == str(best) and record["model_kwargs"]["nf"] == 8
    assert (tmp_path / "test" / "config_test.yaml").is_file()

    # validating into the training run's folder keeps its logs
    training_log = (tmp_path / "fit" / "metrics.csv").read_text()
    args_val = ["--config", str(config_path), "--ckpt_path", str(best), "--run_dir", str(tmp_path / "fit")]
    assert main(["validate", *args_val]) == 0
    assert json.loads((tmp_path / "fit" / "validate_metrics.json").read_text())["metrics"]["f1_change"] is not None
    assert (tmp_path / "fit" / "metrics.csv").read_text() == training_log
    assert (tmp_path / "fit" / "config_validate.yaml").is_file() and (tmp_path / "fit" / "config.yaml").is_file()


def test_resume_continues_from_saved_epoch_and_step(tmp_path: Path) -> None:
    data = make_cd_folder(tmp_path / "levir")
    first = write_config(tmp_path / "a.yaml", cd_config(data, tmp_path / "a"))
    assert main(["fit", "--config", str(first)]) == 0
    saved = _load_ckpt(tmp_path / "a" / "checkpoints" / "last.ckpt")
    steps_per_epoch = saved["global_step"]
    assert saved["epoch"] == 0 and steps_per_epoch == 2  # 4 training tiles, batches of 2

    args = ["fit", "--config", str(first), "--run_dir", str(tmp_path / "b"), "--trainer.max_epochs", "3"]
    assert main([*args, "--ckpt_path", str(tmp_path / "a" / "checkpoints" / "last.ckpt")]) == 0
    resumed = _load_ckpt(tmp_path / "b" / "checkpoints" / "last.ckpt")
    assert resumed["epoch"] == 2 and resumed["global_step"] == 3 * steps_per_epoch
    epochs = {int(r["epoch"]) for r in _csv_rows(tmp_path / "b" / "metrics.csv")}
    assert epochs == {1, 2}  # the resumed run starts at epoch 1, it does not redo epoch 0


def test_segmentation_folder_with_fractal_resunet(tmp_path: Path) -> None:
    data = make_seg_folder(tmp_path / "seg")
    config = {
        "run_dir": str(tmp_path / "run"),
        "trainer": tiny_trainer(),
        "model": {
            "class_path": "mantis.tasks.SegmentationTask",
            "init_args": {"model": "fractal_resunet", "model_kwargs": dict(TINY_SEG_MODEL)},
        },
        "data": {
            "class_path": "mantis.data.SegmentationDataModule",
            "init_args": {"root": str(data), "patch_size": 32, "batch_size": 2, "num_classes": 3, "augment": None},
        },
    }
    assert main(["fit", "--config", str(write_config(tmp_path / "seg.yaml", config)), "--test_after_fit", "true"]) == 0
    record = json.loads((tmp_path / "run" / "test_metrics.json").read_text())
    assert record["task"] == "segmentation"
    assert {"f1_class_0", "f1_class_1", "f1_class_2", "mcc_macro"} <= set(record["metrics"])


def _fit_without_validation(tmp_path: Path, trainer: dict[str, Any]) -> int:
    """`mantis fit` of a tiny FracTAL ResUNet on a small segmentation folder with no validation split."""
    data = make_seg_folder(tmp_path / "seg")
    config = {
        "run_dir": str(tmp_path / "run"),
        "trainer": trainer,
        "model": {
            "class_path": "mantis.tasks.SegmentationTask",
            "init_args": {"model": "fractal_resunet", "model_kwargs": dict(TINY_SEG_MODEL)},
        },
        "data": {
            "class_path": "mantis.data.SegmentationDataModule",
            "init_args": {"root": str(data), "patch_size": 32, "batch_size": 2, "num_classes": 3, "val_fraction": 0},
        },
    }
    return main(["fit", "--config", str(write_config(tmp_path / "seg.yaml", config))])


def test_fit_without_a_validation_split_says_so_once_and_nothing_else(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], recwarn: pytest.WarningsRecorder
) -> None:
    assert _fit_without_validation(tmp_path, tiny_trainer(max_epochs=2)) == 0
    out = capsys.readouterr().out
    assert out.count("No validation split: the learning rate stays at 0.001 and the last weights are kept") == 1
    noise = ("ReduceLROnPlateau conditioned on metric", "could not find the monitored key", "Total length of `list`")
    assert not [str(w.message) for w in recwarn if any(n in str(w.message) for n in noise)]
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()


def test_notes_before_the_first_batch_show_with_the_progress_bar_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Lightning's TQDM bar drops text printed while no bar is drawn: the notes of the run's start were lost.
    assert _fit_without_validation(tmp_path, tiny_trainer(max_steps=1, enable_progress_bar=True)) == 0
    out = capsys.readouterr().out
    assert out.count("No validation split: the learning rate stays at 0.001") == 1
    assert out.count("head_prior: the segmentation output starts at the training masks' class shares (") == 1


def test_defaults_train_on_the_builtin_scenes_in_bf16(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("mantis.runtime.cpu_has_native_bf16", lambda: True)  # as on a CPU with AVX512-BF16
    args = ["fit", "--run_dir", str(tmp_path / "run"), "--model.init_args.model_kwargs", json.dumps(TINY_SEG_MODEL)]
    args += ["--data.init_args.patch_size", "32", "--data.init_args.num_train", "4", "--data.init_args.num_val", "2"]
    args += [f"--trainer.{k}={v}" for k, v in tiny_trainer(limit_train_batches=2, precision="bf16-mixed").items()]
    assert main(args) == 0
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["model"]["class_path"] == "mantis.tasks.ChangeDetectionTask"
    assert saved["data"]["init_args"]["root"] is None
    assert saved["seed_everything"] == 0
    assert saved["trainer"]["precision"] == "bf16-mixed"
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.parametrize("keep", [False, True])
def test_bf16_on_a_cpu_without_bf16_instructions_trains_in_float32_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], keep: bool
) -> None:
    # Emulated bfloat16 ran a FracTAL step 6.6x slower than float32 on such a CPU (mantis.runtime).
    monkeypatch.setattr("mantis.runtime.cpu_has_native_bf16", lambda: False)
    if keep:
        monkeypatch.setenv("MANTIS_CPU_BF16", "1")
    args = ["fit", "--run_dir", str(tmp_path / "run"), "--model.init_args.model_kwargs", json.dumps(TINY_SEG_MODEL)]
    args += ["--data.init_args.patch_size", "32", "--data.init_args.num_train", "2", "--data.init_args.num_val", "2"]
    args += [f"--trainer.{k}={v}" for k, v in tiny_trainer(limit_train_batches=1, precision="bf16-mixed").items()]
    assert main(args) == 0
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    note = [line for line in capsys.readouterr().err.splitlines() if "bfloat16 instructions" in line]
    if keep:
        assert saved["trainer"]["precision"] == "bf16-mixed" and not note
    else:
        assert saved["trainer"]["precision"] == "32-true"
        assert note == [
            "mantis fit: this CPU has no bfloat16 instructions (AVX512-BF16 or AMX), so trainer.precision bf16-mixed "
            "would run several times slower than float32: training in 32-true (MANTIS_CPU_BF16=1 keeps bfloat16)"
        ]


@pytest.mark.parametrize("config", CONFIGS, ids=[c.name for c in CONFIGS])
def test_every_example_config_parses(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fit", "--config", str(config), "--print_config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["class_path"].startswith("mantis.tasks.")
    assert printed["data"]["class_path"].startswith("mantis.data.")


def test_summary_and_unknown_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", "--model", "ceecnet_v1", "--model_kwargs", '{"nf": 8, "depth": 3}', "--size", "64"]) == 0
    out = capsys.readouterr().out
    assert "total parameters" in out and "segmentation 1x2x64x64" in out
    assert main(["frobnicate"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown command 'frobnicate'" in err[0]


def test_dispatch_reports_a_missing_module_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import mantis.cli

    monkeypatch.setitem(mantis.cli.DISPATCH, "predict", ("mantis.not_there", "main"))
    assert main(["predict", "--help"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot import mantis.not_there" in err[0]


def test_stats_dispatch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = make_cd_folder(tmp_path / "levir", count=2)
    assert main(["stats", str(data / "A")]) == 0
    assert "mean" in capsys.readouterr().out
