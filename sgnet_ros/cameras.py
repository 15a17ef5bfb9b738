"""One camera the node serves: its subscriptions, its camera_info, its optional depth input, its output
publishers (with depth, also the rviz ``markers``), its counters, and the publishing of its frames' results.

The single ``image_topic`` setup is one camera named "" whose outputs keep the node's own topic names
(``instances``, ``label_image``, ...); with ``image_topics`` each camera's outputs go under
``<node namespace>/<camera name>/``. Tracks are per camera: the predictor's stream of the camera's name.
"""
from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
from rclpy.lifecycle import LifecycleNode
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_policy_name_from_kind
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from sgnet_model.instances import FrameResult
from sgnet_model.predictor import PredictorError, check_frame
from sgnet_ros.batching import CameraSlots, PendingFrame
from sgnet_ros.compat import QoSMessageLostInfo, QoSRequestedIncompatibleQoSInfo
from sgnet_ros.depth_input import DepthInput
from sgnet_ros.diagnostics import NodeStatistics
from sgnet_ros.images import ImageError, compressed_to_rgb, image_to_rgb, labels_to_image, rgb_to_image
from sgnet_ros.inputs import CameraSubscription, sibling_camera_info
from sgnet_ros.markers import TOPIC as MARKERS_TOPIC
from sgnet_ros.markers import InstanceMarkers, MarkerArray
from sgnet_ros.masks import class_image, label_image
from sgnet_ros.msg import InstanceArray
from sgnet_ros.outputs import Detection2DArray, camera_info_msg, detection_array_msg, instance_array_msg
from sgnet_ros.overlay import render_overlay
from sgnet_ros.params import CameraSpec, NodeSettings
from sgnet_ros.recording import UncertainMomentRecorder

IMAGE_OUTPUTS = ("label_image", "class_image", "debug_image")


def header_seconds(header: Header) -> float:
    return header.stamp.sec + header.stamp.nanosec * 1e-9


class Camera:
    """A camera of the node, from configure (publishers) and activate (subscriptions) to cleanup."""

    def __init__(self, node: LifecycleNode, spec: CameraSpec, index: int, settings: NodeSettings,
                 log_limited: Callable[..., None]) -> None:
        """``log_limited(key, text, error=False)``: the node's rate-limited log (one line per kind of problem)."""
        self.node, self.spec, self.index, self.settings = node, spec, index, settings
        self.log_limited = log_limited
        self.statistics = NodeStatistics()
        self.inputs: list[CameraSubscription] = []
        self.depth: DepthInput | None = None
        self.camera_info: CameraInfo | None = None
        self._camera_info_subscription = None
        self._last_received_stamp: float | None = None
        self._previous_stamp: float | None = None
        self._zero_stamp_warned = False
        self.markers = InstanceMarkers()  # the 3D markers' builder: remembers which tracks to delete
        self.recorder: UncertainMomentRecorder | None = None  # from activate
        self.outputs = self._create_publishers()

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def label(self) -> str:
        """How logs and diagnostics name the camera."""
        return f"camera {self.name}" if self.name else "camera"

    def _create_publishers(self) -> dict[str, Any]:
        node, config, output = self.node, self.settings.node, self.spec.output
        depth = config.output_qos_depth
        outputs = {"instances": node.create_lifecycle_publisher(InstanceArray, output("instances"), depth),
                   "camera_info": node.create_lifecycle_publisher(CameraInfo, output("camera_info"), depth)}
        if Detection2DArray is not None:
            outputs["detections"] = node.create_lifecycle_publisher(Detection2DArray, output("detections"), depth)
        for name in IMAGE_OUTPUTS:
            if getattr(config, name):
                outputs[name] = node.create_lifecycle_publisher(Image, output(name), depth)
        if self.spec.depth_image_topic:  # rviz markers of the instances located in 3D
            outputs[MARKERS_TOPIC] = node.create_lifecycle_publisher(MarkerArray, output(MARKERS_TOPIC), depth)
        return outputs

    def destroy_publishers(self) -> None:
        for publisher in self.outputs.values():
            self.node.destroy_lifecycle_publisher(publisher)
        self.outputs = {}

    # Activation -------------------------------------------------------------------------------------------------

    def activate(self, slots: CameraSlots, recorder: UncertainMomentRecorder | None) -> None:
        """Subscribe to the camera's image topic(s), its camera_info and its depth input; ``recorder``: where the
        served frames are offered (recording.folder set), or None."""
        node, config = self.node, self.settings.node
        self.recorder = recorder
        self._last_received_stamp = self._previous_stamp = None
        self._zero_stamp_warned = False
        self.depth = DepthInput.create(node, self.settings, self.spec)
        for message_type, topic, decode in ((Image, self.spec.image_topic, image_to_rgb),
                                            (CompressedImage, self.spec.compressed_image_topic, compressed_to_rgb)):
            if topic:
                resolved = node.resolve_topic_name(topic)
                self.inputs.append(CameraSubscription(
                    node, message_type, topic,
                    lambda msg, decode=decode, resolved=resolved: self._receive(slots, msg, decode, resolved),
                    config.qos_depth, config.qos_reliability, self._on_incompatible_qos, self._on_message_lost))
        camera_info = sibling_camera_info(self.inputs[0].topic)
        republished = node.resolve_topic_name(self.spec.output("camera_info"))
        if camera_info == republished:
            node.get_logger().warning(
                f"the camera's {camera_info} is also this node's output topic: camera_info is not republished; "
                f"run the node in its own namespace (the launch file's default) or remap camera_info")
            return
        sensor_data = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)  # hears any publisher
        self._camera_info_subscription = node.create_subscription(CameraInfo, camera_info, self._receive_camera_info,
                                                                  sensor_data)

    def _on_incompatible_qos(self, topic: str, event: QoSRequestedIncompatibleQoSInfo) -> None:
        policy = qos_policy_name_from_kind(event.last_policy_kind)
        self.node.get_logger().warning(
            f"a publisher on '{topic}' offers QoS incompatible with this node's subscription (policy {policy}): "
            f"no images arrive from it. The node subscribes with qos_reliability "
            f"{self.settings.node.qos_reliability}; auto matches the publishers")

    def _on_message_lost(self, topic: str, event: QoSMessageLostInfo) -> None:
        self.statistics.count_lost(event.total_count_change)
        self.log_limited("message lost", (
            f"{event.total_count} image(s) on '{topic}' lost in transport so far: the middleware could not deliver "
            f"them whole. On Fast DDS, images over its default 512 KB shared-memory segment are lost unless both "
            f"the camera's process and this node use config/fastdds_large_images.xml (the launch file sets it for "
            f"the node; see docs/ros.md); with a reliable camera, qos_reliability auto or reliable also helps"))

    def refresh_inputs(self) -> None:
        for subscription in self.inputs:
            if subscription.refresh():
                self.node.get_logger().info(f"subscription to {subscription.topic} is now "
                                            f"{subscription.reliability.name.lower()}, matching its publishers")

    def deactivate(self) -> None:
        """Undo activate (the inference thread has stopped or is stopping)."""
        for subscription in self.inputs:
            subscription.destroy()
        self.inputs = []
        if self._camera_info_subscription is not None:
            self.node.destroy_subscription(self._camera_info_subscription)
            self._camera_info_subscription = None

    def destroy_depth(self) -> None:
        if self.depth is not None:
            self.depth.destroy()
            self.depth = None

    def _receive(self, slots: CameraSlots, msg: Image | CompressedImage, decode: Callable[[Any, int], np.ndarray],
                 topic: str) -> None:
        """Decode the image here, in the subscription callback (not in the inference thread, which serves every
        camera), and put it in the camera's slot; an image that cannot be decoded is this camera's rejected
        frame."""
        stamp = header_seconds(msg.header)
        received_before, self._last_received_stamp = self._last_received_stamp, stamp
        received = time.monotonic()
        try:
            rgb = decode(msg, self.settings.node.max_image_pixels)
            check_frame(rgb)
        except (ImageError, PredictorError) as error:
            self.statistics.count_received(replaced_pending=False)
            self.statistics.count_rejected()
            self.log_limited(str(error), f"skipped a frame of {self.label}: {error}")
            return
        self.statistics.count_received(slots.put(PendingFrame(self.index, msg.header, rgb, received,
                                                              received_before, topic, msg)))

    def _receive_camera_info(self, msg: CameraInfo) -> None:
        self.camera_info = msg

    # Frames (the inference thread) --------------------------------------------------------------------------------

    def stamp(self, header: Header) -> float:
        """The frame's stamp in seconds; warns once about zero stamps."""
        stamp = header_seconds(header)
        if stamp == 0 and not self._zero_stamp_warned:
            self._zero_stamp_warned = True
            self.node.get_logger().warning(
                f"input images of {self.label} have a zero header stamp: passed through unchanged to the outputs; "
                f"fix the camera driver's stamps (tracks cannot notice a gap)")
        return stamp

    def note_reset(self, result: FrameResult, stamp: float, received_before: float | None) -> None:
        previous, self._previous_stamp = self._previous_stamp, stamp
        if result.tracks_reset and previous is not None:
            before = previous if received_before is None else received_before
            reason = ("the stamp went back" if stamp < max(previous, before)
                      else f"a gap of {stamp - before:.3f} s in the stream > predictor.max_gap_s")
            where = f" of {self.label}" if self.name else ""
            self.node.get_logger().info(f"tracks{where} reset: {reason} (from {previous:.3f} to {stamp:.3f})")

    def publish(self, frame: PendingFrame, result: FrameResult, class_count: int) -> None:
        """The frame's outputs, each with the input image's header; images only for their subscribers."""
        header, rgb = frame.header, frame.rgb
        publishers, config = self.outputs, self.settings.node
        spatial = self.depth.process(header, result, rgb.shape[:2]) if self.depth is not None else None
        publishers["instances"].publish(instance_array_msg(result, header, spatial))
        if "detections" in publishers:
            publishers["detections"].publish(detection_array_msg(result, header, config.detection_class_id))
        camera_info = self.camera_info
        if camera_info is not None:
            publishers["camera_info"].publish(camera_info_msg(camera_info, header))
        height, width = rgb.shape[:2]
        if self._subscribed("label_image"):
            publishers["label_image"].publish(labels_to_image(label_image(result.instances, height, width), header))
        if self._subscribed("class_image"):
            publishers["class_image"].publish(labels_to_image(class_image(result.instances, height, width,
                                                                          class_count), header))
        if self._subscribed("debug_image"):
            publishers["debug_image"].publish(rgb_to_image(render_overlay(rgb, result.instances), header))
        if spatial is not None and self._subscribed(MARKERS_TOPIC):
            publishers[MARKERS_TOPIC].publish(self.markers.build(result, header, spatial))
        if self.recorder is not None:  # after the outputs: recording never delays them
            stamp_ns = header.stamp.sec * 1_000_000_000 + header.stamp.nanosec or time.time_ns()
            self.recorder.offer(self.name, frame.topic, frame.message, stamp_ns, result.uncertainty.events)

    def _subscribed(self, name: str) -> bool:
        publisher = self.outputs.get(name)
        return publisher is not None and publisher.get_subscription_count() > 0
