"""``sgnet-eval``: run a trained SG-Net over YouTube-VIS videos and score it by the YouTube-VIS protocol.

Two modes:

- ``--checkpoint CKPT --annotations ann.json --frames DIR``: the streaming predictor runs frame by frame over
  every chosen video (tracks reset per video), its tracks become video-level results (see
  :func:`sgnet_model.data.ytvis.build_video_results`), ``results.json`` and ``results.zip`` (what the challenge
  server takes) are written to ``--output``, and when the annotation file has annotations the metric
  (AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, and AP per class), the tracking figures (IDF1, ID switches,
  MOTA, and the mask IoU of matched instances: mean and 10th percentile over object-frames) and the
  model's milliseconds per frame (median, p90; the run's first frame, a warm-up, left out) are reported.
  Frame i of a video is stamped with its real time, read from the file names (frame numbers of 30 fps footage,
  :func:`sgnet_model.data.ytvis.frame_times`), unless ``--fps`` sets a rate.
  The tracker runs the checkpoint's evaluation profile by default (low start/continue scores: video AP ranks
  whole tracks by score, so weak tracks add recall at little cost); ``--tracker-profile robot`` takes the
  node's profile, ``--config`` a model config's profile instead. The report names the profile and its values.
- ``--results results.json --annotations ann.json``: the metric alone on a results file.

Exit status 2 with one line on stderr for unusable input (a missing frame, a malformed file, a checkpoint that
does not load).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from tqdm import tqdm

from sgnet_model.config import (BACKENDS, PRECISIONS, TRACKER_PROFILES, ConfigError, PredictorConfig, TrackerConfig,
                                named_config, to_dict)
from sgnet_model.data.ytvis import (VideoResult, YTVISData, YTVISError, build_video_results, load_annotations,
                                    load_results, save_results)
from sgnet_model.data.ytvis_metric import (HOTA_NAMES, METRIC_NAMES, TRACKING_NAMES, evaluate_vis, metric_lines,
                                          tracking_figures)
from training.datasets import DatasetError, read_frame


class EvaluationError(RuntimeError):
    """Evaluation cannot go on; the message names the file, video or frame at fault."""


def choose_videos(annotations: YTVISData, videos: str | None, split: Path | None) -> list[int]:
    """Video ids to evaluate: ``videos`` ("3,17,42"), the ids listed in ``split`` (a JSON list of ids, a
    YouTube-VIS annotation file whose videos are taken, or one id per line), or all of ``annotations``."""
    if videos is not None:
        try:
            ids = [int(v) for v in videos.split(",") if v.strip()]
        except ValueError:
            raise EvaluationError(f"--videos takes comma-separated video ids, got {videos!r}") from None
    elif split is not None:
        ids = _read_split(split)
    else:
        return list(annotations.videos)
    unknown = [v for v in ids if v not in annotations.videos]
    if unknown:
        raise EvaluationError(f"video ids {unknown[:5]} are not in {annotations.source}")
    if not ids:
        raise EvaluationError("no video chosen: the list of video ids is empty")
    return ids


def _read_split(path: Path) -> list[int]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise EvaluationError(f"{path}: cannot read the split file: {error}") from None
    if text.lstrip().startswith(("[", "{")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise EvaluationError(f"{path}: not valid JSON: {error}") from None
    else:
        data = text.split()
    if isinstance(data, dict) and isinstance(data.get("videos"), list):
        data = [v.get("id") if isinstance(v, dict) else v for v in data["videos"]]
    if not isinstance(data, list):
        raise EvaluationError(f"{path}: a split file is a JSON list of video ids, an annotation file, "
                              f"or one video id per line")
    try:
        return [int(v) for v in data]
    except (TypeError, ValueError):
        raise EvaluationError(f"{path}: video ids must be integers") from None


def predict_videos(predictor: Any, annotations: YTVISData, video_ids: Sequence[int], frames_dir: Path,
                   fps: float | None = None, progress: bool = True,
                   on_frame: Callable[[int, int, Any], None] | None = None) -> tuple[list[VideoResult], list[float]]:
    """Run ``predictor`` (a :class:`sgnet_model.predictor.StreamingPredictor`) over the videos, each frame at its
    real time (``Video.frame_times``, from the file names), or frame ``i`` at ``i / fps`` when ``fps`` is given;
    returns the video-level results and the predictor's milliseconds of every frame. ``on_frame(video_id, index,
    frame_result)`` sees every frame's :class:`FrameResult`."""
    category_ids = annotations.category_ids
    results: list[VideoResult] = []
    inference_ms: list[float] = []
    total = sum(annotations.videos[v].length for v in video_ids)
    with tqdm(total=total, unit="frame", desc="sgnet-eval", disable=not progress, file=sys.stderr) as bar:
        for video_id in video_ids:
            video = annotations.videos[video_id]
            predictor.reset()
            frames = []
            times = video.frame_times if fps is None else [index / fps for index in range(video.length)]
            for index, name in enumerate(video.file_names):
                image = read_frame(frames_dir / name, video.height, video.width, f"video {video_id}, frame {index}")
                frame_result = predictor.step(image, times[index])
                if on_frame is not None:
                    on_frame(video_id, index, frame_result)
                frames.append(frame_result.instances)
                inference_ms.append(frame_result.inference_ms)
                bar.update(1)
            results.extend(build_video_results(video_id, frames, category_ids, video.height, video.width))
    return results, inference_ms


def score(annotations: YTVISData, results: Sequence[VideoResult], video_ids: Sequence[int]) -> dict[str, Any]:
    """The metric and the tracking figures (None where the annotation file has no ground truth), and the
    numbers of videos and frames."""
    report: dict[str, Any] = {name: None for name in (*METRIC_NAMES, "AP90", "AP_per_class", *TRACKING_NAMES,
                                                      *HOTA_NAMES)}
    if annotations.has_annotations:
        report.update(evaluate_vis(annotations, results, video_ids))
        report.update(tracking_figures(annotations, results, video_ids, with_hota=True))
    report["videos"] = len(video_ids)
    report["frames"] = sum(annotations.videos[v].length for v in video_ids)
    return report


def _load_predictor(checkpoint: Path, predictor_config: PredictorConfig, tracker_config: TrackerConfig | None,
                    profile: str) -> Any:
    # Imported here so that the metric-only mode does not load torch.
    from sgnet_model.checkpoint import CheckpointError
    from sgnet_model.predictor import PredictorError, StreamingPredictor
    try:
        return StreamingPredictor.from_checkpoint(checkpoint, predictor_config, tracker_config, profile)
    except (CheckpointError, PredictorError) as error:
        raise EvaluationError(str(error)) from None


def tracker_report(predictor: Any, source: str) -> dict[str, Any]:
    """Which tracker settings a run used: ``tracker_profile`` ("robot", "evaluation" or "custom"), where they
    came from, and their values."""
    return {"tracker_profile": predictor.tracker_profile, "tracker_source": source,
            "tracker": to_dict(predictor.tracker.config)}


def _check_classes(model_classes: Sequence[str], annotations: YTVISData, checkpoint: Path) -> None:
    if tuple(model_classes) != annotations.class_names:
        raise EvaluationError(f"{checkpoint}: the model's {len(model_classes)} classes {list(model_classes)[:4]}... "
                              f"differ from the {len(annotations.class_names)} categories of {annotations.source} "
                              f"sorted by id {list(annotations.class_names)[:4]}...")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sgnet-eval",
        description="Evaluate SG-Net by the YouTube-VIS protocol (video-level mask AP over whole tracks),\n"
                    "with tracking figures (IDF1, ID switches, MOTA) and speed; or score a results.json alone.\n"
                    "YouTube-VIS val/test ground truth is not public: evaluate locally on videos held out\n"
                    "from train (sgnet-split), and submit the results.zip written here for val/test to the\n"
                    "challenge server.",
        epilog="examples:\n"
               "  sgnet-eval --checkpoint run/last.pt --annotations heldout.json --frames train/JPEGImages\n"
               "  sgnet-eval --checkpoint run/last.pt --annotations valid.json --frames valid/JPEGImages "
               "--output submission\n"
               "  sgnet-eval --results submission/results.json --annotations heldout.json --json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=Path, help="a trained checkpoint: run the model over the videos")
    source.add_argument("--results", type=Path,
                        help="a results.json (or results.zip) to score without running a model")
    parser.add_argument("--annotations", type=Path, required=True,
                        help="YouTube-VIS annotation JSON; with ground truth the metric is computed, without it "
                             "(val/test) only the results are written")
    parser.add_argument("--frames", type=Path,
                        help="folder the annotation file's file_names are relative to (e.g. train/JPEGImages); "
                             "needed with --checkpoint")
    chosen = parser.add_mutually_exclusive_group()
    chosen.add_argument("--videos", help="comma-separated video ids to evaluate (default: every video)")
    chosen.add_argument("--split", type=Path,
                        help="file naming the videos to evaluate: a JSON list of ids, an annotation file, or one "
                             "id per line")
    parser.add_argument("--fps", type=float,
                        help="stamp frame i at i / FPS (default: each frame's real time from its file name, a frame "
                             "number of 30 fps footage as YouTube-VIS names them; other names: 6 frames a second)")
    parser.add_argument("--tracker-profile", choices=TRACKER_PROFILES, default="evaluation",
                        help="the checkpoint's tracker profile: evaluation (low start/continue scores, what video AP "
                             "rewards; the default) or robot (few, confident tracks: what the node serves)")
    parser.add_argument("--config",
                        help="model config name (e.g. resnet18_small) or YAML whose tracker settings replace the "
                             "checkpoint's: its section of --tracker-profile (tracker for robot, evaluation_tracker "
                             "for evaluation); the network itself comes from the checkpoint")
    parser.add_argument("--device", default=PredictorConfig().device,
                        help="cpu, cuda, cuda:N or auto (default %(default)s)")
    parser.add_argument("--backend", default=PredictorConfig().backend, choices=BACKENDS,
                        help="what runs the network and masks (default %(default)s; docs/export.md); a .onnx "
                             "--checkpoint runs on onnxruntime unless another is named")
    parser.add_argument("--precision", default=PredictorConfig().precision, choices=PRECISIONS,
                        help="fp32, fp16 (CUDA) or bf16 (CPUs with AVX-512 BF16 or AMX) (default %(default)s)")
    parser.add_argument("--output", type=Path, default=Path("sgnet_eval"),
                        help="folder for results.json and results.zip (default %(default)s)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object with AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, "
                             "AP_per_class ({class: AP, null without ground truth}), idf1, id_switches, mota, "
                             "hota, deta, assa (TrackEval's HOTA and its detection and association parts), "
                             "mask_iou_mean, mask_iou_p10, mask_iou_frames (the mask IoU of matched instances), "
                             "videos, frames; with --checkpoint also ms_median, ms_p90, tracker_profile, "
                             "tracker_source, tracker (the tracker's values) and runtime (the backend and precision "
                             "that ran)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.checkpoint is not None and args.frames is None:
        parser.error("--checkpoint needs --frames, the folder of the video frames")
    if args.fps is not None and not args.fps > 0:
        parser.error(f"--fps must be positive, got {args.fps}")
    try:
        annotations = load_annotations(args.annotations)
        video_ids = choose_videos(annotations, args.videos, args.split)
        if args.results is not None:
            results = load_results(args.results, annotations)
            report = score(annotations, results, video_ids)
        else:
            tracker_config, source = None, f"checkpoint {args.checkpoint}"
            if args.config:
                tracker_config = named_config(args.config).tracker_profiles()[args.tracker_profile]
                source = f"config {args.config}, {args.tracker_profile} profile"
            predictor = _load_predictor(args.checkpoint, PredictorConfig(device=args.device, backend=args.backend,
                                                                         precision=args.precision),
                                        tracker_config, args.tracker_profile)
            _check_classes(predictor.class_names, annotations, args.checkpoint)
            results, inference_ms = predict_videos(predictor, annotations, video_ids, args.frames, args.fps,
                                                   progress=not args.no_progress)
            json_path, zip_path = save_results(results, args.output)
            report = score(annotations, results, video_ids)
            report.update(tracker_report(predictor, source))
            report["runtime"] = predictor.backend_description  # e.g. "openvino CPU bf16"
            report["runtime_choice"] = predictor.runtime_choice  # why: "as asked", or the auto rule's reasons
            # The run's first frame pays one-time start-up costs (allocator, thread pools, CUDA kernels).
            timed = inference_ms[1:] or inference_ms
            report["ms_median"] = float(np.median(timed))
            report["ms_p90"] = float(np.percentile(timed, 90))
    except (YTVISError, EvaluationError, DatasetError, ConfigError, OSError) as error:
        print(f"sgnet-eval: error: {error}", file=sys.stderr)
        return 2
    report = {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in report.items()}
    if args.json:
        print(json.dumps(report))
    else:
        _print_report(report)
        if args.checkpoint is not None:
            print(f"results: {json_path}  submission: {zip_path}")
    return 0


def _print_report(report: dict[str, Any]) -> None:
    print(f"videos {report['videos']}, frames {report['frames']}")
    if report["AP"] is None:
        print("no ground truth in the annotation file: no metric (submit results.zip to the challenge server)")
    else:
        print("\n".join(metric_lines(report)))
    if "ms_median" in report:
        print(f"ms per frame: median {report['ms_median']:.1f}, p90 {report['ms_p90']:.1f} ({report['runtime']})")
    if "tracker" in report:
        values = ", ".join(f"{name} {value:g}" for name, value in report["tracker"].items())
        print(f"tracker: {report['tracker_profile']} profile ({report['tracker_source']}): {values}")


if __name__ == "__main__":
    sys.exit(main())
