"""sgnet-train --init-from (training/finetune.py): a run that starts from a checkpoint's weights, network and tracker
profiles with a fresh schedule, the classifier's rows matched to the new set's classes by name."""
import dataclasses
import json
import math

import pytest
import torch

from sgnet_model.checkpoint import load_checkpoint, save_checkpoint
from training.config import load_train_config
from training.synthetic import generate_synthetic_set
from training.train import main, train

from test_train import SMALL_YAML, tiny_overrides

TINY_LR = ["optim.base_lr=1e-12", "optim.warmup_iters=0"]  # one step that moves no weight measurably
CLASSIFIER = "head.classification_head.cls_logits."
FOCAL_PRIOR_BIAS = -math.log((1 - 0.01) / 0.01)  # a fresh classifier's bias: sigmoid(bias) = 0.01 (Focal loss)


@pytest.fixture(scope="module")
def start(tmp_path_factory):
    """A one-iteration model on a tiny set, its score threshold, robot start score and classifier rows made
    distinctive (row i's bias i + 0.5, its weights shifted by i: no row looks like another or like a fresh one)."""
    folder = tmp_path_factory.mktemp("start")
    annotations = generate_synthetic_set(folder / "set", videos=4, frames=5, width=160, height=96, seed=3)
    overrides = tiny_overrides((annotations, folder / "set" / "JPEGImages"), max_iters=1)
    train(load_train_config(SMALL_YAML, overrides + ["model.score_threshold=0.123"]), folder / "run", progress=False)
    checkpoint = load_checkpoint(folder / "run" / "model.pt")
    profiles = {**checkpoint.tracker_profiles,
                "robot": dataclasses.replace(checkpoint.tracker_profiles["robot"], new_track_score=0.77)}
    state = dict(checkpoint.model_state)
    rows = torch.arange(len(checkpoint.model_config.class_names), dtype=torch.float32)
    state[CLASSIFIER + "bias"] = rows + 0.5
    state[CLASSIFIER + "weight"] = state[CLASSIFIER + "weight"] + rows[:, None, None, None]
    save_checkpoint(folder / "start.pt", checkpoint.model_config, state, None, profiles)
    return folder / "start.pt", annotations


def renamed_set(annotations, folder):
    """The same videos with the first two classes' names swapped and the third renamed to a class the start
    model never saw."""
    data = json.loads(annotations.read_text())
    names = [category["name"] for category in data["categories"]]
    renames = {names[0]: names[1], names[1]: names[0], names[2]: "mug"}
    for category in data["categories"]:
        category["name"] = renames.get(category["name"], category["name"])
    path = folder / "renamed.json"
    path.write_text(json.dumps(data))
    return path, names


@pytest.mark.slow  # trains twice (more than 2.5 s)
def test_fine_tuning_keeps_the_network_and_matches_classes_by_name(start, tmp_path, capsys):
    start_path, annotations = start
    renamed, old_names = renamed_set(annotations, tmp_path)
    code = main(["--config", str(SMALL_YAML), "--output", str(tmp_path / "run"), "--init-from", str(start_path),
                 "--no-progress", *[part for override in tiny_overrides((renamed, annotations.parent / "JPEGImages"),
                                                                        max_iters=1) + TINY_LR
                                    + ["model.score_threshold=0.5"] for part in ("--set", override)]])
    assert code == 0
    assert "fine-tuning" in capsys.readouterr().err
    before, after = load_checkpoint(start_path), load_checkpoint(tmp_path / "run" / "model.pt")
    assert after.model_config.class_names == (old_names[1], old_names[0], "mug", *old_names[3:])
    # the checkpoint's network and thresholds (not the config's model section), and its tracker profiles
    assert dataclasses.replace(after.model_config, class_names=before.model_config.class_names) == before.model_config
    assert after.model_config.score_threshold == 0.123 and after.tracker_profiles["robot"].new_track_score == 0.77
    # BatchNorm statistics included: fine-tuning keeps the checkpoint's (the loop below compares every tensor)
    # a fresh schedule: one iteration of this run, not the start's plus one
    assert load_checkpoint(tmp_path / "run" / "last.pt").training_state["iteration"] == 1

    classifier = CLASSIFIER
    for key, value in after.model_state.items():
        if key.startswith(classifier):
            continue  # below
        assert torch.allclose(value, before.model_state[key], atol=1e-6), key
    for part in ("weight", "bias"):
        old, new = before.model_state[classifier + part], after.model_state[classifier + part]
        assert torch.allclose(new[0], old[1], atol=1e-6) and torch.allclose(new[1], old[0], atol=1e-6)
        assert torch.allclose(new[3:], old[3:], atol=1e-6)
    bias = after.model_state[classifier + "bias"]
    assert bias[[0, 1, 3]].tolist() == pytest.approx([1.5, 0.5, 3.5], abs=1e-5)  # rows by name, worked out above
    assert bias[2].item() == pytest.approx(FOCAL_PRIOR_BIAS, abs=1e-5)  # "mug" starts from the prior
    assert after.model_state[classifier + "weight"][2].abs().max() < 0.1  # a fresh row: normal(0, 0.01)


def test_a_missing_start_checkpoint_exits_2_with_one_line(tmp_path, capsys):
    annotations = generate_synthetic_set(tmp_path / "set", videos=1, frames=2, width=160, height=96, seed=3)
    code = main(["--config", str(SMALL_YAML), "--output", str(tmp_path / "run"),
                 "--init-from", str(tmp_path / "none.pt"),
                 *[part for override in tiny_overrides((annotations, annotations.parent / "JPEGImages"))
                   for part in ("--set", override)]])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"sgnet-train: error: checkpoint {tmp_path / 'none.pt'} does not exist")
    assert len(err.strip().splitlines()) == 1
