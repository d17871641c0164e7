"""The ``mantis`` command's front door: help and version at once, everything else handed to its command.

Nothing heavy is imported here (no torch, no Lightning), so ``mantis --help`` and ``mantis --version``
answer in a fraction of a second; a command's own module is imported only when it runs.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

PROG = "mantis"

#: Every command and what it does, in the order shown by ``mantis --help``.
COMMANDS: dict[str, str] = {
    "fit": "train a model (LightningCLI: --config FILE.yaml, dotted overrides, --print_config)",
    "validate": "score a checkpoint on the validation split",
    "test": "score a checkpoint on the test split",
    "sweep": "train and test once per seed (--seeds 0 1 2 -- fit ...): mean ± std of every test metric",
    "predict": "predict rasters or folders of any size with a checkpoint (tiled, blended, GeoTIFF out)",
    "evaluate": "score written class maps against reference masks: pixel and object (IoU-matched) scores",
    "report": "one self-contained HTML page of a run or prediction folder: metrics, curves, before/after swipes",
    "export": "write a checkpoint as safetensors + config, ONNX and a torch.export program",
    "stats": "per-band statistics of a folder of images, for normalisation",
    "summary": "layers, output shapes and parameters of a model or checkpoint",
    "conv": "convolution arithmetic: output sizes, 'same' padding, transposed inverses, receptive field",
    "visualize": "PNG pictures of a model: feature maps, attention, gates, saliency, activation maximisation",
    "convert": "read the authors' MXNet .params weights into a Mantis checkpoint",
    "configs": "copy the example configs that come with the package into a folder (default ./configs)",
}


def version() -> str:
    """The version of this package (``mantis.__version__``, also the distribution's)."""
    from mantis import __version__

    return __version__


def usage() -> str:
    """The short usage line that ends a usage error."""
    return f"usage: {PROG} COMMAND [options]; commands: {', '.join(COMMANDS)}; '{PROG} --help' lists them"


def help_text() -> str:
    """``mantis --help``: every command with a sentence."""
    width = max(map(len, COMMANDS))
    lines = [
        f"usage: {PROG} COMMAND [options]",
        "",
        "Dense prediction on ordered data: FracTAL networks for segmentation and change detection.",
        "",
        "commands:",
        *(f"  {name:<{width}}  {text}" for name, text in COMMANDS.items()),
        "",
        f"'{PROG} COMMAND --help' shows a command's options; '{PROG} --version' the version.",
    ]
    return "\n".join(lines)


def copy_configs(argv: Sequence[str]) -> int:
    """``mantis configs [DEST]``: copy the packaged example configs to ``DEST``; never overwrites a file."""
    from pathlib import Path

    if any(a in ("-h", "--help") for a in argv) or len(argv) > 1:
        print(f"usage: {PROG} configs [DEST]  (copies the example configs; default ./configs)")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    source = Path(__file__).resolve().parent / "configs"
    dest = Path(argv[0] if argv else "configs")
    files = sorted(source.glob("*.yaml"))
    clashes = [dest / f.name for f in files if (dest / f.name).exists()]
    if dest.exists() and not dest.is_dir():
        print(f"{PROG} configs: error: {dest}: exists and is not a folder", file=sys.stderr)
        return 2
    if clashes:
        print(f"{PROG} configs: error: {clashes[0]}: already exists (nothing copied)", file=sys.stderr)
        return 2
    dest.mkdir(parents=True, exist_ok=True)
    for f in files:
        (dest / f.name).write_bytes(f.read_bytes())
        print(f"wrote {dest / f.name}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``mantis``; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print(usage(), file=sys.stderr)
        return 2
    if args[0] in ("-h", "--help"):
        print(help_text())
        return 0
    if args[0] in ("-V", "--version"):
        print(f"{PROG} {version()}")
        return 0
    if args[0] not in COMMANDS:
        print(f"{PROG}: error: unknown command {args[0]!r}; {usage()}", file=sys.stderr)
        return 2
    if args[0] == "configs":
        return copy_configs(args[1:])
    from mantis.cli import main as run

    return run(None if argv is None else args)  # None: the command reads sys.argv itself, as Lightning expects


if __name__ == "__main__":
    sys.exit(main())
