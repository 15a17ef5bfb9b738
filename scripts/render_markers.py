"""Render the node's rviz markers without rviz: a picture for docs/ros.md (rviz2 is not on PyPI).

Starts the node (``python -m sgnet_ros.node``) with depth on, publishes a generated synthetic video with its aligned
depth (training/synthetic/depth.py: shapes in front of a tilted wall, the RealSense D435 colour camera's field of view)
and camera_info, collects what the node publishes on ``markers`` and ``debug_image`` over real DDS, and draws the
markers of the last frame as rviz would show them (sgnet_ros/tools/marker_view.py): in 3D from config/sgnet.rviz's view
(left) and projected with camera_info's K over the debug image (right). It is a rendering of the published
markers, not a screenshot of rviz.

    .venv/bin/python scripts/render_markers.py --checkpoint model.pt --output docs/images/rviz_markers.png

Without --checkpoint the node runs random weights (smoke_test) with every threshold at 0: the instances then mean
nothing, but their markers are drawn the same way.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "/render_markers"
FRAME_ID = "camera_color_optical_frame"
PANEL_HEIGHT = 480


def node_process(checkpoint: str, log_path: Path) -> subprocess.Popen:
    parameters = {"depth_image_topic": "depth/image_raw", "depth_pairing_tolerance_s": 0.0,
                  "depth_pairing_wait_s": 2.0, "qos_reliability": "reliable"}
    if checkpoint:
        parameters["checkpoint"] = str(Path(checkpoint).resolve())
    else:  # random weights: small masks, so no erosion and one depth pixel is enough to locate one
        parameters.update({"smoke_test": True, "model_config": "resnet18_small", "model.score_threshold": 0.0,
                           "model.detections_per_frame": 8, "tracker.new_track_score": 0.0,
                           "tracker.continue_score": 0.0, "depth_mask_erosion_px": 0, "depth_min_valid_pixels": 1})
    args = [sys.executable, "-m", "sgnet_ros.node", "--ros-args", "-r", f"__ns:={NAMESPACE}"]
    for key, value in parameters.items():
        args += ["-p", f"{key}:={json.dumps(value)}"]
    return subprocess.Popen(args, stdout=log_path.open("wb"), stderr=subprocess.STDOUT, cwd=ROOT)


def synthetic_frames(seed: int, frames: int, width: int, height: int):
    """(colour frames, depth frames in metres, K) of one generated video with three shapes."""
    from training.synthetic import DEFAULT_SIZES, SHAPES, PinholeCamera, depth_video, random_video

    rng = np.random.default_rng(seed)
    video = random_video(rng, frames, height, width, 3, SHAPES[:4], (DEFAULT_SIZES[0] * 2, DEFAULT_SIZES[1] * 2))
    camera = PinholeCamera.for_frame(width, height)
    depths, _ = depth_video(rng, video, camera)
    return video.frames, depths, camera.k()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="", help="trained checkpoint (default: random weights)")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "images" / "rviz_markers.png")
    parser.add_argument("--frames", type=int, default=6, help="frames sent; the last one is drawn")
    parser.add_argument("--seed", type=int, default=3, help="seed of the synthetic video")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=384)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.checkpoint and not Path(args.checkpoint).is_file():
        parser.error(f"checkpoint {args.checkpoint} does not exist")
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))

    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image
    from visualization_msgs.msg import MarkerArray

    from sgnet_ros.tools.marker_view import MarkerScene, camera_view, orbit_view

    colour_frames, depth_frames, k = synthetic_frames(args.seed, args.frames, args.width, args.height)
    with tempfile.TemporaryDirectory() as scratch:
        os.environ.setdefault("ROS_LOG_DIR", scratch)
        node = node_process(args.checkpoint, Path(scratch) / "node.log")
        rclpy.init()
        client = rclpy.create_node("render_markers")
        received: dict[str, dict[int, object]] = {"markers": {}, "debug_image": {}}
        lock = threading.Lock()

        def keep(topic: str):
            def record(message):  # by stamp (whole seconds); an empty marker array changes nothing and is skipped
                header = message.markers[0].header if topic == "markers" and message.markers else \
                    None if topic == "markers" else message.header
                if header is not None:
                    with lock:
                        received[topic][header.stamp.sec] = message
            return record

        def spin():
            while spinning:
                executor.spin_once(timeout_sec=0.05)

        for topic, message_type in (("markers", MarkerArray), ("debug_image", Image)):
            client.create_subscription(message_type, f"{NAMESPACE}/{topic}", keep(topic), 50)
        reliable = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        publishers = {name: client.create_publisher(kind, f"{NAMESPACE}/{name}", reliable) for name, kind in
                      (("image", Image), ("depth/image_raw", Image), ("depth/camera_info", CameraInfo))}
        executor = SingleThreadedExecutor()
        executor.add_node(client)
        spinning = True
        threading.Thread(target=spin, daemon=True).start()
        try:
            deadline = time.monotonic() + 120
            while not all(p.get_subscription_count() for p in publishers.values()):
                if node.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"render_markers: the node did not come up; see {scratch}/node.log:\n"
                                     + (Path(scratch) / "node.log").read_text(errors="replace")[-2000:])
                time.sleep(0.1)
            scene = MarkerScene()
            for index, (rgb, depth) in enumerate(zip(colour_frames, depth_frames), start=1):
                stamp = 100 + index  # one frame a second: every frame is answered before the next is sent
                for _ in range(60):  # the first frames also wait for the output subscriptions to match
                    send(publishers, rgb, depth, k, stamp, args.width, args.height)
                    if wait(lambda: stamp in received["markers"] and stamp in received["debug_image"], lock, 5.0):
                        break
                else:
                    raise SystemExit(f"render_markers: no markers for frame {index}")
                scene.apply(received["markers"][stamp])
            debug = received["debug_image"][stamp]
            debug_bgr = np.frombuffer(debug.data, np.uint8).reshape(debug.height, debug.step)[:, :debug.width * 3]
            debug_bgr = debug_bgr.reshape(debug.height, debug.width, 3)[:, :, ::-1]
            config = yaml.safe_load((ROOT / "config" / "sgnet.rviz").read_text())
            right = camera_view(debug_bgr, k, scene)
            right = cv2.resize(right, (round(right.shape[1] * PANEL_HEIGHT / right.shape[0]), PANEL_HEIGHT),
                               interpolation=cv2.INTER_AREA)
            left = orbit_view(scene, config, PANEL_HEIGHT * 4 // 3, PANEL_HEIGHT, FRAME_ID)
            args.output.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(args.output), np.concatenate([left, right], axis=1))
            print(f"{args.output}: {len(scene.shown)} markers of frame {len(colour_frames)}")
        finally:
            spinning = False
            node.send_signal(signal.SIGINT)
            node.wait(30)
            executor.shutdown(timeout_sec=0)
            client.destroy_node()
            rclpy.try_shutdown()
    return 0


def send(publishers, rgb: np.ndarray, depth: np.ndarray, k: list[float], stamp: int, width: int, height: int) -> None:
    """camera_info, the 32FC1 depth image and the rgb8 colour frame, all stamped ``stamp`` s in the optical frame."""
    from sensor_msgs.msg import CameraInfo, Image

    info = CameraInfo(width=width, height=height, k=k, distortion_model="plumb_bob", d=[0.0] * 5)
    depth_message = Image(width=width, height=height, encoding="32FC1", step=width * 4,
                          data=np.ascontiguousarray(depth, "<f4").tobytes())
    colour = Image(width=width, height=height, encoding="rgb8", step=width * 3,
                   data=np.ascontiguousarray(rgb).tobytes())
    for message, name in ((info, "depth/camera_info"), (depth_message, "depth/image_raw"), (colour, "image")):
        message.header.frame_id = FRAME_ID
        message.header.stamp.sec = stamp
        publishers[name].publish(message)


def wait(condition, lock: threading.Lock, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with lock:
            if condition():
                return True
        time.sleep(0.05)
    return False


if __name__ == "__main__":
    sys.exit(main())
