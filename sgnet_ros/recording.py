"""Recording the uncertain moments (docs/flywheel.md): the frames around each frame whose uncertainty events reach
``RecordingConfig.min_events``, written as the camera sent them into an MCAP bag, for labelling.

The caller (the node's inference thread, after a frame's outputs are published) only hands the received message to
a bounded queue (``offer``, never blocking: when the queue is full the frame is not recorded and counted). A writer
thread keeps each camera's last ``window_s`` seconds of frames (the messages, serialized only if written); an
uncertain frame, at most one per ``min_interval_s`` per camera, writes them and the frames of the next ``window_s``
seconds. A stamp earlier than the camera's last one (its time went back) starts the camera's window afresh. The bag
(``<folder>/sgnet_uncertain_<time>``) is opened at the first moment and closed, with its metadata, by ``close()``
(the node closes it when it deactivates or stops). A bag that would pass ``max_mb``, an unwritable folder or a full
disk stop the recording with a reason (``status()``, a warning in /diagnostics); nothing is raised.
"""
from __future__ import annotations

import collections
import dataclasses
import itertools
import queue
import threading
import time
from pathlib import Path
from typing import Any

from rclpy.serialization import serialize_message

from sgnet_model.config import ConfigError

QUEUE_FRAMES = 64  # frames waiting for the writer thread; more are not recorded (and counted)


@dataclasses.dataclass(frozen=True)
class RecordingConfig:
    """The node's ``recording.*`` parameters."""

    folder: str = ""  # where the bags go (one per activation); empty: no recording
    min_events: int = 2  # a frame with at least this many uncertainty events is a moment (0: every frame)
    window_s: float = 1.0  # seconds of frames before and after a moment
    min_interval_s: float = 10.0  # at most one moment started per camera per this many seconds
    max_mb: float = 2000.0  # the bag's budget in MB; recording stops at it

    def __post_init__(self) -> None:
        for field, ok, message in (("min_events", self.min_events >= 0, "must be 0 or more"),
                                   ("window_s", self.window_s >= 0, "must be 0 or more"),
                                   ("min_interval_s", self.min_interval_s >= 0, "must be 0 or more"),
                                   ("max_mb", self.max_mb > 0, "must be positive")):
            if not ok:
                raise ConfigError(f"{field}: {message}, got {getattr(self, field)}")


def ros_type_name(message: Any) -> str:
    """The ROS type name of an rclpy message, e.g. sensor_msgs/msg/Image."""
    return f"{type(message).__module__.split('.')[0]}/msg/{type(message).__name__}"


@dataclasses.dataclass
class _Camera:
    recent: collections.deque = dataclasses.field(default_factory=collections.deque)  # (topic, message, stamp_ns)
    writing_until_ns: int = -1
    last_moment_ns: int | None = None
    last_stamp_ns: int | None = None


class UncertainMomentRecorder:
    """See the module docstring."""

    def __init__(self, settings: RecordingConfig) -> None:
        self.settings = settings
        self._cameras: dict[str, _Camera] = collections.defaultdict(_Camera)  # camera name -> its window
        self._connections: dict[str, Any] = {}  # topic -> the bag's connection
        self._queue: queue.Queue = queue.Queue(QUEUE_FRAMES)
        self._writer: Any = None  # rosbags' Writer and its typestore, from the first moment on
        self._store: Any = None
        self.bag: Path | None = None
        self.moments = self.frames_written = self.bytes_written = self.frames_skipped = 0
        self.stopped_because = ""  # set when recording stopped for good: the warning /diagnostics shows
        self._thread = threading.Thread(target=self._run, name="sgnet-recording", daemon=True)
        self._thread.start()

    def offer(self, camera: str, topic: str, message: Any, stamp_ns: int, events: int) -> None:
        """A served frame: the message as received on ``topic`` (sensor_msgs Image or CompressedImage), from the
        inference thread; never blocks."""
        if self.stopped_because:
            return
        try:
            self._queue.put_nowait((camera, topic, message, stamp_ns, events))
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

    def _take(self, camera_name: str, topic: str, message: Any, stamp_ns: int, events: int) -> None:
        camera = self._cameras[camera_name]
        frame = (topic, message, stamp_ns)  # serialized only when written: most frames never are
        window_ns = round(self.settings.window_s * 1e9)
        if camera.last_stamp_ns is not None and stamp_ns < camera.last_stamp_ns:
            # the camera's time went back (a bag replayed again, sgnet-replay's warm-up frame stamped a day ahead
            # before the bag's first): what came before is no window of what comes now
            camera = self._cameras[camera_name] = _Camera()
        camera.last_stamp_ns = stamp_ns
        if stamp_ns <= camera.writing_until_ns:
            self._write([frame])
            return
        camera.recent.append(frame)
        while camera.recent and camera.recent[0][2] < stamp_ns - window_ns:
            camera.recent.popleft()
        interval_ns = round(self.settings.min_interval_s * 1e9)
        if events >= self.settings.min_events and (camera.last_moment_ns is None
                                                   or stamp_ns - camera.last_moment_ns >= interval_ns):
            camera.last_moment_ns, camera.writing_until_ns = stamp_ns, stamp_ns + window_ns
            self.moments += 1
            self._write(list(camera.recent))
            camera.recent.clear()

    def _write(self, frames: list[tuple[str, Any, int]]) -> None:
        """frames: (topic, message, stamp_ns)."""
        serialized = [(topic, ros_type_name(message), stamp_ns, serialize_message(message))
                      for topic, message, stamp_ns in frames]
        size = sum(len(data) for *_, data in serialized)
        if self.bytes_written + size > self.settings.max_mb * 1e6:
            self.stopped_because = f"the bag {self.bag} reached its budget ({self.settings.max_mb:g} MB)"
            return
        if self._writer is None:
            self._open()
        for topic, type_name, stamp_ns, data in serialized:
            if topic not in self._connections:
                self._connections[topic] = self._writer.add_connection(topic, type_name, typestore=self._store)
            self._writer.write(self._connections[topic], stamp_ns, data)
        self.frames_written += len(frames)
        self.bytes_written += size

    def _open(self) -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer
        from rosbags.typesys import get_typestore

        from sgnet_ros.bag_flavour import BAG_METADATA_VERSION, ROS_STORE

        folder = Path(self.settings.folder).expanduser()
        folder.mkdir(parents=True, exist_ok=True)
        name = time.strftime("sgnet_uncertain_%Y%m%d_%H%M%S")
        self.bag = folder / name
        for index in itertools.count(2):  # another bag begun within the same second (a node reactivated, a second node)
            if not self.bag.exists():
                break
            self.bag = folder / f"{name}_{index}"
        self._store = get_typestore(ROS_STORE)
        self._writer = Writer(self.bag, version=BAG_METADATA_VERSION, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
