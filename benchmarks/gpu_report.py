"""A short report for a machine with a CUDA GPU: correctness of the fast paths on the device, then the
unit/block ratios and the training throughput of every model (fp32, bf16 autocast, channels-last).

    python benchmarks/gpu_report.py [--size 256] [--batch 8] [--out report.md]

Needs only torch (and this repository on PYTHONPATH: `PYTHONPATH=src:. python benchmarks/gpu_report.py`).
"""

from __future__ import annotations

import argparse
import sys
import time
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import mantis  # noqa: E402
from benchmarks.straightforward_attention import straightforward_attention  # noqa: E402
from mantis.losses import MultitaskLoss  # noqa: E402
from mantis.nn.attention import attend, fractal_similarity_maps  # noqa: E402
from mantis.nn.units import FracTALResNetUnit, ResNetV2Block  # noqa: E402

MODELS = ["fractal_resunet", "resunet_a_d6", "resunet_a_d7", "ceecnet_v1", "ceecnet_v2", "fractal_resnet_cd"]


def cuda_time(fn, repeats: int = 10, warmup: int = 3) -> float:  # type: ignore[no-untyped-def]
    """Median seconds of ``fn()`` measured with CUDA events."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return sorted(times)[len(times) // 2]


def check_fast_paths(device: torch.device) -> list[str]:
    g = torch.Generator(device=device).manual_seed(0)
    q, k, v = (torch.rand(2, 16, 32, 32, generator=g, device=device, requires_grad=True) for _ in range(3))
    fused = attend(q, k, v, 5)
    sp, ch = fractal_similarity_maps(q, k, 5)
    plain = 0.5 * v * (sp + ch)
    grads_f = torch.autograd.grad(fused.sum(), (q, k, v))
    grads_p = torch.autograd.grad(plain.sum(), (q, k, v))
    err = max((fused - plain).abs().max().item(), *[(a - b).abs().max().item() for a, b in zip(grads_f, grads_p)])
    lines = [f"- fused attention vs autograd form on {device}: max abs difference {err:.2e} (values and gradients)"]
    for name in MODELS:
        model = mantis.create_model(name, nf=8, depth=3, psp_depth=2).to(device)
        x = torch.rand(2, 3, 32, 32, device=device)
        out = model(x, x) if mantis.model_info(name).pair else model(x)
        sum(t.float().mean() for t in out).backward()
        ok = all(p.grad is not None and bool(torch.isfinite(p.grad).all()) for p in model.parameters())
        lines.append(f"- `{name}` forward/backward on {device}: {'ok' if ok else 'NON-FINITE GRADIENTS'}")
    return lines


def _fwd_bwd(module: torch.nn.Module, x: torch.Tensor, residual: bool = False) -> None:
    out = module(x)
    out = x + out if residual else out
    out.backward(torch.ones_like(out))


def unit_ratios(device: torch.device) -> list[str]:
    lines = ["| channels, size | unit / block | straightforward unit / fast unit |", "|---|---:|---:|"]
    for c, s, h in ((32, 128, 4), (256, 16, 32)):
        x = torch.randn(4, c, s, s, device=device, requires_grad=True)
        block = ResNetV2Block(c).to(device)
        unit = FracTALResNetUnit(c, nheads=h, groups=h).to(device)
        tb = cuda_time(partial(_fwd_bwd, block, x, True))
        tu = cuda_time(partial(_fwd_bwd, unit, x))
        with straightforward_attention():
            ts = cuda_time(partial(_fwd_bwd, unit, x))
        lines.append(f"| {c} ch, {s}² | {tu / tb:.2f} | {ts / tu:.2f} |")
    return lines


def train_rate(name: str, device: torch.device, size: int, batch: int, bf16: bool, channels_last: bool) -> float:
    """Training images/s of ``name`` (forward, multitask loss, backward, Adam step)."""
    torch.manual_seed(0)
    model = mantis.create_model(name).to(device)
    shape = (batch, 3, size, size)
    inputs = [torch.rand(shape, device=device) for _ in range(2 if mantis.model_info(name).pair else 1)]
    if channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        inputs = [t.contiguous(memory_format=torch.channels_last) for t in inputs]
    opt = torch.optim.Adam(model.parameters(), 1e-4)
    loss_fn = MultitaskLoss()
    with torch.no_grad():
        targets = {k: torch.rand_like(t) for k, t in model(*inputs)._asdict().items()}

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            out = model(*inputs)
        loss_fn(out, targets).backward()
        opt.step()

    return batch / cuda_time(step, repeats=5, warmup=2)


def training(device: torch.device, size: int, batch: int) -> list[str]:
    settings = [("fp32", False, False), ("bf16", True, False), ("bf16 CL", True, True)]
    lines = [
        "| model | " + " | ".join(s for s, _, _ in settings) + " | bf16 CL / fp32 |",
        "|---|" + "---:|" * (len(settings) + 1),
    ]
    for name in MODELS:
        res = []
        for _, bf16, cl in settings:
            res.append(train_rate(name, device, size, batch, bf16, cl))
            torch.cuda.empty_cache()
        lines.append(f"| `{name}` | " + " | ".join(f"{r:.1f}" for r in res) + f" | {res[2] / res[0]:.2f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("gpu_report.py: no CUDA device found")
    device = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    start = time.time()
    lines = [
        f"GPU: {torch.cuda.get_device_name()}, torch {torch.__version__}.",
        "",
        "Checks:",
        *check_fast_paths(device),
        "",
        "FracTAL ResNet unit vs ResNet-v2 block (forward + backward, batch 4, fp32):",
        "",
        *unit_ratios(device),
        "",
        f"Training images/s at {args.size}², batch {args.batch} (forward, multitask loss, backward, Adam):",
        "",
        *training(device, args.size, args.batch),
        "",
        f"Report took {time.time() - start:.0f} s.",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
