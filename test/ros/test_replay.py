"""sgnet-replay over real DDS: bags made by sgnet-bag replayed through the real node in its own process.

The node runs a checkpoint of random weights with every threshold at 0, so that each frame has instances: the
lock-step replay must then give exactly sgnet-eval's results on the same frames (the same tracks, scores and
masks, hence the same metrics), which is a sharper check than metrics of zero. With the trained_checkpoint
fixture (test/conftest.py) the same comparison runs on a trained model and its held-out set.
"""
from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.serialization import deserialize_message
from rosbags.rosbag2 import Reader, Writer
from rosbags.typesys import Stores, get_typestore
from sensor_msgs.msg import Image

from footage import bikes_video
from ros_harness import assert_humble_readable, reconfigure, wait_until
from sgnet_model.checkpoint import load_checkpoint, save_checkpoint
from sgnet_model.config import PredictorConfig, named_config
from sgnet_model.network.model import SGNet
from sgnet_model.data.ytvis import load_annotations
from sgnet_ros.diagnostics import OFF_CLOCK
from sgnet_ros.masks import instance_mask
from sgnet_ros.msg import InstanceArray
from training.evaluate import main as sgnet_eval
from training.synthetic import SHAPES, generate_synthetic_set
from runtime_reference import REFERENCE_ARGUMENTS

NAMESPACE = "/replay"
DETECTIONS = 4
CLASSES = 4
REPORT_METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "AP_per_class", "idf1",
                  "id_switches", "mota", "hota", "deta", "assa", "mask_iou_mean", "mask_iou_p10", "mask_iou_frames",
                  "videos", "frames")


def command(module: str, *arguments: str) -> list[str]:
    return [sys.executable, "-m", module, *arguments]


def replay(*arguments: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(command("sgnet_ros.tools.replay", *arguments, "--no-progress"), capture_output=True, text=True,
                          timeout=timeout)


def replay_json(*arguments: str) -> tuple[dict, str]:
    done = replay(*arguments, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), done.stderr


def make_bag(*arguments: str) -> None:
    done = subprocess.run(command("sgnet_ros.tools.bag", *arguments, "--no-progress"), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def read_bag(path: Path) -> dict[str, list]:
    """topic -> [(log time, raw bytes)], and the connections by topic under '_connections'."""
    messages: dict[str, list] = {}
    with Reader(path) as reader:
        messages["_connections"] = {c.topic: c for c in reader.connections}
        for connection, log_ns, raw in reader.messages():
            messages.setdefault(connection.topic, []).append((log_ns, bytes(raw)))
    return messages


def stamp_ns(message) -> int:
    return message.header.stamp.sec * 1_000_000_000 + message.header.stamp.nanosec


def sorted_results(path: Path) -> list[dict]:
    return sorted(json.loads(path.read_text()), key=lambda r: (r["video_id"], json.dumps(r["segmentations"])))


def installed_type_hash(name: str) -> str:
    """The RIHS01 hash rosidl computed when it built our messages (the type description JSON that
    scripts/build_msgs.sh installs into this environment)."""
    data = json.loads((Path(sys.prefix) / "share" / "sgnet_ros" / "msg" / f"{name}.json").read_text())
    return data["type_hashes"][0]["hash_string"]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    """Three videos of 4 or 5 frames of 320x192 (184 KB rgb8); returns the annotation file."""
    return generate_synthetic_set(tmp_path_factory.mktemp("replay_set"), videos=3, frames=(4, 5), classes=CLASSES,
                                  objects=(1, 2), seed=11)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """The small model with random weights, every detection kept (score threshold 0) up to DETECTIONS a frame."""
    torch.manual_seed(0)
    config = dataclasses.replace(named_config("resnet18_small").model, class_names=SHAPES[:CLASSES],
                                 score_threshold=0.0, detections_per_frame=DETECTIONS)
    path = tmp_path_factory.mktemp("replay_model") / "random.pt"
    save_checkpoint(path, config, SGNet(config).state_dict())
    return path


@pytest.fixture(scope="module")
def tracker_config(tmp_path_factory) -> Path:
    """sgnet-eval's --config with the tracker settings the node gets as parameters: every detection tracked (the
    section of sgnet-eval's default profile, evaluation)."""
    path = tmp_path_factory.mktemp("replay_config") / "track_everything.yaml"
    path.write_text("evaluation_tracker:\n  new_track_score: 0.0\n  continue_score: 0.0\n")
    return path


@pytest.fixture(scope="module")
def node(node_factory, checkpoint):
    # diagnostics every 0.25 s: a replay as fast as the node lasts a few seconds, and the recorded outputs must hold
    # statuses of windows with frames in them (test_clock_puts_a_sim_time_node_on_the_bag_time)
    return node_factory("sgnet", NAMESPACE, checkpoint=str(checkpoint), qos_reliability="reliable",
                        compressed_image_topic="image/compressed", diagnostics_period_s=0.25,
                        model__score_threshold=0.0, model__detections_per_frame=DETECTIONS,
                        tracker__new_track_score=0.0, tracker__continue_score=0.0)


@pytest.fixture(scope="module")
def bag(tmp_path_factory, synthetic) -> Path:
    folder = tmp_path_factory.mktemp("replay_bags") / "synthetic"
    make_bag("ytvis", "--annotations", str(synthetic), "--frames", str(synthetic.parent / "JPEGImages"),
             "-o", str(folder))
    return folder


@pytest.mark.slow  # a bag replayed through the node, and sgnet-eval (more than 2.5 s)
def test_lock_step_replay_equals_sgnet_eval(ros, node, bag, synthetic, checkpoint, tracker_config, tmp_path,
                                            capsys):
    truth = bag.with_name(bag.name + ".ground_truth.json")
    report, _ = replay_json("--bag", str(bag), "--node-namespace", NAMESPACE, "--as-fast-as-node",
                            "--ground-truth", str(truth), "--output", str(tmp_path / "replay"))
    assert sgnet_eval(["--checkpoint", str(checkpoint), "--annotations", str(synthetic), "--frames",
                       str(synthetic.parent / "JPEGImages"), "--config", str(tracker_config),
                       "--output", str(tmp_path / "eval"), "--json", "--no-progress", *REFERENCE_ARGUMENTS]) == 0
    direct = json.loads(capsys.readouterr().out)

    frames = sum(v.length for v in load_annotations(synthetic).videos.values())
    assert (report["frames_in"], report["frames_out"], report["frames_dropped"]) == (frames, frames, 0)
    assert {name: report["metrics"][name] for name in REPORT_METRICS} == \
        {name: direct[name] for name in REPORT_METRICS}
    # Both reports name the tracker values they ran: the node's parameters, sgnet-eval's --config.
    assert report["tracker"] == direct["tracker"] == {"new_track_score": 0.0, "continue_score": 0.0,
                                                      "max_lost_s": 2.5, "radius_scale": 1.0,
                                                      "match_across_classes": True, "fill_gaps_s": 0.0}
    # The same tracks with the same scores and masks, video by video.
    ours, theirs = sorted_results(tmp_path / "replay" / "results.json"), sorted_results(tmp_path / "eval" / "results.json")
    assert len(ours) == len(theirs) > 0
    for mine, other in zip(ours, theirs):
        assert (mine["video_id"], mine["category_id"], mine["segmentations"]) == \
            (other["video_id"], other["category_id"], other["segmentations"])
        assert mine["score"] == pytest.approx(other["score"], abs=1e-6)

    # Latency covers every frame, and each frame's includes the node's own time for it.
    rows = (tmp_path / "replay" / "frames.csv").read_text().splitlines()[1:]
    latency = np.array([float(row.split(",")[3]) for row in rows])
    inference = np.array([float(row.split(",")[4]) for row in rows])
    assert len(rows) == frames and (latency > inference).all()
    assert report["latency_ms_median"] == pytest.approx(np.median(latency), abs=1e-3)
    assert report["inference_ms_median"] == pytest.approx(np.median(inference), abs=1e-3)

    # The output bag: one InstanceArray per frame, stamped as the bag's frames, under the type hash rosidl built.
    recorded = read_bag(tmp_path / "replay" / "outputs")
    assert_humble_readable(tmp_path / "replay" / "outputs")
    connection = recorded["_connections"][f"{NAMESPACE}/instances"]
    assert connection.digest == installed_type_hash("InstanceArray")
    outputs = [deserialize_message(raw, InstanceArray) for _, raw in recorded[f"{NAMESPACE}/instances"]]
    sent = [stamp_ns(deserialize_message(raw, Image)) for _, raw in read_bag(bag)["/camera/image_raw"]]
    assert [stamp_ns(o) for o in outputs] == sent
    assert all(len(o.instances) == DETECTIONS for o in outputs)
    assert instance_mask(outputs[0].instances[0]).shape == (192, 320)
    resets = [o.tracks_reset for o in outputs]  # the first frame of each video starts fresh tracks
    starts = np.cumsum([0] + [v.length for v in load_annotations(synthetic).videos.values()])[:-1]
    assert [i for i, reset in enumerate(resets) if reset] == starts.tolist()
    assert len(recorded[f"{NAMESPACE}/label_image"]) == frames


@pytest.fixture
def two_camera_node(ros, node):
    """The module's node reconfigured to serve two cameras (image_topics; outputs under /replay/<camera>/), as a
    node started with them would; back to one camera afterwards."""
    reconfigure(ros.client, node, image_topics=["/front/image_raw", "/rear/image_raw"])
    yield node
    reconfigure(ros.client, node, image_topics=[])


@pytest.mark.slow  # two cameras replayed, and sgnet-eval (more than 2.5 s)
def test_a_bag_of_two_cameras_replays_through_one_node_and_each_camera_equals_sgnet_eval(
        ros, two_camera_node, synthetic, checkpoint, tracker_config, tmp_path, capsys):
    """sgnet-bag writes the set on two camera topics; sgnet-replay --cameras sends both to one node serving both
    (lock-step); each camera's report and results equal sgnet-eval's on the set alone (tracks are per camera)."""
    bag = tmp_path / "two_cameras"
    make_bag("ytvis", "--annotations", str(synthetic), "--frames", str(synthetic.parent / "JPEGImages"),
             "--topic", "/front/image_raw", "--topic", "/rear/image_raw", "-o", str(bag))
    truth = bag.with_name(bag.name + ".ground_truth.json")
    assert json.loads(truth.read_text())["sgnet_bag"]["topics"] == ["/front/image_raw", "/rear/image_raw"]
    report, _ = replay_json("--bag", str(bag), "--cameras", "--node-namespace", NAMESPACE,
                            "--as-fast-as-node", "--ground-truth", str(truth), "--output", str(tmp_path / "replay"))
    assert sgnet_eval(["--checkpoint", str(checkpoint), "--annotations", str(synthetic), "--frames",
                       str(synthetic.parent / "JPEGImages"), "--config", str(tracker_config),
                       "--output", str(tmp_path / "eval"), "--json", "--no-progress", *REFERENCE_ARGUMENTS]) == 0
    direct = json.loads(capsys.readouterr().out)
    frames = sum(v.length for v in load_annotations(synthetic).videos.values())
    assert (report["frames_in"], report["frames_out"], report["frames_dropped"]) == (2 * frames, 2 * frames, 0)
    assert set(report["cameras"]) == {"front", "rear"}
    theirs = sorted_results(tmp_path / "eval" / "results.json")
    for camera in ("front", "rear"):
        figures = report["cameras"][camera]
        assert (figures["frames_in"], figures["frames_out"], figures["frames_dropped"]) == (frames, frames, 0)
        assert {name: figures["metrics"][name] for name in REPORT_METRICS} == \
            {name: direct[name] for name in REPORT_METRICS}
        ours = sorted_results(tmp_path / "replay" / camera / "results.json")
        assert [(r["video_id"], r["segmentations"]) for r in ours] == [(r["video_id"], r["segmentations"])
                                                                       for r in theirs]
    recorded = read_bag(tmp_path / "replay" / "outputs")
    for camera in ("front", "rear"):  # each camera's outputs on its own topics, with its own frame_id
        outputs = [deserialize_message(raw, InstanceArray)
                   for _, raw in recorded[f"{NAMESPACE}/{camera}/instances"]]
        assert len(outputs) == frames and {o.header.frame_id for o in outputs} == {camera}
    rows = (tmp_path / "replay" / "frames.csv").read_text().splitlines()
    assert rows[0].startswith("camera,") and sorted({row.split(",")[0] for row in rows[1:]}) == ["front", "rear"]


@pytest.mark.slow  # a bag replayed through the node, and sgnet-eval (more than 2.5 s)
def test_jpeg_bag_gives_sgnet_eval_results_through_the_compressed_input(ros, node, synthetic, checkpoint,
                                                                        tracker_config, tmp_path, capsys):
    """The JPEG files go into the bag unchanged and the node decodes them as sgnet-eval reads them."""
    frames_dir = synthetic.parent / "JPEGImages"
    make_bag("ytvis", "--annotations", str(synthetic), "--frames", str(frames_dir), "--videos", "2",
             "--encoding", "jpeg", "-o", str(tmp_path / "jpeg"))
    report, _ = replay_json("--bag", str(tmp_path / "jpeg"), "--node-namespace", NAMESPACE, "--as-fast-as-node",
                            "--ground-truth", str(tmp_path / "jpeg.ground_truth.json"), "--output", str(tmp_path / "r"))
    assert report["node_topic"] == f"{NAMESPACE}/image/compressed" and report["frames_dropped"] == 0
    assert sgnet_eval(["--checkpoint", str(checkpoint), "--annotations", str(synthetic), "--frames", str(frames_dir),
                       "--videos", "2", "--config", str(tracker_config), "--output", str(tmp_path / "eval"),
                       "--json", "--no-progress", *REFERENCE_ARGUMENTS]) == 0
    capsys.readouterr()
    ours, theirs = sorted_results(tmp_path / "r" / "results.json"), sorted_results(tmp_path / "eval" / "results.json")
    assert [(r["category_id"], r["segmentations"]) for r in ours] == \
        [(r["category_id"], r["segmentations"]) for r in theirs] and ours


@pytest.mark.slow  # a bag replayed through the node (more than 2.5 s)
def test_ground_truth_without_stamp_mapping_takes_the_bag_frames_in_order(ros, node, bag, synthetic, tmp_path):
    """The synthetic set's own annotation file lists the bag's frames in order: the same metrics as through
    the stamp mapping sgnet-bag wrote."""
    mapped, _ = replay_json("--bag", str(bag), "--node-namespace", NAMESPACE, "--as-fast-as-node", "--ground-truth",
                            str(bag.with_name(bag.name + ".ground_truth.json")), "--output", str(tmp_path / "mapped"))
    ordered, _ = replay_json("--bag", str(bag), "--node-namespace", NAMESPACE, "--as-fast-as-node", "--ground-truth",
                             str(synthetic), "--output", str(tmp_path / "ordered"))
    assert ordered["metrics"] == mapped["metrics"]
    assert sorted_results(tmp_path / "ordered" / "results.json") == sorted_results(tmp_path / "mapped" / "results.json")


def test_unreadable_ground_truth_is_one_line(ros, bag, tmp_path):
    truth = tmp_path / "truth.json"
    truth.write_text('{"videos": [], "categories": [')
    done = replay("--bag", str(bag), "--ground-truth", str(truth), "--output", str(tmp_path / "replay"))
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and f"cannot read ground truth {truth}" in lines[0], done.stderr
    assert not (tmp_path / "replay").exists()


@pytest.mark.slow  # a bag replayed at its own pace (more than 2.5 s)
def test_timed_replay_keeps_the_bag_timing(ros, node, bag, tmp_path):
    rate = 4.0
    stamps = [stamp_ns(deserialize_message(raw, Image)) for _, raw in read_bag(bag)["/camera/image_raw"]]
    report, _ = replay_json("--bag", str(bag), "--node-namespace", NAMESPACE, "--rate", str(rate),
                            "--output", str(tmp_path / "timed"))
    assert report["mode"] == "timed" and report["frames_in"] == len(stamps)
    assert report["frames_out"] + report["frames_dropped"] == len(stamps) and report["frames_out"] >= 1
    rows = [row.split(",") for row in (tmp_path / "timed" / "frames.csv").read_text().splitlines()[1:]]
    sent = np.array([int(row[1]) for row in rows])
    # Frame i is due (stamp_i - stamp_0) / rate after the first one: never sent before that (1 ms of clock
    # rounding), in the bag's order. How late it leaves depends on the machine's load: printed (-s), not a bar.
    expected = (np.array(stamps) - stamps[0]) / rate
    lateness_ms = (sent - sent[0] - expected) / 1e6
    assert (lateness_ms > -1).all(), lateness_ms
    assert [int(row[0]) for row in rows] == stamps and (np.diff(sent) > 0).all()  # stamp_ns, sent_ns columns
    # and at the bag's pace, not at another (a rate applied the wrong way round would take 16 times as long): the
    # span of the sends is within twice the bag's span at this rate, with a second for the load
    assert (sent[-1] - sent[0]) / 1e9 < 2 * expected[-1] / 1e9 + 1.0, (sent[-1] - sent[0], expected[-1])
    print(f"timed replay, lateness of each frame (ms): {np.round(lateness_ms, 1).tolist()}")


@pytest.mark.slow  # a bag played and recorded (more than 2.5 s)
def test_record_only_records_what_another_player_publishes(ros, node, bag, tmp_path):
    """The recorder runs while this test plays the bag as ros2 bag play would (its raw messages, reliable)."""
    recorder = subprocess.Popen(command("sgnet_ros.tools.replay", "--record-only", "--node-namespace", NAMESPACE,
                                        "--idle", "2", "--output", str(tmp_path / "recorded"), "--json"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    client = ros.client
    topic = f"{NAMESPACE}/instances"
    client.subscribe(topic, InstanceArray)
    publisher = client.publisher(f"{NAMESPACE}/image", Image, reliable=True)
    assert wait_until(lambda: publisher.get_subscription_count() >= 2, 30), "the recorder did not subscribe"
    messages = read_bag(bag)["/camera/image_raw"]
    for _, raw in messages:  # each frame once the node answered the previous one: nothing is dropped
        stamp = stamp_ns(deserialize_message(raw, Image))
        publisher.publish(raw)
        assert wait_until(lambda: any(stamp_ns(m) == stamp for m in client.received(topic)), 30)
    out, err = recorder.communicate(timeout=60)
    assert recorder.returncode == 0, err
    report = json.loads(out)
    assert report["mode"] == "record-only"
    assert (report["frames_in"], report["frames_out"], report["frames_dropped"]) == (len(messages), len(messages), 0)
    assert report["recorded"][topic] == len(messages) and report["latency_ms_p99"] is not None


@pytest.mark.slow  # replays a bag through a node (more than 2.5 s)
def test_real_video_replays_through_the_node(ros, node, tmp_path):
    make_bag("video", str(bikes_video()), "--max-frames", "6", "-o", str(tmp_path / "bikes"))
    report, _ = replay_json("--bag", str(tmp_path / "bikes"), "--node-namespace", NAMESPACE, "--as-fast-as-node",
                            "--output", str(tmp_path / "replay"))
    assert (report["frames_in"], report["frames_out"], report["frames_dropped"]) == (6, 6, 0)
    labels = read_bag(tmp_path / "replay" / "outputs")[f"{NAMESPACE}/label_image"]
    label = deserialize_message(labels[0][1], Image)
    assert (label.width, label.height, label.encoding, len(labels)) == (640, 272, "mono16", 6)


def node_statuses(output_bag: Path, namespace: str) -> list[tuple[int, dict[str, str]]]:
    """(header stamp, values) of every /diagnostics status of the node in ``namespace`` that a replay recorded."""
    messages = [deserialize_message(raw, DiagnosticArray) for _, raw in read_bag(output_bag)["/diagnostics"]]
    return [(stamp_ns(message), {v.key: v.value for v in status.values}) for message in messages
            for status in message.status if status.name.startswith(f"{namespace}/")]


def numeric_ages(statuses: list[tuple[int, dict[str, str]]]) -> list[tuple[int, float, float]]:
    """(stamp, median, max) of the statuses whose window had input ages."""
    ages = []
    for stamp, values in statuses:
        try:
            median, largest = float(values["input_age_ms_median"]), float(values["input_age_ms_max"])
        except ValueError:
            continue
        if not math.isnan(median):
            ages.append((stamp, median, largest))
    return ages


@pytest.mark.slow  # its own node on use_sim_time (about 30 s on the shared 2 cores)
def test_clock_puts_a_sim_time_node_on_the_bag_time(ros, node, node_factory, synthetic, checkpoint, tmp_path):
    """A bag recorded long ago (stamps from 2023): to a node on wall time its stamps are from another clock, and
    its diagnostics say so instead of an age of years; with --clock to a node on use_sim_time the input age is the
    replay's own, small and not negative, and the node's diagnostics are stamped in the bag's time."""
    make_bag("ytvis", "--annotations", str(synthetic), "--frames", str(synthetic.parent / "JPEGImages"),
             "--start-time", "1700000000", "-o", str(tmp_path / "old"))
    stamps = [stamp_ns(deserialize_message(raw, Image)) for _, raw in read_bag(tmp_path / "old")["/camera/image_raw"]]

    replay_json("--bag", str(tmp_path / "old"), "--node-namespace", NAMESPACE, "--as-fast-as-node",
                "--output", str(tmp_path / "wall"))
    wall = node_statuses(tmp_path / "wall" / "outputs", NAMESPACE)
    assert any(values["input_age_ms_median"] == OFF_CLOCK for _, values in wall), wall
    assert numeric_ages(wall) == []  # never an age of years

    namespace = "/replay_sim"
    node_factory("sgnet", namespace, checkpoint=str(checkpoint), qos_reliability="reliable", use_sim_time=True,
                 diagnostics_period_s=0.25, model__score_threshold=0.0, model__detections_per_frame=DETECTIONS)
    report, _ = replay_json("--bag", str(tmp_path / "old"), "--node-namespace", namespace, "--as-fast-as-node",
                            "--clock", "--output", str(tmp_path / "sim"))
    assert (report["frames_out"], report["frames_dropped"]) == (len(stamps), 0)
    assert report["node_diagnostics"] is not None
    # Every status of a window with frames: stamped on the bag's time, with an input age >= 0 and small.
    ages = numeric_ages(node_statuses(tmp_path / "sim" / "outputs", namespace))
    assert len(ages) >= 3, ages
    for stamp, median, largest in ages:
        assert stamps[0] <= stamp <= stamps[-1], (stamp, stamps[0], stamps[-1])
        assert 0.0 <= median <= largest < 500.0, (median, largest)


def rewrite_bag(source: Path, target: Path, change) -> list[bytes]:
    """Copy the image messages of `source` into a new bag, passing each (index, message) through `change`, which
    returns the message to write or raw bytes; returns what was written."""
    store = get_typestore(Stores.ROS2_KILTED)
    written = []
    with Reader(source) as reader, Writer(target, version=9) as writer:
        connection = writer.add_connection("/camera/image_raw", "sensor_msgs/msg/Image", typestore=store)
        for index, (_, log_ns, raw) in enumerate(reader.messages()):
            if index == 5:
                break
            result = change(index, store.deserialize_cdr(raw, "sensor_msgs/msg/Image"))
            data = result if isinstance(result, bytes) else bytes(store.serialize_cdr(result, "sensor_msgs/msg/Image"))
            writer.write(connection, log_ns, data)
            written.append(data)
    return written


@pytest.mark.slow  # a bag replayed through the node (more than 2.5 s)
def test_corrupt_message_is_skipped_and_the_node_serves_on(ros, node, bag, tmp_path):
    def corrupt(index, message):
        if index == 2:  # the CDR header, then a string length far beyond the message
            return b"\x00\x01\x00\x00" + b"\xff" * 40
        return message
    rewrite_bag(bag, tmp_path / "corrupt", corrupt)
    report, err = replay_json("--bag", str(tmp_path / "corrupt"), "--node-namespace", NAMESPACE, "--as-fast-as-node",
                              "--output", str(tmp_path / "replay"))
    assert "message 2 on /camera/image_raw" in err and "does not deserialize" in err
    assert report["frames_skipped_corrupt"] == 1
    assert (report["frames_in"], report["frames_out"], report["frames_dropped"]) == (4, 4, 0)
    assert node.process.poll() is None


@pytest.mark.slow  # a bag replayed through the node (more than 2.5 s)
def test_out_of_order_stamps_are_reported_and_reset_the_tracks(ros, node, bag, tmp_path):
    def swap(index, message):
        if index == 3:  # stamped 0.5 s before frame 2
            message.header.stamp.sec -= 1
        return message
    written = rewrite_bag(bag, tmp_path / "disorder", swap)
    report, err = replay_json("--bag", str(tmp_path / "disorder"), "--node-namespace", NAMESPACE,
                              "--as-fast-as-node", "--output", str(tmp_path / "replay"))
    assert "message 3 on /camera/image_raw" in err and "before the previous frame" in err
    assert report["stamps_out_of_order"] == 1
    assert (report["frames_in"], report["frames_out"], report["frames_dropped"]) == (5, 5, 0)
    outputs = [deserialize_message(raw, InstanceArray)
               for _, raw in read_bag(tmp_path / "replay" / "outputs")[f"{NAMESPACE}/instances"]]
    stamps = [stamp_ns(deserialize_message(raw, Image)) / 1e9 for raw in written]
    assert [stamp_ns(o) / 1e9 for o in outputs] == stamps
    # The node starts fresh tracks at the first frame, where a stamp goes back, and after a gap over max_gap_s.
    max_gap = PredictorConfig().max_gap_s
    expected = [True] + [now < before or now - before > max_gap for before, now in zip(stamps, stamps[1:])]
    assert expected[3] and [o.tracks_reset for o in outputs] == expected


def test_unknown_topic_is_one_line_naming_the_topics_there(ros, bag, tmp_path):
    done = replay("--bag", str(bag), "--topic", "/front/image", "--output", str(tmp_path / "replay"))
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert "topic /front/image is not in bag" in lines[0] and "/camera/image_raw (sensor_msgs/msg/Image" in lines[0]
    assert not (tmp_path / "replay").exists()


def test_absent_node_is_one_line_naming_topic_and_namespace(ros, bag, tmp_path):
    started = time.monotonic()
    done = replay("--bag", str(bag), "--node-namespace", "/nobody", "--wait", "1", "--output", str(tmp_path / "out"))
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert "no node subscribes to /nobody/image after 1 s" in lines[0] and "namespace '/nobody'" in lines[0]
    assert not (tmp_path / "out").exists() and time.monotonic() - started < 20


@pytest.fixture(scope="module")
def trained(trained_checkpoint):
    return trained_checkpoint


@pytest.mark.slow
def test_trained_model_replay_equals_sgnet_eval(ros, node_factory, trained, tmp_path, capsys):
    """A trained model over its held-out videos: the node (with the checkpoint's thresholds and its evaluation
    tracker profile, as sgnet-eval runs by default) gives sgnet-eval's metrics."""
    videos = ",".join(str(v) for v in list(load_annotations(trained.annotations).videos)[:3])
    checkpoint = load_checkpoint(trained.checkpoint)
    model_config, evaluation = checkpoint.model_config, checkpoint.tracker_profiles["evaluation"]
    node_factory("sgnet", "/trained_replay", checkpoint=str(trained.checkpoint), qos_reliability="reliable",
                 model__score_threshold=model_config.score_threshold, model__nms_threshold=model_config.nms_threshold,
                 model__detections_per_frame=model_config.detections_per_frame,
                 **{f"tracker__{f.name}": getattr(evaluation, f.name) for f in dataclasses.fields(evaluation)})
    make_bag("ytvis", "--annotations", str(trained.annotations), "--frames", str(trained.frames), "--videos", videos,
             "-o", str(tmp_path / "heldout"))
    report, _ = replay_json("--bag", str(tmp_path / "heldout"), "--node-namespace", "/trained_replay",
                            "--as-fast-as-node", "--ground-truth", str(tmp_path / "heldout.ground_truth.json"),
                            "--output", str(tmp_path / "replay"))
    assert sgnet_eval(["--checkpoint", str(trained.checkpoint), "--annotations", str(trained.annotations),
                       "--frames", str(trained.frames), "--videos", videos, "--output", str(tmp_path / "eval"),
                       "--json", "--no-progress", *REFERENCE_ARGUMENTS]) == 0
    direct = json.loads(capsys.readouterr().out)
    assert report["frames_dropped"] == 0
    assert direct["tracker_profile"] == "evaluation" and report["tracker"] == direct["tracker"]
    for name in REPORT_METRICS:
        assert report["metrics"][name] == pytest.approx(direct[name], abs=1e-9), name
    assert report["metrics"]["AP"] > 0
