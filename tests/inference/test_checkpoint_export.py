"""Checkpoints load without unpickling code; export directories, ONNX and .pt2 reproduce the model."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

import mantis
from mantis.inference import (
    ExportSpec,
    InputError,
    ModelEnsemble,
    export_model,
    export_onnx,
    export_program,
    load_model,
    load_models,
    load_pretrained,
    save_pretrained,
)
from mantis.inference.checkpoint import ModelMeta

from .conftest import PixelChange, PixelSeg, make_ckpt


def _seg(seed: int) -> PixelSeg:
    torch.manual_seed(seed)
    return PixelSeg(in_channels=3, num_classes=3).eval()


def test_ckpt_roundtrip_strips_prefix_and_reads_meta(tmp_path: Path) -> None:
    model = _seg(0)
    path = make_ckpt(
        tmp_path / "m.ckpt",
        model,
        "test_pixel_seg",
        "segmentation",
        in_channels=3,
        num_classes=3,
        band_mean=[1.0, 2.0, 3.0],
        band_std=[4.0, 5.0, 6.0],
    )
    loaded, meta = load_model(path)
    assert not loaded.training
    assert meta == ModelMeta(
        "test_pixel_seg", {"in_channels": 3, "num_classes": 3}, "segmentation", [1.0, 2.0, 3.0], [4.0, 5.0, 6.0]
    )
    x = torch.rand(1, 3, 5, 5)
    torch.testing.assert_close(loaded(x).segmentation, model(x).segmentation, rtol=0, atol=0)


class Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("pwned",))


def test_unsafe_or_foreign_checkpoints_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.save({"state_dict": {}, "hyper_parameters": {"model": Evil()}}, tmp_path / "evil.ckpt")
    with pytest.raises(InputError, match=r"evil\.ckpt: not a checkpoint that loads safely with weights_only"):
        load_model(tmp_path / "evil.ckpt")
    assert "pwned" not in capsys.readouterr().out
    torch.save({"weights": torch.zeros(1)}, tmp_path / "plain.pt")
    with pytest.raises(InputError, match=r"plain\.pt: not a Mantis checkpoint"):
        load_model(tmp_path / "plain.pt")
    with pytest.raises(InputError, match="no such checkpoint"):
        load_model(tmp_path / "missing.ckpt")
    bad = make_ckpt(
        tmp_path / "bad.ckpt", PixelSeg(3, 3), "test_pixel_seg", "segmentation", in_channels=3, num_classes=4
    )
    with pytest.raises(InputError, match=r"bad\.ckpt: weights do not fit the model"):
        load_model(bad)
    unknown = make_ckpt(tmp_path / "u.ckpt", PixelSeg(3, 3), "no_such_model", "segmentation")
    with pytest.raises(InputError, match=r"u\.ckpt: cannot build model 'no_such_model'"):
        load_model(unknown)


def test_export_dir_loads_in_one_line(tmp_path: Path) -> None:
    model = _seg(1)
    meta = ModelMeta("test_pixel_seg", {"in_channels": 3, "num_classes": 3})
    save_pretrained(model, meta, tmp_path / "export")
    config = json.loads((tmp_path / "export" / "config.json").read_text())
    assert config["model"] == "test_pixel_seg" and config["task"] == "segmentation"
    again = load_pretrained(tmp_path / "export")
    x = torch.rand(2, 3, 4, 4)
    torch.testing.assert_close(again(x).distance, model(x).distance, rtol=0, atol=0)
    (tmp_path / "export" / "model.safetensors").unlink()
    with pytest.raises(InputError, match="not an export directory"):
        load_model(tmp_path / "export")


def test_ensemble_averages_every_field_and_checks_compatibility(tmp_path: Path) -> None:
    a, b = _seg(2), _seg(3)
    pa = make_ckpt(tmp_path / "a.ckpt", a, "test_pixel_seg", "segmentation", in_channels=3, num_classes=3)
    pb = make_ckpt(tmp_path / "b.ckpt", b, "test_pixel_seg", "segmentation", in_channels=3, num_classes=3)
    ens, meta = load_models([pa, pb])
    assert isinstance(ens, ModelEnsemble) and meta.in_channels == 3
    x = torch.rand(1, 3, 6, 6)
    out, oa, ob = ens(x), a(x), b(x)
    for name in ("segmentation", "boundary", "distance"):
        torch.testing.assert_close(getattr(out, name), (getattr(oa, name) + getattr(ob, name)) / 2)
    other = make_ckpt(
        tmp_path / "c.ckpt",
        PixelSeg(3, 3),
        "test_pixel_seg",
        "segmentation",
        in_channels=3,
        num_classes=3,
        band_mean=[0, 0, 0],
        band_std=[1, 1, 1],
    )
    with pytest.raises(InputError, match=r"c\.ckpt: band_mean .* differs from .*a\.ckpt's None"):
        load_models([pa, other])


def test_onnx_and_pt2_match_pytorch(tmp_path: Path) -> None:
    torch.manual_seed(4)
    model = PixelChange(3, 2).eval()
    meta = ModelMeta("test_pixel_change", {"in_channels": 3, "num_classes": 2}, "change_detection")
    written = export_model(model, meta, tmp_path, window=8, batch_size=2)
    assert set(written) == {"safetensors", "onnx", "pt2"}
    import onnxruntime as ort

    x1, x2 = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    session = ort.InferenceSession(str(written["onnx"]), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["x1", "x2"]
    assert [o.name for o in session.get_outputs()] == ["segmentation"]
    (seg,) = session.run(None, {"x1": x1.numpy(), "x2": x2.numpy()})
    with torch.no_grad():
        want = model(x1, x2)
    np.testing.assert_allclose(seg, want.numpy(), atol=1e-5)
    extra = {"fields.json": "", "config.json": ""}
    program = torch.export.load(str(written["pt2"]), extra_files=extra)
    assert json.loads(extra["fields.json"]) == ["segmentation"]
    torch.testing.assert_close(program.module()(x1, x2)[0], want, atol=1e-6, rtol=0)
    torch.testing.assert_close(load_pretrained(tmp_path)(x1, x2), want, atol=0, rtol=0)


@pytest.mark.parametrize("export", [export_onnx, export_program])
def test_exporters_check_every_field_and_refuse_a_difference(tmp_path: Path, export: Callable[..., float]) -> None:
    # Both exporters share the example inputs, the fields and the check loop against PyTorch on fresh inputs.
    model = _seg(6)
    meta = ModelMeta("test_pixel_seg", {"in_channels": 3, "num_classes": 3})
    worst = export(model, meta, tmp_path / "checked", ExportSpec(window=8, batch_size=2))
    assert 0.0 <= worst <= 1e-4
    with pytest.raises(InputError, match=r"fixed: output 'segmentation' differs from PyTorch by .* \(> -1\)"):
        export(model, meta, tmp_path / "fixed", window=8, atol=-1.0)


@pytest.mark.parametrize("export", [export_onnx, export_program, export_model])
def test_export_settings_are_one_spec_and_a_misspelt_keyword_is_named(
    tmp_path: Path, export: Callable[..., object]
) -> None:
    # A spec with keywords replacing its fields; a misspelt keyword stops before anything is written.
    assert ExportSpec.build(ExportSpec(window=8, atol=0.1), batch_size=3, window=[8, 16]) == ExportSpec(
        window=(8, 16), batch_size=3, atol=0.1
    )
    meta = ModelMeta("test_pixel_seg", {"in_channels": 3, "num_classes": 3})
    with pytest.raises(TypeError, match="unknown export option 'windw'; choose from atol, batch_size, "):
        export(_seg(0), meta, tmp_path / "out", windw=8)
    assert not (tmp_path / "out").exists()


def test_real_registry_model_from_ckpt(tmp_path: Path) -> None:
    # The team's registry: a real model saved and reloaded the way training and predict do it.
    kwargs = {"in_channels": 2, "num_classes": 2, "nf": 8, "depth": 2}
    torch.manual_seed(5)
    model = mantis.create_model("fractal_resunet", **kwargs).eval()
    path = make_ckpt(tmp_path / "f.ckpt", model, "fractal_resunet", "segmentation", **kwargs)
    loaded, _ = load_model(path)
    x = torch.rand(1, 2, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x).segmentation, model(x).segmentation, rtol=0, atol=0)


def test_checkpoint_saved_by_the_training_task(tmp_path: Path, rng: np.random.Generator) -> None:
    # The contract with mantis.tasks: what Lightning saves for a task, predict loads and runs.
    import lightning as L

    from mantis.tasks.change_detection import ChangeDetectionTask

    from .conftest import write_geotiff

    kwargs = {"in_channels": 3, "nf": 8, "depth": 2}
    task = ChangeDetectionTask("fractal_resnet_cd", kwargs, band_mean=[100.0] * 3, band_std=[50.0] * 3)
    trainer = L.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        max_epochs=0,
    )
    trainer.strategy.connect(task)
    trainer.save_checkpoint(tmp_path / "task.ckpt")
    model, meta = load_model(tmp_path / "task.ckpt")
    assert meta.task == "change_detection" and meta.in_channels == 3 and meta.band_mean == [100.0] * 3
    a = rng.integers(0, 255, (3, 24, 20), dtype=np.uint8)
    b = rng.integers(0, 255, (3, 24, 20), dtype=np.uint8)
    pa, pb = write_geotiff(tmp_path / "a.tif", a), write_geotiff(tmp_path / "b.tif", b)
    from mantis.inference import predict_raster

    out = predict_raster(tmp_path / "task.ckpt", (pa, pb), tmp_path / "out", window=16, progress=False)
    import rasterio

    with rasterio.open(out["class"]) as ds:
        assert ds.read(1).shape == (24, 20) and set(np.unique(ds.read(1))) <= {0, 1}


def test_a_dynamic_batch_export_runs_on_any_batch_size(tmp_path: Path) -> None:
    # The wrapper takes the dates as *inputs; the batch axis of each is one shared dimension.
    torch.manual_seed(6)
    model = PixelChange(3, 2).eval()
    meta = ModelMeta("test_pixel_change", {"in_channels": 3, "num_classes": 2}, "change_detection")
    export_onnx(model, meta, tmp_path / "m.onnx", window=8, batch_size=1, dynamic_batch=True)
    export_program(model, meta, tmp_path / "m.pt2", window=8, batch_size=1, dynamic_batch=True)
    import onnxruntime as ort

    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    program = torch.export.load(str(tmp_path / "m.pt2")).module()
    for n in (1, 3):
        x1, x2 = torch.rand(n, 3, 8, 8), torch.rand(n, 3, 8, 8)
        with torch.no_grad():
            want = model(x1, x2)
        (seg,) = session.run(None, {"x1": x1.numpy(), "x2": x2.numpy()})
        np.testing.assert_allclose(seg, want.numpy(), atol=1e-5)
        torch.testing.assert_close(program(x1, x2)[0], want, atol=1e-6, rtol=0)
