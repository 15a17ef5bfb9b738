"""Pictures of published rviz markers without rviz (rviz2 is not on PyPI): what rviz would show of the node's
``markers``, drawn with OpenCV.

- :func:`camera_view`: the markers projected through the camera's intrinsics (camera_info's K) over an image of
  that camera (the debug image): where each 3D box, centroid and label lies in the picture.
- :func:`orbit_view`: the markers in 3D as seen from config/sgnet.rviz's orbit view (its distance, pitch, yaw,
  focal point and field of view, with the fixed frame's z up on screen as rviz keeps it), over that config's grid
  and the camera frame's axes.

Only what the node publishes is drawn: LINE_LIST, SPHERE and TEXT_VIEW_FACING markers, posed in the camera's
optical frame (the fixed frame here). :class:`MarkerScene` applies MarkerArrays in order as rviz does (ADD replaces
a marker of the same namespace and id, DELETE removes it, DELETEALL clears).
"""
from __future__ import annotations

import math
from typing import Any, Callable

import cv2
import numpy as np
from visualization_msgs.msg import Marker, MarkerArray

NEAR_M = 0.05  # points closer to the viewer than this (along its axis) are clipped
BACKGROUND = (48, 48, 48)  # rviz's default background, as in config/sgnet.rviz
GRID_COLOUR = (160, 160, 164)
AXIS_COLOURS_BGR = ((0, 0, 255), (0, 255, 0), (255, 0, 0))  # x red, y green, z blue, as rviz's TF display
Project = Callable[[np.ndarray], np.ndarray]  # (N, 3) points in the fixed frame -> (N, 3): u, v, depth


class MarkerScene:
    """The markers rviz shows after the arrays applied so far: (namespace, id) -> marker."""

    def __init__(self) -> None:
        self.shown: dict[tuple[str, int], Marker] = {}

    def apply(self, array: MarkerArray) -> None:
        for marker in array.markers:
            if marker.action == Marker.DELETEALL:
                self.shown.clear()
            elif marker.action == Marker.DELETE:
                self.shown.pop((marker.ns, marker.id), None)
            else:
                self.shown[marker.ns, marker.id] = marker


def _rotation(orientation: Any) -> np.ndarray:
    """(3, 3) rotation of a geometry_msgs/Quaternion (normalised; all zero counts as identity, as rviz does)."""
    x, y, z, w = orientation.x, orientation.y, orientation.z, orientation.w
    norm = math.sqrt(x * x + y * y + z * z + w * w)
    if norm == 0:
        return np.eye(3)
    x, y, z, w = x / norm, y / norm, z / norm, w / norm
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def _in_frame(marker: Marker, points: np.ndarray) -> np.ndarray:
    """(N, 3) points in the marker's own frame -> the frame of its header (its pose applied)."""
    position = marker.pose.position
    return points @ _rotation(marker.pose.orientation).T + np.array([position.x, position.y, position.z])


def _bgr(marker: Marker) -> tuple[int, int, int]:
    return tuple(int(round(255 * min(max(c, 0.0), 1.0))) for c in (marker.color.b, marker.color.g, marker.color.r))


def _segment(canvas: np.ndarray, project: Project, a: np.ndarray, b: np.ndarray, colour: tuple[int, int, int],
             thickness: int) -> None:
    """A 3D segment, clipped where it passes behind the viewer's near plane."""
    ends = project(np.stack([a, b]))  # (2, 3): u, v, depth
    behind = ends[:, 2] < NEAR_M
    if behind.all():
        return
    if behind.any():  # move the end behind the near plane onto it
        t = (NEAR_M - ends[0, 2]) / (ends[1, 2] - ends[0, 2])
        ends[int(np.argmax(behind))] = project((a + t * (b - a))[None])[0]
    (ua, va), (ub, vb) = np.rint(ends[:, :2]).astype(int)
    cv2.line(canvas, (int(ua), int(va)), (int(ub), int(vb)), colour, thickness, cv2.LINE_AA)


def _draw(canvas: np.ndarray, project: Project, focal: float, scene: MarkerScene) -> None:
    """The scene's markers, the farthest first (the nearer ones painted over them)."""
    centres = {key: project(_in_frame(marker, np.zeros((1, 3))))[0] for key, marker in scene.shown.items()}
    for key in sorted(centres, key=lambda key: -centres[key][2]):
        marker, (u, v, depth) = scene.shown[key], centres[key]
        colour = _bgr(marker)
        if marker.type == Marker.LINE_LIST:
            points = _in_frame(marker, np.array([[p.x, p.y, p.z] for p in marker.points]).reshape(-1, 3))
            for a, b in zip(points[0::2], points[1::2]):
                _segment(canvas, project, a, b, colour, 2)
        elif depth < NEAR_M:
            continue
        elif marker.type == Marker.SPHERE:
            cv2.circle(canvas, (int(round(u)), int(round(v))), max(2, int(round(focal * marker.scale.x / 2 / depth))),
                       colour, cv2.FILLED, cv2.LINE_AA)
        elif marker.type == Marker.TEXT_VIEW_FACING:
            height_px = max(10.0, focal * marker.scale.z / depth)
            scale = height_px / cv2.getTextSize("0", cv2.FONT_HERSHEY_SIMPLEX, 1.0, 1)[0][1]
            thickness = max(1, int(round(height_px / 14)))
            (width, _), _ = cv2.getTextSize(marker.text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
            origin = (int(round(u - width / 2)), int(round(v + height_px / 2)))
            cv2.putText(canvas, marker.text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness + 2,
                        cv2.LINE_AA)
            cv2.putText(canvas, marker.text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thickness, cv2.LINE_AA)


def camera_view(image_bgr: np.ndarray, k: list[float], scene: MarkerScene) -> np.ndarray:
    """A copy of the camera's (H, W, 3) BGR image with the markers projected through its K (row-major 3x3)."""
    fx, cx, fy, cy = k[0], k[2], k[4], k[5]

    def project(points: np.ndarray) -> np.ndarray:  # optical frame: z is the depth
        z = points[:, 2]
        safe = np.where(np.abs(z) < 1e-9, 1e-9, z)
        return np.stack([fx * points[:, 0] / safe + cx, fy * points[:, 1] / safe + cy, z], axis=1)

    canvas = image_bgr.copy()
    _draw(canvas, project, fx, scene)
    return canvas


def orbit_view(scene: MarkerScene, rviz_config: dict[str, Any], width: int, height: int,
               frame_label: str = "") -> np.ndarray:
    """(height, width, 3) BGR picture of the markers from the orbit view of a parsed rviz config (yaml.safe_load of
    config/sgnet.rviz), with its XZ grid and the fixed frame's axes at the origin."""
    manager = rviz_config["Visualization Manager"]
    view = manager["Views"]["Current"]
    focal_point = np.array([view["Focal Point"][axis] for axis in "XYZ"], float)
    distance, pitch, yaw = float(view["Distance"]), float(view["Pitch"]), float(view["Yaw"])
    eye = focal_point + distance * np.array([math.cos(yaw) * math.cos(pitch), math.sin(yaw) * math.cos(pitch),
                                             math.sin(pitch)])
    forward = (focal_point - eye) / np.linalg.norm(focal_point - eye)
    right = np.cross(forward, [0.0, 0.0, 1.0])  # rviz's orbit view keeps the fixed frame's z up on screen
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    focal = (height / 2) / math.tan(float(view["Field of View"]) / 2)  # the field of view is vertical

    def project(points: np.ndarray) -> np.ndarray:
        relative = points - eye
        depth = relative @ forward
        safe = np.where(np.abs(depth) < 1e-9, 1e-9, depth)
        return np.stack([width / 2 + focal * (relative @ right) / safe,
                         height / 2 - focal * (relative @ up) / safe, depth], axis=1)

    canvas = np.full((height, width, 3), BACKGROUND, np.uint8)
    for display in manager["Displays"]:
        if display["Class"].endswith("/Grid") and display.get("Plane") == "XZ":
            size, cells = float(display["Cell Size"]), int(display["Plane Cell Count"])
            offset = np.array([display["Offset"][axis] for axis in "XYZ"], float)
            extent = size * cells / 2
            for step in np.linspace(-extent, extent, cells + 1):
                for a, b in (((step, 0, -extent), (step, 0, extent)), ((-extent, 0, step), (extent, 0, step))):
                    _segment(canvas, project, offset + a, offset + b, GRID_COLOUR, 1)
    for axis, colour in enumerate(AXIS_COLOURS_BGR):
        _segment(canvas, project, np.zeros(3), np.eye(3)[axis] * 0.3, colour, 2)
    if frame_label:
        u, v, _ = project(np.zeros((1, 3)))[0]
        cv2.putText(canvas, frame_label, (int(u) + 6, int(v) - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1,
                    cv2.LINE_AA)
    _draw(canvas, project, focal, scene)
    return canvas
