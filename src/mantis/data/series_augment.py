"""Augmentation of time series that keeps the label, and the resampling it rests on (numpy, C x T arrays).

- amplitude scaling: the whole series times one factor drawn from N(1, sigma);
- jitter: Gaussian noise of standard deviation sigma added to every value;
- window slicing: a random window of (1 - fraction) of the steps, stretched back to the full length;
- time warping: the series read along a smooth, strictly increasing random time axis that keeps both end
  points (local speed exp(g(t)), g a piecewise-linear curve through a few N(0, strength) knots).

Each takes a ``numpy.random.Generator``, so a sample's augmentation depends only on its own seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "SeriesAugment",
    "amplitude_scale",
    "fill_missing",
    "jitter",
    "resample",
    "sample_at",
    "time_warp",
    "warp_path",
    "window_slice",
]

WARP_KNOTS = 4  # inner knots of the log-speed curve: a few slow and fast stretches per series


def sample_at(x: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Values of ``x`` (C x T) at fractional time ``positions`` (P,), by linear interpolation: C x P."""
    steps = np.arange(x.shape[-1])
    return np.stack([np.interp(positions, steps, channel) for channel in x]).astype(x.dtype, copy=False)


def resample(x: np.ndarray, length: int) -> np.ndarray:
    """``x`` (C x T) linearly interpolated to ``length`` evenly spaced steps with the same first and last values."""
    if length < 1:
        raise ValueError(f"length must be positive, got {length}")
    if x.shape[-1] == length:
        return x.copy()
    if x.shape[-1] == 1:
        return np.repeat(x, length, axis=-1)
    return sample_at(x, np.linspace(0.0, x.shape[-1] - 1, length))


def fill_missing(x: np.ndarray) -> np.ndarray:
    """NaNs of ``x`` (C x T) filled along time: linear between observed neighbours, the nearest observed value
    at the ends; a channel with no observed value is left NaN."""
    out = x.copy()
    steps = np.arange(x.shape[-1])
    for channel in out:
        missing = np.isnan(channel)
        if missing.any() and not missing.all():
            channel[missing] = np.interp(steps[missing], steps[~missing], channel[~missing])
    return out


def amplitude_scale(x: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """``x`` times one factor ~ N(1, sigma) for the whole series (every channel and step)."""
    return (x * rng.normal(1.0, sigma)).astype(x.dtype, copy=False)


def jitter(x: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """``x`` plus independent Gaussian noise of standard deviation ``sigma``."""
    return (x + rng.normal(0.0, sigma, x.shape)).astype(x.dtype, copy=False)


def window_slice(x: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """A random window of ``round((1 - fraction) * T)`` steps (at least 2) of ``x``, resampled to T steps."""
    length = x.shape[-1]
    keep = min(length, max(2, round((1.0 - fraction) * length)))
    start = int(rng.integers(0, length - keep + 1))
    return resample(x[:, start : start + keep], length)


def warp_path(length: int, strength: float, rng: np.random.Generator, knots: int = WARP_KNOTS) -> np.ndarray:
    """A smooth random time axis: ``length`` strictly increasing positions from 0 to ``length - 1``."""
    if length < 2:
        return np.zeros(length)
    log_speed = np.interp(
        np.linspace(0.0, knots + 1, length - 1), np.arange(knots + 2), rng.normal(0.0, strength, knots + 2)
    )
    path = np.concatenate([[0.0], np.cumsum(np.exp(log_speed))])  # positive steps: strictly increasing
    path *= (length - 1) / path[-1]
    path[-1] = length - 1  # exactly, whatever the rounding
    return path


def time_warp(x: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """``x`` read along :func:`warp_path`: same length, same first and last values."""
    return sample_at(x, warp_path(x.shape[-1], strength, rng))


@dataclass(frozen=True)
class SeriesAugment:
    """The label-keeping series augmentations of the training split (each 0 = off), applied in the order
    time warping, window slicing, amplitude scaling, jitter.

    Args:
        scale: standard deviation of the amplitude factor around 1.
        jitter: standard deviation of the added noise (in standardised units).
        window_slice: fraction of the steps cut away before stretching the window back (0 <= f < 1).
        time_warp: standard deviation of the log local speed of the warp.
    """

    scale: float = 0.0
    jitter: float = 0.0
    window_slice: float = 0.0
    time_warp: float = 0.0

    def __post_init__(self) -> None:
        for name in ("scale", "jitter", "time_warp"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
        if not 0.0 <= self.window_slice < 1.0:
            raise ValueError(f"window_slice must be in [0, 1), got {self.window_slice}")

    @property
    def active(self) -> bool:
        """Whether any augmentation is on."""
        return any((self.scale, self.jitter, self.window_slice, self.time_warp))

    def positions(self, length: int, rng: np.random.Generator) -> np.ndarray | None:
        """Where each of the ``length`` output steps reads the series (fractional steps): the time warp, then
        the window slice, composed (``None`` when both are off). Draws as :meth:`__call__` does."""
        path = warp_path(length, self.time_warp, rng) if self.time_warp else None
        if self.window_slice:
            keep = min(length, max(2, round((1.0 - self.window_slice) * length)))
            start = int(rng.integers(0, length - keep + 1))
            window = np.linspace(start, start + keep - 1, length)
            path = window if path is None else np.interp(window, np.arange(length), path)
        return path

    def with_labels(self, x: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Augmented copies of ``x`` (C x T) and of its per-step ``labels`` (T): the time axis moved for both
        (values interpolated, each label taken from the nearest step read), then amplitude and noise."""
        path = self.positions(x.shape[-1], rng)
        if path is not None:
            x = sample_at(x, path)
            labels = labels[np.rint(path).astype(np.int64)]
        return self._amplitude(x, rng), labels

    def _amplitude(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Amplitude scaling, then jitter (the augmentations that leave the time axis alone)."""
        if self.scale:
            x = amplitude_scale(x, self.scale, rng)
        if self.jitter:
            x = jitter(x, self.jitter, rng)
        return x

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """An augmented copy of ``x`` (C x T)."""
        if self.time_warp:
            x = time_warp(x, self.time_warp, rng)
        if self.window_slice:
            x = window_slice(x, self.window_slice, rng)
        return self._amplitude(x, rng)
