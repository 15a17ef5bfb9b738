"""The fixed-shape post-processing (what the CUDA graph captures) against the data-dependent one (what the CPU
runs), and its parts against torchvision and torch. Both paths run here on the CPU."""
import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import batched_nms

from sgnet_model.config import named_config
from sgnet_model.network.locations import Locations
from sgnet_model.network.mask_head import sample_base_features
from sgnet_model.network.model import SGNet
from sgnet_model.inference.postprocess import (frame_tensors, greedy_nms_fixed, paste_masks, paste_masks_fixed,
                                     select_detections, select_detections_fixed)
from sgnet_model.runtime.frame import FixedFrame

CONFIG = dataclasses.replace(named_config("resnet18_small").model, input_width=320, input_height=192)


def model_with_real_sized_boxes(seed: int, margin: float = CONFIG.mask_margin) -> SGNet:
    torch.manual_seed(seed)
    model = SGNet(dataclasses.replace(CONFIG, mask_margin=margin)).eval()
    with torch.no_grad():
        model.head.regression_head.bbox_reg.bias.fill_(2.0)  # boxes of 4 strides: masks with pixels
    return model


def image(seed: int) -> torch.Tensor:
    return torch.randint(0, 256, (1, 3, 192, 320), generator=torch.Generator().manual_seed(seed)).float()


def test_greedy_nms_in_fixed_steps_keeps_what_batched_nms_keeps():
    generator = torch.Generator().manual_seed(0)
    corners = torch.rand(300, 2, generator=generator) * 100
    boxes = torch.cat((corners, corners + 10 + torch.rand(300, 2, generator=generator) * 30), dim=1)
    scores, order = torch.rand(300, generator=generator).sort(descending=True)
    boxes = boxes[order]
    labels = torch.randint(0, 3, (300,), generator=generator)
    candidate = scores > 0.2
    for threshold in (0.3, 0.5, 0.7):
        kept = torch.nonzero(candidate).squeeze(1)
        expected = kept[batched_nms(boxes[kept], scores[kept], labels[kept], threshold)]
        assert 10 < len(expected) < int(candidate.sum())  # some suppressed, some kept
        picks, valid = greedy_nms_fixed(boxes, candidate, labels, threshold, len(expected) + 5)
        assert valid[:len(expected)].all() and not valid[len(expected):].any()
        assert picks[:len(expected)].tolist() == expected.tolist()


@pytest.mark.parametrize("margin, class_agnostic", [(0.0, False), (0.25, True)])
@pytest.mark.parametrize("score_quantile, nms_threshold, slots", [(None, 0.5, 20), (None, 1.0, 7), (0.5, 0.4, 30),
                                                                   (1.0, 0.5, 10)])
def test_fixed_shapes_give_the_same_detections_and_masks(score_quantile, nms_threshold, slots, margin, class_agnostic):
    model = model_with_real_sized_boxes(0, margin)
    with torch.inference_mode():
        outputs = model.pyramid_outputs(image(0))
        pyramid = outputs.pyramid()
        everything = select_detections(outputs, pyramid, 0, (180, 320), 0.0, nms_threshold, slots, 1000,
                                       class_agnostic=class_agnostic)
        # a threshold that keeps some slots empty (quantile 0.5), or all (quantile 1.0: above every score)
        threshold = 0.0 if score_quantile is None else float(torch.quantile(everything.scores, score_quantile))
        dynamic = select_detections(outputs, pyramid, 0, (180, 320), threshold, nms_threshold, slots, 1000,
                                    class_agnostic=class_agnostic)
        fixed = select_detections_fixed(outputs, pyramid, 0, (180, 320), threshold, nms_threshold, slots, 1000,
                                        class_agnostic=class_agnostic)
        count = len(dynamic.scores)
        assert fixed.scores.shape == (slots,) and fixed.boxes.shape == (slots, 4)
        assert fixed.valid[:count].all() and not fixed.valid[count:].any()
        assert torch.equal(fixed.boxes[:count], dynamic.boxes)
        assert torch.equal(fixed.scores[:count], dynamic.scores)
        assert torch.equal(fixed.labels[:count], dynamic.labels)
        for field in dataclasses.fields(Locations):
            assert torch.equal(getattr(fixed.locations, field.name)[:count], getattr(dynamic.locations, field.name))
        masks, quality = paste_masks(model, outputs, dynamic, 0.75, (240, 427))
        fixed_masks, fixed_quality = paste_masks_fixed(model, outputs, fixed, 0.75, (240, 427))
    assert fixed_masks.shape == (slots, 240, 427) and fixed_quality.shape == (slots,)
    assert torch.equal(fixed_masks[:count], masks)
    assert not fixed_masks[count:].any()  # empty slots have empty masks
    # the mean probability over each mask's pixels: the same sums in another order; 0 for the empty slots
    assert torch.allclose(fixed_quality[:count], quality, atol=1e-5) and not fixed_quality[count:].any()
    assert bool(((quality > 0.5) | (masks.flatten(1).sum(1) == 0)).all()) and bool((quality <= 1).all())
    if score_quantile is None:
        assert count == slots and masks.sum() > 5000  # the comparison is not vacuous
    elif score_quantile == 0.5:
        assert 0 < count < slots
    else:
        assert count == 0


def test_a_fixed_frame_stream_equals_the_data_dependent_path_with_movement():
    """FixedFrame (what GraphedFrames replays) over three frames, the first one 'still', against frame_tensors
    with data-dependent shapes fed the previous frame's towers by hand."""
    model = model_with_real_sized_boxes(1)
    config = dataclasses.replace(CONFIG, score_threshold=0.0, detections_per_frame=8)
    frames = [image(seed) for seed in range(3)]
    with torch.inference_mode():
        fixed = FixedFrame(model, config, (), frames[0], 0.5, (180, 320), (360, 640))
        previous, fed = None, None
        for index, batch in enumerate(frames):
            outputs = model.pyramid_outputs(batch)
            towers = outputs.regression_towers
            elapsed = 0.0 if index == 0 else 0.2 * index  # seconds since the frame before
            expected = frame_tensors(model, config, outputs, outputs.pyramid(), previous or towers,
                                     torch.full((1,), elapsed), 0.5, (180, 320), (360, 640), fixed=False)
            [(got, fed)] = fixed(batch, [fed], [elapsed])
            assert torch.equal(got.numbers[:, :9], expected.numbers[:, :9])  # boxes, movement, scores, labels, valid
            assert torch.allclose(got.numbers[:, 9], expected.numbers[:, 9], atol=1e-5)  # mask quality
            assert torch.equal(got.masks, expected.masks)
            if index > 0:
                assert got.numbers[:, 4:6].abs().max() > 0  # the movement head saw two different frames
            previous = towers


def test_base_features_equal_grid_sample_over_a_batch():
    generator = torch.Generator().manual_seed(2)
    base = torch.randn(3, 5, 12, 20, generator=generator)
    points = torch.rand(400, 2, generator=generator) * torch.tensor([44.0, 28.0]) - 2  # some beyond the border
    batch = torch.randint(0, 3, (400,), generator=generator)
    got = sample_base_features(base, (24, 40), batch, points)
    grid = torch.stack((points[:, 0] / 40, points[:, 1] / 24), dim=1) * 2 - 1
    expected = torch.stack([F.grid_sample(base[b:b + 1], grid[i].view(1, 1, 1, 2), mode="bilinear",
                                          padding_mode="border", align_corners=False)[0, :, 0, 0]
                            for i, b in enumerate(batch.tolist())])
    assert torch.allclose(got, expected, atol=1e-5)

