"""``sgnet-node-bench``: what the ROS node adds on top of the model, and how it behaves under a camera stream.

Two measurements, each against a node started in its own process (as in a robot), over real DDS:

1. Overhead: frames sent one at a time; for each, the latency from publishing the image to receiving its
   InstanceArray, minus the predictor's own time for that frame (``InstanceArray.inference_ms``). What is left is
   the node: image transport both ways, conversion, message building, mask encoding. Median reported.
2. Stream: frames published at a camera rate (30 Hz) to a node whose model is slower than the frame period. The
   node must serve the newest frame and drop the rest: latency stays within about two model times and the node's
   memory (RSS, and on CUDA the GPU memory the node's process holds, read from nvidia-smi) stays flat.
   Latency percentiles over the median model time, drops, and memory growth reported.

With ``--depth`` (instances in 3D, docs/depth.md), two more figures: the overhead measurement again with depth
on (an aligned 16UC1 depth image and camera_info published with every frame, and acknowledged by the node before the
frame goes out: a camera sends depth alongside colour, so its transport overlaps inference; Fast DDS also loses
large reliable samples sent back to back over its 512 KB shared-memory segment), and the depth path timed
in-process on frames with ``--depth-instances`` instances of realistic size (random weights give tiny masks): the
depth message's deserialization plus the node's DepthInput.process (pairing, decoding, locating every instance)
plus the 3D fields of the InstanceArray, as wall time, and the first two as the thread's CPU time (wall and CPU
time agree on an idle machine; on a loaded one the CPU time is the cost). On the same frames: the rviz markers'
building time (sgnet_ros/markers.py, done only while ``markers`` has subscribers), what the node does for them when
nobody subscribes (its subscription count check), and the debug overlay's rendering time (sgnet_ros/overlay.py).

With ``--record``, the overhead measurement again on a node recording every frame it serves into a bag (the
recorder's worst case), and the recorder timed alone (recording_path.py; docs/flywheel.md has the figures).

With ``--cameras N``, instead: one node serving N cameras against one serving 1 and against N separate nodes
(memory, total frames per second, each camera's share; cameras.py), on --model-config.

Both nodes run random weights (smoke_test) unless --checkpoint is given: timing does not depend on the weights.
Images go over reliable QoS: with Fast DDS's default transports, a best-effort subscription loses images larger
than its 512 KB shared-memory segment (640x360 rgb8 is 691 KB).

common.py holds what both benchmarks share, overhead.py the node process and the first two measurements,
depth_path.py the depth figures, recording_path.py the recording figures, cameras.py the ``--cameras`` runs, cli.py
the command line.
``python -m sgnet_ros.tools.node_bench`` and the ``sgnet-node-bench`` console script run ``main``.
"""
from sgnet_ros.tools.node_bench.cli import main

__all__ = ["main"]
