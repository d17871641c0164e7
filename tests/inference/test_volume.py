"""Sliding-window prediction over volume files: equal to the whole-volume forward pass where the receptive field
allows, NIfTI affine and spacing kept, normalisation from the checkpoint, one-line refusals, atomic outputs."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from torch import nn

from mantis.inference.checkpoint import ModelMeta
from mantis.inference.errors import InputError
from mantis.inference.predict import predict_folder, predict_raster


class PointwiseVolume(nn.Module):
    """A 1x1x1 network: every voxel's output depends on that voxel alone (receptive field 1)."""

    def __init__(self, in_channels: int = 2, num_classes: int = 3) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.hidden = nn.Conv3d(in_channels, 6, 1)
        self.head = nn.Conv3d(6, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.head(torch.tanh(self.hidden(x))), dim=1)


class ContextVolume(nn.Module):
    """Two 3x3x3 convolutions (receptive field 5): window edges see mirrored voxels the whole volume lacks."""

    def __init__(self, in_channels: int = 2, num_classes: int = 3) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Conv3d(in_channels, 6, 3, padding=1, padding_mode="reflect")
        self.b = nn.Conv3d(6, num_classes, 3, padding=1, padding_mode="reflect")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.b(torch.tanh(self.a(x))), dim=1)


def _volume(shape: tuple[int, int, int] = (20, 26, 18), channels: int = 2) -> np.ndarray:
    return np.random.default_rng(0).normal(5.0, 2.0, (*shape, channels)).astype(np.float32)  # X x Y x Z x C


def _whole(model: nn.Module, data: np.ndarray, mean: float, std: float) -> np.ndarray:
    x = torch.from_numpy((np.moveaxis(data, -1, 0) - mean) / std)[None]
    with torch.no_grad():
        return model.eval()(x)[0].numpy()  # K x X x Y x Z


META = ModelMeta(model=None, band_mean=[5.0, 5.0], band_std=[2.0, 2.0], model_kwargs={"in_channels": 2})


def test_windows_over_a_larger_volume_equal_the_whole_forward_pass(tmp_path: Path) -> None:
    data = _volume()
    np.save(tmp_path / "scan.npy", data)
    model = PointwiseVolume()
    written = predict_raster(
        model.eval(), tmp_path / "scan.npy", tmp_path / "out", META, window=8, overlap=0.5,
        outputs=["class", "prob"], prob_dtype="float32", progress=False, batch_size=3,
    )  # fmt: skip
    assert sorted(written) == ["class", "prob"] and written["prob"].name == "scan_prob.npy"
    expected = _whole(model, data, 5.0, 2.0)
    prob = np.load(written["prob"])
    assert prob.shape == (20, 26, 18, 3)  # K on the 4th axis, like the input's channels
    np.testing.assert_allclose(np.moveaxis(prob, -1, 0), expected, atol=1e-6)
    np.testing.assert_array_equal(np.load(written["class"]), expected.argmax(0))
    # flips and turns (TTA) of non-cubic windows are each undone before blending
    turned = predict_raster(
        model.eval(), tmp_path / "scan.npy", tmp_path / "tta", META, window=(8, 8, 16), tta=True,
        outputs=["prob"], prob_dtype="float32", progress=False,
    )  # fmt: skip
    np.testing.assert_allclose(np.moveaxis(np.load(turned["prob"]), -1, 0), expected, atol=1e-6)


def test_with_context_gaussian_blending_is_close_to_the_whole_pass(tmp_path: Path) -> None:
    data = _volume((24, 24, 24))
    np.save(tmp_path / "scan.npy", data)
    model = ContextVolume()
    expected = _whole(model, data, 5.0, 2.0)
    error = {}
    for blend in ("mean", "gaussian"):
        written = predict_raster(
            model.eval(), tmp_path / "scan.npy", tmp_path / blend, META, window=16, overlap=0.5, blend=blend,
            outputs=["prob"], prob_dtype="float32", progress=False,
        )  # fmt: skip
        difference = np.abs(np.moveaxis(np.load(written["prob"]), -1, 0) - expected)
        # At the volume's faces the whole pass mirrors every layer's features, the windows only the input.
        error[blend] = float(difference[:, 2:-2, 2:-2, 2:-2].max())
    # Window edges see mirrored voxels; Gaussian weights all but ignore them (measured 0.0016 and 0.15).
    assert 0 < error["gaussian"] < 0.005 and error["gaussian"] < error["mean"] / 20


def test_nifti_outputs_keep_the_affine_and_the_spacing(tmp_path: Path) -> None:
    data = _volume((12, 20, 10))
    affine = np.array([[0.0, -0.7, 0.0, 30.0], [0.9, 0.0, 0.0, -12.0], [0.0, 0.0, 3.0, 5.5], [0, 0, 0, 1]])
    source = nib.Nifti1Image(data, affine)
    source.header.set_xyzt_units("mm", "sec")
    nib.save(source, tmp_path / "t1.nii.gz")
    model = PointwiseVolume()
    written = predict_raster(
        model.eval(), tmp_path / "t1.nii.gz", tmp_path / "out", META, window=8, outputs=["class", "prob"],
        progress=False,
    )  # fmt: skip
    assert written["class"].name == "t1_class.nii.gz" and written["prob"].name == "t1_prob.nii.gz"
    expected = _whole(model, data, 5.0, 2.0)
    classes, prob = nib.load(written["class"]), nib.load(written["prob"])
    for image in (classes, prob):
        np.testing.assert_allclose(image.affine, affine, atol=1e-6)
        assert image.header.get_zooms()[:3] == pytest.approx((0.9, 0.7, 3.0))
        assert image.header.get_xyzt_units()[0] == "mm"
    assert classes.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(np.asanyarray(classes.dataobj), expected.argmax(0))
    # uint8 probabilities carry the slope 1/254: readers get probabilities back
    np.testing.assert_allclose(prob.get_fdata(), np.moveaxis(expected, 0, -1), atol=0.5 / 254 + 1e-6)


def test_bad_input_is_refused_before_any_work_and_nothing_is_half_written(tmp_path: Path) -> None:
    np.save(tmp_path / "one.npy", _volume(channels=1))
    with pytest.raises(InputError, match=r"one\.npy: has 1 channels, the model takes 2"):
        predict_raster(PointwiseVolume().eval(), tmp_path / "one.npy", tmp_path / "out", META, window=8)
    np.save(tmp_path / "scan.npy", _volume())
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "scan_class.npy").write_bytes(b"")
    with pytest.raises(InputError, match=r"scan_class\.npy: already exists \(pass --overwrite to replace it\)"):
        predict_raster(PointwiseVolume().eval(), tmp_path / "scan.npy", tmp_path / "out", META, window=8)
    for flat in (ModelMeta(model_kwargs={"spatial_dims": 2}), ModelMeta(model="fractal_resunet")):  # 2D default
        with pytest.raises(InputError, match=r"scan\.npy: is a volume, but the model was built for spatial_dims=2"):
            predict_raster(PointwiseVolume().eval(), tmp_path / "scan.npy", tmp_path / "new", flat, window=8)

    calls = []

    def failing(x: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("out of memory")
        return PointwiseVolume().eval()(x)

    with pytest.raises(RuntimeError, match="out of memory"):
        predict_raster(failing, tmp_path / "scan.npy", tmp_path / "new", META, window=8, batch_size=1, progress=False)
    assert not (tmp_path / "new").exists() or not any((tmp_path / "new").iterdir())


def test_an_intensity_range_kept_in_the_checkpoint_clips_new_volumes_as_in_training(tmp_path: Path) -> None:
    import mantis

    from .conftest import make_ckpt

    data = _volume((12, 10, 8), channels=1) * 3.0  # values well outside [2, 8]
    np.save(tmp_path / "scan.npy", data)
    np.save(tmp_path / "clipped.npy", np.clip(data, 2.0, 8.0))
    kwargs = {"in_channels": 1, "num_classes": 2, "spatial_dims": 3, "nf": 8, "depth": 2, "psp_depth": 1}
    model = mantis.create_model("fractal_resunet", **kwargs).eval()
    plain = make_ckpt(tmp_path / "plain.ckpt", model, "fractal_resunet", "segmentation", **kwargs,
                      band_mean=[5.0], band_std=[2.0])  # fmt: skip
    ckpt = torch.load(plain, weights_only=True)
    ckpt["datamodule_hyper_parameters"] = {"intensity_range": [2.0, 8.0]}  # as VolumeSegmentationDataModule keeps it
    windowed = tmp_path / "windowed.ckpt"
    torch.save(ckpt, windowed)

    def prob(checkpoint: Path, name: str) -> np.ndarray:
        out = predict_raster(checkpoint, tmp_path / name, tmp_path / checkpoint.stem, window=16, outputs=["prob"],
                             prob_dtype="float32", progress=False, overwrite=True)  # fmt: skip
        return np.load(out["prob"])

    want = prob(plain, "clipped.npy")
    np.testing.assert_allclose(prob(windowed, "scan.npy"), want, atol=1e-6)
    assert np.abs(prob(plain, "scan.npy") - want).max() > 1e-3  # unclipped, the network sees other values


def test_a_folder_of_volumes_is_predicted_file_by_file_and_the_former_names_still_work(tmp_path: Path) -> None:
    folder = tmp_path / "scans"
    folder.mkdir()
    np.save(folder / "a.npy", _volume((10, 12, 8)))
    np.save(folder / "b.npy", _volume((8, 8, 14)))
    model = PointwiseVolume().eval()
    written = predict_folder(model, folder, tmp_path / "out", META, window=8, progress=False)
    assert [w["class"].name for w in written] == ["a_class.npy", "b_class.npy"]
    for name, result in zip("ab", written):
        expected = _whole(model, np.load(folder / f"{name}.npy"), 5.0, 2.0).argmax(0)
        np.testing.assert_array_equal(np.load(result["class"]), expected)
    with pytest.raises(InputError, match=r"volumes are predicted from one folder"):
        predict_folder(model, [folder, folder], tmp_path / "two", META, window=8)
    import mantis.inference.volume as volume

    with pytest.warns(DeprecationWarning, match="predict_volume is deprecated; use mantis.inference.predict_raster"):
        assert volume.predict_volume is predict_raster
    with pytest.warns(DeprecationWarning, match="predict_volume_folder is deprecated"):
        assert volume.predict_volume_folder is predict_folder
