"""Checkpoints that survive a kill: written atomically inside their folder, with every random state.

- :class:`AtomicCheckpointIO` writes ``name.tmp-<pid>`` beside the final file, flushes it to disk and renames
  it over the final name: a kill at any moment leaves either the previous checkpoint or the new one, never a
  truncated file (Lightning's own writer makes its temporary file in ``$TMPDIR``, and moving it from another
  file system is a copy that a kill can cut short).
- :func:`rng_states` / :func:`restore_rng_states`: the states of Python's, NumPy's and torch's generators,
  as plain integers and tensors (checkpoints stay loadable with ``weights_only``), so that a resumed run
  draws what the uninterrupted one drew.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import lightning
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torchmetrics import Metric

from mantis.data.sampling import epoch_batches_done
from mantis.io.errors import DataError

__all__ = [
    "AtomicCheckpointIO",
    "StepCheckpoint",
    "metric_state",
    "restore_metric_state",
    "restore_rng_states",
    "rng_states",
]


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` to a temporary file in the checkpoint's own folder, ``fsync``, then rename."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        """Write ``checkpoint`` to ``path`` atomically (local paths; others go through Lightning's writer)."""
        if "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        final = Path(path)
        final.parent.mkdir(parents=True, exist_ok=True)
        temporary = final.with_name(f".{final.name}.tmp-{os.getpid()}")
        try:
            with open(temporary, "wb") as handle:
                torch.save(checkpoint, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, final)
        except OSError as error:  # a full disk, a folder made read-only: one line, the previous file kept
            raise DataError(final, f"cannot write the checkpoint ({error.strerror or error})") from None
        finally:
            temporary.unlink(missing_ok=True)
        _sync_folder(final.parent)


class StepCheckpoint(ModelCheckpoint):
    """``last.ckpt`` every ``every_n_train_steps`` steps within epochs, so that a kill loses at most that many.

    Not at an epoch's last batch: the epoch-end checkpoint follows once validation has run (a checkpoint taken
    between the two would resume without that validation).
    """

    def __init__(self, dirpath: str, every_n_train_steps: int) -> None:
        super().__init__(
            dirpath=dirpath,
            filename="last",
            every_n_train_steps=every_n_train_steps,
            save_top_k=1,
            enable_version_counter=False,
        )

    def on_train_batch_end(self, trainer: lightning.Trainer, *args: Any, **kwargs: Any) -> None:
        """Save as :class:`ModelCheckpoint` does, except after the epoch's last batch."""
        if epoch_batches_done(trainer)[1]:
            return
        super().on_train_batch_end(trainer, *args, **kwargs)


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def rng_states() -> dict[str, Any]:
    """The states of Python's, NumPy's and torch's (CPU and CUDA) global generators."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)  # type: ignore[misc]
    states: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": [name, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    """Set the generators to what :func:`rng_states` saved (missing parts are left as they are)."""
    if "python" in states:
        version, internal, gauss = states["python"]
        random.setstate((int(version), tuple(int(v) for v in internal), gauss))
    if "numpy" in states:
        name, keys, pos, has_gauss, cached = states["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.int64).astype(np.uint32), pos, has_gauss, cached))
    if "torch" in states:
        torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def metric_state(metric: Metric) -> dict[str, Any]:
    """The accumulated state of a torchmetrics metric (tensors), e.g. the training scores of an unfinished epoch."""
    return {
        "values": {name: _copy(value) for name, value in metric.metric_state.items()},
        "updates": int(metric.update_count),
    }


def _copy(value: torch.Tensor | list[torch.Tensor]) -> torch.Tensor | list[torch.Tensor]:
    return [v.detach().clone() for v in value] if isinstance(value, list) else value.detach().clone()


def restore_metric_state(metric: Metric, state: dict[str, Any]) -> None:
    """Put back what :func:`metric_state` saved."""
    for name, value in state["values"].items():
        current = getattr(metric, name)
        setattr(metric, name, value.to(current.device) if isinstance(current, torch.Tensor) else value)
    metric._update_count = int(state["updates"])  # so that compute() does not warn of no updates
