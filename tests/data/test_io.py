"""Reading and writing rasters: values, windows, georeference, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from PIL import Image

from mantis.data.errors import DataError
from mantis.data.io import check_image, raster_info, read_image, read_mask, write_image


@pytest.mark.parametrize(
    ("suffix", "bands", "dtype"),
    [(".png", 1, "uint8"), (".png", 3, "uint8"), (".png", 4, "uint8"), (".png", 1, "uint16"),
     (".tif", 5, "uint16"), (".tif", 2, "float32"), (".tif", 7, "int16"), (".tiff", 3, "uint8")],
)  # fmt: skip
def test_round_trip_keeps_values_bands_and_dtype(tmp_path: Path, suffix: str, bands: int, dtype: str) -> None:
    rng = np.random.default_rng(0)
    data = (rng.random((bands, 20, 30)) * 1000).astype(dtype)
    path = tmp_path / f"x{suffix}"
    write_image(path, data)
    info = raster_info(path)
    assert (info.bands, info.height, info.width, info.dtype) == (bands, 20, 30, dtype)
    assert np.array_equal(read_image(path), data)
    assert read_image(path).dtype == np.dtype(dtype)


def test_jpeg_reads_channels_first(tmp_path: Path) -> None:
    data = np.full((3, 16, 24), 128, dtype=np.uint8)
    write_image(tmp_path / "x.jpg", data)
    out = read_image(tmp_path / "x.jpg")
    assert out.shape == (3, 16, 24) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - 128).max() <= 2


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_window_equals_crop_of_whole(tmp_path: Path, suffix: str) -> None:
    data = (np.arange(3 * 40 * 50) % (65536 if suffix == ".tif" else 256)).reshape(3, 40, 50)
    data = data.astype(np.uint16 if suffix == ".tif" else np.uint8)
    write_image(tmp_path / f"x{suffix}", data)
    window = (5, 7, 20, 30)
    assert np.array_equal(read_image(tmp_path / f"x{suffix}", window), data[:, 5:25, 7:37])
    with pytest.raises(ValueError, match="outside"):
        read_image(tmp_path / f"x{suffix}", (30, 0, 20, 10))


def test_geotiff_georeference_is_read_and_copied(tmp_path: Path) -> None:
    transform = Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 6000000.0)
    write_image(tmp_path / "a.tif", np.zeros((2, 8, 8), np.float32), crs="EPSG:32633", transform=transform, nodata=-1)
    info = raster_info(tmp_path / "a.tif")
    assert info.crs.to_epsg() == 32633 and info.transform == transform and info.nodata == -1
    write_image(tmp_path / "b.tif", np.ones((1, 8, 8), np.uint8), like=tmp_path / "a.tif")
    copied = raster_info(tmp_path / "b.tif")
    assert copied.crs.to_epsg() == 32633 and copied.transform == transform
    assert raster_info(tmp_path / "a.tif").shape == (2, 8, 8)


def test_plain_image_has_no_georeference(tmp_path: Path) -> None:
    write_image(tmp_path / "x.tif", np.zeros((1, 4, 4), np.uint8))
    write_image(tmp_path / "x.png", np.zeros((1, 4, 4), np.uint8))
    for name in ("x.tif", "x.png"):
        info = raster_info(tmp_path / name)
        assert info.crs is None and info.transform is None


def test_masks_from_grey_rgb_and_palette_files(tmp_path: Path) -> None:
    mask = np.array([[0, 1], [2, 255]], dtype=np.uint8)
    write_image(tmp_path / "rgb.png", np.stack([mask] * 3))
    assert np.array_equal(read_mask(tmp_path / "rgb.png"), mask)
    palette = Image.fromarray(mask, mode="P")
    palette.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [255] * (253 * 3))
    palette.save(tmp_path / "palette.png")
    assert np.array_equal(read_mask(tmp_path / "palette.png"), mask)
    write_image(tmp_path / "colour.png", np.stack([mask, mask[::-1], mask]))
    with pytest.raises(DataError, match="colour.png: a mask must have one band"):
        read_mask(tmp_path / "colour.png")


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif"])
def test_truncated_file_is_a_one_line_error_naming_it(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"cut{suffix}"
    write_image(path, np.random.default_rng(0).integers(0, 255, (3, 64, 64)).astype(np.uint8))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    for reader in (check_image, read_image):
        with pytest.raises(DataError) as error:
            reader(path)
        message = str(error.value)
        assert message.startswith(f"{path}: cannot read image (") and "\n" not in message


def test_garbage_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "junk.tif").write_bytes(b"not a tiff at all")
    (tmp_path / "junk.png").write_bytes(b"not a png")
    for name in ("junk.tif", "junk.png"):
        with pytest.raises(DataError, match=f"{name}: cannot read image"):
            raster_info(tmp_path / name)
    with pytest.raises(DataError, match="nothing.png: file not found"):
        read_image(tmp_path / "nothing.png")


def test_writer_refuses_what_the_format_cannot_hold(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="use .tif"):
        write_image(tmp_path / "x.png", np.zeros((5, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="use .tif"):
        write_image(tmp_path / "x.jpg", np.zeros((3, 4, 4), np.float32))
