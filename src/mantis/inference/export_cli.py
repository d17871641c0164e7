"""``mantis export``: a checkpoint as safetensors + config.json, ONNX and torch.export (.pt2)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from mantis.commands import command_parser
from mantis.inference.export import FORMATS

PROG = "mantis export"

DESCRIPTION = """\
Export a trained model. safetensors writes model.safetensors and config.json (load it back with
mantis.inference.load_pretrained(DIR), or predict with mantis predict -c DIR); onnx writes model.onnx,
checked with onnxruntime against PyTorch; pt2 writes a torch.export program, checked after reloading.
ONNX and pt2 take inputs of a fixed window (and batch, unless --dynamic-batch): N x C x W, named x (or
x1, x2 for change detection); their outputs are the model's fields (segmentation, boundary, ...).
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``mantis export``."""
    p = command_parser(PROG, DESCRIPTION)
    p.add_argument("checkpoint", help="a .ckpt from training, or an export folder")
    p.add_argument("output", help="folder to write into (created if needed)")
    p.add_argument("--formats", nargs="+", choices=FORMATS, default=list(FORMATS), help="what to write (default: all)")
    p.add_argument("--window", nargs="+", type=int, default=[256], metavar="N", help="input window size (256)")
    p.add_argument("--batch-size", type=int, default=1, help="batch size of the exported graph (1)")
    p.add_argument("--dynamic-batch", action="store_true", help="export with a dynamic batch dimension")
    p.add_argument("--opset", type=int, help="ONNX opset (default: the exporter's)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``mantis export``; returns the exit status (2 and one line on stderr for bad input)."""
    from mantis.commands import run_command
    from mantis.inference.checkpoint import load_model
    from mantis.inference.export import ExportSpec, export_model

    parser = build_parser()

    def body() -> int:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
        model, meta = load_model(args.checkpoint)
        spec = ExportSpec(args.window, args.batch_size, args.dynamic_batch, args.opset)
        written = export_model(model, meta, args.output, args.formats, spec)
        for fmt, path in written.items():
            print(f"wrote {path} ({fmt})")
        return 0

    return run_command(PROG, body)
