"""The predictor's FrameResult as ROS messages: sgnet_ros/InstanceArray, vision_msgs/Detection2DArray and
LabelInfo, and the camera's CameraInfo restamped for an output."""
from __future__ import annotations

import array
from typing import Sequence

from sensor_msgs.msg import CameraInfo
from std_msgs.msg import Header

from sgnet_model.instances import FrameResult, TrackedInstance
from sgnet_ros.masks import encode_mask
from sgnet_ros.msg import Instance, InstanceArray

try:  # vision_msgs is not on PyPI; in a ROS install it usually is there, and then detections are published.
    from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose
except ImportError:
    Detection2DArray = None
try:  # LabelInfo came with vision_msgs 4 (Humble's); an older vision_msgs has detections but not this.
    from vision_msgs.msg import LabelInfo, VisionClass
except ImportError:
    LabelInfo = None


def by_score(instances: list[TrackedInstance]) -> list[TrackedInstance]:
    """Highest score first (the order of InstanceArray.instances)."""
    return sorted(instances, key=lambda instance: -instance.score)


def instance_msg(instance: TrackedInstance) -> Instance:
    x1, y1, x2, y2 = (float(v) for v in instance.box)
    height, width = instance.mask.shape
    return Instance(
        track_id=instance.track_id, class_id=instance.class_id, class_name=instance.class_name,
        score=float(instance.score), box_x1=x1, box_y1=y1, box_x2=x2, box_y2=y2,
        centre_x=float(instance.centre[0]), centre_y=float(instance.centre[1]),
        motion_x=float(instance.motion[0]), motion_y=float(instance.motion[1]),
        mask_height=height, mask_width=width,
        mask_counts=array.array("I", encode_mask(instance.mask).tobytes()))  # uint32[] takes array("I")


def instance_array_msg(result: FrameResult, header: Header) -> InstanceArray:
    return InstanceArray(header=header, instances=[instance_msg(i) for i in by_score(result.instances)],
                         inference_ms=float(result.inference_ms), tracks_reset=result.tracks_reset)


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
