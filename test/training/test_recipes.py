"""Every shipped training recipe, from each pretrained start that applies to it, goes the whole way on the CPU:
``sgnet-train`` -> ``model.pt`` -> ``sgnet-eval`` -> the node's predictor (``StreamingPredictor.from_checkpoint``,
what the node calls). The pretrained weights are stand-ins in torchvision's exact layouts and file names
(standin_weights.py), found in the torch hub cache or through ``model.pretrained_path``; the checks follow them into the
trained network: frozen layers hold the file's tensors exactly, trained ones moved by at most one warm-up step,
and COCO's classification layer is not taken. Evaluation and serving run with the pretrained file gone."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sgnet_model.checkpoint import load_checkpoint, load_model_state, save_checkpoint
from sgnet_model.config import PRETRAINED, ModelConfig
from sgnet_model.network.model import SGNet
from sgnet_model.predictor import StreamingPredictor
from sgnet_model.data.ytvis import load_annotations
from standin_weights import COCO_CLASS_WEIGHT, standin_kind, train_one_iteration
from training import evaluate, train
from training.config import load_train_config
from training.datasets import read_frame
from training.synthetic import generate_synthetic_set
from runtime_reference import REFERENCE, REFERENCE_ARGUMENTS

RECIPES = Path(__file__).resolve().parents[2] / "config" / "train"
WIDTH, HEIGHT, FRAMES = 96, 64, 3  # small frames at the network's input size: the ResNet-50 runs stay short
# (recipe, model.pretrained, where the weights file is found: the torch hub cache or model.pretrained_path)
CASES = [
    ("synthetic_small", "none", None),
    ("synthetic_small", "imagenet", "hub"),
    ("youtube_vis_r50", "coco_fcos", "path"),
    ("youtube_vis_r50", "imagenet", "path"),
    ("youtube_vis_r50", "none", None),
]
SLOW = {("youtube_vis_r50", "coco_fcos", "path"), ("youtube_vis_r50", "imagenet", "path"),
        ("youtube_vis_r50", "none", None)}  # more than 2.5 s each: a ResNet-50 trained, evaluated and served
# One SGD step at the warm-up's first rate (base_lr * warmup_start_fraction: 5e-6 and 1e-5 in the recipes) on a
# gradient clipped to norm 10 moves a tensor by less than 2e-4 in total; random weights differ by far more.
ONE_STEP = 1e-3
# (key in the file, frozen by trainable_backbone_layers = 3): the stem and layer1 stay as loaded, layer4 learns
BACKBONE_KEYS = [("conv1.weight", True), ("bn1.running_var", True), ("bn1.weight", True),
                 ("layer1.0.conv1.weight", True), ("layer1.0.bn2.running_mean", True),
                 ("layer4.0.conv1.weight", False)]
COCO_HEAD_KEYS = ["backbone.fpn.inner_blocks.0.0.weight", "backbone.fpn.extra_blocks.p6.weight",
                  "head.classification_head.conv.0.weight", "head.regression_head.bbox_reg.weight",
                  "head.regression_head.bbox_ctrness.weight"]


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("synth")
    annotations = generate_synthetic_set(folder, videos=2, frames=FRAMES, width=WIDTH, height=HEIGHT,
                                         sizes=(12.0, 40.0), seed=5)
    return annotations, folder / "JPEGImages"


def test_every_recipe_and_every_start_is_covered():
    assert {recipe for recipe, _, _ in CASES} == {path.stem for path in RECIPES.glob("*.yaml")}
    assert {pretrained for _, pretrained, _ in CASES} == set(PRETRAINED)
    for recipe in ("synthetic_small", "youtube_vis_r50"):  # each recipe's own start is among its cases
        shipped = load_train_config(RECIPES / f"{recipe}.yaml").model.pretrained
        assert (recipe, shipped) in {(r, p) for r, p, _ in CASES}


@pytest.mark.parametrize("recipe, pretrained, source", [
    pytest.param(*case, marks=[pytest.mark.slow] if case in SLOW else [], id="-".join(map(str, case)))
    for case in CASES])
def test_recipe_trains_evaluates_and_serves(recipe, pretrained, source, tiny_set, standins, tmp_path,
                                            monkeypatch, capsys):
    annotations, frames = tiny_set
    config_path = RECIPES / f"{recipe}.yaml"
    backbone = load_train_config(config_path).model.backbone
    kind = standin_kind(pretrained, backbone)
    model_pt = train_one_iteration(config_path, pretrained, source, annotations, frames, (WIDTH, HEIGHT), standins,
                                   tmp_path, monkeypatch, capsys)
    # From here on, as on a robot, the pretrained file is nowhere: model.pt holds every weight.
    checkpoint = load_checkpoint(model_pt)
    assert checkpoint.model_config.pretrained == pretrained and checkpoint.model_config.backbone == backbone
    if kind is not None:
        assert_pretrained_weights_arrived(checkpoint.model_state, standins.state(kind), pretrained)

    capsys.readouterr()
    code = evaluate.main(["--checkpoint", str(model_pt), "--annotations", str(annotations), "--frames",
                          str(frames), "--videos", "1", "--output", str(tmp_path / "eval"), "--json",
                          "--no-progress", *REFERENCE_ARGUMENTS])
    output = capsys.readouterr()
    assert code == 0, output.err
    report = json.loads(output.out)
    assert report["videos"] == 1 and report["frames"] == FRAMES and 0.0 <= report["AP"] <= 1.0
    assert (tmp_path / "eval" / "results.json").is_file()

    predictor = StreamingPredictor.from_checkpoint(model_pt, REFERENCE)
    video = load_annotations(annotations).videos[1]
    frame = read_frame(frames / video.file_names[0], HEIGHT, WIDTH, "frame 0")
    result = predictor.step(frame, 0.0)
    assert result.timestamp == 0.0 and result.tracks_reset
    assert all(instance.mask.shape == (HEIGHT, WIDTH) for instance in result.instances)

    if kind is None:
        return
    # The network training built (FrozenBatchNorm2d) and the predictor's (BatchNorm2d, folded into the
    # convolutions) compute the same from the same file.
    training_build = SGNet(dataclasses.replace(checkpoint.model_config, pretrained_path=str(standins.path(kind))))
    training_build.eval()
    load_model_state(training_build, checkpoint, model_pt)
    image = torch.from_numpy(frame).permute(2, 0, 1)[None]  # (1, 3, 64, 96): the input size, no padding
    with torch.inference_mode():
        expected = training_build.pyramid_outputs(image)
        served = predictor.model.pyramid_outputs(image.contiguous(memory_format=torch.channels_last))
    for name in ("class_logits", "box_regression", "centerness", "regression_towers"):
        for a, b in zip(getattr(expected, name), getattr(served, name)):
            assert torch.allclose(a, b, rtol=1e-3, atol=1e-3 * float(a.abs().max())), name
    assert torch.allclose(expected.base, served.base, rtol=1e-3, atol=1e-3 * float(expected.base.abs().max()))


def assert_pretrained_weights_arrived(trained: dict[str, torch.Tensor], file: dict[str, torch.Tensor],
                                      pretrained: str) -> None:
    backbone_prefix = "backbone.body." if pretrained == "coco_fcos" else ""
    for key, frozen in BACKBONE_KEYS:
        ours, theirs = trained[f"backbone.body.{key}"], file[backbone_prefix + key]
        if frozen:
            assert torch.equal(ours, theirs), key
        else:
            assert torch.allclose(ours, theirs, atol=ONE_STEP) and not torch.equal(ours, theirs), key
    if pretrained != "coco_fcos":
        return
    for key in COCO_HEAD_KEYS:
        assert torch.allclose(trained[key], file[key], atol=ONE_STEP), key
    # COCO's classification layer (91 classes; the stand-in's all 0.5 with bias 3) is not taken: ours starts
    # from torchvision's init (normal, std 0.01; bias -log(99), the focal-loss prior of 0.01) for our classes.
    weight, bias = (trained[f"head.classification_head.cls_logits.{p}"] for p in ("weight", "bias"))
    assert weight.abs().max() < COCO_CLASS_WEIGHT / 2 and torch.allclose(bias, torch.full_like(bias, -np.log(99)),
                                                                         atol=ONE_STEP)


@pytest.mark.parametrize("backbone", ["resnet34", pytest.param("resnet101", marks=pytest.mark.slow)])
def test_imagenet_weights_of_the_other_backbones_reach_the_network_and_its_checkpoint_serves(
        backbone, standins, empty_torch_home, tmp_path):
    config = ModelConfig(backbone=backbone, pretrained="imagenet", pretrained_path=str(standins.path(backbone)),
                         class_names=("cube", "ball"), input_width=64, input_height=64)
    network = SGNet(config)
    file = standins.state(backbone)
    for key in ("conv1.weight", "layer3.1.conv1.weight", "layer4.0.downsample.1.running_var"):
        assert torch.equal(network.state_dict()[f"backbone.body.{key}"], file[key]), key
    save_checkpoint(tmp_path / "model.pt", config, network.state_dict())
    predictor = StreamingPredictor.from_checkpoint(tmp_path / "model.pt", REFERENCE)
    assert predictor.step(np.full((64, 64, 3), 128, np.uint8), 0.0).tracks_reset


@pytest.mark.parametrize("recipe, pretrained, wrong_file, expected", [
    ("synthetic_small", "imagenet", "resnet34", "weights not in the network: layer1.2"),
    ("youtube_vis_r50", "coco_fcos", "resnet50", "weights missing from the file: backbone.body.conv1.weight"),
])
def test_a_weights_file_of_another_network_is_refused_in_one_line(recipe, pretrained, wrong_file, expected, tiny_set,
                                                                 standins, empty_torch_home, tmp_path, capsys):
    annotations, frames = tiny_set
    path = standins.path(wrong_file)
    code = train.main(["--config", str(RECIPES / f"{recipe}.yaml"), "--output", str(tmp_path / "run"),
                       "--no-progress", "--set", f"data.annotations={annotations}", "--set", f"data.frames={frames}",
                       "--set", f"model.pretrained={pretrained}", "--set", f"model.pretrained_path={path}"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("sgnet-train: error: "), err
    assert f"weights file {path} does not fit torchvision's layout" in err and expected in err, err
    assert not (tmp_path / "run" / "model.pt").exists()
