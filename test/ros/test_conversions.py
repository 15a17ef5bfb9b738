"""Mask encodings, image message conversions and message building, checked against pycocotools, OpenCV and
values worked out by hand."""
import array

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from sgnet_model.instances import FrameResult, TrackedInstance
from sgnet_ros.images import ImageError, compressed_to_rgb, image_to_rgb, mono16_to_image, rgb_to_image
from sgnet_ros.masks import MaskError, decode_mask, encode_mask, instance_mask, label_image, label_value
from sgnet_ros.outputs import instance_array_msg

BIG = 10**9  # max_image_pixels that never limits


def tracked(track_id: int, score: float, mask: np.ndarray, box=(0, 0, 1, 1)) -> TrackedInstance:
    box = np.array(box, np.float32)
    return TrackedInstance(track_id=track_id, class_id=1, class_name="square", score=score, box=box, mask=mask,
                           centre=(box[:2] + box[2:]) / 2, motion=np.array([1.5, -2.0], np.float32))


# ----------------------------------------------------------------------------------------------- masks

def test_rle_counts_by_hand():
    mask = np.array([[0, 1, 1],
                     [0, 1, 0]], bool)
    # column-major pixels: (0,0)=0 (1,0)=0 | (0,1)=1 (1,1)=1 | (0,2)=1 (1,2)=0  ->  0 0 1 1 1 0
    assert encode_mask(mask).tolist() == [2, 3, 1]
    assert encode_mask(mask).dtype == np.uint32
    first_pixel_set = np.array([[1, 0], [1, 1]], bool)  # column-major 1 1 0 1
    assert encode_mask(first_pixel_set).tolist() == [0, 2, 1, 1]
    assert encode_mask(np.zeros((3, 4), bool)).tolist() == [12]
    assert encode_mask(np.ones((3, 4), bool)).tolist() == [0, 12]


def test_rle_agrees_with_pycocotools_and_keeps_multi_part_masks():
    rng = np.random.default_rng(3)
    mask = np.zeros((120, 200), bool)
    mask[10:40, 20:60] = True  # two separate parts and a hole
    mask[70:110, 150:190] = True
    mask[80:90, 160:170] = False
    noisy = rng.uniform(size=(120, 200)) < 0.3
    for example in (mask, noisy, np.zeros_like(mask), np.ones_like(mask)):
        counts = encode_mask(example)
        # pycocotools' own encoder (compressed form) must describe the same runs as our uncompressed counts
        ours = mask_utils.frPyObjects({"size": list(example.shape), "counts": counts.tolist()}, *example.shape)
        theirs = mask_utils.encode(np.asfortranarray(example.astype(np.uint8)))
        assert ours["counts"] == theirs["counts"]
        assert np.array_equal(decode_mask(*example.shape, counts), example)
        assert int(counts.sum()) == example.size


def test_rle_size_follows_the_boundary_not_the_area():
    small, large = np.zeros((360, 640), bool), np.zeros((360, 640), bool)
    small[100:120, 100:120] = True
    large[50:300, 100:120] = True  # 12.5x the area, same number of columns crossed
    assert len(encode_mask(small)) == len(encode_mask(large)) == 2 * 20 + 1


def test_decode_refuses_counts_that_do_not_fill_the_mask():
    with pytest.raises(MaskError, match="add up to 11 pixels, but the mask has height x width = 12"):
        decode_mask(3, 4, [5, 6])
    with pytest.raises(MaskError, match="must be positive"):
        decode_mask(0, 4, [0])
    with pytest.raises(MaskError):
        decode_mask(3, 4, [14, -2])


def test_label_image_higher_score_wins_overlaps():
    a, b, c = (np.zeros((4, 5), bool) for _ in range(3))
    a[0:3, 0:3] = True
    b[1:4, 2:5] = True  # overlaps a at rows 1-2, column 2
    c[3, 0] = True
    labels = label_image([tracked(7, 0.4, a), tracked(9, 0.9, b), tracked(70_000, 0.5, c)], 4, 5)
    expected = np.array([[7, 7, 7, 0, 0],
                         [7, 7, 9, 9, 9],
                         [7, 7, 9, 9, 9],
                         [70_000 - 65_535, 0, 9, 9, 9]], np.uint16)
    assert labels.dtype == np.uint16 and np.array_equal(labels, expected)
    assert label_value(65_535) == 65_535 and label_value(65_536) == 1 and label_value(1) == 1


def test_instance_message_round_trip():
    mask = np.zeros((30, 40), bool)
    mask[5:12, 8:20] = True
    mask[20:25, 30:38] = True
    low, high = tracked(3, 0.25, mask, (8, 5, 38, 25)), tracked(12, 0.75, ~mask, (0, 0, 40, 30))
    header = Header(frame_id="camera")
    header.stamp.sec, header.stamp.nanosec = 12, 500
    message = instance_array_msg(FrameResult(timestamp=12.0, instances=[low, high], inference_ms=42.5,
                                             tracks_reset=True), header)
    assert message.header == header and message.inference_ms == 42.5 and message.tracks_reset
    assert [i.track_id for i in message.instances] == [12, 3]  # highest score first
    first = message.instances[1]
    assert (first.class_id, first.class_name, first.score) == (1, "square", 0.25)
    assert (first.box_x1, first.box_y1, first.box_x2, first.box_y2) == (8, 5, 38, 25)
    assert (first.centre_x, first.centre_y, first.motion_x, first.motion_y) == (23, 15, 1.5, -2.0)
    assert isinstance(first.mask_counts, array.array) and first.mask_counts.typecode == "I"
    assert np.array_equal(instance_mask(first), mask) and np.array_equal(instance_mask(message.instances[0]), ~mask)


# ---------------------------------------------------------------------------------------------- images

def padded_message(pixels: np.ndarray, encoding: str, padding: int) -> Image:
    """An Image whose rows carry `padding` junk bytes after the pixels, as some drivers send."""
    height, width = pixels.shape[:2]
    rows = pixels.reshape(height, -1)
    junk = np.full((height, padding), 77, np.uint8)
    step = rows.shape[1] + padding
    return Image(height=height, width=width, encoding=encoding, step=step,
                 data=np.concatenate([rows, junk], axis=1).tobytes())


@pytest.mark.parametrize("padding", [0, 5])
def test_every_encoding_gives_rgb(padding):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (6, 7, 3), dtype=np.uint8)
    alpha = rng.integers(0, 256, (6, 7, 1), dtype=np.uint8)
    bgr = rgb[:, :, ::-1]
    cases = {"rgb8": rgb, "bgr8": bgr, "rgba8": np.concatenate([rgb, alpha], 2),
             "bgra8": np.concatenate([bgr, alpha], 2)}
    for encoding, pixels in cases.items():
        assert np.array_equal(image_to_rgb(padded_message(pixels, encoding, padding), BIG), rgb), encoding
    grey = rgb[:, :, 0]
    assert np.array_equal(image_to_rgb(padded_message(grey, "mono8", padding), BIG), np.stack([grey] * 3, 2))


def test_bad_images_are_refused_with_what_is_wrong():
    good = padded_message(np.zeros((4, 5, 3), np.uint8), "rgb8", 2)  # step 17
    cases = [
        (Image(height=4, width=5, encoding="yuv422", step=10, data=bytes(40)), "unsupported encoding 'yuv422'"),
        (Image(height=4, width=5, encoding="16UC1", step=10, data=bytes(40)), "unsupported encoding"),
        (Image(height=0, width=5, encoding="rgb8", step=15, data=b""), "zero size"),
        (Image(height=4, width=0, encoding="rgb8", step=0, data=b""), "zero size"),
        (Image(height=4, width=5, encoding="rgb8", step=14, data=bytes(56)), "step 14 is smaller than"),
        (Image(height=4, width=5, encoding="rgb8", step=17, data=bytes(67)), "data has 67 bytes, but height x step"),
        (Image(height=4, width=5, encoding="rgb8", step=17, data=bytes(69)), "data has 69 bytes"),
    ]
    for message, expected in cases:
        with pytest.raises(ImageError, match=expected):
            image_to_rgb(message, BIG)
    with pytest.raises(ImageError, match="20 pixels is larger than max_image_pixels = 19"):
        image_to_rgb(good, 19)
    assert image_to_rgb(good, 20).shape == (4, 5, 3)


def test_compressed_images_decode_and_corrupt_ones_are_refused():
    rgb = np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    ok, png = cv2.imencode(".png", rgb[:, :, ::-1])  # OpenCV writes BGR
    assert ok
    assert np.array_equal(compressed_to_rgb(CompressedImage(format="png", data=png.tobytes()), BIG), rgb)
    ok, jpeg = cv2.imencode(".jpg", np.full((16, 16, 3), (10, 200, 30), np.uint8)[:, :, ::-1])
    decoded = compressed_to_rgb(CompressedImage(format="jpeg", data=jpeg.tobytes()), BIG)
    assert decoded.shape == (16, 16, 3) and np.abs(decoded.astype(int) - (10, 200, 30)).max() <= 3
    with pytest.raises(ImageError, match="cannot be decoded"):
        compressed_to_rgb(CompressedImage(format="jpeg", data=jpeg.tobytes()[:40] + bytes(60)), BIG)
    with pytest.raises(ImageError, match="has no data"):
        compressed_to_rgb(CompressedImage(format="jpeg", data=b""), BIG)
    with pytest.raises(ImageError, match="larger than max_image_pixels"):
        compressed_to_rgb(CompressedImage(format="png", data=png.tobytes()), 599)


def test_output_images_carry_header_and_pixels():
    header = Header(frame_id="cam")
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    message = rgb_to_image(rgb, header)
    assert (message.encoding, message.step, message.header) == ("rgb8", 9, header)
    assert np.array_equal(image_to_rgb(message, BIG), rgb)
    labels = np.array([[0, 1, 300], [65_535, 2, 0]], np.uint16)
    mono = mono16_to_image(labels, header)
    assert (mono.encoding, mono.step, mono.width, mono.height) == ("mono16", 6, 3, 2)
    order = ">" if mono.is_bigendian else "<"
    assert np.array_equal(np.frombuffer(mono.data, f"{order}u2").reshape(2, 3), labels)
