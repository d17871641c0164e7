"""Regression of whole samples (table rows) with the small baselines: MSE on the standardised target, scores in
the target's own units."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torchmetrics import Metric

from mantis.tasks.base import BaseTask, Stage

__all__ = ["RegressionScores", "RegressionTask"]

_MINIMISED = ("loss", "mse", "rmse", "mae")


class RegressionScores(Metric):
    """Streaming RMSE, MAE, MSE and R² of B x N predictions against B x N targets (averaged over the N outputs).

    Sums are kept in float64 and summed across processes, so the scores are those of all samples at once.
    R² is ``1 - SSE / SST`` with SST around the mean of the scored targets (scikit-learn's ``r2_score``).

    Example:
        >>> m = RegressionScores(1)
        >>> m.update(torch.tensor([[1.0], [2.0]]), torch.tensor([[1.0], [4.0]]))
        >>> {k: round(float(v), 3) for k, v in m.compute().items()}
        {'rmse': 1.414, 'mae': 1.0, 'mse': 2.0, 'r2': -1.0}
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False
    count: torch.Tensor
    sum_abs: torch.Tensor
    sum_squared_error: torch.Tensor
    sum_target: torch.Tensor
    sum_target_squared: torch.Tensor

    def __init__(self, num_outputs: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for name in ("sum_abs", "sum_squared_error", "sum_target", "sum_target_squared"):
            self.add_state(name, default=torch.zeros(num_outputs, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch: preds and target B x N (or B for one output), in the same units."""
        p = preds.detach().double().reshape(len(preds), -1)
        y = target.detach().double().reshape(len(target), -1).to(p.device)
        error = p - y
        self.sum_abs += error.abs().sum(0)
        self.sum_squared_error += (error * error).sum(0)
        self.sum_target += y.sum(0)
        self.sum_target_squared += (y * y).sum(0)
        self.count += len(y)

    def compute(self) -> dict[str, torch.Tensor]:
        """``rmse``, ``mae``, ``mse`` and ``r2`` of everything added (NaN before any sample)."""
        n = self.count
        mse = self.sum_squared_error / n
        total = self.sum_target_squared - self.sum_target**2 / n  # sum of squares around the mean
        r2 = 1.0 - self.sum_squared_error / total
        return {
            "rmse": mse.sqrt().mean(),
            "mae": (self.sum_abs / n).mean(),
            "mse": mse.mean(),
            "r2": r2.mean(),
        }


class RegressionTask(BaseTask):
    """Regression of whole samples: ``model(x)`` -> B x N values, learnt with the mean squared error.

    The loss is the MSE between the network's output and the standardised target ``(y - target_mean) /
    target_std`` (so a network that predicts the training mean scores about 1); predictions
    (:meth:`predict_values`, ``predict_step``) and the scores RMSE, MAE and R² are in the target's own units.
    ``target_mean``/``target_std`` come from the data module (fitted on its training rows) unless given, and
    are saved in the checkpoint's hyper-parameters.

    Batches: a dict with ``"image"`` (B x F, or B x C x S) and ``"target"`` (B x N), or an ``(inputs,
    targets)`` pair. ``num_classes`` is the number of outputs N (the CLI takes it from the data). Other
    arguments: see :class:`~mantis.tasks.base.BaseTask`; the default monitor is ``val/rmse`` (minimised, as
    are ``loss``, ``mse`` and ``mae``; others, such as ``val/r2``, are maximised).

    Example:
        >>> task = RegressionTask("mlp", {"in_channels": 4, "hidden": [8]}, target_mean=[10.0], target_std=[2.0])
        >>> task.predict_values(torch.zeros(2, 4)).shape
        torch.Size([2, 1])
    """

    task_name = "regression"
    target = "target"
    target_mean: torch.Tensor
    target_std: torch.Tensor

    def __init__(
        self,
        model: str,
        model_kwargs: dict[str, Any] | None = None,
        *,
        num_classes: int | None = 1,
        ignore_index: int | None = None,
        target_mean: Sequence[float] | None = None,
        target_std: Sequence[float] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(model, model_kwargs, num_classes=num_classes, ignore_index=ignore_index, **kwargs)
        if (target_mean is None) != (target_std is None):
            raise ValueError("give both target_mean and target_std, or neither")
        outputs = self.num_classes
        self.register_buffer("target_mean", torch.zeros(outputs), persistent=False)
        self.register_buffer("target_std", torch.ones(outputs), persistent=False)
        self._target_scaling_given = target_mean is not None
        if target_mean is not None and target_std is not None:
            self._set_target_scaling(target_mean, target_std)
        monitored = self.monitor.rsplit("/", 1)[-1]
        self.monitor_mode: Literal["min", "max"] = "min" if monitored in _MINIMISED else "max"
        self.train_scores = RegressionScores(outputs)  # type: ignore[assignment]
        self.val_scores = RegressionScores(outputs)  # type: ignore[assignment]
        self.test_scores = RegressionScores(outputs)  # type: ignore[assignment]

    def _set_target_scaling(self, mean: Sequence[float], std: Sequence[float]) -> None:
        if len(mean) != self.num_classes or len(std) != self.num_classes:
            raise ValueError(f"target_mean and target_std need {self.num_classes} values, got {len(mean)}, {len(std)}")
        if any(s <= 0 for s in std):
            raise ValueError(f"target_std must be positive, got {list(std)}")
        self.target_mean.copy_(torch.tensor([float(v) for v in mean]))
        self.target_std.copy_(torch.tensor([float(v) for v in std]))
        # what inference reads to turn the network's output into the target's units
        self.hparams["target_mean"] = [float(v) for v in mean]
        self.hparams["target_std"] = [float(v) for v in std]

    def default_monitor(self) -> str:
        """Validation RMSE drives the LR schedule and the best checkpoint."""
        return "val/rmse"

    def setup(self, stage: str) -> None:
        """The checks of every task; the data's training target statistics unless they were given."""
        super().setup(stage)
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        mean, std = getattr(datamodule, "target_mean", None), getattr(datamodule, "target_std", None)
        if not self._target_scaling_given and mean is not None and std is not None:
            self._set_target_scaling(mean, std)

    def _check_data_kind(self, datamodule: Any) -> None:
        kind = getattr(datamodule, "target", None)
        if kind is not None and kind != self.target:
            raise ValueError(
                f"RegressionTask needs values to predict ('target'), but {type(datamodule).__name__} gives "
                f"'{kind}' batches; set the data's task: regression or use ClassificationTask"
            )
        super()._check_data_kind(datamodule)  # the same kind: the dimension checks remain

    # -- the network in target units ----------------------------------------------------------------------

    def predict_values(self, inputs: torch.Tensor) -> torch.Tensor:
        """Predictions B x N in the target's units for standardised inputs."""
        return self.model(inputs).float() * self.target_std + self.target_mean

    def predict_step(self, batch: Any, batch_idx: int = 0) -> torch.Tensor:
        """Predictions B x N in the target's units."""
        return self.predict_values(batch["image"] if isinstance(batch, Mapping) else batch[0])

    def compute_loss(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """MSE on the standardised target; returns (loss, predictions B x N and targets B x N, target units)."""
        inputs, targets = self._unpack(batch)
        output = self.model(inputs).float()
        targets = targets.float().reshape(output.shape)
        loss = F.mse_loss(output, (targets - self.target_mean) / self.target_std)
        return loss, (output * self.target_std + self.target_mean).detach(), targets

    def _log_scores(self, stage: Stage) -> dict[str, float | None]:
        metric = self._scores(stage)
        scores = metric.compute() if metric.update_count else {}
        metric.reset()
        return self._publish_scores(stage, scores)  # no confusion matrix to watch for collapse
