"""What every Mantis task shares: the network from the registry, Adam/AdamW with ReduceLROnPlateau, and
per-class metrics logged for training, validation and test."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import lightning
import torch
import torch.nn as nn
from lightning.pytorch.accelerators import CPUAccelerator
from lightning.pytorch.utilities.model_helpers import is_overridden
from torchmetrics import MeanMetric
from tqdm import tqdm

from mantis.data.sampling import epoch_batches_done
from mantis.metrics import ConfusionScores, scores_to_json
from mantis.models.common import nearest_sizes
from mantis.models.registry import create_model
from mantis.nn.layout import channels_last
from mantis.nn.regional_compile import COMPILE_MODES, compile_regions
from mantis.tasks.checkpoints import metric_state, restore_metric_state, restore_rng_states, rng_states
from mantis.tasks.guards import CollapseWatch, DivergedError, diverged_message
from mantis.tasks.schedule import PlateauAfterProgress

Stage = Literal["train", "val", "test"]
OptimizerName = Literal["adam", "adamw"]


def metric_safe_names(names: Sequence[str]) -> list[str]:
    """Class names usable as metric-key suffixes: lower case, runs of other characters -> ``_``."""
    out = [re.sub(r"[^0-9a-z]+", "_", str(n).lower()).strip("_") or str(i) for i, n in enumerate(names)]
    if len(set(out)) != len(out):
        raise ValueError(f"class names {list(names)} are not distinct once made metric-safe: {out}")
    return out


class BaseTask(lightning.LightningModule):
    """Shared machinery of the Mantis LightningModules (not used directly).

    The network is ``self.model = mantis.create_model(model, **model_kwargs)``. The checkpoint's
    ``hyper_parameters`` hold ``model``, the complete ``model_kwargs`` (with ``in_channels`` and
    ``num_classes``), ``task``, ``band_mean`` and ``band_std``, so that inference can rebuild the network
    without this class.

    Args:
        model: registry name (``mantis.list_models()``).
        model_kwargs: keyword arguments of the network (``nf``, ``depth``, ...).
        in_channels: bands per image; the CLI takes it from the data. Overrides nothing: if
            ``model_kwargs`` sets it too, both must agree.
        num_classes: K; the CLI takes it from the data (same rule).
        class_names: K names used in metric keys (made lower-case and ``_``-separated).
        ignore_index: mask value of unlabelled pixels (not counted in loss or metrics).
        band_mean: per-band means the data were normalised with (stored for inference).
        band_std: per-band standard deviations the data were normalised with.
        optimizer: ``adam`` or ``adamw``.
        lr: learning rate.
        betas: Adam betas.
        weight_decay: weight decay (decoupled for AdamW).
        lr_factor: ReduceLROnPlateau factor.
        lr_patience: ReduceLROnPlateau patience, in validation epochs.
        min_lr: lowest learning rate.
        schedule_after_progress: the plateau counter (and with it every learning-rate cut, and the evolving
            loss's depth) starts only once the monitored value has improved on its first value by this much
            (absolute); ``0`` counts from the first epoch (the paper's schedule). See
            :class:`~mantis.tasks.schedule.PlateauAfterProgress`.
        collapse_patience: after this many validation rounds in a row in which the network predicted one
            class for (almost) every pixel, say so in the log and the progress bar (``0``: never).
        monitor: metric that drives ReduceLROnPlateau and the best checkpoint (``None``: the task's default,
            validation MCC); names ending in ``loss`` are minimised, others maximised.
        channels_last: keep 2D networks and their inputs in the channels-last memory layout (same values).
            ``None`` (default): on CPUs, where it measured faster for training in float32 and bf16
            (``docs/benchmarks.md``), not on GPUs, where the last measurement found it slower for the FracTAL
            networks.
        compile: regional compilation: ``torch.compile`` on each repeated unit (FracTAL, CEEC, atrous units,
            attention fusions) once, the rest eager (:func:`~mantis.nn.regional_compile.compile_regions`);
            compiles on the first step, the state dict is unchanged.
        compile_mode: ``torch.compile``'s mode for ``compile`` (:data:`~mantis.nn.regional_compile.COMPILE_MODES`):
            ``reduce-overhead`` replays each compiled unit from CUDA graphs on GPUs (input shapes fixed:
            fixed-size training windows and batches, ``drop_last``), ``max-autotune`` searches kernel
            configurations at compile time.
    """

    task_name = "base"
    target = "mask"  # what the batches must hold: "mask" (a class per pixel) or "label" (one per sample)

    def __init__(
        self,
        model: str,
        model_kwargs: dict[str, Any] | None = None,
        in_channels: int | None = None,
        num_classes: int | None = None,
        class_names: list[str] | None = None,
        ignore_index: int | None = 255,
        band_mean: list[float] | None = None,
        band_std: list[float] | None = None,
        optimizer: OptimizerName = "adam",
        lr: float = 1e-3,
        betas: Sequence[float] = (0.9, 0.999),
        weight_decay: float = 0.0,
        lr_factor: float = 0.1,
        lr_patience: int = 10,
        min_lr: float = 1e-6,
        monitor: str | None = None,
        channels_last: bool | None = None,
        schedule_after_progress: float = 0.05,
        collapse_patience: int = 3,
        compile: bool = False,
        compile_mode: str = "default",
    ) -> None:
        super().__init__()
        if optimizer not in ("adam", "adamw"):
            raise ValueError(f"optimizer must be 'adam' or 'adamw', got {optimizer!r}")
        if not 0.0 < lr_factor < 1.0:
            raise ValueError(f"lr_factor must be in (0, 1), got {lr_factor}")
        if schedule_after_progress < 0:
            raise ValueError(f"schedule_after_progress must not be negative, got {schedule_after_progress}")
        if compile_mode not in COMPILE_MODES:
            raise ValueError(f"compile_mode must be one of {', '.join(COMPILE_MODES)}, got {compile_mode!r}")
        if compile_mode != "default" and not compile:
            raise ValueError(f"compile_mode {compile_mode!r} needs compile: true")
        if len(betas) != 2:
            raise ValueError(f"betas needs two values, got {list(betas)}")
        if (band_mean is None) != (band_std is None):
            raise ValueError("give both band_mean and band_std, or neither")
        kwargs = dict(model_kwargs or {})
        for key, value in (("in_channels", in_channels), ("num_classes", num_classes)):
            if value is None:
                continue
            if key in kwargs and kwargs[key] != value:
                what = "bands per image" if key == "in_channels" else "classes"
                raise ValueError(f"model_kwargs sets {key}={kwargs[key]} but the data has {value} {what}")
            kwargs[key] = value
        k = int(kwargs.setdefault("num_classes", 2))
        self.model: nn.Module = create_model(model, **kwargs)
        if compile:
            compile_regions(self.model, mode=compile_mode)
        if "in_channels" not in kwargs and isinstance(getattr(self.model, "in_channels", None), int):
            kwargs["in_channels"] = self.model.in_channels
        if class_names is not None and len(class_names) != k:
            raise ValueError(f"{len(class_names)} class names given for {k} classes")
        self.class_names = metric_safe_names(class_names) if class_names else self.default_class_names(k)
        self.num_classes = k
        self.ignore_index = ignore_index
        betas = [float(b) for b in betas]
        self.save_hyperparameters()
        # What inference reads: the complete network arguments and the kind of task.
        self.hparams["model_kwargs"] = kwargs
        self.hparams["task"] = self.task_name
        self.channels_last = channels_last
        self._layout_hook: Any = None
        if channels_last:
            self.use_channels_last()
        self.monitor = monitor or self.default_monitor()
        self.monitor_mode: Literal["min", "max"] = "min" if self.monitor.endswith("loss") else "max"
        # One confusion matrix per stage ("train" would clash with Module.train in a ModuleDict).
        self.train_scores = ConfusionScores(k, ignore_index, self.class_names)
        self.val_scores = ConfusionScores(k, ignore_index, self.class_names)
        self.test_scores = ConfusionScores(k, ignore_index, self.class_names)
        # the epoch's mean training loss as a metric of ours (not Lightning's), so that checkpoints keep it
        self.train_loss_mean = MeanMetric()
        self.val_loss_mean = MeanMetric()
        self.test_loss_mean = MeanMetric()
        self.val_results: dict[str, float | None] = {}
        self.test_results: dict[str, float | None] = {}
        self.collapse = CollapseWatch(collapse_patience, self.class_names)
        self.status = ""  # a warning in words, shown in the progress bar (mantis.tasks.guards)

    # -- what subclasses define -------------------------------------------------------------------

    def default_class_names(self, num_classes: int) -> list[str]:
        """Metric-key names of the classes when none are given."""
        return [str(i) for i in range(num_classes)]

    def default_monitor(self) -> str:
        """Metric that drives the LR schedule and the best checkpoint by default."""
        return "val/mcc_macro"

    def compute_loss(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run the network on a batch: returns (loss, class scores B x K x ..., true ids B x ...)."""
        raise NotImplementedError

    def _unpack(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets of a batch: a dict's ``"image"`` and :attr:`target` entries, or a pair."""
        if isinstance(batch, Mapping):
            return batch["image"], batch[self.target]
        inputs, targets = batch
        return inputs, targets

    # -- Lightning hooks ------------------------------------------------------------------------

    def use_channels_last(self) -> None:
        """Put the network's weights, and every input it is called with, in the channels-last layout."""
        if self._layout_hook is None:
            # Only 4-D weights and inputs change layout, so 1D/3D networks are unaffected.
            self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
            self._layout_hook = self.model.register_forward_pre_hook(_channels_last_inputs)

    def setup(self, stage: str) -> None:
        """Check, before any batch, that the data suit the network (targets, dimensions, window size);
        choose the layout."""
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        self._check_data_kind(datamodule)
        on_cpu = self._trainer is not None and isinstance(self.trainer.accelerator, CPUAccelerator)
        if self.channels_last is None and on_cpu and getattr(self.model, "spatial_dims", 2) == 2:
            self.use_channels_last()
        patch = getattr(datamodule, "patch_size", None)
        multiple = getattr(self.model, "size_multiple", None)
        if isinstance(patch, int) and isinstance(multiple, int) and patch % multiple:
            sizes = nearest_sizes(patch, multiple)
            raise ValueError(
                f"data patch_size {patch} is not divisible by {multiple}, which {self.hparams['model']} with "
                f"these model_kwargs needs (depth, psp_depth); use {sizes}"
            )

    def _check_data_kind(self, datamodule: Any) -> None:
        """One line when the data module's samples are of another kind than this task and network take."""
        target = getattr(datamodule, "target", None)
        if target is not None and target != self.target:
            want = "one class per sample ('label')" if self.target == "label" else "a class per pixel ('mask')"
            raise ValueError(
                f"{type(self).__name__} needs {want}, but {type(datamodule).__name__} gives '{target}' batches; "
                "pick a task and a data module of the same kind"
            )
        data_dims, model_dims = getattr(datamodule, "spatial_dims", None), getattr(self.model, "spatial_dims", None)
        if data_dims is not None and model_dims is not None and data_dims != model_dims:
            raise ValueError(
                f"model_kwargs spatial_dims={model_dims}, but {type(datamodule).__name__} gives {data_dims}D "
                f"samples; use spatial_dims: {data_dims}"
            )

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        """One optimisation step's loss; updates the training confusion matrix."""
        loss, scores, target = self.compute_loss(batch)
        if not bool(loss.detach().isfinite()):
            raise DivergedError(diverged_message(batch, self.global_step, self.current_epoch, self.current_lr()))
        self.train_scores.update(scores, target)
        n = int(target.shape[0])
        self.train_loss_mean.update(loss.detach(), n)
        self.log("train/loss_step", loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=n)
        return loss

    def _scores(self, stage: Stage) -> ConfusionScores:
        return {"train": self.train_scores, "val": self.val_scores, "test": self.test_scores}[stage]

    def _loss_mean(self, stage: Stage) -> MeanMetric:
        return self.val_loss_mean if stage == "val" else self.test_loss_mean

    def _eval_step(self, batch: Mapping[str, Any], stage: Stage) -> torch.Tensor:
        loss, scores, target = self.compute_loss(batch)
        self._scores(stage).update(scores, target)
        self._loss_mean(stage).update(loss.detach(), int(target.shape[0]))
        self.eval_batch_scored(stage, scores, target)
        return loss

    def eval_batch_scored(self, stage: Stage, scores: torch.Tensor, target: torch.Tensor) -> None:
        """Called with each validation/test batch's class scores and targets (a hook for extra metrics)."""

    def scores_loss(self, stage: Stage) -> bool:
        """Whether ``stage``'s scores include the loss (not when a test predicts whole rasters)."""
        return True

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        """Loss and confusion matrix of one validation batch."""
        return self._eval_step(batch, "val")

    def test_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor | None:
        """Loss and confusion matrix of one test batch."""
        return self._eval_step(batch, "test")

    def _log_scores(self, stage: Stage) -> dict[str, float | None]:
        metric = self._scores(stage)
        scores = metric.compute()
        if stage == "val" and not self.trainer.sanity_checking:
            self._watch_collapse(metric.confmat)
        metric.reset()
        return self._publish_scores(stage, scores)

    def _publish_scores(self, stage: Stage, scores: dict[str, torch.Tensor]) -> dict[str, float | None]:
        """Log ``stage``'s scores (but per-class supports) and mean loss, the monitored value in the progress
        bar; returns them as JSON values."""
        logged = {f"{stage}/{k}": v.float() for k, v in scores.items() if not k.startswith("support_")}
        if stage != "train" and self.scores_loss(stage):
            mean = self._loss_mean(stage)
            loss = mean.compute()
            mean.reset()
            logged[f"{stage}/loss"] = loss.float()
            scores = {"loss": loss, **scores}
        # Already reduced across processes by torchmetrics (the sync of equal values only silences Lightning).
        # The monitored value shows in the progress bar.
        monitored = logged.pop(self.monitor, None)
        self.log_dict(logged, sync_dist=True)
        if monitored is not None:
            self.log(self.monitor, monitored, prog_bar=True, sync_dist=True)
        return scores_to_json(scores)

    def print(self, *args: Any, sep: str = " ", **kwargs: Any) -> None:
        """Print one line on the main process, above the progress bar if one is drawn.

        Lightning's own ``print`` hands the text to the TQDM bar, which drops it while no bar is active: every
        note of ``on_fit_start`` and ``configure_optimizers`` was lost in ``mantis fit``.
        """
        if self._trainer is None or self._trainer.is_global_zero:
            tqdm.write(sep.join(map(str, args)), **kwargs)

    def _watch_collapse(self, confmat: torch.Tensor) -> None:
        """Count validation rounds that predict one class everywhere; say so in words at the patience."""
        message = self.collapse.update(confmat)
        if message:
            self.status = f"predicts '{self.class_names[int(confmat.sum(0).argmax())]}' everywhere"
            self.print(f"Warning (epoch {self.current_epoch}): {message}")
        elif self.collapse.rounds == 0:
            self.status = ""

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep the count of one-class validation rounds (a resumed run warns at the same point) and the
        random generators' states (a resumed run draws what the uninterrupted one drew)."""
        checkpoint["collapse_watch"] = self.collapse.state_dict()
        checkpoint["rng_states"] = rng_states()
        trainer = self._trainer
        # in the middle of an epoch: its training scores so far
        if trainer is not None and trainer.training and not epoch_batches_done(trainer)[1]:
            checkpoint["epoch_train_metrics"] = {
                "scores": metric_state(self.train_scores),
                "loss": metric_state(self.train_loss_mean),
            }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore what :meth:`on_save_checkpoint` kept."""
        self.collapse.load_state_dict(checkpoint.get("collapse_watch", {}))
        if "rng_states" in checkpoint:
            restore_rng_states(checkpoint["rng_states"])
        if "epoch_train_metrics" in checkpoint:
            restore_metric_state(self.train_scores, checkpoint["epoch_train_metrics"]["scores"])
            restore_metric_state(self.train_loss_mean, checkpoint["epoch_train_metrics"]["loss"])

    def on_train_epoch_end(self) -> None:
        """Log the epoch's training metrics."""
        loss = self.train_loss_mean.compute() if self.train_loss_mean.update_count else None
        self.train_loss_mean.reset()
        if loss is not None:
            self.log("train/loss_epoch", loss.float(), sync_dist=True)
        self._log_scores("train")

    def on_validation_epoch_end(self) -> None:
        """Log the validation metrics (per class and macro); keep them in :attr:`val_results`."""
        self.val_results = self._log_scores("val")

    def on_test_epoch_end(self) -> None:
        """Log the test metrics and keep them in :attr:`test_results` (written to JSON by the CLI)."""
        self.test_results = self._log_scores("test")

    def configure_optimizers(self) -> Any:
        """Adam/AdamW and ReduceLROnPlateau on :attr:`monitor`, once it has moved off its start; without a
        validation split, Adam/AdamW alone at a constant learning rate (said once)."""
        hp = self.hparams
        cls = torch.optim.Adam if hp["optimizer"] == "adam" else torch.optim.AdamW
        params = list(self.parameters())
        # The fused kernel is 5x faster than the per-parameter loop on the CPU (benchmarks/bench_models.py).
        fused = all(p.device.type in ("cpu", "cuda") and p.dtype in (torch.float32, torch.float64) for p in params)
        optimizer = cls(
            params, lr=hp["lr"], betas=tuple(hp["betas"]), weight_decay=hp["weight_decay"], fused=fused or None
        )
        if not self._validates():
            # The schedule reads validation scores: without them it is left out (Lightning would warn every epoch).
            self.print(
                f"No validation split: the learning rate stays at {hp['lr']:g} and the last weights are kept "
                "(the schedule and the best checkpoint need validation scores)."
            )
            return optimizer
        scheduler = PlateauAfterProgress(
            optimizer,
            mode=self.monitor_mode,
            progress=hp["schedule_after_progress"],
            factor=hp["lr_factor"],
            patience=hp["lr_patience"],
            min_lr=hp["min_lr"],
        )
        return {
            "optimizer": optimizer,
            # strict=False: epochs without validation (check_val_every_n_epoch) keep the rate.
            "lr_scheduler": {"scheduler": scheduler, "monitor": self.monitor, "interval": "epoch", "strict": False},
        }

    def _validates(self) -> bool:
        """Whether the fit this task is attached to has validation batches (True when it cannot tell)."""
        trainer = self._trainer
        if trainer is None:
            return True
        if trainer.limit_val_batches == 0:
            return False
        datamodule = getattr(trainer, "datamodule", None)
        if datamodule is None:
            return True
        if not is_overridden("val_dataloader", datamodule):
            return False
        loader = datamodule.val_dataloader()
        return not (isinstance(loader, list) and not loader)  # the data modules give [] for an empty split

    def current_lr(self) -> float:
        """Learning rate of the first parameter group (NaN before the optimiser exists)."""
        try:
            optimizer = self.optimizers(use_pl_optimizer=False)
        except RuntimeError:
            return math.nan
        if isinstance(optimizer, list):
            optimizer = optimizer[0]
        return float(optimizer.param_groups[0]["lr"])


def _channels_last_inputs(module: nn.Module, inputs: tuple[Any, ...]) -> tuple[Any, ...]:
    """Forward pre-hook: the network's 4-D floating inputs in channels-last (same values)."""
    return tuple(
        channels_last(x) if isinstance(x, torch.Tensor) and x.dim() == 4 and x.is_floating_point() else x
        for x in inputs
    )
