"""CUDA-graph replay of the model in sliding-window prediction (``cuda_graphs``, ``mantis predict --cuda-graphs``).

Without a GPU the graph itself is a stand-in with a CUDA graph's contract: the capture records the kernels
reading the captured input tensors and writing the captured output tensors; a replay runs them again on the
same memory. The predictor's side of that contract (copy each batch into the captured inputs, take the outputs
out before the next replay, one graph per batch shape, eager past the limit or after a failed capture) is
what these tests check; benchmarks/gpu_report.py checks the real graphs on a GPU.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from mantis.inference import cuda_graphs, predict_cli
from mantis.inference.cuda_graphs import GraphedForward
from mantis.inference.predict import predict_raster
from mantis.inference.sliding import WindowForward

from .conftest import PixelSeg, make_ckpt, write_geotiff


class _Recorded:
    """The stand-in's record: which module ran on which captured inputs, and the outputs it wrote."""

    current: _FakeGraph | None = None


class _FakeGraph:
    def __init__(self) -> None:
        self.calls: list[tuple[_Affine, tuple[torch.Tensor, ...], torch.Tensor]] = []
        self.replays = 0

    def pool(self) -> tuple[int, int]:
        return (id(self), 0)

    def replay(self) -> None:
        self.replays += 1
        with torch.inference_mode():  # a real replay writes the memory without autograd's checks
            for module, inputs, output in self.calls:
                output.copy_(module.compute(*inputs))  # the same kernels, the same memory


POOLS: list[Any] = []  # the pool each capture was given


@contextlib.contextmanager
def _fake_capture(graph: _FakeGraph, pool: Any = None, capture_error_mode: str = "global") -> Iterator[None]:
    POOLS.append(pool)
    assert capture_error_mode == "thread_local"  # the reading thread keeps using CUDA during a capture
    _Recorded.current = graph
    try:
        yield
    finally:
        _Recorded.current = None


class _Affine(nn.Module):
    """``2 x + b`` whose captured calls are recorded by the stand-in graph."""

    def __init__(self) -> None:
        super().__init__()
        self.b = nn.Parameter(torch.tensor(0.5))
        self.eager_calls = 0

    def compute(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * x + self.b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.compute(x)
        if _Recorded.current is not None:
            _Recorded.current.calls.append((self, (x,), y))
        else:
            self.eager_calls += 1
        return y


@pytest.fixture
def fake_cuda(monkeypatch: pytest.MonkeyPatch) -> list[_FakeGraph]:
    """CUDA graphs, streams and devices replaced by CPU stand-ins; returns the graphs made."""
    made: list[_FakeGraph] = []

    def new_graph() -> _FakeGraph:
        made.append(_FakeGraph())
        return made[-1]

    class _Stream:
        def __init__(self, device: Any = None) -> None:
            pass

        def wait_stream(self, other: Any) -> None:
            pass

    monkeypatch.setattr(torch.cuda, "CUDAGraph", new_graph)
    monkeypatch.setattr(torch.cuda, "graph", _fake_capture)
    monkeypatch.setattr(torch.cuda, "Stream", _Stream)
    monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: _Stream())
    return made


def _graphed(model: nn.Module, max_graphs: int = cuda_graphs.MAX_GRAPHS) -> GraphedForward:
    return GraphedForward(model, lambda: torch.inference_mode(), max_graphs)


def test_replays_compute_each_batch_and_keep_earlier_outputs(fake_cuda: list[_FakeGraph]) -> None:
    model = _Affine()
    graphed = _graphed(model)
    batches = [torch.randn(4, 3, 8, 8) for _ in range(3)]
    outputs = [graphed(x) for x in batches]
    assert len(fake_cuda) == 1 and fake_cuda[0].replays == 3  # captured once, replayed for every batch
    assert model.eager_calls == cuda_graphs.WARMUP_RUNS  # the warm-up runs, before the capture
    for x, y in zip(batches, outputs):  # each output is its batch's, not overwritten by the next replay
        torch.testing.assert_close(y, 2 * x + 0.5)


def test_one_graph_per_batch_shape_then_eager(fake_cuda: list[_FakeGraph]) -> None:
    model = _Affine()
    graphed = _graphed(model, max_graphs=2)
    for n in (4, 4, 2, 4, 2):  # full batches and a smaller last batch: two graphs
        x = torch.randn(n, 3, 8, 8)
        torch.testing.assert_close(graphed(x), 2 * x + 0.5)
    assert [g.replays for g in fake_cuda] == [3, 2]
    assert POOLS[-2:] == [None, fake_cuda[0].pool()]  # the second graph shares the first one's memory
    eager_before = model.eager_calls
    x = torch.randn(1, 3, 8, 8)  # a third shape past the limit: run eagerly, no capture
    torch.testing.assert_close(graphed(x), 2 * x + 0.5)
    assert len(fake_cuda) == 2 and model.eager_calls == eager_before + 1


def test_a_failed_capture_warns_once_and_runs_eagerly(fake_cuda: list[_FakeGraph], monkeypatch: Any) -> None:
    @contextlib.contextmanager
    def failing(graph: Any, pool: Any = None, capture_error_mode: str = "global") -> Iterator[None]:
        raise RuntimeError("operation not permitted when stream is capturing")
        yield

    monkeypatch.setattr(torch.cuda, "graph", failing)
    model = _Affine()
    graphed = _graphed(model)
    x = torch.randn(2, 3, 8, 8)
    with pytest.warns(UserWarning, match="CUDA graph capture failed .*predicting without CUDA graphs"):
        torch.testing.assert_close(graphed(x), 2 * x + 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning, no second attempt
        torch.testing.assert_close(graphed(x), 2 * x + 0.5)


def test_window_forward_refuses_cuda_graphs_off_cuda() -> None:
    with pytest.raises(ValueError, match="CUDA graphs need a CUDA device; the model runs on cpu"):
        WindowForward(_Affine(), 2, device="cpu", cuda_graphs=True)


def test_predict_raster_refuses_cuda_graphs_on_the_cpu_and_writes_nothing(tmp_path: Path) -> None:
    image = write_geotiff(tmp_path / "a.tif", np.random.default_rng(0).integers(0, 255, (3, 32, 32), dtype=np.uint8))
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="CUDA graphs need a CUDA device"):
        predict_raster(PixelSeg(3, 2).eval(), image, out, window=16, cuda_graphs=True, progress=False)
    assert not out.exists() or not any(out.iterdir())


def test_cli_refuses_cuda_graphs_on_the_cpu(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = make_ckpt(tmp_path / "seg.ckpt", PixelSeg(3, 2), "test_pixel_seg", "segmentation", in_channels=3)
    image = write_geotiff(tmp_path / "a.tif", np.zeros((3, 32, 32), dtype=np.uint8))
    out = tmp_path / "out"
    argv = ["-c", str(ckpt), "-i", str(image), "-o", str(out), "--device", "cpu", "--cuda-graphs", "--no-progress"]
    assert predict_cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["mantis predict: error: --cuda-graphs needs a CUDA device; this run is on cpu (--device cuda)"]
    assert not out.exists() or not any(out.iterdir())
