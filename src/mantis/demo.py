"""``make demo``: train a small change detector on the built-in synthetic scenes, test it, show it.

Runs ``mantis fit --config configs/demo.yaml --test_after_fit true`` (the same code path as the CLI) into
``runs/demo/``, then draws a grid of test pairs with their true and predicted change, and prints the test
F1 of the change class. The run folder ends up with ``test_metrics.json``, ``training_curves.png``,
``predictions.png``, ``metrics.csv``, TensorBoard events, ``config.yaml`` and ``checkpoints/``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from mantis.cli import guarded, run_lightning_command
from mantis.plots import plot_prediction_grid

DEMO_CONFIG = Path("configs") / "demo.yaml"


def find_demo_config() -> Path:
    """``configs/demo.yaml`` in the working directory, else in the source checkout."""
    for base in (Path.cwd(), Path(__file__).resolve().parents[2]):
        if (base / DEMO_CONFIG).is_file():
            return base / DEMO_CONFIG
    raise FileNotFoundError(f"{DEMO_CONFIG}: not found; run the demo from the repository root")


def draw_predictions(cli: Any, path: Path, count: int = 4) -> Path:
    """Predict the first ``count`` test pairs with the (best) trained network and draw them."""
    dataset = cli.datamodule.datasets["test"]
    task = cli.model.eval()
    images, truth, predicted = [], [], []
    with torch.no_grad():
        for index in range(min(count, len(dataset))):
            sample = dataset[index]
            x1, x2 = sample["image1"][None], sample["image2"][None]
            out = task.model(x1.to(task.device), x2.to(task.device))
            predicted.append(out.segmentation.argmax(1)[0].cpu().numpy())
            images.append([sample["image1"].numpy(), sample["image2"].numpy()])
            truth.append(sample["mask"].numpy())
    return plot_prediction_grid(images, truth, predicted, path)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mantis.demo", description=__doc__)
    parser.add_argument("--config", default=None, help="training config (default configs/demo.yaml)")
    parser.add_argument("--run_dir", default="runs/demo", help="output folder (replaced if it holds a run)")
    parser.add_argument("--min_f1", type=float, default=0.8, help="exit status 1 below this test F1 of change")
    parser.add_argument("--samples", type=int, default=4, help="test pairs in predictions.png")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; returns 0 when the test F1 of the change class reaches ``--min_f1``."""
    args = _parser().parse_args(argv)
    start = time.perf_counter()
    run_dir = Path(args.run_dir)
    if (run_dir / "config.yaml").is_file():  # an earlier demo run: start afresh
        shutil.rmtree(run_dir)
    code, cli = guarded(
        "fit",
        lambda: run_lightning_command(
            ["fit", "--config", str(args.config or find_demo_config()), "--run_dir", str(run_dir)]
            + ["--test_after_fit", "true"]
        ),
    )
    if cli is None:
        return code
    grid = draw_predictions(cli, run_dir / "predictions.png", args.samples)
    record = json.loads((run_dir / "test_metrics.json").read_text())
    f1 = record["metrics"].get("f1_change")
    minutes, seconds = divmod(time.perf_counter() - start, 60)
    print()
    print(f"demo finished in {int(minutes)} min {seconds:.0f} s; outputs in {run_dir}/")
    print(f"  metrics:     {run_dir / 'test_metrics.json'}")
    print(f"  curves:      {run_dir / 'training_curves.png'}")
    print(f"  predictions: {grid}")
    print(f"test F1 of the change class: {f1:.3f}" if f1 is not None else "test F1 of the change class: undefined")
    if f1 is None or f1 < args.min_f1:
        print(f"below the expected {args.min_f1}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
