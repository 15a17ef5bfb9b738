"""Ablation of the start score calibration (training/calibrate.py) on the suite's trained models, one per
training seed (test/session_model.py's cache entries, as test/seed_sweep.py leaves them): each model's start
score chosen on its training videos, then its held-out videos tracked at frame strides 1, 2 and 4 with the
shipped start score and with the chosen one (robot profile: IDF1, ID switches). docs/model.md has the table.

    .venv/bin/python test/calibration_ablation.py ~/.cache/sgnet_ros/test-model/seed*-*/
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HELD_OUT_STRIDES = (1, 2, 4)


def ablate(folder: Path) -> tuple[float, float, list[tuple[float, int]], list[tuple[float, int]]]:
    """(shipped start score, chosen one, [(IDF1, switches) per held-out stride] shipped, the same chosen)."""
    from sgnet_model.data.ytvis_metric import tracking_figures
    from sgnet_model.predictor import StreamingPredictor
    from training.calibrate import calibrate_start_score, describe_calibration, record, retrack, with_start_score

    predictor = StreamingPredictor.from_checkpoint(folder / "run" / "model.pt", profile="robot")
    frames = folder / "synth" / "JPEGImages"
    calibration = calibrate_start_score(predictor, json.loads((folder / "train.json").read_text()), frames)
    print(describe_calibration(calibration), file=sys.stderr)
    shipped = predictor.tracker_config
    chosen = with_start_score(shipped, calibration.start_score)
    held_out = json.loads((folder / "val.json").read_text())
    before, after = [], []
    for stride in HELD_OUT_STRIDES:
        recording = record(predictor, held_out, frames, stride, min(shipped.continue_score, chosen.continue_score))
        for profile, rows in ((shipped, before), (chosen, after)):
            figures = tracking_figures(recording.annotations, retrack(recording, profile))
            rows.append((figures["idf1"], figures["id_switches"]))
    return shipped.new_track_score, chosen.new_track_score, before, after


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", type=Path, help="cache entries of test/session_model.py")
    args = parser.parse_args()
    sys.path[:0] = [str(ROOT)]
    strides = " | ".join(f"stride {s}" for s in HELD_OUT_STRIDES)
    print(f"model | start score shipped, chosen | {strides} (shipped) | {strides} (chosen)")
    for folder in args.models:
        if not (folder / "run" / "model.pt").is_file():
            parser.error(f"{folder} holds no run/model.pt: give cache entries of test/session_model.py")
        shipped, chosen, before, after = ablate(folder)
        cells = " | ".join(f"{idf1:.3f} ({switches})" for idf1, switches in before + after)
        print(f"{folder.name.split('-')[0]} | {shipped:g}, {chosen:g} | {cells}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
