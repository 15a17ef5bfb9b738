"""Suppression by mask overlap (sgnet_model/inference/mask_nms.py) on masks drawn by hand."""
import numpy as np
import pytest

from sgnet_model.config import ConfigError, ModelConfig
from sgnet_model.inference.mask_nms import mask_extents, suppress_overlapping_masks


def canvas(*cells: tuple[int, int]) -> np.ndarray:
    mask = np.zeros((24, 24), bool)
    for y, x in cells:
        mask[y, x] = True
    return mask


def test_a_duplicate_goes_and_the_higher_score_stays_wherever_it_is_listed():
    square = np.zeros((24, 24), bool)
    square[4:14, 4:14] = True
    nudged = np.roll(square, 1, axis=1)  # IoU 90 / 110
    kept = suppress_overlapping_masks(np.array([0.4, 0.9]), np.stack([nudged, square]), 0.5)
    assert kept.tolist() == [1]


def test_crossing_objects_in_one_box_both_stay():
    """An X: the two diagonals of one 20 x 20 box (box IoU 1), their masks share 1 of 40 pixels."""
    diagonal = canvas(*[(k, k) for k in range(2, 22)])
    anti = canvas(*[(k, 23 - k) for k in range(2, 22)])
    assert (diagonal & anti).sum() == 0  # 20 cells each, on an even-sized square the diagonals do not meet
    anti[12, 12] = True  # one shared cell: IoU 1 / 40
    kept = suppress_overlapping_masks(np.array([0.9, 0.8]), np.stack([diagonal, anti]), 0.5)
    assert kept.tolist() == [0, 1]


def test_an_iou_at_the_threshold_stays_and_above_it_goes():
    a = canvas((0, 0), (0, 1))
    b = canvas((0, 1), (0, 2))  # IoU 1 / 3
    masks, scores = np.stack([a, b]), np.array([0.9, 0.8])
    assert suppress_overlapping_masks(scores, masks, 1 / 3).tolist() == [0, 1]
    assert suppress_overlapping_masks(scores, masks, 0.3).tolist() == [0]


def test_empty_masks_overlap_nothing_and_extents_bound_the_pixels():
    empty, dot = np.zeros((24, 24), bool), canvas((5, 7))
    masks = np.stack([empty, dot, empty])
    assert suppress_overlapping_masks(np.array([0.9, 0.8, 0.7]), masks, 0.5).tolist() == [0, 1, 2]
    assert mask_extents(masks).tolist() == [[0, 0, 0, 0], [5, 6, 7, 8], [0, 0, 0, 0]]


def test_the_threshold_is_checked_and_the_default_is_the_ablations_choice():
    # docs/model.md, "Suppression by mask overlap": box NMS at 0.7, then mask NMS at 0.5
    assert (ModelConfig().nms_threshold, ModelConfig().mask_nms_threshold) == (0.7, 0.5)
    with pytest.raises(ConfigError, match="mask_nms_threshold"):
        ModelConfig(mask_nms_threshold=1.5)


def test_random_scenes_keep_what_greedy_nms_on_whole_frame_ious_keeps():
    """A second method: the IoU of every pair counted over the whole frames, the greedy rule written out plainly,
    on 20 scenes of 30 random rectangles and discs (many overlapping) with random scores."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[:90, :160]
    for _ in range(20):
        masks = np.zeros((30, 90, 160), bool)
        for mask in masks:
            x, y, size = rng.integers(0, 140), rng.integers(0, 70), rng.integers(4, 40)
            if rng.random() < 0.5:
                mask[y:y + size, x:x + size] = True
            else:
                mask[:] = (xx - x) ** 2 + (yy - y) ** 2 <= size ** 2 / 4
        scores = rng.random(30)
        expected = []
        for i in np.argsort(-scores):
            ious = [(masks[i] & masks[j]).sum() / (masks[i] | masks[j]).sum() for j in expected]
            if all(iou <= 0.5 for iou in ious):
                expected.append(i)
        assert suppress_overlapping_masks(scores, masks, 0.5).tolist() == expected
