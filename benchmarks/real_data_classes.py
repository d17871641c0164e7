"""Do the minority classes get learnt? Three classes on the real SpaceNet tile, trained from scratch through the CLI.

    .venv/bin/python benchmarks/real_data_classes.py [--models fractal_resunet plain_unet] [--seeds 0 1]
        [--minutes 4] [--set model.init_args.model_kwargs.norm=batch --label batchnorm] [--workdir /tmp/mantis-3c]

The SpaceNet quadrants of ``benchmarks/real_data.py`` (three train, the bottom-left one tests; no validation,
so a constant learning rate), with each building footprint split into its interior (class 1, ``building``:
the footprint eroded by 2 pixels) and its 2-pixel rim (class 2, ``edge``); class 0 is the background. Shares
of the training quadrants: background 0.93-0.98, building 0.014-0.049, edge 0.006-0.018 — an imbalanced
multi-class task on real imagery, as LoveDA is, which the binary checks do not exercise.

Every run is ``mantis fit ... --test_after_fit true`` with the task's defaults at demo size (nf 16, depth 4),
128² windows, batch 8, bf16, as in ``real_data.py``. Reported per run: the IoU of each class on the training
windows of the epoch that ends at or before 50, 100, ..., 600 steps (``metrics.csv``: what the network has
learnt so far; 0.00 for a class means not a single pixel of it predicted right), and the test IoUs of the last
weights. The data are read from ``--shared`` and never copied into the repository.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from benchmarks.real_data import apply_settings, prepare_spacenet, run_config  # noqa: E402

CLASSES = ["background", "building", "edge"]
RIM = 2  # pixels of a footprint's rim
MARKS = (50, 100, 150, 200, 300, 400, 600)


def prepare(shared: Path, workdir: Path) -> Path:
    """The quadrants of ``real_data.prepare_spacenet`` with masks of background / interior / rim."""
    from scipy import ndimage

    from mantis.data.io import read_mask, write_image

    folder = prepare_spacenet(shared, workdir)
    for path in sorted((folder / "masks").glob("*.tif")):
        footprint = read_mask(path) > 0
        interior = ndimage.binary_erosion(footprint, iterations=RIM)
        write_image(path, np.where(interior, 1, np.where(footprint, 2, 0)).astype(np.uint8))
    return folder


def run(model: str, seed: int, args: argparse.Namespace, data: Path) -> dict:
    """One training run in a fresh process; returns its per-step training IoUs and test IoUs."""
    name = f"{model}{'-' + args.label if args.label else ''}-seed{seed}"
    run_dir = args.workdir / "runs" / name
    run_dir.mkdir(parents=True, exist_ok=True)
    config = run_config("seg", model, seed, args.minutes, data, run_dir, args.shared)
    config["trainer"]["callbacks"] = []  # real_data's per-epoch test scores are for two classes
    config["data"]["init_args"].update(num_classes=len(CLASSES), class_names=CLASSES)
    apply_settings(config, args.set)
    path = args.workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(args.threads),
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")]),
    }
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "real_data.py"), "_child", str(path)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    (run_dir / "stdout.txt").write_text(proc.stdout + proc.stderr)
    if proc.returncode:
        raise RuntimeError(f"{name} failed (exit {proc.returncode}); see {run_dir / 'stdout.txt'}")
    with open(run_dir / "metrics.csv", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("train/iou_macro")]
    curve = {}
    for mark in MARKS:
        seen = [r for r in rows if int(r["step"]) <= mark]
        if seen and int(rows[-1]["step"]) >= mark:
            curve[mark] = [float(seen[-1][f"train/iou_{c}"]) for c in CLASSES[1:]]
    test = json.loads((run_dir / "test_metrics.json").read_text())["metrics"]
    return {
        "name": f"{model}{' (' + args.label + ')' if args.label else ''}",
        "seed": seed,
        "steps": int(rows[-1]["step"]) if rows else 0,
        "curve": curve,
        "test": [test.get(f"iou_{c}") for c in CLASSES],
    }


def table(results: list[dict]) -> str:
    """Markdown: per run, the building / edge training IoUs at each mark and the test IoUs at the end."""
    head = "| network | seed | steps | " + " | ".join(f"{m} steps" for m in MARKS) + " | test IoU bg / bld / edge |"
    lines = [head, "|---|---:|---:|" + "---:|" * len(MARKS) + "---|"]
    for r in results:
        cells = [" / ".join(f"{v:.2f}" for v in r["curve"][m]) if m in r["curve"] else "-" for m in MARKS]
        test = " / ".join("-" if v is None else f"{v:.2f}" for v in r["test"])
        lines.append(f"| {r['name']} | {r['seed']} | {r['steps']} | " + " | ".join(cells) + f" | {test} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["fractal_resunet", "plain_unet"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--minutes", type=float, default=4.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/mantis-3c"))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="an ablation, as in real_data")
    parser.add_argument("--label", default="", help="name of the variant (with --set)")
    args = parser.parse_args()
    args.workdir = args.workdir.resolve()
    if not (args.shared / "data").is_dir():
        parser.error(f"{args.shared / 'data'}: not found (give --shared)")
    data = prepare(args.shared, args.workdir)
    results = [run(model, seed, args, data) for model in args.models for seed in args.seeds]
    print("Training-window IoU of building / edge by step, and test IoUs of the last weights:\n")
    print(table(results))


if __name__ == "__main__":
    main()
