"""Every command ends by one policy (mantis.commands): one line and status 2 for a user's mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from mantis.cli import main


@pytest.mark.parametrize(
    ("argv", "prefix"),
    [
        (["stats", "{tmp}/missing.tif"], "mantis stats: error: "),
        (["predict", "-c", "{tmp}/none.ckpt", "-i", "{tmp}/a.tif", "-o", "{tmp}/out"], "mantis predict: error: "),
        (["export", "{tmp}/none.ckpt", "{tmp}/out"], "mantis export: error: "),
        (["convert", "{tmp}/none.params", "--model", "fractal_resunet", "-o", "{tmp}/out"], "mantis convert: error: "),
        (["summary", "--model", "nope"], "mantis summary: error: "),
        (["fit", "--model", "mantis.tasks.SegmentationTask", "--model.model", "nope"], "mantis fit: error: "),
    ],
    ids=["stats", "predict", "export", "convert", "summary", "fit"],
)
def test_user_mistakes_give_one_line_and_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, argv: list[str], prefix: str
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(prefix) and err.count("\n") == 1, err
    assert "Traceback" not in err


def test_mantis_debug_shows_the_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MANTIS_DEBUG", "1")
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        main(["summary", "--model", "nope"])


ABBREVIATED = {
    "stats": ["{tmp}", "--recur"],
    "summary": ["--model", "cnn", "--bat", "2"],
    "evaluate": ["{tmp}", "{tmp}", "--num-cl", "3"],
    "conv": ["32", "k3", "--pn", "x.png"],
    "report": ["{tmp}", "-o", "r.html", "--predict", "{tmp}"],
    "export": ["a.ckpt", "{tmp}", "--form", "onnx"],
    "convert": ["w.params", "--model", "fractal_resunet", "-o", "x", "--over"],
    "visualize": ["--mod", "cnn"],
    "predict": ["-c", "a.ckpt", "-i", "{tmp}", "-o", "{tmp}", "--overw"],
    "sweep": ["--seeds", "1", "--ou", "x", "--", "fit"],
}


@pytest.mark.parametrize("command", sorted(ABBREVIATED))
def test_no_command_takes_an_abbreviated_option(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mantis.cli import main

    args = [arg.replace("{tmp}", str(tmp_path)) for arg in ABBREVIATED[command]]
    assert main([command, *args]) == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments" in err, err  # not taken for the longer option it starts
