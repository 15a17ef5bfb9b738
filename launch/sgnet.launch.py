"""Start the SG-Net node: ros2 launch sgnet_ros sgnet.launch.py image_topic:=/camera/image_raw checkpoint:=model.pt

Several cameras, one model:
    ros2 launch sgnet_ros sgnet.launch.py image_topics:="['/front/image_raw', '/rear/image_raw']"
(outputs /sgnet/front/instances, /sgnet/rear/instances, ...; camera_names:="[...]" names them otherwise).

Launch arguments (see `ros2 launch sgnet_ros sgnet.launch.py --show-args`): image_topic, image_topics,
compressed_image_topics, camera_names, depth_image_topics, frame_sizes, params_file, checkpoint, device, namespace (default "sgnet": the outputs are
/sgnet/instances, ...), debug_image, autostart, qos_reliability, use_sim_time, log_level, depth_image_topic, rviz,
rviz_fixed_frame. An argument left empty keeps the value of the params file, so a checkpoint or device set there is
not overridden.

rviz:=true also starts rviz2 with config/sgnet.rviz (debug image, label image, 3D markers, TF), its topics moved to
the node's namespace and its fixed frame set to rviz_fixed_frame (the camera's optical frame), where rviz2 is
installed; where it is not, one log line says so and the node runs alone.

Middleware: unless FASTDDS_DEFAULT_PROFILES_FILE or FASTRTPS_DEFAULT_PROFILES_FILE is set already, the node gets
config/fastdds_large_images.xml (Fast DDS's default shared-memory segment loses images over 512 KB); the camera
driver's process needs it as well (docs/ros.md). Other middlewares ignore the variable.
"""
import os
import tempfile
from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, LogInfo, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode

from sgnet_ros.inputs import fastdds_profile_environment
from sgnet_ros.params import string_list
from sgnet_ros.rviz import CONFIG_NAMESPACE, NOT_INSTALLED, config_for_namespace, find_rviz2, rviz_command, topic_prefix

PACKAGE = "sgnet_ros"
ARGUMENTS = ("image_topic", "params_file", "checkpoint", "device", "namespace", "debug_image", "autostart",
             "qos_reliability", "use_sim_time", "log_level", "depth_image_topic", "rviz", "rviz_fixed_frame",
             "image_topics", "compressed_image_topics", "camera_names", "depth_image_topics", "frame_sizes")


def boolean(name: str, value: str) -> bool:
    if value.lower() not in ("true", "false"):
        raise ValueError(f"launch argument {name} must be true or false, got {value!r}")
    return value.lower() == "true"


def rviz_actions(namespace: str, fixed_frame: str) -> list[ExecuteProcess | LogInfo]:
    """rviz2 on config/sgnet.rviz for the node's namespace, or a log line saying that rviz2 is not installed."""
    config = Path(get_package_share_directory(PACKAGE)) / "config" / "sgnet.rviz"
    executable = find_rviz2()
    if executable is None:
        return [LogInfo(msg=NOT_INSTALLED.format(config=config, fixed_frame=fixed_frame))]
    if topic_prefix(namespace) != CONFIG_NAMESPACE:
        handle, path = tempfile.mkstemp(prefix="sgnet_", suffix=".rviz")
        with os.fdopen(handle, "w") as rewritten:
            rewritten.write(config_for_namespace(config.read_text(), namespace))
        config = Path(path)
    return [ExecuteProcess(cmd=rviz_command(executable, str(config), fixed_frame), name="rviz2", output="screen")]


def node_with_arguments(context: LaunchContext) -> list[LifecycleNode | ExecuteProcess | LogInfo]:
    """The node, with the parameters and the remapping that the given (non-empty) launch arguments ask for."""
    value = {name: LaunchConfiguration(name).perform(context).strip() for name in ARGUMENTS}
    overrides = {"use_sim_time": boolean("use_sim_time", value["use_sim_time"])}
    if value["checkpoint"]:
        overrides["checkpoint"] = str(Path(value["checkpoint"]).expanduser().resolve())
    if value["device"]:
        overrides["predictor.device"] = value["device"]
    if value["qos_reliability"]:
        overrides["qos_reliability"] = value["qos_reliability"]
    for name in ("debug_image", "autostart"):
        if value[name]:
            overrides[name] = boolean(name, value[name])
    if value["depth_image_topic"]:  # instances in 3D (docs/depth.md); camera_info is taken from beside it
        overrides["depth_image_topic"] = value["depth_image_topic"]
    for name in ("image_topics", "compressed_image_topics", "camera_names", "depth_image_topics", "frame_sizes"):
        if value[name]:
            overrides[name] = string_list(name, value[name])
    parameters = [value["params_file"]] if value["params_file"] else []
    several = value["image_topics"] or value["compressed_image_topics"]  # several cameras (docs/ros.md)
    remappings = [("image", value["image_topic"])] if value["image_topic"] and not several else []
    profile = str(Path(get_package_share_directory(PACKAGE)) / "config" / "fastdds_large_images.xml")
    node = LifecycleNode(package=PACKAGE, executable="sgnet_node", name="sgnet", namespace=value["namespace"],
                         parameters=[*parameters, overrides], remappings=remappings, output="screen",
                         arguments=["--ros-args", "--log-level", value["log_level"]],
                         additional_env=fastdds_profile_environment(os.environ, profile))
    if not boolean("rviz", value["rviz"]):
        return [node]
    return [node, *rviz_actions(value["namespace"], value["rviz_fixed_frame"])]


def generate_launch_description() -> LaunchDescription:
    default_params = str(Path(get_package_share_directory(PACKAGE)) / "config" / "sgnet.yaml")
    arguments = [
        DeclareLaunchArgument("image_topic", default_value="/camera/image_raw",
                              description="sensor_msgs/Image topic of the camera (the node's 'image' is remapped to it)"),
        DeclareLaunchArgument("params_file", default_value=default_params,
                              description="YAML file of node parameters (see config/sgnet.yaml)"),
        DeclareLaunchArgument("checkpoint", default_value="",
                              description="checkpoint written by sgnet-train (empty: the params file's)"),
        DeclareLaunchArgument("device", default_value="",
                              description="cpu, cuda or cuda:N (empty: the params file's)"),
        DeclareLaunchArgument("namespace", default_value="sgnet",
                              description="namespace of the node and its output topics"),
        DeclareLaunchArgument("debug_image", default_value="",
                              description="true or false: offer the debug_image topic (empty: the params file's)"),
        DeclareLaunchArgument("autostart", default_value="",
                              description="true or false: configure and activate at start (empty: the params "
                                          "file's); false leaves it to a lifecycle manager"),
        DeclareLaunchArgument("qos_reliability", default_value="",
                              description="auto, best_effort or reliable: the image subscription (empty: the "
                                          "params file's)"),
        DeclareLaunchArgument("use_sim_time", default_value="false",
                              description="true: use /clock (bag playback with --clock)"),
        DeclareLaunchArgument("log_level", default_value="info",
                              description="debug, info, warn, error or fatal"),
        DeclareLaunchArgument("depth_image_topic", default_value="",
                              description="depth image aligned to the colour image (16UC1 or 32FC1), e.g. "
                                          "/camera/camera/aligned_depth_to_color/image_raw, for instances in 3D "
                                          "(empty: the params file's)"),
        DeclareLaunchArgument("image_topics", default_value="",
                              description="several cameras, one model: a list of sensor_msgs/Image topics, e.g. "
                                          "\"['/front/image_raw', '/rear/image_raw']\" (replaces image_topic; "
                                          "outputs under <namespace>/<camera>/)"),
        DeclareLaunchArgument("compressed_image_topics", default_value="",
                              description="several cameras: a list of sensor_msgs/CompressedImage topics, one "
                                          "camera each (beside or instead of image_topics)"),
        DeclareLaunchArgument("camera_names", default_value="",
                              description="one name per camera of image_topics (empty: each topic's first "
                                          "namespace, /front/image_raw -> front)"),
        DeclareLaunchArgument("depth_image_topics", default_value="",
                              description="one aligned depth topic per camera of image_topics, '' for none"),
        DeclareLaunchArgument("frame_sizes", default_value="",
                              description="frame sizes to prepare at configure, e.g. \"['640x360', '1280x720']\" "
                                          "(a backend other than torch exports a graph per size; others are "
                                          "prepared on their first frame)"),
        DeclareLaunchArgument("rviz", default_value="false",
                              description="true: also start rviz2 with config/sgnet.rviz (debug image, label image, "
                                          "3D markers, TF) where rviz2 is installed"),
        DeclareLaunchArgument("rviz_fixed_frame", default_value="camera_color_optical_frame",
                              description="rviz2's fixed frame: the colour camera's optical frame (the frame_id of "
                                          "its images; RealSense: camera_color_optical_frame)"),
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=node_with_arguments)])
