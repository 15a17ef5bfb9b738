"""Stand-ins for torchvision's pretrained weights files: torchvision's own networks with random values, saved in
torchvision's exact layout under torchvision's file names. Nothing is downloaded. And the one-iteration training
run of a shipped recipe from them that the recipe tests (test/training/test_recipes.py) and the node's recipe
checkpoint tests (test/ros/test_recipe_checkpoints.py) start from."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import pytest
import torch
import torchvision
from torch import nn

from training import train
from training.config import load_train_config

# What each stand-in is: torchvision's weights enum (the file name comes from its URL) and its network.
STANDINS: dict[str, tuple[torchvision.models.WeightsEnum, Callable[[], nn.Module]]] = {
    "coco_fcos": (torchvision.models.detection.FCOS_ResNet50_FPN_Weights.COCO_V1,
                  lambda: torchvision.models.detection.fcos_resnet50_fpn(weights=None, weights_backbone=None)),
    **{name: (getattr(torchvision.models, f"ResNet{name[6:]}_Weights").IMAGENET1K_V1,
              lambda name=name: getattr(torchvision.models, name)(weights=None))
       for name in ("resnet18", "resnet34", "resnet50", "resnet101")},
}
COCO_CLASS_WEIGHT, COCO_CLASS_BIAS = 0.5, 3.0  # far from what our fresh classification layer starts with


class Standins:
    """Stand-in files written on first use into ``torch_home/hub/checkpoints/`` (the torch hub cache that
    ``TORCH_HOME=torch_home`` points at)."""

    def __init__(self, torch_home: Path) -> None:
        self.torch_home = torch_home

    def path(self, kind: str) -> Path:
        weights, build = STANDINS[kind]
        path = self.torch_home / "hub" / "checkpoints" / Path(weights.url).name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            with torch.random.fork_rng(devices=[]), torch.no_grad():  # the tests' own random draws stay theirs
                torch.manual_seed(0)
                network = build()
                # BatchNorms that are not the identity, so that frozen, folded and learned differ
                for module in network.modules():
                    if isinstance(module, nn.BatchNorm2d):
                        module.running_mean.uniform_(-0.1, 0.1)
                        module.running_var.uniform_(0.8, 1.25)
                        module.weight.uniform_(0.8, 1.2)
                        module.bias.uniform_(-0.1, 0.1)
                if kind == "coco_fcos":
                    network.head.classification_head.cls_logits.weight.fill_(COCO_CLASS_WEIGHT)
                    network.head.classification_head.cls_logits.bias.fill_(COCO_CLASS_BIAS)
            torch.save(network.state_dict(), path)
        return path

    def state(self, kind: str) -> dict[str, torch.Tensor]:
        return torch.load(self.path(kind), weights_only=True)


def standin_kind(pretrained: str, backbone: str) -> str | None:
    """The stand-in a ``model.pretrained`` start loads for a backbone: None (random init), the backbone's
    ImageNet file or COCO FCOS."""
    return {"none": None, "imagenet": backbone, "coco_fcos": "coco_fcos"}[pretrained]


def train_one_iteration(config_path: Path, pretrained: str, source: str | None, annotations: Path, frames: Path,
                        size: tuple[int, int], standins: Standins, folder: Path, monkeypatch: pytest.MonkeyPatch,
                        capsys: pytest.CaptureFixture, overrides: Sequence[str] = ()) -> Path:
    """``sgnet-train --config config_path`` for one iteration on a tiny set at the network input size
    ``size`` = (width, height), from ``pretrained`` whose stand-in file is found in the torch hub cache (source
    "hub") or through ``model.pretrained_path`` (source "path"; None for pretrained "none"); ``overrides`` are
    more ``--set`` values. Returns ``folder/run/model.pt``. From then on, as on a robot, the pretrained file is
    nowhere the network could look: TORCH_HOME is an empty folder and ``model.pretrained_path`` names a removed
    link."""
    width, height = size
    kind = standin_kind(pretrained, load_train_config(config_path).model.backbone)
    settings = [f"data.annotations={annotations}", f"data.frames={frames}", "data.workers=0", "batch_size=2",
                f"model.input_width={width}", f"model.input_height={height}", f"model.pretrained={pretrained}",
                "max_iters=1", "max_minutes=0", "log_every=1", *overrides]
    linked = folder / "weights" / "pretrained.pth"
    if source == "hub":
        standins.path(kind)
        monkeypatch.setenv("TORCH_HOME", str(standins.torch_home))
    elif source == "path":
        linked.parent.mkdir()
        linked.symlink_to(standins.path(kind))
        settings.append(f"model.pretrained_path={linked}")

    run = folder / "run"
    code = train.main(["--config", str(config_path), "--output", str(run), "--no-progress",
                       *[part for setting in settings for part in ("--set", setting)]])
    assert code == 0, capsys.readouterr().err
    monkeypatch.setenv("TORCH_HOME", str(folder / "empty_torch_home"))
    linked.unlink(missing_ok=True)
    return run / "model.pt"
