"""``sgnet-train-bench``: training throughput of SG-Net against torchvision's FCOS, in one process, on the same
images, boxes and batch.

One step is forward with losses, backward and an SGD step (with --amp: fp16 autocast and a gradient scaler, as
sgnet-train on CUDA). Both networks start from random weights; FCOS is torchvision's, on the same ResNet-FPN
(for ResNet-50 exactly fcos_resnet50_fpn). SG-Net trains on clips of two frames (the motion loss needs pairs),
so a batch of B clips is 2B images, and FCOS gets the same 2B images with the same boxes. Steps alternate
between the two, so a slow spell of a shared machine hits both alike; medians are reported, as images per
second.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Callable

import torch
from torchvision.models.detection import FCOS
from torchvision.models.detection.fcos import FCOSHead

from sgnet_model.config import BACKBONES, ModelConfig
from sgnet_model.network.backbone import build_backbone
from sgnet_model.network.model import SGNet
from sgnet_model.runinfo import emit_json, runtime_info
from sgnet_model.structures import ClipBatch, FrameTargets

OBJECTS_PER_IMAGE = 4


def make_batch(clips: int, width: int, height: int, classes: int) -> ClipBatch:
    """Random images with OBJECTS_PER_IMAGE boxes each (and their box-shaped masks), moving between frames."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (clips, 2, 3, height, width), dtype=torch.uint8, generator=generator)
    targets = []
    for _ in range(clips):
        size = torch.rand(OBJECTS_PER_IMAGE, 2, generator=generator) * torch.tensor([width, height]) * 0.3 + 24
        corner = torch.rand(OBJECTS_PER_IMAGE, 2, generator=generator) * (torch.tensor([width, height]) - size - 8)
        clip = []
        for frame in range(2):
            low = corner + 4 * frame
            boxes = torch.cat((low, low + size), dim=1)
            masks = torch.zeros(OBJECTS_PER_IMAGE, height, width, dtype=torch.uint8)
            for i, (x1, y1, x2, y2) in enumerate(boxes.round().long().tolist()):
                masks[i, y1:y2, x1:x2] = 1
            clip.append(FrameTargets(boxes, torch.randint(0, classes, (OBJECTS_PER_IMAGE,), generator=generator),
                                     masks, torch.arange(1, OBJECTS_PER_IMAGE + 1)))
        targets.append(clip)
    return ClipBatch(images, targets, torch.tensor([[0.0, 1 / 6]] * clips))  # frames 1/6 s apart


def build_fcos(config: ModelConfig, width: int, height: int) -> FCOS:
    """torchvision's FCOS on SG-Net's backbone (the same ResNet-FPN with P6/P7): for the default ResNet-50 this
    is exactly ``fcos_resnet50_fpn(weights=None)``'s network, and other backbones get a like-for-like FCOS.
    min_size/max_size keep its transform from rescaling the frames."""
    head = FCOSHead(config.fpn_channels, num_anchors=1, num_classes=config.num_classes, num_convs=config.head_convs)
    return FCOS(build_backbone(config), num_classes=config.num_classes, min_size=height, max_size=width, head=head)


def measure(args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    torch.manual_seed(0)
    config = ModelConfig(backbone=args.backbone, input_width=args.width, input_height=args.height)
    batch = make_batch(args.batch, args.width, args.height, config.num_classes).to(device)
    sgnet = SGNet(config).to(device).train()
    fcos = build_fcos(config, args.width, args.height).to(device).train()
    images = [image.float() / 255 for image in batch.images.flatten(0, 1)]
    fcos_targets = [{"boxes": t.boxes, "labels": t.labels} for clip in batch.targets for t in clip]
    amp = args.amp and device.type == "cuda"
    networks = {"sgnet": (sgnet, lambda: sgnet(batch)), "fcos": (fcos, lambda: fcos(images, fcos_targets))}
    optimisers = {name: torch.optim.SGD(network.parameters(), lr=1e-4, momentum=0.9)
                  for name, (network, _) in networks.items()}
    scalers = {name: torch.amp.GradScaler("cuda", enabled=amp) for name in networks}

    def step(name: str) -> float:
        """One training step as sgnet-train takes it (autocast and a gradient scaler with --amp)."""
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=amp):
            total = sum(networks[name][1]().values())
        optimisers[name].zero_grad()
        scalers[name].scale(total).backward()
        scalers[name].step(optimisers[name])
        scalers[name].update()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - started

    samples: dict[str, list[float]] = {name: [] for name in networks}
    for repetition in range(args.warmup + args.steps):
        for name in networks:
            seconds = step(name)
            if repetition >= args.warmup:
                samples[name].append(seconds)
    count = len(images)
    result = {name: count / statistics.median(values) for name, values in samples.items()}
    return {"sgnet_images_per_s": result["sgnet"], "fcos_images_per_s": result["fcos"],
            "ratio": result["sgnet"] / result["fcos"], "backbone": args.backbone,
            "size": f"{args.width}x{args.height}", "batch": args.batch, "batch_images": count, "amp": amp,
            "steps": args.steps, **runtime_info(device, torch.float16 if amp else torch.float32, False)}


def _at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sgnet-train-bench", description=__doc__,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--backbone", default=ModelConfig.backbone, choices=BACKBONES)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--width", type=_at_least(32), default=ModelConfig.input_width, help="frame width")
    parser.add_argument("--height", type=_at_least(32), default=ModelConfig.input_height, help="frame height")
    parser.add_argument("--batch", type=_at_least(1), default=2, help="clips of two frames per step")
    parser.add_argument("--steps", type=_at_least(1), default=5, help="timed steps per network (median)")
    parser.add_argument("--warmup", type=_at_least(0), default=2, help="untimed steps per network first")
    parser.add_argument("--amp", action="store_true", help="fp16 autocast and a gradient scaler, as sgnet-train "
                                                           "on CUDA (ignored on the CPU)")
    parser.add_argument("--json", nargs="?", const="-", metavar="PATH",
                        help="write the figures as JSON to PATH (and print the table), or alone: print one JSON "
                             "object instead of the table")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        device = torch.device(args.device)
    except RuntimeError:
        print(f"sgnet-train-bench: --device {args.device!r} is not a device; use cpu, cuda or cuda:N", file=sys.stderr)
        return 2
    if device.type == "cuda" and not torch.cuda.is_available():
        print("sgnet-train-bench: CUDA is not available here; use --device cpu", file=sys.stderr)
        return 2
    result = measure(args)
    if emit_json(args.json, result):
        return 0
    seconds = {name: result["batch_images"] / result[f"{name}_images_per_s"] for name in ("sgnet", "fcos")}
    print(f"sgnet-train-bench: {result['backbone']}, {result['size']}, {result['device']} ({result['device_name']}), "
          f"{result['dtype']}, torch {result['torch']}, {result['threads']} threads, {result['batch']} clips x 2 frames "
          f"= {result['batch_images']} images per step, median of {result['steps']} steps")
    print(f"{'network':<10}{'images/s':>10}{'ms/step':>10}")
    for name, label in (("sgnet", "SG-Net"), ("fcos", "FCOS")):
        print(f"{label:<10}{result[f'{name}_images_per_s']:>10.2f}{seconds[name] * 1000:>10.0f}")
    print(f"ratio SG-Net / FCOS: {result['ratio']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
