"""The numbers of a report: metric tables from a run's ``*_metrics.json`` or ``mantis evaluate``'s JSON.

A run folder (``mantis fit``/``test``) holds ``test_metrics.json`` and ``validate_metrics.json`` whose
``metrics`` are flat keys such as ``f1_change`` or ``object_tp_change``; ``mantis evaluate`` writes
``evaluation.json`` with ``pixel`` keys of the same form and ``objects`` per class. Both become one
:class:`MetricsTable`: a few scalars (loss, accuracy) and a row per class with a column per metric.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mantis.io.errors import DataError

__all__ = ["MetricsTable", "evaluation_table", "read_json", "run_tables"]

#: Per-class metrics in the order of the table's columns (longest names first where one is a prefix).
PER_CLASS = (
    "precision",
    "recall",
    "f1",
    "iou",
    "mcc",
    "support",
    "object_precision",
    "object_recall",
    "object_f1",
    "object_iou",
    "object_tp",
    "object_fp",
    "object_fn",
)
# ``mantis evaluate``'s object keys and the run folder's names for them
_EVALUATION_OBJECT_KEYS = {
    "precision": "object_precision",
    "recall": "object_recall",
    "f1": "object_f1",
    "mean_matched_iou": "object_iou",
    "tp": "object_tp",
    "fp": "object_fp",
    "fn": "object_fn",
}
# the stages of a run folder, in the order they are shown
RUN_STAGES = (("test", "test_metrics.json"), ("validate", "validate_metrics.json"))

Number = float | int | None


@dataclass
class MetricsTable:
    """One stage's scores: scalars and a class x metric table.

    Attributes:
        title: What was scored (``test split``, ``evaluation of written maps``).
        scalars: Metrics that belong to no class (loss, accuracy).
        columns: Per-class metric names, in :data:`PER_CLASS` order.
        rows: ``(class or "macro", {metric: value})``.
        note: A line about where the numbers come from.
    """

    title: str
    scalars: dict[str, Number] = field(default_factory=dict)
    columns: list[str] = field(default_factory=list)
    rows: list[tuple[str, dict[str, Number]]] = field(default_factory=list)
    note: str = ""


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; DataError naming the file when it is not one."""
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(path, f"cannot read it as JSON ({error})") from None
    if not isinstance(record, dict):
        raise DataError(path, "holds no JSON object")
    return record


def _split_key(key: str) -> tuple[str, str] | None:
    """``f1_change`` -> ``("f1", "change")``; ``None`` for a key of no class (``loss``)."""
    for metric in sorted(PER_CLASS, key=len, reverse=True):  # object_f1 before f1
        if key.startswith(metric + "_") and len(key) > len(metric) + 1:
            return metric, key[len(metric) + 1 :]
    return None


def _number(value: Any) -> Number:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def table_from_flat(title: str, metrics: dict[str, Any], note: str = "") -> MetricsTable:
    """A table from flat keys (``f1_change``, ``object_tp_change``, ``loss``): classes in order of appearance,
    ``macro`` last."""
    table = MetricsTable(title, note=note)
    by_class: dict[str, dict[str, Number]] = {}
    for key, value in metrics.items():
        parts = _split_key(key)
        if parts is None:
            table.scalars[key] = _number(value)
        else:
            by_class.setdefault(parts[1], {})[parts[0]] = _number(value)
    present = {metric for scores in by_class.values() for metric in scores}
    table.columns = [metric for metric in PER_CLASS if metric in present]
    classes = [name for name in by_class if name != "macro"] + (["macro"] if "macro" in by_class else [])
    table.rows = [(name, by_class[name]) for name in classes]
    return table


def run_tables(run_dir: Path) -> list[MetricsTable]:
    """The tables of a run folder's ``test_metrics.json`` and ``validate_metrics.json`` (those present)."""
    tables = []
    for stage, name in RUN_STAGES:
        path = run_dir / name
        if not path.is_file():
            continue
        record = read_json(path)
        metrics = record.get("metrics")
        if not isinstance(metrics, dict):
            raise DataError(path, "has no 'metrics' object (not written by mantis test/validate?)")
        checkpoint = record.get("checkpoint")
        note = f"checkpoint {Path(str(checkpoint)).name}" if checkpoint else ""
        tables.append(table_from_flat(f"{stage} split", metrics, note))
    return tables


def evaluation_table(path: Path) -> MetricsTable:
    """The table of ``mantis evaluate``'s JSON: pixel scores and, per class, the object scores."""
    record = read_json(path)
    pixel = record.get("pixel")
    if not isinstance(pixel, dict):
        raise DataError(path, "has no 'pixel' object (not written by mantis evaluate?)")
    flat: dict[str, Any] = dict(pixel)
    objects = record.get("objects") or {}
    for name, scores in objects.items():
        if isinstance(scores, dict):
            for key, column in _EVALUATION_OBJECT_KEYS.items():
                flat[f"{column}_{name}"] = scores.get(key)
    note = f"{record.get('files', '?')} files scored against {record.get('labels', '?')}"
    if isinstance(objects, dict) and "iou_threshold" in objects:
        note += f"; objects matched at IoU >= {objects['iou_threshold']}"
    return table_from_flat("evaluation of the written maps", flat, note)


def class_names_of(tables: list[MetricsTable]) -> list[str]:
    """The class names a table lists (rows other than ``macro``), from the first table that has some."""
    for table in tables:
        names = [name for name, _ in table.rows if name != "macro"]
        if names:
            return names
    return []
