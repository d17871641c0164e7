"""The common last steps that turn raw arrays into a training sample of tensors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from mantis.data.augment import IMAGE_KEYS, Augment
from mantis.data.labels import hsv_colour, make_multitask_labels
from mantis.io.normalize import dtype_scale, normalize_image

__all__ = ["SampleMaker", "torch_seeded_rng"]


def torch_seeded_rng() -> np.random.Generator:
    """A NumPy generator seeded from torch's global generator.

    DataLoader seeds torch's generator in each worker from the main process's generator (which
    ``lightning.seed_everything`` seeds), so draws are reproducible, differ between workers and between
    epochs, and with ``num_workers=0`` still change from one epoch to the next.
    """
    return np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))


@dataclass(frozen=True)
class SampleMaker:
    """Augments, derives targets, normalises and converts a raw sample to tensors.

    Steps, in order: images to float32 (stored units); ``augment``; the colour target (HSV of the
    dtype-scaled RGB bands) when ``colour``; normalisation (:func:`~mantis.data.normalize.normalize_image`);
    multitask targets from the augmented mask when ``multitask``.

    Args:
        num_classes: K.
        ignore_index: Mask value of unlabelled pixels.
        mean: Per-band means in stored units, or ``None`` (uint8 / 255, other dtypes as stored).
        std: Per-band standard deviations in stored units, or ``None``.
        multitask: Add ``"segmentation"`` (one-hot), ``"boundary"`` and ``"distance"``, float32 K x H x W.
        colour: Add ``"colour"``, float32 3 x H x W HSV of ``rgb_bands`` (segmentation only).
        rgb_bands: Indices of the red, green, blue bands for ``colour``.
        augment: Augmentation applied before anything else, or ``None``.
    """

    num_classes: int
    ignore_index: int = 255
    mean: Sequence[float] | None = None
    std: Sequence[float] | None = None
    multitask: bool = False
    colour: bool = False
    rgb_bands: tuple[int, int, int] = (0, 1, 2)
    augment: Augment | None = None

    def __call__(
        self,
        raw: Mapping[str, np.ndarray],
        source_dtype: npt.DTypeLike,
        rng: np.random.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """Makes one sample.

        Args:
            raw: ``{"image" or "image1"/"image2": C x H x W stored values, "mask": H x W class ids}``.
            source_dtype: Dtype the images were stored as (picks the scale without mean/std).
            rng: Generator for the augmentation (default: seeded from torch, see :func:`torch_seeded_rng`).

        Returns:
            Images float32 C x H x W, ``"mask"`` int64 H x W, and the optional targets.
        """
        sample: dict[str, Any] = {
            key: (np.asarray(value, dtype=np.float32) if key in IMAGE_KEYS else value) for key, value in raw.items()
        }
        if self.augment is not None:
            sample = self.augment(sample, rng if rng is not None else torch_seeded_rng())
        out: dict[str, torch.Tensor] = {}
        if self.colour:
            scaled = sample["image"] * np.float32(dtype_scale(source_dtype))
            out["colour"] = torch.from_numpy(hsv_colour(scaled, self.rgb_bands))
        for key in IMAGE_KEYS:
            if key in sample:
                image = normalize_image(sample[key], self.mean, self.std, source_dtype)
                out[key] = torch.from_numpy(np.ascontiguousarray(image))
        mask = np.ascontiguousarray(sample["mask"], dtype=np.int64)
        out["mask"] = torch.from_numpy(mask)
        if self.multitask:
            for key, value in make_multitask_labels(mask, self.num_classes, self.ignore_index).items():
                out[key] = torch.from_numpy(value)
        return {key: out[key] for key in sorted(out, key=_key_order)}


def _key_order(key: str) -> int:
    order = ("image", "image1", "image2", "mask", "segmentation", "boundary", "distance", "colour")
    return order.index(key) if key in order else len(order)
