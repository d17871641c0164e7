"""``mantis report``: the page's contents from run and prediction folders, user errors, and the page in a real
headless browser (Debian's chromium; ``make browser`` installs it, the browser test skips without it)."""

from __future__ import annotations

import base64
import html
import io
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from mantis.cli import main
from mantis.data.synthetic import synthetic_change_pair, synthetic_segmentation_scene
from mantis.io.raster import write_image
from mantis.models import registry

SIZE = 48


def _report(argv: list[str]) -> int:
    return main(["report", *argv])


def _write_change_folders(root: Path, count: int = 2) -> dict[str, Any]:
    """Dates, reference masks and class maps (the reference with a block added and a block removed)."""
    truth, predicted = {}, {}
    for index in range(count):
        name = f"tile{index}"
        scene = synthetic_change_pair(index, size=SIZE)
        write_image(root / "A" / f"{name}.png", (scene["image1"] * 255).astype(np.uint8))
        write_image(root / "B" / f"{name}.png", (scene["image2"] * 255).astype(np.uint8))
        write_image(root / "label" / f"{name}.png", scene["mask"] * 255)  # stored 0/255, as LEVIR-CD
        guess = scene["mask"].copy()
        guess[:10, :10] = 1
        guess[30:, 30:] = 0
        write_image(root / "pred" / f"{name}_class.png", guess)
        prob = np.stack([1 - guess * 0.9, guess * 0.9])
        write_image(root / "pred" / f"{name}_prob.png", np.round(prob * 254).astype(np.uint8))
        truth[name], predicted[name] = scene["mask"].astype(np.int64), guess.astype(np.int64)
    return {"truth": truth, "predicted": predicted}


@pytest.fixture
def change_folders(tmp_path: Path) -> dict[str, Any]:
    return {"root": tmp_path, **_write_change_folders(tmp_path)}


def _caption_counts(page: str, name: str) -> tuple[int, int, int]:
    found = re.search(rf"<b>{name}</b> &middot; pixels TP (\d+), FP (\d+), FN (\d+)", page)
    assert found, f"no counts for {name}"
    tp, fp, fn = found.groups()
    return int(tp), int(fp), int(fn)


def _self_contained(page: str) -> None:
    """Every picture is inline and nothing is fetched: no server, no network."""
    sources = re.findall(r'src="([^"]*)"', page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r"<link|href=|@import|url\(|https?://", page)


def test_prediction_folder_of_change_detection(change_folders: dict[str, Any]) -> None:
    root = change_folders["root"]
    assert main(["evaluate", str(root / "pred"), str(root / "label"), "--no-progress"]) == 0
    out = root / "report.html"
    code = _report([str(root / "pred"), "--inputs", str(root / "A"), str(root / "B"), "-o", str(out)])
    assert code == 0
    page = out.read_text()
    _self_contained(page)
    evaluation = json.loads((root / "pred" / "evaluation.json").read_text())
    assert f"<td>{evaluation['pixel']['f1_class_1']:.3f}</td>" in page  # the metrics table shows the JSON's scores
    assert page.count('<figure class="sample"') == 2 and page.count('data-kind="pair"') == 2
    for name, truth in change_folders["truth"].items():
        predicted = change_folders["predicted"][name]
        expected = (
            int(((predicted == 1) & (truth == 1)).sum()),
            int(((predicted == 1) & (truth == 0)).sum()),
            int(((predicted == 0) & (truth == 1)).sum()),
        )
        assert _caption_counts(page, name) == expected
    # the reference folder came from evaluation.json; every overlay is offered
    for key in ("comparison", "prediction", "reference", "probability"):
        assert f'<option value="{key}">' in page


def test_chosen_samples_by_name_and_count(change_folders: dict[str, Any]) -> None:
    root = change_folders["root"]
    out = root / "one.html"
    argv = [str(root / "pred"), "--labels", str(root / "label"), "-o", str(out)]
    assert _report([*argv, "--samples", "tile1"]) == 0
    page = out.read_text()
    assert re.findall(r'<figure class="sample" data-name="([^"]+)"', page) == ["tile1"]
    assert 'data-kind="maps"' in page  # no inputs: reference | prediction
    assert _report([*argv, "--samples", "1"]) == 0
    assert re.findall(r'<figure class="sample" data-name="([^"]+)"', out.read_text()) == ["tile0"]


def test_masks_recorded_by_evaluate_relative_to_where_it_ran(
    change_folders: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = change_folders["root"]
    monkeypatch.chdir(root)
    assert main(["evaluate", "pred", "label", "--no-progress"]) == 0  # records the relative "label"
    assert _report(["pred", "-o", "here.html"]) == 0
    assert '<option value="comparison">' in (root / "here.html").read_text()
    (root / "elsewhere").mkdir()
    monkeypatch.chdir(root / "elsewhere")
    assert _report([str(root / "pred"), "-o", "there.html"]) == 0
    page = (root / "elsewhere" / "there.html").read_text()
    assert '<option value="comparison">' not in page and "names the masks label, not found from here" in page


def _write_segmentation_folders(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """An image, its three-class mask and a class map with wrong classes, false alarms and misses."""
    scene = synthetic_segmentation_scene(3, size=SIZE)
    truth = scene["mask"].astype(np.int64)
    predicted = truth.copy()
    predicted[:12] = 2  # wrong class on buildings, false road on background
    predicted[40:] = 0  # missed buildings and roads
    write_image(root / "images" / "scene.png", (scene["image"] * 255).astype(np.uint8))
    write_image(root / "masks" / "scene.png", truth.astype(np.uint8))
    write_image(root / "pred" / "scene_class.png", predicted.astype(np.uint8))
    return truth, predicted


def test_prediction_folder_of_segmentation(tmp_path: Path) -> None:
    truth, predicted = _write_segmentation_folders(tmp_path)
    out = tmp_path / "seg.html"
    argv = [str(tmp_path / "pred"), "--inputs", str(tmp_path / "images"), "--labels", str(tmp_path / "masks")]
    assert _report([*argv, "--class-names", "background", "building", "road", "-o", str(out)]) == 0
    page = out.read_text()
    _self_contained(page)
    assert 'data-kind="image"' in page and "image + prediction" in page
    keep = truth != 255
    expected = (
        int((keep & (predicted == truth) & (truth != 0)).sum()),
        int((keep & (predicted != 0) & (predicted != truth)).sum()),
        int((keep & (predicted == 0) & (truth != 0)).sum()),
    )
    assert _caption_counts(page, "scene") == expected
    assert "background, building, road" in page


def _write_run_folder(run: Path) -> None:
    """What ``mantis fit --test_after_fit true`` leaves: test_metrics.json and Lightning's metrics.csv."""
    run.mkdir(parents=True)
    metrics = {"loss": 0.25, "accuracy": 0.9, "f1_no change": 0.95, "f1_change": 0.625, "f1_macro": 0.7875}
    metrics |= {"object_tp_change": 7, "object_f1_change": 0.5}
    record = {"stage": "test", "task": "change_detection", "model": "fractal_resnet_cd", "metrics": metrics}
    (run / "test_metrics.json").write_text(json.dumps(record))
    rows = ["epoch,step,train/loss_epoch,val/loss,val/f1_change"]
    for e in range(3):
        rows += [f"{e},{8 * e + 7},{1 / (e + 1)},,", f"{e},{8 * e + 7},,{1.2 / (e + 1)},{0.1 * e}"]
    (run / "metrics.csv").write_text("\n".join(rows) + "\n")


def test_run_folder_metrics_and_curves(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "cd" / "version_0"
    _write_run_folder(run)
    out = tmp_path / "run.html"
    assert _report([str(run), "-o", str(out), "--samples", "0"]) == 0
    page = out.read_text()
    _self_contained(page)
    assert "fractal_resnet_cd" in page and "change_detection" in page
    pixels = re.search(r'<table class="metrics pixels">(.*?)</table>', page, re.S)
    objects = re.search(r'<table class="metrics objects">(.*?)</table>', page, re.S)
    assert pixels and objects
    assert '<tr class="class"><td>change</td><td>0.625</td>' in pixels.group(1)
    assert f'<tr class="macro"><td>macro</td><td>{0.7875:.3f}</td>' in pixels.group(1)
    assert re.findall(r'<tr class="class"><td>([^<]+)</td>', objects.group(1)) == ["change"]  # no object scores else
    assert "<td>7</td>" in objects.group(1)
    curves = re.search(r'alt="training curves" src="data:image/png;base64,([^"]+)"', page)
    assert curves is not None
    picture = Image.open(io.BytesIO(base64.b64decode(curves.group(1))))
    assert picture.width > 400 and np.asarray(picture.convert("L")).std() > 5


@pytest.mark.parametrize("option", [["--labels", "masks"], ["--class-names", "a", "b"], ["--num-classes", "3"]])
def test_run_folder_refuses_options_of_prediction_folders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: list[str]
) -> None:
    run = tmp_path / "run"
    _write_run_folder(run)
    (tmp_path / "masks").mkdir()
    option = [str(tmp_path / "masks") if o == "masks" else o for o in option]
    out = tmp_path / "run.html"
    assert _report([str(run), "-o", str(out), "--samples", "0", *option]) == 2
    err = capsys.readouterr().err
    assert f"{option[0]}: applies to a prediction folder" in err and err.count("\n") == 1
    assert not out.exists()


class _AllChange(nn.Module):
    """Predicts change everywhere: the counts of the page are then the reference's alone."""

    def __init__(self, in_channels: int = 3, num_classes: int = 2) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        change = torch.ones_like(x1[:, :1]) * self.scale
        return torch.cat([1 - change, change], dim=1)


@pytest.fixture
def all_change_model() -> Iterator[str]:
    registry.register_model("test_all_change", inputs=2)(_AllChange)
    yield "test_all_change"
    registry.unregister_model("test_all_change")


def test_run_folder_samples_from_its_checkpoint(tmp_path: Path, all_change_model: str) -> None:
    run = tmp_path / "run"
    _write_run_folder(run)
    config = {
        "data": {
            "class_path": "mantis.data.ChangeDetectionDataModule",
            "init_args": {"root": None, "patch_size": 32, "num_train": 2, "num_val": 2, "num_test": 3},
        }
    }
    (run / "config.yaml").write_text(json.dumps(config))  # JSON is YAML
    (run / "checkpoints").mkdir()
    hparams = {"model": all_change_model, "model_kwargs": {}, "task": "change_detection"}
    state = {f"model.{k}": v for k, v in _AllChange().state_dict().items()}
    # the checkpoint mantis test scored, named by its path before the run folder was moved here
    best = run / "checkpoints" / "best-epoch=001.ckpt"
    torch.save({"state_dict": state, "hyper_parameters": hparams}, best)
    record = json.loads((run / "test_metrics.json").read_text())
    record["checkpoint"] = str(tmp_path / "old_place" / "checkpoints" / best.name)
    (run / "test_metrics.json").write_text(json.dumps(record))
    out = tmp_path / "run.html"
    assert _report([str(run), "-o", str(out), "--samples", "2"]) == 0
    page = out.read_text()
    assert f"checkpoint: {best}" in page
    assert re.findall(r'data-name="([^"]+)" data-kind="pair"', page) == ["test_0", "test_1"]
    from mantis.data import ChangeDetectionDataModule

    module = ChangeDetectionDataModule(root=None, patch_size=32, num_train=2, num_val=2, num_test=3)
    module.setup("test")
    for index in range(2):
        mask = module.datasets["test"][index]["mask"].numpy()
        changed, unchanged = int((mask == 1).sum()), int((mask == 0).sum())
        assert _caption_counts(page, f"test_{index}") == (changed, unchanged, 0)


def test_run_folder_whose_config_this_version_refuses_gets_a_note(tmp_path: Path) -> None:
    """A data module option the parser no longer accepts: a note on the page, not a traceback."""
    run = tmp_path / "run"
    _write_run_folder(run)
    config = {"data": {"class_path": "mantis.data.ChangeDetectionDataModule", "init_args": {"no_such_option": 3}}}
    (run / "config.yaml").write_text(json.dumps(config))
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.ckpt").write_bytes(b"")
    out = tmp_path / "run.html"
    assert _report([str(run), "-o", str(out), "--samples", "2"]) == 0
    page = html.unescape(out.read_text())
    assert "no samples from the run's test split" in page and "no_such_option" in page


class _OneChannelChange(nn.Module):
    """A single-channel (sigmoid) change output: 0.9 everywhere."""

    def __init__(self, in_channels: int = 3, num_classes: int = 2) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.full((1,), 0.9))

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(x1[:, :1]) * self.scale


def test_run_folder_samples_of_a_single_channel_output(tmp_path: Path) -> None:
    registry.register_model("test_one_channel_change", inputs=2)(_OneChannelChange)
    try:
        run = tmp_path / "run"
        _write_run_folder(run)
        init = {"root": None, "patch_size": 32, "num_train": 2, "num_val": 2, "num_test": 2}
        config = {"data": {"class_path": "mantis.data.ChangeDetectionDataModule", "init_args": init}}
        (run / "config.yaml").write_text(json.dumps(config))
        (run / "checkpoints").mkdir()
        hparams = {"model": "test_one_channel_change", "model_kwargs": {}, "task": "change_detection"}
        state = {f"model.{k}": v for k, v in _OneChannelChange().state_dict().items()}
        torch.save({"state_dict": state, "hyper_parameters": hparams}, run / "checkpoints" / "last.ckpt")
        (run / "test_metrics.json").unlink()
        out = tmp_path / "run.html"
        assert _report([str(run), "-o", str(out), "--samples", "1"]) == 0
        page = out.read_text()
        assert re.findall(r'data-name="([^"]+)" data-kind="pair"', page) == ["test_0"]
        assert 'data-key="probability"' in page
    finally:
        registry.unregister_model("test_one_channel_change")


def test_geotiffs_written_by_mantis_predict(tmp_path: Path, all_change_model: str) -> None:
    """End to end on GeoTIFFs: mantis predict writes the maps, the report reads them reduced (decimated reads)
    while its counts stay those of the full-resolution rasters."""
    scene = synthetic_change_pair(5, size=(100, 80))
    for folder, image in (("A", scene["image1"]), ("B", scene["image2"])):
        write_image(tmp_path / folder / "site.tif", (image * 255).astype(np.uint8), crs="EPSG:32631")
    write_image(tmp_path / "label" / "site.tif", scene["mask"])
    ckpt = tmp_path / "all_change.ckpt"
    hparams = {"model": all_change_model, "model_kwargs": {}, "task": "change_detection"}
    torch.save({"state_dict": {"model.scale": torch.ones(1)}, "hyper_parameters": hparams}, ckpt)
    predict = ["predict", "-c", str(ckpt), "-i", str(tmp_path / "A"), str(tmp_path / "B"), "-o", str(tmp_path / "pred")]
    assert main([*predict, "--window", "32", "--outputs", "class", "prob", "--no-progress"]) == 0
    out = tmp_path / "site.html"
    argv = [str(tmp_path / "pred"), "--inputs", str(tmp_path / "A"), str(tmp_path / "B")]
    assert _report([*argv, "--labels", str(tmp_path / "label"), "--max-size", "40", "-o", str(out)]) == 0
    page = out.read_text()
    changed = int(scene["mask"].sum())
    assert _caption_counts(page, "site") == (changed, scene["mask"].size - changed, 0)
    sizes = {
        Image.open(io.BytesIO(base64.b64decode(uri))).size
        for uri in re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    }
    assert sizes == {(32, 40)}  # every picture: 100 x 80 reduced to 40 x 32 (width, height = 32, 40)
    assert '<option value="probability">' in page


@pytest.mark.parametrize(
    ("make_argv", "message"),
    [
        (lambda r: [str(r / "missing"), "-o", str(r / "x.html")], "missing: no such folder"),
        (lambda r: [str(r / "A"), "-o", str(r / "x.html")], "A: holds no class maps"),
        (lambda r: [str(r / "pred"), "--samples", "nope", "-o", str(r / "x.html")], "no prediction of sample 'nope'"),
        (lambda r: [str(r / "pred"), "-o", str(r / "A")], "A: is a folder"),
        (
            lambda r: [str(r / "pred"), "--num-classes", "0", "-o", str(r / "x.html")],
            "--num-classes 0: give at least 1",
        ),
        (lambda r: [str(r / "pred"), "--inputs", str(r / "label"), "-o", str(r / "x.html")], None),
    ],
)
def test_user_errors_are_one_line_and_write_nothing(
    change_folders: dict[str, Any], capsys: pytest.CaptureFixture[str], make_argv: Any, message: str | None
) -> None:
    root = change_folders["root"]
    (root / "label" / "tile1.png").rename(root / "label" / "other.png")  # --inputs label: tile1 has no input
    before = sorted(p for p in root.rglob("*"))
    assert _report(make_argv(root)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("mantis report: error: ")
    assert message is None or message in err
    assert "tile1" in err or message is not None
    assert sorted(p for p in root.rglob("*")) == before  # nothing written, no temporary left


# -- the page in a real browser -------------------------------------------------------------------

# Injected first in <head>: every error, failed image and console.error is kept for the probe below.
HEAD_PROBE = """<script>
window.__errors = [];
window.addEventListener("error", function (e) {
  var what = (e.target && (e.target.currentSrc || e.target.tagName)) || "?";
  window.__errors.push(e.message || ("failed to load " + what).slice(0, 80));
}, true);
window.addEventListener("unhandledrejection", function (e) { window.__errors.push("rejection: " + e.reason); });
var __consoleError = console.error;
console.error = function () {
  window.__errors.push("console.error: " + Array.from(arguments).join(" "));
  __consoleError.apply(console, arguments);
};
</script>"""

# Injected last in <body>: after load, moves each swipe (slider and pointer), switches overlays and writes
# what the page did into <pre id="probe">.
BODY_PROBE = """<script>
window.addEventListener("load", function () {
  var result = {errors: window.__errors, samples: []};
  document.querySelectorAll("figure.sample").forEach(function (sample) {
    var r = {name: sample.dataset.name, images: [], swipe: [], overlays: {}};
    sample.querySelectorAll("img").forEach(function (img) { r.images.push(img.complete && img.naturalWidth > 0); });
    var view = sample.querySelector(".swipe");
    var box = view.getBoundingClientRect();
    var where = function (set, how) {
      var line = sample.querySelector(".divider").getBoundingClientRect();
      var right = sample.querySelector("img.right");
      var follow = Array.from(sample.querySelectorAll("img.follow")).map(function (img) {
        return getComputedStyle(img).clipPath;
      });
      r.swipe.push({set: set, how: how, line: (line.left + line.width / 2 - box.left) / box.width,
                    clip: getComputedStyle(right).clipPath, follow: follow});
    };
    var range = sample.querySelector("input.swipe-range");
    [25, 80].forEach(function (v) {
      range.value = String(v); range.dispatchEvent(new Event("input", {bubbles: true})); where(v, "slider");
    });
    var x = box.left + 0.4 * box.width, y = box.top + box.height / 2;
    view.dispatchEvent(new PointerEvent("pointerdown", {clientX: x, clientY: y, pointerId: 1, bubbles: true}));
    view.dispatchEvent(new PointerEvent("pointerup", {clientX: x, clientY: y, pointerId: 1, bubbles: true}));
    where(40, "pointer");
    var chooser = sample.querySelector("select.overlay-select");
    Array.from(chooser.options).forEach(function (option) {
      chooser.value = option.value; chooser.dispatchEvent(new Event("change"));
      r.overlays[option.value || "none"] = Array.from(sample.querySelectorAll("img.overlay"))
        .filter(function (img) { return getComputedStyle(img).display !== "none"; })
        .map(function (img) { return img.dataset.key; });
    });
    result.samples.push(r);
  });
  var out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify(result);
  document.body.appendChild(out);
});
</script>"""


def _chromium() -> str | None:
    candidates = [os.environ.get("MANTIS_CHROMIUM", ""), "chromium", "chromium-browser", "google-chrome"]
    return next((found for name in candidates if name and (found := shutil.which(name))), None)


def _browse(browser: str, page: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]
    command += ["--hide-scrollbars"]  # --no-sandbox: CI runs as root; /dev/shm is small in containers
    command += [f"--user-data-dir={page.parent / 'profile'}", "--window-size=1000,1400", *flags, page.as_uri()]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def _probe(browser: str, report: Path) -> dict[str, Any]:
    """Open ``report`` with the probes injected; what the page did (see BODY_PROBE)."""
    probed = report.with_name("probed.html")
    text = report.read_text()
    probed.write_text(text.replace("<head>", "<head>\n" + HEAD_PROBE, 1).replace("</body>", BODY_PROBE + "</body>"))
    done = _browse(browser, probed, "--virtual-time-budget=5000", "--dump-dom")
    found = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.S)
    assert found, f"the page did not run its probe; chromium said: {done.stderr[-800:]}"
    result: dict[str, Any] = json.loads(html.unescape(found.group(1)))
    assert result["errors"] == []  # no script error, failed image or console.error
    for sample in result["samples"]:
        assert sample["images"] and all(sample["images"])  # every picture decoded
        for step in sample["swipe"]:
            assert step["line"] == pytest.approx(step["set"] / 100, abs=0.02)  # the line follows
            assert step["clip"].replace(" ", "") == f"inset(0px0px0px{step['set']}%)"  # the right picture right of it
    return result


@pytest.fixture
def browser() -> str:
    found = _chromium()
    if found is None:
        pytest.skip("no chromium found: run `make browser` (apt-get install chromium) to test the report in a browser")
    return found


def test_page_in_a_headless_browser(change_folders: dict[str, Any], browser: str) -> None:
    root = change_folders["root"]
    report = root / "report.html"
    argv = [str(root / "pred"), "--inputs", str(root / "A"), str(root / "B"), "--labels", str(root / "label")]
    assert _report([*argv, "-o", str(report)]) == 0
    result = _probe(browser, report)
    assert [s["name"] for s in result["samples"]] == ["tile0", "tile1"]
    for sample in result["samples"]:
        assert all(step["follow"] == [] for step in sample["swipe"])  # overlays cover both dates
        assert sample["overlays"] == {
            "comparison": ["comparison"],
            "prediction": ["prediction"],
            "reference": ["reference"],
            "probability": ["probability"],
            "none": [],
        }

    shot = root / "shot.png"
    done = _browse(browser, report, f"--screenshot={shot}")
    assert shot.is_file(), f"no screenshot; chromium said: {done.stderr[-800:]}"
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[:2] == (1400, 1000)
    assert pixels.std() > 20 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 500  # text, tables and pictures


def test_segmentation_page_in_a_headless_browser(tmp_path: Path, browser: str) -> None:
    _write_segmentation_folders(tmp_path)
    report = tmp_path / "seg.html"
    argv = [str(tmp_path / "pred"), "--inputs", str(tmp_path / "images"), "--labels", str(tmp_path / "masks")]
    assert _report([*argv, "--num-classes", "3", "-o", str(report)]) == 0
    (sample,) = _probe(browser, report)["samples"]
    for step in sample["swipe"]:  # the overlays stay on the prediction's side of the line
        assert len(step["follow"]) == 3 and {c.replace(" ", "") for c in step["follow"]} == {
            f"inset(0px0px0px{step['set']}%)"
        }
    assert sample["overlays"]["none"] == [] and sample["overlays"]["comparison"] == ["comparison"]


def test_every_class_of_a_large_legend_has_its_own_colour() -> None:
    from mantis.report_images import CLASS_COLOURS, class_colour, class_colours

    colours = [class_colour(k) for k in range(1, 61)]
    assert colours[: len(CLASS_COLOURS)] == list(CLASS_COLOURS)
    assert len(set(colours)) == 60 and all(0 <= c <= 255 for rgb in colours for c in rgb)
    rgba = class_colours(np.array([[0, 11, 12]]), 13)
    assert rgba[0, 0, 3] == 0 and tuple(rgba[0, 1, :3]) == class_colour(11) != tuple(rgba[0, 2, :3])
