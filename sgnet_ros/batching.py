"""Frames waiting for the inference thread: the newest frame of each camera, taken together as one batch.

There is no queue: each camera has a one-frame slot, and a frame that arrives while its camera's previous one is
still waiting replaces it (counted as dropped), so a frame waits at most one batch and the latency stays below
two batch times whatever the camera rates. When the inference thread is free it takes the waiting frames of up to
``limit`` cameras; with more cameras waiting than that, the cameras take turns (round-robin: the next batch starts
after the last camera served), so none starves.
"""
from __future__ import annotations

import dataclasses
import threading
from typing import Any

import numpy as np
from std_msgs.msg import Header


@dataclasses.dataclass
class PendingFrame:
    """A received image, decoded in the subscription callback, waiting for the inference thread."""

    camera: int  # index of the camera that sent it
    header: Header  # the input message's header: every output carries it
    rgb: np.ndarray  # (H, W, 3) uint8
    received: float  # time.monotonic() at arrival
    received_before: float | None  # header stamp (s) of the camera's frame received just before this one
    topic: str = ""  # the input topic it came on (resolved)
    message: Any = None  # the message as received (sensor_msgs Image or CompressedImage), for the recorder


class CameraSlots:
    """One one-frame slot per camera; put() replaces a camera's waiting frame, take() blocks until a frame waits
    (or close()) and returns the waiting frames of up to ``limit`` cameras, round-robin."""

    def __init__(self, cameras: int, limit: int) -> None:
        self._condition = threading.Condition()
        self._frames: list[PendingFrame | None] = [None] * cameras
        self._limit = limit
        self._next = 0  # the camera the next batch starts looking from
        self._closed = False

    def open(self) -> None:
        with self._condition:
            self._frames, self._closed = [None] * len(self._frames), False

    def put(self, frame: PendingFrame) -> bool:
        """Store the frame in its camera's slot; True when it replaced one that was never processed."""
        with self._condition:
            replaced = self._frames[frame.camera] is not None
            self._frames[frame.camera] = frame
            self._condition.notify()
        return replaced

    def take(self) -> list[PendingFrame] | None:
        """The waiting frames of up to ``limit`` cameras (emptying their slots), in camera order from where the
        previous batch stopped; None once closed."""
        with self._condition:
            self._condition.wait_for(lambda: self._closed or any(f is not None for f in self._frames))
            if self._closed:
                return None
            count = len(self._frames)
            taken: list[PendingFrame] = []
            for step in range(count):
                camera = (self._next + step) % count
                if self._frames[camera] is not None:
                    taken.append(self._frames[camera])
                    self._frames[camera] = None
                    if len(taken) == self._limit:
                        break
            self._next = (taken[-1].camera + 1) % count
            return taken

    def close(self) -> None:
        with self._condition:
            self._closed = True
            self._condition.notify_all()
