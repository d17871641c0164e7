"""Why a FracTAL ResUNet step costs more than a plain U-Net step at demo size: work, memory traffic and where
the time goes.

    .venv/bin/python benchmarks/step_cost.py [--bands 1] [--steps 6] [--threads 2] [--precision 32] [--write-docs]

For FracTAL ResUNet (nf 16, depth 4, PSP depth 3) and the straightforward U-Net of ``benchmarks/plain_unet.py``
(nf 16, depth 4) on a batch of eight 128² windows of the built-in scenes (the sizes of the SpaceNet check of
``benchmarks/real_data.py``):

- forward GFLOP (``torch.utils.flop_counter``) and the megabytes of every module's output in the forward pass
  (float32 sizes; what a step must write and read back, at least once, in the forward and again in the backward);
- seconds per training step (the segmentation task's ``compute_loss``, backward and fused Adam as in
  ``mantis fit``, bf16 autocast, channels-last; median after two warm-up steps), the two networks interleaved;
  ``--precision 32`` steps in float32 instead, as ``mantis fit`` trains on a CPU without native bf16 (its own
  section of docs/benchmarks.md);
- FracTAL ResUNet's step split by the profiler: convolution forward and backward, the norms, and everything
  else (elementwise operations, attention, copies), and the share of the forward spent in the multitask head
  at full resolution.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from benchmarks.common import interleaved_medians, machine_line, write_section  # noqa: E402

SECTION = "Where a segmentation step goes at demo size"
PRECISIONS = {"bf16": torch.bfloat16, "32": None}
NETWORKS = {
    "fractal_resunet": {"nf": 16, "depth": 4, "psp_depth": 3},
    "plain_unet": {"nf": 16, "depth": 4},
}


def _task(name: str, bands: int, classes: int) -> Any:
    from mantis.tasks import SegmentationTask

    torch.manual_seed(0)
    task = SegmentationTask(model=name, model_kwargs=NETWORKS[name], in_channels=bands, num_classes=classes)
    task.use_channels_last()
    return task.train()


def _batch(bands: int) -> dict[str, torch.Tensor]:
    from mantis.data import SegmentationDataModule

    data = SegmentationDataModule(patch_size=128, batch_size=8, num_workers=0, multitask=True, bands=bands)
    data.setup("fit")
    return next(iter(data.train_dataloader()))


def _step(
    task: Any, optimizer: torch.optim.Optimizer, batch: dict[str, torch.Tensor], dtype: torch.dtype | None
) -> None:
    with torch.autocast("cpu", dtype or torch.float32, enabled=dtype is not None):
        loss = task.compute_loss(batch)[0]
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def _work(model: torch.nn.Module, x: torch.Tensor) -> tuple[float, float]:
    """Forward GFLOP and megabytes (float32) of the outputs of every leaf module."""
    from torch.utils.flop_counter import FlopCounterMode

    written = [0]

    def count(_: torch.nn.Module, __: Any, out: Any) -> None:
        if isinstance(out, torch.Tensor):
            written[0] += out.numel()

    leaves = [m for m in model.modules() if not list(m.children())]
    hooks = [m.register_forward_hook(count) for m in leaves]
    with torch.no_grad(), FlopCounterMode(display=False) as flops:
        model(x)
    for h in hooks:
        h.remove()
    return flops.get_total_flops() / 1e9, written[0] * 4 / 1e6


def _split(
    task: Any, optimizer: torch.optim.Optimizer, batch: dict[str, torch.Tensor], steps: int, dtype: torch.dtype | None
) -> dict[str, float]:
    """Shares of FracTAL ResUNet's step by kind of operation (profiler self time)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            _step(task, optimizer, batch, dtype)
    shares = {"convolution forward": 0.0, "convolution backward": 0.0, "norms": 0.0, "other": 0.0}
    for event in prof.key_averages():
        name = event.key
        if name in ("aten::mkldnn_convolution", "aten::convolution_overrideable", "aten::_convolution"):
            kind = "convolution forward"
        elif name == "aten::convolution_backward":
            kind = "convolution backward"
        elif "norm" in name.lower():
            kind = "norms"
        else:
            kind = "other"
        shares[kind] += event.self_cpu_time_total
    total = sum(shares.values())
    return {k: v / total for k, v in shares.items()}


def _head_share(model: torch.nn.Module, x: torch.Tensor, dtype: torch.dtype | None, repeats: int = 5) -> float:
    """Share of the forward pass (``dtype`` autocast, or float32) spent in ``model.head``."""
    spent = [0.0]
    start = [0.0]

    def enter(*_: Any) -> None:
        start[0] = time.perf_counter()

    def leave(*_: Any) -> None:
        spent[0] += time.perf_counter() - start[0]

    head = model.get_submodule("head")
    hooks = [head.register_forward_pre_hook(enter), head.register_forward_hook(leave)]
    total = 0.0
    with torch.no_grad(), torch.autocast("cpu", dtype or torch.float32, enabled=dtype is not None):
        model(x)
        spent[0] = 0.0
        for _ in range(repeats):
            begin = time.perf_counter()
            model(x)
            total += time.perf_counter() - begin
    for h in hooks:
        h.remove()
    return spent[0] / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bands", type=int, default=1, help="1: a panchromatic image, as the SpaceNet tile")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", choices=sorted(PRECISIONS), default="bf16")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    dtype = PRECISIONS[args.precision]
    torch.set_num_threads(args.threads)
    from benchmarks.plain_unet import register
    from mantis.runtime import keep_freed_memory

    keep_freed_memory()
    register()
    batch = _batch(args.bands)
    classes = batch["segmentation"].shape[1]  # the built-in scenes' classes
    tasks = {name: _task(name, args.bands, classes) for name in NETWORKS}
    optimizers = {name: torch.optim.Adam(t.parameters(), lr=1e-3, fused=True) for name, t in tasks.items()}
    x = batch["image"].contiguous(memory_format=torch.channels_last)
    rows = []
    steps = {name: functools.partial(_step, tasks[name], optimizers[name], batch, dtype) for name in NETWORKS}
    seconds = interleaved_medians(steps, repeats=args.steps)
    for name, task in tasks.items():
        gflop, megabytes = _work(task.model, x)
        params = sum(p.numel() for p in task.model.parameters())
        rows.append(f"| {name} | {params / 1e3:.0f} k | {gflop:.1f} | {megabytes:.0f} | {seconds[name]:.3f} |")
    frac = "fractal_resunet"
    split = _split(tasks[frac], optimizers[frac], batch, max(2, args.steps // 2), dtype)
    head = _head_share(tasks[frac].model, x, dtype)
    ratio = seconds[frac] / seconds["plain_unet"]
    flag = "" if args.precision == "bf16" else f" --precision {args.precision}"
    body = "\n".join(
        [
            f"- Command: `python benchmarks/step_cost.py --bands {args.bands} --steps {args.steps}{flag}`",
            f"- {machine_line()}",
            "",
            "| network | parameters | forward GFLOP | module outputs, MB (fp32) | s per training step |",
            "|---|---:|---:|---:|---:|",
            *rows,
            "",
            f"FracTAL ResUNet / plain U-Net, seconds per step: {ratio:.2f}x. Its step by kind of operation: "
            + ", ".join(f"{k} {v:.0%}" for k, v in split.items())
            + f"; the multitask head at full resolution takes {head:.0%} of the forward pass.",
        ]
    )
    print(body)
    if args.write_docs:
        write_section(SECTION + ("" if dtype is not None else " in float32"), body)


if __name__ == "__main__":
    main()
