"""Recording the uncertain moments (docs/flywheel.md): the frames around each frame whose uncertainty events reach
``RecordingSettings.min_events``, written into an MCAP bag, for labelling.

The caller (the inference thread) only hands a served frame's message to a bounded queue (``offer``, never
blocking: when the queue is full the frame is not recorded and counted). A writer thread keeps each camera's last
``window_s`` seconds of frames serialized; an uncertain frame, at most one per ``min_interval_s`` per camera, writes
them and the frames of the next ``window_s`` seconds. The bag (``<folder>/sgnet_uncertain_<time>``) is opened at
the first moment and closed, with its metadata, by ``close()``. A bag that would pass ``max_bytes``, an unwritable
folder or a full disk stop the recording with a reason (``status()``, for /diagnostics); nothing is raised. Not
wired into the node yet (issue 31, item 2).
"""
from __future__ import annotations

import collections
import dataclasses
import queue
import threading
import time
from pathlib import Path
from typing import Any

from rclpy.serialization import serialize_message

QUEUE_FRAMES = 64  # frames waiting for the writer thread; more are not recorded (and counted)


@dataclasses.dataclass(frozen=True)
class RecordingSettings:
    folder: Path
    min_events: int  # a frame with at least this many uncertainty events is a moment
    window_s: float  # seconds of frames before and after a moment
    min_interval_s: float  # at most one moment started per camera per this many seconds
    max_bytes: int  # the bag's budget


@dataclasses.dataclass
class _Camera:
    topic: str
    message_type: str  # sensor_msgs/msg/Image or sensor_msgs/msg/CompressedImage
    recent: collections.deque = dataclasses.field(default_factory=collections.deque)  # (stamp_ns, bytes)
    writing_until_ns: int = -1
    last_moment_ns: int | None = None
    connection: Any = None


class UncertainMomentRecorder:
    """See the module docstring. ``cameras``: camera name -> (input topic, ROS message type name)."""

    def __init__(self, settings: RecordingSettings, cameras: dict[str, tuple[str, str]]) -> None:
        self.settings = settings
        self._cameras = {name: _Camera(topic, kind) for name, (topic, kind) in cameras.items()}
        self._queue: queue.Queue = queue.Queue(QUEUE_FRAMES)
        self._writer: Any = None  # rosbags' Writer and its typestore, from the first moment on
        self._store: Any = None
        self.bag: Path | None = None
        self.moments = self.frames_written = self.bytes_written = self.frames_skipped = 0
        self.stopped_because = ""  # set when recording stopped for good: the warning /diagnostics shows
        self._thread = threading.Thread(target=self._run, name="sgnet-recording", daemon=True)
        self._thread.start()

    def offer(self, camera: str, message: Any, stamp_ns: int, events: int) -> None:
        """A served frame (the received message), from the inference thread: never blocks."""
        if self.stopped_because:
            return
        try:
            self._queue.put_nowait((camera, message, stamp_ns, events))
        except queue.Full:
            self.frames_skipped += 1

    def close(self) -> None:
        """Write what is queued, close the bag (its metadata), end the thread."""
        self._queue.put(None)
        self._thread.join()

    def status(self) -> tuple[bool, str, dict[str, str]]:
        """(healthy, message, values) for /diagnostics."""
        values = {"recording_bag": str(self.bag or ""), "recording_moments": str(self.moments),
                  "recording_frames": str(self.frames_written), "recording_mb": f"{self.bytes_written / 1e6:.1f}",
                  "recording_frames_skipped": str(self.frames_skipped)}
        if self.stopped_because:
            return False, f"recording stopped: {self.stopped_because}", values
        return True, "recording uncertain moments", values

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if not self.stopped_because:
                try:
                    self._take(*item)
                except Exception as error:  # a full disk, an unwritable folder (rosbags' own errors too)
                    self.stopped_because = (f"cannot write {self.bag or self.settings.folder}: "
                                            f"{type(error).__name__}: {error}")
        try:
            if self._writer is not None:
                self._writer.close()
        except Exception as error:
            self.stopped_because = self.stopped_because or f"cannot close {self.bag}: {type(error).__name__}: {error}"

    def _take(self, camera_name: str, message: Any, stamp_ns: int, events: int) -> None:
        camera = self._cameras[camera_name]
        data = serialize_message(message)
        window_ns = round(self.settings.window_s * 1e9)
        if stamp_ns <= camera.writing_until_ns:
            self._write(camera, [(stamp_ns, data)])
            return
        camera.recent.append((stamp_ns, data))
        while camera.recent and camera.recent[0][0] < stamp_ns - window_ns:
            camera.recent.popleft()
        interval_ns = round(self.settings.min_interval_s * 1e9)
        if events >= self.settings.min_events and (camera.last_moment_ns is None
                                                   or stamp_ns - camera.last_moment_ns >= interval_ns):
            camera.last_moment_ns, camera.writing_until_ns = stamp_ns, stamp_ns + window_ns
            self.moments += 1
            self._write(camera, list(camera.recent))
            camera.recent.clear()

    def _write(self, camera: _Camera, frames: list[tuple[int, bytes]]) -> None:
        size = sum(len(data) for _, data in frames)
        if self.bytes_written + size > self.settings.max_bytes:
            self.stopped_because = (f"the bag {self.bag} reached its budget "
                                    f"({self.settings.max_bytes / 1e6:g} MB)")
            return
        if self._writer is None:
            self._open()
        if camera.connection is None:
            camera.connection = self._writer.add_connection(camera.topic, camera.message_type,
                                                            typestore=self._store)
        for stamp_ns, data in frames:
            self._writer.write(camera.connection, stamp_ns, data)
        self.frames_written += len(frames)
        self.bytes_written += size

    def _open(self) -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer
        from rosbags.typesys import get_typestore

        from sgnet_ros.bag_flavour import BAG_METADATA_VERSION, ROS_STORE

        self.settings.folder.mkdir(parents=True, exist_ok=True)
        self.bag = self.settings.folder / time.strftime("sgnet_uncertain_%Y%m%d_%H%M%S")
        self._store = get_typestore(ROS_STORE)
        self._writer = Writer(self.bag, version=BAG_METADATA_VERSION, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
