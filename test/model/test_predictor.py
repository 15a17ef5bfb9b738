"""The streaming predictor: its contract with the node and the evaluator, checked against second methods."""
import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision

from sgnet_model.network.backbone import fold_batch_norms
from sgnet_model.checkpoint import save_checkpoint
from sgnet_model.config import ModelConfig, SGNetConfig, TrackerConfig, named_config
from sgnet_model.network.mask_head import grid_sizes
from sgnet_model.network.model import SGNet, flatten_levels
from sgnet_model.inference.postprocess import paste_masks, select_detections
from sgnet_model.predictor import PredictorError, StreamingPredictor
from runtime_reference import REFERENCE

SMALL = named_config("resnet18_small")
EVERYTHING = TrackerConfig(new_track_score=0.0, continue_score=0.0)  # random weights: track every detection


def small_predictor(seed: int = 0, **predictor) -> StreamingPredictor:
    torch.manual_seed(seed)
    predictor = StreamingPredictor.from_config(SGNetConfig(SMALL.model, EVERYTHING),
                                               dataclasses.replace(REFERENCE, **predictor))
    predictor.update_thresholds(score_threshold=0.0, detections_per_frame=5)
    return predictor


def frame(height: int = 240, width: int = 400, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_instances_come_out_at_the_frame_resolution():
    result = small_predictor().step(frame(), 0.0)
    assert len(result.instances) == 5 and result.inference_ms > 0
    for instance in result.instances:
        assert instance.mask.shape == (240, 400) and instance.mask.dtype == bool
        x1, y1, x2, y2 = instance.box
        assert 0 <= x1 <= x2 <= 400 and 0 <= y1 <= y2 <= 240
        assert np.allclose(instance.centre, [(x1 + x2) / 2, (y1 + y2) / 2])
        rows, columns = np.nonzero(instance.mask)
        # zero outside the box (Section 3.2): every mask pixel's centre lies inside it
        assert ((columns + 0.5 >= x1) & (columns + 0.5 < x2) & (rows + 0.5 >= y1) & (rows + 0.5 < y2)).all()
        assert instance.class_name == SMALL.model.class_names[instance.class_id]
    assert len({i.track_id for i in result.instances}) == 5


def test_tracks_reset_on_first_frame_backward_stamps_and_gaps():
    predictor = small_predictor(max_gap_s=1.0)
    image = frame()
    first = predictor.step(image, 10.0)
    assert first.tracks_reset
    second = predictor.step(image, 10.1)
    assert not second.tracks_reset
    # the same frame again: every detection continues its track
    assert sorted(i.track_id for i in second.instances) == sorted(i.track_id for i in first.instances)
    back = predictor.step(image, 9.0)
    assert back.tracks_reset
    # after a reset the IDs are new (never reused)
    assert not {i.track_id for i in back.instances} & {i.track_id for i in first.instances}
    assert not predictor.step(image, 9.9).tracks_reset
    assert predictor.step(image, 11.0).tracks_reset  # a gap of 1.1 s > 1.0 s


def test_a_model_taking_3_s_a_frame_keeps_its_track_ids():
    """A 10 Hz camera, a model that finishes a frame every 3 s (it processes every 30th frame it receives),
    max_gap_s 1 s: the stream has no gap (each processed frame came 0.1 s after the one delivered before it), so
    the tracks carry on; judged on the processed frames alone, every frame would be a 3 s gap and a reset."""
    image = frame()
    told, untold = small_predictor(max_gap_s=1.0), small_predictor(max_gap_s=1.0)
    told_ids, untold_ids = [], []
    for processed in range(4):
        stamp = 3.0 * processed  # camera frame 30 * processed, 0.1 s apart
        result = told.step(image, stamp, received_before=stamp - 0.1 if processed else None)
        assert result.tracks_reset == (processed == 0)
        told_ids.append(sorted(i.track_id for i in result.instances))
        untold_result = untold.step(image, stamp)
        assert untold_result.tracks_reset
        untold_ids.append(sorted(i.track_id for i in untold_result.instances))
    assert len(told_ids[0]) == 5 and told_ids == [told_ids[0]] * 4  # the same objects keep their IDs
    assert len({i for ids in untold_ids for i in ids}) == 4 * 5  # reset at every frame: new IDs each time


def test_gaps_and_backward_time_are_judged_on_the_frames_received():
    predictor, image = small_predictor(max_gap_s=1.0), frame()
    predictor.step(image, 0.0)
    assert not predictor.step(image, 5.0, received_before=4.5).tracks_reset  # 0.5 s after the last frame received
    assert predictor.step(image, 7.0, received_before=5.5).tracks_reset  # the source sent nothing for 1.5 s
    assert predictor.step(image, 8.0, received_before=8.5).tracks_reset  # a stamp before the frame received before
    assert predictor.step(image, 7.9, received_before=7.8).tracks_reset  # before the previous processed frame
    with pytest.raises(PredictorError, match="timestamps must be finite"):
        predictor.step(image, float("nan"))


def test_checkpoint_profiles_choose_the_tracker(tmp_path):
    robot = TrackerConfig(new_track_score=0.6, continue_score=0.4, max_lost_s=1.0)
    evaluation = TrackerConfig(new_track_score=0.05, continue_score=0.01, max_lost_s=3.0)
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "model.pt", SMALL.model, SGNet(SMALL.model).state_dict(),
                    tracker_profiles={"robot": robot, "evaluation": evaluation})
    for kwargs, profile, used in (({}, "robot", robot), ({"profile": "evaluation"}, "evaluation", evaluation),
                                  ({"tracker_config": EVERYTHING, "profile": "evaluation"}, "custom", EVERYTHING)):
        predictor = StreamingPredictor.from_checkpoint(tmp_path / "model.pt", REFERENCE, **kwargs)
        assert predictor.tracker_profile == profile and predictor.tracker.config == used
        assert predictor.tracker_profiles == {"robot": robot, "evaluation": evaluation}
    with pytest.raises(PredictorError, match="tracker profile 'fast' is not one of \\['robot', 'evaluation'\\]"):
        StreamingPredictor.from_checkpoint(tmp_path / "model.pt", profile="fast")


@pytest.mark.parametrize("bad", [np.zeros((10, 10, 3), np.float32), np.zeros((10, 10), np.uint8),
                                 np.zeros((10, 10, 4), np.uint8), np.zeros((4, 100, 3), np.uint8), "frame"])
def test_bad_frames_are_refused_clearly(bad):
    with pytest.raises(PredictorError, match="frame"):
        small_predictor().step(bad, 0.0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the no-GPU error cannot happen")
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(PredictorError, match="CUDA is not available"):
        small_predictor(device="cuda")


def test_fp16_on_the_cpu_is_refused():
    with pytest.raises(PredictorError, match="fp16 runs on CUDA only"):
        small_predictor(fp16=True)


def test_checkpoint_round_trip_gives_the_same_instances(tmp_path):
    torch.manual_seed(3)
    model = SGNet(SMALL.model)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    save_checkpoint(tmp_path / "model.pt", SMALL.model, state)
    direct = StreamingPredictor(model, EVERYTHING, REFERENCE)
    loaded = StreamingPredictor.from_checkpoint(tmp_path / "model.pt", REFERENCE, tracker_config=EVERYTHING)
    for predictor in (direct, loaded):
        predictor.update_thresholds(score_threshold=0.0, detections_per_frame=5)
    a, b = direct.step(frame(), 0.0), loaded.step(frame(), 0.0)
    assert len(a.instances) == len(b.instances) == 5
    assert np.allclose([i.box for i in a.instances], [i.box for i in b.instances], atol=1e-3)
    for x, y in zip(a.instances, b.instances):
        assert (x.mask != y.mask).mean() < 1e-3


def test_pasted_masks_equal_dense_blending_then_bilinear_upsampling():
    """Second method: evaluate Eq. 2 on the whole F grid for each instance, upsample the logits to the frame
    with F.interpolate, keep the box grown by the margin. paste_masks does the same work only inside those
    regions."""
    torch.manual_seed(1)
    model = SGNet(dataclasses.replace(SMALL.model, input_width=320, input_height=192, mask_margin=0.15)).eval()
    with torch.no_grad():
        model.head.regression_head.bbox_reg.bias.fill_(3.0)  # boxes of 6 strides: 48 px and more
    image = torch.randint(0, 256, (1, 3, 192, 320), dtype=torch.uint8)
    scale = 0.5  # the frame is 640 x 384, the network sees it at 320 x 192
    with torch.inference_mode():
        outputs = model.pyramid_outputs(image)
        detections = select_detections(outputs, outputs.pyramid(), 0, (192, 320), 0.0, 1.0, 6, 1000,
                                       class_agnostic=False)
        fast, quality = paste_masks(model, outputs, detections, scale, (384, 640))
        height, width = outputs.base.shape[-2:]
        ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
        centres = torch.stack(((xs.flatten() + 0.5) * 2, (ys.flatten() + 0.5) * 2), dim=1).float()
        count = len(detections.scores)
        instance = torch.arange(count).repeat_interleave(centres.shape[0])
        logits = model.mask_logits(outputs, detections.locations, detections.boxes, instance, centres.repeat(count, 1))
        dense_logits = F.interpolate(logits.view(1, count, height, width), size=(384, 640), mode="bilinear",
                                     align_corners=False)[0]
        dense = dense_logits > 0
        rows, columns = torch.meshgrid(torch.arange(384) + 0.5, torch.arange(640) + 0.5, indexing="ij")
        boxes = detections.boxes / scale
        margin = model.config.mask_margin * (boxes[:, 2:] - boxes[:, :2])  # the mask region: the box grown
        boxes = torch.cat((boxes[:, :2] - margin, boxes[:, 2:] + margin), dim=1)
        inside = ((columns >= boxes[:, 0, None, None]) & (columns < boxes[:, 2, None, None])
                  & (rows >= boxes[:, 1, None, None]) & (rows < boxes[:, 3, None, None]))
    expected = dense & inside
    assert expected.sum() > 1000  # the comparison is not vacuous
    assert (fast != expected).float().mean() < 1e-4
    # the mask quality: the mean probability over each mask's pixels, here from the dense logits
    expected_quality = (torch.sigmoid(dense_logits) * expected).sum((1, 2)) / expected.sum((1, 2)).clamp(min=1)
    assert torch.allclose(quality, expected_quality, atol=1e-3)
    assert grid_sizes(detections.boxes, 50.0, 6).max() > 1  # and sub-regions are in play


def test_folding_batch_norms_keeps_the_outputs():
    torch.manual_seed(2)
    model = SGNet(SMALL.model).eval()
    with torch.no_grad():  # give the BatchNorms statistics that are not the identity
        for module in model.backbone.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
    image = torch.randint(0, 256, (1, 3, 192, 320), dtype=torch.uint8)
    with torch.inference_mode():
        before = model.pyramid_outputs(image)
        assert fold_batch_norms(model.backbone) == 20  # ResNet-18: stem, 16 block convs, 3 downsamples
        after = model.pyramid_outputs(image)
    for a, b in zip(before.class_logits + [before.base], after.class_logits + [after.base]):
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)


def test_torchvision_coco_fcos_weights_load_and_give_torchvision_fcos_outputs(tmp_path):
    """Layout check against torchvision: its FCOS weights (random here, COCO for users) load into backbone,
    FPN and detection head, and then our head computes exactly what torchvision's FCOS head computes."""
    torch.manual_seed(4)
    reference = torchvision.models.detection.fcos_resnet50_fpn(weights=None, weights_backbone=None).eval()
    with torch.no_grad():
        for module in reference.backbone.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_var.fill_(1.0)
    torch.save(reference.state_dict(), tmp_path / "fcos.pth")
    config = ModelConfig(pretrained="coco_fcos", pretrained_path=str(tmp_path / "fcos.pth"))
    model = SGNet(config).eval()
    image = torch.randint(0, 256, (1, 3, 128, 192), dtype=torch.uint8)
    normalised = (image.float() / 255 - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor(
        [0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.inference_mode():
        expected = reference.head(list(reference.backbone(normalised).values()))
        ours = model.pyramid_outputs(image)
    assert torch.allclose(flatten_levels(ours.box_regression), expected["bbox_regression"], atol=1e-4)
    assert torch.allclose(flatten_levels(ours.centerness), expected["bbox_ctrness"], atol=1e-4)
    assert model.head.classification_head.cls_logits.out_channels == 40  # our classes, not COCO's 91
    assert torch.equal(model.backbone.body.conv1.weight, reference.backbone.body.conv1.weight)
