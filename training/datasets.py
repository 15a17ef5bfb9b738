"""YouTube-VIS clips for training SG-Net: a torch Dataset of short clips and the collate function that batches them.

A clip is ``clip_length`` annotated frames of one video in time order (2 by default: frame pairs feed the motion
loss, Eq. 4), ``gap`` annotated frames apart: 1 (consecutive) without augmentation, drawn per clip from
1..``ClipAugmentation.max_frame_gap`` with it (fewer where the video ends sooner), so the motion head learns
movements over a range of elapsed times. Each clip carries its frames' real times (``Clip.frame_times``, from the
file names: :func:`sgnet_model.data.ytvis.frame_times`). The dataset holds every clip start of every video, one plain
index each, so it works with any sampler, ``torch.utils.data.distributed.DistributedSampler`` included.

Per clip, one augmentation is drawn and applied to all its frames alike: the frames are resized to fit the
model's input size (``ModelConfig.input_width`` x ``input_height``) keeping their aspect, the same way the
streaming predictor does (bilinear); that scale is multiplied by a factor drawn from
``ClipAugmentation.scale_range`` (multi-scale training) and the clip is flipped horizontally with
``ClipAugmentation.flip_probability``. Masks are resized bilinearly too and thresholded at 0.5, so they stay on
the image's pixels; boxes are then taken from the masks (x1, y1 = first pixel, x2, y2 = last pixel + 1).
An object absent from a frame (null segmentation), or left with an empty mask or a box side under
``MIN_BOX_SIDE`` pixels after resizing, is not in that frame's targets. Crowd annotations (``iscrowd`` 1) are
not targets.

Bad data fails at construction, naming the culprit: a malformed annotation file or a category id that is not
in its categories (:class:`sgnet_model.data.ytvis.YTVISError`, from the parser), a missing frame file, a file
without annotations, categories that differ from the model's classes (:class:`DatasetError`). A frame file
that exists but cannot be decoded, or whose size differs from the annotation file's, fails when it is read.
"""
from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.ops import masks_to_boxes

from sgnet_model.config import ModelConfig
from sgnet_model.data.ytvis import Video, YTVISData, load_annotations
from sgnet_model.runtime.frame import SIZE_DIVISOR
from sgnet_model.structures import ClipBatch, FrameTargets

MIN_BOX_SIDE = 2.0  # objects whose box (after resizing) is narrower or lower than this many pixels are dropped


class DatasetError(ValueError):
    """A dataset cannot be used; the message names the video, frame or file at fault and what to do."""


@dataclasses.dataclass(frozen=True)
class ClipAugmentation:
    """Random augmentation drawn once per clip (the official SG-Net trains with flips and multi-scale)."""

    scale_range: tuple[float, float] = (0.8, 1.2)  # factor on the fit-to-input scale, drawn uniformly
    flip_probability: float = 0.5
    max_frame_gap: int = 1  # a clip's frames are 1..max_frame_gap annotated frames apart, drawn uniformly

    def __post_init__(self) -> None:
        if self.max_frame_gap < 1:
            raise DatasetError(f"max_frame_gap must be at least 1, got {self.max_frame_gap}")
        low, high = self.scale_range
        if not 0.0 < low <= high:
            raise DatasetError(f"scale_range must be two positive factors with min <= max, got {self.scale_range}")
        if not 0.0 <= self.flip_probability <= 1.0:
            raise DatasetError(f"flip_probability must lie in [0, 1], got {self.flip_probability}")


@dataclasses.dataclass
class Clip:
    """One training sample: frames of one video in time order, resized and augmented alike."""

    images: torch.Tensor  # (T, 3, h, w) uint8 RGB
    targets: list[FrameTargets]  # T frames, in the pixels of the resized frames
    video_id: int
    frame_indices: tuple[int, ...]  # positions of the frames in the video
    frame_times: tuple[float, ...]  # seconds from the clip's first frame to each frame


def read_frame(path: Path, height: int, width: int, where: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB frame read with OpenCV, checked against the size the annotation file gives."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f"{where}: cannot read frame file {path} (missing or not an image)")
    if image.shape[:2] != (height, width):
        raise DatasetError(f"{where}: frame {path} is {image.shape[1]}x{image.shape[0]}, the annotation file "
                           f"says {width}x{height}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class YTVISClipDataset(Dataset):
    """Clips of ``clip_length`` frames from a YouTube-VIS set (annotation JSON + frames folder).

    ``annotations`` is the annotation file (or its loaded :class:`YTVISData`), ``frames_dir`` the folder its
    ``file_names`` are relative to (``JPEGImages``). Labels are model class indices (categories sorted by
    id), which must name ``model_config.class_names`` in that order; track ids are the annotation ids. With
    ``augmentation`` None, frames are only resized to fit the input size (no randomness).
    """

    def __init__(self, annotations: str | Path | YTVISData, frames_dir: str | Path, model_config: ModelConfig, *,
                 clip_length: int = 2, augmentation: ClipAugmentation | None = None) -> None:
        self.data = annotations if isinstance(annotations, YTVISData) else load_annotations(annotations)
        self.frames_dir = Path(frames_dir)
        self.input_size = (model_config.input_width, model_config.input_height)
        self.clip_length = clip_length
        self.augmentation = augmentation
        if clip_length < 1:
            raise DatasetError(f"clip_length must be at least 1, got {clip_length}")
        if not self.data.has_annotations:
            raise DatasetError(f"{self.data.source} has no 'annotations' (a val/test file): training needs ground "
                               f"truth; hold out videos of train with sgnet-split instead")
        if self.data.class_names != tuple(model_config.class_names):
            raise DatasetError(f"{self.data.source}: its categories {list(self.data.class_names)} (sorted by id) "
                               f"differ from the model's class_names {list(model_config.class_names)}; set "
                               f"model.class_names to the categories in that order")
        self._check_frame_files()
        self.clips = [(video.id, start) for video in self.data.videos.values()
                      for start in range(video.length - clip_length + 1)]
        short = sum(video.length < clip_length for video in self.data.videos.values())
        if not self.clips:
            raise DatasetError(f"{self.data.source}: no video has {clip_length} frames for a clip")
        if short:
            warnings.warn(f"{self.data.source}: {short} videos shorter than {clip_length} frames give no clip",
                          stacklevel=2)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.data.class_names

    def _check_frame_files(self) -> None:
        if not self.frames_dir.is_dir():
            raise DatasetError(f"frames folder {self.frames_dir} does not exist; give the JPEGImages folder that "
                               f"the file_names of {self.data.source} are relative to")
        missing = [(video.id, index, self.frames_dir / name) for video in self.data.videos.values()
                   for index, name in enumerate(video.file_names) if not (self.frames_dir / name).is_file()]
        if missing:
            video_id, index, path = missing[0]
            more = f" (and {len(missing) - 1} more missing frames)" if len(missing) > 1 else ""
            raise DatasetError(f"video {video_id}, frame {index}: frame file {path} does not exist{more}; check "
                               f"that {self.frames_dir} is the JPEGImages folder of {self.data.source}")

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> Clip:
        video_id, start = self.clips[index]
        video = self.data.videos[video_id]
        scale = min(self.input_size[0] / video.width, self.input_size[1] / video.height)
        flip, gap = False, 1
        if self.augmentation is not None:
            low, high = self.augmentation.scale_range
            scale *= low + (high - low) * float(torch.rand(()))
            flip = float(torch.rand(())) < self.augmentation.flip_probability
            if self.clip_length > 1:
                widest = min(self.augmentation.max_frame_gap, (video.length - 1 - start) // (self.clip_length - 1))
                gap = int(torch.randint(1, widest + 1, ()))
        size = (max(1, round(video.width * scale)), max(1, round(video.height * scale)))  # (w, h)
        frame_indices = tuple(range(start, start + gap * (self.clip_length - 1) + 1, gap))
        times = video.frame_times
        images, targets = [], []
        for frame in frame_indices:
            where = f"video {video_id}, frame {frame}"
            image = read_frame(self.frames_dir / video.file_names[frame], video.height, video.width, where)
            image = _resize(image, size)
            if flip:
                image = image[:, ::-1]
            images.append(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1))
            targets.append(self._frame_targets(video, frame, size, flip))
        return Clip(torch.stack(images), targets, video_id, frame_indices,
                    tuple(times[frame] - times[start] for frame in frame_indices))

    def _frame_targets(self, video: Video, frame: int, size: tuple[int, int], flip: bool) -> FrameTargets:
        masks, labels, track_ids = [], [], []
        for annotation in self.data.annotations[video.id]:
            mask = None if annotation.iscrowd else annotation.mask(frame)
            if mask is None:
                continue
            mask = _resize(mask.astype(np.float32), size) >= 0.5  # (h, w)
            if flip:
                mask = mask[:, ::-1]
            masks.append(np.ascontiguousarray(mask))
            labels.append(self.data.class_index(annotation.category_id))
            track_ids.append(annotation.id)
        width, height = size
        if not masks:
            return _empty_targets(height, width)
        mask_tensor = torch.from_numpy(np.stack(masks))  # (n, h, w) bool
        nonempty = mask_tensor.flatten(1).any(dim=1)
        boxes = torch.zeros((len(masks), 4))
        boxes[nonempty] = masks_to_boxes(mask_tensor[nonempty])
        boxes[:, 2:] += 1  # last pixel -> its right/bottom edge
        keep = nonempty & (boxes[:, 2] - boxes[:, 0] >= MIN_BOX_SIDE) & (boxes[:, 3] - boxes[:, 1] >= MIN_BOX_SIDE)
        return FrameTargets(boxes=boxes[keep], labels=torch.tensor(labels, dtype=torch.int64)[keep],
                            masks=mask_tensor[keep].to(torch.uint8),
                            track_ids=torch.tensor(track_ids, dtype=torch.int64)[keep])


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` resized bilinearly (half-pixel centres, as the predictor's ``F.interpolate``) to ``size``
    (w, h); returned as is when the size is already right."""
    if image.shape[1::-1] == size:
        return image
    return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)


def _empty_targets(height: int, width: int) -> FrameTargets:
    return FrameTargets(boxes=torch.zeros((0, 4)), labels=torch.zeros(0, dtype=torch.int64),
                        masks=torch.zeros((0, height, width), dtype=torch.uint8),
                        track_ids=torch.zeros(0, dtype=torch.int64))


def collate_clips(clips: Sequence[Clip]) -> ClipBatch:
    """Batch clips of equal length: images zero-padded at the bottom/right to the largest height and width of
    the batch, rounded up to a multiple of SIZE_DIVISOR (32); targets keep their unpadded frame sizes."""
    lengths = {clip.images.shape[0] for clip in clips}
    if len(lengths) != 1:
        raise DatasetError(f"clips of one batch must have the same number of frames, got {sorted(lengths)}")
    height = max(clip.images.shape[2] for clip in clips)
    width = max(clip.images.shape[3] for clip in clips)
    height, width = (-(-side // SIZE_DIVISOR) * SIZE_DIVISOR for side in (height, width))
    images = torch.zeros((len(clips), lengths.pop(), 3, height, width), dtype=torch.uint8)  # (B, T, 3, H, W)
    for i, clip in enumerate(clips):
        images[i, :, :, :clip.images.shape[2], :clip.images.shape[3]] = clip.images
    return ClipBatch(images, [clip.targets for clip in clips],
                     torch.tensor([clip.frame_times for clip in clips], dtype=torch.float32))
