"""Fine-tuning: a training run whose weights start from an existing checkpoint (``TrainConfig.init_from``,
``sgnet-train --init-from``) instead of pretrained backbone weights: a model trained elsewhere, taught a robot's own
footage (docs/flywheel.md).

The checkpoint brings its network: its model config (architecture, thresholds, the calibrated start score) and its
tracker profiles; the training config's ``model_config`` and ``model`` section are not used. The new training set
brings its classes, matched to the checkpoint's by name: a class the checkpoint knows keeps its classifier row, a
new class starts where a fresh network's does (the classification prior, Focal loss's initialisation). Only the
weights come from the checkpoint: the optimiser, the learning-rate schedule and the iteration count start afresh
and follow the training config (``sgnet-train --resume`` continues a run, schedule included). BatchNorm layers keep
the checkpoint's statistics (``keep_batchnorm_statistics``): re-estimated from a small labelled set of the new
world alone, they would fit it and shift every feature the old world's weights expect (measured in docs/flywheel.md).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from torch import nn

from sgnet_model.checkpoint import Checkpoint, load_model_state
from sgnet_model.network.model import SGNet

CLASSIFIER = "head.classification_head.cls_logits."  # its weight and bias have one row per class (one anchor)


def load_start_weights(model: SGNet, start: Checkpoint, path: str | Path) -> list[str]:
    """The checkpoint's weights into ``model`` (built from the checkpoint's config with the new set's classes):
    every layer as it is, the classifier's rows by class name. Returns the classes new to the checkpoint, whose
    rows keep ``model``'s fresh initialisation."""
    known = list(start.model_config.class_names)
    state = dict(start.model_state)
    fresh = model.state_dict()
    for part in ("weight", "bias"):
        key = CLASSIFIER + part
        rows = fresh[key].clone()  # (classes, ...)
        for row, name in enumerate(model.config.class_names):
            if name in known:
                rows[row] = state[key][known.index(name)]
        state[key] = rows
    load_model_state(model, dataclasses.replace(start, model_state=state), path)
    return [name for name in model.config.class_names if name not in known]


def keep_batchnorm_statistics(model: nn.Module) -> None:
    """BatchNorm layers normalise with their running statistics and stop updating them (their weight and bias
    still learn): call after ``model.train()``."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()
