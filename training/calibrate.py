"""The robot profile's start score, chosen for each trained model on its own training videos.

A detection starts a track at ``new_track_score`` or above (``TrackerConfig``). Trained models are calibrated
differently from one training seed (and CPU kind) to the next: on the suite's five seeds one fixed start score
was right for some models and late for others, whose objects then start their tracks frames late and lose IDF1
by misses (docs/model.md, "Identities at a lower frame rate"). So the score is chosen per model: the candidate
whose robot-profile IDF1 is highest on the training videos, averaged over frame strides 1 and 2 (a camera at
its full rate and at half rate); among equal ones the nearest to the profile's own score.

The network's detections do not depend on the tracker, so each video goes through the network once per stride,
keeping every detection at or above the lowest candidate continue score (a tracker that starts a track at that
score returns each of them), and only the tracker runs again for each candidate (``retrack``): the same tracks
as the predictor running with that profile, for the price of one pass.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from sgnet_model.config import TrackerConfig
from sgnet_model.data.ytvis import RLE, TrackObservation, VideoResult, build_video_results, encode_mask, \
    parse_annotations
from sgnet_model.data.ytvis_metric import tracking_figures
from sgnet_model.inference.tracker import CenterTracker
from training.datasets import read_frame
from training.split import every_nth_frame

START_SCORES = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6)  # the candidates
STRIDES = (1, 2)  # every frame, every 2nd frame


@dataclasses.dataclass(frozen=True)
class FrameDetections:
    """One frame's detections above the recording floor, as the tracker takes them, with their masks."""

    timestamp: float
    reset: bool  # the predictor reset its tracks before this frame
    boxes: np.ndarray  # (N, 4) x1 y1 x2 y2 pixels
    scores: np.ndarray  # (N,)
    class_ids: np.ndarray  # (N,) model class indices
    motions: np.ndarray  # (N, 2) pixels since the previous frame
    masks: tuple[RLE, ...]  # N


@dataclasses.dataclass(frozen=True)
class Recording:
    """Every video of an annotation file through the network at one stride."""

    stride: int
    annotations: Any  # YTVISData of the videos cut to the stride
    frames: dict[int, list[FrameDetections]]  # video id -> its frames


@dataclasses.dataclass(frozen=True)
class StartScoreCalibration:
    start_score: float  # the chosen candidate
    strides: tuple[int, ...]
    idf1: dict[float, float]  # candidate -> IDF1, mean over the strides
    id_switches: dict[float, int]  # candidate -> ID switches, summed over the strides


def with_start_score(profile: TrackerConfig, start_score: float) -> TrackerConfig:
    """``profile`` starting tracks at ``start_score``; its continue score lowered with it where it would lie above."""
    return dataclasses.replace(profile, new_track_score=start_score,
                               continue_score=min(profile.continue_score, start_score))


def record(predictor: Any, annotations: Mapping[str, Any], frames_dir: Path, stride: int,
           floor: float) -> Recording:
    """Run ``predictor`` (a StreamingPredictor, whose tracker profile is left as it was) over every video of
    ``annotations`` (a YouTube-VIS annotation dict) at ``stride``, keeping the detections scoring ``floor`` or
    more."""
    cut = parse_annotations(every_nth_frame(annotations, stride))
    profile = predictor.tracker_config
    predictor.tracker_config = dataclasses.replace(profile, new_track_score=floor, continue_score=floor)
    frames: dict[int, list[FrameDetections]] = {}
    try:
        for video_id, video in cut.videos.items():
            predictor.reset()
            frames[video_id] = []
            for index, name in enumerate(video.file_names):
                image = read_frame(frames_dir / name, video.height, video.width, f"video {video_id}, frame {index}")
                result = predictor.step(image, video.frame_times[index])
                found = result.instances
                frames[video_id].append(FrameDetections(
                    result.timestamp, result.tracks_reset, np.array([i.box for i in found]).reshape(-1, 4),
                    np.array([i.score for i in found]), np.array([i.class_id for i in found], np.int64),
                    np.array([i.motion for i in found]).reshape(-1, 2), tuple(encode_mask(i.mask) for i in found)))
    finally:
        predictor.tracker_config = profile
    return Recording(stride, cut, frames)


def retrack(recording: Recording, profile: TrackerConfig) -> list[VideoResult]:
    """The video results of ``recording`` tracked with ``profile`` (whose continue score is at or above the
    recording's floor)."""
    results = []
    category_ids = recording.annotations.category_ids
    for video_id, frames in recording.frames.items():
        tracker = CenterTracker(profile)
        tracked = []
        for frame in frames:
            if frame.reset:
                tracker.reset()
            ids = tracker.update(frame.boxes, frame.scores, frame.class_ids, frame.motions, frame.timestamp)
            tracked.append([TrackObservation(int(ids[i]), int(frame.class_ids[i]), float(frame.scores[i]),
                                             frame.masks[i]) for i in np.flatnonzero(ids > 0)])
        video = recording.annotations.videos[video_id]
        results.extend(build_video_results(video_id, tracked, category_ids, video.height, video.width))
    return results


def calibrate_start_score(predictor: Any, annotations: Mapping[str, Any], frames_dir: Path,
                          candidates: Sequence[float] = START_SCORES,
                          strides: Sequence[int] = STRIDES) -> StartScoreCalibration:
    """The start score of ``predictor``'s tracker profile that tracks ``annotations``' videos best (module
    docstring), from one recording per stride."""
    profile = predictor.tracker_config
    floor = min(profile.continue_score, *candidates)
    recordings = [record(predictor, annotations, frames_dir, stride, floor) for stride in strides]
    return choose_start_score(recordings, profile, candidates)


def choose_start_score(recordings: Sequence[Recording], profile: TrackerConfig,
                       candidates: Sequence[float] = START_SCORES) -> StartScoreCalibration:
    """The candidate whose IDF1, averaged over the recordings, is highest; among equal ones the nearest to
    ``profile``'s own start score. A candidate below the profile's continue score lowers it with it."""
    idf1 = {candidate: 0.0 for candidate in candidates}
    switches = {candidate: 0 for candidate in candidates}
    for recording in recordings:
        for candidate in candidates:
            figures = tracking_figures(recording.annotations, retrack(recording, with_start_score(profile, candidate)))
            idf1[candidate] += figures["idf1"] / len(recordings)
            switches[candidate] += figures["id_switches"]
    best = max(idf1.values())
    chosen = min((c for c in candidates if idf1[c] >= best - 1e-9), key=lambda c: abs(c - profile.new_track_score))
    return StartScoreCalibration(chosen, tuple(r.stride for r in recordings), idf1, switches)


def calibrate_checkpoint(checkpoint: Path, annotations: Mapping[str, Any], frames_dir: Path, videos: int,
                         device: str = "cpu") -> StartScoreCalibration:
    """Choose the start score of ``checkpoint``'s robot profile on ``videos`` of the training videos (a fixed
    subset, the same as sgnet-split would hold out with seed 0) and write it into the checkpoint, atomically."""
    from sgnet_model.checkpoint import load_checkpoint, save_checkpoint
    from sgnet_model.config import PredictorConfig
    from sgnet_model.predictor import StreamingPredictor
    from training.split import split_annotations

    if videos < len(annotations["videos"]):
        _, annotations = split_annotations(annotations, val_count=videos)
    # the reference arithmetic: the same start score whatever runtime serves the model later
    predictor = StreamingPredictor.from_checkpoint(checkpoint, PredictorConfig.reference(device), profile="robot")
    calibration = calibrate_start_score(predictor, annotations, frames_dir)
    stored = load_checkpoint(checkpoint)
    robot = with_start_score(stored.tracker_profiles["robot"], calibration.start_score)
    save_checkpoint(checkpoint, stored.model_config, stored.model_state, stored.training_state,
                    {**stored.tracker_profiles, "robot": robot})
    return calibration


def describe_calibration(calibration: StartScoreCalibration) -> str:
    cells = ", ".join(f"{c:g}: {calibration.idf1[c]:.3f} ({calibration.id_switches[c]})" for c in calibration.idf1)
    return (f"start score {calibration.start_score:g} (IDF1 on the training videos, mean over strides "
            f"{' and '.join(map(str, calibration.strides))}, with ID switches: {cells})")
