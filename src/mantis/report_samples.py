"""The samples of a report: which predictions are shown, their inputs and reference, and their pictures.

A prediction folder holds ``<name>_class.*`` maps (and ``<name>_prob.*``) from ``mantis predict``. Each
chosen sample is drawn as a swipe of two pictures plus overlays:

- a change-detection pair (two inputs): date 1 | date 2;
- a segmentation image (one input): the image | the image with the predicted classes;
- no inputs: the reference classes | the predicted classes (or the prediction alone).

Overlays: TP/FP/FN against the reference, the predicted classes, the reference classes and the
probability of the first foreground class (two-class maps with a ``_prob`` file).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mantis.data.masks import MaskDecoder
from mantis.io.errors import DataError
from mantis.io.folders import files_by_stem, list_images, match_file
from mantis.io.raster import IMAGE_SUFFIXES, raster_info, read_mask
from mantis.report_images import (
    blend,
    class_colours,
    comparison_codes,
    comparison_colours,
    display_images,
    display_shape,
    png_data_uri,
    probability_colours,
    read_reduced,
)

__all__ = ["Layer", "SampleView", "choose_samples", "compose_view", "pixel_counts", "prediction_maps", "sample_view"]

CLASS_SUFFIX = "_class"
PREDICTION_NODATA = 255  # what mantis predict writes outside the raster's data
_BACKGROUND = (48, 48, 48)  # behind class colours when no input image is given


@dataclass
class Layer:
    """One picture of a sample: ``key`` for the page's controls, ``label`` for people, a PNG data URI."""

    key: str
    label: str
    uri: str


@dataclass
class SampleView:
    """What the page shows of one sample.

    Attributes:
        name: The input's stem.
        kind: ``pair``, ``image`` or ``maps`` (no inputs).
        size: Display (height, width).
        left: The picture left of the swipe line.
        right: The picture revealed right of it (``None``: no swipe).
        overlays: Pictures drawn over both, one at a time (the first is shown first).
        counts: Full-resolution pixel counts of the foreground classes: tp, fp, fn (with a reference).
        files: The files each picture came from, by role.
    """

    name: str
    kind: str
    size: tuple[int, int]
    left: Layer
    right: Layer | None
    overlays: list[Layer] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)


def prediction_maps(pred_dir: Path) -> dict[str, Path]:
    """``{sample name: class map}`` of the ``*_class.*`` files that ``mantis predict`` wrote in ``pred_dir``."""
    maps = {p.stem[: -len(CLASS_SUFFIX)]: p for p in list_images(pred_dir) if p.stem.endswith(CLASS_SUFFIX)}
    if not maps:
        raise DataError(pred_dir, "holds no class maps (*_class.tif or *_class.png written by mantis predict)")
    return maps


def choose_samples(maps: dict[str, Path], chosen: int | Sequence[str], where: Path) -> list[str]:
    """The first ``chosen`` names in sorted order, or the given names (file names and stems accepted)."""
    names = sorted(maps)
    if isinstance(chosen, int):
        return names[: max(0, chosen)]
    picked = []
    for given in chosen:
        name = Path(given).stem if Path(given).suffix.lower() in IMAGE_SUFFIXES else given  # 2019.01 is a name
        name = name.removesuffix(CLASS_SUFFIX)
        if name not in maps:
            shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
            raise DataError(where, f"has no prediction of sample {given!r} (it has {shown})")
        picked.append(name)
    return list(dict.fromkeys(picked))


def _input_files(name: str, inputs: Sequence[Path]) -> list[Path]:
    """The input file(s) of sample ``name``: files given directly, or matched in folders as predict does."""
    if not inputs[0].is_dir():
        if inputs[0].stem != name:
            raise DataError(inputs[0], f"is not the input of sample {name!r}; give the folder of the inputs")
        return list(inputs)
    first = match_file(name, files_by_stem(list_images(inputs[0])), inputs[0])
    if first is None:
        raise DataError(inputs[0], f"has no input {name}.* for the prediction {name}{CLASS_SUFFIX}")
    found = [first]
    for folder in inputs[1:]:
        other = match_file(first.name, files_by_stem(list_images(folder)), folder)
        if other is None:
            raise DataError(folder, f"has no counterpart of {first}")
        found.append(other)
    return found


def _probability_file(class_map: Path) -> Path | None:
    stem = class_map.stem[: -len(CLASS_SUFFIX)] + "_prob"
    return next((p for p in sorted(class_map.parent.glob(stem + ".*")) if p.stem == stem), None)


def _probability(path: Path, shape: tuple[int, int], num_classes: int) -> np.ndarray | None:
    """The display-size probability of class 1 (the change) from a ``_prob`` raster, or ``None``."""
    if num_classes != 2:
        return None
    bands = read_reduced(path, shape, mask=False)
    band = bands[1] if bands.shape[0] > 1 else bands[0]
    if band.dtype == np.uint8:  # mantis predict's uint8: value / 254, 255 nodata
        return np.where(band == 255, np.nan, band / 254.0)
    return np.asarray(band, dtype=np.float64)


def _counts(class_map: Path, label: Path, decoder: MaskDecoder) -> dict[str, int]:
    """Full-resolution TP/FP/FN pixel counts of the foreground classes."""
    predicted = read_mask(class_map).astype(np.int64)
    truth = decoder(read_mask(label), label)
    if predicted.shape != truth.shape:
        raise DataError(class_map, f"is {predicted.shape} pixels but {label} is {truth.shape}")
    ignore = (truth == decoder.ignore_index) | (predicted == PREDICTION_NODATA)
    return pixel_counts(predicted, truth, ignore)


def pixel_counts(predicted: np.ndarray, truth: np.ndarray, ignore: np.ndarray) -> dict[str, int]:
    """TP/FP/FN pixel counts of the foreground classes (see :func:`comparison_codes`)."""
    return {name: int(where.sum()) for name, where in comparison_codes(predicted, truth, ignore).items()}


def _on_background(rgba: np.ndarray) -> np.ndarray:
    base = np.empty((*rgba.shape[:2], 3), dtype=np.uint8)
    base[:] = _BACKGROUND
    return blend(base, rgba, opacity=1.0)


def compose_view(
    name: str,
    *,
    predicted: np.ndarray,
    num_classes: int,
    truth: np.ndarray | None = None,
    ignore_index: int = 255,
    pictures: Sequence[np.ndarray] = (),
    probability: np.ndarray | None = None,
    counts: dict[str, int] | None = None,
    files: dict[str, str] | None = None,
) -> SampleView:
    """The pictures of one sample from display-size arrays (see the module docstring).

    Args:
        name: The sample's name.
        predicted: H x W predicted class ids (255: nodata).
        num_classes: K.
        truth: H x W reference class ids (``ignore_index``: unlabelled), or ``None``.
        ignore_index: Unlabelled value of ``truth``.
        pictures: H x W x 3 uint8 inputs: none, the image, or the two dates.
        probability: H x W probability of class 1 (NaN: none), or ``None``.
        counts: Full-resolution TP/FP/FN pixel counts to show (default: none).
        files: The files the pictures came from, by role.
    """
    height, width = predicted.shape
    predicted_rgba = class_colours(predicted, num_classes)
    overlays = [Layer("prediction", "prediction", png_data_uri(predicted_rgba))]
    reference_rgba = None
    if truth is not None:
        ignore = (truth == ignore_index) | (predicted == PREDICTION_NODATA)
        codes = comparison_codes(predicted, truth, ignore)
        overlays.insert(0, Layer("comparison", "TP / FP / FN", png_data_uri(comparison_colours(codes))))
        reference_rgba = class_colours(truth, num_classes)
        overlays.append(Layer("reference", "reference", png_data_uri(reference_rgba)))
    if probability is not None:
        overlays.append(Layer("probability", "probability", png_data_uri(probability_colours(probability))))
    right: Layer | None
    if len(pictures) == 2:
        kind = "pair"
        left = Layer("date1", "date 1", png_data_uri(pictures[0]))
        right = Layer("date2", "date 2", png_data_uri(pictures[1]))
    elif len(pictures) == 1:
        kind = "image"
        left = Layer("image", "image", png_data_uri(pictures[0]))
        right = Layer("predicted", "image + prediction", png_data_uri(blend(pictures[0], predicted_rgba)))
    else:
        kind = "maps"
        predicted_picture = Layer("predicted", "prediction", png_data_uri(_on_background(predicted_rgba)))
        if reference_rgba is None:
            left, right = predicted_picture, None
        else:
            left, right = (
                Layer("reference", "reference", png_data_uri(_on_background(reference_rgba))),
                predicted_picture,
            )
    return SampleView(name, kind, (height, width), left, right, overlays, dict(counts or {}), dict(files or {}))


def sample_view(
    name: str,
    class_map: Path,
    *,
    inputs: Sequence[Path] = (),
    label: Path | None = None,
    decoder: MaskDecoder,
    max_side: int = 768,
) -> SampleView:
    """The pictures and full-resolution counts of one sample of a prediction folder, read from its files.

    Raises:
        DataError: A missing input, or inputs, map and reference of different sizes.
    """
    info = raster_info(class_map)
    shape = display_shape(info.height, info.width, max_side)
    files = {"prediction": str(class_map)}
    counts: dict[str, int] = {}
    truth = None
    if label is not None:
        counts = _counts(class_map, label, decoder)
        truth = decoder(read_reduced(label, shape, mask=True), label)
        files["reference"] = str(label)
    prob_file = _probability_file(class_map)
    probability = _probability(prob_file, shape, decoder.num_classes) if prob_file is not None else None
    if probability is not None:
        files["probability"] = str(prob_file)
    sources = _input_files(name, inputs) if inputs else []
    for path in sources:
        other = raster_info(path)
        if (other.height, other.width) != (info.height, info.width):
            raise DataError(
                path, f"is {other.height}x{other.width} pixels but {class_map} is {info.height}x{info.width}"
            )
    pictures = display_images([read_reduced(p, shape, mask=False) for p in sources]) if sources else []
    roles = ["date 1", "date 2"] if len(sources) == 2 else ["image"]
    files.update({role: str(path) for role, path in zip(roles, sources)})
    return compose_view(
        name,
        predicted=read_reduced(class_map, shape, mask=True).astype(np.int64),
        num_classes=decoder.num_classes,
        truth=truth,
        ignore_index=decoder.ignore_index,
        pictures=pictures,
        probability=probability,
        counts=counts,
        files=files,
    )
