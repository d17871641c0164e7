"""`mantis predict --vector`: class regions as polygons, joined across strips, with their attributes."""

from __future__ import annotations

import builtins
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch
from rasterio.features import rasterize

from mantis.inference import InputError, ModelMeta, predict_raster
from mantis.inference.regions import Region, StripRegions
from mantis.inference.vector import INSTALL_HINT, VectorOptions, region_geometries
from mantis.io.raster import write_image
from mantis.objects import label_objects
from tests.inference.conftest import make_ckpt, write_geotiff

# the vector extra (in the test extra); without it these tests are skipped, and --vector says what to install
shapely = pytest.importorskip("shapely")
pyogrio = pytest.importorskip("pyogrio.raw")

META = ModelMeta(task="segmentation", model_kwargs={"num_classes": 2})


def band_is_probability(x: torch.Tensor) -> torch.Tensor:
    """A per-pixel 'model': band 0 (uint8 / 255) is the probability of class 1."""
    return torch.cat([1 - x[:, :1], x[:, :1]], dim=1)


def _read(path: Path) -> tuple[dict[str, Any], list[Any], dict[str, np.ndarray]]:
    meta, _, wkb, fields = pyogrio.read(str(path))
    return meta, list(shapely.from_wkb(wkb)), dict(zip(meta["fields"], fields))


def _burn(geoms: list[Any], values: np.ndarray, shape: tuple[int, int], transform: Any) -> np.ndarray:
    if not geoms:
        return np.zeros(shape, np.uint8)
    return rasterize(zip(geoms, values.tolist()), out_shape=shape, transform=transform, fill=0, dtype="uint8")


def _u_scene(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A 40 x 30 GeoTIFF (10 m pixels): a U whose two arms meet only at its bottom, and a small square."""
    a = np.full((1, 40, 30), 20, np.uint8)
    a[0, 2:30, 3:6] = 200  # left arm
    a[0, 2:30, 12:15] = 220  # right arm
    a[0, 27:30, 3:15] = 180  # the bottom joins them (rows 27-29)
    a[0, 35:38, 20:23] = 250  # a 3 x 3 square
    return write_geotiff(tmp_path / "scene.tif", a), a[0]


def test_object_across_strips_is_one_polygon_with_its_attributes(tmp_path: Path) -> None:
    path, values = _u_scene(tmp_path)
    # windows of 16 every 8 rows: the U's arms arrive in separate strips and join four strips later
    out = predict_raster(band_is_probability, path, tmp_path / "out", META, window=16, stride=8, vector="gpkg")
    assert out["polygons"] == tmp_path / "out" / "scene_polygons.gpkg"
    meta, geoms, fields = _read(out["polygons"])
    assert meta["crs"] == "EPSG:32631" and meta["geometry_type"] == "MultiPolygon"
    assert fields["id"].tolist() == [1, 2] and fields["class_id"].tolist() == [1, 1]
    u = values >= 128
    u[33:, :] = False
    assert fields["area_px"].tolist() == [int(u.sum()), 9]
    assert int(u.sum()) == 2 * 28 * 3 + 3 * 12 - 2 * 9  # by hand: two arms and the bottom, minus overlaps
    assert fields["area"].tolist() == pytest.approx([u.sum() * 100.0, 900.0])  # 10 m pixels
    assert fields["prob_mean"][0] == pytest.approx(values[u].mean() / 255, abs=1e-6)
    assert fields["prob_max"].tolist() == pytest.approx([220 / 255, 250 / 255], abs=1e-6)
    assert len(geoms[0].geoms) == 1 and len(geoms[0].geoms[0].exterior.coords) == 9  # 8 corners, no seam vertex
    with rasterio.open(out["class"]) as ds:
        class_map, transform = ds.read(1), ds.transform
    burnt = _burn(geoms, fields["class_id"], class_map.shape, transform)
    np.testing.assert_array_equal(burnt, class_map)


def test_strips_of_any_height_give_the_regions_of_the_whole_map() -> None:
    rng = np.random.default_rng(7)
    classes = rng.choice(3, size=(37, 23), p=[0.5, 0.3, 0.2]).astype(np.uint8)
    classes[rng.random(classes.shape) < 0.05] = 255  # nodata belongs to no region
    probs = rng.random((3, 37, 23))
    for connectivity in (4, 8):
        builder = StripRegions([1, 2], connectivity)
        regions, row = [], 0
        for n in (1, 5, 2, 13, 1, 15):
            regions += builder.add(classes[row : row + n], probs[:, row : row + n])
            row += n
        regions += builder.finish()
        for c in (1, 2):
            labels, count = label_objects(classes == c, connectivity)  # the whole map at once
            mine = sorted((r for r in regions if r.class_id == c), key=lambda r: r.first)
            assert len(mine) == count
            for region in mine:
                label = labels[region.first]
                inside = labels == label
                assert region.pixels == int(inside.sum())
                assert region.prob_sum == pytest.approx(float(probs[c][inside].sum()))
                assert region.prob_max == pytest.approx(float(probs[c][inside].max()))
                burnt = rasterize([(region.outline(), 1)], out_shape=classes.shape, fill=0, dtype="uint8")
                np.testing.assert_array_equal(burnt.astype(bool), inside)


def test_png_without_crs_gets_pixel_coordinates(tmp_path: Path) -> None:
    image = np.zeros((3, 12, 10), np.uint8)
    image[:, 2:6, 3:8] = 255  # columns 3-7, rows 2-5
    write_image(tmp_path / "tile.png", image)
    for fmt in ("gpkg", "geojson"):
        out = predict_raster(band_is_probability, tmp_path / "tile.png", tmp_path / fmt, META, window=8, vector=fmt)
        meta, geoms, fields = _read(out["polygons"])
        assert out["polygons"].suffix == f".{fmt}"
        assert geoms[0].bounds == (3.0, 2.0, 8.0, 6.0)  # x = column, y = row
        assert fields["area"].tolist() == [20.0] and fields["area_px"].tolist() == [20]
        # GeoPackage: no CRS; GeoJSON cannot say so and readers assume WGS 84 (docs/inference.md)
        assert meta["crs"] == (None if fmt == "gpkg" else "EPSG:4326")


def region_geometry(region: Region, options: VectorOptions, transform: Any, px_area: float) -> Any:
    kept, geometries = region_geometries([region], options, transform, px_area)
    return geometries[0] if kept else None


def test_min_area_fill_holes_and_simplify() -> None:
    classes = np.zeros((14, 14), np.uint8)
    classes[1:6, 1:6] = 1
    classes[3, 3] = 0  # a ring of 24 pixels around a 1-pixel hole
    classes[7:9, 8:10] = 1  # 4 pixels
    classes[10:13, 0:13] = 1  # a bar with a staircase end
    classes[12, 12] = 0
    builder = StripRegions([1])
    regions = builder.add(classes, np.ones((2, 14, 14))) + builder.finish()
    ring, small = regions[0], regions[1]
    assert (ring.pixels, small.pixels) == (24, 4)
    res = rasterio.transform.from_origin(0, 140, 10, 10)  # 100 m² pixels
    keep = VectorOptions(min_area=4)
    assert region_geometry(small, keep, None, 1.0) is not None  # 4 pixels is not smaller than 4
    assert region_geometry(small, VectorOptions(min_area=5), None, 1.0) is None
    assert region_geometry(small, VectorOptions(min_area=401, area_units="map"), res, 100.0) is None
    assert region_geometry(ring, VectorOptions(), res, 100.0).area == 2400  # the hole stays a hole
    assert region_geometry(ring, VectorOptions(fill_holes=1), res, 100.0).area == 2400  # not smaller than 1 px
    assert region_geometry(ring, VectorOptions(fill_holes=2), res, 100.0).area == 2500
    assert region_geometry(ring, VectorOptions(fill_holes=101, area_units="map"), res, 100.0).area == 2500
    bar = regions[2].outline()
    simple = region_geometry(regions[2], VectorOptions(simplify=15.0), res, 100.0)
    assert len(simple.geoms[0].exterior.coords) < len(bar.exterior.coords)
    exact = region_geometry(regions[2], VectorOptions(), res, 100.0)
    assert exact.hausdorff_distance(simple) <= 15.0 and simple.is_valid


def test_refusals_and_atomicity(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = _u_scene(tmp_path)
    out = tmp_path / "out"
    with pytest.raises(InputError, match="--vector-classes 2: the model predicts classes 0 to 1"):
        predict_raster(band_is_probability, path, out, META, window=16, vector=VectorOptions(classes=(2,)))
    custom = write_geotiff(tmp_path / "custom.tif", np.zeros((1, 8, 8), np.uint8), crs="+proj=tmerc +lon_0=13.3")
    with pytest.raises(InputError, match="custom.tif: its CRS has no EPSG code, which GeoJSON cannot record"):
        predict_raster(band_is_probability, custom, out, META, window=8, vector="geojson")
    (out / "scene_polygons.gpkg").parent.mkdir()
    (out / "scene_polygons.gpkg").write_text("old")
    with pytest.raises(InputError, match="scene_polygons.gpkg: already exists"):
        predict_raster(band_is_probability, path, out, META, window=16, vector="gpkg")

    calls = 0

    def fails_late(x: torch.Tensor) -> torch.Tensor:
        nonlocal calls
        calls += 1
        if calls > 3:
            raise RuntimeError("out of memory")
        return band_is_probability(x)

    with pytest.raises(RuntimeError):
        predict_raster(fails_late, path, out, META, window=16, stride=8, batch_size=1, vector="gpkg", overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["scene_polygons.gpkg"]  # the old file, nothing half-written
    assert (out / "scene_polygons.gpkg").read_text() == "old"

    real_import = builtins.__import__

    def no_pyogrio(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("pyogrio"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyogrio)
    with pytest.raises(InputError, match=r"--vector needs the vector extra: pip install 'mantis-cd\[vector\]'"):
        predict_raster(band_is_probability, path, tmp_path / "other", META, window=16, vector="gpkg")
    from mantis.inference.predict_cli import main

    capsys.readouterr()
    assert main(["-c", "any.ckpt", "-i", str(path), "-o", str(tmp_path / "cli"), "--vector", "gpkg"]) == 2
    err = capsys.readouterr().err
    assert err == "mantis predict: error: --vector needs the vector extra: " + INSTALL_HINT + "\n"
    assert not (tmp_path / "other").exists() and not list((tmp_path / "cli").glob("*"))


def test_cli_writes_polygons_in_the_input_crs(
    tmp_path: Path, rng: np.random.Generator, capsys: pytest.CaptureFixture[str]
) -> None:
    from mantis.inference.predict_cli import main
    from tests.inference.conftest import PixelChange

    torch.manual_seed(3)
    ckpt = make_ckpt(tmp_path / "cd.ckpt", PixelChange(3, 2), "test_pixel_change", "change_detection")
    a = write_geotiff(tmp_path / "a.tif", rng.integers(0, 255, (3, 24, 20), dtype=np.uint8), crs="EPSG:3857")
    b = write_geotiff(tmp_path / "b.tif", rng.integers(0, 255, (3, 24, 20), dtype=np.uint8), crs="EPSG:3857")
    args = ["-c", str(ckpt), "-i", str(a), str(b), "-o", str(tmp_path / "o"), "--window", "8", "--no-progress"]
    assert main([*args, "--vector", "geojson", "--vector-connectivity", "4"]) == 0
    assert f"wrote {tmp_path / 'o' / 'a_polygons.geojson'}" in capsys.readouterr().out
    meta, geoms, fields = _read(tmp_path / "o" / "a_polygons.geojson")
    assert meta["crs"] == "EPSG:3857" and set(fields["class_name"]) == {"change"}
    assert all(len(g.geoms) == 1 for g in geoms)  # 4-connected regions are single polygons
    with rasterio.open(tmp_path / "o" / "a_class.tif") as ds:
        class_map, transform = ds.read(1), ds.transform
    np.testing.assert_array_equal(_burn(geoms, fields["class_id"], class_map.shape, transform), class_map)
    assert main([*args, "--vector", "gpkg", "--vector-min-area", "-1"]) == 2
    assert "--vector-min-area must be 0 or more, got -1.0" in capsys.readouterr().err


def test_geopackage_appended_in_batches_holds_every_region(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mantis.inference.vector as vector

    monkeypatch.setattr(vector, "BATCH_FEATURES", 2)  # append every two features
    a = np.zeros((1, 30, 30), np.uint8)
    for r in range(0, 30, 6):
        for c in range(0, 30, 6):
            a[0, r : r + 3, c : c + 3] = 200  # 25 squares of 9 pixels
    path = write_geotiff(tmp_path / "grid.tif", a)
    out = predict_raster(band_is_probability, path, tmp_path / "out", META, window=16, stride=8, vector="gpkg")
    meta, geoms, fields = _read(out["polygons"])
    assert meta["crs"] == "EPSG:32631" and fields["id"].tolist() == list(range(1, 26))
    assert set(fields["area_px"].tolist()) == {9}
    with rasterio.open(out["class"]) as ds:
        np.testing.assert_array_equal(_burn(geoms, fields["class_id"], (30, 30), ds.transform), ds.read(1))
