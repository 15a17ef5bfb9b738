"""ResNet + FPN giving P3..P7 (paper, Section 3.1), laid out exactly like torchvision's FCOS.

The module names (``body``, ``fpn``, ``fpn.extra_blocks``) and the P6/P7 blocks built from P5 match
``torchvision.models.detection.fcos_resnet50_fpn``, so torchvision's COCO FCOS weights load into this backbone.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from torch import nn
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torch.nn.utils.fusion import fuse_conv_bn_weights
from torchvision.ops import FrozenBatchNorm2d
from torchvision.ops.feature_pyramid_network import LastLevelP6P7

from .config import ModelConfig

FPN_STRIDES: tuple[int, ...] = (8, 16, 32, 64, 128)  # P3..P7

_IMAGENET_WEIGHTS = {
    "resnet18": torchvision.models.ResNet18_Weights.IMAGENET1K_V1,
    "resnet34": torchvision.models.ResNet34_Weights.IMAGENET1K_V1,
    "resnet50": torchvision.models.ResNet50_Weights.IMAGENET1K_V1,
    "resnet101": torchvision.models.ResNet101_Weights.IMAGENET1K_V1,
}


class PretrainedWeightsError(RuntimeError):
    """Pretrained weights were asked for but are not on this machine."""


def build_backbone(config: ModelConfig) -> BackboneWithFPN:
    """ResNet C3..C5 -> FPN P3..P5, plus P6 and P7 by stride-2 convs on P5 (as torchvision's FCOS)."""
    pretrained = config.pretrained != "none"
    # Pretrained ResNets keep their BatchNorm statistics frozen (tiny video batches would ruin them);
    # from scratch the BatchNorm layers must learn.
    norm_layer = FrozenBatchNorm2d if pretrained else nn.BatchNorm2d
    resnet = getattr(torchvision.models, config.backbone)(weights=None, norm_layer=norm_layer)
    if config.pretrained == "imagenet":
        resnet.load_state_dict(_imagenet_state_dict(config))
    channels = resnet.inplanes // 4  # C3 channels: 128 for ResNet-18/34, 512 for ResNet-50/101
    backbone = BackboneWithFPN(
        resnet,
        return_layers={"layer2": "0", "layer3": "1", "layer4": "2"},
        in_channels_list=[channels, channels * 2, channels * 4],
        out_channels=config.fpn_channels,
        extra_blocks=LastLevelP6P7(config.fpn_channels, config.fpn_channels),
    )
    if pretrained:
        _freeze_early_layers(resnet, config.trainable_backbone_layers)
    return backbone


def _freeze_early_layers(resnet: nn.Module, trainable_layers: int) -> None:
    trainable = ["layer4", "layer3", "layer2", "layer1", "conv1"][:trainable_layers]
    if trainable_layers == 5:
        trainable.append("bn1")
    for name, parameter in resnet.named_parameters():
        if not any(name.startswith(prefix) for prefix in trainable):
            parameter.requires_grad_(False)


def _imagenet_state_dict(config: ModelConfig) -> dict[str, torch.Tensor]:
    state = load_weights_file(config, _IMAGENET_WEIGHTS[config.backbone], f"ImageNet {config.backbone}")
    return {k: v for k, v in state.items() if not k.startswith("fc.")}


def coco_fcos_state_dict(config: ModelConfig) -> dict[str, torch.Tensor]:
    """torchvision's COCO FCOS ResNet-50-FPN weights for backbone, FPN and detection head.

    The classification layer is left out: COCO's 91 classes are not ours, so it keeps its fresh init.
    """
    weights = torchvision.models.detection.FCOS_ResNet50_FPN_Weights.COCO_V1
    state = load_weights_file(config, weights, "COCO FCOS ResNet-50-FPN")
    return {k: v for k, v in state.items() if not k.startswith("head.classification_head.cls_logits")}


def load_weights_file(config: ModelConfig, weights: torchvision.models.WeightsEnum,
                      what: str) -> dict[str, torch.Tensor]:
    """Read torchvision weights from ``config.pretrained_path`` or the torch hub cache, never the network."""
    file_name = Path(weights.url).name
    path = Path(config.pretrained_path) if config.pretrained_path else (
        Path(torch.hub.get_dir()) / "checkpoints" / file_name)
    if not path.is_file():
        raise PretrainedWeightsError(
            f"{what} weights are not on this machine (looked for {path}). Nothing is downloaded at run time: "
            f"fetch {weights.url} where there is network and put it at {path}, or set model.pretrained_path "
            f"to the file, or set model.pretrained to 'none' to start from random weights.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated download or another file under that name
        raise PretrainedWeightsError(f"{what} weights file {path} cannot be read ({error}); "
                                     f"download it again") from None


def fold_batch_norms(module: nn.Module) -> int:
    """Fold every BatchNorm that directly follows a convolution into that convolution (inference only).

    In torchvision's ResNet each ``bnN`` is registered right after its ``convN`` (and ``downsample`` is
    ``Sequential(conv, bn)``), so "the sibling registered just before" finds the pairs. Returns the count.
    """
    folded = 0
    for parent in list(module.modules()):
        previous: tuple[str, nn.Module] | None = None
        for name, child in list(parent.named_children()):
            if isinstance(child, (nn.BatchNorm2d, FrozenBatchNorm2d)) and previous is not None and isinstance(
                    previous[1], nn.Conv2d):
                conv = previous[1]
                conv.weight, conv.bias = fuse_conv_bn_weights(conv.weight, conv.bias, child.running_mean,
                                                              child.running_var, child.eps, child.weight,
                                                              child.bias)
                setattr(parent, name, nn.Identity())
                folded += 1
            previous = (name, child)
    return folded
