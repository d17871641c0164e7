"""Series augmentation keeps what defines it: one factor per series, noise of the asked size, the length,
a monotone warp that keeps both end points; resampling and gap filling against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from mantis.data.series_augment import (
    SeriesAugment,
    amplitude_scale,
    fill_missing,
    jitter,
    resample,
    time_warp,
    warp_path,
    window_slice,
)


def _series(channels: int = 3, length: int = 50, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(channels, length)) + 2.0  # no zeros: ratios are defined


def test_amplitude_scaling_multiplies_by_one_factor_per_series() -> None:
    x = _series()
    rng = np.random.default_rng(1)
    first, second = amplitude_scale(x, 0.2, rng), amplitude_scale(x, 0.2, rng)
    ratios = first / x
    np.testing.assert_allclose(ratios, ratios[0, 0])  # the same factor on every channel and step
    assert ratios[0, 0] != pytest.approx(1.0) and (second / x)[0, 0] != pytest.approx(ratios[0, 0])


def test_jitter_adds_noise_of_the_given_deviation() -> None:
    x = _series(channels=4, length=5000)
    noise = jitter(x, 0.3, np.random.default_rng(2)) - x
    assert abs(noise.mean()) < 0.01 and noise.std() == pytest.approx(0.3, rel=0.02)
    assert abs(np.corrcoef(noise[0, :-1], noise[0, 1:])[0, 1]) < 0.05  # independent from step to step


def test_window_slicing_keeps_the_length_and_stretches_one_window() -> None:
    length, fraction = 40, 0.25
    ramp = np.arange(length, dtype=float)[None]
    out = window_slice(ramp, fraction, np.random.default_rng(3))
    keep = round((1 - fraction) * length)  # 30 steps
    assert out.shape == (1, length)
    start = out[0, 0]
    assert start == int(start) and 0 <= start <= length - keep
    # a ramp sliced and stretched is the ramp from start to start + keep - 1 over `length` even steps
    np.testing.assert_allclose(out[0], np.linspace(start, start + keep - 1, length))


def test_time_warp_is_monotone_and_keeps_the_end_points() -> None:
    length = 60
    path = warp_path(length, 0.5, np.random.default_rng(4))
    assert path[0] == 0 and path[-1] == length - 1 and bool((np.diff(path) > 0).all())
    assert np.abs(path - np.arange(length)).max() > 1  # it does move the steps
    ramp = np.arange(length, dtype=float)[None]
    np.testing.assert_allclose(time_warp(ramp, 0.5, np.random.default_rng(4))[0], path)  # a ramp shows the path
    x = _series(length=length)
    warped = time_warp(x, 0.5, np.random.default_rng(5))
    assert warped.shape == x.shape
    np.testing.assert_allclose(warped[:, [0, -1]], x[:, [0, -1]])


def test_resample_and_fill_missing_by_hand() -> None:
    np.testing.assert_allclose(resample(np.array([[0.0, 1.0, 2.0]]), 5), [[0, 0.5, 1, 1.5, 2]])
    np.testing.assert_allclose(resample(np.array([[0.0, 4.0, 8.0, 12.0, 16.0]]), 3), [[0, 8, 16]])
    np.testing.assert_allclose(resample(np.array([[7.0]]), 3), [[7, 7, 7]])
    filled = fill_missing(np.array([[np.nan, 1.0, np.nan, 3.0, np.nan], [np.nan] * 5]))
    np.testing.assert_allclose(filled[0], [1, 1, 2, 3, 3])
    assert np.isnan(filled[1]).all()  # never observed: left for the caller


def test_augment_is_off_by_default_and_reproducible_per_seed() -> None:
    assert not SeriesAugment().active
    augment = SeriesAugment(scale=0.1, jitter=0.05, window_slice=0.1, time_warp=0.2)
    x = _series()
    a, b = augment(x, np.random.default_rng(6)), augment(x, np.random.default_rng(6))
    np.testing.assert_array_equal(a, b)
    assert a.shape == x.shape and not np.allclose(a, x)
    with pytest.raises(ValueError, match=r"window_slice must be in \[0, 1\), got 1.0"):
        SeriesAugment(window_slice=1.0)
    with pytest.raises(ValueError, match="jitter must not be negative"):
        SeriesAugment(jitter=-0.1)


def test_per_step_labels_move_with_the_values() -> None:
    augment = SeriesAugment(window_slice=0.3, time_warp=0.4)
    ramp = np.arange(64, dtype=np.float64)[None]  # the value of each step is its position
    labels = (np.arange(64) // 8).astype(np.uint8)
    for seed in range(5):
        # the composed positions read the series exactly as the two steps of __call__ do (same draws)
        path = augment.positions(64, np.random.default_rng(seed))
        assert path is not None
        np.testing.assert_allclose(augment(ramp, np.random.default_rng(seed))[0], path, atol=1e-9)
        x, moved = augment.with_labels(ramp, labels, np.random.default_rng(seed))
        np.testing.assert_allclose(x[0], path, atol=1e-9)
        assert np.array_equal(moved, np.rint(x[0]).astype(np.int64) // 8)  # each label from the step read
        assert not np.array_equal(moved, labels)  # the augmentation moved them
    assert SeriesAugment(scale=0.1).positions(64, np.random.default_rng(0)) is None
