"""Training and evaluation of SG-Net: YouTube-VIS and synthetic data, sgnet-train, sgnet-eval, sgnet-export;
the benchmarks (sgnet-bench, sgnet-train-bench, sgnet-peer-bench and the Mask R-CNN peer) in ``training.benchmarks``.
"""
from sgnet_model.moved_modules import register

# Modules that moved into training.benchmarks (issue 28): the old paths import the new modules, with a warning.
MOVED = {
    "training.bench": "training.benchmarks.bench",
    "training.train_bench": "training.benchmarks.train_bench",
    "training.peer_bench": "training.benchmarks.peer_bench",
    "training.maskrcnn_peer": "training.benchmarks.maskrcnn_peer",
    "training.iou_tracker": "training.benchmarks.iou_tracker",
}
register(MOVED)
