"""Lifecycle transitions driven from another process through lifecycle_msgs services, QoS mismatch warnings,
and configure-time parameter errors, over real DDS."""
import time

import numpy as np
import pytest
import torch
from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState
from sensor_msgs.msg import Image

from ros_harness import image_message, stamp_of, wait_until
from sgnet_model.checkpoint import save_checkpoint
from sgnet_model.config import named_config
from sgnet_model.network.model import SGNet
from sgnet_ros.msg import InstanceArray

SMOKE = dict(smoke_test=True, model_config="resnet18_small", model__score_threshold=0.0,
             model__detections_per_frame=3, tracker__new_track_score=0.0, tracker__continue_score=0.0)


def frame(stamp: float) -> Image:
    rgb = np.random.default_rng(int(stamp)).integers(0, 256, (96, 160, 3), dtype=np.uint8)
    return image_message(rgb, stamp)


def get_state(client, node) -> int:
    return client.call(GetState, f"{node.fully_qualified_name}/get_state", GetState.Request(), timeout=20.0,
                       attempts=3).current_state.id


def change_state(client, node, transition: int) -> bool:
    request = ChangeState.Request(transition=Transition(id=transition))
    return client.call(ChangeState, f"{node.fully_qualified_name}/change_state", request).success


def answers(client, publisher, node, stamp: float, timeout: float) -> bool:
    """Publish a frame (again every second) and tell whether its instances come back within timeout."""
    topic = f"{node.namespace}/instances"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        publisher.publish(frame(stamp))
        if wait_until(lambda: any(stamp_of(m) == stamp for m in client.received(topic)), 1.0):
            return True
    return False


def answered(client, node, stamp: float) -> bool:
    return any(stamp_of(m) == stamp for m in client.received(f"{node.namespace}/instances"))


@pytest.mark.slow  # a second process drives the node (more than 2.5 s)
def test_transitions_from_another_process(ros, node_factory):
    """configure, activate, deactivate, cleanup and shutdown through the lifecycle services. While inactive the
    node has no subscription (waited for as an event, not a fixed time) and a frame published then never comes
    out, even once the node serves again: the later frame's output arrives, and the earlier one's never did."""
    client = ros.client
    node = node_factory("sgnet", "/life", autostart=False, qos_reliability="reliable", **SMOKE)
    client.subscribe("/life/instances", InstanceArray)
    publisher = client.publisher("/life/image", reliable=True)
    assert get_state(client, node) == State.PRIMARY_STATE_UNCONFIGURED

    assert change_state(client, node, Transition.TRANSITION_CONFIGURE)
    assert get_state(client, node) == State.PRIMARY_STATE_INACTIVE
    assert wait_until(lambda: client.node.count_publishers("/life/instances"), 10)  # configured: outputs exist
    assert publisher.get_subscription_count() == 0  # inactive: no subscription
    publisher.publish(frame(10.0))  # inactive: nobody takes it

    assert change_state(client, node, Transition.TRANSITION_ACTIVATE)
    assert get_state(client, node) == State.PRIMARY_STATE_ACTIVE
    assert answers(client, publisher, node, 11.0, timeout=30.0)
    assert not answered(client, node, 10.0)

    # A best-effort camera cannot feed a reliable subscription: the node says so and names the parameter.
    best_effort = client.publisher("/life/image", reliable=False)
    assert wait_until(lambda: any("offers QoS incompatible" in log.msg and "qos_reliability" in log.msg
                                  for log in client.logs(node)), 20)
    client.destroy_publisher(best_effort)

    assert change_state(client, node, Transition.TRANSITION_DEACTIVATE)
    assert get_state(client, node) == State.PRIMARY_STATE_INACTIVE
    assert wait_until(lambda: publisher.get_subscription_count() == 0, 10)  # the subscription went
    publisher.publish(frame(12.0))

    assert change_state(client, node, Transition.TRANSITION_CLEANUP)
    assert get_state(client, node) == State.PRIMARY_STATE_UNCONFIGURED
    assert not client.node.count_publishers("/life/instances")  # the publishers went with the model

    assert change_state(client, node, Transition.TRANSITION_CONFIGURE)
    assert change_state(client, node, Transition.TRANSITION_ACTIVATE)
    assert answers(client, publisher, node, 13.0, timeout=30.0)
    assert not answered(client, node, 12.0)  # sent while inactive: never served
    first = next(m for m in client.received("/life/instances") if stamp_of(m) == 13.0)
    assert sorted(i.track_id for i in first.instances) == list(range(1, len(first.instances) + 1))  # a new tracker

    assert change_state(client, node, Transition.TRANSITION_ACTIVE_SHUTDOWN)
    assert node.process.wait(30) == 0  # finalized: the process ends (test_shutdown.py covers every state)


@pytest.fixture(scope="module")
def random_checkpoint(tmp_path_factory) -> str:
    """A real checkpoint file holding random weights of the small network."""
    path = tmp_path_factory.mktemp("checkpoint") / "random.pt"
    config = named_config("resnet18_small").model
    torch.manual_seed(0)
    save_checkpoint(path, config, SGNet(config).state_dict())
    return str(path)


@pytest.mark.slow
def test_configure_errors_name_the_parameter_and_leave_the_node_unconfigured(ros, node_factory, random_checkpoint,
                                                                             tmp_path):
    client = ros.client
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint" * 10)
    cases = [
        ("no_checkpoint", {}, "parameter checkpoint is empty"),
        ("missing_file", {"checkpoint": str(tmp_path / "nowhere.pt")}, "parameter checkpoint: "),
        ("corrupt_file", {"checkpoint": str(corrupt)}, str(corrupt)),
        ("bad_range", {**SMOKE, "tracker__continue_score": 2.0}, "parameter tracker.continue_score: must lie in"),
        ("bad_type", {**SMOKE, "qos_depth": "deep"}, "parameter qos_depth: expected int, got 'deep'"),
        ("bad_model_config", {**SMOKE, "model_config": "resnet7"}, "parameter model_config: no model config named"),
        ("fp16_on_cpu", {**SMOKE, "predictor__fp16": True}, "parameter predictor.fp16: half precision runs on CUDA"),
    ]
    if not torch.cuda.is_available():
        cases.append(("cuda_missing", {**SMOKE, "predictor__device": "cuda"},
                      "parameter predictor.device: 'cuda' asked for, but CUDA is not available"))
    failing = {name: (node_factory(name, "/errors", **parameters), expected) for name, parameters, expected in cases}
    working = {"from_checkpoint": node_factory("from_checkpoint", "/errors", checkpoint=random_checkpoint,
                                               model__score_threshold=0.0, tracker__new_track_score=0.0,
                                               tracker__continue_score=0.0),
               "cpu_fallback": node_factory("cpu_fallback", "/fallback", predictor__device="cuda",
                                            allow_cpu_fallback=True, **SMOKE)}
    # Ten processes import torch at once: on two busy cores that alone can take minutes.
    for name, (node, expected) in failing.items():
        assert wait_until(lambda: any(log.msg.startswith("configure failed") for log in client.logs(node)), 240), \
            f"{name}: no configure error logged:\n{node.output()}"
        errors = [log.msg for log in client.logs(node) if log.msg.startswith("configure failed")]
        assert expected in errors[0], (name, errors)
        assert get_state(client, node) == State.PRIMARY_STATE_UNCONFIGURED, name
    for name, node in working.items():
        assert wait_until(lambda: any(log.msg.startswith("active") for log in client.logs(node)), 240), \
            f"{name} did not become active:\n{node.output()}"
        assert get_state(client, node) == State.PRIMARY_STATE_ACTIVE
    if not torch.cuda.is_available():
        assert any("running on the CPU instead of cuda" in log.msg for log in client.logs(working["cpu_fallback"]))
    client.subscribe("/errors/instances", InstanceArray)
    publisher = client.publisher("/errors/image", reliable=False)
    assert answers(client, publisher, working["from_checkpoint"], 20.0, timeout=30.0)
