"""The 3D estimator (sgnet_ros/depth.py) and the synthetic depth set it is scored on, with ground truth worked out
by hand or from the generator's exact geometry; and the pure parts of the depth input (pairing by stamp)."""
import json
import math

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from sgnet_ros.depth import CameraIntrinsics, DepthError, check_depth_frame, decode_depth, locate_instance
from sgnet_ros.depth_input import DepthBuffer, camera_info_topic
from training.synthetic import (CAMERA_INFO_FILE, DEPTH_DIR, DEPTH_TRUTH_FILE, PinholeCamera, SyntheticError,
                                depth_video, generate_synthetic_set, random_video)

# A 100 x 80 camera with different focal lengths on x and y, so that a swapped axis shows.
CAMERA = CameraIntrinsics(fx=200.0, fy=250.0, cx=49.5, cy=39.5, width=100, height=80)
OBJECT_Z, BACKGROUND_Z = 2.0, 5.0


def scene(rows=slice(10, 30), columns=slice(60, 80)):
    """A 20 x 20 pixel square at 2 m in front of a wall at 5 m: (mask, depth)."""
    mask = np.zeros((CAMERA.height, CAMERA.width), bool)
    mask[rows, columns] = True
    depth = np.full(mask.shape, BACKGROUND_Z, np.float32)
    depth[mask] = OBJECT_Z
    return mask, depth


# By hand: columns 60..79 have mean 69.5, rows 10..29 mean 19.5; x = (69.5 - 49.5) * 2 / 200 = 0.2,
# y = (19.5 - 39.5) * 2 / 250 = -0.16; the square is 20 pixels of 2 / 200 = 0.01 m wide and of 2 / 250 = 0.008 m high.
SQUARE_POSITION = (0.2, -0.16, 2.0)
SQUARE_SIZE = (0.2, 0.16, 0.0)


def test_a_square_facing_the_camera_is_located_and_measured_exactly():
    mask, depth = scene()
    located = locate_instance(mask, depth, CAMERA, erosion_px=2, min_valid_pixels=20)
    assert located.position == pytest.approx(SQUARE_POSITION, abs=1e-6)
    assert located.box_centre == pytest.approx(SQUARE_POSITION, abs=1e-6)
    assert located.size == pytest.approx(SQUARE_SIZE, abs=1e-6)
    assert located.valid_pixels == 16 * 16  # eroded by 2 pixels on each side


def test_mask_bleeding_onto_the_background_and_flying_pixels_change_nothing():
    mask, depth = scene()
    bled = np.zeros_like(mask)
    bled[7:33, 57:83] = True  # the mask spills 3 pixels over the outline, onto the wall
    ring = bled & ~cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    depth[ring & mask] = 3.5  # the square's own edge pixels: depth smeared half way to the wall (flying pixels)
    located = locate_instance(bled, depth, CAMERA, erosion_px=2, min_valid_pixels=20)
    assert located.position == pytest.approx(SQUARE_POSITION, abs=1e-6)
    # the box: the square without its 1-pixel smeared outline, 18 x 18 pixels
    assert located.size == pytest.approx((18 * 0.01, 18 * 0.008, 0.0), abs=1e-6)


@pytest.mark.parametrize("hole", [0.0, np.nan, np.inf, -1.0])
def test_holes_in_the_depth_are_ignored(hole):
    mask, depth = scene()
    depth[15:20, 65:75] = hole  # 50 pixels without depth inside the eroded square: rows 15..19, columns 65..74
    located = locate_instance(mask, depth, CAMERA, erosion_px=2, min_valid_pixels=20)
    assert located.valid_pixels == 16 * 16 - 50
    # the mean over the square minus the hole, by hand: the eroded square is rows 12..27, columns 62..77
    rows, columns = np.mgrid[12:28, 62:78]
    keep = ~((rows >= 15) & (rows < 20) & (columns >= 65) & (columns < 75))
    expected_x = (columns[keep].mean() - 49.5) * 2 / 200
    expected_y = (rows[keep].mean() - 39.5) * 2 / 250
    assert located.position == pytest.approx((expected_x, expected_y, 2.0), abs=1e-6)


def test_random_dropout_of_a_fifth_of_the_pixels_leaves_the_mean_of_the_pixels_left():
    mask, depth = scene()
    dropped = np.random.default_rng(0).uniform(size=depth.shape) < 0.2
    depth[dropped] = 0
    located = locate_instance(mask, depth, CAMERA, erosion_px=2, min_valid_pixels=20)
    rows, columns = np.mgrid[12:28, 62:78]  # the eroded square
    kept = ~dropped[12:28, 62:78]
    assert located.valid_pixels == kept.sum() < 256
    expected = ((columns[kept].mean() - 49.5) * 2 / 200, (rows[kept].mean() - 39.5) * 2 / 250, 2.0)
    assert located.position == pytest.approx(expected, abs=1e-6)


def test_an_object_on_a_slope_spans_its_depth_range_and_its_centroid_is_the_mean_point():
    mask, depth = scene()
    rows = np.arange(CAMERA.height, dtype=np.float32)[:, None]
    depth[mask] = np.broadcast_to(2.0 + 0.01 * (rows - 10), depth.shape)[mask]  # 2.00 m at row 10 .. 2.19 m at row 29
    located = locate_instance(mask, depth, CAMERA, erosion_px=0, min_valid_pixels=20)
    assert located.size[2] == pytest.approx(0.19, abs=1e-6)
    v, u = np.nonzero(mask)
    z = depth[v, u].astype(np.float64)
    expected = ((u - 49.5) * z / 200).mean(), ((v - 39.5) * z / 250).mean(), z.mean()
    assert located.position == pytest.approx(expected, abs=1e-6)


def test_thin_masks_fall_back_to_the_uneroded_mask_and_too_few_depths_give_nothing():
    mask, depth = scene(rows=slice(10, 12))  # 2 x 20: erosion by 2 leaves nothing
    located = locate_instance(mask, depth, CAMERA, erosion_px=2, min_valid_pixels=20)
    assert located.valid_pixels == 40 and located.position[2] == pytest.approx(2.0)
    assert locate_instance(mask, depth, CAMERA, erosion_px=2, min_valid_pixels=41) is None
    assert locate_instance(np.zeros_like(mask), depth, CAMERA) is None
    depth[mask] = 0
    assert locate_instance(mask, depth, CAMERA, erosion_px=2, min_valid_pixels=1) is None


def test_objects_cut_by_the_image_border_keep_their_border_pixels():
    mask, depth = scene(rows=slice(0, 20), columns=slice(0, 20))
    located = locate_instance(mask, depth, CAMERA, erosion_px=2, min_valid_pixels=20)
    assert located.valid_pixels == 18 * 18  # eroded on the two inner sides only
    assert located.position[2] == pytest.approx(2.0)


@pytest.mark.parametrize("big_endian", [False, True])
def test_16uc1_millimetres_and_32fc1_metres_decode_to_metres_with_padded_rows(big_endian):
    millimetres = np.array([[0, 1500, 65535], [250, 2, 40000]], np.uint16)
    order = ">" if big_endian else "<"
    padded = np.zeros((2, 4), f"{order}u2")  # 2 pixels of padding per row
    padded[:, :3] = millimetres
    depth = decode_depth("16UC1", 2, 3, 8, big_endian, padded.tobytes())
    assert depth.dtype == np.float32
    assert depth == pytest.approx(np.array([[0, 1.5, 65.535], [0.25, 0.002, 40.0]]), rel=1e-6, abs=1e-9)
    metres = np.array([[1.25, np.nan, 0.0]], f"{order}f4")
    decoded = decode_depth("32FC1", 1, 3, 12, big_endian, metres.tobytes())
    assert decoded[0, 0] == 1.25 and np.isnan(decoded[0, 1]) and decoded[0, 2] == 0


def test_bad_depth_images_and_camera_infos_are_refused_with_what_to_do():
    with pytest.raises(DepthError, match="encoding 'rgb8' is not a depth encoding.*16UC1 or 32FC1"):
        decode_depth("rgb8", 2, 2, 6, False, bytes(12))
    with pytest.raises(DepthError, match="data has 7 bytes, but height x step = 8"):
        decode_depth("16UC1", 2, 2, 4, False, bytes(7))
    with pytest.raises(DepthError, match="step 3 is smaller than width x 2 bytes = 4"):
        decode_depth("16UC1", 2, 2, 3, False, bytes(6))
    with pytest.raises(DepthError, match="no usable focal lengths.*not calibrated"):
        CameraIntrinsics.from_camera_info([0.0] * 9, 640, 360)
    with pytest.raises(DepthError, match="K has 4 values"):
        CameraIntrinsics.from_camera_info([1.0] * 4, 640, 360)
    with pytest.raises(DepthError, match="depth image is 320x180 but the colour image is 640x360.*aligned"):
        check_depth_frame((180, 320), (360, 640), CameraIntrinsics.from_camera_info(CAMERA.k(), 320, 180))
    with pytest.raises(DepthError, match="camera_info is 100x80 but the depth image is 640x360"):
        check_depth_frame((360, 640), (360, 640), CAMERA)


def test_depth_pairs_with_the_nearest_stamp_and_camera_info_sits_beside_the_depth_image():
    buffer = DepthBuffer(capacity=3)
    assert buffer.nearest(100) is None
    for stamp in (300, 100, 200, 400):  # out of order; the oldest arrival (300) falls out of the buffer
        buffer.add(stamp, f"depth {stamp}")
    assert buffer.nearest(290) == (90, "depth 200")
    assert buffer.nearest(390) == (10, "depth 400")
    assert buffer.nearest(0) == (100, "depth 100")
    assert buffer.pairing_settled(450, 50) and not buffer.pairing_settled(460, 50)
    assert camera_info_topic("/camera/aligned_depth_to_color/image_raw", "") == \
        "/camera/aligned_depth_to_color/camera_info"
    assert camera_info_topic("depth/image_raw", "") == "depth/camera_info"
    assert camera_info_topic("depth", "") == "camera_info"
    assert camera_info_topic("depth", "/other/info") == "/other/info"


# ------------------------------------------------------------------------------------------------ synthetic depth


@pytest.fixture(scope="module")
def depth_set(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synth_depth")
    generate_synthetic_set(folder / "with", videos=6, seed=5, depth=True)
    generate_synthetic_set(folder / "without", videos=6, seed=5)
    generate_synthetic_set(folder / "holes", videos=6, seed=5, depth=True, depth_dropout=0.2)
    return folder


def test_depth_leaves_the_colour_frames_and_annotations_byte_identical(depth_set):
    with_depth, without = depth_set / "with", depth_set / "without"
    colour = sorted(p.relative_to(with_depth) for p in (with_depth / "JPEGImages").rglob("*.jpg"))
    assert colour == sorted(p.relative_to(without) for p in (without / "JPEGImages").rglob("*.jpg"))
    assert all((with_depth / p).read_bytes() == (without / p).read_bytes() for p in colour)
    assert (with_depth / "annotations.json").read_bytes() == (without / "annotations.json").read_bytes()
    assert not (without / DEPTH_DIR).exists() and not (without / DEPTH_TRUTH_FILE).exists()


def test_depth_dropout_makes_holes_in_the_same_depth(depth_set):
    with_depth, holes = depth_set / "with", depth_set / "holes"
    assert (holes / DEPTH_TRUTH_FILE).read_bytes() == (with_depth / DEPTH_TRUTH_FILE).read_bytes()
    pngs = sorted(p.relative_to(with_depth) for p in (with_depth / DEPTH_DIR).rglob("*.png"))
    full = np.stack([cv2.imread(str(with_depth / p), cv2.IMREAD_UNCHANGED) for p in pngs])
    holed = np.stack([cv2.imread(str(holes / p), cv2.IMREAD_UNCHANGED) for p in pngs])
    kept = holed > 0
    assert np.array_equal(holed[kept], full[kept]) and (full > 0).all()
    assert abs((~kept).mean() - 0.2) < 0.005  # 0.2 of several hundred thousand pixels drawn at random
    with pytest.raises(SyntheticError, match=r"depth dropout must lie in \[0, 1\), got 1.0"):
        generate_synthetic_set(depth_set / "bad", videos=1, depth=True, depth_dropout=1.0)
    with pytest.raises(SyntheticError, match="ask for depth too"):
        generate_synthetic_set(depth_set / "bad", videos=1, depth_dropout=0.2)


def load_truth(folder):
    truth = json.loads((folder / DEPTH_TRUTH_FILE).read_text())
    annotations = {a["id"]: a for a in json.loads((folder / "annotations.json").read_text())["annotations"]}
    return truth, annotations


def test_depth_frames_put_each_shape_at_its_distance_in_front_of_the_plane(depth_set):
    folder = depth_set / "with"
    truth, annotations = load_truth(folder)
    calibration = __import__("yaml").safe_load((folder / CAMERA_INFO_FILE).read_text())
    # 320 px across a 69.4 degree field of view: f = 160 / tan(34.7 degrees)
    focal = 160 / math.tan(math.radians(34.7))
    assert calibration["camera_matrix"]["data"] == pytest.approx([focal, 0, 159.5, 0, focal, 95.5, 0, 0, 1])
    assert (calibration["image_width"], calibration["image_height"]) == (320, 192) == (truth["width"], truth["height"])
    for video in truth["videos"]:
        distances = [o["distance"] for o in video["objects"]]
        assert distances == sorted(distances, reverse=True)  # painted back to front = far to near
        for index, file_name in enumerate(video["depth_files"]):
            millimetres = cv2.imread(str(folder / DEPTH_DIR / file_name), cv2.IMREAD_UNCHANGED)
            assert millimetres.dtype == np.uint16 and millimetres.shape == (192, 320)
            covered = np.zeros((192, 320), bool)
            for entry in video["objects"]:
                rle = annotations[entry["annotation_id"]]["segmentations"][index]
                if rle is None:
                    assert entry["frames"][index] is None
                    continue
                mask = mask_utils.decode(rle).astype(bool)
                assert (millimetres[mask] == round(entry["distance"] * 1000)).all()
                covered |= mask
            assert millimetres[~covered].min() >= round(max(distances, default=0) * 1000) + 500  # the wall, behind


def centroid_errors(folder):
    """Relative 3D centroid errors (|estimate - truth| / distance) of every visible (object, frame) of the set,
    with ground-truth masks."""
    truth, annotations = load_truth(folder)
    camera = CameraIntrinsics.from_camera_info(truth["k"], truth["width"], truth["height"])
    errors = []
    for video in truth["videos"]:
        for index, file_name in enumerate(video["depth_files"]):
            depth = cv2.imread(str(folder / DEPTH_DIR / file_name), cv2.IMREAD_UNCHANGED).astype(np.float32) / 1000
            for entry in video["objects"]:
                expected = entry["frames"][index]
                if expected is None:
                    continue
                mask = mask_utils.decode(annotations[entry["annotation_id"]]["segmentations"][index]).astype(bool)
                located = locate_instance(mask, depth, camera)
                error = (math.inf if located is None else
                         np.linalg.norm(np.subtract(located.position, expected["centroid"])) / entry["distance"])
                errors.append(error)
    return np.array(errors)


def test_with_exact_masks_the_median_centroid_error_is_far_within_target(depth_set):
    errors = centroid_errors(depth_set / "with")
    assert len(errors) > 50
    assert np.median(errors) <= 0.02 and np.median(errors) < 0.002  # mm quantisation and erosion only
    errors = centroid_errors(depth_set / "holes")
    assert np.median(errors) <= 0.03 and np.median(errors) < 0.002


def test_the_truths_centroid_and_centre_agree_for_whole_shapes():
    """A second route to the ground truth: for a shape fully in view and unoccluded, the centroid of its pixels
    is its own centre (every class is point-symmetric or, the triangle, has its centroid at its centre)."""
    camera = PinholeCamera.for_frame(320, 192)
    video = random_video(np.random.default_rng(3), 8, 192, 320, 1, ("circle", "square", "triangle", "star"),
                         (40.0, 60.0))
    frames, truth = depth_video(np.random.default_rng(4), video, camera)
    checked = 0
    for t, entry in enumerate(truth["objects"][0]["frames"]):
        mask = video.masks[0][t]
        if entry is None or mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any():
            continue
        pixel = truth["objects"][0]["distance"] / camera.focal  # one pixel at that distance, metres
        assert np.abs(np.subtract(entry["centroid"], entry["centre"])).max() < 0.5 * pixel
        assert frames[t][mask] == pytest.approx(entry["centre"][2])
        checked += 1
    assert checked >= 3


# ------------------------------------------------------------------------------------------------------ messages


def frame_with_two_tracks():
    from sgnet_model.instances import FrameResult, TrackedInstance
    from std_msgs.msg import Header

    def tracked(track_id, score):
        mask, box = scene()[0], np.array([60, 10, 80, 30], np.float32)
        return TrackedInstance(track_id=track_id, class_id=1, class_name="square", score=score, box=box, mask=mask,
                               centre=np.array([70, 20], np.float32), motion=np.zeros(2, np.float32))
    header = Header(frame_id="camera_color_optical_frame")
    header.stamp.sec, header.stamp.nanosec = 7, 25
    return FrameResult(timestamp=7.0, instances=[tracked(4, 0.9), tracked(9, 0.4)], inference_ms=1.0,
                       tracks_reset=False), header


def test_instance_messages_carry_the_3d_fields_of_located_tracks_only():
    from sgnet_ros.outputs import instance_array_msg

    result, header = frame_with_two_tracks()
    mask, depth = scene()
    located = locate_instance(mask, depth, CAMERA)
    message = instance_array_msg(result, header, {9: located})
    first, second = message.instances  # by score: track 4, then 9
    assert (first.track_id, first.position_valid, first.depth_pixels) == (4, False, 0)
    assert (first.position.x, first.position.y, first.position.z, first.size.x) == (0, 0, 0, 0)
    assert (second.track_id, second.position_valid, second.depth_pixels) == (9, True, 256)
    assert (second.position.x, second.position.y, second.position.z) == pytest.approx(SQUARE_POSITION, abs=1e-6)
    assert (second.box_centre.x, second.box_centre.y, second.box_centre.z) == pytest.approx(SQUARE_POSITION,
                                                                                            abs=1e-6)
    assert (second.size.x, second.size.y, second.size.z) == pytest.approx(SQUARE_SIZE, abs=1e-6)
    assert not any(i.position_valid for i in instance_array_msg(result, header).instances)


def test_detection3d_array_has_track_ids_and_the_box_in_the_optical_frame():
    pytest.importorskip("vision_msgs", reason="vision_msgs is not on PyPI; it comes with a ROS 2 install, and "
                                              "the node publishes detections_3d only where it is")
    from sgnet_ros.outputs import detection3d_array_msg

    result, header = frame_with_two_tracks()
    mask, depth = scene()
    message = detection3d_array_msg(result, header, {9: locate_instance(mask, depth, CAMERA)})
    assert message.header == header and [d.id for d in message.detections] == ["9"]
    detection = message.detections[0]
    assert detection.header == header
    centre = detection.bbox.center
    assert (centre.position.x, centre.position.y, centre.position.z) == pytest.approx(SQUARE_POSITION, abs=1e-6)
    assert centre.orientation.w == 1.0
    assert (detection.bbox.size.x, detection.bbox.size.y, detection.bbox.size.z) == pytest.approx(SQUARE_SIZE,
                                                                                                 abs=1e-6)
    hypothesis = detection.results[0]
    assert (hypothesis.hypothesis.class_id, hypothesis.hypothesis.score) == ("square", pytest.approx(0.4))
    assert hypothesis.pose.pose.position.z == pytest.approx(2.0)
