#!/usr/bin/env bash
# The labelling loop end to end on the synthetic worlds, through the documented commands (docs/flywheel.md, "Run the
# loop yourself"): a base model meets a shifted world, the node records what it is unsure of while that world's
# footage is replayed through it, sgnet-label drafts the recorded moments, a simulated labeller (the generator's
# ground truth) corrects them, and the model is fine-tuned on them and scored before and after on both worlds.
#
#   bash scripts/flywheel.sh [OUTPUT]        # default output/flywheel; about 15 minutes on 2 idle cores
#
# Sizes and budgets come from the environment (defaults: the measured loop's, docs/flywheel.md):
#   BASE_VIDEOS=30 BASE_HELD_OUT=6 SHIFTED_VIDEOS=32 SHIFTED_HELD_OUT=8 FRAMES=12:20 WIDTH=320 HEIGHT=192
#   BASE_ITERS=200 BASE_MINUTES=6        the base model's schedule (at most BASE_MINUTES of training)
#   BASE=DIR                             reuse a base world and model instead: DIR/synth/JPEGImages,
#                                        DIR/split/{train,val}.json, DIR/run/model.pt (sgnet-demo's cache has them)
#   WINDOW_S=0.35 MIN_EVENTS=2 MIN_INTERVAL_S=10   the node's recording.* parameters
#   TUNE_ITERS=80 TUNE_LR=0.003 REPEATS=3 TUNE_MINUTES=4 CALIBRATION_VIDEOS=24   fine-tuning
#   TRAIN_SET="KEY=VALUE ..."           more sgnet-train --set overrides for both runs (e.g. data.workers=0)
#   BACKEND=auto PRECISION=auto          the runtime of the node and of sgnet-eval (the shipped default; auto exports
#                                        each model's graph for OpenVINO on a CPU with bf16: torch fp32 for tiny runs)
# Uses the checkout's .venv (scripts/setup_env.sh makes it). Prints a line per stage and a table at the end; writes
# OUTPUT/report.json and every stage's log under OUTPUT/logs.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$(realpath -m "${1:-output/flywheel}")
BIN=$ROOT/.venv/bin
[[ -x $BIN/sgnet-train ]] || { echo "flywheel: no $BIN/sgnet-train: run bash scripts/setup_env.sh first" >&2; exit 2; }
BASE_VIDEOS=${BASE_VIDEOS:-30} BASE_HELD_OUT=${BASE_HELD_OUT:-6}
SHIFTED_VIDEOS=${SHIFTED_VIDEOS:-32} SHIFTED_HELD_OUT=${SHIFTED_HELD_OUT:-8}
FRAMES=${FRAMES:-12:20} WIDTH=${WIDTH:-320} HEIGHT=${HEIGHT:-192}
BASE_ITERS=${BASE_ITERS:-200} BASE_MINUTES=${BASE_MINUTES:-6}
WINDOW_S=${WINDOW_S:-0.35} MIN_EVENTS=${MIN_EVENTS:-2} MIN_INTERVAL_S=${MIN_INTERVAL_S:-10}
TUNE_ITERS=${TUNE_ITERS:-80} TUNE_LR=${TUNE_LR:-0.003} REPEATS=${REPEATS:-3} TUNE_MINUTES=${TUNE_MINUTES:-4}
CALIBRATION_VIDEOS=${CALIBRATION_VIDEOS:-24}
BACKEND=${BACKEND:-auto} PRECISION=${PRECISION:-auto}
NAMESPACE=/sgnet_flywheel
SIZE=(--frames "$FRAMES" --width "$WIDTH" --height "$HEIGHT")
EXTRA=()
for override in ${TRAIN_SET:-}; do EXTRA+=(--set "$override"); done

rm -rf "$OUT"
mkdir -p "$OUT/logs" "$OUT/eval"
export ROS_DOMAIN_ID=$((100 + RANDOM % 100)) ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST ROS_LOG_DIR=$OUT/logs/ros
LOOP_STARTED=$(date +%s)
STAGE_STARTED=$LOOP_STARTED
stage() {  # stage NAME: the previous stage ends, NAME begins
    local now; now=$(date +%s)
    [[ -n ${STAGE:-} ]] && printf '%s\t%s\n' "$STAGE" "$((now - STAGE_STARTED))" >> "$OUT/stages.tsv" \
        && echo "[flywheel] $STAGE: done in $((now - STAGE_STARTED)) s" >&2
    STAGE=$1 STAGE_STARTED=$now
    [[ $1 == end ]] || echo "[flywheel] $1 ..." >&2
}
run() {  # run NAME COMMAND...: stdout to OUT/logs/NAME.out, stderr to NAME.log; a failure names the log
    "${@:2}" > "$OUT/logs/$1.out" 2> "$OUT/logs/$1.log" \
        || { echo "[flywheel] failed: ${*:2} (see $OUT/logs/$1.log)" >&2; exit 1; }
}

if [[ -n ${BASE:-} ]]; then
    BASE=$(realpath "$BASE")
    echo "[flywheel] reusing the base world and model of $BASE" >&2
else
    BASE=$OUT/base
    stage "synthesize the base world"
    run synth_base "$BIN/sgnet-synth" --output "$BASE/synth" --videos "$BASE_VIDEOS" --seed 11 "${SIZE[@]}" \
        --no-progress
    run split_base "$BIN/sgnet-split" "$BASE/synth/annotations.json" --val-count "$BASE_HELD_OUT" --output "$BASE/split"
    stage "train the base model"
    run train_base "$BIN/sgnet-train" --config config/train/synthetic_small.yaml --output "$BASE/run" --no-progress \
        --set data.annotations="$BASE/split/train.json" --set data.frames="$BASE/synth/JPEGImages" \
        --set max_iters="$BASE_ITERS" --set max_minutes="$BASE_MINUTES" --set checkpoint_every="$BASE_ITERS" \
        --set calibration_videos="$CALIBRATION_VIDEOS" "${EXTRA[@]}"
fi
MODEL=$BASE/run/model.pt

stage "synthesize the shifted world, bag its pool videos"
run synth_shifted "$BIN/sgnet-synth" --domain shifted --output "$OUT/shifted/synth" --videos "$SHIFTED_VIDEOS" \
    --seed 23 "${SIZE[@]}" --no-progress
run split_shifted "$BIN/sgnet-split" "$OUT/shifted/synth/annotations.json" --val-count "$SHIFTED_HELD_OUT" \
    --output "$OUT/shifted/split"
run bag "$BIN/sgnet-bag" ytvis --annotations "$OUT/shifted/split/train.json" \
    --frames "$OUT/shifted/synth/JPEGImages" -o "$OUT/pool" --no-progress

stage "replay the pool through the recording node"
"$BIN/sgnet-node" --ros-args -r __ns:=$NAMESPACE -p checkpoint:="$MODEL" -p qos_reliability:=reliable \
    -p use_sim_time:=true -p recording.folder:="$OUT/recorded" -p recording.window_s:="$WINDOW_S" \
    -p recording.min_events:="$MIN_EVENTS" -p recording.min_interval_s:="$MIN_INTERVAL_S" \
    -p predictor.backend:="$BACKEND" -p predictor.precision:="$PRECISION" \
    > "$OUT/logs/node.log" 2>&1 &
NODE=$!
trap 'kill -INT $NODE 2>/dev/null || true' EXIT
run replay "$BIN/sgnet-replay" --bag "$OUT/pool" --node-namespace $NAMESPACE --as-fast-as-node --clock --wait 120 \
    --ground-truth "$OUT/pool.ground_truth.json" --output "$OUT/replay" --json --no-progress
kill -INT $NODE
wait $NODE || { echo "[flywheel] the node ended badly (see $OUT/logs/node.log)" >&2; exit 1; }
trap - EXIT
RECORDED=("$OUT"/recorded/sgnet_uncertain_*)
[[ -d ${RECORDED[0]} ]] || { echo "[flywheel] the node recorded no moment (see $OUT/logs/node.log)" >&2; exit 1; }

stage "draft, label (simulated) and collect"
run drafts "$BIN/sgnet-label" drafts "${RECORDED[@]}" --checkpoint "$MODEL" --output "$OUT/label" --no-progress --json
run simulate "$BIN/sgnet-label" simulate "$OUT/label" --ground-truth "$OUT/pool.ground_truth.json" \
    --output "$OUT/exports" --json
run collect "$BIN/sgnet-label" collect "$OUT/label" --corrected "$OUT"/exports/*.zip --output "$OUT/label/train.json" \
    --held-out 0 --json

stage "fine-tune on the labelled moments with the base set mixed in"
run finetune "$BIN/sgnet-train" --config config/train/synthetic_small.yaml --init-from "$MODEL" \
    --output "$OUT/finetuned" --no-progress \
    --set data.annotations="$OUT/label/train.json" --set data.frames="$OUT/label/JPEGImages" \
    --set data.rehearsal_annotations="$BASE/split/train.json" --set data.rehearsal_frames="$BASE/synth/JPEGImages" \
    --set data.repeats="$REPEATS" --set max_iters="$TUNE_ITERS" --set max_minutes="$TUNE_MINUTES" \
    --set checkpoint_every="$TUNE_ITERS" --set optim.base_lr="$TUNE_LR" \
    --set optim.warmup_iters=$(( (TUNE_ITERS + 9) / 10 )) --set calibration_videos="$CALIBRATION_VIDEOS" "${EXTRA[@]}"

stage "evaluate before and after on both worlds"
for model in base finetuned; do
    checkpoint=$MODEL; [[ $model == finetuned ]] && checkpoint=$OUT/finetuned/model.pt
    for world in shifted base; do
        annotations=$OUT/shifted/split/val.json frames=$OUT/shifted/synth/JPEGImages
        [[ $world == base ]] && annotations=$BASE/split/val.json frames=$BASE/synth/JPEGImages
        for profile in evaluation robot; do  # AP with the evaluation profile, HOTA with the robot's (what it serves)
            name=${model}_${world}_${profile}
            "$BIN/sgnet-eval" --checkpoint "$checkpoint" --annotations "$annotations" --frames "$frames" \
                --tracker-profile $profile --backend "$BACKEND" --precision "$PRECISION" \
                --output "$OUT/eval/$name" --json --no-progress \
                > "$OUT/eval/$name.json" 2> "$OUT/logs/eval_$name.log" \
                || { echo "[flywheel] failed: sgnet-eval $name (see $OUT/logs/eval_$name.log)" >&2; exit 1; }
        done
    done
done
stage end

"$BIN/python" - "$OUT" "$BASE" "$LOOP_STARTED" <<'EOF'
import json
import sys
import time
from pathlib import Path

out, base, started = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
scores = {path.stem: json.loads(path.read_text()) for path in (out / "eval").glob("*.json")}
stages = [line.split("\t") for line in (out / "stages.tsv").read_text().splitlines()]
drafts, labelled = (json.loads((out / "logs" / f"{name}.out").read_text()) for name in ("drafts", "simulate"))
report = {
    "minutes": round((time.time() - started) / 60, 2), "base": str(base),
    "stages_minutes": {name: round(int(seconds) / 60, 2) for name, seconds in stages},
    "recorded": {"videos": drafts["videos"], "frames": drafts["frames"], "draft_tracks": drafts["tracks"]},
    "labelled": {"videos": labelled["videos"], "frames": labelled["frames"], "tracks": labelled["tracks"]},
    "scores": {f"{model}_{world}": {"AP": scores[f"{model}_{world}_evaluation"]["AP"],
                                    "HOTA": scores[f"{model}_{world}_robot"]["hota"]}
               for model in ("base", "finetuned") for world in ("shifted", "base")},
}
(out / "report.json").write_text(json.dumps(report, indent=1))
print(f"flywheel: done in {report['minutes']} min; {labelled['frames']} frames labelled "
      f"({labelled['videos']} recorded moments, {labelled['tracks']} true tracks)")
print("| world (held-out videos) | AP before | AP after | HOTA before | HOTA after |")
print("|---|---|---|---|---|")
for world in ("shifted", "base"):
    before, after = report["scores"][f"base_{world}"], report["scores"][f"finetuned_{world}"]
    print(f"| {world} | {before['AP']:.3f} | {after['AP']:.3f} | {before['HOTA']:.3f} | {after['HOTA']:.3f} |")
print("| stage | minutes |\n|---|---|")
for name, minutes in report["stages_minutes"].items():
    print(f"| {name} | {minutes:.2f} |")
print(f"report: {out / 'report.json'}")
EOF
