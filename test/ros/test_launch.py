"""launch/sgnet.launch.py started by launch_testing, as `ros2 launch sgnet_ros sgnet.launch.py` does after
`colcon build`: images in on the camera topic, instances out under the namespace, exit status 0.

launch, launch_ros and launch_testing come with a ROS 2 install and are not on PyPI, so this test runs where
they are and the package is installed (`colcon test` in a workspace, after `source install/setup.bash`), and is
skipped elsewhere. The node runs random weights (launch_test_params.yaml): no checkpoint file is written.
"""
import time
import unittest
from pathlib import Path

import pytest

pytest.importorskip("launch_testing", reason="launch_testing is part of a ROS 2 install (not on PyPI); "
                                             "run this test with colcon test in a ROS 2 workspace")
pytest.importorskip("launch_ros", reason="launch_ros is part of a ROS 2 install (not on PyPI)")
from ament_index_python.packages import PackageNotFoundError, get_package_share_directory  # noqa: E402

try:
    get_package_share_directory("sgnet_ros")
except PackageNotFoundError:
    pytest.skip("the sgnet_ros package is not installed in a ROS workspace (colcon build, then source "
                "install/setup.bash): the launch file starts its installed sgnet_node", allow_module_level=True)

import launch  # noqa: E402
import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402
import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from sgnet_ros.msg import InstanceArray  # noqa: E402

LAUNCH_FILE = Path(__file__).resolve().parents[2] / "launch" / "sgnet.launch.py"
CAMERA_TOPIC = "/launch_test_camera/image_raw"
NAMESPACE = "launch_test"
PARAMETERS = Path(__file__).with_name("launch_test_params.yaml")


@pytest.mark.launch_test
def generate_test_description():
    sgnet = launch.actions.IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(LAUNCH_FILE)),
        launch_arguments={"image_topic": CAMERA_TOPIC, "params_file": str(PARAMETERS), "device": "cpu",
                          "namespace": NAMESPACE}.items())
    return launch.LaunchDescription([sgnet, launch_testing.actions.ReadyToTest()])


class TestInstancesComeOut(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rclpy.init()
        cls.node = rclpy.create_node("sgnet_launch_test")

    @classmethod
    def tearDownClass(cls):
        cls.node.destroy_node()
        rclpy.shutdown()

    def test_an_image_gives_instances_with_its_header(self):
        received = []
        self.node.create_subscription(InstanceArray, f"/{NAMESPACE}/instances", received.append, 10)
        publisher = self.node.create_publisher(Image, CAMERA_TOPIC, 10)
        rgb = np.random.default_rng(0).integers(0, 256, (96, 160, 3), dtype=np.uint8)
        image = Image(height=96, width=160, encoding="rgb8", step=480, data=rgb.tobytes())
        image.header.frame_id = "launch_test_camera"
        image.header.stamp.sec = 42
        deadline = time.monotonic() + 60
        while not received and time.monotonic() < deadline:
            publisher.publish(image)
            end = time.monotonic() + 1.0
            while not received and time.monotonic() < end:
                rclpy.spin_once(self.node, timeout_sec=0.1)
        self.assertTrue(received, "no instances from the launched node within 60 s")
        self.assertEqual(received[0].header.frame_id, "launch_test_camera")
        self.assertEqual(received[0].header.stamp.sec, 42)


@launch_testing.post_shutdown_test()
class TestCleanExit(unittest.TestCase):
    def test_exit_code(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info, allowable_exit_codes=[0])

