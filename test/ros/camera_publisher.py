"""A stand-in camera driver in its own process, as a robot's camera node runs beside ours:
python camera_publisher.py TOPIC RELIABILITY WIDTH HEIGHT COUNT RATE_HZ

Publishes COUNT rgb8 frames stamped 1, 2, ... seconds at RATE_HZ with the given reliability (reliable or
best_effort, KEEP_LAST 1 as drivers do), starting once the subscriptions on the topic have settled: every one
has this publisher's reliability and one is matched, for half a second on end (the node looks at the publishers
once a second to choose its reliability, and recreates its subscription when it changes). At the end it waits
until a reliable subscriber has acknowledged every frame (best effort: lingers 1 s) so that the last frame can
be delivered.
Its middleware settings come from the environment, like a driver's (FASTDDS_DEFAULT_PROFILES_FILE).
"""
import sys
import time

import numpy as np
import rclpy
from rclpy.duration import Duration
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image


def main() -> None:
    topic, reliability = sys.argv[1], sys.argv[2]
    width, height, count, rate_hz = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
    rclpy.init()
    node = rclpy.create_node("camera_publisher")
    policy = ReliabilityPolicy.RELIABLE if reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT
    publisher = node.create_publisher(Image, topic, QoSProfile(depth=1, reliability=policy))

    def settled() -> bool:
        subscriptions = node.get_subscriptions_info_by_topic(topic)
        return publisher.get_subscription_count() > 0 and bool(subscriptions) and all(
            info.qos_profile.reliability == policy for info in subscriptions)

    since = None
    while since is None or time.monotonic() - since < 0.5:
        since = (since or time.monotonic()) if settled() else None
        time.sleep(0.05)
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    message = Image(height=height, width=width, encoding="rgb8", step=width * 3, data=pixels.tobytes())
    message.header.frame_id = "camera"
    start = time.monotonic()
    for k in range(count):
        time.sleep(max(0.0, start + k / rate_hz - time.monotonic()))
        message.header.stamp.sec = k + 1
        publisher.publish(message)
    if policy == ReliabilityPolicy.RELIABLE:
        publisher.wait_for_all_acked(Duration(seconds=10))
    else:
        time.sleep(1.0)
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    main()
