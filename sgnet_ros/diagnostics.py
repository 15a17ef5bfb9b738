"""What the node counts while it runs, and its /diagnostics statuses (diagnostic_msgs/DiagnosticStatus): per camera
(rate, latency, drops, input age) and for the model (batch size, time per batch)."""
from __future__ import annotations

import dataclasses
import math
import statistics
import threading
import time

from typing import TYPE_CHECKING

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

if TYPE_CHECKING:
    from sgnet_ros.recording import UncertainMomentRecorder

# An input age (the node's clock at inference start minus the image's header stamp) outside this range is no age:
# the stamps come from another clock, such as a bag's recording time replayed to a node that is not on the
# replay's /clock (use_sim_time), or a camera whose clock is not synchronised with this machine's.
INPUT_AGE_RANGE_MS = (-1_000.0, 60_000.0)
OFF_CLOCK = "stamps not on this node's clock (use_sim_time?)"


@dataclasses.dataclass(frozen=True)
class StatisticsReport:
    """Totals since configure, and figures over the window since the previous report."""

    frames_received: int
    frames_processed: int
    frames_dropped: int  # replaced by a newer frame before inference started (stale), or its size being prepared
    frames_rejected: int  # bad input, skipped
    frames_lost: int  # lost in transport before reaching the node (the middleware's message-lost event)
    window_s: float
    window_received: int
    window_processed: int
    window_rejected: int
    rate_hz: float  # frames processed per second over the window
    latency_ms_median: float  # frame received -> outputs published, over the window (NaN: no frames)
    latency_ms_max: float
    inference_ms_median: float  # the predictor's own time per frame, over the window
    input_age_ms_median: float  # ROS time at inference start minus the input's header stamp (NaN: none)
    input_age_ms_max: float
    window_off_clock: int  # frames whose age lay outside INPUT_AGE_RANGE_MS: left out of the ages above


class NodeStatistics:
    """Thread-safe counters: the subscription callbacks and the inference thread update them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._received = self._processed = self._dropped = self._rejected = self._lost = 0
            self._start_window()

    def _start_window(self) -> None:
        self._window_start = time.monotonic()
        self._window_received = self._window_rejected = 0
        self._latencies_ms: list[float] = []
        self._inference_ms: list[float] = []
        self._input_ages_ms: list[float] = []
        self._window_off_clock = 0

    def count_received(self, replaced_pending: bool) -> None:
        with self._lock:
            self._received += 1
            self._window_received += 1
            self._dropped += int(replaced_pending)

    def count_dropped(self) -> None:
        """A frame set aside unprocessed (its frame size was still being prepared)."""
        with self._lock:
            self._dropped += 1

    def count_rejected(self) -> None:
        with self._lock:
            self._rejected += 1
            self._window_rejected += 1

    def count_lost(self, count: int) -> None:
        with self._lock:
            self._lost += count

    def count_processed(self, latency_ms: float, inference_ms: float, input_age_ms: float) -> None:
        """input_age_ms: NaN for an image without a stamp (not counted); outside INPUT_AGE_RANGE_MS counted as a
        stamp from another clock."""
        with self._lock:
            self._processed += 1
            self._latencies_ms.append(latency_ms)
            self._inference_ms.append(inference_ms)
            low, high = INPUT_AGE_RANGE_MS
            if low <= input_age_ms <= high:
                self._input_ages_ms.append(input_age_ms)
            elif input_age_ms == input_age_ms:
                self._window_off_clock += 1

    def report(self) -> StatisticsReport:
        """The figures so far; starts a new window."""
        with self._lock:
            window_s = time.monotonic() - self._window_start
            processed = len(self._latencies_ms)
            nan = float("nan")
            report = StatisticsReport(
                frames_received=self._received, frames_processed=self._processed, frames_dropped=self._dropped,
                frames_rejected=self._rejected, frames_lost=self._lost, window_s=window_s, window_received=self._window_received,
                window_processed=processed, window_rejected=self._window_rejected,
                rate_hz=processed / window_s if window_s > 0 else 0.0,
                latency_ms_median=statistics.median(self._latencies_ms) if processed else nan,
                latency_ms_max=max(self._latencies_ms) if processed else nan,
                inference_ms_median=statistics.median(self._inference_ms) if processed else nan,
                input_age_ms_median=statistics.median(self._input_ages_ms) if self._input_ages_ms else nan,
                input_age_ms_max=max(self._input_ages_ms) if self._input_ages_ms else nan,
                window_off_clock=self._window_off_clock)
            self._start_window()
        return report


@dataclasses.dataclass(frozen=True)
class BatchReport:
    """The model's batches over the window since the previous report."""

    batches: int  # total since configure
    window_batches: int
    batch_size_mean: float  # frames per batch over the window (NaN: no batch)
    batch_size_max: int
    batch_ms_median: float  # one batch: network, post-processing, tracking and publishing (NaN: none)


class BatchStatistics:
    """Thread-safe: the inference thread counts, the diagnostics timer reports."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._batches = 0
            self._sizes: list[int] = []
            self._times_ms: list[float] = []

    def count_batch(self, size: int, batch_ms: float) -> None:
        with self._lock:
            self._batches += 1
            self._sizes.append(size)
            self._times_ms.append(batch_ms)

    def report(self) -> BatchReport:
        """The figures so far; starts a new window."""
        with self._lock:
            sizes, times = self._sizes, self._times_ms
            self._sizes, self._times_ms = [], []
            return BatchReport(batches=self._batches, window_batches=len(sizes),
                               batch_size_mean=statistics.fmean(sizes) if sizes else float("nan"),
                               batch_size_max=max(sizes, default=0),
                               batch_ms_median=statistics.median(times) if times else float("nan"))


def batch_values(report: BatchReport) -> dict[str, str]:
    return {"batches": str(report.batches), "batch_size_mean": f"{report.batch_size_mean:.3f}",
            "batch_size_max": str(report.batch_size_max), "batch_ms_median": f"{report.batch_ms_median:.3f}"}


def model_status(report: BatchReport, name: str, device: str, active: bool, cameras: list[str],
                 runtime: str) -> DiagnosticStatus:
    """The model's status when the node serves several cameras (each camera has its own status); ``runtime``: what
    runs the network (backend, device, precision)."""
    if not active:
        message = "configured, not active"
    elif report.window_batches == 0:
        message = f"no frames from any of {len(cameras)} cameras"
    else:
        message = f"{report.window_batches} batch(es) of {report.batch_size_mean:.1f} frame(s) on average"
    values = {"device": device, "runtime": runtime, "cameras": " ".join(cameras), **batch_values(report)}
    return DiagnosticStatus(level=DiagnosticStatus.OK if not active or report.window_batches else DiagnosticStatus.WARN,
                            name=name, message=message, hardware_id=device,
                            values=[KeyValue(key=key, value=value) for key, value in values.items()])


def diagnostic_status(report: StatisticsReport, name: str, device: str, active: bool,
                      inputs: list[str], extra: dict[str, str] | None = None) -> DiagnosticStatus:
    """OK while frames flow; WARN while active with no frames arriving, or when frames were rejected. Input ages
    read OFF_CLOCK when every stamped frame of the window had a stamp from another clock. ``extra``: more values
    (the single-camera node's batch figures)."""
    off_clock = report.window_off_clock > 0 and math.isnan(report.input_age_ms_median)
    if not active:
        level, message = DiagnosticStatus.OK, "configured, not active"
    elif report.window_received == 0:
        level, message = DiagnosticStatus.WARN, f"no images received on {', '.join(inputs)}: check the topic and QoS"
    elif report.window_rejected:
        level, message = DiagnosticStatus.WARN, f"{report.window_rejected} bad input frame(s) skipped"
    else:
        level, message = DiagnosticStatus.OK, f"running at {report.rate_hz:.1f} Hz"
        if off_clock:
            message += f"; input {OFF_CLOCK}"
    values = {
        "device": device,
        "rate_hz": f"{report.rate_hz:.3f}",
        "latency_ms_median": f"{report.latency_ms_median:.3f}",
        "latency_ms_max": f"{report.latency_ms_max:.3f}",
        "inference_ms_median": f"{report.inference_ms_median:.3f}",
        "input_age_ms_median": OFF_CLOCK if off_clock else f"{report.input_age_ms_median:.3f}",
        "input_age_ms_max": OFF_CLOCK if off_clock else f"{report.input_age_ms_max:.3f}",
        "input_stamps_off_clock": str(report.window_off_clock),
        "frames_received": str(report.frames_received),
        "frames_processed": str(report.frames_processed),
        "frames_dropped": str(report.frames_dropped),
        "frames_rejected": str(report.frames_rejected),
        "frames_lost": str(report.frames_lost),
        "window_s": f"{report.window_s:.3f}",
        **(extra or {}),
    }
    return DiagnosticStatus(level=level, name=name, message=message, hardware_id=device,
                            values=[KeyValue(key=key, value=value) for key, value in values.items()])


def recording_status(name: str, recorder: "UncertainMomentRecorder") -> DiagnosticStatus:
    """The recorder's status: OK while it records (or waits for a moment), WARN with the reason once it stopped
    (its budget reached, the folder unwritable, the disk full)."""
    healthy, message, values = recorder.status()
    return DiagnosticStatus(level=DiagnosticStatus.OK if healthy else DiagnosticStatus.WARN, name=name,
                            message=message, hardware_id="none",
                            values=[KeyValue(key=key, value=value) for key, value in values.items()])


def unconfigured_status(name: str, configure_error: str) -> DiagnosticStatus:
    """ERROR with the reason while the last configure failed; OK ("unconfigured") before any configure."""
    if configure_error:
        return DiagnosticStatus(level=DiagnosticStatus.ERROR, name=name, message=f"configure failed: {configure_error}",
                                hardware_id="none")
    return DiagnosticStatus(level=DiagnosticStatus.OK, name=name, message="unconfigured", hardware_id="none")
