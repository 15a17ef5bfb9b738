"""Stand-ins for torchvision's pretrained weights files: torchvision's own networks with random values, saved in
torchvision's exact layout under torchvision's file names. Nothing is downloaded."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
import torchvision
from torch import nn

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
