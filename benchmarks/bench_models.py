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
import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Compile from scratch: a warm on-disk inductor cache would hide the compile time we report.
os.environ.setdefault("TORCHINDUCTOR_FORCE_DISABLE_CACHES", "1")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mantis  # noqa: E402
from benchmarks.common import interleaved_medians, machine_line, matmul_peak_gflops, median_time, write_section  # noqa: E402
from mantis.losses import MultitaskLoss  # noqa: E402

SEGMENTATION = ["fractal_resunet", "resunet_a_d6", "resunet_a_d7"]
CHANGE = ["ceecnet_v1", "ceecnet_v2", "fractal_resnet_cd"]
ALL = SEGMENTATION + CHANGE
ATTENTION_MODELS = ("fractal_resunet", "ceecnet_v1")  # the issue's two reference networks


def build(name: str, size: int, batch: int, channels_last: bool) -> tuple[torch.nn.Module, tuple[torch.Tensor, ...]]:
    torch.manual_seed(0)
    model = mantis.create_model(name, in_channels=3, num_classes=2)
    shape = (batch, 3, size, size)
    inputs: tuple[torch.Tensor, ...] = tuple(torch.rand(shape) for _ in range(mantis.model_info(name).inputs))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        inputs = tuple(x.contiguous(memory_format=torch.channels_last) for x in inputs)
    return model, inputs


def targets_for(out: Any) -> dict[str, torch.Tensor]:
    return {k: torch.rand_like(v) for k, v in out._asdict().items()}


# Training settings: label -> (bf16 autocast, channels-last, attention variant).
# "straightforward" and "per-term" swap in the baselines of benchmarks/straightforward_attention.py; "core-free"
# replaces the attention core (similarity maps and product) by ``0.5 * v`` (q and k still get zero gradients, so
# every convolution runs backward): the speed no implementation of the core can beat.
TRAIN_SETTINGS: dict[str, tuple[bool, bool, str]] = {
    "fp32": (False, False, "fast"),
    "bf16": (True, False, "fast"),
    "fp32 CL": (False, True, "fast"),
    "bf16 CL": (True, True, "fast"),
    "fp32 straightforward": (False, False, "straightforward"),
    "fp32 per-term": (False, False, "per-term"),
    "fp32 core-free": (False, False, "core-free"),
    "bf16 CL straightforward": (True, True, "straightforward"),
    "bf16 CL per-term": (True, True, "per-term"),
    "bf16 CL core-free": (True, True, "core-free"),
}


@contextlib.contextmanager
def attention_variant(variant: str) -> Iterator[None]:
    """Run FracTAL attention as ``variant``: fast (ours), straightforward or per-term (baselines), core-free."""
    if variant in ("straightforward", "per-term"):
        from benchmarks.straightforward_attention import per_term_attention, straightforward_attention

        with straightforward_attention() if variant == "straightforward" else per_term_attention():
            yield
        return
    if variant == "core-free":
        from benchmarks.straightforward_attention import core_free_attention

        with core_free_attention():
            yield
        return
    yield


def measure_train(
    name: str, size: int, batch: int, labels: list[str], repeats: int, compiled: bool = False
) -> dict[str, dict[str, float]]:
    """Training-step times of the same network under each setting, steps interleaved round-robin.

    Interleaving makes the ratios robust to the slow drifts of a shared machine's speed. The optimiser
    is the fused Adam of the training loop (``mantis.tasks``).
    """
    base, base_inputs = build(name, size, batch, channels_last=False)
    loss_fn = MultitaskLoss(depth=0)
    with torch.no_grad():
        targets = targets_for(base(*base_inputs))
    steps = {}
    for label in labels:
        bf16, channels_last, variant = TRAIN_SETTINGS[label]
        model, inputs = build(name, size, batch, channels_last)
        model.train()
        step_model: Any = torch.compile(model) if compiled else model
        optimiser = torch.optim.Adam(model.parameters(), lr=1e-4, fused=True)

        def step(
            model: Any = step_model,
            inputs: tuple[torch.Tensor, ...] = inputs,
            optimiser: torch.optim.Optimizer = optimiser,
            bf16: bool = bf16,
            variant: str = variant,
        ) -> None:
            with attention_variant(variant):
                optimiser.zero_grad(set_to_none=True)
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    out = model(*inputs)
                loss_fn(out, targets).backward()
                optimiser.step()

        steps[label] = step
    first = {}
    for label, step in steps.items():
        start = time.perf_counter()
        step()  # first step: compile time when compiled
        first[label] = time.perf_counter() - start
    medians = interleaved_medians(steps, repeats, warmup=1)
    return {
        label: {"images_per_s": batch / seconds, "step_s": seconds, "first_step_s": first[label]}
        for label, seconds in medians.items()
    }


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
    result: Any
    if args.mode == "train":
        result = measure_train(args.model, args.size, args.batch, args.settings, args.repeats, args.compiled)
    elif args.mode == "infer":
        result = measure_infer(args.model, args.size, args.batch, args.bf16, args.repeats)
    else:
        result = {"gflops": matmul_peak_gflops(torch.bfloat16 if args.bf16 else torch.float32)}
    print("RESULT " + json.dumps(result))


def spawn(mode: str, model: str, size: int, batch: int, repeats: int, *settings: str, **flags: bool) -> dict[str, Any]:
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
    if settings:
        cmd += ["--settings", *settings]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            result: dict[str, Any] = json.loads(line[7:])
            return result
    sys.stderr.write(proc.stderr[-2000:])
    return {}


def fmt(value: float | None, spec: str = ".2f") -> str:
    return "n/a" if value is None else format(value, spec)


def train_table(models: list[str], size: int, batch: int, repeats: int, with_compile: bool) -> str:
    layouts = ["fp32", "bf16", "fp32 CL", "bf16 CL"]
    header = "| model | " + " | ".join(layouts) + " | bf16 CL / fp32 | bf16 CL / fp32 CL |"
    lines = [header, "|---|" + "---:|" * (len(layouts) + 2)]
    attention_rows = []
    compile_rows = []
    for name in models:
        labels = list(layouts)
        if name in ATTENTION_MODELS:
            labels += [f"{p} {v}" for p in ("fp32", "bf16 CL") for v in ("straightforward", "per-term", "core-free")]
        res = {k: v["images_per_s"] for k, v in spawn("train", name, size, batch, repeats, *labels).items()}
        r32, r32cl, r16cl = res.get("fp32"), res.get("fp32 CL"), res.get("bf16 CL")
        lines.append(
            f"| `{name}` | "
            + " | ".join(fmt(res.get(s), ".3f") for s in layouts)
            + f" | {fmt(r16cl / r32 if r16cl and r32 else None)} | {fmt(r16cl / r32cl if r16cl and r32cl else None)} |"
        )
        for precision in ("fp32", "bf16 CL"):
            fast, slow = res.get(precision), res.get(f"{precision} straightforward")
            literal, free = res.get(f"{precision} per-term"), res.get(f"{precision} core-free")
            if fast and slow and literal and free:
                attention_rows.append(
                    f"| `{name}` | {precision} | {literal:.3f} | {slow:.3f} | {fast:.3f} | {free:.3f} "
                    f"| {fast / literal:.2f} | {fast / slow:.2f} | {free / slow:.2f} |"
                )
        if with_compile:
            for label in ("fp32", "bf16 CL"):
                eager = res.get(label)
                comp = spawn("train", name, size, batch, repeats, label, compiled=True).get(label, {})
                images = comp.get("images_per_s")
                compile_rows.append(
                    f"| `{name}` | {label} | {fmt(eager, '.3f')} | {fmt(images, '.3f')} "
                    f"| {fmt(images / eager if images and eager else None)} | {fmt(comp.get('first_step_s'), '.0f')} |"
                )
    lines += [
        "",
        "FracTAL attention: training images/s of the same network with the two baseline attentions "
        "(`benchmarks/straightforward_attention.py`: per-term, each Tanimoto term from its own inner products; "
        "straightforward, the d terms from three inner products per call), ours, and the attention core replaced "
        "by `0.5 * v` (core-free: the q/k/v convolutions, norms and sigmoids still run; no implementation of the "
        "core can be faster). Bound = core-free / straightforward.",
        "",
        "| model | precision | per-term | straightforward | ours | core-free | ours / per-term "
        "| ours / straightforward | bound |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
        *attention_rows,
    ]
    if compile_rows:
        lines += [
            "",
            "`torch.compile` (default mode, fresh process per setting), training images/s:",
            "",
            "| model | setting | eager | compiled | compiled / eager | first step s |",
            "|---|---|---:|---:|---:|---:|",
            *compile_rows,
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
    parser.add_argument("--compiled", action="store_true")
    parser.add_argument("--settings", nargs="+", default=["fp32"], choices=list(TRAIN_SETTINGS))
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
        "steps after two warm-up steps. Training: one process per model, its settings' steps interleaved "
        "round-robin (ratios robust to the drifts of a shared machine), fused Adam as in `mantis fit`; "
        "inference: one process per setting. CL = channels-last; bf16 = CPU autocast.",
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
