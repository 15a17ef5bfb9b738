"""Operations that make the host wait for the device (on CUDA: a sync each, and none may run inside a CUDA graph
capture), watched op by op on the CPU with a torch dispatch mode: the fixed-shape frame has none, the training
losses a fixed two whatever the batch."""
import dataclasses

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from sgnet_model.config import named_config
from sgnet_model.network.model import SGNet
from sgnet_model.inference.postprocess import frame_tensors
from sgnet_model.runtime.frame import FixedFrame
from sgnet_model.structures import ClipBatch, FrameTargets

CONFIG = dataclasses.replace(named_config("resnet18_small").model, input_width=320, input_height=192)


class HostReads(TorchDispatchMode):
    """Records every operation whose result (or whose output's size) depends on the device's data."""

    DATA_DEPENDENT = {"_local_scalar_dense", "nonzero", "masked_select", "unique", "_unique2", "unique_consecutive",
                      "nms", "bincount"}

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        boolean_index = name == "index" and any(
            isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in (args[1] if len(args) > 1 else ()))
        repeats_from_data = name == "repeat_interleave" and func._overloadname != "self_int"
        if name in self.DATA_DEPENDENT or boolean_index or repeats_from_data:
            self.found.append(name)
        return func(*args, **(kwargs or {}))


def test_the_fixed_frame_never_reads_device_data_on_the_host():
    """What GraphedFrames captures; the data-dependent path (what the CPU runs) is the control."""
    torch.manual_seed(2)
    model = SGNet(CONFIG).eval()
    with torch.no_grad():
        model.head.regression_head.bbox_reg.bias.fill_(2.0)
    config = dataclasses.replace(CONFIG, score_threshold=0.0, detections_per_frame=6)
    batch = torch.randint(0, 256, (1, 3, 192, 320), generator=torch.Generator().manual_seed(5)).float()
    with torch.inference_mode():
        fixed = FixedFrame(model, config, (), batch, 0.5, (180, 320), (360, 640))
        with HostReads() as watched:
            [(result, _)] = fixed(batch, [None], [0.0])
        assert watched.found == [] and bool(result.numbers[:, 8].all())
        outputs = model.pyramid_outputs(batch)
        with HostReads() as control:
            frame_tensors(model, config, outputs, outputs.pyramid(), outputs.regression_towers, torch.zeros(1), 0.5,
                          (180, 320), (360, 640), fixed=False)
        assert {"nonzero", "nms", "repeat_interleave"} <= set(control.found)


def clips(count: int) -> ClipBatch:
    """``count`` clips of two 192 x 320 frames with two moving boxes each (and box-shaped masks)."""
    generator = torch.Generator().manual_seed(count)
    targets = []
    for _ in range(count):
        clip = []
        for frame in range(2):
            boxes = torch.tensor([[40.0, 30.0, 120.0, 110.0], [150.0, 60.0, 260.0, 170.0]]) + 6 * frame
            masks = torch.zeros(2, 192, 320, dtype=torch.uint8)
            for i, (x1, y1, x2, y2) in enumerate(boxes.long().tolist()):
                masks[i, y1:y2, x1:x2] = 1
            clip.append(FrameTargets(boxes, torch.tensor([0, 1]), masks, torch.tensor([1, 2])))
        targets.append(clip)
    return ClipBatch(torch.randint(0, 256, (count, 2, 3, 192, 320), dtype=torch.uint8, generator=generator), targets,
                     torch.tensor([[0.0, 1 / 6]]).repeat(count, 1))  # frames 1/6 s apart, as YouTube-VIS


def test_the_training_losses_wait_for_the_device_a_fixed_number_of_times_whatever_the_batch():
    """The positives (nonzero), torchvision's GIoU loss (four boolean masks; FCOS pays them too), the instances
    the mask loss samples (one boolean mask) and the motion pairs (nonzero); nothing per frame or instance."""
    torch.manual_seed(0)
    model = SGNet(CONFIG).train()
    for count in (1, 3):
        with HostReads() as watched:
            losses = model.losses(clips(count))
        assert watched.found == ["nonzero"] + ["index"] * 4 + ["index", "nonzero"], count
        assert all(torch.isfinite(value) for value in losses.values()) and float(losses["motion"]) > 0
