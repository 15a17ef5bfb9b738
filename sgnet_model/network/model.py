"""SG-Net: FCOS detection, the spatial-granularity mask head and the centerness tracking head on one
ResNet-FPN (paper, Figure 2).

``SGNet.losses`` trains on clips (Eq. 6: L_det + L_mask + L_track); ``SGNet.pyramid_outputs`` plus
``postprocess.py`` serve inference, which the streaming predictor drives frame by frame.
"""
from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn
from torchvision.models.detection.fcos import FCOSHead

from sgnet_model.config import ModelConfig
from sgnet_model.network import losses
from sgnet_model.network.backbone import FPN_STRIDES, build_backbone, detail_channels, load_coco_fcos
from sgnet_model.network.locations import Locations
from sgnet_model.network.mask_head import (BaseMaskBranch, GranularityBlender, SpatialAttentionHead, grid_sizes,
                                           mask_regions, sample_base_features)
from sgnet_model.network.motion_head import MotionHead
from sgnet_model.network.targets import Pyramid, assign_locations, centerness_targets, regression_targets
from sgnet_model.structures import ClipBatch, FrameTargets

IMAGE_MEAN = (0.485, 0.456, 0.406)  # torchvision's ImageNet statistics, RGB in [0, 1]
IMAGE_STD = (0.229, 0.224, 0.225)
MASK_LOSS_POINTS = 256  # random points per instance box for the mask loss
MASK_LOSS_MAX_INSTANCES = 64  # positives per image that the mask loss looks at
MASK_BOX_JITTER = 0.1  # fraction of the box size by which each side may move in the mask loss
# the mask loss's points are drawn in the jittered box grown by this fraction of its size on each side, so the
# masks are learned around the box too and may be pasted with a margin (ModelConfig.mask_margin)
MASK_LOSS_MARGIN = 0.1


@dataclasses.dataclass
class PyramidOutputs:
    """Dense outputs of one forward pass, per level (B, ., h, w) for P3..P7."""

    class_logits: list[Tensor]  # (B, C, h, w)
    box_regression: list[Tensor]  # (B, 4, h, w): l, t, r, b in strides, >= 0
    centerness: list[Tensor]  # (B, 1, h, w) logits
    regression_towers: list[Tensor]  # (B, channels, h, w): what the centerness and motion heads see
    attention_towers: list[Tensor]  # (B, channels, h, w): input of the attention scores' last conv
    base: Tensor  # (B, K, H / 2, W / 2): the base features F
    image_size: tuple[int, int]  # padded (H, W)

    def pyramid(self) -> Pyramid:
        sizes = [tuple(t.shape[-2:]) for t in self.class_logits]
        return Pyramid.build(sizes, FPN_STRIDES, self.base.device)

    def in_float32(self) -> PyramidOutputs:
        """The same outputs in fp32 (from a forward pass under bf16 or fp16 autocast)."""
        return dataclasses.replace(self, base=self.base.float(), **{
            name: [t.float() for t in getattr(self, name)]
            for name in ("class_logits", "box_regression", "centerness", "regression_towers", "attention_towers")})


def flatten_levels(per_level: list[Tensor]) -> Tensor:
    """[(B, c, h, w)] -> (B, sum h*w, c), level by level, row-major: the order of Pyramid."""
    return torch.cat([t.flatten(2).transpose(1, 2) for t in per_level], dim=1)


def decode_boxes(regression: Tensor, centres: Tensor, strides: Tensor) -> Tensor:
    """(n, 4) l, t, r, b in strides at locations (n, 2) -> (n, 4) boxes x1 y1 x2 y2 in input pixels."""
    distances = regression * strides[:, None]
    return torch.cat((centres - distances[:, :2], centres + distances[:, 2:]), dim=1)


class SGNet(nn.Module):
    def __init__(self, config: ModelConfig, load_pretrained: bool = True) -> None:
        """``load_pretrained=False`` builds the network of a pretrained config (``config.pretrained``) without
        reading its weights file: for weights that come from a checkpoint (fine-tuning, training/finetune.py)."""
        super().__init__()
        self.config = config
        self.backbone = build_backbone(config, load_pretrained)
        # torchvision's FCOS head: the same module names, so COCO FCOS weights load into it.
        self.head = FCOSHead(config.fpn_channels, num_anchors=1, num_classes=config.num_classes,
                             num_convs=config.head_convs)
        self.attention = SpatialAttentionHead(config)
        self.base_masks = BaseMaskBranch(config, detail_channels(config))
        self.motion = MotionHead(config)
        self.blender = GranularityBlender(config)
        self.register_buffer("image_mean", torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1) * 255, persistent=False)
        self.register_buffer("image_std", torch.tensor(IMAGE_STD).view(1, 3, 1, 1) * 255, persistent=False)
        if config.pretrained == "coco_fcos" and load_pretrained:
            load_coco_fcos(self, config)

    def forward(self, batch: ClipBatch) -> dict[str, Tensor]:
        """Training: the loss terms of ``losses`` (so that DistributedDataParallel wraps them). Inference goes
        through ``pyramid_outputs`` and postprocess.py."""
        return self.losses(batch)

    def pyramid_outputs(self, images: Tensor) -> PyramidOutputs:
        """images (B, 3, H, W) uint8 or float in 0..255, RGB, H and W multiples of 32."""
        x = (images.to(self.image_mean.dtype) - self.image_mean) / self.image_std
        pyramid, detail = self.backbone.pyramid_and_detail(x)
        fpn = list(pyramid.values())  # P3..P7, (B, channels, H / s, W / s)
        cls_head, reg_head = self.head.classification_head, self.head.regression_head
        regression_towers = [reg_head.conv(f) for f in fpn]
        return PyramidOutputs(
            class_logits=[cls_head.cls_logits(cls_head.conv(f)) for f in fpn],
            box_regression=[torch.relu(reg_head.bbox_reg(t)) for t in regression_towers],
            centerness=[reg_head.bbox_ctrness(t) for t in regression_towers],
            regression_towers=regression_towers,
            attention_towers=self.attention(fpn),
            base=self.base_masks(fpn, detail),
            image_size=(images.shape[-2], images.shape[-1]),
        )

    def mask_logits(self, outputs: PyramidOutputs, locations: Locations, boxes: Tensor, instance_of_point: Tensor,
                    points: Tensor) -> Tensor:
        """Eq. 1-2 for the instances found at ``locations`` with ``boxes`` (N, 4), at image points (P, 2)."""
        attention = self.attention.scores_at(outputs.attention_towers, locations)  # (N, G*G, K)
        grids = grid_sizes(boxes, self.config.grid_cell_pixels, self.config.max_grid)  # (N, 2)
        features = sample_base_features(outputs.base, outputs.image_size, locations.batch[instance_of_point],
                                        points)  # (P, K)
        return self.blender(features, attention, boxes, grids, instance_of_point, points)

    def losses(self, batch: ClipBatch) -> dict[str, Tensor]:
        """Eq. 6 on a batch of clips: classification, box (Eq. 5), centerness, mask and motion (Eq. 4)."""
        outputs = self.pyramid_outputs(batch.images.flatten(0, 1))  # images ordered clip by clip
        # Under mixed precision the network runs in autocast's dtype, the losses and the small heads they sample
        # (attention scores, blender, motion) in fp32: bf16 keeps 8 bits, a box side of 256 px is 1-2 px off.
        with torch.autocast(batch.images.device.type, enabled=False):
            return self._losses(outputs.in_float32(), batch)

    def _losses(self, outputs: PyramidOutputs, batch: ClipBatch) -> dict[str, Tensor]:
        frames = batch.images.shape[1]
        targets = [frame for clip in batch.targets for frame in clip]
        pyramid = outputs.pyramid()
        matches, first_box = [], 0
        for frame in targets:  # frames of the batch; box indices into the batch's concatenated ground truth
            match = assign_locations(frame.boxes, pyramid, self.config.center_sampling_radius)  # (L,)
            matches.append(torch.where(match >= 0, match + first_box, match))
            first_box += len(frame.boxes)
        matches = torch.stack(matches)  # (B*T, L)
        image, location = torch.nonzero(matches >= 0, as_tuple=True)  # the positives: the one host sync
        box_index = matches[image, location]
        gt_boxes = torch.cat([t.boxes for t in targets])[box_index]
        gt_labels = torch.cat([t.labels for t in targets])[box_index]
        positives = max(1.0, float(image.numel()))

        class_logits = flatten_levels(outputs.class_logits)  # (B*T, L, C)
        class_targets = torch.zeros_like(class_logits)
        class_targets[image, location, gt_labels] = 1.0
        centres, strides = pyramid.centres[location], pyramid.strides[location]
        predicted_boxes = decode_boxes(flatten_levels(outputs.box_regression)[image, location], centres, strides)
        centerness_logits = flatten_levels(outputs.centerness)[image, location, 0]
        zero = class_logits.sum() * 0.0  # keeps the graph when a batch has no positive
        result = {
            "cls": losses.classification_loss(class_logits, class_targets, self.config.focal_alpha,
                                              self.config.focal_gamma, positives),
            "box": losses.box_loss(predicted_boxes, gt_boxes).mean() if image.numel() else zero,
            "centerness": losses.centerness_loss(centerness_logits, centerness_targets(
                regression_targets(centres, gt_boxes))) if image.numel() else zero,
        }
        locations = Locations(image, pyramid.level[location], pyramid.y[location], pyramid.x[location])
        result["mask"] = self._mask_loss(outputs, targets, locations, box_index, gt_boxes) if image.numel() else zero
        result["motion"] = self._motion_loss(outputs, targets, batch.frame_times.flatten(), frames, locations,
                                             box_index, gt_boxes, strides, zero) if frames > 1 else zero
        return result

    def _mask_loss(self, outputs: PyramidOutputs, targets: list[FrameTargets], locations: Locations,
                   box_index: Tensor, gt_boxes: Tensor) -> Tensor:
        """Per-pixel BCE plus Dice (``losses.mask_loss``) over each positive's mask region, estimated at
        MASK_LOSS_POINTS points per positive: a ``mask_boundary_fraction`` of them from the ground truth's
        boundary band (``_boundary_points``), where the IoU at 0.75-0.95 is won or lost, the rest uniform.

        The box that places the sub-regions (and decides the grid of Eq. 1) is the ground-truth box with each
        side moved at random by up to MASK_BOX_JITTER of the box's size: at inference the predicted box does
        that job, and a box a few pixels off must not land on sub-region layouts the head never learned. Points
        are drawn in that box grown by MASK_LOSS_MARGIN (``mask_regions``), so that inference may paste masks
        with a margin (``mask_margin``). Boxes and regions stay inside their own frame, not the padded batch: the
        padding has no ground truth.
        """
        config = self.config
        keep = _sample_per_image(locations.batch, MASK_LOSS_MAX_INSTANCES)
        locations = Locations(*(getattr(locations, f.name)[keep] for f in dataclasses.fields(Locations)))
        frame_sizes = torch.tensor([frame.masks.shape[-2:] for frame in targets], device=gt_boxes.device)
        boxes = _jitter_boxes(gt_boxes[keep], MASK_BOX_JITTER, frame_sizes[locations.batch])
        regions = _clip_to_frames(mask_regions(boxes, MASK_LOSS_MARGIN), frame_sizes[locations.batch])
        truth = _MaskTable(targets, box_index[keep])
        count = boxes.shape[0]
        boundary = round(MASK_LOSS_POINTS * config.mask_boundary_fraction)
        points = torch.cat((_boundary_points(truth, regions, boundary),
                            _uniform_points(regions, MASK_LOSS_POINTS - boundary)), dim=1)  # (N, M, 2)
        instance_of_point = torch.arange(count, device=boxes.device).repeat_interleave(MASK_LOSS_POINTS)
        points = points.flatten(0, 1)
        logits = self.mask_logits(outputs, locations, boxes, instance_of_point, points)
        return losses.mask_loss(logits, truth.at(points, instance_of_point).to(points.dtype), instance_of_point,
                                count, config.mask_dice_weight)

    def _motion_loss(self, outputs: PyramidOutputs, targets: list[FrameTargets], frame_times: Tensor, frames: int,
                     locations: Locations, box_index: Tensor, gt_boxes: Tensor, strides: Tensor, zero: Tensor
                     ) -> Tensor:
        """Eq. 4 on the positives of frames 1..T-1 whose object is also in the frame before.

        Targets are the box-centre movements from the clip's previous frame, divided by the level's stride (the
        unit the head predicts in); the head is told the real time between the two frames (frame_times: (B*T,)
        seconds, clip by clip).
        """
        track_ids = torch.cat([t.track_ids for t in targets])  # (G,) every ground-truth object of the batch
        object_image = torch.cat([torch.full((len(t.track_ids),), i, device=strides.device)
                                  for i, t in enumerate(targets)])
        object_boxes = torch.cat([t.boxes for t in targets])
        # each positive's object in the frame before: the same track id, one image earlier in the same clip
        same = ((track_ids[box_index][:, None] == track_ids[None, :])
                & (object_image[None, :] == locations.batch[:, None] - 1)
                & (locations.batch % frames != 0)[:, None])  # (P, G)
        found, before = same.int().max(dim=1)
        valid = torch.nonzero(found).squeeze(1)  # the one host sync of this loss
        if valid.numel() == 0:
            return zero
        chosen = Locations(*(getattr(locations, f.name)[valid] for f in dataclasses.fields(Locations)))
        boxes, previous_boxes = gt_boxes[valid], object_boxes[before[valid]]
        target = ((boxes[:, :2] + boxes[:, 2:]) / 2 - (previous_boxes[:, :2] + previous_boxes[:, 2:]) / 2
                  ) / strides[valid, None]
        towers = outputs.regression_towers
        previous = [torch.roll(t, shifts=1, dims=0) for t in towers]  # image i sees image i - 1 of its clip
        elapsed = frame_times - torch.roll(frame_times, shifts=1)  # (B*T,) meaningful for frames 1..T-1
        return losses.motion_loss(self.motion(towers, previous, chosen, elapsed), target)


class _MaskTable:
    """The ground-truth masks of a batch's frames in one flat table, looked up at image points."""

    def __init__(self, targets: list[FrameTargets], object_of_instance: Tensor) -> None:
        """object_of_instance (N,): each instance's object in the batch's concatenated ground truth."""
        self.table = torch.cat([frame.masks.flatten() for frame in targets])
        device = object_of_instance.device
        starts, heights, widths, first = [], [], [], 0
        for frame in targets:  # frames of the batch, not instances
            count, height, width = frame.masks.shape
            starts.append(first + torch.arange(count, device=device) * (height * width))
            heights.append(torch.full((count,), height, device=device))
            widths.append(torch.full((count,), width, device=device))
            first += frame.masks.numel()
        self.start = torch.cat(starts)[object_of_instance]  # (N,)
        self.height = torch.cat(heights)[object_of_instance]
        self.width = torch.cat(widths)[object_of_instance]

    def at(self, points: Tensor, instance: Tensor) -> Tensor:
        """The mask of ``instance`` (...,) at the pixel holding each point (..., 2), 0 or 1 (uint8); points
        outside the frame take the nearest pixel's value."""
        width, height = self.width[instance], self.height[instance]
        px = torch.minimum(points[..., 0].long().clamp(min=0), width - 1)
        py = torch.minimum(points[..., 1].long().clamp(min=0), height - 1)
        return self.table[self.start[instance] + py * width + px]


BOUNDARY_CANDIDATES = 8  # uniform candidates drawn per boundary point wanted
BOUNDARY_BAND = 2.0  # input pixels: a point is in the boundary band when the mask changes within this distance


def _uniform_points(regions: Tensor, count: int) -> Tensor:
    """(N, count, 2) points uniform in each (N, 4) region."""
    uniform = torch.rand((regions.shape[0], count, 2), device=regions.device)
    return regions[:, None, :2] + uniform * (regions[:, None, 2:] - regions[:, None, :2])


def _boundary_points(truth: _MaskTable, regions: Tensor, count: int) -> Tensor:
    """(N, count, 2) points of each region, preferring the ground truth's boundary band: of BOUNDARY_CANDIDATES
    x count uniform candidates, those whose mask value differs from the value BOUNDARY_BAND pixels away in one of
    the four axis directions come first, in random order, then the others (an object smaller than the band, or
    a region without boundary, still gets its points)."""
    candidates = _uniform_points(regions, BOUNDARY_CANDIDATES * count)  # (N, C, 2)
    instance = torch.arange(regions.shape[0], device=regions.device)[:, None].expand(candidates.shape[:2])
    here = truth.at(candidates, instance)
    offsets = torch.tensor([[BOUNDARY_BAND, 0.0], [-BOUNDARY_BAND, 0.0], [0.0, BOUNDARY_BAND], [0.0, -BOUNDARY_BAND]],
                           device=regions.device)
    near_edge = torch.zeros_like(here, dtype=torch.bool)
    for offset in offsets:  # four directions
        near_edge |= truth.at(candidates + offset, instance) != here
    priority = near_edge.to(candidates.dtype) + torch.rand(near_edge.shape, device=regions.device)
    chosen = priority.topk(count, dim=1).indices  # (N, count)
    return candidates.gather(1, chosen[..., None].expand(-1, -1, 2))


def _clip_to_frames(boxes: Tensor, frame_sizes: Tensor) -> Tensor:
    """(n, 4) boxes clipped to their frames of (n, 2) height, width."""
    width_height = frame_sizes.flip(1).to(boxes.dtype)
    return torch.cat((boxes[:, :2].clamp(min=0), torch.minimum(boxes[:, 2:], width_height)), dim=1)


def _jitter_boxes(boxes: Tensor, fraction: float, frame_sizes: Tensor) -> Tensor:
    """Each side of each (n, 4) box moved by up to ``fraction`` of the box's width or height, kept inside its
    frame of (n, 2) height, width and at least one pixel wide."""
    size = (boxes[:, 2:] - boxes[:, :2]).repeat(1, 2)
    moved = _clip_to_frames(boxes + (torch.rand_like(boxes) * 2 - 1) * fraction * size, frame_sizes)
    low = torch.minimum(moved[:, :2], frame_sizes.flip(1).to(boxes.dtype) - 1)
    return torch.cat((low, torch.maximum(moved[:, 2:], low + 1)), dim=1)


def _sample_per_image(image_of_item: Tensor, limit: int) -> Tensor:
    """Indices of at most ``limit`` items per image, chosen at random."""
    order = torch.randperm(image_of_item.numel(), device=image_of_item.device)
    shuffled = image_of_item[order]
    rank_in_image = torch.zeros_like(shuffled)
    sorted_images, by_image = torch.sort(shuffled, stable=True)
    starts = torch.searchsorted(sorted_images, sorted_images, right=False)
    rank_in_image[by_image] = torch.arange(shuffled.numel(), device=shuffled.device) - starts
    return torch.sort(order[rank_in_image < limit]).values
