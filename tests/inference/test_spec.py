"""WindowSpec: one option object for every prediction entry point, checked when it is made."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from mantis.inference import InputError, WindowSpec, predict_folder, predict_raster, sliding_window_predict
from mantis.inference.predict_cli import build_parser

from .conftest import PixelChange, PixelSeg, write_geotiff


def test_defaults_and_geometry() -> None:
    spec = WindowSpec()
    assert (spec.window, spec.blend, spec.batch_size, spec.precision, spec.tta) == (256, "mean", 8, "fp32", False)
    # default overlap 0.5 and padding (window - stride) // 2
    assert spec.geometry(2) == ((256, 256), (128, 128), (64, 64))
    assert WindowSpec(window=(32, 64), stride=16, pad=0).geometry(2) == ((32, 64), (16, 16), (0, 0))
    assert WindowSpec(window=20, overlap=0.25).geometry(3) == ((20,) * 3, (15,) * 3, (2,) * 3)


def test_lists_from_configs_become_hashable_tuples() -> None:
    spec = WindowSpec(window=[32, 48], stride=[8], pad=[2, 3])
    assert (spec.window, spec.stride, spec.pad) == ((32, 48), 8, (2, 3))
    assert hash(spec) == hash(WindowSpec(window=(32, 48), stride=8, pad=(2, 3)))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"blend": "max"}, "unknown blend mode 'max'"),
        ({"precision": "fp16"}, "unknown precision 'fp16'"),
        ({"batch_size": 0}, "batch_size must be at least 1"),
        ({"stride": 8, "overlap": 0.5}, "give stride or overlap, not both"),
        ({"window": 16, "stride": 17}, "stride must be in [1, window]"),
        ({"overlap": 1.0}, "overlap must be in [0, 1)"),
        ({"window": (16, 16), "stride": (4, 4, 4)}, "stride has 3 values for 2 spatial dimensions"),
        ({"sigma_scale": 0.0}, "sigma_scale must be positive"),
    ],
)
def test_bad_settings_are_refused_when_made(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        WindowSpec(**kwargs)


def test_build_replaces_fields_and_names_an_unknown_one() -> None:
    base = WindowSpec(window=64, tta=True)
    assert WindowSpec.build(base, stride=16) == WindowSpec(window=64, tta=True, stride=16)
    assert WindowSpec.build(None) == WindowSpec()
    with pytest.raises(TypeError, match="unknown window option 'strides'"):
        WindowSpec.build(base, strides=16)
    assert WindowSpec.from_mapping({"window": 32, "stride": None, "input": "x.tif"}) == WindowSpec(window=32)


def test_sliding_window_takes_a_spec_or_the_same_keywords(seg_model: PixelSeg) -> None:
    x = torch.rand(1, 3, 30, 41)
    spec = WindowSpec(window=16, stride=6, blend="gaussian", batch_size=3, tta=True)
    with torch.no_grad():
        by_spec = sliding_window_predict(seg_model, x, spec=spec, outputs=["segmentation"])
        by_keywords = sliding_window_predict(
            seg_model, x, 16, stride=6, blend="gaussian", batch_size=3, tta=True, outputs=["segmentation"]
        )
    assert isinstance(by_spec, dict) and isinstance(by_keywords, dict)
    torch.testing.assert_close(by_spec["segmentation"], by_keywords["segmentation"], rtol=0, atol=0)
    with pytest.raises(TypeError, match="unknown window option 'blending'"):
        sliding_window_predict(seg_model, x, 16, blending="mean")


def test_raster_and_folder_prediction_take_the_spec(tmp_path: Path, change_model: PixelChange) -> None:
    rng = np.random.default_rng(0)
    for folder in ("A", "B"):
        (tmp_path / folder).mkdir()
        write_geotiff(tmp_path / folder / "t.tif", rng.integers(1, 255, (3, 40, 37), dtype=np.uint8))
    spec = WindowSpec(window=16, stride=8, blend="linear")
    pair = (tmp_path / "A" / "t.tif", tmp_path / "B" / "t.tif")
    one = predict_raster(change_model, pair, tmp_path / "one", spec=spec, outputs=("prob",), progress=False)
    kw = predict_raster(
        change_model, pair, tmp_path / "kw", window=16, stride=8, blend="linear", outputs=("prob",), progress=False
    )
    many = predict_folder(
        change_model, (tmp_path / "A", tmp_path / "B"), tmp_path / "many", spec=spec, outputs=("prob",), progress=False
    )
    with rasterio.open(one["prob"]) as a, rasterio.open(kw["prob"]) as b, rasterio.open(many[0]["prob"]) as c:
        assert np.array_equal(a.read(), b.read()) and np.array_equal(a.read(), c.read())


def test_cli_defaults_are_the_spec_defaults() -> None:
    args = build_parser().parse_args([])
    spec = WindowSpec()
    assert (args.window, args.blend, args.batch_size, args.precision) == (
        [spec.window],
        spec.blend,
        spec.batch_size,
        spec.precision,
    )


def test_a_window_the_network_cannot_take_is_refused_before_reading(tmp_path: Path, seg_model: PixelSeg) -> None:
    seg_model.size_multiple = 8  # type: ignore[assignment]  # as a U-Net of depth 4 has
    with pytest.raises(InputError, match=r"window 12 does not suit the network: .* multiples of 8 \(nearest: 8 or 16"):
        predict_raster(seg_model, tmp_path / "not-read.tif", tmp_path / "o", window=12)
    with pytest.raises(InputError, match="window 4 does not suit"):
        predict_folder(seg_model, tmp_path, tmp_path / "o", window=(16, 4))
    assert not (tmp_path / "o").exists()
