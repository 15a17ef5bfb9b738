"""The node ends cleanly (exit status 0, no traceback) however it is stopped and in whichever lifecycle state it
idles: a terminal's Ctrl-C (SIGINT to the whole process group, and `ros2 launch` forwarding a second SIGINT to
the node), a SIGINT to the node alone, SIGTERM, and the lifecycle shutdown transition; unconfigured, inactive
and active, and (signals only) while it is starting: while Python still imports rclpy and torch, told by the
program's start trace (SGNET_STARTUP_TRACE, sgnet_ros/startup_trace.py), not by a sleep: those start a fresh
interpreter (``python -m sgnet_ros.node``); the others are forked by the test run's node zygote (node_zygote.py),
their imports done. Each node runs in its own process group, as under a terminal. The nodes stopped once started
are started together (their starts overlap; each still has a process of its own and is stopped in its own test).

One run per distinct shutdown path (what runs differs), not the whole signal x state matrix:
- SIGINT and SIGTERM are caught by one handler (sgnet_ros/node.py: both in STOP_SIGNALS, both to _request_stop,
  which only sets a flag), so once the node owns the signals a second signal kind in the same state runs the
  same code. Each signal kind still runs once against the node's handler (unconfigured: SIGINT alone; inactive:
  SIGTERM; active: the terminal's double SIGINT, whose first signal is a plain SIGINT), and the state decides
  what the stop frees (nothing; the model; the model, subscriptions and inference thread).
- The lifecycle shutdown transition differs per state (unconfigured, inactive and active shutdown): all three run.
- While starting, the early handler (os._exit before the imports) is installed for SIGINT and SIGTERM by one
  loop: the terminal's Ctrl-C and SIGTERM run once each.
The merged cases (e.g. "active, SIGTERM", "unconfigured, Ctrl-C") ran no code that a kept case does not.

SGNET_SHUTDOWN_REPEATS=N runs every case N times (the 20-of-20 figures in docs/ros.md come from that); the
seconds from the stop to the exit are printed (run with -s), not asserted: this machine's load sets them.
"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import GetState

from ros_harness import wait_until
from test_lifecycle import change_state

TINY = dict(smoke_test=True, model_config=os.path.join(os.path.dirname(__file__), "tiny_model.yaml"))
STATES = {"unconfigured": State.PRIMARY_STATE_UNCONFIGURED, "inactive": State.PRIMARY_STATE_INACTIVE,
          "active": State.PRIMARY_STATE_ACTIVE}
SHUTDOWN_TRANSITIONS = {"unconfigured": Transition.TRANSITION_UNCONFIGURED_SHUTDOWN,
                        "inactive": Transition.TRANSITION_INACTIVE_SHUTDOWN,
                        "active": Transition.TRANSITION_ACTIVE_SHUTDOWN}
REPEATS = int(os.environ.get("SGNET_SHUTDOWN_REPEATS", "1"))


def state_of(client, node) -> int:
    """The node's lifecycle state; asked again when an answer is lost (a service's response can be sent before
    the client's response reader is matched, right after discovery)."""
    for _ in range(5):
        try:
            return client.call(GetState, f"{node.fully_qualified_name}/get_state", GetState.Request(),
                               timeout=10.0).current_state.id
        except AssertionError:
            continue
    raise AssertionError(f"{node.fully_qualified_name}/get_state never answered")


def stop(client, node, how: str, state: str) -> None:
    if how == "ctrl_c_group":
        os.killpg(node.pid, signal.SIGINT)  # the terminal's Ctrl-C
        time.sleep(0.01)
        os.kill(node.pid, signal.SIGINT)  # ros2 launch passing its own SIGINT on
    elif how == "sigint":
        os.kill(node.pid, signal.SIGINT)
    elif how == "sigterm":
        os.kill(node.pid, signal.SIGTERM)
    else:
        assert change_state(client, node, SHUTDOWN_TRANSITIONS[state])


CASES = [  # (state, how): one per distinct shutdown path, see the module's docstring
    ("starting", "ctrl_c_group"), ("starting", "sigterm"),
    ("unconfigured", "sigint"), ("inactive", "sigterm"), ("active", "ctrl_c_group"),
    ("unconfigured", "lifecycle_shutdown"), ("inactive", "lifecycle_shutdown"), ("active", "lifecycle_shutdown"),
]
TRACE = {"SGNET_STARTUP_TRACE": "1"}  # the node programs write their start steps to stderr (node_program.py)


def start(ros, state: str, how: str, repeat: int):
    return ros.start_node(f"stop_{state}_{how}_{repeat}", "/shutdown", environment=TRACE, new_session=True,
                          fresh_interpreter=state == "starting", autostart=state in ("active", "starting"), **TINY)


@pytest.fixture(scope="module")
def prestarted(ros, request):
    """The nodes of the selected cases that are stopped once started (every state but "starting"), started
    together at the first such case of each repeat so that their starts overlap: (state, how, repeat) -> node.
    Whatever a failed test left running is killed at the end."""
    nodes = {}

    def take(state: str, how: str, repeat: int):
        if (state, how, repeat) not in nodes:
            selected = {(item.callspec.params["state"], item.callspec.params["how"]) for item in request.session.items
                        if item.originalname == "test_the_node_exits_cleanly"
                        and item.callspec.params["repeat"] == repeat and item.callspec.params["state"] != "starting"}
            for case in selected | {(state, how)}:
                nodes[(*case, repeat)] = start(ros, *case, repeat)
        return nodes.pop((state, how, repeat))

    yield take
    for node in nodes.values():
        node.process.kill()
        node.process.wait()


@pytest.mark.slow
@pytest.mark.parametrize("repeat", range(REPEATS))
@pytest.mark.parametrize("state, how", CASES)
def test_the_node_exits_cleanly(ros, prestarted, state, how, repeat):
    client = ros.client
    node = start(ros, state, how, repeat) if state == "starting" else prestarted(state, how, repeat)
    try:
        if state == "starting":  # the early handler is in place, the imports have begun
            assert wait_until(lambda: "sgnet-node: stop signals handled" in node.output(), 60), node.output()
        elif state == "active":
            assert wait_until(lambda: any(log.msg.startswith("active") for log in client.logs(node)), 120), \
                node.output()
        if state == "inactive":
            assert change_state(client, node, Transition.TRANSITION_CONFIGURE)
        if state != "starting":
            assert state_of(client, node) == STATES[state]
        node.interrupted = True  # the harness must not send its own SIGINT
        started = time.monotonic()
        stop(client, node, how, state)
        node.process.wait(30)
        print(f"{state} {how}: exit {node.process.returncode} after {time.monotonic() - started:.2f} s")
    finally:
        if node.process.poll() is None:
            node.process.kill()
            node.process.wait()
    output = node.output()
    assert node.process.returncode == 0, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    if state == "starting":  # the signal came during the imports: the node's main() never began
        assert "sgnet-node: imports done" not in output, output[-3000:]


def test_the_console_script_ends_cleanly_on_a_ctrl_c_during_its_imports(tmp_path):
    """`sgnet-node` as a terminal starts it (the pip console script, in its own process group), stopped by a Ctrl-C
    while Python still imports rclpy and torch: exit status 0 and no KeyboardInterrupt traceback. The Ctrl-C is
    sent once the program says its stop handler is in place, and the program never says its imports are done:
    both orderings are read from its start trace, not guessed from a sleep."""
    script = Path(sys.executable).with_name("sgnet-node")
    assert script.is_file(), f"{script} is not installed (pip install -e .)"
    environment = {**os.environ, **TRACE, "ROS_LOG_DIR": str(tmp_path), "TMPDIR": str(tmp_path)}
    process = subprocess.Popen([str(script), "--ros-args", "-p", "smoke_test:=true"], env=environment,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        before = []  # the program's lines up to its handler's marker (reading blocks until each line comes)
        for line in process.stdout:
            before.append(line)
            if line == "sgnet-node: stop signals handled\n":
                break
        assert before[-1:] == ["sgnet-node: stop signals handled\n"], "".join(before) + process.stdout.read()
        os.killpg(process.pid, signal.SIGINT)
        output = "".join(before) + process.communicate(timeout=30)[0]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0 and "Traceback" not in output, output[-3000:]
    assert "sgnet-node: imports done" not in output, output[-3000:]  # the Ctrl-C landed during the imports
