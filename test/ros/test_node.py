"""The node over real DDS, in its own process, running random weights (smoke_test) with every threshold at 0 so
that each frame has instances. What needs a trained model is in test_node_trained.py."""
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from sensor_msgs.msg import CompressedImage, Image

from ros_harness import diagnostic_values, image_message, stamp_of, wait_until
from sgnet_model.config import YOUTUBE_VIS_2019_CLASSES
from sgnet_ros.masks import instance_mask, label_value
from sgnet_ros.msg import InstanceArray
from sgnet_ros.overlay import (MASK_OPACITY, Rect, label_size, label_text, pixel_box, place_labels, text_style,
                               track_colour)

CAMERA = Path(__file__).with_name("camera_publisher.py")
NAMESPACE = "/smoke"
HEIGHT, WIDTH = 192, 320  # 184 KB rgb8: fits Fast DDS's shared-memory segment with best-effort QoS
DETECTIONS = 4
MAX_PIXELS = 200_000
EVERYTHING = dict(smoke_test=True, model_config="resnet18_small", model__score_threshold=0.0,
                  model__detections_per_frame=DETECTIONS, tracker__new_track_score=0.0,
                  tracker__continue_score=0.0, compressed_image_topic="image/compressed",
                  max_image_pixels=MAX_PIXELS)


def picture(seed: int, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = cv2.resize(rng.integers(0, 256, (12, 20, 3), dtype=np.uint8), (width, height),
                       interpolation=cv2.INTER_CUBIC)
    cv2.circle(image, (int(rng.integers(60, width - 60)), int(rng.integers(50, height - 50))), 30, (250, 40, 40), -1)
    return image


class Stream:
    """Publishes frames to the node and waits for the matching outputs (by stamp)."""

    def __init__(self, client, node):
        self.client, self.node = client, node
        for topic, message_type in (("instances", InstanceArray), ("label_image", Image), ("debug_image", Image)):
            client.subscribe(f"{NAMESPACE}/{topic}", message_type)
        client.subscribe("/diagnostics", DiagnosticArray)
        self.image = client.publisher(f"{NAMESPACE}/image", Image, reliable=False)
        self.compressed = client.publisher(f"{NAMESPACE}/image/compressed", CompressedImage, reliable=False)
        ready = lambda: (self.image.get_subscription_count() and self.compressed.get_subscription_count()
                         and client.node.count_publishers(f"{NAMESPACE}/instances")
                         and client.node.count_subscribers(f"{NAMESPACE}/label_image")
                         and self.output_publishers_matched())
        assert wait_until(ready, 60), f"the node did not come up:\n{node.output()}"
        # Discovery completes on each side on its own time: send a frame until the node answers on every topic.
        warm_up = image_message(picture(0), 1.0)
        answered = lambda: all(self.outputs(t, 1.0) for t in ("instances", "label_image", "debug_image"))
        for _ in range(60):
            self.image.publish(warm_up)
            if wait_until(answered, 1.0):
                break
        assert answered(), f"the node does not answer:\n{node.output()}"

    def output_publishers_matched(self):
        return all(self.client.node.count_publishers(f"{NAMESPACE}/{topic}")
                   for topic in ("instances", "label_image", "debug_image"))

    def outputs(self, topic: str, stamp: float) -> list:
        return [m for m in self.client.received(f"{NAMESPACE}/{topic}") if abs(stamp_of(m) - stamp) < 1e-6]

    def send(self, message, topic: str = "image", timeout: float = 30.0, expect=("instances",)):
        (self.compressed if topic == "compressed" else self.image).publish(message)
        stamp = stamp_of(message)
        ok = wait_until(lambda: all(self.outputs(t, stamp) for t in expect), timeout)
        assert ok, f"no {expect} for stamp {stamp}:\n{self.node.output()[-3000:]}"
        return [self.outputs(t, stamp)[-1] for t in expect]

    def diagnostics(self, after: float) -> dict:
        """The node's diagnostics values from a message stamped after `after` (time.time())."""
        def latest():
            for message in reversed(self.client.received("/diagnostics")):
                values = diagnostic_values(message, self.node)
                if values is not None and stamp_of(message) > after:
                    return values
            return None
        assert wait_until(lambda: latest() is not None, 10)
        return latest()


@pytest.fixture(scope="module")
def stream(ros, node_factory):
    # bad input is logged once a run (the rate limit's period longer than any run): "logged once" does not then
    # depend on how long the cases before a repeat took on a loaded machine
    node = node_factory("sgnet", NAMESPACE, bad_input_log_period_s=3600.0, **EVERYTHING)
    return Stream(ros.client, node)


def test_outputs_carry_the_input_header_and_masks_that_decode(stream):
    rgb = picture(1)
    instances, labels, debug = stream.send(image_message(rgb, 1000.25, frame_id="camera_left"),
                                           expect=("instances", "label_image", "debug_image"))
    for message in (instances, labels, debug):
        assert message.header.frame_id == "camera_left"
        assert (message.header.stamp.sec, message.header.stamp.nanosec) == (1000, 250_000_000)
    assert 1 <= len(instances.instances) <= DETECTIONS and instances.inference_ms > 0
    scores = [i.score for i in instances.instances]
    assert scores == sorted(scores, reverse=True)
    for instance in instances.instances:
        mask = instance_mask(instance)
        assert mask.shape == (HEIGHT, WIDTH) and instance.track_id >= 1
        assert 0 <= instance.box_x1 <= instance.box_x2 <= WIDTH and 0 <= instance.box_y1 <= instance.box_y2 <= HEIGHT
        assert instance.centre_x == pytest.approx((instance.box_x1 + instance.box_x2) / 2, abs=1e-3)
        assert YOUTUBE_VIS_2019_CLASSES[instance.class_id] == instance.class_name
    # label image: worked out pixel by pixel from the decoded masks, the higher score winning overlaps
    assert (labels.encoding, labels.width, labels.height) == ("mono16", WIDTH, HEIGHT)
    order = ">" if labels.is_bigendian else "<"
    label_pixels = np.frombuffer(labels.data, f"{order}u2").reshape(HEIGHT, labels.step // 2)[:, :WIDTH]
    masks = np.stack([instance_mask(i) for i in instances.instances])  # (N, H, W), highest score first
    scores_at = np.where(masks, np.array(scores)[:, None, None], -1.0)
    winner = scores_at.argmax(axis=0)
    expected = np.where(masks.any(axis=0),
                        np.array([label_value(i.track_id) for i in instances.instances])[winner], 0)
    assert np.array_equal(label_pixels, expected)
    # debug image: untouched away from masks, their edges, boxes and labels; inside masks the blend of the track's
    # colour (labels: placed as test_overlay.py checks, here only to leave their area out)
    drawn = np.frombuffer(debug.data, np.uint8).reshape(HEIGHT, WIDTH, 3).astype(np.float64)
    style = text_style(HEIGHT)
    boxes = [pixel_box((i.box_x1, i.box_y1, i.box_x2, i.box_y2)) for i in instances.instances]
    sizes = [label_size(label_text(i.track_id, i.class_name, i.score), style) for i in instances.instances]
    near_box = np.zeros((HEIGHT, WIDTH), bool)
    for box, rect in zip(boxes, place_labels(boxes, sizes, HEIGHT, WIDTH)):
        band = style.line
        near_box[max(0, box.top - band):box.bottom + band + 1, max(0, box.left - band):box.right + band + 1] = True
        near_box[box.top + band + 1:box.bottom - band, box.left + band + 1:box.right - band] = False
        # the label, and the line joining it to a box it does not touch: within the rectangle around both
        around = Rect(min(box.left, rect.left), min(box.top, rect.top), max(box.right, rect.right),
                      max(box.bottom, rect.bottom))
        touching = rect.overlaps(Rect(box.left - 2 * band, box.top - 2 * band, box.right + 2 * band + 1,
                                      box.bottom + 2 * band + 1))
        area = rect if touching else around
        near_box[max(0, area.top):area.bottom + 1, max(0, area.left):area.right + 1] = True
    kernel = np.ones((2 * style.line + 1,) * 2, np.uint8)
    covered = masks.any(axis=0).astype(np.uint8)
    edges = cv2.dilate(covered, kernel) != cv2.erode(covered, kernel)
    background = ~masks.any(axis=0) & ~near_box & ~edges
    assert np.array_equal(drawn[background], rgb[background])
    top = instances.instances[0]
    only_top = masks[0] & (masks.sum(axis=0) == 1) & ~near_box & ~edges
    if only_top.any():
        blend = rgb[only_top] * (1 - MASK_OPACITY) + np.array(track_colour(top.track_id)) * MASK_OPACITY
        assert np.abs(drawn[only_top] - blend).max() <= 1.0


def test_bgr8_padded_and_compressed_frames_give_the_same_instances_as_rgb8(stream):
    rgb = picture(2)
    reference, = stream.send(image_message(rgb, 2000.0))
    bgr, = stream.send(image_message(rgb, 2000.1, encoding="bgr8"))
    padded_message = image_message(rgb, 2000.2)
    padded_message.step = WIDTH * 3 + 64
    padded_message.data = np.concatenate([rgb.reshape(HEIGHT, -1), np.full((HEIGHT, 64), 9, np.uint8)], 1).tobytes()
    padded, = stream.send(padded_message)
    ok, png = cv2.imencode(".png", rgb[:, :, ::-1])
    compressed_message = CompressedImage(format="png", data=png.tobytes())
    compressed_message.header = image_message(rgb, 2000.3).header
    compressed, = stream.send(compressed_message, topic="compressed")
    for other in (bgr, padded, compressed):
        assert len(other.instances) == len(reference.instances)
        for a, b in zip(reference.instances, other.instances):
            assert np.array_equal(instance_mask(a), instance_mask(b))
            assert (a.box_x1, a.box_y2, a.class_id) == pytest.approx((b.box_x1, b.box_y2, b.class_id), abs=1e-3)


def test_zero_stamps_pass_through_with_one_warning(stream):
    topic = f"{NAMESPACE}/instances"
    for _ in range(2):
        stream.client.clear(topic)
        stream.image.publish(image_message(picture(3), 0.0, frame_id="zero"))
        assert wait_until(lambda: any(m.header.frame_id == "zero" and stamp_of(m) == 0.0
                                      for m in stream.client.received(topic)), 30)
    # the node's log lines reach /rosout in order, but on their own time: a jump ahead makes the node log a track
    # reset after whatever the zero stamps made it log, so once that line is here the warnings are too
    stream.send(image_message(picture(3), 3500.0))
    assert wait_until(lambda: any("a gap of 3500.000 s" in log.msg for log in stream.client.logs(stream.node)), 30)
    warnings = [log.msg for log in stream.client.logs(stream.node) if "zero header stamp" in log.msg]
    assert len(warnings) == 1


def test_tracks_reset_when_stamps_go_back_or_jump(stream):
    stamps = [3000.0, 3000.1, 2990.0, 2990.1, 2995.0]  # back by 10 s, then a 4.9 s gap > max_gap_s 2
    outputs = [stream.send(image_message(picture(4), stamp))[0] for stamp in stamps]
    assert [o.tracks_reset for o in outputs[1:]] == [False, True, False, True]
    before_reset = max(i.track_id for i in outputs[1].instances)
    assert all(i.track_id > before_reset for i in outputs[2].instances)  # ids are never reused
    same = {i.track_id for i in outputs[2].instances} & {i.track_id for i in outputs[3].instances}
    assert same  # the same picture again: tracks continue
    gap_logged = lambda: any("a gap of 4.900 s in the stream" in log.msg for log in stream.client.logs(stream.node))
    assert wait_until(gap_logged, 30)  # the last reset's line; /rosout keeps the node's lines in order
    logs = [log.msg for log in stream.client.logs(stream.node) if log.msg.startswith("tracks reset")]
    assert any("the stamp went back" in msg for msg in logs)
    assert any("a gap of 4.900 s in the stream > predictor.max_gap_s" in msg for msg in logs)


def bad_messages():
    rgb = picture(5)
    good = image_message(rgb, 0.0)

    def altered(**fields):
        message = image_message(rgb, 0.0)
        for key, value in fields.items():
            setattr(message, key, value)
        return message

    huge = Image(height=101, width=2000, encoding="mono8", step=2000, data=bytes(202_000))  # mono8: fits DDS shared memory
    ok, jpeg = cv2.imencode(".jpg", rgb)
    return [
        ("image", altered(encoding="32FC1"), "unsupported encoding '32FC1'"),
        ("image", altered(data=good.data[:-7]), "but height x step"),
        ("image", altered(step=WIDTH * 3 - 3), "is smaller than width x bytes per pixel"),
        ("image", Image(height=0, width=0, encoding="rgb8", step=0, data=b""), "zero size"),
        ("image", huge, "202000 pixels is larger than max_image_pixels"),
        ("image", image_message(np.zeros((4, 4, 3), np.uint8), 0.0), "too small"),
        ("compressed", CompressedImage(format="jpeg", data=jpeg.tobytes()[:100] + bytes(50)), "cannot be decoded"),
    ]


def test_bad_input_is_logged_and_skipped_and_the_node_keeps_serving(stream):
    started = time.time()
    before = stream.diagnostics(started)
    cases = bad_messages()
    for index, (topic, message, expected_log) in enumerate(cases):
        message.header.stamp.sec = 4000 + index
        (stream.compressed if topic == "compressed" else stream.image).publish(message)
        assert wait_until(lambda: any(expected_log in log.msg for log in stream.client.logs(stream.node)), 10), \
            f"no log saying {expected_log!r}"
        stream.send(image_message(picture(6), 4000 + index + 0.5))  # and the next good frame is served
        assert not stream.outputs("instances", 4000 + index), expected_log
    for repeat in range(3):  # the same bad input again: counted, but not logged again (rate-limited)
        cases[0][1].header.stamp.sec = 4050 + repeat
        stream.image.publish(cases[0][1])
        time.sleep(0.2)
    stream.send(image_message(picture(6), 4100.0))
    assert sum("unsupported encoding '32FC1'" in log.msg for log in stream.client.logs(stream.node)) == 1
    after = stream.diagnostics(time.time())
    rejected, dropped = (int(after[key]) - int(before[key]) for key in ("frames_rejected", "frames_dropped"))
    assert rejected >= len(cases) and rejected + dropped == len(cases) + 3  # a repeat may be replaced unseen


def test_a_burst_faster_than_the_model_drops_stale_frames_without_backlog(stream):
    """No queue: a frame waits at most for the inference running when it arrives, then takes its own. As an
    ordering of events on the machine's clock: every output of the burst (the newest frame's aside) answers a frame
    published after the node published the output two before it (the reference frame's output counts as the
    first; send times as the middleware stamps them, so this process's own delays do not enter). With a queue one
    frame deeper, a frame would wait through a whole inference more and be older than that output. No wall-clock
    bar: the machine's load sets the latencies, which are printed (-s)."""
    topic = f"{NAMESPACE}/instances"
    stream.send(image_message(picture(7), 5000.0))
    before = stream.diagnostics(time.time())
    sent = {}
    count = 100  # half a second at 200 Hz: several inferences, each ordering below checked
    for k in range(count):
        stamp = 5001.0 + 0.01 * k
        sent[round(stamp, 2)] = time.time_ns()  # just before it leaves
        stream.image.publish(image_message(picture(7), stamp))
        time.sleep(0.005)  # 200 Hz, several times faster than the model
    last = round(5001.0 + 0.01 * (count - 1), 2)
    assert wait_until(lambda: stream.outputs("instances", last), 30)  # the newest frame is always served
    after = stream.diagnostics(time.time())  # published after the newest frame's output: every count is in
    outputs = [(published, m) for published, m in stream.client.sent_times(topic) if stamp_of(m) >= 5000.0]
    burst = outputs[1:]  # after the reference frame's output
    stamps = [round(stamp_of(m), 2) for _, m in burst]
    assert round(stamp_of(outputs[0][1]), 2) == 5000.0
    assert stamps == sorted(set(stamps)) and stamps[-1] == last  # in order, nothing after the newest
    assert len(burst) < count / 2  # stale frames were dropped, not queued
    for k in range(2, len(outputs) - 1):  # output k answers a frame sent after output k - 2 left the node
        stamp = round(stamp_of(outputs[k][1]), 2)
        assert sent[stamp] > outputs[k - 2][0], (k, stamp, "answered a frame that waited behind two inferences")
    latencies_ms = [(published - sent[round(stamp_of(m), 2)]) / 1e6 for published, m in burst]
    print(f"burst: output sent - frame sent (ms): {[round(latency) for latency in latencies_ms]}; model (ms): "
          f"{[round(m.inference_ms) for _, m in burst]}")
    delta = {key: int(after[key]) - int(before[key])
             for key in ("frames_received", "frames_processed", "frames_dropped", "frames_rejected", "frames_lost")}
    assert delta["frames_dropped"] > 0 and delta["frames_processed"] == len(burst)
    assert delta["frames_received"] == delta["frames_processed"] + delta["frames_dropped"]
    assert delta["frames_received"] + delta["frames_lost"] <= count and delta["frames_received"] >= len(burst)
    assert statistics.median(latencies_ms) > 0


def set_parameter(client, node, name: str, value: float):
    request = SetParameters.Request(parameters=[Parameter(
        name=name, value=ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value))])
    return client.call(SetParameters, f"{node.fully_qualified_name}/set_parameters", request).results[0]


def test_thresholds_change_at_run_time_and_invalid_values_are_refused(stream):
    client, node = stream.client, stream.node
    refused = set_parameter(client, node, "model.score_threshold", 1.5)  # outside the descriptor's range
    assert not refused.successful and "model.score_threshold out of range" in refused.reason
    assert set_parameter(client, node, "model.score_threshold", 1.0).successful
    none, = stream.send(image_message(picture(8), 6000.0))
    assert none.instances == []  # no random-weight score reaches 1
    assert set_parameter(client, node, "model.score_threshold", 0.0).successful
    some, = stream.send(image_message(picture(8), 6000.1))
    assert len(some.instances) >= 1


def test_detections_agree_with_instances(stream):
    pytest.importorskip("vision_msgs", reason="vision_msgs is not on PyPI; it comes with a ROS 2 install, and "
                                              "the node publishes detections only where it imports")
    from vision_msgs.msg import Detection2DArray

    topic = f"{NAMESPACE}/detections"
    stream.client.subscribe(topic, Detection2DArray)
    stamp = 7000.0
    for _ in range(30):  # until the new subscription is matched on the node's side
        stream.image.publish(image_message(picture(9), stamp))
        if wait_until(lambda: stream.outputs("detections", stamp), 1.0):
            break
        stamp += 1.0
    assert wait_until(lambda: stream.outputs("instances", stamp), 30)
    instances, detections = stream.outputs("instances", stamp)[-1], stream.outputs("detections", stamp)[-1]
    assert detections.header == instances.header
    assert len(detections.detections) == len(instances.instances) >= 1
    for instance, detection in zip(instances.instances, detections.detections):
        assert detection.id == str(instance.track_id) and detection.header == instances.header
        assert detection.bbox.center.position.x == pytest.approx((instance.box_x1 + instance.box_x2) / 2, abs=1e-3)
        assert detection.bbox.center.position.y == pytest.approx((instance.box_y1 + instance.box_y2) / 2, abs=1e-3)
        assert detection.bbox.size_x == pytest.approx(instance.box_x2 - instance.box_x1, abs=1e-3)
        assert detection.bbox.size_y == pytest.approx(instance.box_y2 - instance.box_y1, abs=1e-3)
        hypothesis, = detection.results
        assert hypothesis.hypothesis.class_id == instance.class_name
        assert hypothesis.hypothesis.score == pytest.approx(instance.score)


@pytest.mark.slow  # a camera process of its own, and waits out a gap in the stream (more than 2.5 s)
def test_images_lost_in_transport_are_counted_and_explained(stream):
    """A 640x360 rgb8 image is 691 KB; Fast DDS's default shared-memory segment is 512 KB, and a best-effort
    subscription never receives such images from a best-effort camera that runs without the profile of
    config/fastdds_large_images.xml (the segment is the writer's: this camera's process, started here without it).
    The node cannot see them, but it counts what the middleware reports lost and names the fix."""
    before = stream.diagnostics(time.time())
    environment = {key: value for key, value in os.environ.items() if not key.endswith("DEFAULT_PROFILES_FILE")}
    # 5 large frames stamped 8000-8004, then a small one (8005) whose sequence number reveals the gap
    camera = subprocess.run([sys.executable, str(CAMERA), f"{NAMESPACE}/image", "best_effort", "640", "360", "6", "5",
                             "--first-stamp", "8000", "--last-size", f"{WIDTH}x{HEIGHT}"],
                            env=environment, capture_output=True, text=True, timeout=120)
    assert camera.returncode == 0, camera.stderr
    assert wait_until(lambda: stream.outputs("instances", 8005.0), 10), "the small frame after the large ones"
    # a large frame that got through is received and refused (over max_image_pixels): counted, never answered
    got_through = int(stream.diagnostics(time.time())["frames_received"]) - int(before["frames_received"]) - 1
    if got_through:
        pytest.skip(f"this run's middleware delivered {got_through} of the 5 images of 691 KB (Fast DDS can send "
                    f"them over UDP instead): not all were lost")
    # the middleware reports the loss when it notices the gap, which a loaded machine may take a while to do
    assert wait_until(lambda: int(stream.diagnostics(time.time())["frames_lost"]) > int(before["frames_lost"]), 20)
    assert wait_until(lambda: any("lost in transport" in log.msg and "fastdds_large_images.xml" in log.msg
                                  for log in stream.client.logs(stream.node)), 5)


def bag_messages(bag: Path) -> list[tuple[str, str, int, object]]:
    """(topic, type, log time, message) of each message in a bag, read with rosbags."""
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    with Reader(bag) as reader:
        return [(connection.topic, connection.msgtype, stamp, store.deserialize_cdr(data, connection.msgtype))
                for connection, stamp, data in reader.messages()]


def recording_status(stream, after: float) -> tuple[int, str, dict] | None:
    """(level, message, values) of the node's recording status in the newest /diagnostics message stamped after
    ``after``; None before there is one."""
    for message in reversed(stream.client.received("/diagnostics")):
        for status in message.status:
            if status.name == f"{stream.node.fully_qualified_name}: recording" and stamp_of(message) > after:
                return int.from_bytes(status.level, "little"), status.message, {v.key: v.value for v in status.values}
    return None


def test_recording_writes_the_served_frames_as_received_and_an_unwritable_folder_is_a_warning(stream, tmp_path):
    """recording.min_events 0 with no window and no interval: every served frame is a moment, written as it
    arrived (raw and compressed, each on its own topic with its type) into one MCAP bag, closed readable when the
    node deactivates. A folder that cannot be made stops the recording with a warning; the node keeps serving."""
    from ros_harness import assert_humble_readable, reconfigure

    every_frame = dict(recording__min_events=0, recording__window_s=0.0, recording__min_interval_s=0.0)
    try:
        reconfigure(stream.client, stream.node, recording__folder=str(tmp_path / "bags"), **every_frame)
        sent = [image_message(picture(20 + index), 9000.0 + index / 10) for index in range(3)]
        for message in sent:
            stream.send(message)
        ok, png = cv2.imencode(".png", picture(23)[:, :, ::-1])
        compressed = CompressedImage(format="png", data=png.tobytes())
        compressed.header = image_message(picture(23), 9000.3).header
        stream.send(compressed, topic="compressed")
        after = time.time()  # the writer thread takes the frames on its own time: the count reaches 4
        assert wait_until(lambda: (recording_status(stream, after) or (0, "", {}))[2].get("recording_moments") == "4",
                          20), recording_status(stream, after)
        assert recording_status(stream, after)[:2] == (0, "recording uncertain moments")
        (tmp_path / "blocked").write_text("a file where the folder should be")
        reconfigure(stream.client, stream.node, recording__folder=str(tmp_path / "blocked" / "bags"))  # closes the bag
        bag, = (tmp_path / "bags").iterdir()
        assert_humble_readable(bag)
        read = bag_messages(bag)
        assert [(topic, kind, stamp) for topic, kind, stamp, _ in read] == [
            *((f"{NAMESPACE}/image", "sensor_msgs/msg/Image", 9_000_000_000_000 + index * 100_000_000)
              for index in range(3)),
            (f"{NAMESPACE}/image/compressed", "sensor_msgs/msg/CompressedImage", 9_000_300_000_000)]
        for message, (*_, recorded) in zip([*sent, compressed], read):
            assert bytes(recorded.data) == bytes(message.data)
            assert (recorded.header.frame_id, recorded.header.stamp.sec) == (message.header.frame_id,
                                                                              message.header.stamp.sec)

        stream.send(image_message(picture(24), 9001.0))  # the first moment finds the folder unwritable
        after = time.time()
        assert wait_until(lambda: (recording_status(stream, after) or (0,))[0] == 1, 20), recording_status(stream, after)
        assert recording_status(stream, after)[1].startswith(
            f"recording stopped: cannot write {tmp_path / 'blocked' / 'bags'}")
        assert stream.send(image_message(picture(25), 9001.1))  # still serving
    finally:
        reconfigure(stream.client, stream.node, recording__folder="")
