"""Depth for a synthetic video (``--depth``): a pinhole camera, every shape a flat cut-out at its own distance in
front of a tilted background plane, the depth images (16-bit, millimetres) and the exact 3D ground truth."""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np
import yaml

from training.synthetic.video import SyntheticError, SyntheticVideo

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


def write_depth_video(out_dir: Path, seed: int, index: int, video: SyntheticVideo, file_names: Sequence[str],
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


def write_depth_set(out_dir: Path, camera: PinholeCamera, videos: list[dict[str, Any]]) -> None:
    """camera_info.yaml and depth_ground_truth.json beside the set."""
    (out_dir / CAMERA_INFO_FILE).write_text(yaml.safe_dump(camera.calibration(), sort_keys=False), encoding="utf-8")
    truth = {"camera_info": CAMERA_INFO_FILE, "depth_dir": DEPTH_DIR, "depth_unit": "millimetre",
             "frame": "optical (x right, y down, z forward), metres", "k": camera.k(),
             "width": camera.width, "height": camera.height, "videos": videos}
    (out_dir / DEPTH_TRUTH_FILE).write_text(json.dumps(truth, separators=(",", ":")), encoding="utf-8")
