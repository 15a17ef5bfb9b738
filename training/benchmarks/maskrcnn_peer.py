"""torchvision's Mask R-CNN as sgnet-peer-bench's peer: built from random weights on the same ResNet as a SG-Net
model config and sized like it for the set at hand, trained on the same frames with the same augmentation and
optimiser recipe, with the same share of its schedule in warm-up, and run frame by frame behind the predictor's
interface with a mask-IoU tracker that keeps lost tracks (iou_tracker.py).

The network, torchvision's Mask R-CNN with its sizes set as SG-Net's model config and the set call for (what
torchvision's defaults are sized for is COCO at 800x1333 pixels, up to about 100 objects an image):

- Backbone: ``torchvision.models.get_model(<the config's ResNet>, weights=None, norm_layer=nn.BatchNorm2d)``, every
  layer trainable with trainable BatchNorm (SG-Net's backbone from scratch has it too; torchvision's default, frozen
  BatchNorm, only makes sense on pretrained weights), under torchvision's ``BackboneWithFPN`` (P2-P5 and a pooled
  level) ``fpn_channels`` wide, SG-Net's FPN width (64 for the demo's ``resnet18_small``, not 256).
- Heads: torchvision's, with each width that equals its FPN's 256 set to ``fpn_channels`` (the four mask-head
  convolutions and the mask deconvolution) and the box head's 1024-wide MLP kept at 4x the FPN width.
- Anchors (:func:`anchor_sizes`): one size a level over the 5 levels, aspect ratios 0.5, 1 and 2 (torchvision's),
  doubling from the largest power of two not above the set's small objects: the 5th percentile of the training
  boxes' sides (square root of the box area) at the model's input size, times the smallest augmentation scale
  (:func:`small_object_side`). The demo's set (objects of 24-90 px circumscribed diameter, sgnet-synth's
  ``DEFAULT_SIZES``, at 320x192) has a 5th percentile of 22.8 px, 18.2 px at scale 0.8: anchors 16, 32, 64, 128
  and 256 px, where torchvision's 32-512 px left the finest level's anchors larger than most of its objects.
- Proposals: ``RPN_TOP_N_TRAIN`` (600 a level before NMS, 300 after) and ``RPN_TOP_N_TEST`` (300 and 100) instead
  of 2000/2000 and 1000/1000. The demo's frames hold 1-3 objects (2.1 on average), and a 320x192 frame has 15345
  anchors (16 times fewer than an 800x1216 COCO image); 300 proposals leave the RoI sampler's 32 positives
  (128 x 0.25) plenty to draw from, and 100 at test time are 5 times the demo's ``detections_per_frame`` (20).
- Sampling: ``SAMPLED_PER_IMAGE`` (128) anchors for the RPN's losses and RoIs for the box and mask heads' a frame,
  instead of 256 and 512: a frame has a few objects, not COCO's dozens.

Nothing is downloaded: every builder is asked for ``weights=None``. Its transform keeps the frames at the model
config's input size (``min_size`` and ``max_size`` are the input's short and long sides), and while training it
does not resize at all (``_skip_resize``, as torchvision's own detection reference scripts set it when they
augment the scale themselves): the frames come from :class:`training.datasets.YTVISClipDataset` (one-frame clips)
with the training config's scale and flip augmentation, exactly as SG-Net's clips do. Detection thresholds follow
the model config: ``score_threshold``, ``nms_threshold``, ``detections_per_frame``, and after the network the same
suppression by mask overlap as SG-Net's predictor (``mask_nms_threshold``; the box threshold of 0.7 it pairs with
would otherwise leave the peer the duplicates the mask step removes).

Training: SGD with the training config's momentum, weight decay and gradient clipping, over sgnet-train's
schedule progress (``training.train.schedule_progress``: the larger of the iteration share of ``max_iters`` and the
time share of ``max_minutes``), so the peer's schedule completes within the same budget as SG-Net's. Its learning
rate (:func:`peer_learning_rate_factor`) decays as SG-Net's (``training.train.learning_rate_factor``'s exponential
decay) after a linear warm-up from ``warmup_start_fraction`` over the first ``warmup_share`` of the schedule's
progress: the share SG-Net's ``warmup_iters`` took of its own run (sgnet-peer-bench measures it), so the peer does
not spend its whole budget warming up when its steps are slower than SG-Net's. A step takes as many frames as a
SG-Net step (``batch_size`` clips x ``clip_length`` frames).
"""
from __future__ import annotations

import dataclasses
import math
import sys
import time
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_utils
import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision.models import get_model
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor as MaskPredictor
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool
from tqdm import tqdm

from sgnet_model.config import ModelConfig
from sgnet_model.data.ytvis import YTVISData
from sgnet_model.inference.mask_nms import suppress_overlapping_masks
from sgnet_model.instances import FrameResult, TrackedInstance
from sgnet_model.network.backbone import fold_batch_norms
from training.benchmarks.iou_tracker import MaskIoUTracker
from training.config import TrainConfig
from training.datasets import Clip, ClipAugmentation, YTVISClipDataset
from training.train import SeededClips, learning_rate_factor, schedule_progress

MASK_THRESHOLD = 0.5  # Mask R-CNN's mask probabilities -> binary masks
FPN_LEVELS = 5  # torchvision's FPN: P2-P5 and a max-pooled P6
ASPECT_RATIOS = (0.5, 1.0, 2.0)  # torchvision's, at every level
SMALL_OBJECT_PERCENTILE = 5  # the anchors start at this percentile of the training boxes' sides
RPN_TOP_N_TRAIN = (600, 300)  # proposals a frame while training: before NMS (per level), after NMS
RPN_TOP_N_TEST = (300, 100)  # the same at inference
SAMPLED_PER_IMAGE = 128  # anchors (RPN) and RoIs (box and mask heads) sampled a frame for the losses
BOX_HEAD_WIDTH = 4  # the box head's MLP width over the FPN's (torchvision's 1024 over 256)
MASK_HEAD_CONVS = 4  # torchvision's


class PeerError(RuntimeError):
    """The peer cannot be trained or run as asked; the message says why and what to do."""


@dataclasses.dataclass(frozen=True)
class PeerTraining:
    """What a training run of the peer did."""

    iterations: int
    images: int


def anchor_sizes(small_object: float, levels: int = FPN_LEVELS) -> tuple[tuple[int, ...], ...]:
    """One anchor size a level, in input pixels: the largest power of two not above ``small_object`` (at least 1),
    doubling from the finest level (stride 4) to the coarsest; ``((16,), (32,), (64,), (128,), (256,))`` for 18.2."""
    finest = 2 ** max(0, math.floor(math.log2(small_object)))
    return tuple((finest * 2 ** level,) for level in range(levels))


def small_object_side(annotations: YTVISData, model_config: ModelConfig, min_scale: float = 1.0) -> float:
    """The ``SMALL_OBJECT_PERCENTILE``-th percentile of the boxes' sides (square root of the box area) over every
    visible object of every frame, in pixels of the frames resized to fit the model's input, times ``min_scale``
    (the training augmentation's smallest scale). A percentile, not the minimum: an object entering the frame
    shows a sliver of itself."""
    sides = []
    for video_id, video in annotations.videos.items():
        scale = min(model_config.input_width / video.width, model_config.input_height / video.height)
        rles = [rle for annotation in annotations.annotations[video_id] for rle in annotation.segmentations if rle]
        if rles:
            boxes = mask_utils.toBbox(rles)  # (n, 4) x y w h
            sides.append(np.sqrt(boxes[:, 2] * boxes[:, 3])[boxes[:, 2] * boxes[:, 3] > 0] * scale)
    if not sum(map(len, sides)):
        raise PeerError(f"{annotations.source} has no object to size the anchors by")
    return float(np.percentile(np.concatenate(sides), SMALL_OBJECT_PERCENTILE)) * min_scale


def build_maskrcnn(model_config: ModelConfig, num_classes: int, small_object: float) -> MaskRCNN:
    """Mask R-CNN with random weights on ``model_config``'s ResNet and FPN width, for ``num_classes`` object
    classes, its anchors starting at ``small_object`` input pixels (:func:`small_object_side`)."""
    resnet = get_model(model_config.backbone, weights=None, norm_layer=nn.BatchNorm2d)
    stage_channels = [resnet.inplanes // 8 * 2 ** stage for stage in range(4)]  # layer1-layer4, as torchvision's
    width = model_config.fpn_channels
    backbone = BackboneWithFPN(resnet, {f"layer{stage + 1}": str(stage) for stage in range(4)}, stage_channels,
                               width, extra_blocks=LastLevelMaxPool())
    anchors = AnchorGenerator(anchor_sizes(small_object), (ASPECT_RATIOS,) * FPN_LEVELS)
    sides = sorted((model_config.input_width, model_config.input_height))
    return MaskRCNN(backbone, num_classes=None, min_size=sides[0], max_size=sides[1], rpn_anchor_generator=anchors,
                    rpn_pre_nms_top_n_train=RPN_TOP_N_TRAIN[0], rpn_post_nms_top_n_train=RPN_TOP_N_TRAIN[1],
                    rpn_pre_nms_top_n_test=RPN_TOP_N_TEST[0], rpn_post_nms_top_n_test=RPN_TOP_N_TEST[1],
                    rpn_batch_size_per_image=SAMPLED_PER_IMAGE, box_batch_size_per_image=SAMPLED_PER_IMAGE,
                    box_head=TwoMLPHead(width * 7 ** 2, BOX_HEAD_WIDTH * width),  # on 7x7 RoIs, as torchvision's
                    box_predictor=FastRCNNPredictor(BOX_HEAD_WIDTH * width, num_classes + 1),
                    mask_head=MaskRCNNHeads(width, (width,) * MASK_HEAD_CONVS, 1),
                    mask_predictor=MaskPredictor(width, width, num_classes + 1),
                    box_score_thresh=model_config.score_threshold, box_nms_thresh=model_config.nms_threshold,
                    box_detections_per_img=model_config.detections_per_frame, _skip_resize=True)


def peer_learning_rate_factor(progress: float, warmup_share: float, config: TrainConfig) -> float:
    """The learning rate over the base rate at schedule ``progress`` (0 to 1): ``training.train``'s exponential
    decay, times a linear warm-up from ``warmup_start_fraction`` to 1 over progress [0, ``warmup_share``]."""
    decay = learning_rate_factor(0, progress, dataclasses.replace(
        config, optim=dataclasses.replace(config.optim, warmup_iters=0)))  # the decay alone
    if progress >= warmup_share:
        return decay
    start = config.optim.warmup_start_fraction
    return decay * (start + (1 - start) * progress / warmup_share)


def _inputs(clips: list[Clip]) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    """One-frame clips -> Mask R-CNN's images (3, h, w) float in [0, 1] and targets (labels 1-based)."""
    images = [clip.images[0].float() / 255 for clip in clips]
    targets = [{"boxes": clip.targets[0].boxes, "labels": clip.targets[0].labels + 1, "masks": clip.targets[0].masks}
               for clip in clips]
    return images, targets


def train_maskrcnn(model: MaskRCNN, config: TrainConfig, annotations: YTVISData, frames: Path, base_lr: float,
                   warmup_share: float, progress: bool = True) -> PeerTraining:
    """Train ``model`` in place on ``annotations``' frames with ``config``'s data and optimiser recipe and its
    schedule (sgnet-train's: over ``max_minutes`` of wall clock, when set, and at most ``max_iters`` steps), at
    learning rate ``base_lr`` warmed up over the first ``warmup_share`` of the schedule's progress."""
    if not 0.0 <= warmup_share <= 1.0:
        raise PeerError(f"the warm-up share must lie in [0, 1], got {warmup_share}")
    torch.manual_seed(config.seed)
    model_config = dataclasses.replace(config.model, class_names=annotations.class_names)
    frames_per_step = config.batch_size * config.data.clip_length
    clips = YTVISClipDataset(annotations, frames, model_config, clip_length=1,
                             augmentation=ClipAugmentation(config.data.scale_range, config.data.flip_probability))
    dataset = SeededClips(clips, config.seed)
    if len(dataset) < frames_per_step:
        raise PeerError(f"the training set has {len(dataset)} frames, fewer than one step of {frames_per_step}")
    parameters = [p for p in model.parameters() if p.requires_grad]
    optim = config.optim
    optimizer = torch.optim.SGD(parameters, lr=base_lr, momentum=optim.momentum, weight_decay=optim.weight_decay)
    iteration, images = 0, 0
    model.train()
    bar = tqdm(total=config.max_iters, desc="maskrcnn-train", unit="it", file=sys.stderr, disable=not progress,
               dynamic_ncols=True)
    started = time.monotonic()
    epoch = 0
    while True:
        dataset.epoch = epoch
        loader = DataLoader(dataset, batch_size=frames_per_step, shuffle=True, drop_last=True, collate_fn=list,
                            num_workers=config.data.workers, generator=torch.Generator().manual_seed(epoch))
        for batch in loader:
            elapsed = time.monotonic() - started
            done = schedule_progress(iteration, elapsed, config)
            if done >= 1.0:
                bar.close()
                return PeerTraining(iteration, images)
            for group in optimizer.param_groups:
                group["lr"] = base_lr * peer_learning_rate_factor(done, warmup_share, config)
            inputs, targets = _inputs(batch)
            losses = model(inputs, targets)
            loss = sum(losses.values())
            if not torch.isfinite(loss):
                raise PeerError(f"Mask R-CNN's loss became {loss.item()} at iteration {iteration}; lower "
                                f"--peer-lr (now {base_lr:g})")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if optim.grad_clip_norm > 0:
                torch.nn.utils.clip_grad_norm_(parameters, optim.grad_clip_norm)
            optimizer.step()
            iteration, images = iteration + 1, images + len(inputs)
            bar.set_postfix({name.removeprefix("loss_"): f"{value.item():.3f}" for name, value in losses.items()},
                            refresh=False)
            bar.update()
        epoch += 1


class MaskRCNNPredictor:
    """Mask R-CNN frame by frame with a :class:`MaskIoUTracker`, behind the streaming predictor's interface
    (``reset()``, ``step(image, timestamp)``), so :func:`training.evaluate.predict_videos` runs it as it runs
    SG-Net. It gets the inference preparation SG-Net's predictor gets: BatchNorms folded into the backbone's
    convolutions, channels-last memory, inference mode. ``inference_ms`` counts what SG-Net's counts: the
    frame to a tensor, the network with its pre- and post-processing (masks pasted at the frame's size), the
    masks to the host, and tracking."""

    def __init__(self, model: MaskRCNN, class_names: tuple[str, ...], tracker: MaskIoUTracker,
                 mask_nms_threshold: float = 0.0) -> None:
        model = model.eval()
        fold_batch_norms(model.backbone)
        self.model = model.to(memory_format=torch.channels_last)
        self.class_names = class_names
        self.tracker = tracker
        self.mask_nms_threshold = mask_nms_threshold  # as ModelConfig's: 0 is off
        self._reset = True

    def reset(self) -> None:
        self.tracker.reset()
        self._reset = True

    @torch.inference_mode()
    def step(self, image: np.ndarray, timestamp: float) -> FrameResult:
        """image: (H, W, 3) uint8 RGB; timestamp: seconds (the tracker links frames in order, whatever the time)."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise PeerError(f"a frame must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
        started = time.perf_counter()
        output = self.model([torch.from_numpy(image).permute(2, 0, 1).float() / 255])[0]
        masks = (output["masks"][:, 0] >= MASK_THRESHOLD).numpy()  # (N, H, W)
        scores, labels = output["scores"].numpy(), output["labels"].numpy() - 1  # background is label 0
        boxes = output["boxes"].numpy()
        if self.mask_nms_threshold > 0:
            keep = suppress_overlapping_masks(scores, masks, self.mask_nms_threshold)
            masks, scores, labels, boxes = masks[keep], scores[keep], labels[keep], boxes[keep]
        track_ids = self.tracker.update(masks, scores, labels)
        reset, self._reset = self._reset, False
        instances = [TrackedInstance(track_id=int(track_ids[i]), class_id=int(labels[i]),
                                     class_name=self.class_names[int(labels[i])], score=float(scores[i]),
                                     box=boxes[i], mask=masks[i], centre=(boxes[i, :2] + boxes[i, 2:]) / 2,
                                     motion=np.zeros(2, np.float32))
                     for i in np.flatnonzero(track_ids > 0)]
        return FrameResult(timestamp=timestamp, instances=instances,
                           inference_ms=(time.perf_counter() - started) * 1000.0, tracks_reset=reset)
