"""Subscriptions that receive what cameras publish: reliability as the publishers offer it, and camera_info.

QoS. A reliable subscription never hears a best-effort publisher (most camera drivers publish sensor-data QoS,
best effort), and a best-effort one may lose large images that a reliable publisher would have repaired. With
``qos_reliability: auto`` the subscription is reliable when every publisher on the topic is reliable and best
effort otherwise (also while there is none: best effort hears any publisher that appears). ``refresh()``,
called periodically and on an incompatible-QoS event, looks at the publishers again and recreates the
subscription when the wanted reliability changed.

Large images on Fast DDS (the default middleware) need more: config/fastdds_large_images.xml, which the launch
file hands the node through the environment (fastdds_profile_environment).

camera_info: by the image_transport convention the camera's CameraInfo lies beside its image topic
(``/camera/image_raw`` -> ``/camera/camera_info``).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from sgnet_model.config import config_dir
from sgnet_ros.compat import SubscriptionEventCallbacks


def matching_reliability(offered: Sequence[ReliabilityPolicy]) -> ReliabilityPolicy:
    """RELIABLE when there are publishers and all offer reliable delivery, else BEST_EFFORT."""
    if offered and all(policy == ReliabilityPolicy.RELIABLE for policy in offered):
        return ReliabilityPolicy.RELIABLE
    return ReliabilityPolicy.BEST_EFFORT


FASTDDS_PROFILE_VARIABLES = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")
FAST_DDS_2_DISTRIBUTIONS = ("humble", "iron", "jazzy")  # Fast DDS 2.x reads only the FASTRTPS_ name


def shipped_fastdds_profile() -> str:
    """config/fastdds_large_images.xml where this installation keeps it (the source tree, or share/sgnet_ros)."""
    return str(config_dir() / "fastdds_large_images.xml")


def fastdds_profile_environment(environment: Mapping[str, str], profile: str) -> dict[str, str]:
    """The variable that makes Fast DDS read ``profile``: FASTRTPS_DEFAULT_PROFILES_FILE up to Jazzy (Fast DDS
    2), FASTDDS_DEFAULT_PROFILES_FILE from Kilted on (Fast DDS 3 warns about the old name). Nothing when the
    user has set either already: their own profile wins."""
    if any(environment.get(name) for name in FASTDDS_PROFILE_VARIABLES):
        return {}
    fast_dds_2 = environment.get("ROS_DISTRO", "").lower() in FAST_DDS_2_DISTRIBUTIONS
    return {FASTDDS_PROFILE_VARIABLES[1] if fast_dds_2 else FASTDDS_PROFILE_VARIABLES[0]: profile}


def sibling_camera_info(image_topic: str) -> str:
    """The CameraInfo topic beside a fully qualified image topic: /camera/image_raw -> /camera/camera_info
    (for a compressed topic, beside its base image topic: /camera/image_raw/compressed -> the same)."""
    base = image_topic.removesuffix("/compressed")
    return f"{base.rsplit('/', 1)[0]}/camera_info"


class CameraSubscription:
    """One input topic of the node: a subscription whose reliability is fixed or follows the publishers.

    ``setting`` is the qos_reliability parameter (auto, best_effort or reliable). ``on_incompatible(topic,
    event)`` and ``on_lost(topic, event)`` are told about QoS events; in auto mode an incompatible publisher
    makes the subscription look at the publishers again at once instead.
    """

    def __init__(self, node: Node, message_type: type, topic: str, callback: Callable[[Any], None], depth: int,
                 setting: str, on_incompatible: Callable[[str, Any], None],
                 on_lost: Callable[[str, Any], None]) -> None:
        self._node, self._message_type, self._callback, self._depth = node, message_type, callback, depth
        self._setting, self._on_incompatible, self._on_lost = setting, on_incompatible, on_lost
        self.topic = node.resolve_topic_name(topic)
        self._subscription = None
        self.reliability: ReliabilityPolicy | None = None
        self.refresh()

    def wanted_reliability(self) -> ReliabilityPolicy:
        if self._setting == "reliable":
            return ReliabilityPolicy.RELIABLE
        if self._setting == "best_effort":
            return ReliabilityPolicy.BEST_EFFORT
        publishers = self._node.get_publishers_info_by_topic(self.topic)
        return matching_reliability([info.qos_profile.reliability for info in publishers
                                     if info.node_name != self._node.get_name()
                                     or info.node_namespace != self._node.get_namespace()])

    def refresh(self) -> bool:
        """Recreate the subscription if the reliability it should have changed; True when it did."""
        if self._node.context is None or not self._node.context.ok():
            return False
        wanted = self.wanted_reliability()
        if wanted == self.reliability and self._subscription is not None:
            return False
        self.destroy()
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=self._depth, reliability=wanted,
                         durability=DurabilityPolicy.VOLATILE)
        events = SubscriptionEventCallbacks(incompatible_qos=self._incompatible,
                                            message_lost=lambda event: self._on_lost(self.topic, event))
        self._subscription = self._node.create_subscription(self._message_type, self.topic, self._callback, qos,
                                                            event_callbacks=events)
        self.reliability = wanted
        return True

    def _incompatible(self, event: Any) -> None:
        if self._setting == "auto":
            self.refresh()
        else:
            self._on_incompatible(self.topic, event)

    def destroy(self) -> None:
        if self._subscription is not None:
            self._node.destroy_subscription(self._subscription)
            self._subscription = None
