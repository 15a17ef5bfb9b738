"""sgnet-bag: bags from a YouTube-VIS style set, a real video file and an image folder, read back with rosbags and
deserialized by rclpy (the middleware's own CDR code, not the writer's); the stamps worked out by hand, the
pixels against OpenCV's reading of the same files; the ground truth beside the bag; bad input."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from rclpy.serialization import deserialize_message
from rosbags.rosbag2 import Reader
from sensor_msgs.msg import CompressedImage, Image

from footage import bikes_video
from sgnet_model.data.ytvis import load_annotations
from sgnet_ros.tools.bag import main
from training.synthetic import generate_synthetic_set

START = 1000.0  # --start-time of the bags here, seconds
FPS, GAP = 5.0, 3.0  # YouTube-VIS bags here: 0.2 s between frames, 3 s between videos


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    """Three videos of 3 or 4 frames of 96x64 pixels; returns the annotation file (frames in JPEGImages/)."""
    return generate_synthetic_set(tmp_path_factory.mktemp("synthetic"), videos=3, frames=(3, 4), width=96,
                                  height=64, objects=(1, 2), sizes=(16.0, 40.0), seed=3)


def read_bag(path: Path) -> list[tuple[str, str, int, bytes]]:
    """(topic, type, log time, raw bytes) of every message."""
    with Reader(path) as reader:
        return [(c.topic, c.msgtype, t, bytes(raw)) for c, t, raw in reader.messages()]


def stamp_ns(message) -> int:
    return message.header.stamp.sec * 1_000_000_000 + message.header.stamp.nanosec


def run(capsys, argv: list[str]) -> tuple[int, str, str]:
    code = main([*argv, "--no-progress"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_youtube_vis_set_videos_back_to_back_with_their_ground_truth(tmp_path, synthetic, capsys):
    frames_dir = synthetic.parent / "JPEGImages"
    code, out, _ = run(capsys, ["ytvis", "--annotations", str(synthetic), "--frames", str(frames_dir),
                                "--videos", "3,1", "--fps", str(FPS), "--video-gap", str(GAP),
                                "--start-time", str(START), "-o", str(tmp_path / "set"), "--json"])
    assert code == 0
    summary = json.loads(out)
    annotations = load_annotations(synthetic)
    third, first = annotations.videos[3], annotations.videos[1]
    # Video 3 first, frame i at START + i / FPS; video 1 starts GAP after video 3's last frame.
    expected = [(START + i / FPS, 3, i) for i in range(third.length)]
    second_start = START + (third.length - 1) / FPS + GAP
    expected += [(second_start + i / FPS, 1, i) for i in range(first.length)]
    messages = read_bag(tmp_path / "set")
    assert summary["frames"] == len(messages) == len(expected)
    assert summary["storage"] == "mcap" and (tmp_path / "set" / "set.mcap").is_file()
    for (topic, msgtype, log_ns, raw), (seconds, video_id, index) in zip(messages, expected):
        assert (topic, msgtype) == ("/camera/image_raw", "sensor_msgs/msg/Image")
        image = deserialize_message(raw, Image)
        assert stamp_ns(image) == log_ns == round(seconds * 1e9)
        assert (image.encoding, image.header.frame_id, image.step) == ("rgb8", "camera", 96 * 3)
        file = frames_dir / annotations.videos[video_id].file_names[index]
        rgb = cv2.cvtColor(cv2.imread(str(file)), cv2.COLOR_BGR2RGB)
        assert np.array_equal(np.frombuffer(image.data, np.uint8).reshape(64, 96, 3), rgb)

    truth_path = tmp_path / "set.ground_truth.json"
    assert summary["ground_truth"] == str(truth_path)
    mapping = json.loads(truth_path.read_text())["sgnet_bag"]
    assert mapping["topic"] == "/camera/image_raw" and mapping["bag"] == "set"
    assert [(f["stamp_ns"], f["video_id"], f["frame_index"]) for f in mapping["frames"]] == \
        [(round(s * 1e9), v, i) for s, v, i in expected]
    truth = load_annotations(truth_path)
    assert sorted(truth.videos) == [1, 3] and truth.categories == annotations.categories
    for video_id in (1, 3):
        assert truth.videos[video_id] == annotations.videos[video_id]
        assert truth.annotations[video_id] == annotations.annotations[video_id]


def test_jpeg_bag_carries_the_files_unchanged_in_sqlite3(tmp_path, synthetic, capsys):
    frames_dir = synthetic.parent / "JPEGImages"
    code, _, _ = run(capsys, ["ytvis", "--annotations", str(synthetic), "--frames", str(frames_dir), "--videos", "2",
                              "--encoding", "jpeg", "--frame-id", "cam0", "-o", str(tmp_path / "small.db3")])
    assert code == 0
    assert (tmp_path / "small" / "small.db3").is_file()
    metadata = yaml.safe_load((tmp_path / "small" / "metadata.yaml").read_text())
    assert metadata["rosbag2_bagfile_information"]["storage_identifier"] == "sqlite3"
    files = load_annotations(synthetic).videos[2].file_names
    messages = read_bag(tmp_path / "small")
    assert len(messages) == len(files)
    for (topic, msgtype, _, raw), name in zip(messages, files):
        assert (topic, msgtype) == ("/camera/image_raw/compressed", "sensor_msgs/msg/CompressedImage")
        image = deserialize_message(raw, CompressedImage)
        assert image.format == "jpeg" and image.header.frame_id == "cam0"
        assert bytes(image.data) == (frames_dir / name).read_bytes()


def test_real_video_at_its_own_rate_or_a_given_one(tmp_path, capsys):
    video = bikes_video()
    capture = cv2.VideoCapture(str(video))
    decoded = [capture.read()[1] for _ in range(4)]  # BGR, as OpenCV decodes them
    capture.release()
    code, _, _ = run(capsys, ["video", str(video), "--max-frames", "4", "--start-time", str(START),
                              "-o", str(tmp_path / "native")])
    assert code == 0
    messages = [deserialize_message(raw, Image) for *_, raw in read_bag(tmp_path / "native")]
    assert [stamp_ns(m) for m in messages] == [round((START + i / 25) * 1e9) for i in range(4)]  # bikes.mp4: 25 fps
    for message, bgr in zip(messages, decoded):
        assert (message.width, message.height, message.encoding) == (640, 272, "rgb8")
        assert np.array_equal(np.frombuffer(message.data, np.uint8).reshape(272, 640, 3), bgr[:, :, ::-1])

    code, _, _ = run(capsys, ["video", str(video), "--max-frames", "3", "--fps", "10", "--encoding", "bgr8",
                              "--start-time", str(START), "-o", str(tmp_path / "ten")])
    assert code == 0
    messages = [deserialize_message(raw, Image) for *_, raw in read_bag(tmp_path / "ten")]
    assert [stamp_ns(m) for m in messages] == [round((START + i / 10) * 1e9) for i in range(3)]
    assert messages[0].encoding == "bgr8"
    assert np.array_equal(np.frombuffer(messages[0].data, np.uint8).reshape(272, 640, 3), decoded[0])


def test_image_folder_in_name_order_with_annotations_of_its_video(tmp_path, synthetic, capsys):
    source = synthetic.parent / "JPEGImages" / "video_0002"
    folder = tmp_path / "pictures"
    folder.mkdir()
    names = sorted(p.name for p in source.iterdir())
    # Copied in reverse name order, as PNG and JPEG, with a file that is no image beside them.
    for position, name in reversed(list(enumerate(names))):
        image = cv2.imread(str(source / name))
        cv2.imwrite(str(folder / f"frame_{position:02d}.{'png' if position % 2 else 'jpg'}"), image)
    (folder / "notes.txt").write_text("not an image")
    single = tmp_path / "video2.json"
    data = json.loads(synthetic.read_text())
    data["videos"] = [v for v in data["videos"] if v["id"] == 2]
    data["annotations"] = [a for a in data["annotations"] if a["video_id"] == 2]
    single.write_text(json.dumps(data))
    code, _, _ = run(capsys, ["images", str(folder), "--fps", "4", "--start-time", str(START),
                              "--annotations", str(single), "-o", str(tmp_path / "folder")])
    assert code == 0
    messages = [deserialize_message(raw, Image) for *_, raw in read_bag(tmp_path / "folder")]
    assert [stamp_ns(m) for m in messages] == [round((START + i / 4) * 1e9) for i in range(len(names))]
    for position, message in enumerate(messages):
        file = folder / f"frame_{position:02d}.{'png' if position % 2 else 'jpg'}"
        rgb = cv2.cvtColor(cv2.imread(str(file)), cv2.COLOR_BGR2RGB)
        assert np.array_equal(np.frombuffer(message.data, np.uint8).reshape(rgb.shape), rgb)
    mapping = json.loads((tmp_path / "folder.ground_truth.json").read_text())["sgnet_bag"]["frames"]
    assert [(f["video_id"], f["frame_index"]) for f in mapping] == [(2, i) for i in range(len(names))]


@pytest.mark.parametrize("case", ["text as video", "missing video", "empty folder", "missing frame",
                                  "unknown video id", "output exists", "storage conflict", "frame count",
                                  "video id without annotations"])
def test_bad_input_is_one_line_and_leaves_nothing(tmp_path, synthetic, capsys, case):
    frames_dir = synthetic.parent / "JPEGImages"
    output = tmp_path / "bag"
    ytvis = ["ytvis", "--annotations", str(synthetic), "--frames", str(frames_dir), "-o", str(output)]
    (tmp_path / "empty").mkdir()
    (tmp_path / "clip.mp4").write_text("not a video")
    if case == "missing frame":  # the third video's frames are gone: the bag is written up to there, then removed
        broken = tmp_path / "frames"
        broken.mkdir()
        for video in ("video_0001", "video_0002"):
            (broken / video).symlink_to(frames_dir / video)
        ytvis[4] = str(broken)
    if case == "output exists":
        output.mkdir()
    argv, expected = {
        "text as video": (["video", str(tmp_path / "clip.mp4"), "-o", str(output)], "cannot open video"),
        "missing video": (["video", str(tmp_path / "none.mp4"), "-o", str(output)], "does not exist"),
        "empty folder": (["images", str(tmp_path / "empty"), "--fps", "5", "-o", str(output)], "has no image file"),
        "missing frame": (ytvis, "cannot read image"),
        "unknown video id": ([*ytvis, "--videos", "1,9"], "video ids [9] are not in"),
        "output exists": (ytvis, "exists already"),
        "storage conflict": ([*ytvis[:-1], str(tmp_path / "bag.db3"), "--storage", "mcap"], "names sqlite3 storage"),
        "frame count": (["images", str(frames_dir / "video_0002"), "--fps", "5", "--max-frames", "2",
                         "--annotations", str(synthetic), "--video-id", "2", "-o", str(output)],
                        "the input has 2 frames, video 2 of"),
        "video id without annotations": (["video", str(bikes_video()), "--video-id", "2", "-o", str(output)],
                                         "--video-id needs --annotations"),
    }[case]
    code, out, err = run(capsys, argv)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sgnet-bag: error: ") and expected in lines[0], err
    if case != "output exists":
        assert not output.exists() and not (tmp_path / "bag.ground_truth.json").exists()
