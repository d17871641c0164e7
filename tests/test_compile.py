"""Regional compilation: which modules compile, same values as eager, and the ``compile`` options of fit and predict.

Compiled values are checked with Dynamo's ``eager`` backend (the graph Dynamo captures, run op by op): inductor
takes over a minute per tiny model on a 2-core CPU, too slow for the suite (benchmarks/check_compile.py covers
it for whole models).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn as nn
import yaml
from PIL import Image
from torch._dynamo.utils import counters

import mantis
from mantis.cli import main as cli_main
from mantis.inference import predict_cli
from mantis.nn import regional_compile
from mantis.nn.attention import CATFusion
from mantis.nn.regional_compile import compile_regions
from mantis.nn.units import CEECUnitV1, CEECUnitV2, FracTALResNetUnit
from mantis.tasks.segmentation import SegmentationTask

REPO = Path(__file__).resolve().parents[1]
TINY = {"nf": 8, "depth": 2, "psp_depth": 2}


def _compiled(module: nn.Module) -> bool:
    return module._compiled_call_impl is not None  # set by nn.Module.compile


@pytest.fixture(autouse=True)
def _fresh_dynamo() -> Any:
    limit = torch._dynamo.config.recompile_limit
    yield
    torch._dynamo.reset()  # no compiled code or recompile counts carried into other tests
    torch._dynamo.config.recompile_limit = limit


def test_outermost_units_compile_and_nothing_else() -> None:
    model = mantis.create_model("fractal_resunet", **TINY)
    assert compile_regions(model, backend="eager") == ["encoder.units.0", "encoder.units.1", "decoder.units.0"]
    for name, module in model.named_modules():
        assert _compiled(module) == (name in {"encoder.units.0", "encoder.units.1", "decoder.units.0"}), name


def test_units_inside_a_compiled_unit_are_not_compiled_again() -> None:
    model = mantis.create_model("ceecnet_v2", **TINY)
    names = compile_regions(model, backend="eager")
    modules = dict(model.named_modules())
    units = [n for n, m in modules.items() if isinstance(m, CEECUnitV1)]
    inner = [n for n, m in modules.items() if isinstance(m, CATFusion) and any(n.startswith(f"{u}.") for u in units)]
    assert units and inner
    assert set(units) <= set(names) and not set(inner) & set(names)
    assert all(not _compiled(modules[n]) for n in inner)
    assert any(isinstance(modules[n], CATFusion) for n in names)  # the skip fusions between the two dates


def _open_gates(model: nn.Module) -> nn.Module:
    """The attention gates (scalars initialised to 0) set to 0.7, so that attention shapes the outputs."""
    for p in model.parameters():
        if p.dim() == 0:
            nn.init.constant_(p, 0.7)
    return model


def _network(kind: str) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    if kind == "ceec_v2_unit":  # a CEECNet V2 unit alone: a whole tiny CEECNet takes ~40 s to trace here
        return CEECUnitV2(8, nheads=2), (torch.rand(2, 8, 8, 8, generator=torch.Generator().manual_seed(1)),)
    return mantis.create_model(kind, **TINY), (x,)


@pytest.mark.parametrize("kind", ["fractal_resunet", "ceec_v2_unit"])
def test_compiled_outputs_and_gradients_equal_eager(kind: str) -> None:
    torch.manual_seed(0)
    eager, inputs = _network(kind)
    _open_gates(eager)
    compiled = copy.deepcopy(eager)
    assert compile_regions(compiled, backend="eager")
    outs = [m(*inputs) for m in (eager, compiled)]
    outs = [out if isinstance(out, tuple) else (out,) for out in outs]
    for a, b in zip(*outs):
        torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-6)
    for out in outs:  # a weighting of every output (a plain sum has zero gradient through softmax heads)
        sum((t * torch.linspace(0, 1, t.numel()).view_as(t)).sum() for t in out).backward()
    for (pname, a), b in zip(eager.named_parameters(), compiled.parameters()):
        assert b.grad is not None and a.grad is not None, pname
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-5, atol=1e-6, msg=pname)


def test_every_level_runs_compiled_past_dynamos_default_recompile_limit() -> None:
    """Nine units at five widths, trained then evaluated: more versions of one ``forward`` than Dynamo's default 8.

    Past the limit Dynamo runs a unit eager and counts the frame as not compiled ("ok" < "total").
    """
    model = mantis.create_model("fractal_resunet", nf=4, depth=5, psp_depth=2)
    assert len(compile_regions(model, backend="eager")) == 9
    counters.clear()
    x = torch.rand(2, 3, 32, 32)
    model(x)
    with torch.no_grad():
        model.eval()(x)
    assert counters["frames"]["total"] > 8
    assert counters["frames"]["ok"] == counters["frames"]["total"]


def test_a_deep_copy_computes_with_its_own_weights() -> None:
    """Weight averaging deep-copies the network: the copy's compiled units must read the copy's parameters."""
    unit = FracTALResNetUnit(8, nheads=2)
    unit.compile(backend="eager")
    twin = copy.deepcopy(unit)
    with torch.no_grad():
        for p in twin.parameters():
            p.add_(0.3)
    plain = FracTALResNetUnit(8, nheads=2)
    plain.load_state_dict(twin.state_dict())
    x = torch.rand(1, 8, 8, 8)
    torch.testing.assert_close(twin(x), plain(x))
    assert not torch.allclose(unit(x), plain(x))


def test_task_option_compiles_the_units_and_keeps_the_state_dict() -> None:
    compiled = SegmentationTask("fractal_resunet", TINY, in_channels=3, num_classes=2, compile=True)
    plain = SegmentationTask("fractal_resunet", TINY, in_channels=3, num_classes=2)
    units = [m for m in compiled.model.modules() if isinstance(m, FracTALResNetUnit)]
    assert units and all(_compiled(m) for m in units)
    assert not _compiled(compiled.model) and not any(_compiled(m) for m in plain.model.modules())
    assert list(compiled.state_dict()) == list(plain.state_dict())
    assert compiled.hparams["compile"] is True


def test_fit_accepts_model_compile(capsys: pytest.CaptureFixture[str]) -> None:
    config = REPO / "configs" / "demo.yaml"
    assert cli_main(["fit", "--config", str(config), "--model.compile", "true", "--print_config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["init_args"]["compile"] is True


def test_task_compile_mode_reaches_every_unit(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict[str, Any]] = []
    monkeypatch.setattr(nn.Module, "compile", lambda self, **kw: seen.append(kw))
    task = SegmentationTask("fractal_resunet", TINY, num_classes=2, compile=True, compile_mode="reduce-overhead")
    units = [m for m in task.model.modules() if isinstance(m, FracTALResNetUnit)]
    assert seen == [{"mode": "reduce-overhead"}] * len(units)
    assert task.hparams["compile_mode"] == "reduce-overhead"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"compile": True, "compile_mode": "fast"},
            "compile_mode must be one of default, reduce-overhead, .*got 'fast'",
        ),
        ({"compile_mode": "reduce-overhead"}, "compile_mode 'reduce-overhead' needs compile: true"),
    ],
)
def test_task_refuses_an_unknown_or_unused_compile_mode(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SegmentationTask("fractal_resunet", TINY, num_classes=2, **options)


def test_compile_modes_are_torch_compiles() -> None:
    for mode in regional_compile.COMPILE_MODES:  # each accepted by torch.compile (an unknown one raises)
        torch.compile(nn.Identity(), mode=mode)


def _checkpoint(path: Path) -> Path:
    """A Lightning-layout checkpoint of a tiny FracTAL ResUNet with open attention gates."""
    torch.manual_seed(0)
    model = _open_gates(mantis.create_model("fractal_resunet", in_channels=3, num_classes=2, **TINY))
    hp = {"model": "fractal_resunet", "model_kwargs": {"in_channels": 3, "num_classes": 2, **TINY}}
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    hyper = {**hp, "task": "segmentation", "lr": 1e-3}
    torch.save({"epoch": 0, "global_step": 0, "state_dict": state, "hyper_parameters": hyper}, path)
    return path


def test_predict_compile_gives_the_eager_maps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []
    real = regional_compile.compile_regions

    def eager_backend(model: nn.Module) -> list[str]:
        calls.append(real(model, backend="eager"))
        return calls[-1]

    monkeypatch.setattr(regional_compile, "compile_regions", eager_backend)
    ckpt = _checkpoint(tmp_path / "m.ckpt")
    image = tmp_path / "a.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(image)
    common = ["-c", str(ckpt), "-i", str(image), "--window", "16", "--outputs", "prob", "--no-progress"]
    assert predict_cli.main([*common, "-o", str(tmp_path / "eager")]) == 0
    assert not calls
    assert predict_cli.main([*common, "-o", str(tmp_path / "compiled"), "--compile"]) == 0
    assert calls and calls[0]
    written = sorted(p.relative_to(tmp_path / "eager") for p in (tmp_path / "eager").rglob("*") if p.is_file())
    assert written
    for rel in written:
        assert (tmp_path / "eager" / rel).read_bytes() == (tmp_path / "compiled" / rel).read_bytes(), rel


def test_compile_regions_passes_options_to_torch_compile(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict[str, Any]] = []
    monkeypatch.setattr(nn.Module, "compile", lambda self, **kw: seen.append(kw))
    compile_regions(mantis.create_model("fractal_resunet", **TINY), mode="max-autotune", dynamic=False)
    assert seen == [{"mode": "max-autotune", "dynamic": False}] * 3


def test_a_unit_given_alone_is_compiled_itself() -> None:
    unit = FracTALResNetUnit(8, nheads=2)
    assert compile_regions(unit, backend="eager") == [""]
    assert _compiled(unit) and not any(_compiled(m) for m in list(unit.modules())[1:])
