"""The labelling loop measured on synthetic domains (docs/flywheel.md, "The loop, measured"): models trained on the
base world (the suite's models, test/session_model.py cache entries, one per training seed) meet a shifted world
(sgnet-synth --domain shifted: dimmer, blurred, busy backgrounds, mostly triangles and stars). From the shifted
world's unlabelled footage (its pool videos) the same number of frames is labelled twice, the labeller simulated by
the generator's ground truth: moments chosen by the uncertainty signal (the frames with the most events, each with
its window of neighbours, as the node records them) and moments chosen at random. Each base model is fine-tuned on
each choice (sgnet-train --init-from, the same schedule) and scored on the shifted world's held-out videos (video
AP, HOTA) and on its own world's held-out videos (AP: what fine-tuning costs there).

    .venv/bin/python test/flywheel_loop.py ~/.cache/sgnet_ros/test-model/seed{0,1,2}-*/ --output /tmp/flywheel
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SMALL_YAML = ROOT / "config" / "train" / "synthetic_small.yaml"


def evaluate(model: Path, val: Path, frames: Path, tracking: bool = True) -> dict[str, float]:
    """Video AP (evaluation profile) and, with ``tracking``, HOTA, IDF1 (robot profile, every frame) on a held-out
    set."""
    from sgnet_model.data.ytvis import load_annotations
    from sgnet_model.data.ytvis_metric import evaluate_vis, tracking_figures
    from sgnet_model.predictor import StreamingPredictor
    from training.evaluate import predict_videos

    annotations = load_annotations(val)
    figures = {}
    for profile in ("evaluation", "robot") if tracking else ("evaluation",):
        predictor = StreamingPredictor.from_checkpoint(model, profile=profile)
        results, _ = predict_videos(predictor, annotations, list(annotations.videos), frames, progress=False)
        if profile == "evaluation":
            metric = evaluate_vis(annotations, results)
            figures.update(AP=metric["AP"], AP75=metric["AP75"])
        else:
            tracking = tracking_figures(annotations, results, with_hota=True)
            figures.update(HOTA=tracking["hota"], IDF1=tracking["idf1"])
    return figures


def frame_events(model: Path, pool: Path, frames: Path) -> dict[tuple[int, int], int]:
    """(video id, frame index) -> the frame's uncertainty events, robot profile, every frame (as the node runs)."""
    from sgnet_model.data.ytvis import load_annotations
    from sgnet_model.predictor import StreamingPredictor
    from training.evaluate import predict_videos

    annotations = load_annotations(pool)
    events: dict[tuple[int, int], int] = {}
    predictor = StreamingPredictor.from_checkpoint(model, profile="robot")
    predict_videos(predictor, annotations, list(annotations.videos), frames, progress=False,
                   on_frame=lambda video, index, result: events.__setitem__((video, index), result.uncertainty.events))
    return events


def choose_moments(ranked: list[tuple[int, int]], lengths: dict[int, int], budget: int, window: int
                   ) -> list[tuple[int, int, int]]:
    """Moments (video id, first frame, last frame) around the frames of ``ranked`` in order, each the frame and
    ``window`` neighbours on either side within its video, at most one per video (the node records at most one
    moment per camera per recording.min_interval_s, 10 s, longer than these videos), until ``budget`` frames are
    chosen (the last moment cut to fit)."""
    moments, count = [], 0
    for video, index in ranked:
        if any(video == chosen for chosen, _, _ in moments):
            continue
        first, last = max(0, index - window), min(lengths[video] - 1, index + window)
        last = min(last, first + budget - count - 1)
        moments.append((video, first, last))
        count += last - first + 1
        if count == budget:
            break
    return moments


def labelled_set(pool: dict, moments: list[tuple[int, int, int]]) -> dict:
    """The pool's ground truth on the chosen moments only, each moment a video of its own: what a labeller returns."""
    videos = {video["id"]: video for video in pool["videos"]}
    data = {"categories": pool["categories"], "videos": [], "annotations": []}
    for number, (video_id, first, last) in enumerate(moments, start=1):
        video = videos[video_id]
        data["videos"].append({**video, "id": number, "name": f"{video['name']}_{first}",
                               "length": last - first + 1, "file_names": video["file_names"][first:last + 1]})
        for annotation in (a for a in pool["annotations"] if a["video_id"] == video_id):
            part = {key: annotation[key][first:last + 1] for key in ("segmentations", "bboxes", "areas")}
            if any(segmentation is not None for segmentation in part["segmentations"]):
                data["annotations"].append({**annotation, **part, "id": len(data["annotations"]) + 1,
                                            "video_id": number})
    return data


def fine_tune(model: Path, labelled: Path, frames: Path, rehearsal: tuple[Path, Path] | None, repeats: int,
              output: Path, iterations: int, base_lr: float, seed: int) -> Path:
    """sgnet-train --init-from on the labelled moments, ``repeats`` times mixed with the base model's own training
    set (``rehearsal``: its annotations and frames; data.rehearsal_*): fine-tuning on the new world alone forgets the
    old one (docs/flywheel.md)."""
    from training.config import load_train_config
    from training.train import train

    mixed = [f"data.rehearsal_annotations={rehearsal[0]}", f"data.rehearsal_frames={rehearsal[1]}",
             f"data.repeats={repeats}"] if rehearsal else []
    config = load_train_config(SMALL_YAML, mixed + [
        f"init_from={model}", f"data.annotations={labelled}", f"data.frames={frames}", f"max_iters={iterations}",
        "max_minutes=0", f"checkpoint_every={iterations}", f"optim.base_lr={base_lr}",
        f"optim.warmup_iters={max(1, iterations // 10)}", "calibration_videos=0", "threads=2",
        "deterministic=true", f"seed={seed}"])
    return train(config, output, progress=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="cache entries of test/session_model.py (base models)")
    parser.add_argument("--output", type=Path, required=True, help="a folder for the shifted set and the runs")
    parser.add_argument("--pool-videos", type=int, default=24, help="the shifted world's unlabelled footage")
    parser.add_argument("--held-out", type=int, default=8, help="the shifted world's held-out videos")
    parser.add_argument("--budget", type=int, default=40, help="frames labelled per choice")
    parser.add_argument("--window", type=int, default=2, help="neighbours on either side of a chosen frame")
    parser.add_argument("--iterations", type=int, default=80, help="fine-tuning iterations")
    parser.add_argument("--base-lr", type=float, default=0.003, help="fine-tuning learning rate")
    parser.add_argument("--repeats", type=int, default=3,
                        help="the labelled moments' weight against the base training set mixed in (0: no mixing)")
    args = parser.parse_args()
    sys.path[:0] = [str(ROOT), str(ROOT / "test")]
    from inference_ablation import model_files
    from training.split import split_annotations
    from training.synthetic import DOMAINS, generate_synthetic_set

    shifted = args.output / "shifted"
    if not (shifted / "pool.json").is_file():
        annotations = generate_synthetic_set(shifted / "synth", videos=args.pool_videos + args.held_out, seed=23,
                                             domain=DOMAINS["shifted"], overwrite=True)
        pool, held_out = split_annotations(json.loads(annotations.read_text()), val_count=args.held_out, seed=0)
        (shifted / "pool.json").write_text(json.dumps(pool))
        (shifted / "val.json").write_text(json.dumps(held_out))
    frames_b, pool = shifted / "synth" / "JPEGImages", json.loads((shifted / "pool.json").read_text())
    lengths = {video["id"]: video["length"] for video in pool["videos"]}
    print("model | choice | shifted AP | AP75 | HOTA | IDF1 | base-world AP | labelled frames (moments)")
    rows = []
    for folder in args.folders:
        model, val_a, frames_a = model_files(folder)
        name, seed = folder.name.split("-")[0], len(rows)
        events = frame_events(model, shifted / "pool.json", frames_b)
        rng = np.random.default_rng(seed)
        tiebreak = {frame: rng.uniform() for frame in sorted(events)}
        choices = {"uncertainty": sorted(events, key=lambda frame: (-events[frame], tiebreak[frame])),
                   "random": sorted(events, key=lambda frame: tiebreak[frame])}
        row = {"model": name, "base": {**evaluate(model, shifted / "val.json", frames_b),
                                       "AP_base_world": evaluate(model, val_a, frames_a, tracking=False)["AP"]}}
        for choice, ranked in choices.items():
            moments = choose_moments(ranked, lengths, args.budget, args.window)
            run = args.output / name / choice
            run.mkdir(parents=True, exist_ok=True)
            (run / "labelled.json").write_text(json.dumps(labelled_set(pool, moments)))
            rehearsal = (folder / "train.json", frames_a) if args.repeats else None
            tuned = fine_tune(model, run / "labelled.json", frames_b, rehearsal, max(1, args.repeats), run / "train",
                              args.iterations, args.base_lr, seed)
            row[choice] = {**evaluate(tuned, shifted / "val.json", frames_b),
                           "AP_base_world": evaluate(tuned, val_a, frames_a, tracking=False)["AP"],
                           "events": sum(events[(v, i)] for v, a, b in moments for i in range(a, b + 1)),
                           "moments": len(moments)}
        for choice in ("base", "uncertainty", "random"):
            cell = row[choice]
            labelled = "-" if choice == "base" else f"{args.budget} ({cell['moments']}, {cell['events']} events)"
            print(f"{name} | {choice} | {cell['AP']:.3f} | {cell['AP75']:.3f} | {cell['HOTA']:.3f} | "
                  f"{cell['IDF1']:.3f} | {cell['AP_base_world']:.3f} | {labelled}", flush=True)
        rows.append(row)
    gains = {choice: float(np.mean([row[choice]["AP"] - row["base"]["AP"] for row in rows]))
             for choice in ("uncertainty", "random")}
    forgetting = {choice: float(np.mean([row["base"]["AP_base_world"] - row[choice]["AP_base_world"] for row in rows]))
                  for choice in ("uncertainty", "random")}
    print(f"mean AP gain on the shifted world: uncertainty {gains['uncertainty']:+.3f}, random {gains['random']:+.3f}"
          f" (ratio {gains['uncertainty'] / gains['random'] if gains['random'] else float('nan'):.2f}); "
          f"mean base-world AP lost: uncertainty {forgetting['uncertainty']:.3f}, random {forgetting['random']:.3f}")
    (args.output / "table.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
