"""A bare `mantis fit` trains the built-in change detector; configs that name their own classes get none of it."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
import yaml

from mantis.cli import main
from mantis.cli_defaults import BARE_SECTIONS, with_bare_defaults
from mantis.data import SegmentationDataModule


def _inline(args: list[str]) -> dict:
    assert args[1] == "--config", "the defaults come first, so that everything the user gives overrides them"
    return json.loads(args[2])


def test_nothing_named_gets_both_sections() -> None:
    args = with_bare_defaults(["fit", "--trainer.max_epochs", "1", "--data.init_args.root", "x"])
    assert _inline(args) == BARE_SECTIONS
    assert args[3:] == ["--trainer.max_epochs", "1", "--data.init_args.root", "x"]


def test_classes_named_on_the_command_line_or_in_a_config_are_left_alone(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"data": {"class_path": "mantis.data.SegmentationDataModule"}}))
    assert _inline(with_bare_defaults(["fit", "--config", str(config)])) == {"model": BARE_SECTIONS["model"]}
    assert _inline(with_bare_defaults(["fit", "--model=mantis.tasks.SegmentationTask"])) == {
        "data": BARE_SECTIONS["data"]
    }
    named = ["fit", "--model.class_path", "a.B", "-c", json.dumps({"data": "mantis.data.SegmentationDataModule"})]
    assert with_bare_defaults(named) == named


def test_a_config_choosing_other_classes_inherits_no_default(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = tmp_path / "seg.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model": {"class_path": "mantis.tasks.SegmentationTask", "init_args": {"model": "fractal_resunet"}},
                "data": {"class_path": "mantis.data.SegmentationDataModule"},
            }
        )
    )
    assert main(["fit", "--config", str(config), "--print_config"]) == 0
    data = yaml.safe_load(capsys.readouterr().out)["data"]["init_args"]
    own = {
        name: param
        for cls in reversed(SegmentationDataModule.__mro__)
        if "__init__" in vars(cls)
        for name, param in inspect.signature(cls.__init__).parameters.items()
    }
    # The change-detection module's num_classes (2) and the bare run's patch size (64) must not leak in.
    assert data["num_classes"] == own["num_classes"].default
    assert data["patch_size"] == own["patch_size"].default != BARE_SECTIONS["data"]["init_args"]["patch_size"]


def test_a_run_without_logger_keeps_its_config_in_the_run_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["fit", "--model.init_args.model_kwargs", "{nf: 8, depth: 2, psp_depth: 2}"]
    args += ["--data.init_args.patch_size", "32", "--trainer.logger", "false"]
    args += ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "1", "--trainer.limit_val_batches", "1"]
    args += ["--trainer.enable_progress_bar", "false", "--run_dir", str(tmp_path / "run")]
    assert main(args) == 0
    assert (tmp_path / "run" / "config.yaml").is_file()
    assert not (tmp_path / "config.yaml").exists()  # not in the folder the command ran from
