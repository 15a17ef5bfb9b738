"""What differs between the ROS 2 distributions the package runs on (Humble, Jazzy, Kilted), in one place.

- QoS event types: ``rclpy.event_handler`` from Iron on; Humble has the same names in ``rclpy.qos_event`` (newer
  releases keep ``qos_event`` only as a deprecated alias, so the new name is tried first).
- Bags: Humble's ``ros2 bag`` reads rosbag2 metadata up to version 8; the bag writers use
  ``sgnet_ros.tools.bag.BAG_METADATA_VERSION`` (there, so that sgnet-bag runs without rclpy).
"""
from __future__ import annotations

try:
    from rclpy.event_handler import (QoSMessageLostInfo, QoSRequestedIncompatibleQoSInfo,
                                     SubscriptionEventCallbacks)
except ImportError:  # Humble
    from rclpy.qos_event import (QoSMessageLostInfo, QoSRequestedIncompatibleQoSInfo,  # type: ignore[no-redef]
                                 SubscriptionEventCallbacks)

__all__ = ["QoSMessageLostInfo", "QoSRequestedIncompatibleQoSInfo",
           "SubscriptionEventCallbacks"]
