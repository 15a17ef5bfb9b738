"""FCOS targets for hand-placed boxes and the loss terms against hand-computed values."""
import dataclasses
import math

import pytest
import torch

from sgnet_model.network import losses
from sgnet_model.network.backbone import FPN_STRIDES
from sgnet_model.config import named_config
from sgnet_model.network.losses import box_loss, mask_loss, motion_loss
from sgnet_model.network.model import SGNet
from sgnet_model.structures import ClipBatch, FrameTargets
from sgnet_model.network.targets import Pyramid, assign_locations, centerness_targets, regression_targets


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
    assert mask_loss(logits, targets, instance, 2, dice_weight=0.0).item() == pytest.approx(expected, rel=1e-6)


def test_mask_loss_adds_the_dice_term_per_instance():
    logits = torch.tensor([0.0, 0.0, 0.0, 2.0])
    targets = torch.tensor([1.0, 0.0, 1.0, 1.0])
    instance = torch.tensor([0, 0, 0, 1])
    bce = (math.log(2) + math.log(1 + math.exp(-2))) / 2
    p = 1 / (1 + math.exp(-2))
    # instance 0: p = 0.5 at three points, sum(p t) = 1, sum(p) = 1.5, sum(t) = 2 -> 1 - 3 / 4.5
    # instance 1: sum(p t) = sum(p) = p, sum(t) = 1 -> 1 - (2p + 1) / (p + 2)
    dice = ((1 - 3 / 4.5) + (1 - (2 * p + 1) / (p + 2))) / 2
    assert mask_loss(logits, targets, instance, 2, dice_weight=0.5).item() == pytest.approx(bce + 0.5 * dice,
                                                                                             rel=1e-6)


def rectangle_target(box: tuple[int, int, int, int], height: int, width: int) -> FrameTargets:
    """One instance of class 0 whose mask is exactly the pixels of ``box`` in a height x width frame."""
    x1, y1, x2, y2 = box
    masks = torch.zeros((1, height, width), dtype=torch.uint8)
    masks[0, y1:y2, x1:x2] = 1
    return FrameTargets(torch.tensor([box], dtype=torch.float32), torch.tensor([0]), masks, torch.tensor([1]))


def test_mask_loss_points_stay_in_their_own_frame_of_a_padded_batch(monkeypatch):
    """Clip 0 is a 64x64 frame whose object touches its right and bottom edges; clip 1 is 128x96, so the batch
    is padded to 128x96. The jittered boxes of clip 0 may reach past 64, into the padding: no point may be
    sampled there, and every point's label is 1 exactly inside the hand-drawn rectangle."""
    torch.manual_seed(0)
    model = SGNet(dataclasses.replace(named_config("resnet18_small").model, class_names=("object",)))
    rectangles = [(32, 16, 64, 64), (10, 10, 50, 50)]  # x1, y1, x2, y2 in clip 0's 64x64 and clip 1's 128x96
    frame_sizes = [(64, 64), (96, 128)]  # height, width
    images = torch.zeros((2, 1, 3, 96, 128), dtype=torch.uint8)
    for clip, (height, width) in enumerate(frame_sizes):
        images[clip, 0, :, :height, :width] = torch.randint(0, 256, (3, height, width), dtype=torch.uint8)
    batch = ClipBatch(images, [[rectangle_target(r, *size)] for r, size in zip(rectangles, frame_sizes)],
                      torch.zeros((2, 1)))  # one frame a clip: no motion loss
    seen = {}
    real_mask_logits, real_mask_loss = SGNet.mask_logits, losses.mask_loss

    def spy_mask_logits(self, outputs, locations, boxes, instance_of_point, points):
        seen.update(image=locations.batch[instance_of_point], points=points)
        return real_mask_logits(self, outputs, locations, boxes, instance_of_point, points)

    def spy_mask_loss(logits, truth, instance_of_point, count, dice_weight):
        seen.update(truth=truth)
        return real_mask_loss(logits, truth, instance_of_point, count, dice_weight)

    monkeypatch.setattr(SGNet, "mask_logits", spy_mask_logits)
    monkeypatch.setattr(losses, "mask_loss", spy_mask_loss)
    model.losses(batch)
    for image, ((x1, y1, x2, y2), (height, width)) in enumerate(zip(rectangles, frame_sizes)):
        mine = seen["image"] == image
        x, y = seen["points"][mine].unbind(1)
        assert mine.sum() >= 256  # at least one positive per frame, 256 points each
        assert x.min() >= 0 and y.min() >= 0 and x.max() < width and y.max() < height, f"clip {image}"
        inside = (x >= x1) & (x < x2) & (y >= y1) & (y < y2)
        assert torch.equal(seen["truth"][mine], inside.float()), f"clip {image}"
        # half the points come from the boundary band: within 2 px (BOUNDARY_BAND) of an edge of the rectangle
        # that lies inside the frame, a thin strip of the region that uniform points would rarely hit
        near = torch.zeros_like(inside)
        for edge, coordinate, low, high, other in ((x1, x, y1, y2, y), (x2, x, y1, y2, y), (y1, y, x1, x2, x),
                                                   (y2, y, x1, x2, x)):
            if edge not in (0, width if coordinate is x else height):
                near |= ((coordinate - edge).abs() <= 2) & (other >= low - 2) & (other <= high + 2)
        assert near.float().mean() >= 0.45, f"clip {image}"


def test_motion_loss_is_the_mean_l1_of_eq4():
    predicted = torch.tensor([[1.0, -1.0], [0.5, 0.0]])
    target = torch.tensor([[0.0, 0.0], [0.0, 2.0]])
    assert motion_loss(predicted, target).item() == pytest.approx(((1 + 1) + (0.5 + 2)) / 2)


def test_under_bf16_autocast_the_losses_take_fp32_inputs_and_stay_near_fp32s(monkeypatch):
    """Mixed-precision training (training/train.py, autocast_dtype): the network may run in bf16, but every loss
    term sees fp32 predictions (a bf16 box side of 256 px is 1-2 px off) and lands near the fp32 run's value,
    computed a second time without autocast on the same points (same seed)."""
    model = SGNet(dataclasses.replace(named_config("resnet18_small").model, class_names=("object",)))
    generator = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (2, 2, 3, 96, 128), dtype=torch.uint8, generator=generator)
    boxes = [(20, 16, 84, 80), (40, 10, 120, 60)]
    batch = ClipBatch(images, [[rectangle_target(b, 96, 128)] * 2 for b in boxes],
                      torch.tensor([[0.0, 0.1], [0.0, 0.1]]))
    dtypes = set()
    for name in ("classification_loss", "box_loss", "centerness_loss", "mask_loss", "motion_loss"):
        real = getattr(losses, name)

        def spy(*args, real=real, **kwargs):
            dtypes.update(a.dtype for a in args if isinstance(a, torch.Tensor) and a.is_floating_point())
            return real(*args, **kwargs)

        monkeypatch.setattr(losses, name, spy)
    torch.manual_seed(0)
    fp32 = model.losses(batch)
    torch.manual_seed(0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = model.losses(batch)
    assert dtypes == {torch.float32}
    assert set(bf16) == {"cls", "box", "centerness", "mask", "motion"}
    for name, value in bf16.items():
        assert value.dtype == torch.float32, name
        assert value.item() == pytest.approx(fp32[name].item(), rel=0.05, abs=1e-3), name
