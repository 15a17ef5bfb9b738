"""Training configuration: the one source of training defaults, loaded from ``config/train/*.yaml``.

A file names its model variant (``model_config``: a file of ``config/model/`` or a path) and may override
fields of its ``model`` section; class names always come from the training set's categories.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import yaml

from sgnet_model.config import ConfigError, ModelConfig, from_dict, named_config, read_yaml, to_dict


@dataclasses.dataclass(frozen=True)
class DataConfig:
    annotations: str = ""  # YouTube-VIS annotation JSON of the training videos
    frames: str = ""  # the JPEGImages folder its file_names are relative to
    clip_length: int = 2  # frames per sample; pairs feed the motion loss (Eq. 4)
    # a clip's frames are 1..max_frame_gap annotated frames apart (drawn per clip), so the motion head learns
    # movements over the range of elapsed times a camera at any rate, or a loaded node, gives it
    max_frame_gap: int = 4
    scale_range: tuple[float, float] = (0.8, 1.2)  # multi-scale factor on the fit-to-input size
    flip_probability: float = 0.5
    workers: int = 2  # DataLoader worker processes per training process
    # rehearsal (docs/flywheel.md): an earlier training set (a YouTube-VIS JSON and its JPEGImages folder) mixed into
    # every epoch, so that fine-tuning on a new world's few labelled videos does not forget the old world; its
    # categories must be the training set's
    rehearsal_annotations: str = ""
    rehearsal_frames: str = ""
    repeats: int = 1  # every clip of data.annotations this many times an epoch: its weight against the rehearsal set

    def __post_init__(self) -> None:
        if self.clip_length < 1 or self.max_frame_gap < 1 or self.workers < 0 or self.repeats < 1:
            raise ConfigError("data: clip_length, max_frame_gap and repeats must be at least 1, workers at least 0")
        if bool(self.rehearsal_annotations) != bool(self.rehearsal_frames):
            raise ConfigError("data: rehearsal_annotations and rehearsal_frames go together (the earlier set's "
                              "annotation file and the JPEGImages folder its file_names are relative to)")


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """SGD with momentum 0.9 and the paper's exponential decay (Section 4.1: lr 0.005, decaying exponentially)
    after a linear warm-up: lr(t) = base_lr * final_lr_fraction ** (t / max_iters)."""

    base_lr: float = 0.005
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_iters: int = 500
    warmup_start_fraction: float = 0.001
    final_lr_fraction: float = 0.05
    grad_clip_norm: float = 10.0  # 0 disables clipping

    def __post_init__(self) -> None:
        if self.base_lr <= 0 or not 0 < self.final_lr_fraction <= 1 or not 0 < self.warmup_start_fraction <= 1:
            raise ConfigError("optim: base_lr must be positive, the fractions in (0, 1]")
        if self.warmup_iters < 0 or self.grad_clip_norm < 0:
            raise ConfigError("optim: warmup_iters and grad_clip_norm must be 0 or more")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    model_config: str = "resnet50"  # a name in config/model/ or a YAML path
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)  # filled from model_config + overrides
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    batch_size: int = 4  # clips per process
    max_iters: int = 20000
    max_minutes: float = 0.0  # wall-clock budget; 0 means none. The final checkpoint is written either way.
    checkpoint_every: int = 1000
    log_every: int = 20
    seed: int = 0
    device: str = "auto"  # auto (cuda when there is one), cpu, cuda
    amp: bool = True  # mixed precision: fp16 on CUDA, bf16 on a CPU with native bf16 (train.autocast_dtype)
    threads: int = 0  # CPU threads while training; 0: as torch is set (one per core), or 1 when deterministic
    # torch's deterministic algorithms on a fixed thread count (``threads``, 1 when 0): the same seed gives the same
    # weights on the same kind of processor with the same threads (a sum splits by the thread count); slower
    deterministic: bool = False
    # the robot profile's start score is chosen for the trained model on this many of its training videos
    # (training/calibrate.py, docs/model.md), after the schedule completes; 0 keeps the model config's
    calibration_videos: int = 24
    # fine-tuning (training/finetune.py): a checkpoint whose weights, network and tracker profiles this run starts
    # from (model_config and model are then not used); the schedule starts afresh. Empty: a new model
    init_from: str = ""

    def __post_init__(self) -> None:
        if self.calibration_videos < 0:
            raise ConfigError(f"calibration_videos must be 0 (off) or a number of videos, got "
                              f"{self.calibration_videos}")
        for name in ("batch_size", "max_iters", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_minutes < 0:
            raise ConfigError("max_minutes must be 0 (no budget) or positive")
        if self.threads < 0:
            raise ConfigError(f"threads must be 0 (as torch is set) or a number of CPU threads, got {self.threads}")


def override_value(text: str) -> Any:
    """An override's value as YAML reads it, but for exponents without a dot (1e-5), which YAML 1.1 leaves a
    string: a float, as anyone typing a learning rate means it."""
    value = yaml.safe_load(text)
    if isinstance(value, str) and re.fullmatch(r"[-+]?\d+[eE][-+]?\d+", value.strip()):
        return float(value)
    return value


def load_train_config(path: str | Path | None, overrides: list[str] = ()) -> TrainConfig:
    """A TrainConfig from a YAML file and ``key.sub=value`` overrides (values parsed as YAML)."""
    raw: dict[str, Any] = {}
    if path is not None:
        raw = read_yaml(path, "training config", "config/train/")
    for override in overrides:
        key, equals, value = override.partition("=")
        if not equals or not key:
            raise ConfigError(f"override {override!r} must look like key=value, e.g. optim.base_lr=0.01")
        node = raw
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {override!r}: {part} is not a section")
        node[leaf] = override_value(value)
    model_overrides = raw.pop("model", None) or {}
    base = named_config(str(raw.get("model_config", TrainConfig.model_config))).model
    raw["model"] = {**to_dict(base), **model_overrides}
    return from_dict(TrainConfig, raw, str(path) if path else "training config")
