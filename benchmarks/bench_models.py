"""Training-step and inference throughput of every segmentation and change-detection model.

Training step (forward, multitask loss, backward, Adam step) at 256^2 in float32 vs bf16 autocast, contiguous
vs channels-last, eager vs ``torch.compile``; the fast vs the straightforward attention; inference throughput,
peak memory, FLOPs per image and the achieved fraction of the measured matrix-product peak.

    .venv/bin/python benchmarks/bench_models.py train [--models ...] [--compile] [--write-docs]
    .venv/bin/python benchmarks/bench_models.py infer [--models ...] [--write-docs]

Each (model, setting) runs in a fresh subprocess so that peak RSS and compile caches are its own.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mantis  # noqa: E402
from benchmarks.common import machine_line, matmul_peak_gflops, median_time, write_section  # noqa: E402
from mantis.losses import MultitaskLoss  # noqa: E402

SEGMENTATION = ["fractal_resunet", "resunet_a_d6", "resunet_a_d7"]
CHANGE = ["ceecnet_v1", "ceecnet_v2", "fractal_resnet_cd"]
ALL = SEGMENTATION + CHANGE


def build(name: str, size: int, batch: int, channels_last: bool) -> tuple[torch.nn.Module, tuple[torch.Tensor, ...]]:
    torch.manual_seed(0)
    model = mantis.create_model(name, in_channels=3, num_classes=2)
    shape = (batch, 3, size, size)
    inputs = (torch.rand(shape), torch.rand(shape)) if name in CHANGE else (torch.rand(shape),)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        inputs = tuple(x.contiguous(memory_format=torch.channels_last) for x in inputs)
    return model, inputs


def targets_for(out: Any) -> dict[str, torch.Tensor]:
    return {k: torch.rand_like(v) for k, v in out._asdict().items()}


def measure_train(
    name: str,
    size: int,
    batch: int,
    bf16: bool,
    channels_last: bool,
    compiled: bool,
    straightforward: bool,
    repeats: int,
) -> dict[str, float]:
    model, inputs = build(name, size, batch, channels_last)
    model.train()
    step_model: Any = torch.compile(model) if compiled else model
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_fn = MultitaskLoss(depth=0)
    with torch.no_grad():
        targets = targets_for(model(*inputs))

    def step() -> None:
        optimiser.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = step_model(*inputs)
        loss = loss_fn(out, targets)
        loss.backward()
        optimiser.step()

    context: Any = contextlib.nullcontext()
    if straightforward:
        from benchmarks.straightforward_attention import straightforward_attention

        context = straightforward_attention()
    with context:
        start = time.perf_counter()
        step()  # first step: compile time when compiled
        first = time.perf_counter() - start
        seconds = median_time(step, repeats=repeats, warmup=1)
    return {"images_per_s": batch / seconds, "step_s": seconds, "first_step_s": first}


def measure_infer(name: str, size: int, batch: int, bf16: bool, repeats: int) -> dict[str, float]:
    from torch.utils.flop_counter import FlopCounterMode

    model, inputs = build(name, size, batch, channels_last=bf16)
    model.eval()
    with torch.no_grad():
        counter = FlopCounterMode(display=False)
        with counter:
            model(*inputs)
        flops = counter.get_total_flops() / batch

        def run() -> None:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                model(*inputs)

        seconds = median_time(run, repeats=repeats, warmup=1)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"images_per_s": batch / seconds, "gflops_per_image": flops / 1e9, "peak_rss_mb": peak_mb}


def child(args: argparse.Namespace) -> None:
    if args.mode == "train":
        result = measure_train(
            args.model,
            args.size,
            args.batch,
            args.bf16,
            args.channels_last,
            args.compiled,
            args.straightforward,
            args.repeats,
        )
    elif args.mode == "infer":
        result = measure_infer(args.model, args.size, args.batch, args.bf16, args.repeats)
    else:
        result = {"gflops": matmul_peak_gflops(torch.bfloat16 if args.bf16 else torch.float32)}
    print("RESULT " + json.dumps(result))


def spawn(mode: str, model: str, size: int, batch: int, repeats: int, **flags: bool) -> dict[str, float]:
    cmd = [
        sys.executable,
        __file__,
        "_child",
        "--mode",
        mode,
        "--model",
        model,
        "--size",
        str(size),
        "--batch",
        str(batch),
        "--repeats",
        str(repeats),
    ]
    cmd += [f"--{k.replace('_', '-')}" for k, v in flags.items() if v]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            result: dict[str, float] = json.loads(line[7:])
            return result
    sys.stderr.write(proc.stderr[-2000:])
    return {}


def fmt(value: float | None, spec: str = ".2f") -> str:
    return "n/a" if value is None else format(value, spec)


def train_table(models: list[str], size: int, batch: int, repeats: int, with_compile: bool) -> str:
    settings = [
        ("fp32", {}),
        ("bf16", {"bf16": True}),
        ("fp32 CL", {"channels_last": True}),
        ("bf16 CL", {"bf16": True, "channels_last": True}),
    ]
    if with_compile:
        settings += [
            ("fp32 compiled", {"compiled": True}),
            ("bf16 CL compiled", {"bf16": True, "channels_last": True, "compiled": True}),
        ]
    header = "| model | " + " | ".join(s for s, _ in settings) + " | bf16 CL / fp32 |"
    lines = [header, "|---|" + "---:|" * (len(settings) + 1)]
    sf_rows = []
    for name in models:
        res = {
            label: spawn("train", name, size, batch, repeats, **flags).get("images_per_s") for label, flags in settings
        }
        best_bf16 = res.get("bf16 CL")
        ratio = best_bf16 / res["fp32"] if best_bf16 and res.get("fp32") else None
        lines.append(f"| `{name}` | " + " | ".join(fmt(res[s], ".3f") for s, _ in settings) + f" | {fmt(ratio)} |")
        if name in ("fractal_resunet", "ceecnet_v1"):
            for label, flags in (("fp32", {}), ("bf16 CL", {"bf16": True, "channels_last": True})):
                fast = res[label]
                slow = spawn("train", name, size, batch, repeats, straightforward=True, **flags).get("images_per_s")
                sf_rows.append(
                    f"| `{name}` | {label} | {fmt(slow, '.3f')} | {fmt(fast, '.3f')} | "
                    f"{fmt(fast / slow if fast and slow else None)} |"
                )
    lines += [
        "",
        "Fast attention vs the straightforward transcription (`benchmarks/straightforward_attention.py`), "
        "same network and precision, training images/s:",
        "",
        "| model | precision | straightforward | fast | speed-up |",
        "|---|---|---:|---:|---:|",
        *sf_rows,
    ]
    return "\n".join(lines)


def infer_table(models: list[str], size: int, batch: int, repeats: int) -> str:
    peak32 = spawn("peak", "none", 0, 0, repeats).get("gflops")
    peak16 = spawn("peak", "none", 0, 0, repeats, bf16=True).get("gflops")
    lines = [
        f"Measured matrix-product peak: fp32 {fmt(peak32, '.0f')} GFLOP/s, bf16 {fmt(peak16, '.0f')} GFLOP/s "
        "(2048² products).",
        "",
        "| model | GFLOP / image | fp32 images/s | fp32 % of peak | fp32 peak RSS MB "
        "| bf16 CL images/s | bf16 % of peak | bf16 peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in models:
        r32 = spawn("infer", name, size, batch, repeats)
        r16 = spawn("infer", name, size, batch, repeats, bf16=True)
        gf = r32.get("gflops_per_image")
        f32 = 100 * gf * r32["images_per_s"] / peak32 if gf and peak32 and r32 else None
        f16 = 100 * gf * r16["images_per_s"] / peak16 if gf and peak16 and r16 else None
        lines.append(
            f"| `{name}` | {fmt(gf, '.1f')} | {fmt(r32.get('images_per_s'), '.3f')} | {fmt(f32, '.1f')} "
            f"| {fmt(r32.get('peak_rss_mb'), '.0f')} | {fmt(r16.get('images_per_s'), '.3f')} "
            f"| {fmt(f16, '.1f')} | {fmt(r16.get('peak_rss_mb'), '.0f')} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["train", "infer", "_child"])
    parser.add_argument("--models", nargs="+", default=ALL)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="also measure torch.compile (slow to compile)")
    parser.add_argument("--write-docs", action="store_true")
    # Child-process options.
    parser.add_argument("--mode", default="train")
    parser.add_argument("--model", default="fractal_resunet")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compiled", action="store_true")
    parser.add_argument("--straightforward", action="store_true")
    args = parser.parse_args()
    if args.command == "_child":
        child(args)
        return
    intro = [
        machine_line(),
        "",
        f"Command: `.venv/bin/python benchmarks/bench_models.py {' '.join(sys.argv[1:])}` (`make bench` runs it). "
        f"Default models "
        f"(depth 6/7, nf 32), {args.size}², batch {args.batch}, 3 bands, 2 classes; median of {args.repeats} "
        "steps after a warm-up, each setting in a fresh process. CL = channels-last; bf16 = CPU autocast.",
        "",
    ]
    if args.command == "train":
        body = (
            "\n".join(intro)
            + "\nTraining images/s (forward, multitask loss, backward, Adam step):\n\n"
            + train_table(args.models, args.size, args.batch, args.repeats, args.compile)
        )
        heading = "Training throughput"
    else:
        body = "\n".join(intro) + "\n" + infer_table(args.models, args.size, args.batch, args.repeats)
        heading = "Inference throughput, memory and FLOPs"
    print(body)
    if args.write_docs:
        write_section(heading, body)


if __name__ == "__main__":
    main()
