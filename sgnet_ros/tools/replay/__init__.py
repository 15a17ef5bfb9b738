"""``sgnet-replay``: a ROS 2 bag replayed through the running node, its outputs recorded and scored (docs/replay.md).

cli.py is the command line; bag.py reads the bag, session.py holds the ROS session and the frames' answers,
pacing.py publishes and paces, scoring.py scores against ground truth, depth.py feeds and scores depth, report.py
writes the report. ``python -m sgnet_ros.tools.replay`` and the ``sgnet-replay`` console script run ``main``.
"""
from sgnet_ros.tools.replay.cli import main

__all__ = ["main"]
