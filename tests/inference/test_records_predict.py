"""`mantis predict` on series and tables: a tiny series classifier and tiny table models trained through `mantis
fit`, then predicted; the CSVs hold the network's own outputs on inputs prepared here independently (numpy), and
bad inputs stop the command in one line with status 2, nothing written. Per-step series: `.npy` class ids."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from mantis.cli import main
from mantis.inference.errors import InputError
from mantis.models import create_model
from tests.data.test_series import waves, write_ts


def _fit(tmp_path: Path, model: dict[str, Any], data: dict[str, Any]) -> Path:
    config = {
        "seed_everything": 0,
        "trainer": {"max_epochs": 2, "accelerator": "cpu", "enable_progress_bar": False, "logger": False},
        "model": model,
        "data": data,
        "run_dir": str(tmp_path / "run"),
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["fit", "--config", str(path)]) == 0
    return tmp_path / "run" / "checkpoints" / "last.ckpt"


def _network(checkpoint: Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The network and hyper-parameters rebuilt here from the checkpoint file alone."""
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    hp = ckpt["hyper_parameters"]
    network = create_model(hp["model"], **hp["model_kwargs"])
    network.load_state_dict({k.removeprefix("model."): v for k, v in ckpt["state_dict"].items()})
    return network.eval(), hp


def _forward(network: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return network(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    return rows[0], rows[1:]


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str], out: Path) -> str:
    """The one error line of a refused prediction; nothing may have been written."""
    capsys.readouterr()
    assert main(["predict", *argv, "-o", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mantis predict: error: ")
    assert not out.exists() or not any(out.iterdir())
    return err[0]


@pytest.fixture(scope="module")
def series_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp_path = tmp_path_factory.mktemp("series")
    train = write_ts(tmp_path / "W_TRAIN.ts", *waves(16))
    model = {
        "class_path": "mantis.tasks.ClassificationTask",
        "init_args": {"model": "fractal_resnet", "model_kwargs": {"spatial_dims": 1, "nf": 4, "depth": 2}},
    }
    data = {"class_path": "mantis.data.SeriesDataModule", "init_args": {"train_path": str(train), "batch_size": 4}}
    return _fit(tmp_path, model, data)


def _resampled(x: np.ndarray, length: int) -> np.ndarray:
    positions = np.linspace(0, x.shape[1] - 1, length)
    return np.stack([np.interp(positions, np.arange(x.shape[1]), row) for row in x])


def test_series_predictions_are_the_networks_on_the_training_length(
    series_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = torch.load(series_checkpoint, map_location="cpu", weights_only=True)
    kept = {"series_length": 32, "unequal_length": "resample", "label_column": "label"}
    assert ckpt["datamodule_hyper_parameters"] == kept  # what prediction needs travels with the weights
    series, labels = waves(5, seed=3)
    series = [series[0], series[1][:, :20], np.concatenate([series[2], series[3]], axis=1), series[3], series[4]]
    file = write_ts(tmp_path / "new.ts", series, labels)
    out = tmp_path / "out"
    capsys.readouterr()
    assert main(["predict", "-c", str(series_checkpoint), "-i", str(file), "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert "new.ts:" in captured.err and "/5 " in captured.err  # the progress bar, counting the series
    assert f"wrote {out / 'new_predictions.csv'}" in captured.out

    network, hp = _network(series_checkpoint)
    mean, std = np.array(hp["band_mean"])[:, None], np.array(hp["band_std"])[:, None]
    x = np.stack([_resampled((s - mean) / std, 32) for s in series])
    expected = _softmax(_forward(network, x))
    header, rows = _read_csv(out / "new_predictions.csv")
    assert header == ["id", "class", "prob_1", "prob_2"]
    assert [r[0] for r in rows] == ["0", "1", "2", "3", "4"]
    np.testing.assert_allclose([[float(v) for v in r[2:]] for r in rows], expected, rtol=1e-5, atol=1e-6)
    assert [r[1] for r in rows] == [["1", "2"][k] for k in expected.argmax(1)]

    # the same series as a CSV file (a label column, left out as in training): the same predictions
    table = tmp_path / "new.csv"
    with table.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["label", *(f"t{i}" for i in range(64))])
        writer.writerows([[label, *s[0], *[""] * (64 - s.shape[1])] for s, label in zip(series, labels)])
    univariate = _refused(["-c", str(series_checkpoint), "-i", str(table)], capsys, tmp_path / "refused")
    assert univariate.endswith(f"{table}: series of 1 dimensions, but the model takes 2")  # the model takes two


def test_predict_records_in_python_takes_the_keywords_of_the_other_prediction_functions(
    series_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mantis.inference.records import predict_records

    series, labels = waves(4, seed=7)
    file = write_ts(tmp_path / "new.ts", series, labels)
    assert main(["predict", "-c", str(series_checkpoint), "-i", str(file), "-o", str(tmp_path / "cli")]) == 0
    written = predict_records(series_checkpoint, file, tmp_path / "py", batch_size=3, progress=False)
    assert written == [{"predictions": tmp_path / "py" / "new_predictions.csv"}]
    (header, rows), (cli_header, cli_rows) = (
        _read_csv(written[0]["predictions"]),
        _read_csv(tmp_path / "cli" / "new_predictions.csv"),
    )
    assert header == cli_header and [r[:2] for r in rows] == [r[:2] for r in cli_rows]  # other batches: rounding only
    np.testing.assert_allclose(np.array(rows)[:, 2:].astype(float), np.array(cli_rows)[:, 2:].astype(float), atol=1e-6)
    with pytest.raises(InputError, match="already exists"):
        predict_records(series_checkpoint, file, tmp_path / "py", progress=False)
    predict_records(series_checkpoint, file, tmp_path / "py", overwrite=True, progress=False)
    with pytest.raises(TypeError, match="unknown prediction option 'batchsize'"):
        predict_records(series_checkpoint, file, tmp_path / "typo", batchsize=3)
    assert not (tmp_path / "typo").exists()


def test_series_length_policies_are_those_of_training(
    series_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = torch.load(series_checkpoint, map_location="cpu", weights_only=True)
    series, labels = waves(3, seed=5)
    file = write_ts(tmp_path / "ragged.ts", [series[0], series[1][:, :24], series[2]], labels)
    for policy in ("error", "pad"):
        ckpt["datamodule_hyper_parameters"]["unequal_length"] = policy  # as if trained with this policy
        torch.save(ckpt, tmp_path / f"{policy}.ckpt")
    message = _refused(["-c", str(tmp_path / "error.ckpt"), "-i", str(file)], capsys, tmp_path / "out")
    assert message.endswith(
        f"{file}: series 1 has 24 steps, not 32, and the model was trained with unequal_length 'error'"
    )

    assert main(["predict", "-c", str(tmp_path / "pad.ckpt"), "-i", str(file), "-o", str(tmp_path / "p")]) == 0
    network, hp = _network(series_checkpoint)
    mean, std = np.array(hp["band_mean"])[:, None], np.array(hp["band_std"])[:, None]
    short = np.zeros((2, 32))
    short[:, :24] = (series[1][:, :24] - mean) / std  # padded with the training mean (0 once standardised)
    x = np.stack([(series[0] - mean) / std, short, (series[2] - mean) / std])
    _, rows = _read_csv(tmp_path / "p" / "ragged_predictions.csv")
    np.testing.assert_allclose(
        [[float(v) for v in r[2:]] for r in rows], _softmax(_forward(network, x)), rtol=1e-5, atol=1e-6
    )


def _write_table(path: Path, header: list[str], rows: np.ndarray | list[list[Any]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_a_table_classifier_reads_its_features_by_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3)) * [1.0, 5.0, 0.1] + [0.0, 20.0, -3.0]
    species = np.where(x[:, 0] + (x[:, 1] - 20) / 5 > 0, "big", "small")
    train = _write_table(tmp_path / "train.csv", ["a", "b", "c", "kind"], [[*v, s] for v, s in zip(x, species)])
    model = {
        "class_path": "mantis.tasks.ClassificationTask",
        "init_args": {"model": "mlp", "model_kwargs": {"hidden": [8]}},
    }
    data = {"class_path": "mantis.data.TabularDataModule", "init_args": {"path": str(train), "target": "kind"}}
    checkpoint = _fit(tmp_path, model, data)

    new = rng.normal(size=(7, 3)) * [1.0, 5.0, 0.1] + [0.0, 20.0, -3.0]
    ids = [f"r{i}" for i in range(7)]
    # other columns, and the features in another order: they are found by name
    rows = [[i, "x", c, a, b] for i, (a, b, c) in zip(ids, new)]
    table = _write_table(tmp_path / "new.csv", ["id", "note", "c", "a", "b"], rows)
    assert main(["predict", "-c", str(checkpoint), "-i", str(table), "-o", str(tmp_path / "out"), "--no-progress"]) == 0
    assert "new.csv" not in capsys.readouterr().err  # --no-progress: no bar

    network, hp = _network(checkpoint)
    expected = _softmax(_forward(network, (new - hp["band_mean"]) / hp["band_std"]))
    header, got = _read_csv(tmp_path / "out" / "new_predictions.csv")
    assert header == ["id", "class", "prob_big", "prob_small"]
    assert [r[0] for r in got] == ids  # the input's id column
    np.testing.assert_allclose([[float(v) for v in r[2:]] for r in got], expected, rtol=1e-5, atol=1e-6)
    assert [r[1] for r in got] == [["big", "small"][k] for k in expected.argmax(1)]

    folder = tmp_path / "folder"
    folder.mkdir()
    _write_table(folder / "p.csv", ["a", "b", "c"], new[:3])
    _write_table(folder / "q.csv", ["a", "b", "c"], new[3:])
    assert main(["predict", "-c", str(checkpoint), "-i", str(folder), "-o", str(tmp_path / "f"), "--no-progress"]) == 0
    both = [_read_csv(tmp_path / "f" / f"{stem}_predictions.csv")[1] for stem in ("p", "q")]
    assert [r[0] for r in both[0] + both[1]] == ["0", "1", "2", "0", "1", "2", "3"]  # positions in each file
    np.testing.assert_allclose([[float(v) for v in r[2:]] for r in both[0] + both[1]], expected, rtol=1e-5, atol=1e-6)
    capsys.readouterr()
    assert main(["predict", "-c", str(checkpoint), "-i", str(folder), "-o", str(tmp_path / "f")]) == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith(f"{tmp_path / 'f' / 'p_predictions.csv'}: already exists (pass --overwrite to replace it)")
    )

    lacking = _write_table(tmp_path / "lacking.csv", ["a", "c"], new[:, [0, 2]])
    message = _refused(["-c", str(checkpoint), "-i", str(lacking)], capsys, tmp_path / "refused")
    assert message.endswith(f"{lacking}: has no column 'b', a feature of the model (a, b, c)")
    text = _write_table(tmp_path / "text.csv", ["a", "b", "c"], [[1, 2, 3], [4, "abc", 6]])
    message = _refused(["-c", str(checkpoint), "-i", str(text)], capsys, tmp_path / "refused")
    assert message.endswith(f"{text}: row 3, column 'b': 'abc' is not a number")
    series = write_ts(tmp_path / "s.ts", *waves(2))
    message = _refused(["-c", str(checkpoint), "-i", str(series)], capsys, tmp_path / "refused")
    assert message.endswith(f"{series}: {checkpoint} is a table model, which reads .csv or .parquet or .pq files")


def test_a_table_regressor_predicts_in_the_targets_units(tmp_path: Path) -> None:
    pyarrow = pytest.importorskip("pyarrow")
    from pyarrow import parquet

    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 2))
    y = 300.0 + 40.0 * x[:, 0] - 25.0 * x[:, 1]  # far from 0 and 1: scaled outputs would not pass for values
    train = _write_table(tmp_path / "train.csv", ["u", "v", "price"], np.column_stack([x, y]))
    model = {
        "class_path": "mantis.tasks.RegressionTask",
        "init_args": {"model": "mlp", "model_kwargs": {"hidden": [8]}},
    }
    data = {
        "class_path": "mantis.data.TabularDataModule",
        "init_args": {"path": str(train), "target": "price", "task": "regression"},
    }
    checkpoint = _fit(tmp_path, model, data)
    new = rng.normal(size=(5, 2))
    parquet.write_table(pyarrow.table({"v": new[:, 1], "u": new[:, 0]}), tmp_path / "new.parquet")
    argv = ["predict", "-c", str(checkpoint), "-i", str(tmp_path / "new.parquet"), "-o", str(tmp_path / "out")]
    assert main([*argv, "--no-progress"]) == 0

    network, hp = _network(checkpoint)
    assert hp["target_mean"][0] == pytest.approx(300.0, abs=20.0)  # the training rows' target, in its units
    expected = _forward(network, (new - hp["band_mean"]) / hp["band_std"])[:, 0] * hp["target_std"][0]
    expected += hp["target_mean"][0]
    header, rows = _read_csv(tmp_path / "out" / "new_predictions.csv")
    assert header == ["id", "price"] and [r[0] for r in rows] == ["0", "1", "2", "3", "4"]
    np.testing.assert_allclose([float(r[1]) for r in rows], expected, rtol=1e-5)


def _segmentation_checkpoint(path: Path, model: str, kwargs: dict[str, Any], mean: list[float]) -> torch.nn.Module:
    """A checkpoint as SegmentationTask writes one (weights under ``model.``, the keys inference reads)."""
    torch.manual_seed(0)
    network = create_model(model, **kwargs).eval()
    hparams = {
        "model": model,
        "model_kwargs": kwargs,
        "task": "segmentation",
        "band_mean": mean,
        "band_std": [2.0, 0.5],
    }
    state = {f"model.{k}": v for k, v in network.state_dict().items()}
    torch.save({"state_dict": state, "hyper_parameters": hparams}, path)
    return network


def test_per_step_series_give_class_ids_of_every_step(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kwargs = {"in_channels": 2, "num_classes": 3, "spatial_dims": 1, "nf": 4, "depth": 2, "nheads_start": 1}
    network = _segmentation_checkpoint(tmp_path / "unet.ckpt", "fractal_resunet", kwargs, [1.0, -1.0])
    series = np.random.default_rng(2).normal(size=(3, 2, 32)).astype(np.float32)
    np.save(tmp_path / "s.npy", series)
    out = tmp_path / "out"
    one_window = ["--window", "32", "--stride", "32", "--pad", "0", "--outputs", "class", "prob"]
    assert (
        main(["predict", "-c", str(tmp_path / "unet.ckpt"), "-i", str(tmp_path / "s.npy"), "-o", str(out), *one_window])
        == 0
    )
    assert "s.npy" in capsys.readouterr().err  # the progress bar
    x = (series - np.float32([1.0, -1.0])[:, None]) / np.float32([2.0, 0.5])[:, None]
    with torch.no_grad():
        prob = network(torch.from_numpy(x)).segmentation.numpy()
    classes = np.load(out / "s_classes.npy")
    assert classes.shape == (3, 32) and classes.dtype == np.uint8
    np.testing.assert_array_equal(classes, prob.argmax(1))
    np.testing.assert_allclose(np.load(out / "s_prob.npy"), prob, rtol=1e-5, atol=1e-6)

    # a per-step network (1x1 convolutions) on long series with the default overlapping windows: the same steps
    kwargs = {"in_channels": 2, "num_classes": 3, "spatial_dims": 1}
    steps = _segmentation_checkpoint(tmp_path / "steps.ckpt", "test_pixel_seg", kwargs, [0.0, 0.0])
    long = np.random.default_rng(3).normal(size=(2, 2, 300)).astype(np.float32)
    np.save(tmp_path / "long.npy", long)
    argv = ["predict", "-c", str(tmp_path / "steps.ckpt"), "-i", str(tmp_path / "long.npy"), "-o", str(out)]
    assert main([*argv, "--window", "64", "--no-progress"]) == 0
    with torch.no_grad():
        expected = steps(torch.from_numpy(long / np.float32([2.0, 0.5])[:, None])).segmentation.numpy().argmax(1)
    np.testing.assert_array_equal(np.load(out / "long_classes.npy"), expected)

    np.save(tmp_path / "one.npy", series[:, :1])
    message = _refused(["-c", str(tmp_path / "unet.ckpt"), "-i", str(tmp_path / "one.npy")], capsys, tmp_path / "r")
    assert message.endswith(f"{tmp_path / 'one.npy'}: series of 1 channels, but the model takes 2")


def test_compile_refused_for_series_not_ignored(
    series_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = write_ts(tmp_path / "new.ts", *waves(2, seed=3))
    message = _refused(["-c", str(series_checkpoint), "-i", str(file), "--compile"], capsys, tmp_path / "refused")
    assert message.endswith(f"{file}: --compile does not apply to series and table rows")
    message = _refused(["-c", str(series_checkpoint), "-i", str(file), "--format", "tif"], capsys, tmp_path / "refused")
    assert message.endswith(f"{file}: --format does not apply to series and table rows")


def test_format_refused_for_per_step_series_and_volumes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    series = np.random.default_rng(0).normal(size=(2, 2, 16)).astype(np.float32)
    np.save(tmp_path / "s.npy", series)
    _segmentation_checkpoint(tmp_path / "s.ckpt", "test_pixel_seg", {"in_channels": 2, "spatial_dims": 1}, [0.0, 0.0])
    argv = ["-c", str(tmp_path / "s.ckpt"), "-i", str(tmp_path / "s.npy"), "--format", "png"]
    message = _refused(argv, capsys, tmp_path / "r")
    assert message.endswith(f"{tmp_path / 's.npy'}: --format png is for rasters; per-step series are written as .npy")
    volume = tmp_path / "v" / "scan.npy"
    volume.parent.mkdir()
    np.save(volume, np.random.default_rng(1).normal(size=(8, 8, 8, 2)).astype(np.float32))
    _segmentation_checkpoint(tmp_path / "v.ckpt", "test_pixel_seg", {"in_channels": 2, "spatial_dims": 3}, [0.0, 0.0])
    message = _refused(["-c", str(tmp_path / "v.ckpt"), "-i", str(volume), "--format", "tif"], capsys, tmp_path / "r")
    assert message.endswith(f"{volume}: --format tif is for rasters; volumes are written as their input")
    assert main(["predict", "-c", str(tmp_path / "v.ckpt"), "-i", str(volume), "-o", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "scan_class.npy").exists()


def test_an_infinite_series_cell_is_refused_as_in_training(tmp_path: Path) -> None:
    from mantis.inference.errors import InputError
    from mantis.inference.series_inputs import read_series_inputs

    table = tmp_path / "s.csv"
    table.write_text("label,t0,t1,t2\na,1.0,?,3.0\nb,1.0,inf,3.0\n")
    settings = {"series_length": 3, "unequal_length": "resample", "label_column": "label"}
    with pytest.raises(InputError, match=r"s\.csv: row 3, column 't1': 'inf' is not a number$"):
        read_series_inputs(table, settings, 1, None, None)
    table.write_text("label,t0,t1,t2\na,1.0,?,3.0\n")  # '?' is a gap, filled along time
    _, x = read_series_inputs(table, settings, 1, None, None)
    np.testing.assert_allclose(x, [[[1.0, 2.0, 3.0]]])


def test_several_table_checkpoints_average_their_probabilities(
    series_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(40, 2))
    train = _write_table(tmp_path / "train.csv", ["a", "b", "y"], [[*v, "p" if v.sum() > 0 else "n"] for v in x])
    model = {"class_path": "mantis.tasks.ClassificationTask", "init_args": {"model": "mlp", "model_kwargs": {}}}
    data = {"class_path": "mantis.data.TabularDataModule", "init_args": {"path": str(train), "target": "y"}}
    members = []
    for seed in (0, 1):
        folder = tmp_path / f"m{seed}"
        folder.mkdir()
        model["init_args"]["model_kwargs"] = {"hidden": [4 + 4 * seed]}  # two different networks
        members.append(_fit(folder, model, data))
    new = rng.normal(size=(6, 2))
    table = _write_table(tmp_path / "new.csv", ["a", "b"], new)
    out = tmp_path / "out"
    argv = ["predict", "-c", *map(str, members), "-i", str(table), "-o", str(out), "--no-progress"]
    assert main(argv) == 0
    expected = np.mean(
        [_softmax(_forward(net, (new - hp["band_mean"]) / hp["band_std"])) for net, hp in map(_network, members)], 0
    )
    header, rows = _read_csv(out / "new_predictions.csv")
    assert header == ["id", "class", "prob_n", "prob_p"]
    np.testing.assert_allclose([[float(v) for v in r[2:]] for r in rows], expected, rtol=1e-5, atol=1e-6)
    assert [r[1] for r in rows] == [["n", "p"][k] for k in expected.argmax(1)]
    message = _refused(["-c", str(members[0]), str(series_checkpoint), "-i", str(table)], capsys, tmp_path / "no")
    assert message.endswith(
        f"{series_checkpoint}: its data kind (series) differs from {members[0]}'s (table); cannot average"
    )
