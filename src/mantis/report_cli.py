"""``mantis report SOURCE -o report.html``: the command line of :mod:`mantis.report`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from mantis.commands import command_parser

PROG = "mantis report"

DESCRIPTION = """\
Write one self-contained HTML page (no server, no network: open the file). Of a run folder: its metric
tables, training curves and its checkpoint on the first test samples. Of a prediction folder written by
mantis predict: the scores of mantis evaluate and, for chosen samples, a swipe between the two dates (or
the image and its prediction) with the predicted change and TP/FP/FN colours against the reference masks.
"""

EPILOG = """\
examples:
  mantis report runs/demo -o demo.html
  mantis report pred/ --inputs levir/test/A levir/test/B --labels levir/test/label -o pred.html
  mantis report runs/levir/version_0 --predictions pred/ --inputs A/ B/ --samples 0001 0042 -o run.html
"""


def build_parser() -> argparse.ArgumentParser:
    """The options of ``mantis report``."""
    p = command_parser(PROG, DESCRIPTION, EPILOG)
    p.add_argument(
        "source", type=Path, metavar="SOURCE", help="a run folder (mantis fit) or a prediction folder (mantis predict)"
    )
    p.add_argument("-o", "--output", type=Path, required=True, metavar="FILE", help="the HTML file to write")
    p.add_argument(
        "--predictions", type=Path, metavar="DIR", help="with a run folder: the prediction folder to show samples of"
    )
    p.add_argument(
        "--inputs",
        type=Path,
        nargs="+",
        default=[],
        metavar="DIR",
        help="the input folder(s) given to mantis predict (two: the dates)",
    )
    p.add_argument("--labels", type=Path, metavar="DIR", help="reference masks (default: those mantis evaluate used)")
    p.add_argument(
        "--samples",
        nargs="+",
        default=["4"],
        metavar="N|NAME",
        help="how many samples (first by name; 0: none), or their names",
    )
    p.add_argument("--num-classes", type=int, metavar="K", help="K (default: from the class names, else 2)")
    p.add_argument(
        "--class-names", nargs="+", metavar="NAME", help="one name per class (default: from evaluation.json)"
    )
    p.add_argument("--mask-mapping", help='JSON {stored value: class} for the masks, e.g. \'{"0": 0, "255": 1}\'')
    p.add_argument("--ignore-index", type=int, default=255)
    p.add_argument(
        "--max-size", type=int, default=768, metavar="PX", help="largest side of a sample's pictures (default 768)"
    )
    p.add_argument("--title", help="the page's heading")
    return p


def _samples(values: Sequence[str]) -> int | list[str]:
    if len(values) == 1 and values[0].isdigit():
        return int(values[0])
    return list(values)


def _mapping(text: str | None) -> dict[int, int] | None:
    if not text:
        return None
    try:
        return {int(k): int(v) for k, v in json.loads(text).items()}
    except (ValueError, AttributeError):
        raise ValueError(f"--mask-mapping {text!r}: give a JSON object of integers") from None


def run(args: argparse.Namespace) -> int:
    """Check the arguments, gather the page, write it."""
    from mantis.report import build_report, check_output, write_report

    if len(args.inputs) > 2:
        raise ValueError(f"--inputs takes one folder, or two for change detection; got {len(args.inputs)}")
    if args.max_size < 16:
        raise ValueError(f"--max-size {args.max_size}: give at least 16 pixels")
    for path in args.inputs:
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file or folder")
    check_output(args.output)
    page = build_report(
        args.source,
        predictions=args.predictions,
        inputs=args.inputs,
        labels=args.labels,
        samples=_samples(args.samples),
        num_classes=args.num_classes,
        class_names=args.class_names,
        mask_mapping=_mapping(args.mask_mapping),
        ignore_index=args.ignore_index,
        max_side=args.max_size,
        title=args.title,
    )
    path = write_report(page, args.output)
    for note in page.notes:
        print(f"note: {note}")
    print(f"wrote {path} ({len(page.tables)} metric tables, {len(page.samples)} samples)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``mantis report``."""
    from mantis.commands import run_command

    args = list(sys.argv[1:] if argv is None else argv)
    return run_command(PROG, lambda: run(build_parser().parse_args(args)))
