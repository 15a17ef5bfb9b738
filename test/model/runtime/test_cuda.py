"""The predictor on CUDA, fp32 and fp16, against the CPU. Skipped where there is no GPU."""
import dataclasses

import numpy as np
import pytest
import torch

from sgnet_model.config import PredictorConfig, TrackerConfig, named_config
from sgnet_model.network.model import SGNet
from sgnet_model.runtime.frame import FixedFrame
from sgnet_model.predictor import StreamFrame, StreamingPredictor

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")

SMALL = named_config("resnet18_small")
EVERYTHING = TrackerConfig(new_track_score=0.0, continue_score=0.0)


def predictor_on(device: str, fp16: bool, state: dict) -> StreamingPredictor:
    model = SGNet(SMALL.model)
    model.load_state_dict(state)
    with torch.no_grad():
        model.head.regression_head.bbox_reg.bias.fill_(3.0)  # real-sized boxes, so masks have pixels
    predictor = StreamingPredictor(model, EVERYTHING, PredictorConfig(device=device, fp16=fp16))
    predictor.update_thresholds(score_threshold=0.0, detections_per_frame=8)
    return predictor


@pytest.mark.parametrize("fp16, box_tolerance, mask_agreement", [(False, 0.05, 0.999), (True, 1.0, 0.98)])
def test_cuda_matches_the_cpu(fp16, box_tolerance, mask_agreement):
    torch.manual_seed(0)
    state = SGNet(SMALL.model).state_dict()
    frame = np.random.default_rng(0).integers(0, 256, (240, 400, 3), dtype=np.uint8)
    cpu = predictor_on("cpu", False, state).step(frame, 0.0)
    gpu = predictor_on("cuda", fp16, state).step(frame, 0.0)
    by_box = {tuple(np.round(i.box)): i for i in cpu.instances}
    matched = 0
    for instance in gpu.instances:
        twin = min(cpu.instances, key=lambda c: np.abs(c.box - instance.box).max())
        if np.abs(twin.box - instance.box).max() <= box_tolerance:
            matched += 1
            assert (twin.mask == instance.mask).mean() >= mask_agreement
            assert twin.class_id == instance.class_id
    assert matched >= len(by_box) - 1  # fp16 may reorder one near-tie at the cut


def test_cuda_graph_replay_equals_eager_over_a_stream():
    torch.manual_seed(1)
    state = SGNet(SMALL.model).state_dict()
    frames = [np.random.default_rng(seed).integers(0, 256, (240, 400, 3), dtype=np.uint8) for seed in range(3)]
    results = []
    for graphs in (False, True):
        predictor = predictor_on("cuda", False, state)
        predictor.predictor_config = PredictorConfig(device="cuda", cuda_graphs=graphs)
        results.append([predictor.step(frame, 0.1 * t) for t, frame in enumerate(frames)])
    for eager, replayed in zip(*results):
        assert len(eager.instances) == len(replayed.instances) > 0
        for a, b in zip(eager.instances, replayed.instances):
            assert np.allclose(a.box, b.box, atol=1e-3)
            assert np.allclose(a.motion, b.motion, atol=1e-3)  # the previous frame's towers were kept intact
            assert a.track_id == b.track_id


def test_fixed_shape_frame_runs_on_cuda_without_a_host_sync():
    """Everything GraphedFrames captures, run eagerly with torch's sync debugging set to error: any operation that
    makes the host wait for the GPU (a data-dependent shape, .item(), a copy to the host) would raise."""
    torch.manual_seed(2)
    model = SGNet(SMALL.model)
    with torch.no_grad():
        model.head.regression_head.bbox_reg.bias.fill_(3.0)
    predictor = StreamingPredictor(model, EVERYTHING, PredictorConfig(device="cuda"))
    config = dataclasses.replace(predictor.model_config, score_threshold=0.0, detections_per_frame=8)
    frame = np.random.default_rng(0).integers(0, 256, (240, 400, 3), dtype=np.uint8)
    with torch.inference_mode():
        batch, scale, valid_size = predictor._prepare(frame)
        fixed = FixedFrame(predictor.model, config, (), batch, scale, valid_size, (240, 400))
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            [(result, _)] = fixed(batch, [None], [0.0])
        finally:
            torch.cuda.set_sync_debug_mode("default")
    assert result.numbers.shape == (8, 10) and result.masks.shape == (8, 240, 400)
    assert bool(result.numbers[:, 8].all()) and bool(result.masks.any())


def test_cuda_graph_masks_equal_the_eager_ones():
    torch.manual_seed(3)
    state = SGNet(SMALL.model).state_dict()
    frame = np.random.default_rng(4).integers(0, 256, (240, 400, 3), dtype=np.uint8)
    results = []
    for graphs in (False, True):
        predictor = predictor_on("cuda", False, state)
        predictor.predictor_config = PredictorConfig(device="cuda", cuda_graphs=graphs)
        results.append(predictor.step(frame, 0.0))
    eager, replayed = results
    assert len(eager.instances) == len(replayed.instances) == 8
    for a, b in zip(eager.instances, replayed.instances):
        assert a.mask.any() and (a.mask == b.mask).mean() > 0.9999


def test_cuda_graph_batches_keep_each_cameras_previous_frame():
    """Two cameras batched through one graph (their previous towers copied in and out of its slots), a third
    camera of another size in its own graph: the same instances and movements as eager batches."""
    torch.manual_seed(4)
    state = SGNet(SMALL.model).state_dict()
    rng = np.random.default_rng(5)
    videos = {"front": rng.integers(0, 256, (3, 240, 400, 3), dtype=np.uint8),
              "rear": rng.integers(0, 256, (3, 240, 400, 3), dtype=np.uint8),
              "side": rng.integers(0, 256, (3, 120, 200, 3), dtype=np.uint8)}
    results = []
    for graphs in (False, True):
        predictor = predictor_on("cuda", False, state)
        predictor.predictor_config = PredictorConfig(device="cuda", cuda_graphs=graphs)
        results.append([predictor.step_batch([StreamFrame(name, frames[t], 0.1 * t) for name, frames in videos.items()])
                        for t in range(3)])
    for eager_batch, replayed_batch in zip(*results):
        for eager, replayed in zip(eager_batch, replayed_batch):
            assert len(eager.instances) == len(replayed.instances) > 0
            for a, b in zip(eager.instances, replayed.instances):
                assert np.allclose(a.box, b.box, atol=1e-3) and np.allclose(a.motion, b.motion, atol=1e-3)
                assert a.track_id == b.track_id
