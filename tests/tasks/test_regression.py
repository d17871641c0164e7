"""Regression through `mantis fit`: scores against scikit-learn on the same predictions, target scaling kept in the
checkpoint, and a task that does not suit the data refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from mantis.cli import main
from mantis.data.tabular import TabularDataModule
from mantis.models import create_model
from mantis.tasks.regression import RegressionScores

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_streamed_scores_equal_scikit_learn_on_all_samples() -> None:
    rng = np.random.default_rng(3)
    target = rng.normal(50.0, 20.0, size=(97, 2))
    preds = target + rng.normal(0.0, 8.0, size=target.shape) + 3.0
    metric = RegressionScores(2)
    for start in range(0, 97, 10):  # batches of 10 and a last one of 7
        metric.update(torch.from_numpy(preds[start : start + 10]), torch.from_numpy(target[start : start + 10]))
    scores = {k: float(v) for k, v in metric.compute().items()}
    rmse = np.mean([np.sqrt(mean_squared_error(target[:, i], preds[:, i])) for i in range(2)])
    assert scores["rmse"] == pytest.approx(rmse, rel=1e-9)
    assert scores["mae"] == pytest.approx(mean_absolute_error(target, preds), rel=1e-9)
    assert scores["mse"] == pytest.approx(mean_squared_error(target, preds), rel=1e-9)
    assert scores["r2"] == pytest.approx(r2_score(target, preds), rel=1e-9)


def _config(tmp_path: Path, **data: object) -> Path:
    config = yaml.safe_load((CONFIGS / "tabular_diabetes.yaml").read_text())
    config["trainer"] = {"max_epochs": 25, "accelerator": "cpu", "enable_progress_bar": False}
    config["data"]["init_args"].update(data)
    config["run_dir"] = str(tmp_path / "run")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_diabetes_scores_are_those_of_the_checkpoints_predictions(tmp_path: Path) -> None:
    assert main(["fit", "--config", str(_config(tmp_path)), "--test_after_fit", "true"]) == 0
    record = json.loads((tmp_path / "run" / "test_metrics.json").read_text())
    assert record["task"] == "regression" and record["model_kwargs"]["num_classes"] == 1

    # the network rebuilt from the checkpoint alone, as inference does, on the same test rows
    data = TabularDataModule(sklearn_dataset="diabetes", task="regression")
    checkpoint = torch.load(record["checkpoint"], map_location="cpu", weights_only=True)
    hp = checkpoint["hyper_parameters"]
    train_target = data._targets["train"][:, 0]
    np.testing.assert_allclose(hp["target_mean"], [train_target.mean()], rtol=1e-5)
    np.testing.assert_allclose(hp["target_std"], [train_target.std()], rtol=1e-5)
    network = create_model(hp["model"], **hp["model_kwargs"])
    network.load_state_dict({k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items()})
    network.eval()
    x = (data._features["test"] - np.float32(hp["band_mean"])) / np.float32(hp["band_std"])
    with torch.no_grad():
        output = network(torch.from_numpy(x.astype(np.float32))).numpy()[:, 0]
    preds = output * hp["target_std"][0] + hp["target_mean"][0]  # back in the target's units
    truth = data._targets["test"][:, 0]
    metrics = record["metrics"]
    assert metrics["rmse"] == pytest.approx(np.sqrt(mean_squared_error(truth, preds)), rel=1e-4)
    assert metrics["mae"] == pytest.approx(mean_absolute_error(truth, preds), rel=1e-4)
    assert metrics["r2"] == pytest.approx(r2_score(truth, preds), rel=1e-4)
    assert metrics["r2"] > 0.3  # predicting the training mean scores about 0

    # mantis test with the checkpoint alone gives the same scores
    args = ["test", "--config", str(tmp_path / "c.yaml"), "--ckpt_path", record["checkpoint"]]
    assert main([*args, "--run_dir", str(tmp_path / "t")]) == 0
    again = json.loads((tmp_path / "t" / "test_metrics.json").read_text())["metrics"]
    assert again["rmse"] == pytest.approx(metrics["rmse"], rel=1e-5)


def test_a_classification_task_on_regression_rows_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path)
    args = ["fit", "--config", str(config), "--model.class_path", "mantis.tasks.ClassificationTask"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "ClassificationTask needs one class per sample ('label')" in err[0]
    assert "TabularDataModule gives 'target' batches" in err[0]


def test_target_scaling_comes_from_the_data_unless_the_checkpoint_gave_it() -> None:
    from lightning import Trainer

    from mantis.tasks import RegressionTask

    data = TabularDataModule(sklearn_dataset="diabetes", task="regression")
    kwargs = {"model_kwargs": {"in_channels": 10, "hidden": [4]}, "band_mean": data.mean, "band_std": data.std}
    trainer = Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    fresh = RegressionTask("mlp", **kwargs)
    trainer.validate(fresh, datamodule=data)
    assert fresh.target_mean.tolist() == pytest.approx(data.target_mean)
    assert fresh.hparams["target_std"] == pytest.approx(data.target_std)
    given = RegressionTask("mlp", target_mean=[7.0], target_std=[3.0], **kwargs)
    trainer.validate(given, datamodule=data)
    assert given.target_mean.tolist() == [7.0] and given.target_std.tolist() == [3.0]
    x = torch.randn(5, 10)
    torch.testing.assert_close(given.predict_step({"image": x}), given.model(x) * 3.0 + 7.0)
