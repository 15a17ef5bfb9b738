"""What robots rely on beyond the masks, over real DDS with the node in its own process: camera_info
republished with each output's stamp, the class-id image, the subscription's reliability following the camera's
publishers, parameter descriptors and when parameters apply, diagnostics from start, and compressed input checked
by its header (a decompression bomb refused without the memory it promises)."""
import time

import cv2
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import DescribeParameters, SetParameters
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from ros_harness import diagnostic_values, image_message, stamp_of, wait_until
from sgnet_ros.masks import instance_mask
from sgnet_ros.msg import InstanceArray
from test_conversions import png_bomb
from test_node import picture

NAMESPACE = "/conv"
CAMERA = "/conv_camera/image_raw"
EVERYTHING = dict(smoke_test=True, model_config="resnet18_small", model__score_threshold=0.0,
                  model__detections_per_frame=4, tracker__new_track_score=0.0, tracker__continue_score=0.0,
                  image_topic=CAMERA, compressed_image_topic=f"{CAMERA}/compressed")


@pytest.fixture(scope="module")
def failing(node_factory):
    """A node that cannot configure (no checkpoint): started before the module's node, so that both starts overlap."""
    return node_factory("no_checkpoint", "/conv_failing")


@pytest.fixture(scope="module")
def node(ros, node_factory, failing):
    node = node_factory("sgnet", NAMESPACE, environment={"OMP_NUM_THREADS": "1"}, **EVERYTHING)
    client = ros.client
    for topic, message_type in (("instances", InstanceArray), ("class_image", Image), ("camera_info", CameraInfo)):
        client.subscribe(f"{NAMESPACE}/{topic}", message_type)
    client.subscribe("/diagnostics", DiagnosticArray)
    assert wait_until(lambda: any(log.msg.startswith("active") for log in client.logs(node)), 120), node.output()
    return node


def outputs(client, topic: str, stamp: float) -> list:
    return [m for m in client.received(f"{NAMESPACE}/{topic}") if abs(stamp_of(m) - stamp) < 1e-6]


def send_until_answered(client, publisher, message, topics, timeout: float = 60.0) -> list:
    """Publish (again every second, until discovery completes) until every topic has an output of its stamp."""
    stamp = stamp_of(message)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        publisher.publish(message)
        if wait_until(lambda: all(outputs(client, t, stamp) for t in topics), 1.0):
            return [outputs(client, t, stamp)[-1] for t in topics]
    raise AssertionError(f"no {topics} for stamp {stamp}")


def test_camera_info_is_republished_with_the_output_header_and_class_image_names_classes(ros, node):
    client = ros.client
    info_publisher = client.publisher("/conv_camera/camera_info", CameraInfo, reliable=False)
    image_publisher = client.publisher(CAMERA, Image, reliable=False)
    info = CameraInfo(height=192, width=320, distortion_model="plumb_bob", d=[0.1, 0.0, 0.0, 0.0, 0.0],
                      k=[300.0, 0.0, 160.0, 0.0, 300.0, 96.0, 0.0, 0.0, 1.0])
    info.header.frame_id = "camera_optical"
    info.header.stamp.sec = 5  # a driver's own stamp: replaced by the output's
    assert wait_until(lambda: info_publisher.get_subscription_count() > 0, 30)
    rgb = picture(21)
    stamp = 100.0
    for _ in range(60):  # the node keeps the newest CameraInfo; publish both until the pair comes back
        info_publisher.publish(info)
        answer = image_message(rgb, stamp, frame_id="camera_optical")
        image_publisher.publish(answer)
        if wait_until(lambda: outputs(client, "camera_info", stamp) and outputs(client, "instances", stamp), 1.0):
            break
        stamp += 1.0
    republished, = outputs(client, "camera_info", stamp)[-1:]
    instances = outputs(client, "instances", stamp)[-1]
    assert republished.header == instances.header == answer.header
    assert list(republished.k) == list(info.k) and list(republished.d) == list(info.d)
    assert (republished.width, republished.height, republished.distortion_model) == (320, 192, "plumb_bob")

    classes, = send_until_answered(client, image_publisher, image_message(rgb, 200.0), ["class_image"])
    instances = outputs(client, "instances", 200.0)[-1]
    assert (classes.encoding, classes.width, classes.height) == ("mono8", 320, 192)
    pixels = np.frombuffer(classes.data, np.uint8).reshape(192, classes.step)[:, :320]
    masks = np.stack([instance_mask(i) for i in instances.instances])  # highest score first
    scores = np.where(masks, np.array([i.score for i in instances.instances])[:, None, None], -1.0)
    expected = np.where(masks.any(axis=0),
                        np.array([i.class_id + 1 for i in instances.instances])[scores.argmax(axis=0)], 0)
    assert np.array_equal(pixels, expected)


def node_subscription_reliability(client, node) -> ReliabilityPolicy | None:
    for info in client.node.get_subscriptions_info_by_topic(CAMERA):
        if info.node_name == node.name and info.node_namespace == node.namespace:
            return info.qos_profile.reliability
    return None


def test_the_subscription_follows_the_publishers_reliability(ros, node):
    client = ros.client
    reliable = client.publisher(CAMERA, Image, reliable=True, depth=1)  # the test's other publishers: best effort
    for other in [p for p in client.node.publishers if p.topic_name == CAMERA and p is not reliable]:
        client.destroy_publisher(other)
    assert wait_until(lambda: node_subscription_reliability(client, node) == ReliabilityPolicy.RELIABLE, 30)
    best_effort = client.publisher(CAMERA, Image, reliable=False)
    assert wait_until(lambda: node_subscription_reliability(client, node) == ReliabilityPolicy.BEST_EFFORT, 30)
    client.destroy_publisher(best_effort)
    assert wait_until(lambda: node_subscription_reliability(client, node) == ReliabilityPolicy.RELIABLE, 30)
    answer, = send_until_answered(client, reliable, image_message(picture(22), 300.0), ["instances"])
    assert wait_until(lambda: any("is now reliable" in log.msg for log in client.logs(node)), 10)  # /rosout's own time
    client.destroy_publisher(reliable)


def describe(client, node, names: list[str]) -> dict:
    request = DescribeParameters.Request(names=names)
    response = client.call(DescribeParameters, f"{node.fully_qualified_name}/describe_parameters", request)
    return dict(zip(names, response.descriptors))


def set_parameter(client, node, name: str, value) -> object:
    if isinstance(value, bool):
        parameter_value = ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=value)
    elif isinstance(value, int):
        parameter_value = ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=value)
    else:
        parameter_value = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value)
    request = SetParameters.Request(parameters=[Parameter(name=name, value=parameter_value)])
    return client.call(SetParameters, f"{node.fully_qualified_name}/set_parameters", request).results[0]


def test_parameters_say_their_type_range_and_when_they_apply(ros, node):
    client = ros.client
    described = describe(client, node, ["model.score_threshold", "qos_depth", "autostart", "tracker.max_lost_s"])
    score = described["model.score_threshold"]
    assert score.type == ParameterType.PARAMETER_DOUBLE and not score.read_only
    assert (score.floating_point_range[0].from_value, score.floating_point_range[0].to_value) == (0.0, 1.0)
    assert "applies at once" in score.additional_constraints
    depth = described["qos_depth"]
    assert depth.type == ParameterType.PARAMETER_INTEGER and depth.integer_range[0].from_value == 1
    assert "applies at configure" in depth.additional_constraints
    assert described["autostart"].read_only and described["autostart"].type == ParameterType.PARAMETER_BOOL
    lost = described["tracker.max_lost_s"]
    assert lost.type == ParameterType.PARAMETER_DOUBLE and lost.floating_point_range[0].from_value == 0.0

    refused = set_parameter(client, node, "qos_depth", 5)
    assert not refused.successful and "qos_depth applies at configure" in refused.reason and "cleanup" in refused.reason
    assert not set_parameter(client, node, "model.score_threshold", 1.5).successful  # outside the range
    assert not set_parameter(client, node, "autostart", False).successful  # read-only


def test_tracker_settings_apply_to_the_running_node(ros, node):
    client = ros.client
    publisher = client.publisher(CAMERA, Image, reliable=False)
    some, = send_until_answered(client, publisher, image_message(picture(23), 400.0), ["instances"])
    assert some.instances
    assert set_parameter(client, node, "tracker.new_track_score", 1.0).successful
    assert set_parameter(client, node, "tracker.continue_score", 1.0).successful
    none, = send_until_answered(client, publisher, image_message(picture(23), 400.1), ["instances"])
    assert none.instances == []  # no random-weight score reaches 1: nothing starts or continues a track
    assert set_parameter(client, node, "tracker.continue_score", 0.0).successful
    assert set_parameter(client, node, "tracker.new_track_score", 0.0).successful
    again, = send_until_answered(client, publisher, image_message(picture(23), 400.2), ["instances"])
    assert again.instances


def node_diagnostics(client, node, after_stamp: float) -> DiagnosticStatus | None:
    for message in reversed(client.received("/diagnostics")):
        if stamp_of(message) <= after_stamp:
            continue
        for status in message.status:
            if status.name.startswith(f"{node.fully_qualified_name}:"):
                return status
    return None


def test_diagnostics_report_the_age_of_the_input_stamps(ros, node):
    """A frame stamped 3 s before it is sent: the first diagnostics window that saw it reports its age. Frames of
    the module's earlier tests (stamps far from the node's clock) must not share that window: it starts after a
    window has been published since this test began."""
    client = ros.client
    publisher = client.publisher(CAMERA, Image, reliable=False)

    def windows_since(moment: float) -> list[str]:
        """input_age_ms_max of each of the node's diagnostics windows published after ``moment``."""
        return [values["input_age_ms_max"] for message in client.received("/diagnostics")
                if stamp_of(message) > moment and (values := diagnostic_values(message, node)) is not None]
    begun = time.time()
    assert wait_until(lambda: windows_since(begun), 10)
    sent = time.time()
    stamp = sent - 3.0  # three seconds old when it is sent
    send_until_answered(client, publisher, image_message(picture(24), stamp), ["instances"])
    # the frame may fall in the window published just before the answer came; a window without a frame says nan
    seen = lambda: [value for value in windows_since(sent) if value != "nan"]
    assert wait_until(seen, 10)
    age = seen()[0]
    assert 3000.0 <= float(age) <= (time.time() - stamp) * 1000, age  # its age when it arrived: 3 s and transport


def memory_mb(pid: int, field: str) -> float:
    """VmRSS (resident now) or VmHWM (the peak of resident memory) of a process, from /proc."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field}")


def reset_peak_memory(pid: int) -> None:
    """Make VmHWM start again from the resident memory of now (Linux: clear_refs 5)."""
    with open(f"/proc/{pid}/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def test_a_decompression_bomb_is_refused_without_its_memory(ros, node):
    client = ros.client
    image_publisher = client.publisher(CAMERA, Image, reliable=False)
    # Reliable, and the node's subscription made reliable to match (qos_reliability auto): a best-effort sample of
    # 400 KB can be lost in transport, which would fail this test for a reason that is not the node's.
    compressed = client.publisher(f"{CAMERA}/compressed", CompressedImage, reliable=True)
    assert wait_until(lambda: any(log.msg == f"subscription to {CAMERA}/compressed is now reliable, matching its "
                                  "publishers" for log in client.logs(node)), 30)
    send_until_answered(client, image_publisher, image_message(picture(25), 500.0), ["instances"])
    png = CompressedImage(format="png", data=cv2.imencode(".png", picture(25)[:, :, ::-1])[1].tobytes())
    png.header.stamp.sec, png.header.stamp.nanosec = 500, 500_000_000
    send_until_answered(client, compressed, png, ["instances"])
    bomb = CompressedImage(format="png", data=png_bomb(20000, 20000))  # 400 M pixels promised in < 1 MB
    bomb.header.stamp.sec = 501
    reset_peak_memory(node.pid)
    before = memory_mb(node.pid, "VmRSS")
    compressed.publish(bomb)
    refused = lambda: [log.msg for log in client.logs(node) if "20000x20000" in log.msg]
    assert wait_until(refused, 30)
    grown = memory_mb(node.pid, "VmHWM") - before  # the peak while the bomb was handled, not what is left after
    served, = send_until_answered(client, image_publisher, image_message(picture(25), 502.0), ["instances"],
                                  timeout=30)
    print(f"decompression bomb: peak RSS grew by {grown:.1f} MB")
    assert len(refused()) == 1 and "larger than max_image_pixels" in refused()[0]
    assert grown < 100
    assert not outputs(client, "instances", 501.0)


def test_a_node_that_fails_to_configure_says_why_on_diagnostics(ros, failing):
    client = ros.client
    started = time.time()
    expected = "configure failed: parameter checkpoint is empty"
    assert wait_until(lambda: (status := node_diagnostics(client, failing, started)) is not None
                      and status.message.startswith(expected), 90), failing.output()
    assert node_diagnostics(client, failing, started).level == DiagnosticStatus.ERROR


def test_label_info_names_the_classes_for_late_subscribers(ros, node):
    vision_msgs = pytest.importorskip("vision_msgs.msg", reason="vision_msgs is not on PyPI; it comes with a ROS 2 "
                                                                "install, where the node publishes label_info")
    if not hasattr(vision_msgs, "LabelInfo"):
        pytest.skip("this vision_msgs predates LabelInfo")
    from rclpy.qos import DurabilityPolicy, QoSProfile

    from sgnet_model.config import YOUTUBE_VIS_2019_CLASSES

    client = ros.client
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    client.subscribe(f"{NAMESPACE}/label_info", vision_msgs.LabelInfo, latched)  # subscribed long after activate
    assert wait_until(lambda: client.received(f"{NAMESPACE}/label_info"), 30)
    info = client.received(f"{NAMESPACE}/label_info")[-1]
    assert [(c.class_id, c.class_name) for c in info.class_map] == list(enumerate(YOUTUBE_VIS_2019_CLASSES))
    assert info.threshold == pytest.approx(0.0)
