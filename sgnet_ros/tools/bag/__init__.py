"""``sgnet-bag``: a ROS 2 bag of camera images from a video file, an image folder or a YouTube-VIS style set.

The bag is written with rosbags (no ROS install needed) as ``ros2 bag record`` would write it: a folder holding
``metadata.yaml`` and one storage file, MCAP by default or SQLite 3 (``.db3``). Each frame is one
``sensor_msgs/Image`` (``rgb8`` or ``bgr8``) or ``sensor_msgs/CompressedImage`` (``jpeg``) whose header stamp is
also the message's log time in the bag; frame ``i`` of a video is stamped ``start + i / fps``.

A YouTube-VIS set becomes one bag with its videos back to back: each frame at its real time within its video, as
``sgnet-eval`` stamps it (from the file names, frame numbers of 30 fps footage:
:func:`sgnet_model.data.ytvis.frame_times`; 6 frames a second for other names), or frame i at i / ``--fps`` when
given; and between two videos a pause longer than the node's tracker gap (``predictor.max_gap_s``), so that the node starts fresh tracks at each new video, as
``sgnet-eval`` does.

When annotations are given, the ground truth of the bag's frames is written beside the bag as
``<bag>.ground_truth.json``: a YouTube-VIS annotation file (the videos in the bag, their annotations, all
categories) with one more key, ``sgnet_bag``, that maps every message's header stamp to its video and frame::

    "sgnet_bag": {"bag": "<bag folder name>", "topic": "/camera/image_raw",
                  "frames": [{"stamp_ns": 1700000000000000000, "video_id": 1, "frame_index": 0}, ...]}

``sgnet-replay --ground-truth`` reads it; ``sgnet-eval --annotations`` reads it as a plain annotation file.

Several cameras: ``--topic`` given several times writes every frame on each topic (the same video on several
cameras, with the same stamps; frame_id the topic's first namespace), a bag for a node serving several cameras
(``sgnet-replay --cameras``); the ground truth's ``sgnet_bag`` then lists them under ``topics``.

Depth: when the frames folder of a YouTube-VIS style set has ``Depth/`` (16-bit PNGs in millimetres, one per frame
at the colour frame's path) and ``camera_info.yaml`` beside it (ROS's calibration YAML), as ``sgnet-synth --depth``
writes, the bag also holds each frame's aligned depth image (``16UC1``) and camera_info, stamped as the colour frame,
on ``--depth-topic`` and the ``camera_info`` topic beside it (RealSense's names by default), and the ground truth file
gets the set's 3D ground truth (``depth_ground_truth.json``) for the bag's videos under the key ``sgnet_depth``.

format.py names what a bag holds (types, topics, storage, the ground truth's keys), sources.py reads the frames,
depth.py the depth beside them, writer.py writes the bag and its ground truth, cli.py is the command line.
``python -m sgnet_ros.tools.bag`` and the ``sgnet-bag`` console script run ``main``.
"""
from sgnet_ros.bag_flavour import BAG_METADATA_VERSION
from sgnet_ros.tools.bag.cli import main
from sgnet_ros.tools.bag.format import (BAG_KEY, CAMERA_INFO_TYPE, COMPRESSED_SUFFIX,
                                        COMPRESSED_TYPE, DEPTH_KEY, DEPTH_TOPIC, IMAGE_TYPE, STORAGES, BagError,
                                        camera_info_topic, ros_typestore, stamp_ns)

__all__ = ["BAG_KEY", "BAG_METADATA_VERSION", "CAMERA_INFO_TYPE", "COMPRESSED_SUFFIX", "COMPRESSED_TYPE",
           "DEPTH_KEY", "DEPTH_TOPIC", "IMAGE_TYPE", "STORAGES", "BagError", "camera_info_topic", "main",
           "ros_typestore", "stamp_ns"]
