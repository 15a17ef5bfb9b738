"""The node's depth input over real DDS, in its own process, running seeded random weights (test_replay's
checkpoint fixture: the same masks at every run) with every threshold at 0 so that each frame has instances: 3D in the InstanceArray with the input header, and bad depth
input (never paired, wrong encoding, wrong size, no camera_info) reported while colour-only outputs go on.
What needs a trained model is in test_depth_trained.py."""
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from sensor_msgs.msg import CameraInfo, Image
from visualization_msgs.msg import Marker, MarkerArray

from ros_harness import image_message, stamp_of, wait_until
from sgnet_ros.masks import instance_mask
from sgnet_ros.msg import InstanceArray
from test_node import DETECTIONS, HEIGHT, MAX_PIXELS, WIDTH, picture, set_parameter
from test_replay import checkpoint  # noqa: F401 (a fixture: random weights saved once, seeded)

NAMESPACE = "/depth_smoke"
FOCAL, WALL_Z = 240.0, 1.5  # a wall 1.5 m away fills the view: every instance is on it
K = [FOCAL, 0.0, (WIDTH - 1) / 2, 0.0, FOCAL, (HEIGHT - 1) / 2, 0.0, 0.0, 1.0]


def set_stamp(message, stamp: float):
    message.header.stamp.sec = int(stamp)
    message.header.stamp.nanosec = int(round((stamp - int(stamp)) * 1e9))
    return message


def depth_message(stamp: float, millimetres: int = int(WALL_Z * 1000), height: int = HEIGHT, width: int = WIDTH,
                  encoding: str = "16UC1") -> Image:
    if encoding == "16UC1":
        pixels = np.full((height, width), millimetres, "<u2")
        message = Image(height=height, width=width, encoding=encoding, is_bigendian=0, step=width * 2,
                        data=pixels.tobytes())
    else:
        message = Image(height=height, width=width, encoding=encoding, step=width * 3, data=bytes(height * width * 3))
    message.header.frame_id = "camera_optical"
    return set_stamp(message, stamp)


def camera_info(width: int = WIDTH, height: int = HEIGHT) -> CameraInfo:
    return CameraInfo(width=width, height=height, k=K, distortion_model="plumb_bob", d=[0.0] * 5)


class DepthStream:
    def __init__(self, client, node):
        self.client, self.node = client, node
        client.subscribe(f"{NAMESPACE}/instances", InstanceArray)
        client.subscribe("/diagnostics", DiagnosticArray)
        self.image = client.publisher(f"{NAMESPACE}/image", Image, reliable=False)
        self.depth = client.publisher(f"{NAMESPACE}/depth/image_raw", Image, reliable=False)
        self.info = client.publisher(f"{NAMESPACE}/depth/camera_info", CameraInfo, reliable=False)
        ready = lambda: (self.image.get_subscription_count() and self.depth.get_subscription_count()
                         and self.info.get_subscription_count()
                         and client.node.count_publishers(f"{NAMESPACE}/instances"))
        assert wait_until(ready, 60), f"the node did not come up:\n{node.output()}"
        warm_up = image_message(picture(0), 1.0)
        for _ in range(60):  # with its depth: the node does not wait depth_pairing_wait_s for it
            self.depth.publish(depth_message(1.0))
            self.image.publish(warm_up)
            if wait_until(lambda: self.outputs(1.0), 1.0):
                break
        assert self.outputs(1.0), f"the node does not answer:\n{node.output()}"

    def outputs(self, stamp: float) -> list:
        return [m for m in self.client.received(f"{NAMESPACE}/instances") if abs(stamp_of(m) - stamp) < 1e-6]

    def send(self, stamp: float, depth=None, info=None, frame_id="camera_optical"):
        """Publish camera_info and depth (when given), then the colour frame; its InstanceArray."""
        if info is not None:
            self.info.publish(info)
        if depth is not None:
            self.depth.publish(depth)
        self.image.publish(image_message(picture(int(stamp)), stamp, frame_id=frame_id))
        assert wait_until(lambda: self.outputs(stamp), 30), f"no instances for {stamp}:\n{self.node.output()[-3000:]}"
        return self.outputs(stamp)[-1]

    def depth_status(self, after: float) -> DiagnosticStatus:
        def latest():
            for message in reversed(self.client.received("/diagnostics")):
                for status in message.status:
                    if status.name == f"{NAMESPACE}/sgnet: depth" and stamp_of(message) > after:
                        return status
            return None
        assert wait_until(lambda: latest() is not None, 10)
        return latest()


@pytest.fixture(scope="module")
def stream(ros, node_factory, checkpoint):
    # Random weights give small masks: no erosion, and one valid depth is enough, so every non-empty mask is located.
    node = node_factory("sgnet", NAMESPACE, checkpoint=str(checkpoint), model__score_threshold=0.0,
                        model__detections_per_frame=DETECTIONS, tracker__new_track_score=0.0,
                        tracker__continue_score=0.0, max_image_pixels=MAX_PIXELS, depth_image_topic="depth/image_raw",
                        depth_pairing_tolerance_s=0.0, depth_pairing_wait_s=1.0, depth_mask_erosion_px=0,
                        depth_min_valid_pixels=1, diagnostics_period_s=0.25)  # statuses read after each step come sooner
    return DepthStream(ros.client, node)


def logged(stream, text: str) -> bool:
    name = f"{NAMESPACE.strip('/')}.sgnet"
    return any(log.name == name and text in log.msg for log in stream.client.received("/rosout"))


def test_without_camera_info_colour_outputs_go_on_and_the_diagnostic_says_why(stream):
    output = stream.send(10.0, depth=depth_message(10.0))
    assert output.instances and not any(i.position_valid or i.depth_pixels for i in output.instances)
    assert wait_until(lambda: logged(stream, "no camera_info received on 'depth/camera_info'"), 10)
    status = stream.depth_status(time.time())
    assert status.level == DiagnosticStatus.WARN and "camera_info" in status.message


def test_instances_on_a_wall_have_its_depth_and_the_input_header(stream):
    located = 0
    for stamp in (20.5, 21.5, 22.5):
        output = stream.send(stamp, depth=depth_message(stamp), info=camera_info(), frame_id="camera_optical")
        assert (output.header.frame_id, output.header.stamp.sec, output.header.stamp.nanosec) == \
            ("camera_optical", int(stamp), 500_000_000)
        for instance in output.instances:
            mask = instance_mask(instance)
            if not mask.any():
                assert not instance.position_valid and instance.depth_pixels == 0
                continue
            # On a wall at 1.5 m every point has z = 1.5, and x, y are the mask's mean pixel through the pinhole.
            v, u = np.nonzero(mask)
            assert instance.position_valid and instance.depth_pixels == mask.sum()
            assert (instance.position.x, instance.position.y, instance.position.z) == pytest.approx(
                ((u.mean() - K[2]) * WALL_Z / FOCAL, (v.mean() - K[5]) * WALL_Z / FOCAL, WALL_Z), abs=1e-6)
            # the box: the mask's pixel extent at 1.5 m, flat in z, around the extent's centre
            assert (instance.size.x, instance.size.y, instance.size.z) == pytest.approx(
                ((u.max() - u.min() + 1) * WALL_Z / FOCAL, (v.max() - v.min() + 1) * WALL_Z / FOCAL, 0.0), abs=1e-6)
            assert instance.box_centre.x == pytest.approx(((u.max() + u.min()) / 2 - K[2]) * WALL_Z / FOCAL, abs=1e-6)
            located += 1
    assert located, "no instance had a mask in three frames"
    status = stream.depth_status(time.time())
    assert status.level == DiagnosticStatus.OK, status.message


@pytest.mark.parametrize("case, expected", [
    ("unpaired", "no depth image on 'depth/image_raw' within depth_pairing_tolerance_s"),
    ("encoding", "has encoding 'rgb8'; the node takes 16UC1 or 32FC1"),
    ("size", "the depth image is 160x96 but the colour image is 320x192"),
])
def test_bad_depth_is_reported_and_colour_only_outputs_go_on(stream, case, expected):
    stamp = {"unpaired": 30.0, "encoding": 40.0, "size": 50.0}[case]
    depth = {"unpaired": depth_message(stamp + 0.5), "encoding": depth_message(stamp, encoding="rgb8"),
             "size": depth_message(stamp, height=96, width=160)}[case]
    output = stream.send(stamp, depth=depth, info=camera_info())
    assert output.instances and not any(i.position_valid for i in output.instances)
    assert wait_until(lambda: logged(stream, expected), 10), stream.node.output()[-3000:]
    status = stream.depth_status(time.time())
    assert status.level == DiagnosticStatus.WARN and expected in status.message
    # and the next good frame is located again
    stamp += 1.0
    stream.send(stamp, depth=depth_message(stamp), info=camera_info())
    assert stream.depth_status(time.time()).level == DiagnosticStatus.OK


def depth_counts(stream) -> dict[str, int]:
    """The depth status's counters, from a status published after now (so after every frame already answered)."""
    status = stream.depth_status(time.time())
    return {value.key: int(value.value) for value in status.values
            if value.key in ("depth_received", "frames_paired", "frames_unpaired", "frames_depth_absent")}


@pytest.mark.slow  # waits out depth pairing (more than 2.5 s)
def test_a_stopped_depth_stream_is_no_longer_waited_for_and_comes_back(stream):
    """The depth driver stops: the first three frames each wait depth_pairing_wait_s (1 s here) in vain, then the
    stream counts as absent, frames go out without waiting and the depth status says so; the first depth image
    that arrives again ends it. Whether a frame waited is read from the counters, not from a clock: a frame that
    waited and found no depth counts as unpaired, a frame that did not wait counts as depth-absent
    (sgnet_ros/depth_input.py, _locate)."""
    stream.send(59.0, depth=depth_message(59.0), info=camera_info())  # depth flowing: no missed wait so far
    before = depth_counts(stream)
    for stamp in (60.0, 61.0, 62.0):
        stream.send(stamp, info=camera_info())
    waited = depth_counts(stream)
    # each of the three waited (nothing newer than 59 came), and found only depth 59, 1 s away: unpaired
    assert (waited["frames_unpaired"] - before["frames_unpaired"],
            waited["frames_depth_absent"] - before["frames_depth_absent"]) == (3, 0)
    stream.send(63.0, info=camera_info())
    status = stream.depth_status(time.time())
    values = {value.key: value.value for value in status.values}
    assert status.level == DiagnosticStatus.WARN and "depth stream is absent" in status.message
    # By hand: DEPTH_ABSENT_AFTER = 3 missed waits (60, 61, 62) make the stream absent; 63 is the one frame
    # since then, and it went out without waiting: one absent frame, no more unpaired ones.
    assert int(values["frames_depth_absent"]) - before["frames_depth_absent"] == 1
    assert int(values["frames_unpaired"]) == waited["frames_unpaired"]
    # back, ahead of its colour frame (nothing waits for it now): sent once the node has it
    stream.depth.publish(depth_message(64.0))
    assert wait_until(lambda: depth_counts(stream)["depth_received"] > waited["depth_received"], 10)
    stream.send(64.0, info=camera_info())
    status = stream.depth_status(time.time())
    assert status.level == DiagnosticStatus.OK, status.message
    values = {value.key: value.value for value in status.values}
    assert int(values["frames_depth_absent"]) - before["frames_depth_absent"] == 1  # 64 was paired, not absent


def test_deactivate_drops_the_depth_subscriptions_and_activate_brings_them_back(ros, stream):
    from lifecycle_msgs.msg import Transition
    from test_lifecycle import change_state

    client, node = ros.client, stream.node
    assert change_state(client, node, Transition.TRANSITION_DEACTIVATE)
    assert wait_until(lambda: stream.depth.get_subscription_count() == 0 == stream.info.get_subscription_count(), 10)
    assert change_state(client, node, Transition.TRANSITION_ACTIVATE)
    assert wait_until(lambda: stream.depth.get_subscription_count() and stream.info.get_subscription_count(), 10)
    stamp = 70.0
    for _ in range(30):  # until the new subscriptions have matched on both sides and a frame is located again
        stamp += 1.0
        stream.send(stamp, depth=depth_message(stamp), info=camera_info())
        if stream.depth_status(time.time()).message.endswith("located in 3D"):
            break
    assert stream.depth_status(time.time()).level == DiagnosticStatus.OK


def rviz_view(arrays) -> dict:
    """What rviz shows after the arrays, in order: (namespace, id) -> marker (ADD adds or replaces, DELETE removes,
    DELETEALL clears), leaving out markers whose lifetime (counted from their stamp) ran out before the last array."""
    shown = {}
    for array in arrays:
        for marker in array.markers:
            if marker.action == Marker.DELETEALL:
                shown.clear()
            elif marker.action == Marker.DELETE:
                shown.pop((marker.ns, marker.id), None)
            else:
                shown[marker.ns, marker.id] = marker
    now = stamp_of(arrays[-1].markers[0]) if arrays and arrays[-1].markers else 0.0
    return {key: marker for key, marker in shown.items()
            if not (marker.lifetime.sec or marker.lifetime.nanosec)
            or stamp_of(marker) + marker.lifetime.sec + marker.lifetime.nanosec * 1e-9 > now}


def test_markers_show_every_located_instance_and_tracks_that_end_leave_none_behind(ros, stream):
    client, node = stream.client, stream.node
    topic = f"{NAMESPACE}/markers"
    client.subscribe(topic, MarkerArray)
    markers_of = lambda stamp: [array for array in client.received(topic)
                                if array.markers and abs(stamp_of(array.markers[0]) - stamp) < 1e-6]
    stamp, sent = 100.5, []
    for _ in range(30):  # until the node has matched the subscription (it builds markers only while subscribed)
        stamp += 1.0
        sent.append((stamp, stream.send(stamp, depth=depth_message(stamp), info=camera_info())))
        if wait_until(lambda: markers_of(stamp), 2.0):
            break
    for _ in range(3):
        stamp += 1.0
        sent.append((stamp, stream.send(stamp, depth=depth_message(stamp), info=camera_info())))
    checked = 0
    for stamp, output in sent:
        if not wait_until(lambda: markers_of(stamp), 5.0):
            continue  # sent before the subscription matched
        array, = markers_of(stamp)
        located = {i.track_id: i for i in output.instances if i.position_valid}
        assert located, "no instance was located in 3D"
        for marker in array.markers:
            assert (marker.header.frame_id, marker.header.stamp.sec, marker.header.stamp.nanosec) == \
                ("camera_optical", int(stamp), 500_000_000)
        added = {(m.ns, m.id): m for m in array.markers if m.action == Marker.ADD}
        assert set(added) == {(ns, track) for ns in ("box", "centroid", "label") for track in located}
        for track, instance in located.items():
            assert added["label", track].text == f"{track} {instance.class_name} {instance.score:.2f}"
            centroid, box = added["centroid", track].pose.position, added["box", track].pose.position
            assert (centroid.x, centroid.y, centroid.z) == (instance.position.x, instance.position.y,
                                                            instance.position.z)
            assert (box.x, box.y, box.z) == (instance.box_centre.x, instance.box_centre.y, instance.box_centre.z)
        checked += 1
    assert checked >= 3, f"markers arrived for {checked} frames:\n{node.output()[-3000:]}"
    shown_before = {track for _, track in rviz_view(client.received(topic))}
    assert shown_before == {i.track_id for i in sent[-1][1].instances if i.position_valid}
    # every track ends: no detection passes a score threshold of 1
    assert set_parameter(client, node, "model.score_threshold", 1.0).successful
    try:
        stamp += 1.0
        output = stream.send(stamp, depth=depth_message(stamp), info=camera_info())
        assert not output.instances
        assert wait_until(lambda: markers_of(stamp), 5.0), "no markers array after the tracks ended"
        array, = markers_of(stamp)
        assert {(m.ns, m.id) for m in array.markers if m.action == Marker.DELETE} == {
            (ns, track) for ns in ("box", "centroid", "label") for track in shown_before}
        assert not rviz_view(client.received(topic)), "markers of ended tracks left behind"
    finally:
        assert set_parameter(client, node, "model.score_threshold", 0.0).successful
