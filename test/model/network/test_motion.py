"""SG-Net's motion head learns what it is for: on the suite's trained model (test/session_model.py) and videos it
never saw, the movement it predicts for each found object (D = o_t - o_{t-1}, Eq. 4) is closer to the object's
true movement than the zero-motion guess that a tracker without the head would make."""
import numpy as np

from sgnet_model.predictor import StreamingPredictor
from sgnet_model.data.ytvis import load_annotations
from training.datasets import read_frame
from runtime_reference import REFERENCE


def box_centre(mask: np.ndarray) -> np.ndarray:
    """The centre of the mask's box, in pixels (the predictor's ``centre`` is its box's centre too)."""
    rows, cols = np.nonzero(mask)
    return np.array([(cols.min() + cols.max() + 1) / 2, (rows.min() + rows.max() + 1) / 2])


def test_motion_head_beats_the_zero_motion_guess_on_held_out_videos(trained_checkpoint, model_figures):
    """Each instance found in a frame whose mask overlaps a ground-truth object (IoU >= 0.5) present in the
    previous frame too: the L1 error of its predicted movement against the true movement of that object's box
    centre, summed over all of them, against the sum of the true movements themselves (the zero guess's error).
    Over 5 training seeds the ratio was 0.42 to 0.76 (docs/development.md: the seed sweep and its margin)."""
    annotations = load_annotations(trained_checkpoint.annotations)
    predictor = StreamingPredictor.from_checkpoint(trained_checkpoint.checkpoint, REFERENCE, profile="robot")
    predicted_error = zero_error = 0.0
    pairs = 0
    for video_id, video in annotations.videos.items():
        objects = [annotation.masks() for annotation in annotations.annotations[video_id]]
        predictor.reset()
        for index, name in enumerate(video.file_names):
            image = read_frame(trained_checkpoint.frames / name, video.height, video.width, name)
            instances = predictor.step(image, video.frame_times[index]).instances
            if index == 0:
                continue  # no previous frame: nothing to move from
            for instance in instances:
                for masks in objects:
                    now, before = masks[index], masks[index - 1]
                    if now is None or before is None or not now.any() or not before.any():
                        continue
                    if (instance.mask & now).sum() / (instance.mask | now).sum() >= 0.5:
                        truth = box_centre(now) - box_centre(before)
                        predicted_error += float(np.abs(instance.motion - truth).sum())
                        zero_error += float(np.abs(truth).sum())
                        pairs += 1
    assert pairs >= 50, f"only {pairs} found objects with a previous frame: the model found too little to judge"
    model_figures.hold(("motion error / zero-motion error", predicted_error / zero_error, "<=", 0.95))
