"""The mask head against hand-worked values: Eq. 1 grids, the Eq. 2 blender, feature sampling, box pixels."""
import numpy as np
import pytest
import torch
from torch import nn

from sgnet_model.config import ModelConfig
from sgnet_model.network.locations import Locations, conv3x3_at
from sgnet_model.network.mask_head import GranularityBlender, grid_sizes, sample_base_features
from sgnet_model.inference.postprocess import enumerate_counts, pixel_spans


@pytest.mark.parametrize("width, height, expected", [
    (30, 120, (1, 3)),     # ceil(0.6) = 1, ceil(2.4) = 3
    (50, 50, (1, 1)),      # exactly one cell per 50 px
    (50.5, 99, (2, 2)),    # ceil(1.01) = 2, ceil(1.98) = 2
    (260, 99, (6, 2)),     # ceil(5.2) = 6
    (400, 301, (6, 6)),    # ceil(8) and ceil(6.02) capped at 6
    (0, 10, (1, 1)),       # a degenerate box still has one cell
])
def test_grid_sizes_follow_eq1(width, height, expected):
    boxes = torch.tensor([[10.0, 20.0, 10.0 + width, 20.0 + height]])
    assert tuple(grid_sizes(boxes, 50.0, 6)[0].tolist()) == expected


def test_blender_reproduces_eq2_on_a_hand_built_example():
    # max_grid 2 -> 4 layout slots; K = 2 base channels. Box 4 x 2 px split into r1 = 2 columns, r2 = 1 row.
    # Column c of a 2-column grid uses layout column floor((c + 0.5) * 2 / 2) = c; the single row uses layout
    # row floor(0.5 * 2 / 1) = 1. So the left cell takes slot 2 = (row 1, col 0), the right one slot 3.
    blender = GranularityBlender(ModelConfig(max_grid=2, base_channels=2))
    attention = torch.zeros(1, 4, 2)
    attention[0, 2] = torch.tensor([1.0, 0.0])
    attention[0, 3] = torch.tensor([0.0, 2.0])
    attention[0, 0] = attention[0, 1] = torch.tensor([100.0, 100.0])  # unused slots must not leak in
    boxes = torch.tensor([[0.0, 0.0, 4.0, 2.0]])
    grids = torch.tensor([[2, 1]])
    points = torch.tensor([[0.5, 0.5], [3.5, 1.5], [2.0, 1.0], [1.99, 0.1]])
    features = torch.tensor([[3.0, 5.0], [7.0, 11.0], [13.0, 17.0], [19.0, 23.0]])
    logits = blender(features, attention, boxes, grids, torch.zeros(4, dtype=torch.long), points)
    # left cell: a . F = F[0]; right cell (x >= 2): 2 * F[1]
    assert logits.tolist() == pytest.approx([3.0, 22.0, 34.0, 19.0])
    # Eq. 2's sigmoid: the mask value at the first point is sigmoid(3)
    assert torch.sigmoid(logits[0]).item() == pytest.approx(1 / (1 + np.exp(-3.0)))


def test_blender_maps_a_six_by_six_grid_to_every_slot():
    blender = GranularityBlender(ModelConfig(max_grid=6, base_channels=1))
    attention = torch.arange(36, dtype=torch.float32).view(1, 36, 1)  # slot s scores s
    boxes = torch.tensor([[0.0, 0.0, 600.0, 600.0]])
    centres = (torch.arange(6, dtype=torch.float32) + 0.5) * 100
    ys, xs = torch.meshgrid(centres, centres, indexing="ij")
    points = torch.stack((xs.flatten(), ys.flatten()), dim=1)
    logits = blender(torch.ones(36, 1), attention, boxes, torch.tensor([[6, 6]]), torch.zeros(36, dtype=torch.long),
                     points)
    assert logits.tolist() == list(range(36))  # row-major: row * 6 + column


def test_base_features_are_sampled_at_pixel_centres():
    base = torch.arange(2 * 3 * 4, dtype=torch.float32).view(1, 2, 3, 4)  # covers a 6 x 8 image (H/2 x W/2)
    # F pixel (i, j) covers image pixels [2j, 2j + 2) x [2i, 2i + 2): its centre is at image (2j + 1, 2i + 1).
    points = torch.tensor([[1.0, 1.0], [5.0, 3.0], [2.0, 1.0]])
    sampled = sample_base_features(base, (6, 8), torch.zeros(3, dtype=torch.long), points)
    assert sampled[0].tolist() == pytest.approx([base[0, 0, 0, 0].item(), base[0, 1, 0, 0].item()], abs=1e-5)
    assert sampled[1].tolist() == pytest.approx([base[0, 0, 1, 2].item(), base[0, 1, 1, 2].item()], abs=1e-5)
    # halfway between F pixels (0, 0) and (0, 1): their mean
    assert sampled[2].tolist() == pytest.approx(((base[0, :, 0, 0] + base[0, :, 0, 1]) / 2).tolist())


def test_pixel_spans_hold_the_pixels_whose_centres_lie_inside_the_box():
    boxes = torch.tensor([[1.2, 0.4, 3.6, 2.5], [-3.0, 2.0, 2.0, 9.0], [4.0, 1.0, 4.2, 1.4]])
    low, high = pixel_spans(boxes, height=4, width=5)
    # every pixel of every span, row-major per box, enumerated as paste_masks does: rows, then their pixels
    row_box, row = enumerate_counts(high[:, 1] - low[:, 1])
    pixel_row, column = enumerate_counts((high - low)[row_box, 0])
    instance = row_box[pixel_row]
    found = list(zip(instance.tolist(), (low[instance, 0] + column).tolist(),
                     (low[instance, 1] + row[pixel_row]).tolist()))
    expected = [(n, x, y) for n, (x1, y1, x2, y2) in enumerate(boxes.tolist())
                for y in range(4) for x in range(5) if x1 <= x + 0.5 < x2 and y1 <= y + 0.5 < y2]
    assert found == expected  # the same pixels, in the same order (box by box, row-major)
    assert [(x, y) for n, x, y in found if n == 0] == [(1, 0), (2, 0), (3, 0), (1, 1), (2, 1), (3, 1)]
    assert (high >= low).all() and (high[2] == low[2]).any()  # the third box holds no pixel centre


def test_conv3x3_at_equals_the_dense_convolution_at_those_locations():
    torch.manual_seed(0)
    conv = nn.Conv2d(5, 7, 3, padding=1)
    maps = [torch.randn(2, 5, 6, 9), torch.randn(2, 5, 3, 4)]
    locations = Locations(batch=torch.tensor([0, 1, 1, 0, 1]), level=torch.tensor([0, 0, 1, 1, 0]),
                          y=torch.tensor([0, 5, 2, 1, 3]), x=torch.tensor([8, 0, 3, 0, 4]))
    sparse = conv3x3_at(conv, maps, locations)
    dense = [conv(m) for m in maps]
    expected = torch.stack([dense[lv][b, :, y, x] for b, lv, y, x in zip(
        locations.batch.tolist(), locations.level.tolist(), locations.y.tolist(), locations.x.tolist())])
    assert torch.allclose(sparse, expected, atol=1e-5)
