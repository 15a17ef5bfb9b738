"""sgnet-peer-bench: the plain mask-IoU tracker on hand-made masks, Mask R-CNN built from random weights only
(nothing downloaded), the demo's data, and the command end to end on a tiny set (and interrupted)."""
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
from sgnet_model.data.ytvis import build_video_results, encode_mask
from training.benchmarks import maskrcnn_peer, peer_bench
from training.benchmarks.iou_tracker import MaskIoUTracker, lost_frames, mask_iou
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
    real = maskrcnn_peer.resnet_fpn_backbone

    def recording(**kwargs):
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(maskrcnn_peer, "resnet_fpn_backbone", recording)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    config = ModelConfig(backbone="resnet18", input_width=320, input_height=192, detections_per_frame=20)
    torch.manual_seed(1)
    first = maskrcnn_peer.build_maskrcnn(config, num_classes=4)
    torch.manual_seed(2)
    second = maskrcnn_peer.build_maskrcnn(config, num_classes=4)
    assert [c["weights"] for c in calls] == [None, None]
    assert all(c["backbone_name"] == "resnet18" and c["trainable_layers"] == 5 and c["norm_layer"] is nn.BatchNorm2d
               for c in calls)
    assert not (tmp_path / "torch_home").exists()
    assert not torch.equal(first.backbone.body.conv1.weight, second.backbone.body.conv1.weight)
    assert all(p.requires_grad for p in first.parameters())
    assert first.roi_heads.box_predictor.cls_score.out_features == 5  # 4 classes + background
    assert (first.transform.min_size, first.transform.max_size) == ((192,), 320)
    assert first.roi_heads.detections_per_img == 20


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


@pytest.mark.slow
def test_the_command_trains_both_scores_both_and_prints_one_table(tiny_set, tmp_path, capsys):
    assert peer_bench.main([*tiny_command(tiny_set, tmp_path / "out"), "--max-iters", "2", "--minutes", "5",
                            "--threads", "1", "--json", str(tmp_path / "peer.json")]) == 0
    result = json.loads((tmp_path / "peer.json").read_text())
    assert (result["train_videos"], result["train_frames"], result["held_out_videos"], result["held_out_frames"]) \
        == (3, 9, 1, 3)
    assert result["frames_per_step"] == 2 and result["threads"] == 1 and result["budget_minutes"] == 5
    assert result["tracker_profiles"] == {
        "robot": {"new_track_score": 0.5, "continue_score": 0.3, "match_across_classes": True},
        "evaluation": {"new_track_score": 0.3, "continue_score": 0.1, "match_across_classes": False}}
    for key in ("sgnet", "maskrcnn"):
        figures = result[key]
        assert figures["training_iterations"] == 2 and figures["training_frames"] == 4
        assert 0 < figures["training_minutes"] < 5
        for name in ("AP", "AP75", "AR100", "idf1_evaluation", "idf1_robot"):
            assert 0.0 <= figures[name] <= 1.0, (key, name, figures[name])
        assert 0 < figures["ms_median"] <= figures["ms_p90"]
    assert (result["sgnet"]["lr"], result["maskrcnn"]["lr"]) == (0.01, 0.02)
    assert (tmp_path / "out" / "sgnet" / "model.pt").is_file()
    lines = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("method"))
    assert lines[header].split() == ["method", "AP", "AP75", "AR100", "IDF1", "eval", "IDF1", "robot", "iterations",
                                     "frames", "train", "min", "ms/frame"]
    for line, (key, label) in zip(lines[header + 1:header + 3], peer_bench.METHODS):
        cells = line.removeprefix(label).split()
        figures = result[key]
        assert [float(c) for c in cells[:5]] == pytest.approx(
            [figures[n] for n in ("AP", "AP75", "AR100", "idf1_evaluation", "idf1_robot")], abs=5e-4)
        assert cells[5:7] == ["2", "4"] and float(cells[8]) == pytest.approx(figures["ms_median"], abs=0.05)


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
