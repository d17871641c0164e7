"""Tables through `mantis fit`: the mlp learns iris from a CSV file; Parquet and scikit-learn sources give the
same rows; bad tables give one line."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from types import SimpleNamespace

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
    assert [len(module._targets[s]) for s in ("train", "val", "test")] == [2, 1, 1]
    module.setup()
    batch = next(iter(module.train_dataloader()))
    assert batch["image"].shape == (2, 2) and batch["label"].dtype == torch.int64
    torch.testing.assert_close(batch["image"].mean(0), torch.zeros(2))  # standardised on the training rows


@pytest.mark.parametrize(
    ("content", "kwargs", "message"),
    [
        ("a,y\n1,0\nx,1\n", {"features": ["a"]}, "row 3, column 'a': 'x' is not a number"),
        # blank lines count, as a spreadsheet numbers the rows
        ("a,y\n\n1,0\n,\n2,1\nx,1\n", {"features": ["a"]}, "row 6, column 'a': 'x' is not a number"),
        ("a,y\n1,0\n\n2,0,1\n", {}, "row 4 has 3 cells but the header has 2"),
        ("a,y\n\n1,0\n2,\n", {}, "row 4: empty 'y'"),
        ("a,y\n1,0\n2,1\n", {"target": "z"}, "has no column 'z' (columns: a, y)"),
        ("a,y\n1,0\n2,1\n", {"features": ["a", "y"]}, "feature 'y' is the target column; leave it out of features"),
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


def test_parquet_gives_the_rows_of_the_same_csv(tmp_path: Path) -> None:
    pyarrow = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    csv_path = _iris(tmp_path / "iris.csv")
    with csv_path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    columns = {name: [row[i] for row in rows[1:]] for i, name in enumerate(rows[0])}
    typed = {
        name: [float(v) for v in values] if name != "species" else list(values) for name, values in columns.items()
    }
    typed["species"][3] = None  # a null cell is an empty cell, as in a CSV file
    pq.write_table(pyarrow.table(typed), tmp_path / "iris.parquet")
    with pytest.raises(DataError, match=r"iris.parquet: row 5: empty 'species'"):
        TabularDataModule(str(tmp_path / "iris.parquet"), "species")
    typed["species"][3] = columns["species"][3]
    pq.write_table(pyarrow.table(typed), tmp_path / "iris.parquet")
    from_csv, from_parquet = (
        TabularDataModule(str(csv_path), "species"),
        TabularDataModule(str(tmp_path / "iris.parquet"), "species"),
    )
    assert from_parquet.feature_names == from_csv.feature_names and from_parquet.class_names == from_csv.class_names
    for stage in ("train", "val", "test"):
        np.testing.assert_array_equal(from_parquet._features[stage], from_csv._features[stage])
        np.testing.assert_array_equal(from_parquet._targets[stage], from_csv._targets[stage])


def test_parquet_without_pyarrow_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "t.parquet"
    path.write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)  # as if pyarrow were not installed
    with pytest.raises(DataError) as error:
        TabularDataModule(str(path), "y")
    assert (
        str(error.value)
        == f"{path}: reading Parquet needs pyarrow (pip install 'mantis[table]' or pip install pyarrow)"
    )


def test_sklearn_tables_come_from_the_installed_package() -> None:
    from sklearn.datasets import load_diabetes, load_wine

    wine = TabularDataModule(sklearn_dataset="wine", val_fraction=0.0, test_fraction=0.0)
    reference = load_wine()
    assert wine.class_names == list(reference.target_names) and wine.in_channels == 13
    np.testing.assert_allclose(wine._features["train"], reference.data.astype(np.float32))
    np.testing.assert_array_equal(wine._targets["train"], reference.target)
    diabetes = TabularDataModule(sklearn_dataset="diabetes", task="regression", val_fraction=0.0, test_fraction=0.0)
    target = load_diabetes(scaled=False).target
    assert diabetes.target == "target" and diabetes.num_classes == 1 and diabetes.class_names == ["target"]
    np.testing.assert_allclose(diabetes._targets["train"][:, 0], target.astype(np.float32))
    np.testing.assert_allclose(diabetes.target_mean, [target.mean()], rtol=1e-5)
    np.testing.assert_allclose(diabetes.target_std, [target.std()], rtol=1e-5)


def test_regression_rows_keep_their_units_and_fit_the_target_on_training_rows(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("a,y,split\n1,10,train\n2,30,train\n3,1000,test\n")
    module = TabularDataModule(str(path), "y", task="regression", split_column="split")
    assert module.target_mean == [20.0] and module.target_std == [10.0]  # the test row's 1000 is not counted
    module.setup()
    batch = next(iter(module.test_dataloader()))
    assert batch["target"].dtype == torch.float32 and batch["target"].tolist() == [[1000.0]]
    assert "label" not in batch


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"path": "t.csv", "task": "regression"},
            DataError,
            "t.csv: row 3, column 'y': 'big' is not a number (task: regression needs numbers; "
            "use task: classification for labels)",
        ),
        (
            {"sklearn_dataset": "diabetes"},
            ValueError,
            "sklearn_dataset 'diabetes' is a regression table; set task: regression",
        ),
        (
            {"sklearn_dataset": "mnist"},
            ValueError,
            "sklearn_dataset must be one of iris, wine, breast_cancer, diabetes, got 'mnist'",
        ),
        ({"path": "t.csv", "sklearn_dataset": "wine"}, ValueError, "give path or sklearn_dataset, not both"),
        ({}, ValueError, "give path (a .csv or .parquet file) or sklearn_dataset"),
    ],
)
def test_bad_sources_give_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kwargs: dict, error: type[Exception], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.csv").write_text("a,y\n1,5\n2,big\n")
    with pytest.raises(error) as raised:
        TabularDataModule(**{"target": "y" if "path" in kwargs else "target", **kwargs})
    assert str(raised.value) == message


def test_a_resumed_run_trains_on_the_rows_the_uninterrupted_one_would_have(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("a,y\n" + "".join(f"{i},{i % 2}\n" for i in range(10)))
    torch.manual_seed(0)
    first = TabularDataModule(str(path), "y", val_fraction=0.0, test_fraction=0.0, batch_size=2)
    first.setup()
    epoch = [batch["image"][:, 0].tolist() for batch in first.train_dataloader()]
    progress = SimpleNamespace(processed=3, completed=3)  # checkpoint taken after 3 of the 5 batches
    first.trainer = SimpleNamespace(  # type: ignore[assignment]
        fit_loop=SimpleNamespace(epoch_loop=SimpleNamespace(batch_progress=SimpleNamespace(current=progress))),
        num_training_batches=5,
    )
    state = first.state_dict()
    torch.manual_seed(1)  # another seed: the order must come from the checkpoint
    second = TabularDataModule(str(path), "y", val_fraction=0.0, test_fraction=0.0, batch_size=2)
    second.setup()
    second.load_state_dict(state)
    assert [batch["image"][:, 0].tolist() for batch in second.train_dataloader()] == epoch[3:]
