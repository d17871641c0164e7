"""Lightning tasks: hyper-parameters for inference, model checks, the evolving loss, ignore index."""

from __future__ import annotations

from typing import Any

import lightning
import pytest
import torch
from torch.utils.data import DataLoader

from mantis.tasks import ChangeDetectionTask, ClassificationTask, SegmentationTask
from mantis.tasks.guards import DivergedError
from tests.tasks.folders import TINY_CD_MODEL, TINY_SEG_MODEL


def _cd_batches(n: int, size: int = 32, bands: int = 3, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        x1 = torch.rand(bands, size, size, generator=g)
        mask = (torch.rand(size, size, generator=g) < 0.2).long()
        x2 = x1 + 0.5 * mask
        out.append({"image1": x1, "image2": x2, "mask": mask})
    return out


def _trainer(**kw: Any) -> lightning.Trainer:
    settings: dict[str, Any] = {
        "accelerator": "cpu",
        "devices": 1,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
    }
    return lightning.Trainer(**{**settings, **kw})


def test_hyper_parameters_are_what_inference_reads() -> None:
    task = ChangeDetectionTask(
        "ceecnet_v1", dict(TINY_CD_MODEL), in_channels=4, num_classes=2, band_mean=[1, 2, 3, 4], band_std=[1] * 4
    )
    hp = task.hparams
    assert hp["model"] == "ceecnet_v1"
    assert hp["task"] == "change_detection"
    assert hp["model_kwargs"] == {**TINY_CD_MODEL, "in_channels": 4, "num_classes": 2}
    assert hp["band_mean"] == [1, 2, 3, 4] and hp["band_std"] == [1, 1, 1, 1]
    assert all(k.startswith("model.") for k in task.state_dict())
    out = task.model(torch.zeros(1, 4, 32, 32), torch.zeros(1, 4, 32, 32))
    assert out.segmentation.shape == (1, 2, 32, 32)
    assert task.class_names == ["no_change", "change"] and task.monitor == "val/mcc_change"
    assert SegmentationTask("fractal_resunet", dict(TINY_SEG_MODEL)).hparams["task"] == "segmentation"


def test_data_and_model_kwargs_must_agree() -> None:
    with pytest.raises(ValueError, match="model_kwargs sets in_channels=3 but the data has 4 bands"):
        ChangeDetectionTask("ceecnet_v1", {**TINY_CD_MODEL, "in_channels": 3}, in_channels=4)


def test_task_refuses_a_network_of_the_wrong_kind() -> None:
    with pytest.raises(ValueError, match="needs a network that takes two dates; 'fractal_resunet' takes 1"):
        ChangeDetectionTask("fractal_resunet", dict(TINY_SEG_MODEL))
    with pytest.raises(ValueError, match="takes one image; 'ceecnet_v1' takes 2"):
        SegmentationTask("ceecnet_v1", dict(TINY_CD_MODEL))


def test_bad_settings_are_value_errors() -> None:
    with pytest.raises(ValueError, match="optimizer must be"):
        ChangeDetectionTask("ceecnet_v1", dict(TINY_CD_MODEL), optimizer="sgd")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown loss_weights keys"):
        ChangeDetectionTask("ceecnet_v1", dict(TINY_CD_MODEL), loss_weights={"edges": 1.0})
    with pytest.raises(ValueError, match="2 class names given for 3 classes"):
        SegmentationTask("fractal_resunet", dict(TINY_SEG_MODEL), num_classes=3, class_names=["a", "b"])


class _PlateauTask(ChangeDetectionTask):
    """Logs a constant validation score, so ReduceLROnPlateau (patience 0) drops the LR every epoch."""

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        self.log("val/constant", 1.0)


class _Recorder(lightning.Callback):
    """At the first batch of every epoch: learning rate, loss depth and Adam's step count."""

    def __init__(self) -> None:
        self.rows: list[tuple[float, int, int]] = []

    def on_train_batch_start(self, trainer: lightning.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if batch_idx:
            return
        optimizer = trainer.optimizers[0]
        state = optimizer.state.get(next(pl_module.parameters()), {})
        steps = int(state["step"]) if "step" in state else 0
        self.rows.append((optimizer.param_groups[0]["lr"], pl_module.loss.depth, steps))


@pytest.mark.parametrize("evolving", [True, False])
def test_evolving_loss_raises_depth_and_resets_optimizer_at_each_lr_drop(evolving: bool) -> None:
    torch.manual_seed(0)
    task = _PlateauTask(
        "ceecnet_v1",
        dict(TINY_CD_MODEL),
        monitor="val/constant",
        lr_patience=0,
        evolving_loss=evolving,
        loss_depth=5,
        schedule_after_progress=0.0,  # the paper's schedule: count plateaus from the first epoch
    )
    data = _cd_batches(2)
    recorder = _Recorder()
    trainer = _trainer(max_epochs=6, callbacks=[recorder], limit_val_batches=1)
    trainer.fit(task, DataLoader(data, batch_size=1), DataLoader(data[:1], batch_size=1))
    lrs = [round(lr, 10) for lr, _, _ in recorder.rows]
    # epoch 0 sets the best score, every later epoch is a plateau: x0.1 after epochs 1, 2 and 3, then min_lr
    assert lrs == [1e-3, 1e-3, 1e-4, 1e-5, 1e-6, 1e-6]
    depths = [d for _, d, _ in recorder.rows]
    steps = [s for _, _, s in recorder.rows]
    if evolving:
        assert depths == [0, 0, 10, 20, 30, 30]
        # Adam's state is empty again after each drop (2 steps per epoch otherwise); min_lr stops the drops
        assert steps == [0, 2, 0, 0, 0, 2]
        assert task.lr_drops == 3
    else:
        assert depths == [5] * 6
        assert steps == [0, 2, 4, 6, 8, 10]


class _ScriptedTask(ChangeDetectionTask):
    """Logs ``scores[epoch]`` as its validation score."""

    scores: list[float] = []

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        self.log("val/scripted", self.scores[self.current_epoch])


@pytest.mark.parametrize(
    ("scores", "want_lrs"),
    [
        # Stuck at the start (e.g. "no change" everywhere): no cut, so the network keeps its learning rate.
        ([0.0] * 6, [1e-3] * 6),
        # Moved off the start at epoch 2 (by more than 0.05), then a plateau: cuts after each patience-0 epoch.
        ([0.0, 0.02, 0.3, 0.3, 0.3, 0.3], [1e-3, 1e-3, 1e-3, 1e-3, 1e-4, 1e-5]),
    ],
)
def test_schedule_waits_until_the_monitor_moves_off_its_start(scores: list[float], want_lrs: list[float]) -> None:
    torch.manual_seed(0)
    task = _ScriptedTask("ceecnet_v1", dict(TINY_CD_MODEL), monitor="val/scripted", lr_patience=0)
    task.scores = scores
    data = _cd_batches(2)
    recorder = _Recorder()
    trainer = _trainer(max_epochs=6, callbacks=[recorder], limit_val_batches=1)
    trainer.fit(task, DataLoader(data, batch_size=1), DataLoader(data[:1], batch_size=1))
    assert [round(lr, 10) for lr, _, _ in recorder.rows] == want_lrs
    # The evolving loss follows the cuts: depth 0 until the first one.
    assert [d for _, d, _ in recorder.rows] == [{1e-3: 0, 1e-4: 10, 1e-5: 20}[round(lr, 10)] for lr in want_lrs]


def test_evolving_state_travels_in_checkpoints() -> None:
    task = ChangeDetectionTask("ceecnet_v1", dict(TINY_CD_MODEL))
    task.lr_drops, task.loss.depth, task._last_lr = 2, 20, 1e-5
    checkpoint: dict[str, Any] = {}
    task.on_save_checkpoint(checkpoint)
    restored = ChangeDetectionTask("ceecnet_v1", dict(TINY_CD_MODEL))
    restored.on_load_checkpoint(checkpoint)
    assert (restored.lr_drops, restored.loss.depth, restored._last_lr) == (2, 20, 1e-5)


def test_ignored_pixels_count_in_neither_loss_nor_metrics() -> None:
    torch.manual_seed(0)
    task = ChangeDetectionTask("ceecnet_v1", dict(TINY_CD_MODEL), ignore_index=255)
    batch = {k: v[None] for k, v in _cd_batches(1)[0].items()}
    batch["mask"][:, :8] = 255
    onehot = torch.nn.functional.one_hot(batch["mask"].clamp(max=1), 2).permute(0, 3, 1, 2).float()
    batch["segmentation"] = onehot
    other = dict(batch, segmentation=onehot.clone())
    other["segmentation"][:, :, :8] = 1 - other["segmentation"][:, :, :8]  # targets under ignored pixels
    with torch.no_grad():
        loss_a = task.compute_loss(batch)[0]
        loss_b = task.compute_loss(other)[0]
        task._eval_step(batch, "val")
    assert torch.isclose(loss_a, loss_b)
    assert int(task.val_scores.confmat.sum()) == 32 * 32 - 8 * 32


def test_segmentation_without_multitask_targets_trains_the_segmentation_head() -> None:
    task = SegmentationTask("fractal_resunet", dict(TINY_SEG_MODEL), num_classes=3)
    batch = {"image": torch.rand(2, 3, 32, 32), "mask": torch.randint(0, 3, (2, 32, 32))}
    with pytest.warns(UserWarning, match="no boundary, distance targets"):
        loss, probs, mask = task.compute_loss(batch)
    loss.backward()
    assert probs.shape == (2, 3, 32, 32) and mask is batch["mask"]
    assert torch.isfinite(loss)


def test_classification_task_trains_and_tests_with_tuple_batches() -> None:
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    y = (x[:, 0] > 0).long()
    task = ClassificationTask("mlp", {"in_channels": 4, "hidden": [16]}, num_classes=2, lr=1e-2)
    loader = DataLoader(list(zip(x, y)), batch_size=16)
    trainer = _trainer(max_epochs=5)
    trainer.fit(task, loader, loader)
    trainer.test(task, loader, verbose=False)
    assert task.hparams["task"] == "classification"
    assert task.test_results["accuracy"] is not None and task.test_results["accuracy"] > 0.8
    assert task.test_results["support_0"] + task.test_results["support_1"] == 64


@pytest.mark.parametrize("channels_last", [True, False])
def test_channels_last_layout_of_network_and_inputs(channels_last: bool) -> None:
    task = ChangeDetectionTask("ceecnet_v1", dict(TINY_CD_MODEL), channels_last=channels_last)
    weights = [p for p in task.parameters() if p.dim() == 4 and p.shape[1] > 1 and p.shape[-1] > 1]
    assert weights and all(p.is_contiguous(memory_format=torch.channels_last) == channels_last for p in weights)
    seen = []
    task.model.stem.register_forward_hook(lambda m, args, out: seen.append(args[0]))
    g = torch.Generator().manual_seed(0)
    x1, x2 = torch.rand(1, 3, 32, 32, generator=g), torch.rand(1, 3, 32, 32, generator=g)
    with torch.no_grad():
        out = task.model(x1, x2)
    assert seen and all(t.is_contiguous(memory_format=torch.channels_last) == channels_last for t in seen)
    # Same network values whatever the layout (up to the order of float32 sums).
    reference = ChangeDetectionTask("ceecnet_v1", dict(TINY_CD_MODEL), channels_last=False)
    reference.load_state_dict(task.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(out.segmentation, reference.model(x1, x2).segmentation, atol=1e-4, rtol=1e-4)


def test_channels_last_by_default_on_cpu_trainers_only() -> None:
    task = ChangeDetectionTask("ceecnet_v1", dict(TINY_CD_MODEL))
    weights = [p for p in task.parameters() if p.dim() == 4 and p.shape[1] > 1 and p.shape[-1] > 1]
    assert not any(p.is_contiguous(memory_format=torch.channels_last) for p in weights)  # no device chosen yet
    task.trainer = _trainer()
    task.setup("fit")
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in weights)


def test_collapse_watch_counts_rounds_in_a_row() -> None:
    from mantis.tasks.guards import CollapseWatch, dominant_prediction

    one_class = torch.tensor([[900, 0], [100, 0]])  # everything predicted as class 0
    mixed = torch.tensor([[850, 50], [40, 60]])
    assert dominant_prediction(one_class) == (0, 1.0)
    watch = CollapseWatch(2, ["no_change", "change"])
    assert watch.update(one_class) is None
    assert watch.update(mixed) is None and watch.rounds == 0
    assert watch.update(one_class) is None
    message = watch.update(one_class)
    assert message is not None and "'no_change' for 100.00 % of the validation pixels in 2 validation rounds" in message
    assert watch.update(one_class) is None  # said once per streak
    assert CollapseWatch(0, ["a", "b"]).update(one_class) is None


def test_a_network_that_predicts_one_class_is_named_in_words(capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    task = ChangeDetectionTask("ceecnet_v1", dict(TINY_CD_MODEL), lr=1e-9, collapse_patience=2)
    with torch.no_grad():  # the segmentation logits strongly favour "no change"
        task.model.head.segm_logits.logits[-1].bias.copy_(torch.tensor([50.0, -50.0]))
    data = _cd_batches(2)
    trainer = _trainer(max_epochs=3, limit_val_batches=1)
    trainer.fit(task, DataLoader(data, batch_size=1), DataLoader(data[:1], batch_size=1))
    out = capsys.readouterr().out
    assert out.count("Warning (epoch 1): the network has predicted 'no_change' for 100.00 %") == 1
    assert task.status == "predicts 'no_change' everywhere"
    checkpoint: dict[str, Any] = {}
    task.on_save_checkpoint(checkpoint)
    assert checkpoint["collapse_watch"] == {"rounds": 3}


def test_a_nan_loss_stops_training_in_one_line_naming_the_cause(tmp_path: Any) -> None:
    torch.manual_seed(0)
    data = _cd_batches(4)
    data[2]["image2"][0, 3, 4] = float("nan")  # one bad pixel in the third batch
    task = ChangeDetectionTask("ceecnet_v1", dict(TINY_CD_MODEL))
    checkpoints = lightning.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path, save_last=True)
    trainer = _trainer(max_epochs=1, enable_checkpointing=True, callbacks=[checkpoints])
    with pytest.raises(DivergedError, match=r"loss is NaN at step 2 \(epoch 0\) because the batch's image2 holds NaN"):
        trainer.fit(task, DataLoader(data, batch_size=1))
    assert list(tmp_path.iterdir()) == []  # nothing saved from the bad step on

    clean = ChangeDetectionTask("ceecnet_v1", dict(TINY_CD_MODEL))
    with torch.no_grad():  # weights already diverged: the inputs are fine, the training is not
        clean.model.head.segm_logits.logits[-1].bias.fill_(float("inf"))
    with pytest.raises(DivergedError, match="training diverged; lower the learning rate"):
        clean.training_step({k: v[None] for k, v in _cd_batches(1)[0].items()}, 0)


class _Batches(lightning.LightningDataModule):
    """Training batches, and validation batches unless ``val`` is empty (``[]``, as the data modules give)."""

    def __init__(self, train: list[dict[str, torch.Tensor]], val: list[dict[str, torch.Tensor]]) -> None:
        super().__init__()
        self.train, self.val = train, val

    def train_dataloader(self) -> Any:
        return DataLoader(self.train, batch_size=1)

    def val_dataloader(self) -> Any:
        return DataLoader(self.val, batch_size=1) if self.val else []


def test_without_a_validation_split_the_rate_is_constant_and_said_once(capsys: pytest.CaptureFixture[str]) -> None:
    import warnings

    torch.manual_seed(0)
    data = _cd_batches(2)
    task = ChangeDetectionTask("ceecnet_v1", dict(TINY_CD_MODEL), lr=2e-3)
    trainer = _trainer(max_epochs=3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(task, datamodule=_Batches(data, []))
    assert not [w for w in caught if "ReduceLROnPlateau conditioned on metric" in str(w.message)]
    assert trainer.lr_scheduler_configs == [] and task.current_lr() == 2e-3
    said = [line for line in capsys.readouterr().out.splitlines() if "No validation split" in line]
    assert said == [
        "No validation split: the learning rate stays at 0.002 and the last weights are kept "
        "(the schedule and the best checkpoint need validation scores)."
    ]

    validated = ChangeDetectionTask("ceecnet_v1", dict(TINY_CD_MODEL))
    trainer = _trainer(max_epochs=1, limit_val_batches=1)
    trainer.fit(validated, datamodule=_Batches(data, data[:1]))
    assert len(trainer.lr_scheduler_configs) == 1 and trainer.lr_scheduler_configs[0].monitor == validated.monitor
