"""What the checks before training cost on a large folder: `mantis fit`'s setup against reading every image once.

    .venv/bin/python benchmarks/check_cost.py [--pairs 1000] [--size 1024] [--workdir /tmp/mantis-check-cost]
                                              [--write-docs]

Builds a LEVIR-CD style folder (``A/``, ``B/``, ``label/``; RGB PNGs and 0/255 masks of ``--size``², textured
so that they compress like aerial images) once in ``--workdir``, then times, in this order and warm in the page
cache: the checks that ``ChangeDetectionDataModule.setup("fit")`` runs on every file (headers, PNG checksums,
the masks decoded), and, as the baseline, decoding every image and mask once (one epoch of whole images).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from benchmarks.common import machine_line, write_section  # noqa: E402

SECTION = "Checks before training on a 1,000-pair folder"


def build(folder: Path, pairs: int, size: int) -> None:
    """The folder of ``pairs`` pairs (kept between runs)."""
    if (folder / "label").is_dir() and len(list((folder / "label").iterdir())) == pairs:
        return
    rng = np.random.default_rng(0)
    for sub in ("A", "B", "label"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:size, 0:size]
    for i in range(pairs):
        for sub in ("A", "B"):
            base = (np.sin(xx / rng.uniform(5, 40)) + np.cos(yy / rng.uniform(5, 40))) * 60 + 120
            image = np.clip(base[..., None] + rng.normal(0, 12, (size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(image).save(folder / sub / f"{i:04d}.png", compress_level=1)
        mask = ((xx // 64 + yy // 64 + i) % 7 == 0).astype(np.uint8) * 255
        Image.fromarray(mask).save(folder / "label" / f"{i:04d}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/mantis-check-cost"))
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    from mantis.data import ChangeDetectionDataModule
    from mantis.io.raster import read_image, read_mask

    folder = args.workdir / f"levir-{args.pairs}x{args.size}"
    build(folder, args.pairs, args.size)
    files = sorted(p for sub in ("A", "B", "label") for p in (folder / sub).iterdir())
    megabytes = sum(p.stat().st_size for p in files) / 1e6
    for path in files:  # warm the page cache for both measurements
        path.read_bytes()

    start = time.perf_counter()
    module = ChangeDetectionDataModule(root=folder, patch_size=256, val_fraction=0.1, test_fraction=0.1)
    module.setup("fit")
    module.setup("test")
    checks = time.perf_counter() - start

    start = time.perf_counter()
    for path in files:
        (read_mask if path.parent.name == "label" else read_image)(path)
    decode = time.perf_counter() - start

    body = "\n".join(
        [
            "Every file of every split is checked before the first training step (docs/data.md). What that "
            "costs, against decoding every image and mask once:",
            "",
            f"- Command: `python benchmarks/check_cost.py --pairs {args.pairs} --size {args.size} --write-docs`",
            f"- {machine_line()} Files warm in the page cache; {len(files)} PNG files, {megabytes:,.0f} MB.",
            "",
            "| | seconds | per pair | ratio |",
            "|---|---:|---:|---:|",
            f"| checks before training (setup of train, val and test) | {checks:.1f} | "
            f"{1000 * checks / args.pairs:.1f} ms | {checks / decode:.2f} |",
            f"| baseline: decode every image and mask once | {decode:.1f} | {1000 * decode / args.pairs:.1f} ms | 1 |",
        ]
    )
    print(body)
    if args.write_docs:
        write_section(SECTION, body)


if __name__ == "__main__":
    main()
