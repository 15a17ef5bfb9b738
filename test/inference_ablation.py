"""Inference-only ablations on the suite's trained models (test/session_model.py cache entries, one per training
seed) and on the demo's model (its cache folder): for each setting, the robot profile's IDF1 (ID switches) and
HOTA and matched masks' IoU on the held-out videos at every 2nd frame (3 frames a second), and the evaluation
profile's IDF1 (switches), HOTA, video AP, AP75, AP90, AR100 and matched masks' IoU at the full rate (6 a second).
docs/model.md has the tables.

- ``mask_nms`` ("Suppression by mask overlap"): box NMS and mask NMS thresholds (0: off).
- ``fill_gaps`` ("Tracks carried over missed frames"): TrackerConfig.fill_gaps_s, seconds a track without a
  detection is still reported, moved along its velocity.
- ``mask_rescoring`` ("Ranking by mask quality"): ModelConfig.mask_rescoring, the score times the mask's mean
  probability over its pixels, for ranking only ("ranking": the tracker starts and continues tracks on the
  network's score) or everywhere ("all").

    .venv/bin/python test/inference_ablation.py mask_nms ~/.cache/sgnet_ros/test-model/seed*-*/ ~/.cache/sgnet_ros/demo/*/
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_NMS = {"nms_threshold": 0.7, "mask_nms_threshold": 0.5}  # ModelConfig's defaults; a checkpoint keeps its own
# name -> settings: (label, ModelConfig fields, TrackerConfig fields); the first of each is the reference
ABLATIONS = {
    "mask_nms": (("box 0.5, mask off", {"nms_threshold": 0.5, "mask_nms_threshold": 0.0}, {}),
                 ("box 0.7, mask 0.5", {"nms_threshold": 0.7, "mask_nms_threshold": 0.5}, {}),
                 ("box 0.8, mask 0.5", {"nms_threshold": 0.8, "mask_nms_threshold": 0.5}, {}),
                 ("box 0.7, mask 0.6", {"nms_threshold": 0.7, "mask_nms_threshold": 0.6}, {})),
    "fill_gaps": (("no filling", SHIPPED_NMS, {"fill_gaps_s": 0.0}),
                  ("fill 0.4 s", SHIPPED_NMS, {"fill_gaps_s": 0.4}),
                  ("fill 0.7 s", SHIPPED_NMS, {"fill_gaps_s": 0.7})),
    "mask_rescoring": (("off", {**SHIPPED_NMS, "mask_rescoring": "off"}, {}),
                       ("ranking (tracker on the network's score)", {**SHIPPED_NMS, "mask_rescoring": "ranking"}, {}),
                       ("all (tracker on the rescored score)", {**SHIPPED_NMS, "mask_rescoring": "all"}, {})),
}


def model_files(folder: Path) -> tuple[Path, Path, Path]:
    """model.pt, the held-out annotations and the frames folder of a cache entry of test/session_model.py or of the
    demo's cache; a ValueError naming the folder when it is neither."""
    val = folder / "val.json" if (folder / "val.json").is_file() else folder / "split" / "val.json"
    model, frames = folder / "run" / "model.pt", folder / "synth" / "JPEGImages"
    if not (model.is_file() and val.is_file()):
        raise ValueError(f"{folder} is neither a cache entry of test/session_model.py nor the demo's cache")
    return model, val, frames


def figures(model: Path, val: Path, frames: Path, profile: str, every: int, settings: tuple) -> list[str]:
    from sgnet_model.data.ytvis import parse_annotations
    from sgnet_model.data.ytvis_metric import evaluate_vis, tracking_figures
    from sgnet_model.predictor import StreamingPredictor
    from training.evaluate import predict_videos
    from training.split import every_nth_frame

    annotations = parse_annotations(every_nth_frame(json.loads(val.read_text()), every))
    cells = []
    for _, model_fields, tracker_fields in settings:
        predictor = StreamingPredictor.from_checkpoint(model, profile=profile)
        predictor.model_config = dataclasses.replace(predictor.model_config, **model_fields)
        predictor.tracker_config = dataclasses.replace(predictor.tracker_config, **tracker_fields)
        results, _ = predict_videos(predictor, annotations, list(annotations.videos), frames, progress=False)
        tracking = tracking_figures(annotations, results, with_hota=True)
        cell = f"{tracking['idf1']:.3f} ({tracking['id_switches']}), HOTA {tracking['hota']:.3f}"
        if profile == "evaluation":
            metrics = evaluate_vis(annotations, results)
            cell += "".join(f", {name} {metrics[name]:.3f}" for name in ("AP", "AP75", "AP90", "AR100"))
        cell += f", IoU {tracking['mask_iou_mean']:.3f}" if tracking["mask_iou_mean"] is not None else ", IoU -"
        cells.append(cell)
    return cells


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ablation", choices=sorted(ABLATIONS))
    parser.add_argument("folders", nargs="+", type=Path, help="cache entries of test/session_model.py or the demo")
    args = parser.parse_args()
    sys.path[:0] = [str(ROOT)]
    settings = ABLATIONS[args.ablation]
    print("model, profile | " + " | ".join(label for label, _, _ in settings))
    for folder in args.folders:
        try:
            model, val, frames = model_files(folder)
        except ValueError as error:
            parser.error(str(error))
        for profile, every in (("robot", 2), ("evaluation", 1)):
            cells = figures(model, val, frames, profile, every, settings)
            print(f"{folder.name.split('-')[0]}, {profile} | " + " | ".join(cells), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
