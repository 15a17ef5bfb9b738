"""Start the SG-Net node: ros2 launch sgnet_ros sgnet.launch.py image_topic:=/camera/image_raw checkpoint:=model.pt

Launch arguments (see `ros2 launch sgnet_ros sgnet.launch.py --show-args`): image_topic, params_file, checkpoint,
device, namespace, debug_image. An argument left empty keeps the value of the params file, so a checkpoint or
device set there is not overridden. The node configures and activates itself (parameter autostart); set
autostart to false in the params file to leave that to a lifecycle manager.
"""
from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode

PACKAGE = "sgnet_ros"


def node_with_arguments(context: LaunchContext) -> list[LifecycleNode]:
    """The node, with the parameters and the remapping that the given (non-empty) launch arguments ask for."""
    value = {name: LaunchConfiguration(name).perform(context).strip()
             for name in ("image_topic", "params_file", "checkpoint", "device", "namespace", "debug_image",
                          "depth_image_topic")}
    overrides = {}
    if value["checkpoint"]:
        overrides["checkpoint"] = str(Path(value["checkpoint"]).expanduser().resolve())
    if value["device"]:
        overrides["predictor.device"] = value["device"]
    if value["debug_image"]:
        if value["debug_image"].lower() not in ("true", "false"):
            raise ValueError(f"launch argument debug_image must be true or false, got {value['debug_image']!r}")
        overrides["debug_image"] = value["debug_image"].lower() == "true"
    if value["depth_image_topic"]:  # instances in 3D (docs/depth.md); camera_info is taken from beside it
        overrides["depth_image_topic"] = value["depth_image_topic"]
    parameters = [value["params_file"]] if value["params_file"] else []
    remappings = [("image", value["image_topic"])] if value["image_topic"] else []
    return [LifecycleNode(package=PACKAGE, executable="sgnet_node", name="sgnet", namespace=value["namespace"],
                          parameters=[*parameters, overrides], remappings=remappings, output="screen")]


def generate_launch_description() -> LaunchDescription:
    default_params = str(Path(get_package_share_directory(PACKAGE)) / "config" / "sgnet.yaml")
    arguments = [
        DeclareLaunchArgument("image_topic", default_value="image",
                              description="sensor_msgs/Image topic of the camera (the node's 'image' is remapped to it)"),
        DeclareLaunchArgument("params_file", default_value=default_params,
                              description="YAML file of node parameters (see config/sgnet.yaml)"),
        DeclareLaunchArgument("checkpoint", default_value="",
                              description="checkpoint written by sgnet-train (empty: the params file's)"),
        DeclareLaunchArgument("device", default_value="",
                              description="cpu, cuda or cuda:N (empty: the params file's)"),
        DeclareLaunchArgument("namespace", default_value="",
                              description="namespace of the node and its topics"),
        DeclareLaunchArgument("debug_image", default_value="",
                              description="true or false: offer the debug_image topic (empty: the params file's)"),
        DeclareLaunchArgument("depth_image_topic", default_value="",
                              description="depth image aligned to the colour image (16UC1 or 32FC1), e.g. "
                                          "/camera/camera/aligned_depth_to_color/image_raw, for instances in 3D "
                                          "(empty: the params file's)"),
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=node_with_arguments)])
