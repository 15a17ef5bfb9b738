"""The predictor the node's configure loads from its settings: the checkpoint's, or random weights for a smoke test;
on the CPU when CUDA was asked for but is missing and ``allow_cpu_fallback`` allows it.

Every refusal is a ParameterError naming the parameter at fault, which configure reports (log and /diagnostics).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from sgnet_model.config import ConfigError, named_config
from sgnet_model.predictor import StreamingPredictor, resolve_device
from sgnet_ros.params import NodeSettings, ParameterError


def load_predictor(settings: NodeSettings, logger: Any) -> StreamingPredictor:
    """The predictor for ``settings``; ``logger`` (the node's) is told of a CPU fallback and of a smoke test."""
    node, predictor_config = settings.node, settings.predictor
    if predictor_config.device.startswith("cuda") and not torch.cuda.is_available():
        if not node.allow_cpu_fallback:
            raise ParameterError(
                f"parameter predictor.device: {predictor_config.device!r} asked for, but CUDA is not available "
                f"(torch {torch.__version__}); set predictor.device to cpu, or allow_cpu_fallback to true")
        logger.warning(f"CUDA is not available: running on the CPU instead of {predictor_config.device} "
                       f"(allow_cpu_fallback is true)")
        predictor_config = dataclasses.replace(predictor_config, device="cpu", fp16=False, precision="fp32"
                                               if predictor_config.precision == "fp16" else predictor_config.precision)
    if predictor_config.fp16 and resolve_device(predictor_config.device).type != "cuda":
        raise ParameterError("parameter predictor.fp16: half precision runs on CUDA only; set it to false "
                             "for predictor.device cpu")
    if node.smoke_test:
        try:
            config = named_config(node.model_config)
        except ConfigError as error:
            raise ParameterError(f"parameter model_config: {error}") from None
        logger.warning("smoke_test is true: the network has random weights and its output means nothing; give a "
                       "trained checkpoint for real use")
        torch.manual_seed(0)  # the same random weights at every start: a smoke test behaves the same every run
        return StreamingPredictor.from_config(config, predictor_config, node.tracker_profile)
    if not node.checkpoint:
        raise ParameterError("parameter checkpoint is empty: give the path of a checkpoint written by sgnet-train "
                             "(the node does not run untrained weights unless smoke_test is true)")
    path = Path(node.checkpoint).expanduser()
    if not path.is_file():
        raise ParameterError(f"parameter checkpoint: {path} does not exist or is not a file")
    return StreamingPredictor.from_checkpoint(path, predictor_config, profile=node.tracker_profile)
