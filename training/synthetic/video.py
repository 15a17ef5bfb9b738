"""One synthetic video: the shape classes' looks, their tracks (straight lines at varied speeds, turning, growing,
entering and leaving), the textured background, and each frame rendered with its exact masks."""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import cv2
import numpy as np

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "ring")
RING_INNER = 0.55  # inner radius of a ring over its outer radius
STAR_INNER = 0.45  # radius of a star's inner corners over its tips'
STAR_POINTS = 5
DEFAULT_SIZES = (24.0, 90.0)  # object size (circumscribed diameter, pixels) in frame 0
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
class Domain:
    """The world a synthetic set shows. The default is the world every model here trains on; another one stands in
    for a robot's own (docs/flywheel.md): other lighting, a blurrier camera, busier backgrounds, another mix of
    classes. The default draws the same random numbers as before domains existed: the same seed, the same set."""

    lighting: float = 1.0  # the rendered scene's brightness is multiplied by this (before the sensor noise)
    blur: float = 0.0  # Gaussian blur of the rendered scene, sigma in pixels (0: sharp)
    vivid_backgrounds: bool = False  # saturated, high-contrast backgrounds (stripes and checkers as busy as objects)
    class_weights: tuple[float, ...] = ()  # relative frequency of each class in order; empty: all alike

    def __post_init__(self) -> None:
        if not self.lighting > 0 or self.blur < 0 or any(w < 0 for w in self.class_weights) or (
                self.class_weights and not sum(self.class_weights) > 0):
            raise SyntheticError("a domain needs lighting > 0, blur >= 0 and class weights >= 0 that are not all 0")

    def class_probabilities(self, classes: int) -> np.ndarray | None:
        """The chance of each of the first ``classes`` classes, None when all are alike."""
        if not self.class_weights:
            return None
        if len(self.class_weights) != classes:
            raise SyntheticError(f"the domain weighs {len(self.class_weights)} classes; the set has {classes}")
        weights = np.asarray(self.class_weights, np.float64)
        return weights / weights.sum()


DOMAINS = {  # sgnet-synth --domain
    "base": Domain(),
    # a dim, slightly blurred camera over busy backgrounds, seeing mostly triangles and stars: what the base world's
    # models miss (docs/flywheel.md measures the loop on it)
    "shifted": Domain(lighting=0.6, blur=1.2, vivid_backgrounds=True, class_weights=(1.0, 1.0, 3.0, 3.0)),
}


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


def _hsv_to_rgb(hue: float, saturation: float, value: float) -> tuple[int, int, int]:
    pixel = np.array([[[hue % 180, saturation, value]]], dtype=np.uint8)
    return tuple(int(c) for c in cv2.cvtColor(pixel, cv2.COLOR_HSV2RGB)[0, 0])


def random_background(rng: np.random.Generator, height: int, width: int, vivid: bool = False) -> np.ndarray:
    """(H, W, 3) uint8 RGB background in muted colours: smooth noise, a gradient or stripes. ``vivid``: saturated
    colours far apart in brightness, and stripes twice as often (busy, like the objects' own textures)."""
    saturation = (120, 255) if vivid else (0, 90)
    low = np.array(_hsv_to_rgb(rng.uniform(0, 180), rng.uniform(*saturation), rng.uniform(30, 150)), np.float64)
    high = np.array(_hsv_to_rgb(rng.uniform(0, 180), rng.uniform(*saturation), rng.uniform(110, 230)), np.float64)
    kind = rng.choice(("noise", "gradient", "stripes", "stripes") if vivid else ("noise", "gradient", "stripes"))
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
                 shapes: Sequence[str], sizes: tuple[float, float], domain: Domain = Domain()) -> SyntheticVideo:
    """A video of ``objects`` shapes of random classes among ``shapes`` (as often as ``domain`` weighs them), each
    visible in at least MIN_VISIBLE_FRAMES frames (the objects are drawn again until they are), in ``domain``'s
    light, blur and backgrounds."""
    background = random_background(rng, height, width, domain.vivid_backgrounds)
    probabilities = domain.class_probabilities(len(shapes))
    draw = (lambda: str(rng.choice(shapes))) if probabilities is None else (
        lambda: str(rng.choice(shapes, p=probabilities)))
    for _ in range(MAX_ATTEMPTS):
        tracks = [random_track(rng, draw(), frames, height, width, sizes) for _ in range(objects)]
        rendered = [render_frame(background, tracks, t) for t in range(frames)]
        masks = [[frame_masks[i] for _, frame_masks in rendered] for i in range(objects)]
        if all(sum(m is not None for m in track_masks) >= min(MIN_VISIBLE_FRAMES, frames) for track_masks in masks):
            break
    else:
        raise SyntheticError(f"could not place {objects} objects visible in {MIN_VISIBLE_FRAMES} frames each in "
                             f"{MAX_ATTEMPTS} tries: use fewer objects, smaller ones or a larger frame")
    noisy = [np.clip(_seen(image, domain) + rng.normal(0, SENSOR_NOISE, image.shape), 0, 255).round().astype(np.uint8)
             for image, _ in rendered]
    return SyntheticVideo(noisy, tracks, masks)


def _seen(image: np.ndarray, domain: Domain) -> np.ndarray:
    """The rendered scene as the domain's camera sees it, before its sensor noise: blurred, then lit. The masks
    stay the scene's own (what a labeller would draw)."""
    if domain.blur > 0:
        image = cv2.GaussianBlur(image, (0, 0), domain.blur)
    return image * domain.lighting if domain.lighting != 1.0 else image
