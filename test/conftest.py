"""Session fixtures shared by the model, training and ROS tests."""
import dataclasses
import json
from pathlib import Path

import pytest
import torch

from training.config import load_train_config
from training.split import split_annotations
from training.synthetic import generate_synthetic_set
from training.train import train


TEST_ROOT = Path(__file__).resolve().parent


def needs_cuda(item: pytest.Item) -> bool:
    """A CUDA test is one skipped where CUDA is missing: skipif(not torch.cuda.is_available(), reason=...CUDA...).
    The condition's value, not only the reason's words, tells it from a test that runs only WITHOUT CUDA."""
    cuda_missing = not torch.cuda.is_available()
    return any(isinstance(mark.args[0] if mark.args else None, bool) and mark.args[0] == cuda_missing
               and any(word in mark.kwargs.get("reason", "").lower() for word in ("cuda", "gpu"))
               for mark in item.iter_markers("skipif"))


@pytest.hookimpl(tryfirst=True)  # before -m selects by these markers
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The markers, assigned here rather than in each file (pytest.ini describes them; docs/development.md says
    how to run each subset): ``ros`` for everything under test/ros/, ``gpu`` for tests that need CUDA,
    ``slow`` for tests that use the session-trained model (the fixture ``trained_checkpoint``, directly or
    through another fixture) in addition to those marked slow in their file."""
    for item in items:
        if item.path.is_relative_to(TEST_ROOT / "ros"):
            item.add_marker(pytest.mark.ros)
        if needs_cuda(item):
            item.add_marker(pytest.mark.gpu)
        if "trained_checkpoint" in getattr(item, "fixturenames", ()):  # launch_testing items have none
            item.add_marker(pytest.mark.slow)


ROOT = Path(__file__).resolve().parents[1]
# The demo trains 700. No wall-clock budget, and two threads (CI's two cores: 417 s against 719 s on one) with
# deterministic algorithms (TrainConfig.threads, .deterministic): the same weights on every run on the same kind
# of CPU, however slow or busy the machine, so the accuracy bars of the tests that use this model cannot flake.
TRAINING_ITERATIONS = 300
TRAINING_THREADS = 2
HELD_OUT_VIDEOS = 6


@dataclasses.dataclass(frozen=True)
class TrainedModel:
    checkpoint: Path  # model.pt of the small config trained on the synthetic set
    annotations: Path  # held-out videos (with ground truth) of that set
    frames: Path  # the set's JPEGImages folder
    train_annotations: Path


@pytest.fixture(scope="session")
def trained_checkpoint(tmp_path_factory) -> TrainedModel:
    """The small config trained from scratch on a generated synthetic set, on the CPU: the end-to-end
    training run of issue 3, and the model the node, replay and evaluation tests run."""
    folder = tmp_path_factory.mktemp("trained")
    annotations = generate_synthetic_set(folder / "synth", videos=30, seed=11)
    train_split, val_split = split_annotations(json.loads(annotations.read_text()), val_count=HELD_OUT_VIDEOS,
                                               seed=0)
    train_json, val_json = folder / "train.json", folder / "val.json"
    train_json.write_text(json.dumps(train_split))
    val_json.write_text(json.dumps(val_split))
    frames = folder / "synth" / "JPEGImages"
    config = load_train_config(ROOT / "config" / "train" / "synthetic_small.yaml", [
        f"data.annotations={train_json}", f"data.frames={frames}", f"max_iters={TRAINING_ITERATIONS}",
        "max_minutes=0", "checkpoint_every=100", f"threads={TRAINING_THREADS}", "deterministic=true"])
    checkpoint = train(config, folder / "run", progress=False)
    return TrainedModel(checkpoint, val_json, frames, train_json)
