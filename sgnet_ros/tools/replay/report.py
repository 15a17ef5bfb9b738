"""sgnet-replay: the report (report.json, frames.csv and the printed summary)."""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from sgnet_model.data.ytvis_metric import metric_lines
from sgnet_ros.tools.replay.bag import BagStatistics
from sgnet_ros.tools.replay.pacing import Pacing
from sgnet_ros.tools.replay.session import FrameRecord, Session


def percentiles(values: Sequence[float], name: str) -> dict[str, float | None]:
    """``name_median``, ``name_p90``, ``name_p99``, ``name_max`` (None without values)."""
    figures = {"median": 50, "p90": 90, "p99": 99, "max": 100}
    if not values:
        return {f"{name}_{key}": None for key in figures}
    return {f"{name}_{key}": float(np.percentile(values, q)) for key, q in figures.items()}


def frame_figures(frames: Sequence[FrameRecord], unmatched_outputs: int, duration_s: float) -> dict[str, Any]:
    """Frames in, out and dropped, latency, the node's own time and the output rate of one camera's frames."""
    answered = [r for r in frames if r.answered_ns is not None]
    latencies = [r.latency_ms for r in answered]
    inference = [float(r.output.inference_ms) for r in answered]
    return {
        "frames_in": len(frames), "frames_out": len(answered), "frames_dropped": len(frames) - len(answered),
        "unmatched_outputs": unmatched_outputs,
        **percentiles(latencies, "latency_ms"),
        **percentiles(inference, "inference_ms"),
        "overhead_ms_median": float(np.median(np.subtract(latencies, inference))) if answered else None,
        "output_rate_hz": len(answered) / duration_s if duration_s > 0 else None,
    }


def build_report(session: Session, pacing: Pacing, bag_statistics: BagStatistics, duration_s: float,
                 interrupted: bool) -> dict[str, Any]:
    """The replay's figures; a node with several cameras: the totals, and each camera's under ``cameras``."""
    cameras = list(session.cameras.values())
    frames = [record for camera in cameras for record in camera.book.frames]
    report: dict[str, Any] = {
        "mode": pacing.mode, "rate": pacing.rate if pacing.mode == "timed" else None,
        **frame_figures(frames, sum(camera.book.unmatched_outputs for camera in cameras), duration_s),
        "frames_skipped_corrupt": bag_statistics.skipped_corrupt,
        "stamps_out_of_order": bag_statistics.stamps_out_of_order,
        "stamps_repeated": bag_statistics.stamps_repeated,
        "duration_s": duration_s,
        "recorded": dict(session.recorded),
        "node_diagnostics": cameras[0].last_diagnostics,
        "output_bag": str(session.output_bag),
        "interrupted": interrupted,
    }
    if len(cameras) > 1 or cameras[0].name:
        report["node_diagnostics"] = None
        report["cameras"] = {camera.name: {**frame_figures(camera.book.frames, camera.book.unmatched_outputs,
                                                           duration_s),
                                           "node_diagnostics": camera.last_diagnostics}
                             for camera in cameras}
    return report


def write_frames_csv(path: Path, frames: Sequence[FrameRecord], camera_of: Sequence[str] | None = None) -> None:
    """One row per frame; with ``camera_of`` (one camera name per frame) a first column ``camera``."""
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow([*(["camera"] if camera_of else []), "stamp_ns", "sent_ns", "answered_ns", "latency_ms",
                         "inference_ms", "instances"])
        for index, r in enumerate(frames):
            writer.writerow([*([camera_of[index]] if camera_of else []), r.stamp_ns, r.sent_ns,
                             r.answered_ns if r.answered_ns is not None else "",
                             f"{r.latency_ms:.3f}" if r.answered_ns is not None else "",
                             f"{r.output.inference_ms:.3f}" if r.output is not None else "",
                             len(r.output.instances) if r.output is not None else ""])


def json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def print_report(report: dict[str, Any], output: Path) -> None:
    def ms(figures: dict[str, Any], key: str) -> str:
        values = [figures[f"{key}_{p}"] for p in ("median", "p90", "p99")]
        return "n/a" if values[0] is None else " / ".join(f"{v:.1f}" for v in values)
    print(f"frames in {report['frames_in']}, out {report['frames_out']}, dropped {report['frames_dropped']}, "
          f"skipped (corrupt) {report['frames_skipped_corrupt']}, stamps out of order {report['stamps_out_of_order']}")
    print(f"latency ms (median / p90 / p99): {ms(report, 'latency_ms')}; node's own time: "
          f"{ms(report, 'inference_ms')}")
    if report.get("tracker") is not None:
        values = ", ".join(f"{name} {value:g}" for name, value in report["tracker"].items())
        print(f"node's tracker: {report.get('tracker_profile') or 'unnamed'} profile: {values}")
    _print_metrics(report.get("metrics"))
    for name, camera in (report.get("cameras") or {}).items():
        print(f"camera {name}: frames in {camera['frames_in']}, out {camera['frames_out']}, dropped "
              f"{camera['frames_dropped']}; latency ms (median / p90 / p99): {ms(camera, 'latency_ms')}")
        _print_metrics(camera.get("metrics"), "  ")
    depth = report.get("depth")
    if depth:
        median = "n/a" if depth["relative_error_median"] is None else f"{100 * depth['relative_error_median']:.2f} %"
        print(f"3D: {depth['located']} of {depth['shapes']} visible shapes located; median centroid error {median} of "
              f"the distance")
    print(f"outputs: {report['output_bag']}  report: {output / 'report.json'}")


def _print_metrics(metrics: dict[str, Any] | None, indent: str = "") -> None:
    if metrics:
        print("\n".join(indent + line for line in metric_lines(metrics)))
