"""Object-level scores (`mantis.objects`) and `mantis evaluate`: hand-counted cases and an independent count."""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from mantis.cli import main
from mantis.io.raster import write_image
from mantis.objects import label_objects, match_objects


def _box(mask: np.ndarray, r0: int, r1: int, c0: int, c1: int) -> None:
    mask[r0:r1, c0:c1] = True


def test_hand_counted_case() -> None:
    truth = np.zeros((20, 20), bool)
    pred = np.zeros((20, 20), bool)
    _box(truth, 0, 4, 0, 4)  # A: 16 px, predicted as 0:4 x 0:5 (20 px) -> IoU 16/20 = 0.8: found
    _box(pred, 0, 4, 0, 5)
    _box(truth, 10, 14, 10, 14)  # B: 16 px, predicted 12:16 x 12:16 -> overlap 4, union 28, IoU 0.14: missed
    _box(pred, 12, 16, 12, 16)
    _box(truth, 0, 2, 17, 19)  # C: missed entirely
    _box(pred, 17, 19, 0, 2)  # a false building
    counts = match_objects(pred, truth)
    assert (counts.tp, counts.fp, counts.fn) == (1, 2, 2)
    scores = counts.scores()
    assert scores["precision"] == pytest.approx(1 / 3) and scores["recall"] == pytest.approx(1 / 3)
    assert scores["mean_matched_iou"] == pytest.approx(0.8)
    assert match_objects(pred, truth, iou_threshold=0.1).tp == 2  # B counts at a lower threshold
    assert match_objects(pred, truth, min_area=5).fp == 1  # the 4-pixel false building is left out...
    assert match_objects(pred, truth, min_area=5).fn == 1  # ...and so is the 4-pixel C: only B is missed
    ignore = np.zeros_like(truth)
    ignore[17:19, 0:2] = True  # unlabelled where the false building is
    assert match_objects(pred, truth, ignore=ignore).fp == 1


def test_connectivity() -> None:
    diagonal = np.eye(4, dtype=bool)
    assert label_objects(diagonal, 8)[1] == 1 and label_objects(diagonal, 4)[1] == 4
    # volumes: two cubes that touch at one corner are one object for 8 (26 neighbours), two for 4 (faces)
    volume = np.zeros((6, 6, 6), dtype=bool)
    volume[:2, :2, :2] = volume[2:4, 2:4, 2:4] = True
    volume[5, 5, 5] = True
    assert label_objects(volume, 8)[1] == 2 and label_objects(volume, 4)[1] == 3
    assert label_objects(volume, 4, min_area=2)[1] == 2  # the single voxel dropped
    # series: runs of steps
    assert label_objects(np.array([1, 1, 0, 1, 0, 0, 1, 1, 1], dtype=bool), 8)[1] == 3


def test_volume_objects_are_matched_by_voxel_iou() -> None:
    from mantis.object_scores import ObjectScores

    truth = np.zeros((2, 8, 8, 8), dtype=np.int64)
    truth[0, :4, :4, :4] = 1  # a 64-voxel cube
    truth[1, 4:, 4:, 4:] = 1
    pred = truth.copy()
    pred[0, :4, :4, :2] = 0  # half the first cube: IoU 0.5, a match
    pred[1, 4:, 4:, 4:7] = 0  # a quarter of the second: IoU 0.25, a miss and a false object
    scores = ObjectScores([1], ["background", "thing"], None)
    scores.update(torch.from_numpy(pred), torch.from_numpy(truth))
    got = scores.compute()
    assert [int(got[f"object_{k}_thing"]) for k in ("tp", "fp", "fn")] == [1, 1, 1]
    assert float(got["object_iou_thing"]) == pytest.approx(0.5)


def _flood_labels(mask: np.ndarray) -> list[set[tuple[int, int]]]:
    """Independent 8-connected components: breadth-first flood fill over pixel sets."""
    seen: set[tuple[int, int]] = set()
    objects = []
    for start in zip(*np.nonzero(mask)):
        start = (int(start[0]), int(start[1]))
        if start in seen:
            continue
        region, queue = set(), deque([start])
        seen.add(start)
        while queue:
            r, c = queue.popleft()
            region.add((r, c))
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    n = (r + dr, c + dc)
                    if 0 <= n[0] < mask.shape[0] and 0 <= n[1] < mask.shape[1] and mask[n] and n not in seen:
                        seen.add(n)
                        queue.append(n)
        objects.append(region)
    return objects


def test_agrees_with_an_independent_count_on_random_masks() -> None:
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(40):
        truth = rng.random((24, 24)) < rng.uniform(0.05, 0.4)
        pred = truth.copy()
        flip = rng.random((24, 24)) < rng.uniform(0.0, 0.3)
        pred[flip] = ~pred[flip]
        true_objects, pred_objects = _flood_labels(truth), _flood_labels(pred)
        # IoU > 0.5 pairs are unique, so counting them is the matching (no tie at exactly 0.5 here)
        pairs = [
            (len(t & p) / len(t | p), i, j) for i, t in enumerate(true_objects) for j, p in enumerate(pred_objects)
        ]
        used_true, used_pred = set(), set()  # greedy one-to-one matching, highest IoU first
        for iou, i, j in sorted(pairs, key=lambda x: -x[0]):
            if iou >= 0.5 and i not in used_true and j not in used_pred:
                used_true.add(i)
                used_pred.add(j)
        tp = len(used_true)
        checked += tp > 0
        counts = match_objects(pred, truth)
        assert (counts.tp, counts.fp, counts.fn) == (tp, len(pred_objects) - tp, len(true_objects) - tp)
    assert checked >= 20


def test_evaluate_folders_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(1)
    preds, labels = tmp_path / "pred", tmp_path / "label"
    all_true, all_pred = [], []
    for name in ("a", "b"):
        truth = np.zeros((32, 32), np.uint8)
        truth[4:12, 4:12] = 1
        truth[20:28, 16:30] = 1
        pred = truth.copy()
        pred[rng.random((32, 32)) < 0.1] ^= 1
        write_image(labels / f"{name}.png", truth * 255)  # 0/255 reference masks
        write_image(preds / f"{name}_class.png", pred)
        write_image(preds / f"{name}_prob.png", np.zeros((2, 32, 32), np.uint8))  # not read
        all_true.append(truth.ravel())
        all_pred.append(pred.ravel())
    assert main(["evaluate", str(preds), str(labels), "--no-progress", "--class-names", "none", "change"]) == 0
    record = json.loads((preds / "evaluation.json").read_text())
    expected = f1_score(np.concatenate(all_true), np.concatenate(all_pred))
    assert record["files"] == 2 and record["pixel"]["f1_change"] == pytest.approx(expected)
    assert record["objects"]["change"]["objects_true"] == 4
    assert "change" in capsys.readouterr().out

    (labels / "c.png").write_bytes((labels / "a.png").read_bytes())  # a mask without its prediction
    assert main(["evaluate", str(preds), str(labels), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"mantis evaluate: error: {labels / 'c.png'}: has no prediction in")


def test_evaluate_folders_of_label_volumes(tmp_path: Path) -> None:
    import nibabel as nib

    from mantis.evaluate import evaluate_folders

    preds, labels = tmp_path / "pred", tmp_path / "label"
    preds.mkdir()
    labels.mkdir()
    truth = np.zeros((10, 10, 10), np.uint8)
    truth[1:5, 1:5, 1:5] = 1  # a 64-voxel cube of class 1
    truth[6:9, 6:9, 6:9] = 2  # a 27-voxel cube of class 2
    pred = truth.copy()
    pred[1:5, 1:5, 1:3] = 0  # half of the first cube: IoU 0.5, still a match
    pred[0, 9, 9] = 2  # one false voxel of class 2: a false object
    np.save(labels / "scan.npy", truth)
    np.save(preds / "scan_class.npy", pred)
    nib.save(nib.Nifti1Image(truth, np.eye(4)), labels / "other.nii.gz")  # NIfTI, paired by its volume stem
    nib.save(nib.Nifti1Image(truth, np.eye(4)), preds / "other_class.nii.gz")
    record = evaluate_folders(preds, labels, num_classes=3, class_names=["bg", "one", "two"], progress=False)
    assert record["files"] == 2
    true_all, pred_all = np.concatenate([truth.ravel()] * 2), np.concatenate([pred.ravel(), truth.ravel()])
    expected = f1_score(true_all, pred_all, labels=[1], average=None)[0]
    assert record["pixel"]["f1_one"] == pytest.approx(expected)
    assert (record["objects"]["one"]["tp"], record["objects"]["one"]["fp"], record["objects"]["one"]["fn"]) == (2, 0, 0)
    assert (record["objects"]["two"]["tp"], record["objects"]["two"]["fp"]) == (2, 1)  # the stray voxel
