"""The node's ROS parameters: their names, defaults, descriptions, ranges, when they apply, and validation.

Defaults come from the config dataclasses, never from literals here: NodeConfig below for the node's own
settings, and sgnet_model.config for the predictor (``predictor.*``). The inference thresholds (``model.*``) and
the tracker settings (``tracker.*``) have no defaults of their own: they default to the checkpoint's (its model
config, and its tracker profile named by ``tracker_profile``: "robot" on a robot, "evaluation" for video AP), and a
value given as a parameter overrides that one field. config/sgnet.yaml lists the node's defaults for users (a test
keeps them equal) and only names the checkpoint's.

When a parameter applies: the thresholds and the tracker settings (LIVE) change the running node at once;
READ_ONLY ones are read at start only; all others are read at configure, and the node refuses to change them
while it is configured (inactive or active), naming the way to apply them. RANGES go into the parameter
descriptors (what ``ros2 param describe`` and rqt show); every value inside a range passes validation.
"""
from __future__ import annotations

import argparse
import dataclasses
import re
import typing
from typing import Any, Callable, Mapping

import yaml
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

from sgnet_model.config import (BACKENDS, PRECISIONS, TRACKER_PROFILES, ConfigError, ModelConfig, PredictorConfig,
                                TrackerConfig, from_dict, to_dict)
from sgnet_ros.recording import RecordingConfig

RELIABILITIES = ("auto", "best_effort", "reliable")
DETECTION_CLASS_IDS = ("name", "index")


@dataclasses.dataclass(frozen=True)
class NodeConfig:
    """Settings of the ROS node itself."""

    checkpoint: str = ""  # a checkpoint written by sgnet-train; required unless smoke_test
    smoke_test: bool = False  # run random weights (plumbing tests only: the output means nothing)
    model_config: str = "resnet50"  # smoke test only: a config/model name or YAML path for the random network
    allow_cpu_fallback: bool = False  # device cuda without a GPU: run on the CPU instead of failing
    autostart: bool = True  # configure and activate at start (false: wait for a lifecycle manager)
    tracker_profile: str = "robot"  # the checkpoint's tracker profile: robot (few, confident tracks) or evaluation
    image_topic: str = "image"  # sensor_msgs/Image input; empty: none
    compressed_image_topic: str = ""  # sensor_msgs/CompressedImage input; empty: none
    qos_reliability: str = "auto"  # image subscriptions: auto (as the publishers offer), best_effort or reliable
    qos_depth: int = 1  # of the image subscriptions; the node only ever works on the newest frame
    output_qos_depth: int = 10  # of the output publishers (reliable)
    debug_image: bool = True  # offer debug_image (rendered only while someone subscribes)
    label_image: bool = True  # offer label_image (built only while someone subscribes)
    class_image: bool = True  # offer class_image (built only while someone subscribes)
    detection_class_id: str = "name"  # vision_msgs Detection2D class_id: the class name, or its index as text
    diagnostics_period_s: float = 1.0  # how often /diagnostics is published
    max_image_pixels: int = 4096 * 4096  # larger images are rejected
    bad_input_log_period_s: float = 5.0  # each kind of bad input is logged at most once per this period
    # Instances in 3D (docs/depth.md, sgnet_ros/depth_input.py): a depth image aligned to the colour image.
    depth_image_topic: str = ""  # sensor_msgs/Image 16UC1 (mm) or 32FC1 (m); empty: no depth, no cost
    depth_camera_info_topic: str = ""  # its sensor_msgs/CameraInfo; empty: camera_info beside depth_image_topic
    depth_pairing_tolerance_s: float = 0.02  # a depth image pairs with the colour frame nearest in stamp within this
    depth_pairing_wait_s: float = 0.1  # how long a colour frame's 3D waits for its depth image still on the way
    depth_mask_erosion_px: int = 2  # mask edge pixels (which often see the background) left out of the depth
    depth_min_valid_pixels: int = 20  # fewer valid depths under a mask: no 3D for that instance
    # Several cameras (docs/ros.md): given, they replace image_topic and compressed_image_topic; each camera has
    # its own tracks and its outputs under <node namespace>/<camera name>/.
    image_topics: tuple[str, ...] = ()  # sensor_msgs/Image inputs, one camera each
    compressed_image_topics: tuple[str, ...] = ()  # sensor_msgs/CompressedImage inputs, one camera each
    camera_names: tuple[str, ...] = ()  # one per topic (image_topics first); empty: each topic's first namespace
    depth_image_topics: tuple[str, ...] = ()  # one per camera, "" for a camera without depth; empty: no depth
    max_batch_size: int = 8  # at most this many cameras' frames go through the network together
    # frame sizes ("WIDTHxHEIGHT") the model is prepared for at configure, beside its own input size: a backend
    # other than torch exports and loads a graph per frame size; a size not listed is prepared on its first frame,
    # in the background (that camera's frames are dropped meanwhile, the other cameras go on)
    frame_sizes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        checks = (
            ("qos_reliability", self.qos_reliability in RELIABILITIES,
             f"must be one of {RELIABILITIES}, got {self.qos_reliability!r}"),
            ("tracker_profile", self.tracker_profile in TRACKER_PROFILES,
             f"must be one of {TRACKER_PROFILES}, got {self.tracker_profile!r}"),
            ("detection_class_id", self.detection_class_id in DETECTION_CLASS_IDS,
             f"must be one of {DETECTION_CLASS_IDS}, got {self.detection_class_id!r}"),
            ("qos_depth", self.qos_depth >= 1, f"must be at least 1, got {self.qos_depth}"),
            ("output_qos_depth", self.output_qos_depth >= 1, f"must be at least 1, got {self.output_qos_depth}"),
            ("diagnostics_period_s", self.diagnostics_period_s > 0, "must be positive"),
            ("max_image_pixels", self.max_image_pixels >= 1, f"must be at least 1, got {self.max_image_pixels}"),
            ("bad_input_log_period_s", self.bad_input_log_period_s >= 0, "must be 0 or more"),
            ("image_topic", bool(self.image_topic or self.compressed_image_topic or self.image_topics
                                 or self.compressed_image_topics),
             "is empty and so is compressed_image_topic: the node would have no input"),
            ("max_batch_size", self.max_batch_size >= 1, f"must be at least 1, got {self.max_batch_size}"),
            ("depth_pairing_tolerance_s", self.depth_pairing_tolerance_s >= 0, "must be 0 (exact stamps) or more"),
            ("depth_pairing_wait_s", self.depth_pairing_wait_s >= 0, "must be 0 or more"),
            ("depth_mask_erosion_px", self.depth_mask_erosion_px >= 0, "must be 0 or more"),
            ("depth_min_valid_pixels", self.depth_min_valid_pixels >= 1, "must be at least 1"),
        )
        for field, ok, message in checks:
            if not ok:
                raise ConfigError(f"{field}: {message}")
        parse_frame_sizes(self.frame_sizes)
        camera_specs(self)  # the camera list's own checks

    @property
    def frame_size_list(self) -> list[tuple[int, int]]:
        """frame_sizes as (H, W) pairs."""
        return parse_frame_sizes(self.frame_sizes)


def parse_frame_sizes(texts: tuple[str, ...]) -> list[tuple[int, int]]:
    """"WIDTHxHEIGHT" texts as (H, W) pairs; a ConfigError naming a malformed one."""
    sizes = []
    for text in texts:
        match = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", text)
        if match is None or min(int(match[1]), int(match[2])) < 8:
            raise ConfigError(f"frame_sizes: {text!r} is not WIDTHxHEIGHT of at least 8x8 pixels, e.g. 640x360")
        sizes.append((int(match[2]), int(match[1])))
    return sizes


@dataclasses.dataclass(frozen=True)
class CameraSpec:
    """One camera the node serves: its name ("" for the single-camera setup, whose outputs keep the node's own
    topic names), its input topic(s) and its optional depth input."""

    name: str
    image_topic: str
    compressed_image_topic: str
    depth_image_topic: str
    depth_camera_info_topic: str

    def output(self, topic: str) -> str:
        """An output's topic name relative to the node's namespace: ``<camera>/<topic>``, or ``<topic>``."""
        return f"{self.name}/{topic}" if self.name else topic

    @property
    def input_topics(self) -> tuple[str, ...]:
        return tuple(topic for topic in (self.image_topic, self.compressed_image_topic) if topic)


CAMERA_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")  # a ROS name token: a namespace segment


def string_list(name: str, text: str) -> list[str]:
    """A launch argument's list of strings, written as YAML ("['/front/image_raw', '/rear/image_raw']") or as one
    bare topic; ValueError naming the argument otherwise."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ValueError(f"launch argument {name}: {text!r} is not a list such as \"['/front/image_raw', "
                         f"'/rear/image_raw']\" ({error.__class__.__name__})") from None
    value = [value] if isinstance(value, str) else value
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"launch argument {name}: {text!r} is not a list of strings such as "
                         f"\"['/front/image_raw', '/rear/image_raw']\"")
    return value


def default_camera_name(topic: str) -> str:
    """A camera's name from its topic's first namespace segment: /front/image_raw -> front; "" when the topic has
    no namespace (image_raw)."""
    segments = [segment for segment in topic.split("/") if segment and segment != "~"]
    return segments[0] if len(segments) > 1 else ""


def camera_specs(config: NodeConfig) -> tuple[CameraSpec, ...]:
    """The cameras of a node configuration, checked: ConfigError names the parameter that is wrong."""
    topics = [*((topic, "") for topic in config.image_topics),
              *(("", topic) for topic in config.compressed_image_topics)]  # (image, compressed) per camera
    if not topics:
        return (CameraSpec("", config.image_topic, config.compressed_image_topic, config.depth_image_topic,
                           config.depth_camera_info_topic),)
    for field in ("camera_names", "depth_image_topics"):
        given = getattr(config, field)
        if given and len(given) != len(topics):
            raise ConfigError(f"{field}: gives {len(given)} value(s) for {len(topics)} camera topic(s) "
                              f"(image_topics, then compressed_image_topics); give one per topic or none")
    if config.depth_image_topic or config.depth_camera_info_topic:
        raise ConfigError("depth_image_topic: is for the single image_topic setup; with image_topics give "
                          "depth_image_topics, one per camera (camera_info beside each depth topic)")
    if not all(image or compressed for image, compressed in topics):
        raise ConfigError("image_topics: an empty topic name in the list (or in compressed_image_topics); remove it")
    names = config.camera_names or tuple(default_camera_name(image or compressed) for image, compressed in topics)
    for (image, compressed), name in zip(topics, names):
        if not CAMERA_NAME.fullmatch(name):
            source = "camera_names" if config.camera_names else "camera_names (default: the topic's first namespace)"
            raise ConfigError(f"{source}: {name!r} for topic {image or compressed!r} is not a usable camera name "
                              f"(a letter, then letters, digits or _); give camera_names")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigError(f"camera_names: {repeated} name more than one camera (each camera's outputs go under "
                          f"its name); give camera_names")
    depths = config.depth_image_topics or ("",) * len(topics)
    return tuple(CameraSpec(name, image, compressed, depth, "")
                 for (image, compressed), name, depth in zip(topics, names, depths))


THRESHOLD_FIELDS = ("score_threshold", "nms_threshold", "mask_nms_threshold", "detections_per_frame")


@dataclasses.dataclass(frozen=True)
class ParameterGroup:
    """ROS parameters ``prefix + field`` for the given fields of a config dataclass."""

    prefix: str
    config: type
    fields: tuple[str, ...]


PARAMETER_GROUPS = (  # parameters with defaults of their own
    ParameterGroup("", NodeConfig, tuple(f.name for f in dataclasses.fields(NodeConfig))),
    ParameterGroup("predictor.", PredictorConfig, tuple(f.name for f in dataclasses.fields(PredictorConfig))),
    ParameterGroup("recording.", RecordingConfig, tuple(f.name for f in dataclasses.fields(RecordingConfig))),
)
CHECKPOINT_GROUPS = (  # parameters whose defaults are the checkpoint's
    ParameterGroup("model.", ModelConfig, THRESHOLD_FIELDS),
    ParameterGroup("tracker.", TrackerConfig, tuple(f.name for f in dataclasses.fields(TrackerConfig))),
)

DESCRIPTIONS = {
    "checkpoint": "checkpoint file written by sgnet-train, or a .onnx written by sgnet-export (required unless "
                  "smoke_test)",
    "smoke_test": "run a randomly initialised network: plumbing tests only, the output means nothing",
    "model_config": "smoke test only: config/model name (resnet50, resnet101, resnet18_small) or YAML path",
    "allow_cpu_fallback": "when predictor.device is cuda and there is no GPU, run on the CPU instead of failing",
    "autostart": "configure and activate at start (read at start); false leaves that to a lifecycle manager",
    "tracker_profile": "the checkpoint's tracker profile that unset tracker.* take: robot (few, confident tracks) or "
                       "evaluation (low scores, as video AP rewards)",
    "image_topic": "sensor_msgs/Image input topic (empty: none)",
    "compressed_image_topic": "sensor_msgs/CompressedImage input topic (empty: none)",
    "qos_reliability": "image subscriptions: auto (reliable when every publisher is, else best_effort; re-checked "
                       "as publishers come and go), best_effort or reliable",
    "qos_depth": "image subscriptions' queue depth (keep last)",
    "output_qos_depth": "queue depth of the output topics (reliable, keep last)",
    "debug_image": "offer the debug_image topic (rendered only while subscribed)",
    "label_image": "offer the label_image topic, mono16 track ids (built only while subscribed)",
    "class_image": "offer the class_image topic, class index + 1 per pixel, 0 background (built only while "
                   "subscribed)",
    "detection_class_id": "vision_msgs Detection2D hypothesis class_id: name (the class name) or index (its "
                          "index in label_info, as text)",
    "diagnostics_period_s": "seconds between /diagnostics messages (read at start)",
    "max_image_pixels": "images with more pixels (compressed ones: as their header says) are rejected",
    "bad_input_log_period_s": "each kind of bad input is logged at most once per this many seconds",
    "depth_image_topic": "depth image aligned to the colour image, 16UC1 (mm) or 32FC1 (m); empty: no 3D",
    "depth_camera_info_topic": "camera_info of the aligned depth image (empty: camera_info beside depth_image_topic)",
    "depth_pairing_tolerance_s": "a depth image pairs with a colour frame whose stamp is within this (0: exact)",
    "depth_pairing_wait_s": "seconds a frame's 3D waits for a depth image not arrived yet (none newer arrived)",
    "depth_mask_erosion_px": "pixels eroded off each mask's edge before reading its depth (edges see background)",
    "depth_min_valid_pixels": "an instance needs this many valid depths under its mask for a 3D position",
    "image_topics": "sensor_msgs/Image input topics, one camera each (replace image_topic; outputs under "
                    "<node namespace>/<camera name>/)",
    "compressed_image_topics": "sensor_msgs/CompressedImage input topics, one camera each",
    "camera_names": "one name per camera topic, image_topics first (empty: each topic's first namespace, "
                    "/front/image_raw -> front)",
    "depth_image_topics": "with image_topics: one aligned depth topic per camera, \"\" for none (empty: no depth)",
    "max_batch_size": "at most this many cameras' frames go through the network in one batch",
    "frame_sizes": "frame sizes (WIDTHxHEIGHT, e.g. 640x360) the model is prepared for at configure; others are "
                   "prepared on their first frame, in the background",
    "predictor.device": "cpu, cuda, cuda:N or auto (CUDA where there is a GPU, else the CPU)",
    "predictor.fp16": "half precision (CUDA only); the same as predictor.precision fp16",
    "predictor.backend": "what runs the network and masks: torch, onnxruntime, openvino, tensorrt (exports the "
                         "checkpoint at configure, cached; a .onnx checkpoint runs on onnxruntime unless another is "
                         "named) or auto (the fastest present here; the rule in docs/export.md)",
    "predictor.precision": "fp32, fp16 (CUDA), bf16 (CPUs with AVX-512 BF16 or AMX), int8 (OpenVINO on CPUs with "
                           "VNNI or AMX, a graph from sgnet-export --int8) or auto (int8 where such a graph of the "
                           "checkpoint and the CPU are there, else bf16 where the CPU and the backend have it, else "
                           "fp32)",
    "predictor.onnx_providers": "onnxruntime's execution providers in order of preference: tensorrt, cuda, cpu "
                                "(comma-separated; the CPU runs cpu only)",
    "predictor.openvino_device": "OpenVINO's device: CPU, GPU, NPU, ... (passed through)",
    "predictor.cuda_graphs": "on CUDA, replay the network from a CUDA graph per frame size (less launch overhead)",
    "predictor.max_gap_s": "tracks reset when stamps go back, or a received frame's stamp is more than this after the "
                           "previous received one (frames skipped under load count as received)",
    "predictor.cpu_batch_pixels": "on the CPU, one network pass takes at most this many input pixels (several "
                                  "cameras' frames of one size batch up to it: small frames gain from a batch, large "
                                  "ones only hold more memory)",
    "recording.folder": "record the frames around uncertain moments into an MCAP bag in this folder, one bag per "
                        "activation (docs/flywheel.md); empty: no recording",
    "recording.min_events": "a frame with at least this many uncertainty events (InstanceArray.uncertainty_*) is an "
                            "uncertain moment; 0: every frame",
    "recording.window_s": "seconds of the camera's frames recorded before and after each moment",
    "recording.min_interval_s": "at most one moment per camera per this many seconds",
    "recording.max_mb": "the bag's budget in MB: recording stops there, with a warning in /diagnostics",
    "model.score_threshold": "minimum detection score (default: the checkpoint's)",
    "model.nms_threshold": "IoU above which NMS suppresses a detection, across classes unless the checkpoint's model "
                           "config says class-wise (default: the checkpoint's)",
    "model.mask_nms_threshold": "after box NMS, drop a detection whose mask overlaps a higher-scored one's by more "
                                "than this IoU; 0: off (default: the checkpoint's)",
    "model.detections_per_frame": "at most this many detections per frame (default: the checkpoint's)",
    "tracker.new_track_score": "score a detection needs to start a track, at least continue_score (default: the "
                               "tracker profile's)",
    "tracker.continue_score": "score a detection needs to continue a track (default: the tracker profile's)",
    "tracker.max_lost_s": "seconds an unmatched track is kept alive, moving at its last velocity (default: the "
                          "tracker profile's)",
    "tracker.radius_scale": "matching radius = radius_scale x mean(width, height) of the track's box (default: the "
                            "tracker profile's)",
    "tracker.match_across_classes": "a detection may continue a track of another class: one object, one track when "
                                    "its class flickers (default: the tracker profile's)",
    "tracker.fill_gaps_s": "seconds after its last detection that a track is still published, its last mask moved "
                           "along its velocity (predicted true); 0: a missed frame is a hole (default: the tracker "
                           "profile's)",
}


LIVE = frozenset({*(f"model.{field}" for field in THRESHOLD_FIELDS),
                  *(f"tracker.{f.name}" for f in dataclasses.fields(TrackerConfig))})
READ_ONLY = frozenset({"autostart", "diagnostics_period_s"})

# name -> (lowest, highest) shown in the descriptor; integers as IntegerRange, floats as FloatingPointRange.
RANGES: dict[str, tuple[float, float]] = {
    "qos_depth": (1, 1000),
    "output_qos_depth": (1, 1000),
    "diagnostics_period_s": (0.01, 3600.0),
    "max_image_pixels": (1, 2**31 - 1),
    "max_batch_size": (1, 64),
    "bad_input_log_period_s": (0.0, 3600.0),
    "predictor.max_gap_s": (0.001, 3600.0),
    "predictor.cpu_batch_pixels": (1, 2 ** 31 - 1),
    "recording.min_events": (0, 1000),
    "recording.window_s": (0.0, 60.0),
    "recording.min_interval_s": (0.0, 86400.0),
    "recording.max_mb": (0.001, 1e9),
    "model.score_threshold": (0.0, 1.0),
    "model.nms_threshold": (0.01, 1.0),
    "model.mask_nms_threshold": (0.0, 1.0),
    "model.detections_per_frame": (1, 1000),
    "tracker.new_track_score": (0.0, 1.0),
    "tracker.continue_score": (0.0, 1.0),
    "tracker.max_lost_s": (0.0, 3600.0),
    "tracker.radius_scale": (0.001, 100.0),
    "tracker.fill_gaps_s": (0.0, 3600.0),
}


# name -> the values it takes, for the parameters with a fixed set (in the descriptor and docs/ros.md's table).
CHOICES: dict[str, tuple[str, ...]] = {
    "tracker_profile": TRACKER_PROFILES,
    "qos_reliability": RELIABILITIES,
    "detection_class_id": DETECTION_CLASS_IDS,
    "predictor.backend": BACKENDS,
    "predictor.precision": PRECISIONS,
}


def applies_when(name: str) -> str:
    """'live', 'start' or 'configure' (see the module docstring)."""
    return "live" if name in LIVE else "start" if name in READ_ONLY else "configure"


def parameter_defaults() -> dict[str, Any]:
    """ROS parameter name -> default, read from the dataclasses, for the parameters with defaults of their own."""
    defaults = {}
    for group in PARAMETER_GROUPS:
        instance = group.config()
        for field in group.fields:
            value = getattr(instance, field)
            defaults[group.prefix + field] = list(value) if isinstance(value, tuple) else value  # ROS arrays: lists
    return defaults


def checkpoint_parameter_types() -> dict[str, type]:
    """ROS parameter name -> type (float, int or bool), for the parameters whose defaults are the checkpoint's."""
    return {group.prefix + field: typing.get_type_hints(group.config)[field]
            for group in CHECKPOINT_GROUPS for field in group.fields}


def parameter_names() -> tuple[str, ...]:
    """Every parameter of the node."""
    return (*parameter_defaults(), *checkpoint_parameter_types())


def parameter_descriptor(name: str, typed: bool = True) -> ParameterDescriptor:
    """The descriptor the node declares ``name`` with: its description, when it applies, its range and
    read_only. ``typed=False`` (a start value of the wrong type or out of range) leaves type and range out, so
    that the value reaches configure, which refuses it naming the parameter, instead of stopping the node."""
    when = {"live": "applies at once", "start": "read at start only",
            "configure": "applies at configure; refused while the node is configured"}[applies_when(name)]
    if name in CHOICES:
        when += f"; one of {', '.join(CHOICES[name])}"
    descriptor = ParameterDescriptor(name=name, description=DESCRIPTIONS[name], additional_constraints=when,
                                     read_only=name in READ_ONLY, dynamic_typing=not typed)
    if typed and name in RANGES:
        low, high = RANGES[name]
        kind = checkpoint_parameter_types().get(name) or type(parameter_defaults()[name])
        if kind is int:
            descriptor.integer_range = [IntegerRange(from_value=int(low), to_value=int(high), step=1)]
        else:
            descriptor.floating_point_range = [FloatingPointRange(from_value=float(low), to_value=float(high),
                                                                  step=0.0)]
    return descriptor


class ParameterError(ValueError):
    """A parameter value the node cannot run with; the message names the parameter."""


@dataclasses.dataclass(frozen=True)
class NodeSettings:
    """Every parameter, validated; of the checkpoint's parameters only those given (the rest: the checkpoint's)."""

    node: NodeConfig
    predictor: PredictorConfig
    recording: RecordingConfig
    thresholds: dict[str, Any]  # model.* given: score_threshold, nms_threshold, detections_per_frame
    tracker: dict[str, Any]  # tracker.* given


def _build(group: ParameterGroup, values: Mapping[str, Any]) -> Any:
    source = group.prefix.rstrip(".") or "_"
    fields = {field: values[group.prefix + field] for field in group.fields}
    try:
        return from_dict(group.config, fields, source)
    except ConfigError as error:
        where = str(error)
        if not group.prefix:
            where = where.removeprefix("_.")
        raise ParameterError(f"parameter {where}") from None


def settings_from(get_value: Callable[[str], Any]) -> NodeSettings:
    """Validate the parameters (``get_value(name)`` gives each value, None for a checkpoint parameter not given);
    ParameterError names a wrong one. The given checkpoint parameters are checked against the checkpoint's values
    by :func:`live_settings`."""
    node, predictor, recording = (_build(group, {name: get_value(name) for name in parameter_defaults()})
                                  for group in PARAMETER_GROUPS)
    given = [{field: value for field in group.fields if (value := get_value(group.prefix + field)) is not None}
             for group in CHECKPOINT_GROUPS]
    return NodeSettings(node=node, predictor=predictor, recording=recording, thresholds=given[0], tracker=given[1])


def live_settings(settings: NodeSettings, model: ModelConfig,
                  profile: TrackerConfig) -> tuple[dict[str, Any], TrackerConfig]:
    """The thresholds and the tracker settings the node runs: the given parameters over the checkpoint's model
    config and tracker profile, validated together (e.g. continue_score <= new_track_score)."""
    try:
        model = from_dict(ModelConfig, to_dict(model) | settings.thresholds, "model")
        tracker = from_dict(TrackerConfig, to_dict(profile) | settings.tracker, "tracker")
    except ConfigError as error:
        raise ParameterError(f"parameter {error}") from None
    return {field: getattr(model, field) for field in THRESHOLD_FIELDS}, tracker


def build_parser() -> argparse.ArgumentParser:
    """sgnet-node's parser: --help with every parameter; everything ROS-specific goes after --ros-args."""
    parameters = "\n".join([*(f"  {name} (default {default!r}): {DESCRIPTIONS[name]}"
                             for name, default in parameter_defaults().items()),
                           *(f"  {name}: {DESCRIPTIONS[name]}" for name in checkpoint_parameter_types())])
    parser = argparse.ArgumentParser(
        prog="sgnet-node", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="SG-Net video instance segmentation node (ROS 2 lifecycle node). Subscribes to 'image' "
                    "(sensor_msgs/Image) and publishes 'instances' (sgnet_ros/InstanceArray), 'label_image', "
                    "'debug_image', 'detections' (with vision_msgs) and /diagnostics; with image_topics, one "
                    "model serves several cameras, each with its outputs under <namespace>/<camera>/.",
        epilog="Parameters (set with --ros-args -p NAME:=VALUE or --params-file config/sgnet.yaml):\n"
               f"{parameters}\n\nExample: sgnet-node --ros-args -p checkpoint:=model.pt -r image:=/camera/image_raw\n"
               "Cameras: sgnet-node --ros-args -p checkpoint:=model.pt "
               "-p image_topics:=\"['/front/image_raw', '/rear/image_raw']\"")
    return parser
