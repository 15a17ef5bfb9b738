"""``sgnet-synth``: a synthetic video instance segmentation set in the YouTube-VIS format.

Every video has a textured background (smooth noise, a gradient or stripes, in muted colours that differ per
video) and one to a few shapes moving on straight lines at varied speeds (some fast), turning, growing or
shrinking a little, crossing and occluding one another, entering and leaving the frame. Each shape class has
its own colour family and texture, so the classes are learnable:

=========  ==================  =============================================
class      colour family       texture
=========  ==================  =============================================
circle     red                 radial shading, bright centre
square     blue                checkerboard
triangle   green               stripes
star       yellow-orange       dots
ring       magenta             concentric bands
=========  ==================  =============================================

Masks are exact: a pixel belongs to a shape when the pixel's centre lies inside the shape's geometry, and to the
front-most shape covering it (a fixed depth order per video), so an occluded part is in no mask but the
occluder's; a shape that is off-frame or fully hidden is null in that frame. The image pixels of a shape are
painted from the same mask. A shape's ``size`` is the diameter of its circumscribed circle, in pixels.

Written: ``OUT/JPEGImages/<video>/<frame number>.jpg`` (00000, 00005, ...: YouTube-VIS's naming, frame t
being frame 5t of 30 fps footage, 6 frames a second) and ``OUT/annotations.json`` (compressed RLE per frame, as
YouTube-VIS ships). Everything follows from ``--seed``; video ``i`` depends only on the seed and ``i``, so a
set of 10 videos is the first 10 videos of a set of 48 with the same seed and other options.

With ``--depth`` the set also has depth from a pinhole camera (``OUT/camera_info.yaml``): every shape is a flat
cut-out at its own distance in front of a tilted background plane; ``OUT/Depth/<video>/<frame>.png`` holds each
frame's depth (16-bit, millimetres) and ``OUT/depth_ground_truth.json`` every object's exact 3D position per frame
(see :func:`depth_video`). The colour frames and annotations are the same with or without depth.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import cv2
import numpy as np
import pycocotools.mask as mask_utils
import yaml
from tqdm import tqdm

from sgnet_model.data.ytvis import encode_mask

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "ring")
RING_INNER = 0.55  # inner radius of a ring over its outer radius
STAR_INNER = 0.45  # radius of a star's inner corners over its tips'
STAR_POINTS = 5

# The default set: the small config (ResNet-18, 320x192 input) learns it on the CPU in minutes; split it with
# `sgnet-split --val-count 8` for 40 training and 8 held-out videos.
DEFAULT_VIDEOS = 48
DEFAULT_FRAMES = (12, 20)  # frames per video, drawn per video in [min, max]
DEFAULT_WIDTH, DEFAULT_HEIGHT = 320, 192
DEFAULT_OBJECTS = (1, 3)  # objects per video, drawn per video in [min, max]
DEFAULT_SIZES = (24.0, 90.0)  # object size (circumscribed diameter, pixels) in frame 0
DEFAULT_CLASSES = 4  # the first classes of SHAPES
JPEG_QUALITY = 95
# Frame t is named as YouTube-VIS names its frames: by its number on a 30 fps timeline of which every 5th frame
# is annotated (00000.jpg, 00005.jpg, ...), so the file names give the real time between frames (ytvis.py).
FRAME_STEP = 5

FAST_FRACTION = 0.3  # share of objects moving fast
SLOW_SPEED, FAST_SPEED = (0.5, 6.0), (8.0, 16.0)  # pixels per frame
MAX_GROWTH = 0.015  # size changes by at most 1.5 % a frame
MAX_SPIN = 0.12  # radians per frame
MIN_VISIBLE_FRAMES = 3  # every object is visible in at least this many frames of its video
SENSOR_NOISE = 3.0  # standard deviation of the per-frame Gaussian noise, in grey levels
MAX_ATTEMPTS = 100  # draws of a video's objects before giving up on MIN_VISIBLE_FRAMES


class SyntheticError(ValueError):
    """The synthetic set cannot be generated with the given options; the message says which and why."""


@dataclasses.dataclass(frozen=True)
class ClassLook:
    hue: float  # OpenCV hue, 0..180
    texture: str  # a key of TEXTURES


LOOKS: dict[str, ClassLook] = {
    "circle": ClassLook(hue=0.0, texture="radial"),
    "square": ClassLook(hue=112.0, texture="checker"),
    "triangle": ClassLook(hue=60.0, texture="stripes"),
    "star": ClassLook(hue=22.0, texture="dots"),
    "ring": ClassLook(hue=150.0, texture="bands"),
}


@dataclasses.dataclass(frozen=True)
class ShapeTrack:
    """One object of a synthetic video: its class, its look and its motion from frame 0."""

    shape: str  # one of SHAPES
    centre: tuple[float, float]  # (x, y) in frame 0, pixels; pixel (i, j) covers [i, i+1) x [j, j+1)
    size: float  # circumscribed diameter in frame 0, pixels
    velocity: tuple[float, float] = (0.0, 0.0)  # pixels per frame
    growth: float = 0.0  # the size is multiplied by exp(growth) each frame
    angle: float = 0.0  # radians in frame 0 (0: a square has horizontal sides, a triangle/star a tip up)
    spin: float = 0.0  # radians per frame
    colour: tuple[int, int, int] = (255, 255, 255)  # RGB at the texture's bright parts
    shade: tuple[int, int, int] = (128, 128, 128)  # RGB at the texture's dark parts

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise SyntheticError(f"unknown shape {self.shape!r}; the shapes are {SHAPES}")
        if not self.size > 0:
            raise SyntheticError(f"shape size must be positive, got {self.size}")

    def at(self, frame: int) -> tuple[float, float, float, float]:
        """(centre x, centre y, size, angle) in ``frame``."""
        return (self.centre[0] + self.velocity[0] * frame, self.centre[1] + self.velocity[1] * frame,
                self.size * math.exp(self.growth * frame), self.angle + self.spin * frame)


# ------------------------------------------------------------------------------------------------ rendering


def _polygon(radius: float, angle: float, corners: int, inner: float | None = None) -> np.ndarray:
    """(n, 2) vertices around the origin, counter-clockwise in image coordinates seen with y up; a star when
    ``inner`` (inner corners' radius over the tips') is given. Angle 0 puts a tip straight up."""
    if inner is None:
        angles = angle - math.pi / 2 + 2 * math.pi * np.arange(corners) / corners
        radii = np.full(corners, radius)
    else:
        angles = angle - math.pi / 2 + math.pi * np.arange(2 * corners) / corners
        radii = np.where(np.arange(2 * corners) % 2 == 0, radius, radius * inner)
    return np.stack((radii * np.cos(angles), radii * np.sin(angles)), axis=1)


def _inside_convex(u: np.ndarray, v: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Whether the points (u, v) lie inside (or on) the convex polygon ``vertices`` (n, 2), either winding."""
    signs = []
    for (x0, y0), (x1, y1) in zip(vertices, np.roll(vertices, -1, axis=0)):
        signs.append((x1 - x0) * (v - y0) - (y1 - y0) * (u - x0))  # cross product: side of the edge
    signs = np.stack(signs)
    return (signs >= 0).all(axis=0) | (signs <= 0).all(axis=0)


def _inside(shape: str, u: np.ndarray, v: np.ndarray, size: float, angle: float) -> np.ndarray:
    """Whether the points (u, v), relative to the shape's centre, lie inside ``shape``."""
    radius = size / 2
    if shape == "circle":
        return u ** 2 + v ** 2 <= radius ** 2
    if shape == "ring":
        distance = u ** 2 + v ** 2
        return (distance <= radius ** 2) & (distance > (RING_INNER * radius) ** 2)
    if shape == "square":
        return _inside_convex(u, v, _polygon(radius, angle + math.pi / 4, 4))
    if shape == "triangle":
        return _inside_convex(u, v, _polygon(radius, angle, 3))
    # A star is the union of the triangles (centre, corner k, corner k+1) of its 2 * STAR_POINTS corners.
    corners = _polygon(radius, angle, STAR_POINTS, STAR_INNER)
    inside = np.zeros(u.shape, dtype=bool)
    for a, b in zip(corners, np.roll(corners, -1, axis=0)):
        inside |= _inside_convex(u, v, np.stack((np.zeros(2), a, b)))
    return inside


def _texture(kind: str, u: np.ndarray, v: np.ndarray, size: float, angle: float) -> np.ndarray:
    """Brightness in [0, 1] of the texture at the points (u, v) relative to the centre, turning with the shape."""
    along = u * math.cos(angle) + v * math.sin(angle)  # the shape's own axes
    across = -u * math.sin(angle) + v * math.cos(angle)
    radius = np.sqrt(u ** 2 + v ** 2)
    period = max(size / 6, 3.0)
    if kind == "radial":
        return 1.0 - 0.6 * np.clip(radius / (size / 2), 0.0, 1.0)
    if kind == "checker":
        return ((np.floor(along / period) + np.floor(across / period)) % 2).astype(np.float64)
    if kind == "stripes":
        return (np.floor(along / period) % 2).astype(np.float64)
    if kind == "dots":
        return 0.5 + 0.5 * np.cos(2 * math.pi * along / period) * np.cos(2 * math.pi * across / period)
    return (np.floor(radius / max(size / 12, 2.0)) % 2).astype(np.float64)  # "bands"


def render_frame(background: np.ndarray, tracks: Sequence[ShapeTrack], frame: int
                 ) -> tuple[np.ndarray, list[np.ndarray | None]]:
    """Paint ``tracks`` (back to front) in ``frame`` over ``background`` (H, W, 3) uint8 RGB.

    Returns the (H, W, 3) uint8 image and each track's visible (H, W) bool mask, None where the track has no
    visible pixel (off-frame or fully hidden by tracks in front of it).
    """
    height, width = background.shape[:2]
    image = background.copy()
    owner = np.full((height, width), -1, dtype=np.int64)  # index of the front-most track at each pixel
    for index, track in enumerate(tracks):
        cx, cy, size, angle = track.at(frame)
        radius = size / 2
        x0, x1 = max(0, math.floor(cx - radius)), min(width, math.ceil(cx + radius) + 1)
        y0, y1 = max(0, math.floor(cy - radius)), min(height, math.ceil(cy + radius) + 1)
        if x0 >= x1 or y0 >= y1:
            continue
        v, u = np.mgrid[y0:y1, x0:x1].astype(np.float64)
        u, v = u + 0.5 - cx, v + 0.5 - cy  # pixel centres relative to the shape's centre
        inside = _inside(track.shape, u, v, size, angle)  # (y1 - y0, x1 - x0)
        brightness = _texture(LOOKS[track.shape].texture, u[inside], v[inside], size, angle)[:, None]
        colour, shade = np.array(track.colour, np.float64), np.array(track.shade, np.float64)
        window = image[y0:y1, x0:x1]
        window[inside] = np.round(shade + brightness * (colour - shade)).astype(np.uint8)
        owner[y0:y1, x0:x1][inside] = index
    masks = []
    for index in range(len(tracks)):
        mask = owner == index
        masks.append(mask if mask.any() else None)
    return image, masks


# ----------------------------------------------------------------------------------------------- sampling


def _hsv_to_rgb(hue: float, saturation: float, value: float) -> tuple[int, int, int]:
    pixel = np.array([[[hue % 180, saturation, value]]], dtype=np.uint8)
    return tuple(int(c) for c in cv2.cvtColor(pixel, cv2.COLOR_HSV2RGB)[0, 0])


def random_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """(H, W, 3) uint8 RGB background in muted colours: smooth noise, a gradient or stripes."""
    low = np.array(_hsv_to_rgb(rng.uniform(0, 180), rng.uniform(0, 90), rng.uniform(30, 150)), np.float64)
    high = np.array(_hsv_to_rgb(rng.uniform(0, 180), rng.uniform(0, 90), rng.uniform(110, 230)), np.float64)
    kind = rng.choice(("noise", "gradient", "stripes"))
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    if kind == "noise":
        cells = rng.uniform(0, 1, (int(rng.integers(3, 9)), int(rng.integers(4, 13))))
        weight = cv2.resize(cells, (width, height), interpolation=cv2.INTER_CUBIC).clip(0, 1)
    elif kind == "gradient":
        direction = rng.uniform(0, 2 * math.pi)
        along = xs * math.cos(direction) + ys * math.sin(direction)
        weight = (along - along.min()) / max(along.max() - along.min(), 1e-9)
    else:
        direction, period = rng.uniform(0, math.pi), rng.uniform(10, 40)
        along = xs * math.cos(direction) + ys * math.sin(direction)
        weight = 0.5 + 0.5 * np.sin(2 * math.pi * along / period)
    grain = rng.normal(0, 0.06, (height, width))  # fixed fine texture of the scene
    weight = np.clip(weight + grain, 0, 1)[..., None]
    return np.round(low + weight * (high - low)).astype(np.uint8)


def random_track(rng: np.random.Generator, shape: str, frames: int, height: int, width: int,
                 sizes: tuple[float, float]) -> ShapeTrack:
    """A shape of class ``shape`` passing through the middle of the frame at a random time, at a slow or fast
    speed, in its class's colour family."""
    fast = rng.uniform() < FAST_FRACTION
    speed = rng.uniform(*(FAST_SPEED if fast else SLOW_SPEED))
    heading = rng.uniform(0, 2 * math.pi)
    velocity = (speed * math.cos(heading), speed * math.sin(heading))
    passing = (rng.uniform(0.2, 0.8) * width, rng.uniform(0.2, 0.8) * height)
    when = rng.uniform(0, frames - 1)  # the shape is at ``passing`` at this (fractional) frame
    hue = LOOKS[shape].hue + rng.uniform(-6, 6)
    colour = _hsv_to_rgb(hue, rng.uniform(170, 255), rng.uniform(190, 255))
    shade = _hsv_to_rgb(hue, rng.uniform(170, 255), rng.uniform(70, 130))
    return ShapeTrack(shape=shape, centre=(passing[0] - velocity[0] * when, passing[1] - velocity[1] * when),
                      size=rng.uniform(*sizes), velocity=velocity, growth=rng.uniform(-MAX_GROWTH, MAX_GROWTH),
                      angle=rng.uniform(0, 2 * math.pi), spin=rng.uniform(-MAX_SPIN, MAX_SPIN),
                      colour=colour, shade=shade)


@dataclasses.dataclass(frozen=True)
class SyntheticVideo:
    frames: list[np.ndarray]  # (H, W, 3) uint8 RGB, with sensor noise
    tracks: list[ShapeTrack]  # back to front
    masks: list[list[np.ndarray | None]]  # masks[track][frame]: (H, W) bool, or None where not visible


def random_video(rng: np.random.Generator, frames: int, height: int, width: int, objects: int,
                 shapes: Sequence[str], sizes: tuple[float, float]) -> SyntheticVideo:
    """A video of ``objects`` shapes of random classes among ``shapes``, each visible in at least
    MIN_VISIBLE_FRAMES frames (the objects are drawn again until they are)."""
    background = random_background(rng, height, width)
    for _ in range(MAX_ATTEMPTS):
        tracks = [random_track(rng, str(rng.choice(shapes)), frames, height, width, sizes) for _ in range(objects)]
        rendered = [render_frame(background, tracks, t) for t in range(frames)]
        masks = [[frame_masks[i] for _, frame_masks in rendered] for i in range(objects)]
        if all(sum(m is not None for m in track_masks) >= min(MIN_VISIBLE_FRAMES, frames) for track_masks in masks):
            break
    else:
        raise SyntheticError(f"could not place {objects} objects visible in {MIN_VISIBLE_FRAMES} frames each in "
                             f"{MAX_ATTEMPTS} tries: use fewer objects, smaller ones or a larger frame")
    noisy = [np.clip(image + rng.normal(0, SENSOR_NOISE, image.shape), 0, 255).round().astype(np.uint8)
             for image, _ in rendered]
    return SyntheticVideo(noisy, tracks, masks)


# -------------------------------------------------------------------------------------------------- depth


HORIZONTAL_FOV_DEG = 69.4  # the synthetic camera's horizontal field of view (that of a RealSense D435's colour camera)
OBJECT_DEPTHS = (0.8, 3.0)  # metres: objects' distances are drawn in this range, in front of ...
BACKGROUND_DEPTHS = (4.0, 6.0)  # ... a background plane this far along the optical axis at the image centre,
BACKGROUND_TILT_DEG = 15.0  # tilted by at most this about the camera's x and y axes
BACKGROUND_CLEARANCE = 0.5  # metres: every object is at least this much nearer than the background anywhere
DEPTH_DIR = "Depth"
DEPTH_TRUTH_FILE = "depth_ground_truth.json"
CAMERA_INFO_FILE = "camera_info.yaml"
DEPTH_STREAM = 1  # video i's depth draws come from default_rng([seed, i, DEPTH_STREAM]): its colour is untouched
DROPOUT_STREAM = 2  # and its depth holes (--depth-dropout) from default_rng([seed, i, DROPOUT_STREAM])


@dataclasses.dataclass(frozen=True)
class PinholeCamera:
    """The synthetic camera: square pixels, no distortion, the optical axis through the image centre. Pixel (u, v)
    (integer column and row, OpenCV's convention: its centre) sees the ray ((u - cx) / f, (v - cy) / f, 1)."""

    focal: float
    cx: float
    cy: float
    width: int
    height: int

    @classmethod
    def for_frame(cls, width: int, height: int) -> "PinholeCamera":
        focal = (width / 2) / math.tan(math.radians(HORIZONTAL_FOV_DEG) / 2)
        return cls(focal=focal, cx=(width - 1) / 2, cy=(height - 1) / 2, width=width, height=height)

    def k(self) -> list[float]:
        return [self.focal, 0.0, self.cx, 0.0, self.focal, self.cy, 0.0, 0.0, 1.0]

    def calibration(self) -> dict[str, Any]:
        """camera_info in the YAML layout of ROS's camera_calibration_parsers (camera_info_manager reads it)."""
        projection = [self.focal, 0.0, self.cx, 0.0, 0.0, self.focal, self.cy, 0.0, 0.0, 0.0, 1.0, 0.0]
        return {"image_width": self.width, "image_height": self.height, "camera_name": "sgnet_synth",
                "camera_matrix": {"rows": 3, "cols": 3, "data": self.k()},
                "distortion_model": "plumb_bob", "distortion_coefficients": {"rows": 1, "cols": 5, "data": [0.0] * 5},
                "rectification_matrix": {"rows": 3, "cols": 3, "data": [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]},
                "projection_matrix": {"rows": 3, "cols": 4, "data": projection}}


def _background_depth(rng: np.random.Generator, camera: PinholeCamera) -> tuple[np.ndarray, dict[str, Any]]:
    """(H, W) float64 depth (z, metres) of a tilted background plane, and the plane as (normal, point)."""
    tilt_x, tilt_y = np.radians(rng.uniform(-BACKGROUND_TILT_DEG, BACKGROUND_TILT_DEG, 2))
    normal = np.array([math.sin(tilt_y), math.sin(tilt_x), 1.0])
    normal /= np.linalg.norm(normal)
    point = np.array([0.0, 0.0, rng.uniform(*BACKGROUND_DEPTHS)])  # where the optical axis meets the plane
    v, u = np.mgrid[0:camera.height, 0:camera.width].astype(np.float64)
    rays = np.stack(((u - camera.cx) / camera.focal, (v - camera.cy) / camera.focal, np.ones_like(u)))  # (3, H, W)
    depth = float(normal @ point) / np.tensordot(normal, rays, axes=1)  # z of ray r meeting n . p = n . point
    return depth, {"normal": normal.tolist(), "point": point.tolist()}


def depth_video(rng: np.random.Generator, video: SyntheticVideo, camera: PinholeCamera
                ) -> tuple[list[np.ndarray], dict[str, Any]]:
    """Depth frames of a synthetic video, and its exact 3D ground truth.

    Every shape is a flat cut-out facing the camera at its own distance (constant over the video; a shape that
    grows in the image grows in the world too), drawn in OBJECT_DEPTHS so that the painting order (back to front)
    is the depth order, in front of a tilted background plane. Returns the (H, W) float64 depth frames in metres,
    and ``{"background": plane, "objects": [{"distance", "frames": [{"centroid", "centre"} or None per frame]}]}``
    per track: ``centroid`` is the mean of the 3D points of the shape's visible pixels (what depth under a perfect
    mask measures), ``centre`` the 3D point of the shape's own centre; both (x, y, z) metres in the optical frame
    (x right, y down, z forward).
    """
    background, plane = _background_depth(rng, camera)
    farthest = float(background.min()) - BACKGROUND_CLEARANCE
    distances = np.sort(rng.uniform(OBJECT_DEPTHS[0], min(OBJECT_DEPTHS[1], farthest), len(video.tracks)))[::-1]
    frames = []
    objects = [{"distance": float(d), "frames": []} for d in distances]
    for t in range(len(video.frames)):
        depth = background.copy()
        for track, masks, distance, truth in zip(video.tracks, video.masks, distances, objects):
            mask = masks[t]
            if mask is None:
                truth["frames"].append(None)
                continue
            depth[mask] = distance
            v, u = np.nonzero(mask)
            centroid = [float(np.mean((u - camera.cx) * distance / camera.focal)),
                        float(np.mean((v - camera.cy) * distance / camera.focal)), float(distance)]
            x, y = track.at(t)[:2]  # continuous image coordinates: pixel centres at +0.5
            centre = [(x - 0.5 - camera.cx) * distance / camera.focal, (y - 0.5 - camera.cy) * distance / camera.focal,
                      float(distance)]
            truth["frames"].append({"centroid": centroid, "centre": centre})
        frames.append(depth)
    return frames, {"background": plane, "objects": objects}


def _write_depth_video(out_dir: Path, seed: int, index: int, video: SyntheticVideo, file_names: Sequence[str],
                       annotation_ids: Sequence[int], camera: PinholeCamera, dropout: float) -> dict[str, Any]:
    """Write video ``index``'s depth frames as 16-bit PNGs in millimetres beside its colour frames
    (``Depth/<colour file name>.png``), with a ``dropout`` fraction of the pixels (drawn at random) set to 0, as
    depth cameras mark holes; returns its entry of the depth ground truth (the same whatever the dropout)."""
    frames, truth = depth_video(np.random.default_rng([seed, index, DEPTH_STREAM]), video, camera)
    holes = np.random.default_rng([seed, index, DROPOUT_STREAM])
    depth_files = []
    for file_name, depth in zip(file_names, frames):
        depth = np.where(holes.uniform(size=depth.shape) < dropout, 0.0, depth)
        depth_file = str(Path(file_name).with_suffix(".png"))
        path = out_dir / DEPTH_DIR / depth_file
        path.parent.mkdir(parents=True, exist_ok=True)
        millimetres = np.round(depth * 1000.0).astype(np.uint16)  # all depths lie within 65.535 m
        if not cv2.imwrite(str(path), millimetres):
            raise SyntheticError(f"OpenCV could not write {path}")
        depth_files.append(depth_file)
    for annotation_id, entry in zip(annotation_ids, truth["objects"]):
        entry["annotation_id"] = annotation_id
    return {"video_id": index + 1, "depth_files": depth_files, **truth}


def _write_depth_set(out_dir: Path, camera: PinholeCamera, videos: list[dict[str, Any]]) -> None:
    """camera_info.yaml and depth_ground_truth.json beside the set."""
    (out_dir / CAMERA_INFO_FILE).write_text(yaml.safe_dump(camera.calibration(), sort_keys=False), encoding="utf-8")
    truth = {"camera_info": CAMERA_INFO_FILE, "depth_dir": DEPTH_DIR, "depth_unit": "millimetre",
             "frame": "optical (x right, y down, z forward), metres", "k": camera.k(),
             "width": camera.width, "height": camera.height, "videos": videos}
    (out_dir / DEPTH_TRUTH_FILE).write_text(json.dumps(truth, separators=(",", ":")), encoding="utf-8")


# ------------------------------------------------------------------------------------------------ writing


def _check_options(videos: int, frames: tuple[int, int], width: int, height: int, objects: tuple[int, int],
                   sizes: tuple[float, float], classes: int, jpeg_quality: int) -> None:
    problems = []
    if videos < 1:
        problems.append(f"videos must be at least 1, got {videos}")
    if not 2 <= frames[0] <= frames[1]:
        problems.append(f"frames must be at least 2 (clips are pairs) with min <= max, got {frames[0]}..{frames[1]}")
    if width < 16 or height < 16:
        problems.append(f"the frame must be at least 16x16, got {width}x{height}")
    if not 1 <= objects[0] <= objects[1]:
        problems.append(f"objects per video must be at least 1 with min <= max, got {objects[0]}..{objects[1]}")
    if not 4 <= sizes[0] <= sizes[1] <= min(width, height):
        problems.append(f"object sizes must lie in 4..{min(width, height)} (the frame's shorter side) with "
                        f"min <= max, got {sizes[0]}..{sizes[1]}")
    if not 1 <= classes <= len(SHAPES):
        problems.append(f"classes must lie in 1..{len(SHAPES)} ({', '.join(SHAPES)}), got {classes}")
    if not 1 <= jpeg_quality <= 100:
        problems.append(f"the JPEG quality must lie in 1..100, got {jpeg_quality}")
    if problems:
        raise SyntheticError("; ".join(problems))


def _annotation(annotation_id: int, video_id: int, category_id: int, masks: Sequence[np.ndarray | None],
                height: int, width: int) -> dict[str, Any]:
    segmentations = [encode_mask(m) if m is not None else None for m in masks]
    return {"id": annotation_id, "video_id": video_id, "category_id": category_id, "iscrowd": 0,
            "height": height, "width": width, "length": len(masks), "segmentations": segmentations,
            "bboxes": [mask_utils.toBbox(s).tolist() if s is not None else None for s in segmentations],
            "areas": [int(mask_utils.area(s)) if s is not None else None for s in segmentations]}


def generate_synthetic_set(out_dir: str | Path, *, videos: int = DEFAULT_VIDEOS,
                           frames: int | tuple[int, int] = DEFAULT_FRAMES, width: int = DEFAULT_WIDTH,
                           height: int = DEFAULT_HEIGHT, objects: int | tuple[int, int] = DEFAULT_OBJECTS,
                           sizes: tuple[float, float] = DEFAULT_SIZES, classes: int = DEFAULT_CLASSES,
                           seed: int = 0, jpeg_quality: int = JPEG_QUALITY, overwrite: bool = False,
                           progress: bool = False, depth: bool = False, depth_dropout: float = 0.0) -> Path:
    """Write a synthetic set to ``out_dir`` (``JPEGImages/`` and ``annotations.json``); returns the path of
    ``annotations.json``. The frame paths in it are relative to ``out_dir / "JPEGImages"``.

    ``frames`` and ``objects`` are a number or an inclusive (min, max) range drawn per video; ``classes``
    takes the first classes of :data:`SHAPES` (category ids 1..classes in that order). Raises
    :class:`SyntheticError` for unusable options, or when ``out_dir`` already holds a set and not
    ``overwrite``.

    With ``depth``, also ``Depth/`` (16-bit PNG depth in millimetres per frame), ``camera_info.yaml`` and
    ``depth_ground_truth.json`` (see :func:`depth_video`); the colour frames and annotations stay the same.
    ``depth_dropout``: the fraction of depth pixels left without depth (0), at random.
    """
    frame_range = (frames, frames) if isinstance(frames, int) else tuple(frames)
    object_range = (objects, objects) if isinstance(objects, int) else tuple(objects)
    sizes = (float(sizes[0]), float(sizes[1]))
    _check_options(videos, frame_range, width, height, object_range, sizes, classes, jpeg_quality)
    if not 0 <= depth_dropout < 1:
        raise SyntheticError(f"depth dropout must lie in [0, 1), got {depth_dropout}")
    if depth_dropout and not depth:
        raise SyntheticError("depth dropout makes holes in the depth: ask for depth too (--depth)")
    out_dir = Path(out_dir)
    frames_dir, annotations_path = out_dir / "JPEGImages", out_dir / "annotations.json"
    if (frames_dir.exists() or annotations_path.exists()) and not overwrite:
        raise SyntheticError(f"{out_dir} already holds a set (JPEGImages/ or annotations.json): choose another "
                             f"folder or overwrite it")
    for folder in (frames_dir, out_dir / DEPTH_DIR):
        if folder.exists():
            shutil.rmtree(folder)
    camera, depth_videos = PinholeCamera.for_frame(width, height), []
    shapes = SHAPES[:classes]
    data: dict[str, Any] = {
        "info": {"description": "sgnet-synth synthetic shapes", "seed": seed, "videos": videos,
                 "frames": list(frame_range), "width": width, "height": height, "objects": list(object_range),
                 "sizes": list(sizes)},
        "videos": [], "annotations": [],
        "categories": [{"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(shapes)],
    }
    for index in tqdm(range(videos), desc="sgnet-synth", unit="video", disable=not progress, file=sys.stderr):
        rng = np.random.default_rng([seed, index])  # video i depends on the seed and i only
        video_id, name = index + 1, f"video_{index + 1:04d}"
        video = random_video(rng, int(rng.integers(frame_range[0], frame_range[1] + 1)), height, width,
                             int(rng.integers(object_range[0], object_range[1] + 1)), shapes, sizes)
        (frames_dir / name).mkdir(parents=True)
        file_names = []
        for t, image in enumerate(video.frames):
            file_name = f"{name}/{FRAME_STEP * t:05d}.jpg"
            cv2.imwrite(str(frames_dir / file_name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                        [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
            file_names.append(file_name)
        data["videos"].append({"id": video_id, "name": name, "width": width, "height": height,
                               "length": len(file_names), "file_names": file_names})
        for track, masks in zip(video.tracks, video.masks):
            data["annotations"].append(_annotation(len(data["annotations"]) + 1, video_id,
                                                   shapes.index(track.shape) + 1, masks, height, width))
        if depth:
            annotation_ids = [a["id"] for a in data["annotations"][-len(video.tracks):]]
            depth_videos.append(_write_depth_video(out_dir, seed, index, video, file_names, annotation_ids, camera,
                                                   depth_dropout))
    if depth:
        _write_depth_set(out_dir, camera, depth_videos)
    annotations_path.write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")
    return annotations_path


# ---------------------------------------------------------------------------------------------------- CLI


def _range(kind: Callable[[str], Any], name: str) -> Callable[[str], tuple[Any, Any]]:
    def parse(text: str) -> tuple[Any, Any]:
        parts = text.split(":")
        try:
            values = tuple(kind(p) for p in parts)
        except ValueError:
            values = ()
        if len(values) not in (1, 2):
            raise argparse.ArgumentTypeError(f"{name} takes N or MIN:MAX, got {text!r}")
        return (values[0], values[-1])
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sgnet-synth",
        description="Write a synthetic video instance segmentation set in the YouTube-VIS format: "
                    "OUTPUT/JPEGImages/<video>/<frame number>.jpg (00000, 00005, ...: YouTube-VIS's naming) and "
                    "OUTPUT/annotations.json (compressed RLE per frame, "
                    "null where an object is off-frame or fully hidden). Shapes of distinct classes (circle, "
                    "square, triangle, star, ring: each its own colour family and texture) move over textured "
                    "backgrounds at varied speeds, cross, occlude one another, enter and leave the frame. "
                    "The defaults make the set the small config learns on the CPU; hold videos out with "
                    "`sgnet-split OUTPUT/annotations.json --val-count 8 --output OUTPUT`.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--output", "-o", type=Path, required=True, help="folder to write the set into")
    parser.add_argument("--videos", type=int, default=DEFAULT_VIDEOS, help="number of videos")
    parser.add_argument("--frames", type=_range(int, "--frames"), default=DEFAULT_FRAMES, metavar="N|MIN:MAX",
                        help="frames per video (a range is drawn per video)")
    parser.add_argument("--width", type=int, default=DEFAULT_WIDTH, help="frame width in pixels")
    parser.add_argument("--height", type=int, default=DEFAULT_HEIGHT, help="frame height in pixels")
    parser.add_argument("--objects", type=_range(int, "--objects"), default=DEFAULT_OBJECTS, metavar="N|MIN:MAX",
                        help="objects per video (a range is drawn per video)")
    parser.add_argument("--sizes", type=_range(float, "--sizes"), default=DEFAULT_SIZES, metavar="MIN:MAX",
                        help="object size in frame 0: the diameter of its circumscribed circle, pixels")
    parser.add_argument("--classes", type=int, default=DEFAULT_CLASSES,
                        help=f"number of shape classes, the first of {', '.join(SHAPES)}")
    parser.add_argument("--seed", type=int, default=0, help="the same seed and options give the same set")
    parser.add_argument("--jpeg-quality", type=int, default=JPEG_QUALITY, help="OpenCV JPEG quality")
    parser.add_argument("--overwrite", action="store_true", help="replace a set already in OUTPUT")
    parser.add_argument("--depth-dropout", type=float, default=0.0,
                        help="with --depth: the fraction of depth pixels, drawn at random, left at 0 (no depth)")
    parser.add_argument("--depth", action="store_true",
                        help=f"also write depth: OUTPUT/{DEPTH_DIR}/<video>/<frame>.png (16-bit, millimetres), "
                             f"OUTPUT/{CAMERA_INFO_FILE} and OUTPUT/{DEPTH_TRUTH_FILE} (3D ground truth)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object (paths and counts) on stdout instead of the summary line")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    start = time.perf_counter()
    try:
        path = generate_synthetic_set(args.output, videos=args.videos, frames=args.frames, width=args.width,
                                      height=args.height, objects=args.objects, sizes=args.sizes,
                                      classes=args.classes, seed=args.seed, jpeg_quality=args.jpeg_quality,
                                      overwrite=args.overwrite, progress=not args.no_progress, depth=args.depth,
                                      depth_dropout=args.depth_dropout)
    except (SyntheticError, OSError) as error:
        print(f"sgnet-synth: error: {error}", file=sys.stderr)
        return 2
    data = json.loads(path.read_text(encoding="utf-8"))
    summary = {"annotations": str(path), "frames_dir": str(path.parent / "JPEGImages"),
               "videos": len(data["videos"]), "frames": sum(v["length"] for v in data["videos"]),
               "objects": len(data["annotations"]), "classes": [c["name"] for c in data["categories"]],
               "seconds": round(time.perf_counter() - start, 2)}
    if args.depth:
        summary["depth_ground_truth"] = str(path.parent / DEPTH_TRUTH_FILE)
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"sgnet-synth: wrote {summary['videos']} videos ({summary['frames']} frames, {summary['objects']} "
              f"objects) to {summary['annotations']} in {summary['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
