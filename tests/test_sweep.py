"""``mantis sweep``: one tested run per seed, and mean/std/min/max of every test metric over the seeds."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import pytest

from mantis.cli import main
from mantis.sweep import summarise
from tests.tasks.folders import cd_config, write_config


def _tiny_synthetic_config(tmp_path: Path) -> Path:
    config = cd_config(None, tmp_path / "unused", num_train=4, num_val=2, num_test=4)
    config["model"]["init_args"]["model"] = "fractal_resnet_cd"
    config["model"]["init_args"]["model_kwargs"] = {"nf": 4, "depth": 2, "nheads_start": 1}
    return write_config(tmp_path / "tiny.yaml", config)


def test_two_seeds_trained_tested_and_summarised(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _tiny_synthetic_config(tmp_path)
    out = tmp_path / "sweep"
    assert main(["sweep", "--seeds", "3", "7", "--out", str(out), "--", "fit", "--config", str(config)]) == 0

    runs = {s: json.loads((out / f"seed_{s}" / "test_metrics.json").read_text())["metrics"] for s in (3, 7)}
    assert runs[3] != runs[7]  # different seeds, different networks
    for seed in (3, 7):  # each seed in its own run folder, trained with that seed
        saved = (out / f"seed_{seed}" / "config.yaml").read_text()
        assert f"seed_everything: {seed}" in saved
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seeds"] == [3, 7] and summary["per_seed"] == {"3": runs[3], "7": runs[7]}
    keys = [k for k in runs[3] if isinstance(runs[3][k], float) and isinstance(runs[7][k], float)]
    assert {"f1_change", "mcc_macro", "loss"} <= set(keys)
    for key in keys:
        pair = [runs[3][key], runs[7][key]]
        got = summary["metrics"][key]
        assert got["mean"] == pytest.approx(statistics.mean(pair), abs=1e-12)
        assert got["std"] == pytest.approx(statistics.stdev(pair), abs=1e-12)
        assert (got["min"], got["max"], got["n"]) == (min(pair), max(pair), 2)
    printed = capsys.readouterr().out
    assert "f1_change" in printed and "±" in printed

    # an interrupted sweep resumes: finished seeds are read back, not trained again
    (out / "summary.json").unlink()
    stamp = (out / "seed_3" / "test_metrics.json").stat().st_mtime_ns
    assert main(["sweep", "--seeds", "3", "7", "--out", str(out), "--", "fit", "--config", str(config)]) == 0
    assert (out / "seed_3" / "test_metrics.json").stat().st_mtime_ns == stamp
    assert json.loads((out / "summary.json").read_text())["metrics"] == summary["metrics"]
    # a seed stopped before its test metrics continues from its own last.ckpt, in its folder
    (out / "seed_7" / "test_metrics.json").unlink()
    assert main(["sweep", "--seeds", "3", "7", "--out", str(out), "--", "fit", "--config", str(config)]) == 0
    assert f"seed 7 resumed from {out / 'seed_7' / 'checkpoints' / 'last.ckpt'}" in capsys.readouterr().out
    assert json.loads((out / "seed_7" / "test_metrics.json").read_text())["metrics"] == runs[7]
    # ... but never with the seeds of other fit arguments
    other = [
        "sweep",
        "--seeds",
        "3",
        "--out",
        str(out),
        "--",
        "fit",
        "--config",
        str(config),
        "--model.init_args.lr",
        "1",
    ]
    assert main(other) == 2
    assert f"{out}: holds a sweep of other fit arguments" in capsys.readouterr().err


def test_summary_leaves_undefined_scores_out() -> None:
    runs: dict[int, dict[str, Any]] = {
        0: {"f1": 0.5, "iou": None, "tp": 3},
        1: {"f1": 0.7, "iou": 0.2, "tp": 5},
        2: {"f1": 0.9, "iou": 0.4},
    }
    got = summarise(runs)
    assert got["f1"]["mean"] == pytest.approx(0.7) and got["f1"]["std"] == pytest.approx(0.2)
    assert got["iou"] == {
        "mean": pytest.approx(0.3),
        "std": pytest.approx(statistics.stdev([0.2, 0.4])),
        "min": 0.2,
        "max": 0.4,
        "n": 2,
    }
    assert got["tp"]["n"] == 2 and got["tp"]["mean"] == 4


def test_a_metric_undefined_for_every_seed_is_listed_not_dropped() -> None:
    from mantis.sweep import table

    got = summarise({0: {"f1": 0.5, "f1_road": None}, 1: {"f1": 0.7, "f1_road": None}})
    assert got["f1_road"] == {"mean": None, "std": None, "min": None, "max": None, "n": 0}
    lines = table(got).splitlines()
    assert len(lines) == 3 and lines[2].startswith("f1_road") and "undefined for every seed" in lines[2]
    assert lines[2].rstrip().endswith(" 0") and json.loads(json.dumps(got, allow_nan=False)) == got


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--seeds", "1", "--", "fit", "--config", "x.yaml", "--run_dir", "r"], "--run_dir: set by the sweep"),
        (["--seeds", "1", "1", "--", "fit", "--config", "x.yaml"], "a seed is repeated"),
        (["--num-seeds", "2", "--", "validate"], "give the training command after --"),
        (["--num-seeds", "0", "--", "fit"], "--num-seeds must be at least 1"),
    ],
)
def test_mistakes_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    out = tmp_path / "sweep"
    assert main(["sweep", "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mantis sweep: error: ") and message in err and "\n" not in err
    assert not (out / "summary.json").exists()


def test_failed_seed_is_named_and_nothing_summarised(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sweep"
    missing = tmp_path / "missing.yaml"
    assert main(["sweep", "--seeds", "5", "--out", str(out), "--", "fit", "--config", str(missing)]) == 2
    err = capsys.readouterr().err
    assert f"{out / 'seed_5'}: mantis fit of seed 5 failed with exit status 2" in err
    assert not (out / "summary.json").exists()
