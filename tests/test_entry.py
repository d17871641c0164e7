"""The `mantis` front door: help lists every command, --version, usage errors, and nothing heavy imported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import mantis
from mantis.cli import DISPATCH, LIGHTNING_COMMANDS
from mantis.entry import COMMANDS, main


def test_help_lists_every_command_with_a_sentence(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert set(COMMANDS) == {*LIGHTNING_COMMANDS, *DISPATCH, "configs"}  # every command is listed
    for name in COMMANDS:
        line = next(line for line in out.splitlines() if line.strip().startswith(name + " "))
        assert len(line.split()) > 3  # the name and a sentence


def test_version_and_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"mantis {mantis.__version__}"
    assert main([]) == 2
    assert capsys.readouterr().err.startswith("usage: mantis COMMAND")
    assert main(["fti"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown command 'fti'" in err


def test_help_imports_neither_torch_nor_lightning() -> None:
    code = (
        "import sys; from mantis.entry import main; main(['--help']); "
        "print('torch' in sys.modules, 'lightning' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[-1] == "False False"


def test_configs_copies_the_packaged_examples_and_never_overwrites(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    packaged = sorted(p.name for p in (Path(mantis.__file__).parent / "configs").glob("*.yaml"))
    assert "demo.yaml" in packaged and "predict.yaml" in packaged
    assert main(["configs", str(tmp_path / "mine")]) == 0
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == packaged
    demo = tmp_path / "mine" / "demo.yaml"
    demo.write_text("# my edits\n")
    assert main(["configs", str(tmp_path / "mine")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already exists (nothing copied)" in err
    assert demo.read_text() == "# my edits\n"
