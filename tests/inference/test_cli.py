"""``mantis predict`` and ``mantis export`` end to end through ``main([...])``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
import yaml

from mantis.inference import export_cli, predict_cli

from .conftest import PixelChange, make_ckpt, write_geotiff

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def change_ckpt(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    return make_ckpt(
        tmp_path / "cd.ckpt", PixelChange(3, 2), "test_pixel_change", "change_detection", in_channels=3, num_classes=2
    )


def test_predict_pair_end_to_end(
    tmp_path: Path, rng: np.random.Generator, change_ckpt: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = write_geotiff(tmp_path / "2019.tif", rng.integers(0, 255, (3, 40, 50), dtype=np.uint8), nodata=0)
    b = write_geotiff(tmp_path / "2021.tif", rng.integers(0, 255, (3, 40, 50), dtype=np.uint8), nodata=0)
    out = tmp_path / "pred"
    argv = [
        "-c",
        str(change_ckpt),
        str(change_ckpt),
        "-i",
        str(a),
        str(b),
        "-o",
        str(out),
        "--window",
        "16",
        "--stride",
        "8",
        "--blend",
        "gaussian",
        "--tta",
        "--outputs",
        "class",
        "prob",
        "--no-progress",
    ]
    assert predict_cli.main(argv) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed == [f"wrote {out / '2019_class.tif'}", f"wrote {out / '2019_prob.tif'}"]
    with rasterio.open(out / "2019_prob.tif") as ds, rasterio.open(a) as src:
        assert ds.count == 2 and ds.crs == src.crs and ds.transform == src.transform
        probs = ds.read().astype(int)
    assert np.all(np.abs(probs.sum(axis=0) - 254) <= 1)  # two classes' probabilities sum to one


def test_predict_errors_are_one_line(
    tmp_path: Path, rng: np.random.Generator, change_ckpt: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = write_geotiff(tmp_path / "a.tif", rng.integers(0, 255, (3, 20, 20), dtype=np.uint8))
    b = write_geotiff(tmp_path / "b.tif", rng.integers(0, 255, (3, 20, 20), dtype=np.uint8), crs="EPSG:3857")
    four = write_geotiff(tmp_path / "c.tif", rng.integers(0, 255, (4, 20, 20), dtype=np.uint8))
    cases = [
        (["-i", str(a), str(b)], f"{b}: CRS EPSG:3857 differs from {a}'s EPSG:32631"),
        (["-i", str(four), str(four)], f"{four}: has 4 bands, the model takes 3"),
        (["-i", str(a)], "needs two images (a pair), got 1"),
        (["-i", str(a), str(tmp_path / "nope.tif")], "nope.tif: no such file or folder"),
        (["-i", str(a), str(tmp_path)], "give files or folders, not a mix"),
    ]
    for extra, message in cases:
        code = predict_cli.main(["-c", str(change_ckpt), "-o", str(tmp_path / "o"), *extra])
        err = capsys.readouterr().err
        assert code == 2
        assert err.count("\n") == 1 and err.startswith("mantis predict: error: ") and message in err
    assert not (tmp_path / "o").exists()
    assert predict_cli.main(["-c", str(tmp_path / "none.ckpt"), "-i", str(a), "-o", str(tmp_path)]) == 2
    assert "none.ckpt: no such checkpoint" in capsys.readouterr().err


def test_help_and_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert predict_cli.main(["--help"]) == 0
    assert "--tta" in capsys.readouterr().out
    assert predict_cli.main(["--blend", "median"]) == 2
    assert export_cli.main(["--help"]) == 0
    assert "onnxruntime" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["predict.yaml", "predict_vector.yaml"])
def test_config_file_is_a_runnable_example(
    tmp_path: Path, rng: np.random.Generator, change_ckpt: Path, name: str
) -> None:
    config = yaml.safe_load((REPO / "configs" / name).read_text())
    # Point the example at tiny files; every other option is the example's own.
    d1, d2 = tmp_path / "A", tmp_path / "B"
    d1.mkdir(), d2.mkdir()
    for d in (d1, d2):
        write_geotiff(d / "tile.tif", rng.integers(0, 255, (3, 33, 37), dtype=np.uint8))
    config.update(
        checkpoint=[str(change_ckpt)],
        input=[str(d1), str(d2)],
        output=str(tmp_path / "out"),
        window=16,
        no_progress=True,
    )
    if config.get("stride"):
        config["stride"] = 8
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(config))
    assert predict_cli.main(["--config", str(tmp_path / "p.yaml")]) == 0
    expected = [f"tile_{o}.tif" for o in config["outputs"]] + (["tile_polygons.gpkg"] if config.get("vector") else [])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(expected)
    (tmp_path / "bad.yaml").write_text("checkpoint: x\nwindw: 3\n")
    assert predict_cli.main(["--config", str(tmp_path / "bad.yaml")]) == 2


def test_export_cli_then_predict_from_export(
    tmp_path: Path, rng: np.random.Generator, change_ckpt: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "exported"
    assert export_cli.main([str(change_ckpt), str(out), "--formats", "safetensors", "onnx", "--window", "8"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.onnx", "model.safetensors"]
    assert "wrote" in capsys.readouterr().out
    a = write_geotiff(tmp_path / "a.tif", rng.integers(0, 255, (3, 20, 20), dtype=np.uint8))
    b = write_geotiff(tmp_path / "b.tif", rng.integers(0, 255, (3, 20, 20), dtype=np.uint8))
    for ckpt, sub in ((change_ckpt, "x"), (out, "y")):
        assert (
            predict_cli.main(
                ["-c", str(ckpt), "-i", str(a), str(b), "-o", str(tmp_path / sub), "--window", "8", "--no-progress"]
            )
            == 0
        )
    with rasterio.open(tmp_path / "x" / "a_class.tif") as x, rasterio.open(tmp_path / "y" / "a_class.tif") as y:
        np.testing.assert_array_equal(x.read(), y.read())
    assert export_cli.main([str(tmp_path / "missing.ckpt"), str(out)]) == 2
    assert capsys.readouterr().err.startswith("mantis export: error: ")
