"""The predictor's FrameResult as ROS messages: sgnet_ros/InstanceArray, vision_msgs/Detection2DArray and
LabelInfo, the camera's CameraInfo restamped for an output, and with depth (sgnet_ros/depth.py) the 3D fields of the
instances and vision_msgs/Detection3DArray."""
from __future__ import annotations

import array
from typing import Mapping, Sequence

from geometry_msgs.msg import Point, Vector3
from sensor_msgs.msg import CameraInfo
from std_msgs.msg import Header

from sgnet_model.instances import FrameResult, TrackedInstance
from sgnet_ros.depth import Instance3D
from sgnet_ros.masks import encode_mask
from sgnet_ros.msg import Instance, InstanceArray

try:  # vision_msgs is not on PyPI; in a ROS install it usually is there, and then detections are published.
    from vision_msgs.msg import (Detection2D, Detection2DArray, Detection3D, Detection3DArray,
                                 ObjectHypothesisWithPose)
except ImportError:
    Detection2DArray = Detection3DArray = None
try:  # LabelInfo came with vision_msgs 4 (Humble's); an older vision_msgs has detections but not this.
    from vision_msgs.msg import LabelInfo, VisionClass
except ImportError:
    LabelInfo = None

# Track id -> the instance's 3D estimate in this frame; a track missing from it has no 3D (position_valid false).
Spatial = Mapping[int, Instance3D]


def by_score(instances: list[TrackedInstance]) -> list[TrackedInstance]:
    """Highest score first (the order of InstanceArray.instances)."""
    return sorted(instances, key=lambda instance: -instance.score)


def instance_msg(instance: TrackedInstance, located: Instance3D | None = None, uncertain: bool = False) -> Instance:
    x1, y1, x2, y2 = (float(v) for v in instance.box)
    height, width = instance.mask.shape
    spatial = {}
    if located is not None:
        spatial = dict(position_valid=True, position=Point(x=located.position[0], y=located.position[1],
                                                           z=located.position[2]),
                       box_centre=Point(x=located.box_centre[0], y=located.box_centre[1], z=located.box_centre[2]),
                       size=Vector3(x=located.size[0], y=located.size[1], z=located.size[2]),
                       depth_pixels=located.valid_pixels)
    return Instance(
        track_id=instance.track_id, class_id=instance.class_id, class_name=instance.class_name,
        score=float(instance.score), box_x1=x1, box_y1=y1, box_x2=x2, box_y2=y2,
        centre_x=float(instance.centre[0]), centre_y=float(instance.centre[1]),
        motion_x=float(instance.motion[0]), motion_y=float(instance.motion[1]), predicted=instance.predicted,
        uncertain=uncertain,
        mask_height=height, mask_width=width,
        mask_counts=array.array("I", encode_mask(instance.mask).tobytes()),  # uint32[] takes array("I")
        **spatial)


def instance_array_msg(result: FrameResult, header: Header, spatial: Spatial | None = None) -> InstanceArray:
    spatial = spatial or {}
    events = result.uncertainty
    return InstanceArray(header=header, instances=[instance_msg(i, spatial.get(i.track_id),
                                                                i.track_id in events.tracks)
                                                   for i in by_score(result.instances)],
                         inference_ms=float(result.inference_ms), tracks_reset=result.tracks_reset,
                         uncertainty_borderline=min(events.borderline, 65535),
                         uncertainty_started=min(events.started, 65535), uncertainty_lost=min(events.lost, 65535),
                         uncertainty_class_changes=min(events.class_changes, 65535))


def detection_array_msg(result: FrameResult, header: Header, class_id: str = "name") -> "Detection2DArray":
    """vision_msgs/Detection2DArray (Humble and later): one Detection2D per instance, ``id`` = the track id,
    one hypothesis with the class (its name, or with ``class_id="index"`` its index as text, the key of
    label_info) and score, the box as centre and size."""
    detections = []
    for instance in by_score(result.instances):
        x1, y1, x2, y2 = (float(v) for v in instance.box)
        detection = Detection2D(header=header, id=str(instance.track_id))
        detection.bbox.center.position.x = (x1 + x2) / 2
        detection.bbox.center.position.y = (y1 + y2) / 2
        detection.bbox.size_x = x2 - x1
        detection.bbox.size_y = y2 - y1
        hypothesis = ObjectHypothesisWithPose()
        hypothesis.hypothesis.class_id = instance.class_name if class_id == "name" else str(instance.class_id)
        hypothesis.hypothesis.score = float(instance.score)
        detection.results = [hypothesis]
        detections.append(detection)
    return Detection2DArray(header=header, detections=detections)


def label_info_msg(class_names: Sequence[str], score_threshold: float) -> "LabelInfo":
    """vision_msgs/LabelInfo: class index -> name (the index is Instance.class_id, and class_image's pixel
    minus 1), and the score threshold in use."""
    return LabelInfo(class_map=[VisionClass(class_id=index, class_name=name) for index, name in enumerate(class_names)],
                     threshold=float(score_threshold))


def camera_info_msg(camera_info: CameraInfo, header: Header) -> CameraInfo:
    """The camera's calibration with an output's header, so that tools pairing images with their CameraInfo by
    stamp (image_geometry, depth_image_proc, rviz's Camera display) can use the masks."""
    return CameraInfo(header=header, height=camera_info.height, width=camera_info.width,
                      distortion_model=camera_info.distortion_model, d=camera_info.d, k=camera_info.k,
                      r=camera_info.r, p=camera_info.p, binning_x=camera_info.binning_x,
                      binning_y=camera_info.binning_y, roi=camera_info.roi)


def detection3d_array_msg(result: FrameResult, header: Header, spatial: Spatial) -> "Detection3DArray":
    """vision_msgs/Detection3DArray (Humble and later) of the instances located in 3D: ``id`` = the track id, one
    hypothesis with the class name, the score and the centroid as its pose, the box axis-aligned in the optical frame
    of the header (identity orientation)."""
    detections = []
    for instance in by_score(result.instances):
        located = spatial.get(instance.track_id)
        if located is None:
            continue
        detection = Detection3D(header=header, id=str(instance.track_id))
        box = detection.bbox
        box.center.position.x, box.center.position.y, box.center.position.z = located.box_centre
        box.center.orientation.w = 1.0
        box.size.x, box.size.y, box.size.z = located.size
        hypothesis = ObjectHypothesisWithPose()
        hypothesis.hypothesis.class_id = instance.class_name
        hypothesis.hypothesis.score = float(instance.score)
        pose = hypothesis.pose.pose  # the centroid of the visible surface
        pose.position.x, pose.position.y, pose.position.z = located.position
        pose.orientation.w = 1.0
        detection.results = [hypothesis]
        detections.append(detection)
    return Detection3DArray(header=header, detections=detections)
