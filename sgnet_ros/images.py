"""sensor_msgs/Image and CompressedImage <-> numpy, with every check a camera driver's output may fail.

The node hands the model (H, W, 3) uint8 RGB. Image encodings taken (names as in sensor_msgs/image_encodings.h):
rgb8, bgr8, rgba8, bgra8, mono8 (numpy views, no copy for rgb8); rgb16, bgr16, mono16 (the high byte, i.e.
value * 255 / 65535 rounded down); yuv422_yuy2 / yuyv and yuv422 / uyvy (4:2:2, BT.601 as OpenCV converts
it); bayer_rggb8, bayer_bggr8, bayer_gbrg8, bayer_grbg8 (OpenCV's demosaicing). Rows may be padded (``step`` >
width x bytes per pixel); the padding is dropped. ROS 2's cv_bridge is not used: it is not on PyPI.

Compressed images (PNG or JPEG, whatever ``format`` says) are checked by their header before anything is
decoded: an image whose header promises more than ``max_image_pixels`` is refused without allocating it (a
megabyte of PNG can say 20000 x 20000, which would take 1.2 GB to decode).
"""
from __future__ import annotations

import dataclasses
import struct
import sys
from typing import Callable

import cv2
import numpy as np
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header


@dataclasses.dataclass(frozen=True)
class Encoding:
    """How a sensor_msgs/Image encoding is laid out and turned into RGB."""

    channels: int  # values per pixel (yuv 4:2:2: 2 bytes per pixel)
    dtype: type  # np.uint8 or np.uint16
    to_rgb: Callable[[np.ndarray], np.ndarray]  # (H, W, channels) dtype -> (H, W, 3) uint8 RGB
    even_width: bool = False  # 4:2:2 shares chroma between pixel pairs


def _high_byte(pixels: np.ndarray) -> np.ndarray:
    return (pixels >> 8).astype(np.uint8)


def _converted(code: int) -> Callable[[np.ndarray], np.ndarray]:
    """An OpenCV colour conversion of the pixel array (single-channel input passed as (H, W))."""
    return lambda pixels: cv2.cvtColor(np.ascontiguousarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels),
                                       code)


ENCODINGS: dict[str, Encoding] = {
    "rgb8": Encoding(3, np.uint8, lambda p: p[:, :, 0:3]),
    "bgr8": Encoding(3, np.uint8, lambda p: p[:, :, 2::-1]),
    "rgba8": Encoding(4, np.uint8, lambda p: p[:, :, 0:3]),
    "bgra8": Encoding(4, np.uint8, lambda p: p[:, :, 2::-1]),
    "mono8": Encoding(1, np.uint8, lambda p: p[:, :, [0, 0, 0]]),
    "rgb16": Encoding(3, np.uint16, lambda p: _high_byte(p)),
    "bgr16": Encoding(3, np.uint16, lambda p: _high_byte(p[:, :, ::-1])),
    "mono16": Encoding(1, np.uint16, lambda p: _high_byte(p[:, :, [0, 0, 0]])),
    "yuv422_yuy2": Encoding(2, np.uint8, _converted(cv2.COLOR_YUV2RGB_YUYV), even_width=True),
    "yuyv": Encoding(2, np.uint8, _converted(cv2.COLOR_YUV2RGB_YUYV), even_width=True),
    "yuv422": Encoding(2, np.uint8, _converted(cv2.COLOR_YUV2RGB_UYVY), even_width=True),  # ROS: UYVY order
    "uyvy": Encoding(2, np.uint8, _converted(cv2.COLOR_YUV2RGB_UYVY), even_width=True),
    # OpenCV's legacy Bayer names count from the second row and column: ROS rggb is OpenCV's BG, and so on
    # (the names that exist in OpenCV 4 and 5 alike).
    "bayer_rggb8": Encoding(1, np.uint8, _converted(cv2.COLOR_BayerBG2RGB)),
    "bayer_bggr8": Encoding(1, np.uint8, _converted(cv2.COLOR_BayerRG2RGB)),
    "bayer_gbrg8": Encoding(1, np.uint8, _converted(cv2.COLOR_BayerGR2RGB)),
    "bayer_grbg8": Encoding(1, np.uint8, _converted(cv2.COLOR_BayerGB2RGB)),
}


class ImageError(ValueError):
    """An image message the node cannot use; the message says what is wrong with it."""


def _check_size(width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise ImageError(f"image has zero size ({width}x{height}, width x height)")
    if width * height > max_pixels:
        raise ImageError(f"image of {width}x{height} = {width * height} pixels is larger than max_image_pixels = "
                         f"{max_pixels}; raise that parameter or have the camera publish a smaller image")


def image_to_rgb(msg: Image, max_pixels: int) -> np.ndarray:
    """sensor_msgs/Image -> (H, W, 3) uint8 RGB, or ImageError. The array may be a view of ``msg.data``."""
    encoding = ENCODINGS.get(msg.encoding)
    if encoding is None:
        raise ImageError(f"unsupported encoding {msg.encoding!r}; the node takes {', '.join(ENCODINGS)}")
    _check_size(msg.width, msg.height, max_pixels)
    if encoding.even_width and msg.width % 2:
        raise ImageError(f"{msg.encoding} needs an even width (two pixels share their colour), got {msg.width}")
    item_bytes = np.dtype(encoding.dtype).itemsize
    row_bytes = msg.width * encoding.channels * item_bytes
    if msg.step < row_bytes:
        raise ImageError(f"step {msg.step} is smaller than width x bytes per pixel = {row_bytes} for {msg.encoding}")
    data = np.frombuffer(msg.data, np.uint8)
    if data.size != msg.height * msg.step:
        raise ImageError(f"data has {data.size} bytes, but height x step = {msg.height} x {msg.step} = "
                         f"{msg.height * msg.step}")
    rows = data.reshape(msg.height, msg.step)[:, :row_bytes]
    if item_bytes > 1:
        order = ">" if msg.is_bigendian else "<"
        rows = np.ascontiguousarray(rows).view(np.dtype(encoding.dtype).newbyteorder(order)).astype(encoding.dtype)
    return encoding.to_rgb(rows.reshape(msg.height, msg.width, encoding.channels))


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic): C0-CF except DHT C4, JPG C8, DAC CC.
JPEG_FRAME_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
JPEG_MARKERS_WITHOUT_LENGTH = frozenset({0x01, *range(0xD0, 0xD9)})  # TEM, RSTn, SOI


def compressed_size(data: bytes) -> tuple[int, int]:
    """(width, height) that a PNG or JPEG header announces, read without decoding; ImageError otherwise."""
    if data.startswith(PNG_SIGNATURE):
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise ImageError("PNG without its IHDR header chunk")
        return struct.unpack(">II", data[16:24])
    if data.startswith(b"\xff\xd8"):
        position = 2
        while position + 4 <= len(data):
            if data[position] != 0xFF:
                raise ImageError(f"JPEG with a broken marker at byte {position}")
            marker = data[position + 1]
            if marker == 0xFF:  # fill byte
                position += 1
                continue
            if marker in JPEG_MARKERS_WITHOUT_LENGTH:
                position += 2
                continue
            if marker in JPEG_FRAME_MARKERS:
                if position + 9 > len(data):
                    break
                height, width = struct.unpack(">HH", data[position + 5:position + 9])
                return width, height
            if marker == 0xDA:  # start of scan before any frame header
                break
            position += 2 + struct.unpack(">H", data[position + 2:position + 4])[0]
        raise ImageError("JPEG without a frame header (SOF) before its image data")
    raise ImageError("compressed image is neither PNG nor JPEG (the formats of image_transport's compressed "
                     "transport); its header cannot be checked, so it is not decoded")


def compressed_to_rgb(msg: CompressedImage, max_pixels: int) -> np.ndarray:
    """sensor_msgs/CompressedImage (PNG or JPEG) -> (H, W, 3) uint8 RGB; the size is checked before decoding."""
    data = bytes(msg.data)
    described = f"compressed image ({msg.format or 'no format'}, {len(data)} bytes)"
    if not data:
        raise ImageError(f"compressed image ({msg.format or 'no format'}) has no data")
    try:
        width, height = compressed_size(data)
    except (ImageError, struct.error) as error:
        raise ImageError(f"{described} cannot be decoded: {error}") from None
    _check_size(width, height, max_pixels)
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageError(f"{described} cannot be decoded: corrupt or not an image format OpenCV reads")
    if bgr.shape[:2] != (height, width):
        raise ImageError(f"{described} decodes to {bgr.shape[1]}x{bgr.shape[0]}, but its header says "
                         f"{width}x{height}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def rgb_to_image(rgb: np.ndarray, header: Header) -> Image:
    """(H, W, 3) uint8 RGB -> sensor_msgs/Image rgb8 without row padding."""
    height, width = rgb.shape[:2]
    return Image(header=header, height=height, width=width, encoding="rgb8", is_bigendian=0, step=width * 3,
                 data=np.ascontiguousarray(rgb, np.uint8).tobytes())


def labels_to_image(labels: np.ndarray, header: Header) -> Image:
    """(H, W) uint8 or uint16 -> sensor_msgs/Image mono8 or mono16 (in this machine's byte order, which
    is_bigendian states)."""
    height, width = labels.shape
    itemsize = labels.dtype.itemsize
    return Image(header=header, height=height, width=width, encoding="mono8" if itemsize == 1 else "mono16",
                 is_bigendian=int(itemsize > 1 and sys.byteorder == "big"), step=width * itemsize,
                 data=np.ascontiguousarray(labels).tobytes())
