"""Configuration of the model, the tracker and the streaming predictor.

The dataclasses below are the one source of defaults. The YAML files in ``config/model/`` name a variant by
the fields that differ from these defaults; checkpoints carry the model section so that a file always
rebuilds the network it was trained with.
"""
from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, Mapping, TypeVar

import yaml

# The 40 categories of YouTube-VIS 2019, in the order of their category ids 1..40.
YOUTUBE_VIS_2019_CLASSES: tuple[str, ...] = (
    "person", "giant_panda", "lizard", "parrot", "skateboard", "sedan", "ape", "dog", "snake", "monkey",
    "hand", "rabbit", "duck", "cat", "cow", "fish", "train", "horse", "turtle", "bear",
    "motorbike", "giraffe", "leopard", "fox", "deer", "owl", "surfboard", "airplane", "truck", "zebra",
    "tiger", "elephant", "snowboard", "boat", "shark", "mouse", "frog", "eagle", "earless_seal", "tennis_racket",
)

BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101")
MASK_RESCORING = ("off", "ranking", "all")  # ModelConfig.mask_rescoring
PRETRAINED = ("none", "imagenet", "coco_fcos")


class ConfigError(ValueError):
    """A configuration value or file is wrong; the message names the field and the source."""


def _check(ok: bool, field: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{field}: {message}")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture, classes and inference thresholds of SG-Net (paper, Section 3)."""

    backbone: str = "resnet50"
    fpn_channels: int = 256
    head_convs: int = 4  # stacked 3x3 convs in each FCOS tower
    class_names: tuple[str, ...] = YOUTUBE_VIS_2019_CLASSES
    input_width: int = 640  # frames are resized to fit input_width x input_height, keeping their aspect
    input_height: int = 360
    # Mask head (Section 3.2).
    max_grid: int = 6  # Eq. 1: at most max_grid x max_grid sub-regions per instance
    grid_cell_pixels: float = 50.0  # Eq. 1: one sub-region per 50 input pixels of box side
    base_channels: int = 36  # channels of the base features F
    base_hidden_channels: int = 128
    base_upsample: int = 4  # F is at the stride of P3 divided by this: x4, masks at H/2 x W/2
    base_levels: int = 3  # P3..P(2+base_levels) feed the base mask module
    # The finest input of the base mask module (docs/model.md, "Mask detail"): 4 adds ResNet's stride-4 layer1
    # through a lateral connection and a non-linear 3x3 stage after upsampling; 8 is the paper's P3-only branch
    # (checkpoints of format version 2 were trained with it and load as 8).
    base_detail_stride: int = 4
    # Masks are pasted over the box grown by this fraction of its width and height on each side, so that a box a
    # little too tight does not cut the mask. 0 cuts at the box: measured best for the small model on held-out
    # synthetic videos (docs/model.md, "Masks a robot can trust"); a model with looser boxes may want some.
    mask_margin: float = 0.0
    # Mask loss (Section 3.4 uses Mask R-CNN's per-pixel BCE): a Dice term of this weight is added, and this
    # fraction of the sampled points is drawn from the ground truth's boundary band.
    mask_dice_weight: float = 1.0
    mask_boundary_fraction: float = 0.5
    # Tracking head (Section 3.3).
    motion_hidden_channels: int = 128
    # Detection (FCOS).
    center_sampling_radius: float = 1.5
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    score_threshold: float = 0.05
    # Box NMS at 0.7, then mask NMS at 0.5 (below): the pair chosen on 5 seeds and the demo model, never worse than
    # box 0.5 alone and evaluation-profile IDF1 0.717 -> 0.936 (docs/model.md, "Suppression by mask overlap").
    nms_threshold: float = 0.7
    # NMS across classes: one object, one detection, whatever classes compete at its location (a second,
    # wrong-class box on the same object would start a duplicate track). False: class-wise (version 2).
    class_agnostic_nms: bool = True
    # After box NMS, drop an instance whose mask's IoU with a higher-scored one's is above this (0: off);
    # sgnet_model/inference/mask_nms.py. A checkpoint keeps the values it was trained with.
    mask_nms_threshold: float = 0.5
    # Rank by score x mask quality (SOLOv2's "maskness", the mean foreground probability over the pixels a mask
    # keeps), on the host before mask NMS and the tracker (sgnet_model/inference/mask_rescoring.py): "off", the
    # network's score; "ranking", the rescored score orders mask NMS and is the score reported (what video AP
    # ranks) while the tracker starts and continues tracks on the network's score; "all", the tracker too.
    # Off: neither raised AP, AP75 and AP90 on most of 6 models, and "all" cost the robot profile IDF1 (docs/model.md,
    # "Ranking by mask quality"). A checkpoint keeps its own value; one written before the field loads as off.
    mask_rescoring: str = "off"
    detections_per_frame: int = 50
    candidates_per_level: int = 1000
    # Initialisation: "none" (random), "imagenet" (torchvision ResNet) or "coco_fcos" (torchvision FCOS R50).
    pretrained: str = "none"
    pretrained_path: str = ""  # a local weights file; empty means torchvision's cache
    trainable_backbone_layers: int = 3

    def __post_init__(self) -> None:
        _check(self.backbone in BACKBONES, "backbone", f"must be one of {BACKBONES}, got {self.backbone!r}")
        _check(self.pretrained in PRETRAINED, "pretrained", f"must be one of {PRETRAINED}, got {self.pretrained!r}")
        _check(self.pretrained != "coco_fcos" or (self.backbone == "resnet50" and self.fpn_channels == 256
                                                   and self.head_convs == 4),
               "pretrained", "coco_fcos weights exist only for backbone resnet50, fpn_channels 256, head_convs 4")
        _check(len(self.class_names) >= 1, "class_names", "must name at least one class")
        for name in ("fpn_channels", "head_convs", "input_width", "input_height", "max_grid", "base_channels",
                     "base_hidden_channels", "base_upsample", "motion_hidden_channels", "detections_per_frame",
                     "candidates_per_level"):
            _check(getattr(self, name) >= 1, name, f"must be at least 1, got {getattr(self, name)}")
        _check(1 <= self.base_levels <= 3, "base_levels", f"must be 1, 2 or 3 (P3..P5), got {self.base_levels}")
        _check(self.base_upsample in (1, 2, 4), "base_upsample", f"must be 1, 2 or 4, got {self.base_upsample}")
        _check(self.base_detail_stride in (4, 8), "base_detail_stride",
               f"must be 4 (ResNet layer1 feeds the masks) or 8 (P3 only), got {self.base_detail_stride}")
        _check(self.base_detail_stride == 8 or self.base_upsample >= 2, "base_upsample",
               "must be 2 or 4 when base_detail_stride is 4 (the base features are at stride 4 or finer)")
        _check(0.0 <= self.mask_margin <= 1.0, "mask_margin", f"must lie in [0, 1], got {self.mask_margin}")
        _check(self.mask_dice_weight >= 0.0, "mask_dice_weight", "must be 0 or more")
        _check(0.0 <= self.mask_boundary_fraction <= 1.0, "mask_boundary_fraction", "must lie in [0, 1]")
        for name in ("fpn_channels", "base_hidden_channels"):
            _check(getattr(self, name) % 32 == 0, name, f"must be a multiple of 32 (GroupNorm of 32 groups), "
                                                        f"got {getattr(self, name)}")
        _check(self.grid_cell_pixels > 0, "grid_cell_pixels", "must be positive")
        _check(0.0 <= self.score_threshold <= 1.0, "score_threshold", "must lie in [0, 1]")
        _check(0.0 < self.nms_threshold <= 1.0, "nms_threshold", "must lie in (0, 1]")
        _check(0.0 <= self.mask_nms_threshold <= 1.0, "mask_nms_threshold", "must lie in [0, 1] (0: off)")
        _check(self.mask_rescoring in MASK_RESCORING, "mask_rescoring",
               f"must be one of {MASK_RESCORING}, got {self.mask_rescoring!r}")
        _check(0 <= self.trainable_backbone_layers <= 5, "trainable_backbone_layers", "must lie in 0..5")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


@dataclasses.dataclass(frozen=True)
class TrackerConfig:
    """Greedy, class-wise, time-aware centre tracking with persistence (Section 3.3; docs/tracking.md).

    The defaults are the robot profile: few, confident tracks (``SGNetConfig.tracker``)."""

    new_track_score: float = 0.5  # a detection starts a track only at this score or above
    continue_score: float = 0.3  # a detection continues a track at this score or above
    max_lost_s: float = 2.5  # an unmatched track is kept this many seconds, moving at its last velocity
    radius_scale: float = 1.0  # matching radius r = radius_scale * mean(w, h) of the track's box
    # a detection may continue a track of another class (the track's class is then a score-weighted vote over
    # its detections): one object, one track, when its class flickers. False: class-wise matching (version 2;
    # the evaluation profile, where video AP rewards a second hypothesis of another class).
    match_across_classes: bool = True
    # a track that no detection continues is still reported for this many seconds after its last match: its last
    # detected mask and box moved to where the tracker expects the object (TrackedInstance.predicted; the
    # predictor's StreamState.carried). 0: a missed frame is a hole in the track. At most max_lost_s.
    fill_gaps_s: float = 0.0

    def __post_init__(self) -> None:
        _check(0.0 <= self.continue_score <= 1.0, "continue_score", "must lie in [0, 1]")
        _check(self.continue_score <= self.new_track_score <= 1.0, "new_track_score",
               "must lie in [continue_score, 1]: starting a track needs at least the score of continuing one")
        _check(self.max_lost_s >= 0, "max_lost_s", "must be 0 or more")
        _check(0.0 <= self.fill_gaps_s <= self.max_lost_s, "fill_gaps_s",
               "must lie in [0, max_lost_s]: only a live track can be carried over a gap")
        _check(self.radius_scale > 0, "radius_scale", "must be positive")


# The evaluation profile: video AP ranks whole tracks by score and rewards recall, so weak detections start and
# continue tracks too (the official SG-Net code keeps detections down to score 0.03). These defaults (for the
# YouTube-VIS configs) could not be measured here; config/model/resnet18_small.yaml sets values measured on the
# synthetic set (docs/tracking.md).
EVALUATION_TRACKER = TrackerConfig(new_track_score=0.1, continue_score=0.05, match_across_classes=False)
TRACKER_PROFILES = ("robot", "evaluation")


BACKENDS = ("torch", "onnxruntime", "openvino", "tensorrt", "auto")  # auto: backends.choose_runtime's rule
PRECISIONS = ("fp32", "fp16", "bf16", "int8", "auto")
ONNX_PROVIDERS = ("tensorrt", "cuda", "cpu")


@dataclasses.dataclass(frozen=True)
class PredictorConfig:
    """How the streaming predictor runs (docs/export.md for the backends and precisions)."""

    device: str = "auto"  # "auto" (CUDA where there is a GPU, else the CPU), "cpu", "cuda" or "cuda:N"
    fp16: bool = False  # half precision, CUDA only: the same as precision fp16 (kept for older parameter files)
    cuda_graphs: bool = True  # on CUDA, replay the network from a CUDA graph per frame size (no launch overhead)
    # tracks reset when a frame's stamp is more than this after the stamp of the frame the source delivered
    # before it (processed or not), or when the stamps go back
    max_gap_s: float = 2.0
    # what runs a frame's network and masks: auto (the fastest that keeps the model's accuracy here, by the rule of
    # backends.choose_runtime, docs/export.md), torch, onnxruntime, openvino or tensorrt
    backend: str = "auto"
    # auto (the backend's rule); fp32; fp16 (CUDA); bf16 (CPUs with AVX-512 BF16 or AMX); int8 (OpenVINO on CPUs with
    # VNNI or AMX, a graph from sgnet-export --int8: the .onnx checkpoint, or CHECKPOINT_STEM.int8.onnx beside it)
    precision: str = "auto"
    onnx_providers: str = "tensorrt,cuda,cpu"  # onnxruntime's execution providers in order of preference
    openvino_device: str = "CPU"  # OpenVINO's device name (CPU, GPU, NPU, ...), passed through
    # On the CPU, torch's network pass over several cameras' frames of one size takes at most this many input
    # pixels at once (more frames run in several passes). Measured on 2 cores: batching 4 of the demo's 320x192
    # frames costs 17 % less per frame than one at a time; 4 of ResNet-50's 640x384 gain nothing (3 % more) and
    # hold 1.3x the node's peak memory in activations. The default batches the small ones and not the large.
    cpu_batch_pixels: int = 262144

    def __post_init__(self) -> None:
        _check(self.device in ("cpu", "cuda", "auto") or self.device.startswith("cuda:"), "device",
               f"must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {self.device!r}")
        _check(self.max_gap_s > 0, "max_gap_s", "must be positive")
        _check(self.cpu_batch_pixels >= 1, "cpu_batch_pixels", f"must be at least 1, got {self.cpu_batch_pixels}")
        _check(self.backend in BACKENDS, "backend", f"must be one of {BACKENDS}, got {self.backend!r}")
        _check(self.precision in PRECISIONS, "precision", f"must be one of {PRECISIONS}, got {self.precision!r}")
        _check(not self.fp16 or self.precision in ("auto", "fp32", "fp16"), "fp16",
               f"is true but precision is {self.precision!r}; set only precision")
        providers = self.onnx_providers.split(",")
        _check(bool(providers) and all(p in ONNX_PROVIDERS for p in providers), "onnx_providers",
               f"must be a comma-separated list of {ONNX_PROVIDERS}, got {self.onnx_providers!r}")
        _check(bool(self.openvino_device), "openvino_device", "must name an OpenVINO device, e.g. CPU")

    @classmethod
    def reference(cls, device: str = "cpu") -> PredictorConfig:
        """torch in fp32: the network's reference arithmetic, the same on every CPU kind and with no export (the
        start-score calibration, the peer benchmark, the tests that are not about the runtime)."""
        return cls(device=device, backend="torch", precision="fp32")

    @property
    def run_precision(self) -> str:
        """The precision that runs: ``precision``, or fp16 where the older ``fp16`` flag asks for it."""
        return "fp16" if self.fp16 else self.precision


@dataclasses.dataclass(frozen=True)
class SGNetConfig:
    """One file of ``config/model/``: the model and the two tracker profiles that go with it.

    ``tracker`` is the robot profile (few, confident tracks: what the node serves); ``evaluation_tracker`` the
    evaluation profile (low start/continue scores: what sgnet-eval and the replay's metrics use, as video AP
    rewards). Checkpoints carry both (``Checkpoint.tracker_profiles``)."""

    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    tracker: TrackerConfig = dataclasses.field(default_factory=TrackerConfig)
    evaluation_tracker: TrackerConfig = EVALUATION_TRACKER

    def tracker_profiles(self) -> dict[str, TrackerConfig]:
        """{"robot": tracker, "evaluation": evaluation_tracker}: what checkpoints store."""
        return {"robot": self.tracker, "evaluation": self.evaluation_tracker}


T = TypeVar("T")


def from_dict(cls: type[T], data: Mapping[str, Any], source: str = "config") -> T:
    """Build dataclass ``cls`` from a mapping, refusing unknown keys and values of the wrong type."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a mapping of fields, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{source}: unknown field(s) {unknown}; known fields are {sorted(fields)}")
    values = {name: _convert(hints[name], value, f"{source}.{name}") for name, value in data.items()}
    try:
        return cls(**values)
    except ConfigError as error:
        raise ConfigError(f"{source}.{error}") from None


def _convert(hint: Any, value: Any, where: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value if value is not None else {}, where)
    origin = typing.get_origin(hint)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item = typing.get_args(hint)[0]
        return tuple(_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint in (int, str, bool) and type(value) is hint:
        return value
    if hint is float or hint in (int, str, bool):
        raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}")
    raise ConfigError(f"{where}: unsupported field type {hint}")  # pragma: no cover - a programming error


def to_dict(config: Any) -> dict[str, Any]:
    """Plain dict/list/str/number form of a config dataclass (what checkpoints and YAML store)."""
    def plain(value: Any) -> Any:
        if isinstance(value, (tuple, list)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value
    return plain(dataclasses.asdict(config))


def load_config(path: str | Path) -> SGNetConfig:
    """Read a YAML file of ``config/model/`` (sections ``model``, ``tracker`` and ``evaluation_tracker``, all
    optional)."""
    return from_dict(SGNetConfig, read_yaml(path, "config file", "config/model/"), str(path))


def read_yaml(path: str | Path, what: str, shipped: str) -> dict[str, Any]:
    """The mapping in a YAML file, or a ConfigError naming ``what`` and where the ``shipped`` ones are."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} {path} does not exist; the shipped ones are in {shipped}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{what} {path} is not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {path} must be a mapping of fields")
    return data


def config_dir() -> Path:
    """The ``config/`` folder shipped with the project (the source tree, or the installed share folder)."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "config", here.parent.parent.parent.parent / "share" / "sgnet_ros" / "config"):
        if candidate.is_dir():
            return candidate
    raise ConfigError("cannot find the config/ folder of sgnet_ros next to the installed package")


def named_config(name: str) -> SGNetConfig:
    """A shipped variant by name: ``resnet50``, ``resnet101`` or ``resnet18_small``; or a path to a YAML."""
    if name.endswith((".yaml", ".yml")):
        return load_config(name)
    path = config_dir() / "model" / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (config_dir() / "model").glob("*.yaml"))
        raise ConfigError(f"no model config named {name!r}; known: {known}, or give a path to a YAML file")
    return load_config(path)


