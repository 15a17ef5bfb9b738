"""The node serves what the shipped training recipes produce: a checkpoint trained by each recipe from its
pretrained start (the stand-in weights files of standin_weights.py; one iteration at 96x64) is served by the real
node process (``python -m sgnet_ros.node``) with the pretrained file deleted and an empty TORCH_HOME, and a bag of
the tiny synthetic set made by sgnet-bag is replayed through it lock-step by sgnet-replay.

After one training iteration the classifier sits near its focal-loss prior (scores of 0.1 at most), under the
evaluation tracker profile's start score. So the checkpoints are trained with ``model.score_threshold=0`` (the top
DETECTIONS of each frame kept), and the node and sgnet-eval both track every detection: new_track_score and
continue_score 0, the profile's max_lost_s and radius_scale. Each frame then has instances, and the node's answers
must be exactly what sgnet-eval computes in this process on the same frames: the same tracks (class, frames, masks;
most masks of a one-iteration network are still empty) with the same scores, hence the same metrics.
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
from sgnet_model.data.ytvis import YTVISData, load_annotations
from sgnet_ros.masks import instance_mask
from sgnet_ros.msg import InstanceArray
from standin_weights import Standins, standin_kind, train_one_iteration
from test_replay import REPORT_METRICS, make_bag, read_bag, replay_json, sorted_results, stamp_ns
from training.config import load_train_config
from training.evaluate import main as sgnet_eval
from training.synthetic import generate_synthetic_set
from runtime_reference import REFERENCE_ARGUMENTS

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
    # As on a robot: the pretrained file is deleted (TORCH_HOME is already an empty folder); model.pt must suffice.
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
                       "--no-progress", *REFERENCE_ARGUMENTS]) == 0
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
    served, evaluated = node_tracks(outputs, annotations), eval_tracks(tmp_path / "eval" / "results.json", annotations)
    assert [track[:3] for track in served] == [track[:3] for track in evaluated]
    assert [track[3] for track in served] == pytest.approx([track[3] for track in evaluated], abs=1e-6)
    # And the replay's own results file is sgnet-eval's.
    ours = sorted_results(tmp_path / "replay" / "results.json")
    theirs = sorted_results(tmp_path / "eval" / "results.json")
    assert [(r["video_id"], r["category_id"], r["segmentations"]) for r in ours] == \
        [(r["video_id"], r["category_id"], r["segmentations"]) for r in theirs]
    assert [r["score"] for r in ours] == pytest.approx([r["score"] for r in theirs], abs=1e-6)


# (video id, class name, per frame the mask as compressed COCO RLE counts or "" where the track is absent, score)
Track = tuple[int, str, tuple[str, ...], float]


def rle_counts(mask: np.ndarray) -> str:
    """(H, W) bool mask -> pycocotools' compressed RLE counts: one short string per mask, equal iff the masks are."""
    return mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"].decode()


def node_tracks(outputs: list[InstanceArray], annotations: YTVISData) -> list[Track]:
    """The node's answers (the bag's videos back to back) as tracks, sorted: the instances of one track id in one
    video, scored by the mean of their scores (as the YouTube-VIS results score a track)."""
    tracks = []
    answers = iter(outputs)
    for video_id, video in annotations.videos.items():
        by_id: dict[int, tuple[str, list[str], list[float]]] = {}
        for frame in range(video.length):
            for instance in next(answers).instances:
                name, masks, scores = by_id.setdefault(instance.track_id,
                                                       (instance.class_name, [""] * video.length, []))
                assert name == instance.class_name, "a track changed class"
                masks[frame] = rle_counts(instance_mask(instance))
                scores.append(instance.score)
        tracks += [(video_id, name, tuple(masks), float(np.mean(scores))) for name, masks, scores in by_id.values()]
    return sorted(tracks)


def eval_tracks(results: Path, annotations: YTVISData) -> list[Track]:
    """sgnet-eval's results.json (one entry per track, its masks as COCO RLE) in the same form."""
    names = {category.id: category.name for category in annotations.categories}
    return sorted((result["video_id"], names[result["category_id"]],
                   tuple("" if rle is None else rle_counts(mask_utils.decode(rle).astype(bool))
                         for rle in result["segmentations"]), result["score"])
                  for result in json.loads(results.read_text()))
