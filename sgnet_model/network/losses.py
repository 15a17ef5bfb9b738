"""SG-Net's loss terms (paper, Section 3.4, Eq. 4-6)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import generalized_box_iou_loss, sigmoid_focal_loss


def box_loss(predicted: Tensor, target: Tensor) -> Tensor:
    """Eq. 5: L_box = -ln((1 + GIoU) / 2) per box pair. (n, 4) x1 y1 x2 y2 each -> (n,)."""
    one_minus_giou = generalized_box_iou_loss(predicted, target, reduction="none")  # 1 - GIoU
    return -torch.log((1 - one_minus_giou / 2).clamp(min=1e-6))


def classification_loss(logits: Tensor, targets: Tensor, alpha: float, gamma: float, normaliser: float) -> Tensor:
    """Focal loss summed over all locations and classes, divided by the number of positives."""
    return sigmoid_focal_loss(logits, targets, alpha=alpha, gamma=gamma, reduction="sum") / normaliser


def centerness_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Binary cross-entropy of the centerness branch at the positives."""
    return F.binary_cross_entropy_with_logits(logits, targets, reduction="mean")


def mask_loss(logits: Tensor, targets: Tensor, instance_of_point: Tensor, instances: int, dice_weight: float
              ) -> Tensor:
    """Per-pixel BCE as in Mask R-CNN, averaged over each instance's points, then over instances; plus
    ``dice_weight`` times the Dice loss 1 - (2 sum(p t) + 1) / (sum(p) + sum(t) + 1) of each instance's points
    (p = sigmoid(logit)), averaged over instances. logits, targets, instance_of_point (P,) -> ()."""
    per_point = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    # per-instance sums by index_add_ rather than bincount: bincount sizes its output from the largest index,
    # which on CUDA makes the host wait for the device
    def per_instance(values: Tensor) -> Tensor:
        return torch.zeros(instances, device=logits.device, dtype=values.dtype).index_add_(0, instance_of_point,
                                                                                           values)
    counts = per_instance(torch.ones_like(per_point)).clamp(min=1)
    bce = (per_instance(per_point) / counts).mean()
    if dice_weight == 0:
        return bce
    probabilities = torch.sigmoid(logits)
    dice = 1 - (2 * per_instance(probabilities * targets) + 1) / (
        per_instance(probabilities) + per_instance(targets) + 1)
    return bce + dice_weight * dice.mean()


def motion_loss(predicted: Tensor, target: Tensor) -> Tensor:
    """Eq. 4: mean L1 distance between predicted and true centre movements (both (n, 2))."""
    return (predicted - target).abs().sum(dim=1).mean()
