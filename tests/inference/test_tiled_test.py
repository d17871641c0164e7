"""``mantis test --test_window``: whole test rasters scored through the tiled predictor of ``mantis predict``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from mantis.cli import main
from mantis.inference.predict import UINT8_NODATA
from mantis.inference.spec import WindowSpec
from mantis.inference.tiled_test import TiledTest
from mantis.io.errors import DataError
from tests.tasks.folders import cd_config, make_cd_folder, write_config

from .conftest import PixelChange, write_geotiff


def _pixel_and_object_scores(record: dict[str, Any]) -> dict[str, Any]:
    """``mantis evaluate``'s JSON in the key names of ``test_metrics.json``."""
    out: dict[str, Any] = dict(record["pixel"])
    for name in record["class_names"]:
        scores = record["objects"].get(name)
        if scores is None:
            continue
        for key in ("tp", "fp", "fn", "precision", "recall", "f1"):
            out[f"object_{key}_{name}"] = scores[key]
    return out


def test_tiled_test_scores_equal_predict_then_evaluate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "levir"
    make_cd_folder(data / "train", count=4, size=32)
    make_cd_folder(data / "test", count=2, size=72)  # larger than the 32-pixel window, not a multiple of it
    run = tmp_path / "run"
    config = cd_config(data, run)
    config["model"]["init_args"]["lr"] = 0.02  # two steps away from a one-class network
    path = write_config(tmp_path / "cd.yaml", config)
    assert main(["fit", "--config", str(path)]) == 0
    ckpt = run / "checkpoints" / "last.ckpt"

    window = ["--test_window", "{window: 32, stride: 16, blend: gaussian, batch_size: 3}"]
    assert main(["test", "--config", str(path), "--ckpt_path", str(ckpt), *window]) == 0
    tested = json.loads((run / "test_metrics.json").read_text())["metrics"]

    out = tmp_path / "predicted"
    flags = ["--window", "32", "--stride", "16", "--blend", "gaussian", "--batch-size", "3", "--no-progress"]
    assert (
        main(
            [
                "predict",
                "-c",
                str(ckpt),
                "-i",
                str(data / "test" / "A"),
                str(data / "test" / "B"),
                "-o",
                str(out),
                *flags,
            ]
        )
        == 0
    )
    names = ["--class-names", "no_change", "change", "--no-progress"]
    assert main(["evaluate", str(out), str(data / "test" / "label"), *names]) == 0
    evaluated = _pixel_and_object_scores(json.loads((out / "evaluation.json").read_text()))

    assert evaluated["support_change"] + evaluated["support_no_change"] == 2 * 72 * 72  # whole rasters scored
    assert evaluated["object_tp_change"] + evaluated["object_fp_change"] > 0  # the network finds changes
    shared = sorted(set(evaluated) & set(tested))
    assert {"f1_change", "iou_macro", "mcc_change", "object_f1_change", "object_fp_change"} <= set(shared)
    assert {k: tested[k] for k in shared} == {k: evaluated[k] for k in shared}
    assert "loss" not in tested  # no multitask targets on whole rasters: no test loss claimed

    # the default protocol (windows of patch_size) is another one: it counts the overlapping border windows twice
    assert main(["test", "--config", str(path), "--ckpt_path", str(ckpt)]) == 0
    windowed = json.loads((run / "test_metrics.json").read_text())["metrics"]
    assert windowed["support_change"] + windowed["support_no_change"] > 2 * 72 * 72


def test_tiled_test_step_is_the_whole_image_forward_and_leaves_nodata_out(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    # A per-pixel network's receptive field fits any window: tiles blended must equal one forward pass.

    model = PixelChange().eval()
    a = rng.integers(1, 255, (3, 45, 38), dtype=np.uint8)
    b = rng.integers(1, 255, (3, 45, 38), dtype=np.uint8)
    a[:, 5:9, 7:20] = 0  # no value in date 1 there
    paths = (str(write_geotiff(tmp_path / "a.tif", a, nodata=0)), str(write_geotiff(tmp_path / "b.tif", b, nodata=0)))
    task = _FakeTask(model)
    mask = torch.from_numpy(rng.integers(0, 2, (1, 45, 38)))
    ids, truth = TiledTest(WindowSpec(window=16, stride=6, blend="linear"))(task, {"raster_paths": paths, "mask": mask})

    with torch.no_grad():
        whole = model(*(torch.from_numpy(x.astype(np.float32) / 255)[None] for x in (a, b)))[0].argmax(0)
    valid = np.ones((45, 38), bool)
    valid[5:9, 7:20] = False
    assert torch.equal(ids[0][valid], whole[valid]) and bool((ids[0][~valid] == UINT8_NODATA).all())
    assert bool((truth[0][~valid] == 255).all()) and torch.equal(truth[0][valid], mask[0][valid])


class _FakeTask:
    """What :class:`TiledTest` reads of a task: hyper-parameters, the network, its device, ignore_index."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.device = torch.device("cpu")
        self.ignore_index = 255
        self.hparams = {"model": "test_pixel_change", "model_kwargs": {"in_channels": 3}, "task": "change_detection"}


def test_nodata_without_an_ignore_index_is_refused_in_words(tmp_path: Path, rng: np.random.Generator) -> None:
    a = rng.integers(1, 255, (3, 20, 20), dtype=np.uint8)
    a[:, :4, :4] = 0
    b = rng.integers(1, 255, (3, 20, 20), dtype=np.uint8)
    paths = (str(write_geotiff(tmp_path / "a.tif", a, nodata=0)), str(write_geotiff(tmp_path / "b.tif", b)))
    task = _FakeTask(PixelChange().eval())
    task.ignore_index = None  # type: ignore[assignment]
    mask = torch.from_numpy(rng.integers(0, 2, (1, 20, 20)))
    with pytest.raises(DataError, match=r"a\.tif.*16 pixels without a value .* ignore_index is null"):
        TiledTest(WindowSpec(window=16))(task, {"raster_paths": paths, "mask": mask})
