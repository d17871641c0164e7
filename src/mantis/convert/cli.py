"""``mantis convert``: the authors' MXNet/Gluon weights as a Mantis export folder."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from mantis.commands import command_parser

PROG = "mantis convert"

DESCRIPTION = """\
Convert weights saved by the authors' MXNet/Gluon code (save_parameters: a .params file, read without MXNet)
into a folder of model.safetensors + config.json that `mantis predict -c DIR` and
mantis.inference.load_pretrained(DIR) use as they are. Build the Mantis model with the arguments the
weights were trained with, e.g. the authors' mantis_dn_cmtsk(nfilters_init=32, depth=6, model='CEECNetV1')
is --model ceecnet_v1 (its defaults), and their decode FracTAL_ResUNet_cmtsk is --model fractal_resunet
--model-kwargs '{grouped_attention: false}'. Every parameter must fit: names and shapes are checked both ways.
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``mantis convert``."""
    p = command_parser(PROG, DESCRIPTION)
    p.add_argument("weights", help="the authors' .params file (MXNet 1.x, or the .npz-based MXNet 2 format)")
    p.add_argument("--model", required=True, help="Mantis model name (mantis.list_models())")
    p.add_argument(
        "--model-kwargs",
        default="{}",
        metavar="MAPPING",
        help='model arguments as a JSON or YAML mapping, e.g. \'{"in_channels": 5, "num_classes": 6}\'',
    )
    p.add_argument(
        "--task",
        choices=("segmentation", "change_detection"),
        help="what the folder predicts (default: change_detection for two-date models, else segmentation)",
    )
    p.add_argument("--band-mean", nargs="+", type=float, metavar="M", help="per-band mean the inputs are reduced by")
    p.add_argument("--band-std", nargs="+", type=float, metavar="S", help="per-band std the inputs are divided by")
    p.add_argument("-o", "--output", required=True, help="folder to write (must not hold a model unless --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace a model already in the output folder")
    return p


def convert(args: argparse.Namespace) -> Path:
    """Read, map, check and write; returns the output folder. Raises InputError with one line."""
    from mantis.convert.gluon import GluonMappingError, load_gluon_state
    from mantis.convert.mxnet_params import ParamsFormatError, read_mxnet_params
    from mantis.inference.checkpoint import CONFIG_FILE, WEIGHTS_FILE, ModelMeta, save_pretrained
    from mantis.inference.errors import InputError
    from mantis.models import MantisChangeDetector, create_model

    out = Path(args.output)
    if (out / WEIGHTS_FILE).exists() and not args.overwrite:
        raise InputError(f"{out}: already holds a model ({WEIGHTS_FILE}); give --overwrite to replace it")
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder")
    kwargs = _mapping(args.model_kwargs)
    if (args.band_mean is None) != (args.band_std is None):
        raise InputError("--band-mean and --band-std must be given together")
    try:
        params = read_mxnet_params(args.weights)
    except FileNotFoundError:
        raise InputError(f"{args.weights}: no such file") from None
    except (ParamsFormatError, OSError) as error:
        raise InputError(str(error)) from None
    try:
        model = create_model(args.model, **kwargs)
    except (ValueError, TypeError) as error:
        raise InputError(f"cannot build model {args.model!r}: {error}") from None
    try:
        load_gluon_state(model, params)
    except GluonMappingError as error:
        raise InputError(f"{args.weights}: {error}") from None
    task = args.task or ("change_detection" if isinstance(model, MantisChangeDetector) else "segmentation")
    meta = ModelMeta(args.model, kwargs, task, args.band_mean, args.band_std)
    out.mkdir(parents=True, exist_ok=True)
    # Written beside the target first, then moved in: an interrupted run leaves the folder as it was.
    with tempfile.TemporaryDirectory(dir=out, prefix=".convert-") as tmp:
        save_pretrained(model, meta, tmp)
        for name in (WEIGHTS_FILE, CONFIG_FILE):
            shutil.move(str(Path(tmp) / name), out / name)
    return out


def _mapping(text: str) -> dict[str, Any]:
    from mantis.inference.errors import InputError

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise InputError(f"--model-kwargs: not a JSON or YAML mapping ({' '.join(str(error).split())})") from None
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise InputError(f"--model-kwargs: expected a mapping of argument names to values, got {text!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``mantis convert``; returns the exit status (2 and one line on stderr for bad input)."""
    from mantis.commands import run_command

    parser = build_parser()

    def body() -> int:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
        out = convert(args)
        print(f"wrote {out} ({args.model}); predict with: mantis predict -c {out} ...")
        return 0

    return run_command(PROG, body)
