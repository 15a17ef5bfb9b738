"""``sgnet-train-bench``: training throughput of SG-Net against torchvision's FCOS, in one process, on the same
images, boxes and batch.

One step is forward with losses, backward and an SGD step. Both networks start from random weights; SG-Net
trains on clips of two frames (the motion loss needs pairs), so a batch of B clips is 2B images, and FCOS gets
the same 2B images with the same boxes. Steps alternate between the two, so a slow spell of this shared machine
hits both alike; medians are reported, as images per second.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Callable

import torch
import torchvision

from sgnet_model.config import BACKBONES, ModelConfig
from sgnet_model.model import SGNet
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
    return ClipBatch(images, targets)


def measure(args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    torch.manual_seed(0)
    config = ModelConfig(backbone=args.backbone, input_width=args.width, input_height=args.height)
    batch = make_batch(args.batch, args.width, args.height, config.num_classes).to(device)
    sgnet = SGNet(config).to(device).train()
    fcos = torchvision.models.detection.fcos_resnet50_fpn(weights=None, weights_backbone=None,
                                                          num_classes=config.num_classes, min_size=args.height,
                                                          max_size=args.width).to(device).train()
    images = [image.float() / 255 for image in batch.images.flatten(0, 1)]
    fcos_targets = [{"boxes": t.boxes, "labels": t.labels} for clip in batch.targets for t in clip]
    optimisers = {name: torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
                  for name, model in (("sgnet", sgnet), ("fcos", fcos))}

    def step(name: str, losses: Callable[[], dict[str, torch.Tensor]]) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        total = sum(losses().values())
        optimisers[name].zero_grad()
        total.backward()
        optimisers[name].step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - started

    steps = {"sgnet": lambda: sgnet(batch), "fcos": lambda: fcos(images, fcos_targets)}
    samples: dict[str, list[float]] = {name: [] for name in steps}
    for repetition in range(args.warmup + args.steps):
        for name, losses in steps.items():
            seconds = step(name, losses)
            if repetition >= args.warmup:
                samples[name].append(seconds)
    count = len(images)
    result = {name: count / statistics.median(values) for name, values in samples.items()}
    return {"sgnet_images_per_s": result["sgnet"], "fcos_images_per_s": result["fcos"],
            "ratio": result["sgnet"] / result["fcos"], "device": str(device), "backbone": args.backbone,
            "size": f"{args.width}x{args.height}", "batch_images": count, "steps": args.steps,
            "threads": torch.get_num_threads()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sgnet-train-bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="resnet50", choices=BACKBONES)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--batch", type=int, default=2, help="clips of two frames (default 2: four images)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("sgnet-train-bench: CUDA is not available here; use --device cpu", file=sys.stderr)
        return 2
    result = measure(args)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"sgnet-train-bench  {result['backbone']}  {result['size']}  {result['device']}  "
              f"{result['batch_images']} images per step, median of {result['steps']} steps")
        print(f"  SG-Net {result['sgnet_images_per_s']:.2f} images/s   FCOS {result['fcos_images_per_s']:.2f} "
              f"images/s   ratio {result['ratio']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
