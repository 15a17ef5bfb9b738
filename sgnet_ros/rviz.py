"""rviz2 for the launch file's ``rviz:=true``: where rviz2 is, and the shipped config/sgnet.rviz for the node's
namespace. rviz2 comes with a ROS 2 desktop install (not on PyPI); without it the launch file says so and starts the
node alone."""
from __future__ import annotations

import shutil
from pathlib import Path

RVIZ_PACKAGE = "rviz2"
CONFIG_NAMESPACE = "/sgnet/"  # the topics of config/sgnet.rviz: the launch file's default namespace
NOT_INSTALLED = ("rviz:=true but rviz2 is not installed (no rviz2 package in the ament index, none on PATH): the node "
                 "runs without it. Install it (sudo apt install ros-$ROS_DISTRO-rviz2) or start it on another "
                 "machine with: rviz2 -d {config} -f {fixed_frame}")


def find_rviz2() -> str | None:
    """The rviz2 executable: the rviz2 package's (ament index) where ROS is sourced, else rviz2 on PATH; None."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_prefix
    except ImportError:
        return shutil.which(RVIZ_PACKAGE)
    try:
        executable = Path(get_package_prefix(RVIZ_PACKAGE)) / "lib" / RVIZ_PACKAGE / RVIZ_PACKAGE
    except PackageNotFoundError:
        return shutil.which(RVIZ_PACKAGE)
    return str(executable) if executable.is_file() else shutil.which(RVIZ_PACKAGE)


def topic_prefix(namespace: str) -> str:
    """The node's outputs' prefix for a launch ``namespace`` ("sgnet", "/robot/sgnet/", "" for none)."""
    inner = namespace.strip("/")
    return f"/{inner}/" if inner else "/"


def config_for_namespace(text: str, namespace: str) -> str:
    """config/sgnet.rviz's text with its topics moved from /sgnet/ to the node's ``namespace``."""
    prefix = topic_prefix(namespace)
    return "\n".join(line.replace(f"Value: {CONFIG_NAMESPACE}", f"Value: {prefix}") for line in text.split("\n"))


def rviz_command(executable: str, config: str, fixed_frame: str) -> list[str]:
    """rviz2 with the display config and the fixed frame (the camera's optical frame: the markers' frame)."""
    return [executable, "-d", config, "-f", fixed_frame]
