"""scripts/flywheel.sh, the labelling loop through the documented commands, at a tiny size (4 videos of 6 frames a
world, 160x96, 3 training and 2 fine-tuning iterations): the stages hand over what the next one needs. Worked out
here without the script's own files where it matters: the recorded frames from the node's recording rule and the
pool bag's stamps, the labels from the generator's annotations and the frames' pixels (not from the ground-truth
file's stamp mapping that sgnet-label simulate reads), the fine-tuned weights against the base model's and a fresh
network's."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from rosbags.highlevel import AnyReader

from sgnet_model.checkpoint import load_checkpoint
from sgnet_model.data.ytvis import decode_mask, load_annotations
from sgnet_model.network.model import SGNet

pytestmark = pytest.mark.slow  # trains twice, runs the node and eight evaluations (about a minute on 2 idle cores)

ROOT = Path(__file__).resolve().parents[3]
DAY_NS = 86_400 * 1_000_000_000  # sgnet-replay's warm-up frame: the bag's first frame stamped a day later
# Every frame is uncertain enough (MIN_EVENTS=0), at most one moment per 2 s (a video lasts 1 s, 3 s apart), a
# window of 0.35 s: each pool video's frames 0-2 (0, 1/6 and 2/6 s) are recorded, and the warm-up frame alone.
TINY = {"BASE_VIDEOS": "4", "BASE_HELD_OUT": "1", "SHIFTED_VIDEOS": "4", "SHIFTED_HELD_OUT": "1", "FRAMES": "6",
        "WIDTH": "160", "HEIGHT": "96", "BASE_ITERS": "3", "TUNE_ITERS": "2", "CALIBRATION_VIDEOS": "0",
        "MIN_EVENTS": "0", "MIN_INTERVAL_S": "2", "WINDOW_S": "0.35", "TUNE_LR": "0.0001",
        "TRAIN_SET": "model.input_width=160 model.input_height=96 data.workers=0 batch_size=2 optim.warmup_iters=0",
        "BACKEND": "torch", "PRECISION": "fp32"}  # no graph exports: the loop's hand-overs are the subject
# No warm-up: the base model's 3 iterations at lr 0.01 take it measurably away from its seed's fresh network, the
# fine-tuning's 2 at 0.0001 move it a hundredth as far.
RECORDED = 3  # frames of each pool video


@pytest.fixture(scope="module")
def loop(tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("flywheel") / "out"
    done = subprocess.run(["bash", "scripts/flywheel.sh", str(out)], cwd=ROOT, env={**os.environ, **TINY},
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return out, done.stdout


def stamps(bag: Path) -> list[int]:
    with AnyReader([bag]) as reader:
        return [stamp for _, stamp, _ in reader.messages(connections=[c for c in reader.connections
                                                                       if c.msgtype.endswith("Image")])]


def pool_frames(out: Path) -> list[list[int]]:
    """Each pool video's frames' stamps, from the pool bag (its videos back to back in the pool file's order)."""
    pool, lengths = stamps(out / "pool"), [v["length"] for v in json.loads(
        (out / "shifted" / "split" / "train.json").read_text())["videos"]]
    assert len(pool) == sum(lengths)
    starts = np.cumsum([0, *lengths])
    return [pool[a:b] for a, b in zip(starts[:-1], starts[1:])]


def test_the_node_records_the_moments_and_the_drafts_name_their_frames(loop):
    out, _ = loop
    videos = pool_frames(out)
    wanted = [stamp for video in videos for stamp in video[:RECORDED]]
    (bag,) = (out / "recorded").iterdir()
    assert stamps(bag) == sorted([*wanted, videos[0][0] + DAY_NS])
    drafts = json.loads((out / "label" / "drafts.json").read_text())
    assert [s["stamps_ns"] for s in drafts["sgnet_label"]["videos"]] == \
        [video[:RECORDED] for video in videos] + [[videos[0][0] + DAY_NS]]
    assert all(v["file_names"] == [f"{v['name']}/{n:05d}.jpg" for n in (0, 5, 10)] for v in drafts["videos"][:-1])


def test_the_simulated_labels_are_the_generators_ground_truth_of_those_frames(loop):
    """Each labelled frame is matched to the shifted world's frame it shows by its pixels (the closest of all the
    world's frames, less than 1 grey level apart on average and a third of the next closest), and its instances are
    the generator's objects there: the same masks, classes and tracks."""
    out, _ = loop
    synth = out / "shifted" / "synth"
    truth = load_annotations(synth / "annotations.json")
    world = {(video.id, index): cv2.imread(str(synth / "JPEGImages" / name)).astype(np.int16)
             for video in truth.videos.values() for index, name in enumerate(video.file_names)}
    train = load_annotations(out / "label" / "train.json")
    assert sum(video.length for video in train.videos.values()) == 3 * RECORDED
    for video in train.videos.values():
        shown = []
        for name in video.file_names:
            frame = cv2.imread(str(out / "label" / "JPEGImages" / name)).astype(np.int16)
            distance = sorted((float(np.abs(frame - pixels).mean()), key) for key, pixels in world.items())
            assert distance[0][0] < 1 and distance[1][0] > 3 * distance[0][0], distance[:2]  # JPEG's loss only
            shown.append(distance[0][1])
        (source,) = {video_id for video_id, _ in shown}
        assert [index for _, index in shown] == list(range(RECORDED))
        expected = sorted((truth.categories[truth.class_index(a.category_id)].name,
                           [a.mask(i) for i in range(RECORDED)]) for a in truth.annotations[source]
                          if any(a.segmentations[i] is not None for i in range(RECORDED)))
        got = sorted((train.categories[train.class_index(a.category_id)].name,
                      [None if s is None else decode_mask(s) for s in a.segmentations])
                     for a in train.annotations[video.id])
        assert len(got) == len(expected) > 0
        for (name, masks), (wanted_name, wanted_masks) in zip(got, expected):
            assert name == wanted_name
            assert all((m is None and w is None) or np.array_equal(m, w) for m, w in zip(masks, wanted_masks))


def test_fine_tuning_starts_from_the_base_model(loop):
    """The fine-tuned weights differ from the base model's and lie far closer to them than to the fresh network the
    fine-tuning run (seed 0, as the base's) would have started from without --init-from."""
    out, _ = loop
    base, tuned = load_checkpoint(out / "base" / "run" / "model.pt"), load_checkpoint(out / "finetuned" / "model.pt")
    torch.manual_seed(0)
    fresh = SGNet(base.model_config, load_pretrained=False).state_dict()
    weights = [k for k, v in base.model_state.items() if v.is_floating_point() and "running" not in k]

    def distance(a: dict, b: dict) -> float:
        return sum(float((a[k].float() - b[k].float()).pow(2).sum()) for k in weights) ** 0.5

    assert 0 < distance(tuned.model_state, base.model_state) < distance(tuned.model_state, fresh) / 10
    assert tuned.model_config.class_names == base.model_config.class_names
    assert f"fine-tuning {out / 'base' / 'run' / 'model.pt'}" in (out / "logs" / "finetune.log").read_text()


def test_the_report_has_the_numbers(loop):
    out, printed = loop
    report = json.loads((out / "report.json").read_text())
    assert report["labelled"] == {"videos": 3, "frames": 3 * RECORDED, "tracks": report["labelled"]["tracks"]}
    assert set(report["scores"]) == {"base_shifted", "base_base", "finetuned_shifted", "finetuned_base"}
    for scores in report["scores"].values():
        assert all(0 <= scores[name] <= 1 for name in ("AP", "HOTA"))
    evaluated = json.loads((out / "eval" / "finetuned_shifted_evaluation.json").read_text())
    assert evaluated["videos"] == 1 and report["scores"]["finetuned_shifted"]["AP"] == evaluated["AP"]
    assert list(report["stages_minutes"]) == [
        "synthesize the base world", "train the base model", "synthesize the shifted world, bag its pool videos",
        "replay the pool through the recording node", "draft, label (simulated) and collect",
        "fine-tune on the labelled moments with the base set mixed in", "evaluate before and after on both worlds"]
    assert f"{3 * RECORDED} frames labelled" in printed
    assert "| shifted |" in printed and "| base |" in printed
