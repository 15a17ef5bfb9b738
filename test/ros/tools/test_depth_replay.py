"""Depth through sgnet-bag and sgnet-replay over real DDS: a synthetic set with depth becomes a bag with aligned depth
images and camera_info stamped as the colour frames; the replay feeds them to the node in step with the colour frames
and reports the 3D error against the set's ground truth. The trained-model figures are in test_depth_trained.py."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import yaml
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import CameraInfo, Image

from ros_harness import reconfigure
from sgnet_ros.tools.bag import DEPTH_KEY, DEPTH_TOPIC
from sgnet_ros.depth import CameraIntrinsics, locate_instance
from sgnet_ros.masks import instance_mask
from sgnet_ros.msg import InstanceArray
from test_replay import checkpoint  # noqa: F401 (test_replay's random-weight model of the shapes, a fixture)
from test_replay import CLASSES, DETECTIONS, make_bag, read_bag, replay_json, stamp_ns
from training.synthetic import CAMERA_INFO_FILE, DEPTH_DIR, DEPTH_TRUTH_FILE, generate_synthetic_set

NAMESPACE = "/depth_replay"
INFO_TOPIC = DEPTH_TOPIC.rpartition("/")[0] + "/camera_info"


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return generate_synthetic_set(tmp_path_factory.mktemp("depth_replay_set"), videos=2, frames=(4, 5),
                                  classes=CLASSES, objects=(1, 2), seed=12, depth=True)


@pytest.fixture(scope="module")
def bag(tmp_path_factory, synthetic):
    folder = tmp_path_factory.mktemp("depth_replay_bags") / "synthetic"
    make_bag("ytvis", "--annotations", str(synthetic), "--frames", str(synthetic.parent / "JPEGImages"),
             "-o", str(folder), "--start-time", "5000")
    return folder


def frame_count(synthetic) -> int:
    return sum(video["length"] for video in json.loads(synthetic.read_text())["videos"])


def depth_png(synthetic, video_id: int, frame_index: int) -> np.ndarray:
    data = json.loads(synthetic.read_text())
    name = next(v for v in data["videos"] if v["id"] == video_id)["file_names"][frame_index]
    return cv2.imread(str(synthetic.parent / DEPTH_DIR / name.replace(".jpg", ".png")), cv2.IMREAD_UNCHANGED)


def test_the_bag_holds_each_frames_depth_and_camera_info_with_its_stamp(bag, synthetic):
    messages = read_bag(bag)
    truth = json.loads((bag.parent / f"{bag.name}.ground_truth.json").read_text())
    frames = truth["sgnet_bag"]["frames"]
    assert len(messages[DEPTH_TOPIC]) == len(messages[INFO_TOPIC]) == len(messages["/camera/image_raw"]) == \
        len(frames) == frame_count(synthetic)
    calibration = yaml.safe_load((synthetic.parent / CAMERA_INFO_FILE).read_text())
    for frame, (_, raw_depth), (_, raw_info) in zip(frames, messages[DEPTH_TOPIC], messages[INFO_TOPIC]):
        depth, info = deserialize_message(raw_depth, Image), deserialize_message(raw_info, CameraInfo)
        assert stamp_ns(depth) == stamp_ns(info) == frame["stamp_ns"]
        assert (depth.encoding, depth.width, depth.height, depth.step, depth.is_bigendian) == ("16UC1", 320, 192,
                                                                                             640, 0)
        pixels = np.frombuffer(bytes(depth.data), "<u2").reshape(192, 320)
        assert np.array_equal(pixels, depth_png(synthetic, frame["video_id"], frame["frame_index"]))
        assert list(info.k) == pytest.approx(calibration["camera_matrix"]["data"])
        assert (info.width, info.height) == (320, 192)
    source = json.loads((synthetic.parent / DEPTH_TRUTH_FILE).read_text())
    assert truth[DEPTH_KEY]["videos"] == source["videos"] and truth[DEPTH_KEY]["k"] == source["k"]


@pytest.fixture(scope="module")
def node(node_factory, checkpoint):
    """test_replay's random-weight model of the shape classes, every detection kept, with depth on."""
    return node_factory("sgnet", NAMESPACE, checkpoint=str(checkpoint), qos_reliability="reliable",
                        depth_image_topic="depth/image_raw", depth_pairing_tolerance_s=0.0,
                        depth_mask_erosion_px=0, depth_min_valid_pixels=1,
                        model__score_threshold=0.0, model__detections_per_frame=DETECTIONS,
                        tracker__new_track_score=0.0, tracker__continue_score=0.0)


@pytest.mark.slow  # a bag replayed through a node (more than 2.5 s)
def test_replay_feeds_the_depth_in_step_and_reports_3d(ros, node, bag, synthetic, tmp_path):
    report, _ = replay_json("--bag", str(bag), "--as-fast-as-node", "--node-namespace", NAMESPACE,
                            "--ground-truth", str(bag.parent / f"{bag.name}.ground_truth.json"),
                            "--output", str(tmp_path / "replay"))
    assert report["frames_out"] == report["frames_in"] == frame_count(synthetic)
    truth = json.loads((bag.parent / f"{bag.name}.ground_truth.json").read_text())
    visible = sum(segmentation is not None for a in truth["annotations"] for segmentation in a["segmentations"])
    assert report["depth"]["shapes"] == visible
    # Every frame's answer was located with that frame's own depth: each frame's shapes sit at their own distances,
    # so a depth image of another frame gives other positions.
    camera = CameraIntrinsics.from_camera_info(truth[DEPTH_KEY]["k"], 320, 192)
    stamps = {frame["stamp_ns"]: frame for frame in truth["sgnet_bag"]["frames"]}
    outputs = read_bag(tmp_path / "replay" / "outputs")[f"{NAMESPACE}/instances"]
    located = 0
    for _, raw in outputs:
        message = deserialize_message(raw, InstanceArray)
        frame = stamps[stamp_ns(message)]
        depth = depth_png(synthetic, frame["video_id"], frame["frame_index"]).astype(np.float32) / 1000
        for instance in message.instances:
            expected = locate_instance(instance_mask(instance), depth, camera, erosion_px=0, min_valid_pixels=1)
            assert instance.position_valid == (expected is not None)
            if expected is not None:
                position = (instance.position.x, instance.position.y, instance.position.z)
                assert position == pytest.approx(expected.position, abs=1e-6)
                located += 1
    assert located > 0


@pytest.mark.slow  # a bag replayed through a reconfigured node (more than 2.5 s)
def test_a_bag_with_depth_replays_colour_only_to_a_node_without_depth(ros, node, bag, tmp_path):
    """The module's node, reconfigured without depth (depth_image_topic empty: no depth subscription, as a node
    started so), gets every colour frame; the replay says the node takes no depth. Then depth is set back."""
    reconfigure(ros.client, node, depth_image_topic="")
    try:
        report, errors = replay_json("--bag", str(bag), "--as-fast-as-node", "--node-namespace", NAMESPACE,
                                     "--output", str(tmp_path / "replay"))
        assert report["frames_out"] == report["frames_in"]
        assert f"the node does not subscribe to {NAMESPACE}/depth/image_raw" in errors
    finally:
        reconfigure(ros.client, node, depth_image_topic="depth/image_raw")


def test_no_depth_leaves_it_out_and_a_missing_depth_frame_is_one_line(synthetic, tmp_path):
    import shutil
    import subprocess
    import sys

    frames = str(synthetic.parent / "JPEGImages")
    make_bag("ytvis", "--annotations", str(synthetic), "--frames", frames, "-o", str(tmp_path / "colour"),
             "--no-depth")
    assert set(read_bag(tmp_path / "colour")) == {"_connections", "/camera/image_raw"}
    assert DEPTH_KEY not in json.loads((tmp_path / "colour.ground_truth.json").read_text())
    copy = tmp_path / "copy"
    shutil.copytree(synthetic.parent, copy)
    missing = sorted((copy / DEPTH_DIR).rglob("*.png"))[2]
    missing.unlink()
    done = subprocess.run([sys.executable, "-m", "sgnet_ros.tools.bag", "ytvis", "--annotations", str(copy / synthetic.name),
                           "--frames", str(copy / "JPEGImages"), "-o", str(tmp_path / "broken"), "--no-progress"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert f"the set has depth, but not {missing}" in done.stderr
    assert not (tmp_path / "broken").exists() and not (tmp_path / "broken.ground_truth.json").exists()
