"""Multitask targets against hand-computed values."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest

from mantis.data.labels import boundary_labels, distance_labels, hsv_colour, make_multitask_labels, one_hot


def square_mask() -> np.ndarray:
    mask = np.zeros((8, 8), dtype=np.int64)
    mask[2:6, 2:6] = 1  # a 4 x 4 building
    return mask


def test_boundary_of_a_square_is_its_rim_dilated_by_a_cross() -> None:
    boundary = boundary_labels(square_mask(), 2)
    # Class 1: the square's 12 rim pixels, grown by one pixel through the 4 sides (not the corners).
    expected_1 = np.array(
        [
            [0, 0, 0, 0, 0, 0, 0, 0],
            [0, 0, 1, 1, 1, 1, 0, 0],
            [0, 1, 1, 1, 1, 1, 1, 0],
            [0, 1, 1, 1, 1, 1, 1, 0],
            [0, 1, 1, 1, 1, 1, 1, 0],
            [0, 1, 1, 1, 1, 1, 1, 0],
            [0, 0, 1, 1, 1, 1, 0, 0],
            [0, 0, 0, 0, 0, 0, 0, 0],
        ]
    )
    # Class 0: the 16 background pixels touching the square's sides, grown by the cross.
    expected_0 = np.array(
        [
            [0, 0, 1, 1, 1, 1, 0, 0],
            [0, 1, 1, 1, 1, 1, 1, 0],
            [1, 1, 1, 1, 1, 1, 1, 1],
            [1, 1, 1, 0, 0, 1, 1, 1],
            [1, 1, 1, 0, 0, 1, 1, 1],
            [1, 1, 1, 1, 1, 1, 1, 1],
            [0, 1, 1, 1, 1, 1, 1, 0],
            [0, 0, 1, 1, 1, 1, 0, 0],
        ]
    )
    assert boundary.dtype == np.float32
    assert np.array_equal(boundary[1], expected_1)
    assert np.array_equal(boundary[0], expected_0)


def test_distance_of_a_square_is_normalised_edt() -> None:
    distance = distance_labels(square_mask(), 2)
    expected_1 = np.zeros((8, 8))
    expected_1[2:6, 2:6] = 0.5  # rim: 1 pixel from the background, max is 2
    expected_1[3:5, 3:5] = 1.0
    assert np.allclose(distance[1], expected_1)
    # Background corner (0, 0): nearest square pixel is (2, 2), at sqrt(8); the farthest background
    # pixels are the four corners, so they normalise to 1; (1, 1) is at sqrt(2) -> sqrt(2)/sqrt(8) = 0.5.
    assert distance[0][0, 0] == pytest.approx(1.0)
    assert distance[0][1, 1] == pytest.approx(0.5)
    assert distance[0][1, 3] == pytest.approx(1 / np.sqrt(8))
    assert np.all(distance[0][2:6, 2:6] == 0)


def test_one_dimensional_and_three_dimensional_masks() -> None:
    line = np.array([0, 1, 1, 1, 1, 1, 0])
    assert np.allclose(distance_labels(line, 2)[1], [0, 1 / 3, 2 / 3, 1, 2 / 3, 1 / 3, 0])
    assert np.array_equal(boundary_labels(line, 2)[1], [1, 1, 1, 0, 1, 1, 1])
    cube = np.zeros((5, 5, 5), dtype=np.int64)
    cube[1:4, 1:4, 1:4] = 1
    labels = make_multitask_labels(cube, 2)
    assert {key: value.shape for key, value in labels.items()} == {
        "segmentation": (2, 5, 5, 5),
        "boundary": (2, 5, 5, 5),
        "distance": (2, 5, 5, 5),
    }
    assert labels["distance"][1][2, 2, 2] == 1.0 and labels["boundary"][1][2, 2, 2] == 1.0


def test_ignored_pixels_are_zero_and_make_no_edges() -> None:
    mask = np.zeros((12, 12), dtype=np.int64)
    mask[2:10, 2:10] = 1
    assert boundary_labels(mask, 2)[1][5, 9] == 1  # right rim of the square, next to background
    mask[:, 10:] = 255  # now the square's right side touches unlabelled pixels only
    labels = make_multitask_labels(mask, 2, ignore_index=255)
    for target in labels.values():
        assert np.all(target[:, :, 10:] == 0)
    assert labels["boundary"][1][5, 9] == 0 and labels["boundary"][1][5, 2] == 1
    assert labels["distance"][1][5, 9] == 1.0  # 4 pixels from the background on the left, the maximum
    assert labels["segmentation"].sum(axis=0)[:, :10].min() == 1


def test_class_filling_the_chip_and_absent_class() -> None:
    labels = make_multitask_labels(np.ones((4, 4), dtype=np.int64), 3)
    assert np.all(labels["distance"][1] == 1) and np.all(labels["distance"][[0, 2]] == 0)
    assert np.all(labels["boundary"] == 0)
    assert np.array_equal(labels["segmentation"], one_hot(np.ones((4, 4), dtype=np.int64), 3))


def test_values_outside_the_classes_are_refused() -> None:
    with pytest.raises(ValueError, match="mask value 3"):
        make_multitask_labels(np.array([[0, 3]]), 2)


def test_hsv_matches_colorsys() -> None:
    rng = np.random.default_rng(0)
    image = rng.random((4, 6, 5)).astype(np.float32)
    image[:3, 0, 0] = 0.5  # grey: hue and saturation 0
    image[:3, 0, 1] = 0.0  # black
    hsv = hsv_colour(image, rgb_bands=(0, 1, 2))
    for i in range(6):
        for j in range(5):
            assert np.allclose(hsv[:, i, j], colorsys.rgb_to_hsv(*image[:3, i, j]), atol=1e-6)
    assert np.allclose(hsv_colour(image, rgb_bands=(2, 1, 0))[2], image[:3].max(axis=0))
