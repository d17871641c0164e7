"""The demo's code path (configs/demo.yaml shrunk to seconds): what it leaves in its run folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mantis import demo
from tests.tasks.folders import TINY_CD_MODEL, tiny_trainer, write_config

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_demo_config_is_the_default() -> None:
    config = yaml.safe_load(demo.find_demo_config().read_text())
    assert config["data"]["init_args"]["root"] is None  # the built-in scenes
    assert config["model"]["class_path"] == "mantis.tasks.ChangeDetectionTask"


def test_demo_leaves_metrics_curves_and_predictions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = yaml.safe_load(demo.find_demo_config().read_text())
    config["trainer"] = tiny_trainer(max_epochs=2)
    config["model"]["init_args"]["model_kwargs"] = dict(TINY_CD_MODEL)
    config["data"]["init_args"].update(patch_size=32, num_train=4, num_val=2, num_test=3, batch_size=2)
    path = write_config(tmp_path / "demo.yaml", config)
    run = tmp_path / "demo"
    assert demo.main(["--config", str(path), "--run_dir", str(run), "--min_f1", "0", "--samples", "2"]) == 0
    for name in ("training_curves.png", "predictions.png"):
        assert (run / name).read_bytes()[:8] == PNG_MAGIC
    f1 = json.loads((run / "test_metrics.json").read_text())["metrics"]["f1_change"]
    out = capsys.readouterr().out
    assert f"test F1 of the change class: {f1:.3f}" in out

    # a second run replaces the first; an impossible bar gives exit status 1
    assert demo.main(["--config", str(path), "--run_dir", str(run), "--min_f1", "1.01", "--samples", "1"]) == 1
    assert len(list((run / "checkpoints").glob("best-*.ckpt"))) == 1
