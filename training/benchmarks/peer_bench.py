"""``sgnet-peer-bench``: SG-Net against torchvision's Mask R-CNN, trained on the same data for the same CPU budget
and scored by the same metric on the same held-out videos; one table.

1. The data: the demo's synthetic set and split (sgnet-synth's defaults, ``sgnet_ros.tools.demo.HELD_OUT_VIDEOS``
   videos held out by sgnet-split's seed 0), written under OUTPUT/data, or an existing set
   (``--annotations`` train file, ``--frames`` folder, ``--val`` held-out file).
2. SG-Net: trained by sgnet-train's ``train`` with the demo's recipe (config/train/synthetic_small.yaml) under a
   ``--minutes`` wall-clock budget (``max_minutes``), into OUTPUT/sgnet. Its own schedule, untouched: a warm-up of
   ``warmup_iters`` iterations, then the exponential decay. Its log.jsonl says at which schedule progress its
   warm-up ended (:func:`warmup_share`).
3. Mask R-CNN (training/benchmarks/maskrcnn_peer.py): torchvision's, from random weights on the same ResNet, sized
   like SG-Net's model config for the set's objects (FPN width, proposals, sampled RoIs, anchors), on the same
   frames, augmentation, frames per step and optimiser recipe, its warm-up over the same share of its schedule's
   progress as SG-Net's. Trained twice: for the same wall-clock budget (the equal-time row) at each learning rate
   of ``--peer-lr``, keeping the one of the best held-out AP, and at that rate for exactly SG-Net's number of
   iterations, with no clock (the equal-iteration row).
4. Each runs frame by frame over the held-out videos through sgnet-eval's ``predict_videos`` and is scored by its
   ``score`` (the YouTube-VIS metric and the tracking figures). Each with its best tracker: SG-Net with its
   checkpoint's tracker profiles; Mask R-CNN's masks linked by a mask-IoU tracker (training/benchmarks/
   iou_tracker.py) gated by the same profiles' start and continue scores, matching across classes where the profile
   does, and keeping a lost track as long as the profile's ``max_lost_s`` at the held-out videos' frame rate
   (``iou_tracker.lost_frames``). AP, AP75 and AR100 come from the evaluation profile, IDF1 from both; ms/frame is
   the median over the evaluation pass's frames (the first left out, as sgnet-eval does), same threads, same frames.

The learning-rate sweep selects on the held-out videos it then reports (the peer's advantage; SG-Net's rate is
its recipe's, not swept). Everything runs in this one process, one after the other, on ``--threads`` threads.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from sgnet_model.checkpoint import CheckpointError, load_checkpoint
from sgnet_model.config import ConfigError, PredictorConfig, TrackerConfig, config_dir
from sgnet_model.data.ytvis import ANNOTATED_FPS, YTVISData, YTVISError, load_annotations
from sgnet_model.data.ytvis_metric import METRIC_NAMES
from sgnet_model.predictor import PredictorError, StreamingPredictor
from sgnet_model.runinfo import runtime_info, write_json
from sgnet_ros.tools.demo import HELD_OUT_VIDEOS
from training.benchmarks.iou_tracker import MaskIoUTracker, lost_frames
from training.benchmarks.maskrcnn_peer import (MaskRCNNPredictor, PeerError, anchor_sizes, build_maskrcnn,
                                               small_object_side, train_maskrcnn)
from training.config import TrainConfig, load_train_config
from training.datasets import DatasetError
from training.evaluate import EvaluationError, predict_videos, score
from training.split import SplitError, split_annotations
from training.synthetic import SyntheticError, generate_synthetic_set
from training.train import TrainingError, train

DEFAULT_RECIPE = "synthetic_small.yaml"  # the demo's
DEFAULT_PEER_LR = "0.02"  # torchvision's reference Mask R-CNN rate (its 16 images a step; ours take 8)
PROFILES = ("evaluation", "robot")
METHODS = (("sgnet", "SG-Net"), ("maskrcnn", "Mask R-CNN, equal time"),
           ("maskrcnn_equal_iterations", "Mask R-CNN, equal iters"))
SWEPT = ("AP", "AP75", "AR100", "idf1_evaluation", "idf1_robot", "training_iterations")  # kept of each swept rate


@dataclasses.dataclass(frozen=True)
class PeerSettings:
    """What the peer takes from SG-Net's run and from the set."""

    warmup_share: float  # of the schedule's progress, as SG-Net's warm-up took of its run
    small_object: float  # input pixels its anchors start from (maskrcnn_peer.small_object_side)
    max_lost_frames: dict[str, int]  # per tracker profile: its max_lost_s at the held-out videos' frame rate


def demo_set(folder: Path, progress: bool) -> tuple[Path, Path, Path]:
    """The demo's synthetic set and split under ``folder``: (train.json, val.json, JPEGImages)."""
    annotations = generate_synthetic_set(folder / "synth", overwrite=True, progress=progress)
    train_part, val_part = split_annotations(json.loads(annotations.read_bytes()), val_count=HELD_OUT_VIDEOS,
                                             seed=0, source=str(annotations))
    (folder / "split").mkdir(parents=True, exist_ok=True)
    paths = folder / "split" / "train.json", folder / "split" / "val.json"
    for path, part in zip(paths, (train_part, val_part)):
        path.write_text(json.dumps(part, separators=(",", ":")), encoding="utf-8")
    return paths[0], paths[1], annotations.parent / "JPEGImages"


def evaluate(predictors: dict[str, Any], val: YTVISData, frames: Path, progress: bool) -> dict[str, Any]:
    """Run each profile's predictor over every video of ``val``: the metric from the evaluation profile, the
    tracking figures of both, ms/frame of the evaluation pass."""
    videos = list(val.videos)
    figures: dict[str, Any] = {}
    for profile in PROFILES:
        results, inference_ms = predict_videos(predictors[profile], val, videos, frames, progress=progress)
        report = score(val, results, videos)
        if profile == "evaluation":
            figures.update({name: report[name] for name in METRIC_NAMES})
            timed = inference_ms[1:] or inference_ms  # the run's first frame pays one-time start-up costs
            figures["ms_median"], figures["ms_p90"] = float(np.median(timed)), float(np.percentile(timed, 90))
        for name in ("idf1", "id_switches", "mota"):
            figures[f"{name}_{profile}"] = report[name]
    return figures


def warmup_share(log: Sequence[dict[str, Any]], warmup_iters: int, iterations: int) -> float:
    """The schedule progress at which a sgnet-train run's warm-up of ``warmup_iters`` iterations ended, from its
    log.jsonl records (``iteration`` n holds the progress of the step that made it, the n-th, i.e. of iteration
    n - 1 counted from 0): linear between the logged iterations, from progress 0 at iteration 0 to 1 at
    ``iterations`` (the schedule's end). 1 when the run ended inside its warm-up."""
    if warmup_iters >= iterations:
        return 1.0
    points = {0: 0.0, **{record["iteration"] - 1: record["schedule_progress"] for record in log}, iterations: 1.0}
    steps = sorted(points)
    return float(np.interp(warmup_iters, steps, [points[step] for step in steps]))


def frame_rate(data: YTVISData) -> float:
    """Frames a second of the videos: the median interval between frames (``Video.frame_times``), or the annotation
    rate where no video has two frames."""
    intervals = np.concatenate([np.diff(video.frame_times) for video in data.videos.values()])
    return float(1 / np.median(intervals)) if intervals.size else ANNOTATED_FPS


def peer_settings(share: float, config: TrainConfig, train_set: YTVISData, val: YTVISData,
                  profiles: dict[str, TrackerConfig]) -> PeerSettings:
    """SG-Net's warm-up ``share``, the anchors' start from ``train_set``'s objects at the smallest augmentation
    scale, and each profile's persistence in frames of ``val``."""
    fps = frame_rate(val)
    return PeerSettings(share, small_object_side(train_set, config.model, config.data.scale_range[0]),
                        {name: lost_frames(profile.max_lost_s, fps) for name, profile in profiles.items()})


def run_sgnet(config: TrainConfig, output: Path, val: YTVISData, frames: Path, progress: bool
              ) -> tuple[dict[str, Any], dict[str, TrackerConfig]]:
    """Train SG-Net with sgnet-train's ``train`` and evaluate it; its figures (with the share of its schedule its
    warm-up took, ``warmup_share``) and its checkpoint's profiles."""
    log_path = output / "log.jsonl"
    earlier = len(log_path.read_text().splitlines()) if log_path.is_file() else 0  # an earlier run's, appended to
    started = time.monotonic()
    model_path = train(config, output, progress=progress)
    seconds = time.monotonic() - started
    iterations = int((load_checkpoint(output / "last.pt").training_state or {}).get("iteration", 0))
    log = [json.loads(line) for line in log_path.read_text().splitlines()[earlier:]] if log_path.is_file() else []
    # torch in fp32 on the CPU, as the peer runs: the two models compared, not two runtimes
    predictors = {profile: StreamingPredictor.from_checkpoint(model_path, PredictorConfig.reference(), None, profile)
                  for profile in PROFILES}
    figures = evaluate(predictors, val, frames, progress)
    figures.update(training_iterations=iterations, training_minutes=seconds / 60, lr=config.optim.base_lr,
                   training_frames=iterations * config.batch_size * config.data.clip_length,
                   warmup_share=warmup_share(log, config.optim.warmup_iters, iterations))
    return figures, load_checkpoint(model_path).tracker_profiles


def run_maskrcnn(config: TrainConfig, train_set: YTVISData, val: YTVISData, frames: Path,
                 profiles: dict[str, TrackerConfig], lr: float, settings: PeerSettings, progress: bool
                 ) -> dict[str, Any]:
    """Train the peer on ``config``'s schedule (its budget and ``max_iters``) and evaluate it, its masks linked by
    the mask-IoU tracker gated by SG-Net's ``profiles``."""
    started = time.monotonic()
    torch.manual_seed(config.seed)
    model = build_maskrcnn(config.model, len(train_set.class_names), settings.small_object)
    trained = train_maskrcnn(model, config, train_set, frames, lr, settings.warmup_share, progress)
    seconds = time.monotonic() - started
    predictors = {name: MaskRCNNPredictor(model, train_set.class_names,
                                          MaskIoUTracker(profile.new_track_score, profile.continue_score,
                                                         match_across_classes=profile.match_across_classes,
                                                         max_lost_frames=settings.max_lost_frames[name]),
                                          config.model.mask_nms_threshold)
                  for name, profile in profiles.items()}
    figures = evaluate(predictors, val, frames, progress)
    figures.update(training_iterations=trained.iterations, training_minutes=seconds / 60, lr=lr,
                   training_frames=trained.images)
    return figures


def run_peer(config: TrainConfig, train_set: YTVISData, val: YTVISData, frames: Path,
             profiles: dict[str, TrackerConfig], rates: Sequence[float], settings: PeerSettings, iterations: int,
             progress: bool) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """The peer at equal time at each of ``rates``, the best by held-out AP kept (the first of equals), then at its
    rate for ``iterations`` (SG-Net's) with no clock: (equal time, equal iterations, the sweep's figures)."""
    runs = [run_maskrcnn(config, train_set, val, frames, profiles, lr, settings, progress) for lr in rates]
    best = max(runs, key=lambda run: -math.inf if run["AP"] is None or math.isnan(run["AP"]) else run["AP"])
    by_iterations = dataclasses.replace(config, max_minutes=0.0, max_iters=max(1, iterations))
    equal_iterations = run_maskrcnn(by_iterations, train_set, val, frames, profiles, best["lr"], settings, progress)
    return best, equal_iterations, [{"lr": run["lr"], **{name: clean(run[name]) for name in SWEPT}} for run in runs]


def clean(value: Any) -> Any:
    """NaN -> None, for JSON."""
    return None if isinstance(value, float) and math.isnan(value) else value


def print_table(result: dict[str, Any]) -> None:
    print(f"sgnet-peer-bench: {result['train_videos']} training videos ({result['train_frames']} frames), "
          f"{result['held_out_videos']} held-out videos ({result['held_out_frames']} frames); "
          f"{result['budget_minutes']:g}-minute training budget each; {result['device_name']}, "
          f"{result['threads']} threads, torch {result['torch']}")
    print(f"{'method':<25}{'AP':>7}{'AP75':>7}{'AR100':>7}{'IDF1 eval':>11}{'IDF1 robot':>12}{'iterations':>12}"
          f"{'frames':>9}{'train min':>11}{'ms/frame':>10}{'lr':>8}")

    def number(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    for key, label in METHODS:
        row = result[key]
        print(f"{label:<25}{number(row['AP']):>7}{number(row['AP75']):>7}{number(row['AR100']):>7}"
              f"{number(row['idf1_evaluation']):>11}{number(row['idf1_robot']):>12}{row['training_iterations']:>12}"
              f"{row['training_frames']:>9}{row['training_minutes']:>11.1f}{row['ms_median']:>10.1f}{row['lr']:>8g}")
    print("AP, AP75, AR100 and IDF1 eval: the evaluation tracker profile; IDF1 robot: the robot profile; "
          "ms/frame: median, one frame at a time")
    print(f"equal time: Mask R-CNN for the same {result['budget_minutes']:g} minutes; equal iters: for SG-Net's "
          f"{result['sgnet']['training_iterations']} iterations, no clock. Warm-up: the first "
          f"{100 * result['warmup_share']:.1f} % of each schedule (SG-Net's {result['warmup_iters']} iterations)")
    sweep = result["peer_lr_sweep"]
    if len(sweep) > 1:
        tried = ", ".join(f"{run['lr']:g}: AP {number(run['AP'])}" for run in sweep)
        print(f"Mask R-CNN's learning rate {result['maskrcnn']['lr']:g}, the best held-out AP at equal time of "
              f"{tried} (chosen on the held-out videos above; SG-Net's rate is not swept)")


def rates(text: str) -> tuple[float, ...]:
    """``--peer-lr``: comma-separated positive learning rates."""
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"learning rates separated by commas, got {text!r}") from None
    if not all(value > 0 and math.isfinite(value) for value in values):
        raise argparse.ArgumentTypeError(f"learning rates must be positive, got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sgnet-peer-bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=Path("output/peer_bench"),
                        help="folder for the generated set (data/), SG-Net's run (sgnet/) (default %(default)s)")
    parser.add_argument("--annotations", type=Path, help="an existing set's training annotation file (with "
                                                         "--frames and --val) instead of the demo's synthetic set")
    parser.add_argument("--frames", type=Path, help="the folder the annotation files' file_names are relative to")
    parser.add_argument("--val", type=Path, help="the held-out videos' annotation file (with ground truth)")
    parser.add_argument("--config", default=str(config_dir() / "train" / DEFAULT_RECIPE),
                        help="SG-Net's training recipe; its data, batch and optimiser settings apply to Mask R-CNN "
                             "too (default: the demo's)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a field of the recipe, for both methods (repeatable)")
    parser.add_argument("--minutes", type=float, help="wall-clock training budget of each method (default: the "
                                                      "recipe's max_minutes, 10 for the demo's)")
    parser.add_argument("--max-iters", type=int, help="the recipe's max_iters for both: each schedule ends at this "
                                                      "many iterations or at the budget, whichever comes first")
    parser.add_argument("--peer-lr", type=rates, default=rates(DEFAULT_PEER_LR), metavar="LR[,LR...]",
                        help="Mask R-CNN's base learning rate; several, comma-separated, train it at each for the "
                             "equal-time row and keep the best held-out AP (default %s)" % DEFAULT_PEER_LR)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="torch threads for both trainings and both evaluations (default %(default)s)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures to PATH as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    given = [args.annotations, args.frames, args.val]
    if any(given) and not all(given):
        parser.error("--annotations, --frames and --val go together (an existing set), or none of them (the "
                     "demo's synthetic set)")
    if args.minutes is not None and not args.minutes > 0:
        parser.error(f"--minutes must be positive, got {args.minutes}")
    if args.threads < 1 or (args.max_iters is not None and args.max_iters < 1):
        parser.error("--threads and --max-iters must be at least 1")
    torch.set_num_threads(args.threads)
    progress = not args.no_progress
    try:
        if args.annotations is None:
            print("sgnet-peer-bench: generating the demo's synthetic set ...", file=sys.stderr, flush=True)
            args.annotations, args.val, args.frames = demo_set(args.output / "data", progress)
        overrides = [f"data.annotations={args.annotations}", f"data.frames={args.frames}", *args.set]
        overrides += [f"max_minutes={args.minutes}"] if args.minutes is not None else []
        overrides += [f"max_iters={args.max_iters}"] if args.max_iters is not None else []
        config = load_train_config(args.config, overrides)
        if not config.max_minutes > 0:
            raise ConfigError(f"{args.config} sets no wall-clock budget (max_minutes); give --minutes")
        train_set, val = load_annotations(args.annotations), load_annotations(args.val)
        if val.class_names != train_set.class_names or not val.has_annotations:
            raise EvaluationError(f"{args.val} must hold ground truth for the categories of {args.annotations} "
                                  f"({list(train_set.class_names)}), in the same order of ids")
        sgnet, profiles = run_sgnet(config, args.output / "sgnet", val, args.frames, progress)
        settings = peer_settings(sgnet["warmup_share"], config, train_set, val, profiles)
        maskrcnn, equal_iterations, sweep = run_peer(config, train_set, val, args.frames, profiles, args.peer_lr,
                                                     settings, sgnet["training_iterations"], progress)
    except KeyboardInterrupt:
        print("sgnet-peer-bench: interrupted; no figures written", file=sys.stderr)
        return 130
    except (ConfigError, TrainingError, DatasetError, YTVISError, CheckpointError, PredictorError, EvaluationError,
            PeerError, SyntheticError, SplitError, OSError) as error:
        print(f"sgnet-peer-bench: error: {error}", file=sys.stderr)
        return 2
    result = {**{key: {k: clean(v) for k, v in row.items()}
                   for key, row in (("sgnet", sgnet), ("maskrcnn", maskrcnn),
                                    ("maskrcnn_equal_iterations", equal_iterations))},
              "peer_lr_sweep": sweep, "warmup_iters": config.optim.warmup_iters,
              "warmup_share": settings.warmup_share, "frame_rate": frame_rate(val),
              "peer": {"small_object_px": settings.small_object,
                       "anchor_sizes": [size for (size,) in anchor_sizes(settings.small_object)],
                       "max_lost_frames": settings.max_lost_frames},
              "budget_minutes": config.max_minutes, "frames_per_step": config.batch_size * config.data.clip_length,
              "train_videos": len(train_set.videos), "train_frames": sum(v.length for v in train_set.videos.values()),
              "held_out_videos": len(val.videos), "held_out_frames": sum(v.length for v in val.videos.values()),
              "held_out_video_ids": list(val.videos), "recipe": str(args.config),
              "tracker_profiles": {name: {"new_track_score": p.new_track_score, "continue_score": p.continue_score,
                                          "match_across_classes": p.match_across_classes,
                                          "max_lost_s": p.max_lost_s}
                                   for name, p in profiles.items()},
              **runtime_info("cpu", torch.float32, False)}
    if args.json:
        write_json(args.json, result)
    print_table(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
