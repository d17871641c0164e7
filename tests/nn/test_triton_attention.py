"""The Triton attention core: interpreted against the reference form, compiled for sm_90, off the CPU path.

The value and gradient cases live in ``triton_interpreted_cases.py`` and run here in a child process with
TRITON_INTERPRET=1, which Triton reads when it is imported (it must not leak into the rest of the suite).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

pytest.importorskip("triton", reason="Triton is not installed (pip install 'mantis-cd[gpu]')")

from mantis.nn import triton_attention  # noqa: E402
from mantis.nn.attention import attend, fractal_similarity_maps  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def _child(args: list[str], interpret: bool, **extra_env: str) -> subprocess.CompletedProcess[str]:
    env = {key: val for key, val in os.environ.items() if key not in ("TRITON_INTERPRET", "MANTIS_TRITON")}
    env.update(extra_env)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    env["OMP_NUM_THREADS"] = "1"
    if interpret:
        env["TRITON_INTERPRET"] = "1"
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )


def run_interpreted_cases(cases: str) -> None:
    """Run a cases file with pytest in a child under TRITON_INTERPRET=1; every case must pass, none skip."""
    args = ["-m", "pytest", cases, "-o", "addopts=", "-q", "-p", "no:cacheprovider", "-W", "ignore", "-rs"]
    run = _child(args, interpret=True)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and "skipped" not in run.stdout, run.stdout[-2000:]


def test_interpreted_kernels_match_the_reference_form() -> None:
    """fp32 and bf16, 1D/2D/3D, depths 1-10, ragged tiles, layouts, opcheck (see triton_interpreted_cases.py)."""
    run_interpreted_cases("tests/nn/triton_interpreted_cases.py")


def test_the_kernels_compile_for_sm90_with_the_real_compiler() -> None:
    """The interpreter accepts constructs the compiler rejects: lower every kernel to a cubin, no GPU needed."""
    run = _child(["-m", "tests.nn.triton_compile_check", "90"], interpret=False)
    if run.returncode != 0 and "ptxas" in run.stderr and "not found" in run.stderr:
        pytest.skip("this Triton build has no CUDA compiler tools (ptxas)")
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("cubin") == 27  # 9 kernels (attention 5, GroupNorm + ReLU 4) x 3 dtypes


def test_cuda_tensors_go_to_the_triton_op(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake CUDA tensors (shapes, dtypes, devices, no data): the dispatch and the op's fake implementation."""
    calls: list[torch.dtype] = []
    real = triton_attention.fractal_attention

    def spy(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, depth: int, smooth: float) -> torch.Tensor:
        calls.append(q.dtype)
        return real(q, k, v, depth, smooth)

    monkeypatch.setattr(triton_attention, "fractal_attention", spy)
    with FakeTensorMode():
        for dtype in (torch.float32, torch.bfloat16):
            q, k, v = (torch.empty(2, 4, 5, 6, device="cuda", dtype=dtype) for _ in range(3))
            y = attend(q, k, v, 5)
            assert y.shape == q.shape and y.dtype == dtype and y.is_cuda
            # The backward op directly: the autograd engine needs a real CUDA device for CUDA tensors.
            _, sp, ch = torch.ops.mantis.fractal_attention(q, k, v, 5, 1e-5)
            assert sp.shape == (2, 4, 30) and ch.shape == (2, 4, 4) and sp.dtype == ch.dtype == torch.float32
            grads = torch.ops.mantis.fractal_attention_backward(y, q, k, v, sp, ch)
            assert all(g.shape == q.shape and g.dtype == dtype and g.is_cuda for g in grads)
        cl = torch.empty(2, 5, 6, 4, device="cuda").permute(0, 3, 1, 2)  # channels-last, made without a copy
        assert attend(cl, cl, cl, 5).is_contiguous(memory_format=torch.channels_last)
        assert calls == [torch.float32, torch.bfloat16, torch.float32]
        wide = torch.empty(2, 4, 5, 6, device="cuda", dtype=torch.float64)  # float64 stays on the PyTorch path
        assert attend(wide, wide, wide, 5).dtype == torch.float64 and len(calls) == 3


def test_mantis_triton_0_keeps_cuda_on_the_pytorch_core() -> None:
    check = "from mantis.nn import triton_attention as t; print(t.TRITON_AVAILABLE)"
    runs = {flag: _child(["-c", check], interpret=False, MANTIS_TRITON=flag) for flag in ("0", "1")}
    assert [runs[f].stdout.strip() for f in ("0", "1")] == ["False", "True"], runs["0"].stderr[-2000:]


def test_cpu_tensors_stay_on_the_pytorch_path(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object) -> torch.Tensor:
        raise AssertionError("the Triton core ran on CPU tensors")

    monkeypatch.setattr(triton_attention, "fractal_attention", fail)
    g = torch.Generator().manual_seed(5)
    q, k, v = (torch.rand(1, 3, 4, 4, generator=g) for _ in range(3))
    assert not triton_attention.supports(q, k, v)
    sp, ch = fractal_similarity_maps(q, k, 5)
    torch.testing.assert_close(attend(q, k, v, 5), 0.5 * v * (sp + ch))
