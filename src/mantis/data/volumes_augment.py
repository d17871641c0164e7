"""3D augmentation that keeps labels: flips along chosen axes, quarter turns in chosen planes, and intensity
changes of the image alone (per-channel gain and offset, Gaussian noise).

Flips and turns move voxels without interpolating, so images and label volumes stay exactly aligned and every
label stays a label. A quarter turn swaps two axes, so it is only right where the voxel spacing of the two axes
is the same (an in-plane rotation of an anisotropic scan, never one that swaps a 1 mm axis with a 5 mm one):
the data module checks the planes against the files' spacing, and the turns of a plane whose patch sides differ
are half turns only (the patch keeps its shape).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["VolumeAugment"]


@dataclass(frozen=True)
class VolumeAugment:
    """Random flips and quarter turns of C x X x Y x Z volumes and their X x Y x Z labels.

    Args:
        flip_axes: spatial axes (0, 1, 2) that are each flipped with probability ``flip_p``.
        flip_p: probability of each flip.
        rotate_planes: planes ``(a, b)`` of spatial axes in which the volume turns by 0, 1, 2 or 3 quarter turns,
            uniformly (0 and 2 only where the sizes along ``a`` and ``b`` differ).
        gain: each channel times a factor drawn from N(1, ``gain``) (0: off).
        offset: each channel plus a value drawn from N(0, ``offset``), in standardised units (0: off).
        noise: Gaussian noise of standard deviation ``noise`` on every voxel, standardised units (0: off).
    """

    flip_axes: Sequence[int] = ()
    flip_p: float = 0.5
    rotate_planes: Sequence[Sequence[int]] = field(default_factory=tuple)
    gain: float = 0.0
    offset: float = 0.0
    noise: float = 0.0

    def __post_init__(self) -> None:
        for name in ("gain", "offset", "noise"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
        axes = [int(a) for a in self.flip_axes]
        if any(a not in (0, 1, 2) for a in axes):
            raise ValueError(f"flip_axes must be spatial axes 0, 1 or 2, got {list(self.flip_axes)}")
        if not 0.0 <= self.flip_p <= 1.0:
            raise ValueError(f"flip_p must be in [0, 1], got {self.flip_p}")
        planes = []
        for plane in self.rotate_planes:
            pair = tuple(int(a) for a in plane)
            if len(pair) != 2 or pair[0] == pair[1] or any(a not in (0, 1, 2) for a in pair):
                raise ValueError(f"rotate_planes holds pairs of different spatial axes 0-2, got {list(plane)}")
            planes.append(pair)
        object.__setattr__(self, "flip_axes", tuple(axes))
        object.__setattr__(self, "rotate_planes", tuple(planes))

    @property
    def active(self) -> bool:
        """Whether anything can change."""
        return bool(
            (self.flip_axes and self.flip_p > 0) or self.rotate_planes or self.gain or self.offset or self.noise
        )

    def __call__(
        self, image: np.ndarray, labels: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """The same random flips and turns of ``image`` (C x X x Y x Z) and ``labels`` (X x Y x Z)."""
        for axis in self.flip_axes:
            if rng.random() < self.flip_p:
                image, labels = np.flip(image, axis + 1), np.flip(labels, axis)
        for a, b in self.rotate_planes:
            turns = int(rng.integers(0, 4))
            if labels.shape[a] != labels.shape[b]:
                turns = 2 * (turns % 2)  # a quarter turn would change the patch's shape
            if turns:
                image, labels = np.rot90(image, turns, (a + 1, b + 1)), np.rot90(labels, turns, (a, b))
        if self.gain or self.offset or self.noise:
            shape = (image.shape[0], 1, 1, 1)
            scale = rng.normal(1.0, self.gain, shape) if self.gain else 1.0
            shift = rng.normal(0.0, self.offset, shape) if self.offset else 0.0
            image = (image * scale + shift).astype(np.float32)
            if self.noise:
                image += rng.normal(0.0, self.noise, image.shape).astype(np.float32)
        return np.ascontiguousarray(image), np.ascontiguousarray(labels)
