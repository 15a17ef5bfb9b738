"""The node with a trained model, over real DDS: a synthetic moving-shapes video goes in, and the masks, classes
and track ids that come out must match the shapes drawn (the ground truth of the synthetic generator).

Needs the session fixture ``trained_checkpoint`` (test/conftest.py: a small model trained on the synthetic set).
"""
from collections import Counter

import numpy as np
import pytest
from sensor_msgs.msg import Image

from ros_harness import image_message, stamp_of, wait_until
from sgnet_model.checkpoint import load_checkpoint
from sgnet_ros.masks import instance_mask
from sgnet_ros.msg import InstanceArray
from training.synthetic import DEFAULT_SIZES, SHAPES, random_video

NAMESPACE = "/trained"
HEIGHT, WIDTH, FRAMES = 192, 320, 12
MIN_MASK_IOU = 0.5  # a mask counts as found at this IoU with the drawn shape
MIN_FOUND = 0.7  # share of (object, frame) pairs whose mask is found


@pytest.fixture(scope="module")
def trained(trained_checkpoint) -> str:
    return str(trained_checkpoint.checkpoint)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


@pytest.fixture(scope="module")
def run(ros, node_factory, trained):
    """One synthetic video through the node: (video, outputs per frame)."""
    class_names = load_checkpoint(trained).model_config.class_names
    shapes = [name for name in class_names if name in SHAPES]
    assert shapes, f"the trained model's classes {class_names} are not synthetic shapes"
    video = random_video(np.random.default_rng(7), FRAMES, HEIGHT, WIDTH, 2, shapes, DEFAULT_SIZES)
    node = node_factory("sgnet", NAMESPACE, checkpoint=trained, qos_reliability="reliable")
    client = ros.client
    client.subscribe(f"{NAMESPACE}/instances", InstanceArray)
    publisher = client.publisher(f"{NAMESPACE}/image", Image, reliable=True)
    # stamps travel in whole nanoseconds: 100 + 1/6 s comes back as 100.166666666
    received = lambda stamp: [m for m in client.received(f"{NAMESPACE}/instances") if abs(stamp_of(m) - stamp) < 1e-6]
    warm_up = image_message(video.frames[0], 1.0)
    for _ in range(60):  # until discovery is complete on both sides and the model has run once
        publisher.publish(warm_up)
        if wait_until(lambda: received(1.0), 1.0):
            break
    outputs = []
    for index, frame in enumerate(video.frames):
        stamp = 100.0 + index / 6  # a synthetic video's frames are 1/6 s apart (sgnet-synth, 6 frames a second)
        publisher.publish(image_message(frame, stamp))
        assert wait_until(lambda: received(stamp), 60), node.output()[-3000:]
        outputs.append(received(stamp)[-1])
    return video, outputs


def matches(video, outputs):
    """For each (object, frame) where the object is visible: the instance of best mask IoU, and that IoU."""
    found = {}
    for track_index, track in enumerate(video.tracks):
        for frame_index, output in enumerate(outputs):
            truth = video.masks[track_index][frame_index]
            if truth is None:
                continue
            scored = [(iou(instance_mask(i), truth), i) for i in output.instances]
            found[track_index, frame_index] = max(scored, key=lambda pair: pair[0], default=(0.0, None))
    return found


def test_masks_and_classes_match_the_drawn_shapes(run, model_figures):
    video, outputs = run
    assert outputs[0].tracks_reset and not any(o.tracks_reset for o in outputs[1:])
    found = matches(video, outputs)
    hits = [(key, instance) for key, (overlap, instance) in found.items() if overlap >= MIN_MASK_IOU]
    right_class = [instance.class_name == video.tracks[track_index].shape for (track_index, _), instance in hits]
    model_figures.hold(("masks found", len(hits) / len(found), ">=", MIN_FOUND),
                       ("found with the right class", sum(right_class) / max(len(hits), 1), ">=", 0.8))


def test_track_ids_persist_over_the_video(run, model_figures):
    """Each object found in 3 frames or more keeps one id in most of them (the worst object's share)."""
    video, outputs = run
    found = matches(video, outputs)
    shares = []
    for track_index in range(len(video.tracks)):
        ids = [instance.track_id for (t, _), (overlap, instance) in found.items()
               if t == track_index and overlap >= MIN_MASK_IOU]
        if len(ids) >= 3:
            shares.append(Counter(ids).most_common(1)[0][1] / len(ids))
    assert shares, "no object was found in 3 frames or more"
    model_figures.hold(("share of an object's frames under its main id (worst object)", min(shares), ">=", 0.8))
    per_frame = [[i.track_id for i in o.instances] for o in outputs]
    assert all(len(ids) == len(set(ids)) for ids in per_frame)  # one instance per track in a frame
