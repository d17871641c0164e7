"""predict_raster / predict_folder: strips equal whole-image prediction, georeference, nodata, atomic outputs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from PIL import Image
from torch import nn

from mantis.inference import InputError, ModelMeta, predict_folder, predict_raster
from mantis.inference.predict import UINT8_NODATA, UINT8_SCALE
from mantis.inference.raster import BandSpec, GeoTiffWriter, RasterHeader

from .conftest import PixelChange, PixelSeg, write_geotiff


def _whole(model: nn.Module, *images: np.ndarray) -> torch.Tensor:
    xs = [torch.from_numpy(a.astype(np.float32) / 255.0)[None] for a in images]
    with torch.no_grad():
        out = model(*xs)
    return (out if isinstance(out, torch.Tensor) else out.segmentation)[0]


@pytest.mark.parametrize("blend", ["mean", "gaussian", "linear"])
def test_strips_equal_whole_image_and_keep_georeference(
    tmp_path: Path, rng: np.random.Generator, change_model: PixelChange, blend: str
) -> None:
    a = rng.integers(1, 255, (3, 77, 58), dtype=np.uint8)
    b = rng.integers(1, 255, (3, 77, 58), dtype=np.uint8)
    a[:, 10:14, 20:30] = 0  # nodata in date 1 only
    b[:, 60:, :3] = 0  # nodata in date 2 only
    pa = write_geotiff(tmp_path / "t1.tif", a, nodata=0)
    pb = write_geotiff(tmp_path / "t2.tif", b, nodata=0)
    out = predict_raster(
        change_model,
        (pa, pb),
        tmp_path / "out",
        outputs=("class", "prob"),
        window=16,
        stride=5,
        blend=blend,
        batch_size=3,
        prob_dtype="float32",
        progress=False,
    )
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["t1_class.tif", "t1_prob.tif"]
    want = _whole(change_model, a, b).numpy()
    invalid = np.zeros(a.shape[1:], bool)
    invalid[10:14, 20:30] = True
    invalid[60:, :3] = True
    with rasterio.open(pa) as src, rasterio.open(out["prob"]) as prob, rasterio.open(out["class"]) as cls:
        for ds in (prob, cls):
            assert ds.crs == src.crs and ds.transform == src.transform and ds.shape == src.shape
            assert ds.profile["tiled"] and ds.profile["compress"] == "deflate"
        p, c = prob.read(), cls.read(1)
        assert math.isnan(prob.nodata) and cls.nodata == UINT8_NODATA
    np.testing.assert_array_equal(np.isnan(p).all(axis=0), invalid)
    np.testing.assert_allclose(p[:, ~invalid], want[:, ~invalid], rtol=0, atol=2e-6)
    np.testing.assert_array_equal(c[invalid], UINT8_NODATA)
    np.testing.assert_array_equal(c[~invalid], want.argmax(0)[~invalid])


def test_uint8_probabilities_boundary_distance_tta_and_band_stats(
    tmp_path: Path, rng: np.random.Generator, seg_model: PixelSeg
) -> None:
    img = rng.normal(100, 20, (3, 40, 33)).astype(np.float32)
    path = write_geotiff(tmp_path / "s.tif", img)
    mean, std = [100.0, 90.0, 110.0], [20.0, 25.0, 15.0]
    meta = ModelMeta(model=None, model_kwargs={"in_channels": 3}, band_mean=mean, band_std=std)
    out = predict_raster(
        seg_model,
        path,
        tmp_path,
        meta,
        outputs=("prob", "boundary", "distance"),
        window=(16, 12),
        overlap=0.5,
        tta=True,
        progress=False,
    )
    x = (torch.from_numpy(img) - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    with torch.no_grad():
        want = seg_model(x[None])
    for name, field in (("prob", want.segmentation), ("boundary", want.boundary), ("distance", want.distance)):
        with rasterio.open(out[name]) as ds:
            got = ds.read()
            assert ds.scales == (pytest.approx(1 / UINT8_SCALE),) * 3 and ds.nodata == UINT8_NODATA
            assert ds.tags()["mantis_product"] == name
        np.testing.assert_array_equal(got, np.rint(field[0].numpy() * UINT8_SCALE).astype(np.uint8))


def test_png_in_png_out(tmp_path: Path, rng: np.random.Generator, seg_model: PixelSeg) -> None:
    rgb = rng.integers(0, 255, (21, 34, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "photo.png")
    out = predict_raster(seg_model, tmp_path / "photo.png", tmp_path / "o", window=16, progress=False)
    assert out["class"].name == "photo_class.png"
    got = np.asarray(Image.open(out["class"]))
    np.testing.assert_array_equal(got, _whole(seg_model, np.moveaxis(rgb, -1, 0)).argmax(0).numpy())
    with pytest.raises(InputError, match="PNG output cannot hold float32"):
        predict_raster(seg_model, tmp_path / "photo.png", tmp_path / "o2", outputs=("prob",), prob_dtype="float32")


class FailsHalfway(nn.Module):
    def __init__(self, after: int, watch: Path | None = None) -> None:
        super().__init__()
        self.inner = PixelChange(3, 2)
        self.calls, self.after, self.watch = 0, after, watch
        self.seen: list[tuple[str, int]] = []

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls > self.after:
            if self.watch is not None:
                self.seen = sorted((p.name, p.stat().st_size) for p in self.watch.iterdir())
            raise RuntimeError("boom")
        return self.inner(x1, x2)


def test_interrupted_run_leaves_no_file(tmp_path: Path, rng: np.random.Generator) -> None:
    a = rng.integers(0, 255, (3, 300, 40), dtype=np.uint8)
    pa, pb = write_geotiff(tmp_path / "a.tif", a), write_geotiff(tmp_path / "b.tif", a)
    out_dir = tmp_path / "out"
    model = FailsHalfway(after=20).eval()
    with pytest.raises(RuntimeError, match="boom"):
        # 300 rows, 16-row windows, stride 8: rows are written to the temporary file before the failure.
        predict_raster(
            model, (pa, pb), out_dir, outputs=("class", "prob"), window=16, stride=8, batch_size=1, progress=False
        )
    assert model.calls == 21
    assert list(out_dir.iterdir()) == []


def test_a_failed_write_in_the_background_stops_the_run_and_leaves_no_file(
    tmp_path: Path, rng: np.random.Generator, seg_model: PixelSeg, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Bands of rows are written on a thread while the model runs on the next strip: its error must surface.
    import mantis.inference.predict as predict

    path = write_geotiff(tmp_path / "a.tif", rng.integers(0, 255, (3, 200, 30), dtype=np.uint8))
    written: list[int] = []
    product = predict._product

    def fails_on_third(*args: object, **kwargs: object) -> np.ndarray:
        written.append(1)
        if len(written) == 3:
            raise OSError("No space left on device")
        return product(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(predict, "_product", fails_on_third)
    with pytest.raises(OSError, match="No space"):
        predict_raster(seg_model, path, tmp_path / "out", window=16, stride=8, batch_size=1, progress=False)
    assert len(written) == 3 and list((tmp_path / "out").iterdir()) == []


def test_in_order_runs_calls_one_at_a_time_and_raises_their_errors() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from mantis.inference.predict import InOrder

    seen: list[int] = []
    with ThreadPoolExecutor(max_workers=1) as pool:
        calls = InOrder(pool)
        for i in range(5):
            calls.submit(seen.append, i)
        calls.wait()
        assert seen == [0, 1, 2, 3, 4] and calls.pending is None
        calls.submit(lambda: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            calls.submit(seen.append, 5)  # the previous call's error, before this one starts
        assert seen == [0, 1, 2, 3, 4]
        calls.submit(lambda: 1 / 0)
        calls.drain()  # the caller is failing already: nothing more is raised
        assert calls.pending is None


def test_writer_takes_rows_in_any_chunks(tmp_path: Path, rng: np.random.Generator) -> None:
    header = RasterHeader(height=530, width=70, bands=1, dtype="uint8", path=tmp_path / "x.tif")
    data = rng.integers(0, 200, (2, 530, 70), dtype=np.uint8)
    writer = GeoTiffWriter(tmp_path / "y.tif", header, BandSpec(2, "uint8", 255))
    row = 0
    for n in (3, 250, 7, 1, 200, 69):
        writer.write(row, data[:, row : row + n])
        row += n
        assert writer.row % writer.block == 0  # only whole tile rows reach the file before close
    writer.close()
    with rasterio.open(tmp_path / "y.tif") as ds:
        np.testing.assert_array_equal(ds.read(), data)


def _pair(tmp_path: Path, rng: np.random.Generator, **second: object) -> tuple[Path, Path]:
    a = rng.integers(0, 255, (3, 20, 24), dtype=np.uint8)
    shape = second.pop("shape", (3, 20, 24))
    b = rng.integers(0, 255, shape, dtype=np.uint8)  # type: ignore[arg-type]
    return write_geotiff(tmp_path / "a.tif", a), write_geotiff(tmp_path / "b.tif", b, **second)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "second, message",
    [
        ({"shape": (3, 21, 24)}, r"b\.tif: size 24x21 differs from .*a\.tif's 24x20"),
        ({"crs": "EPSG:4326"}, r"b\.tif: CRS EPSG:4326 differs from .*a\.tif's EPSG:32631"),
        ({"origin": (440010.0, 5100000.0)}, r"b\.tif: transform .* differs from .*a\.tif's"),
        ({"res": 20.0}, r"b\.tif: transform"),
        ({"shape": (4, 20, 24)}, r"b\.tif: has 4 bands, .*a\.tif has 3"),
    ],
)
def test_mismatched_pairs_refused_before_any_work(
    tmp_path: Path, rng: np.random.Generator, second: dict[str, object], message: str
) -> None:
    pa, pb = _pair(tmp_path, rng, **second)
    model = FailsHalfway(after=0)
    meta = ModelMeta(task="change_detection", model_kwargs={"in_channels": 3})
    with pytest.raises(InputError, match=message) as info:
        predict_raster(model, (pa, pb), tmp_path / "out", meta, progress=False)
    assert "\n" not in str(info.value)
    assert model.calls == 0 and not (tmp_path / "out").exists()


def test_band_count_task_and_existing_outputs(tmp_path: Path, rng: np.random.Generator) -> None:
    img = write_geotiff(tmp_path / "four.tif", rng.integers(0, 255, (4, 20, 24), dtype=np.uint8))
    seg = ModelMeta(model_kwargs={"in_channels": 3})
    with pytest.raises(InputError, match=r"four\.tif: has 4 bands, the model takes 3"):
        predict_raster(PixelSeg(), img, tmp_path, seg)
    with pytest.raises(InputError, match="needs two images"):
        predict_raster(PixelChange(), img, tmp_path, ModelMeta(task="change_detection"))
    with pytest.raises(InputError, match="takes one image"):
        predict_raster(PixelSeg(), (img, img), tmp_path, seg)
    (tmp_path / "four_class.tif").write_bytes(b"")
    with pytest.raises(InputError, match=r"four_class\.tif: already exists"):
        predict_raster(PixelSeg(4, 2).eval(), img, tmp_path, progress=False)
    predict_raster(PixelSeg(4, 2).eval(), img, tmp_path, overwrite=True, window=8, progress=False)
    with rasterio.open(tmp_path / "four_class.tif") as ds:
        assert ds.shape == (20, 24)
    (tmp_path / "junk.tif").write_bytes(b"not a tiff")
    with pytest.raises(InputError, match=r"junk\.tif: not a readable raster"):
        predict_raster(PixelSeg(), tmp_path / "junk.tif", tmp_path / "o")


def test_folder_of_pairs_checked_first(tmp_path: Path, rng: np.random.Generator, change_model: PixelChange) -> None:
    d1, d2 = tmp_path / "A", tmp_path / "B"
    d1.mkdir(), d2.mkdir()
    for name, size in (("x.tif", 20), ("y.tif", 30)):
        for d in (d1, d2):
            write_geotiff(d / name, rng.integers(0, 255, (3, size, size), dtype=np.uint8))
    results = predict_folder(change_model, (d1, d2), tmp_path / "out", window=16, progress=False)
    assert [sorted(r) for r in results] == [["class"], ["class"]]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["x_class.tif", "y_class.tif"]
    assert predict_folder(change_model, (d1, d2), tmp_path / "out", skip_existing=True) == []
    write_geotiff(d2 / "z.tif", rng.integers(0, 255, (3, 20, 20), dtype=np.uint8))
    with pytest.raises(InputError, match=r"B/z\.tif: has no counterpart z\.tif in .*A"):
        predict_folder(change_model, (d1, d2), tmp_path / "out2")
    write_geotiff(d1 / "z.tif", rng.integers(0, 255, (3, 21, 20), dtype=np.uint8))
    model = FailsHalfway(after=0)
    with pytest.raises(InputError, match=r"B/z\.tif: size"):
        predict_folder(model, (d1, d2), tmp_path / "out3")
    assert model.calls == 0 and not (tmp_path / "out3").exists()


def test_two_files_of_one_stem_are_refused_not_overwritten(tmp_path: Path, rng: np.random.Generator) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    write_geotiff(folder / "a.tif", rng.integers(0, 255, (3, 16, 16), dtype=np.uint8))
    Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(folder / "a.png")
    # both would write out/a_class.*: the second must not silently replace the first
    with pytest.raises(Exception, match=r"ambiguous: a\.\w+ in the same folder has the same stem"):
        predict_folder(PixelSeg(), folder, tmp_path / "out", window=16, progress=False)
    assert not (tmp_path / "out").exists()


def test_class_map_is_argmax_with_first_on_ties_and_threshold_for_one_class() -> None:
    from mantis.inference.predict import _argmax

    v = torch.rand(4, 6, 7)
    v[1, 0, 0] = v[3, 0, 0] = 5.0  # a tie: the first wins, as with torch.argmax
    torch.testing.assert_close(_argmax(v), v.argmax(dim=0).to(torch.uint8))
    assert _argmax(torch.tensor([[[0.2, 0.7]]])).tolist() == [[0, 1]]


def test_rows_grouped_to_fill_batches_give_the_same_result(
    tmp_path: Path, rng: np.random.Generator, seg_model: PixelSeg
) -> None:
    from mantis.inference.predict import row_groups

    assert row_groups(list(range(5)), n_cols=40, batch_size=8) == [[0], [1], [2], [3], [4]]
    assert row_groups(list(range(5)), n_cols=15, batch_size=32) == [[0, 1], [2, 3], [4]]  # 30 of 32
    img = rng.integers(0, 255, (3, 93, 21), dtype=np.uint8)
    img[:, 40:44] = 7
    path = write_geotiff(tmp_path / "narrow.tif", img, nodata=7)
    outs = [
        predict_raster(
            seg_model,
            path,
            tmp_path / f"b{b}",
            outputs=("prob",),
            window=16,
            stride=4,
            batch_size=b,
            blend="linear",
            prob_dtype="float32",
            progress=False,
        )
        for b in (1, 64)
    ]
    with rasterio.open(outs[0]["prob"]) as one, rasterio.open(outs[1]["prob"]) as many:
        a, b = one.read(), many.read()
    want = _whole(seg_model, img).numpy()
    np.testing.assert_allclose(a[:, :40], want[:, :40], rtol=0, atol=2e-6)
    np.testing.assert_allclose(b[:, 44:], want[:, 44:], rtol=0, atol=2e-6)
    assert np.isnan(a[:, 40:44]).all() and np.isnan(b[:, 40:44]).all()
