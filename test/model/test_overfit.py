"""SG-Net learns: it overfits a tiny batch of moving shapes on the CPU, and its motion head beats the
zero-motion guess on a frame pair it never saw as a pair."""
import dataclasses

import pytest
import torch

from sgnet_model.config import named_config
from sgnet_model.network.model import SGNet
from sgnet_model.inference.postprocess import paste_masks, select_detections
from sgnet_model.structures import ClipBatch, FrameTargets

HEIGHT, WIDTH = 192, 320
SQUARE_SPEED, DISC_SPEED = 6, -5  # pixels per frame along x
FRAME_INTERVAL_S = 1 / 6  # the frames are YouTube-VIS's annotation interval apart


def scene(t: int, background: torch.Tensor) -> tuple[torch.Tensor, FrameTargets]:
    """Frame t: a red 100 px square moving right, a green disc of radius 30 moving left."""
    image = background.clone()
    ys, xs = torch.meshgrid(torch.arange(HEIGHT), torch.arange(WIDTH), indexing="ij")
    x0 = 40 + SQUARE_SPEED * t
    square = (xs >= x0) & (xs < x0 + 100) & (ys >= 50) & (ys < 150)
    cx = 250 + DISC_SPEED * t
    disc = (xs - cx) ** 2 + (ys - 130) ** 2 < 30 ** 2
    for mask, colour in ((square, (230, 40, 40)), (disc, (40, 220, 60))):
        image[:, mask] = torch.tensor(colour, dtype=torch.uint8)[:, None]
    masks = torch.stack((square, disc)).to(torch.uint8)
    boxes = []
    for mask in masks:
        row, col = torch.nonzero(mask, as_tuple=True)
        boxes.append([col.min(), row.min(), col.max() + 1, row.max() + 1])
    return image, FrameTargets(torch.tensor(boxes, dtype=torch.float32), torch.tensor([0, 1]), masks,
                               torch.tensor([1, 2]))


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    config = dataclasses.replace(named_config("resnet18_small").model, class_names=("square", "disc"))
    model = SGNet(config)
    background = torch.randint(60, 120, (3, HEIGHT, WIDTH), dtype=torch.uint8,
                               generator=torch.Generator().manual_seed(1))
    frames = [scene(t, background) for t in range(6)]
    pairs = [(0, 1), (2, 3), (4, 5)]  # frames 3 -> 4 never form a training pair
    batch = ClipBatch(torch.stack([torch.stack((frames[a][0], frames[b][0])) for a, b in pairs]),
                      [[frames[a][1], frames[b][1]] for a, b in pairs],
                      torch.tensor([[0.0, FRAME_INTERVAL_S]] * len(pairs)))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    model.train()
    for _ in range(250):
        loss = sum(model.losses(batch).values())
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        optimizer.step()
    return model.eval(), frames


@pytest.mark.slow
def test_overfits_moving_shapes_to_mask_iou_above_0_8(trained):
    model, frames = trained
    image, truth = frames[3]
    with torch.inference_mode():
        outputs = model.pyramid_outputs(image[None])
        detections = select_detections(outputs, outputs.pyramid(), 0, (HEIGHT, WIDTH), 0.3, 0.5, 10, 1000,
                                       class_agnostic=True)
        masks = paste_masks(model, outputs, detections, 1.0, (HEIGHT, WIDTH))
    assert len(detections.scores) >= 2
    for label, gt in zip(truth.labels.tolist(), truth.masks.bool()):
        best = int(detections.scores[detections.labels == label].argmax())
        mask = masks[detections.labels == label][best]
        iou = (mask & gt).sum().item() / (mask | gt).sum().item()
        assert iou > 0.8, f"class {label}: mask IoU {iou:.3f}"


@pytest.mark.slow
def test_motion_head_beats_the_zero_motion_guess(trained):
    model, frames = trained
    with torch.inference_mode():
        before = model.pyramid_outputs(frames[3][0][None])
        now = model.pyramid_outputs(frames[4][0][None])
        detections = select_detections(now, now.pyramid(), 0, (HEIGHT, WIDTH), 0.3, 0.5, 10, 1000,
                                       class_agnostic=True)
        strides = (8 * 2 ** detections.locations.level).float()
        movement = model.motion(now.regression_towers, before.regression_towers, detections.locations,
                                torch.tensor([FRAME_INTERVAL_S]))
        movement = movement * strides[:, None]
    for label, speed in ((0, SQUARE_SPEED), (1, DISC_SPEED)):
        best = int(detections.scores[detections.labels == label].argmax())
        predicted = movement[detections.labels == label][best]
        error = (predicted - torch.tensor([float(speed), 0.0])).abs().sum().item()
        assert error < abs(speed) / 2, f"class {label}: predicted {predicted.tolist()}, true ({speed}, 0)"
