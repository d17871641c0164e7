"""FracTAL ResNet unit vs ResNet-v2 block, and FracTAL attention vs its straightforward transcription.

Forward + backward, batch 4, at (32 channels, 128^2) and (256 channels, 16^2); medians of repeats.

    .venv/bin/python benchmarks/bench_units.py [--write-docs]
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import machine_line, median_time, write_section  # noqa: E402
from benchmarks.straightforward_attention import straightforward_attention  # noqa: E402
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
        rows.append((channels, size, heads, t))
    lines = [
        machine_line(),
        "",
        "Command: `.venv/bin/python benchmarks/bench_units.py --write-docs` (part of `make bench`). Forward +",
        f"backward, batch 4, float32, median of {repeats} runs. `unit` is the FracTAL ResNet unit as the networks",
        "build it (block convolutions grouped by the heads); `unit (g=1)` has an ungrouped block. Ratios are",
        "against the plain (ungrouped) ResNet-v2 block, and, in brackets, the block grouped like the unit.",
        "",
        "| channels, size | heads | block ms | unit / block | unit (g=1) / block | attention / block "
        "| straightforward attention / fast | straightforward unit / fast unit |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for channels, size, heads, t in rows:
        lines.append(
            f"| {channels} ch, {size}² | {heads} | {t['block'] * 1e3:.1f} "
            f"| {t['unit'] / t['block']:.2f} ({t['unit'] / t['block_grouped']:.2f}) "
            f"| {t['unit_plain'] / t['block']:.2f} | {t['attention'] / t['block']:.2f} "
            f"| {t['attention_sf'] / t['attention']:.2f} | {t['unit_sf'] / t['unit']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    body = run(args.repeats)
    print(body)
    if args.write_docs:
        write_section("FracTAL unit and attention", body)


if __name__ == "__main__":
    main()
