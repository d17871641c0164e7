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


def test_fitted_cuts_the_window_to_a_small_input_and_keeps_it_for_a_large_one() -> None:
    spec = WindowSpec(window=64, stride=32)
    # a 20 x 100 input: the first side is one window of 24 (20 rounded up to 8), the second keeps 64
    assert spec.fitted((20, 100), 8) == WindowSpec(window=(24, 64), stride=(24, 32))
    assert spec.fitted((64, 100), 8) is spec
    # without a stride the default overlap applies to the cut window
    assert WindowSpec(window=64).fitted((16, 16), 8).geometry(2)[:2] == ((16, 16), (8, 8))
    with pytest.raises(InputError, match="window 64 does not suit the network: .* multiples of 24"):
        spec.fitted((100, 100), 24)


def test_prediction_options_are_built_from_the_keywords_of_every_entry_point() -> None:
    from mantis.inference.options import OutputSpec, PredictOptions
    from mantis.inference.vector import VectorOptions

    options = PredictOptions.build(window=32, tta=True, outputs=["prob"], vector="geojson", progress=False)
    assert options.window == WindowSpec(window=32, tta=True)
    assert options.output == OutputSpec(outputs=("prob",), vector=VectorOptions(format="geojson"))
    assert (options.device, options.progress) == (None, False)
    # keywords change the fields of the given objects; keywords() gives back what build() takes
    base = OutputSpec(outputs=("class", "prob"), prob_dtype="float32")
    changed = PredictOptions.build(output=base, overwrite=True, spec=WindowSpec(window=16), stride=4)
    assert changed.output == OutputSpec(outputs=("class", "prob"), prob_dtype="float32", overwrite=True)
    assert changed.window == WindowSpec(window=16, stride=4)
    assert PredictOptions.build(**changed.keywords()) == changed
    with pytest.raises(TypeError, match="unknown prediction option 'output_dtype'"):
        PredictOptions.build(output_dtype="float32")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"outputs": ("class", "edges")}, "unknown output ['edges']"),
        ({"outputs": ()}, "unknown output []"),
        ({"prob_dtype": "float16"}, "unknown probability dtype 'float16'; choose from uint8, float32"),
        ({"output_format": "jpg"}, "unknown output format 'jpg'; choose from auto, tif, png"),
    ],
)
def test_output_spec_refuses_unknown_values_in_words(fields: dict, message: str) -> None:
    from mantis.inference.options import OutputSpec

    with pytest.raises(InputError) as caught:
        OutputSpec(**fields).check()
    assert message in str(caught.value)


def test_skip_existing_leaves_a_finished_raster_alone(tmp_path: Path, seg_model: PixelSeg) -> None:
    write_geotiff(tmp_path / "t.tif", np.random.default_rng(1).integers(1, 255, (3, 24, 24), dtype=np.uint8))
    first = predict_raster(seg_model, tmp_path / "t.tif", tmp_path / "o", window=16, progress=False)
    stamp = first["class"].stat().st_mtime_ns
    again = predict_raster(seg_model, tmp_path / "t.tif", tmp_path / "o", window=16, progress=False, skip_existing=True)
    assert again == first and first["class"].stat().st_mtime_ns == stamp
    with pytest.raises(InputError, match="exists"):
        predict_raster(seg_model, tmp_path / "t.tif", tmp_path / "o", window=16, progress=False)
