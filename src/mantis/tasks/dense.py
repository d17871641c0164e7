"""Dense prediction with the fractal Tanimoto loss on every head, and the paper's evolving loss."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from mantis.losses import MultitaskLoss, to_one_hot
from mantis.metrics import scores_to_json
from mantis.models.registry import count_inputs, list_models, model_info
from mantis.object_scores import ObjectScores
from mantis.tasks.base import BaseTask

DEFAULT_DEPTH_SCHEDULE = (0, 10, 20, 30)
TARGET_KEYS = {"segmentation": "segmentation", "boundary": "boundary", "distance": "distance", "color": "colour"}


WEIGHTS_GIVEN = "_mantis_weights_given"  # set on a network once it is given weights or starts training


def _note_weights_given(model: torch.nn.Module, keys: Any = None) -> None:
    """Mark ``model`` as no longer as built (a load_state_dict post-hook; a plain function, so copies of the
    network do not hold the task)."""
    setattr(model, WEIGHTS_GIVEN, True)


class DenseTask(BaseTask):
    """A task whose network maps images to per-pixel class probabilities (not used directly).

    Multitask networks (FracTAL ResUNet, CEECNet, ResUNet-a) train every head with
    :class:`~mantis.losses.MultitaskLoss` against the batch's ``segmentation``, ``boundary``, ``distance``
    (and ``colour``) targets; heads without a target in the batch are skipped (the one-hot segmentation
    target is made from ``mask`` when absent). Metrics use the argmax of ``segmentation``.

    Evolving loss (Diakogiannis et al.): the fractal depth starts at ``depth_schedule[0]``; every time
    ReduceLROnPlateau lowers the learning rate the depth moves to the next entry (0 -> 10 -> 20 -> 30,
    then stays) and the optimiser state (Adam moments and step counts) is reset.

    Args:
        model: registry name.
        model_kwargs: keyword arguments of the network.
        loss_depth: fractal depth of the loss when ``evolving_loss`` is off.
        loss_weights: per-head weights, e.g. ``{"segmentation": 1, "boundary": 1, "distance": 1}``.
        loss_per_class: reduce the loss of each class over space separately and average the classes, so that
            every class weighs the same whatever its area; ``False`` reduces over classes and space jointly, as
            the authors did, which lets the majority class dominate and can hold a network at "no change" /
            one class everywhere on small imbalanced data (``docs/training.md``).
        evolving_loss: raise the loss depth along ``depth_schedule`` at each LR drop.
        depth_schedule: the fractal depths of the evolving loss.
        reset_optimizer: with ``evolving_loss``, reset the optimiser state at each LR drop.
        object_iou: ``mantis test`` also scores objects (connected regions, :mod:`mantis.object_scores`) of 2D
            masks: a predicted and a true object match at this IoU or more.
        object_classes: the classes scored as objects (default: every class but 0, i.e. ``change``).
        object_connectivity: 8 (pixels touching at corners are one object) or 4.
        object_min_area: objects of fewer pixels are left out of the object scores.
        head_prior: when a run starts (not when it resumes), set the biases of the segmentation output so that
            it starts at the class shares of the training masks (``datamodule.class_shares()``) instead of
            equal probabilities, and those of a boundary output so that it starts at the classes' boundary
            shares (``datamodule.boundary_shares()``) instead of 0.5; the network is unchanged otherwise. On by
            default: it keeps the head's channels of rare classes alive at the start (docs/training.md, "What
            holds a network there"); ``False`` is PyTorch's default bias initialisation. A network given
            weights before the fit (``load_state_dict``, ``load_from_checkpoint``) or fitted once already keeps
            its biases.
        **kwargs: the arguments of :class:`~mantis.tasks.base.BaseTask` (in_channels, num_classes, class_names,
            ignore_index, band_mean, band_std, optimizer, lr, ... collapse_patience), by name.
    """

    inputs = 1  # tensors the network takes

    def __init__(
        self,
        model: str,
        model_kwargs: dict[str, Any] | None = None,
        *,
        loss_depth: int = 0,
        loss_weights: dict[str, float] | None = None,
        loss_per_class: bool = True,
        evolving_loss: bool = True,
        depth_schedule: Sequence[int] = DEFAULT_DEPTH_SCHEDULE,
        reset_optimizer: bool = True,
        object_iou: float = 0.5,
        object_classes: list[int] | None = None,
        object_connectivity: int = 8,
        object_min_area: int = 0,
        head_prior: bool = True,
        **kwargs: Any,
    ) -> None:
        depth_schedule = [int(d) for d in depth_schedule]
        if evolving_loss and not depth_schedule:
            raise ValueError("depth_schedule needs at least one depth for the evolving loss")
        if any(d < 0 for d in [loss_depth, *depth_schedule]):
            raise ValueError("loss depths must not be negative")
        unknown = set(loss_weights or {}) - set(TARGET_KEYS)
        if unknown:
            raise ValueError(f"unknown loss_weights keys {sorted(unknown)}; use {sorted(TARGET_KEYS)}")
        super().__init__(model, model_kwargs, **kwargs)
        taken = count_inputs(self.model)
        if taken != self.inputs:
            kind = "two dates" if self.inputs == 2 else "one image"
            raise ValueError(
                f"{type(self).__name__} needs a network that takes {kind}; {model!r} takes {taken} "
                f"(change detection: {', '.join(_models(pair=True))}; segmentation: {', '.join(_models(pair=False))})"
            )
        self.depth_schedule = depth_schedule
        self.loss = MultitaskLoss(
            depth_schedule[0] if evolving_loss else loss_depth,
            loss_weights,
            ignore_index=self.ignore_index,
            per_channel=loss_per_class,
        )
        # Test only (per-sample matching on the CPU would slow training); series, images and volumes.
        self.test_objects: ObjectScores | None = None
        if getattr(self.model, "spatial_dims", 2) in (1, 2, 3):
            self.test_objects = ObjectScores(
                range(1, self.num_classes) if object_classes is None else object_classes,
                self.class_names,
                self.ignore_index,
                object_iou,
                object_connectivity,
                object_min_area,
            )
        # Set by `mantis test --test_window` (mantis.inference.tiled_test.TiledTest): a whole-raster test batch
        # -> (class ids, mask) 1 x H x W, predicted tile by tile as `mantis predict` does.
        self.tiled_test: Callable[[DenseTask, Mapping[str, Any]], tuple[torch.Tensor, torch.Tensor]] | None = None
        self.lr_drops = 0  # LR drops seen so far (saved in checkpoints)
        self._last_lr: float | None = None
        self._warned_targets = False
        # head_prior starts only a network as built: not one given weights (load_state_dict) or fitted before.
        self.model.register_load_state_dict_post_hook(_note_weights_given)

    def on_fit_start(self) -> None:
        """With ``head_prior``, start a new run's segmentation output at the training masks' class shares and
        its boundary output, if any, at their boundary shares."""
        if not self.hparams["head_prior"] or self.trainer.ckpt_path is not None or self.global_step:
            return
        if getattr(self.model, WEIGHTS_GIVEN, False):
            self.print("head_prior: left out (the network was given weights or trained before this fit)")
            return
        _note_weights_given(self.model)  # a second fit of this task continues from what the first learnt
        data = getattr(self.trainer, "datamodule", None)
        shares_of = getattr(data, "class_shares", None)
        shares = shares_of() if shares_of is not None else None
        start = getattr(self.model, "start_at_class_prior", None)
        if shares is None or start is None:
            missing = "the data module gives no class shares" if shares is None else "the network has no such head"
            self.print(f"head_prior: left out ({missing}); the output starts at equal probabilities")
            return
        start(shares)
        names = self.class_names or [str(i) for i in range(len(shares))]
        listed = ", ".join(f"{n} {v:.3f}" for n, v in zip(names[-len(shares) :], shares))
        self.print(f"head_prior: the segmentation output starts at the training masks' class shares ({listed})")
        # Started at 0.5, half the boundary branch's channels died in the real-data runs (docs/training.md).
        start_boundary = getattr(getattr(self.model, "head", None), "start_boundary_at", None)
        boundary_of = getattr(data, "boundary_shares", None)
        boundary = boundary_of() if start_boundary is not None and boundary_of is not None else None
        if start_boundary is not None and boundary is not None:
            start_boundary(boundary)
            listed = ", ".join(f"{n} {v:.3f}" for n, v in zip(names[-len(boundary) :], boundary))
            self.print(f"head_prior: the boundary output starts at the training masks' boundary shares ({listed})")

    # -- evolving loss ----------------------------------------------------------------------------

    def on_train_epoch_start(self) -> None:
        """Detect a learning-rate drop since the last epoch: raise the loss depth, reset the optimiser."""
        lr = self.current_lr()
        if self._last_lr is not None and lr < self._last_lr * (1 - 1e-9):
            self.lr_drops += 1
            self.on_lr_drop()
        self._last_lr = lr

    def on_train_epoch_end(self) -> None:
        """Log the epoch's learning rate and loss depth (as set at its start) with its training metrics."""
        if self._last_lr is not None:  # logged here, not at the start: a run resumed mid-epoch logs them too
            self.log("train/lr", self._last_lr, on_step=False, on_epoch=True)
        self.log("train/loss_depth", float(self.loss.depth), on_step=False, on_epoch=True)
        super().on_train_epoch_end()

    def on_lr_drop(self) -> None:
        """Apply the evolving loss after the ``lr_drops``-th drop of the learning rate."""
        if not self.hparams["evolving_loss"]:
            return
        self.loss.depth = self.depth_schedule[min(self.lr_drops, len(self.depth_schedule) - 1)]
        if self.hparams["reset_optimizer"]:
            optimizers = self.optimizers(use_pl_optimizer=False)
            for optimizer in optimizers if isinstance(optimizers, list) else [optimizers]:
                optimizer.state.clear()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep the evolving-loss state, so that a resumed run continues at the same depth."""
        super().on_save_checkpoint(checkpoint)
        checkpoint["evolving_loss"] = {"lr_drops": self.lr_drops, "last_lr": self._last_lr, "depth": self.loss.depth}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore the evolving-loss state saved by :meth:`on_save_checkpoint`."""
        super().on_load_checkpoint(checkpoint)
        state = checkpoint.get("evolving_loss")
        if state:
            self.lr_drops = int(state["lr_drops"])
            self._last_lr = state["last_lr"]
            self.loss.depth = int(state["depth"])

    # -- whole rasters, tile by tile (test) --------------------------------------------------------

    def scores_loss(self, stage: str) -> bool:
        """No test loss when whole rasters are predicted: the loss needs the multitask targets of windows."""
        return stage != "test" or self.tiled_test is None

    def test_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor | None:
        """A window batch as in validation; with :attr:`tiled_test`, one whole raster predicted tile by tile
        as ``mantis predict`` does, then scored (pixels without a prediction are left out)."""
        if self.tiled_test is None:
            return super().test_step(batch, batch_idx)
        ids, truth = self.tiled_test(self, batch)
        self.test_scores.update(ids, truth)
        self.eval_batch_scored("test", ids, truth)
        return None

    # -- object scores (test) ----------------------------------------------------------------------

    def eval_batch_scored(self, stage: str, scores: torch.Tensor, target: torch.Tensor) -> None:
        """Match the objects of each test sample (:class:`~mantis.object_scores.ObjectScores`)."""
        if stage == "test" and self.test_objects is not None:
            self.test_objects.update(scores, target)

    def on_test_epoch_end(self) -> None:
        """The pixel metrics, then the object scores beside them (logged as ``test/object_f1_change`` ...)."""
        super().on_test_epoch_end()
        if self.test_objects is None or not self.test_objects.update_called:
            return
        objects = self.test_objects.compute()
        self.test_objects.reset()
        self.log_dict({f"test/{k}": v.float() for k, v in objects.items()}, sync_dist=True)
        counts = ("object_tp_", "object_fp_", "object_fn_")
        # Counts stay integers in test_metrics.json.
        self.test_results.update(
            {k: int(v) if k.startswith(counts) and v is not None else v for k, v in scores_to_json(objects).items()}
        )

    # -- forward and loss ------------------------------------------------------------------------

    def predict_probabilities(self, batch: Mapping[str, Any]) -> Any:
        """The network's output for a batch (a NamedTuple of B x K x S maps, or class scores)."""
        raise NotImplementedError

    def _targets(self, batch: Mapping[str, Any], outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        mask = batch["mask"]
        targets = {"mask": mask}
        for head, key in TARGET_KEYS.items():
            if head in outputs and key in batch:
                targets[head] = batch[key].float()
        if "segmentation" not in targets:
            targets["segmentation"] = to_one_hot(mask, self.num_classes, self.ignore_index)
        missing = sorted(set(outputs) - set(targets))
        if missing and not self._warned_targets:
            self._warned_targets = True
            warnings.warn(
                f"the batches hold no {', '.join(missing)} targets: those heads are not trained "
                "(give the data module multitask=True)",
                stacklevel=2,
            )
        return targets

    def compute_loss(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Multitask fractal Tanimoto loss; returns (loss, probabilities B x K x S, mask B x S)."""
        raw = self.predict_probabilities(batch)
        if hasattr(raw, "_asdict"):
            outputs = {k: v.float() for k, v in raw._asdict().items()}
        else:  # a plain network: B x K x S class scores
            outputs = {"segmentation": torch.softmax(raw.float(), dim=1)}
        loss = self.loss(outputs, self._targets(batch, outputs))
        return loss, outputs["segmentation"].detach(), batch["mask"]


def _models(pair: bool) -> list[str]:
    """Registered dense-prediction models that take a pair (or one image)."""
    return [n for n in list_models() if model_info(n).multitask and model_info(n).pair == pair]
