"""One ONNX graph for a frame's whole fixed-shape work, as the predictor's other backends run it, for frames of
every size.

The graph is ``frame.fixed_frame_for_host`` traced once: the network, the detection slots (score threshold,
top-k, NMS) and the movement head, in the network's pixels. It takes the network's one input size: the host
resizes each frame keeping its aspect into it and pads the rest (``prepare_frame``), then scales the numbers to
the frame and pastes the valid slots' masks at the frame's own size (``frame_tensors_from``). Inputs: ``image``
(1, 3, H, W) float in 0..255; ``still`` (bool: the movement head sees this frame twice, the first frame of a
stream); ``elapsed_s`` (1,) seconds since the previous frame; ``valid_size`` (2,) the resized frame's H, W inside
the padded input (boxes are clipped to it); ``previous_tower_0..4``, that frame's regression towers. Outputs:
``numbers`` (slots, 10): x1 y1 x2 y2, movement dx dy in network pixels, score, label, valid, 0 (the host writes
the mask quality there as it pastes the masks); with masks "graph", ``logits`` (slots, h, w): the blender's
logits at every pixel of the base features F, which the host upsamples into the frame (as torch does: the same
numbers); with masks "host", ``attention`` (slots, G*G, K) and ``base`` (1, K, h, w), from which the host blends
the valid slots' mask regions only (a CPU blends every slot over all of F slower than it runs the network;
sgnet-export --masks host); ``tower_0..4``, this frame's towers for the next call. The input size, the
thresholds and the number of slots are fixed in the graph; the model's config, class names, tracker profiles
and where the weights came from are in its metadata (``metadata_props``), so that a ``.onnx`` file serves as a
checkpoint.

A graph is checked with ``onnx.checker`` and run with ONNX Runtime against torch on frames (of several sizes
by default) before it is written, and written atomically. The predictor exports on demand into a cache keyed by
the weights, the input size, the thresholds, the precision and this package's code (``cached_frame_graph``), as
engines are cached on robots: cameras of every size share one export.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import hashlib
import importlib
import io
import json
import os
import secrets
import warnings
from pathlib import Path
from types import ModuleType
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from sgnet_model.config import ConfigError, ModelConfig, TrackerConfig, from_dict, to_dict
from sgnet_model.inference.postprocess import FrameTensors
from sgnet_model.network.targets import Pyramid
from sgnet_model.runtime.frame import FixedFrame, fixed_frame_for_host, input_size, paste_host_masks, prepare_frame
from sgnet_model.stages import stage

FORMAT = "sgnet_ros.frame_graph"
VERSION = 3  # 2: numbers gained the mask quality (column 9); 3: one graph for every frame size (valid_size, logits)
OPSET = 17
LEVELS = 5  # P3..P7: one regression tower each
INPUTS = ("image", "still", "elapsed_s", "valid_size", *(f"previous_tower_{level}" for level in range(LEVELS)))
TOWERS = tuple(f"tower_{level}" for level in range(LEVELS))
OUTPUTS = ("numbers", "logits", *TOWERS)  # masks "graph": blended in the graph, pasted by the host
HOST_MASK_OUTPUTS = ("numbers", "attention", "base", *TOWERS)  # masks "host": blended and pasted by the host
MASKS = ("graph", "host")
GRAPH_PRECISIONS = ("fp32", "fp16", "int8")  # int8: quantized by sgnet-export --int8 (training/quantize.py)
# the settings of ModelConfig a graph fixes besides its weights (the predictor can change them at run time)
THRESHOLDS = ("score_threshold", "nms_threshold", "detections_per_frame", "candidates_per_level", "class_agnostic_nms",
              "mask_margin")
# How close an exported graph's instances must be to torch's (sgnet-export checks these before writing).
BOX_TOLERANCE_PX = 0.5
SCORE_TOLERANCE = 1e-3
MASK_IOU = 0.99
MASK_QUALITY_TOLERANCE = 0.01  # of the mean probability over a mask's pixels (numbers' column 9)


class ExportError(ValueError):
    """An export cannot be made, or a .onnx file cannot be used; the message names the file and what to do."""


def require(module: str, package: str, purpose: str) -> ModuleType:
    """Import an optional dependency, or say what to install."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ExportError(f"{purpose} needs the Python package {package!r}, which is not installed here ({error}); "
                          f"pip install {package}") from None


@dataclasses.dataclass(frozen=True)
class GraphInfo:
    """What a frame graph's metadata says about it."""

    model_config: ModelConfig
    tracker_profiles: dict[str, TrackerConfig]
    input_size: tuple[int, int]  # (H, W) of its padded image input: frames of every size are resized into it
    precision: str  # fp32, fp16 or int8 (QDQ, quantized from fp32): the graph's own arithmetic
    masks: str  # "graph": the slots' mask logits are an output; "host": the runner blends them from attention and base
    weights_sha256: str  # of the network's weights (state dict)
    checkpoint_sha256: str  # of the checkpoint file it was exported from; "" when none
    code_sha256: str  # of the sgnet_model sources that traced it

    def metadata(self) -> dict[str, str]:
        config = self.model_config
        return {"format": FORMAT, "version": str(VERSION), "model_config": json.dumps(to_dict(config)),
                "class_names": json.dumps(list(config.class_names)),
                "tracker_profiles": json.dumps({name: to_dict(p) for name, p in self.tracker_profiles.items()}),
                "input_size": json.dumps(list(self.input_size)),
                "precision": self.precision, "masks": self.masks, "weights_sha256": self.weights_sha256,
                "checkpoint_sha256": self.checkpoint_sha256, "code_sha256": self.code_sha256}

    @property
    def outputs(self) -> tuple[str, ...]:
        return OUTPUTS if self.masks == "graph" else HOST_MASK_OUTPUTS

    def mismatch(self, config: ModelConfig) -> str:
        """Why this graph cannot serve frames with ``config``'s thresholds ("" when it can; it serves every frame
        size)."""
        return "; ".join(f"{name} {getattr(config, name)} (it has {getattr(self.model_config, name)})"
                         for name in THRESHOLDS if getattr(config, name) != getattr(self.model_config, name))


class FrameGraph(nn.Module):
    """``fixed_frame_for_host`` as a module of tensors only, for tracing."""

    def __init__(self, model: nn.Module, config: ModelConfig, pyramid: Pyramid, host_masks: bool) -> None:
        super().__init__()
        self.model, self.config, self.pyramid, self.host_masks = model, config, pyramid, host_masks

    def forward(self, image: Tensor, still: Tensor, elapsed_s: Tensor, valid_size: Tensor,
                *previous: Tensor) -> tuple[Tensor, ...]:
        numbers, pasted_from, towers = fixed_frame_for_host(self.model, self.config, self.pyramid, image, still,
                                                            elapsed_s, list(previous), valid_size,
                                                            slot_logits=not self.host_masks)
        return (numbers, *pasted_from, *towers)


def weights_sha256(model: nn.Module) -> str:
    """sha256 over the network's state dict (names, dtypes, shapes and values)."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@functools.cache
def code_sha256() -> str:
    """sha256 of sgnet_model's sources: a graph traced by other code is exported again."""
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()


def export_frame_graph(model: nn.Module, config: ModelConfig, tracker_profiles: dict[str, TrackerConfig],
                       path: str | Path, check_frames: Iterable[np.ndarray], fp16: bool = False,
                       checkpoint_sha256: str = "", host_masks: bool = False) -> GraphInfo:
    """Trace ``model`` (SGNet in eval mode, float32, on the CPU) with ``config``'s thresholds for its input size
    (frames of every size), check it, run it against torch on ``check_frames`` ((H, W, 3) uint8 RGB, in stream
    order, 30 Hz; a frame of another size than the one before starts a stream of its own), and write it to
    ``path`` atomically. ``fp16``: the graph computes in half precision (for CUDA and TensorRT; its check against
    torch then needs ONNX Runtime's CUDA provider and is skipped without one). ``host_masks``: the graph stops
    before the masks' blending, which the runner does (masks "host", for CPUs)."""
    onnx = require("onnx", "onnx", "exporting to ONNX")
    path = Path(path)
    padded = input_size(config)
    info = GraphInfo(config, dict(tracker_profiles), padded, "fp16" if fp16 else "fp32",
                     "host" if host_masks else "graph", weights_sha256(model), checkpoint_sha256, code_sha256())
    dtype = torch.float16 if fp16 else torch.float32
    traced = copy.deepcopy(model).to(dtype) if fp16 else model
    with torch.inference_mode(False), torch.no_grad():
        example = torch.zeros((1, 3, *padded), dtype=dtype)
        fixed = FixedFrame(traced, config, (), example, 1.0, padded, padded)
        graph = FrameGraph(traced, config, fixed.pyramid, host_masks)
        arguments = (example, torch.ones((), dtype=torch.bool), torch.zeros(1, dtype=dtype),
                     torch.tensor(padded, dtype=dtype), *fixed.previous)
        buffer = io.BytesIO()
        with _onnx_gaps_filled(), warnings.catch_warnings():
            # the tracer warns where sizes become constants: by design, every shape here is fixed per graph
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)  # dynamo=False: the exporter that handles this graph
            torch.onnx.export(graph, arguments, buffer, opset_version=OPSET, dynamo=False, input_names=list(INPUTS),
                              output_names=list(info.outputs))
    proto = onnx.load_from_string(buffer.getvalue())
    _bool_eye_through_float(proto)
    for key, value in info.metadata().items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as error:
        raise ExportError(f"the exported graph fails onnx.checker: {str(error).splitlines()[0]}") from None
    data = proto.SerializeToString()
    if not fp16 or (torch.cuda.is_available() and "CUDAExecutionProvider" in require(
            "onnxruntime", "onnxruntime", "checking an export").get_available_providers()):
        _check_against_torch(traced, config, data, info, list(check_frames))
    write_atomically(path, data)
    return info


def cached_frame_graph(model: nn.Module, config: ModelConfig, tracker_profiles: dict[str, TrackerConfig],
                       fp16: bool, host_masks: bool, check_frames: Iterable[np.ndarray],
                       checkpoint_sha256: str = "") -> tuple[Path, GraphInfo]:
    """The frame graph for this model, input size, thresholds and precision from the cache (one for cameras of
    every size), exported first when it is not there: its path and metadata."""
    weights = weights_sha256(model)
    padded = input_size(config)
    key = json.dumps([FORMAT, VERSION, weights, list(padded), fp16, host_masks, code_sha256(),
                      [getattr(config, name) for name in THRESHOLDS]])
    name = (f"sgnet-{weights[:12]}-{padded[1]}x{padded[0]}-{'fp16' if fp16 else 'fp32'}-"
            f"{'host' if host_masks else 'graph'}-"
            f"{hashlib.sha256(key.encode()).hexdigest()[:12]}.onnx")
    path = engine_cache_dir() / name
    if path.is_file():
        try:
            info = read_graph_info(path)
            if info.weights_sha256 == weights and info.masks == ("host" if host_masks else "graph") and \
                    info.input_size == padded and not info.mismatch(config):
                return path, info
        except ExportError:
            pass  # a damaged cache entry is exported again
    return path, export_frame_graph(model, config, tracker_profiles, path, check_frames, fp16, checkpoint_sha256,
                                    host_masks)


def engine_cache_dir() -> Path:
    """Where exports and engines are cached: $XDG_CACHE_HOME/sgnet_ros/engines (~/.cache when unset)."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "sgnet_ros" / "engines"


def read_graph_info(path: str | Path) -> GraphInfo:
    """The metadata of a frame graph written by sgnet-export, checked: a missing, corrupt or foreign file, or one
    whose inputs and outputs do not fit its metadata, is an ExportError naming the file."""
    onnx = require("onnx", "onnx", f"reading {path}")
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"ONNX file {path} does not exist or is not a file; make one with `sgnet-export "
                          f"CHECKPOINT -o {path.name}`")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as error:  # protobuf's DecodeError and onnx's own errors have no common base
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ExportError(f"{path} is not a readable ONNX file (corrupt or truncated?): {first_line}") from None
    metadata = {entry.key: entry.value for entry in proto.metadata_props}
    if metadata.get("format") != FORMAT:
        raise ExportError(f"{path} is an ONNX file but not an sgnet_ros frame graph (no {FORMAT!r} metadata); "
                          f"export the checkpoint with sgnet-export")
    if metadata.get("version") in ("1", "2"):
        raise ExportError(f"{path} is a frame graph of format version {metadata['version']}, which serves one frame "
                          f"size; this sgnet_ros reads version {VERSION}, one graph for every frame size: export the "
                          f"checkpoint again with sgnet-export (no --width/--height)")
    if metadata.get("version") != str(VERSION):
        raise ExportError(f"{path} is a frame graph of format version {metadata.get('version')!r}; this sgnet_ros "
                          f"reads version {VERSION}: export the checkpoint again with sgnet-export")
    try:
        config = from_dict(ModelConfig, json.loads(metadata["model_config"]), f"{path}: model_config")
        profiles = {name: from_dict(TrackerConfig, value, f"{path}: tracker_profiles.{name}")
                    for name, value in json.loads(metadata["tracker_profiles"]).items()}
        padded = tuple(int(v) for v in json.loads(metadata["input_size"]))
        info = GraphInfo(config, profiles, padded, metadata["precision"], metadata["masks"],
                         metadata["weights_sha256"], metadata["checkpoint_sha256"], metadata["code_sha256"])
    except (KeyError, ValueError, TypeError, ConfigError) as error:
        raise ExportError(f"{path}: the frame graph's metadata is damaged ({error}); export it again") from None
    inputs = {value.name: _shape(value) for value in proto.graph.input}
    outputs = {value.name: _shape(value) for value in proto.graph.output}
    slots = config.detections_per_frame
    if info.masks not in MASKS:
        raise ExportError(f"{path}: the frame graph's metadata is damaged (masks {info.masks!r}); export it again")
    expected = {"image": [1, 3, *info.input_size], "valid_size": [2], "numbers": [slots, 10]}
    found = {**inputs, **outputs}
    wrong = [f"{name} {found.get(name)} (expected {shape})" for name, shape in expected.items()
             if found.get(name) != shape]
    missing = sorted(set(INPUTS) - set(inputs)) + sorted(set(info.outputs) - set(outputs))
    if wrong or missing or info.precision not in GRAPH_PRECISIONS:
        raise ExportError(f"{path}: the graph does not match its own metadata ("
                          + "; ".join(wrong + [f"missing {name}" for name in missing]
                                      + ([f"precision {info.precision!r}"] if info.precision not in GRAPH_PRECISIONS
                                         else [])) + "); export it again")
    return info


def compare_frames(expected: FrameTensors, got: FrameTensors) -> list[str]:
    """How ``got``'s valid instances differ from ``expected``'s, as text (empty: the same within BOX_TOLERANCE_PX,
    SCORE_TOLERANCE, MASK_IOU and MASK_QUALITY_TOLERANCE, with equal labels). Instances are paired in score order;
    one whose score lies within SCORE_TOLERANCE of the weakest kept score may be missing on either side (a tie at
    the cut)."""
    def valid(frame: FrameTensors) -> tuple[np.ndarray, np.ndarray]:
        numbers, masks = frame.numbers.cpu().float().numpy(), frame.masks.cpu().numpy()
        keep = numbers[:, 8] > 0
        return numbers[keep], masks[:len(numbers)][keep]

    (numbers, masks), (other, other_masks) = valid(expected), valid(got)
    scores = np.concatenate((numbers[:, 6], other[:, 6]))
    cut = (scores.min() if scores.size else 0.0) + SCORE_TOLERANCE
    problems, used = [], set()
    for index, row in enumerate(numbers):
        match = next((j for j, candidate in enumerate(other) if j not in used and candidate[7] == row[7]
                      and np.abs(candidate[:6] - row[:6]).max() <= BOX_TOLERANCE_PX
                      and abs(candidate[6] - row[6]) <= SCORE_TOLERANCE), None)
        if match is None:
            if row[6] > cut:
                problems.append(f"torch's instance {index} (class {int(row[7])}, score {row[6]:.4f}, box "
                                f"{np.round(row[:4], 1).tolist()}) has no counterpart")
            continue
        used.add(match)
        union = np.logical_or(masks[index], other_masks[match]).sum()
        iou = np.logical_and(masks[index], other_masks[match]).sum() / union if union else 1.0
        if iou < MASK_IOU:
            problems.append(f"instance {index}: mask IoU {iou:.4f} < {MASK_IOU}")
        if abs(other[match, 9] - row[9]) > MASK_QUALITY_TOLERANCE:
            problems.append(f"instance {index}: mask quality {other[match, 9]:.4f}, torch's {row[9]:.4f}")
    problems += [f"an extra instance (class {int(row[7])}, score {row[6]:.4f})" for j, row in enumerate(other)
                 if j not in used and row[6] > cut]
    return problems


def check_stream(height: int, width: int, count: int = 3) -> list[np.ndarray]:
    """Frames to check an export on when none are given: a bright square moving over a smooth background,
    ``count`` frames of (height, width, 3) uint8 RGB at 30 Hz."""
    rows, columns = np.mgrid[0:height, 0:width]
    background = np.stack((columns * 200 // max(1, width - 1), rows * 200 // max(1, height - 1),
                           np.full_like(rows, 90)), axis=-1).astype(np.uint8)
    frames = []
    for index in range(count):
        frame = background.copy()
        side = max(4, min(height, width) // 3)
        top, left = height // 3, width // 4 + index * max(1, width // 40)
        frame[top:top + side, left:left + side] = (240, 230, 60)
        frames.append(frame)
    return frames


def check_streams(config: ModelConfig, count: int = 3) -> list[np.ndarray]:
    """The frames an export is checked on when none are given: ``check_stream`` at the network's input size, then
    at that size turned portrait (another aspect, letterboxed into the same input)."""
    return check_stream(config.input_height, config.input_width, count) + check_stream(config.input_width,
                                                                                       config.input_height, count)


class _OnnxRuntimeCheck:
    """The graph in ONNX Runtime, fed as the predictor's backends feed it."""

    def __init__(self, data: bytes, info: GraphInfo) -> None:
        onnxruntime = require("onnxruntime", "onnxruntime", "checking an export")
        providers = ["CUDAExecutionProvider"] if info.precision == "fp16" else ["CPUExecutionProvider"]
        self.session = onnxruntime.InferenceSession(data, providers=providers)
        self.info = info
        self.dtype = np.float16 if info.precision == "fp16" else np.float32
        self.previous = [np.zeros(i.shape, self.dtype) for i in self.session.get_inputs()[len(INPUTS) - LEVELS:]]

    def __call__(self, image: Tensor, still: bool, elapsed: float, scale: float, valid_size: tuple[int, int],
                 frame_size: tuple[int, int]) -> FrameTensors:
        feeds = dict(zip(INPUTS, (image.cpu().numpy().astype(self.dtype), np.array(still),
                                  np.array([elapsed], self.dtype), np.array(valid_size, self.dtype), *self.previous)))
        outputs = self.session.run(list(self.info.outputs), feeds)
        self.previous = outputs[-LEVELS:]
        return frame_tensors_from(self.info, outputs[:-LEVELS], scale, frame_size)


def frame_tensors_from(info: GraphInfo, outputs: Sequence[np.ndarray | Tensor], scale: float,
                       frame_size: tuple[int, int]) -> FrameTensors:
    """A frame graph's outputs (but the towers; host arrays, or tensors on the runner's device) as FrameTensors of
    a frame of ``frame_size`` (H, W) that entered the network at ``scale``: the numbers in the frame's pixels, the
    valid slots' masks pasted at its size (frame.paste_host_masks) and their quality written into the numbers."""
    numbers = torch.as_tensor(outputs[0]).to(torch.float32, copy=True)  # a copy: written below
    count = int(numbers[:, 8].sum())  # the valid slots come first
    pasted_from = [torch.as_tensor(array).float() for array in outputs[1:]]
    with stage("masks"):
        masks, quality = paste_host_masks(info.model_config, numbers[:count], pasted_from, info.input_size, scale,
                                          frame_size)
    numbers[:, :6] /= scale
    numbers[:count, 9] = quality
    return FrameTensors(numbers, masks)


def _check_against_torch(model: nn.Module, config: ModelConfig, data: bytes, info: GraphInfo,
                         frames: list[np.ndarray]) -> None:
    """Run the graph and torch's FixedFrame (which pastes every slot at the frame's size itself) side by side over
    ``frames`` (30 Hz streams: one per run of frames of one size); an fp16 graph on CUDA against torch in fp16 on
    CUDA."""
    if not frames:
        raise ExportError("an export is checked against torch on frames before it is written; none were given")
    runtime = _OnnxRuntimeCheck(data, info)
    device, dtype = (torch.device("cuda"), torch.float16) if info.precision == "fp16" else (torch.device("cpu"),
                                                                                          torch.float32)
    model = model.to(device, dtype)  # a no-op for fp32 (the CPU); fp16 checks a copy
    fixed, towers, size = None, None, None
    with torch.no_grad():
        for index, frame in enumerate(frames):
            still = frame.shape[:2] != size
            size = frame.shape[:2]
            batch, scale, valid_size = prepare_frame(frame, config, device, dtype)
            if still:
                fixed, towers = FixedFrame(model, config, (), batch, scale, valid_size, size), None
            elapsed = 0.0 if still else 1.0 / 30
            [(expected, towers)] = fixed(batch, [towers], [elapsed])
            problems = compare_frames(expected, runtime(batch, still, elapsed, scale, valid_size, size))
            if problems:
                raise ExportError(f"the exported graph differs from torch on check frame {index} "
                                  f"({size[1]}x{size[0]}): " + "; ".join(problems[:3])
                                  + (f" and {len(problems) - 3} more" if len(problems) > 3 else ""))


@contextlib.contextmanager
def _onnx_gaps_filled() -> Iterator[None]:
    """torch.onnx's TorchScript exporter has no rule for in-place ``|=`` on tensors (greedy_nms_fixed uses it):
    exported as ONNX's Or, out of place, while the export runs."""
    torch.onnx.register_custom_op_symbolic("aten::__ior_", lambda g, a, b: g.op("Or", a, b), OPSET)
    try:
        yield
    finally:
        torch.onnx.unregister_custom_op_symbolic("aten::__ior_", OPSET)


def _bool_eye_through_float(proto: object) -> None:
    """ONNX Runtime has no EyeLike kernel for booleans (the exporter writes torch.eye(n, dtype=bool) as one):
    make such identities in float and cast them."""
    from onnx import TensorProto, helper, shape_inference

    types = {value.name: value.type.tensor_type.elem_type
             for value in shape_inference.infer_shapes(proto).graph.value_info}
    nodes = []
    for node in proto.graph.node:
        if node.op_type == "EyeLike" and types.get(node.input[0]) == TensorProto.BOOL:
            source, target = node.input[0], node.output[0]
            nodes.append(helper.make_node("Cast", [source], [f"{source}_as_float"], to=TensorProto.FLOAT))
            node.input[0], node.output[0] = f"{source}_as_float", f"{target}_as_float"
            nodes += [node, helper.make_node("Cast", [f"{target}_as_float"], [target], to=TensorProto.BOOL)]
        else:
            nodes.append(node)
    del proto.graph.node[:]
    proto.graph.node.extend(nodes)


def _shape(value: object) -> list[int | str]:
    return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in value.type.tensor_type.shape.dim]


def write_atomically(path: Path, data: bytes) -> None:
    """``data`` to ``path`` through a temporary file beside it and a rename: a reader never sees a part."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(temporary, "xb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise ExportError(f"cannot write {path}: {error.strerror or error}; any previous file there is left as "
                          f"it was") from None
