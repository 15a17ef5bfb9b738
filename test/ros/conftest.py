"""Fixtures of the ROS tests: an isolated ROS 2 environment for this test run, and node processes in it."""
from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path
from typing import IO, Callable, Iterator

import pytest
import rclpy

from ros_harness import Client, NodeProcess, Zygote
from sgnet_ros.inputs import fastdds_profile_environment

LAUNCH_PROFILE = str(Path(__file__).resolve().parents[2] / "config" / "fastdds_large_images.xml")
# The runtime of the nodes the tests start, unless a test asks for another or for the shipped default
# (``shipped_runtime=True``: predictor.backend and precision auto, which on a CPU with bf16 exports the model's frame
# graph for OpenVINO at configure): torch in fp32, the reference arithmetic, the same on every CPU kind. The tests of
# the shipped runtime: test_camera_delivery.py (drivers' settings, every default) and test_diagnostics.py.
REFERENCE_RUNTIME = {"predictor__backend": "torch", "predictor__precision": "fp32"}


class RosSession:
    def __init__(self, root: Path, zygote: Zygote) -> None:
        self.root = root
        self.zygote = zygote
        self.client = Client()

    def start_node(self, name: str, namespace: str, environment: dict[str, str] | None = None,
                   new_session: bool = False, fresh_interpreter: bool = False, shipped_runtime: bool = False,
                   **parameters) -> NodeProcess:
        """The node program forked by the zygote (node_zygote.py: the imports done once), or with
        ``fresh_interpreter`` started as ``python -m sgnet_ros.node`` (for tests of the program's own start); on
        REFERENCE_RUNTIME unless ``shipped_runtime`` or the parameters name a runtime."""
        parameters = parameters if shipped_runtime else {**REFERENCE_RUNTIME, **parameters}
        return NodeProcess(self.root, name, namespace, {key.replace("__", "."): value
                                                       for key, value in parameters.items()},
                           environment, new_session, None if fresh_interpreter else self.zygote)


EARLY_ZYGOTE: list[Zygote] = []


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the node zygote (node_zygote.py) as soon as the tests are known, if one of them starts nodes: its
    imports (3 s of one core) run beside the tests before the first ROS test instead of delaying its first node.
    Each pytest-xdist worker has its own (``--dist load`` gives each worker ROS tests)."""
    if not session.config.option.collectonly and any("ros" in getattr(item, "fixturenames", ())
                                                     for item in session.items):
        EARLY_ZYGOTE.append(Zygote())


def claim_domain() -> tuple[int, IO[str]]:
    """A DDS domain (1 to 100) that no other test process on this machine holds, and the open lock file that holds
    it until this process ends: the first free one from a start drawn from the process id. Two workers of one run,
    or two runs side by side (a seed sweep beside the suite), never share a domain; a domain from the process id
    alone was shared by two runs whose ids differed by a multiple of 25."""
    start = os.getpid() % 100
    for step in range(100):
        domain = 1 + (start + step) % 100
        lock = open(Path(tempfile.gettempdir()) / f"sgnet-test-dds-domain-{domain}.lock", "w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return domain, lock
        except BlockingIOError:
            lock.close()
    raise RuntimeError("DDS domains 1 to 100 are all held by other test runs on this machine")


@pytest.fixture(scope="session")
def ros(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RosSession]:
    """ROS 2 for this test run only: its own domain id, discovery on this machine only, logs and temporary files
    in a temporary folder, and the Fast DDS profile that sgnet.launch.py gives the node and asks of the camera
    driver (config/fastdds_large_images.xml; a profile of the user's own is set aside). With Fast DDS's default
    512 KB shared-memory segment a writer recycles the buffer of an image the node has not taken yet when the
    machine is busy: a best-effort frame a test sends once is lost. Node processes inherit the environment."""
    root = tmp_path_factory.mktemp("ros")
    (root / "log").mkdir()
    (root / "tmp").mkdir()
    patch = pytest.MonkeyPatch()
    domain, lock = claim_domain()
    patch.setenv("ROS_DOMAIN_ID", str(domain))
    patch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    patch.setenv("ROS_LOG_DIR", str(root / "log"))
    patch.setenv("TMPDIR", str(root / "tmp"))
    for variable in [name for name in os.environ if name.endswith("DEFAULT_PROFILES_FILE")]:
        patch.delenv(variable)
    for variable, value in fastdds_profile_environment(os.environ, LAUNCH_PROFILE).items():
        patch.setenv(variable, value)
    rclpy.init()
    session = RosSession(root, EARLY_ZYGOTE.pop() if EARLY_ZYGOTE else Zygote())
    yield session
    session.client.close()
    session.zygote.close()
    rclpy.shutdown()
    patch.undo()
    lock.close()


@pytest.fixture(scope="module")
def node_factory(ros: RosSession) -> Iterator[Callable[..., NodeProcess]]:
    """start(name, namespace, **parameters) -> NodeProcess; every node started is stopped (SIGINT) at the end of
    the module, and must exit cleanly."""
    started: list[NodeProcess] = []

    def start(name: str, namespace: str, **parameters) -> NodeProcess:
        node = ros.start_node(name, namespace, **parameters)  # environment=, new_session= pass through
        started.append(node)
        return node

    yield start
    for node in started:
        node.interrupt()
    failures = []
    for node in started:
        code = node.stop()
        if code != 0:
            failures.append(f"{node.fully_qualified_name} exited with {code}:\n{node.output()[-3000:]}")
    assert not failures, "\n".join(failures)
