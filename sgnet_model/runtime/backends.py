"""The predictor's other runtimes: ONNX Runtime, OpenVINO and TensorRT run a frame's fixed-shape work from the
frame graph that export.py writes, in place of torch (frame.EagerFrames, frame.GraphedFrames); preparing the frame,
the tracker and the outputs stay the predictor's. Each runner follows frame.py's contract: it holds no stream
state, and ``runner(images, previous, elapsed)`` runs the single-image graph once per image of the batch, each with
its own camera's previous towers (None: a still frame), returning each image's FrameTensors and its own towers.

Precisions: fp32 everywhere; fp16 on CUDA (an fp16 graph for ONNX Runtime, TensorRT's fp16 kernels from the fp32
graph; an fp16 inference hint for OpenVINO's GPU devices); bf16 on CPUs with AVX-512 BF16 or AMX (torch's autocast,
OpenVINO's bf16 inference hint) and in TensorRT. ONNX Runtime has no bf16 CPU kernels to speak of: asking for it is
an error that names the backends that do it. int8 on CPUs with VNNI or AMX: OpenVINO running a graph that
sgnet-export --int8 quantized (ONNX Runtime runs its QDQ graph barely faster than fp32, so it is not offered).
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import importlib.util
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from sgnet_model.config import PredictorConfig
from sgnet_model.inference.postprocess import FrameTensors
from sgnet_model.runtime.backbone_precision import FEATURE_NAME, split_at_backbone
from sgnet_model.runtime.export import (INPUTS, LEVELS, TOWERS, ExportError, GraphInfo, engine_cache_dir, file_sha256,
                                        frame_tensors_from, read_graph_info, require, write_atomically)
from sgnet_model.runtime.frame import RunnerKey, Towers, frame_geometry

if TYPE_CHECKING:
    import openvino

LOG = logging.getLogger(__name__)
ONNX_PROVIDER_NAMES = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
                       "tensorrt": "TensorrtExecutionProvider"}
# the backbone's inference precision in a reduced precision (backbone_precision.py); every other graph, int8's
# included (its unquantized layers as the export's AP check ran them), compiles at f32
OPENVINO_PRECISIONS = {"bf16": "bf16", "fp16": "f16"}
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
INT8_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})  # int8 dot products in hardware (VNNI, AMX)
TENSORRT_MAJOR = 10  # the oldest TensorRT the backend runs on
INT8_SUFFIX = ".int8.onnx"  # sgnet-export --int8 of runs/x/model.pt: runs/x/model.int8.onnx, found by int8_graph_for


class BackendError(RuntimeError):
    """A backend cannot run as asked (a precision this hardware lacks, a runtime not installed)."""


def cpu_flags(cpuinfo: str) -> frozenset[str]:
    """The instruction-set flags of a /proc/cpuinfo text (Linux)."""
    return frozenset(flag for line in cpuinfo.splitlines() if line.startswith("flags")
                     for flag in line.split(":", 1)[1].split())


@functools.cache
def this_cpus_flags() -> frozenset[str] | None:
    """This CPU's flags from /proc/cpuinfo; None where there is none (not Linux)."""
    try:
        return cpu_flags(Path("/proc/cpuinfo").read_text())
    except OSError:
        return None


def cpu_supports_bf16() -> bool:
    """Whether this CPU computes in bf16 natively: AVX-512 BF16 or AMX (Linux's /proc/cpuinfo flags), else what
    torch's CPU capability says."""
    flags = this_cpus_flags()
    if flags is None:
        return torch.backends.cpu.get_cpu_capability() in ("AVX512_BF16", "AMX")
    return bool(flags & BF16_FLAGS)


def cpu_supports_int8(flags: frozenset[str] | None = None) -> bool:
    """Whether a CPU with these flags (default: this one's) has int8 dot products in hardware: AVX-512 VNNI,
    AVX-VNNI or AMX. Where the flags cannot be read (not Linux): False, int8 would risk running emulated."""
    flags = this_cpus_flags() if flags is None else flags
    return bool(flags and flags & INT8_FLAGS)


@dataclasses.dataclass(frozen=True)
class RuntimeChoice:
    """What runs, and why: the backend and precision after ``auto`` is resolved."""

    backend: str
    precision: str
    reason: str


def installed_runtimes() -> frozenset[str]:
    """The runtime packages this Python can import (not imported here: they take seconds)."""
    return frozenset(name for name in ("onnx", "onnxruntime", "openvino", "tensorrt")
                     if importlib.util.find_spec(name) is not None)


def choose_runtime(backend: str, precision: str, cuda: bool, bf16_cpu: bool, installed: frozenset[str],
                   graph_only: bool = False, int8_cpu: bool = False, int8_graph: bool = False) -> RuntimeChoice:
    """The backend and precision that ``auto`` stands for; an explicit choice is kept as it is.

    Measured with sgnet-bench (docs/benchmarks.md, "Backends on the CPU"; whole predictor step at 50 detections
    against torch fp32): on a CPU with native bf16 (AVX-512 BF16 or AMX), torch bf16 (0.54x at ResNet-50 640x360 on
    1 thread, 0.85x at ResNet-18 320x192 on 2): OpenVINO's bf16 keeps the model's accuracy only with the heads in
    fp32 (backbone_precision.py), and so took 0.74x and 0.72x; asked for by name it runs. Without native bf16,
    torch fp32: OpenVINO fp32 (0.90-0.93x on 640x360) and ONNX Runtime (0.91-0.95x) were slower than torch at the demo's
    320x192 on 2 threads (1.15x both). bf16's held-out AP loss is bounded by test_export.py. On CUDA: torch with
    CUDA graphs in fp32, until TensorRT and fp16 have figures from a GPU (ask for them by name). ``graph_only``: a
    .onnx checkpoint, which torch cannot run: on CUDA TensorRT where installed, else ONNX Runtime (its CUDA
    provider, onnx_providers); on the CPU OpenVINO where installed, else ONNX Runtime. ``int8_graph``: an int8
    graph is at hand (the .onnx checkpoint is one, or sgnet-export --int8 made one for this checkpoint,
    int8_graph_for): on a CPU with VNNI or AMX (``int8_cpu``) OpenVINO int8 comes first (docs/benchmarks.md:
    0.5x of OpenVINO fp32's runtime or less), its held-out AP checked against fp32's by the export; a .onnx
    checkpoint that is int8 runs int8 only."""
    reasons = []
    use_int8 = not cuda and int8_graph and int8_cpu and {"openvino", "onnx"} <= installed
    if backend == "auto":
        if cuda and graph_only:
            backend, why = (("tensorrt", "CUDA and a frame graph") if "tensorrt" in installed else
                            ("onnxruntime", "CUDA and a frame graph, TensorRT not installed: its CUDA provider"))
        elif cuda:
            backend, why = "torch", "CUDA: torch with CUDA graphs (TensorRT only when asked for)"
        elif use_int8:
            backend, why = "openvino", "CPU with VNNI or AMX and an int8 graph of this checkpoint"
        elif graph_only and {"openvino", "onnx"} <= installed:
            backend, why = "openvino", "a frame graph"
        elif graph_only:
            backend, why = "onnxruntime", "a frame graph, OpenVINO not installed"
        elif bf16_cpu:
            backend, why = "torch", ("CPU with native bf16: torch's autocast (OpenVINO's bf16 with its heads in fp32, "
                                     "as accuracy needs, was slower at ResNet-50 640x360)")
        else:
            backend, why = "torch", "CPU without native bf16: no other runtime was faster at every size"
        reasons.append(f"backend auto: {backend} ({why})")
    if precision == "auto":
        if not cuda and int8_graph and backend == "openvino" and (graph_only or use_int8):
            precision, why = "int8", ("the graph is int8" if graph_only else "an int8 graph of this checkpoint "
                                      "(sgnet-export --int8) and a CPU with VNNI or AMX")
        elif not cuda and bf16_cpu and backend in ("torch", "openvino"):
            precision, why = "bf16", "the CPU has AVX-512 BF16 or AMX"
        else:
            precision, why = "fp32", "CUDA: fp16 waits for GPU figures" if cuda else "no native bf16 for it here"
        reasons.append(f"precision auto: {precision} ({why})")
    return RuntimeChoice(backend, precision, "; ".join(reasons) or "as asked")


def int8_graph_for(checkpoint: Path, checkpoint_sha256: str) -> tuple[tuple[Path, GraphInfo] | None, str]:
    """The int8 graph that sgnet-export --int8 made for ``checkpoint`` (whose file has ``checkpoint_sha256``):
    CHECKPOINT_STEM.int8.onnx beside it, when its metadata says int8 and names this checkpoint file; else None. And
    what was found, for the log."""
    path = checkpoint.with_name(checkpoint.stem + INT8_SUFFIX)
    if not path.is_file():
        return None, f"no int8 graph {path.name} beside the checkpoint"
    try:
        info = read_graph_info(path)
    except ExportError as error:
        return None, f"int8 graph not used: {error}"
    if info.precision != "int8":
        return None, f"{path} is not int8 ({info.precision}): not used"
    if info.checkpoint_sha256 != checkpoint_sha256:
        return None, (f"{path} was made from another checkpoint file (its checkpoint_sha256 differs): not used; "
                      f"make it again with sgnet-export {checkpoint} -o {path} --int8 ...")
    return (path, info), f"int8 graph {path} (made from this checkpoint)"


def graph_to_run(precision: str, graph: tuple[Path, GraphInfo] | None, int8_graph: tuple[Path, GraphInfo] | None,
                 int8_search: str) -> tuple[Path, GraphInfo] | None:
    """The frame graph that runs alone at ``precision``: the one given (a .onnx checkpoint), or where int8 runs the
    checkpoint's int8 graph (int8_graph_for, which found what ``int8_search`` says); None: the model runs. A
    BackendError where the precision and the graph's disagree."""
    if graph is None and precision == "int8":
        if int8_graph is None:
            raise BackendError(f"precision int8 runs a graph quantized by sgnet-export --int8: "
                               f"{int8_search or 'none given'}; make one (docs/export.md, int8) or use precision fp32")
        graph = int8_graph
    if graph is not None and (graph[1].precision == "int8") != (precision == "int8"):
        raise BackendError(f"{graph[0]} is a graph of precision {graph[1].precision} and precision {precision} was "
                           f"asked for: an int8 graph runs at precision int8 (or auto), and int8 runs a graph made by "
                           f"sgnet-export --int8")
    return graph


def check_precision(backend: str, precision: str, device: torch.device, openvino_device: str = "CPU",
                    flags: frozenset[str] | None = None) -> None:
    """A BackendError when ``backend`` cannot run ``precision`` on ``device`` on a CPU with ``flags`` (default:
    this one's, cpu_flags), naming what would."""
    if precision == "int8":
        if not cpu_supports_int8(flags):
            raise BackendError("precision int8 needs a CPU with int8 dot products (the avx512_vnni, avx_vnni or "
                               "amx_int8 flag in /proc/cpuinfo), which this one lacks: it would run emulated, slower "
                               "than fp32; use precision fp32 with the fp32 graph or the checkpoint")
        if backend != "openvino" or not openvino_device.upper().startswith("CPU") or device.type != "cpu":
            raise BackendError(f"precision int8 runs on backend openvino on the CPU (a graph quantized by sgnet-export "
                               f"--int8), not backend {backend} on {device.type}/{openvino_device}: ONNX Runtime runs "
                               f"it barely faster than fp32; use backend openvino, or precision fp32")
    if precision == "bf16":
        if backend == "onnxruntime":
            raise BackendError("precision bf16: ONNX Runtime has no bf16 CPU kernels; use backend openvino or torch "
                               "for bf16, or precision fp32")
        if backend != "tensorrt" and device.type == "cuda":
            raise BackendError("precision bf16 is for CPUs; on CUDA use precision fp16")
        cpu_device = backend == "torch" or openvino_device.upper().startswith("CPU")
        if cpu_device and backend != "tensorrt" and not (bool(flags & BF16_FLAGS) if flags is not None
                                                         else cpu_supports_bf16()):
            raise BackendError("precision bf16 needs a CPU with AVX-512 BF16 or AMX (the avx512_bf16 or amx_bf16 "
                               "flag in /proc/cpuinfo), which this one lacks: it would run slower than fp32; use "
                               "precision fp32")
    if precision == "fp16":
        if backend == "openvino":
            if openvino_device.upper().startswith("CPU"):
                raise BackendError("precision fp16 on OpenVINO's CPU device: use bf16 on the CPU, or fp16 with a "
                                   "GPU device (openvino_device GPU)")
        elif device.type != "cuda":
            raise BackendError(f"precision fp16 runs on CUDA only (backend {backend}); use fp32, or bf16 on a CPU "
                               f"with AVX-512 BF16 or AMX")
    if backend == "tensorrt" and device.type != "cuda":
        raise BackendError("backend tensorrt runs on CUDA only; set device cuda (or auto on a machine with a GPU), "
                           "or use backend onnxruntime or openvino on the CPU")


def host_masks(backend: str, device: torch.device) -> bool:
    """Whether a backend runs the frame graph that leaves the masks to the host (frame.paste_host_masks): on a CPU,
    pasting every slot over the whole frame costs more than the network; a GPU absorbs it (TensorRT, ONNX Runtime
    on CUDA)."""
    return backend == "openvino" or (backend == "onnxruntime" and device.type == "cpu")


def graph_precision(backend: str, precision: str) -> str:
    """The precision of the graph a backend runs at ``precision``: fp16 only for ONNX Runtime's fp16 (TensorRT
    builds its fp16 and bf16 kernels from the fp32 graph, OpenVINO lowers precision itself)."""
    return "fp16" if backend == "onnxruntime" and precision == "fp16" else "fp32"


def open_runner(path: Path, info: GraphInfo, config: PredictorConfig, device: torch.device, key: RunnerKey
                ) -> "FrameRunner | TensorRtFrame":
    """A runtime's session of the graph at ``path``: ``for_frame`` makes its runner for frames of each size."""
    if config.backend == "onnxruntime":
        return OnnxRuntimeFrame(path, info, key, config.onnx_providers.split(","), device, config.run_precision)
    if config.backend == "openvino":
        return OpenVinoFrame(path, info, key, config.openvino_device, config.run_precision)
    if config.backend == "tensorrt":
        return TensorRtFrame(path, info, key, device, config.run_precision)
    raise BackendError(f"backend {config.backend!r} runs no frame graph")  # pragma: no cover - a programming error


def for_frame(runner: "FrameRunner | TensorRtFrame", key: RunnerKey, frame_size: tuple[int, int]
              ) -> "FrameRunner | TensorRtFrame":
    """``runner``'s graph session as the runner for frames of ``frame_size`` (H, W): a copy that shares the session
    (one graph serves every frame size) and knows how such frames enter the network."""
    sized = copy.copy(runner)
    sized.key, sized.frame_size = key, tuple(frame_size)
    sized.scale, sized.valid_size, _ = frame_geometry(runner.info.model_config, *frame_size)
    return sized


class FrameRunner:
    """A frame graph in some runtime, on host arrays; called through ``for_frame``'s copies, which know the frame
    size."""

    description = ""  # what runs, for logs and diagnostics (e.g. "onnxruntime CPUExecutionProvider fp32")
    frame_size: tuple[int, int]  # (H, W) of the frames it serves, and how they enter the network: for_frame's
    scale: float
    valid_size: tuple[int, int]

    def __init__(self, info: GraphInfo, key: RunnerKey, dtype: type) -> None:
        self.info, self.key, self.dtype = info, key, dtype
        self.shapes: list[list[int]] = []  # the towers' shapes (1, C, h, w) per level, set by the runtime

    def __call__(self, images: torch.Tensor, previous: list[Towers | None], elapsed: list[float]
                 ) -> list[tuple[FrameTensors, Towers]]:
        batch = images.cpu().numpy().astype(self.dtype, copy=False)
        results = []
        for image, before, seconds in zip(batch, previous, elapsed):
            still = before is None  # the towers fed are then ignored: any of the right shape will do
            towers = self._zero_towers() if still else before
            feeds = (np.ascontiguousarray(image[None]), np.array(still), np.array([0.0 if still else seconds],
                                                                                    self.dtype),
                     np.array(self.valid_size, self.dtype))
            outputs = self.run(dict(zip(INPUTS, (*feeds, *towers))))
            results.append((frame_tensors_from(self.info, outputs[:-LEVELS], self.scale, self.frame_size),
                            outputs[-LEVELS:]))
        return results

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError

    def _zero_towers(self) -> list[np.ndarray]:
        return [np.zeros(shape, self.dtype) for shape in self.shapes]


class OnnxRuntimeFrame(FrameRunner):
    def __init__(self, path: Path, info: GraphInfo, key: RunnerKey, providers: list[str], device: torch.device,
                 precision: str) -> None:
        onnxruntime = require("onnxruntime", "onnxruntime", "backend onnxruntime")
        super().__init__(info, key, np.float16 if info.precision == "fp16" else np.float32)
        available = onnxruntime.get_available_providers()
        wanted = ["cpu"] if device.type == "cpu" else [p for p in providers if p != "cpu"]
        chosen = [ONNX_PROVIDER_NAMES[p] for p in wanted if ONNX_PROVIDER_NAMES[p] in available]
        if not chosen:
            raise BackendError(f"onnxruntime here offers {available}, none of {[ONNX_PROVIDER_NAMES[p] for p in wanted]}"
                               f" for device {device}; install onnxruntime-gpu for CUDA and TensorRT")
        options = {"CUDAExecutionProvider": {"device_id": device.index or 0},
                   "TensorrtExecutionProvider": {"device_id": device.index or 0, "trt_engine_cache_enable": True,
                                                 "trt_engine_cache_path": str(engine_cache_dir()),
                                                 "trt_fp16_enable": precision == "fp16"}}
        session_options = onnxruntime.SessionOptions()
        session_options.intra_op_num_threads = torch.get_num_threads()  # as many as torch is given (--threads)
        session_options.log_severity_level = 3  # errors only: its constant-folding notes are noise
        # no busy-waiting between runs: its spinning threads took the CPU from the host-side work after each run
        # (the masks' pasting took 2.5x as long beside them)
        session_options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(str(path), session_options, providers=[
            (name, options.get(name, {})) for name in chosen])
        self.description = f"onnxruntime {self.session.get_providers()[0]} {precision}"
        self.shapes = [i.shape for i in self.session.get_inputs()[len(INPUTS) - LEVELS:]]

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(list(self.info.outputs), feeds)


_openvino_core: openvino.Core | None = None
_openvino_core_lock = threading.Lock()  # one Core, also when two threads build their first runners at once


def openvino_core() -> openvino.Core:
    """The process's one OpenVINO Core, never freed. Each Core loads its own CPU plugin, which gives the thread that
    loads it an alternate signal stack of its own mapping and unmaps that mapping when the Core is freed, restoring
    the stack it replaced. Two Cores freed in the order they were made leave the thread's signal stack pointing at
    unmapped memory, and the next signal a Python handler takes there (Ctrl-C, a child process's exit) ends the
    process with SIGSEGV and no traceback; every runner sharing one Core that lives as long as the process never
    frees a signal stack in use (test_export.py: a process that dropped two OpenVINO runners survives a signal)."""
    global _openvino_core
    with _openvino_core_lock:
        if _openvino_core is None:
            _openvino_core = require("openvino", "openvino", "backend openvino").Core()
        return _openvino_core


class OpenVinoFrame(FrameRunner):
    """The frame graph in OpenVINO. In a reduced precision (bf16, fp16) only the backbone runs in it and the rest in
    fp32, as two compiled models (backbone_precision.py: where the accuracy is lost)."""

    def __init__(self, path: Path, info: GraphInfo, key: RunnerKey, device: str, precision: str) -> None:
        super().__init__(info, key, np.float32)
        core = openvino_core()
        if device.split(".")[0].split(":")[0].upper() not in {d.split(".")[0] for d in core.available_devices}:
            raise BackendError(f"OpenVINO device {device!r} is not available here (OpenVINO sees "
                               f"{core.available_devices}); set openvino_device to one of them")
        # an explicit precision: on CPUs with bf16, OpenVINO would otherwise compute in bf16 by itself
        properties = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
        if device.upper().startswith("CPU"):
            properties["INFERENCE_NUM_THREADS"] = torch.get_num_threads()
        self.backbone = None
        if precision not in OPENVINO_PRECISIONS:
            self.compiled = core.compile_model(str(path), device, properties)
        else:
            front, rest = split_at_backbone(core.read_model(str(path)))
            self.backbone = core.compile_model(front, device, {
                **properties, "INFERENCE_PRECISION_HINT": OPENVINO_PRECISIONS[precision]})
            self.backbone_request = self.backbone.create_infer_request()
            self.compiled = core.compile_model(rest, device, properties)
            self.features = [FEATURE_NAME.format(index) for index in range(len(self.backbone.outputs))]
            self.backbone_inputs = _contract_names(self.backbone, INPUTS)
            self.rest_inputs = _contract_names(self.compiled, (*INPUTS, *self.features))
        self.request = self.compiled.create_infer_request()
        self.shapes = [list(self.compiled.input(name).get_shape()) for name in INPUTS[len(INPUTS) - LEVELS:]]
        self.description = f"openvino {device} {precision}"

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        # Shared outputs are views of the request's memory, overwritten by the next request: the logits, base
        # features and attention scores are read before that (frame_tensors_from pastes the masks at once); the
        # numbers and the towers (kept by the camera until its next frame) are copied. The backbone's features are
        # read by the rest's request before the backbone's next.
        if self.backbone is not None:
            features = self.backbone_request.infer({name: feeds[name] for name in self.backbone_inputs},
                                                   share_inputs=True, share_outputs=True)
            feeds = {**feeds, **{name: features[output] for name, output in zip(self.features, self.backbone.outputs)}}
            feeds = {name: feeds[name] for name in self.rest_inputs}
        results = self.request.infer(feeds, share_inputs=True, share_outputs=True)
        kept = {"numbers", *TOWERS}
        return [results[output].copy() if output.get_names() & kept else results[output]
                for output in self.compiled.outputs]


def _contract_names(compiled: openvino.CompiledModel, known: tuple[str, ...]) -> list[str]:
    """Each input of ``compiled`` by its name among ``known`` (the ONNX reader gives an input the names of the
    tensors it feeds as well), resolved once so that a frame's feeds are looked up by name only."""
    return [next(iter(port.get_names() & set(known))) for port in compiled.inputs]


class TensorRtFrame:
    """The frame graph as a TensorRT engine (built from the ONNX file once, cached beside the exports under a name
    keyed by the graph's bytes and the precision), run on torch's CUDA tensors with no host copy but the result's.
    Each image's towers are copied out of the engine's buffers (the next image overwrites them)."""

    def __init__(self, path: Path, info: GraphInfo, key: RunnerKey, device: torch.device, precision: str) -> None:
        tensorrt = require("tensorrt", "tensorrt", "backend tensorrt")
        if int(tensorrt.__version__.split(".")[0]) < TENSORRT_MAJOR:
            raise BackendError(f"backend tensorrt needs TensorRT {TENSORRT_MAJOR} or newer (named tensors, "
                               f"execute_async_v3); this is TensorRT {tensorrt.__version__}: pip install "
                               f"'tensorrt>={TENSORRT_MAJOR}'")
        if info.masks != "graph":
            raise BackendError(f"{path} leaves its masks' blending to the host (sgnet-export --masks host); TensorRT "
                               f"runs graphs with the blending inside: export with --masks graph")
        self.info, self.key, self.device = info, key, device
        logger = tensorrt.Logger(tensorrt.Logger.WARNING)
        # an engine is tied to the TensorRT version that built it: the version is in its name
        engine_path = engine_cache_dir() / (f"{path.stem}-{file_sha256(path)[:12]}-{precision}-"
                                            f"trt{tensorrt.__version__}.engine")
        if not engine_path.is_file():
            try:
                write_atomically(engine_path, self._build(tensorrt, logger, path, precision))
            except ExportError as error:
                raise BackendError(str(error)) from None
        runtime = tensorrt.Runtime(logger)
        self.engine = runtime.deserialize_cuda_engine(engine_path.read_bytes())
        if self.engine is None:
            raise BackendError(f"TensorRT cannot load the cached engine {engine_path} (another TensorRT version "
                               f"built it?); delete it and it is built again")
        self.context = self.engine.create_execution_context()
        self.buffers: dict[str, torch.Tensor] = {}
        for index in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(index)
            dtype = {tensorrt.float32: torch.float32, tensorrt.float16: torch.float16, tensorrt.bool: torch.bool,
                     tensorrt.int32: torch.int32, tensorrt.int64: torch.int64}[self.engine.get_tensor_dtype(name)]
            shape = tuple(self.engine.get_tensor_shape(name))
            self.buffers[name] = torch.zeros(shape, dtype=dtype, device=device)
            self.context.set_tensor_address(name, self.buffers[name].data_ptr())
        self.stream = torch.cuda.Stream(device)  # its own: the engine never queues behind other work on the device
        self.description = f"tensorrt {tensorrt.__version__} {precision}"

    @staticmethod
    def _build(tensorrt: object, logger: object, path: Path, precision: str) -> bytes:
        builder = tensorrt.Builder(logger)
        network = builder.create_network(0)
        parser = tensorrt.OnnxParser(network, logger)
        if not parser.parse(path.read_bytes()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise BackendError(f"TensorRT cannot parse {path}: {errors}")
        config = builder.create_builder_config()
        if precision == "fp16":
            config.set_flag(tensorrt.BuilderFlag.FP16)
        elif precision == "bf16":
            config.set_flag(tensorrt.BuilderFlag.BF16)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise BackendError(f"TensorRT could not build an engine from {path} at {precision} (see its log above)")
        return bytes(serialized)

    def __call__(self, images: torch.Tensor, previous: list[Towers | None], elapsed: list[float]
                 ) -> list[tuple[FrameTensors, Towers]]:
        buffers, results = self.buffers, []
        self.stream.wait_stream(torch.cuda.current_stream(self.device))  # the images were made on that stream
        with torch.cuda.stream(self.stream):
            for image, before, seconds in zip(images, previous, elapsed):
                buffers["image"].copy_(image[None])
                buffers["still"].fill_(before is None)
                buffers["elapsed_s"].fill_(0.0 if before is None else seconds)
                buffers["valid_size"].copy_(torch.tensor(self.valid_size))
                for level, tower in enumerate(before or ()):
                    buffers[f"previous_tower_{level}"].copy_(tower)
                if not self.context.execute_async_v3(self.stream.cuda_stream):
                    raise BackendError("TensorRT failed to run the frame graph")
                # the masks pasted at once on the device, before the next image overwrites the logits
                frame = frame_tensors_from(self.info, [buffers["numbers"], buffers["logits"]], self.scale,
                                           self.frame_size)
                results.append((frame, [buffers[f"tower_{level}"].clone() for level in range(LEVELS)]))
        torch.cuda.current_stream(self.device).wait_stream(self.stream)  # the results, for the host copies
        return results
