"""DDP through Lightning: a 2-process CPU run with the gloo backend, launched like a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from tests.tasks.folders import cd_config, make_cd_folder, write_config


def test_two_process_ddp_fit_and_test(tmp_path: Path) -> None:
    # 8 tiles: 4 train, 2 val, 2 test; each process gets half of every split
    data = make_cd_folder(tmp_path / "levir", count=8)
    config = cd_config(data, tmp_path / "run", val_fraction=0.25, test_fraction=0.25)
    path = write_config(tmp_path / "ddp.yaml", config)
    command = [sys.executable, "-m", "mantis.cli", "fit", "--config", str(path), "--test_after_fit", "true"]
    command += ["--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "MEMBER: 2/2" in done.stdout and "distributed_backend=gloo" in done.stdout

    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    # 4 training tiles in batches of 2 over 2 processes: 1 optimiser step per epoch (2 on one process)
    assert ckpt["epoch"] == 0 and ckpt["global_step"] == 1
    metrics = json.loads((tmp_path / "run" / "test_metrics.json").read_text())["metrics"]
    # the confusion matrices of both processes are summed: both 32 x 32 test tiles are counted once
    assert metrics["support_change"] + metrics["support_no_change"] == 2 * 32 * 32
    assert (tmp_path / "run" / "config.yaml").is_file()
