"""The debug image: masks blended in a colour per track id, boxes, and "id class score" labels."""
from __future__ import annotations

import colorsys
from typing import Sequence

import cv2
import numpy as np

from sgnet_model.instances import TrackedInstance

MASK_OPACITY = 0.5
GOLDEN_RATIO_CONJUGATE = 0.618033988749895  # consecutive ids get well separated hues


def track_colour(track_id: int) -> tuple[int, int, int]:
    """A bright RGB colour that stays the same for a track id in every frame."""
    hue = (track_id * GOLDEN_RATIO_CONJUGATE) % 1.0
    return tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb(hue, 0.85, 1.0))


def render_overlay(rgb: np.ndarray, instances: Sequence[TrackedInstance]) -> np.ndarray:
    """(H, W, 3) uint8 RGB frame -> a copy with every instance drawn; the higher score is drawn on top."""
    canvas = rgb.copy()
    ordered = sorted(instances, key=lambda instance: instance.score)
    for instance in ordered:
        colour = np.array(track_colour(instance.track_id), np.float32)
        canvas[instance.mask] = (canvas[instance.mask] * (1 - MASK_OPACITY) + colour * MASK_OPACITY).astype(np.uint8)
    for instance in ordered:
        colour = track_colour(instance.track_id)
        x1, y1, x2, y2 = (int(round(float(v))) for v in instance.box)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, 2)
        text = f"{instance.track_id} {instance.class_name} {instance.score:.2f}"
        origin = (x1 + 2, max(y1 - 4, 12))
        cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)
    return canvas
