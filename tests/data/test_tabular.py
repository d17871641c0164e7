"""Tables through `mantis fit`: the mlp learns iris from a CSV file; bad tables give one line."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from sklearn.datasets import load_iris

from mantis.cli import main
from mantis.data.tabular import TabularDataModule
from mantis.io.errors import DataError


def _iris(path: Path) -> Path:
    data = load_iris()
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*data.feature_names, "species"])
        for x, y in zip(data.data, data.target):
            writer.writerow([*x, data.target_names[y]])
    return path


def test_mlp_learns_iris_from_a_csv_through_the_cli(tmp_path: Path) -> None:
    table = _iris(tmp_path / "iris.csv")
    config = yaml.safe_load((Path(__file__).resolve().parents[2] / "configs" / "tabular.yaml").read_text())
    config["trainer"] = {"max_epochs": 30, "accelerator": "cpu", "enable_progress_bar": False}
    config["data"]["init_args"].update({"path": str(table), "target": "species", "batch_size": 16})
    config["run_dir"] = str(tmp_path / "run")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    assert main(["fit", "--config", str(tmp_path / "c.yaml"), "--test_after_fit", "true"]) == 0
    record = json.loads((tmp_path / "run" / "test_metrics.json").read_text())
    assert record["task"] == "classification" and record["model_kwargs"]["in_channels"] == 4
    assert record["metrics"]["accuracy"] >= 0.8  # 30 test rows; a constant guess scores about 0.33

    # the checkpoint keeps the training rows' statistics
    module = TabularDataModule(str(table), "species")
    train = module._features["train"]
    best = next((tmp_path / "run" / "checkpoints").glob("best-*.ckpt"))
    hparams = torch.load(best, weights_only=True)["hyper_parameters"]
    np.testing.assert_allclose(hparams["band_mean"], train.mean(axis=0), rtol=1e-6)
    assert hparams["class_names"] == ["setosa", "versicolor", "virginica"]


def test_split_column_and_explicit_features(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("a,b,note,y,split\n1,2,x,0,train\n2,3,x,1,train\n3,4,x,0,val\n4,5,x,1,test\n")
    module = TabularDataModule(str(path), "y", split_column="split")
    assert module.feature_names == ["a", "b"]  # 'note' is not numeric
    assert [len(module._labels[s]) for s in ("train", "val", "test")] == [2, 1, 1]
    module.setup()
    batch = next(iter(module.train_dataloader()))
    assert batch["image"].shape == (2, 2) and batch["label"].dtype == torch.int64
    torch.testing.assert_close(batch["image"].mean(0), torch.zeros(2))  # standardised on the training rows


@pytest.mark.parametrize(
    ("content", "kwargs", "message"),
    [
        ("a,y\n1,0\nx,1\n", {"features": ["a"]}, "row 3, column 'a': 'x' is not a number"),
        ("a,y\n1,0\n2,1\n", {"target": "z"}, "has no column 'z' (columns: a, y)"),
        ("a,y\n1,0\n2,0\n", {}, "column 'y' holds one class only ('0')"),
        ("a,y\n1,0,5\n", {}, "row 2 has 3 cells but the header has 2"),
        ("a,y\n", {}, "needs a header row and at least one data row"),
    ],
)
def test_bad_tables_give_one_line(tmp_path: Path, content: str, kwargs: dict, message: str) -> None:
    path = tmp_path / "t.csv"
    path.write_text(content)
    with pytest.raises(DataError) as error:
        TabularDataModule(str(path), **{"target": "y", **kwargs})
    assert str(error.value) == f"{path}: {message}"
