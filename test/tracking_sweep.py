"""Inference-only sweep of the robot profile's suppression and start score on the suite's trained models
(test/session_model.py; one per training seed, as test/seed_sweep.py leaves them in the cache): IDF1 and ID
switches on the held-out videos at a frame stride, for class-agnostic NMS on and off, two NMS thresholds and two
start scores. docs/model.md ("Identities at a lower frame rate") has the table and what it says.

    .venv/bin/python test/tracking_sweep.py ~/.cache/sgnet_ros/test-model/seed*-*/ --every 2
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = list(itertools.product((True, False), (0.5, 0.7), (0.5, 0.4)))  # class-agnostic, NMS IoU, start score


def sweep(folder: Path, every: int) -> list[tuple[bool, float, float, float, int]]:
    """(class-agnostic, NMS threshold, start score, IDF1, ID switches) for each setting, on the model in a cache
    entry of test/session_model.py."""
    from sgnet_model.data.ytvis import parse_annotations
    from sgnet_model.data.ytvis_metric import tracking_figures
    from sgnet_model.predictor import StreamingPredictor
    from training.split import every_nth_frame
    from training.calibrate import with_start_score
    from training.evaluate import predict_videos

    annotations = parse_annotations(every_nth_frame(json.loads((folder / "val.json").read_text()), every))
    rows = []
    for agnostic, nms, start in SETTINGS:
        predictor = StreamingPredictor.from_checkpoint(folder / "run" / "model.pt", profile="robot")
        predictor.model_config = dataclasses.replace(predictor.model_config, class_agnostic_nms=agnostic,
                                                     nms_threshold=nms)
        predictor.tracker_config = with_start_score(predictor.tracker_config, start)
        results, _ = predict_videos(predictor, annotations, list(annotations.videos),
                                    folder / "synth" / "JPEGImages", progress=False)
        figures = tracking_figures(annotations, results)
        rows.append((agnostic, nms, start, figures["idf1"], figures["id_switches"]))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", type=Path, help="cache entries of test/session_model.py")
    parser.add_argument("--every", type=int, default=2, help="keep every n-th frame of the held-out videos")
    args = parser.parse_args()
    sys.path[:0] = [str(ROOT), str(ROOT / "test"), str(ROOT / "test" / "training")]
    print("model | " + " | ".join(f"{'agnostic' if a else 'per class'} NMS {n} start {s}" for a, n, s in SETTINGS))
    for folder in args.models:
        if not (folder / "run" / "model.pt").is_file():
            parser.error(f"{folder} holds no run/model.pt: give cache entries of test/session_model.py")
        cells = [f"{idf1:.3f} ({switches})" for *_, idf1, switches in sweep(folder, args.every)]
        print(f"{folder.name.split('-')[0]} | " + " | ".join(cells), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
