"""Label-preserving augmentation of sample dicts (single images or bi-temporal pairs).

A sample is a dict holding ``"image"`` (segmentation) or ``"image1"`` and ``"image2"`` (change detection),
each C x H x W with any band count, and usually ``"mask"`` (H x W class ids). Other arrays whose last two
axes are H x W are treated like masks (same geometry, nearest neighbour); other values pass through.
Arrays may be NumPy arrays or torch tensors; each comes back as the same kind (images as float32).

Nothing here changes what a label means: geometry is applied identically to every date and the mask;
brightness and shadows touch images only; time reversal swaps the dates (change is symmetric, the mask
stays); random identity shows the same image twice with an all no-change mask.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from scipy import ndimage

from mantis.data.shapes import polygon_mask, random_polygon

__all__ = ["Augment", "IMAGE_KEYS", "d4_transform"]

IMAGE_KEYS = ("image", "image1", "image2")


def d4_transform(array: np.ndarray, k: int, flip: bool) -> np.ndarray:
    """One of the 8 symmetries of the square on the last two axes: ``k`` quarter turns, then a flip.

    Args:
        array: ... x H x W array.
        k: Number of counter-clockwise quarter turns (0 to 3).
        flip: Whether to mirror left-right after turning.

    Returns:
        The transformed array (a view where NumPy allows; ... x W x H for odd ``k``).
    """
    out = np.rot90(array, k, axes=(-2, -1))
    return out[..., ::-1] if flip else out


@dataclass(frozen=True)
class Augment:
    """Seeded, configurable, label-preserving augmentation; call it as ``augment(sample, rng)``.

    Order of operations: random identity, time reversal, D4, rotation with zoom, then brightness, colour
    balance, contrast and shadows drawn independently for each date (so differences of light, season and
    sensor between dates are seen as no change). Images are expected as float32 in any units (gains are
    multiplicative, so raw digital numbers, reflectances or [0, 1] values all work); normalise after
    augmenting.

    Args:
        d4: Apply one of the 8 flips/quarter-turn rotations, uniformly at random (only the 4 that keep
            the shape when the sample is not square).
        rotate_zoom_p: Probability of a rotation by an angle in [-max_angle, max_angle] degrees combined
            with a zoom factor in [zoom_min, zoom_max] (> 1 magnifies), about the centre. Images use
            bilinear, masks nearest-neighbour interpolation.
        max_angle: Largest rotation angle in degrees.
        zoom_min: Smallest zoom factor.
        zoom_max: Largest zoom factor.
        fill: What fills pixels that rotation or zoom-out bring in from outside the sample: ``"reflect"``
            mirrors the sample (images and mask alike, so labels stay true); ``"ignore"`` mirrors images
            but sets those mask pixels to ``ignore_index`` (the loss must then skip them).
        brightness_p: Probability, per image, of multiplying it by a gain in [1 - brightness, 1 + brightness].
        brightness: Largest relative brightness change.
        colour_p: Probability, per image, of multiplying each band by its own gain in
            [1 - colour, 1 + colour] (a shift of colour balance, as between two acquisitions).
        colour: Largest relative change of one band.
        contrast_p: Probability, per image, of scaling each band's deviations from its mean by a factor in
            [1 - contrast, 1 + contrast] (haze, season, sensor: the mean stays).
        contrast: Largest relative contrast change.
        shadow_p: Probability, per image, of darkening a random polygon (3 to 7 vertices, radius 5% to 35%
            of the sample size, soft edge) by a gain in [shadow_gain_min, shadow_gain_max].
        shadow_gain_min: Darkest shadow gain.
        shadow_gain_max: Lightest shadow gain.
        time_reversal_p: Probability of swapping ``image1`` and ``image2`` (mask unchanged).
        identity_p: Probability of replacing a pair by one of its dates shown twice, with the mask set to 0
            (no change) except where it equals ``ignore_index``.
        ignore_index: Mask value of unlabelled pixels.
    """

    d4: bool = True
    rotate_zoom_p: float = 0.25
    max_angle: float = 85.0
    zoom_min: float = 0.75
    zoom_max: float = 1.25
    fill: Literal["reflect", "ignore"] = "reflect"
    brightness_p: float = 0.5
    brightness: float = 0.2
    colour_p: float = 0.5
    colour: float = 0.1
    contrast_p: float = 0.5
    contrast: float = 0.3
    shadow_p: float = 0.2
    shadow_gain_min: float = 0.4
    shadow_gain_max: float = 0.8
    time_reversal_p: float = 0.5
    identity_p: float = 0.05
    ignore_index: int = 255

    def __post_init__(self) -> None:
        for name in (
            "rotate_zoom_p",
            "brightness_p",
            "colour_p",
            "contrast_p",
            "shadow_p",
            "time_reversal_p",
            "identity_p",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"Augment.{name} must be a probability in [0, 1], got {value}")
        if not 0.0 < self.zoom_min <= self.zoom_max:
            raise ValueError(f"Augment needs 0 < zoom_min <= zoom_max, got {self.zoom_min}, {self.zoom_max}")
        for name in ("brightness", "colour", "contrast"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"Augment.{name} must be in [0, 1), got {getattr(self, name)}")
        if not 0.0 <= self.shadow_gain_min <= self.shadow_gain_max <= 1.0:
            raise ValueError("Augment needs 0 <= shadow_gain_min <= shadow_gain_max <= 1")
        if self.fill not in ("reflect", "ignore"):
            raise ValueError(f"Augment.fill must be 'reflect' or 'ignore', got {self.fill!r}")

    def __call__(self, sample: Mapping[str, Any], rng: np.random.Generator | int | None = None) -> dict[str, Any]:
        """Augments one sample; the input is not modified.

        Args:
            sample: ``{"image": C x H x W, "mask": H x W, ...}`` or ``{"image1", "image2", "mask", ...}``.
            rng: NumPy generator or seed; the same seed gives the same augmentation.

        Returns:
            A new dict with the same keys; images float32, masks in their dtype.
        """
        rng = np.random.default_rng(rng)
        out, restore = _to_numpy(sample)
        if "image1" in out and "image2" in out:
            self._pair_ops(out, rng)
        self._geometry(out, rng)
        for key in IMAGE_KEYS:
            if key in out:
                out[key] = self._photometric(out[key], rng)
        return restore(out)

    def _pair_ops(self, out: dict[str, Any], rng: np.random.Generator) -> None:
        if rng.random() < self.identity_p:
            date = out["image1"] if rng.random() < 0.5 else out["image2"]
            out["image1"], out["image2"] = date, date.copy()
            if "mask" in out:
                mask = out["mask"]
                out["mask"] = np.where(mask == self.ignore_index, mask, np.zeros_like(mask))
        if rng.random() < self.time_reversal_p:
            out["image1"], out["image2"] = out["image2"], out["image1"]

    def _spatial_keys(self, out: dict[str, Any], size: tuple[int, int]) -> list[str]:
        return [
            key
            for key, value in out.items()
            if isinstance(value, np.ndarray) and value.ndim >= 2 and value.shape[-2:] == size
        ]

    def _geometry(self, out: dict[str, Any], rng: np.random.Generator) -> None:
        images = [key for key in IMAGE_KEYS if key in out]
        if not images:
            raise ValueError(f"Augment needs one of the keys {IMAGE_KEYS}, got {sorted(out)}")
        size = tuple(out[images[0]].shape[-2:])
        keys = self._spatial_keys(out, size)  # type: ignore[arg-type]
        if self.d4:
            square = size[0] == size[1]
            k = int(rng.integers(4)) if square else 2 * int(rng.integers(2))
            flip = bool(rng.integers(2))
            for key in keys:
                out[key] = np.ascontiguousarray(d4_transform(out[key], k, flip))
        if rng.random() < self.rotate_zoom_p:
            angle = np.deg2rad(rng.uniform(-self.max_angle, self.max_angle))
            zoom = rng.uniform(self.zoom_min, self.zoom_max)
            for key in keys:
                out[key] = self._rotate_zoom(out[key], angle, zoom, is_image=key in IMAGE_KEYS)

    def _rotate_zoom(self, array: np.ndarray, angle: float, zoom: float, is_image: bool) -> np.ndarray:
        height, width = array.shape[-2:]
        cos, sin = np.cos(angle), np.sin(angle)
        matrix = np.array([[cos, -sin], [sin, cos]]) / zoom
        centre = np.array([(height - 1) / 2.0, (width - 1) / 2.0])
        offset = centre - matrix @ centre
        if is_image:
            order, mode, cval = 1, "reflect", 0.0
        elif self.fill == "ignore":
            order, mode, cval = 0, "constant", float(self.ignore_index)
        else:
            order, mode, cval = 0, "reflect", 0.0
        flat = array.reshape((-1, height, width))
        out = np.empty_like(flat)
        for i, band in enumerate(flat):
            ndimage.affine_transform(band, matrix, offset, output=out[i], order=order, mode=mode, cval=cval)
        return out.reshape(array.shape)

    def _photometric(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.random() < self.brightness_p:
            image = image * np.float32(1.0 + rng.uniform(-self.brightness, self.brightness))
        bands = (-1,) + (1,) * (image.ndim - 1)
        if self.colour_p and rng.random() < self.colour_p:  # no draw when off (runs without it replay exactly)
            gains = 1.0 + np.asarray(rng.uniform(-self.colour, self.colour, size=image.shape[0]))
            image = image * gains.astype(np.float32).reshape(bands)
        if self.contrast_p and rng.random() < self.contrast_p:
            mean = image.reshape(image.shape[0], -1).mean(1).reshape(bands)
            image = mean + np.float32(1.0 + rng.uniform(-self.contrast, self.contrast)) * (image - mean)
        if rng.random() < self.shadow_p:
            image = image * self._shadow_gain(image.shape[-2:], rng)
        return image

    def _shadow_gain(self, size: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        height, width = int(size[0]), int(size[1])
        extent = min(height, width)
        centre = (rng.uniform(0, height - 1), rng.uniform(0, width - 1))
        vertices = random_polygon(rng, centre, 0.05 * extent, 0.35 * extent, int(rng.integers(3, 8)))
        inside = polygon_mask(vertices, (height, width)).astype(np.float32)
        inside = ndimage.uniform_filter(inside, size=3, mode="nearest")
        gain = rng.uniform(self.shadow_gain_min, self.shadow_gain_max)
        return (1.0 - (1.0 - gain) * inside).astype(np.float32)


def _to_numpy(sample: Mapping[str, Any]) -> tuple[dict[str, Any], Any]:
    """Copies a sample to NumPy (images float32) and returns a function restoring the original kinds."""
    out: dict[str, Any] = {}
    kinds: dict[str, tuple[torch.dtype, torch.device] | None] = {}
    for key, value in sample.items():
        if isinstance(value, torch.Tensor):
            kinds[key] = (value.dtype, value.device)
            value = value.detach().cpu().numpy()
        elif isinstance(value, np.ndarray):
            kinds[key] = None
        else:
            out[key] = value
            continue
        if key in IMAGE_KEYS:
            value = value.astype(np.float32, copy=False)
        out[key] = value

    def restore(result: dict[str, Any]) -> dict[str, Any]:
        for key, kind in kinds.items():
            array = np.ascontiguousarray(result[key])
            if kind is not None:
                dtype = torch.float32 if key in IMAGE_KEYS else kind[0]
                result[key] = torch.from_numpy(array).to(device=kind[1], dtype=dtype)
            else:
                result[key] = array
        return result

    return out, restore
