"""Large-raster prediction: Mantis' streaming predict_raster next to MONAI's sliding_window_inference.

Generates a change-detection pair of GeoTIFFs per size (3 bands, uint8), then predicts the change map
end to end (read, sliding windows, blend, class map, tiled deflate GeoTIFF) with each tool, every run in
a fresh subprocess so that its peak RSS (ru_maxrss) is its own. Same model, window, overlap, blending
and batch size for both. MONAI gets the raster whole in memory (it has no reader), as its users do.

    .venv/bin/python benchmarks/predict_bench.py                 # prints the table
    .venv/bin/python benchmarks/predict_bench.py --write-docs    # also updates docs/benchmarks.md

Rows:
- ``mantis`` : ``predict_raster`` with ``pad=0`` (the very windows MONAI places: the last flush with the end).
- ``mantis (reflect pad)`` : the default, borders reflect-padded by (window - stride) / 2 (more windows).
- ``monai`` : ``sliding_window_inference`` on the whole raster, mode "constant" (uniform mean).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
HEADING = "## Large-raster prediction"


class TinyChangeNet(nn.Module):
    """A small fully convolutional change detector: concat dates -> 3x3 conv x2 -> 1x1 -> softmax."""

    def __init__(self, in_channels: int = 3, width: int = 16, num_classes: int = 2) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(2 * in_channels, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, num_classes, 1),
        )

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.body(torch.cat([x1, x2], dim=1)), dim=1)


class SegmentationOnly(nn.Module):
    """Keeps the ``segmentation`` field of a multitask model (both tools blend just that)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        out = self.model(x1, x2)
        return out if isinstance(out, torch.Tensor) else out.segmentation


MODELS = {
    "tiny": "TinyChangeNet (3x3 convs, width 16; 2.6k parameters)",
    "cd": "fractal_resnet_cd (nf 8, depth 3, nheads_start 1, psp_depth 2)",
}


def build_model(name: str) -> nn.Module:
    """The benchmark model ``name`` with fixed random weights, in eval mode."""
    torch.manual_seed(0)
    if name == "tiny":
        return TinyChangeNet().eval()
    import mantis

    cd = mantis.create_model(
        "fractal_resnet_cd", in_channels=3, num_classes=2, nf=8, depth=3, nheads_start=1, psp_depth=2
    )
    return SegmentationOnly(cd).eval()


def make_pair(folder: Path, size: int) -> tuple[Path, Path]:
    """Two tiled GeoTIFFs of ``size`` x ``size`` (3 bands uint8): smooth fields plus noise, some changed."""
    import rasterio
    from rasterio.transform import from_origin

    paths = (folder / f"t1_{size}.tif", folder / f"t2_{size}.tif")
    if all(p.exists() for p in paths):
        return paths
    rng = np.random.default_rng(size)
    profile = {
        "driver": "GTiff",
        "height": size,
        "width": size,
        "count": 3,
        "dtype": "uint8",
        "crs": "EPSG:32631",
        "transform": from_origin(440000.0, 5100000.0, 0.5, 0.5),
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
        "nodata": None,
    }
    base = (np.linspace(0, 4 * np.pi, size)[:, None] + np.linspace(0, 3 * np.pi, size)[None, :]).astype(np.float32)
    for i, path in enumerate(paths):
        with rasterio.open(path, "w", **profile) as ds:
            for r in range(0, size, 512):
                rows = slice(r, min(r + 512, size))
                field = 127 + 60 * np.sin(base[rows] + i * 0.3)
                noise = rng.normal(0, 20, (3, field.shape[0], size))
                ds.write(np.clip(field[None] + noise, 0, 255).astype(np.uint8), window=((r, rows.stop), (0, size)))
    return paths


def run_mantis(model: nn.Module, pair: tuple[Path, Path], out: Path, args: argparse.Namespace, pad: int | None) -> None:
    from mantis.inference import ModelMeta, predict_raster

    meta = ModelMeta(task="change_detection", model_kwargs={"in_channels": 3})
    predict_raster(
        model,
        pair,
        out,
        meta,
        window=args.window,
        overlap=args.overlap,
        blend="mean",
        batch_size=args.batch,
        pad=pad,
        overwrite=True,
        progress=False,
    )


def run_monai(model: nn.Module, pair: tuple[Path, Path], out: Path, args: argparse.Namespace) -> None:
    import rasterio
    from monai.inferers import sliding_window_inference

    arrays, profile = [], {}
    for path in pair:
        with rasterio.open(path) as ds:
            arrays.append(torch.from_numpy(ds.read()).float().div_(255.0))
            profile = ds.profile
    x = torch.cat(arrays, dim=0)[None]
    del arrays
    with torch.inference_mode():
        probs = sliding_window_inference(
            x,
            (args.window, args.window),
            args.batch,
            lambda w: model(w[:, :3], w[:, 3:]),
            overlap=args.overlap,
            mode="constant",
        )
    assert isinstance(probs, torch.Tensor)
    classes = probs[0].argmax(dim=0).to(torch.uint8).numpy()
    profile.update(
        count=1, dtype="uint8", nodata=255, tiled=True, blockxsize=256, blockysize=256, compress="deflate", predictor=2
    )
    out.mkdir(parents=True, exist_ok=True)
    with rasterio.open(out / f"{pair[0].stem}_class.tif", "w", **profile) as dst:
        dst.write(classes[None])


def worker(args: argparse.Namespace) -> None:
    """One measured run; prints a JSON line with seconds and peak RSS."""
    if args.threads:
        torch.set_num_threads(args.threads)
    model = build_model(args.model)
    # The tool's imports outside the timing (each run imports only its own library: RSS stays its own).
    import rasterio  # noqa: F401

    if args.tool == "monai":
        import monai.inferers  # noqa: F401
    else:
        import mantis.inference  # noqa: F401

    with torch.inference_mode():  # warm up the kernels outside the timing
        model(torch.zeros(1, 3, args.window, args.window), torch.zeros(1, 3, args.window, args.window))
    rss_ready = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    pair = (Path(args.pair[0]), Path(args.pair[1]))
    out = Path(args.out)
    start, cpu = time.perf_counter(), time.process_time()
    if args.tool == "monai":
        run_monai(model, pair, out, args)
    else:
        run_mantis(model, pair, out, args, pad=0 if args.tool == "mantis" else None)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {"seconds": seconds, "cpu_seconds": cpu, "peak_rss_mb": rss / 1024, "ready_rss_mb": rss_ready / 1024}
        )
    )


def measure_best(
    tool: str, model: str, size: int, pair: tuple[Path, Path], out: Path, args: argparse.Namespace, repeat: int
) -> dict[str, Any]:
    """The fastest of ``repeat`` fresh-process runs (the machine is shared), with the largest peak RSS seen."""
    runs = [measure(tool, model, size, pair, out, args) for _ in range(repeat)]
    best = dict(min(runs, key=lambda r: r["seconds"]))
    best.update(peak_rss_mb=max(r["peak_rss_mb"] for r in runs), runs=len(runs))
    return best


def measure(
    tool: str, model: str, size: int, pair: tuple[Path, Path], out: Path, args: argparse.Namespace
) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        "--tool",
        tool,
        "--model",
        model,
        "--pair",
        str(pair[0]),
        str(pair[1]),
        "--out",
        str(out),
        "--window",
        str(args.window),
        "--overlap",
        str(args.overlap),
        "--batch",
        str(args.batch),
        "--threads",
        str(args.threads or 0),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{tool} {size}: {done.stderr.strip().splitlines()[-1:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result.update(tool=tool, model=model, size=size, mpx_s=size * size / 1e6 / result["seconds"])
    return result


def versions(threads: int) -> str:
    import monai
    import rasterio

    import mantis

    n = threads or torch.get_num_threads()
    return (
        f"Python {platform.python_version()}, torch {torch.__version__} "
        f"({n} thread{'s' if n != 1 else ''}), "
        f"MONAI {monai.__version__}, rasterio {rasterio.__version__} (GDAL {rasterio.__gdal_version__}), "
        f"mantis {mantis.__version__}"
    )


def table(results: list[dict[str, Any]], args: argparse.Namespace, command: str, elapsed: float) -> str:
    lines = [
        HEADING,
        "",
        "Change-detection pair of generated GeoTIFFs (3 bands uint8 each, tiled, deflate) -> class map GeoTIFF,",
        "end to end (read, windows, blend, argmax, write). Same model, window, overlap, blending (uniform mean)",
        "and batch size for both tools; each run in a fresh subprocess, peak RSS = its ru_maxrss (it includes",
        "torch and the model, ~the 'ready' column). MONAI reads the raster whole into memory (it has no reader).",
        "Each run imports its library and warms the model up before the clock starts.",
        "The machine is shared with other jobs: wall times are noisy; small cases keep the best of several runs,",
        "and CPU seconds (user + system of the run) are shown beside them.",
        "",
        f"- Command: `{command}` ({elapsed / 60:.1f} min)",
        f"- Machine: 2-core CPU ({platform.processor() or platform.machine()}, shared with other jobs), no GPU",
        f"- Versions: {versions(args.threads)}",
        f"- Window {args.window}, overlap {args.overlap}, batch {args.batch}",
        "",
    ]
    for model in dict.fromkeys(r["model"] for r in results):
        lines += [
            f"Model: {MODELS[model]}",
            "",
            "| raster | tool | runs | wall s (best) | CPU s | Mpx/s | peak RSS (MB) | ready RSS (MB) |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for r in (r for r in results if r["model"] == model):
            lines.append(
                f"| {r['size']}² | {r['tool']} | {r['runs']} | {r['seconds']:.1f} | {r['cpu_seconds']:.1f} | "
                f"{r['mpx_s']:.2f} | {r['peak_rss_mb']:.0f} | {r['ready_rss_mb']:.0f} |"
            )
        lines.append("")
        sizes = sorted({r["size"] for r in results if r["model"] == model})
        for tool in ("mantis", "monai"):
            rss = {r["size"]: r["peak_rss_mb"] for r in results if r["model"] == model and r["tool"] == tool}
            if len(sizes) > 1 and all(s in rss for s in sizes):
                lines.append(
                    f"- {tool}: peak RSS at {sizes[-1]}² / at {sizes[0]}² = {rss[sizes[-1]] / rss[sizes[0]]:.2f}"
                )
        speed = {(r["size"], r["tool"]): r["mpx_s"] for r in results if r["model"] == model}
        for size in sizes:
            if (size, "mantis") in speed and (size, "monai") in speed:
                ratio = speed[(size, "mantis")] / speed[(size, "monai")]
                lines.append(f"- {size}²: mantis throughput / MONAI's = {ratio:.2f}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def write_docs(section: str) -> Path:
    """Replace (or add) the section under HEADING in docs/benchmarks.md, keeping the others."""
    path = ROOT / "docs" / "benchmarks.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(HEADING)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + section
    path.write_text(text)
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", type=int, default=[1024, 4096])
    p.add_argument("--cd-sizes", nargs="*", type=int, default=[1024], help="sizes for the fractal_resnet_cd rows")
    p.add_argument("--window", type=int, default=256)
    p.add_argument("--overlap", type=float, default=0.5)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--workdir", help="where to keep generated rasters (default: a temporary folder)")
    p.add_argument("--threads", type=int, default=0, help="torch threads in every run (default: torch's choice)")
    p.add_argument("--repeat", type=int, default=3, help="runs of the small tiny-model cases (the best is kept)")
    p.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--tool", choices=["mantis", "mantis (reflect pad)", "monai"], help=argparse.SUPPRESS)
    p.add_argument("--model", choices=list(MODELS), default="tiny", help=argparse.SUPPRESS)
    p.add_argument("--pair", nargs=2, help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return
    command = "python " + " ".join([os.path.relpath(__file__, ROOT), *sys.argv[1:]])
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        plan = [("tiny", s, t) for s in args.sizes for t in ("mantis", "monai")]
        plan.insert(2, ("tiny", args.sizes[0], "mantis (reflect pad)"))
        plan += [("cd", s, t) for s in args.cd_sizes for t in ("mantis", "monai")]
        results = []
        for model, size, tool in plan:
            pair = make_pair(work, size)
            repeat = args.repeat if model == "tiny" and size <= 1024 else 1
            result = measure_best(tool, model, size, pair, work / "out", args, repeat)
            print(
                f"{model:5s} {size:5d} {tool:22s} {result['seconds']:7.1f} s {result['mpx_s']:6.2f} Mpx/s "
                f"{result['peak_rss_mb']:6.0f} MB",
                flush=True,
            )
            results.append(result)
    section = table(results, args, command, time.perf_counter() - started)
    print(section)
    if args.write_docs:
        print(f"updated {write_docs(section)}")


if __name__ == "__main__":
    main()
