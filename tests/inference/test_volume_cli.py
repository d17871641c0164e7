"""Volumes end to end through the CLI: `mantis fit` on NIfTI files with a tiny 3D FracTAL ResUNet, then
`mantis predict` on a larger volume; bad volumes stop the command in one line with exit status 2."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml

from mantis.cli import main
from mantis.data.volumes_synthetic import synthetic_volume

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "volume_synthetic.yaml"
AFFINE = np.array([[1.5, 0, 0, -10.0], [0, 1.5, 0, 4.0], [0, 0, 2.5, 0.0], [0, 0, 0, 1]])


def _save(path: Path, data: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, AFFINE), path)


def _tiny_config(tmp_path: Path, root: Path) -> Path:
    config = yaml.safe_load(CONFIG.read_text())
    config["trainer"] = {"max_epochs": 1, "accelerator": "cpu", "enable_progress_bar": False, "logger": False}
    config["model"]["init_args"]["model_kwargs"].update({"nf": 8, "depth": 2, "nheads_start": 1, "psp_depth": 1})
    config["data"]["init_args"].update({"root": str(root), "patch_size": 16, "samples_per_volume": 1, "batch_size": 2})
    config["run_dir"] = str(tmp_path / "run")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_fit_then_predict_a_larger_volume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "data"
    largest = 0
    for i in range(5):
        image, labels = synthetic_volume((16, 16, 16), seed=i)
        largest = max(largest, int(labels.max()))
        _save(root / "images" / f"case_{i}.nii.gz", np.moveaxis(image, 0, -1))
        _save(root / "masks" / f"case_{i}.nii.gz", labels.astype(np.uint8))
    assert main(["fit", "--config", str(_tiny_config(tmp_path, root))]) == 0
    record = json.loads((tmp_path / "run" / "test_metrics.json").read_text())
    assert record["model_kwargs"]["spatial_dims"] == 3 and record["model_kwargs"]["num_classes"] == largest + 1
    assert f"mcc_{largest}" in record["metrics"]
    checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert checkpoint.is_file()
    config = str(tmp_path / "c.yaml")
    assert main(["test", "--config", config, "--ckpt_path", str(checkpoint), "--run_dir", str(tmp_path / "t")]) == 0
    assert json.loads((tmp_path / "t" / "test_metrics.json").read_text())["metrics"] == record["metrics"]

    image, _ = synthetic_volume((24, 20, 16), seed=9)
    _save(tmp_path / "big.nii.gz", image[0])  # a 3-D file: one channel
    out = tmp_path / "out"
    argv = ["predict", "-c", str(checkpoint), "-i", str(tmp_path / "big.nii.gz"), "-o", str(out), "--window", "16"]
    assert main([*argv, "--outputs", "class", "prob", "--no-progress"]) == 0
    classes, prob = nib.load(out / "big_class.nii.gz"), nib.load(out / "big_prob.nii.gz")
    assert classes.shape == (24, 20, 16) and prob.shape == (24, 20, 16, largest + 1)
    np.testing.assert_allclose(classes.affine, AFFINE)
    assert classes.header.get_zooms() == pytest.approx((1.5, 1.5, 2.5))
    assert set(np.unique(np.asanyarray(classes.dataobj))) <= set(range(largest + 1))
    np.testing.assert_allclose(prob.get_fdata().sum(-1), 1.0, atol=3 * 0.5 / 254)
    scans, folder_out = tmp_path / "scans", tmp_path / "folder_out"
    _save(scans / "a.nii.gz", image[0])
    np.save(scans / "b.npy", image[0, :16, :16, :16])
    folder_argv = ["predict", "-c", str(checkpoint), "-i", str(scans), "-o", str(folder_out), "--window", "16"]
    assert main([*folder_argv, "--no-progress"]) == 0
    assert sorted(p.name for p in folder_out.iterdir()) == ["a_class.nii.gz", "b_class.npy"]
    b_map = np.load(folder_out / "b_class.npy")
    assert b_map.shape == (16, 16, 16) and b_map.dtype == np.uint8
    (folder_out / "a_class.nii.gz").unlink()
    assert main([*folder_argv, "--no-progress", "--skip-existing"]) == 0  # only a is predicted again
    np.testing.assert_array_equal(np.asanyarray(nib.load(folder_out / "a_class.nii.gz").dataobj), classes.dataobj)
    capsys.readouterr()
    assert main([*argv, "--window", "12", "--overwrite"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "mantis predict: error: window 12 does not suit the network: its sides must be multiples of 8 "
        "(nearest: 8 or 16; --window)"
    ]


def test_a_mask_of_another_shape_stops_fit_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "data"
    for i in range(3):
        _save(root / "images" / f"c{i}.nii.gz", np.zeros((16, 16, 16), np.float32))
        _save(root / "masks" / f"c{i}.nii.gz", np.zeros((16, 16, 12 if i == 1 else 16), np.uint8))
    assert main(["fit", "--config", str(_tiny_config(tmp_path, root))]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mantis fit: error: ")
    assert err[0].endswith(
        "masks/c1.nii.gz: is 16x16x12 voxels but " + str(root / "images" / "c1.nii.gz") + " is 16x16x16"
    )
    assert not (tmp_path / "run" / "checkpoints").exists()
