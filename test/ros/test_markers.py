"""The rviz markers (sgnet_ros/markers.py) against values worked out by hand, and the rviz helpers of the launch
file (sgnet_ros/rviz.py)."""
from pathlib import Path

import numpy as np
import pytest
import yaml
from rclpy.serialization import deserialize_message, serialize_message
from std_msgs.msg import Header
from visualization_msgs.msg import Marker, MarkerArray

from sgnet_model.instances import FrameResult, TrackedInstance
from sgnet_ros.depth import Instance3D
from sgnet_ros.markers import LIFETIME_S, InstanceMarkers, marker_id
from sgnet_ros.rviz import config_for_namespace, rviz_command, topic_prefix


RVIZ_CONFIG = Path(__file__).resolve().parents[2] / "config" / "sgnet.rviz"


def tracked(track_id, class_name="dog", score=0.875):
    box = np.array([10, 20, 50, 60], np.float32)
    return TrackedInstance(track_id=track_id, class_id=0, class_name=class_name, score=score, box=box,
                           mask=np.zeros((4, 4), bool), centre=np.array([30, 40], np.float32),
                           motion=np.zeros(2, np.float32))


def header(sec=12, frame_id="camera_color_optical_frame"):
    message = Header(frame_id=frame_id)
    message.stamp.sec, message.stamp.nanosec = sec, 250_000_000
    return message


def frame(*instances):
    return FrameResult(timestamp=0.0, instances=list(instances), inference_ms=1.0, tracks_reset=False)


def by_namespace(array):
    return {(marker.ns, marker.id): marker for marker in array.markers}


# A box 0.4 m wide, 0.2 m high and 0.1 m deep around (0.5, -0.25, 2.0); the centroid of its surface nearer the camera.
LOCATED = Instance3D(position=(0.52, -0.24, 1.96), box_centre=(0.5, -0.25, 2.0), size=(0.4, 0.2, 0.1), valid_pixels=900)


def test_each_located_instance_has_a_box_a_centroid_and_a_label_in_its_track_colour():
    array = InstanceMarkers().build(frame(tracked(7), tracked(8)), header(), {7: LOCATED})
    markers = by_namespace(array)
    assert set(markers) == {("box", 7), ("centroid", 7), ("label", 7)}  # track 8 has no 3D: no markers
    for marker in markers.values():
        assert (marker.header.frame_id, marker.header.stamp.sec, marker.header.stamp.nanosec) == \
            ("camera_color_optical_frame", 12, 250_000_000)
        assert marker.action == Marker.ADD and marker.lifetime.sec == LIFETIME_S > 0
        # track 7's colour: hue 7 x 0.618034 mod 1 = 0.326238 (sector 1 of 6, f = 0.957427), saturation 0.85,
        # value 1 -> (1 - 0.85 f, 1, 1 - 0.85) = (0.186187, 1, 0.15) -> RGB (47, 255, 38), as the debug overlay
        assert (marker.color.r, marker.color.g, marker.color.b, marker.color.a) == pytest.approx(
            (47 / 255, 1.0, 38 / 255, 1.0))
        assert (marker.pose.orientation.x, marker.pose.orientation.y, marker.pose.orientation.z,
                marker.pose.orientation.w) == (0.0, 0.0, 0.0, 1.0)
    box = markers["box", 7]
    assert box.type == Marker.LINE_LIST and box.scale.x > 0
    assert (box.pose.position.x, box.pose.position.y, box.pose.position.z) == (0.5, -0.25, 2.0)
    points = [(p.x, p.y, p.z) for p in box.points]
    edges = {frozenset(points[i:i + 2]) for i in range(0, len(points), 2)}
    corners = {(x, y, z) for x in (-0.2, 0.2) for y in (-0.1, 0.1) for z in (-0.05, 0.05)}
    assert len(points) == 24 and set(points) == corners and len(edges) == 12
    for a, b in map(tuple, edges):  # every edge along one axis, as long as the box on that axis
        difference = [abs(u - v) for u, v in zip(a, b)]
        assert sorted(difference)[:2] == [0.0, 0.0] and max(difference) == pytest.approx(
            (0.4, 0.2, 0.1)[int(np.argmax(difference))])
    centroid = markers["centroid", 7]
    assert centroid.type == Marker.SPHERE and centroid.scale.x == centroid.scale.y == centroid.scale.z > 0
    assert (centroid.pose.position.x, centroid.pose.position.y, centroid.pose.position.z) == (0.52, -0.24, 1.96)
    label = markers["label", 7]
    assert label.type == Marker.TEXT_VIEW_FACING and label.text == "7 dog 0.88" and label.scale.z > 0
    # above the box's top face (y = -0.25 - 0.1, y down), one text height higher, on its front face (z = 1.95)
    assert (label.pose.position.x, label.pose.position.y, label.pose.position.z) == pytest.approx(
        (0.5, -0.35 - label.scale.z, 1.95))


def test_tracks_that_end_get_their_markers_deleted_once():
    markers = InstanceMarkers()
    markers.build(frame(tracked(3), tracked(4)), header(1), {3: LOCATED, 4: LOCATED})
    second = markers.build(frame(tracked(4), tracked(5)), header(2), {4: LOCATED, 5: LOCATED})
    deleted = {(m.ns, m.id) for m in second.markers if m.action == Marker.DELETE}
    added = {(m.ns, m.id) for m in second.markers if m.action == Marker.ADD}
    assert deleted == {("box", 3), ("centroid", 3), ("label", 3)}
    assert added == {(ns, track) for ns in ("box", "centroid", "label") for track in (4, 5)}
    assert all(m.header.stamp.sec == 2 for m in second.markers)
    # a frame without depth: every shown track is deleted; then nothing more to delete
    third = markers.build(frame(tracked(4), tracked(5)), header(3), {})
    assert {(m.ns, m.id, m.action) for m in third.markers} == {
        (ns, track, Marker.DELETE) for ns in ("box", "centroid", "label") for track in (4, 5)}
    assert markers.build(frame(), header(4), {}).markers == []


def test_markers_survive_serialization_and_copies_do_not_share_what_differs():
    array = InstanceMarkers().build(frame(tracked(1), tracked(2, "cat", 0.5)), header(),
                                    {1: LOCATED, 2: Instance3D((1.0, 2.0, 3.0), (1.0, 2.0, 3.0), (0.2, 0.2, 0.2), 50)})
    received = deserialize_message(serialize_message(array), MarkerArray)
    poses = {(m.ns, m.id): (m.pose.position.x, m.pose.position.y, m.pose.position.z) for m in received.markers}
    assert poses["centroid", 1] == (0.52, -0.24, 1.96) and poses["centroid", 2] == (1.0, 2.0, 3.0)
    assert {m.text for m in received.markers if m.ns == "label"} == {"1 dog 0.88", "2 cat 0.50"}
    assert len({m.color.g for m in received.markers}) == 2  # two tracks, two colours


def test_marker_ids_are_the_track_ids_within_int32():
    assert marker_id(1) == 1 and marker_id(2**31 - 1) == 2**31 - 1 and marker_id(2**31 + 5) == 5


def test_rviz_config_follows_the_namespace_and_the_command_sets_the_fixed_frame():
    text = RVIZ_CONFIG.read_text()
    assert topic_prefix("sgnet") == topic_prefix("/sgnet/") == "/sgnet/" and topic_prefix("") == "/"
    moved = yaml.safe_load(config_for_namespace(text, "/robot/front_camera"))
    topics = {display["Name"]: display["Topic"]["Value"]
              for display in moved["Visualization Manager"]["Displays"] if "Topic" in display}
    assert sorted(topics.values()) == ["/robot/front_camera/debug_image", "/robot/front_camera/label_image",
                                       "/robot/front_camera/markers"]
    assert config_for_namespace(text, "sgnet") == text
    assert rviz_command("/opt/ros/jazzy/lib/rviz2/rviz2", "/x/sgnet.rviz", "camera_optical") == \
        ["/opt/ros/jazzy/lib/rviz2/rviz2", "-d", "/x/sgnet.rviz", "-f", "camera_optical"]


def test_rviz_config_shows_the_debug_image_the_label_image_the_markers_and_tf():
    config = yaml.safe_load(RVIZ_CONFIG.read_text())["Visualization Manager"]
    displays = {display["Class"].split("/")[-1]: [] for display in config["Displays"]}
    for display in config["Displays"]:
        displays[display["Class"].split("/")[-1]].append(display.get("Topic", {}).get("Value"))
    assert sorted(displays["Image"]) == ["/sgnet/debug_image", "/sgnet/label_image"]
    assert displays["MarkerArray"] == ["/sgnet/markers"] and "TF" in displays
    assert config["Global Options"]["Fixed Frame"] == "camera_color_optical_frame"  # the launch file's default
