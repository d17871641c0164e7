"""Object scores in `mantis test` (`mantis.object_scores`): a hand-counted batch, and `mantis test` equal to
`mantis predict` + `mantis evaluate` on the same tiles."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mantis.cli import main
from mantis.object_scores import ObjectScores
from tests.tasks.folders import cd_config, make_cd_folder, write_config


def test_hand_counted_batch() -> None:
    truth = torch.zeros(2, 20, 20, dtype=torch.long)
    pred = torch.zeros(2, 20, 20, dtype=torch.long)
    truth[0, 0:4, 0:4] = 1  # found: predicted 0:4 x 0:5, IoU 16/20
    pred[0, 0:4, 0:5] = 1
    truth[0, 10:14, 10:14] = 1  # missed: predicted 12:16 x 12:16, IoU 4/28
    pred[0, 12:16, 12:16] = 1
    pred[0, 17:19, 0:2] = 1  # a false object
    truth[1, 5:9, 5:9] = 1  # second image: found exactly, and one missed object
    pred[1, 5:9, 5:9] = 1
    truth[1, 15:17, 15:17] = 1
    truth[1, 0:3, 15:18] = 255  # unlabelled: the prediction there is no object
    pred[1, 0:3, 15:18] = 1
    scores = torch.nn.functional.one_hot(pred, 2).permute(0, 3, 1, 2).float()  # B x K x H x W, as the task gives
    metric = ObjectScores([1], ["no_change", "change"], ignore_index=255)
    metric.update(scores[:1], truth[:1])
    metric.update(scores[1:], truth[1:])
    out = {k: float(v) for k, v in metric.compute().items()}
    assert (out["object_tp_change"], out["object_fp_change"], out["object_fn_change"]) == (2, 2, 2)
    assert out["object_precision_change"] == out["object_recall_change"] == out["object_f1_change"] == 0.5
    assert out["object_iou_change"] == pytest.approx((0.8 + 1.0) / 2)
    lenient = ObjectScores([1], ["no_change", "change"], iou_threshold=0.1)
    lenient.update(scores[:1], truth[:1])
    assert int(lenient.compute()["object_tp_change"]) == 2  # the shifted square counts at IoU 0.14
    empty = ObjectScores([1], ["no_change", "change"])
    empty.update(torch.zeros(1, 4, 4, dtype=torch.long), torch.zeros(1, 4, 4, dtype=torch.long))
    assert np.isnan(float(empty.compute()["object_f1_change"]))  # undefined, not 0 or 1


def test_mantis_test_equals_predict_then_evaluate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "levir"
    for split, count in (("train", 4), ("val", 2), ("test", 3)):
        make_cd_folder(data / split, count=count)
    run = tmp_path / "run"
    config = write_config(tmp_path / "cd.yaml", cd_config(data, run, batch_size=1))
    assert main(["fit", "--config", str(config)]) == 0
    ckpt = str(run / "checkpoints" / "last.ckpt")
    assert main(["test", "--config", str(config), "--ckpt_path", ckpt, "--run_dir", str(tmp_path / "t")]) == 0
    metrics = json.loads((tmp_path / "t" / "test_metrics.json").read_text())["metrics"]

    test = data / "test"
    pred = tmp_path / "pred"
    args = ["-c", ckpt, "-i", str(test / "A"), str(test / "B"), "-o", str(pred), "--window", "32", "--stride", "32"]
    assert main(["predict", *args, "--batch-size", "1", "--no-progress"]) == 0
    assert main(["evaluate", str(pred), str(test / "label"), "--class-names", "no_change", "change"]) == 0
    evaluation = json.loads((pred / "evaluation.json").read_text())
    capsys.readouterr()

    # the same class maps: every pixel score agrees...
    for key in ("f1_change", "iou_change", "mcc_change", "support_change", "accuracy"):
        assert metrics[key] == pytest.approx(evaluation["pixel"][key], abs=1e-9)
    # ...and so do the objects, counts as integers in the JSON
    objects = evaluation["objects"]["change"]
    assert objects["objects_true"] > 0
    for key in ("tp", "fp", "fn"):
        assert metrics[f"object_{key}_change"] == objects[key] and isinstance(metrics[f"object_{key}_change"], int)
    for mine, theirs in (("precision", "precision"), ("recall", "recall"), ("f1", "f1"), ("iou", "mean_matched_iou")):
        expected = objects[theirs]
        assert metrics[f"object_{mine}_change"] == (None if expected is None else pytest.approx(expected))


def test_evaluate_refuses_two_predictions_or_masks_of_one_stem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mantis.io.raster import write_image

    pred, label = tmp_path / "pred", tmp_path / "label"
    truth = np.zeros((8, 8), np.uint8)
    truth[2:5, 2:5] = 1
    write_image(label / "x.png", truth * 255)
    write_image(pred / "x_class.png", truth)
    write_image(pred / "x_class.tif", 1 - truth)  # a second run in another format: which one is scored?
    capsys.readouterr()
    assert main(["evaluate", str(pred), str(label), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mantis evaluate: error: ")
    assert "x_class" in err[0] and "same stem" in err[0]
    assert not (pred / "evaluation.json").exists()

    (pred / "x_class.tif").unlink()
    write_image(label / "x.tif", truth * 255)  # two masks of one stem: one prediction would count twice
    assert main(["evaluate", str(pred), str(label), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "same stem" in err[0]
    (label / "x.tif").unlink()
    assert main(["evaluate", str(pred), str(label), "--no-progress"]) == 0
