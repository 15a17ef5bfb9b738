"""torchvision's Mask R-CNN as sgnet-peer-bench's peer: built from random weights on the same ResNet as a SG-Net
model config, trained on the same frames with the same augmentation and optimiser recipe within a wall-clock
budget, and run frame by frame behind the predictor's interface with a plain mask-IoU tracker (iou_tracker.py).

The network: ``resnet_fpn_backbone(backbone_name=<the config's ResNet>, weights=None, trainable_layers=5)`` with
trainable BatchNorm (SG-Net's backbone from scratch has it too; torchvision's default, frozen BatchNorm, only
makes sense on pretrained weights), torchvision's FPN (P2-P5 and a pooled level, 256 channels) and standard
Mask R-CNN heads, ``num_classes`` = the set's classes + background. Nothing is downloaded: every builder is
asked for ``weights=None``. Its transform keeps the frames at the model config's input size (``min_size`` and
``max_size`` are the input's short and long sides), and while training it does not resize at all
(``_skip_resize``, as torchvision's own detection reference scripts set it when they augment the scale
themselves): the frames come from :class:`training.datasets.YTVISClipDataset` (one-frame clips) with the training
config's scale and flip augmentation, exactly as SG-Net's clips do. Detection thresholds follow the model
config: ``score_threshold``, ``nms_threshold``, ``detections_per_frame``, and after the network the same
suppression by mask overlap as SG-Net's predictor (``mask_nms_threshold``; the box threshold of 0.7 it pairs with
would otherwise leave the peer the duplicates the mask step removes).

Training: SGD with the training config's momentum, weight decay and gradient clipping, and sgnet-train's own
schedule (``training.train.schedule_progress`` and ``learning_rate_factor``: warm-up, then exponential decay over
the larger of the iteration share of ``max_iters`` and the time share of ``max_minutes``), so the peer's schedule
completes within the same budget as SG-Net's. A step takes as many frames as a SG-Net step (``batch_size`` clips
x ``clip_length`` frames).
"""
from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
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


class PeerError(RuntimeError):
    """The peer cannot be trained or run as asked; the message says why and what to do."""


@dataclasses.dataclass(frozen=True)
class PeerTraining:
    """What a training run of the peer did."""

    iterations: int
    images: int


def build_maskrcnn(model_config: ModelConfig, num_classes: int) -> MaskRCNN:
    """Mask R-CNN with random weights on ``model_config``'s ResNet, for ``num_classes`` object classes."""
    backbone = resnet_fpn_backbone(backbone_name=model_config.backbone, weights=None, norm_layer=nn.BatchNorm2d,
                                   trainable_layers=5)
    sides = sorted((model_config.input_width, model_config.input_height))
    return MaskRCNN(backbone, num_classes=num_classes + 1, min_size=sides[0], max_size=sides[1],
                    box_score_thresh=model_config.score_threshold, box_nms_thresh=model_config.nms_threshold,
                    box_detections_per_img=model_config.detections_per_frame, _skip_resize=True)


def _inputs(clips: list[Clip]) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    """One-frame clips -> Mask R-CNN's images (3, h, w) float in [0, 1] and targets (labels 1-based)."""
    images = [clip.images[0].float() / 255 for clip in clips]
    targets = [{"boxes": clip.targets[0].boxes, "labels": clip.targets[0].labels + 1, "masks": clip.targets[0].masks}
               for clip in clips]
    return images, targets


def train_maskrcnn(model: MaskRCNN, config: TrainConfig, annotations: YTVISData, frames: Path, base_lr: float,
                   progress: bool = True) -> PeerTraining:
    """Train ``model`` in place on ``annotations``' frames with ``config``'s data and optimiser recipe and its
    schedule (sgnet-train's: over ``max_minutes`` of wall clock and at most ``max_iters`` steps), at learning
    rate ``base_lr``."""
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
                group["lr"] = base_lr * learning_rate_factor(iteration, done, config)
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
