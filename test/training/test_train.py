"""sgnet-train: configuration, the learning-rate schedule, exact resumption, and torchrun on the CPU."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sgnet_model.checkpoint import load_checkpoint
from sgnet_model.config import ConfigError
from training.config import TrainConfig, load_train_config
from training.synthetic import generate_synthetic_set
from training.train import learning_rate_factor, main, train

ROOT = Path(__file__).resolve().parents[2]
SMALL_YAML = ROOT / "config" / "train" / "synthetic_small.yaml"


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synth")
    annotations = generate_synthetic_set(folder, videos=4, frames=5, width=160, height=96, seed=3)
    return annotations, folder / "JPEGImages"


def tiny_config(tiny_set, **fields) -> TrainConfig:
    annotations, frames = tiny_set
    overrides = [f"data.annotations={annotations}", f"data.frames={frames}", "data.workers=0", "batch_size=2",
                 "model.input_width=160", "model.input_height=96", "log_every=1", "checkpoint_every=3",
                 "max_minutes=0"]
    return load_train_config(SMALL_YAML, overrides + [f"{k}={v}" for k, v in fields.items()])


def test_shipped_training_configs_load():
    for path in (ROOT / "config" / "train").glob("*.yaml"):
        config = load_train_config(path)
        assert config.model.backbone in path.read_text() or config.model_config in path.read_text()
    small = load_train_config(SMALL_YAML)
    assert small.model.backbone == "resnet18" and small.model.fpn_channels == 64  # from resnet18_small.yaml
    assert small.optim.momentum == 0.9


@pytest.mark.parametrize("override, message", [
    ("optim.base_rate=0.1", "unknown field"), ("batch_size", "key=value"), ("batch_size=0", "at least 1"),
    ("model.backbone=vgg16", "backbone"), ("optim.base_lr=fast", "expected float")])
def test_bad_overrides_are_named(override, message):
    with pytest.raises(ConfigError, match=message):
        load_train_config(SMALL_YAML, [override])


def test_missing_config_file_is_a_clear_error(tmp_path, capsys):
    assert main(["--config", str(tmp_path / "nope.yaml"), "--output", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_learning_rate_schedule_by_hand():
    config = load_train_config(SMALL_YAML, ["max_iters=1000", "optim.warmup_iters=100",
                                            "optim.warmup_start_fraction=0.01", "optim.final_lr_fraction=0.1"])
    assert learning_rate_factor(0, config) == pytest.approx(0.01)
    # halfway through warm-up: (0.01 + 0.99 * 0.5) times the decay 0.1 ** (50 / 1000)
    assert learning_rate_factor(50, config) == pytest.approx(0.505 * 10 ** (-0.05))
    assert learning_rate_factor(100, config) == pytest.approx(10 ** (-0.1))
    assert learning_rate_factor(500, config) == pytest.approx(10 ** (-0.5))
    assert learning_rate_factor(1000, config) == pytest.approx(0.1)


def read_losses(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_resumed_run_reproduces_the_uninterrupted_losses(tiny_set, tmp_path):
    straight = tmp_path / "straight"
    train(tiny_config(tiny_set, max_iters=6), straight, progress=False)
    interrupted = tmp_path / "interrupted"
    train(tiny_config(tiny_set, max_iters=6), interrupted, progress=False, stop_after=3)
    assert load_checkpoint(interrupted / "last.pt").training_state["iteration"] == 3
    train(tiny_config(tiny_set, max_iters=6), interrupted, resume=interrupted / "last.pt", progress=False)
    expected, resumed = read_losses(straight), read_losses(interrupted)
    assert [r["iteration"] for r in resumed] == list(range(1, 7))
    for a, b in zip(expected, resumed):
        for name in ("cls", "box", "centerness", "mask", "motion", "lr"):
            assert b[name] == pytest.approx(a[name], rel=1e-5, abs=1e-6), f"iteration {a['iteration']} {name}"
    final_a = load_checkpoint(straight / "model.pt").model_state
    final_b = load_checkpoint(interrupted / "model.pt").model_state
    assert all(torch.allclose(final_a[k].float(), final_b[k].float(), atol=1e-6) for k in final_a)


def test_resuming_from_weights_only_is_refused(tiny_set, tmp_path, capsys):
    run = tmp_path / "run"
    train(tiny_config(tiny_set, max_iters=1), run, progress=False)
    annotations, frames = tiny_set
    code = main(["--config", str(SMALL_YAML), "--output", str(run), "--resume", str(run / "model.pt"),
                 "--set", f"data.annotations={annotations}", "--set", f"data.frames={frames}"])
    assert code == 2 and "cannot be resumed" in capsys.readouterr().err


@pytest.mark.slow
def test_torchrun_two_cpu_processes_keep_identical_replicas(tiny_set, tmp_path):
    annotations, frames = tiny_set
    output = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "training.train", "--config", str(SMALL_YAML), "--output", str(output), "--no-progress",
               "--set", f"data.annotations={annotations}", "--set", f"data.frames={frames}", "--set",
               "data.workers=0", "--set", "batch_size=1", "--set", "max_iters=3", "--set", "model.input_width=160",
               "--set", "model.input_height=96", "--set", "log_every=1"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "all 2 replicas hold identical parameters" in done.stderr
    assert sorted(p.name for p in output.iterdir() if p.suffix == ".pt") == ["last.pt", "model.pt"]
    assert len(read_losses(output)) == 3  # only rank 0 logs
    state = load_checkpoint(output / "last.pt").training_state
    assert state["iteration"] == 3 and len(state["rng"]) == 2
    assert math.isfinite(read_losses(output)[-1]["total"])
