"""The authors' Gluon weights: names of the seven networks, MXNet's file format, `mantis convert`."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from mantis.cli import main as mantis_main
from mantis.convert import (
    GluonMappingError,
    ParamsFormatError,
    gluon_to_mantis_name,
    load_gluon_state,
    match_gluon_names,
    read_mxnet_params,
)
from mantis.inference import load_pretrained
from mantis.models import create_model
from tests.inference.conftest import write_geotiff
from tests.reference import REFERENCE_DIR

NAMES_DIR = REFERENCE_DIR / "gluon_names"
MXNET_DIR = Path(__file__).resolve().parent / "fixtures" / "mxnet"
TINY_KWARGS = {"nf": 8, "depth": 2, "psp_depth": 1, "nheads_start": 1}  # scripts/mxnet_fixtures.py TINY
NETWORKS = [
    ("g_mantis_fractalresnet.tsv", "fractal_resnet_cd", {}),
    ("g_mantis_ceecnetv1.tsv", "ceecnet_v1", {}),
    ("g_mantis_ceecnetv2.tsv", "ceecnet_v2", {}),
    ("g_xunet_fractalresnet.tsv", "fractal_resunet", {}),
    ("g_decode_fractal_resunet.tsv", "fractal_resunet", {"grouped_attention": False}),
    ("g_resuneta_d6.tsv", "resunet_a_d6", {"in_channels": 5, "num_classes": 6}),
    ("g_resuneta_d7.tsv", "resunet_a_d7", {"in_channels": 5, "num_classes": 6}),
]


def _gluon_shapes(tsv: str) -> dict[str, tuple[int, ...]]:
    rows = [line.split("\t") for line in (NAMES_DIR / tsv).read_text().splitlines()[1:]]
    return {r[0]: tuple(int(d) for d in r[1].split("x")) for r in rows}


def _meta_model(name: str, **kwargs: object) -> torch.nn.Module:
    with torch.device("meta"):  # names and shapes only: no memory, no initialisation
        return create_model(name, **kwargs)


def _shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@pytest.mark.parametrize(("tsv", "name", "kwargs"), NETWORKS, ids=[n[0][2:-4] for n in NETWORKS])
def test_every_gluon_name_lands_on_the_model(tsv: str, name: str, kwargs: dict[str, object]) -> None:
    theirs = _gluon_shapes(tsv)
    model = _meta_model(name, **kwargs)
    pairs = match_gluon_names(_shapes(model), theirs, name)
    own = [k for k in model.state_dict() if not k.endswith("num_batches_tracked")]
    assert sorted(pairs.values()) == sorted(own)  # 1:1 both ways
    assert len(set(pairs.values())) == len(theirs)


@pytest.mark.parametrize(
    ("name", "kwargs", "count"),
    [
        ("resunet_a_d6", {"in_channels": 5, "num_classes": 6}, 58_037_781),
        ("resunet_a_d7", {"in_channels": 5, "num_classes": 6}, 184_537_873),
        ("fractal_resunet", {"grouped_attention": False}, 64_281_682),
    ],
)
def test_parameter_counts_of_the_authors_networks(name: str, kwargs: dict[str, object], count: int) -> None:
    assert sum(p.numel() for p in _meta_model(name, **kwargs).parameters()) == count


def test_trainable_sizes_equal_the_authors_for_resunet_a() -> None:
    # Independent of the name mapping: the authors' trainable values, GroupNorm-free, summed from the listing.
    rows = [line.split("\t") for line in (NAMES_DIR / "g_resuneta_d6.tsv").read_text().splitlines()[1:]]
    theirs = sum(int(np.prod([int(d) for d in r[1].split("x")])) for r in rows if r[4] == "True")
    model = _meta_model("resunet_a_d6", in_channels=5, num_classes=6)
    assert sum(p.numel() for p in model.parameters()) == theirs


def test_grouped_attention_false_leaves_only_attention_ungrouped() -> None:
    grouped = create_model("fractal_resunet", nf=16, depth=2, psp_depth=1)
    plain = create_model("fractal_resunet", nf=16, depth=2, psp_depth=1, grouped_attention=False)
    unit_g, unit_p = grouped.encoder.units[0], plain.encoder.units[0]
    assert unit_g.attention.query.conv.groups == 4 and unit_p.attention.query.conv.groups == 1
    assert unit_g.block.conv1.groups == unit_p.block.conv1.groups == 4


def test_a_wrong_network_is_refused_naming_what_does_not_fit() -> None:
    model = _meta_model("ceecnet_v1")
    with pytest.raises(GluonMappingError) as info:
        match_gluon_names(_shapes(model), _gluon_shapes("g_mantis_ceecnetv2.tsv"), "ceecnet_v1")
    message = str(info.value)
    assert "\n" not in message
    assert "do not fit this ceecnet_v1" in message
    assert "have no place in the model (features.convs_dn.0.0.collect.fuse.conv2d.weight" in message
    assert "get no value" in message and "shapes differ" in message


def test_grouped_weights_into_the_ungrouped_variant_name_the_shapes() -> None:
    model = _meta_model("fractal_resunet", grouped_attention=False)
    with pytest.raises(GluonMappingError, match=r"33 shapes differ \(features\.convs_dn\.0\.0\.attn\.att\.query"):
        match_gluon_names(_shapes(model), _gluon_shapes("g_xunet_fractalresnet.tsv"))


@pytest.mark.parametrize(
    ("gluon", "family", "v2", "mantis"),
    [
        (
            "features.convs_dn.3.0.attn.att.key.norm_layer.gamma",
            "fractal",
            False,
            "encoder.units.3.attention.key.norm.weight",
        ),
        ("features.convs_up.0.0.expand1.conv2.conv2d.weight", "fractal", False, "decoder.units.0.combine1.conv.weight"),
        ("features.convs_up.0.0.expand1.conv2.conv2d.weight", "fractal", True, "decoder.units.0.skip1.conv.weight"),
        ("features.convs_up.0.0.expand1.conv3.gamma1", "fractal", True, "decoder.units.0.combine1.gamma1"),
        ("head.CrispSigm.gamma", "fractal", False, "head.crisp.gamma"),
        ("encoder.Dn1.ResBlock4.BN2.running_var", "resunet_a", False, "encoder_units.0.blocks.3.norm2.running_var"),
        ("UpConv5.ResBlock1.conv2.bias", "resunet_a", False, "decoder_units.4.blocks.0.conv2.bias"),
        ("encoder.pool3.convdn.weight", "resunet_a", False, "downs.2.weight"),
        ("logits.4.weight", "resunet_a", False, "head.segm_logits.logits.4.weight"),
        ("block1.BN1.beta", "fractal", False, "block.norm1.bias"),  # a unit's own names
    ],
)
def test_name_rules(gluon: str, family: str, v2: bool, mantis: str) -> None:
    assert gluon_to_mantis_name(gluon, family, v2) == mantis


@pytest.mark.parametrize("file", ["dtypes.params", "dtypes_np.params"])
def test_reader_matches_numpy_for_files_written_by_mxnet(file: str) -> None:
    # dtypes.params: MXNet's array format V2; dtypes_np.params: V3 (numpy shape semantics).
    got = read_mxnet_params(MXNET_DIR / file)
    with np.load(MXNET_DIR / "dtypes.npz") as want:
        assert list(got) == want.files
        for key in want.files:
            assert got[key].dtype == want[key].dtype, key
            np.testing.assert_array_equal(got[key], want[key])


def test_reader_matches_a_gluon_save_parameters_file() -> None:
    got = read_mxnet_params(MXNET_DIR / "gluon_block.params")
    with np.load(MXNET_DIR / "gluon_block.npz") as want:
        assert sorted(got) == sorted(want.files)
        for key in want.files:
            np.testing.assert_array_equal(got[key], want[key])


def test_reader_refuses_truncated_and_foreign_files(tmp_path: Path) -> None:
    data = (MXNET_DIR / "gluon_block.params").read_bytes()
    cut = tmp_path / "cut.params"
    cut.write_bytes(data[:-100])
    with pytest.raises(ParamsFormatError, match=r"cut\.params: truncated MXNet parameter file"):
        read_mxnet_params(cut)
    other = tmp_path / "other.params"
    other.write_bytes(struct.pack("<QQ", 0x1234, 0) + b"x" * 32)
    with pytest.raises(ParamsFormatError, match=r"other\.params: not an MXNet parameter file \(header 0x1234"):
        read_mxnet_params(other)


def test_load_gluon_state_fills_every_value() -> None:
    params = read_mxnet_params(MXNET_DIR / "tiny_fractal_resnet_cd.params")
    model = load_gluon_state(create_model("fractal_resnet_cd", **TINY_KWARGS), params)
    state = model.state_dict()
    conv = params["features.convs_dn.1.0.block1.conv1.weight"]
    np.testing.assert_array_equal(state["encoder.units.1.block.conv1.weight"].numpy(), conv)
    per_group = params["features.conv_first.norm_layer.gamma"]  # 4 groups of 2 channels
    np.testing.assert_array_equal(state["stem.norm.weight"].numpy(), np.repeat(per_group, 2))
    assert state["encoder.units.0.gamma"].item() == pytest.approx(float(params["features.convs_dn.0.0.gamma"][0]))
    assert state["head.crisp.gamma"].item() == pytest.approx(float(params["head.CrispSigm.gamma"][0]))


def test_convert_then_predict_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    out = tmp_path / "converted"
    weights = MXNET_DIR / "tiny_fractal_resnet_cd.params"
    argv = ["convert", str(weights), "--model", "fractal_resnet_cd", "--model-kwargs", str(TINY_KWARGS), "-o", str(out)]
    assert mantis_main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    model = load_pretrained(out)
    expected = load_gluon_state(create_model("fractal_resnet_cd", **TINY_KWARGS), read_mxnet_params(weights))
    for key, value in expected.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=0)

    a = write_geotiff(tmp_path / "2019.tif", rng.integers(0, 255, (3, 24, 32), dtype=np.uint8))
    b = write_geotiff(tmp_path / "2021.tif", rng.integers(0, 255, (3, 24, 32), dtype=np.uint8))
    pred = tmp_path / "pred"
    code = mantis_main(
        ["predict", "-c", str(out), "-i", str(a), str(b), "-o", str(pred), "--window", "16", "--no-progress"]
    )
    assert code == 0, capsys.readouterr().err
    import rasterio

    with rasterio.open(pred / "2019_class.tif") as ds:
        assert (ds.count, ds.height, ds.width) == (1, 24, 32)
        assert set(np.unique(ds.read())) <= {0, 1}


def test_convert_refuses_a_wrong_model_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "converted"
    weights = MXNET_DIR / "tiny_fractal_resnet_cd.params"
    assert (
        mantis_main(
            ["convert", str(weights), "--model", "ceecnet_v1", "--model-kwargs", str(TINY_KWARGS), "-o", str(out)]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert err.startswith(f"mantis convert: error: {weights}: the weights do not fit this MantisChangeDetector:")
    assert not out.exists()  # nothing written


def test_convert_keeps_an_existing_model_unless_told(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "converted"
    args = ["convert", str(MXNET_DIR / "tiny_fractal_resnet_cd.params"), "--model", "fractal_resnet_cd"]
    args += ["--model-kwargs", str(TINY_KWARGS), "-o", str(out)]
    assert mantis_main(args) == 0
    (out / "model.safetensors").write_bytes(b"a user's file")
    assert mantis_main(args) == 2
    assert "already holds a model" in capsys.readouterr().err
    assert (out / "model.safetensors").read_bytes() == b"a user's file"  # untouched
    assert mantis_main([*args, "--overwrite"]) == 0
    assert load_pretrained(out) is not None
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]  # no temporary left


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--model", "nope"], "cannot build model 'nope': unknown model"),
        (["--model", "fractal_resnet_cd", "--model-kwargs", "[1, 2]"], "--model-kwargs: expected a mapping"),
        (["--model", "fractal_resnet_cd", "--band-mean", "0.5"], "--band-mean and --band-std must be given together"),
    ],
)
def test_convert_bad_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    code = mantis_main(["convert", str(MXNET_DIR / "gluon_block.params"), "-o", str(tmp_path / "o"), *extra])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_convert_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "none.params"
    assert mantis_main(["convert", str(missing), "--model", "fractal_resnet_cd", "-o", str(tmp_path / "o")]) == 2
    assert f"{missing}: no such file" in capsys.readouterr().err
