"""One predictor, several cameras: per-camera streams (tracks, previous towers, gaps) and batched inference."""
import dataclasses

import numpy as np
import pytest
import torch

from sgnet_model.config import SGNetConfig, TrackerConfig, named_config
from sgnet_model.network.model import SGNet
from sgnet_model.runtime.frame import FixedFrame, frame_geometry
from sgnet_model.predictor import PredictorError, StreamFrame, StreamingPredictor
from runtime_reference import REFERENCE

SMALL = named_config("resnet18_small")
EVERYTHING = TrackerConfig(new_track_score=0.0, continue_score=0.0)  # random weights: track every detection


def predictor(**settings) -> StreamingPredictor:
    torch.manual_seed(0)
    made = StreamingPredictor.from_config(SGNetConfig(SMALL.model, EVERYTHING),
                                          dataclasses.replace(REFERENCE, **settings))
    made.update_thresholds(score_threshold=0.0, detections_per_frame=5)
    return made


def video(count: int, seed: int = 0, size: tuple[int, int] = (128, 224)) -> list[np.ndarray]:
    """A noise picture panning 8 pixels right per frame: the movement head sees two different frames."""
    base = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    return [np.roll(base, 8 * index, axis=1) for index in range(count)]


def summary(result) -> list[tuple]:
    return [(i.track_id, i.class_id, i.box, i.mask, i.motion) for i in result.instances]


def assert_same(got, expected, exact: bool) -> None:
    assert got.tracks_reset == expected.tracks_reset
    assert len(got.instances) == len(expected.instances) > 0
    for a, b in zip(got.instances, expected.instances):
        assert (a.track_id, a.class_id) == (b.track_id, b.class_id)
        if exact:
            assert np.array_equal(a.box, b.box) and np.array_equal(a.motion, b.motion)
            assert np.array_equal(a.mask, b.mask)
        else:  # a batch may run other convolution kernels: float tolerance
            assert np.allclose(a.box, b.box, atol=1e-2) and np.allclose(a.motion, b.motion, atol=1e-2)
            assert (a.mask == b.mask).mean() > 0.999
            assert abs(a.score - b.score) < 1e-4


def test_a_camera_interleaved_with_another_gets_exactly_what_it_gets_alone():
    """Camera A's IDs, masks and movements never change because of camera B's frames (another video, other
    stamps, a reset in the middle)."""
    a_frames, b_frames = video(4, seed=1), video(4, seed=2)
    alone = predictor()
    expected = [alone.step(image, 0.2 * t) for t, image in enumerate(a_frames)]
    shared = predictor()
    b_stamps = (100.0, 100.2, 99.0, 99.2)  # B's stamps go back at t = 2: B resets, A does not
    for t, (a, b) in enumerate(zip(a_frames, b_frames)):
        b_result = shared.step(b, b_stamps[t], camera="rear")
        assert b_result.tracks_reset == (t in (0, 2))
        assert_same(shared.step(a, 0.2 * t, camera="front"), expected[t], exact=True)
    assert set(shared.streams) == {"front", "rear"}


def test_two_cameras_in_batches_each_get_what_they_get_alone():
    """Two cameras with different videos (the footage and its mirror image), batched frame by frame: each camera's
    results equal its own video run alone, so state swapped or shared between the two cameras would show (the
    two runs alone differ from each other in every frame: other boxes)."""
    front_frames = video(4, seed=3)
    rear_frames = [np.ascontiguousarray(image[:, ::-1]) for image in front_frames]
    expected = {}
    for name, frames in (("front", front_frames), ("rear", rear_frames)):
        alone = predictor()
        expected[name] = [alone.step(image, 0.2 * t) for t, image in enumerate(frames)]
    for a, b in zip(expected["front"], expected["rear"]):  # the two cameras' own results tell them apart (boxes)
        assert a.instances and not all(np.allclose(x.box, y.box, atol=1e-2) for x, y in zip(a.instances, b.instances))
    batched = predictor()
    for t, (front_image, rear_image) in enumerate(zip(front_frames, rear_frames)):
        front, rear = batched.step_batch([StreamFrame("front", front_image, 0.2 * t),
                                          StreamFrame("rear", rear_image, 0.2 * t)])
        assert_same(front, expected["front"][t], exact=False)
        assert_same(rear, expected["rear"][t], exact=False)
    # each camera counts its own IDs from 1
    assert {i.track_id for i in front.instances} == {i.track_id for i in expected["front"][-1].instances}
    assert {i.track_id for i in rear.instances} == {i.track_id for i in expected["rear"][-1].instances}


def test_a_batch_equals_its_frames_run_one_at_a_time():
    """Three cameras with three videos, batched, against the same three streams stepped one frame at a time."""
    videos = {name: video(2, seed=seed) for seed, name in enumerate(("left", "front", "right"))}
    one_by_one, batched = predictor(), predictor()
    for t in range(2):
        expected = [one_by_one.step(frames[t], 0.1 * t, camera=name) for name, frames in videos.items()]
        got = batched.step_batch([StreamFrame(name, frames[t], 0.1 * t) for name, frames in videos.items()])
        for a, b in zip(got, expected):
            assert_same(a, b, exact=False)


def test_frames_of_different_sizes_run_in_their_own_batches():
    small, large = video(2, seed=4, size=(96, 160)), video(2, seed=5, size=(128, 224))
    one_by_one, batched = predictor(), predictor()
    for t in range(2):
        expected = [one_by_one.step(small[t], 0.1 * t, camera="small"),
                    one_by_one.step(large[t], 0.1 * t, camera="large")]
        got = batched.step_batch([StreamFrame("small", small[t], 0.1 * t), StreamFrame("large", large[t], 0.1 * t)])
        assert got[0].instances[0].mask.shape == (96, 160) and got[1].instances[0].mask.shape == (128, 224)
        for a, b in zip(got, expected):
            assert_same(a, b, exact=False)


def test_a_gap_on_one_camera_resets_only_that_camera():
    """A gap in one camera's stamps resets that camera's stream only; reset(camera) resets that camera only."""
    image = video(1)[0]
    shared = predictor(max_gap_s=1.0)
    first = shared.step_batch([StreamFrame("front", image, 0.0), StreamFrame("rear", image, 0.0)])
    later = shared.step_batch([StreamFrame("front", image, 0.1), StreamFrame("rear", image, 5.0, received_before=0.0)])
    assert [r.tracks_reset for r in first] == [True, True] and [r.tracks_reset for r in later] == [False, True]
    alone = predictor(max_gap_s=1.0)  # front's tracks go on exactly as they would without the rear camera
    for got, expected in zip((first[0], later[0]), (alone.step(image, 0.0), alone.step(image, 0.1))):
        assert [i.track_id for i in got.instances] == [i.track_id for i in expected.instances]
    assert not {i.track_id for i in later[1].instances} & {i.track_id for i in first[1].instances}
    # reset("front"): the stamps below are 0.1 s after each camera's last (max_gap_s is 1 s), so nothing but the
    # reset can make front start over; rear, not reset, keeps its tracks
    shared.reset("front")
    front_after, rear_after = shared.step(image, 0.2, camera="front"), shared.step(image, 5.1, camera="rear")
    assert front_after.tracks_reset and not rear_after.tracks_reset
    assert not {i.track_id for i in front_after.instances} & {i.track_id for i in later[0].instances}  # new tracks
    assert {i.track_id for i in rear_after.instances} & {i.track_id for i in later[1].instances}  # tracks go on


def test_tracker_settings_reach_every_camera():
    shared = predictor()
    shared.step_batch([StreamFrame("front", video(1)[0], 0.0), StreamFrame("rear", video(1)[0], 0.0)])
    strict = dataclasses.replace(EVERYTHING, new_track_score=1.0, continue_score=1.0)
    shared.tracker_config = strict
    assert all(stream.tracker.config == strict for stream in shared.streams.values())
    assert shared.stream("new").tracker.config == strict


def test_a_bad_frame_is_its_cameras_error_alone():
    """A batch with one camera's frame not finite-stamped and another's not an RGB array: those two get their own
    PredictorError naming the camera, the good camera is served exactly as alone, and step() raises the error."""
    shared, image = predictor(), video(1)[0]
    with pytest.raises(PredictorError, match="one frame per camera"):
        shared.step_batch([StreamFrame("front", image, 0.0), StreamFrame("front", image, 0.1)])
    results = shared.step_batch([StreamFrame("front", image, 0.0), StreamFrame("rear", image, float("nan")),
                                 StreamFrame("wrist", image[..., :2].copy(), 0.0)])
    assert isinstance(results[1], PredictorError) and "finite" in str(results[1]) and "'rear'" in str(results[1])
    assert isinstance(results[2], PredictorError) and "'wrist'" in str(results[2]) and "(H, W, 3)" in str(results[2])
    assert_same(results[0], predictor().step(image, 0.0), exact=True)
    assert shared.streams.get("rear") is None or shared.streams["rear"].timestamp is None  # nothing was advanced
    with pytest.raises(PredictorError, match="finite"):
        shared.step(image, float("inf"), camera="rear")


def test_a_camera_beside_another_size_a_corrupt_frame_and_resets_gets_what_it_gets_alone():
    """Isolation: camera A's IDs, boxes, masks and movement, frame by frame, are the same whether or not camera B
    is interleaved with it in the same batches, B switching frame size, sending a corrupt frame and resetting."""
    a_frames = video(4, seed=8)
    alone = predictor()
    expected = [alone.step(image, 0.1 * t) for t, image in enumerate(a_frames)]
    b_frames = [video(1, seed=9)[0], video(1, seed=9, size=(96, 160))[0], np.zeros((4, 4, 3), np.uint8),
                video(1, seed=9)[0]]
    b_stamps = (50.0, 50.1, 50.2, 10.0)  # B's stamps go back at the end: B resets
    shared = predictor()
    for t, (a, b) in enumerate(zip(a_frames, b_frames)):
        got_a, got_b = shared.step_batch([StreamFrame("a", a, 0.1 * t), StreamFrame("b", b, b_stamps[t])])
        assert_same(got_a, expected[t], exact=False)
        assert isinstance(got_b, PredictorError) == (t == 2)
    assert got_b.tracks_reset


def test_a_fixed_frame_batch_equals_one_fixed_frame_per_stream():
    """The fixed-shape path (what CUDA graphs replay) on a batch of two streams, one of them still, with each
    slot's previous towers its own, against a FixedFrame per stream."""
    torch.manual_seed(1)
    model = SGNet(SMALL.model).eval()
    config = dataclasses.replace(SMALL.model, score_threshold=0.0, detections_per_frame=4)
    images = [[torch.from_numpy(f).permute(2, 0, 1)[None].float() for f in video(2, seed=s)] for s in (6, 7)]
    with torch.inference_mode():
        batched = FixedFrame(model, config, (), torch.cat([v[0] for v in images]), 1.0, (128, 224), (128, 224))
        single = [FixedFrame(model, config, (), v[0], 1.0, (128, 224), (128, 224)) for v in images]
        batched_towers, single_towers = [None, None], [None, None]
        for t in range(2):
            # stream 1 is still at every frame: its slot is fed nothing
            got = batched(torch.cat([v[t] for v in images]), [batched_towers[0], None], [0.2 * t, 0.0])
            batched_towers[0] = got[0][1]
            for stream, (fixed, frames) in enumerate(zip(single, images)):
                [(expected, towers)] = fixed(frames[t], [single_towers[stream] if stream == 0 else None],
                                             [0.2 * t if stream == 0 else 0.0])
                single_towers[stream] = towers
                assert torch.allclose(got[stream][0].numbers, expected.numbers, atol=1e-3)
                assert (got[stream][0].masks == expected.masks).float().mean() > 0.999
        assert got[0][0].numbers[:, 4:6].abs().max() > 0  # stream 0 saw its previous frame


def test_the_cpu_batch_budget_splits_the_network_pass_and_changes_no_result():
    """predictor.cpu_batch_pixels: three cameras' 128x224 frames in passes of at most two images (a budget of two
    padded network inputs) give what one pass of three gives; the network saw batches of 2 and 1."""
    videos = {name: video(2, seed=seed) for seed, name in enumerate(("left", "front", "right"))}
    _, _, (height, width) = frame_geometry(SMALL.model, 128, 224)
    one_pass, split = predictor(), predictor(cpu_batch_pixels=2 * height * width + 1)
    seen: list[int] = []
    first_conv = next(m for m in split.model.modules() if isinstance(m, torch.nn.Conv2d))
    first_conv.register_forward_pre_hook(lambda module, inputs: seen.append(inputs[0].shape[0]))
    for t in range(2):
        frames = [StreamFrame(name, images[t], 0.1 * t) for name, images in videos.items()]
        for a, b in zip(split.step_batch(frames), one_pass.step_batch(frames)):
            assert_same(a, b, exact=False)
    assert seen == [2, 1, 2, 1]
