"""Bad input ends ``mantis fit`` before training with ONE line on stderr naming the file and the problem."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from mantis.cli import config_error_line, main
from mantis.data.io import write_image
from tests.tasks.folders import cd_config, make_cd_folder, write_config


@pytest.fixture(scope="module")
def good_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_cd_folder(tmp_path_factory.mktemp("data") / "levir")


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = main(args)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err.strip().splitlines()


def _missing_mask(root: Path) -> str:
    (root / "label" / "tile_3.png").unlink()
    return f"{root / 'A' / 'tile_3.png'}: has no matching file in {root / 'label'}"


def _missing_date(root: Path) -> str:
    (root / "B" / "tile_1.png").unlink()
    return f"{root / 'A' / 'tile_1.png'}: has no matching file in {root / 'B'}"


def _sizes_differ(root: Path) -> str:
    write_image(root / "B" / "tile_0.png", np.zeros((3, 40, 40), np.uint8))
    return f"{root / 'B' / 'tile_0.png'}: is 40x40 pixels but {root / 'A' / 'tile_0.png'} is 32x32"


def _bands_differ(root: Path) -> str:
    write_image(root / "B" / "tile_4.png", np.zeros((1, 32, 32), np.uint8))
    return str(root / "B" / "tile_4.png")


def _truncated(root: Path) -> str:
    path = root / "A" / "tile_5.png"
    path.write_bytes(path.read_bytes()[:200])
    return f"{path}: cannot read image"


def _mask_value_fits_no_class(root: Path) -> str:
    write_image(root / "label" / "tile_2.png", np.full((32, 32), 7, np.uint8))
    return str(root / "label" / "tile_2.png")


def _empty_folder(root: Path) -> str:
    for sub in ("A", "B", "label"):
        shutil.rmtree(root / sub)
        (root / sub).mkdir()
    return f"{root / 'A'}: no images found"


CORRUPTIONS: dict[str, Callable[[Path], str]] = {
    "image without its mask": _missing_mask,
    "image without its other date": _missing_date,
    "dates of different size": _sizes_differ,
    "dates of different band count": _bands_differ,
    "truncated file": _truncated,
    "mask value that fits no class": _mask_value_fits_no_class,
    "empty folder": _empty_folder,
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_bad_data_gives_one_line_before_training(
    case: str, good_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "data"
    shutil.copytree(good_folder, root)
    expected = CORRUPTIONS[case](root)
    # test_after_fit: the test split is checked up front too
    config = write_config(tmp_path / "cd.yaml", cd_config(root, tmp_path / "run"))
    code, err = _run(["fit", "--config", str(config), "--test_after_fit", "true"], capsys)
    assert code != 0
    assert len(err) == 1, err
    assert err[0].startswith("mantis fit: error: ") and expected in err[0]
    assert not (tmp_path / "run" / "checkpoints").exists()  # nothing was trained


def test_unknown_config_key_names_the_file_and_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = cd_config(None, tmp_path / "run")
    config["model"]["init_args"]["learning_rate"] = 0.1
    path = write_config(tmp_path / "typo.yaml", config)
    code, err = _run(["fit", "--config", str(path)], capsys)
    assert code == 2 and err == [f"mantis fit: error: {path}: model.init_args.learning_rate: unknown key"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--data.init_args.patch_szie", "64"], "data.init_args.patch_szie: unknown key"),
        (
            ["--data.init_args.jitter", "0.1"],  # a series data module's former flat key
            "data.init_args.jitter: unknown key (the series and volume data modules take it under augment: "
            "data.init_args.augment.jitter)",
        ),
        (["--data.init_args.batch_size", "many"], "data.init_args.batch_size: expected int, got 'many'"),
        (["--config", "/nonexistent/run.yaml"], "/nonexistent/run.yaml"),
        (["--ckpt_path", "/nonexistent/last.ckpt"], "/nonexistent/last.ckpt: no such checkpoint"),
        (["--model.init_args.model", "unet9000"], "unknown model 'unet9000'"),
        (
            ["--model.init_args.model_kwargs", '{"nff": 8}'],
            "model 'fractal_resnet_cd' has no argument 'nff'; its arguments: in_ch",
        ),
        (["--data.init_args.patch_size", "48"], "data patch_size 48 is not divisible by 32"),
        (["--data.init_args.root", "/nonexistent/data"], "/nonexistent/data: dataset folder not found"),
    ],
)
def test_bad_arguments_give_one_line(
    args: list[str], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["fit", "--run_dir", str(tmp_path / "run"), "--data.init_args.patch_size", "64"]
    base += ["--model.init_args.model_kwargs", '{"nf": 8, "depth": 3}', "--trainer.max_epochs", "1"]
    code, err = _run([*base, *args], capsys)
    assert code == 2
    assert len(err) == 1 and expected in err[0], err


def test_not_a_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake = tmp_path / "model.ckpt"
    fake.write_text("not a checkpoint")
    code, err = _run(["test", "--ckpt_path", str(fake)], capsys)
    assert code == 2 and len(err) == 1
    assert err[0].startswith(f"mantis test: error: {fake}: not a checkpoint that loads safely with weights_only=True")


def test_config_error_line_condenses_nested_messages() -> None:
    message = (
        'Parser key "data":\n  Does not validate against any of the Union subtypes\n  Subtypes: [A, B]\n'
        "  Errors:\n    - Problem with given class_path 'mantis.data.ChangeDetectionDataModule':\n"
        "        Parser key \"batch_size\":\n          Expected a <class 'int'>. Got value: abc\n"
        "    - Expected a <class 'NoneType'>\n  Given value type: <class 'str'>\n  Given value: abc"
    )
    assert config_error_line(message) == "data.init_args.batch_size: expected int, got 'abc'"


def test_a_misspelt_option_is_refused_not_expanded(capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = _run(["fit", "--trainer.max_epoch", "3", "--print_config"], capsys)
    assert code == 2
    assert len(lines) == 1 and "unrecognized arguments: --trainer.max_epoch 3" in lines[0]


def test_a_class_refusing_its_arguments_gives_its_own_reason(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["fit", "--model", "mantis.tasks.SegmentationTask", "--model.init_args.model", "fractal_resunet"]
    args += ["--data", "mantis.data.SegmentationDataModule", "--data.init_args.num_classes", "2"]
    code, lines = _run(args, capsys)
    assert code == 2
    assert lines == ["mantis fit: error: synthetic scenes have 3 classes, got 2"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--model.init_args.model_kwargs", "{nf: 8, depth: 2, psp_depth: 2, spatial_dims: 3}"],
            "model_kwargs spatial_dims=3, but ChangeDetectionDataModule gives 2D samples; use spatial_dims: 2",
        ),
        (
            ["--model", "mantis.tasks.ClassificationTask", "--model.init_args.model", "cnn"],
            "ClassificationTask needs one class per sample ('label'), but ChangeDetectionDataModule gives 'mask'",
        ),
    ],
)
def test_data_of_another_kind_than_the_task_is_named_in_one_line(
    extra: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A class named on the command line comes before its init_args (nothing is inherited from the bare defaults).
    model = [] if "--model" in extra else ["--model.init_args.model", "fractal_resnet_cd"]
    args = ["fit", *model, *extra, "--data.init_args.patch_size", "32"]
    args += ["--trainer.max_epochs", "1", "--run_dir", str(tmp_path / "run")]
    code, lines = _run(args, capsys)
    assert code == 2
    assert len(lines) == 1 and message in lines[0]
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_bare_fit_is_a_run_that_finishes_on_a_cpu(capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    assert main(["fit", "--print_config"]) == 0
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["trainer"]["max_epochs"] == 8  # not Lightning's 1000
    assert config["model"]["init_args"]["model"] == "fractal_resnet_cd"
    assert config["data"]["init_args"]["patch_size"] == 64


def test_output_folders_that_cannot_be_written_give_one_line_before_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    # fit: a run folder inside a file (read-only folders behave alike for users who are not root)
    code, err = _run(["fit", "--run_dir", str(blocker / "run")], capsys)
    assert code == 2 and err == [
        f"mantis fit: error: {blocker / 'run'}: cannot create the output folder ({blocker} is a file, not a folder)"
    ]
    code, err = _run(["fit", "--trainer.default_root_dir", str(blocker)], capsys)
    assert code == 2 and err[0].startswith(f"mantis fit: error: {blocker / 'fractal_resnet_cd'}: cannot create")

    # predict: refused before the model is loaded (the checkpoint does not even exist)
    from mantis.inference import predict_cli

    image = tmp_path / "x.png"
    write_image(image, np.zeros((3, 32, 32), np.uint8))
    monkeypatch.setattr("mantis.inference.checkpoint.load_models", lambda *a: pytest.fail("loaded the model"))
    assert predict_cli.main(["-c", str(tmp_path / "m.ckpt"), "-i", str(image), "-o", str(blocker / "out")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"mantis predict: error: {blocker / 'out'}: cannot create the output folder ({blocker} is a file, not a folder)"
    )

    # a folder where nothing can be written (simulated: the disk is full)
    def full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("tempfile.NamedTemporaryFile", full)
    assert predict_cli.main(["-c", str(tmp_path / "m.ckpt"), "-i", str(image), "-o", str(tmp_path / "out")]) == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith(f"out: cannot write the output folder in {tmp_path} (No space left on device)")
    )
