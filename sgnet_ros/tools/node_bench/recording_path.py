"""``--record``: what recording the uncertain moments (sgnet_ros/recording.py) costs the node. Beside the overhead
measurement of a node recording every frame it serves (the recorder's worst case; every measured frame must be in
its bag), the recorder timed in-process on the benchmark's frames: the process CPU time per frame offered (its
writer thread's work: keeping the window, serializing and writing), for every frame recorded and for the shipped
settings with a frame that is a moment whenever the interval allows (a moment every ``min_interval_s``, its
windows written), and the longest ``offer`` the inference thread makes.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from sgnet_ros.tools.node_bench.common import BenchError, image_message

EVERY_FRAME = {"min_events": 0, "window_s": 0.0, "min_interval_s": 0.0}  # each frame a moment, written alone


def measure_recorder(images: list[np.ndarray], seconds: float) -> dict[str, float]:
    """The recorder alone (nothing else runs in this process), on ``seconds`` of a 30 Hz camera cycling through
    ``images``: CPU ms per frame offered, every frame recorded and with the shipped settings; the longest offer."""
    from sgnet_ros.recording import RecordingConfig, UncertainMomentRecorder

    period_ns = 1_000_000_000 // 30
    messages = [image_message(images[index % len(images)], index, period_ns * 1e-9)
                for index in range(1, round(30 * seconds) + 1)]
    figures: dict[str, float] = {}
    for name, settings in (("every_frame", EVERY_FRAME), ("shipped", {})):
        with tempfile.TemporaryDirectory(prefix="sgnet_node_bench_") as folder:
            recorder = UncertainMomentRecorder(RecordingConfig(folder=folder, **settings))
            recorder.offer("camera", "/camera/image_raw", messages[0], 0, 0)  # the writer's imports, not timed
            recorder.close()
            recorder = UncertainMomentRecorder(RecordingConfig(folder=folder, **settings))
            offers_ms = []
            cpu_before = time.process_time()
            for index, message in enumerate(messages, start=1):
                started = time.perf_counter()
                recorder.offer("camera", "/camera/image_raw", message, index * period_ns, recorder.settings.min_events)
                offers_ms.append((time.perf_counter() - started) * 1000)
                time.sleep(0.005)  # the writer keeps up, as beside a model slower than a frame's recording
            recorder.close()
            figures[f"recorder_{name}_cpu_ms_per_frame"] = (time.process_time() - cpu_before) * 1000 / len(messages)
            figures[f"recorder_{name}_frames_written"] = recorder.frames_written
            figures["offer_ms_max"] = max(figures.get("offer_ms_max", 0.0), *offers_ms)
            if recorder.frames_skipped or recorder.stopped_because:
                raise BenchError(f"the recorder skipped {recorder.frames_skipped} frames: {recorder.stopped_because}")
    return figures


def recorded_frames(folder: Path, frames: int) -> dict[str, Any]:
    """What a node recording every frame wrote into ``folder`` (one bag, closed): its messages, how many of the
    measured frames 1..frames are among them (by the index in header.frame_id), and its size."""
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import get_typestore

    from sgnet_ros.bag_flavour import ROS_STORE

    bags = [path for path in folder.iterdir() if path.is_dir()]
    if len(bags) != 1:
        raise BenchError(f"the recording node wrote {len(bags)} bags into {folder}, not 1")
    store = get_typestore(ROS_STORE)
    with Reader(bags[0]) as reader:
        indices = [int(store.deserialize_cdr(data, connection.msgtype).header.frame_id)
                   for connection, _, data in reader.messages()]
    return {"frames_recorded": len(indices), "measured_frames_recorded": len(set(indices) & set(range(1, frames + 1))),
            "bag_mb": sum(path.stat().st_size for path in bags[0].iterdir()) / 1e6}
