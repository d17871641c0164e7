"""`mantis visualize`: hooks capture the right maps, saliency respects the receptive field, activation
maximisation raises its target, every picture is written and not blank, bad inputs give one line."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mantis import create_model
from mantis.cli import main
from mantis.inspect.visualize import attention_maps, feature_maps, gates, maximise_activation, saliency
from mantis.models.registry import model_info
from mantis.nn.attention import FracTALAttention

TINY_CD = json.dumps(dict(model_info("fractal_resnet_cd").tiny))


def _tiny(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(name, **dict(model_info(name).tiny)).eval()


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.float64)


def test_one_feature_map_per_level_with_its_channels_and_size() -> None:
    model = _tiny("fractal_resunet")  # nf 8, depth 3: widths 8, 16, 32
    maps, output = feature_maps(model, [torch.rand(2, 3, 32, 32)])
    found = [(m.label, tuple(m.values.shape)) for m in maps]
    assert found == [
        ("stem", (8, 32, 32)),
        ("encoder.units.0", (8, 32, 32)),
        ("encoder.units.1", (16, 16, 16)),
        ("encoder.units.2", (32, 8, 8)),
        ("bridge", (32, 8, 8)),
        ("decoder.units.0", (16, 16, 16)),
        ("decoder.units.1", (8, 32, 32)),
    ]
    assert output.segmentation.shape == (2, 2, 32, 32)


def test_a_sequential_model_gives_one_map_per_resolution() -> None:
    model = create_model("cnn", num_classes=3, widths=(4, 8))  # conv, act, pool per width; global pool; linear
    maps, _ = feature_maps(model, [torch.rand(1, 3, 16, 16)])
    assert [(m.name, tuple(m.values.shape)) for m in maps] == [("1", (4, 16, 16)), ("4", (8, 8, 8)), ("5", (8, 4, 4))]


def test_a_pair_model_labels_the_second_date() -> None:
    maps, _ = feature_maps(_tiny("fractal_resnet_cd"), [torch.rand(1, 3, 16, 16)] * 2)
    labels = [m.label for m in maps]
    assert "encoder.units.0" in labels and "encoder.units.0 (call 2)" in labels


def test_attention_maps_are_the_ones_the_unit_applies() -> None:
    model = _tiny("fractal_resunet")
    x = torch.rand(1, 3, 32, 32)
    # what each attention module returned, and its input, captured independently
    seen: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def keep(name: str, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        seen.setdefault(name, (args[0], out))

    handles = [
        module.register_forward_hook(lambda m, args, out, name=name: keep(name, args, out))
        for name, module in model.named_modules()
        if isinstance(module, FracTALAttention)
    ]
    with torch.no_grad():
        model(x)
    for handle in handles:
        handle.remove()
    maps = attention_maps(model, [x])
    assert [m.name for m in maps] == list(seen)
    modules = dict(model.named_modules())
    for att in maps:
        source, returned = seen[att.name]
        module = modules[att.name]
        assert att.spatial.shape == source.shape[2:] and att.channel.shape == (source.shape[1],)
        assert float(att.spatial.min()) >= 0 and float(att.spatial.max()) <= 1
        # the attention is norm(0.5 * v * (spatial + channel)): rebuild it from the maps drawn
        with torch.no_grad():
            v = torch.sigmoid(module.value(source))
            rebuilt = module.norm(0.5 * v * (att.spatial[None, None] + att.channel[None, :, None, None]))
        torch.testing.assert_close(rebuilt, returned, atol=1e-5, rtol=1e-4)
    assert [m.name for m in attention_maps(model, [x], ["decoder.units.1"])] == ["decoder.units.1.attention"]
    assert [m.name for m in attention_maps(model, [x], ["encoder.units.1", "decoder"])] == [
        "encoder.units.1.attention",
        "decoder.units.0.attention",
        "decoder.units.1.attention",
    ]


def test_gates_of_every_unit_and_fusion() -> None:
    model = _tiny("fractal_resnet_cd")  # depth 3: 3 encoder units, 2 decoder units, stem and 2 skip fusions
    with torch.no_grad():
        model.get_parameter("encoder.units.1.gamma").fill_(0.75)
    found = dict(gates(model))
    assert len(found) == 3 + 2 + 2 * 3
    assert found["encoder.units.1.gamma"] == 0.75 and found["stem_fusion.gamma2"] == 0.0
    assert gates(create_model("cnn")) == []


def _two_convs() -> torch.nn.Sequential:
    """Two 3x3 convolutions (padding 1) with a ReLU: each output pixel sees a 5x5 window of the input."""
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 3, padding=1)
    ).eval()


def test_saliency_is_zero_outside_the_receptive_field_of_the_pixel() -> None:
    (maps,) = saliency(_two_convs(), [torch.rand(1, 3, 16, 16)], class_index=1, pixel=(8, 5))
    inside = torch.zeros(16, 16, dtype=torch.bool)
    inside[6:11, 3:8] = True  # rows 8 +- 2, columns 5 +- 2
    assert maps.shape == (16, 16)
    assert float(maps[~inside].abs().max()) == 0.0
    assert float(maps[8, 5]) > 0 and int((maps[inside] > 0).sum()) > 12


def test_saliency_of_a_pair_has_a_map_per_date() -> None:
    maps = saliency(_tiny("fractal_resnet_cd"), [torch.rand(1, 3, 16, 16)] * 2, class_index=1)
    assert len(maps) == 2 and all(m.shape == (16, 16) and float(m.max()) > 0 for m in maps)


def test_activation_maximisation_raises_the_target_and_is_seeded() -> None:
    model = _tiny("fractal_resunet")
    x = [torch.zeros(1, 3, 16, 16)]
    first = maximise_activation(model, x, layer="encoder.units.1", channel=3, steps=12)
    assert first.end > first.start and len(first.history) == 12
    assert first.images[0].shape == (3, 16, 16)
    again = maximise_activation(model, x, layer="encoder.units.1", channel=3, steps=12)
    torch.testing.assert_close(again.images[0], first.images[0])
    by_class = maximise_activation(model, x, channel=1, steps=12)
    assert by_class.end > by_class.start
    assert all(p.requires_grad for p in model.parameters())  # the model is left as it was


def test_activation_maximisation_of_a_pair_optimises_both_dates() -> None:
    model = _tiny("fractal_resnet_cd")
    x = [torch.zeros(1, 3, 16, 16)] * 2
    # the encoder runs once per date: its channel is raised on both
    kw = {"blur_every": 0, "jitter": 0, "decay": 0.0}  # without the prior, only gradients change the images
    found = maximise_activation(model, x, layer="encoder.units.1", channel=2, steps=8, **kw)
    noise = maximise_activation(model, x, layer="encoder.units.1", channel=2, steps=0)
    assert found.end > found.start
    assert all(not torch.equal(a, b) for a, b in zip(found.images, noise.images))


def _assert_picture(path: Path) -> None:
    pixels = _pixels(path)
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert pixels.var() > 0 and np.isfinite(pixels).all()


def test_cli_writes_every_picture_of_a_pair_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "pictures"
    args = ["visualize", "--model", "fractal_resnet_cd", "--model_kwargs", TINY_CD, "--scene", "1", "--size", "16"]
    small = ["--units", "encoder.units.0", "--channels", "2", "--steps", "4", "--pixel", "8,8"]  # few panels: fast
    assert main([*args, *small, "--out", str(out)]) == 0
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(
        f"{name}.png" for name in ("features", "attention", "gates", "outputs", "filters", "saliency", "maximise")
    )
    for path in out.iterdir():
        _assert_picture(path)
    assert capsys.readouterr().out.count("wrote ") == 7


def test_pictures_have_a_panel_per_level_channel_call_and_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mantis.inspect import figures

    panels: dict[str, int] = {}
    save = figures.save_figure

    def count(fig: object, path: Path, dpi: int = 90) -> Path:
        panels[path.name] = sum(bool(ax.images) for ax in fig.axes)  # type: ignore[attr-defined]
        return save(fig, path, dpi)

    monkeypatch.setattr(figures, "save_figure", count)
    args = ["visualize", "--model", "fractal_resnet_cd", "--model_kwargs", TINY_CD, "--scene", "1", "--size", "16"]
    shown = [
        "--show",
        "features",
        "outputs",
        "attention",
        "--units",
        "stem",
        "encoder.units.0",
        "bridge",
        "decoder.units.1",
    ]
    assert main([*args, *shown, "--channels", "2", "--out", str(tmp_path)]) == 0
    # the stem and the first encoder unit run once per date, then the bridge and the last decoder unit; 2 channels
    assert panels["features.png"] == (2 * 2 + 1 + 1) * 2
    # two dates, the predicted class, three fields (segmentation, boundary, distance)
    assert panels["outputs.png"] == 2 + 1 + 3
    # two inputs, then a spatial map per attention call: the first encoder unit's per date, the decoder unit's
    # ("stem" is the stem only, not stem_fusion's two attentions)
    assert panels["attention.png"] == 2 + 2 + 1


def test_cli_reads_image_files(tmp_path: Path) -> None:
    image = (np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8)
    Image.fromarray(image).save(tmp_path / "a.png")
    out = tmp_path / "out"
    args = [
        "visualize",
        "--model",
        "fractal_resunet",
        "--model_kwargs",
        json.dumps(dict(model_info("fractal_resunet").tiny)),
    ]
    assert main([*args, "--input", str(tmp_path / "a.png"), "--show", "outputs", "saliency", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["outputs.png", "saliency.png"]


def test_cli_reads_a_saved_model_with_its_trained_gates(tmp_path: Path) -> None:
    from mantis.inference.checkpoint import ModelMeta, save_pretrained

    kwargs = dict(model_info("fractal_resnet_cd").tiny)
    model = create_model("fractal_resnet_cd", **kwargs)
    with torch.no_grad():
        model.get_parameter("decoder.units.0.gamma").fill_(-0.5)
    saved = save_pretrained(model, ModelMeta("fractal_resnet_cd", kwargs, "change_detection"), tmp_path / "model")
    out = tmp_path / "out"
    assert main(["visualize", str(saved), "--scene", "2", "--size", "16", "--show", "gates", "--out", str(out)]) == 0
    pixels = _pixels(out / "gates.png")
    red = (pixels[..., 0] > 180) & (pixels[..., 1] < 80) & (pixels[..., 2] < 80)
    assert red.sum() > 20  # the one negative gate is drawn in red


def test_cli_activations_and_curves(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    with open(run / "metrics.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["epoch", "step", "train/loss_epoch", "val/loss", "val/f1_macro"])
        for epoch in range(5):
            writer.writerow([epoch, 10 * epoch, 1 / (epoch + 1), 1.2 / (epoch + 1), 0.5 + 0.1 * epoch])
    out = tmp_path / "out"
    assert main(["visualize", "--activations", "--curves", str(run), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["activations.png", "curves.png"]
    for path in out.iterdir():
        _assert_picture(path)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scene", "0"], "give a checkpoint or --model NAME"),
        (["--model", "fractal_resnet_cd", "--input", "{missing}"], "missing.png"),
        (["--model", "fractal_resnet_cd", "--input", "{rgba}", "{rgba}"], "rgba.png: has 4 bands; the model takes 3"),
        (["--model", "fractal_resnet_cd", "--input", "{rgb}"], "rgb.png: the model takes two files"),
        (["--model", "fractal_resnet_cd", "--scene", "0", "--size", "20"], "scene 0: size 20x20 is not a multiple of"),
        (["--model", "cnn", "--scene", "0", "--show", "attention"], "cnn: has nothing to draw for attention"),
        (["--model", "fractal_resnet_cd", "--scene", "0", "--layer", "nowhere"], "--layer 'nowhere': no such module"),
        (
            ["--model", "fractal_resnet_cd", "--scene", "0", "--layer", "encoder.units.1", "--channel", "16"],
            "--channel 16: encoder.units.1 gives 16 channels",
        ),
        (["--model", "fractal_resnet_cd", "--scene", "0", "--units", "head"], "--units head: no level or FracTAL"),
        (["--model", "cnn", "--model_kwargs", "nf=2", "--scene", "0"], "--model_kwargs 'nf=2': not JSON"),
        (["--model", "fractal_resnet_cd", "--scene", "0", "--class", "5"], "--class 5: the model has 2 classes"),
        (["--model", "fractal_resnet_cd", "--scene", "0", "--pixel", "99,1"], "--pixel '99,1': the output is"),
        (["--curves", "{missing}"], "missing.png: no such run folder"),
        (["--model", "mlp", "--scene", "0"], "mlp: takes feature vectors (a table), not images"),
        (["--model", "cnn", "--scene", "0", "--pixel", "3,3"], "--pixel 3,3: cnn gives one value per class"),
        (["--model", "fractal_resnet_cd", "--activations"], "--activations and --curves draw no model"),
    ],
)
def test_bad_inputs_give_one_line_and_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    Image.fromarray(np.zeros((32, 32, 4), dtype=np.uint8)).save(tmp_path / "rgba.png")
    Image.fromarray(np.zeros((32, 32, 3), dtype=np.uint8)).save(tmp_path / "rgb.png")
    files = {key: str(tmp_path / f"{key}.png") for key in ("missing", "rgba", "rgb")}
    args = [a.format(**files) for a in args]
    if "--model" in args and args[args.index("--model") + 1] == "fractal_resnet_cd":
        args[args.index("--model") + 1 : args.index("--model") + 2] = ["fractal_resnet_cd", "--model_kwargs", TINY_CD]
    out = tmp_path / "out"
    assert main(["visualize", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mantis visualize: error: ") and message in err, err
    assert not out.exists()  # nothing written


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--pixel", "3,3"], "--pixel 3,3: chooses what saliency draws, but --show leaves saliency out"),
        (["--layer", "stem"], "--layer stem: chooses what maximise draws, but --show leaves maximise out"),
    ],
)
def test_options_of_pictures_not_shown_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: list[str], message: str
) -> None:
    kwargs = json.dumps(dict(model_info("fractal_resunet").tiny))
    args = ["visualize", "--model", "fractal_resunet", "--model_kwargs", kwargs, "--scene", "0", "--size", "32"]
    assert main([*args, "--show", "outputs", *option, "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip() == f"mantis visualize: error: {message}"
    assert not (tmp_path / "out").exists()
