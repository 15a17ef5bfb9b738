"""Checkpoint files: round trip with a real network and a real training state, atomic writes, and refusal of
missing, broken, foreign and unsafe files with errors that name the file."""
from __future__ import annotations

import copy
import dataclasses
import pickle
import random
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.ops import FrozenBatchNorm2d

from sgnet_model.checkpoint import CheckpointError, load_checkpoint, load_model_state, save_checkpoint
from sgnet_model.config import ModelConfig, SGNetConfig, TrackerConfig, named_config, to_dict
from sgnet_model.network.model import SGNet

REPO = Path(__file__).resolve().parents[2]
SMALL = dataclasses.replace(named_config("resnet18_small").model, class_names=("cube", "ball", "star"))


@pytest.fixture(scope="module")
def network() -> SGNet:
    torch.manual_seed(0)
    return SGNet(SMALL)


def training_state(model: torch.nn.Module) -> dict:
    """What a resumable training run stores: optimizer and scheduler after a step, and all RNG states."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.005, momentum=0.9, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.9)
    sum(p.sum() for p in model.parameters()).backward()
    optimizer.step()
    scheduler.step()
    model.zero_grad()
    state = {"iteration": 1234, "epoch": 3, "loss_history": [0.5, 0.25], "best": {"ap": 0.71, "at": (3, "val")},
             "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
             "torch_rng": torch.get_rng_state(), "numpy_rng": np.random.default_rng(7).bit_generator.state,
             "python_rng": random.getstate()}
    if torch.cuda.is_available():
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    return state


def assert_same(loaded, original, where="training") -> None:
    """Equal structure, types and values; tensors equal in dtype, shape and every element."""
    assert type(loaded) is type(original), where
    if isinstance(original, torch.Tensor):
        assert loaded.dtype == original.dtype and torch.equal(loaded, original.to(loaded.device)), where
    elif isinstance(original, dict):
        assert list(loaded) == list(original), where
        for key in original:
            assert_same(loaded[key], original[key], f"{where}[{key!r}]")
    elif isinstance(original, (list, tuple)):
        assert len(loaded) == len(original), where
        for index, (a, b) in enumerate(zip(loaded, original)):
            assert_same(a, b, f"{where}[{index}]")
    else:
        assert loaded == original, where


def test_round_trip_keeps_config_weights_and_training_state(tmp_path, network):
    path = tmp_path / "model.pt"
    state = training_state(network)
    save_checkpoint(path, SMALL, network.state_dict(), state)
    checkpoint = load_checkpoint(path)
    assert checkpoint.model_config == SMALL
    assert checkpoint.model_config.class_names == ("cube", "ball", "star")
    assert_same(checkpoint.model_state, network.state_dict(), "model")
    assert_same(checkpoint.training_state, state)
    # The states restore: loading them into fresh objects gives the generators the original streams back.
    torch.set_rng_state(checkpoint.training_state["torch_rng"])
    torch_draws = torch.rand(5)
    torch.set_rng_state(state["torch_rng"])
    assert torch.equal(torch_draws, torch.rand(5))
    generator = np.random.default_rng()
    generator.bit_generator.state = checkpoint.training_state["numpy_rng"]
    assert np.array_equal(generator.random(5), np.random.default_rng(7).random(5))
    restored = random.Random()
    restored.setstate(checkpoint.training_state["python_rng"])
    original = random.Random()
    original.setstate(state["python_rng"])
    assert [restored.random() for _ in range(5)] == [original.random() for _ in range(5)]
    optimizer = torch.optim.SGD(network.parameters(), lr=1.0, momentum=0.9)
    optimizer.load_state_dict(checkpoint.training_state["optimizer"])
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.005 * 0.9)


def test_weights_load_into_a_network_built_from_the_stored_config(tmp_path, network):
    path = tmp_path / "model.pt"
    save_checkpoint(path, SMALL, network.state_dict())
    checkpoint = load_checkpoint(path)
    assert checkpoint.training_state is None
    torch.manual_seed(1)
    rebuilt = SGNet(checkpoint.model_config)
    load_model_state(rebuilt, checkpoint, path)
    assert_same(rebuilt.state_dict(), network.state_dict(), "model")


def test_mismatched_network_is_refused_and_left_untouched(tmp_path, network):
    path = tmp_path / "model.pt"
    save_checkpoint(path, SMALL, network.state_dict())
    checkpoint = load_checkpoint(path)
    other = SGNet(dataclasses.replace(SMALL, class_names=("a", "b", "c", "d", "e")))  # 5 classes, not 3
    before = copy.deepcopy(other.state_dict())
    with pytest.raises(CheckpointError) as error:
        load_model_state(other, checkpoint, path)
    message = str(error.value)
    assert str(path) in message and "does not fit the network" in message
    assert "head.classification_head.cls_logits.weight (3, 64, 3, 3) in the file, (5, 64, 3, 3)" in message
    assert_same(other.state_dict(), before, "untouched")  # nothing half-loaded
    state = dict(checkpoint.model_state)
    del state["head.classification_head.cls_logits.bias"]
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"1 weights missing from the file: head.classification_head"
                                              r".cls_logits.bias; 1 weights not in the network: extra.weight"):
        load_model_state(network, dataclasses.replace(checkpoint, model_state=state), path)


def test_batchnorm_counters_are_neither_required_nor_refused(tmp_path):
    """A network trained from scratch (BatchNorm2d, which counts its batches) and one from pretrained weights
    (FrozenBatchNorm2d, which does not) read each other's files and then compute the same; a real weight is still
    required."""
    torch.manual_seed(3)
    learned = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)).eval()
    frozen = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), FrozenBatchNorm2d(4))
    with torch.no_grad():
        learned[1].running_mean.uniform_(-1, 1)
        learned[1].running_var.uniform_(0.5, 2)
        learned[1].weight.uniform_(0.5, 1.5)
        learned[1].num_batches_tracked.fill_(7)
    path = tmp_path / "model.pt"
    image = torch.rand(1, 3, 8, 8)
    for source, target in ((learned, frozen), (frozen, learned)):
        save_checkpoint(path, SMALL, source.state_dict())
        load_model_state(target, load_checkpoint(path), path)
        assert torch.allclose(target(image), source(image))
    assert int(learned[1].num_batches_tracked) == 7  # a file without counters leaves the network's own
    state = dict(learned.state_dict())
    del state["1.running_var"]
    save_checkpoint(path, SMALL, state)
    with pytest.raises(CheckpointError, match=r"does not fit the network built from its config: 1 weights missing "
                                              r"from the file: 1\.running_var$"):
        load_model_state(frozen, load_checkpoint(path), path)


def test_failed_save_leaves_the_previous_file_and_no_temporary(tmp_path):
    path = tmp_path / "model.pt"
    save_checkpoint(path, SMALL, {"w": torch.arange(4.0)})
    before = path.read_bytes()
    with pytest.raises(CheckpointError, match=r"training_state\['metrics'\]\['ap'\] is a numpy.float64"):
        save_checkpoint(path, SMALL, {"w": torch.zeros(4)}, {"metrics": {"ap": np.float64(0.5)}})
    with pytest.raises(CheckpointError, match=r"training_state\['schedule'\] is a builtins.function"):
        save_checkpoint(path, SMALL, {"w": torch.zeros(4)}, {"schedule": lambda step: step})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]
    assert torch.equal(load_checkpoint(path).model_state["w"], torch.arange(4.0))


@pytest.mark.skipif(sys.platform == "win32", reason="file size limits (RLIMIT_FSIZE) are POSIX only")
def test_write_failing_midway_leaves_the_previous_file_and_no_temporary(tmp_path):
    """A real write error halfway through: a child process may write at most 1 MiB per file, then saves 4 MiB
    of weights over an existing checkpoint; the kernel refuses the write that crosses the limit."""
    path = tmp_path / "model.pt"
    save_checkpoint(path, SMALL, {"w": torch.arange(4.0)})
    before = path.read_bytes()
    child = f"""
import resource, signal, torch
from sgnet_model.checkpoint import CheckpointError, save_checkpoint
from sgnet_model.config import named_config
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
try:
    save_checkpoint({str(path)!r}, named_config("resnet18_small").model, {{"w": torch.ones(1 << 20)}})
except CheckpointError as error:
    print(error)
"""
    result = subprocess.run([sys.executable, "-c", child], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"cannot write checkpoint {path}: [Errno 27] File too large" in result.stdout
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


def write_marker(marker: str) -> None:
    Path(marker).write_text("code from a data file ran")


class WritesAMarker:
    """Unpickling this calls write_marker, which creates the marker file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return write_marker, (str(self.marker),)


def test_torch_file_with_a_pickled_object_is_refused_without_running_it(tmp_path):
    path, marker = tmp_path / "model.pt", tmp_path / "code_ran"
    payload = {"format": "sgnet_ros.checkpoint", "version": 1, "model_config": to_dict(SMALL),
               "model": {}, "training": {"hook": WritesAMarker(marker)}}
    torch.save(payload, path)
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(path)
    message = str(error.value)
    assert str(path) in message and "never executes code" in message
    assert f"it names {write_marker.__module__}.write_marker" in message
    assert not marker.exists()
    torch.load(path, weights_only=False)  # the control: an unsafe load does run it
    assert marker.exists()


def test_raw_pickle_is_refused_without_running_it(tmp_path):
    path, marker = tmp_path / "model.pt", tmp_path / "code_ran"
    path.write_bytes(pickle.dumps(WritesAMarker(marker)))
    with pytest.raises(CheckpointError, match="is a raw Python pickle.*refuses to load it"):
        load_checkpoint(path)
    assert not marker.exists()
    pickle.loads(path.read_bytes())  # the control: unpickling does run it
    assert marker.exists()


def test_missing_file_says_how_to_get_one(tmp_path):
    path = tmp_path / "none.pt"
    with pytest.raises(CheckpointError, match=f"checkpoint {path} does not exist; .*sgnet-train.*sgnet-demo"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match=f"checkpoint {tmp_path} is not a file"):
        load_checkpoint(tmp_path)


def test_truncated_empty_random_and_foreign_zip_files_are_refused(tmp_path, network):
    good = tmp_path / "good.pt"
    save_checkpoint(good, SMALL, {"w": torch.zeros(1000)})
    data = good.read_bytes()
    truncated, empty, noise, foreign = (tmp_path / name for name in ("cut.pt", "empty.pt", "noise.pt", "other.pt"))
    truncated.write_bytes(data[:len(data) // 2])
    empty.write_bytes(b"")
    noise.write_bytes(bytes([0x42]) + np.random.default_rng(0).bytes(4095))
    with zipfile.ZipFile(foreign, "w") as archive:
        archive.writestr("readme.txt", "a zip, but no torch file")
    with pytest.raises(CheckpointError, match=f"checkpoint {truncated} is a truncated zip archive"):
        load_checkpoint(truncated)
    with pytest.raises(CheckpointError, match=f"checkpoint {empty} is empty"):
        load_checkpoint(empty)
    with pytest.raises(CheckpointError, match=f"{noise} is not a torch checkpoint \\(not a zip archive\\)"):
        load_checkpoint(noise)
    with pytest.raises(CheckpointError, match=f"checkpoint {foreign} is corrupt or not a torch checkpoint"):
        load_checkpoint(foreign)


def test_wrong_format_marker_and_version_are_refused(tmp_path, network):
    bare = tmp_path / "bare.pt"
    torch.save(network.state_dict(), bare)
    with pytest.raises(CheckpointError, match=f"{bare} is not an sgnet_ros checkpoint \\(format marker None"):
        load_checkpoint(bare)
    tensor = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor)
    with pytest.raises(CheckpointError, match=f"{tensor} is not an sgnet_ros checkpoint: it holds a Tensor"):
        load_checkpoint(tensor)
    newer = tmp_path / "newer.pt"
    torch.save({"format": "sgnet_ros.checkpoint", "version": 4, "model_config": to_dict(SMALL), "model": {},
                "training": None}, newer)
    with pytest.raises(CheckpointError, match=f"checkpoint {newer} has format version 4; .* reads version 3"):
        load_checkpoint(newer)
    older = tmp_path / "older.pt"
    torch.save({"format": "sgnet_ros.checkpoint", "version": 1, "model_config": to_dict(SMALL), "model": {},
                "training": None}, older)
    with pytest.raises(CheckpointError, match=f"checkpoint {older} has format version 1, .*: retrain it"):
        load_checkpoint(older)


def test_a_version_2_checkpoint_loads_as_the_network_it_was(tmp_path):
    """Version 2 files predate the stride-4 mask detail, the pasting margin, class-agnostic NMS and the Dice
    term: their config has none of these fields and their base mask module is one Sequential ``convs``. Such a
    file, written here by hand in that layout, loads with the version 2 behaviour and every weight in place."""
    version_2 = dataclasses.replace(SMALL, base_detail_stride=8, mask_margin=0.0, class_agnostic_nms=False,
                                    mask_dice_weight=0.0, mask_boundary_fraction=0.0)
    torch.manual_seed(0)
    original = SGNet(version_2).state_dict()
    state = {}
    for key, value in original.items():
        parts = key.split(".")
        if parts[0] == "base_masks" and parts[1] == "project":
            key = ".".join(["base_masks", "convs", "6", *parts[2:]])
        elif parts[0] == "base_masks":
            key = ".".join(["base_masks", "convs", *parts[2:]])
        state[key] = value
    assert "base_masks.convs.6.weight" in state and "base_masks.convs.0.weight" in state
    stored_config = {k: v for k, v in to_dict(SMALL).items() if k not in (
        "base_detail_stride", "mask_margin", "class_agnostic_nms", "mask_dice_weight", "mask_boundary_fraction")}
    stored_tracker = {k: v for k, v in to_dict(TrackerConfig()).items() if k != "match_across_classes"}
    path = tmp_path / "version2.pt"
    torch.save({"format": "sgnet_ros.checkpoint", "version": 2, "model_config": stored_config,
                "tracker_profiles": {name: stored_tracker for name in ("robot", "evaluation")},
                "model": state, "training": None}, path)
    checkpoint = load_checkpoint(path)
    assert checkpoint.model_config == version_2
    assert not any(profile.match_across_classes for profile in checkpoint.tracker_profiles.values())
    network = SGNet(checkpoint.model_config)
    load_model_state(network, checkpoint, path)
    assert all(torch.equal(network.state_dict()[key], value) for key, value in original.items())


def test_tracker_profiles_round_trip_and_default_to_the_config_defaults(tmp_path):
    robot = TrackerConfig(new_track_score=0.7, continue_score=0.6, max_lost_s=1.5, radius_scale=2.0)
    evaluation = TrackerConfig(new_track_score=0.2, continue_score=0.01, max_lost_s=3.0, radius_scale=0.5)
    path = tmp_path / "model.pt"
    save_checkpoint(path, SMALL, {"w": torch.zeros(1)}, tracker_profiles={"robot": robot, "evaluation": evaluation})
    assert load_checkpoint(path).tracker_profiles == {"robot": robot, "evaluation": evaluation}
    save_checkpoint(path, SMALL, {"w": torch.zeros(1)})
    assert load_checkpoint(path).tracker_profiles == {"robot": SGNetConfig().tracker,
                                                      "evaluation": SGNetConfig().evaluation_tracker}
    with pytest.raises(CheckpointError, match="tracker_profiles must map \\['robot', 'evaluation'\\]"):
        save_checkpoint(path, SMALL, {"w": torch.zeros(1)}, tracker_profiles={"robot": robot})
    torch.save({"format": "sgnet_ros.checkpoint", "version": 2, "model_config": to_dict(SMALL), "model": {},
                "tracker_profiles": {"robot": to_dict(robot), "evaluation": {"continue_score": 2.0}},
                "training": None}, path)
    with pytest.raises(CheckpointError, match="tracker_profiles.evaluation.continue_score: must lie in \\[0, 1\\]"):
        load_checkpoint(path)


@pytest.mark.parametrize("change, named", [({"backbone": "resnet9"}, "model_config.backbone: must be one of"),
                                           ({"max_grid": 0}, "model_config.max_grid: must be at least 1"),
                                           ({"grid_size": 6}, "model_config: unknown field\\(s\\) \\['grid_size'\\]")])
def test_invalid_config_in_the_file_names_the_field(tmp_path, change, named):
    path = tmp_path / "model.pt"
    torch.save({"format": "sgnet_ros.checkpoint", "version": 2, "model_config": {**to_dict(SMALL), **change},
                "tracker_profiles": {name: to_dict(TrackerConfig()) for name in ("robot", "evaluation")},
                "model": {}, "training": None}, path)
    with pytest.raises(CheckpointError, match=f"checkpoint {path}: {named}"):
        load_checkpoint(path)


def test_save_refuses_what_is_not_a_config_or_a_state_dict(tmp_path):
    path = tmp_path / "model.pt"
    with pytest.raises(CheckpointError, match="model_config must be a ModelConfig, got dict"):
        save_checkpoint(path, to_dict(SMALL), {})
    with pytest.raises(CheckpointError, match="must map names to tensors, but 'w' holds ndarray"):
        save_checkpoint(path, ModelConfig(), {"w": np.zeros(3)})
    assert not path.exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_tensors_load_onto_the_cpu(tmp_path):
    path = tmp_path / "model.pt"
    save_checkpoint(path, SMALL, {"w": torch.arange(3.0, device="cuda")}, {"cuda_rng": torch.cuda.get_rng_state()})
    checkpoint = load_checkpoint(path)
    assert checkpoint.model_state["w"].device.type == "cpu"
    assert torch.equal(checkpoint.model_state["w"], torch.arange(3.0))
    assert torch.equal(checkpoint.training_state["cuda_rng"], torch.cuda.get_rng_state())


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_loading_onto_cuda_without_cuda_says_so(tmp_path):
    path = tmp_path / "model.pt"
    save_checkpoint(path, SMALL, {"w": torch.zeros(1)})
    with pytest.raises(CheckpointError, match=f"cannot load checkpoint {path} onto cuda: CUDA is not available"):
        load_checkpoint(path, map_location="cuda")
