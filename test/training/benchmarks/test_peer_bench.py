"""sgnet-peer-bench: the mask-IoU tracker and its persistence on hand-made masks, Mask R-CNN built from random
weights only (nothing downloaded) and sized by hand-worked anchors and settings, its warm-up share and schedule,
the demo's data, the learning-rate sweep and the rows with stand-in runs, and the command end to end on a tiny set
(and interrupted)."""
from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch
from torch import nn

from sgnet_model.config import ModelConfig, TrackerConfig
from sgnet_model.inference.tracker import CenterTracker
from sgnet_model.instances import TrackedInstance
from sgnet_model.data.ytvis import build_video_results, encode_mask, load_annotations, parse_annotations
from sgnet_model.data.ytvis_metric import METRIC_NAMES
from training.benchmarks import maskrcnn_peer, peer_bench
from training.benchmarks.iou_tracker import MaskIoUTracker, lost_frames, mask_iou
from training.config import OptimConfig, TrainConfig
from training.split import held_out_videos, split_annotations
from training.synthetic import generate_synthetic_set

H, W = 40, 60
ROOT = Path(__file__).resolve().parents[3]


def square(y: int, x: int, side: int) -> np.ndarray:
    mask = np.zeros((H, W), bool)
    mask[y:y + side, x:x + side] = True
    return mask


def frame(*masks: np.ndarray) -> np.ndarray:
    return np.stack(masks) if masks else np.zeros((0, H, W), bool)


# ----------------------------------------------------------------------------------------------- the tracker


def test_mask_iou_is_intersection_over_union_as_pycocotools_computes_it():
    a, b, c = square(0, 0, 10), square(0, 5, 10), square(30, 40, 5)  # a & b: 5 x 10 = 50 px, a | b: 150 px
    ours = mask_iou(frame(a, b), frame(a, b, c, np.zeros((H, W), bool)))
    np.testing.assert_allclose(ours[:, :3], [[1.0, 50 / 150, 0.0], [50 / 150, 1.0, 0.0]], rtol=1e-6)
    assert (ours[:, 3] == 0).all()  # an empty mask overlaps nothing
    rles = [encode_mask(m) for m in (a, b, c)]
    np.testing.assert_allclose(ours[:, :3], mask_utils.iou(rles[:2], rles, [0, 0, 0]), rtol=1e-6)


def test_ids_continue_through_overlapping_frames_and_each_object_keeps_its_own():
    tracker = MaskIoUTracker()
    # A 10 x 10 square moving 2 px a frame: IoU 80 / 120 = 0.67 between frames; a second square stands still.
    ids = [tracker.update(frame(square(5, 2 * t, 10), square(25, 40, 8)), np.array([0.9, 0.8]), np.array([0, 1]))
           for t in range(5)]
    assert [list(i) for i in ids] == [[1, 2]] * 5


def test_iou_at_the_threshold_continues_and_below_it_starts_a_new_track():
    tracker = MaskIoUTracker()
    assert list(tracker.update(frame(square(0, 0, 12)), np.array([0.9]), np.array([0]))) == [1]
    # 12 x 12 shifted by 4 px: 8 x 12 = 96 px shared, 16 x 12 = 192 px in the union: IoU exactly 0.5
    assert list(tracker.update(frame(square(0, 4, 12)), np.array([0.9]), np.array([0]))) == [1]
    # shifted by 5 px more: 7 x 12 = 84 shared, 17 x 12 = 204 in the union: IoU 0.41 -> a new track
    assert list(tracker.update(frame(square(0, 9, 12)), np.array([0.9]), np.array([0]))) == [2]


def test_a_class_change_starts_a_new_track():
    tracker = MaskIoUTracker()
    mask = square(10, 10, 10)
    assert list(tracker.update(frame(mask), np.array([0.9]), np.array([2]))) == [1]
    assert list(tracker.update(frame(mask), np.array([0.9]), np.array([3]))) == [2]  # same mask, IoU 1
    assert list(tracker.update(frame(mask), np.array([0.9]), np.array([3]))) == [2]
    across = MaskIoUTracker(match_across_classes=True)  # as the robot profile matches: the class is not compared
    assert [list(across.update(frame(mask), np.array([0.9]), np.array([c]))) for c in (2, 3, 2)] == [[1]] * 3


def test_the_best_scored_detection_takes_the_track_and_only_the_previous_frame_counts():
    tracker = MaskIoUTracker()
    tracker.update(frame(square(0, 0, 10)), np.array([0.9]), np.array([0]))
    # two detections overlap the track (IoU 0.67 and 1.0); the better scored one takes it, whatever its IoU
    ids = tracker.update(frame(square(0, 0, 10), square(0, 2, 10)), np.array([0.4, 0.7]), np.array([0, 0]))
    assert list(ids) == [2, 1]
    tracker.update(frame(), np.zeros(0), np.zeros(0, np.int64))  # nothing in this frame: both tracks end
    assert list(tracker.update(frame(square(0, 2, 10)), np.array([0.9]), np.array([0]))) == [3]


def test_score_gates_and_reset():
    tracker = MaskIoUTracker(new_track_score=0.5, continue_score=0.2)
    a, b, c = square(0, 0, 10), square(20, 20, 10), square(0, 40, 10)
    assert list(tracker.update(frame(a, b, c), np.array([0.6, 0.3, 0.1]), np.array([0, 0, 0]))) == [1, 0, 0]
    # 0.3 continues a track (>= continue_score) but cannot start one; 0.1 does neither
    assert list(tracker.update(frame(a, b), np.array([0.3, 0.6]), np.array([0, 0]))) == [1, 2]
    assert list(tracker.update(frame(a), np.array([0.1]), np.array([0]))) == [0]
    tracker.reset()  # a new video: no track goes on, and no ID is given twice
    assert list(tracker.update(frame(a), np.array([0.9]), np.array([0]))) == [3]
    with pytest.raises(ValueError, match="continue_score <= new_track_score"):
        MaskIoUTracker(new_track_score=0.1, continue_score=0.3)
    with pytest.raises(ValueError, match=r"masks \(N, H, W\)"):
        tracker.update(np.zeros((H, W), bool), np.array([0.9]), np.array([0]))


def test_a_lost_track_is_continued_within_max_lost_frames_over_its_last_mask():
    """An object seen, gone for one frame, back where it was: the same ID when one lost frame is allowed, a new one
    without persistence (the plain tracker)."""
    seen, gone = frame(square(5, 5, 10)), frame()
    for max_lost, expected in ((1, [[1], [], [1]]), (0, [[1], [], [2]])):
        tracker = MaskIoUTracker(max_lost_frames=max_lost)
        ids = [tracker.update(masks, np.full(len(masks), 0.9), np.zeros(len(masks), np.int64))
               for masks in (seen, gone, seen)]
        assert [list(i) for i in ids] == expected, max_lost
    # gone for two frames: one more than allowed ends it; a live track and a lost one side by side
    tracker = MaskIoUTracker(max_lost_frames=1)
    other = square(25, 40, 8)
    sequence = [frame(square(5, 5, 10), other), frame(other), frame(other), frame(square(5, 5, 10), other)]
    ids = [tracker.update(masks, np.full(len(masks), 0.9), np.zeros(len(masks), np.int64)) for masks in sequence]
    assert [list(i) for i in ids] == [[1, 2], [2], [2], [3, 2]]
    tracker.reset()  # a new video forgets the lost tracks too
    assert list(tracker.update(frame(other), np.array([0.9]), np.array([0]))) == [4]
    with pytest.raises(ValueError, match="max_lost_frames must be 0 or more"):
        MaskIoUTracker(max_lost_frames=-1)


def test_lost_frames_is_sgnets_max_lost_s_at_the_frame_rate():
    """SG-Net's tracker continues a track up to max_lost_s after its last match: 2.5 s at 6 frames a second is 15
    frames later, 14 missed frames in between; the mask tracker with lost_frames(2.5, 6) agrees on gaps of 14 and
    15 frames."""
    assert lost_frames(2.5, 6.0) == 14 and lost_frames(2.5, 30.0) == 74 and lost_frames(0.5, 6.0) == 2
    assert lost_frames(0.0, 6.0) == 0 and lost_frames(0.1, 6.0) == 0  # the next frame can always continue it
    for gap in (14, 15):
        centre = CenterTracker(TrackerConfig(new_track_score=0.0, continue_score=0.0, max_lost_s=2.5))
        masks = MaskIoUTracker(max_lost_frames=lost_frames(2.5, 6.0))
        present = [True] + [False] * gap + [True]
        centre_ids, mask_ids = [], []
        for t, here in enumerate(present):
            count = int(here)
            centre_ids += list(centre.update(np.tile([[5.0, 5, 15, 15]], (count, 1)), np.full(count, 0.9),
                                             np.zeros(count, np.int64), np.zeros((count, 2)), t / 6.0))
            mask_ids += list(masks.update(frame(*[square(5, 5, 10)] * count), np.full(count, 0.9),
                                          np.zeros(count, np.int64)))
        assert centre_ids == mask_ids == ([1, 1] if gap == 14 else [1, 2]), gap


def test_a_track_scores_the_mean_of_its_detections():
    tracker = MaskIoUTracker()
    scores = [0.9, 0.6, 0.3]
    frames = []
    for t, score in enumerate(scores):
        mask = square(5, 2 * t, 10)
        ids = tracker.update(frame(mask), np.array([score]), np.array([1]))
        frames.append([TrackedInstance(int(ids[0]), 1, "b", score, np.zeros(4), mask, np.zeros(2), np.zeros(2))])
    (result,) = build_video_results(7, frames, [10, 20], H, W)
    assert result.score == pytest.approx(0.6) and result.category_id == 20
    assert all(s is not None for s in result.segmentations)


# ------------------------------------------------------------------------------------------------ the peer


def test_mask_rcnn_is_built_from_random_weights_without_asking_for_any(monkeypatch, tmp_path):
    """torchvision is asked for weights=None, with trainable BatchNorm in every layer; the torch hub cache
    stays empty (nothing downloaded); two seeds give two different networks."""
    calls = []
    real = maskrcnn_peer.get_model

    def recording(name, **kwargs):
        calls.append((name, kwargs))
        return real(name, **kwargs)

    monkeypatch.setattr(maskrcnn_peer, "get_model", recording)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    config = ModelConfig(backbone="resnet18", fpn_channels=64, input_width=320, input_height=192,
                         detections_per_frame=20)
    torch.manual_seed(1)
    first = maskrcnn_peer.build_maskrcnn(config, num_classes=4, small_object=18.2)
    torch.manual_seed(2)
    second = maskrcnn_peer.build_maskrcnn(config, num_classes=4, small_object=18.2)
    assert calls == [("resnet18", {"weights": None, "norm_layer": nn.BatchNorm2d})] * 2
    assert not (tmp_path / "torch_home").exists()
    assert not torch.equal(first.backbone.body.conv1.weight, second.backbone.body.conv1.weight)
    assert all(p.requires_grad for p in first.parameters())
    assert first.roi_heads.box_predictor.cls_score.out_features == 5  # 4 classes + background
    assert first.roi_heads.mask_predictor.mask_fcn_logits.out_channels == 5
    assert (first.transform.min_size, first.transform.max_size) == ((192,), 320)
    assert first.roi_heads.detections_per_img == 20


def test_mask_rcnn_is_sized_like_the_model_config_for_the_sets_objects():
    """FPN and head widths from fpn_channels (64), anchors 16-256 px for objects from 18.2 px, 600/300 proposals
    while training and 300/100 at inference, 128 anchors and RoIs sampled a frame."""
    config = ModelConfig(backbone="resnet18", fpn_channels=64, input_width=320, input_height=192)
    model = maskrcnn_peer.build_maskrcnn(config, num_classes=3, small_object=18.2)
    assert model.backbone.out_channels == 64
    assert [m[0].out_channels for m in model.backbone.fpn.layer_blocks] == [64] * 4
    assert [m[0].in_channels for m in model.backbone.fpn.inner_blocks] == [64, 128, 256, 512]  # ResNet-18's stages
    assert model.rpn.anchor_generator.sizes == ((16,), (32,), (64,), (128,), (256,))
    assert model.rpn.anchor_generator.aspect_ratios == ((0.5, 1.0, 2.0),) * 5
    assert model.rpn._pre_nms_top_n == {"training": 600, "testing": 300}
    assert model.rpn._post_nms_top_n == {"training": 300, "testing": 100}
    assert model.rpn.fg_bg_sampler.batch_size_per_image == model.roi_heads.fg_bg_sampler.batch_size_per_image == 128
    assert (model.roi_heads.box_head.fc6.in_features, model.roi_heads.box_head.fc6.out_features) == (64 * 49, 256)
    assert [layer[0].out_channels for layer in model.roi_heads.mask_head] == [64] * 4
    assert model.roi_heads.mask_predictor.conv5_mask.out_channels == 64
    with torch.inference_mode():  # it runs: an image of the input size, detections in its format
        (output,) = model.eval()([torch.rand(3, 192, 320)])
    assert set(output) == {"boxes", "labels", "scores", "masks"} and output["masks"].shape[1:] == (1, 192, 320)


@pytest.mark.parametrize("small_object, finest", [(18.2, 16), (16.0, 16), (15.9, 8), (0.5, 1), (100.0, 64)])
def test_anchors_double_from_the_power_of_two_under_the_small_objects(small_object, finest):
    assert maskrcnn_peer.anchor_sizes(small_object) == tuple((finest * 2 ** level,) for level in range(5))


def test_the_small_object_side_is_the_5th_percentile_at_the_input_size_and_smallest_scale():
    """One 640x384 video (0.5 to fit 320x192) of 20 frames, an object 10 (k + 1) px square in frame k: sides 5, 10,
    .., 100 at the input size; numpy's 5th percentile of 20 sorted values sits at 0.05 x 19 = 0.95 between the
    first two, 5 + 0.95 x 5 = 9.75; at scale 0.8, 7.8. A box 8 x 32 has the side sqrt(8 x 32) = 16."""
    def data(width: int, height: int, masks: list[np.ndarray | None]) -> dict:
        return {"videos": [{"id": 1, "width": width, "height": height,
                            "file_names": [f"v/{k:05d}.jpg" for k in range(len(masks))]}],
                "categories": [{"id": 1, "name": "a"}],
                "annotations": [{"id": 1, "video_id": 1, "category_id": 1,
                                 "segmentations": [None if m is None else encode_mask(m) for m in masks]}]}

    def box(width: int, height: int, w: int, h: int) -> np.ndarray:
        mask = np.zeros((height, width), bool)
        mask[2:2 + h, 3:3 + w] = True
        return mask

    squares = parse_annotations(data(640, 384, [box(640, 384, 10 * (k + 1), 10 * (k + 1)) for k in range(20)]))
    config = ModelConfig(input_width=320, input_height=192)
    assert maskrcnn_peer.small_object_side(squares, config) == pytest.approx(9.75)
    assert maskrcnn_peer.small_object_side(squares, config, 0.8) == pytest.approx(7.8)
    thin = parse_annotations(data(320, 192, [None, box(320, 192, 8, 32)]))
    assert maskrcnn_peer.small_object_side(thin, config) == pytest.approx(16.0)
    with pytest.raises(maskrcnn_peer.PeerError, match="no object"):
        maskrcnn_peer.small_object_side(parse_annotations(data(320, 192, [None])), config)


def test_the_peers_warm_up_spans_its_share_of_the_progress_then_sgnets_decay():
    """Start fraction 0.1, final fraction 0.01, warm-up share 0.2: at progress 0, 0.1 (half the ramp, 0.55, times
    0.01 ** 0.1), 0.2 (the decay alone), 0.5 and 1; with no share, the decay from the start."""
    config = TrainConfig(optim=OptimConfig(warmup_start_fraction=0.1, final_lr_fraction=0.01, warmup_iters=50))
    factors = [maskrcnn_peer.peer_learning_rate_factor(p, 0.2, config) for p in (0.0, 0.1, 0.2, 0.5, 1.0)]
    assert factors == pytest.approx([0.1, 0.55 * 10 ** -0.2, 10 ** -0.4, 0.1, 0.01])
    assert maskrcnn_peer.peer_learning_rate_factor(0.0, 0.0, config) == 1.0
    assert maskrcnn_peer.peer_learning_rate_factor(0.5, 1.0, config) == pytest.approx(0.1 * (0.1 + 0.9 * 0.5))


class ConstantLoss(nn.Module):
    """Stands in for Mask R-CNN while training: one weight, a loss of it."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(()))

    def forward(self, images, targets):
        return {"loss_weight": self.weight ** 2}


def test_training_sets_each_steps_rate_from_its_progress_and_the_share(tiny_set, monkeypatch):
    """4 iterations, no clock: progress 0, 0.25, 0.5 and 0.75, each step's rate the base rate times the factor at
    that progress and the warm-up share given."""
    seen = []
    real = maskrcnn_peer.peer_learning_rate_factor

    def recording(progress, share, config):
        seen.append((progress, share))
        return real(progress, share, config)

    monkeypatch.setattr(maskrcnn_peer, "peer_learning_rate_factor", recording)
    rates = []
    monkeypatch.setattr(torch.optim.SGD, "step", lambda self, closure=None: rates.append(self.param_groups[0]["lr"]))
    config = TrainConfig(model=ModelConfig(input_width=64, input_height=48), batch_size=1, max_iters=4,
                         optim=OptimConfig(warmup_start_fraction=0.1, final_lr_fraction=0.01))
    trained = maskrcnn_peer.train_maskrcnn(ConstantLoss(), config, load_annotations(tiny_set["train"]),
                                           tiny_set["frames"], 0.02, 0.5, progress=False)
    assert (trained.iterations, trained.images) == (4, 8)  # 2 frames a step (batch_size 1 x clip_length 2)
    assert seen == [(0.0, 0.5), (0.25, 0.5), (0.5, 0.5), (0.75, 0.5)]
    assert rates == pytest.approx([0.02 * 0.1, 0.02 * 0.55 * 0.01 ** 0.25, 0.02 * 0.01 ** 0.5, 0.02 * 0.01 ** 0.75])
    with pytest.raises(maskrcnn_peer.PeerError, match="warm-up share"):
        maskrcnn_peer.train_maskrcnn(ConstantLoss(), config, load_annotations(tiny_set["train"]),
                                     tiny_set["frames"], 0.02, 1.5, progress=False)


# ------------------------------------------------------------------------------------------------ the command


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory) -> dict[str, Path]:
    """Four synthetic videos of three frames: three to train on, one held out."""
    folder = tmp_path_factory.mktemp("peer_set")
    annotations = generate_synthetic_set(folder / "synth", videos=4, frames=3)
    train, val = split_annotations(json.loads(annotations.read_bytes()), val_count=1)
    paths = {"train": folder / "train.json", "val": folder / "val.json", "frames": folder / "synth" / "JPEGImages"}
    paths["train"].write_text(json.dumps(train))
    paths["val"].write_text(json.dumps(val))
    return paths


def tiny_command(tiny_set: dict[str, Path], output: Path) -> list[str]:
    return ["--annotations", str(tiny_set["train"]), "--frames", str(tiny_set["frames"]), "--val",
            str(tiny_set["val"]), "--output", str(output), "--set", "batch_size=1", "--set", "data.workers=0",
            "--no-progress"]


def test_the_warm_up_share_is_the_progress_where_sgnets_warm_up_ended():
    """Logged every 20 iterations (iteration n holds the progress of iteration n - 1 from 0): steps 19, 39 and 59 at
    progress 0.05, 0.11 and 0.17, the run ending at iteration 100. Warm-up of 50: 0.11 + 11 / 20 x 0.06 = 0.143; of
    10: 0.05 x 10 / 19; of 80, between (59, 0.17) and (100, 1): 0.17 + 21 / 41 x 0.83."""
    log = [{"iteration": 20, "schedule_progress": 0.05}, {"iteration": 40, "schedule_progress": 0.11},
           {"iteration": 60, "schedule_progress": 0.17}]
    assert peer_bench.warmup_share(log, 50, 100) == pytest.approx(0.143)
    assert peer_bench.warmup_share(log, 10, 100) == pytest.approx(0.05 * 10 / 19)
    assert peer_bench.warmup_share(log, 80, 100) == pytest.approx(0.17 + 21 / 41 * 0.83)
    assert peer_bench.warmup_share([], 50, 200) == pytest.approx(0.25)  # nothing logged: the iteration share
    assert peer_bench.warmup_share(log, 0, 100) == 0.0
    assert peer_bench.warmup_share(log, 100, 100) == peer_bench.warmup_share([], 50, 2) == 1.0  # ended warming up


def test_the_frame_rate_is_the_videos_median_interval(tiny_set):
    """sgnet-synth's frames are every 5th of 30 fps footage: 6 frames a second."""
    assert peer_bench.frame_rate(load_annotations(tiny_set["val"])) == pytest.approx(6.0)


def figures(ap: float | None, iterations: int = 7, lr: float = 0.01) -> dict:
    """What evaluate and the runs return, every figure ``ap`` or ``iterations``."""
    tracking = {f"{name}_{profile}": ap for name in ("idf1", "id_switches", "mota") for profile in peer_bench.PROFILES}
    return {**{name: ap for name in METRIC_NAMES}, "ms_median": 1.0, "ms_p90": 2.0, "training_iterations": iterations,
            "training_minutes": 0.5, "training_frames": 2 * iterations, "lr": lr, **tracking}


def test_the_sweep_keeps_the_best_held_out_ap_and_trains_it_again_for_sgnets_iterations(tiny_set, tmp_path,
                                                                                         monkeypatch, capsys):
    """Stand-in runs, no training: SG-Net 37 iterations with a warm-up share of 0.25; the peer at 0.01, 0.02, 0.04
    and 0.08 scores AP 0.2, 0.5, 0.5 and none (it found nothing) at equal time (the first of the two best kept),
    then 0.02 again for exactly 37 iterations with no clock. The peer gets the share, anchors from the tiny set's
    objects and each profile's max_lost_s at 6 fps: 2.5 s, 14 lost frames; 1 s, 5."""
    profiles = {"robot": TrackerConfig(new_track_score=0.5, continue_score=0.3),
                "evaluation": TrackerConfig(new_track_score=0.3, continue_score=0.1, max_lost_s=1.0,
                                            match_across_classes=False)}
    monkeypatch.setattr(peer_bench, "run_sgnet", lambda config, *rest: (
        {**figures(0.8, 37, config.optim.base_lr), "warmup_share": 0.25}, profiles))
    calls = []

    def run_maskrcnn(config, train_set, val, frames, given, lr, settings, progress):
        calls.append((config.max_minutes, config.max_iters, lr, settings))
        ap = {0.01: 0.2, 0.02: 0.5, 0.04: 0.5, 0.08: None}[lr] if config.max_minutes else 0.6
        return figures(ap, 37 if not config.max_minutes else 20, lr)

    monkeypatch.setattr(peer_bench, "run_maskrcnn", run_maskrcnn)
    assert peer_bench.main([*tiny_command(tiny_set, tmp_path), "--minutes", "3", "--peer-lr", "0.01,0.02,0.04,0.08",
                            "--json", str(tmp_path / "peer.json")]) == 0
    side = maskrcnn_peer.small_object_side(load_annotations(tiny_set["train"]),
                                           ModelConfig(input_width=320, input_height=192), 0.8)
    settings = peer_bench.PeerSettings(0.25, side, {"robot": 14, "evaluation": 5})  # 2.5 s and 1 s at 6 fps
    equal_time = [(3.0, 700, lr, settings) for lr in (0.01, 0.02, 0.04, 0.08)]  # the recipe's max_iters, 700
    assert calls == [*equal_time, (0.0, 37, 0.02, settings)]
    result = json.loads((tmp_path / "peer.json").read_text())
    assert (result["maskrcnn"]["lr"], result["maskrcnn"]["AP"]) == (0.02, 0.5)
    assert result["maskrcnn_equal_iterations"]["lr"] == 0.02
    assert result["maskrcnn_equal_iterations"]["training_iterations"] == result["sgnet"]["training_iterations"] == 37
    assert result["peer_lr_sweep"] == [{"lr": lr, **{name: ap for name in ("AP", "AP75", "AR100", "idf1_evaluation",
                                                                           "idf1_robot")}, "training_iterations": 20}
                                       for lr, ap in ((0.01, 0.2), (0.02, 0.5), (0.04, 0.5), (0.08, None))]
    assert (result["warmup_share"], result["warmup_iters"], result["frame_rate"]) == (0.25, 50, pytest.approx(6.0))
    assert result["peer"] == {"small_object_px": pytest.approx(side), "max_lost_frames": {"robot": 14, "evaluation": 5},
                              "anchor_sizes": [s[0] for s in maskrcnn_peer.anchor_sizes(side)]}
    out = capsys.readouterr().out
    assert "Mask R-CNN's learning rate 0.02, the best held-out AP at equal time of 0.01: AP 0.200, 0.02: AP 0.500, " \
           "0.04: AP 0.500, 0.08: AP n/a" in out
    assert "equal iters: for SG-Net's 37 iterations, no clock. Warm-up: the first 25.0 % of each schedule" in out


@pytest.mark.parametrize("value, message", [("0", "must be positive"), ("0.01,-1", "must be positive"),
                                            ("0.01;0.02", "separated by commas"), ("nan", "must be positive")])
def test_bad_learning_rates_are_named(value, message, capsys):
    assert peer_bench.rates("0.01,0.02, 0.04") == (0.01, 0.02, 0.04) and peer_bench.rates("0.02") == (0.02,)
    with pytest.raises(SystemExit):
        peer_bench.main(["--peer-lr", value])
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_the_command_trains_both_scores_both_and_prints_one_table(tiny_set, tmp_path, capsys):
    """2 iterations, SG-Net's warm-up 1 iteration and every iteration logged: its warm-up ended at iteration 1, at
    progress 1 / 2 (the clock's share of 5 minutes is far less), so the peer warms up over half its schedule. The
    peer at two rates for the equal-time row, the better one again for SG-Net's 2 iterations."""
    assert peer_bench.main([*tiny_command(tiny_set, tmp_path / "out"), "--max-iters", "2", "--minutes", "5",
                            "--set", "optim.warmup_iters=1", "--set", "log_every=1", "--peer-lr", "0.01,0.02",
                            "--threads", "1", "--json", str(tmp_path / "peer.json")]) == 0
    result = json.loads((tmp_path / "peer.json").read_text())
    assert (result["train_videos"], result["train_frames"], result["held_out_videos"], result["held_out_frames"]) \
        == (3, 9, 1, 3)
    assert result["frames_per_step"] == 2 and result["threads"] == 1 and result["budget_minutes"] == 5
    assert result["tracker_profiles"] == {
        "robot": {"new_track_score": 0.5, "continue_score": 0.3, "match_across_classes": True, "max_lost_s": 2.5},
        "evaluation": {"new_track_score": 0.3, "continue_score": 0.1, "match_across_classes": False,
                       "max_lost_s": 2.5}}
    assert result["warmup_share"] == result["sgnet"]["warmup_share"] == 0.5 and result["warmup_iters"] == 1
    assert result["peer"]["max_lost_frames"] == {"robot": 14, "evaluation": 14}  # 2.5 s at 6 fps
    assert result["peer"]["anchor_sizes"] == [s[0] for s in maskrcnn_peer.anchor_sizes(
        result["peer"]["small_object_px"])]
    for key, _ in peer_bench.METHODS:
        figures = result[key]
        assert figures["training_iterations"] == 2 and figures["training_frames"] == 4
        assert 0 < figures["training_minutes"] < 5
        for name in ("AP", "AP75", "AR100", "idf1_evaluation", "idf1_robot"):
            assert 0.0 <= figures[name] <= 1.0, (key, name, figures[name])
        assert 0 < figures["ms_median"] <= figures["ms_p90"]
    sweep = result["peer_lr_sweep"]
    assert [run["lr"] for run in sweep] == [0.01, 0.02]
    best = max(sweep, key=lambda run: run["AP"])  # max keeps the first of equals, as the bench does
    assert result["sgnet"]["lr"] == 0.01 and result["maskrcnn"]["lr"] == result["maskrcnn_equal_iterations"]["lr"] \
        == best["lr"] and result["maskrcnn"]["AP"] == best["AP"]
    assert (tmp_path / "out" / "sgnet" / "model.pt").is_file()
    lines = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("method"))
    assert lines[header].split() == ["method", "AP", "AP75", "AR100", "IDF1", "eval", "IDF1", "robot", "iterations",
                                     "frames", "train", "min", "ms/frame", "lr"]
    for line, (key, label) in zip(lines[header + 1:header + 4], peer_bench.METHODS):
        assert line.startswith(label)
        cells = line.removeprefix(label).split()
        figures = result[key]
        assert [float(c) for c in cells[:5]] == pytest.approx(
            [figures[n] for n in ("AP", "AP75", "AR100", "idf1_evaluation", "idf1_robot")], abs=5e-4)
        assert cells[5:7] == ["2", "4"] and float(cells[8]) == pytest.approx(figures["ms_median"], abs=0.05)
        assert float(cells[9]) == figures["lr"]


@pytest.mark.slow  # generates the demo's set (more than 2.5 s)
def test_the_demo_set_is_the_demos_synthetic_set_and_split(tmp_path):
    train, val, frames = peer_bench.demo_set(tmp_path, progress=False)
    train_data, val_data = json.loads(train.read_text()), json.loads(val.read_text())
    ids = [v["id"] for v in train_data["videos"] + val_data["videos"]]
    assert len(ids) == 48 and len(val_data["videos"]) == 8 == peer_bench.HELD_OUT_VIDEOS
    assert {v["id"] for v in val_data["videos"]} == held_out_videos(ids, 8, seed=0)
    assert all((frames / name).is_file() for v in val_data["videos"] for name in v["file_names"])


def test_bad_input_is_named(tiny_set, tmp_path, capsys):
    with pytest.raises(SystemExit):
        peer_bench.main(["--annotations", str(tiny_set["train"])])
    assert "--annotations, --frames and --val go together" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        peer_bench.main(["--minutes", "0"])
    assert "--minutes must be positive" in capsys.readouterr().err
    missing = tmp_path / "nowhere.json"
    assert peer_bench.main([*tiny_command(tiny_set, tmp_path), "--val", str(missing)]) == 2
    assert re.search(r"sgnet-peer-bench: error: .*nowhere\.json", capsys.readouterr().err)


@pytest.mark.slow
def test_ctrl_c_stops_it_cleanly(tiny_set, tmp_path):
    arguments = [a for a in tiny_command(tiny_set, tmp_path / "out") if a != "--no-progress"]
    process = subprocess.Popen([sys.executable, "-m", "training.benchmarks.peer_bench", *arguments, "--minutes", "5",
                                "--json", str(tmp_path / "peer.json")],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = ""
    while "sgnet-train" not in seen:  # the progress bars are on: interrupt once SG-Net's training has begun
        character = process.stderr.read(1)
        assert character, f"it ended before training: {seen[-2000:]}"
        seen += character
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 130, stderr[-3000:]
    assert "sgnet-peer-bench: interrupted; no figures written" in stderr and "Traceback" not in stderr
    assert stdout == "" and not (tmp_path / "peer.json").exists()


class FixedDetections(nn.Module):
    """Stands in for Mask R-CNN's network, whose random weights cannot be made to give a duplicate: three
    detections of its output format, the second a shifted copy of the first (mask IoU 80 / 120 = 0.67), the third
    apart."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential()  # what MaskRCNNPredictor folds
        masks = torch.zeros((3, 1, H, W))
        masks[0, 0, 5:15, 5:15] = masks[1, 0, 5:15, 7:17] = masks[2, 0, 20:30, 30:50] = 1.0
        self.output = {"masks": masks, "scores": torch.tensor([0.9, 0.8, 0.7]), "labels": torch.tensor([1, 1, 2]),
                       "boxes": torch.tensor([[5.0, 5, 15, 15], [7, 5, 17, 15], [30, 20, 50, 30]])}

    def forward(self, images):
        return [self.output]


@pytest.mark.parametrize("threshold, kept_scores", [(0.5, [0.9, 0.7]), (0.0, [0.9, 0.8, 0.7])])
def test_the_peer_gets_the_model_configs_suppression_by_mask_overlap(threshold, kept_scores):
    predictor = maskrcnn_peer.MaskRCNNPredictor(FixedDetections(), ("a", "b"), MaskIoUTracker(0.0, 0.0),
                                                mask_nms_threshold=threshold)
    result = predictor.step(np.zeros((H, W, 3), np.uint8), 0.0)
    assert sorted((i.score for i in result.instances), reverse=True) == pytest.approx(kept_scores)
