"""``mantis report``: one self-contained HTML page of a run folder or a prediction folder.

- A run folder (``mantis fit``: ``config.yaml``, ``metrics.csv``, ``test_metrics.json`` ...) gives the metric
  tables of its test and validation scores and the training curves (drawn from ``metrics.csv``).
- A prediction folder (``mantis predict``: ``*_class`` maps, ``*_prob`` rasters, and ``evaluation.json`` when
  ``mantis evaluate`` scored it) gives the evaluation table and the samples: a swipe between the two dates
  (or the image and its prediction) with the change overlay and TP/FP/FN colours against the reference.

A run folder shows samples too: those of the prediction folder given as ``predictions``, else its
checkpoint on the first samples of its test split (:mod:`mantis.report_run_samples`). The page is written
atomically; nothing is left under the output's name if anything fails.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from mantis.data.masks import MaskDecoder
from mantis.io.errors import DataError
from mantis.io.folders import files_by_stem, list_images, writable_folder
from mantis.report_images import file_data_uri
from mantis.report_metrics import MetricsTable, class_names_of, evaluation_table, read_json, run_tables
from mantis.report_page import Page, render_page
from mantis.report_samples import SampleView, choose_samples, prediction_maps, sample_view

__all__ = ["RUN_FILES", "build_report", "write_report"]

#: Files that mark a run folder.
RUN_FILES = ("config.yaml", "metrics.csv", "test_metrics.json", "validate_metrics.json")
EVALUATION_FILE = "evaluation.json"


def is_run_folder(folder: Path) -> bool:
    """Whether ``folder`` holds what ``mantis fit``/``test`` write."""
    return any((folder / name).is_file() for name in RUN_FILES)


def _curves(run_dir: Path) -> str | None:
    """The training curves as a PNG data URI: drawn afresh from ``metrics.csv``, else the run's PNG."""
    from mantis.plots import plot_training_curves

    csv_path = run_dir / "metrics.csv"
    if csv_path.is_file():
        with tempfile.TemporaryDirectory() as scratch:
            try:
                png = plot_training_curves(csv_path, Path(scratch) / "curves.png")
            except (ValueError, KeyError) as error:
                raise DataError(csv_path, f"cannot read it as a training log ({error})") from None
            return file_data_uri(png)
    png = run_dir / "training_curves.png"
    return file_data_uri(png) if png.is_file() else None


def _run_facts(run_dir: Path) -> list[tuple[str, str]]:
    for name in ("test_metrics.json", "validate_metrics.json"):
        path = run_dir / name
        if path.is_file():
            record = read_json(path)
            return [(key, str(record[key])) for key in ("task", "model") if record.get(key)]
    return []


def _label_folder(pred_dir: Path, labels: Path | None, notes: list[str]) -> Path | None:
    """The reference masks: ``labels``, else those ``mantis evaluate`` scored against (when still there)."""
    if labels is not None:
        if not labels.is_dir():
            raise DataError(labels, "no such folder")
        return labels
    evaluation = pred_dir / EVALUATION_FILE
    if evaluation.is_file():
        recorded = read_json(evaluation).get("labels")
        if recorded and Path(recorded).is_dir():
            return Path(recorded)
        if recorded:  # evaluate was run elsewhere, or the masks moved: say so rather than guess
            notes.append(f"{evaluation} names the masks {recorded}, not found from here: pass --labels")
    return None


def _classes(
    pred_dir: Path, num_classes: int | None, class_names: Sequence[str] | None, tables: list[MetricsTable]
) -> tuple[int, list[str]]:
    names = list(class_names) if class_names else []
    if not names and (pred_dir / EVALUATION_FILE).is_file():
        names = [str(n) for n in read_json(pred_dir / EVALUATION_FILE).get("class_names") or []]
    names = names or class_names_of(tables)
    count = num_classes if num_classes is not None else len(names) or 2  # 0 is refused, not taken for 'unset'
    if count < 1:
        raise ValueError(f"--num-classes {count}: give at least 1")
    if names and len(names) != count:
        raise ValueError(f"{len(names)} class names for {count} classes")
    return count, names or [f"class_{k}" for k in range(count)]


def _samples(
    pred_dir: Path,
    *,
    chosen: int | Sequence[str],
    inputs: Sequence[Path],
    labels: Path | None,
    decoder: MaskDecoder,
    max_side: int,
    notes: list[str],
) -> list[SampleView]:
    maps = prediction_maps(pred_dir)
    names = choose_samples(maps, chosen, pred_dir)
    label_files = files_by_stem(list_images(labels)) if labels is not None else {}
    views = []
    for name in names:
        label = label_files.get(name)
        if labels is not None and label is None:
            notes.append(f"{name}: no reference mask in {labels}")
        views.append(sample_view(name, maps[name], inputs=inputs, label=label, decoder=decoder, max_side=max_side))
    if labels is None and views:
        notes.append("no reference masks: pass --labels (or run mantis evaluate first) for TP/FP/FN colours")
    if not inputs and views:
        notes.append("no input images: pass --inputs (the folders given to mantis predict) for the swipe of the dates")
    return views


def build_report(
    source: str | os.PathLike[str],
    *,
    predictions: str | os.PathLike[str] | None = None,
    inputs: Sequence[str | os.PathLike[str]] = (),
    labels: str | os.PathLike[str] | None = None,
    samples: int | Sequence[str] = 4,
    num_classes: int | None = None,
    class_names: Sequence[str] | None = None,
    mask_mapping: dict[int, int] | None = None,
    ignore_index: int = 255,
    max_side: int = 768,
    title: str | None = None,
) -> Page:
    """Gather what the page of ``source`` (a run folder or a prediction folder) shows.

    Args:
        source: A run folder or a prediction folder.
        predictions: The prediction folder whose samples a run folder's page shows.
        inputs: One folder (segmentation) or two (the dates of change detection) given to ``mantis predict``,
            or the input file(s) of a single prediction.
        labels: Reference masks (default: those of the prediction folder's ``evaluation.json``).
        samples: How many samples (the first in name order), or their names.
        num_classes: K (default: from the class names, else 2).
        class_names: K names (default: from ``evaluation.json`` or the run's metrics).
        mask_mapping: ``{stored value: class}`` of the reference masks (default: 0/1 and 0/255 for K = 2).
        ignore_index: Value of unlabelled reference pixels after decoding.
        max_side: Largest side of a sample's pictures in pixels (rasters are reduced to fit).
        title: Heading (default: the folder's name).

    Raises:
        DataError: ``source`` is neither kind of folder, or a file it needs is missing or unreadable.
    """
    folder = Path(source)
    if not folder.is_dir():
        raise DataError(folder, "no such folder")
    page = Page(title or f"Mantis report: {folder.resolve().name}", facts=[("source", str(folder))])
    pred_dir: Path | None = Path(predictions) if predictions is not None else None
    if is_run_folder(folder):
        for flag, value in (
            ("--inputs", inputs),
            ("--labels", labels),
            ("--num-classes", num_classes),
            ("--class-names", class_names),
            ("--mask-mapping", mask_mapping),
        ):
            if value and pred_dir is None:  # the run's own samples take all of these from its config
                raise ValueError(f"{flag}: applies to a prediction folder; with a run folder give --predictions DIR")
        page.facts += _run_facts(folder)
        page.tables += run_tables(folder)
        page.curves = _curves(folder)
        if page.curves is None:
            page.notes.append(f"no training curves: {folder} has no metrics.csv")
        if pred_dir is None and samples != 0:
            from mantis.report_run_samples import run_test_samples

            page.samples, names, notes = run_test_samples(folder, samples, max_side=max_side)
            page.notes += notes
            if names:
                page.facts.append(("classes", ", ".join(names)))
    elif pred_dir is None:
        pred_dir = folder
    if pred_dir is not None:
        if not pred_dir.is_dir():
            raise DataError(pred_dir, "no such folder")
        if (pred_dir / EVALUATION_FILE).is_file():
            page.tables.append(evaluation_table(pred_dir / EVALUATION_FILE))
        count, names = _classes(pred_dir, num_classes, class_names, page.tables)
        page.facts.append(("classes", ", ".join(names)))
        decoder = MaskDecoder(count, mask_mapping, ignore_index)
        page.samples = _samples(
            pred_dir,
            chosen=samples,
            inputs=[Path(p) for p in inputs],
            labels=_label_folder(pred_dir, Path(labels) if labels is not None else None, page.notes),
            decoder=decoder,
            max_side=max_side,
            notes=page.notes,
        )
    return page


def write_report(page: Page, output: str | os.PathLike[str]) -> Path:
    """Write ``page`` as HTML to ``output`` atomically (a temporary file renamed when complete)."""
    from mantis import __version__

    path = Path(output)
    if path.is_dir():
        raise DataError(path, "is a folder; give the HTML file to write")
    text = render_page(page, f"mantis {__version__}")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def check_output(output: str | os.PathLike[str]) -> None:
    """Refuse, before any work, an output that is a folder or whose folder cannot be written."""
    path = Path(output)
    if path.is_dir():
        raise DataError(path, "is a folder; give the HTML file to write")
    writable_folder(path.parent)
