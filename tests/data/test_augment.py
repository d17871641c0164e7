"""Augmentation never changes what a label means."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mantis.data.augment import Augment, d4_transform

PHOTOMETRY_OFF: dict[str, Any] = {"brightness_p": 0.0, "colour_p": 0.0, "contrast_p": 0.0, "shadow_p": 0.0}
GEOMETRY_ONLY: dict[str, Any] = {**PHOTOMETRY_OFF, "time_reversal_p": 0.0, "identity_p": 0.0}


def coded_pair(size: int = 16, bands: int = 3) -> dict[str, np.ndarray]:
    """Images whose band 0 carries each pixel's position, band 1 the mask value."""
    position = np.arange(size * size, dtype=np.float32).reshape(size, size)
    mask = (np.random.default_rng(0).random((size, size)) < 0.3).astype(np.int64)
    image = np.stack([position, mask.astype(np.float32)] + [position * 2] * (bands - 2))
    return {"image1": image, "image2": image + 1000.0, "mask": mask}


def test_the_eight_d4_elements_are_distinct_exact_permutations() -> None:
    grid = np.arange(25).reshape(5, 5)
    results = {d4_transform(grid, k, flip).tobytes() for k in range(4) for flip in (False, True)}
    assert len(results) == 8
    for k in range(4):
        for flip in (False, True):
            assert np.array_equal(np.sort(d4_transform(grid, k, flip), axis=None), grid.ravel())


@given(st.integers(0, 2**31 - 1), st.integers(1, 6), st.integers(2, 12))
@settings(max_examples=25, deadline=None)
def test_d4_moves_images_masks_and_both_dates_together(seed: int, bands: int, size: int) -> None:
    sample = coded_pair(size, max(bands, 2))
    out = Augment(rotate_zoom_p=0.0, **GEOMETRY_ONLY)(sample, seed)
    assert np.array_equal(np.sort(out["image1"][0], axis=None), np.sort(sample["image1"][0], axis=None))
    assert np.array_equal(out["image1"][1], out["mask"].astype(np.float32))  # mask moved like the image
    assert np.array_equal(out["image2"], out["image1"] + 1000.0)  # both dates moved alike


def test_all_eight_d4_elements_occur() -> None:
    sample = coded_pair(8)
    augment = Augment(rotate_zoom_p=0.0, **GEOMETRY_ONLY)
    seen = {augment(sample, seed)["image1"][0].tobytes() for seed in range(200)}
    assert len(seen) == 8


def test_rotation_zoom_same_geometry_everywhere_and_labels_stay_labels() -> None:
    rng = np.random.default_rng(1)
    image = rng.random((4, 32, 32)).astype(np.float32)
    mask = np.zeros((32, 32), dtype=np.int64)
    mask[8:24, 10:20] = 1
    sample = {"image1": image, "image2": image.copy(), "mask": mask}
    augment = Augment(d4=False, rotate_zoom_p=1.0, zoom_min=0.75, zoom_max=0.8, **GEOMETRY_ONLY)
    out = augment(sample, 3)
    assert np.array_equal(out["image1"], out["image2"])
    assert not np.allclose(out["image1"], image)
    assert set(np.unique(out["mask"])) <= {0, 1}
    ignoring = Augment(d4=False, rotate_zoom_p=1.0, zoom_min=0.75, zoom_max=0.8, fill="ignore", **GEOMETRY_ONLY)
    out = ignoring(sample, 3)
    assert set(np.unique(out["mask"])) == {0, 1, 255}
    assert out["mask"][0, 0] == 255 and out["mask"][16, 16] != 255  # corners come from outside


def test_rotation_zoom_keeps_a_mask_aligned_with_its_image() -> None:
    mask = np.zeros((48, 48), dtype=np.int64)
    mask[10:30, 14:40] = 1
    sample = {"image": mask[None].astype(np.float32), "mask": mask}
    augment = Augment(d4=False, rotate_zoom_p=1.0, **GEOMETRY_ONLY)
    for seed in range(5):
        out = augment(sample, seed)
        agree = (out["image"][0] > 0.5) == (out["mask"] == 1)
        assert agree.mean() > 0.97  # they differ only along edges (bilinear vs nearest)


def test_time_reversal_swaps_the_dates_and_keeps_the_mask() -> None:
    sample = coded_pair()
    out = Augment(d4=False, rotate_zoom_p=0.0, time_reversal_p=1.0, identity_p=0.0, **PHOTOMETRY_OFF)(sample, 0)
    assert np.array_equal(out["image1"], sample["image2"]) and np.array_equal(out["image2"], sample["image1"])
    assert np.array_equal(out["mask"], sample["mask"])


def test_random_identity_shows_one_date_twice_with_no_change() -> None:
    sample = coded_pair()
    sample["mask"][0, :3] = 255  # unlabelled pixels stay unlabelled
    augment = Augment(d4=False, rotate_zoom_p=0.0, time_reversal_p=0.0, identity_p=1.0, **PHOTOMETRY_OFF)
    dates = set()
    for seed in range(10):
        out = augment(sample, seed)
        assert np.array_equal(out["image1"], out["image2"])
        assert set(np.unique(out["mask"])) == {0, 255} and np.all(out["mask"][0, :3] == 255)
        dates.add(float(out["image1"].min()))
    assert dates == {0.0, 1000.0}  # either date may be the one shown


def test_brightness_and_shadows_touch_images_only() -> None:
    sample = coded_pair()
    sample["image1"] += 1.0
    augment = Augment(
        d4=False, rotate_zoom_p=0.0, brightness_p=1.0, shadow_p=1.0, time_reversal_p=0.0, identity_p=0.0, colour_p=0.0
    )
    augment = dataclasses.replace(augment, contrast_p=0.0)
    out = augment(sample, 5)
    assert np.array_equal(out["mask"], sample["mask"])
    gain = out["image1"] / sample["image1"]
    assert gain.min() >= 0.4 * 0.8 - 1e-6 and gain.max() <= 1.2 + 1e-6
    assert not np.allclose(gain, gain.flat[0])  # the shadow darkens part of the image only


def test_colour_and_contrast_change_each_date_on_its_own() -> None:
    rng = np.random.default_rng(0)
    image = rng.uniform(10, 20, (3, 16, 16)).astype(np.float32)
    sample = {"image1": image, "image2": image.copy(), "mask": np.zeros((16, 16), np.int64)}
    colour = Augment(
        d4=False, rotate_zoom_p=0.0, time_reversal_p=0.0, identity_p=0.0, **{**PHOTOMETRY_OFF, "colour_p": 1.0}
    )
    out = colour(sample, 1)
    gains = (out["image1"] / image).reshape(3, -1)
    assert np.allclose(gains, gains[:, :1], rtol=1e-5)  # one gain per band
    assert np.all(np.abs(gains - 1) <= 0.1 + 1e-6) and len(np.unique(gains[:, 0].round(6))) == 3
    assert not np.allclose(out["image1"], out["image2"])  # the dates drew their own gains
    contrast = Augment(
        d4=False, rotate_zoom_p=0.0, time_reversal_p=0.0, identity_p=0.0, **{**PHOTOMETRY_OFF, "contrast_p": 1.0}
    )
    out = contrast(sample, 2)
    mean = image.mean((1, 2), keepdims=True)
    factor = (out["image1"] - mean) / (image - mean)
    assert np.allclose(out["image1"].mean((1, 2)), mean[:, 0, 0], rtol=1e-5)  # the band means stay
    assert np.allclose(factor, factor.flat[0], rtol=1e-3) and 0.7 - 1e-6 <= factor.flat[0] <= 1.3 + 1e-6
    assert np.array_equal(out["mask"], sample["mask"])


def test_same_seed_same_result_and_input_untouched() -> None:
    sample = coded_pair()
    copy = {key: value.copy() for key, value in sample.items()}
    augment = Augment(rotate_zoom_p=0.5, shadow_p=0.5)
    first, second = augment(sample, 42), augment(sample, 42)
    for key in sample:
        assert np.array_equal(first[key], second[key])
        assert np.array_equal(sample[key], copy[key])


def test_torch_tensors_come_back_as_tensors() -> None:
    sample = {key: torch.from_numpy(value) for key, value in coded_pair().items()}
    out = Augment(rotate_zoom_p=1.0)(sample, 0)
    assert isinstance(out["image1"], torch.Tensor) and out["image1"].dtype == torch.float32
    assert isinstance(out["mask"], torch.Tensor) and out["mask"].dtype == torch.int64


def test_non_square_samples_keep_their_shape() -> None:
    sample = {"image": np.zeros((2, 8, 12), np.float32), "mask": np.zeros((8, 12), np.int64)}
    for seed in range(10):
        out = Augment(rotate_zoom_p=0.5)(sample, seed)
        assert out["image"].shape == (2, 8, 12) and out["mask"].shape == (8, 12)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"identity_p": 1.5}, "identity_p"), ({"zoom_min": 2.0}, "zoom_min"), ({"fill": "zero"}, "fill")],
)
def test_bad_settings_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Augment(**kwargs)  # type: ignore[arg-type]
