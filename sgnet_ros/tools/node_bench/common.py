"""What the one-camera and the several-camera benchmarks share: the error, synthetic frames as image messages,
spinning until a condition holds."""
from __future__ import annotations

import signal
import subprocess
import time
from typing import Any

import numpy as np


class BenchError(RuntimeError):
    """The benchmark cannot run (the node did not start or does not answer)."""


def image_message(rgb: np.ndarray, index: int, period_s: float) -> Any:
    """Frame ``index`` of a camera running at 1 / period_s; the index travels in header.frame_id, which the
    node copies into its output."""
    from sensor_msgs.msg import Image

    height, width = rgb.shape[:2]
    message = Image(height=height, width=width, encoding="rgb8", step=width * 3, data=rgb.tobytes())
    message.header.frame_id = str(index)
    stamp_ns = int(round(index * period_s * 1e9))
    message.header.stamp.sec, message.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    return message


def frames(count: int, height: int, width: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(count)]


def spin_until(executor: Any, condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        executor.spin_once(timeout_sec=0.005)
    return bool(condition())


def stop_process(process: subprocess.Popen, timeout_s: float) -> None:
    """Stop a node process with SIGINT, as ros2 launch does; kill it when it has not ended within ``timeout_s``."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
