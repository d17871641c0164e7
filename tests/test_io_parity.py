"""Training and prediction read every kind of file to the same array (one reader: mantis.io)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image

from mantis.data import SegmentationFolder
from mantis.inference.raster import RasterReader, normalise
from mantis.io import raster_info, read_image, read_mask

H, W = 12, 16
rng = np.random.default_rng(3)
RGB = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)


def _pil(make: Callable[[], Image.Image], suffix: str = ".png") -> tuple[str, Callable[[Path], None]]:
    return suffix, lambda path: make().save(path)


def _palette(transparency: bool) -> Image.Image:
    image = Image.fromarray(RGB).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    if transparency:
        image.info["transparency"] = 0
    return image


def _geotiff(data: np.ndarray, nodata: float | None) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        profile = {"driver": "GTiff", "height": H, "width": W, "count": data.shape[0], "dtype": data.dtype.name}
        with rasterio.open(path, "w", **profile, nodata=nodata) as ds:
            ds.write(data)

    return write


# name: (suffix, writer, expected bands, per-band mean/std or None)
KINDS: dict[str, tuple[str, Callable[[Path], None], int, tuple[list[float], list[float]] | None]] = {
    "rgb_png": (*_pil(lambda: Image.fromarray(RGB)), 3, None),
    "grey_png": (*_pil(lambda: Image.fromarray(RGB[..., 0])), 1, None),
    "palette_png": (*_pil(lambda: _palette(False)), 3, None),
    "palette_transparent_png": (*_pil(lambda: _palette(True)), 4, None),
    "rgba_png": (*_pil(lambda: Image.fromarray(np.dstack([RGB, RGB[..., :1]]), "RGBA")), 4, None),
    "grey_alpha_png": (*_pil(lambda: Image.fromarray(RGB[..., :2], "LA")), 2, None),
    "bilevel_png": (*_pil(lambda: Image.fromarray(RGB[..., 0] > 127)), 1, None),
    "uint16_png": (
        *_pil(lambda: Image.fromarray(RGB[..., 0].astype(np.uint16) * 257)),
        1,
        ([30000.0], [9000.0]),
    ),
    "rgb_jpeg": (*_pil(lambda: Image.fromarray(RGB), ".jpg"), 3, None),
    "cmyk_jpeg": (*_pil(lambda: Image.fromarray(RGB).convert("CMYK"), ".jpg"), 3, None),
    "uint16_geotiff": (
        ".tif",
        _geotiff(rng.integers(0, 4000, (4, H, W)).astype(np.uint16), 0),
        4,
        ([900.0, 1000.0, 1100.0, 2000.0], [300.0, 310.0, 320.0, 700.0]),
    ),
    "float_geotiff": (".tif", _geotiff(rng.random((2, H, W)).astype(np.float32), -9999.0), 2, ([0.5, 0.4], [0.2, 0.3])),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_training_and_prediction_read_the_same_array(tmp_path: Path, kind: str) -> None:
    suffix, write, bands, stats = KINDS[kind]
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    image = tmp_path / "images" / f"x{suffix}"
    write(image)
    Image.fromarray(np.zeros((H, W), np.uint8)).save(tmp_path / "masks" / "x.png")

    with RasterReader(image) as reader:
        predicted_raw = reader.read(np.arange(H), np.arange(W))
    trained_raw = read_image(image)
    assert trained_raw.shape == (bands, H, W)
    assert raster_info(image).bands == bands
    assert trained_raw.dtype == predicted_raw.dtype
    np.testing.assert_array_equal(trained_raw, predicted_raw)

    # The network inputs too: the training sample against prediction's normalisation.
    mean, std = stats if stats else (None, None)
    dataset = SegmentationFolder(tmp_path, patch_size=None, train=False, mean=mean, std=std)
    sample = dataset[0]["image"]
    np.testing.assert_allclose(np.asarray(sample), normalise(predicted_raw, mean, std), rtol=0, atol=1e-6)


def test_bilevel_and_palette_images_take_the_image_scale(tmp_path: Path) -> None:
    Image.fromarray(RGB[..., 0] > 127).save(tmp_path / "b.png")
    assert set(np.unique(read_image(tmp_path / "b.png"))) == {0, 255}  # like 8-bit grey
    _palette(False).save(tmp_path / "p.png")
    np.testing.assert_array_equal(
        read_image(tmp_path / "p.png"), np.moveaxis(np.asarray(_palette(False).convert("RGB")), -1, 0)
    )


def test_masks_keep_palette_indices_and_bilevel_ones(tmp_path: Path) -> None:
    labels = (np.arange(H * W).reshape(H, W) % 5).astype(np.uint8)
    palette = Image.fromarray(labels, "P")
    palette.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 0] + [0] * (3 * 251))
    palette.save(tmp_path / "classes.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "classes.png"), labels)
    Image.fromarray(labels > 2).save(tmp_path / "bilevel.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "bilevel.png"), (labels > 2).astype(np.uint8))


def test_prediction_pairs_folders_by_the_training_rule(tmp_path: Path) -> None:
    from mantis.data.folders import index_folder
    from mantis.data.masks import MaskDecoder
    from mantis.inference.predict import pair_folders
    from mantis.io import DataError

    for folder in ("A", "B", "label"):
        (tmp_path / folder).mkdir()
    Image.fromarray(RGB).save(tmp_path / "A" / "t1.png")
    Image.fromarray(RGB).save(tmp_path / "B" / "t1.jpg")  # same stem, other format
    Image.fromarray(np.zeros((H, W), np.uint8)).save(tmp_path / "label" / "t1.png")
    trained = index_folder(tmp_path, ("A", "B", "label"), MaskDecoder(2))
    assert [item.images for item in trained] == [(tmp_path / "A" / "t1.png", tmp_path / "B" / "t1.jpg")]
    assert pair_folders([tmp_path / "A", tmp_path / "B"]) == [trained[0].images]
    Image.fromarray(RGB).save(tmp_path / "B" / "t1.tif")  # two files of one stem: refused by both
    with pytest.raises(DataError, match="ambiguous"):
        pair_folders([tmp_path / "A", tmp_path / "B"])
    with pytest.raises(DataError, match="ambiguous"):
        index_folder(tmp_path, ("A", "B", "label"), MaskDecoder(2))
