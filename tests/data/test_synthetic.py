"""Synthetic scenes: deterministic, fast, and the change mask is exactly the building change."""

from __future__ import annotations

import numpy as np
import pytest

from mantis.data.datasets import SyntheticChangeDetection, SyntheticSegmentation
from mantis.data.synthetic import synthetic_change_pair, synthetic_segmentation_scene


def test_same_seed_same_pair_other_seed_other_pair() -> None:
    first, again, other = synthetic_change_pair(7, 64), synthetic_change_pair(7, 64), synthetic_change_pair(8, 64)
    for key in first:
        assert np.array_equal(first[key], again[key])
    assert not np.array_equal(first["image1"], other["image1"])


@pytest.mark.parametrize("bands", [1, 3, 4, 8])
def test_shapes_types_and_ranges(bands: int) -> None:
    pair = synthetic_change_pair(0, (64, 96), bands)
    assert pair["image1"].shape == pair["image2"].shape == (bands, 64, 96)
    assert pair["image1"].dtype == np.float32 and pair["mask"].dtype == np.uint8
    assert pair["mask"].shape == (64, 96) and set(np.unique(pair["mask"])) <= {0, 1}
    assert pair["image1"].min() >= 0.0 and pair["image1"].max() <= 1.0


def test_change_mask_is_where_buildings_differ() -> None:
    for seed in range(6):
        pair = synthetic_change_pair(seed, 128, footprints=True)
        assert np.array_equal(pair["mask"], pair["buildings1"] ^ pair["buildings2"])
        assert pair["mask"].any()


def test_changed_pixels_differ_more_than_unchanged_ones() -> None:
    for seed in range(6):
        pair = synthetic_change_pair(seed, 256)
        difference = np.abs(pair["image1"] - pair["image2"]).sum(axis=0)
        changed = pair["mask"] == 1
        assert difference[changed].mean() > 1.5 * difference[~changed].mean()


def test_change_fraction_is_a_few_percent() -> None:
    fractions = [synthetic_change_pair(seed, 256)["mask"].mean() for seed in range(12)]
    assert 0.03 <= float(np.mean(fractions)) <= 0.15
    assert min(fractions) > 0.005 and max(fractions) < 0.25


def test_segmentation_scene_has_the_three_classes() -> None:
    scene = synthetic_segmentation_scene(3, 128, bands=4)
    assert scene["image"].shape == (4, 128, 128)
    assert set(np.unique(scene["mask"])) == {0, 1, 2}


def test_synthetic_datasets_depend_only_on_seed_split_and_index() -> None:
    data = SyntheticChangeDetection(4, size=32, seed=3)
    reversed_order = [data[i] for i in (3, 2, 1, 0)][::-1]
    for i in range(4):
        assert all(torch_equal(data[i][key], reversed_order[i][key]) for key in data[i])
    val = SyntheticChangeDetection(4, size=32, seed=3, split="val")
    assert not torch_equal(val[0]["image1"], data[0]["image1"])
    segmentation = SyntheticSegmentation(2, size=32, bands=5, multitask=True, colour=True)
    sample = segmentation[1]
    assert sample["image"].shape == (5, 32, 32) and sample["segmentation"].shape == (3, 32, 32)
    assert sample["colour"].shape == (3, 32, 32)


def torch_equal(a: object, b: object) -> bool:
    import torch

    assert isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)
    return bool(torch.equal(a, b))
