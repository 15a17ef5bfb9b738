"""How well the predictor's uncertainty signal (sgnet_model/inference/uncertainty.py) ranks the frames where the
model is wrong, on the held-out videos of the suite's trained models (test/session_model.py cache entries, one
per training seed) and the demo's model, with the shipped suppression: the robot profile (the node's default)
at the full frame rate; a frame is wrong when it has a missed object, a false instance or an ID switch
(ytvis_metric.frame_errors).

For each part of the signal and their sum (``events``): AUROC (the chance that a wrong frame scores above a right
one, ties counted half: 0.5 is a random ranking) and the share of wrong frames among the 20 % of frames the
signal ranks first (ties at the cut taken in proportion), against the share among all frames (what a random
choice gets). docs/flywheel.md has the table.

    .venv/bin/python test/uncertainty_ranking.py ~/.cache/sgnet_ros/test-model/seed*-*/ ~/.cache/sgnet_ros/demo/*/
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from inference_ablation import SHIPPED_NMS, model_files

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("borderline", "started", "lost", "class_changes", "events")
BUDGET = 0.2  # share of the frames chosen


def auroc(signal: np.ndarray, wrong: np.ndarray) -> float:
    """Mann-Whitney: P(signal of a wrong frame > a right frame's) + P(equal) / 2."""
    from scipy.stats import rankdata

    ranks = rankdata(signal)
    positives, negatives = int(wrong.sum()), int((~wrong).sum())
    return float((ranks[wrong].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def precision_at(signal: np.ndarray, wrong: np.ndarray, share: float) -> float:
    """Expected share of wrong frames among the ``share`` of frames ranked first, ties at the cut drawn at random."""
    count = share * len(signal)
    cut = np.sort(signal)[::-1][int(np.ceil(count)) - 1]
    above, tied = signal > cut, signal == cut
    from_tied = count - above.sum()
    return float((wrong[above].sum() + from_tied * wrong[tied].mean()) / count)


def rank_model(folder: Path) -> dict[str, float]:
    from sgnet_model.data.ytvis import parse_annotations
    from sgnet_model.data.ytvis_metric import frame_errors
    from sgnet_model.predictor import StreamingPredictor
    from training.evaluate import predict_videos

    model, val, frames = model_files(folder)
    annotations = parse_annotations(json.loads(val.read_text()))
    predictor = StreamingPredictor.from_checkpoint(model, profile="robot")
    # the shipped suppression (box NMS 0.7, mask NMS 0.5), which models trained before it lack
    predictor.model_config = dataclasses.replace(predictor.model_config, **SHIPPED_NMS)
    signals: dict[tuple[int, int], object] = {}
    results, _ = predict_videos(predictor, annotations, list(annotations.videos), frames, progress=False,
                                on_frame=lambda v, i, r: signals.__setitem__((v, i), r.uncertainty))
    errors = frame_errors(annotations, results)
    keys = sorted(signals)
    wrong = np.array([errors[v][i] > 0 for v, i in keys])
    row = {"frames": len(keys), "wrong": float(wrong.mean())}
    for part in PARTS:
        signal = np.array([getattr(signals[key], part) for key in keys], float)
        row[f"{part} auroc"] = auroc(signal, wrong)
        row[f"{part} top"] = precision_at(signal, wrong, BUDGET)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="cache entries of test/session_model.py or the demo")
    args = parser.parse_args()
    sys.path[:0] = [str(ROOT)]
    print(f"| model | frames | wrong | {' | '.join(PARTS)} |")
    print("|---|---|---|" + "---|" * len(PARTS))
    for folder in args.folders:
        row = rank_model(folder)
        cells = " | ".join(f"{row[f'{p} auroc']:.2f} / {row[f'{p} top']:.2f}" for p in PARTS)
        print(f"| {folder.name.split('-')[0]} | {row['frames']} | {row['wrong']:.2f} | {cells} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
