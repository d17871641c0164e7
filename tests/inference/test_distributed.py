"""``mantis predict --devices N``: a folder shared among processes (Fabric, gloo on CPUs), same files as one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import mantis
from mantis.cli import main
from mantis.inference.distributed import deal_jobs
from mantis.inference.predict import PredictJob
from mantis.inference.raster import read_header

from .conftest import make_ckpt, write_geotiff

TINY = {"in_channels": 3, "num_classes": 2, "nf": 8, "depth": 2, "nheads_start": 2, "psp_depth": 2}


def _pairs(root: Path, sizes: list[tuple[int, int]]) -> tuple[Path, Path]:
    rng = np.random.default_rng(7)
    for i, (h, w) in enumerate(sizes):
        for folder in ("A", "B"):
            (root / folder).mkdir(parents=True, exist_ok=True)
            write_geotiff(root / folder / f"scene_{i}.tif", rng.integers(0, 255, (3, h, w), dtype=np.uint8))
    return root / "A", root / "B"


def _tiny_cd_checkpoint(tmp_path: Path) -> Path:
    """A checkpoint of a tiny change detector (untrained weights: these tests refuse before predicting)."""
    model = mantis.create_model("fractal_resnet_cd", **TINY)
    return make_ckpt(tmp_path / "m.ckpt", model, "fractal_resnet_cd", "change_detection", **TINY)


def test_two_gloo_processes_write_the_files_of_one(tmp_path: Path) -> None:
    a, b = _pairs(tmp_path / "data", [(40, 52), (33, 29), (64, 20), (24, 24), (50, 41)])
    torch.manual_seed(0)
    model = mantis.create_model("fractal_resnet_cd", **TINY).eval()
    ckpt = make_ckpt(tmp_path / "m.ckpt", model, "fractal_resnet_cd", "change_detection", **TINY)
    flags = ["--window", "16", "--stride", "8", "--outputs", "class", "prob", "--no-progress", "--threads", "1"]
    common = ["predict", "-c", str(ckpt), "-i", str(a), str(b), "--device", "cpu", *flags]

    assert main([*common, "-o", str(tmp_path / "one")]) == 0
    command = [sys.executable, "-m", "mantis.cli", *common, "-o", str(tmp_path / "two"), "--devices", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "MEMBER: 2/2" in done.stdout and "distributed_backend=gloo" in done.stdout
    assert done.stderr == ""  # stderr is for problems

    one = sorted(p.name for p in (tmp_path / "one").iterdir())
    two = sorted(p.name for p in (tmp_path / "two").iterdir())
    assert one == two and len(one) == 10  # class and prob of five scenes, no temporary left
    for name in one:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name
    # every file written once, by one of the two processes
    wrote = [line for line in done.stdout.splitlines() if line.startswith("wrote ")]
    assert sorted(Path(line[6:]).name for line in wrote) == one


def test_bad_folder_refused_once_before_any_process_starts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = _pairs(tmp_path / "data", [(20, 20), (20, 20)])
    (b / "scene_1.tif").unlink()
    torch.manual_seed(0)
    ckpt = _tiny_cd_checkpoint(tmp_path)
    out = tmp_path / "out"
    argv = ["predict", "-c", str(ckpt), "-i", str(a), str(b), "-o", str(out), "--devices", "2", "--device", "cpu"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"mantis predict: error: {a / 'scene_1.tif'}: has no counterpart scene_1.tif in {b}"
    assert not out.exists() or not any(out.iterdir())
    assert main([*argv[:-2], "--device", "cuda:1"]) == 2
    assert "--device cuda:1: several processes take --device cpu or cuda" in capsys.readouterr().err


def test_compile_with_devices_refused_not_ignored(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = _pairs(tmp_path / "data", [(20, 20)])
    ckpt = _tiny_cd_checkpoint(tmp_path)
    out = tmp_path / "out"
    argv = ["predict", "-c", str(ckpt), "-i", str(a), str(b), "-o", str(out), "--device", "cpu"]
    assert main([*argv, "--devices", "2", "--compile"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "mantis predict: error: --compile works in one process only; leave it out with --devices/--num-nodes"
    assert not out.exists() or not any(out.iterdir())


def test_files_dealt_largest_first_to_the_least_loaded_rank(tmp_path: Path) -> None:
    sizes = [(10, 10), (30, 30), (20, 20), (10, 10), (25, 20)]
    paths = [write_geotiff(tmp_path / f"{i}.tif", np.zeros((1, h, w), np.uint8)) for i, (h, w) in enumerate(sizes)]
    jobs = [PredictJob((p,), read_header(p), (None,), {}) for p in paths]
    shares = deal_jobs(jobs, 2)
    assert sorted(i for share in shares for i in share) == list(range(5))  # each file on exactly one rank
    # file 1 (900 px) -> rank 0, 4 (500) -> 1, 2 (400) -> 1, 0 (100) -> 0 on the 900/900 tie, 3 (100) -> 1
    assert shares == [[0, 1], [2, 3, 4]]
    assert deal_jobs(jobs, 1) == [[0, 1, 2, 3, 4]] and deal_jobs(jobs[:1], 3) == [[0], [], []]


def test_several_machines_without_a_launcher_are_refused_not_awaited(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without torchrun, SLURM or NODE_RANK nobody starts the other machine's ranks: the command would wait.
    for name in ("TORCHELASTIC_RUN_ID", "SLURM_NTASKS", "NODE_RANK"):
        monkeypatch.delenv(name, raising=False)
    a, b = _pairs(tmp_path / "data", [(20, 20)])
    ckpt = _tiny_cd_checkpoint(tmp_path)
    out = tmp_path / "out"
    argv = ["predict", "-c", str(ckpt), "-i", str(a), str(b), "-o", str(out), "--device", "cpu", "--num-nodes", "2"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mantis predict: error: --num-nodes 2: start the command on each machine with torchrun")
    assert not out.exists() or not any(out.iterdir())


def test_a_folder_of_volumes_on_two_processes_gives_the_files_of_one(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    scans = tmp_path / "scans"
    scans.mkdir()
    for i, shape in enumerate([(12, 10, 8), (20, 16, 8), (8, 8, 8)]):
        np.save(scans / f"scan_{i}.npy", rng.normal(0.0, 1.0, shape).astype(np.float32))
    kwargs = {"in_channels": 1, "num_classes": 2, "spatial_dims": 3, "nf": 8, "depth": 2, "psp_depth": 1}
    torch.manual_seed(0)
    model = mantis.create_model("fractal_resunet", **kwargs).eval()
    ckpt = make_ckpt(tmp_path / "m.ckpt", model, "fractal_resunet", "segmentation", **kwargs)
    common = ["predict", "-c", str(ckpt), "-i", str(scans), "--device", "cpu", "--window", "8", "--no-progress"]
    assert main([*common, "--outputs", "class", "prob", "-o", str(tmp_path / "one")]) == 0
    command = [sys.executable, "-m", "mantis.cli", *common, "--outputs", "class", "prob", "-o", str(tmp_path / "two")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([*command, "--devices", "2", "--threads", "1"], capture_output=True, text=True, timeout=300,
                          env=env, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    one = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert one == sorted(p.name for p in (tmp_path / "two").iterdir()) and len(one) == 6
    for name in one:
        assert np.array_equal(np.load(tmp_path / "one" / name), np.load(tmp_path / "two" / name)), name
    wrote = [line for line in done.stdout.splitlines() if line.startswith("wrote ")]
    assert sorted(Path(line[6:]).name for line in wrote) == one  # each written once
