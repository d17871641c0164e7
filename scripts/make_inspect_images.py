"""Make the pictures of docs/inspect.md (docs/images/inspect_*.png) with the commands the page shows.

    make demo                                     # trains runs/demo (a few minutes on a CPU)
    python scripts/make_inspect_images.py --run runs/demo

Without a run, a freshly built demo-size model is drawn (untrained: gates at zero, flat outputs). Each
picture is written by ``mantis visualize`` / ``mantis conv``, then stored as a 256-colour PNG so that it
stays under 200 kB.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from PIL import Image

from mantis.cli import main as mantis

DEMO_MODEL = ["--model", "fractal_resnet_cd", "--model_kwargs", json.dumps({"nf": 16, "depth": 4, "psp_depth": 3})]
LIMIT = 200 * 1024  # bytes per picture


def _checkpoint(run: Path | None) -> list[str]:
    """The run's best checkpoint as the model argument, else the fresh demo-size model."""
    if run is None:
        return DEMO_MODEL
    found = sorted((run / "checkpoints").glob("best*.ckpt")) or sorted((run / "checkpoints").glob("*.ckpt"))
    if not found:
        raise SystemExit(f"{run}: no checkpoint in {run / 'checkpoints'}")
    return [str(found[-1])]


def _commands(model: list[str], run: Path | None, tmp: Path) -> list[list[str]]:
    """Every command whose pictures the page shows (``--out`` added per command)."""
    scene = ["--scene", "7"]
    commands = [
        ["visualize", *model, *scene, "--show", "outputs", "gates", "filters"],
        ["visualize", *model, *scene, "--show", "features", "--units", "stem", "encoder", "--channels", "4"],
        ["visualize", *model, *scene, "--show", "attention", "--units", "encoder.units.1", "decoder.units.2"],
        ["visualize", *model, *scene, "--show", "saliency", "--class", "1", "--pixel", "32,32"],
        ["visualize", *model, *scene, "--show", "maximise", "--class", "1", "--steps", "64"],
        ["visualize", "--activations"],
        [
            "conv",
            "32x32",
            "k3p1",
            "k2s2",
            "k3p1",
            "k3d2psame",
            "--png",
            str(tmp / "conv" / "conv.png"),
            "--cell",
            "7,7",
        ],
    ]
    if run is not None:
        commands.append(["visualize", "--curves", str(run)])
    return commands


def main(argv: list[str] | None = None) -> int:
    """Run the commands into a temporary folder and store their pictures, reduced, in ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, help="a training run folder (checkpoints/, metrics.csv): runs/demo")
    parser.add_argument("--out", type=Path, default=Path("docs/images"), help="where the pictures go")
    args = parser.parse_args(argv)
    model = _checkpoint(args.run)
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        for index, command in enumerate(_commands(model, args.run, tmp)):
            extra = [] if command[0] == "conv" else ["--out", str(tmp / str(index))]
            print("mantis " + " ".join(command + extra), flush=True)
            if mantis(command + extra) != 0:
                return 1
        args.out.mkdir(parents=True, exist_ok=True)
        for picture in sorted(tmp.rglob("*.png")):
            target = args.out / f"inspect_{picture.name}"
            with Image.open(picture) as image:
                image.convert("RGB").quantize(256).save(target, optimize=True)
            size = target.stat().st_size
            print(f"wrote {target} ({size / 1024:.0f} kB)")
            if size > LIMIT:
                print(f"{target}: larger than {LIMIT // 1024} kB", file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
