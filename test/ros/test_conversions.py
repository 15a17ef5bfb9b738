"""Mask encodings, image message conversions and message building, checked against pycocotools, OpenCV and
values worked out by hand."""
import array
import struct
import zlib

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from sgnet_model.instances import FrameResult, TrackedInstance
from sgnet_ros.images import ImageError, compressed_size, compressed_to_rgb, image_to_rgb, labels_to_image, rgb_to_image
from sgnet_ros.masks import MaskError, class_image, decode_mask, encode_mask, instance_mask, label_image, label_value
from sgnet_model.inference.uncertainty import FrameUncertainty
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


def test_class_image_is_class_id_plus_one_and_mono8_while_classes_fit():
    a, b = np.zeros((2, 3), bool), np.zeros((2, 3), bool)
    a[:, 0:2] = True
    b[:, 1:3] = True  # overlaps a in column 1, where b's higher score wins
    first = TrackedInstance(track_id=1, class_id=0, class_name="person", score=0.3, box=np.zeros(4, np.float32),
                            mask=a, centre=np.zeros(2, np.float32), motion=np.zeros(2, np.float32))
    second = TrackedInstance(track_id=2, class_id=6, class_name="car", score=0.8, box=np.zeros(4, np.float32),
                             mask=b, centre=np.zeros(2, np.float32), motion=np.zeros(2, np.float32))
    classes = class_image([first, second], 2, 3, class_count=40)
    assert classes.dtype == np.uint8 and np.array_equal(classes, [[1, 7, 7], [1, 7, 7]])
    message = labels_to_image(classes, Header(frame_id="cam"))
    assert (message.encoding, message.step, message.is_bigendian) == ("mono8", 3, 0)
    assert class_image([first], 2, 3, class_count=300).dtype == np.uint16  # ids up to 300 need 16 bits


def test_instance_message_round_trip():
    mask = np.zeros((30, 40), bool)
    mask[5:12, 8:20] = True
    mask[20:25, 30:38] = True
    low, high = tracked(3, 0.25, mask, (8, 5, 38, 25)), tracked(12, 0.75, ~mask, (0, 0, 40, 30))
    high.predicted = True
    header = Header(frame_id="camera")
    header.stamp.sec, header.stamp.nanosec = 12, 500
    events = FrameUncertainty(borderline=2, started=1, lost=4, class_changes=3, tracks=(3,))
    message = instance_array_msg(FrameResult(timestamp=12.0, instances=[low, high], inference_ms=42.5,
                                             tracks_reset=True, uncertainty=events), header)
    assert message.header == header and message.inference_ms == 42.5 and message.tracks_reset
    assert (message.uncertainty_borderline, message.uncertainty_started, message.uncertainty_lost,
            message.uncertainty_class_changes) == (2, 1, 4, 3)
    assert [(i.track_id, i.uncertain, i.predicted) for i in message.instances] == [(12, False, True), (3, True, False)]
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
        (Image(height=4, width=5, encoding="32FC1", step=20, data=bytes(80)), "unsupported encoding '32FC1'"),
        (Image(height=4, width=5, encoding="yuv422", step=10, data=bytes(40)), "yuv422 needs an even width"),
        (Image(height=4, width=4, encoding="rgb16", step=23, data=bytes(92)), "smaller than width x bytes per"),
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


def test_sixteen_bit_encodings_keep_the_high_byte_in_either_byte_order():
    rgb = np.random.default_rng(2).integers(0, 256, (3, 4, 3), dtype=np.uint8)
    low = np.random.default_rng(3).integers(0, 256, rgb.shape, dtype=np.uint16)
    wide = rgb.astype(np.uint16) * 256 + low  # high byte v, any low byte
    for order, big in (("<", 0), (">", 1)):
        for encoding, pixels in (("rgb16", wide), ("bgr16", wide[:, :, ::-1])):
            message = padded_message(pixels.astype(f"{order}u2").view(np.uint8), encoding, 3)
            message.is_bigendian = big
            assert np.array_equal(image_to_rgb(message, BIG), rgb), (encoding, order)
        grey = padded_message(wide[:, :, 1:2].astype(f"{order}u2").view(np.uint8), "mono16", 0)
        grey.is_bigendian = big
        assert np.array_equal(image_to_rgb(grey, BIG), np.stack([rgb[:, :, 1]] * 3, 2))


def bt601_limited(y: float, u: float, v: float) -> np.ndarray:
    """ITU-R BT.601 YCbCr (video range) to RGB, the formula of the standard (what V4L2 cameras send)."""
    c, d, e = y - 16, u - 128, v - 128
    return np.clip([1.164 * c + 1.596 * e, 1.164 * c - 0.392 * d - 0.813 * e, 1.164 * c + 2.017 * d], 0, 255)


@pytest.mark.parametrize("encoding, order", [("yuv422_yuy2", "YUYV"), ("yuyv", "YUYV"), ("yuv422", "UYVY"),
                                             ("uyvy", "UYVY")])
def test_yuv422_against_the_bt601_formula(encoding, order):
    """Two colour halves built byte by byte in the encoding's order (Y0 U Y1 V or U Y0 V Y1 per pixel pair)."""
    height, width = 4, 8
    colours = [(120, 90, 170), (60, 200, 100)]  # (Y, U, V) of the left and right half
    data = bytearray()
    for _ in range(height):
        for pair in range(width // 2):
            y, u, v = colours[pair >= width // 4]
            data += bytes((y, u, y, v) if order == "YUYV" else (u, y, v, y))
    message = Image(height=height, width=width, encoding=encoding, step=width * 2, data=bytes(data))
    rgb = image_to_rgb(message, BIG).astype(float)
    for half, columns in ((0, slice(0, width // 2)), (1, slice(width // 2, width))):
        expected = bt601_limited(*colours[half])
        assert np.abs(rgb[:, columns] - expected).max() <= 1.5, (encoding, half, rgb[0, columns][0], expected)


@pytest.mark.parametrize("encoding", ["bayer_rggb8", "bayer_bggr8", "bayer_gbrg8", "bayer_grbg8"])
def test_bayer_mosaics_of_one_colour_give_that_colour(encoding):
    """A mosaic sampled from a single colour: every demosaicing gives that colour back inside the image, and a
    wrong pattern would swap red and blue or put green in their place."""
    colour = {"r": 200, "g": 100, "b": 30}
    pattern = encoding.removeprefix("bayer_").removesuffix("8")  # e.g. "rggb": the 2x2 cell row by row
    mosaic = np.zeros((8, 10), np.uint8)
    for index, channel in enumerate(pattern):
        mosaic[index // 2::2, index % 2::2] = colour[channel]
    message = padded_message(mosaic, encoding, 2)
    rgb = image_to_rgb(message, BIG)
    assert rgb.shape == (8, 10, 3)
    assert np.array_equal(rgb[2:-2, 2:-2].reshape(-1, 3), np.tile([200, 100, 30], (4 * 6, 1)))


def png_bomb(width: int, height: int) -> bytes:
    """A grey PNG of width x height zero pixels, compressed row by row (never held in memory whole)."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    compressor = zlib.compressobj(9)
    row = bytes(width + 1)  # filter byte 0 and the pixels
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def test_compressed_headers_give_the_size_without_decoding():
    rgb = np.zeros((37, 53, 3), np.uint8)
    for suffix, parameters in ((".png", []), (".jpg", []), (".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])):
        ok, data = cv2.imencode(suffix, rgb, parameters)
        assert compressed_size(data.tobytes()) == (53, 37), suffix
    small_bomb = png_bomb(300, 200)
    assert compressed_size(small_bomb) == (300, 200)
    assert cv2.imdecode(np.frombuffer(small_bomb, np.uint8), cv2.IMREAD_GRAYSCALE).shape == (200, 300)  # valid PNG
    with pytest.raises(ImageError, match="neither PNG nor JPEG"):
        compressed_size(b"GIF89a" + bytes(30))
    with pytest.raises(ImageError, match="JPEG without a frame header"):
        compressed_size(b"\xff\xd8\xff\xda\x00\x02")


def test_a_decompression_bomb_is_refused_by_its_header():
    bomb = png_bomb(20000, 20000)  # 400 MB of pixels (1.2 GB decoded as colour) in well under 1 MB
    assert len(bomb) < 1_000_000
    with pytest.raises(ImageError, match="20000x20000 = 400000000 pixels is larger than max_image_pixels"):
        compressed_to_rgb(CompressedImage(format="png", data=bomb), 4096 * 4096)


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
    mono = labels_to_image(labels, header)
    assert (mono.encoding, mono.step, mono.width, mono.height) == ("mono16", 6, 3, 2)
    order = ">" if mono.is_bigendian else "<"
    assert np.array_equal(np.frombuffer(mono.data, f"{order}u2").reshape(2, 3), labels)
