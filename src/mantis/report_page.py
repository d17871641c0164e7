"""The report's HTML: one self-contained page (inline CSS and JavaScript, images as data URIs).

The page needs no server and no network: open the file in any browser. Each sample has a swipe (a range
input and a pointer drag move the line; the right picture is clipped with ``clip-path``), an overlay
chooser and an opacity slider.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

from mantis.report_images import COMPARISON_COLOURS
from mantis.report_metrics import MetricsTable, Number
from mantis.report_samples import SampleView

__all__ = ["Page", "render_page"]

CSS = """
:root { --ink: #1d1d1f; --muted: #6e6e73; --line: #d2d2d7; --accent: #0b63ce; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink);
       margin: 0 auto; padding: 24px; max-width: 1100px; background: #fbfbfd; }
h1 { font-size: 1.6em; margin: 0 0 4px; } h2 { margin-top: 32px; border-bottom: 1px solid var(--line); }
.meta, .note, figcaption .files { color: var(--muted); font-size: 0.9em; }
table { border-collapse: collapse; margin: 8px 0 4px; font-variant-numeric: tabular-nums; }
th, td { padding: 4px 10px; border-bottom: 1px solid var(--line); text-align: right; }
th:first-child, td:first-child { text-align: left; }
tr.macro td { font-weight: 600; }
.scalars span { margin-right: 18px; }
.curves img { max-width: 100%; border: 1px solid var(--line); background: white; }
.sample { margin: 24px 0; }
.swipe { position: relative; width: 100%; overflow: hidden; background: #303030; cursor: ew-resize;
         touch-action: none; user-select: none; }
.swipe img { position: absolute; inset: 0; width: 100%; height: 100%; image-rendering: pixelated;
             pointer-events: none; }
.swipe .overlay { opacity: 0.6; }
.swipe .hidden { display: none; }
.swipe .divider { position: absolute; top: 0; bottom: 0; width: 2px; margin-left: -1px; background: white;
                  box-shadow: 0 0 3px black; pointer-events: none; }
.swipe .tag { position: absolute; top: 6px; padding: 1px 6px; background: rgba(0,0,0,.6); color: white;
              font-size: 0.8em; border-radius: 3px; pointer-events: none; }
.swipe .tag.left { left: 6px; } .swipe .tag.right { right: 6px; }
.controls { display: flex; gap: 18px; flex-wrap: wrap; align-items: center; margin-top: 6px; }
.legend span { display: inline-block; width: 12px; height: 12px; margin: 0 4px 0 12px; vertical-align: -1px; }
"""

JS = """
(function () {
  "use strict";
  function setSwipe(sample, percent) {
    var value = Math.max(0, Math.min(100, Number(percent)));
    sample.querySelectorAll("img.right, img.follow").forEach(function (img) {
      img.style.clipPath = "inset(0 0 0 " + value + "%)";
    });
    var divider = sample.querySelector(".divider");
    if (divider) { divider.style.left = value + "%"; }
    var range = sample.querySelector("input.swipe-range");
    if (range && Number(range.value) !== value) { range.value = String(value); }
  }
  function showOverlay(sample, key) {
    sample.querySelectorAll("img.overlay").forEach(function (img) {
      img.classList.toggle("hidden", img.dataset.key !== key);
    });
  }
  document.querySelectorAll("figure.sample").forEach(function (sample) {
    var range = sample.querySelector("input.swipe-range");
    var view = sample.querySelector(".swipe");
    if (range) {
      range.addEventListener("input", function () { setSwipe(sample, range.value); });
      setSwipe(sample, range.value);
      var dragging = false;
      var follow = function (event) {
        var box = view.getBoundingClientRect();
        setSwipe(sample, 100 * (event.clientX - box.left) / box.width);
      };
      view.addEventListener("pointerdown", function (event) {
        dragging = true;
        try { view.setPointerCapture(event.pointerId); } catch (ignored) { /* a synthetic pointer */ }
        follow(event);
      });
      view.addEventListener("pointermove", function (event) { if (dragging) { follow(event); } });
      view.addEventListener("pointerup", function () { dragging = false; });
    }
    var chooser = sample.querySelector("select.overlay-select");
    if (chooser) {
      chooser.addEventListener("change", function () { showOverlay(sample, chooser.value); });
      showOverlay(sample, chooser.value);
    }
    var opacity = sample.querySelector("input.opacity-range");
    if (opacity) {
      var apply = function () {
        sample.querySelectorAll("img.overlay").forEach(function (img) {
          img.style.opacity = String(opacity.value / 100);
        });
      };
      opacity.addEventListener("input", apply);
      apply();
    }
  });
})();
"""


@dataclass
class Page:
    """Everything the page shows.

    Attributes:
        title: The heading.
        facts: ``(label, value)`` lines under the heading (source, model, task, ...).
        tables: Metric tables.
        curves: A PNG data URI of the training curves, or ``None``.
        samples: The samples' pictures.
        notes: Lines saying what is missing and why (no reference, no curves, ...).
    """

    title: str
    facts: list[tuple[str, str]] = field(default_factory=list)
    tables: list[MetricsTable] = field(default_factory=list)
    curves: str | None = None
    samples: list[SampleView] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _value(value: Number) -> str:
    if value is None:
        return "&ndash;"
    if isinstance(value, int) or float(value).is_integer() and abs(value) >= 10:
        return f"{int(value)}"
    return f"{value:.3f}"


def _grid(kind: str, columns: list[str], rows: list[tuple[str, dict[str, Number]]]) -> str:
    """One class x metric HTML table; ``kind`` (pixels or objects) heads the class column."""
    names = [c.removeprefix("object_").replace("_", " ") for c in columns]
    head = "".join(f"<th>{escape(n)}</th>" for n in [kind, *names])
    body = "".join(
        f'<tr class="{"macro" if name == "macro" else "class"}"><td>{escape(name)}</td>'
        + "".join(f"<td>{_value(scores.get(c))}</td>" for c in columns)
        + "</tr>"
        for name, scores in rows
    )
    return f'<table class="metrics {kind}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _table(table: MetricsTable) -> str:
    parts = [f"<h3>{escape(table.title)}</h3>"]
    if table.note:
        parts.append(f'<p class="note">{escape(table.note)}</p>')
    if table.scalars:
        items = "".join(f"<span>{escape(k)} <b>{_value(v)}</b></span>" for k, v in table.scalars.items())
        parts.append(f'<p class="scalars">{items}</p>')
    pixel = [c for c in table.columns if not c.startswith("object_")]
    objects = [c for c in table.columns if c.startswith("object_")]
    for kind, columns in (("pixels", pixel), ("objects", objects)):
        rows = [(name, scores) for name, scores in table.rows if any(scores.get(c) is not None for c in columns)]
        if columns and rows:
            parts.append(_grid(kind, columns, rows))
    return "\n".join(parts)


def _counts_text(counts: dict[str, int]) -> str:
    if not counts:
        return "no reference"
    tp, fp, fn = counts["tp"], counts["fp"], counts["fn"]
    f1 = f"{2 * tp / (2 * tp + fp + fn):.3f}" if tp + fp + fn else "undefined"
    return f"pixels TP {tp}, FP {fp}, FN {fn}; F1 {f1}"


def _sample(sample: SampleView) -> str:
    height, width = sample.size
    layers = [f'<img class="left" alt="{escape(sample.left.label)}" src="{sample.left.uri}">']
    tags = [f'<span class="tag left">{escape(sample.left.label)}</span>']
    if sample.right is not None:
        layers.append(f'<img class="right" alt="{escape(sample.right.label)}" src="{sample.right.uri}">')
        tags.append(f'<span class="tag right">{escape(sample.right.label)}</span>')
    # an image beside its prediction: overlays stay on the prediction's side, so the left stays the plain image
    overlay = "overlay follow" if sample.kind == "image" else "overlay"
    layers += [
        f'<img class="{overlay}" data-key="{escape(o.key)}" alt="{escape(o.label)}" src="{o.uri}">'
        for o in sample.overlays
    ]
    divider = '<div class="divider"></div>' if sample.right is not None else ""
    controls = []
    if sample.right is not None:
        controls.append('<label>swipe <input class="swipe-range" type="range" min="0" max="100" value="50"></label>')
    if sample.overlays:
        options = "".join(f'<option value="{escape(o.key)}">{escape(o.label)}</option>' for o in sample.overlays)
        controls.append(
            f'<label>overlay <select class="overlay-select">{options}<option value="">none</option></select></label>'
        )
        controls.append(
            '<label>opacity <input class="opacity-range" type="range" min="0" max="100" value="60"></label>'
        )
    files = "; ".join(f"{escape(role)}: {escape(path)}" for role, path in sample.files.items())
    return (
        f'<figure class="sample" data-name="{escape(sample.name)}" data-kind="{sample.kind}">'
        f"<figcaption><b>{escape(sample.name)}</b> &middot; {escape(_counts_text(sample.counts))}"
        f'<div class="files">{files}</div></figcaption>'
        f'<div class="swipe" style="aspect-ratio: {width} / {height}; max-width: {max(width, 512)}px">'
        + "".join(layers)
        + divider
        + "".join(tags)
        + f'</div><div class="controls">{"".join(controls)}</div></figure>'
    )


def _legend() -> str:
    names = {"tp": "TP: found", "fp": "FP: false alarm / wrong class", "fn": "FN: missed"}
    return (
        '<p class="legend">'
        + "".join(
            f'<span style="background: rgb{COMPARISON_COLOURS[key]}"></span>{names[key]}' for key in ("tp", "fp", "fn")
        )
        + "</p>"
    )


def render_page(page: Page, generator: str) -> str:
    """The whole HTML document of ``page``; ``generator`` names the program that wrote it."""
    facts = "".join(f"<div>{escape(label)}: {escape(value)}</div>" for label, value in page.facts)
    sections = [f'<header><h1>{escape(page.title)}</h1><div class="meta">{facts}</div></header>']
    if page.notes:
        sections.append('<ul class="notes">' + "".join(f"<li>{escape(n)}</li>" for n in page.notes) + "</ul>")
    if page.tables:
        sections.append('<section id="metrics"><h2>Metrics</h2>' + "\n".join(map(_table, page.tables)) + "</section>")
    if page.curves:
        sections.append(
            '<section id="curves" class="curves"><h2>Training curves</h2>'
            f'<img alt="training curves" src="{page.curves}"></section>'
        )
    if page.samples:
        sections.append(
            '<section id="samples"><h2>Samples</h2>'
            "<p>Drag the picture or move the swipe slider to compare the two sides; choose the overlay below each.</p>"
            + _legend()
            + "\n".join(map(_sample, page.samples))
            + "</section>"
        )
    body = "\n".join(sections)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta name="generator" content="{escape(generator)}">\n'
        f"<title>{escape(page.title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{body}\n"
        f"<script>{JS}</script>\n</body>\n</html>\n"
    )
