"""FracTAL ResNet unit vs ResNet-v2 block, FracTAL attention vs its straightforward transcription, and the
per-op fast paths (attention core, GroupNorm backward, narrow grouped convolutions) against PyTorch's own.

Forward + backward, batch 4, at (32 channels, 128^2) and (256 channels, 16^2); medians of repeats.

    .venv/bin/python benchmarks/bench_units.py [--write-docs]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch.nn.functional as F  # noqa: E402

from benchmarks.common import interleaved_medians, machine_line, median_time, write_section  # noqa: E402
from benchmarks.straightforward_attention import (  # noqa: E402
    per_term_attention,
    straightforward_attention,
    straightforward_tanimoto,
)
from mantis.nn.attention import attend  # noqa: E402
from mantis.nn.grouped import Conv2d  # noqa: E402
from mantis.nn.norm import GroupNorm  # noqa: E402
from mantis.nn.units import FracTALResNetUnit, ResNetV2Block  # noqa: E402

# (channels, size, heads): heads as at that width in the default networks (4 at 32 channels).
CASES = [(32, 128, 4), (256, 16, 32)]


def fwd_bwd(module: torch.nn.Module, x: torch.Tensor, residual: bool = False) -> None:
    out = module(x)
    if residual:
        out = x + out
    out.backward(torch.ones_like(out))


def run(repeats: int) -> str:
    rows = []
    for channels, size, heads in CASES:
        torch.manual_seed(0)
        x = torch.randn(4, channels, size, size, requires_grad=True)
        plain = ResNetV2Block(channels)
        grouped = ResNetV2Block(channels, groups=heads)
        unit = FracTALResNetUnit(channels, nheads=heads, groups=heads)
        unit_plain = FracTALResNetUnit(channels, nheads=heads, groups=1)
        t = {
            "block": median_time(partial(fwd_bwd, plain, x, True), repeats),
            "block_grouped": median_time(partial(fwd_bwd, grouped, x, True), repeats),
            "unit": median_time(partial(fwd_bwd, unit, x), repeats),
            "unit_plain": median_time(partial(fwd_bwd, unit_plain, x), repeats),
            "attention": median_time(partial(fwd_bwd, unit.attention, x), repeats),
        }
        with straightforward_attention():
            t["attention_sf"] = median_time(partial(fwd_bwd, unit.attention, x), repeats)
            t["unit_sf"] = median_time(partial(fwd_bwd, unit, x), repeats)
        with per_term_attention():
            t["attention_pt"] = median_time(partial(fwd_bwd, unit.attention, x), repeats)
            t["unit_pt"] = median_time(partial(fwd_bwd, unit, x), repeats)
        rows.append((channels, size, heads, t))
    lines = [
        machine_line(),
        "",
        "Command: `.venv/bin/python benchmarks/bench_units.py --write-docs` (part of `make bench`). Forward +",
        f"backward, batch 4, float32, median of {repeats} runs. `unit` is the FracTAL ResNet unit as the networks",
        "build it (block convolutions grouped by the heads); `unit (g=1)` has an ungrouped block. Ratios are",
        "against the plain (ungrouped) ResNet-v2 block, and, in brackets, the block grouped like the unit.",
        "The baselines (`benchmarks/straightforward_attention.py`, same values): `straightforward` forms the",
        "d-term average from three inner products per call; `per-term` computes each term from its own.",
        "",
        "| channels, size | heads | block ms | unit / block | unit (g=1) / block | attention / block "
        "| straightforward attention / fast | straightforward unit / fast unit "
        "| per-term unit / block | per-term attention / fast | per-term unit / fast unit |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for channels, size, heads, t in rows:
        lines.append(
            f"| {channels} ch, {size}² | {heads} | {t['block'] * 1e3:.1f} "
            f"| {t['unit'] / t['block']:.2f} ({t['unit'] / t['block_grouped']:.2f}) "
            f"| {t['unit_plain'] / t['block']:.2f} | {t['attention'] / t['block']:.2f} "
            f"| {t['attention_sf'] / t['attention']:.2f} | {t['unit_sf'] / t['unit']:.2f} "
            f"| {t['unit_pt'] / t['block']:.2f} | {t['attention_pt'] / t['attention']:.2f} "
            f"| {t['unit_pt'] / t['unit']:.2f} |"
        )
    return "\n".join(lines)


def _backward_of(make: Callable[[], torch.Tensor], upstream: torch.Tensor) -> Callable[[], None]:
    return lambda: make().backward(upstream)


def _cl(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous(memory_format=torch.channels_last)


def core_rows(repeats: int) -> list[str]:
    """Attention core (similarity maps and product), ours vs the straightforward one, batch 1, 32 ch, 256²."""
    rows = []
    for label, dtype, channels_last in (("fp32", torch.float32, False), ("bf16 CL", torch.bfloat16, True)):
        q, k, v = (torch.rand(1, 32, 256, 256, dtype=dtype) for _ in range(3))
        if channels_last:
            q, k, v = _cl(q), _cl(k), _cl(v)
        q, k, v = (t.requires_grad_() for t in (q, k, v))
        up = torch.randn_like(q)

        def plain(q: torch.Tensor = q, k: torch.Tensor = k, v: torch.Tensor = v) -> torch.Tensor:
            spatial = straightforward_tanimoto(q, k, 5, (1,))
            channel = straightforward_tanimoto(q, k, 5, (2, 3))
            return 0.5 * (channel * v + spatial * v)

        t = interleaved_medians(
            {"fast": _backward_of(partial(attend, q, k, v, 5), up), "plain": _backward_of(plain, up)}, repeats
        )
        rows.append(
            f"| attention core, 32 ch 256², {label} | {t['plain'] * 1e3:.1f} | {t['fast'] * 1e3:.1f} "
            f"| {t['plain'] / t['fast']:.2f} |"
        )
    return rows


def group_norm_rows(repeats: int) -> list[str]:
    """GroupNorm(4) forward + backward, bf16 channels-last, batch 1: PyTorch's vs ours."""
    rows = []
    for channels, size in ((16, 256), (32, 256), (64, 256), (64, 128)):
        x = _cl(torch.randn(1, channels, size, size).bfloat16()).requires_grad_()
        up = _cl(torch.randn_like(x))
        norm = GroupNorm(4, channels)
        ours = norm.path(x) != "native"
        t = interleaved_medians(
            {
                "native": _backward_of(partial(F.group_norm, x, 4, norm.weight, norm.bias), up),
                "ours": _backward_of(partial(norm, x), up),
            },
            repeats,
        )
        used = "ours" if ours else "PyTorch's"
        rows.append(
            f"| GroupNorm(4), {channels} ch {size}², bf16 CL (default: {used}) | {t['native'] * 1e3:.2f} "
            f"| {t['ours'] * 1e3:.2f} | {t['native'] / t['ours']:.2f} |"
        )
    return rows


def grouped_conv_rows(repeats: int) -> list[str]:
    """3x3 grouped convolution forward + backward, bf16 channels-last, batch 1: as given vs merged groups."""
    rows = []
    for cin, cout, size, groups in ((32, 32, 256, 8), (32, 16, 256, 8), (16, 16, 256, 8), (64, 64, 128, 16)):
        x = _cl(torch.randn(1, cin, size, size).bfloat16()).requires_grad_()
        conv = Conv2d(cin, cout, 3, padding=1, groups=groups, bias=False).bfloat16()
        conv = conv.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        up = _cl(torch.randn(1, cout, size, size).bfloat16())
        merge = conv._merge_factor(x)
        t = interleaved_medians(
            {
                "native": _backward_of(partial(F.conv2d, x, conv.weight, None, 1, 1, 1, groups), up),
                "ours": _backward_of(partial(conv, x), up),
            },
            repeats,
        )
        rows.append(
            f"| conv 3x3 {cin}->{cout} ch, {groups} groups, {size}², bf16 CL (merged {merge} at a time) "
            f"| {t['native'] * 1e3:.2f} | {t['ours'] * 1e3:.2f} | {t['native'] / t['ours']:.2f} |"
        )
    return rows


def fast_path_table(repeats: int) -> str:
    lines = [
        "Fast paths against the plain PyTorch form, forward + backward, batch 1, interleaved medians of "
        f"{repeats} runs (ms):",
        "",
        "| operation | plain PyTorch | ours | speed-up |",
        "|---|---:|---:|---:|",
        *core_rows(repeats),
        *group_norm_rows(repeats),
        *grouped_conv_rows(repeats),
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    body = run(args.repeats) + "\n\n" + fast_path_table(args.repeats)
    print(body)
    if args.write_docs:
        write_section("FracTAL unit and attention", body)


if __name__ == "__main__":
    main()
