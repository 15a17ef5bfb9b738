"""sensor_msgs/Image and CompressedImage <-> numpy, with every check a camera driver's output may fail.

The node takes rgb8, bgr8, rgba8, bgra8 and mono8 images and hands the model (H, W, 3) uint8 RGB. Rows may be
padded (``step`` > width x channels); the padding is dropped. ROS 2's cv_bridge is not used: it is not on PyPI,
and for these five 8-bit encodings numpy indexing is all a conversion needs.
"""
from __future__ import annotations

import sys

import cv2
import numpy as np
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

# encoding -> (channels per pixel, the index that picks R, G, B out of (H, W, channels) pixels: a view where a
# slice does it, so that rgb8 costs no copy here)
ENCODINGS: dict[str, tuple[int, tuple]] = {
    "rgb8": (3, np.s_[:, :, 0:3]),
    "bgr8": (3, np.s_[:, :, 2::-1]),
    "rgba8": (4, np.s_[:, :, 0:3]),
    "bgra8": (4, np.s_[:, :, 2::-1]),
    "mono8": (1, np.s_[:, :, [0, 0, 0]]),
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
    if msg.encoding not in ENCODINGS:
        raise ImageError(f"unsupported encoding {msg.encoding!r}; the node takes {', '.join(ENCODINGS)}")
    channels, rgb_channels = ENCODINGS[msg.encoding]
    _check_size(msg.width, msg.height, max_pixels)
    row_bytes = msg.width * channels
    if msg.step < row_bytes:
        raise ImageError(f"step {msg.step} is smaller than width x channels = {row_bytes} for {msg.encoding}")
    data = np.frombuffer(msg.data, np.uint8)
    if data.size != msg.height * msg.step:
        raise ImageError(f"data has {data.size} bytes, but height x step = {msg.height} x {msg.step} = "
                         f"{msg.height * msg.step}")
    pixels = data.reshape(msg.height, msg.step)[:, :row_bytes].reshape(msg.height, msg.width, channels)
    return pixels[rgb_channels]


def compressed_to_rgb(msg: CompressedImage, max_pixels: int) -> np.ndarray:
    """sensor_msgs/CompressedImage (any format OpenCV decodes: jpeg, png, ...) -> (H, W, 3) uint8 RGB."""
    data = np.frombuffer(msg.data, np.uint8)
    if data.size == 0:
        raise ImageError(f"compressed image ({msg.format or 'no format'}) has no data")
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageError(f"compressed image ({msg.format or 'no format'}, {data.size} bytes) cannot be decoded: "
                         f"corrupt or not an image format OpenCV reads")
    _check_size(bgr.shape[1], bgr.shape[0], max_pixels)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def rgb_to_image(rgb: np.ndarray, header: Header) -> Image:
    """(H, W, 3) uint8 RGB -> sensor_msgs/Image rgb8 without row padding."""
    height, width = rgb.shape[:2]
    return Image(header=header, height=height, width=width, encoding="rgb8", is_bigendian=0, step=width * 3,
                 data=np.ascontiguousarray(rgb, np.uint8).tobytes())


def mono16_to_image(labels: np.ndarray, header: Header) -> Image:
    """(H, W) uint16 -> sensor_msgs/Image mono16 in this machine's byte order (is_bigendian says which)."""
    height, width = labels.shape
    return Image(header=header, height=height, width=width, encoding="mono16",
                 is_bigendian=int(sys.byteorder == "big"), step=width * 2,
                 data=np.ascontiguousarray(labels, np.uint16).tobytes())
