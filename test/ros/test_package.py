"""The package as a ROS distribution sees it: one source tree for Humble, Jazzy and Kilted (Humble's rclpy module
layout, bags Humble's `ros2 bag` reads), complete run dependencies in package.xml, no pycocotools in the node,
and the launch test skipping where the package is not installed."""
import ast
import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import cv2
import numpy as np
import pytest

from ros_harness import assert_humble_readable
from sgnet_ros.tools.bag import main as sgnet_bag

ROOT = Path(__file__).resolve().parents[2]
# ROS packages a ROS install provides that are not wheels here (no share/<name>/package.xml in this venv).
ROS_ONLY = {"launch", "launch_ros", "launch_testing", "vision_msgs"}


def run_python(code: str, **environment: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300,
                          cwd=ROOT, env={**os.environ, **environment})


@pytest.mark.slow  # a process importing torch (more than 2.5 s)
def test_the_node_imports_with_humbles_rclpy_layout_and_without_pycocotools():
    """Humble's rclpy has the QoS event names in rclpy.qos_event and no rclpy.event_handler: once rclpy's own
    modules are loaded (they import it internally here), hide the one and serve the other (the same classes),
    then import the node. The node's import does not load pycocotools (an evaluation dependency); one process
    for both checks, as each costs a process that imports torch."""
    done = run_python("""
        import importlib.abc, importlib.util, sys, types
        import rclpy, rclpy.node, rclpy.executors, rclpy.lifecycle, rclpy.subscription, rclpy.publisher
        import rclpy.event_handler as real

        class HumbleLayout(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name == "rclpy.event_handler":
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
                return None

        sys.modules.pop("rclpy.event_handler")
        del rclpy.event_handler
        sys.meta_path.insert(0, HumbleLayout())
        qos_event = types.ModuleType("rclpy.qos_event")
        for name in ("QoSMessageLostInfo", "QoSRequestedIncompatibleQoSInfo", "SubscriptionEventCallbacks"):
            setattr(qos_event, name, getattr(real, name))
        sys.modules["rclpy.qos_event"] = qos_event
        import sgnet_ros.node, sgnet_ros.compat as compat
        assert "rclpy.event_handler" not in sys.modules
        assert compat.SubscriptionEventCallbacks is real.SubscriptionEventCallbacks
        print("imported", "pycocotools" in sys.modules)
    """)
    assert done.returncode == 0 and done.stdout.strip() == "imported False", (done.stdout, done.stderr[-3000:])


def test_sgnet_bag_writes_bags_humble_reads(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for index in range(2):
        cv2.imwrite(str(folder / f"{index}.png"), np.full((8, 12, 3), 40 * index, np.uint8))
    for storage in ("mcap", "sqlite3"):
        bag = tmp_path / f"bag_{storage}"
        assert sgnet_bag(["images", str(folder), "--fps", "5", "-o", str(bag), "--storage", storage,
                          "--no-progress"]) == 0
        assert_humble_readable(bag)


def imported_packages(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_package_xml_names_every_ros_package_the_code_imports():
    root = ElementTree.parse(ROOT / "package.xml").getroot()
    declared = {element.text for element in root if element.tag in ("depend", "exec_depend")}
    sources = [*(ROOT / "sgnet_ros").rglob("*.py"), *(ROOT / "launch").glob("*.py")]  # subpackages too
    imported = set().union(*(imported_packages(path) for path in sources)) - {"sgnet_ros", "sgnet_model", "training"}
    share = Path(sys.prefix) / "share"
    ros_packages = {name for name in imported if (share / name / "package.xml").is_file() or name in ROS_ONLY}
    assert {"rclpy", "rcl_interfaces", "sensor_msgs", "ament_index_python", "launch_ros"} <= ros_packages
    assert ros_packages - declared == set()


def test_the_launch_test_skips_where_the_package_is_not_installed(tmp_path):
    """launch_testing and launch_ros importable (stand-ins here: the real ones are not on PyPI) but no installed
    sgnet_ros in the ament index: the launch test is skipped with the reason, not failed."""
    for name in ("launch_testing", "launch_ros"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("")
    done = subprocess.run([sys.executable, "-m", "pytest", str(ROOT / "test" / "ros" / "test_launch.py"), "-rs",
                           "-p", "no:cacheprovider", "-q"], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(tmp_path), "AMENT_PREFIX_PATH": str(tmp_path)})
    assert done.returncode in (0, 5), done.stdout[-3000:]  # 5: pytest's "no tests ran" after a module skip
    assert "1 skipped" in done.stdout and "sgnet_ros package is not installed" in done.stdout
