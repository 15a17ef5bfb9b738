"""Inference-only ablation of the suppression by mask overlap (sgnet_model/inference/mask_nms.py) on the suite's
trained models (test/session_model.py cache entries, one per training seed) and on the demo's model (its cache
folder): for each setting (box NMS threshold, mask NMS threshold; 0 = off), the robot profile's IDF1 (ID switches)
and HOTA on the held-out videos at every 2nd frame, and the evaluation profile's IDF1 (switches), HOTA and video
AP at the full rate. docs/model.md ("Suppression by mask overlap") has the table.

    .venv/bin/python test/mask_nms_sweep.py ~/.cache/sgnet_ros/test-model/seed*-*/ ~/.cache/sgnet_ros/demo/*/
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = ((0.5, 0.0), (0.7, 0.5), (0.8, 0.5), (0.7, 0.6))  # (box NMS IoU, mask NMS IoU); the first is shipped


def figures(model: Path, val: Path, frames: Path, profile: str, every: int) -> list[str]:
    from sgnet_model.data.ytvis import parse_annotations
    from sgnet_model.data.ytvis_metric import evaluate_vis, tracking_figures
    from sgnet_model.predictor import StreamingPredictor
    from training.evaluate import predict_videos
    from training.split import every_nth_frame

    annotations = parse_annotations(every_nth_frame(json.loads(val.read_text()), every))
    cells = []
    for box, mask in SETTINGS:
        predictor = StreamingPredictor.from_checkpoint(model, profile=profile)
        predictor.model_config = dataclasses.replace(predictor.model_config, nms_threshold=box,
                                                     mask_nms_threshold=mask)
        results, _ = predict_videos(predictor, annotations, list(annotations.videos), frames, progress=False)
        tracking = tracking_figures(annotations, results, with_hota=True)
        cell = f"{tracking['idf1']:.3f} ({tracking['id_switches']}), HOTA {tracking['hota']:.3f}"
        if profile == "evaluation":
            cell += f", AP {evaluate_vis(annotations, results)['AP']:.3f}"
        cells.append(cell)
    return cells


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="cache entries of test/session_model.py or the demo")
    args = parser.parse_args()
    sys.path[:0] = [str(ROOT)]
    print("model, profile | " + " | ".join(f"box {b}, mask {m or 'off'}" for b, m in SETTINGS))
    for folder in args.folders:
        val = folder / "val.json" if (folder / "val.json").is_file() else folder / "split" / "val.json"
        model, frames = folder / "run" / "model.pt", folder / "synth" / "JPEGImages"
        if not (model.is_file() and val.is_file()):
            parser.error(f"{folder} is neither a cache entry of test/session_model.py nor the demo's cache")
        for profile, every in (("robot", 2), ("evaluation", 1)):
            cells = figures(model, val, frames, profile, every)
            print(f"{folder.name.split('-')[0]}, {profile} | " + " | ".join(cells), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
