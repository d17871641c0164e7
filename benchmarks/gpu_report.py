"""A short report for a machine with a CUDA GPU: correctness of the fast paths on the device, then the Triton
attention core against the PyTorch-only core (the core alone, the unit/block ratios, training throughput of every
model in fp32 and bf16), regional compilation (with and without CUDA graphs) and the fused GroupNorm + ReLU.

    PYTHONPATH=src:. python benchmarks/gpu_report.py [--sections ...] [--models ...] [--size 256] [--batch 8]
                                                     [--out report.md]

Sections: checks, core, units, train, compile, norm (default: all, in that order). The report is written to ``--out``
after every section, so a run stopped by a timeout keeps what it measured; rerun the rest with ``--sections``.
Needs torch, and Triton for the Triton columns (PyTorch-only columns alone without it).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import mantis  # noqa: E402
import mantis.nn.attention as attention  # noqa: E402
from benchmarks.straightforward_attention import straightforward_attention  # noqa: E402
from mantis.losses import MultitaskLoss  # noqa: E402
from mantis.nn import triton_attention, triton_norm  # noqa: E402
from mantis.nn.attention import _FusedAttention, attend, fractal_similarity_maps  # noqa: E402
from mantis.nn.regional_compile import compile_regions  # noqa: E402
from mantis.nn.units import FracTALResNetUnit, ResNetV2Block  # noqa: E402

MODELS = ["fractal_resunet", "resunet_a_d6", "resunet_a_d7", "ceecnet_v1", "ceecnet_v2", "fractal_resnet_cd"]
SECTIONS = ["checks", "core", "units", "train", "compile", "norm"]
UNIT_SIZES = ((32, 128, 4), (256, 16, 32))  # channels, side, heads: the two sizes


def cuda_time(fn: Callable[[], object], repeats: int = 10, warmup: int = 3) -> float:
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


def _pytorch_attend(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, depth: int, smooth: float = 1e-5
) -> torch.Tensor:
    return _FusedAttention.apply(q, k, v, depth, smooth)


@contextlib.contextmanager
def pytorch_attention() -> Iterator[None]:
    """Within this context every FracTALAttention runs the PyTorch-only core (``_FusedAttention``), on any device."""
    original = attention.attend
    attention.attend = _pytorch_attend
    try:
        yield
    finally:
        attention.attend = original


def cores() -> list[tuple[str, Callable[[], contextlib.AbstractContextManager[None]]]]:
    """The attention cores to compare: PyTorch-only, and Triton (the default on CUDA) when it is importable."""
    found: list[tuple[str, Callable[[], contextlib.AbstractContextManager[None]]]] = [("PyTorch", pytorch_attention)]
    if triton_attention.TRITON_AVAILABLE:
        found.append(("Triton", contextlib.nullcontext))
    return found


def check_fast_paths(device: torch.device) -> list[str]:
    g = torch.Generator(device=device).manual_seed(0)
    q, k, v = (torch.rand(2, 16, 32, 32, generator=g, device=device, requires_grad=True) for _ in range(3))
    with pytorch_attention():
        fused = attention.attend(q, k, v, 5)
    sp, ch = fractal_similarity_maps(q, k, 5)
    plain = 0.5 * v * (sp + ch)
    grads_f = torch.autograd.grad(fused.sum(), (q, k, v))
    grads_p = torch.autograd.grad(plain.sum(), (q, k, v))
    err = max((fused - plain).abs().max().item(), *[(a - b).abs().max().item() for a, b in zip(grads_f, grads_p)])
    lines = [
        f"- PyTorch fused attention vs autograd form on {device}: max abs difference {err:.2e} (values, gradients)"
    ]
    lines += check_triton(device)
    for name in MODELS:
        model = mantis.create_model(name, nf=8, depth=3, psp_depth=2).to(device)
        x = torch.rand(2, 3, 32, 32, device=device)
        out = model(x, x) if mantis.model_info(name).pair else model(x)
        sum(t.float().mean() for t in out).backward()
        ok = all(p.grad is not None and bool(torch.isfinite(p.grad).all()) for p in model.parameters())
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):  # GroupNorm keeps bf16 here
            low = model(x, x) if mantis.model_info(name).pair else model(x)
        gap = max((a.float() - b.detach()).abs().max().item() for a, b in zip(low, out))
        lines.append(
            f"- `{name}` forward/backward on {device}: {'ok' if ok else 'NON-FINITE GRADIENTS'}; "
            f"bf16 autocast outputs within {gap:.3f} of fp32 (outputs in [0, 1])"
        )
    return lines


def check_triton(device: torch.device) -> list[str]:
    """The Triton core on the device against the float64 reference form: 1D/2D/3D, fp32/bf16, values and grads.

    Bounds as in tests/nn/triton_interpreted_cases.py, with the GPU's round-to-nearest: fp32 1e-5 of the largest
    entry; bf16 that plus half a bf16 ulp (2^-8 of the entry at worst).
    """
    if not triton_attention.TRITON_AVAILABLE:
        return ["- Triton core: Triton is not importable here, PyTorch-only columns below"]
    lines = []
    for shape in ((2, 16, 1000), (2, 32, 33, 35), (1, 8, 9, 10, 11), (4, 256, 16, 16)):
        for dtype in (torch.float32, torch.bfloat16):
            g = torch.Generator(device=device).manual_seed(1)
            q, k, v = (torch.rand(shape, generator=g, device=device).to(dtype) for _ in range(3))
            grad = torch.randn(shape, generator=g, device=device).to(dtype)
            inputs = (q.clone().requires_grad_(), k.clone().requires_grad_(), v.clone().requires_grad_())
            y = attend(inputs[0], inputs[1], inputs[2], 5)
            direct = triton_attention.fractal_attention(q, k, v, 5, 1e-5)
            got = (y, *torch.autograd.grad(y, inputs, grad))
            ref_in = (q.double().requires_grad_(), k.double().requires_grad_(), v.double().requires_grad_())
            sp, ch = fractal_similarity_maps(ref_in[0], ref_in[1], 5)
            ref_y = 0.5 * ref_in[2] * (sp + ch)
            want = (ref_y, *torch.autograd.grad(ref_y, ref_in, grad.double()))
            worst = 0.0
            for a, b in zip(got, want):
                bound = 1e-5 * b.abs().max() + (2.0**-8 * b.abs() if dtype == torch.bfloat16 else 0.0)
                worst = max(worst, ((a.double() - b).abs() / bound).max().item())
            dispatched = torch.equal(y.detach(), direct)
            verdict = "ok" if worst <= 1.0 and dispatched else "FAIL"
            lines.append(
                f"- Triton core {tuple(shape)} {str(dtype)[6:]}: worst error / bound {worst:.2f}, "
                f"attend() dispatched to Triton: {dispatched}: {verdict}"
            )
    return lines


def _attend_step(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, grad: torch.Tensor) -> None:
    y = attention.attend(q, k, v, 5)
    torch.autograd.grad(y, (q, k, v), grad)


def core_times(device: torch.device) -> list[str]:
    """The attention core alone, forward + backward: ms, and the bandwidth of its 11 tensor passes."""
    names = [name for name, _ in cores()]
    lines = [
        "| q, k, v | dtype | " + " | ".join(f"{n} ms | {n} GB/s" for n in names) + " | PyTorch / Triton |",
        "|---|---|" + "---:|---:|" * len(names) + "---:|",
    ]
    for c, s, _ in UNIT_SIZES:
        for dtype in (torch.float32, torch.bfloat16):
            shape = (4, c, s, s)
            q, k, v = (torch.rand(shape, device=device, dtype=dtype, requires_grad=True) for _ in range(3))
            grad = torch.randn(shape, device=device, dtype=dtype)
            # forward reads q, k, v and writes y; backward reads g, v, q, k and writes three gradients
            passes = 11 * q.numel() * q.element_size()
            times = []
            for _, core in cores():
                with core():
                    times.append(cuda_time(partial(_attend_step, q, k, v, grad), repeats=20, warmup=5))
            cells = " | ".join(f"{t * 1e3:.3f} | {passes / t / 1e9:.0f}" for t in times)
            ratio = f"{times[0] / times[-1]:.2f}" if len(times) > 1 else "-"
            lines.append(f"| {shape} | {str(dtype)[6:]} | {cells} | {ratio} |")
    return lines


def _fwd_bwd(module: torch.nn.Module, x: torch.Tensor, residual: bool = False, bf16: bool = False) -> None:
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
        out = module(x)
        out = x + out if residual else out
    out.backward(torch.ones_like(out))


def unit_ratios(device: torch.device) -> list[str]:
    """FracTAL ResNet unit / ResNet-v2 block, forward + backward, per core and precision (issue: <= 2.5)."""
    names = [name for name, _ in cores()]
    lines = [
        "| channels, size | precision | "
        + " | ".join(f"unit / block, {n}" for n in names)
        + " | straightforward / fast |",
        "|---|---|" + "---:|" * (len(names) + 1),
    ]
    for c, s, h in UNIT_SIZES:
        x = torch.randn(4, c, s, s, device=device, requires_grad=True)
        block = ResNetV2Block(c).to(device)
        unit = FracTALResNetUnit(c, nheads=h, groups=h).to(device)
        for bf16 in (False, True):
            tb = cuda_time(partial(_fwd_bwd, block, x, True, bf16))
            ratios = []
            for _, core in cores():
                with core():
                    ratios.append(cuda_time(partial(_fwd_bwd, unit, x, False, bf16)) / tb)
            with straightforward_attention():
                ts = cuda_time(partial(_fwd_bwd, unit, x, False, bf16)) / tb
            cells = " | ".join(f"{r:.2f}" for r in ratios)
            lines.append(f"| {c} ch, {s}² | {'bf16' if bf16 else 'fp32'} | {cells} | {ts / ratios[-1]:.2f} |")
    return lines


def _norm_step(fused: bool, x: torch.Tensor, norm: torch.nn.GroupNorm, grad: torch.Tensor, bf16: bool) -> None:
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
        if fused:
            y = triton_norm.group_norm_relu(x, norm.weight, norm.bias, norm.num_groups, norm.eps)
        else:
            y = torch.relu(norm(x))
    y.backward(grad.to(y.dtype))


def fused_norm(device: torch.device, size: int, batch: int) -> list[str]:
    """GroupNorm + ReLU as the Triton kernels (``MANTIS_TRITON_NORM=1``) against PyTorch's: checks, alone, training."""
    if not triton_attention.TRITON_AVAILABLE:
        return ["- Triton is not importable here: nothing to compare"]
    lines = []
    for shape in ((2, 16, 1000), (2, 32, 33, 35), (1, 8, 9, 10, 11), (4, 256, 16, 16)):
        for dtype in (torch.float32, torch.bfloat16):
            g = torch.Generator(device=device).manual_seed(1)
            x = torch.randn(shape, generator=g, device=device).to(dtype)
            w, b = torch.randn(shape[1], generator=g, device=device), torch.randn(shape[1], generator=g, device=device)
            grad = torch.randn(shape, generator=g, device=device).to(dtype)
            inputs = (x.clone().requires_grad_(), w.clone().requires_grad_(), b.clone().requires_grad_())
            y = triton_norm.group_norm_relu(*inputs, 4, 1e-5)
            got = (y, *torch.autograd.grad(y, inputs, grad))
            ref_in = tuple(t.double().requires_grad_() for t in (x, w, b))
            ref_y = torch.relu(torch.nn.functional.group_norm(ref_in[0], 4, ref_in[1], ref_in[2], 1e-5))
            want = (ref_y, *torch.autograd.grad(ref_y, ref_in, grad.double()))
            worst = 0.0
            for a, r in zip(got, want):
                half_ulp = 2.0**-8 * r.abs() if a.dtype == torch.bfloat16 else 0.0
                worst = max(worst, ((a.double() - r).abs() / (1e-5 * r.abs().max() + half_ulp)).max().item())
            verdict = "ok" if worst <= 1.0 else "FAIL"
            lines.append(
                f"- fused GroupNorm + ReLU {shape} {str(dtype)[6:]}: worst error / bound {worst:.2f}: {verdict}"
            )
    lines += ["", "| map | precision | PyTorch ms | fused ms | PyTorch / fused |", "|---|---|---:|---:|---:|"]
    for c, s, _ in UNIT_SIZES:
        x = torch.randn(4, c, s, s, device=device, requires_grad=True)
        norm = torch.nn.GroupNorm(4, c).to(device)
        grad = torch.randn_like(x)
        for bf16 in (False, True):
            xin = x.detach().to(torch.bfloat16).requires_grad_() if bf16 else x
            times = [cuda_time(partial(_norm_step, fused, xin, norm, grad, bf16), 20, 5) for fused in (False, True)]
            precision = "bf16" if bf16 else "fp32"
            lines.append(
                f"| 4 x {c} x {s}² | {precision} | {times[0] * 1e3:.3f} | {times[1] * 1e3:.3f} | "
                f"{times[0] / times[1]:.2f} |"
            )
    lines += [
        "",
        "| model | precision | images/s, PyTorch norm | images/s, fused | fused / PyTorch |",
        "|---|---|---:|---:|---:|",
    ]
    for name in ("fractal_resunet", "ceecnet_v1"):
        for bf16 in (False, True):
            rates = []
            for enabled in (False, True):
                triton_norm.ENABLED = enabled
                try:
                    rates.append(train_rate(name, device, size, batch, bf16))
                finally:
                    triton_norm.ENABLED = False
            precision = "bf16" if bf16 else "fp32"
            lines.append(f"| `{name}` | {precision} | {rates[0]:.1f} | {rates[1]:.1f} | {rates[1] / rates[0]:.2f} |")
            torch.cuda.empty_cache()
    return lines


def _train_step(
    name: str, device: torch.device, size: int, batch: int, bf16: bool, compile_mode: str | None
) -> Callable[[], None]:
    """One training step of ``name``; ``compile_mode``: regional compilation in that mode, ``None``: eager."""
    torch.manual_seed(0)
    model = mantis.create_model(name).to(device)
    if compile_mode is not None:
        compile_regions(model, mode=compile_mode)
    shape = (batch, 3, size, size)
    inputs = [torch.rand(shape, device=device) for _ in range(2 if mantis.model_info(name).pair else 1)]
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

    return step


def train_rate(name: str, device: torch.device, size: int, batch: int, bf16: bool) -> float:
    """Training images/s of ``name`` (forward, multitask loss, backward, Adam step)."""
    return batch / cuda_time(_train_step(name, device, size, batch, bf16, None), repeats=5, warmup=2)


def training(device: torch.device, size: int, batch: int, models: list[str]) -> list[str]:
    names = [name for name, _ in cores()]
    settings = [(f"{p} {n}", bf16, core) for p, bf16 in (("fp32", False), ("bf16", True)) for n, core in cores()]
    ratios = "| bf16 / fp32 (Triton) | Triton / PyTorch fp32 | Triton / PyTorch bf16 |" if len(names) > 1 else "|"
    lines = [
        "| model | " + " | ".join(s for s, _, _ in settings) + " " + ratios,
        "|---|" + "---:|" * (len(settings) + (3 if len(names) > 1 else 0)),
    ]
    for name in models:
        res = []
        for _, bf16, core in settings:
            with core():
                res.append(train_rate(name, device, size, batch, bf16))
            torch.cuda.empty_cache()
        extra = f" | {res[3] / res[1]:.2f} | {res[1] / res[0]:.2f} | {res[3] / res[2]:.2f}" if len(names) > 1 else ""
        lines.append(f"| `{name}` | " + " | ".join(f"{r:.1f}" for r in res) + extra + " |")
    return lines


def compiled_training(device: torch.device, size: int, batch: int, name: str = "ceecnet_v1") -> list[str]:
    """Regional compilation (``compile_regions``, inductor; ``reduce-overhead``: with CUDA graphs) against eager."""
    lines = [
        "| model | precision | mode | eager images/s | compiled images/s | compiled / eager | compile + first step s |"
    ]
    lines.append("|---|---|---|---:|---:|---:|---:|")
    eager_rates: dict[bool, float] = {}
    for bf16, mode in ((True, "default"), (True, "reduce-overhead"), (False, "default")):
        if bf16 not in eager_rates:
            step = _train_step(name, device, size, batch, bf16, None)
            eager_rates[bf16] = batch / cuda_time(step, repeats=5, warmup=2)
        eager = eager_rates[bf16]
        torch._dynamo.reset()
        step = _train_step(name, device, size, batch, bf16, mode)
        start = time.time()
        step()
        torch.cuda.synchronize()
        first = time.time() - start
        compiled = batch / cuda_time(step, repeats=5, warmup=2)
        precision = "bf16" if bf16 else "fp32"
        lines.append(
            f"| `{name}` | {precision} | {mode} | {eager:.1f} | {compiled:.1f} | {compiled / eager:.2f} | {first:.0f} |"
        )
        torch.cuda.empty_cache()
    return lines


def section(name: str, device: torch.device, args: argparse.Namespace) -> list[str]:
    if name == "checks":
        return ["Checks:", "", *check_fast_paths(device)]
    if name == "core":
        return [
            "Attention core alone (forward + backward, batch 4, GB/s over 11 tensor passes):",
            "",
            *core_times(device),
        ]
    if name == "units":
        return ["FracTAL ResNet unit vs ResNet-v2 block (forward + backward, batch 4):", "", *unit_ratios(device)]
    if name == "train":
        title = f"Training images/s at {args.size}², batch {args.batch} (forward, multitask loss, backward, Adam):"
        return [title, "", *training(device, args.size, args.batch, args.models)]
    if name == "compile":
        title = f"Regional compilation, training images/s at {args.size}², batch {args.batch}:"
        return [title, "", *compiled_training(device, args.size, args.batch)]
    title = f"Fused GroupNorm + ReLU against PyTorch's kernels; training at {args.size}², batch {args.batch}:"
    return [title, "", *fused_norm(device, args.size, args.batch)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=SECTIONS)
    parser.add_argument("--models", nargs="+", choices=MODELS, default=MODELS)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("gpu_report.py: no CUDA device found")
    device = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    start = time.time()
    triton_version = "absent"
    if triton_attention.TRITON_AVAILABLE:
        import triton

        triton_version = triton.__version__
    lines = [f"GPU: {torch.cuda.get_device_name()}, torch {torch.__version__}, Triton {triton_version}."]
    for name in args.sections:
        began = time.time()
        try:
            lines += ["", *section(name, device, args)]
        except Exception as exc:  # keep the other sections' figures: one failure is a line of the report
            lines += ["", f"Section {name} FAILED: {type(exc).__name__}: {exc}"]
        lines.append(f"({name}: {time.time() - began:.0f} s)")
        print("\n".join(lines[-40:]), flush=True)
        if args.out:
            Path(args.out).write_text("\n".join(lines) + "\n")
    lines += ["", f"Report took {time.time() - start:.0f} s."]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
