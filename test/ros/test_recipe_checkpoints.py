"""The node serves what the shipped training recipes produce: a checkpoint trained by each recipe from its
pretrained start (the stand-in weights files of standin_weights.py, one iteration at 96x64), served by the real
node process (``python -m sgnet_ros.node``) with the pretrained file deleted and an empty TORCH_HOME, and a bag of
the tiny synthetic set replayed through it lock-step by sgnet-bag and sgnet-replay.

After one training iteration the classifier still sits near its focal-loss prior (scores around 0.1 at most),
below the checkpoint's evaluation tracker profile. So the checkpoints are trained with ``model.score_threshold=0``
(kept up to DETECTIONS a frame), and the node and sgnet-eval both track every detection (new_track_score and
continue_score 0; the profile's max_lost_s and radius_scale): each frame then has instances, and the node's answer
to each frame must be exactly what sgnet-eval computes in this process for the same frame.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from pycocotools import mask as mask_utils
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import Image

from sgnet_model.checkpoint import load_checkpoint
from sgnet_model.ytvis import load_annotations
from sgnet_ros.masks import instance_mask
from sgnet_ros.msg import InstanceArray
from standin_weights import Standins, standin_kind, train_one_iteration
from test_replay import REPORT_METRICS, make_bag, read_bag, replay_json, sorted_results, stamp_ns
from training.config import load_train_config
from training.evaluate import main as sgnet_eval
from training.synthetic import generate_synthetic_set

pytestmark = pytest.mark.slow

RECIPES = Path(__file__).resolve().parents[2] / "config" / "train"
WIDTH, HEIGHT, FRAMES = 96, 64, 3  # frames at the network's input size: no resizing, short ResNet-50 runs
DETECTIONS = 4
# (recipe, model.pretrained, where training finds the weights file: the torch hub cache or model.pretrained_path)
CASES = [("youtube_vis_r50", "coco_fcos", "path"), ("synthetic_small", "imagenet", "hub")]


@pytest.fixture(scope="module")
def standins(tmp_path_factory) -> Standins:
    return Standins(tmp_path_factory.mktemp("torch_home"))


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory) -> Path:
    """Two videos of three 96x64 frames; returns the annotation file (JPEGImages beside it)."""
    return generate_synthetic_set(tmp_path_factory.mktemp("recipe_set"), videos=2, frames=FRAMES, width=WIDTH,
                                  height=HEIGHT, sizes=(12.0, 40.0), seed=5)


@pytest.fixture(scope="module")
def bag(tmp_path_factory, tiny_set) -> Path:
    folder = tmp_path_factory.mktemp("recipe_bags") / "tiny"
    make_bag("ytvis", "--annotations", str(tiny_set), "--frames", str(tiny_set.parent / "JPEGImages"),
             "-o", str(folder))
    return folder


@pytest.mark.parametrize("recipe, pretrained, source", CASES, ids=["-".join(case) for case in CASES])
def test_node_serves_the_recipe_checkpoint_and_lock_step_replay_equals_sgnet_eval(
        recipe, pretrained, source, ros, node_factory, standins, tiny_set, bag, tmp_path, monkeypatch, capsys):
    frames_dir = tiny_set.parent / "JPEGImages"
    config_path = RECIPES / f"{recipe}.yaml"
    model_pt = train_one_iteration(config_path, pretrained, source, tiny_set, frames_dir, (WIDTH, HEIGHT), standins,
                                   tmp_path, monkeypatch, capsys,
                                   overrides=["model.score_threshold=0.0", f"model.detections_per_frame={DETECTIONS}"])
    standins.path(standin_kind(pretrained, load_train_config(config_path).model.backbone)).unlink()
    checkpoint = load_checkpoint(model_pt)
    model_config = checkpoint.model_config
    assert (model_config.pretrained, model_config.input_width, model_config.input_height) == (pretrained, WIDTH, HEIGHT)
    tracker = dataclasses.replace(checkpoint.tracker_profiles["evaluation"], new_track_score=0.0, continue_score=0.0)

    namespace = f"/recipe_{recipe}"
    node = node_factory("sgnet", namespace, checkpoint=str(model_pt), qos_reliability="reliable",
                        model__score_threshold=model_config.score_threshold,
                        model__nms_threshold=model_config.nms_threshold,
                        model__detections_per_frame=model_config.detections_per_frame,
                        **{f"tracker__{f.name}": getattr(tracker, f.name) for f in dataclasses.fields(tracker)})
    truth = bag.with_name(bag.name + ".ground_truth.json")
    report, _ = replay_json("--bag", str(bag), "--node-namespace", namespace, "--as-fast-as-node",
                            "--ground-truth", str(truth), "--output", str(tmp_path / "replay"),
                            "--wait", "120", "--timeout", "60")
    assert node.process.poll() is None, node.output()[-3000:]

    tracker_yaml = tmp_path / "tracker.yaml"
    tracker_yaml.write_text(yaml.safe_dump({"evaluation_tracker": dataclasses.asdict(tracker)}))
    capsys.readouterr()
    assert sgnet_eval(["--checkpoint", str(model_pt), "--annotations", str(tiny_set), "--frames", str(frames_dir),
                       "--config", str(tracker_yaml), "--output", str(tmp_path / "eval"), "--json",
                       "--no-progress"]) == 0
    direct = json.loads(capsys.readouterr().out)

    # Every frame in came out, each answer under its input image's header.
    inputs = [deserialize_message(raw, Image) for _, raw in read_bag(bag)["/camera/image_raw"]]
    outputs = [deserialize_message(raw, InstanceArray)
               for _, raw in read_bag(tmp_path / "replay" / "outputs")[f"{namespace}/instances"]]
    annotations = load_annotations(tiny_set)
    assert len(inputs) == sum(video.length for video in annotations.videos.values()) == 2 * FRAMES
    assert (report["frames_in"], report["frames_out"], report["frames_dropped"]) == (len(inputs), len(inputs), 0)
    assert [(stamp_ns(o), o.header.frame_id) for o in outputs] == [(stamp_ns(i), i.header.frame_id) for i in inputs]
    assert all(len(output.instances) == DETECTIONS for output in outputs)

    # The report's metrics are sgnet-eval's, under the same tracker values.
    assert report["tracker"] == direct["tracker"] == dataclasses.asdict(tracker)
    assert {name: report["metrics"][name] for name in REPORT_METRICS} == {name: direct[name] for name in REPORT_METRICS}
    # The node's instances, frame by frame and grouped by its track ids, are sgnet-eval's tracks and masks.
    assert node_tracks(outputs, annotations) == eval_tracks(tmp_path / "eval" / "results.json", annotations)
    ours, theirs = sorted_results(tmp_path / "replay" / "results.json"), sorted_results(tmp_path / "eval" / "results.json")
    assert [(r["video_id"], r["category_id"], r["segmentations"]) for r in ours] == \
        [(r["video_id"], r["category_id"], r["segmentations"]) for r in theirs]
    assert [r["score"] for r in ours] == pytest.approx([r["score"] for r in theirs], abs=1e-6)


# video id -> its tracks, sorted: (class name, per frame the (H, W) bool mask's bytes, b"" where the track is absent)
Tracks = dict[int, list[tuple[str, tuple[bytes, ...]]]]


def node_tracks(outputs: list[InstanceArray], annotations) -> Tracks:
    """The node's answers (the bag's videos back to back) as tracks: instances of one track id in one video."""
    tracks: Tracks = {}
    answers = iter(outputs)
    for video_id, video in annotations.videos.items():
        by_id: dict[int, tuple[str, list[bytes]]] = {}
        for frame in range(video.length):
            for instance in next(answers).instances:
                name, masks = by_id.setdefault(instance.track_id, (instance.class_name, [b""] * video.length))
                assert name == instance.class_name
                masks[frame] = instance_mask(instance).tobytes()
        tracks[video_id] = sorted((name, tuple(masks)) for name, masks in by_id.values())
    return tracks


def eval_tracks(results: Path, annotations) -> Tracks:
    """sgnet-eval's results.json (one entry per track, its masks as COCO RLE) in the same form."""
    names = {category.id: category.name for category in annotations.categories}
    tracks: Tracks = {video_id: [] for video_id in annotations.videos}
    for result in json.loads(results.read_text()):
        masks = tuple(b"" if rle is None else mask_utils.decode(rle).astype(bool).tobytes()
                      for rle in result["segmentations"])
        tracks[result["video_id"]].append((names[result["category_id"]], masks))
    return {video_id: sorted(entries) for video_id, entries in tracks.items()}
