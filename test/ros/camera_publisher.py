"""A stand-in camera driver in its own process, as a robot's camera node runs beside ours:
python camera_publisher.py TOPIC RELIABILITY WIDTH HEIGHT COUNT RATE_HZ [--first-stamp S] [--last-size WxH]

Publishes COUNT rgb8 frames stamped S, S + 1, ... seconds (S = 1 unless given) at RATE_HZ with the given
reliability (reliable or best_effort, KEEP_LAST 1 as drivers do), starting once the subscriptions on the topic have
settled: every one has this publisher's reliability and one is matched, for half a second on end (the node looks at
the publishers once a second to choose its reliability, and recreates its subscription when it changes). At the end
it waits until a reliable subscriber has acknowledged every frame (best effort: lingers 1 s) so that the last frame
can be delivered. With --last-size the last frame has another size (a small frame after large ones: its sequence
number tells a best-effort reader how many of the large ones it lost).
Its middleware settings come from the environment, like a driver's (FASTDDS_DEFAULT_PROFILES_FILE).
"""
import argparse
import time

import numpy as np
import rclpy
from rclpy.duration import Duration
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image


def frame(width: int, height: int) -> Image:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    message = Image(height=height, width=width, encoding="rgb8", step=width * 3, data=pixels.tobytes())
    message.header.frame_id = "camera"
    return message


def main() -> None:
    parser = argparse.ArgumentParser()
    for name, kind in (("topic", str), ("reliability", str), ("width", int), ("height", int), ("count", int),
                       ("rate_hz", float)):
        parser.add_argument(name, type=kind)
    parser.add_argument("--first-stamp", type=int, default=1)
    parser.add_argument("--last-size", type=lambda text: tuple(map(int, text.split("x"))))
    options = parser.parse_args()
    topic, reliability, count, rate_hz = options.topic, options.reliability, options.count, options.rate_hz
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
    message, last = frame(options.width, options.height), frame(*(options.last_size or (options.width, options.height)))
    start = time.monotonic()
    for k in range(count):
        time.sleep(max(0.0, start + k / rate_hz - time.monotonic()))
        sent = last if k == count - 1 else message
        sent.header.stamp.sec = options.first_stamp + k
        publisher.publish(sent)
    if policy == ReliabilityPolicy.RELIABLE:
        publisher.wait_for_all_acked(Duration(seconds=10))
    else:
        time.sleep(1.0)
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    main()
