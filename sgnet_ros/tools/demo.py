"""``sgnet-demo``: the whole system on this machine with nothing downloaded.

1. generates the synthetic video set (sgnet-synth) and holds 8 videos out (sgnet-split);
2. trains the small config on the CPU (sgnet-train, config/train/synthetic_small.yaml, at most 10 minutes);
3. makes a bag of the held-out videos (sgnet-bag);
4. starts the node (sgnet-node) as a robot runs it, with the checkpoint's robot tracker profile (its default), on
   simulated time and replays the bag through it lock-step with /clock (sgnet-replay --clock), recording its
   outputs: what a robot sees, scored;
5. scores video AP on the same videos with the evaluation tracker profile (sgnet-eval --tracker-profile
   evaluation, the same predictor the node runs; the lock-step replay equals sgnet-eval, so a second replay would
   add time, not information);
6. writes an overlay video from the node's debug images (the robot profile's tracks: what the node serves) and
   report.json, and prints the report.

Steps 1 and 2 are cached (by default under ~/.cache/sgnet_ros/demo, keyed by the training config), so a second
run does steps 3 to 6 only. Each step runs the same command a user would, in a subprocess, so this module
imports neither the training package nor anything the node does not.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import yaml
import numpy as np
from rosbags.highlevel import AnyReader

from sgnet_model.checkpoint import CheckpointError, load_checkpoint
from sgnet_model.config import config_dir
from sgnet_model.data.ytvis_metric import per_class_line, tracking_lines

HELD_OUT_VIDEOS = 8
NAMESPACE = "/sgnet_demo"
NODE_START_S = 120  # the replay waits this long for the node to start (58 s seen on 2 cores at load average 11)


class DemoError(RuntimeError):
    """A step of the demo failed; the message names the step and its log."""


def run_step(name: str, arguments: list[str], log_dir: Path, env: dict[str, str]) -> str:
    """Run ``python -m arguments...``; its stderr goes to LOG_DIR/name.log, its stdout is returned."""
    log = log_dir / f"{name}.log"
    print(f"[sgnet-demo] {name} ...", file=sys.stderr, flush=True)
    started = time.monotonic()
    with open(log, "w") as stderr:
        done = subprocess.run([sys.executable, "-m", *arguments], stdout=subprocess.PIPE, stderr=stderr, text=True,
                              env=env)
    if done.returncode != 0:
        raise DemoError(f"step {name!r} failed (exit {done.returncode}); see {log}")
    print(f"[sgnet-demo] {name} done in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    return done.stdout


def trained_model(cache: Path, env: dict[str, str]) -> tuple[Path, Path, Path, bool]:
    """The synthetic set, its held-out split and the small model trained on it, from the cache when there."""
    train_yaml = config_dir() / "train" / "synthetic_small.yaml"
    key = hashlib.sha256(train_yaml.read_bytes() + (config_dir() / "model" / "resnet18_small.yaml").read_bytes())
    folder = cache / key.hexdigest()[:12]
    model, val, frames = folder / "run" / "model.pt", folder / "split" / "val.json", folder / "synth" / "JPEGImages"
    try:
        load_checkpoint(model)
        return model, val, frames, True
    except CheckpointError:
        pass
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "logs").mkdir(parents=True)
    logs = folder / "logs"
    run_step("generate synthetic set", ["training.synthetic", "--output", str(folder / "synth"), "--no-progress"],
             logs, env)
    run_step("hold out videos", ["training.split", str(folder / "synth" / "annotations.json"), "--val-count",
                                 str(HELD_OUT_VIDEOS), "--output", str(folder / "split")], logs, env)
    run_step("train the small model (at most 10 minutes)", [
        "training.train", "--config", str(train_yaml), "--output", str(folder / "run"), "--no-progress",
        "--set", f"data.annotations={folder / 'split' / 'train.json'}", "--set", f"data.frames={frames}"], logs, env)
    return model, val, frames, False


def trained_iterations(checkpoint: Path) -> tuple[int, int]:
    """(iterations the cached model was trained for, iterations its recipe asks for), from the run's last.pt."""
    state = load_checkpoint(checkpoint.with_name("last.pt")).training_state or {}
    recipe = yaml.safe_load((config_dir() / "train" / "synthetic_small.yaml").read_text())
    return int(state.get("iteration", 0)), int(recipe["max_iters"])


def start_node(checkpoint: Path, log_dir: Path, env: dict[str, str]) -> subprocess.Popen:
    """The node on the checkpoint with its defaults (thresholds and the robot tracker profile: what a robot is
    served, and what the overlay video shows), reliable QoS (a bag replay must not lose frames) and simulated time
    (the replay's /clock, so that its input age is on the bag's time)."""
    log = open(log_dir / "node.log", "w")
    return subprocess.Popen([sys.executable, "-m", "sgnet_ros.node", "--ros-args", "-r", f"__ns:={NAMESPACE}",
                             "-p", f"checkpoint:={checkpoint}", "-p", "qos_reliability:=reliable",
                             "-p", "use_sim_time:=true"],
                            stdout=log, stderr=subprocess.STDOUT, env=env)


def stop_node(node: subprocess.Popen) -> None:
    node.send_signal(signal.SIGINT)
    try:
        node.wait(timeout=20)
    except subprocess.TimeoutExpired:
        node.kill()


def write_overlay_video(outputs_bag: Path, path: Path, fps: float) -> int:
    """The node's debug images (masks coloured by track id) as an mp4; returns the number of frames."""
    writer = None
    count = 0
    with AnyReader([outputs_bag]) as reader:
        connections = [c for c in reader.connections if c.topic.endswith("/debug_image")]
        for connection, _, raw in reader.messages(connections=connections):
            message = reader.deserialize(raw, connection.msgtype)
            rgb = np.frombuffer(message.data, np.uint8).reshape(message.height, message.step)[:, :message.width * 3]
            if writer is None:
                writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps,
                                         (message.width, message.height))
            writer.write(cv2.cvtColor(rgb.reshape(message.height, message.width, 3), cv2.COLOR_RGB2BGR))
            count += 1
    if writer is not None:
        writer.release()
    return count


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sgnet-demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=Path("output/demo"), help="where the results go")
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get(
        "XDG_CACHE_HOME", Path.home() / ".cache")) / "sgnet_ros" / "demo", help="where the trained model is kept")
    parser.add_argument("--retrain", action="store_true", help="ignore the cache and train again")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.monotonic()
    output = args.output.resolve()
    shutil.rmtree(output, ignore_errors=True)
    (output / "logs").mkdir(parents=True)
    env = {**os.environ, "ROS_DOMAIN_ID": str(random.randint(100, 200)), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
           "ROS_LOG_DIR": str(output / "logs" / "ros")}
    try:
        if args.retrain:
            shutil.rmtree(args.cache, ignore_errors=True)
        checkpoint, val, frames, cached = trained_model(args.cache.resolve(), env)
        trained, planned = trained_iterations(checkpoint)
        bag = output / "held_out"  # sgnet-bag writes the bag folder and held_out.ground_truth.json beside it
        run_step("make a bag of the held-out videos", [
            "sgnet_ros.tools.bag", "ytvis", "--annotations", str(val), "--frames", str(frames), "-o", str(bag)],
            output / "logs", env)
        node = start_node(checkpoint, output / "logs", env)
        try:
            report = json.loads(run_step("replay the bag through the node", [
                "sgnet_ros.tools.replay", "--bag", str(bag), "--node-namespace", NAMESPACE, "--as-fast-as-node", "--clock",
                "--wait", str(NODE_START_S), "--ground-truth", str(output / "held_out.ground_truth.json"),
                "--debug-image", "--output", str(output / "replay"), "--json", "--no-progress"], output / "logs", env))
        finally:
            stop_node(node)
        evaluation = json.loads(run_step("score video AP with the evaluation tracker profile", [
            "training.evaluate", "--checkpoint", str(checkpoint), "--annotations", str(val), "--frames", str(frames),
            "--tracker-profile", "evaluation", "--output", str(output / "evaluation_profile"), "--json",
            "--no-progress"], output / "logs", env))
    except (DemoError, CheckpointError) as error:
        print(f"sgnet-demo: error: {error}", file=sys.stderr)
        return 2
    video = output / "overlay.mp4"
    frames_written = write_overlay_video(output / "replay" / "outputs", video, fps=6.0)
    summary = {"minutes": round((time.monotonic() - started) / 60, 2), "model_from_cache": cached,
               "checkpoint": str(checkpoint), "training_iterations": trained, "training_iterations_planned": planned,
               "overlay_video": str(video), "overlay_frames": frames_written,
               "evaluation_profile": evaluation, "robot_profile": report["metrics"], "replay": report}
    (output / "report.json").write_text(json.dumps(summary, indent=2))
    print(f"sgnet-demo: done in {summary['minutes']} min (model {'from cache' if cached else 'trained now'})")
    print("\n".join(report_lines(summary)))
    warning = weaker_than_sized(summary)
    if warning:
        print(f"[sgnet-demo] warning: {warning}", file=sys.stderr, flush=True)
    print(f"  overlay video: {video}\n  report:        {output / 'report.json'}\n  checkpoint:    {checkpoint}")
    return 0


def report_lines(summary: dict[str, Any]) -> list[str]:
    """The demo's report: video AP (evaluation profile, sgnet-eval), what a robot sees (robot profile, through the
    node), AP per class, mask IoU of matched instances, latency and the node's input age."""
    evaluation, robot, replay = summary["evaluation_profile"], summary["robot_profile"], summary["replay"]
    lines = [f"video AP (evaluation profile, sgnet-eval; {evaluation['videos']} held-out videos, "
             f"{evaluation['frames']} frames):",
             "  " + "  ".join(f"{name} {evaluation[name]:.3f}" for name in ("AP", "AP50", "AP75", "AR100")),
             *(f"  {line}" for line in tracking_lines(evaluation)),
             f"  {per_class_line(evaluation['AP_per_class'])}",
             "what a robot sees (robot profile, through the node, as overlay.mp4 shows it):"]
    lines += [f"  {line}" for line in tracking_lines(robot)]
    latency = {key: replay.get(f"latency_ms_{key}") or float("nan") for key in ("median", "p90")}
    age = (replay.get("node_diagnostics") or {}).get("input_age_ms_median", "n/a")
    with contextlib.suppress(ValueError):
        age = f"{float(age):.1f} ms"  # otherwise the node's words (no stamps, or stamps on another clock)
    lines.append(f"latency median {latency['median']:.1f} ms, p90 {latency['p90']:.1f} ms over "
                 f"{replay.get('frames_out')} frames; node's input age (median, its last diagnostics) {age}")
    lines.append(f"model trained {summary['training_iterations']} iterations (at most "
                 f"{summary['training_iterations_planned']}; the schedule runs over the 10-minute budget)")
    return lines


# The held-out AP the demo's model reaches on 2 idle cores within its budget (README, "Status"): the schedule runs
# over the wall-clock budget (sgnet-train), so a slower machine completes a shorter one; the demo warns only when
# that leaves the model measurably weaker than this.
SIZED_FOR_AP = 0.80


def weaker_than_sized(summary: dict[str, Any]) -> str | None:
    """A warning when the held-out AP (evaluation profile) lies below SIZED_FOR_AP, else None."""
    ap = summary["evaluation_profile"].get("AP")
    if ap is None or ap >= SIZED_FOR_AP:
        return None
    return (f"the held-out AP {ap:.3f} is below the {SIZED_FOR_AP:.2f} the demo reaches on 2 idle cores; the model "
            f"trained {summary['training_iterations']} iterations in its 10-minute schedule, so this machine is "
            f"slower or was busier (sgnet-demo --retrain on an idle machine trains it again)")


if __name__ == "__main__":
    sys.exit(main())
