"""Instances in 3D with a trained model, on synthetic videos with depth the model never saw: the issue's targets
(median 3D centroid error <= 2 % of the object's distance, <= 3 % with 20 % of the depth pixels dropped), first with
the predictor's masks at the function level, then through the node over real DDS.

Needs the session fixture ``trained_checkpoint`` (test/conftest.py: a small model trained on the synthetic set).
The videos here come from seeds the training set never used; their 3D ground truth is the generator's exact
geometry (training/synthetic.py depth_video): the centroid of each shape's visible surface.
"""
import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, Image

from ros_harness import image_message, stamp_of, wait_until
from sgnet_model.checkpoint import load_checkpoint
from sgnet_model.predictor import StreamingPredictor
from sgnet_ros.depth import CameraIntrinsics, locate_instance
from sgnet_ros.masks import instance_mask
from sgnet_ros.msg import InstanceArray
from training.synthetic import DEFAULT_SIZES, SHAPES, PinholeCamera, depth_video, random_video
from runtime_reference import REFERENCE

NAMESPACE = "/depth_trained"
HEIGHT, WIDTH, FRAMES = 192, 320, 12
VIDEO_SEEDS = (101, 102, 103, 104)
MIN_MASK_IOU = 0.5  # a predicted instance is the shape its mask overlaps at this IoU
DROPOUT = 0.2
CAMERA = PinholeCamera.for_frame(WIDTH, HEIGHT)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def with_dropout(depth: np.ndarray, seed: int, fraction: float) -> np.ndarray:
    """The depth with ``fraction`` of its pixels (drawn at random) set to 0, as depth cameras mark holes."""
    dropped = depth.copy()
    dropped[np.random.default_rng(seed).uniform(size=depth.shape) < fraction] = 0
    return dropped


@pytest.fixture(scope="module")
def videos(trained_checkpoint):
    class_names = load_checkpoint(trained_checkpoint.checkpoint).model_config.class_names
    shapes = [name for name in class_names if name in SHAPES]
    made = []
    for seed in VIDEO_SEEDS:
        video = random_video(np.random.default_rng(seed), FRAMES, HEIGHT, WIDTH, 2, shapes, DEFAULT_SIZES)
        depth, truth = depth_video(np.random.default_rng(seed + 1000), video, CAMERA)
        made.append((video, depth, truth))
    return made


def relative_errors(video, truth, masks_per_frame, positions_per_frame):
    """|position - true centroid| / distance of every predicted instance matched to a visible shape.

    masks_per_frame[t]: predicted (H, W) masks; positions_per_frame[t]: their (x, y, z) or None."""
    errors, missed = [], 0
    for t, (masks, positions) in enumerate(zip(masks_per_frame, positions_per_frame)):
        for shape, entry in enumerate(truth["objects"]):
            expected, true_mask = entry["frames"][t], video.masks[shape][t]
            if expected is None or true_mask.sum() < 100:  # slivers at the frame's edge are not scored
                continue
            overlaps = [iou(m, true_mask) for m in masks]
            best = int(np.argmax(overlaps)) if overlaps else None
            if best is None or overlaps[best] < MIN_MASK_IOU or positions[best] is None:
                missed += 1
                continue
            errors.append(np.linalg.norm(np.subtract(positions[best], expected["centroid"])) / entry["distance"])
    return np.array(errors), missed


@pytest.mark.parametrize("dropout, target", [(0.0, 0.02), (DROPOUT, 0.03)])
def test_predicted_masks_locate_objects_within_the_targets(trained_checkpoint, model_figures, videos, dropout,
                                                           target):
    predictor = StreamingPredictor.from_checkpoint(trained_checkpoint.checkpoint, REFERENCE)
    intrinsics = CameraIntrinsics.from_camera_info(CAMERA.k(), WIDTH, HEIGHT)
    errors, missed, scored = [], 0, 0
    for index, (video, depth, truth) in enumerate(videos):
        predictor.reset()
        masks_per_frame, positions_per_frame = [], []
        for t, frame in enumerate(video.frames):
            result = predictor.step(frame, 0.1 * t)
            observed = with_dropout(depth[t].astype(np.float32), 10 * index + t, dropout)
            located = [locate_instance(i.mask, observed, intrinsics) for i in result.instances]
            masks_per_frame.append([i.mask for i in result.instances])
            positions_per_frame.append([None if loc is None else loc.position for loc in located])
        video_errors, video_missed = relative_errors(video, truth, masks_per_frame, positions_per_frame)
        errors.extend(video_errors)
        missed += video_missed
        scored += len(video_errors) + video_missed
    model_figures.hold(("visible shapes found and located", len(errors) / scored, ">=", 0.7),
                       ("median 3D error / distance", float(np.median(errors)), "<=", target))


def depth_image(depth: np.ndarray, stamp: float) -> Image:
    millimetres = np.round(depth * 1000).astype("<u2")
    message = Image(height=HEIGHT, width=WIDTH, encoding="16UC1", is_bigendian=0, step=WIDTH * 2,
                    data=millimetres.tobytes())
    message.header.frame_id = "camera_optical"
    message.header.stamp.sec, message.header.stamp.nanosec = int(stamp), int(round((stamp % 1) * 1e9))
    return message


def test_the_node_publishes_3d_within_the_targets_over_dds(ros, node_factory, trained_checkpoint, model_figures,
                                                           videos):
    node = node_factory("sgnet", NAMESPACE, checkpoint=str(trained_checkpoint.checkpoint), qos_reliability="reliable",
                        depth_image_topic="depth/image_raw", depth_pairing_tolerance_s=0.0, depth_pairing_wait_s=5.0)
    client = ros.client
    client.subscribe(f"{NAMESPACE}/instances", InstanceArray)
    image = client.publisher(f"{NAMESPACE}/image", Image, reliable=True)
    depth_publisher = client.publisher(f"{NAMESPACE}/depth/image_raw", Image, reliable=True)
    info_publisher = client.publisher(f"{NAMESPACE}/depth/camera_info", CameraInfo, reliable=True)
    info = CameraInfo(width=WIDTH, height=HEIGHT, k=CAMERA.k(), distortion_model="plumb_bob", d=[0.0] * 5)
    received = lambda stamp: [m for m in client.received(f"{NAMESPACE}/instances") if stamp_of(m) == stamp]
    warm_up = image_message(videos[0][0].frames[0], 1.0)
    for _ in range(60):
        image.publish(warm_up)
        if wait_until(lambda: received(1.0), 1.0):
            break
    assert wait_until(lambda: depth_publisher.get_subscription_count() and info_publisher.get_subscription_count(),
                      30)
    figures, located, visible = [], 0, 0
    for dropout, target, (video, depth, truth) in ((0.0, 0.02, videos[0]), (DROPOUT, 0.03, videos[1])):
        masks_per_frame, positions_per_frame = [], []
        start = 100.0 + 100 * dropout  # more than predictor.max_gap_s apart: the tracks reset between videos
        for t, frame in enumerate(video.frames):
            stamp = start + 0.1 * t
            info.header.stamp.sec, info.header.stamp.nanosec = int(stamp), int(round((stamp % 1) * 1e9))
            info_publisher.publish(info)
            depth_publisher.publish(depth_image(with_dropout(depth[t], t, dropout), stamp))
            image.publish(image_message(frame, stamp, frame_id="camera_optical"))
            assert wait_until(lambda: received(stamp), 60), node.output()[-3000:]
            output = received(stamp)[-1]
            assert output.header.frame_id == "camera_optical"
            masks_per_frame.append([instance_mask(i) for i in output.instances])
            positions_per_frame.append([(i.position.x, i.position.y, i.position.z) if i.position_valid else None
                                        for i in output.instances])
        errors, missed = relative_errors(video, truth, masks_per_frame, positions_per_frame)
        located, visible = located + len(errors), visible + len(errors) + missed
        figures.append((f"median 3D error / distance, dropout {dropout}", float(np.median(errors)), "<=", target))
    # found and located over both videos, as the test above counts them (one video holds too few shapes to judge);
    # 0.6: the seed sweep's bar (docs/development.md)
    model_figures.hold(("visible shapes found and located", located / visible, ">=", 0.6), *figures)
