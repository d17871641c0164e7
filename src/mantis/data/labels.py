"""Targets made on the fly from a class mask: one-hot segmentation, boundaries, distances, HSV colour.

All functions are dimension-generic: a mask of shape S (any number of spatial axes, 1D, 2D or 3D) gives
targets of shape K x S. Pixels equal to ``ignore_index`` are unlabelled: they are 0 in every channel of
every target, they do not create boundaries, and they do not count as "outside" a class for distances
(so a region next to unlabelled pixels gets no edge there). Losses must mask them out using the mask.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from scipy import ndimage

__all__ = [
    "boundary_labels",
    "boundary_shares",
    "class_shares",
    "distance_labels",
    "hsv_colour",
    "make_multitask_labels",
    "one_hot",
]


def _class_masks(mask: np.ndarray, num_classes: int, ignore_index: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Returns (K x S boolean class membership, S boolean ignore) after checking the values."""
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")
    mask = np.asarray(mask)
    ignore = mask == ignore_index if ignore_index is not None else np.zeros(mask.shape, dtype=bool)
    labelled = mask[~ignore]
    if labelled.size and (labelled.min() < 0 or labelled.max() >= num_classes):
        bad = labelled[(labelled < 0) | (labelled >= num_classes)][0]
        raise ValueError(f"mask value {bad} is neither a class in [0, {num_classes}) nor ignore_index={ignore_index}")
    classes = np.arange(num_classes).reshape((num_classes,) + (1,) * mask.ndim)
    return mask[None] == classes, ignore


def one_hot(mask: np.ndarray, num_classes: int, ignore_index: int | None = 255) -> np.ndarray:
    """One-hot encodes a class mask.

    Args:
        mask: Integer class ids, shape S.
        num_classes: K.
        ignore_index: Value of unlabelled pixels (all-zero one-hot), or ``None``.

    Returns:
        float32 array K x S.
    """
    members, _ = _class_masks(mask, num_classes, ignore_index)
    return members.astype(np.float32)


def boundary_labels(mask: np.ndarray, num_classes: int, ignore_index: int | None = 255) -> np.ndarray:
    """Per-class boundaries: the class's inner edge (1 pixel thin), dilated by a cross.

    A pixel of class k is on its edge when one of its face neighbours (4-neighbours in 2D) holds another
    class. The chip border and unlabelled pixels are not edges. The edge is then dilated once with the
    cross-shaped structuring element (3 x 3 cross in 2D), so each boundary is about 3 pixels wide.

    Args:
        mask: Integer class ids, shape S.
        num_classes: K.
        ignore_index: Value of unlabelled pixels, or ``None``.

    Returns:
        float32 array K x S with values in {0, 1}.
    """
    members, ignore = _class_masks(mask, num_classes, ignore_index)
    cross = ndimage.generate_binary_structure(members.ndim - 1, 1)
    out = np.zeros(members.shape, dtype=np.float32)
    for k, inside in enumerate(members):
        if not inside.any() or (inside | ignore).all():
            continue
        interior = ndimage.binary_erosion(inside | ignore, structure=cross, border_value=1)
        edge = inside & ~interior
        out[k] = ndimage.binary_dilation(edge, structure=cross)
    out[:, ignore] = 0.0
    return out


def distance_labels(mask: np.ndarray, num_classes: int, ignore_index: int | None = 255) -> np.ndarray:
    """Per-class Euclidean distance to the nearest pixel of another class, min-max normalised per chip.

    For class k, every pixel of k gets its distance to the closest labelled pixel not in k (pixels beyond
    the chip border and unlabelled pixels do not count as "not in k"); pixels outside k get 0. The channel
    is then divided by its maximum, which is the min-max normalisation to [0, 1] since its minimum is 0.
    A class absent from the chip gives all zeros; a class covering every labelled pixel gives 1 on it.

    Args:
        mask: Integer class ids, shape S.
        num_classes: K.
        ignore_index: Value of unlabelled pixels, or ``None``.

    Returns:
        float32 array K x S with values in [0, 1].
    """
    members, ignore = _class_masks(mask, num_classes, ignore_index)
    out = np.zeros(members.shape, dtype=np.float32)
    for k, inside in enumerate(members):
        if not inside.any():
            continue
        if (inside | ignore).all():
            out[k] = inside
            continue
        distance = ndimage.distance_transform_edt(inside | ignore)
        distance[~inside] = 0.0
        out[k] = distance / distance.max()
    return out


def make_multitask_labels(mask: np.ndarray, num_classes: int, ignore_index: int | None = 255) -> dict[str, np.ndarray]:
    """All three FracTAL/ResUNet-a targets from one class mask.

    Args:
        mask: Integer class ids, shape S (e.g. H x W); ``ignore_index`` marks unlabelled pixels.
        num_classes: K (2 for change detection: no change, change).
        ignore_index: Value of unlabelled pixels (0 in every target), or ``None``.

    Returns:
        ``{"segmentation": one-hot, "boundary": edges, "distance": distances}``, each float32 K x S in [0, 1].

    Raises:
        ValueError: A mask value is neither a class id nor ``ignore_index``.
    """
    return {
        "segmentation": one_hot(mask, num_classes, ignore_index),
        "boundary": boundary_labels(mask, num_classes, ignore_index),
        "distance": distance_labels(mask, num_classes, ignore_index),
    }


def hsv_colour(image: np.ndarray, rgb_bands: Sequence[int] = (0, 1, 2)) -> np.ndarray:
    """HSV of an image's red, green and blue bands: the colour target of ResUNet-a.

    Args:
        image: C x S array (any spatial dims) with values in [0, 1]; values outside are clipped.
        rgb_bands: Indices of the red, green and blue bands in ``image``.

    Returns:
        float32 array 3 x S: hue (fraction of a turn, red = 0), saturation and value, all in [0, 1].
    """
    if len(rgb_bands) != 3:
        raise ValueError(f"rgb_bands needs three band indices, got {tuple(rgb_bands)}")
    if max(rgb_bands) >= image.shape[0]:
        raise ValueError(f"rgb_bands {tuple(rgb_bands)} do not exist in an image with {image.shape[0]} bands")
    rgb = np.clip(np.asarray(image, dtype=np.float32)[list(rgb_bands)], 0.0, 1.0)
    red, green, blue = rgb
    value = rgb.max(axis=0)
    delta = value - rgb.min(axis=0)
    safe_delta = np.where(delta > 0, delta, 1.0)
    saturation = np.where(value > 0, delta / np.where(value > 0, value, 1.0), 0.0)
    hue = np.where(
        value == red,
        np.mod((green - blue) / safe_delta, 6.0),
        np.where(value == green, (blue - red) / safe_delta + 2.0, (red - green) / safe_delta + 4.0),
    )
    hue = np.where(delta > 0, hue / 6.0, 0.0)
    return np.stack([hue, saturation, value]).astype(np.float32)


def class_shares(masks: Iterable[np.ndarray], num_classes: int, ignore_index: int | None) -> list[float] | None:
    """Share of each class 0..K-1 among the labelled pixels of ``masks`` (K = 1: the share of class 1 only);
    ``None`` when no pixel is labelled."""
    counts = np.zeros(max(num_classes, 2), np.int64)
    for mask in masks:
        values = mask[mask != ignore_index] if ignore_index is not None else mask.ravel()
        counts += np.bincount(values.ravel().astype(np.intp), minlength=len(counts))[: len(counts)]
    total = int(counts.sum())
    if not total:
        return None
    shares = [float(c) / total for c in counts]
    return shares if num_classes > 1 else shares[1:]


def boundary_shares(
    masks: Iterable[np.ndarray], num_classes: int, ignore_index: int | None, most_elements: int = 2**20
) -> list[float] | None:
    """Mean of each class's boundary target (:func:`boundary_labels`) over the labelled pixels of ``masks``
    (K = 1: class 1's only); ``None`` when no pixel is labelled. What the boundary output starts at.

    A mask of more than ``most_elements`` pixels is read in its centre only, cut to that many at most, which
    bounds the time and memory of the K erosions per mask (a 10,000² raster, a 512³ volume).
    """
    k = max(num_classes, 2)
    sums = np.zeros(k, np.float64)
    total = 0
    for mask in (_centre(m, most_elements) for m in masks):
        labelled = mask != ignore_index if ignore_index is not None else np.ones(mask.shape, bool)
        sums += boundary_labels(mask, k, ignore_index).reshape(k, -1).sum(1)
        total += int(labelled.sum())
    if not total:
        return None
    shares = [float(v) / total for v in sums]
    return shares if num_classes > 1 else shares[1:]


def _centre(mask: np.ndarray, most_elements: int) -> np.ndarray:
    """The centre of ``mask``, each side shrunk by the same factor so that it holds at most ``most_elements``."""
    if mask.size <= most_elements:
        return mask
    factor = (most_elements / mask.size) ** (1 / mask.ndim)
    sides = [max(1, int(n * factor)) for n in mask.shape]
    return mask[tuple(slice((n - side) // 2, (n - side) // 2 + side) for n, side in zip(mask.shape, sides))]
