"""The two mask forms the node publishes: a run-length encoded mask per instance, and the label image.

Run-length encoding is COCO's uncompressed form (see msg/Instance.msg): the pixels are read column by column
(column-major), and the counts are the lengths of alternating runs of background and object, starting with
background. Decoding goes through pycocotools; pycocotools only encodes to its compressed string form, so the
uncompressed counts are computed here with numpy from the same column-major order. pycocotools is imported by
the decoder only: the node encodes and never needs it.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from sgnet_model.instances import TrackedInstance

# mono16 holds track ids 1..65535; larger ids wrap around (see label_value).
LABEL_MAX = np.iinfo(np.uint16).max


class MaskError(ValueError):
    """A run-length encoded mask whose counts do not describe a height x width mask."""


def encode_mask(mask: np.ndarray) -> np.ndarray:
    """mask: (H, W) bool -> (K,) uint32 run lengths in column-major order, background run first."""
    if mask.ndim != 2 or mask.size == 0:
        raise MaskError(f"a mask must be a non-empty (H, W) array, got shape {mask.shape}")
    pixels = np.ravel(mask.astype(bool, copy=False), order="F")  # (H*W,) column by column
    change_points = np.flatnonzero(pixels[1:] != pixels[:-1]) + 1
    run_lengths = np.diff(np.concatenate(([0], change_points, [pixels.size])))
    if pixels[0]:
        run_lengths = np.concatenate(([0], run_lengths))  # the first run always counts background
    return run_lengths.astype(np.uint32)


def decode_mask(height: int, width: int, counts: Sequence[int] | np.ndarray) -> np.ndarray:
    """Uncompressed COCO counts -> (height, width) bool mask, decoded by pycocotools."""
    counts = np.asarray(counts, dtype=np.int64)
    if height <= 0 or width <= 0:
        raise MaskError(f"mask size must be positive, got {height}x{width} (height x width)")
    if counts.ndim != 1 or (counts < 0).any() or int(counts.sum()) != height * width:
        raise MaskError(f"run-length counts add up to {int(counts.sum()) if counts.ndim == 1 else '?'} pixels, "
                        f"but the mask has height x width = {height * width}")
    from pycocotools import mask as mask_utils  # consumers only (see the module docstring)

    rle = mask_utils.frPyObjects({"size": [height, width], "counts": counts.tolist()}, height, width)
    return mask_utils.decode(rle).astype(bool)


def instance_mask(instance) -> np.ndarray:
    """The full-resolution (H, W) bool mask of an ``sgnet_ros/Instance`` message."""
    return decode_mask(instance.mask_height, instance.mask_width, instance.mask_counts)


def label_value(track_id: int) -> int:
    """The label image pixel of a track: the track id itself up to 65535, then wrapping to 1, 2, ... (0 stays
    background). The instances message always carries the full 32-bit id."""
    return (track_id - 1) % LABEL_MAX + 1


def _paint(instances: Sequence[TrackedInstance], height: int, width: int, value_of, dtype: type) -> np.ndarray:
    """(H, W) of ``value_of(instance)`` where its mask covers the pixel, 0 elsewhere; where masks overlap, the
    instance with the higher score takes the pixel (painted last)."""
    image = np.zeros((height, width), dtype)
    for instance in sorted(instances, key=lambda item: item.score):
        image[instance.mask] = value_of(instance)
    return image


def label_image(instances: Sequence[TrackedInstance], height: int, width: int) -> np.ndarray:
    """(H, W) uint16: each pixel the label_value of the track whose mask covers it, 0 for background. Where masks
    overlap, the instance with the higher score takes the pixel."""
    return _paint(instances, height, width, lambda instance: label_value(instance.track_id), np.uint16)


def class_image(instances: Sequence[TrackedInstance], height: int, width: int, class_count: int) -> np.ndarray:
    """(H, W): each pixel class_id + 1 of the instance covering it (the higher score where masks overlap), 0 for
    background; uint8 (mono8) while the classes fit, uint16 beyond 254 classes."""
    dtype = np.uint8 if class_count < 255 else np.uint16
    return _paint(instances, height, width, lambda instance: instance.class_id + 1, dtype)
