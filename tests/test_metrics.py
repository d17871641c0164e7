"""Confusion-matrix metrics against scikit-learn on hand-built cases."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from mantis.metrics import (
    ConfusionScores,
    class_scores,
    confusion_matrix,
    scores_from_confusion,
    scores_to_json,
)


def _sk_scores(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> dict[str, float]:
    labels = list(range(k))
    kw = {"labels": labels, "average": None, "zero_division": np.nan}
    out: dict[str, float] = {"accuracy": skm.accuracy_score(y_true, y_pred)}
    per = {
        "precision": skm.precision_score(y_true, y_pred, **kw),
        "recall": skm.recall_score(y_true, y_pred, **kw),
        "f1": skm.f1_score(y_true, y_pred, **kw),
        # jaccard_score has no zero_division=nan; its only 0/0 is a class absent from truth and prediction
        "iou": np.where(
            [((y_true == c) | (y_pred == c)).any() for c in labels],
            skm.jaccard_score(y_true, y_pred, labels=labels, average=None, zero_division=0),
            np.nan,
        ),
    }
    per["mcc"] = np.array(
        [
            skm.matthews_corrcoef(y_true == c, y_pred == c) if ((y_true == c) | (y_pred == c)).any() else np.nan
            for c in labels
        ]
    )
    for name, values in per.items():
        for c in labels:
            out[f"{name}_{c}"] = float(values[c])
        out[f"{name}_macro"] = float(np.nanmean(values)) if not np.isnan(values).all() else math.nan
    return out


def _assert_match(ours: dict[str, torch.Tensor], ref: dict[str, float]) -> None:
    for key, expected in ref.items():
        got = float(ours[key])
        if math.isnan(expected):
            assert math.isnan(got), f"{key}: expected NaN, got {got}"
        else:
            assert got == pytest.approx(expected, abs=1e-12), key


CASES = {
    # hand-built: binary change masks with a few errors
    "binary": (np.array([0, 0, 1, 1, 1, 0, 0, 1, 0, 0]), np.array([0, 1, 1, 1, 0, 0, 0, 1, 0, 0]), 2),
    # three classes, class 2 never predicted (precision 0/0 -> NaN, F1 defined = 0)
    "never_predicted": (np.array([0, 1, 2, 2, 1, 0]), np.array([0, 1, 1, 0, 1, 0]), 3),
    # class 2 absent from truth and prediction: all its scores NaN, excluded from macro means
    "absent_class": (np.array([0, 1, 1, 0, 0, 1]), np.array([0, 1, 0, 0, 1, 1]), 3),
    # truth has no change, model predicts some: recall 0/0 -> NaN, MCC denominator 0 -> 0
    "no_positive_truth": (np.array([0, 0, 0, 0]), np.array([0, 1, 0, 0]), 2),
    # perfect prediction
    "perfect": (np.array([0, 1, 2, 3, 3, 2]), np.array([0, 1, 2, 3, 3, 2]), 4),
    # everything wrong
    "all_wrong": (np.array([0, 0, 1, 1]), np.array([1, 1, 0, 0]), 2),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_functional_matches_sklearn(case: str) -> None:
    y_true, y_pred, k = CASES[case]
    cm = confusion_matrix(torch.from_numpy(y_pred)[None], torch.from_numpy(y_true)[None], k)
    np.testing.assert_array_equal(cm.numpy(), skm.confusion_matrix(y_true, y_pred, labels=list(range(k))))
    _assert_match(scores_from_confusion(cm), _sk_scores(y_true, y_pred, k))


def test_random_multiclass_matches_sklearn() -> None:
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 5, size=(4, 17, 13))
    y_pred = np.where(rng.random(y_true.shape) < 0.6, y_true, rng.integers(0, 5, size=y_true.shape))
    ours = class_scores(torch.from_numpy(y_pred), torch.from_numpy(y_true), 5)
    _assert_match(ours, _sk_scores(y_true.ravel(), y_pred.ravel(), 5))


def test_scores_from_probabilities_take_argmax() -> None:
    probs = torch.tensor([[[0.9, 0.2, 0.4], [0.1, 0.8, 0.6]]])  # 1 x K=2 x S=3 -> ids [0, 1, 1]
    target = torch.tensor([[0, 1, 0]])
    s = class_scores(probs, target, 2, class_names=["no_change", "change"])
    assert float(s["precision_change"]) == pytest.approx(0.5)
    assert float(s["recall_change"]) == pytest.approx(1.0)
    assert float(s["f1_change"]) == pytest.approx(2 / 3)
    assert float(s["iou_change"]) == pytest.approx(0.5)
    assert float(s["accuracy"]) == pytest.approx(2 / 3)


def test_ignore_index_drops_pixels() -> None:
    target = torch.tensor([[0, 1, 255, 1, 255]])
    preds = torch.tensor([[0, 1, 1, 0, 0]])
    cm = confusion_matrix(preds, target, 2, ignore_index=255)
    assert cm.tolist() == [[1, 0], [1, 1]]
    y_true, y_pred = np.array([0, 1, 1]), np.array([0, 1, 0])
    _assert_match(class_scores(preds, target, 2, ignore_index=255), _sk_scores(y_true, y_pred, 2))


def test_out_of_range_truth_is_an_error() -> None:
    with pytest.raises(ValueError, match="class id 255, outside 0..1"):
        confusion_matrix(torch.tensor([[0, 1]]), torch.tensor([[0, 255]]), 2)


def test_stateful_metric_accumulates_batches() -> None:
    rng = np.random.default_rng(1)
    y_true = rng.integers(0, 3, size=(6, 8, 8))
    y_pred = np.where(rng.random(y_true.shape) < 0.7, y_true, rng.integers(0, 3, size=y_true.shape))
    y_true[0, 0, :4] = 9  # ignored
    metric = ConfusionScores(3, ignore_index=9, class_names=["a", "b", "c"])
    for i in range(0, 6, 2):
        metric.update(torch.from_numpy(y_pred[i : i + 2]), torch.from_numpy(y_true[i : i + 2]))
    keep = y_true.ravel() != 9
    ref = _sk_scores(y_true.ravel()[keep], y_pred.ravel()[keep], 3)
    ours = metric.compute()
    for key, value in ref.items():
        renamed = key.replace("_0", "_a").replace("_1", "_b").replace("_2", "_c")
        assert float(ours[renamed]) == pytest.approx(value, abs=1e-12), key
    assert float(ours["support_a"]) == (y_true.ravel()[keep] == 0).sum()
    metric.reset()
    assert int(metric.confmat.sum()) == 0


def test_all_nan_macro_and_json_null() -> None:
    cm = torch.zeros(2, 2, dtype=torch.long)
    s = scores_from_confusion(cm)
    assert math.isnan(float(s["f1_macro"])) and math.isnan(float(s["accuracy"]))
    text = json.dumps(scores_to_json(s), allow_nan=False)
    assert json.loads(text)["f1_macro"] is None
