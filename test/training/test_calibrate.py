"""The start score calibration (training/calibrate.py): the choice on a hand-worked case, and the recorded
detections re-tracked against the predictor running the same profile (a second way to the same tracks)."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from sgnet_model.config import TrackerConfig
from sgnet_model.data.ytvis import encode_mask, parse_annotations
from training.calibrate import FrameDetections, Recording, calibrate_start_score, choose_start_score, record, retrack
from runtime_reference import REFERENCE

H, W = 40, 60


def one_object_recording(scores: list[float]) -> Recording:
    """One object standing still in every frame of a 6 fps video, detected exactly (its own box and mask) with
    the given score in each frame."""
    mask = np.zeros((H, W), bool)
    mask[10:20, 20:35] = True
    rle = encode_mask(mask)
    data = {"videos": [{"id": 1, "file_names": [f"v/{t:05d}.jpg" for t in range(len(scores))], "height": H,
                        "width": W, "length": len(scores)}],
            "categories": [{"id": 1, "name": "thing"}],
            "annotations": [{"id": 1, "video_id": 1, "category_id": 1, "iscrowd": 0,
                             "segmentations": [rle] * len(scores)}]}
    annotations = parse_annotations(data, "test")
    times = annotations.videos[1].frame_times
    frames = [FrameDetections(times[t], t == 0, np.array([[20.0, 10.0, 35.0, 20.0]]), np.array([score]),
                              np.array([0]), np.zeros((1, 2)), (rle,)) for t, score in enumerate(scores)]
    return Recording(1, annotations, {1: frames})


def test_the_start_score_that_catches_an_object_from_its_first_frame_is_chosen():
    """Scores 0.42, 0.42, 0.7, 0.7, continue score 0.3. Starting at 0.4 or below, one track covers all 4 frames:
    IDF1 = 2 * 4 / (4 + 4) = 1. Starting above 0.42, the track starts in frame 2 (0.7) and covers 2 frames:
    2 * 2 / (4 + 2) = 2/3 (above 0.7 nothing is tracked: 0). Of the three candidates at 1, the nearest to the
    profile's 0.5 is 0.4."""
    recording = one_object_recording([0.42, 0.42, 0.7, 0.7])
    calibration = choose_start_score([recording], TrackerConfig(new_track_score=0.5, continue_score=0.3),
                                     candidates=(0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.75))
    assert calibration.idf1 == pytest.approx({0.3: 1.0, 0.35: 1.0, 0.4: 1.0, 0.45: 2 / 3, 0.5: 2 / 3, 0.6: 2 / 3,
                                              0.75: 0.0})
    assert calibration.start_score == 0.4 and calibration.strides == (1,)
    assert set(calibration.id_switches.values()) == {0}


def test_a_tie_keeps_the_profiles_own_start_score():
    recording = one_object_recording([0.9, 0.9, 0.9])  # every candidate up to 0.9 tracks it from the start
    calibration = choose_start_score([recording], TrackerConfig(new_track_score=0.5, continue_score=0.3),
                                     candidates=(0.3, 0.4, 0.5, 0.6))
    assert calibration.start_score == 0.5


@pytest.mark.slow  # a model over generated videos, twice (about 5 s)
def test_retracking_a_recording_gives_the_predictors_own_tracks(tmp_path):
    """Random weights (scores near the prior, so low thresholds) over 2 generated videos at stride 2: the tracks
    of the recording re-tracked with a profile are those of the predictor running that profile, frame by frame."""
    from sgnet_model.config import named_config
    from sgnet_model.predictor import StreamingPredictor
    from training.evaluate import predict_videos
    from training.split import every_nth_frame
    from training.synthetic import generate_synthetic_set

    annotations_path = generate_synthetic_set(tmp_path / "set", videos=2, frames=6, seed=3)
    annotations = json.loads(annotations_path.read_text())
    frames = tmp_path / "set" / "JPEGImages"
    config = named_config("resnet18_small")
    model = dataclasses.replace(config.model, class_names=parse_annotations(annotations).class_names,
                                score_threshold=0.0, detections_per_frame=8)
    predictor = StreamingPredictor.from_config(dataclasses.replace(config, model=model), REFERENCE)
    profile = TrackerConfig(new_track_score=0.08, continue_score=0.06)
    recording = record(predictor, annotations, frames, stride=2, floor=0.05)
    assert sum(len(frame.scores) for video in recording.frames.values() for frame in video) > 0
    predictor.tracker_config = profile
    expected, _ = predict_videos(predictor, parse_annotations(every_nth_frame(annotations, 2)),
                                 list(recording.frames), frames, progress=False)
    got = retrack(recording, profile)
    assert len(got) == len(expected) > 0
    assert got == expected


@pytest.mark.slow  # see above
def test_calibration_leaves_the_predictors_profile_as_it_was(tmp_path):
    from sgnet_model.config import named_config
    from sgnet_model.predictor import StreamingPredictor
    from training.synthetic import generate_synthetic_set

    annotations = json.loads(generate_synthetic_set(tmp_path / "set", videos=1, frames=4, seed=5).read_text())
    config = named_config("resnet18_small")
    model = dataclasses.replace(config.model, class_names=parse_annotations(annotations).class_names)
    predictor = StreamingPredictor.from_config(dataclasses.replace(config, model=model), REFERENCE)
    before = predictor.tracker_config
    calibration = calibrate_start_score(predictor, annotations, tmp_path / "set" / "JPEGImages")
    assert predictor.tracker_config == before and calibration.strides == (1, 2)


@pytest.mark.slow  # trains twice (about 4 s)
def test_training_writes_the_start_score_it_chose_and_a_stopped_run_does_not_choose(tmp_path, capsys):
    """sgnet-train ends by choosing the robot profile's start score on calibration_videos training videos and
    writing it into model.pt; the same choice made here on the same videos (the model's profile as the model
    config gives it) agrees. A run stopped for now (--stop-after) keeps the config's start score."""
    from sgnet_model.checkpoint import load_checkpoint
    from sgnet_model.config import named_config
    from sgnet_model.predictor import StreamingPredictor
    from training.config import load_train_config
    from training.split import split_annotations
    from training.synthetic import generate_synthetic_set
    from training.train import train

    annotations_path = generate_synthetic_set(tmp_path / "set", videos=4, frames=5, width=160, height=96, seed=3)
    frames = tmp_path / "set" / "JPEGImages"
    overrides = [f"data.annotations={annotations_path}", f"data.frames={frames}", "data.workers=0",
                 "batch_size=2", "model.input_width=160", "model.input_height=96", "max_minutes=0", "max_iters=4",
                 "calibration_videos=3"]
    config = load_train_config(Path(__file__).resolve().parents[2] / "config/train/synthetic_small.yaml", overrides)
    shipped = named_config(config.model_config).tracker
    model = train(config, tmp_path / "run", progress=False)
    chosen = load_checkpoint(model).tracker_profiles["robot"]
    assert f"sgnet-train: robot profile start score {chosen.new_track_score:g} (IDF1 on the training videos" in \
        capsys.readouterr().err
    predictor = StreamingPredictor.from_checkpoint(model, REFERENCE, profile="robot")
    predictor.tracker_config = shipped
    _, three = split_annotations(json.loads(annotations_path.read_text()), val_count=3)
    expected = calibrate_start_score(predictor, three, frames)
    assert chosen == dataclasses.replace(shipped, new_track_score=expected.start_score,
                                         continue_score=min(shipped.continue_score, expected.start_score))

    train(config, tmp_path / "stopped", progress=False, stop_after=2)
    assert load_checkpoint(tmp_path / "stopped" / "model.pt").tracker_profiles["robot"] == shipped
    assert "start score" not in capsys.readouterr().err
