"""Suppression by mask overlap, after box NMS (``ModelConfig.mask_nms_threshold``; docs/model.md, "Suppression
by mask overlap").

Box NMS decides by box IoU, which is blind to shape: two crossing objects have overlapping boxes and separate
masks, and a poorly placed duplicate of one object can have a box IoU under the threshold while its mask covers
the same pixels. With a looser box threshold in front (0.7) and this step behind it, an instance is dropped when
its mask's IoU with a higher-scored kept instance's mask is above the threshold: one object, one instance, while
crossing objects keep theirs. It runs on the host masks at the frame's resolution, after every backend, so the
exported graphs need no change; the IoU of a pair is counted only inside the rectangle where both masks have
pixels.
"""
from __future__ import annotations

import numpy as np


def mask_extents(masks: np.ndarray) -> np.ndarray:
    """(N, 4) int64 rows and columns [y0, y1) x [x0, x1) holding each (N, H, W) mask's pixels; zeros when empty.
    One pass over the whole masks (their rows), then only the rows that hold pixels."""
    extents = np.zeros((len(masks), 4), np.int64)
    for k, row in enumerate(masks.any(axis=2)):  # (H,) per mask
        if row.any():
            ys = np.flatnonzero(row)
            xs = np.flatnonzero(masks[k, ys[0]:ys[-1] + 1].any(axis=0))
            extents[k] = ys[0], ys[-1] + 1, xs[0], xs[-1] + 1
    return extents


def suppress_overlapping_masks(scores: np.ndarray, masks: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy NMS on mask IoU: indices of the (N,) instances kept, in decreasing score order. An instance whose
    (H, W) mask has IoU above ``threshold`` with a kept one's is dropped; an empty mask overlaps nothing."""
    extents = mask_extents(masks)
    areas = np.array([np.count_nonzero(mask[y0:y1, x0:x1]) for mask, (y0, y1, x0, x1) in zip(masks, extents)],
                     np.int64)  # counted inside the extents: a sum over whole frames took 4 of 7 ms at 50 x 640x360
    y0, y1, x0, x1 = extents.T  # (N,) each
    meet = ((np.maximum(y0[:, None], y0[None]) < np.minimum(y1[:, None], y1[None]))
            & (np.maximum(x0[:, None], x0[None]) < np.minimum(x1[:, None], x1[None])))  # (N, N) extents overlap
    kept = np.zeros(len(masks), bool)
    for i in np.argsort(-scores, kind="stable"):
        kept[i] = not any(_mask_iou(masks, areas, extents, int(i), int(j)) > threshold
                          for j in np.flatnonzero(meet[i] & kept))
    return np.flatnonzero(kept)[np.argsort(-scores[kept], kind="stable")]


def _mask_iou(masks: np.ndarray, areas: np.ndarray, extents: np.ndarray, i: int, j: int) -> float:
    """IoU of masks i and j, whose extents overlap, counted inside the rectangle both cover."""
    y0, x0 = max(extents[i, 0], extents[j, 0]), max(extents[i, 2], extents[j, 2])
    y1, x1 = min(extents[i, 1], extents[j, 1]), min(extents[i, 3], extents[j, 3])
    inter = int(np.count_nonzero(masks[i, y0:y1, x0:x1] & masks[j, y0:y1, x0:x1]))
    return inter / float(areas[i] + areas[j] - inter)
