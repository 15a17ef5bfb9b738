"""Real ROS 2 between real processes for the node tests: the node runs as `python -m sgnet_ros.node` in a
subprocess, and the test process talks to it over DDS through a spinning rclpy client node."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from rcl_interfaces.msg import Log
from sensor_msgs.msg import Image

ROS_ENVIRONMENT = ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_LOG_DIR", "TMPDIR")


class ForkedProcess:
    """A program forked by the node zygote (node_zygote.py), with the part of subprocess.Popen's interface the
    tests use: pid, returncode, poll, wait, send_signal, kill."""

    def __init__(self, zygote: Zygote, pid: int) -> None:
        self.zygote, self.pid = zygote, pid

    @property
    def returncode(self) -> int | None:
        return self.zygote.exit_codes.get(self.pid)

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        zygote = self.zygote
        with zygote.exited:
            if not zygote.exited.wait_for(lambda: self.pid in zygote.exit_codes or not zygote.alive(), timeout):
                raise subprocess.TimeoutExpired(f"node process {self.pid}", timeout)
        if self.pid not in zygote.exit_codes:
            raise RuntimeError(f"the node zygote ended before node process {self.pid}: its exit code is lost")
        return zygote.exit_codes[self.pid]

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:  # not reaped, so the pid is still this process's
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class Zygote:
    """The node zygote of this test run (node_zygote.py): started once, it forks each node program."""

    def __init__(self) -> None:
        environment = {key: value for key, value in os.environ.items() if key != "OMP_NUM_THREADS"}
        self.process = subprocess.Popen([sys.executable, str(Path(__file__).with_name("node_zygote.py"))],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=environment,
                                        cwd=Path(__file__).resolve().parents[2])
        self.exit_codes: dict[int, int] = {}
        self.exited = threading.Condition()
        self._started: list[int] = []
        self._requests = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def alive(self) -> bool:
        return self._reader.is_alive()

    def _read(self) -> None:
        for line in self.process.stdout:
            kind, pid, *code = line.decode().split()
            with self.exited:
                if kind == "started":
                    self._started.append(int(pid))
                else:
                    self.exit_codes[int(pid)] = int(code[0])
                self.exited.notify_all()
        with self.exited:  # the zygote ended: no answer will come
            self.exited.notify_all()

    def fork(self, module: str, arguments: list[str], environment: dict[str, str], log: Path,
             new_session: bool) -> ForkedProcess:
        request = {"module": module, "arguments": arguments, "environment": environment, "cwd": os.getcwd(),
                   "log": str(log), "new_session": new_session}
        with self._requests:
            self.process.stdin.write(json.dumps(request).encode() + b"\n")
            self.process.stdin.flush()
            with self.exited:
                assert self.exited.wait_for(lambda: self._started or not self.alive(), 120), \
                    "the node zygote did not answer"
                assert self._started, f"the node zygote ended with {self.process.wait()}"
                return ForkedProcess(self, self._started.pop(0))

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()


class NodeProcess:
    """The sgnet node in its own process; stop() sends SIGINT as `ros2 launch` does."""

    def __init__(self, log_dir: Path, name: str, namespace: str, parameters: dict[str, Any],
                 environment: dict[str, str] | None = None, new_session: bool = False,
                 zygote: Zygote | None = None) -> None:
        """environment: variables added to this process's; new_session: the node leads its own process group
        (so that a test can signal the group as a terminal's Ctrl-C does); zygote: forks the node program with
        the heavy imports done (node_zygote.py), else ``python -m sgnet_ros.node`` starts a fresh interpreter."""
        self.name, self.namespace = name, namespace
        self.fully_qualified_name = f"{namespace.rstrip('/')}/{name}"
        arguments = ["--ros-args", "-r", f"__node:={name}", "-r", f"__ns:={namespace}"]
        for key, value in parameters.items():
            arguments += ["-p", f"{key}:={json.dumps(value)}"]  # -p values are YAML; JSON scalars are YAML
        self.log_path = log_dir / f"{namespace.strip('/').replace('/', '_')}_{name}.log"
        self.interrupted = False
        full_environment = {**os.environ, **(environment or {})}
        if zygote is not None:
            self.process = zygote.fork("sgnet_ros.node", arguments, full_environment, self.log_path, new_session)
            return
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "sgnet_ros.node", *arguments], stdout=log,
                                            stderr=subprocess.STDOUT, env=full_environment,
                                            start_new_session=new_session)

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def interrupt(self) -> None:
        """One SIGINT, as Ctrl-C sends: a second one could land while Python is finalising, after the node's
        handler is gone, and kill a node that was shutting down cleanly."""
        if self.process.poll() is None and not self.interrupted:
            self.interrupted = True
            self.process.send_signal(signal.SIGINT)

    def stop(self, timeout: float = 60.0) -> int:
        """SIGINT (if not sent yet), then the exit code; killed if it does not exit within timeout (an idle node
        exits within 2 s, test_shutdown.py holds it to that; this bound only keeps a hung node from hanging the
        run on a heavily loaded machine)."""
        self.interrupt()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return self.process.returncode


class Client:
    """A test-side rclpy node spinning in a background thread; records what arrives on each topic. Its entities
    are created and destroyed only between two spins (``_spin_lock``): rclpy's executor walks the node's entities
    while it waits, and changing them from another thread at that moment is a race. (The test process's SIGSEGV
    once blamed on it came from OpenVINO's signal stacks: backends.openvino_core.)"""

    def __init__(self) -> None:
        self.node = rclpy.create_node(f"sgnet_test_{uuid.uuid4().hex[:8]}")
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self._lock = threading.Lock()
        self._spin_lock = threading.Lock()  # held by each spin; taken to create or destroy an entity
        self.messages: dict[str, list[tuple[float, Any]]] = defaultdict(list)  # topic -> (arrival, message)
        self.published: dict[str, list[tuple[int, Any]]] = defaultdict(list)  # topic -> (publisher's send time, message)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._running = True
        self._thread.start()
        # /rosout keeps its last messages for late subscribers (transient local): logs written at start arrive too.
        self.subscribe("/rosout", Log, QoSProfile(depth=1000, durability=DurabilityPolicy.TRANSIENT_LOCAL))

    def _spin(self) -> None:
        while self._running:
            with self._spin_lock:
                self.executor.spin_once(timeout_sec=0.05)
            time.sleep(0)  # let a waiting create or destroy take the lock

    def subscribe(self, topic: str, message_type: type, qos: QoSProfile | int = 50) -> None:
        def record(message: Any, info: Any) -> None:  # info: rclpy's MessageInfo (with a callback of two arguments)
            with self._lock:
                self.messages[topic].append((time.perf_counter(), message))
                self.published[topic].append((info["source_timestamp"], message))
        with self._spin_lock:
            self.node.create_subscription(message_type, topic, record, qos)

    def received(self, topic: str) -> list[Any]:
        with self._lock:
            return [message for _, message in self.messages[topic]]

    def arrivals(self, topic: str) -> list[tuple[float, Any]]:
        with self._lock:
            return list(self.messages[topic])

    def sent_times(self, topic: str) -> list[tuple[int, Any]]:
        """(the publisher's send time, as the middleware stamps it: ns of the system clock, time.time_ns(); message)
        for each message received on the topic: when it left the other process, whatever this one was doing."""
        with self._lock:
            return list(self.published[topic])

    def clear(self, topic: str) -> None:
        with self._lock:
            self.messages[topic] = []
            self.published[topic] = []

    def publisher(self, topic: str, message_type: type = Image, reliable: bool = True, depth: int = 10):
        reliability = ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT
        with self._spin_lock:
            return self.node.create_publisher(message_type, topic, QoSProfile(depth=depth, reliability=reliability))

    def destroy_publisher(self, publisher: Any) -> None:
        with self._spin_lock:
            self.node.destroy_publisher(publisher)

    def logs(self, node: NodeProcess) -> list[Log]:
        logger_name = node.fully_qualified_name.lstrip("/").replace("/", ".")
        return [log for log in self.received("/rosout") if log.name == logger_name]

    def call(self, client_type: type, service: str, request: Any, timeout: float = 30.0, attempts: int = 1) -> Any:
        """``attempts`` > 1 for a request that may be sent again (a query): a request sent while the server has not
        yet discovered the client's reply reader can go unanswered (the service is "available" as soon as the
        server's request reader is matched), which a loaded machine makes likelier."""
        with self._spin_lock:
            client = self.node.create_client(client_type, service)
        try:
            assert client.wait_for_service(timeout_sec=timeout), f"service {service} did not appear"
            for _ in range(attempts):
                future = client.call_async(request)
                if wait_until(future.done, timeout):
                    return future.result()
            raise AssertionError(f"service {service} did not answer ({attempts} requests, {timeout:g} s each)")
        finally:
            with self._spin_lock:
                self.node.destroy_client(client)

    def close(self) -> None:
        self._running = False
        self._thread.join()
        self.executor.remove_node(self.node)
        self.node.destroy_node()


def wait_until(condition: Callable[[], Any], timeout: float, period: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(period)
    return bool(condition())


def image_message(rgb: np.ndarray, stamp: float, frame_id: str = "camera", encoding: str = "rgb8") -> Image:
    """An rgb8 (or bgr8) Image with the given stamp in seconds."""
    height, width = rgb.shape[:2]
    pixels = rgb[:, :, ::-1] if encoding == "bgr8" else rgb
    message = Image(height=height, width=width, encoding=encoding, step=width * 3,
                    data=np.ascontiguousarray(pixels).tobytes())
    message.header.frame_id = frame_id
    message.header.stamp.sec = int(stamp)
    message.header.stamp.nanosec = int(round((stamp - int(stamp)) * 1e9))
    return message


def stamp_of(message: Any) -> float:
    return message.header.stamp.sec + message.header.stamp.nanosec * 1e-9


def diagnostic_values(message: Any, node: NodeProcess) -> dict[str, str] | None:
    """The key-value pairs of the node's status in a DiagnosticArray, or None if it is not in it."""
    for status in message.status:
        if status.name.startswith(f"{node.fully_qualified_name}:"):
            return {value.key: value.value for value in status.values}
    return None


def assert_humble_readable(bag: Path) -> None:
    """The bag's metadata is what Humble's `ros2 bag` reads: rosbag2 version 8 at most, each topic's
    offered_qos_profiles a YAML string (version 9 made it a list)."""
    import yaml

    metadata = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert metadata["version"] <= 8, metadata["version"]
    for topic in metadata["topics_with_message_count"]:
        profiles = topic["topic_metadata"]["offered_qos_profiles"]
        assert isinstance(profiles, str), (topic["topic_metadata"]["name"], profiles)
        assert isinstance(yaml.safe_load(profiles) or [], list)


def set_parameters(client: Client, node: NodeProcess, **values: Any) -> list[Any]:
    """Set the node's parameters through its set_parameters service (``model__x`` names ``model.x``); the results.
    An empty list is set as an empty string array (as the node declares its list parameters)."""
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter

    parameters = [(Parameter(name.replace("__", "."), Parameter.Type.STRING_ARRAY, []) if value == []
                   else Parameter(name.replace("__", "."), value=value)).to_parameter_msg()
                  for name, value in values.items()]
    return client.call(SetParameters, f"{node.fully_qualified_name}/set_parameters",
                       SetParameters.Request(parameters=parameters)).results


def reconfigure(client: Client, node: NodeProcess, **values: Any) -> None:
    """An active node made to serve with other configure-time parameters, through its lifecycle as a user would
    do it (deactivate, cleanup, set, configure, activate): one node process serves several setups in turn."""
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState

    def change(transition: int) -> None:
        request = ChangeState.Request(transition=Transition(id=transition))
        assert client.call(ChangeState, f"{node.fully_qualified_name}/change_state", request).success, \
            (transition, node.output()[-3000:])

    change(Transition.TRANSITION_DEACTIVATE)
    change(Transition.TRANSITION_CLEANUP)
    results = set_parameters(client, node, **values)
    assert all(result.successful for result in results), [result.reason for result in results]
    change(Transition.TRANSITION_CONFIGURE)
    change(Transition.TRANSITION_ACTIVATE)
