"""int8: sgnet-export --int8 (training/quantize.py), the runtime's precision int8 on OpenVINO, the CPU flags that
allow it, and auto's use of an int8 graph made from the checkpoint (docs/export.md, int8)."""
from __future__ import annotations

import contextlib
import io
import json
import shutil

import onnx
import pytest
import torch

from sgnet_model.config import PredictorConfig
from sgnet_model.predictor import StreamingPredictor
from sgnet_model.runtime.backends import (BackendError, check_precision, choose_runtime, cpu_flags, cpu_supports_int8,
                                          int8_graph_for)
from sgnet_model.runtime.export import file_sha256, read_graph_info
from training.evaluate import main as sgnet_eval
from training.export import main as sgnet_export

CPU = torch.device("cpu")
# /proc/cpuinfo texts of the three CPU kinds of issue 30, cut to the lines the parser reads and a neighbour
EPYC_BF16 = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 avx512_vnni\nbugs\t\t: sysret_ss_attrs\n"
XEON_AMX = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8\n"
XEON_VNNI = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_vnni\n"
ALDER_LAKE = "processor\t: 0\nflags\t\t: fpu avx2 avx_vnni\n"
NO_INT8 = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512bw\nbugs\t\t: avx512_vnni_is_not_a_flag_here\n"


@pytest.mark.parametrize("cpuinfo, native", [(EPYC_BF16, True), (XEON_AMX, True), (XEON_VNNI, True),
                                             (ALDER_LAKE, True), (NO_INT8, False), ("", False)])
def test_int8_runs_only_where_the_cpu_has_vnni_or_amx(cpuinfo, native):
    """int8 on OpenVINO's CPU device is allowed on a CPU whose flags have AVX-512 VNNI, AVX-VNNI or AMX int8, and
    refused elsewhere with a message naming the flags and what to use instead (a word elsewhere in the text, like
    the bugs line, is no flag)."""
    flags = cpu_flags(cpuinfo)
    assert cpu_supports_int8(flags) is native
    if native:
        check_precision("openvino", "int8", CPU, "CPU", flags)
    else:
        with pytest.raises(BackendError, match="avx512_vnni, avx_vnni or amx_int8 .* use precision fp32"):
            check_precision("openvino", "int8", CPU, "CPU", flags)


@pytest.mark.parametrize("backend, device, openvino_device", [("onnxruntime", CPU, "CPU"), ("torch", CPU, "CPU"),
                                                              ("openvino", CPU, "GPU")])
def test_int8_runs_on_openvinos_cpu_device_only(backend, device, openvino_device):
    with pytest.raises(BackendError, match="precision int8 runs on backend openvino on the CPU"):
        check_precision(backend, "int8", device, openvino_device, cpu_flags(XEON_VNNI))


ALL = frozenset({"onnx", "onnxruntime", "openvino"})


@pytest.mark.parametrize("cuda, bf16_cpu, int8_cpu, installed, graph_only, int8_graph, expected", [
    (False, False, True, ALL, False, True, ("openvino", "int8")),  # VNNI without bf16: int8 beats torch fp32
    (False, True, True, ALL, False, True, ("openvino", "int8")),  # int8 before bf16
    (False, True, True, ALL, False, False, ("torch", "bf16")),  # no int8 graph made: as before
    (False, False, False, ALL, False, True, ("torch", "fp32")),  # no VNNI: the int8 graph is left alone
    (False, False, True, frozenset({"onnx", "onnxruntime"}), False, True, ("torch", "fp32")),  # no OpenVINO
    (True, False, True, ALL, False, True, ("torch", "fp32")),  # CUDA
    (False, False, True, ALL, True, True, ("openvino", "int8")),  # an int8 .onnx given
    (False, True, False, ALL, True, True, ("openvino", "int8")),  # ... runs int8 only (check_precision refuses)
])
def test_auto_uses_an_int8_graph_where_the_cpu_runs_it(cuda, bf16_cpu, int8_cpu, installed, graph_only, int8_graph,
                                                       expected):
    """docs/export.md's rule with an int8 graph at hand, case by case; the reason names it."""
    choice = choose_runtime("auto", "auto", cuda, bf16_cpu, installed, graph_only, int8_cpu, int8_graph)
    assert (choice.backend, choice.precision) == expected
    assert ("precision auto: int8" in choice.reason) == (expected[1] == "int8")
    kept = choose_runtime("openvino", "fp32", cuda, bf16_cpu, installed, graph_only, int8_cpu, int8_graph)
    assert (kept.backend, kept.precision) == ("openvino", "fp32")


@pytest.fixture(scope="module")
def int8_export(trained_checkpoint, tmp_path_factory):
    """The trained model's checkpoint copied to a folder of its own with the int8 graph sgnet-export --int8 made
    beside it (calibrated on its training videos, checked on its held-out ones), and what the export printed."""
    folder = tmp_path_factory.mktemp("int8")
    checkpoint = folder / "model.pt"
    shutil.copyfile(trained_checkpoint.checkpoint, checkpoint)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = sgnet_export([str(checkpoint), "-o", str(folder / "model.int8.onnx"), "--int8", "--calibration",
                             str(trained_checkpoint.train_annotations), "--held-out",
                             str(trained_checkpoint.annotations), "--frames", str(trained_checkpoint.frames)])
    assert code == 0
    return checkpoint, folder / "model.int8.onnx", printed.getvalue()


def held_out_ap(checkpoint, trained, backend, precision, output) -> float:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert sgnet_eval(["--checkpoint", str(checkpoint), "--annotations", str(trained.annotations), "--frames",
                           str(trained.frames), "--output", str(output), "--no-progress", "--json", "--backend",
                           backend, "--precision", precision]) == 0
    report = json.loads(printed.getvalue())
    assert report["runtime"].startswith(backend) and report["runtime"].endswith(precision)
    return report["AP"]


@pytest.mark.skipif(not cpu_supports_int8(), reason="int8 needs a CPU with AVX-512 VNNI, AVX-VNNI or AMX")
def test_int8_keeps_the_trained_models_held_out_ap(int8_export, trained_checkpoint, tmp_path, model_figures):
    """The int8 graph's held-out video AP, measured by sgnet-eval on the written file, is within 0.01 of what
    sgnet-eval measures for torch fp32 on the checkpoint (a second method: no graph at all); its metadata records
    int8, the calibration and the APs the export measured, the int8 one being what sgnet-eval finds."""
    checkpoint, graph, printed = int8_export
    info = read_graph_info(graph)
    assert info.precision == "int8" and info.checkpoint_sha256 == file_sha256(checkpoint)
    int8_ap = held_out_ap(graph, trained_checkpoint, "openvino", "int8", tmp_path / "int8")
    torch_ap = held_out_ap(checkpoint, trained_checkpoint, "torch", "fp32", tmp_path / "torch")
    assert torch_ap > 0.3  # a model that finds the objects: two empty results would prove nothing
    metadata = {entry.key: entry.value for entry in onnx.load(str(graph), load_external_data=False).metadata_props}
    assert metadata["calibration"] == "200 frames of train.json"
    assert float(metadata["held_out_ap_int8"]) == pytest.approx(int8_ap, abs=1e-4)
    assert abs(float(metadata["held_out_ap_fp32"]) - torch_ap) <= 0.002  # the fp32 graph scores what torch scores
    assert f"held-out AP {int8_ap:.4f}" in printed
    model_figures.hold(("AP lost in int8 (openvino)", torch_ap - int8_ap, "<=", 0.01))


@pytest.mark.skipif(not cpu_supports_int8(), reason="int8 needs a CPU with AVX-512 VNNI, AVX-VNNI or AMX")
def test_auto_runs_the_int8_graph_made_from_this_checkpoint(int8_export):
    """CHECKPOINT_STEM.int8.onnx beside the checkpoint runs under auto, and the log line says which; a graph
    whose recorded checkpoint hash is not this file's is not used, with the reason."""
    checkpoint, graph, _ = int8_export
    predictor = StreamingPredictor.from_checkpoint(checkpoint, PredictorConfig(backend="auto", precision="auto"))
    assert predictor.backend_description == "openvino CPU int8" and predictor.model is None
    assert f"int8 graph {graph} (made from this checkpoint)" in predictor.runtime_choice
    assert int8_graph_for(checkpoint, file_sha256(checkpoint))[0][0] == graph
    found, why = int8_graph_for(checkpoint, "0" * 64)  # another checkpoint file of the same name
    assert found is None and "made from another checkpoint file" in why


def test_int8_export_that_loses_ap_is_refused(trained_checkpoint, tmp_path, capsys):
    """With a bound no int8 graph can meet (an AP loss above -1: it would have to gain a whole AP point), the
    export exits 2 with one line saying by how much it fell short, and writes nothing (checked on one held-out
    video: the refusal, not the AP, is what is tested)."""
    held_out = json.loads(trained_checkpoint.annotations.read_text())
    first = held_out["videos"][0]["id"]
    held_out.update(videos=held_out["videos"][:1],
                    annotations=[a for a in held_out["annotations"] if a["video_id"] == first])
    (tmp_path / "held_out.json").write_text(json.dumps(held_out))
    output = tmp_path / "out" / "model.int8.onnx"
    output.parent.mkdir()
    code = sgnet_export([str(trained_checkpoint.checkpoint), "-o", str(output), "--int8", "--calibration",
                         str(trained_checkpoint.train_annotations), "--calibration-frames", "8", "--held-out",
                         str(tmp_path / "held_out.json"), "--frames", str(trained_checkpoint.frames),
                         "--max-ap-loss", "-1"])
    error_lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("sgnet-export: error")]
    assert code == 2 and len(error_lines) == 1
    assert "below fp32's" in error_lines[0] and "(at most -1 allowed)" in error_lines[0]
    assert list(output.parent.iterdir()) == []
