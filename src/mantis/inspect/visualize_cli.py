"""``mantis visualize``: PNG pictures of what a network computes (see :mod:`mantis.inspect.visualize`).

mantis visualize --model fractal_resunet --model_kwargs '{"nf": 16, "depth": 4}' --scene 0 --out pictures
mantis visualize runs/demo/checkpoints/best.ckpt --input a.png b.png --show attention gates --out pictures
mantis visualize CHECKPOINT --scene 3 --show saliency --class 1 --pixel 32,32 --out pictures
mantis visualize CHECKPOINT --scene 3 --show maximise --layer encoder.units.2 --channel 5 --out pictures
mantis visualize --activations --out pictures       # every activation of mantis.nn.activations
mantis visualize --curves runs/demo --out pictures  # training curves of a run (its metrics.csv)
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from mantis.commands import CommandError, command_parser, run_command
from mantis.inspect.model_source import load_model_source

PROG = "mantis visualize"
#: What ``--show`` can draw, each to ``<name>.png`` in the output folder.
PICTURES = ("features", "attention", "gates", "outputs", "filters", "saliency", "maximise")


def _parser() -> argparse.ArgumentParser:
    parser = command_parser(
        PROG,
        "PNG pictures of what a network computes: feature maps per level, FracTAL attention maps, "
        "learned gates, outputs, first-layer filters, saliency, activation maximisation; also every activation "
        "of the library and a run's training curves.",
        "examples:\n  " + "\n  ".join((__doc__ or "").split("\n\n")[1].splitlines()),
    )
    parser.add_argument("checkpoint", nargs="?", type=Path, help="a .ckpt or an export folder (or use --model)")
    parser.add_argument("--model", help="build a fresh model by registry name instead of a checkpoint")
    parser.add_argument("--model_kwargs", default="{}", help="JSON object of model arguments, e.g. '{\"nf\": 16}'")
    parser.add_argument("--input", nargs="+", type=Path, help="an image file, or two (the dates of a pair)")
    parser.add_argument("--scene", type=int, help="a built-in synthetic scene (or pair) with this seed")
    parser.add_argument("--size", type=int, default=64, help="side of the synthetic scene in pixels (default 64)")
    parser.add_argument("--show", nargs="+", choices=PICTURES, help="what to draw (default: all that apply)")
    parser.add_argument(
        "--units",
        nargs="+",
        help="levels and attention modules to draw: module names, each with what is inside it (e.g. encoder)",
    )
    parser.add_argument("--channels", type=int, default=6, help="channels drawn per level in features.png")
    parser.add_argument("--class", dest="class_index", type=int, help="class for outputs, saliency, maximise")
    parser.add_argument("--pixel", help="output pixel for saliency, e.g. 32,32 (default: every pixel)")
    parser.add_argument("--layer", help="maximise a channel of this module (default: the class of --class)")
    parser.add_argument("--channel", type=int, default=0, help="channel of --layer to maximise")
    parser.add_argument("--steps", type=int, default=64, help="gradient-ascent steps of maximise")
    parser.add_argument("--seed", type=int, default=0, help="seed of maximise's noise")
    parser.add_argument("--activations", action="store_true", help="plot every activation the library offers")
    parser.add_argument("--curves", type=Path, metavar="RUN_DIR", help="plot a run's training curves (metrics.csv)")
    parser.add_argument("--out", type=Path, default=Path("visualize"), help="output folder (default ./visualize)")
    return parser


@dataclass
class Subject:
    """The model to look at, its inputs (B=1 x C x H x W each) and what they are called."""

    model: nn.Module
    name: str | None
    inputs: list[torch.Tensor]
    source: str


def _load_subject(args: argparse.Namespace) -> Subject:
    from mantis.models.registry import count_inputs

    try:
        built = load_model_source(args.checkpoint, args.model, args.model_kwargs)
    except ValueError as error:
        raise CommandError(str(error)) from None
    name, kwargs, model = built.name, built.kwargs, built.model
    mean, std = built.band_mean, built.band_std
    model.eval()
    from mantis.models.registry import model_info

    if name is not None and not model_info(name).spatial_dims:
        raise CommandError(f"{name}: takes feature vectors (a table), not images: mantis visualize draws image models")
    dims = int(getattr(model, "spatial_dims", kwargs.get("spatial_dims", 2)))
    if dims != 2:
        raise CommandError(f"{name}: mantis visualize draws 2D models; this one has spatial_dims={dims}")
    bands = int(getattr(model, "in_channels", kwargs.get("in_channels", 3)))
    pair = count_inputs(model) == 2
    inputs, source = _read_inputs(args, bands, pair, mean, std)
    multiple = int(getattr(model, "size_multiple", 1))
    bad = [n for n in inputs[0].shape[2:] if n % multiple]
    if bad:
        from mantis.models.common import nearest_sizes

        raise CommandError(
            f"{source}: size {'x'.join(map(str, inputs[0].shape[2:]))} is not a multiple of {multiple}, which "
            f"{name} needs; nearest valid sizes: {nearest_sizes(bad[0], multiple)}"
        )
    try:
        with torch.no_grad():
            model(*inputs)
    except RuntimeError as error:  # a Sequential without an input check: PyTorch's shape message
        raise CommandError(f"{source}: the model cannot take this input ({str(error).splitlines()[0]})") from None
    return Subject(model, name, inputs, source)


def _read_inputs(
    args: argparse.Namespace, bands: int, pair: bool, mean: list[float] | None, std: list[float] | None
) -> tuple[list[torch.Tensor], str]:
    """The model's input tensors from ``--input`` files or a ``--scene``, checked against the model."""
    if (args.input is None) == (args.scene is None):
        raise CommandError("give an input: --input FILE (two files for a pair) or --scene SEED")
    wanted = 2 if pair else 1
    if args.scene is not None:
        from mantis.data.synthetic import synthetic_change_pair, synthetic_segmentation_scene

        if args.size < 8:
            raise CommandError(f"--size {args.size}: a scene needs at least 8 pixels")
        if pair:
            scene = synthetic_change_pair(args.scene, args.size, bands=bands)
            arrays = [scene["image1"], scene["image2"]]
        else:
            arrays = [synthetic_segmentation_scene(args.scene, args.size, bands=bands)["image"]]
        return [torch.from_numpy(a)[None].float() for a in arrays], f"scene {args.scene}"
    files: list[Path] = args.input
    if len(files) != wanted:
        need = "two files (the dates of a pair)" if pair else "one file"
        raise CommandError(f"{' '.join(map(str, files))}: the model takes {need}, got {len(files)}")
    from mantis.io.normalize import normalize_image
    from mantis.io.raster import read_image

    tensors = []
    for path in files:
        array = read_image(path)
        if array.shape[0] != bands:
            raise CommandError(f"{path}: has {array.shape[0]} bands; the model takes {bands}")
        tensors.append(torch.from_numpy(normalize_image(array, mean, std)).float()[None])
    if pair and tensors[0].shape != tensors[1].shape:
        raise CommandError(f"{files[1]}: size differs from {files[0]}'s")
    return tensors, str(files[0])


def _pixel(text: str | None, size: Sequence[int]) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        pixel = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise CommandError(f"--pixel {text!r}: give row,column, e.g. 32,32") from None
    if len(pixel) != len(size) or not all(0 <= p < n for p, n in zip(pixel, size)):
        raise CommandError(f"--pixel {text!r}: the output is {'x'.join(map(str, size))} pixels")
    return pixel


def _pictures(subject: Subject, args: argparse.Namespace) -> dict[str, Callable[[Path], Any]]:
    """What can be drawn for this model, as ``name -> draw(path)``, after checking the options against it
    (the drawing itself, and its passes through the model, waits until the picture is wanted)."""
    from mantis.inspect import figures
    from mantis.inspect import visualize as vis
    from mantis.nn.attention import FracTALAttention

    model, inputs = subject.model, subject.inputs
    images = [x[0] for x in inputs]
    with torch.no_grad():
        outputs = {k: v[0].float() for k, v in vis.output_tensors(model(*inputs)).items()}
    first = next(iter(outputs.values()))
    classes = first.shape[0]
    class_index = classes - 1 if args.class_index is None else args.class_index
    if not 0 <= class_index < classes:
        raise CommandError(f"--class {class_index}: the model has {classes} classes (0 to {classes - 1})")
    dense = first.dim() == 3
    if args.pixel is not None and not dense:
        raise CommandError(f"--pixel {args.pixel}: {subject.name} gives one value per class, not a map")
    pixel = _pixel(args.pixel, first.shape[1:]) if dense else None
    _check_maximise_target(subject, args, class_index)

    def chosen(name: str) -> bool:
        return vis.selected(name, args.units)

    stages = [name for name in vis.stage_names(model) if chosen(name)]
    attention_modules = [n for n, m in model.named_modules() if isinstance(m, FracTALAttention) and chosen(n)]
    if args.units and not stages and not attention_modules:
        raise CommandError(f"--units {' '.join(args.units)}: no level or FracTAL attention module has such a name")
    available: dict[str, Callable[[Path], Any]] = {}

    def draw_features(path: Path) -> Any:
        maps = [m for m in vis.feature_maps(model, inputs)[0] if chosen(m.name)]
        return figures.draw_feature_maps(maps, path, args.channels)

    if stages or not vis.stage_names(model) and not args.units:  # a Sequential: one map per resolution
        available["features"] = draw_features

    def draw_attention(path: Path) -> Any:
        found = vis.attention_maps(model, inputs, args.units)
        limit = 12
        if len(found) > limit:
            print(f"attention: drawing {limit} of {len(found)} attention calls; choose others with --units")
        return figures.draw_attention(found[:limit], images, path)

    if attention_modules:
        available["attention"] = draw_attention
    gate_values = vis.gates(model)
    if gate_values:
        available["gates"] = lambda path: figures.draw_gates(gate_values, path)
    if dense:
        available["outputs"] = lambda path: figures.draw_outputs(images, outputs, path, class_index)

    def draw_saliency(path: Path) -> Any:
        maps = vis.saliency(model, inputs, class_index, pixel)
        where = "" if not dense else " at every pixel" if pixel is None else f" at pixel {','.join(map(str, pixel))}"
        title = f"input-gradient saliency of class {class_index}{where}"
        return figures.draw_saliency(images, maps, path, title, pixel)

    available["saliency"] = draw_saliency
    available["filters"] = lambda path: figures.draw_filters(*vis.first_layer_filters(model), path)

    def draw_maximised(path: Path) -> Any:
        found = vis.maximise_activation(
            model,
            inputs,
            layer=args.layer,
            channel=args.channel if args.layer else class_index,
            steps=args.steps,
            seed=args.seed,
        )
        what = f"channel {args.channel} of {args.layer}" if args.layer else f"class {class_index}"
        return figures.draw_maximised(found, path, f"activation maximisation of {what} ({args.steps} steps)")

    available["maximise"] = draw_maximised
    return available


def _check_maximise_target(subject: Subject, args: argparse.Namespace, class_index: int) -> None:
    """``--layer``, ``--channel``, ``--steps`` and ``--channels`` against the model, before anything is drawn."""
    if args.steps < 1:
        raise CommandError(f"--steps {args.steps}: at least one step")
    if args.channels < 1:
        raise CommandError(f"--channels {args.channels}: at least one channel per level")
    if args.layer is None:
        return
    modules = dict(subject.model.named_modules())
    if args.layer not in modules:
        raise CommandError(f"--layer {args.layer!r}: no such module (`mantis summary` lists the names)")
    widths: list[int] = []

    def width(_module: nn.Module, _args: Any, out: Any) -> None:
        if isinstance(out, torch.Tensor) and out.dim() >= 2 and not widths:
            widths.append(int(out.shape[1]))

    handle = modules[args.layer].register_forward_hook(width)
    try:
        with torch.no_grad():
            subject.model(*subject.inputs)
    finally:
        handle.remove()
    if not widths:
        raise CommandError(f"--layer {args.layer!r}: gives no tensor with channels (or does not run)")
    if not 0 <= args.channel < widths[0]:
        raise CommandError(f"--channel {args.channel}: {args.layer} gives {widths[0]} channels (0 to {widths[0] - 1})")


def _curves(run: Path, out: Path) -> Path:
    """The training curves of the run whose ``metrics.csv`` is in ``run`` (or below it, the newest)."""
    from mantis.plots import plot_training_curves

    if run.is_file():
        csv = run
    elif (run / "metrics.csv").is_file():
        csv = run / "metrics.csv"
    else:
        found = sorted(run.rglob("metrics.csv"), key=lambda p: p.stat().st_mtime) if run.is_dir() else []
        if not found:
            raise CommandError(f"{run}: no metrics.csv in this run folder")
        csv = found[-1]
    temporary = out / f".curves.png.tmp-{os.getpid()}.png"
    try:
        plot_training_curves(csv, temporary)
        os.replace(temporary, out / "curves.png")
    except (KeyError, ValueError) as error:
        raise CommandError(f"{csv}: not a training log ({error})") from None
    finally:
        temporary.unlink(missing_ok=True)
    return out / "curves.png"


def run(args: argparse.Namespace) -> int:
    """Check everything, then draw each picture to ``args.out``; prints the files written."""
    from mantis.io.folders import writable_folder

    if args.activations or args.curves is not None:
        if args.checkpoint is not None or args.model is not None:
            raise CommandError("--activations and --curves draw no model: leave out the checkpoint and --model")
        if args.curves is not None and not args.curves.exists():
            raise CommandError(f"{args.curves}: no such run folder")
        writable_folder(args.out)
        if args.activations:
            from mantis.inspect.figures import draw_activations

            print(f"wrote {draw_activations(args.out / 'activations.png')}")
        if args.curves is not None:
            print(f"wrote {_curves(args.curves, args.out)}")
        return 0
    subject = _load_subject(args)
    available = _pictures(subject, args)
    wanted = args.show or [name for name in PICTURES if name in available]
    for option, value, picture in (("--pixel", args.pixel, "saliency"), ("--layer", args.layer, "maximise")):
        if value is not None and picture not in wanted:
            raise CommandError(f"{option} {value}: chooses what {picture} draws, but --show leaves {picture} out")
    missing = [name for name in wanted if name not in available]
    if missing:
        raise CommandError(
            f"{subject.name}: has nothing to draw for {', '.join(missing)} (it can draw: {', '.join(available)})"
        )
    writable_folder(args.out)
    for name in wanted:
        print(f"wrote {available[name](args.out / f'{name}.png')}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``mantis visualize``."""
    args = list(sys.argv[1:] if argv is None else argv)
    return run_command(PROG, lambda: run(_parser().parse_args(args)))
