"""Instances in 3D: the position and size of an object from the depth under its mask (pure numpy, no ROS).

Conventions (ROS REP 103 / REP 105, the "optical frame" of ``sensor_msgs/CameraInfo``): x to the right in the
image, y down, z forward along the optical axis, in metres, in the frame of the colour image's ``header.frame_id``.
A pixel at column u, row v (integer indices: OpenCV's convention, where (0, 0) is the centre of the top-left pixel,
as camera_info's K assumes) with depth Z is the point ``((u - cx) Z / fx, (v - cy) Z / fy, Z)``. Z is the distance
along the optical axis (what depth cameras publish), not the length of the ray. Lens distortion is ignored: the
depth image must be aligned to the (rectified, or nearly distortion-free) colour image, as RealSense's
``aligned_depth_to_color`` topics are.

The estimator, per instance (:func:`locate_instance`):

1. The mask is eroded by ``erosion_px`` pixels: edge pixels often see the background (the mask bleeds over the
   object's outline, and depth cameras smear depth edges into "flying pixels"). A mask too thin to survive the
   erosion with ``min_valid_pixels`` valid depths is used as it is.
2. Valid depths under the eroded mask: finite and positive (0, NaN and inf are how drivers mark "no depth").
3. Depth band: the median depth, and inliers within ``BAND_SIGMAS`` robust standard deviations of it
   (1.4826 x the median absolute deviation), but never narrower than ``BAND_FLOOR`` x the median. Background seen
   through holes, or another object the mask bleeds onto, lies outside the band.
4. Position: the mean of the inliers' 3D points (a trimmed mean: the centroid of the visible surface).
5. Size: an axis-aligned box in the optical frame (not an oriented one: the axes are the camera's, so the box is
   the same whatever the object's shape and needs no eigen-decomposition whose axes flip between frames). Its
   extent is that of the points of the whole, un-eroded mask inside the depth band, widened by one pixel's
   footprint at the median depth (each point stands for a pixel's area), so a fronto-parallel rectangle of n x m
   pixels at depth Z measures n Z / fx by m Z / fy. Only the visible surface is measured: the z size is the
   depth spread of the visible surface, not the object's thickness.
6. Confidence: the number of inlier depth pixels; fewer than ``min_valid_pixels`` means no 3D for the instance.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import cv2
import numpy as np

DEPTH_ENCODINGS = ("16UC1", "32FC1")  # millimetres as uint16 (0: no depth), or metres as float32
MILLIMETRE = 0.001
BAND_SIGMAS = 3.0  # depth inliers: within this many robust standard deviations of the median depth ...
BAND_FLOOR = 0.02  # ... but at least this fraction of the median depth
MAD_TO_SIGMA = 1.4826  # median absolute deviation -> standard deviation of a normal distribution


class DepthError(ValueError):
    """A depth image or camera_info the node cannot use; the message says what is wrong and what to do."""


@dataclasses.dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics of the (colour-aligned) depth image, from camera_info's K and size."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    @classmethod
    def from_camera_info(cls, k: Sequence[float], width: int, height: int) -> "CameraIntrinsics":
        """K is camera_info's row-major 3x3 matrix [fx 0 cx; 0 fy cy; 0 0 1]."""
        values = [float(v) for v in k]
        if len(values) != 9:
            raise DepthError(f"camera_info K has {len(values)} values, not 9")
        fx, cx, fy, cy = values[0], values[2], values[4], values[5]
        if not all(math.isfinite(v) for v in values) or fx <= 0 or fy <= 0:
            raise DepthError(f"camera_info K has no usable focal lengths (fx {fx}, fy {fy}): the camera is not "
                             f"calibrated, or its driver publishes an all-zero camera_info")
        if width <= 0 or height <= 0:
            raise DepthError(f"camera_info has zero size ({width}x{height}, width x height)")
        return cls(fx=fx, fy=fy, cx=cx, cy=cy, width=int(width), height=int(height))

    def k(self) -> list[float]:
        return [self.fx, 0.0, self.cx, 0.0, self.fy, self.cy, 0.0, 0.0, 1.0]


@dataclasses.dataclass(frozen=True)
class Instance3D:
    """Where an instance is in the optical frame (metres) and how sure: ``valid_pixels`` depths were used."""

    position: tuple[float, float, float]  # (x, y, z): centroid of the visible surface
    box_centre: tuple[float, float, float]  # centre of the axis-aligned box around the visible surface
    size: tuple[float, float, float]  # its edge lengths
    valid_pixels: int


def decode_depth(encoding: str, height: int, width: int, step: int, is_bigendian: bool,
                 data: bytes | bytearray | memoryview | np.ndarray) -> np.ndarray:
    """A depth image's fields -> (H, W) float32 metres; 0 or NaN where there is no depth. DepthError otherwise."""
    if encoding not in DEPTH_ENCODINGS:
        raise DepthError(f"depth image encoding {encoding!r} is not a depth encoding: the node takes "
                         f"{' or '.join(DEPTH_ENCODINGS)} (millimetres or metres), as ROS depth drivers publish; "
                         f"is depth_image_topic a colour or colourised depth topic?")
    if width <= 0 or height <= 0:
        raise DepthError(f"depth image has zero size ({width}x{height}, width x height)")
    item = 2 if encoding == "16UC1" else 4
    if step < width * item:
        raise DepthError(f"depth image step {step} is smaller than width x {item} bytes = {width * item}")
    raw = np.frombuffer(data, np.uint8)
    if raw.size != height * step:
        raise DepthError(f"depth image data has {raw.size} bytes, but height x step = {height * step}")
    order = ">" if is_bigendian else "<"
    dtype = np.dtype(f"{order}u2" if encoding == "16UC1" else f"{order}f4")
    pixels = raw.reshape(height, step)[:, :width * item].copy().view(dtype).reshape(height, width)
    if encoding == "16UC1":
        return pixels.astype(np.float32) * np.float32(MILLIMETRE)
    return pixels.astype(np.float32, copy=False)


def _bounds(mask: np.ndarray) -> tuple[slice, slice] | None:
    """The smallest (rows, columns) window holding every set pixel of the mask, or None for an empty mask."""
    rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return slice(rows[0], rows[-1] + 1), slice(columns[0], columns[-1] + 1)


def _middle(values: np.ndarray) -> float:
    """The median as the middle value (the upper one of an even count): one partial sort, no averaging."""
    middle = values.size // 2
    return float(np.partition(values, middle)[middle])


def _valid(depth: np.ndarray) -> np.ndarray:
    return np.isfinite(depth) & (depth > 0)


def locate_instance(mask: np.ndarray, depth: np.ndarray, intrinsics: CameraIntrinsics, erosion_px: int = 2,
                    min_valid_pixels: int = 20) -> Instance3D | None:
    """The instance's 3D centroid and axis-aligned size (see the module docstring), or None when fewer than
    ``min_valid_pixels`` depths under the mask are usable.

    mask: (H, W) bool; depth: (H, W) float metres (0, NaN, inf: no depth), aligned to the mask.
    """
    window = _bounds(mask)
    if window is None:
        return None
    rows, columns = window
    # Pad the window by the erosion radius so erode sees the mask's outline, not the window's edge.
    top, left = max(0, rows.start - erosion_px), max(0, columns.start - erosion_px)
    bottom, right = min(mask.shape[0], rows.stop + erosion_px), min(mask.shape[1], columns.stop + erosion_px)
    object_mask = mask[top:bottom, left:right]  # (h, w)
    depth_window = depth[top:bottom, left:right]
    valid = _valid(depth_window)
    core = object_mask
    if erosion_px > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * erosion_px + 1, 2 * erosion_px + 1))
        # The border counts as inside: an object cut by the image edge keeps its pixels along that edge.
        eroded = cv2.erode(np.ascontiguousarray(object_mask, np.uint8), kernel, borderType=cv2.BORDER_CONSTANT,
                           borderValue=1).astype(bool)
        if np.count_nonzero(eroded & valid) >= min_valid_pixels:
            core = eroded
    core_depths = depth_window[core & valid]  # (n,)
    if core_depths.size < min_valid_pixels:
        return None
    median = _middle(core_depths)
    spread = MAD_TO_SIGMA * _middle(np.abs(core_depths - median))
    half_band = max(BAND_SIGMAS * spread, BAND_FLOOR * median)
    in_band = valid & (np.abs(depth_window - median) <= half_band)  # (h, w)
    v, u = np.nonzero(object_mask & in_band)  # the whole mask's surface within the band: the extent
    inliers = core[v, u]  # (m,) of which the eroded mask's: the centroid
    count = int(np.count_nonzero(inliers))
    if count < min_valid_pixels:
        return None
    z = depth_window[v, u].astype(np.float64)
    points = np.stack(((u + left - intrinsics.cx) * z / intrinsics.fx, (v + top - intrinsics.cy) * z / intrinsics.fy,
                       z))  # (3, m)
    position = tuple(float(c) for c in points @ inliers.astype(np.float64) / count)  # mean of the inliers
    low, high = points.min(axis=1), points.max(axis=1)
    footprint = np.array([median / intrinsics.fx, median / intrinsics.fy, 0.0])
    return Instance3D(position=position, box_centre=tuple(float(c) for c in (low + high) / 2),
                      size=tuple(float(s) for s in high - low + footprint), valid_pixels=count)


def check_depth_frame(depth_size: tuple[int, int], colour_size: tuple[int, int],
                      intrinsics: CameraIntrinsics) -> None:
    """DepthError unless the depth image (height, width), the colour image and camera_info agree in size."""
    if depth_size != colour_size:
        raise DepthError(f"the depth image is {depth_size[1]}x{depth_size[0]} but the colour image is "
                         f"{colour_size[1]}x{colour_size[0]}: the depth must be aligned to the colour image "
                         f"(e.g. RealSense's aligned_depth_to_color topics, align_depth.enable:=true)")
    if (intrinsics.height, intrinsics.width) != depth_size:
        raise DepthError(f"camera_info is {intrinsics.width}x{intrinsics.height} but the depth image is "
                         f"{depth_size[1]}x{depth_size[0]}: depth_camera_info_topic must be the camera_info of "
                         f"the aligned depth image")
