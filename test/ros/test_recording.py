"""Recording the uncertain moments (sgnet_ros/recording.py) into an MCAP bag: which frames, read back with rosbags;
the budget and an unwritable folder stop it with a reason, never an exception."""
import numpy as np
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore
from rclpy.serialization import serialize_message
from sensor_msgs.msg import Image

from sgnet_ros.recording import RecordingConfig, UncertainMomentRecorder

STEP_NS = 100_000_000  # 10 Hz


def image(index: int) -> Image:
    message = Image(height=2, width=3, encoding="rgb8", step=9, data=bytes([index % 256] * 18))
    message.header.stamp.sec, message.header.stamp.nanosec = divmod(index * STEP_NS, 1_000_000_000)
    return message


def record(folder, events_at: set[int], frames: int = 30, max_mb: float = 1000.0) -> UncertainMomentRecorder:
    recorder = UncertainMomentRecorder(RecordingConfig(str(folder), min_events=1, window_s=0.3, min_interval_s=1.0,
                                                       max_mb=max_mb))
    for index in range(frames):
        recorder.offer("front", "/front/image_raw", image(index), index * STEP_NS, 2 if index in events_at else 0)
    recorder.close()
    return recorder


def test_each_moment_writes_the_window_around_it_at_most_once_a_min_interval(tmp_path):
    """Moments at frames 10, 12 and 25 (10 Hz, window 0.3 s, interval 1 s): 12 comes 0.2 s after 10 and starts
    nothing; 10 writes frames 7-13 and 25 frames 22-28, by hand."""
    recorder = record(tmp_path / "rec", {10, 12, 25})
    assert (recorder.moments, recorder.frames_written, recorder.stopped_because) == (2, 14, "")
    assert recorder.bag.parent == tmp_path / "rec" and recorder.bag.name.startswith("sgnet_uncertain_")
    assert len(list(recorder.bag.glob("*.mcap"))) == 1
    store = get_typestore(Stores.ROS2_KILTED)
    with Reader(recorder.bag) as reader:
        read = [(connection.topic, stamp, store.deserialize_cdr(data, connection.msgtype))
                for connection, stamp, data in reader.messages()]
    expected = [*range(7, 14), *range(22, 29)]
    assert [stamp for _, stamp, _ in read] == [index * STEP_NS for index in expected]
    assert {topic for topic, _, _ in read} == {"/front/image_raw"}
    assert [int(np.asarray(m.data)[0]) for _, _, m in read] == expected  # each frame's own pixels
    healthy, text, values = recorder.status()
    assert healthy and values["recording_moments"] == "2" and values["recording_frames"] == "14"


def test_time_going_back_starts_the_window_afresh(tmp_path):
    """sgnet-replay's warm-up frame (frame 0's pixels stamped a day ahead) is a moment here, then the bag's frames
    come from its start: only frame 10's window (7-13) follows the warm-up frame into the bag, not every frame up to
    the warm-up frame's window end, a day later."""
    recorder = UncertainMomentRecorder(RecordingConfig(str(tmp_path / "rec"), min_events=1, window_s=0.3,
                                                       min_interval_s=1.0))
    day_ns = 86_400 * 1_000_000_000
    recorder.offer("front", "/front/image_raw", image(0), day_ns, 2)
    for index in range(30):
        recorder.offer("front", "/front/image_raw", image(index), index * STEP_NS, 2 if index == 10 else 0)
    recorder.close()
    with Reader(recorder.bag) as reader:
        stamps = [stamp for _, stamp, _ in reader.messages()]
    assert stamps == [*(index * STEP_NS for index in range(7, 14)), day_ns]  # read back in stamp order
    assert recorder.moments == 2


def test_no_moment_no_bag(tmp_path):
    recorder = record(tmp_path / "rec", set())
    assert recorder.bag is None and not (tmp_path / "rec").exists() and recorder.status()[0]


def test_the_budget_stops_the_recording_with_a_reason(tmp_path):
    """A budget of 5 frames: the moment at 10 writes frames 7-10, then 11; frame 12 would pass the budget and
    stops the recording. The bag keeps what was written and is closed readable."""
    size = len(serialize_message(image(0)))
    recorder = record(tmp_path / "rec", {10, 25}, max_mb=5 * size / 1e6)
    healthy, text, _ = recorder.status()
    assert not healthy and "reached its budget" in text and recorder.frames_written == 5
    with Reader(recorder.bag) as reader:
        assert [stamp for _, stamp, _ in reader.messages()] == [index * STEP_NS for index in range(7, 12)]


def test_an_unwritable_folder_stops_the_recording_with_a_reason(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    recorder = record(tmp_path / "file" / "rec", {10})
    healthy, text, _ = recorder.status()
    assert not healthy and text.startswith(f"recording stopped: cannot write {tmp_path / 'file' / 'rec'}")
    recorder.offer("front", "/front/image_raw", image(40), 40 * STEP_NS, 5)  # after it stopped: ignored, no exception
