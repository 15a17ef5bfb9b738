"""Checkpoint files: the model's weights, the config that builds the network, and optionally the training state.

A checkpoint is a torch zip file holding one dict::

    {"format": "sgnet_ros.checkpoint", "version": 3, "model_config": {...},
     "tracker_profiles": {"robot": {...}, "evaluation": {...}}, "model": state_dict, "training": dict or None}

The tracker profiles (sgnet_model.config.SGNetConfig: ``tracker`` is "robot", ``evaluation_tracker`` is
"evaluation") travel with the weights, so the node, sgnet-eval and sgnet-replay default to the values the model
was trained with. Version 1 files (before the profiles and the time-aware motion head, whose weights they lack)
are refused with a message saying to retrain; no released weights were ever written in version 1. Version 2
files (before the stride-4 mask detail, the pasting margin and class-agnostic NMS) load as what they are: their
config gains the fields with the values that reproduce version 2's behaviour (``VERSION_2_MODEL``), and the base
mask module's weights move to the names it has now (``_version_2_state``).

Safety: files are read with ``torch.load(weights_only=True)`` only, and a file that is not a torch zip archive
(e.g. a raw pickle) is refused before anything unpickles it: nothing in a checkpoint can execute code.
Writing is atomic: the data goes to a temporary file in the same folder, is flushed to disk, and then replaces
the target in one rename, so a crash mid-write leaves the previous checkpoint as it was.
Every problem is a ``CheckpointError`` naming the file and what is wrong with it.

A file loads into any build of its config, whatever the training started from: a network initialised from
pretrained weights keeps its ResNet's BatchNorms frozen (``FrozenBatchNorm2d``), one trained from scratch learns
them (``BatchNorm2d``). Both hold the same weight, bias, running_mean and running_var; only ``BatchNorm2d`` counts
the batches it has seen (``num_batches_tracked``), training bookkeeping that no forward pass reads at our fixed
momentum. Loading compares everything else key for key and shape for shape, and the counters are neither required
nor refused.
"""
from __future__ import annotations

import collections
import dataclasses
import os
import pickle
import re
import secrets
import zipfile
from pathlib import Path
from typing import Any

import torch

from sgnet_model.config import (TRACKER_PROFILES, ConfigError, ModelConfig, SGNetConfig, TrackerConfig, from_dict,
                                to_dict)

FORMAT = "sgnet_ros.checkpoint"
VERSION = 3
# What a version 2 file's network was: the paper's stride-8 base mask module, masks cut at the box, class-wise NMS
# and the BCE-only mask loss. Loaded with these, a version 2 checkpoint gives exactly the masks it gave before.
VERSION_2_MODEL = {"base_detail_stride": 8, "mask_margin": 0.0, "class_agnostic_nms": False,
                   "mask_dice_weight": 0.0, "mask_boundary_fraction": 0.0}
VERSION_2_TRACKER = {"match_across_classes": False}  # version 2 trackers matched within a class
HOW_TO_GET_ONE = "train one with `sgnet-train`, or run `sgnet-demo`, which trains and caches a small model"

# What torch.load(weights_only=True) rebuilds without extra allow-listing, by exact type (subclasses such as
# numpy.float64 or an IntEnum pickle as other classes, which weights_only loading refuses).
_LEAF_TYPES = (type(None), bool, int, float, complex, str, bytes, torch.dtype, torch.device, torch.Size)
_CONTAINER_TYPES = (dict, collections.OrderedDict, list, tuple, set)
_TENSOR_TYPES = (torch.Tensor, torch.nn.Parameter)
_BATCH_COUNTER = ".num_batches_tracked"  # BatchNorm2d's count of training batches; FrozenBatchNorm2d has none


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, unsafe or does not fit; the message names the file."""


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    model_config: ModelConfig
    model_state: dict[str, torch.Tensor]
    training_state: dict[str, Any] | None  # optimizer, scheduler, iteration, RNG states, ... (training's business)
    tracker_profiles: dict[str, TrackerConfig]  # "robot" and "evaluation"


def save_checkpoint(path: str | Path, model_config: ModelConfig, model_state: dict[str, torch.Tensor],
                    training_state: dict[str, Any] | None = None,
                    tracker_profiles: dict[str, TrackerConfig] | None = None) -> None:
    """Write a checkpoint atomically. ``training_state`` may hold None, bools, numbers, strings, bytes, lists,
    tuples, sets, dicts and tensors (optimizer and scheduler state dicts, ``torch.get_rng_state()``,
    ``numpy.random.Generator.bit_generator.state``, ``random.getstate()``): exactly what
    ``load_checkpoint`` can read back. Anything else is refused here, before the file is touched, rather than
    written into a file that could not be loaded when it is needed. ``tracker_profiles`` maps "robot" and
    "evaluation" to TrackerConfigs; None stores the defaults of SGNetConfig."""
    path = Path(path)
    if not isinstance(model_config, ModelConfig):
        raise CheckpointError(f"cannot save checkpoint {path}: model_config must be a ModelConfig, "
                              f"got {type(model_config).__name__}")
    _check_model_state(model_state, f"cannot save checkpoint {path}: model_state")
    if training_state is not None:
        if type(training_state) not in (dict, collections.OrderedDict):
            raise CheckpointError(f"cannot save checkpoint {path}: training_state must be a dict or None, "
                                  f"got {type(training_state).__name__}")
        _check_loadable(training_state, "training_state", path)
    profiles = SGNetConfig().tracker_profiles() if tracker_profiles is None else tracker_profiles
    if not isinstance(profiles, dict) or set(profiles) != set(TRACKER_PROFILES) or not all(
            isinstance(p, TrackerConfig) for p in profiles.values()):
        raise CheckpointError(f"cannot save checkpoint {path}: tracker_profiles must map {list(TRACKER_PROFILES)} "
                              f"to TrackerConfigs, got {profiles!r}")
    payload = {"format": FORMAT, "version": VERSION, "model_config": to_dict(model_config),
               "tracker_profiles": {name: to_dict(profiles[name]) for name in TRACKER_PROFILES},
               "model": model_state, "training": training_state}
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(temporary, "xb") as file:
            torch.save(payload, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        if isinstance(error, (OSError, RuntimeError)):
            raise CheckpointError(f"cannot write checkpoint {path}: {_root_os_error(error)}; "
                                  f"any previous file there is left as it was") from error
        raise
    _sync_folder(path.parent)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read and check a checkpoint written by ``save_checkpoint``, tensors mapped to ``map_location``."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist; {HOW_TO_GET_ONE}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} is not a file")
    if torch.device(map_location).type == "cuda" and not torch.cuda.is_available():
        raise CheckpointError(f"cannot load checkpoint {path} onto {map_location}: CUDA is not available here; "
                              f"use map_location='cpu'")
    _check_zip(path)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(f"checkpoint {path} holds pickled Python objects that weights-only loading "
                              f"refuses ({_refused_global(error)}); sgnet_ros never executes code from a "
                              f"checkpoint file, so it cannot be loaded") from None
    except (RuntimeError, OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"checkpoint {path} is corrupt or not a torch checkpoint: {first_line}") from None

    if not isinstance(payload, dict):
        raise CheckpointError(f"{path} is not an sgnet_ros checkpoint: it holds a {type(payload).__name__}, "
                              f"not a dict marked {FORMAT!r}")
    if payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an sgnet_ros checkpoint (format marker {payload.get('format')!r}, "
                              f"expected {FORMAT!r}); a bare state dict does not say which network it belongs to")
    version = payload.get("version")
    if version == 1:
        raise CheckpointError(f"checkpoint {path} has format version 1, written before the time-aware motion head "
                              f"and the tracker profiles; this sgnet_ros reads version {VERSION}: retrain it "
                              f"(sgnet-train, or sgnet-demo --retrain)")
    if type(version) is not int or version not in (2, VERSION):
        raise CheckpointError(f"checkpoint {path} has format version {version!r}; this sgnet_ros reads version "
                              f"{VERSION} (a newer release may have written it)")
    stored_config = payload.get("model_config")
    if version == 2 and isinstance(stored_config, dict):
        stored_config = {**VERSION_2_MODEL, **stored_config}
    try:
        model_config = from_dict(ModelConfig, stored_config, f"checkpoint {path}: model_config")
        stored = payload.get("tracker_profiles")
        if not isinstance(stored, dict) or set(stored) != set(TRACKER_PROFILES):
            raise ConfigError(f"checkpoint {path}: tracker_profiles must name exactly {list(TRACKER_PROFILES)}, "
                              f"got {sorted(stored) if isinstance(stored, dict) else type(stored).__name__}")
        migrated = VERSION_2_TRACKER if version == 2 else {}
        tracker_profiles = {name: from_dict(TrackerConfig, {**migrated, **stored[name]} if isinstance(
            stored[name], dict) else stored[name], f"checkpoint {path}: tracker_profiles.{name}")
                            for name in TRACKER_PROFILES}
    except ConfigError as error:
        raise CheckpointError(str(error)) from None
    model_state = payload.get("model")
    _check_model_state(model_state, f"checkpoint {path}: model")
    if version == 2:
        model_state = _version_2_state(model_state)
    training_state = payload.get("training")
    if training_state is not None and not isinstance(training_state, dict):
        raise CheckpointError(f"checkpoint {path}: training state must be a dict or None, "
                              f"got {type(training_state).__name__}")
    return Checkpoint(model_config, model_state, training_state, tracker_profiles)


def load_model_state(model: torch.nn.Module, checkpoint: Checkpoint, path: str | Path) -> None:
    """Load the checkpoint's weights into ``model`` strictly but for BatchNorm's batch counters (see the module's
    docstring). Keys and shapes are compared first, so a network that does not match the file is left untouched
    and the error names the first differing keys."""
    problems = state_dict_mismatch(model.state_dict(), checkpoint.model_state)
    if problems:
        raise CheckpointError(f"checkpoint {path} does not fit the network built from its config: "
                              + "; ".join(problems))
    model.load_state_dict(checkpoint.model_state, strict=False)  # every key but the counters was checked above


def _version_2_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Version 2's base mask module was one Sequential ``convs`` (3x3, GN, ReLU, 3x3, GN, ReLU, 1x1); now its
    first six layers are ``fuse`` and the 1x1 projection is ``project``."""
    renamed = {}
    for key, value in state.items():
        match = re.match(r"base_masks\.convs\.(\d+)\.(.*)", key)
        if match is None:
            renamed[key] = value
        elif match.group(1) == "6":
            renamed[f"base_masks.project.{match.group(2)}"] = value
        else:
            renamed[f"base_masks.fuse.{match.group(1)}.{match.group(2)}"] = value
    return renamed


def state_dict_mismatch(expected: dict[str, torch.Tensor], given: dict[str, torch.Tensor]) -> list[str]:
    """How ``given`` differs from a network's ``expected`` state dict, BatchNorm's ``num_batches_tracked``
    counters aside: e.g. ["2 weights missing from the file: a.weight, a.bias"]; empty when it fits."""
    expected = {key: value for key, value in expected.items() if not key.endswith(_BATCH_COUNTER)}
    given = {key: value for key, value in given.items() if not key.endswith(_BATCH_COUNTER)}
    missing = [key for key in expected if key not in given]
    unexpected = [key for key in given if key not in expected]
    resized = [f"{key} {tuple(given[key].shape)} in the file, {tuple(value.shape)} in the network"
               for key, value in expected.items() if key in given and given[key].shape != value.shape]
    problems = []
    for label, keys in (("missing from the file", missing), ("not in the network", unexpected),
                        ("with another shape", resized)):
        if keys:
            shown = ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
            problems.append(f"{len(keys)} weights {label}: {shown}")
    return problems


def _root_os_error(error: BaseException) -> BaseException:
    """The operating system's error behind torch's writer error (e.g. "No space left on device"), if any."""
    cause: BaseException | None = error
    while cause is not None and not isinstance(cause, OSError):
        cause = cause.__context__
    return cause or error


def _check_zip(path: Path) -> None:
    """Refuse, before any unpickling, a file that is not a complete zip archive (torch's file format)."""
    try:
        with open(path, "rb") as file:
            head = file.read(4)
        complete = zipfile.is_zipfile(path)
    except OSError as error:
        raise CheckpointError(f"checkpoint {path} cannot be read: {error.strerror or error}") from None
    if complete:
        return
    if head.startswith(b"PK\x03\x04"):
        raise CheckpointError(f"checkpoint {path} is a truncated zip archive (its end is missing: an interrupted "
                              f"copy or write?); {HOW_TO_GET_ONE}")
    if head[:1] == b"\x80":
        raise CheckpointError(f"{path} is a raw Python pickle, not a torch zip checkpoint; unpickling it could "
                              f"execute code, so sgnet_ros refuses to load it")
    if not head:
        raise CheckpointError(f"checkpoint {path} is empty; {HOW_TO_GET_ONE}")
    raise CheckpointError(f"{path} is not a torch checkpoint (not a zip archive): corrupt, or another kind of file")


def _refused_global(error: Exception) -> str:
    """The class or function a weights-only load refused, as named in torch's message."""
    found = re.search(r"GLOBAL ([\w.]+)", str(error))
    return f"it names {found.group(1)}" if found else "an object torch does not allow"


def _check_model_state(state: Any, where: str) -> None:
    if not isinstance(state, dict):
        raise CheckpointError(f"{where} must be a dict of tensors (a state_dict), got {type(state).__name__}")
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{where} must map names to tensors, but {key!r} holds {type(value).__name__}")


def _check_loadable(value: Any, where: str, path: Path) -> None:
    """Refuse anything in ``value`` that torch.load(weights_only=True) would not read back."""
    kind = type(value)
    if kind in _LEAF_TYPES or kind in _TENSOR_TYPES:
        return
    if kind not in _CONTAINER_TYPES:
        raise CheckpointError(
            f"cannot save checkpoint {path}: {where} is a {kind.__module__}.{kind.__qualname__}, which a "
            f"weights-only load cannot read back; store plain numbers, strings, lists, dicts or tensors "
            f"(e.g. float(x), x.tolist(), torch.from_numpy(x))")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_loadable(key, f"{where} key {key!r}", path)
            _check_loadable(item, f"{where}[{key!r}]", path)
    else:
        for index, item in enumerate(value):
            _check_loadable(item, f"{where}[{index}]", path)


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX); platforms that cannot open a folder skip this."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # some file systems cannot sync a folder; the data itself was synced before the rename
    finally:
        os.close(descriptor)
