"""The node defaults its thresholds (model.*) and tracker settings (tracker.*) to the checkpoint's: the model config
it was trained with and the tracker profile named by tracker_profile. Parameters given at start or set later
override one field each. Over real DDS, against a checkpoint whose values differ from every dataclass default."""
import dataclasses

import pytest
import torch
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import GetParameters, SetParameters

from ros_harness import wait_until
from sgnet_model.checkpoint import save_checkpoint
from sgnet_model.config import ModelConfig, TrackerConfig, named_config
from sgnet_model.network.model import SGNet

MODEL = dataclasses.replace(named_config("resnet18_small").model, input_width=96, input_height=64,
                            score_threshold=0.25, nms_threshold=0.65, detections_per_frame=7)
ROBOT = TrackerConfig(new_track_score=0.7, continue_score=0.45, max_lost_s=3.5, radius_scale=1.25,
                      match_across_classes=True)
EVALUATION = TrackerConfig(new_track_score=0.12, continue_score=0.04, max_lost_s=0.75, radius_scale=1.5,
                           match_across_classes=False)
NAMES = [*(f"model.{field}" for field in ("score_threshold", "nms_threshold", "detections_per_frame")),
         *(f"tracker.{f.name}" for f in dataclasses.fields(TrackerConfig)), "tracker_profile"]


def expected(model: ModelConfig, tracker: TrackerConfig, profile: str) -> dict:
    values = {f"model.{field}": getattr(model, field)
              for field in ("score_threshold", "nms_threshold", "detections_per_frame")}
    values.update({f"tracker.{f.name}": getattr(tracker, f.name) for f in dataclasses.fields(TrackerConfig)})
    values["tracker_profile"] = profile
    return values


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    assert MODEL != ModelConfig() and ROBOT != TrackerConfig()  # the file's values are not the defaults
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("checkpoint") / "model.pt"
    save_checkpoint(path, MODEL, SGNet(MODEL).state_dict(),
                    tracker_profiles={"robot": ROBOT, "evaluation": EVALUATION})
    return path


def parameters(client, node) -> dict:
    request = GetParameters.Request(names=NAMES)
    values = client.call(GetParameters, f"{node.fully_qualified_name}/get_parameters", request).values
    python = {ParameterType.PARAMETER_DOUBLE: lambda v: v.double_value,
              ParameterType.PARAMETER_INTEGER: lambda v: v.integer_value,
              ParameterType.PARAMETER_STRING: lambda v: v.string_value,
              ParameterType.PARAMETER_BOOL: lambda v: v.bool_value}
    return {name: python[value.type](value) if value.type in python else None for name, value in zip(NAMES, values)}


def configured(client, node) -> dict:
    """The node's values once configure has run (it sets the checkpoint's values then)."""
    assert wait_until(lambda: client.node.count_publishers(f"{node.namespace}/instances"), 120), node.output()
    return parameters(client, node)


def set_double(client, node, name: str, value: float):
    request = SetParameters.Request(parameters=[Parameter(
        name=name, value=ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value))])
    return client.call(SetParameters, f"{node.fully_qualified_name}/set_parameters", request).results[0]


@pytest.fixture(scope="module")
def nodes(node_factory, checkpoint):
    """Both nodes of this module, started together so that their starts overlap: one with only the checkpoint,
    one with the evaluation profile and a tracker value and a threshold given at start."""
    return {"robot": node_factory("sgnet", "/ckpt_robot", checkpoint=str(checkpoint)),
            "evaluation": node_factory("sgnet", "/ckpt_eval", checkpoint=str(checkpoint),
                                       tracker_profile="evaluation", tracker__continue_score=0.08,
                                       model__nms_threshold=0.4)}


@pytest.mark.slow  # two node processes (more than 2.5 s)
def test_robot_profile_and_thresholds_come_from_the_checkpoint_and_a_set_value_overrides_live(ros, nodes):
    node = nodes["robot"]
    assert configured(ros.client, node) == expected(MODEL, ROBOT, "robot")
    assert set_double(ros.client, node, "tracker.continue_score", 0.5).successful
    refused = set_double(ros.client, node, "tracker.continue_score", 0.9)  # above the profile's new_track_score
    assert not refused.successful and "tracker.new_track_score" in refused.reason
    assert parameters(ros.client, node) == expected(MODEL, dataclasses.replace(ROBOT, continue_score=0.5), "robot")


@pytest.mark.slow  # two node processes (more than 2.5 s)
def test_evaluation_profile_with_one_tracker_value_and_one_threshold_given(ros, nodes):
    node = nodes["evaluation"]
    assert configured(ros.client, node) == expected(dataclasses.replace(MODEL, nms_threshold=0.4),
                                                    dataclasses.replace(EVALUATION, continue_score=0.08),
                                                    "evaluation")
    assert "tracker profile custom" in node.output()  # a given tracker value makes them the user's, not a profile
