"""``sgnet-label``: the labelling round trip of the node's recorded uncertain moments (docs/flywheel.md).

``drafts`` reads the bags the node recorded (sgnet_ros/recording.py), cuts each camera's frames into one video per
moment, and writes them as a labelling set with the model's tracks as drafts: frames, a YouTube-VIS drafts.json
and, per video, a CVAT task's frames and its drafts in CVAT's "COCO 1.0". ``collect`` reads the corrected labels
CVAT exports back (COCO 1.0) into YouTube-VIS annotation files to fine-tune and evaluate on. ``simulate`` stands in for
the labeller on synthetic footage: it writes those exports from the ground truth of the replayed bag.

format.py names the folder's files, videos.py reads the bags into videos, drafts.py writes the set, cvat.py writes
and reads CVAT's COCO 1.0, collect.py builds train.json and val.json,
simulate.py the simulated labeller, cli.py is the command line.
``python -m sgnet_ros.tools.label`` and the ``sgnet-label`` console script run ``main``.
"""
from sgnet_ros.tools.label.cli import main

__all__ = ["main"]
