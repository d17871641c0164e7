"""Training survives ``kill -9``: atomic checkpoints every N steps, exact resume, run folders claimed atomically."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from mantis.io.errors import DataError
from mantis.run_folders import ContinuingCSVLogger, claim_next_version, latest_checkpoint, run_folder_of
from mantis.tasks.checkpoints import AtomicCheckpointIO, restore_rng_states, rng_states
from tests.tasks.folders import cd_config

REPO = Path(__file__).resolve().parents[1]


def test_rng_states_round_trip_and_load_safely(tmp_path: Path) -> None:
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    saved = rng_states()
    torch.save(saved, tmp_path / "s.pt")
    expected = (random.random(), np.random.rand(), torch.rand(1))
    restore_rng_states(torch.load(tmp_path / "s.pt", weights_only=True))  # no pickled objects in it
    assert (random.random(), np.random.rand()) == expected[:2] and torch.equal(torch.rand(1), expected[2])


def test_atomic_checkpoint_leaves_the_old_file_when_writing_fails(tmp_path: Path, monkeypatch) -> None:
    io = AtomicCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"step": 1}, path)
    assert torch.load(path, weights_only=True) == {"step": 1}

    def broken_save(obj: object, handle: object) -> None:
        handle.write(b"partial")  # type: ignore[attr-defined]
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(DataError, match=r"last.ckpt: cannot write the checkpoint \(No space left on device\)"):
        io.save_checkpoint({"step": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"step": 1}  # the previous checkpoint, whole
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]  # no temporary left


def test_run_folders_are_claimed_once_each(tmp_path: Path) -> None:
    (tmp_path / "fam" / "version_3").mkdir(parents=True)
    claimed: list[Path] = []
    threads = [threading.Thread(target=lambda: claimed.append(claim_next_version(tmp_path / "fam"))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(int(p.name.split("_")[1]) for p in claimed) == list(range(4, 12))  # eight distinct folders


def test_latest_checkpoint_and_run_folder_of(tmp_path: Path) -> None:
    family = tmp_path / "runs" / "x"
    for n in (0, 2, 10):
        (family / f"version_{n}" / "checkpoints").mkdir(parents=True)
        (family / f"version_{n}" / "config.yaml").write_text("{}")
    (family / "version_0" / "checkpoints" / "last.ckpt").write_bytes(b"")
    (family / "version_2" / "checkpoints" / "last.ckpt").write_bytes(b"")
    assert latest_checkpoint(family) == family / "version_2" / "checkpoints" / "last.ckpt"  # 10 has none
    assert latest_checkpoint(tmp_path / "none") is None
    assert run_folder_of(family / "version_2" / "checkpoints" / "last.ckpt") == (family / "version_2").resolve()
    assert run_folder_of(tmp_path / "loose.ckpt") is None and run_folder_of("last") is None


def test_continued_csv_log_keeps_the_rows_before_the_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "metrics.csv").write_text("epoch,step,val/f1\n0,5,0.5\n1,11,0.6\n1,12,\n")
    logger = ContinuingCSVLogger(str(tmp_path), resume_step=12)
    logger.log_metrics({"train/loss_step": 0.25, "epoch": 1}, step=12)
    logger.save()
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert lines[0] == "epoch,step,train/loss_step,val/f1"
    assert lines[1:] == ["0,5,,0.5", "1,11,,0.6", "1,12,0.25,"]  # the row logged after the checkpoint is replaced


# -- kill -9 and resume, end to end ---------------------------------------------------------------------------


def _config(path: Path, run: Path | None, kill_at: int | None = None) -> Path:
    config = cd_config(None, Path("."), num_train=12, num_val=4, num_test=4)  # 6 steps per epoch
    if run is None:
        del config["run_dir"]  # runs/<run_name>/version_N
    else:
        config["run_dir"] = str(run)
    config["data"]["init_args"].pop("augment")  # with the default augmentation: its randomness must resume too
    config["model"]["init_args"]["model"] = "fractal_resnet_cd"
    config["trainer"]["max_epochs"] = 3
    if kill_at is not None:
        killer = {"class_path": "tests.resume_helpers.KillAtStep", "init_args": {"step": kill_at}}
        config["trainer"]["callbacks"] = [killer]
    path.write_text(yaml.safe_dump(config))
    return path


def _mantis(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "src")]), "OMP_NUM_THREADS": "1"}
    code = "import sys; from mantis.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], env=env, cwd=cwd, capture_output=True, text=True)


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]


def test_killed_runs_resume_to_the_same_weights_and_metrics(tmp_path: Path) -> None:
    every = ["--checkpoint_every_n_steps", "2", "--test_after_fit", "true"]
    full = tmp_path / "full"
    done = _mantis("fit", "--config", str(_config(tmp_path / "full.yaml", full)), *every, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]

    # killed in the middle of epoch 0 (last checkpoint at step 4), resumed from the file
    run = tmp_path / "a"
    killed = _mantis("fit", "--config", str(_config(tmp_path / "a.yaml", run, kill_at=5)), *every, cwd=tmp_path)
    assert killed.returncode == -9
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4
    assert not [p for p in (run / "checkpoints").iterdir() if ".tmp-" in p.name]
    config = _config(tmp_path / "a.yaml", run)
    resumed = _mantis(
        "fit", "--config", str(config), *every, "--ckpt_path", str(run / "checkpoints" / "last.ckpt"), cwd=tmp_path
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]

    # killed at the start of epoch 2 (last checkpoint at the end of epoch 1), resumed with `--ckpt_path last`
    family = tmp_path / "runs" / "fam"
    args = ["--run_name", "fam", "--trainer.default_root_dir", str(tmp_path / "runs")]
    killed = _mantis(
        "fit",
        "--config",
        str(_config(tmp_path / "b.yaml", None, kill_at=13)),
        *args,
        *every,
        cwd=tmp_path,
    )
    assert killed.returncode == -9
    resumed = _mantis(
        "fit",
        "--config",
        str(_config(tmp_path / "b.yaml", None)),
        *args,
        *every,
        "--ckpt_path",
        "last",
        cwd=tmp_path,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert sorted(p.name for p in family.iterdir()) == ["version_0"]  # continued in its own folder

    reference = _weights(full)
    for folder in (run, family / "version_0"):
        weights = _weights(folder)
        assert all(torch.equal(reference[k], weights[k]) for k in reference)  # bit for bit
        assert (folder / "metrics.csv").read_text() == (full / "metrics.csv").read_text()
        test = json.loads((folder / "test_metrics.json").read_text())["metrics"]
        assert test == json.loads((full / "test_metrics.json").read_text())["metrics"]
        assert (folder / "config.yaml").is_file() and (folder / "config_resume_1.yaml").is_file()


def test_a_refused_run_leaves_no_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mantis.cli import main

    root = tmp_path / "runs"
    args = ["fit", "--trainer.default_root_dir", str(root), "--model.init_args.model", "fractal_resunet"]
    assert main([*args, "--data.init_args.root", str(tmp_path / "nowhere")]) == 2  # refused at setup
    assert "nowhere" in capsys.readouterr().err
    assert not root.exists()  # neither runs/ nor runs/<model>/version_0 is left behind
    (root / "mine").mkdir(parents=True)
    assert main([*args, "--run_dir", str(root / "mine" / "x"), "--data.init_args.root", str(tmp_path / "no")]) == 2
    assert sorted(p.name for p in root.iterdir()) == ["mine"] and not any((root / "mine").iterdir())


def test_averaged_weights_are_validated_and_checkpointed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mantis.cli import main
    from mantis.tasks.averaging import EMAWeights

    with pytest.raises(ValueError, match="decay must be in"):
        EMAWeights(decay=1.0)
    config = yaml.safe_load(_config(tmp_path / "c.yaml", tmp_path / "run").read_text())
    config["trainer"]["max_epochs"] = 1
    config["trainer"]["callbacks"] = [
        {"class_path": "mantis.tasks.averaging.EMAWeights", "init_args": {"decay": 0.9, "start_step": 2}}
    ]
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    assert main(["fit", "--config", str(tmp_path / "c.yaml"), "--checkpoint_every_n_steps", "0"]) == 0
    saved = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    average, current = saved["state_dict"], saved["current_model_state"]
    assert average.keys() == current.keys()
    weights = [k for k in average if average[k].is_floating_point() and k.endswith("weight")]
    assert all(torch.isfinite(average[k]).all() for k in weights)
    assert any(not torch.equal(average[k], current[k]) for k in weights)  # the average, not the last weights
