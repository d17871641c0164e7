"""The plateau schedule that waits for the monitored value to move off its start."""

from __future__ import annotations

import math

import pytest
import torch

from mantis.tasks.schedule import PlateauAfterProgress


def _scheduler(**kwargs: object) -> tuple[torch.optim.Optimizer, PlateauAfterProgress]:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    return optimizer, PlateauAfterProgress(optimizer, **kwargs)  # type: ignore[arg-type]


def _lrs(scheduler: PlateauAfterProgress, optimizer: torch.optim.Optimizer, values: list[float]) -> list[float]:
    out = []
    for value in values:
        scheduler.step(value)
        out.append(round(optimizer.param_groups[0]["lr"], 6))
    return out


def test_no_cut_while_the_score_sits_at_its_start() -> None:
    optimizer, scheduler = _scheduler(mode="max", progress=0.05, patience=1, factor=0.5)
    assert _lrs(scheduler, optimizer, [0.0, 0.0, 0.01, 0.04, 0.0, 0.0]) == [1.0] * 6
    assert not scheduler.progressed


def test_counts_as_reduce_lr_on_plateau_once_progressed() -> None:
    optimizer, scheduler = _scheduler(mode="max", progress=0.05, patience=1, factor=0.5)
    values = [0.0, 0.2, 0.2, 0.2, 0.3, 0.3, 0.3]
    got = _lrs(scheduler, optimizer, values)
    # the same values after the start, through the plain PyTorch scheduler
    reference_opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    reference = torch.optim.lr_scheduler.ReduceLROnPlateau(reference_opt, mode="max", patience=1, factor=0.5)
    reference.step(0.0)
    want = [1.0] + _plain_lrs(reference, reference_opt, values[1:])
    assert got == want == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25]


def _plain_lrs(scheduler: object, optimizer: torch.optim.Optimizer, values: list[float]) -> list[float]:
    out = []
    for value in values:
        scheduler.step(value)  # type: ignore[attr-defined]
        out.append(round(optimizer.param_groups[0]["lr"], 6))
    return out


def test_minimised_monitor_and_undefined_first_values() -> None:
    optimizer, scheduler = _scheduler(mode="min", progress=0.1, patience=0, factor=0.1)
    # NaN (an undefined score) is not a start; 0.9 is; 0.85 is not progress enough; 0.7 is
    assert _lrs(scheduler, optimizer, [math.nan, 0.9, 0.85, 0.7, 0.7]) == [1.0, 1.0, 1.0, 1.0, 0.1]


def test_zero_progress_is_the_plain_schedule_and_state_round_trips() -> None:
    optimizer, scheduler = _scheduler(mode="max", progress=0.0, patience=0, factor=0.5)
    assert _lrs(scheduler, optimizer, [0.0, 0.0]) == [1.0, 0.5]
    optimizer, waiting = _scheduler(mode="max", progress=0.05, patience=0, factor=0.5)
    _lrs(waiting, optimizer, [0.0, 0.1])
    state = waiting.state_dict()
    _, restored = _scheduler(mode="max", progress=0.05, patience=0, factor=0.5)
    restored.load_state_dict(state)
    assert restored.progressed and restored.first == 0.0
    with pytest.raises(ValueError, match="progress must not be negative"):
        _scheduler(progress=-1.0)


def test_progress_bar_shows_the_task_status() -> None:
    import lightning

    from mantis.tasks.guards import StatusProgressBar

    trainer = lightning.Trainer(logger=False, enable_checkpointing=False, accelerator="cpu")

    class Task:
        status = ""

    task = Task()
    bar = StatusProgressBar()
    assert "status" not in bar.get_metrics(trainer, task)
    task.status = "predicts 'no_change' everywhere"
    assert bar.get_metrics(trainer, task)["status"] == "predicts 'no_change' everywhere"
