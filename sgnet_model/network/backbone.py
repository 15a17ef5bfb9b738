"""ResNet + FPN giving P3..P7 (paper, Section 3.1), laid out exactly like torchvision's FCOS, and the torchvision
weights files a network can start from.

The module names (``body``, ``fpn``, ``fpn.extra_blocks``) and the P6/P7 blocks built from P5 match
``torchvision.models.detection.fcos_resnet50_fpn``, so torchvision's COCO FCOS weights load into this backbone.

Weights files are only ever read from this machine (``model.pretrained_path`` or the torch hub cache, under
torchvision's own file name), never downloaded, and must hold exactly torchvision's layout: a file that does not
fit is refused with the tensors that differ, not half loaded. Whether a file is byte for byte torchvision's (the
SHA-256 prefix in its name) is ``sgnet-weights``' business: training takes any file of the right layout.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
import torchvision
from torch import Tensor, nn
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torch.nn.utils.fusion import fuse_conv_bn_weights
from torchvision.ops import FrozenBatchNorm2d
from torchvision.ops.feature_pyramid_network import LastLevelP6P7

from sgnet_model.checkpoint import state_dict_mismatch
from sgnet_model.config import ModelConfig

FPN_STRIDES: tuple[int, ...] = (8, 16, 32, 64, 128)  # P3..P7

_IMAGENET_WEIGHTS = {
    "resnet18": torchvision.models.ResNet18_Weights.IMAGENET1K_V1,
    "resnet34": torchvision.models.ResNet34_Weights.IMAGENET1K_V1,
    "resnet50": torchvision.models.ResNet50_Weights.IMAGENET1K_V1,
    "resnet101": torchvision.models.ResNet101_Weights.IMAGENET1K_V1,
}


COCO_CLASS_LAYER = "head.classification_head.cls_logits."  # COCO's 91 classes: never loaded into our heads


class PretrainedWeightsError(RuntimeError):
    """Pretrained weights were asked for but are not on this machine, or their file is not torchvision's."""


@dataclasses.dataclass(frozen=True)
class PretrainedFile:
    """The torchvision weights file a config starts from, and where this machine keeps it."""

    description: str  # e.g. "COCO FCOS ResNet-50-FPN"
    url: str  # torchvision's download address
    path: Path  # model.pretrained_path, or torchvision's file name in the torch hub cache

    @property
    def file_name(self) -> str:
        """torchvision's name for the file: ``<model>-<first hex digits of its SHA-256>.pth``."""
        return Path(self.url).name


def pretrained_file(config: ModelConfig) -> PretrainedFile | None:
    """The weights file ``config.pretrained`` asks for; None for "none"."""
    if config.pretrained == "none":
        return None
    if config.pretrained == "imagenet":
        weights, description = _IMAGENET_WEIGHTS[config.backbone], f"ImageNet {config.backbone}"
    else:
        weights, description = torchvision.models.detection.FCOS_ResNet50_FPN_Weights.COCO_V1, \
            "COCO FCOS ResNet-50-FPN"
    path = Path(config.pretrained_path) if config.pretrained_path else (
        Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name)
    return PretrainedFile(description, weights.url, path)


class ResNetFPN(BackboneWithFPN):
    """torchvision's ResNet + FPN whose body also hands out C2, ResNet's layer1 (stride 4), for the base mask
    module. ``forward`` gives P3..P7 alone, as torchvision's FCOS expects of a backbone."""

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return self.pyramid_and_detail(x)[0]

    def pyramid_and_detail(self, x: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        """x (B, 3, H, W) normalised -> (P3..P7 of (B, fpn_channels, H / s, W / s), C2 (B, c, H / 4, W / 4))."""
        features = self.body(x)  # C2..C5
        detail = features.pop("detail")
        return self.fpn(features), detail


def build_backbone(config: ModelConfig, load_pretrained: bool = True) -> ResNetFPN:
    """ResNet C3..C5 -> FPN P3..P5, plus P6 and P7 by stride-2 convs on P5 (as torchvision's FCOS); C2 passes
    through untouched for the base mask module. ``load_pretrained=False``: the network a pretrained config
    describes (frozen BatchNorm and early layers) without reading the weights file."""
    pretrained = config.pretrained != "none"
    # Pretrained ResNets keep their BatchNorm statistics frozen (tiny video batches would ruin them);
    # from scratch the BatchNorm layers must learn.
    norm_layer = FrozenBatchNorm2d if pretrained else nn.BatchNorm2d
    resnet = getattr(torchvision.models, config.backbone)(weights=None, norm_layer=norm_layer)
    if config.pretrained == "imagenet" and load_pretrained:
        file = pretrained_file(config)
        copy_weights(resnet, read_weights_file(file), file)  # its fc layer too, dropped with the classifier below
    channels = detail_channels(config) * 2  # C3 channels: 128 for ResNet-18/34, 512 for ResNet-50/101
    backbone = ResNetFPN(
        resnet,
        return_layers={"layer1": "detail", "layer2": "0", "layer3": "1", "layer4": "2"},
        in_channels_list=[channels, channels * 2, channels * 4],
        out_channels=config.fpn_channels,
        extra_blocks=LastLevelP6P7(config.fpn_channels, config.fpn_channels),
    )
    if pretrained:
        _freeze_early_layers(resnet, config.trainable_backbone_layers)
    return backbone


def detail_channels(config: ModelConfig) -> int:
    """Channels of C2 (ResNet's layer1): 64 for ResNet-18/34, 256 for ResNet-50/101."""
    return 64 if config.backbone in ("resnet18", "resnet34") else 256


def _freeze_early_layers(resnet: nn.Module, trainable_layers: int) -> None:
    trainable = ["layer4", "layer3", "layer2", "layer1", "conv1"][:trainable_layers]
    if trainable_layers == 5:
        trainable.append("bn1")
    for name, parameter in resnet.named_parameters():
        if not any(name.startswith(prefix) for prefix in trainable):
            parameter.requires_grad_(False)


def load_coco_fcos(model: nn.Module, config: ModelConfig) -> None:
    """torchvision's COCO FCOS ResNet-50-FPN weights into ``model.backbone`` and ``model.head`` (same names).

    The classification layer is left out: COCO's 91 classes are not ours, so it keeps its fresh init.
    """
    file = pretrained_file(config)
    state = {k: v for k, v in read_weights_file(file).items() if not k.startswith(COCO_CLASS_LAYER)}
    copy_weights(model, state, file, within=("backbone.", "head."), leave=COCO_CLASS_LAYER)


def read_weights_file(file: PretrainedFile) -> dict[str, torch.Tensor]:
    """The state dict in ``file.path``, read weights-only; never from the network."""
    if not file.path.is_file():
        raise PretrainedWeightsError(
            f"{file.description} weights are not on this machine (looked for {file.path}). Nothing is downloaded "
            f"at run time: fetch {file.url} where there is network and put it at {file.path}, or set "
            f"model.pretrained_path to the file, or set model.pretrained to 'none' to start from random weights.")
    try:
        state = torch.load(file.path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated download or another file under that name
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise PretrainedWeightsError(f"{file.description} weights file {file.path} cannot be read ({reason}); "
                                     f"fetch {file.url} again") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise PretrainedWeightsError(f"{file.description} weights file {file.path} does not hold a state dict "
                                     f"(a {type(state).__name__}); it should be torchvision's {file.file_name} "
                                     f"from {file.url}")
    return state


def copy_weights(module: nn.Module, state: dict[str, torch.Tensor], file: PretrainedFile,
                 within: tuple[str, ...] = ("",), leave: str | None = None) -> None:
    """Copy a torchvision state dict into ``module``. It must hold exactly the module's tensors whose names start
    with one of ``within`` (those starting with ``leave`` aside) in the same shapes: anything else is not the
    layout torchvision writes for this network, and the module is left untouched."""
    expected = {k: v for k, v in module.state_dict().items()
                if k.startswith(within) and not (leave and k.startswith(leave))}
    problems = state_dict_mismatch(expected, state)
    if problems:
        raise PretrainedWeightsError(
            f"{file.description} weights file {file.path} does not fit torchvision's layout for this network "
            f"({'; '.join(problems)}); it should be torchvision's {file.file_name} from {file.url}")
    module.load_state_dict(state, strict=False)  # the rest of the module keeps its init


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
