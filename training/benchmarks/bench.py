"""``sgnet-bench``: SG-Net's per-frame cost against torchvision's FCOS and Mask R-CNN, in one process, on
the same frame, with 1, 10, 50 and 100 detections forced.

All three start from random weights (nothing is downloaded). Forcing N detections means a score threshold
of 0, no NMS suppression and at most N per frame, so each method does the work of N instances. SG-Net's time
is the streaming predictor's whole step: preprocessing, network, post-processing, masks at the frame's
resolution, movement and tracking; torchvision's is its model call, which also resizes, post-processes and
(Mask R-CNN) pastes masks at the frame's resolution. Random weights regress boxes of almost no size, which
would make SG-Net's mask work vanish; its box-regression bias is set so that forced boxes are 4 strides wide
(32 px on P3 up to 512 px on P7), the mask cost of real-sized instances. Methods run round-robin in each
repetition, so a slow spell of this shared machine hits them alike; medians are reported.

Two clocks: wall-clock (what a user waits) and the process's CPU time (the work done). On a machine shared with
other jobs the wall clock of a multi-threaded run also counts the waits for a descheduled worker thread at every
parallel region, which penalises many small operations over few big ones; with ``--threads 1`` the CPU time is
close to the time on an idle machine and the ratios are stable from run to run.

``--backends torch onnxruntime openvino --precisions fp32 bf16`` compares SG-Net's backends instead (every backend
at every precision, side by side, same weights, same frame; each pair's setup includes exporting the frame graph or
finding it in the cache); a pair that cannot run here is listed with the reason. Precision int8 quantizes the
frame graph as sgnet-export --int8 does, calibrated on generated frames (for its speed only), and runs it in
OpenVINO; its graph fixes the number of detections, so it runs with one ``--counts`` only.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torchvision
from tqdm import tqdm

from sgnet_model.config import (BACKBONES, BACKENDS, PRECISIONS, ConfigError, PredictorConfig, SGNetConfig,
                                TrackerConfig, named_config)
from sgnet_model.network.backbone import fold_batch_norms
from sgnet_model.network.model import SGNet
from sgnet_model.predictor import PredictorError, StreamingPredictor
from sgnet_model.runtime.export import ExportError, export_frame_graph, read_graph_info, write_atomically
from sgnet_model.runinfo import emit_json, runtime_info
from sgnet_model.stages import STAGES, recording
from training.quantize import Int8Result, calibration_feeds, mark_int8, quantize_graph
from training.synthetic import SHAPES, random_video

COUNTS = (1, 10, 50, 100)
FORCED_BOX_STRIDES = 2.0  # box-regression bias: l = t = r = b = 2 strides
INT8_TIMING_FRAMES = 30  # generated frames that calibrate the int8 row's graph (its speed, not its accuracy)


def build_sgnet(backbone: str, size: tuple[int, int], device: str, fp16: bool, cuda_graphs: bool = True,
                backend: str = "torch", precision: str = "fp32", detections: int | None = None) -> StreamingPredictor:
    """SG-Net with random weights whose forced boxes are real-sized; ``detections``: start forced to that many
    (a backend that exports then exports for those thresholds first)."""
    base = named_config(backbone if backbone != "resnet18" else "resnet18_small")
    model = dataclasses.replace(base.model, backbone=backbone, input_width=size[0], input_height=size[1])
    if detections is not None:
        model = dataclasses.replace(model, score_threshold=0.0, nms_threshold=1.0, detections_per_frame=detections)
    tracker = TrackerConfig(new_track_score=0.0, continue_score=0.0)  # every forced detection is tracked
    network = SGNet(model)
    with torch.no_grad():
        network.head.regression_head.bbox_reg.bias.fill_(FORCED_BOX_STRIDES)
    profiles = SGNetConfig(model, tracker).tracker_profiles()
    predictor_config = PredictorConfig(device, fp16, cuda_graphs=cuda_graphs, backend=backend, precision=precision)
    if precision == "int8":
        return build_int8(network, predictor_config, tracker, profiles, size)
    return StreamingPredictor(network, tracker, predictor_config, profiles, "robot")


def build_int8(network: SGNet, predictor_config: PredictorConfig, tracker: TrackerConfig,
               profiles: dict[str, TrackerConfig], size: tuple[int, int]) -> StreamingPredictor:
    """The network's frame graph quantized to int8 as sgnet-export --int8 does, calibrated on generated frames
    (random weights: for timing only, no AP to check), run alone as a .onnx checkpoint would be."""
    if predictor_config.backend not in ("openvino", "auto"):
        raise PredictorError(f"precision int8 runs on backend openvino, not {predictor_config.backend}")
    width, height = size
    fold_batch_norms(network.eval().backbone)
    frames = random_video(np.random.default_rng(0), INT8_TIMING_FRAMES, height, width, 3, SHAPES[:4],
                          (min(width, height) / 6, min(width, height) / 2.5)).frames
    with tempfile.TemporaryDirectory(prefix="sgnet-bench-int8-") as folder:
        fp32_path, int8_path = Path(folder) / "fp32.onnx", Path(folder) / "int8.onnx"
        with torch.no_grad():
            info = export_frame_graph(network, network.config, profiles, (height, width), fp32_path, frames[:2],
                                      host_masks=True)
        quantized = quantize_graph(fp32_path, list(calibration_feeds(fp32_path, info, [frames])))
        mark_int8(quantized, Int8Result(math.nan, math.nan, f"{len(frames)} generated frames, for timing"))
        write_atomically(int8_path, quantized.SerializeToString())
        return StreamingPredictor(None, tracker, predictor_config, profiles, "robot",
                                  graph=(int8_path, read_graph_info(int8_path)))


def build_torchvision(name: str, num_classes: int, size: tuple[int, int], device: str) -> torch.nn.Module:
    builder = getattr(torchvision.models.detection, name)
    model = builder(weights=None, weights_backbone=None, num_classes=num_classes, min_size=size[1],
                    max_size=size[0])
    return model.eval().to(device)


def force_detections(predictor: StreamingPredictor, fcos: torch.nn.Module, maskrcnn: torch.nn.Module,
                     count: int) -> None:
    predictor.update_thresholds(score_threshold=0.0, nms_threshold=1.0, detections_per_frame=count)
    fcos.score_thresh, fcos.nms_thresh, fcos.detections_per_img = 0.0, 1.0, count
    maskrcnn.roi_heads.score_thresh, maskrcnn.roi_heads.nms_thresh = 0.0, 1.0
    maskrcnn.roi_heads.detections_per_img = count


def timed(run: Callable[[], int], device: str) -> tuple[float, float, int]:
    """Wall-clock and process CPU milliseconds of one call (synchronised on CUDA), and the number of detections
    it produced."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    started, cpu_started = time.perf_counter(), time.process_time()
    produced = run()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return (time.perf_counter() - started) * 1000.0, (time.process_time() - cpu_started) * 1000.0, produced


def measure(args: argparse.Namespace) -> dict:
    size = (args.width, args.height)
    torch.manual_seed(0)
    predictor = build_sgnet(args.backbone, size, args.device, args.fp16, not args.no_cuda_graphs)
    num_classes = len(predictor.class_names)
    fcos = build_torchvision("fcos_resnet50_fpn", num_classes, size, args.device)
    maskrcnn = build_torchvision("maskrcnn_resnet50_fpn", num_classes + 1, size, args.device)  # + background
    frame = np.random.default_rng(0).integers(0, 256, (args.height, args.width, 3), dtype=np.uint8)
    tensor = torch.from_numpy(frame).permute(2, 0, 1).to(args.device).float() / 255
    autocast = torch.autocast("cuda", dtype=torch.float16, enabled=args.fp16)
    clock = [0.0]

    def sgnet() -> int:
        clock[0] += 1.0 / 30  # a 30 Hz stream: tracks persist across repetitions
        return len(predictor.step(frame, clock[0]).instances)

    def torchvision_model(model: torch.nn.Module) -> Callable[[], int]:
        def run() -> int:
            with torch.inference_mode(), autocast:
                return len(model([tensor])[0]["boxes"])
        return run

    methods = {"sgnet": sgnet, "fcos": torchvision_model(fcos), "maskrcnn": torchvision_model(maskrcnn)}
    scaling: dict[str, dict[int, float]] = {name: {} for name in methods}
    cpu_scaling: dict[str, dict[int, float]] = {name: {} for name in methods}
    produced: dict[str, dict[int, int]] = {name: {} for name in methods}
    progress = tqdm(total=len(args.counts) * (args.warmup + args.runs), desc="sgnet-bench", unit="round",
                    file=sys.stderr, disable=args.quiet)
    for count in args.counts:
        force_detections(predictor, fcos, maskrcnn, count)
        samples: dict[str, list[float]] = {name: [] for name in methods}
        cpu_samples: dict[str, list[float]] = {name: [] for name in methods}
        for repetition in range(args.warmup + args.runs):
            for name, run in methods.items():
                ms, cpu_ms, found = timed(run, args.device)
                if repetition >= args.warmup:
                    samples[name].append(ms)
                    cpu_samples[name].append(cpu_ms)
                produced[name][count] = found
            progress.update()
        for name in methods:
            scaling[name][count] = statistics.median(samples[name])
            cpu_scaling[name][count] = statistics.median(cpu_samples[name])
    progress.close()
    reference = 50 if 50 in args.counts else args.counts[-1]
    return {
        "sgnet_ms": scaling["sgnet"][reference],
        "fcos_ms": scaling["fcos"][reference],
        "maskrcnn_ms": scaling["maskrcnn"][reference],
        "ratio_vs_fcos": scaling["sgnet"][reference] / scaling["fcos"][reference],
        "ratio_vs_maskrcnn": scaling["sgnet"][reference] / scaling["maskrcnn"][reference],
        "sgnet_ratio_vs_own_1": scaling["sgnet"][reference] / scaling["sgnet"][min(args.counts)],
        "cpu_ratio_vs_fcos": cpu_scaling["sgnet"][reference] / cpu_scaling["fcos"][reference],
        "cpu_ratio_vs_maskrcnn": cpu_scaling["sgnet"][reference] / cpu_scaling["maskrcnn"][reference],
        "cpu_sgnet_ratio_vs_own_1": cpu_scaling["sgnet"][reference] / cpu_scaling["sgnet"][min(args.counts)],
        "detections": reference,
        "scaling": scaling,
        "cpu_scaling": cpu_scaling,
        "detections_produced": produced,
        "fp16": args.fp16,
        "backbone": args.backbone,
        "size": f"{args.width}x{args.height}",
        "runs": args.runs,
        **runtime_info(args.device, predictor.dtype, not args.no_cuda_graphs),
    }


def measure_backends(args: argparse.Namespace) -> dict:
    """SG-Net's whole predictor step for every backend and precision asked for, round-robin on the same frame;
    a pair that cannot run here is reported with the reason."""
    size = (args.width, args.height)
    frame = np.random.default_rng(0).integers(0, 256, (args.height, args.width, 3), dtype=np.uint8)
    predictors: dict[str, StreamingPredictor] = {}
    unavailable: dict[str, str] = {}
    setup_s: dict[str, float] = {}
    for backend in args.backends:
        for precision in args.precisions:
            name = f"{backend} {precision}"
            torch.manual_seed(0)  # the same weights for every pair (and one export shared by those that export)
            started = time.perf_counter()
            if precision == "int8" and len(args.counts) > 1:
                unavailable[name] = "an int8 graph fixes its number of detections: time it alone with one --counts"
                continue
            try:
                predictors[name] = build_sgnet(args.backbone, size, args.device, False, not args.no_cuda_graphs,
                                               backend, precision, args.counts[0])
            except (PredictorError, ExportError) as error:
                unavailable[name] = str(error)
                continue
            setup_s[name] = time.perf_counter() - started
    if not predictors:
        raise PredictorError("no backend and precision asked for can run here: "
                             + "; ".join(f"{name}: {reason}" for name, reason in unavailable.items()))
    clock = [0.0]
    scaling: dict[str, dict[int, float]] = {name: {} for name in predictors}
    cpu_scaling: dict[str, dict[int, float]] = {name: {} for name in predictors}
    produced: dict[str, dict[int, int]] = {name: {} for name in predictors}
    progress = tqdm(total=len(args.counts) * (args.warmup + args.runs), desc="sgnet-bench", unit="round",
                    file=sys.stderr, disable=args.quiet)
    reference = 50 if 50 in args.counts else args.counts[-1]
    stage_samples: dict[str, dict[str, list[float]]] = {name: {s: [] for s in STAGES} for name in predictors}
    for count in args.counts:
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in predictors}
        for predictor in predictors.values():
            predictor.update_thresholds(score_threshold=0.0, nms_threshold=1.0, detections_per_frame=count)
        for repetition in range(args.warmup + args.runs):  # the first warm-up of a count exports where needed
            clock[0] += 1.0 / 30
            for name, predictor in predictors.items():
                with recording() as seconds:
                    ms, cpu_ms, found = timed(lambda p=predictor: len(p.step(frame, clock[0]).instances), args.device)
                if repetition >= args.warmup:
                    samples[name].append((ms, cpu_ms))
                    if count == reference:
                        for name_of_stage in STAGES:
                            stage_samples[name][name_of_stage].append(seconds.get(name_of_stage, 0.0) * 1000.0)
                produced[name][count] = found
            progress.update()
        for name in predictors:
            scaling[name][count] = statistics.median(ms for ms, _ in samples[name])
            cpu_scaling[name][count] = statistics.median(cpu for _, cpu in samples[name])
    progress.close()
    baseline = "torch fp32" if "torch fp32" in predictors else next(iter(predictors), None)
    return {
        "mode": "backends",
        "backbone": args.backbone,
        "size": f"{args.width}x{args.height}",
        "runs": args.runs,
        "detections": reference,
        "baseline": baseline,
        "runtimes": {name: p.backend_description for name, p in predictors.items()},
        "scaling": scaling,
        "cpu_scaling": cpu_scaling,
        "ratio_vs_baseline": {name: scaling[name][reference] / scaling[baseline][reference] for name in predictors},
        "cpu_ratio_vs_baseline": {name: cpu_scaling[name][reference] / cpu_scaling[baseline][reference]
                                  for name in predictors},
        "setup_s": setup_s,
        # per stage at the reference count, median wall ms (sgnet_model/stages.py); "runtime" without the masks
        "stage_ms": {name: stage_medians(stages) for name, stages in stage_samples.items()},
        "detections_produced": produced,
        "unavailable": unavailable,
        **runtime_info(args.device, torch.float32, not args.no_cuda_graphs),
    }


def stage_medians(samples: dict[str, list[float]]) -> dict[str, float]:
    """Median ms per stage, the runtime's without the masks (every runner pastes them inside its call: eagerly, on
    the host after a graph, or inside the graph, where the masks stage reads 0)."""
    medians = {name: statistics.median(values) for name, values in samples.items()}
    medians["runtime"] = statistics.median(runtime - masks for runtime, masks in zip(samples["runtime"],
                                                                                     samples["masks"]))
    return medians


def print_backend_table(result: dict) -> None:
    counts = sorted(next(iter(result["scaling"].values()), {}))
    print(f"sgnet-bench backends  {result['backbone']}  {result['size']}  {result['device']} ({result['device_name']})"
          f"  torch {result['torch']}  {result['threads']} threads  median of {result['runs']} runs, whole predictor "
          f"step, ms per frame")
    for clock, prefix in (("wall-clock", ""), ("process CPU", "cpu_")):
        print(f"{clock + ' ms':>22}" + "".join(f"{c:>10}" for c in counts)
              + f"{'x ' + result['baseline'] + ' at ' + str(result['detections']):>26}")
        for name, row in result[prefix + "scaling"].items():
            print(f"{name:>22}" + "".join(f"{row[c]:>10.1f}" for c in counts)
                  + f"{result[prefix + 'ratio_vs_baseline'][name]:>26.2f}")
    print(f"{'stages ms at ' + str(result['detections']):>22}" + "".join(f"{stage:>10}" for stage in STAGES))
    for name, stages in result["stage_ms"].items():
        print(f"{name:>22}" + "".join(f"{stages[stage]:>10.1f}" for stage in STAGES))
    for name, runtime in result["runtimes"].items():
        print(f"{name:>22}: {runtime}, set up (export or cache) in {result['setup_s'][name]:.1f} s")
    for name, reason in result["unavailable"].items():
        print(f"{name:>22}: not run here: {reason}")


def print_table(result: dict) -> None:
    counts = sorted(result["scaling"]["sgnet"])
    print(f"sgnet-bench  {result['backbone']}  {result['size']}  {result['device']} ({result['device_name']})  "
          f"{result['dtype']}{'  CUDA graph' if result['cuda_graphs'] else ''}  torch {result['torch']}  "
          f"{result['threads']} threads  median of {result['runs']} runs, ms per frame")
    for clock, prefix in (("wall-clock", ""), ("process CPU", "cpu_")):
        print(f"{clock + ' ms':>16}" + "".join(f"{c:>10}" for c in counts))
        for name, label in (("sgnet", "SG-Net"), ("fcos", "FCOS"), ("maskrcnn", "Mask R-CNN")):
            print(f"{label:>16}" + "".join(f"{result[prefix + 'scaling'][name][c]:>10.1f}" for c in counts))
        print(f"at {result['detections']} detections: SG-Net / FCOS = {result[prefix + 'ratio_vs_fcos']:.2f}, "
              f"SG-Net / Mask R-CNN = {result[prefix + 'ratio_vs_maskrcnn']:.2f}, "
              f"SG-Net / its own time at {counts[0]} = {result[prefix + 'sgnet_ratio_vs_own_1']:.2f}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sgnet-bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="resnet50", choices=BACKBONES)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    parser.add_argument("--fp16", action="store_true", help="half precision (CUDA only)")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--counts", type=int, nargs="+", default=list(COUNTS), help="detections to force")
    parser.add_argument("--runs", type=int, default=7, help="timed repetitions per count (median reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed repetitions per count")
    parser.add_argument("--threads", type=int, help="torch's CPU threads (default: torch's choice, one per core)")
    parser.add_argument("--no-cuda-graphs", action="store_true",
                        help="on CUDA, run SG-Net eagerly instead of replaying it from a CUDA graph")
    parser.add_argument("--json", nargs="?", const="-", metavar="PATH",
                        help="write the figures as JSON to PATH (and print the table), or alone: print one JSON "
                             "object instead of the table")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--backends", nargs="+", choices=BACKENDS,
                        help="compare SG-Net's backends instead of SG-Net with torchvision's models: every backend "
                             "with every --precisions, side by side (docs/export.md)")
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=["fp32"],
                        help="with --backends: the precisions to run each backend at (default fp32)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.width < 32 or args.height < 32 or args.runs < 1 or args.warmup < 0 or min(args.counts) < 1:
        parser.error("width and height must be at least 32, runs and counts at least 1, warmup at least 0")
    if args.threads is not None:
        if args.threads < 1:
            parser.error("--threads must be at least 1")
        torch.set_num_threads(args.threads)
    try:
        result = measure_backends(args) if args.backends else measure(args)
    except (ConfigError, PredictorError) as error:
        print(f"sgnet-bench: {error}", file=sys.stderr)
        return 2
    if emit_json(args.json, result):
        return 0
    (print_backend_table if args.backends else print_table)(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
