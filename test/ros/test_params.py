"""The node's parameters: defaults from the dataclasses, config/sgnet.yaml in step with them, validation errors
that name the parameter."""
import dataclasses
from pathlib import Path

import pytest
import yaml

from sgnet_model.config import ModelConfig, PredictorConfig, TrackerConfig
from sgnet_ros.params import (DESCRIPTIONS, NodeConfig, ParameterError, live_settings, parameter_defaults,
                              parameter_names, settings_from)
from sgnet_ros.recording import RecordingConfig

SHIPPED_YAML = Path(__file__).resolve().parents[2] / "config" / "sgnet.yaml"


def flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def dataclass_defaults() -> dict:
    """The expected table, read field by field from the dataclasses (a second route to the same values)."""
    expected = {f.name: list(f.default) if isinstance(f.default, tuple) else f.default  # ROS arrays are lists
                for f in dataclasses.fields(NodeConfig)}
    expected.update({f"predictor.{f.name}": f.default for f in dataclasses.fields(PredictorConfig)})
    expected.update({f"recording.{f.name}": f.default for f in dataclasses.fields(RecordingConfig)})
    return expected


CHECKPOINT_PARAMETERS = {"model.score_threshold", "model.nms_threshold", "model.mask_nms_threshold",
                         "model.detections_per_frame",
                         *(f"tracker.{f.name}" for f in dataclasses.fields(TrackerConfig))}


def test_defaults_are_the_dataclass_defaults_and_all_are_described():
    assert parameter_defaults() == dataclass_defaults()
    assert set(parameter_names()) == set(dataclass_defaults()) | CHECKPOINT_PARAMETERS
    assert set(DESCRIPTIONS) == set(parameter_names())


def test_shipped_yaml_lists_every_parameter_with_its_default():
    document = yaml.safe_load(SHIPPED_YAML.read_text())
    shipped = flatten(document["/**"]["ros__parameters"])
    expected = dataclass_defaults()
    assert shipped == expected
    assert all(type(shipped[name]) is type(expected[name]) for name in expected)  # 1.0 stays a float


def values_with(**changes) -> dict:
    """Every parameter with a default of its own at it, and the given changes (model.* and tracker.*: given)."""
    values = parameter_defaults()
    values.update({name.replace("__", "."): value for name, value in changes.items()})
    return values


def validated(values: dict, model: ModelConfig = ModelConfig(), profile: TrackerConfig = TrackerConfig()):
    """What configure does with the parameters: settings_from, then the checkpoint parameters given over the
    checkpoint's model config and tracker profile."""
    settings = settings_from(values.get)
    return settings, live_settings(settings, model, profile)


@pytest.mark.parametrize("changes, message", [
    ({"tracker__continue_score": 1.5}, "parameter tracker.continue_score: must lie in [0, 1]"),
    ({"tracker__new_track_score": 0.1}, "parameter tracker.new_track_score: must lie in [continue_score, 1]"),
    ({"tracker__max_lost_s": "long"}, "parameter tracker.max_lost_s: expected float, got 'long'"),
    ({"tracker__max_lost_s": -1.0}, "parameter tracker.max_lost_s: must be 0 or more"),
    ({"model__score_threshold": -0.1}, "parameter model.score_threshold: must lie in [0, 1]"),
    ({"model__detections_per_frame": 0}, "parameter model.detections_per_frame: must be at least 1"),
    ({"predictor__device": "gpu"}, "parameter predictor.device: must be 'cpu', 'cuda', 'cuda:N' or 'auto'"),
    ({"predictor__max_gap_s": 0.0}, "parameter predictor.max_gap_s: must be positive"),
    ({"qos_reliability": "sometimes"}, "parameter qos_reliability: must be one of"),
    ({"qos_depth": 0}, "parameter qos_depth: must be at least 1"),
    ({"qos_depth": "deep"}, "parameter qos_depth: expected int, got 'deep'"),
    ({"smoke_test": "yes"}, "parameter smoke_test: expected bool, got 'yes'"),
    ({"image_topic": "", "compressed_image_topic": ""}, "parameter image_topic: is empty and so is"),
    ({"recording__max_mb": 0.0}, "parameter recording.max_mb: must be positive, got 0.0"),
    ({"recording__min_events": -1}, "parameter recording.min_events: must be 0 or more, got -1"),
])
def test_invalid_values_name_the_parameter(changes, message):
    values = values_with(**changes)
    with pytest.raises(ParameterError) as error:
        validated(values)
    assert str(error.value).startswith(message)


def test_valid_values_come_through_typed():
    settings, (thresholds, tracker) = validated(values_with(predictor__max_gap_s=3, model__score_threshold=1,
                                                            tracker__max_lost_s=4))
    assert settings.predictor.max_gap_s == 3.0 and isinstance(settings.predictor.max_gap_s, float)
    assert thresholds == {"score_threshold": 1.0, "nms_threshold": 0.7, "mask_nms_threshold": 0.5,
                          "detections_per_frame": 50}
    assert tracker == TrackerConfig(max_lost_s=4.0) and isinstance(tracker.max_lost_s, float)
    assert settings.node == NodeConfig()


def test_checkpoint_parameters_not_given_take_the_checkpoint_values_and_given_ones_override_one_field():
    """A checkpoint trained with its own thresholds and an evaluation-like profile: what is not given comes from
    it, a given value replaces that field only, and the pair is checked together (continue <= new)."""
    model = ModelConfig(score_threshold=0.2, nms_threshold=0.6, mask_nms_threshold=0.0, detections_per_frame=7)
    profile = TrackerConfig(new_track_score=0.1, continue_score=0.05, max_lost_s=1.5, radius_scale=2.0)
    _, (thresholds, tracker) = validated(values_with(), model, profile)
    assert thresholds == {"score_threshold": 0.2, "nms_threshold": 0.6, "mask_nms_threshold": 0.0,
                          "detections_per_frame": 7}
    assert tracker == profile
    _, (thresholds, tracker) = validated(values_with(model__nms_threshold=0.4, tracker__continue_score=0.08),
                                         model, profile)
    assert thresholds == {"score_threshold": 0.2, "nms_threshold": 0.4, "mask_nms_threshold": 0.0,
                          "detections_per_frame": 7}
    assert tracker == TrackerConfig(new_track_score=0.1, continue_score=0.08, max_lost_s=1.5, radius_scale=2.0)
    with pytest.raises(ParameterError, match=r"^parameter tracker\.new_track_score: must lie in \[continue_score"):
        validated(values_with(tracker__continue_score=0.3), model, profile)  # the profile's 0.1 starts tracks
    with pytest.raises(ParameterError, match="parameter tracker_profile: must be one of"):
        validated(values_with(tracker_profile="fast"))


def test_malformed_ros_arguments_exit_with_status_2_and_one_line(capsys):
    """The node program's main() (``python -m sgnet_ros.node`` and ``sgnet-node`` end with sys.exit(main()))
    returns status 2 with one line on stderr, before anything of ROS starts; run in this process, as a process of
    its own would only add seconds of imports."""
    from sgnet_ros.node import main

    assert main(["--ros-args", "-p", "checkpoint"]) == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert out == "" and len(lines) == 1 and lines[0].startswith("sgnet-node: error: Failed to parse ROS arguments")


def test_ranges_agree_with_validation_and_descriptors_carry_them():
    """Both ends of every range are valid values, a step outside each range that validation also refuses is
    refused (the dataclasses are the second opinion), and the descriptor shows the range with the value's type."""
    from rcl_interfaces.msg import ParameterType

    from sgnet_ros.params import LIVE, RANGES, READ_ONLY, parameter_descriptor

    types = {name: type(value) for name, value in parameter_defaults().items()}
    types.update({name: type(getattr(ModelConfig() if name.startswith("model.") else TrackerConfig(),
                                     name.partition(".")[2])) for name in CHECKPOINT_PARAMETERS})
    # room for either end of each range: new >= continue holds, and fill_gaps_s <= max_lost_s
    room = {"tracker__continue_score": 0.0, "tracker__new_track_score": 1.0, "tracker__max_lost_s": 3600.0}
    for name, (low, high) in RANGES.items():
        for value in (low, high):
            validated(values_with(**{**room, name.replace(".", "__"): types[name](value)}))
        descriptor = parameter_descriptor(name)
        if types[name] is int:
            assert (descriptor.integer_range[0].from_value, descriptor.integer_range[0].to_value) == (low, high)
        else:
            assert (descriptor.floating_point_range[0].from_value,
                    descriptor.floating_point_range[0].to_value) == (low, high)
        assert not descriptor.dynamic_typing and not parameter_descriptor(name, typed=False).integer_range
    for name, below in (("model.score_threshold", -0.01), ("qos_depth", 0), ("tracker.max_lost_s", -1.0),
                        ("predictor.max_gap_s", 0.0), ("max_image_pixels", 0)):
        with pytest.raises(ParameterError):
            validated(values_with(**{name.replace(".", "__"): below}))
    assert parameter_descriptor("autostart").read_only and not parameter_descriptor("checkpoint").read_only
    assert LIVE == {"model.score_threshold", "model.nms_threshold", "model.mask_nms_threshold",
                    "model.detections_per_frame", "tracker.new_track_score", "tracker.continue_score",
                    "tracker.max_lost_s", "tracker.radius_scale", "tracker.match_across_classes",
                    "tracker.fill_gaps_s"}
    assert READ_ONLY <= set(parameter_defaults()) and LIVE == CHECKPOINT_PARAMETERS
    assert ParameterType.PARAMETER_NOT_SET == parameter_descriptor("qos_depth").type  # rclpy fills it from the value


def test_reliability_matching_and_sibling_topics():
    from rclpy.qos import ReliabilityPolicy

    from sgnet_ros.inputs import fastdds_profile_environment, matching_reliability, sibling_camera_info

    reliable, best_effort = ReliabilityPolicy.RELIABLE, ReliabilityPolicy.BEST_EFFORT
    assert matching_reliability([reliable, reliable]) == reliable
    assert matching_reliability([reliable, best_effort]) == best_effort
    assert matching_reliability([]) == best_effort  # nobody yet: hear whoever comes
    assert sibling_camera_info("/camera/image_raw") == "/camera/camera_info"
    assert sibling_camera_info("/camera/image_raw/compressed") == "/camera/camera_info"
    assert sibling_camera_info("/image") == "/camera_info"
    profile = "/opt/share/sgnet_ros/config/fastdds_large_images.xml"
    assert fastdds_profile_environment({"ROS_DISTRO": "kilted"}, profile) == {"FASTDDS_DEFAULT_PROFILES_FILE": profile}
    assert fastdds_profile_environment({"ROS_DISTRO": "humble"}, profile) == {"FASTRTPS_DEFAULT_PROFILES_FILE": profile}
    assert fastdds_profile_environment({"ROS_DISTRO": "jazzy"}, profile) == {"FASTRTPS_DEFAULT_PROFILES_FILE": profile}
    assert fastdds_profile_environment({"FASTRTPS_DEFAULT_PROFILES_FILE": "mine.xml"}, profile) == {}
    assert fastdds_profile_environment({"FASTDDS_DEFAULT_PROFILES_FILE": "mine.xml"}, profile) == {}
