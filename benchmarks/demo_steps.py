"""Seconds per training step at demo size, this checkout against a baseline commit, measured in the same run.

    .venv/bin/python benchmarks/demo_steps.py --baseline REF [--models ...] [--bands 3 1] [--precision 32]
                                              [--write-docs]

The step is what ``mantis fit`` does on the real-data check (``benchmarks/real_data.py``): the task's
``compute_loss`` (multitask loss), backward and Adam, nf 16, depth 4, 128² windows, batch 8, bf16 autocast
(``--precision 32``: float32, what ``mantis fit`` trains in on a CPU without native bf16), channels-last, in a
fresh process per (checkout, model, bands), the checkouts interleaved. Both processes start through
``mantis.runtime`` only if the checkout has it (so the baseline runs as it would have). Each cell: median seconds
per step over ``--steps`` steps after two warm-up steps; the ratio is baseline / this checkout (above 1: this
checkout is faster).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from benchmarks.common import machine_line, write_section  # noqa: E402

MODELS = ["fractal_resunet", "fractal_resnet_cd", "ceecnet_v1", "ceecnet_v2"]
SECTION = "Training step at demo size"
SECTION_FP32 = "Training step at demo size in float32"

_CHILD = """
import json, sys, time, statistics, torch
import contextlib
model, bands, steps, precision = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
try:
    from mantis.runtime import keep_freed_memory
    keep_freed_memory()
except ImportError:
    pass
from mantis.data import ChangeDetectionDataModule, SegmentationDataModule
from mantis.tasks import ChangeDetectionTask, SegmentationTask
pair = model.endswith("_cd") or model.startswith("ceecnet")
torch.manual_seed(0)
task_class = ChangeDetectionTask if pair else SegmentationTask
data_class = ChangeDetectionDataModule if pair else SegmentationDataModule
data = data_class(patch_size=128, batch_size=8, num_workers=0, multitask=True, bands=bands)
data.setup("fit")
batch = next(iter(data.train_dataloader()))
classes = batch["segmentation"].shape[1]
size = {"nf": 16, "depth": 4, "psp_depth": 3}
task = task_class(model=model, model_kwargs=size, in_channels=bands, num_classes=classes)
task.use_channels_last()
task.train()
optimizer = torch.optim.Adam(task.parameters(), lr=1e-3)
times = []
for i in range(steps + 2):
    start = time.perf_counter()
    with torch.autocast("cpu", torch.bfloat16) if precision == "bf16" else contextlib.nullcontext():
        loss = task.compute_loss(batch)[0]
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    times.append(time.perf_counter() - start)
print(json.dumps(statistics.median(times[2:])))
"""


def _worktree(ref: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="mantis-baseline-")) / "tree"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(folder), ref], check=True, capture_output=True
    )
    return folder


def _step_seconds(root: Path, model: str, bands: int, steps: int, threads: int, precision: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(root / "src"), "OMP_NUM_THREADS": str(threads)}
    env = {k: v for k, v in env.items() if not k.startswith("MALLOC_")}
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, model, str(bands), str(steps), precision],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
    )
    if out.returncode:
        raise RuntimeError(f"{model} in {root}: {out.stderr[-2000:]}")
    return float(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", required=True, help="git ref to compare with (e.g. HEAD~3)")
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--bands", nargs="+", type=int, default=[3, 1], help="1: a panchromatic image")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=2, help="interleaved runs of each checkout")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", choices=["bf16", "32"], default="bf16")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    base = _worktree(args.baseline)
    label = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", args.baseline], capture_output=True, text=True, check=True
    ).stdout.strip()
    try:
        rows = []
        for model in args.models:
            pair = model.endswith("_cd") or model.startswith("ceecnet")
            for bands in args.bands:
                if pair and bands == 1:
                    continue
                old, new = [], []
                for _ in range(args.repeats):
                    old.append(_step_seconds(base, model, bands, args.steps, args.threads, args.precision))
                    new.append(_step_seconds(ROOT, model, bands, args.steps, args.threads, args.precision))
                o, n = statistics.median(old), statistics.median(new)
                rows.append(f"| {model} | {bands} | {o:.3f} | {n:.3f} | {o / n:.2f} |")
                print(rows[-1], flush=True)
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], capture_output=True)
    text = "\n".join(
        [
            f"Seconds per training step (multitask loss, backward, Adam) at demo size (nf 16, depth 4), 128² windows, "
            f"batch 8, {'bf16' if args.precision == 'bf16' else 'float32'}, channels-last: baseline commit `{label}` "
            "against this checkout, in the same run.",
            "",
            f"- Command: `python benchmarks/demo_steps.py --baseline {label}"
            + ("`" if args.precision == "bf16" else " --precision 32`"),
            f"- {machine_line()} {args.threads} threads; median of {args.steps} steps, {args.repeats} interleaved "
            "processes per checkout.",
            "",
            f"| network | bands | s/step `{label}` | s/step this checkout | speed-up |",
            "|---|---:|---:|---:|---:|",
            *rows,
        ]
    )
    print(text)
    if args.write_docs:
        write_section(SECTION if args.precision == "bf16" else SECTION_FP32, text)


if __name__ == "__main__":
    main()
