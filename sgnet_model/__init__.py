"""SG-Net (Liu et al., "SG-Net: Spatial Granularity Network for One-Stage Video Instance Segmentation")
in pure PyTorch: the network, its losses and targets, the centre tracker and a streaming predictor.

Subpackages (docs/architecture.md): ``network`` (backbone, heads, losses, targets), ``inference`` (detections and
masks from the network's outputs, the tracker), ``runtime`` (the fixed-shape frame, its export, the backends that
run it), ``data`` (the YouTube-VIS format and metric). ``predictor`` is the one seam the node, the evaluator and
replay use. This package never imports ROS or the training code.
"""
from sgnet_model.moved_modules import register

# Modules that moved into the subpackages (issue 28): the old paths import the new modules, with a warning.
MOVED = {
    "sgnet_model.backbone": "sgnet_model.network.backbone",
    "sgnet_model.locations": "sgnet_model.network.locations",
    "sgnet_model.mask_head": "sgnet_model.network.mask_head",
    "sgnet_model.motion_head": "sgnet_model.network.motion_head",
    "sgnet_model.model": "sgnet_model.network.model",
    "sgnet_model.losses": "sgnet_model.network.losses",
    "sgnet_model.targets": "sgnet_model.network.targets",
    "sgnet_model.postprocess": "sgnet_model.inference.postprocess",
    "sgnet_model.tracker": "sgnet_model.inference.tracker",
    "sgnet_model.frame": "sgnet_model.runtime.frame",
    "sgnet_model.export": "sgnet_model.runtime.export",
    "sgnet_model.backends": "sgnet_model.runtime.backends",
    "sgnet_model.ytvis": "sgnet_model.data.ytvis",
    "sgnet_model.ytvis_metric": "sgnet_model.data.ytvis_metric",
}
register(MOVED)
