"""sgnet-weights: which weights file a training config needs, its URL and where it goes, and whether the file that
is there is right (SHA-256 prefix of its name, loads into the network). Exit 0 ready, 1 missing or bad, 2 usage.
The files are stand-ins in torchvision's layout (standin_weights.py); hashes are recomputed here with hashlib."""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import torchvision

from training import train, weights
from training.synthetic import generate_synthetic_set

RECIPES = Path(__file__).resolve().parents[2] / "config" / "train"
SMALL, R50 = RECIPES / "synthetic_small.yaml", RECIPES / "youtube_vis_r50.yaml"
IMAGENET = ["--set", "model.pretrained=imagenet"]  # the small recipe (ResNet-18) from ImageNet weights
RESNET18_URL = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url  # .../resnet18-f37072fd.pth
FCOS_URL = torchvision.models.detection.FCOS_ResNet50_FPN_Weights.COCO_V1.url


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = weights.main(argv)
    output = capsys.readouterr()
    return code, output.out, output.err


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def good_file(standins, tmp_path) -> Path:
    """The ResNet-18 stand-in named as torchvision names its files: by the first 8 hex digits of its SHA-256."""
    source = standins.path("resnet18")
    good = tmp_path / f"resnet18-{sha256(source)[:8]}.pth"
    shutil.copyfile(source, good)
    return good


def test_pretrained_none_needs_no_file(empty_torch_home, capsys):
    code, out, err = run([str(SMALL)], capsys)
    assert code == 0 and err == ""
    assert "model.pretrained: none" in out and "none needed" in out and out.endswith("status:  ready\n")


def test_a_missing_file_is_named_with_its_url_and_where_to_put_it(empty_torch_home, capsys):
    code, out, err = run(["--config", str(R50)], capsys)  # the recipe starts from COCO FCOS, in the hub cache
    hub_path = empty_torch_home / "hub" / "checkpoints" / "fcos_resnet50_fpn_coco-99b0c9b7.pth"
    assert code == 1
    assert f"url:     {FCOS_URL}\n" in out and f"path:    {hub_path} (the torch hub cache" in out
    assert err.count("\n") == 1 and err.startswith(f"sgnet-weights: error: {hub_path} does not exist"), err
    assert f"fetch {FCOS_URL}" in err and f"copy it to {hub_path}" in err and "model.pretrained_path" in err


def test_a_file_whose_sha256_matches_its_name_and_that_loads_is_ready(good_file, empty_torch_home, capsys):
    code, out, err = run([str(SMALL), *IMAGENET, "--set", f"model.pretrained_path={good_file}"], capsys)
    assert code == 0 and err == "", err
    assert f"path:    {good_file} (model.pretrained_path)" in out and "status:  ready" in out


@pytest.mark.parametrize("where", ["hub cache", "another prefix", "no prefix"])
def test_a_file_whose_sha256_does_not_match_its_name_is_reported(where, good_file, standins, empty_torch_home,
                                                                 monkeypatch, tmp_path, capsys):
    """In the hub cache under torchvision's name (whose prefix a stand-in cannot have), under a name with another
    prefix, and under a name without one (held to torchvision's prefix, f37072fd)."""
    if where == "hub cache":
        monkeypatch.setenv("TORCH_HOME", str(standins.torch_home))
        path, overrides, expected = standins.path("resnet18"), [], "f37072fd"
    else:
        name = "resnet18-0123abcd.pth" if where == "another prefix" else "weights.pth"
        path, expected = tmp_path / name, "0123abcd" if where == "another prefix" else "f37072fd"
        shutil.copyfile(good_file, path)
        overrides = ["--set", f"model.pretrained_path={path}"]
    assert Path(RESNET18_URL).name == "resnet18-f37072fd.pth" and not sha256(path).startswith(expected)
    code, out, err = run([str(SMALL), *IMAGENET, *overrides], capsys)
    assert code == 1 and "not ready (1 problem" in out
    assert err.count("\n") == 1, err  # the file loads: the name is its only problem
    assert f"{path}: its SHA-256 starts with {sha256(path)[:8]}, not {expected}" in err
    assert f"fetch {RESNET18_URL} again and copy it to {path}" in err


def test_a_truncated_file_fails_both_checks(good_file, empty_torch_home, tmp_path, capsys):
    truncated = tmp_path / "truncated" / good_file.name  # the name of the complete file, half its bytes
    truncated.parent.mkdir()
    truncated.write_bytes(good_file.read_bytes()[:good_file.stat().st_size // 2])
    code, out, err = run([str(SMALL), *IMAGENET, "--set", f"model.pretrained_path={truncated}"], capsys)
    lines = err.splitlines()
    assert code == 1 and len(lines) == 2 and "not ready (2 problems" in out, err
    assert f"{truncated}: its SHA-256 starts with {sha256(truncated)[:8]}" in lines[0]
    assert f"weights file {truncated} cannot be read" in lines[1] and f"fetch {RESNET18_URL} again" in lines[1]


def test_a_file_of_another_network_does_not_load(standins, empty_torch_home, capsys):
    resnet34 = standins.path("resnet34")  # ImageNet ResNet-34 given for the ResNet-18 of the small recipe
    code, out, err = run([str(SMALL), *IMAGENET, "--set", f"model.pretrained_path={resnet34}"], capsys)
    assert code == 1 and "not ready (2 problems" in out
    assert f"weights file {resnet34} does not fit torchvision's layout" in err.splitlines()[1]


@pytest.mark.parametrize("argv, message", [
    ([], "name the training config once"),
    ([str(SMALL), "--config", str(SMALL)], "name the training config once"),
    ([str(SMALL), "--set", "model.pretrained=coco"], "pretrained: must be one of"),
    (["missing.yaml"], "training config missing.yaml does not exist"),
])
def test_usage_errors_exit_2(argv, message, capsys):
    try:
        code = weights.main(argv)
    except SystemExit as exit:  # argparse's own usage errors
        code = exit.code
    err = capsys.readouterr().err
    assert code == 2 and message in err, err


def test_training_without_its_weights_points_at_sgnet_weights(empty_torch_home, tmp_path, capsys):
    annotations = generate_synthetic_set(tmp_path / "synth", videos=1, frames=2, width=64, height=64,
                                         sizes=(12.0, 40.0))
    code = train.main(["--config", str(R50), "--output", str(tmp_path / "run"), "--no-progress", "--set",
                       f"data.annotations={annotations}", "--set", f"data.frames={annotations.parent / 'JPEGImages'}",
                       "--set", "batch_size=1"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "weights are not on this machine" in err, err
    assert "`sgnet-weights` with the same --config and --set" in err
