"""Prediction on a CUDA GPU: correctness of the device path, bf16 autocast, and throughput next to MONAI.

Run on a machine with a GPU (``PYTHONPATH=src python benchmarks/predict_gpu_check.py``). Checks:

1. ``sliding_window_predict`` with the model on the GPU and the tensor on the CPU or the GPU equals
   whole-image prediction for a per-pixel model (every blending, TTA);
2. bf16 autocast on CUDA gives float32 outputs close to fp32; CUDA-graph replay (``cuda_graphs``) equals eager;
3. ``predict_raster(device="cuda")`` writes the same class map as on the CPU;
4. throughput of a FracTAL ResUNet (nf 16, depth 4) on a 4096² GeoTIFF, fp32 and bf16, eager and replayed from
   CUDA graphs, next to MONAI's ``sliding_window_inference`` with the raster whole on the GPU (same window,
   overlap, blending, batch).
"""

from __future__ import annotations

import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

import mantis
from mantis.inference import ModelMeta, predict_raster, sliding_window_predict
from mantis.inference.spec import Precision


class PixelSeg(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 8, 1)
        self.b = nn.Conv2d(8, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.b(torch.tanh(self.a(x))), dim=1)


def write_tif(path: Path, data: np.ndarray) -> Path:
    import rasterio
    from rasterio.transform import from_origin

    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        height=data.shape[1],
        width=data.shape[2],
        count=data.shape[0],
        dtype=data.dtype,
        crs="EPSG:32631",
        transform=from_origin(0, 0, 1, 1),
        tiled=True,
        blockxsize=256,
        blockysize=256,
        compress="deflate",
    ) as ds:
        ds.write(data)
    return path


def main() -> int:
    assert torch.cuda.is_available(), "no CUDA device"
    report: dict[str, object] = {"device": torch.cuda.get_device_name(), "torch": torch.__version__}
    # Exactness needs true float32 convolutions (cuDNN's default TF32 rounds differently per window).
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.manual_seed(0)
    model = PixelSeg().cuda().eval()
    x = torch.rand(2, 3, 123, 97)
    with torch.no_grad():
        whole = model(x.cuda()).cpu()
    worst = 0.0
    for blend in ("mean", "gaussian", "linear"):
        for tta in (False, True):
            for inp in (x, x.cuda()):
                out = cast(torch.Tensor, sliding_window_predict(model, inp, 32, stride=12, blend=blend, tta=tta))
                assert out.device == inp.device
                worst = max(worst, float((out.cpu() - whole).abs().max()))
    report["tiled_vs_whole_max_abs"] = worst
    assert worst < 1e-5, worst

    bf = cast(torch.Tensor, sliding_window_predict(model, x.cuda(), 32, precision="bf16"))
    report["bf16_dtype"] = str(bf.dtype)
    report["bf16_max_abs"] = float((bf.cpu() - whole).abs().max())
    assert bf.dtype == torch.float32 and report["bf16_max_abs"] < 3e-2  # type: ignore[operator]

    eager = cast(torch.Tensor, sliding_window_predict(model, x.cuda(), 32, stride=12, blend="gaussian"))
    graphed = cast(
        torch.Tensor, sliding_window_predict(model, x.cuda(), 32, stride=12, blend="gaussian", cuda_graphs=True)
    )
    report["cuda_graphs_vs_eager_max_abs"] = float((graphed - eager).abs().max())
    assert report["cuda_graphs_vs_eager_max_abs"] < 1e-6  # type: ignore[operator]

    import rasterio

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        img = write_tif(t / "s.tif", rng.integers(0, 255, (3, 700, 523), dtype=np.uint8))
        gpu = predict_raster(model, img, t / "gpu", window=64, overlap=0.5, device="cuda", progress=False)
        cpu = predict_raster(model.cpu(), img, t / "cpu", window=64, overlap=0.5, device="cpu", progress=False)
        model.cuda()
        with rasterio.open(gpu["class"]) as a, rasterio.open(cpu["class"]) as b:
            differ = int((a.read() != b.read()).sum())
        report["class_map_pixels_differing_gpu_vs_cpu"] = differ
        assert differ <= 5, differ  # float reductions differ; ties at the argmax are rare

        # Throughput: a real model on a 4096² raster (TF32 back on, as users run it).
        torch.backends.cudnn.allow_tf32 = True
        size = int(sys.argv[1]) if len(sys.argv) > 1 else 4096
        big = rng.integers(0, 255, (3, size, size), dtype=np.uint8)
        path = write_tif(t / "big.tif", big)
        del big
        torch.manual_seed(0)
        net = mantis.create_model("fractal_resunet", in_channels=3, num_classes=2, nf=16, depth=4).cuda().eval()
        seg = SegOnly(net).eval()
        meta = ModelMeta(model_kwargs={"in_channels": 3})
        window, overlap, batch = 256, 0.5, 32
        with torch.inference_mode():
            seg(torch.zeros(batch, 3, window, window, device="cuda"))  # warm-up
        timings: dict[str, Any] = {}
        runs: list[tuple[Precision, bool]] = [("fp32", False), ("fp32", True), ("bf16", False), ("bf16", True)]
        for precision, graphs in runs:
            name = f"{precision}_cuda_graphs" if graphs else precision
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            predict_raster(
                seg,
                path,
                t / name,
                meta,
                window=window,
                overlap=overlap,
                batch_size=batch,
                pad=0,
                precision=precision,
                device="cuda",
                cuda_graphs=graphs,
                progress=False,
            )
            torch.cuda.synchronize()
            s = time.perf_counter() - start
            timings[f"mantis_{name}"] = {
                "seconds": round(s, 2),
                "mpx_s": round(size * size / 1e6 / s, 2),
                "gpu_peak_mb": round(torch.cuda.max_memory_allocated() / 2**20),
            }
        try:
            from monai.inferers import sliding_window_inference

            for precision in ("fp32", "bf16"):
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                start = time.perf_counter()
                with rasterio.open(path) as ds:
                    data = torch.from_numpy(ds.read()).cuda().float().div_(255)[None]
                    profile = ds.profile
                ctx = (
                    torch.autocast("cuda", torch.bfloat16)
                    if precision == "bf16"
                    else torch.autocast("cuda", enabled=False)
                )
                with torch.inference_mode(), ctx:
                    probs = sliding_window_inference(
                        data, (window, window), batch, seg, overlap=overlap, mode="constant"
                    )
                classes = probs[0].float().argmax(0).to(torch.uint8).cpu().numpy()
                profile.update(count=1, dtype="uint8", compress="deflate", tiled=True)
                with rasterio.open(t / f"monai_{precision}.tif", "w", **profile) as dst:
                    dst.write(classes[None])
                torch.cuda.synchronize()
                s = time.perf_counter() - start
                timings[f"monai_{precision}"] = {
                    "seconds": round(s, 2),
                    "mpx_s": round(size * size / 1e6 / s, 2),
                    "gpu_peak_mb": round(torch.cuda.max_memory_allocated() / 2**20),
                }
                del data, probs
        except ImportError:
            timings["monai"] = "not installed"
        report["throughput"] = {
            "raster": f"{size}x{size}",
            "window": window,
            "overlap": overlap,
            "batch": batch,
            **timings,
        }
    report["host_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(report, indent=1))
    return 0


class SegOnly(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).segmentation


if __name__ == "__main__":
    raise SystemExit(main())
