"""OpenVINO's reduced precision (bf16 on CPUs, fp16 on GPUs) for the backbone only: a frame graph cut where the
backbone's features leave it, the backbone compiled in the reduced precision and the rest (the heads, the mask
branch, the detection slots and the movement) in fp32.

Why (docs/export.md, "bf16 that keeps the model's accuracy"): OpenVINO's bf16 over the whole graph cost the held-out
video AP of fp32-trained weights 0.008 to 0.014 (AP at IoU 0.9: up to 0.033) where torch's autocast cost nothing.
Cut after the backbone and the FPN it scores what fp32 scores; cut after the heads' last convolutions (the
post-processing alone in fp32) it loses as much as the whole graph in bf16: the loss is in the heads (their
GroupNorms and 3x3 towers), which OpenVINO's CPU plugin, unlike torch's autocast, runs in bf16. OpenVINO has no
per-node precision that its CPU plugin honours for bf16 (the ``disable_fp16_compression`` runtime attribute did not
change a node's runtime precision, checked on 2026.4), so the graph is cut into two compiled models.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import openvino

# The backbone's nodes as torch.onnx names them: torchvision's BackboneWithFPN modules, body (the ResNet) and fpn
BACKBONE_SCOPES = ("/body/", "/fpn/")
FEATURE_NAME = "backbone_feature_{}"  # the rest's inputs, one per tensor that leaves the backbone


def split_at_backbone(model: openvino.Model) -> tuple[openvino.Model, openvino.Model]:
    """(backbone: its inputs -> the tensors that leave it, rest: those tensors and the graph's other inputs -> the
    graph's outputs). ``model`` is rewired into the rest: read it for this alone."""
    from openvino import Model, opset13

    backbone = _backbone_nodes(model)
    features = [output for node in model.get_ordered_ops()
                if node.get_friendly_name() in backbone and node.get_type_name() not in ("Constant", "Parameter")
                for output in node.outputs()
                if any(_name(target) not in backbone for target in output.get_target_inputs())]
    if not features:
        raise ValueError(f"no node of the frame graph lies in {BACKBONE_SCOPES}: not a graph of sgnet-export")
    readers = [[target for target in feature.get_target_inputs() if _name(target) not in backbone]
               for feature in features]  # before the backbone's own results read them too
    front = Model([opset13.result(feature) for feature in features],
                  [p for p in model.get_parameters() if p.get_friendly_name() in backbone], "backbone")
    inputs = []
    for index, (feature, targets) in enumerate(zip(features, readers)):
        parameter = opset13.parameter(feature.get_partial_shape(), feature.get_element_type(),
                                      FEATURE_NAME.format(index))
        parameter.output(0).get_tensor().set_names({FEATURE_NAME.format(index)})
        for target in targets:
            target.replace_source_output(parameter.output(0))
        inputs.append(parameter)
    used_after = [p for p in model.get_parameters()
                  if any(_name(target) not in backbone for target in p.output(0).get_target_inputs())]
    return front, Model(model.get_results(), inputs + used_after, "rest")


def _backbone_nodes(model: openvino.Model) -> set[str]:
    """Friendly names of the nodes in BACKBONE_SCOPES and of everything they are computed from (the input's
    normalisation, the image parameter)."""
    names = {node.get_friendly_name() for node in model.get_ordered_ops()}
    if len(names) != len(model.get_ordered_ops()):
        raise ValueError("the frame graph's node names are not unique: it cannot be cut by name")
    pending = [node for node in model.get_ordered_ops() if node.get_friendly_name().startswith(BACKBONE_SCOPES)]
    found: set[str] = set()
    while pending:
        node = pending.pop()
        if node.get_friendly_name() not in found:
            found.add(node.get_friendly_name())
            pending += [value.get_source_output().get_node() for value in node.inputs()]
    return found


def _name(target: object) -> str:
    return target.get_node().get_friendly_name()
