"""Ranking by mask quality (ModelConfig.mask_rescoring, sgnet_model/inference/mask_rescoring.py): the mean
probability over the pixels a mask keeps, and the score times it, worked out by hand."""
import dataclasses
import math

import numpy as np
import pytest
import torch

from sgnet_model.config import ConfigError, ModelConfig, TrackerConfig, named_config
from sgnet_model.inference.mask_rescoring import rescored
from sgnet_model.inference.postprocess import FrameTensors
from sgnet_model.network.model import SGNet
from sgnet_model.predictor import StreamingPredictor
from sgnet_model.runtime.frame import paste_host_masks
from runtime_reference import REFERENCE


def logit(probability: float) -> float:
    return math.log(probability / (1 - probability))


def test_mask_quality_is_the_mean_probability_over_the_pixels_the_mask_keeps():
    """One base channel and attention 1 everywhere make the mask logit equal to F; at scale 2 (frame pixel = F
    pixel) each frame pixel takes F's value at its own centre, so every mask probability is set by hand.
    Box A (2 rows x 4 columns) has probabilities 0.9, 0.8, 0.4, 0.6 along each row: it keeps 0.9, 0.8 and 0.6
    (0.4 is under 0.5), quality (0.9 + 0.8 + 0.6) / 3. Box B is 0.95 throughout; box C 0.3: an empty mask, 0."""
    base = torch.full((1, 1, 8, 8), logit(0.3))  # (1, K=1, h, w): F, the frame's 8 x 8 pixels at scale 2
    base[0, 0, 0:2, 0:4] = torch.tensor([logit(0.9), logit(0.8), logit(0.4), logit(0.6)])
    base[0, 0, 4:6, 0:2] = logit(0.95)
    numbers = torch.zeros(3, 10)  # (N, 10): boxes in network pixels (2 per frame pixel), score, label, valid
    numbers[:, :4] = 2 * torch.tensor([[0, 0, 4, 2], [0, 4, 2, 6], [4, 6, 8, 8]], dtype=torch.float32)
    numbers[:, 6], numbers[:, 8] = torch.tensor([0.8, 0.7, 0.6]), 1
    config = ModelConfig()
    attention = torch.ones(3, config.max_grid ** 2, 1)  # (N, G*G, K)
    # a graph with masks "host" gives the attention and F; one with masks "graph" each slot's logits at every F
    # pixel, here F itself
    for pasted_from in ((attention, base), (base[0].expand(3, 8, 8),)):
        masks, quality = paste_host_masks(config, numbers, pasted_from, (16, 16), 2.0, (8, 8))
        assert masks.sum((1, 2)).tolist() == [6, 4, 0]  # A keeps 3 of its 4 columns on both rows
        assert masks[0, :2].tolist() == [[True, True, False, True, False, False, False, False]] * 2
        assert quality.tolist() == pytest.approx([(0.9 + 0.8 + 0.6) / 3, 0.95, 0.0], abs=1e-6)


def test_score_times_quality_ranks_the_sharper_mask_first():
    scores = np.array([0.8, 0.7], np.float32)  # the network ranks A first
    quality = np.array([(0.9 + 0.8 + 0.6) / 3, 0.95], np.float32)  # A's mask is the blurrier one
    assert [r.tolist() for r in rescored(scores, quality, "off")] == [scores.tolist()] * 2
    ranking, tracker = rescored(scores, quality, "all")
    assert ranking.tolist() == pytest.approx([0.8 * 2.3 / 3, 0.665]) and ranking.tolist() == tracker.tolist()
    assert np.argsort(-ranking).tolist() == [1, 0]  # B, the sharper mask, now ranks first
    ranking, tracker = rescored(scores, quality, "ranking")
    assert ranking.tolist() == pytest.approx([0.8 * 2.3 / 3, 0.665]) and tracker.tolist() == scores.tolist()
    assert ranking.dtype == np.float32


def test_the_mode_is_checked_and_off_by_default():
    assert ModelConfig().mask_rescoring == "off"
    with pytest.raises(ConfigError, match="mask_rescoring"):
        ModelConfig(mask_rescoring="on")


@pytest.fixture(scope="module")
def predictor() -> StreamingPredictor:
    """A small model on the CPU; only its host-side step (_track) is used, on numbers and masks made by hand."""
    torch.manual_seed(0)
    return StreamingPredictor(SGNet(named_config("resnet18_small").model),
                              TrackerConfig(new_track_score=0.5, continue_score=0.3), REFERENCE)


def frame() -> FrameTensors:
    """A: score 0.8, a blurry mask (quality 0.6); B: score 0.7, a sharp mask (0.95) over nearly the same pixels
    (IoU 90 / 110, above the mask NMS threshold 0.5); C: elsewhere, score 0.55, quality 0.8 (0.44 rescored)."""
    masks = torch.zeros(3, 40, 60, dtype=torch.bool)
    masks[0, 4:14, 4:14], masks[1, 4:14, 5:15], masks[2, 20:30, 40:50] = True, True, True
    numbers = torch.tensor([[4, 4, 14, 14, 0, 0, 0.8, 0, 1, 0.6], [5, 4, 15, 14, 0, 0, 0.7, 0, 1, 0.95],
                            [40, 20, 50, 30, 0, 0, 0.55, 0, 1, 0.8]], dtype=torch.float32)
    return FrameTensors(numbers, masks)


@pytest.mark.parametrize("mode, expected", [
    ("off", {(4.0, 0.8), (40.0, 0.55)}),  # A outscores its duplicate B; C starts a track at 0.55
    ("ranking", {(5.0, 0.665), (40.0, 0.44)}),  # B's sharper mask wins; C starts on its network score 0.55
    ("all", {(5.0, 0.665)}),  # C's 0.44 is under the start score 0.5: no track
])
def test_the_predictor_suppresses_and_tracks_by_the_rescored_score(predictor: StreamingPredictor, mode: str,
                                                                   expected: set[tuple[float, float]]):
    predictor.model_config = dataclasses.replace(predictor.model_config, mask_nms_threshold=0.5,
                                                 mask_rescoring=mode)
    predictor.reset()
    instances, _ = predictor._track(predictor.stream("hand"), frame(), 0.0, 0.0)
    assert {(float(i.box[0]), round(i.score, 4)) for i in instances} == expected
