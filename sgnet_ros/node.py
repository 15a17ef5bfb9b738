"""The SG-Net ROS 2 node: camera images in, tracked instance masks out.

A managed (lifecycle) node. configure validates the parameters and loads the model; activate subscribes and
starts the inference thread; deactivate stops both; cleanup frees the model. With ``autostart`` (the default)
it configures and activates itself at start.

Latency stays flat under load because there is no queue: the subscription callbacks only put the newest frame
into a one-frame slot, replacing (and counting as dropped) a frame the inference thread has not started yet.
The inference thread takes the newest frame when it is free, so a frame waits at most one inference and the
latency stays below two model times whatever the camera rate.

Run: ``sgnet-node --ros-args -p checkpoint:=model.pt -r image:=/camera/image_raw`` (pip install), or
``ros2 launch sgnet_ros sgnet.launch.py`` (colcon install). Parameters: config/sgnet.yaml and sgnet_ros/params.py.
"""
from __future__ import annotations

import argparse
import dataclasses
import gc
import re
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.event_handler import QoSMessageLostInfo, QoSRequestedIncompatibleQoSInfo, SubscriptionEventCallbacks
from rclpy.impl.implementation_singleton import rclpy_implementation
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,
                       qos_policy_name_from_kind)
from sensor_msgs.msg import CompressedImage, Image

from sgnet_model.checkpoint import CheckpointError
from sgnet_model.config import ConfigError, SGNetConfig, named_config
from sgnet_model.instances import FrameResult
from sgnet_model.predictor import PredictorError, StreamingPredictor
from sgnet_ros.depth_input import DepthInput
from sgnet_ros.diagnostics import NodeStatistics, diagnostic_status
from sgnet_ros.images import ImageError, compressed_to_rgb, image_to_rgb, mono16_to_image, rgb_to_image
from sgnet_ros.masks import label_image
from sgnet_ros.msg import InstanceArray
from sgnet_ros.outputs import detection_array_msg, instance_array_msg, vision_msgs_available
from sgnet_ros.overlay import render_overlay
from sgnet_ros.params import DESCRIPTIONS, NodeSettings, ParameterError, parameter_defaults, settings_from

if vision_msgs_available():
    from vision_msgs.msg import Detection2DArray

NODE_NAME = "sgnet"


@dataclasses.dataclass
class PendingFrame:
    """A received image message waiting for the inference thread."""

    msg: Image | CompressedImage
    decode: Callable[[Any, int], np.ndarray]  # image_to_rgb or compressed_to_rgb
    received: float  # time.monotonic() at arrival


class LatestFrameSlot:
    """Holds at most one frame: put() replaces the waiting one, take() blocks until there is one or close()."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._frame: PendingFrame | None = None
        self._closed = False

    def open(self) -> None:
        with self._condition:
            self._frame, self._closed = None, False

    def put(self, frame: PendingFrame) -> bool:
        """Store the frame; True when it replaced one that was never processed."""
        with self._condition:
            replaced = self._frame is not None
            self._frame = frame
            self._condition.notify()
        return replaced

    def take(self) -> PendingFrame | None:
        """The newest frame (emptying the slot), or None once closed."""
        with self._condition:
            self._condition.wait_for(lambda: self._frame is not None or self._closed)
            if self._closed:
                return None
            frame, self._frame = self._frame, None
            return frame

    def close(self) -> None:
        with self._condition:
            self._closed = True
            self._condition.notify_all()


class SGNetNode(LifecycleNode):
    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        for name, default in parameter_defaults().items():
            # dynamic_typing: a value of the wrong type reaches configure, which names the parameter, instead
            # of stopping the node at start with rclpy's type error.
            self.declare_parameter(name, default, ParameterDescriptor(description=DESCRIPTIONS[name],
                                                                      dynamic_typing=True))
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._settings: NodeSettings | None = None
        self._predictor: StreamingPredictor | None = None
        self._device = "none"
        self._outputs: dict[str, Any] = {}
        self._subscriptions_in: list[Any] = []
        self._diagnostics_publisher = None
        self._diagnostics_timer = None
        self._slot = LatestFrameSlot()
        self._worker: threading.Thread | None = None
        self._depth: DepthInput | None = None  # the optional depth input (3D), while active
        self._statistics = NodeStatistics()
        self._last_logged: dict[str, float] = {}
        self._zero_stamp_warned = False
        self._previous_stamp: float | None = None
        self._active = False

    # Lifecycle transitions -----------------------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            settings = settings_from(lambda name: self.get_parameter(name).value)
            predictor = self._load_predictor(settings)
        except (ParameterError, ConfigError, CheckpointError, PredictorError) as error:
            self.get_logger().error(f"configure failed: {error}")
            return TransitionCallbackReturn.FAILURE
        except Exception as error:  # rclpy would turn it into an ERROR transition without a word
            self.get_logger().error(f"configure failed: {type(error).__name__}: {error}")
            return TransitionCallbackReturn.FAILURE
        self._settings, self._predictor = settings, predictor
        self._device = str(predictor.device)
        self._create_publishers(settings)
        self._statistics.reset()
        self._zero_stamp_warned, self._previous_stamp = False, None
        source = "random weights (smoke test)" if settings.node.smoke_test else settings.node.checkpoint
        self.get_logger().info(f"configured: {predictor.model_config.backbone} from {source} on {self._device}, "
                               f"{len(predictor.class_names)} classes")
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = super().on_activate(state)  # enables the lifecycle publishers
        self._depth = DepthInput.create(self, self._settings)
        self._slot.open()
        self._worker = threading.Thread(target=self._run_inference, name="sgnet-inference", daemon=True)
        self._worker.start()
        self._subscribe(self._settings)
        self._active = True
        self.get_logger().info(f"active: listening on {', '.join(self._input_topics())}")
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_serving()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.stop()
        return super().on_shutdown(state)

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.stop()
        return TransitionCallbackReturn.SUCCESS  # back to unconfigured

    def stop(self) -> None:
        """Stop serving and free the model, from any state (shutdown, errors, the end of main)."""
        self._stop_serving()
        self._release()

    def _load_predictor(self, settings: NodeSettings) -> StreamingPredictor:
        node, predictor_config = settings.node, settings.predictor
        if predictor_config.device.startswith("cuda") and not torch.cuda.is_available():
            if not node.allow_cpu_fallback:
                raise ParameterError(
                    f"parameter predictor.device: {predictor_config.device!r} asked for, but CUDA is not available "
                    f"(torch {torch.__version__}); set predictor.device to cpu, or allow_cpu_fallback to true")
            self.get_logger().warning(f"CUDA is not available: running on the CPU instead of "
                                      f"{predictor_config.device} (allow_cpu_fallback is true)")
            predictor_config = dataclasses.replace(predictor_config, device="cpu", fp16=False)
        if predictor_config.fp16 and not predictor_config.device.startswith("cuda"):
            raise ParameterError("parameter predictor.fp16: half precision runs on CUDA only; set it to false "
                                 "for predictor.device cpu")
        if node.smoke_test:
            try:
                model_config = named_config(node.model_config).model
            except ConfigError as error:
                raise ParameterError(f"parameter model_config: {error}") from None
            self.get_logger().warning("smoke_test is true: the network has random weights and its output means "
                                      "nothing; give a trained checkpoint for real use")
            predictor = StreamingPredictor.from_config(SGNetConfig(model=model_config, tracker=settings.tracker),
                                                       predictor_config)
        else:
            if not node.checkpoint:
                raise ParameterError("parameter checkpoint is empty: give the path of a checkpoint written by "
                                     "sgnet-train (the node does not run untrained weights unless smoke_test is true)")
            path = Path(node.checkpoint).expanduser()
            if not path.is_file():
                raise ParameterError(f"parameter checkpoint: {path} does not exist or is not a file")
            predictor = StreamingPredictor.from_checkpoint(path, predictor_config, settings.tracker)
        predictor.update_thresholds(**settings.thresholds)
        return predictor

    def _create_publishers(self, settings: NodeSettings) -> None:
        depth = settings.node.output_qos_depth
        self._outputs = {"instances": self.create_lifecycle_publisher(InstanceArray, "instances", depth)}
        if vision_msgs_available():
            self._outputs["detections"] = self.create_lifecycle_publisher(Detection2DArray, "detections", depth)
        if settings.node.label_image:
            self._outputs["label_image"] = self.create_lifecycle_publisher(Image, "label_image", depth)
        if settings.node.debug_image:
            self._outputs["debug_image"] = self.create_lifecycle_publisher(Image, "debug_image", depth)
        self._diagnostics_publisher = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diagnostics_timer = self.create_timer(settings.node.diagnostics_period_s, self._publish_diagnostics)

    def _subscribe(self, settings: NodeSettings) -> None:
        node = settings.node
        reliability = (ReliabilityPolicy.BEST_EFFORT if node.qos_reliability == "best_effort"
                       else ReliabilityPolicy.RELIABLE)
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=node.qos_depth, reliability=reliability,
                         durability=DurabilityPolicy.VOLATILE)
        inputs = ((Image, node.image_topic, image_to_rgb), (CompressedImage, node.compressed_image_topic,
                                                             compressed_to_rgb))
        for message_type, topic, decode in inputs:
            if not topic:
                continue
            events = SubscriptionEventCallbacks(
                incompatible_qos=lambda event, topic=topic: self._on_incompatible_qos(topic, event),
                message_lost=lambda event, topic=topic: self._on_message_lost(topic, event))
            self._subscriptions_in.append(self.create_subscription(
                message_type, topic, lambda msg, decode=decode: self._receive(msg, decode), qos,
                event_callbacks=events))

    def _stop_serving(self) -> None:
        self._active = False
        for subscription in self._subscriptions_in:
            self.destroy_subscription(subscription)
        self._subscriptions_in = []
        self._slot.close()
        if self._worker is not None:
            self._worker.join()
            self._worker = None
        if self._depth is not None:
            self._depth.destroy()
            self._depth = None

    def _release(self) -> None:
        """Destroy the publishers and free the model's memory (CPU and GPU)."""
        for publisher in self._outputs.values():
            self.destroy_lifecycle_publisher(publisher)
        self._outputs = {}
        if self._diagnostics_timer is not None:
            self.destroy_timer(self._diagnostics_timer)
            self.destroy_publisher(self._diagnostics_publisher)
            self._diagnostics_timer = self._diagnostics_publisher = None
        uses_cuda = self._predictor is not None and self._predictor.device.type == "cuda"
        self._predictor = self._settings = None
        self._device = "none"
        gc.collect()
        if uses_cuda:
            torch.cuda.empty_cache()

    # Frames ---------------------------------------------------------------------------------------------------

    def _receive(self, msg: Image | CompressedImage, decode: Callable[[Any, int], np.ndarray]) -> None:
        replaced = self._slot.put(PendingFrame(msg, decode, time.monotonic()))
        self._statistics.count_received(replaced)

    def _run_inference(self) -> None:
        while (frame := self._slot.take()) is not None:
            try:
                self._process(frame)
            except (ImageError, PredictorError) as error:
                self._statistics.count_rejected()
                self._log_limited(str(error), f"skipped a frame: {error}")
            except Exception as error:  # the node keeps serving; the error is logged with its type
                self._statistics.count_rejected()
                self._log_limited(type(error).__name__, f"inference failed on a frame and was skipped: "
                                                        f"{type(error).__name__}: {error}", error=True)

    def _process(self, frame: PendingFrame) -> None:
        rgb = frame.decode(frame.msg, self._settings.node.max_image_pixels)
        header = frame.msg.header
        stamp = header.stamp.sec + header.stamp.nanosec * 1e-9
        if stamp == 0 and not self._zero_stamp_warned:
            self._zero_stamp_warned = True
            self.get_logger().warning("input images have a zero header stamp: passed through unchanged to the "
                                      "outputs; fix the camera driver's stamps (tracks cannot notice a gap)")
        result = self._predictor.step(rgb, stamp)
        self._note_reset(result, stamp)
        self._publish(frame, rgb, result)
        self._statistics.count_processed((time.monotonic() - frame.received) * 1000.0, result.inference_ms)

    def _note_reset(self, result: FrameResult, stamp: float) -> None:
        previous, self._previous_stamp = self._previous_stamp, stamp
        if result.tracks_reset and previous is not None:
            reason = ("the stamp went back" if stamp < previous
                      else f"a gap of {stamp - previous:.3f} s > predictor.max_gap_s")
            self.get_logger().info(f"tracks reset: {reason} (from {previous:.3f} to {stamp:.3f})")

    def _publish(self, frame: PendingFrame, rgb: np.ndarray, result: FrameResult) -> None:
        header = frame.msg.header
        publishers = self._outputs
        spatial = self._depth.process(header, result, rgb.shape[:2]) if self._depth is not None else None
        publishers["instances"].publish(instance_array_msg(result, header, spatial))
        if "detections" in publishers:
            publishers["detections"].publish(detection_array_msg(result, header))
        label_publisher = publishers.get("label_image")
        if label_publisher is not None and label_publisher.get_subscription_count() > 0:
            labels = label_image(result.instances, rgb.shape[0], rgb.shape[1])
            label_publisher.publish(mono16_to_image(labels, header))
        debug_publisher = publishers.get("debug_image")
        if debug_publisher is not None and debug_publisher.get_subscription_count() > 0:
            debug_publisher.publish(rgb_to_image(render_overlay(rgb, result.instances), header))

    # Events, parameters, diagnostics ---------------------------------------------------------------------------

    def _log_limited(self, key: str, text: str, error: bool = False) -> None:
        """Log at most once per bad_input_log_period_s for each kind of problem (numbers do not count)."""
        kind = re.sub(r"\d+", "N", key)
        now = time.monotonic()
        period = self._settings.node.bad_input_log_period_s if self._settings else 0.0
        if now - self._last_logged.get(kind, -float("inf")) < period:
            return
        self._last_logged[kind] = now
        (self.get_logger().error if error else self.get_logger().warning)(text)

    def _on_incompatible_qos(self, topic: str, event: QoSRequestedIncompatibleQoSInfo) -> None:
        policy = qos_policy_name_from_kind(event.last_policy_kind)
        self.get_logger().warning(
            f"a publisher on '{topic}' offers QoS incompatible with this node's subscription (policy {policy}): "
            f"no images arrive from it. The node subscribes with qos_reliability "
            f"{self._settings.node.qos_reliability}; best_effort accepts every publisher")

    def _on_message_lost(self, topic: str, event: QoSMessageLostInfo) -> None:
        self._statistics.count_lost(event.total_count_change)
        self._log_limited("message lost", (
            f"{event.total_count} image(s) on '{topic}' lost in transport so far: a best-effort subscription drops "
            f"images the middleware cannot deliver whole (Fast DDS's default shared-memory segment is 512 KB, so a "
            f"640x360 rgb8 image never arrives). If the camera publishes reliable, set qos_reliability to reliable"))

    def _on_set_parameters(self, parameters: list[rclpy.Parameter]) -> SetParametersResult:
        """Refuse invalid values at once; new thresholds apply to the running model, the rest at configure."""
        changed = {parameter.name: parameter.value for parameter in parameters}
        try:
            settings = settings_from(lambda name: changed[name] if name in changed else self.get_parameter(name).value)
        except ParameterError as error:
            return SetParametersResult(successful=False, reason=str(error))
        if self._predictor is not None:
            self._predictor.update_thresholds(**settings.thresholds)
        return SetParametersResult(successful=True)

    def _input_topics(self) -> list[str]:
        return [subscription.topic_name for subscription in self._subscriptions_in] or [
            topic for topic in (self._settings.node.image_topic, self._settings.node.compressed_image_topic) if topic]

    def _publish_diagnostics(self) -> None:
        report = self._statistics.report()
        status = diagnostic_status(report, f"{self.get_fully_qualified_name()}: SG-Net inference", self._device,
                                   self._active, self._input_topics())
        message = DiagnosticArray(status=[status])
        message.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics_publisher.publish(message)


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    """--help for the node; everything ROS-specific goes after --ros-args."""
    parameters = "\n".join(f"  {name} (default {default!r}): {DESCRIPTIONS[name]}"
                           for name, default in parameter_defaults().items())
    parser = argparse.ArgumentParser(
        prog="sgnet-node", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="SG-Net video instance segmentation node (ROS 2 lifecycle node). Subscribes to 'image' "
                    "(sensor_msgs/Image) and publishes 'instances' (sgnet_ros/InstanceArray), 'label_image', "
                    "'debug_image', 'detections' (with vision_msgs) and /diagnostics.",
        epilog="Parameters (set with --ros-args -p NAME:=VALUE or --params-file config/sgnet.yaml):\n"
               f"{parameters}\n\nExample: sgnet-node --ros-args -p checkpoint:=model.pt -r image:=/camera/image_raw")
    return parser.parse_args(argv)


def main(args: list[str] | None = None) -> int:
    argv = sys.argv if args is None else [sys.argv[0], *args]
    try:
        plain_arguments = rclpy.utilities.remove_ros_args(argv)[1:]
    except rclpy_implementation.RCLInvalidROSArgsError as error:  # malformed --ros-args
        print(f"sgnet-node: error: {error}".split(", at /")[0], file=sys.stderr)
        return 2
    parse_arguments(plain_arguments)
    # rclpy's own SIGINT handler shuts the context down (spin then returns) and chains to the handler found at
    # init. Python's default one would also raise KeyboardInterrupt at a random later line, possibly in the middle
    # of the cleanup below; this no-op takes its place so that the node always stops in order.
    signal.signal(signal.SIGINT, lambda signum, frame: None)
    rclpy.init(args=argv)
    node = SGNetNode()
    try:
        if node.get_parameter("autostart").value and node.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            node.trigger_activate()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.stop()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
