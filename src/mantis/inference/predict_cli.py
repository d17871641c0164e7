"""``mantis predict``: blended sliding-window prediction on rasters or folders of any size."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mantis.commands import command_parser
from mantis.inference.errors import InputError
from mantis.inference.options import FORMATS, PROB_DTYPES, PRODUCTS, PredictOptions
from mantis.inference.spec import PRECISIONS, WindowSpec
from mantis.inference.tiling import BLEND_MODES
from mantis.inference.vector import AREA_UNITS, VECTOR_FORMATS

PROG = "mantis predict"
DEFAULT = WindowSpec()  # the defaults of the window options

DESCRIPTION = """\
Predict class maps (and probabilities, boundaries, distances) on rasters of any size: overlapping
windows are blended, borders reflect-padded, and rows are written as soon as they are final, so memory
does not grow with the raster. One input is a segmentation image, two are a change-detection pair;
folders predict every file (pairs: same file name, or same stem, in both folders). Outputs are written as
<output>/<input stem>_<product>.tif (GeoTIFF: tiled, compressed, CRS/transform/nodata kept) or .png for
PNG/JPEG inputs, under a temporary name renamed when complete. With --vector, the regions of the class map
(every class but 0 by default) are also written as polygons with attributes, <input stem>_polygons.gpkg
or .geojson, in the raster's CRS (pixel coordinates for PNG/JPEG). A .nii, .nii.gz or .npy input is a
volume for a 3D checkpoint: --window takes one side or three, outputs are NIfTI with the input's affine and
spacing (or .npy), <output>/<input stem>_<product>.nii.gz (docs/volumes.md). A .ts, .csv, .parquet or .pq
input (or a folder of them) with a series or table checkpoint gives <output>/<input stem>_predictions.csv, one
row per series or row; a .npy of series with a 1D segmentation checkpoint gives <input stem>_classes.npy
(docs/inference.md, "Series and tables").
"""

EPILOG = """\
examples:
  mantis predict -c best.ckpt -i scene.tif -o predictions/
  mantis predict -c a.ckpt b.ckpt -i 2019.tif 2021.tif -o out/ --stride 64 --tta --outputs class prob
  mantis predict --config configs/predict.yaml --input A/ B/
  mantis predict -c best.ckpt -i 2019.tif 2021.tif -o out/ --vector gpkg --vector-min-area 20 --vector-simplify 1
  mantis predict -c series.ckpt -i GunPoint_TEST.ts -o out/      # out/GunPoint_TEST_predictions.csv
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``mantis predict`` (every option may also come from ``--config``)."""
    p = command_parser(PROG, DESCRIPTION, EPILOG)
    p.add_argument("--config", metavar="FILE", help="YAML file of options (keys as below, - or _); flags override it")
    p.add_argument(
        "-c",
        "--checkpoint",
        nargs="+",
        metavar="CKPT",
        help="checkpoint(s): .ckpt or export folder; several are averaged (an ensemble)",
    )
    p.add_argument(
        "-i",
        "--input",
        nargs="+",
        metavar="PATH",
        help="an image, or two for change detection (date 1, date 2); or one/two folders of them",
    )
    p.add_argument("-o", "--output", metavar="DIR", help="output folder (created if needed)")
    p.add_argument(
        "--outputs",
        nargs="+",
        choices=list(PRODUCTS),
        default=["class"],
        help="products to write: class map, class probabilities, boundary, distance (default: class)",
    )
    p.add_argument(
        "--window",
        nargs="+",
        type=int,
        default=[DEFAULT.window],
        metavar="N",
        help=f"window size, N or H W ({DEFAULT.window})",
    )
    step = p.add_mutually_exclusive_group()
    step.add_argument("--stride", nargs="+", type=int, metavar="N", help="window step (the paper: 64 for 256)")
    step.add_argument("--overlap", type=float, help="fraction of a window shared by neighbours (default 0.5)")
    p.add_argument(
        "--blend", choices=BLEND_MODES, default=DEFAULT.blend, help=f"weights of overlapping windows ({DEFAULT.blend})"
    )
    p.add_argument("--pad", type=int, help="reflect padding of the borders (default (window - stride) / 2)")
    p.add_argument(
        "--batch-size", type=int, default=DEFAULT.batch_size, help=f"windows per model call ({DEFAULT.batch_size})"
    )
    p.add_argument("--tta", action="store_true", help="average over the 8 flips/rotations (D4), 8x slower")
    p.add_argument(
        "--prob-dtype",
        choices=PROB_DTYPES,
        default="uint8",
        help="probabilities as uint8 (value/254, 255 = nodata) or float32 (NaN = nodata)",
    )
    p.add_argument("--precision", choices=PRECISIONS, default=DEFAULT.precision, help="bf16 autocast where supported")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1... (auto: cuda if available)")
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile each repeated unit once (regional; pays off on large inputs; one process only)",
    )
    p.add_argument(
        "--cuda-graphs",
        action="store_true",
        help="replay the network from a CUDA graph per batch shape (CUDA devices only; fewer kernel launches)",
    )
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--format", choices=FORMATS, default="auto", help="output format (auto: PNG for PNG/JPEG)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--skip-existing", action="store_true", help="folders: skip inputs already predicted")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--devices", type=int, default=1, help="folders: processes on this machine, one per GPU on GPUs (1)")
    p.add_argument("--num-nodes", type=int, default=1, help="folders: machines taking part, under torchrun (1)")
    _vector_arguments(p)
    return p


def _vector_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``--vector`` (polygons of the class map)."""
    v = p.add_argument_group("polygons (--vector; needs pip install 'mantis-cd[vector]')")
    v.add_argument("--vector", choices=VECTOR_FORMATS, help="also write the class regions as polygons: gpkg or geojson")
    v.add_argument(
        "--vector-classes", nargs="+", type=int, metavar="K", help="class ids to polygonise (default: all but 0)"
    )
    v.add_argument(
        "--vector-min-area", type=float, default=0.0, metavar="A", help="leave out regions smaller than A (0)"
    )
    v.add_argument(
        "--vector-area-units",
        choices=AREA_UNITS,
        default="pixels",
        help="units of --vector-min-area and --vector-fill-holes: pixels, or map (square CRS units, e.g. m²)",
    )
    v.add_argument(
        "--vector-fill-holes",
        type=float,
        nargs="?",
        const=float("inf"),
        default=0.0,
        metavar="A",
        help="fill holes smaller than A (alone: every hole)",
    )
    v.add_argument(
        "--vector-simplify", type=float, default=0.0, metavar="TOL", help="simplification tolerance in map units (0)"
    )
    v.add_argument(
        "--vector-connectivity",
        type=int,
        choices=[4, 8],
        default=8,
        help="8: pixels touching at corners are one region (as mantis evaluate); 4: edges only",
    )


def _vector_options(args: argparse.Namespace) -> Any:
    """The :class:`~mantis.inference.vector.VectorOptions` of ``args``, or ``None`` without ``--vector``."""
    if not args.vector:
        return None
    from mantis.inference.vector import VectorOptions, require_libraries

    require_libraries()  # before the checkpoints load: one line naming what to install
    return VectorOptions(
        format=args.vector,
        classes=tuple(args.vector_classes) if args.vector_classes else None,
        min_area=args.vector_min_area,
        area_units=args.vector_area_units,
        fill_holes=args.vector_fill_holes,
        simplify=args.vector_simplify,
        connectivity=args.vector_connectivity,
    )


def _config_defaults(parser: argparse.ArgumentParser, path: str) -> dict[str, Any]:
    import yaml

    try:
        with open(path) as handle:
            data = yaml.safe_load(handle) or {}
    except OSError as error:
        raise InputError(f"{path}: cannot read config ({error.strerror})") from None
    except yaml.YAMLError as error:
        raise InputError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: a config must be a mapping of option: value")
    known = {a.dest for a in parser._actions}
    out: dict[str, Any] = {}
    for key, value in data.items():
        dest = str(key).replace("-", "_")
        if dest not in known or dest in ("help", "config"):
            raise InputError(f"{path}: unknown option {key!r}")
        listy = dest in ("checkpoint", "input", "outputs", "window", "stride", "vector_classes")
        out[dest] = [value] if listy and not isinstance(value, list) else value
    return out


def _device(name: str) -> str:
    if name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _window(values: Sequence[int] | None, what: str) -> int | tuple[int, ...] | None:
    if values is None:
        return None
    if len(values) not in (1, 2, 3):
        raise InputError(f"--{what} takes one number, two (rasters: H W) or three (volumes), got {len(values)}")
    return values[0] if len(values) == 1 else tuple(values)


def run(args: argparse.Namespace) -> list[dict[str, Path]]:
    """Predict as the parsed ``args`` say; returns the files written for each input."""
    from mantis.inference.checkpoint import load_models
    from mantis.inference.distributed import launched_by_torchrun
    from mantis.inference.predict import predict_folder, predict_raster
    from mantis.inference.records import is_record_input, predict_records_cli
    from mantis.inference.series_steps import is_series_steps_input, predict_series_steps_cli
    from mantis.io.folders import writable_folder

    if not args.checkpoint or not args.input or not args.output:
        missing = [f"--{n}" for n in ("checkpoint", "input", "output") if not getattr(args, n)]
        raise InputError(f"missing {', '.join(missing)} (on the command line or in --config)")
    if len(args.input) > 2:
        raise InputError(f"--input takes one path, or two for change detection; got {len(args.input)}")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    inputs = [Path(p) for p in args.input]
    for path in inputs:
        if not path.exists():
            raise InputError(f"{path}: no such file or folder")
    folders = [p.is_dir() for p in inputs]
    if any(folders) and not all(folders):
        raise InputError(f"{inputs[folders.index(False)]}: give files or folders, not a mix")
    writable_folder(args.output)  # a read-only or impossible output folder: one line now, not after the work
    vector = _vector_options(args)
    device = _device(args.device)
    if args.cuda_graphs and not device.startswith("cuda"):
        raise InputError(f"--cuda-graphs needs a CUDA device; this run is on {device} (--device cuda)")
    window = WindowSpec.from_mapping(
        {**vars(args), "window": _window(args.window, "window"), "stride": _window(args.stride, "stride")}
    )
    options = PredictOptions.from_args(args, window, vector, device)
    if is_record_input(inputs[0]):  # series and table rows for whole-sample checkpoints: mantis.inference.records
        return predict_records_cli(inputs, args, options)
    if args.devices != 1 or args.num_nodes != 1 or launched_by_torchrun():
        return _on_ranks(args, inputs, all(folders), options)
    model, meta = load_models(args.checkpoint, device)
    if args.compile:
        from mantis.nn.regional_compile import compile_regions

        compile_regions(model)
    output_dir = Path(args.output)
    if is_series_steps_input(inputs[0], meta):  # .npy series for a 1D network: mantis.inference.series_steps
        return predict_series_steps_cli(model, inputs, meta, options, output_dir)
    if all(folders):  # images, pairs or NIfTI/.npy volumes: predict_folder and predict_raster tell them apart
        return predict_folder(model, inputs, output_dir, meta, **options.keywords())
    return [predict_raster(model, inputs, output_dir, meta, **options.keywords())]


def _launched_on_each_machine() -> bool:
    """Whether a launcher (torchrun, SLURM) or the user's environment places this process among several machines."""
    from mantis.inference.distributed import launched_by_torchrun

    return launched_by_torchrun() or "SLURM_NTASKS" in os.environ or "NODE_RANK" in os.environ


def _on_ranks(args: argparse.Namespace, inputs: list[Path], folders: bool, options: PredictOptions) -> Any:
    """A folder shared among processes (``--devices``, ``--num-nodes``, torchrun): docs/inference.md."""
    from mantis.inference.distributed import accelerator_of, predict_folder_distributed

    if not folders:
        raise InputError("--devices/--num-nodes share the files of folders among processes; give folders")
    if args.devices < 1 or args.num_nodes < 1:
        raise InputError(f"--devices and --num-nodes must be at least 1, got {args.devices} and {args.num_nodes}")
    if args.compile:  # the ranks load their own models uncompiled: refuse rather than ignore it
        raise InputError("--compile works in one process only; leave it out with --devices/--num-nodes")
    if args.num_nodes > 1 and not _launched_on_each_machine():  # else it waits for machines nobody started
        raise InputError(
            f"--num-nodes {args.num_nodes}: start the command on each machine with torchrun (--nnodes "
            f"{args.num_nodes} --node-rank ...) or srun, or set MASTER_ADDR, MASTER_PORT and NODE_RANK on each "
            "(docs/inference.md)"
        )
    accelerator = accelerator_of(str(options.device))
    return predict_folder_distributed(
        args.checkpoint, inputs, Path(args.output), options, accelerator, args.devices, args.num_nodes, args.threads
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``mantis predict``; returns the exit status (2 and one line on stderr for bad input)."""
    from mantis.commands import run_command

    parser = build_parser()
    args_in = list(sys.argv[1:] if argv is None else argv)

    def body() -> int:
        config = _peek_config(args_in)
        if config is not None:
            parser.set_defaults(**_config_defaults(parser, config))
        results = run(parser.parse_args(args_in))
        for result in results:
            for path in result.values():
                # One write call a line (print writes the newline apart): ranks share stdout without cut lines.
                sys.stdout.write(f"wrote {path}\n")
                sys.stdout.flush()
        return 0

    return run_command(PROG, body)


def _peek_config(argv: Sequence[str]) -> str | None:
    peek = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    peek.add_argument("--config")
    known, _ = peek.parse_known_args(argv)
    return known.config
