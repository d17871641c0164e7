"""``mantis evaluate PRED_DIR LABEL_DIR``: score class maps already written against reference masks.

Pixel scores (per class and macro precision, recall, F1, IoU, MCC, from one confusion matrix over every
file) and object scores (:mod:`mantis.objects`: objects matched by IoU, counts, precision, recall, F1) go to
one JSON file (default ``PRED_DIR/evaluation.json``, written atomically) and a short table.

Label volumes work alike (NIfTI or ``.npy`` class ids in ``LABEL_DIR``, scored voxel by voxel and as 3D
objects against ``mantis predict``'s ``<stem>_class`` volumes).

Pairing: each mask of ``LABEL_DIR`` needs the prediction of the same stem in ``PRED_DIR``, where the
``_class`` suffix that ``mantis predict`` adds is dropped (``x_class.tif`` scores against ``label/x.png``);
other outputs of ``mantis predict`` (``_prob``, ``_boundary``, ``_distance``) are not read. Reference masks
are decoded as in training (0/1 and 0/255 for two classes, ``--mask-mapping`` else); the value 255 of a
prediction (its nodata) and ``--ignore-index`` in a mask are left out of every score.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mantis.commands import command_parser
from mantis.io.errors import DataError

PROG = "mantis evaluate"
PREDICTION_NODATA = 255
__all__ = ["evaluate_folders", "main"]


def _volumes(label_dir: Path) -> bool:
    """Whether ``label_dir`` holds label volumes (NIfTI, ``.npy``) rather than raster masks."""
    from mantis.data.volumes_io import list_volumes
    from mantis.io.folders import list_images

    return bool(list_volumes(label_dir)) and not list_images(label_dir)


def _pairs(pred_dir: Path, label_dir: Path, volumes: bool = False) -> list[tuple[Path, Path]]:
    from mantis.data.volumes_io import list_volumes, volume_stem
    from mantis.io.folders import files_by_stem, list_images

    listing = list_volumes if volumes else list_images
    stem: Callable[[Path], str] = volume_stem if volumes else (lambda p: p.stem)
    labels = listing(label_dir)
    files_by_stem(labels, stem)  # x.png and x.tif would both be scored against one prediction: refused
    predictions = listing(pred_dir)
    maps = [p for p in predictions if stem(p).endswith("_class")] or predictions
    # x_class.png and x_class.tif (two runs of mantis predict): refused, rather than one scored at random
    by_stem = files_by_stem(maps, lambda p: stem(p).removesuffix("_class"))
    pairs = []
    for label in labels:
        prediction = by_stem.get(stem(label))
        if prediction is None:
            raise DataError(
                label, f"has no prediction in {pred_dir} (looked for {stem(label)}_class.* or {stem(label)}.*)"
            )
        pairs.append((prediction, label))
    return pairs


def evaluate_folders(
    pred_dir: str | os.PathLike[str],
    label_dir: str | os.PathLike[str],
    *,
    num_classes: int = 2,
    class_names: Sequence[str] | None = None,
    mask_mapping: dict[int, int] | None = None,
    ignore_index: int = 255,
    iou_threshold: float = 0.5,
    connectivity: int = 8,
    min_area: int = 0,
    object_classes: Sequence[int] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Pixel and object scores of the class maps of ``pred_dir`` against the masks of ``label_dir``.

    Args:
        pred_dir: Class maps (``mantis predict`` output, or any single-band class-id rasters).
        label_dir: Reference masks of the same stems.
        num_classes: K.
        class_names: K names (default ``class_0`` ...).
        mask_mapping: ``{stored value: class}`` of the reference masks (default: 0/1 and 0/255 for K = 2).
        ignore_index: Value of unlabelled pixels after decoding.
        iou_threshold: Smallest IoU of an object match.
        connectivity: 4 or 8 (pixels that touch at corners form one object with 8).
        min_area: Objects of fewer pixels are left out of the object scores.
        object_classes: Classes scored as objects (default: every class but 0).
        progress: Show a progress bar.

    Returns:
        The JSON record (see the module docstring).

    Raises:
        DataError: A mask without its prediction, files of different sizes, values that fit no class.
    """
    import torch
    from tqdm import tqdm

    from mantis.data.masks import MaskDecoder
    from mantis.data.volumes_io import read_labels
    from mantis.io.raster import read_mask
    from mantis.metrics import scores_from_confusion, scores_to_json
    from mantis.objects import ObjectCounts, match_objects

    names = list(class_names) if class_names else [f"class_{k}" for k in range(num_classes)]
    if len(names) != num_classes:
        raise ValueError(f"class_names has {len(names)} names for {num_classes} classes")
    scored = list(range(1, num_classes)) if object_classes is None else list(object_classes)
    volumes = _volumes(Path(label_dir))
    if volumes and mask_mapping is None:  # label volumes hold class ids, as the volume data module reads them
        mask_mapping = {k: k for k in range(num_classes)} | {ignore_index: ignore_index}
    decoder = MaskDecoder(num_classes, mask_mapping, ignore_index)
    read: Callable[[Path], np.ndarray] = read_labels if volumes else read_mask
    pairs = _pairs(Path(pred_dir), Path(label_dir), volumes)
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    objects = {k: ObjectCounts() for k in scored}
    for prediction_path, label_path in tqdm(pairs, desc="evaluating", unit="file", disable=not progress):
        truth = decoder(read(label_path), label_path)
        predicted = read(prediction_path).astype(np.int64)
        if predicted.shape != truth.shape:
            raise DataError(prediction_path, f"is {predicted.shape} pixels but {label_path} is {truth.shape}")
        ignore = (truth == ignore_index) | (predicted == PREDICTION_NODATA)
        bad = ~ignore & ((predicted < 0) | (predicted >= num_classes))
        if bad.any():
            raise DataError(prediction_path, f"holds class {int(predicted[bad][0])}, not in [0, {num_classes})")
        keep = ~ignore
        confusion += np.bincount(
            truth[keep] * num_classes + predicted[keep], minlength=num_classes * num_classes
        ).reshape(num_classes, num_classes)
        for k in scored:
            objects[k].add(
                match_objects(
                    predicted == k,
                    truth == k,
                    ignore=ignore,
                    iou_threshold=iou_threshold,
                    connectivity=connectivity,
                    min_area=min_area,
                )
            )
    pixel = scores_to_json(scores_from_confusion(torch.from_numpy(confusion), names))
    return {
        "predictions": str(pred_dir),
        "labels": str(label_dir),
        "files": len(pairs),
        "class_names": names,
        "pixel": pixel,
        "objects": {
            "iou_threshold": iou_threshold,
            "connectivity": connectivity,
            "min_area": min_area,
            **{names[k]: counts.scores() for k, counts in objects.items()},
        },
    }


def _table(record: dict[str, Any]) -> str:
    def fmt(value: Any) -> str:
        return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)

    lines = [
        f"{record['files']} files; pixels: "
        + ", ".join(
            f"{key} {fmt(record['pixel'].get(key))}" for key in ("accuracy", "f1_macro", "iou_macro", "mcc_macro")
        )
    ]
    header = "class          pixel F1  pixel IoU  objects true/pred  TP  FP  FN  object P  object R  object F1"
    lines.append(header)
    for name in record["class_names"]:
        scores = record["objects"].get(name)
        row = f"{name:<14} {fmt(record['pixel'].get(f'f1_{name}')):>8}  {fmt(record['pixel'].get(f'iou_{name}')):>9}"
        if scores is not None:
            row += (
                f"  {scores['objects_true']:>8}/{scores['objects_predicted']:<8} {scores['tp']:>3} {scores['fp']:>3} "
                f"{scores['fn']:>3}  {fmt(scores['precision']):>8}  {fmt(scores['recall']):>8}  {fmt(scores['f1']):>9}"
            )
        lines.append(row)
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = command_parser(PROG, __doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("pred_dir", type=Path, help="folder of class maps (mantis predict's *_class files)")
    parser.add_argument("label_dir", type=Path, help="folder of reference masks of the same stems")
    parser.add_argument("-o", "--output", type=Path, help="JSON file to write (default PRED_DIR/evaluation.json)")
    parser.add_argument("--num-classes", type=int, default=2)
    parser.add_argument("--class-names", nargs="+", help="one name per class (default class_0 ...)")
    parser.add_argument("--mask-mapping", help='JSON {stored value: class} for the masks, e.g. \'{"0": 0, "255": 1}\'')
    parser.add_argument("--ignore-index", type=int, default=255)
    parser.add_argument("--iou", type=float, default=0.5, help="smallest IoU of an object match (default 0.5)")
    parser.add_argument("--connectivity", type=int, choices=[4, 8], default=8)
    parser.add_argument("--min-area", type=int, default=0, help="leave out objects of fewer pixels")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def run(args: argparse.Namespace) -> int:
    """Evaluate, print the table, write the JSON atomically."""
    mapping = None
    if args.mask_mapping:
        try:
            mapping = {int(k): int(v) for k, v in json.loads(args.mask_mapping).items()}
        except (ValueError, AttributeError):
            raise ValueError(f"--mask-mapping {args.mask_mapping!r}: give a JSON object of integers") from None
    for folder in (args.pred_dir, args.label_dir):
        if not folder.is_dir():
            raise DataError(folder, "no such folder")
    record = evaluate_folders(
        args.pred_dir,
        args.label_dir,
        num_classes=args.num_classes,
        class_names=args.class_names,
        mask_mapping=mapping,
        ignore_index=args.ignore_index,
        iou_threshold=args.iou,
        connectivity=args.connectivity,
        min_area=args.min_area,
        progress=not args.no_progress,
    )
    print(_table(record))
    output = args.output or args.pred_dir / "evaluation.json"
    temporary = output.with_name(f".{output.name}.tmp-{os.getpid()}")
    temporary.write_text(json.dumps(record, indent=2, allow_nan=False) + "\n")
    os.replace(temporary, output)
    print(f"wrote {output}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``mantis evaluate``."""
    from mantis.commands import run_command

    args = list(sys.argv[1:] if argv is None else argv)
    return run_command(PROG, lambda: run(_parser().parse_args(args)))
