"""FCOS targets for hand-placed boxes and the loss terms against hand-computed values."""
import math

import pytest
import torch

from sgnet_model.backbone import FPN_STRIDES
from sgnet_model.losses import box_loss, mask_loss, motion_loss
from sgnet_model.targets import Pyramid, assign_locations, centerness_targets, regression_targets


def pyramid_for(size: int) -> Pyramid:
    sizes = [(math.ceil(size / s), math.ceil(size / s)) for s in FPN_STRIDES]
    return Pyramid.build(sizes, FPN_STRIDES, torch.device("cpu"))


def positives(matches: torch.Tensor, pyramid: Pyramid) -> set[tuple[int, int, int]]:
    chosen = torch.nonzero(matches >= 0).squeeze(1)
    return {(int(pyramid.level[i]), int(pyramid.y[i]), int(pyramid.x[i])) for i in chosen}


def test_centre_sampling_picks_the_p3_locations_near_the_centre():
    # Box (10, 10, 50, 42), centre (30, 26). P3 locations sit at multiples of 8. Radius 1.5 * 8 = 12:
    # x in {24, 32, 40} (|x - 30| < 12), y in {16, 24, 32} (|y - 26| < 12), all inside the box; their largest
    # distance to a side is at most 30 <= 64, so P3's range holds them; no location of P4 (range 64..128) can.
    pyramid = pyramid_for(64)
    matches = assign_locations(torch.tensor([[10.0, 10.0, 50.0, 42.0]]), pyramid, radius=1.5)
    assert positives(matches, pyramid) == {(0, y // 8, x // 8) for x in (24, 32, 40) for y in (16, 24, 32)}


def test_size_ranges_send_a_large_box_to_p4():
    # Box (0, 0, 150, 150), centre (75, 75). On P3 every nearby location is further than 64 from some side.
    # On P4 (stride 16, radius 24) x, y in {64, 80, 96} are near the centre, with largest distances 86, 80, 96,
    # all in (64, 128]. On P5 (radius 48) the candidates 32, 64, 96 have largest distances <= 118 < 128.
    pyramid = pyramid_for(256)
    matches = assign_locations(torch.tensor([[0.0, 0.0, 150.0, 150.0]]), pyramid, radius=1.5)
    assert positives(matches, pyramid) == {(1, y // 16, x // 16) for x in (64, 80, 96) for y in (64, 80, 96)}


def test_ambiguous_locations_take_the_smaller_box():
    pyramid = pyramid_for(64)
    boxes = torch.tensor([[10.0, 10.0, 50.0, 42.0], [26.0, 18.0, 38.0, 30.0]])  # the second lies in the first
    matches = assign_locations(boxes, pyramid, radius=1.5)
    index = int(torch.nonzero((pyramid.level == 0) & (pyramid.x == 4) & (pyramid.y == 3)))  # location (32, 24)
    assert matches[index] == 1
    no_boxes = assign_locations(torch.zeros(0, 4), pyramid, radius=1.5)
    assert (no_boxes == -1).all()


def test_regression_and_centerness_targets():
    ltrb = regression_targets(torch.tensor([[24.0, 16.0]]), torch.tensor([[10.0, 10.0, 50.0, 42.0]]))
    assert ltrb.tolist() == [[14.0, 6.0, 26.0, 26.0]]
    # sqrt(min(14, 26) / max(14, 26) * min(6, 26) / max(6, 26))
    assert centerness_targets(ltrb).item() == pytest.approx(math.sqrt(14 / 26 * 6 / 26))


def test_box_loss_is_eq5():
    # (0,0,2,2) vs (1,1,3,3): intersection 1, union 7, enclosing box 9: GIoU = 1/7 - 2/9.
    giou = 1 / 7 - (9 - 7) / 9
    predicted = torch.tensor([[0.0, 0.0, 2.0, 2.0], [5.0, 5.0, 9.0, 8.0]])
    target = torch.tensor([[1.0, 1.0, 3.0, 3.0], [5.0, 5.0, 9.0, 8.0]])
    loss = box_loss(predicted, target)
    assert loss[0].item() == pytest.approx(-math.log((1 + giou) / 2), rel=1e-5)
    assert loss[1].item() == pytest.approx(0.0, abs=1e-6)  # a perfect box costs nothing


def test_mask_loss_averages_points_per_instance_then_instances():
    logits = torch.tensor([0.0, 0.0, 0.0, 2.0])
    targets = torch.tensor([1.0, 0.0, 1.0, 1.0])
    instance = torch.tensor([0, 0, 0, 1])
    # BCE(0, y) = ln 2 for any y; BCE(2, 1) = ln(1 + e^-2). Instance 0: ln 2; instance 1: ln(1 + e^-2).
    expected = (math.log(2) + math.log(1 + math.exp(-2))) / 2
    assert mask_loss(logits, targets, instance, 2).item() == pytest.approx(expected, rel=1e-6)


def test_motion_loss_is_the_mean_l1_of_eq4():
    predicted = torch.tensor([[1.0, -1.0], [0.5, 0.0]])
    target = torch.tensor([[0.0, 0.0], [0.0, 2.0]])
    assert motion_loss(predicted, target).item() == pytest.approx(((1 + 1) + (0.5 + 2)) / 2)
