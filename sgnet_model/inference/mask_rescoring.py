"""Ranking by mask quality (``ModelConfig.mask_rescoring``; docs/model.md, "Ranking by mask quality").

A detection's score, sqrt(class x centerness), says how sure the detector is that an object is there, not how
good its mask is. SOLOv2 (Wang et al., NeurIPS 2020) multiplies the class score by the mask's "maskness": the mean
of the soft mask over the pixels it keeps (probability > 0.5), near 1 for a mask that is sure of every pixel and
lower for a blurred one. Here the mean comes with each detection from the masks' pasting (postprocess.mask_quality,
column 9 of the numbers, in every backend) and is multiplied into the score on the host, after every backend and
before the suppression by mask overlap and the tracker, so the exported graphs need no change for either setting.
"""
from __future__ import annotations

import numpy as np


def rescored(scores: np.ndarray, mask_quality: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """The (N,) scores that rank detections (the suppression by mask overlap, the reported score, video AP) and the
    (N,) scores the tracker starts and continues tracks on, from the network's (N,) ``scores`` and the masks' (N,)
    ``mask_quality`` in [0, 1], for ``mode`` (ModelConfig.mask_rescoring): "off", both the network's; "ranking",
    score x quality ranks and the tracker keeps the network's; "all", score x quality for both."""
    if mode == "off":
        return scores, scores
    ranking = (scores * mask_quality).astype(scores.dtype)
    return ranking, ranking if mode == "all" else scores
