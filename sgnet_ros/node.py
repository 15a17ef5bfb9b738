"""The SG-Net ROS 2 node: camera images in, tracked instance masks out.

A managed (lifecycle) node. configure validates the parameters and loads the model; activate subscribes and
starts the inference thread; deactivate stops both; cleanup frees the model. With ``autostart`` (the default)
it configures and activates itself at start. /diagnostics is published from start, so a node that failed to
configure says why there too.

Stopping: SIGINT (Ctrl-C, to the node or to the whole process group as a terminal sends it, possibly twice
when `ros2 launch` forwards it), SIGTERM, and the lifecycle shutdown transition all end the process with exit
status 0 from any state. The node owns these signals (rclpy's handlers are not installed): a handler only
sets a flag, the main loop spins in short steps and sees it, then stops serving, frees the model, shuts
rclpy down and ends the process at once (os._exit: no interpreter finalisation, which takes seconds with
torch loaded and would leave a late signal to kill it). Run as a program (``python -m sgnet_ros.node``, and
the colcon launchers, which run it that way) the node owns the signals from its first line: a stop during the
seconds of importing torch, before anything runs, ends the process at once with status 0.

Latency stays flat under load because there is no queue: the subscription callbacks only put the newest frame
of each camera into its one-frame slot, replacing (and counting as dropped) a frame the inference thread has not
started yet. The inference thread takes the newest frame of every waiting camera when it is free and runs them
through the one model as one batch (sgnet_ros/batching.py), so a frame waits at most one batch.

Several cameras (``image_topics``): one model in memory, one tracker per camera, each camera's outputs under
``<node namespace>/<camera name>/`` (sgnet_ros/cameras.py); the single ``image_topic`` setup keeps the node's own
topic names.

Run: ``sgnet-node --ros-args -p checkpoint:=model.pt -r image:=/camera/image_raw`` (pip install), or
``ros2 launch sgnet_ros sgnet.launch.py`` (colcon install). Parameters: config/sgnet.yaml and sgnet_ros/params.py.
"""
from __future__ import annotations

import os
import signal
import threading

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
stop_requested = threading.Event()  # set by a stop signal once the node program owns them (see the docstring)


def _request_stop(signum: int, frame: object) -> None:
    stop_requested.set()


if __name__ == "__main__":  # run as a program: a stop while the imports below take seconds ends it at once
    for _signum in STOP_SIGNALS:
        signal.signal(_signum, lambda signum, frame: os._exit(0))  # nothing is running yet that needs stopping
    from sgnet_ros.startup_trace import startup_trace  # light: os and sys
    startup_trace("stop signals handled")

import dataclasses
import gc
import re
import sys
import time
from typing import Any

import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.exceptions import (InvalidParameterTypeException, InvalidParameterValueException,
                              ParameterUninitializedException)
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.impl.implementation_singleton import rclpy_implementation
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions

from sgnet_model.checkpoint import CheckpointError
from sgnet_model.config import ConfigError, TrackerConfig
from sgnet_model.predictor import PredictorError, StreamFrame, StreamingPredictor
from sgnet_ros.batching import CameraSlots, PendingFrame
from sgnet_ros.cameras import Camera
from sgnet_ros.diagnostics import (BatchStatistics, batch_values, diagnostic_status, model_status, recording_status,
                                   unconfigured_status)
from sgnet_ros.outputs import LabelInfo, label_info_msg
from sgnet_ros.params import (LIVE, NodeSettings, ParameterError, applies_when, build_parser, camera_specs,
                              checkpoint_parameter_types, live_settings, parameter_defaults, parameter_descriptor,
                              parameter_names, settings_from)
from sgnet_ros.predictor_loading import load_predictor
from sgnet_ros.recording import UncertainMomentRecorder

NODE_NAME = "sgnet"
STOP_POLL_S = 0.1  # the main loop's spin step: how soon it notices a stop signal


class SGNetNode(LifecycleNode):
    """The SG-Net lifecycle node; the module docstring gives its states, threads and stop signals, and ``main`` runs
    it as ``sgnet-node`` does. In a process of your own::

        rclpy.init()
        node = SGNetNode(parameter_overrides=[rclpy.Parameter("checkpoint", value="model.pt")])
        node.trigger_configure()
        node.trigger_activate()
        rclpy.spin(node)  # then node.stop() and rclpy.shutdown()
    """

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        # checkpoint parameters (model.*, tracker.*) that the node itself set to the checkpoint's values: they still
        # count as not given, so that another checkpoint configured later brings its own values
        self._from_checkpoint: set[str] = set()
        self._filling = False
        self._declare_parameters()
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._settings: NodeSettings | None = None
        self._predictor: StreamingPredictor | None = None
        self._device = "none"
        self._configure_error = ""
        self._cameras: list[Camera] = []  # from configure to cleanup
        self._label_info = None  # the label_info publisher, with vision_msgs
        self._refresh_timer = None
        self._slots = CameraSlots(1, 1)
        self._worker: threading.Thread | None = None
        self._recorder: UncertainMomentRecorder | None = None  # while active with recording.folder set
        self._batches = BatchStatistics()
        self._warming: set[tuple[int, int]] = set()  # frame sizes being prepared in the background
        self._warming_lock = threading.Lock()
        self._last_logged: dict[str, float] = {}
        self._active = False
        self.finalized = threading.Event()  # set by the shutdown transition: main() then ends the process
        self._diagnostics_publisher = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diagnostics_timer = self.create_timer(self._diagnostics_period(), self._publish_diagnostics)

    def _declare_parameters(self) -> None:
        """Each parameter with its type, range and description. A start value of the wrong type or out of range
        is declared without them, so that configure refuses it with the parameter's name (instead of the node
        dying at start with rclpy's exception)."""
        for name, default in parameter_defaults().items():
            # an empty list would be taken for a byte array: a string array without a value ([] in a params file
            # is "not set" too); _given() reads it as its default
            typed_default = rclpy.Parameter.Type.STRING_ARRAY if default == [] else default
            try:
                self.declare_parameter(name, typed_default, parameter_descriptor(name))
            except (InvalidParameterTypeException, InvalidParameterValueException):
                self.declare_parameter(name, default, parameter_descriptor(name, typed=False))
        # no default: unless given, configure sets them to the checkpoint's values (sgnet_ros/params.py)
        for name, kind in checkpoint_parameter_types().items():
            try:
                self.declare_parameter(name, {float: rclpy.Parameter.Type.DOUBLE, int: rclpy.Parameter.Type.INTEGER,
                                              bool: rclpy.Parameter.Type.BOOL}[kind], parameter_descriptor(name))
            except (InvalidParameterTypeException, InvalidParameterValueException):
                self.declare_parameter(name, None, parameter_descriptor(name, typed=False))

    def _given(self, name: str) -> Any:
        """A parameter's value, or None for a checkpoint parameter that was not given (a list parameter not given:
        its default)."""
        if name in self._from_checkpoint:
            return None
        try:
            return self.get_parameter(name).value
        except ParameterUninitializedException:
            return parameter_defaults().get(name)

    def _diagnostics_period(self) -> float:
        """diagnostics_period_s (read at start); its default when the value given is unusable, which configure
        then refuses naming the parameter."""
        value = self.get_parameter("diagnostics_period_s").value
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return float(value)
        return parameter_defaults()["diagnostics_period_s"]

    # Lifecycle transitions -----------------------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            settings = settings_from(self._given)
            predictor = load_predictor(settings, self.get_logger())
            thresholds, tracker = live_settings(settings, predictor.model_config,
                                                predictor.tracker_profiles[settings.node.tracker_profile])
        except (ParameterError, ConfigError, CheckpointError, PredictorError) as error:
            return self._configure_failed(str(error))
        except Exception as error:  # rclpy would turn it into an ERROR transition without a word
            return self._configure_failed(f"{type(error).__name__}: {error}")
        predictor.update_thresholds(**thresholds)
        try:
            predictor.prepare(settings.node.frame_size_list)  # a backend other than torch, CUDA graphs: built now
        except PredictorError as error:
            return self._configure_failed(str(error))
        predictor.tracker_config = tracker
        if settings.tracker:
            predictor.tracker_profile = "custom"
        self._fill_from_checkpoint(settings, thresholds, tracker)
        self._settings, self._predictor, self._configure_error = settings, predictor, ""
        self._device = str(predictor.device)
        self._create_publishers(settings)
        self._batches.reset()
        source = "random weights (smoke test)" if settings.node.smoke_test else settings.node.checkpoint
        cameras = f", cameras {', '.join(c.name for c in self._cameras)}" if len(self._cameras) > 1 else ""
        self.get_logger().info(f"configured: {predictor.model_config.backbone} from {source} on {self._device} "
                               f"({predictor.backend_description}; {predictor.runtime_choice}), "
                               f"{len(predictor.class_names)} classes, tracker profile {predictor.tracker_profile}"
                               f"{cameras}")
        return super().on_configure(state)

    def _fill_from_checkpoint(self, settings: NodeSettings, thresholds: dict[str, Any], tracker: TrackerConfig) -> None:
        """Set the checkpoint parameters that were not given to the values the node runs, so that ``ros2 param
        get`` shows them."""
        values = {f"model.{field}": value for field, value in thresholds.items() if field not in settings.thresholds}
        values.update({f"tracker.{f.name}": getattr(tracker, f.name) for f in dataclasses.fields(TrackerConfig)
                       if f.name not in settings.tracker})
        self._filling = True
        try:
            self.set_parameters([rclpy.Parameter(name, value=value) for name, value in values.items()])
        finally:
            self._filling = False
        self._from_checkpoint = set(values)

    def _configure_failed(self, reason: str) -> TransitionCallbackReturn:
        self._configure_error = reason
        self.get_logger().error(f"configure failed: {reason}")
        self._publish_diagnostics()
        return TransitionCallbackReturn.FAILURE

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = super().on_activate(state)  # enables the lifecycle publishers
        if self._label_info is not None:
            self._label_info.publish(label_info_msg(self._predictor.class_names,
                                                    self._predictor.model_config.score_threshold))
        self._slots = CameraSlots(len(self._cameras), self._settings.node.max_batch_size)
        recording = self._settings.recording
        self._recorder = UncertainMomentRecorder(recording) if recording.folder else None
        self._worker = threading.Thread(target=self._run_inference, name="sgnet-inference", daemon=True)
        self._worker.start()
        for camera in self._cameras:
            camera.activate(self._slots, self._recorder)
        self._refresh_timer = self.create_timer(1.0, self._refresh_inputs)
        self._active = True
        inputs = ", ".join(f"{i.topic} ({i.reliability.name.lower()})" for c in self._cameras for i in c.inputs)
        self.get_logger().info(f"active: listening on {inputs}")
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_serving()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.stop()
        self.finalized.set()
        return super().on_shutdown(state)

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.stop()
        return TransitionCallbackReturn.SUCCESS  # back to unconfigured

    def stop(self) -> None:
        """Stop serving and free the model, from any state (shutdown, errors, the end of main)."""
        self._stop_serving()
        self._release()

    def _create_publishers(self, settings: NodeSettings) -> None:
        """Each camera's output publishers, and label_info (the class names, one for all cameras)."""
        self._cameras = [Camera(self, spec, index, settings, self._log_limited)
                         for index, spec in enumerate(camera_specs(settings.node))]
        if LabelInfo is not None:  # the class names, for late joiners too (transient local, as vision_msgs asks)
            latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                 durability=DurabilityPolicy.TRANSIENT_LOCAL)
            self._label_info = self.create_lifecycle_publisher(LabelInfo, "label_info", latched)

    def _refresh_inputs(self) -> None:
        for camera in self._cameras:
            camera.refresh_inputs()

    def _stop_serving(self) -> None:
        self._active = False
        for camera in self._cameras:
            camera.deactivate()
        if self._refresh_timer is not None:
            self.destroy_timer(self._refresh_timer)
            self._refresh_timer = None
        self._slots.close()
        if self._worker is not None:
            self._worker.join()
            self._worker = None
        if self._recorder is not None:  # after the inference thread: what it offered is written, the bag closed
            self._recorder.close()
            self._recorder = None
        for camera in self._cameras:
            camera.destroy_depth()

    def _release(self) -> None:
        """Destroy the publishers and free the model's memory (CPU and GPU)."""
        for camera in self._cameras:
            camera.destroy_publishers()
        self._cameras = []
        if self._label_info is not None:
            self.destroy_lifecycle_publisher(self._label_info)
            self._label_info = None
        uses_cuda = self._predictor is not None and self._predictor.device.type == "cuda"
        self._predictor = self._settings = None
        self._device = "none"
        gc.collect()
        if uses_cuda:
            torch.cuda.empty_cache()

    # Frames ---------------------------------------------------------------------------------------------------

    def _run_inference(self) -> None:
        while (frames := self._slots.take()) is not None:
            try:
                self._process(frames)
            except Exception as error:  # the node keeps serving; the error is logged with its type
                for frame in frames:
                    self._cameras[frame.camera].statistics.count_rejected()
                self._log_limited(type(error).__name__, f"inference failed on a batch of {len(frames)} frame(s), "
                                                        f"skipped: {type(error).__name__}: {error}", error=True)

    def _process(self, frames: list[PendingFrame]) -> None:
        """The newest decoded frame of each waiting camera: one batch per frame size, the smallest frames first,
        each batch published as soon as it is done (a large camera does not hold back the small ones)."""
        groups: dict[tuple[int, int], list[PendingFrame]] = {}
        for frame in frames:
            if self._prepared(frame):
                groups.setdefault(frame.rgb.shape[:2], []).append(frame)
        for size in sorted(groups, key=lambda size: size[0] * size[1]):
            self._process_batch(groups[size])

    def _process_batch(self, frames: list[PendingFrame]) -> None:
        """Frames of one size through the model together, each camera's results published under its own topics.
        A camera whose frame fails (in the model or in publishing) has that frame rejected; the others are served
        as if it had not been there."""
        started = time.perf_counter()
        now = self.get_clock().now().nanoseconds * 1e-9
        stamps = [self._cameras[frame.camera].stamp(frame.header) for frame in frames]
        # a gap in the stream is judged on the frames received: a model slower than max_gap_s keeps its tracks
        results = self._predictor.step_batch([StreamFrame(self._cameras[frame.camera].name, frame.rgb, stamp,
                                                          frame.received_before)
                                              for frame, stamp in zip(frames, stamps)])
        for frame, stamp, result in zip(frames, stamps, results):
            camera = self._cameras[frame.camera]
            try:
                if isinstance(result, Exception):
                    raise result
                camera.note_reset(result, stamp, frame.received_before)
                camera.publish(frame, result, len(self._predictor.class_names))
            except Exception as error:  # this camera's frame only; the node keeps serving
                camera.statistics.count_rejected()
                self._log_limited(f"{type(error).__name__} {camera.name}",
                                  f"a frame of {camera.label} failed, skipped: {type(error).__name__}: {error}",
                                  error=not isinstance(error, PredictorError))
                continue
            camera.statistics.count_processed((time.monotonic() - frame.received) * 1000.0, result.inference_ms,
                                              (now - stamp) * 1000.0 if stamp else float("nan"))
        self._batches.count_batch(len(frames), (time.perf_counter() - started) * 1000.0)

    def _prepared(self, frame: PendingFrame) -> bool:
        """Whether the model serves the frame's size now. A size it has not prepared (an export and a runtime
        session to build, for a backend other than torch) is prepared in a thread of its own, so that the other
        cameras are not held up; that camera's frames are dropped meanwhile."""
        size = frame.rgb.shape[:2]
        if self._predictor.prepared(size):
            return True
        camera = self._cameras[frame.camera]
        camera.statistics.count_dropped()
        with self._warming_lock:
            if size in self._warming:
                return False
            self._warming.add(size)
        self.get_logger().info(f"{camera.label} sends {size[1]}x{size[0]} frames: preparing the model for them "
                               f"(its frames are dropped until then; set frame_sizes to prepare at configure)")
        threading.Thread(target=self._prepare_size, args=(size,), name="sgnet-prepare", daemon=True).start()
        return False

    def _prepare_size(self, size: tuple[int, int]) -> None:
        predictor = self._predictor
        try:
            predictor.prepare([size])
            self.get_logger().info(f"ready for {size[1]}x{size[0]} frames")
        except Exception as error:  # each frame of that size is then rejected with this error
            self._log_limited(f"prepare {size}", f"cannot prepare for {size[1]}x{size[0]} frames: "
                                                 f"{type(error).__name__}: {error}", error=True)
        finally:
            with self._warming_lock:
                self._warming.discard(size)

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

    def _on_set_parameters(self, parameters: list[rclpy.Parameter]) -> SetParametersResult:
        """Refuse invalid values at once, and configure-time ones while configured; thresholds and tracker
        settings apply to the running model."""
        if self._filling:  # the node itself, setting the checkpoint's values at configure
            return SetParametersResult(successful=True)
        changed = {parameter.name: parameter.value for parameter in parameters}
        names = parameter_names()  # not rclpy's own, such as use_sim_time
        if self._predictor is not None:
            fixed = [name for name in changed if name in names and applies_when(name) == "configure"]
            if fixed:
                return SetParametersResult(successful=False, reason=(
                    f"parameter {fixed[0]} applies at configure and the node is configured: deactivate and clean "
                    f"it up (ros2 lifecycle set {self.get_fully_qualified_name()} cleanup), set it, then configure "
                    f"again; only {', '.join(sorted(LIVE))} change while it runs"))
        given = {name: value for name, value in changed.items() if name in names}
        try:
            settings = settings_from(lambda name: given[name] if name in given else self._given(name))
            if self._predictor is not None:
                thresholds, tracker = live_settings(settings, self._predictor.model_config,
                                                    self._predictor.tracker_config)
        except ParameterError as error:
            return SetParametersResult(successful=False, reason=str(error))
        if self._predictor is not None:
            self._predictor.update_thresholds(**thresholds)
            self._predictor.tracker_config = tracker
            if settings.tracker:
                self._predictor.tracker_profile = "custom"
        self._from_checkpoint -= set(given)
        return SetParametersResult(successful=True)

    def _runtime(self) -> str:
        predictor = self._predictor
        return predictor.backend_description if predictor is not None else "none"

    def _publish_diagnostics(self) -> None:
        name = f"{self.get_fully_qualified_name()}: SG-Net inference"
        cameras = self._cameras
        if self._settings is None:
            statuses = [unconfigured_status(name, self._configure_error)]
        elif len(cameras) == 1:  # the single-camera node: one status, the camera's figures and the model's
            camera = cameras[0]
            statuses = [diagnostic_status(camera.statistics.report(), name, self._device, self._active,
                                          [i.topic for i in camera.inputs] or list(camera.spec.input_topics),
                                          {"runtime": self._runtime(), **batch_values(self._batches.report())})]
        else:  # the model's status, then one per camera
            statuses = [model_status(self._batches.report(), name, self._device, self._active,
                                     [camera.name for camera in cameras], self._runtime())]
            statuses += [diagnostic_status(camera.statistics.report(),
                                           f"{self.get_fully_qualified_name()}: camera {camera.name}", self._device,
                                           self._active, [i.topic for i in camera.inputs]
                                           or list(camera.spec.input_topics))
                         for camera in cameras]
        if self._recorder is not None:
            statuses.append(recording_status(f"{self.get_fully_qualified_name()}: recording", self._recorder))
        message = DiagnosticArray(status=statuses)
        message.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics_publisher.publish(message)


def main(args: list[str] | None = None) -> int:
    """The node's program: ends the process (exit status 0 after a clean stop, 2 for malformed arguments)."""
    from sgnet_ros.startup_trace import startup_trace

    startup_trace("imports done")
    argv = sys.argv if args is None else [sys.argv[0], *args]
    try:
        plain_arguments = rclpy.utilities.remove_ros_args(argv)[1:]
    except rclpy_implementation.RCLInvalidROSArgsError as error:  # malformed --ros-args
        print(f"sgnet-node: error: {error}".split(", at /")[0], file=sys.stderr)
        return 2
    build_parser().parse_args(plain_arguments)
    for signum in STOP_SIGNALS:
        signal.signal(signum, _request_stop)
    rclpy.init(args=argv, signal_handler_options=SignalHandlerOptions.NO)
    node = SGNetNode()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        if (not stop_requested.is_set() and node.get_parameter("autostart").value
                and node.trigger_configure() == TransitionCallbackReturn.SUCCESS and not stop_requested.is_set()):
            node.trigger_activate()
        # Short steps: a signal's handler runs between them, at most STOP_POLL_S after it arrived.
        while not stop_requested.is_set() and not node.finalized.is_set():
            executor.spin_once(timeout_sec=STOP_POLL_S)
    except ExternalShutdownException:
        pass
    finally:
        node.stop()
        executor.shutdown(timeout_sec=0)
        node.destroy_node()
        rclpy.try_shutdown()  # also flushes and closes the ROS log files
    # Everything is stopped and flushed. Python's own finalisation of torch and the DDS libraries would take
    # seconds on a busy machine, with Python's default signal handling back for a late signal to kill it.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
