"""OpenVINO's bf16 for the backbone only (backbone_precision.py): the cut leaves the graph's arithmetic as it was,
and where the CPU has bf16 only the backbone's convolutions run in it. What it keeps of the trained model's held-out
AP: test_export.py, test_bf16_keeps_the_trained_models_held_out_ap."""
from pathlib import Path

import numpy as np
import pytest
import torch

from runtime_reference import cpuid_says_bf16
from sgnet_model.checkpoint import save_checkpoint
from sgnet_model.config import named_config
from sgnet_model.network.model import SGNet
from sgnet_model.runtime.backbone_precision import FEATURE_NAME, split_at_backbone
from sgnet_model.runtime.export import INPUTS
from training.export import main as sgnet_export

openvino = pytest.importorskip("openvino")
TINY = named_config(str(Path(__file__).parents[2] / "ros" / "tiny_model.yaml"))  # the node tests' smallest model


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    """A host-mask frame graph (the CPU's) of seeded random weights, written by sgnet-export."""
    folder = tmp_path_factory.mktemp("graph")
    torch.manual_seed(0)
    save_checkpoint(folder / "model.pt", TINY.model, SGNet(TINY.model).state_dict(),
                    tracker_profiles=TINY.tracker_profiles())
    assert sgnet_export([str(folder / "model.pt"), "-o", str(folder / "model.onnx"), "--masks", "host"]) == 0
    return folder / "model.onnx"


def feeds_of(model) -> dict[str, np.ndarray]:
    """A frame of noise, still (no previous towers), for each input of ``model`` by its name in the export
    contract (an input also carries the names of the tensors it feeds)."""
    rng = np.random.default_rng(0)
    values = {}
    for port in model.inputs:
        (name,) = port.get_names() & set(INPUTS)
        values[name] = (np.array(True) if port.get_element_type() == openvino.Type.boolean
                        else (rng.random(list(port.get_shape())) * 255).astype(np.float32))
    return values


def runtime_precisions(compiled) -> list[tuple[str, str]]:
    """(layer type, runtime precision) of each node OpenVINO's CPU plugin runs."""
    return [(op.get_rt_info()["layerType"].astype(str), op.get_rt_info()["runtimePrecision"].astype(str))
            for op in compiled.get_runtime_model().get_ordered_ops()]


@pytest.mark.slow  # exports a graph
def test_the_cut_graph_computes_what_the_whole_graph_computes(graph):
    """Both parts in fp32, the backbone's outputs fed to the rest by name: every output of the whole graph, to
    rounding (the cut moved no node and dropped no edge)."""
    core = openvino.Core()
    whole = core.compile_model(str(graph), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    feeds = feeds_of(whole)
    expected = whole.create_infer_request().infer(feeds)
    front, rest = split_at_backbone(core.read_model(str(graph)))
    assert [p.get_friendly_name() for p in front.get_parameters()] == ["image"]  # the backbone sees the image only
    backbone, after = (core.compile_model(part, "CPU", {"INFERENCE_PRECISION_HINT": "f32"}) for part in (front, rest))
    features = backbone.create_infer_request().infer({"image": feeds["image"]})
    rest_feeds = {FEATURE_NAME.format(i): features[output] for i, output in enumerate(backbone.outputs)}
    rest_feeds.update({name: value for name, value in feeds.items() if name != "image"})
    got = after.create_infer_request().infer(rest_feeds)
    assert len(after.outputs) == len(whole.outputs)
    for mine, theirs in zip(whole.outputs, after.outputs):
        assert mine.get_names() == theirs.get_names()
        np.testing.assert_allclose(got[theirs], expected[mine], rtol=1e-5, atol=1e-4)


@pytest.mark.slow  # exports a graph
@pytest.mark.skipif(not cpuid_says_bf16(), reason="bf16 needs a CPU with AVX-512 BF16 or AMX")
def test_only_the_backbones_convolutions_run_in_bf16(graph):
    """Compiled as the predictor compiles them: every convolution of the backbone and the FPN runs in bf16, none
    of the rest (the heads, the mask branch) does; between them they hold every convolution of the graph."""
    core = openvino.Core()
    front, rest = split_at_backbone(core.read_model(str(graph)))
    backbone = runtime_precisions(core.compile_model(front, "CPU", {"INFERENCE_PRECISION_HINT": "bf16"}))
    after = runtime_precisions(core.compile_model(rest, "CPU", {"INFERENCE_PRECISION_HINT": "f32"}))
    whole = runtime_precisions(core.compile_model(str(graph), "CPU", {"INFERENCE_PRECISION_HINT": "f32"}))
    convolutions = [precision for layer, precision in backbone if layer == "Convolution"]
    assert convolutions and set(convolutions) == {"bf16"}
    assert all(precision != "bf16" for _, precision in after)
    assert len(convolutions) + sum(layer == "Convolution" for layer, _ in after) == \
        sum(layer == "Convolution" for layer, _ in whole)
