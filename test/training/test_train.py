"""sgnet-train: configuration, the learning-rate schedule, exact resumption (also after a crash mid-checkpoint),
the wall-clock budget, errors, torchrun on the CPU, AMP on CUDA where there is one; sgnet-train-bench's interface."""
import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision
from torchvision.models.detection.backbone_utils import BackboneWithFPN

from sgnet_model.checkpoint import load_checkpoint
from sgnet_model.config import ConfigError, ModelConfig
from sgnet_model.data.ytvis import load_annotations
from training.benchmarks import train_bench
from training.config import TrainConfig, load_train_config
from training.datasets import DatasetError
from training.synthetic import generate_synthetic_set
from training.train import (autocast_dtype, learning_rate_factor, main, schedule_progress, train,
                            training_clips)

ROOT = Path(__file__).resolve().parents[2]
SMALL_YAML = ROOT / "config" / "train" / "synthetic_small.yaml"


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synth")
    annotations = generate_synthetic_set(folder, videos=4, frames=5, width=160, height=96, seed=3)
    return annotations, folder / "JPEGImages"


def tiny_overrides(tiny_set, **fields) -> list[str]:
    """The small config on the tiny set at 160x96, logging every iteration, a checkpoint every 3; no start score
    calibration after training (test_calibrate.py tests it)."""
    annotations, frames = tiny_set
    overrides = [f"data.annotations={annotations}", f"data.frames={frames}", "data.workers=0", "batch_size=2",
                 "model.input_width=160", "model.input_height=96", "log_every=1", "checkpoint_every=3",
                 "max_minutes=0", "calibration_videos=0"]
    return overrides + [f"{k}={v}" for k, v in fields.items()]


def tiny_config(tiny_set, **fields) -> TrainConfig:
    return load_train_config(SMALL_YAML, tiny_overrides(tiny_set, **fields))


def as_cli(overrides: list[str]) -> list[str]:
    return [part for override in overrides for part in ("--set", override)]


def test_shipped_training_configs_load():
    for path in (ROOT / "config" / "train").glob("*.yaml"):
        config = load_train_config(path)
        assert config.model.backbone in path.read_text() or config.model_config in path.read_text()
    small = load_train_config(SMALL_YAML)
    assert small.model.backbone == "resnet18" and small.model.fpn_channels == 64  # from resnet18_small.yaml
    assert small.optim.momentum == 0.9


@pytest.mark.parametrize("override, message", [
    ("optim.base_rate=0.1", "unknown field"), ("batch_size", "key=value"), ("batch_size=0", "at least 1"),
    ("model.backbone=vgg16", "backbone"), ("optim.base_lr=fast", "expected float"), ("threads=-1", "threads"),
    ("data.repeats=0", "repeats must be at least 1"), ("data.rehearsal_annotations=old.json", "go together")])
def test_bad_overrides_are_named(override, message):
    with pytest.raises(ConfigError, match=message):
        load_train_config(SMALL_YAML, [override])


def test_an_exponent_without_a_dot_is_a_number():
    """YAML 1.1 reads 1e-5 as a string; an override means the number (1e-5 typed by hand, 1.0e-5 YAML's own)."""
    config = load_train_config(SMALL_YAML, ["optim.base_lr=1e-5", "optim.warmup_start_fraction=2.5E-1",
                                            "model_config=resnet18_small"])
    assert (config.optim.base_lr, config.optim.warmup_start_fraction) == (0.00001, 0.25)
    with pytest.raises(ConfigError, match="max_iters: expected int"):  # still no float where an int belongs
        load_train_config(SMALL_YAML, ["max_iters=3e2"])


def test_rehearsal_puts_the_earlier_sets_clips_before_the_training_sets_repeated(tiny_set, tmp_path):
    """The tiny set (4 videos of 5 frames: 4 two-frame clips each) three times after an earlier set of 2 videos of 3
    frames (2 clips each): 4 + 3 x 16 clips, in the order worked out by hand; an earlier set of other categories is
    refused, naming it."""
    older = generate_synthetic_set(tmp_path / "older", videos=2, frames=3, width=160, height=96, seed=5)
    config = tiny_config(tiny_set, **{"data.rehearsal_annotations": older, "data.repeats": 3,
                                      "data.rehearsal_frames": tmp_path / "older" / "JPEGImages"})
    data = load_annotations(tiny_set[0])
    model = dataclasses.replace(config.model, class_names=data.class_names)
    clips = training_clips(config.data, data, model)
    newer = [(video, start) for video in (1, 2, 3, 4) for start in range(4)]
    assert [(clip.video_id, clip.frame_indices[0]) for clip in (clips[i] for i in range(len(clips)))] == \
        [(1, 0), (1, 1), (2, 0), (2, 1)] + newer * 3
    other = generate_synthetic_set(tmp_path / "other", videos=2, frames=3, width=160, height=96, seed=5, classes=3)
    config = tiny_config(tiny_set, **{"data.rehearsal_annotations": other,
                                      "data.rehearsal_frames": tmp_path / "other" / "JPEGImages"})
    with pytest.raises(DatasetError, match=f"data.rehearsal_annotations {other}: its categories"):
        training_clips(config.data, data, model)


def test_missing_config_file_is_a_clear_error(tmp_path, capsys):
    assert main(["--config", str(tmp_path / "nope.yaml"), "--output", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("case", ["no annotation file", "no frames folder", "no pretrained weights",
                                  "nothing to resume"])
def test_bad_data_weights_or_resume_exit_2_with_one_line(case, tiny_set, tmp_path, capsys):
    config, overrides, extra = SMALL_YAML, tiny_overrides(tiny_set), []
    if case == "no annotation file":
        overrides.append(f"data.annotations={tmp_path / 'train.json'}")
        expected = "train.json: no such file"
    elif case == "no frames folder":
        overrides.append(f"data.frames={tmp_path / 'JPEGImages'}")
        expected = f"frames folder {tmp_path / 'JPEGImages'} does not exist"
    elif case == "no pretrained weights":  # the YouTube-VIS config starts from COCO FCOS weights
        config = ROOT / "config" / "train" / "youtube_vis_r50.yaml"
        overrides.append(f"model.pretrained_path={tmp_path / 'fcos.pth'}")
        expected = "weights are not on this machine"
    else:
        extra = ["--resume"]
        expected = f"checkpoint {tmp_path / 'run' / 'last.pt'} does not exist"
    code = main(["--config", str(config), "--output", str(tmp_path / "run"), "--no-progress", *extra,
                 *as_cli(overrides)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("sgnet-train: error: ") and expected in err, err
    assert not (tmp_path / "run" / "last.pt").exists()


def test_mixed_precision_is_fp16_on_cuda_bf16_on_a_cpu_that_has_it_else_fp32(monkeypatch):
    import training.train
    assert autocast_dtype(False, torch.device("cuda", 0)) is None
    assert autocast_dtype(True, torch.device("cuda", 0)) == torch.float16
    for native, expected in ((True, torch.bfloat16), (False, None)):
        monkeypatch.setattr(training.train, "cpu_supports_bf16", lambda native=native: native)
        assert autocast_dtype(True, torch.device("cpu")) == expected
        assert autocast_dtype(False, torch.device("cpu")) is None


def test_learning_rate_schedule_by_hand():
    config = load_train_config(SMALL_YAML, ["max_iters=1000", "optim.warmup_iters=100",
                                            "optim.warmup_start_fraction=0.01", "optim.final_lr_fraction=0.1"])
    def factor(iteration: int) -> float:
        return learning_rate_factor(iteration, schedule_progress(iteration, 0.0, config), config)
    assert factor(0) == pytest.approx(0.01)
    # halfway through warm-up: (0.01 + 0.99 * 0.5) times the decay 0.1 ** (50 / 1000)
    assert factor(50) == pytest.approx(0.505 * 10 ** (-0.05))
    assert factor(100) == pytest.approx(10 ** (-0.1))
    assert factor(500) == pytest.approx(10 ** (-0.5))
    assert factor(1000) == pytest.approx(0.1)


def test_a_wall_clock_budget_runs_the_schedule_over_the_budget():
    """With max_minutes, progress is the larger of iterations / max_iters and time / budget: a slow machine
    reaches the end of the decay (and stops) when the budget is spent, a fast one when the iterations are."""
    config = load_train_config(SMALL_YAML, ["max_iters=1000", "max_minutes=10", "optim.warmup_iters=100",
                                            "optim.final_lr_fraction=0.1"])
    assert schedule_progress(200, 60.0, config) == pytest.approx(0.2)  # iterations ahead of the clock
    assert schedule_progress(200, 300.0, config) == pytest.approx(0.5)  # half the budget spent at 200 of 1000
    assert schedule_progress(300, 600.0, config) == 1.0 and schedule_progress(1000, 1.0, config) == 1.0
    assert learning_rate_factor(300, 0.5, config) == pytest.approx(10 ** (-0.5))
    no_budget = load_train_config(SMALL_YAML, ["max_iters=1000", "max_minutes=0"])
    assert schedule_progress(200, 10_000.0, no_budget) == pytest.approx(0.2)


def read_losses(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]


# Exact comparisons need one CPU thread: with many threads (16 on a test machine) PyTorch's CPU kernels sum in
# varying orders, and two uninterrupted runs already drift apart by 1e-4 in 6 iterations.
COMPARED_RUN_THREADS = 1


@pytest.fixture(scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(COMPARED_RUN_THREADS)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def straight_run(tiny_set, one_thread, tmp_path_factory) -> Path:
    """6 iterations without interruption: the reference the resumed runs must reproduce."""
    folder = tmp_path_factory.mktemp("straight")
    train(tiny_config(tiny_set, max_iters=6), folder, progress=False)
    return folder


def assert_same_run(expected: Path, resumed: Path) -> None:
    """Per-iteration losses and learning rates, and the final weights, of two runs agree (on one thread they
    are bit for bit the same; the tolerances only allow for the JSON round trip)."""
    expected_log, resumed_log = read_losses(expected), read_losses(resumed)
    assert [r["iteration"] for r in resumed_log] == [r["iteration"] for r in expected_log] == list(range(1, 7))
    for a, b in zip(expected_log, resumed_log):
        for name in ("cls", "box", "centerness", "mask", "motion", "lr"):
            assert b[name] == pytest.approx(a[name], rel=1e-7, abs=1e-9), f"iteration {a['iteration']} {name}"
    final_a = load_checkpoint(expected / "model.pt").model_state
    final_b = load_checkpoint(resumed / "model.pt").model_state
    assert all(torch.equal(final_a[k], final_b[k]) for k in final_a)


@pytest.mark.slow  # trains three times (more than 2.5 s)
def test_deterministic_runs_repeat_the_one_thread_run_whatever_the_thread_count(tiny_set, straight_run, tmp_path):
    """``deterministic=true`` (what the session's trained model uses) pins the run to one thread and torch's
    deterministic algorithms: started with two threads it gives the one-thread run bit for bit, twice, and
    leaves the caller's thread count and algorithm setting as they were."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for attempt in ("first", "second"):
            train(tiny_config(tiny_set, max_iters=6, deterministic="true"), tmp_path / attempt, progress=False)
            assert torch.get_num_threads() == 2 and not torch.are_deterministic_algorithms_enabled()
            assert_same_run(straight_run, tmp_path / attempt)
            assert {record["threads"] for record in read_losses(tmp_path / attempt)} == {1}
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow  # trains twice (more than 2.5 s)
def test_deterministic_runs_on_two_threads_repeat_each_other(tiny_set, one_thread, tmp_path):
    """``threads=2`` with ``deterministic=true`` (the test suite's trained model): two threads, as the log says,
    and the same losses and weights bit for bit on a second run; the caller's one thread is left as it was."""
    for attempt in ("first", "second"):
        train(tiny_config(tiny_set, max_iters=6, threads=2, deterministic="true"), tmp_path / attempt,
              progress=False)
        assert torch.get_num_threads() == COMPARED_RUN_THREADS == 1
        assert {record["threads"] for record in read_losses(tmp_path / attempt)} == {2}
    assert_same_run(tmp_path / "first", tmp_path / "second")


@pytest.mark.slow  # trains twice (more than 2.5 s)
def test_resumed_run_reproduces_the_uninterrupted_losses(tiny_set, straight_run, one_thread, tmp_path):
    interrupted = tmp_path / "interrupted"
    train(tiny_config(tiny_set, max_iters=6), interrupted, progress=False, stop_after=3)
    assert load_checkpoint(interrupted / "last.pt").training_state["iteration"] == 3
    train(tiny_config(tiny_set, max_iters=6), interrupted, resume=interrupted / "last.pt", progress=False)
    assert_same_run(straight_run, interrupted)


CRASH_DURING_SECOND_CHECKPOINT = """
import io, os, signal, sys
import torch
from training.config import load_train_config
from training.train import train

torch.set_num_threads(int(sys.argv[3]))
writes_of_last = 0
real_save = torch.save

def save_then_die_halfway(payload, file, *args, **kwargs):
    # the second write of last.pt: half the bytes reach the disk, then the process is killed
    global writes_of_last
    if "last.pt" not in str(getattr(file, "name", "")):
        return real_save(payload, file, *args, **kwargs)
    writes_of_last += 1
    if writes_of_last < 2:
        return real_save(payload, file, *args, **kwargs)
    buffer = io.BytesIO()
    real_save(payload, buffer, *args, **kwargs)
    file.write(buffer.getvalue()[:buffer.tell() // 2])
    file.flush()
    os.fsync(file.fileno())
    os.kill(os.getpid(), signal.SIGKILL)

torch.save = save_then_die_halfway
train(load_train_config(sys.argv[1], sys.argv[4:]), sys.argv[2], progress=False)
"""


@pytest.mark.slow
def test_process_killed_while_writing_a_checkpoint_leaves_the_previous_one_to_resume(tiny_set, straight_run,
                                                                                      one_thread, tmp_path):
    """The training process dies halfway through writing last.pt at iteration 6 (checkpoints every 3): the
    iteration-3 last.pt is intact, and resuming from it gives the uninterrupted run's losses."""
    run = tmp_path / "run"
    overrides = tiny_overrides(tiny_set, max_iters=6)
    crashed = subprocess.run([sys.executable, "-c", CRASH_DURING_SECOND_CHECKPOINT, str(SMALL_YAML), str(run),
                              str(COMPARED_RUN_THREADS), *overrides], capture_output=True, text=True, timeout=300)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-3000:]
    half_written = list(run.glob(".last.pt.*"))
    assert len(half_written) == 1 and half_written[0].stat().st_size > 0  # the kill came mid-write
    assert not (run / "model.pt").exists()
    assert load_checkpoint(run / "last.pt").training_state["iteration"] == 3
    assert len(read_losses(run)) == 6  # iterations 4-6 were logged before the crash and are done again

    assert main(["--config", str(SMALL_YAML), "--output", str(run), "--resume", "--no-progress",
                 *as_cli(overrides)]) == 0
    assert_same_run(straight_run, run)


def test_wall_clock_budget_stops_the_run_and_writes_the_final_checkpoint(tiny_set, tmp_path):
    run = tmp_path / "run"
    final = train(tiny_config(tiny_set, max_iters=100_000, max_minutes=0.02, checkpoint_every=100_000), run,
                  progress=False)
    assert final == run / "model.pt" and load_checkpoint(final).training_state is None
    iterations = load_checkpoint(run / "last.pt").training_state["iteration"]
    assert iterations < 100_000
    records = read_losses(run)
    assert [r["iteration"] for r in records] == list(range(1, iterations + 1))
    # the schedule ran over the budget: its progress is the clock's, far ahead of iterations / max_iters, rising
    # to the end, and each step's rate is the decay at that progress (warm-up aside)
    config = tiny_config(tiny_set, max_iters=100_000, max_minutes=0.02)
    progress = [r["schedule_progress"] for r in records]
    assert progress == sorted(progress) and progress[-1] > 100 * iterations / 100_000
    for record in records:
        expected = config.optim.base_lr * learning_rate_factor(record["iteration"] - 1, record["schedule_progress"],
                                                               config)
        assert record["lr"] == pytest.approx(expected)


def test_resuming_from_weights_only_is_refused(tiny_set, tmp_path, capsys):
    run = tmp_path / "run"
    train(tiny_config(tiny_set, max_iters=1), run, progress=False)
    annotations, frames = tiny_set
    code = main(["--config", str(SMALL_YAML), "--output", str(run), "--resume", str(run / "model.pt"),
                 "--set", f"data.annotations={annotations}", "--set", f"data.frames={frames}"])
    assert code == 2 and "cannot be resumed" in capsys.readouterr().err


# sgnet-train's main under torchrun, recording from outside what each rank did: the clips it trained on, the
# checkpoints it wrote, and its network's parameters before and after training.
TORCHRUN_PROBE = """
import json, os, sys
from pathlib import Path
import torch
import training.train as trainer

probe, rank = Path(sys.argv[1]), os.environ["RANK"]
real_save, real_batches, networks = trainer.save_checkpoint, trainer.batches, []

def recording_save(path, *args, **kwargs):
    with open(probe / f"saves.rank{rank}", "a") as record:
        record.write(Path(path).name + "\\n")
    real_save(path, *args, **kwargs)

def recording_batches(*args, **kwargs):
    chosen = real_batches(*args, **kwargs)
    with open(probe / f"clips.rank{rank}", "a") as record:
        record.write(json.dumps(chosen) + "\\n")
    return chosen

class RecordedSGNet(trainer.SGNet):
    def __init__(self, config, **options):
        super().__init__(config, **options)
        networks.append(self)
        torch.save({k: v.detach().clone() for k, v in self.named_parameters()}, probe / f"initial.rank{rank}.pt")

trainer.save_checkpoint, trainer.batches, trainer.SGNet = recording_save, recording_batches, RecordedSGNet
code = trainer.main(sys.argv[2:])
torch.save({k: v.detach() for k, v in networks[0].named_parameters()}, probe / f"final.rank{rank}.pt")
sys.exit(code)
"""


@pytest.mark.slow
def test_torchrun_two_cpu_processes_keep_identical_replicas(tiny_set, tmp_path):
    output, probe = tmp_path / "ddp", tmp_path / "probe"
    probe.mkdir()
    (tmp_path / "probe.py").write_text(TORCHRUN_PROBE)
    # the probe script lives in tmp_path: it finds this checkout's packages through PYTHONPATH
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(tmp_path / "probe.py"), str(probe), "--config", str(SMALL_YAML), "--output", str(output),
               "--no-progress", *as_cli(tiny_overrides(tiny_set, batch_size=1, max_iters=3, checkpoint_every=2))]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    # the two ranks trained on different clips, so only gradient averaging keeps their weights equal
    clips = {rank: [json.loads(line) for line in (probe / f"clips.rank{rank}").read_text().splitlines()]
             for rank in (0, 1)}
    first_epoch = {rank: {i for batch in clips[rank][0] for i in batch} for rank in (0, 1)}
    assert first_epoch[0] and first_epoch[1] and not first_epoch[0] & first_epoch[1]
    initial = [torch.load(probe / f"initial.rank{rank}.pt", weights_only=True) for rank in (0, 1)]
    final = [torch.load(probe / f"final.rank{rank}.pt", weights_only=True) for rank in (0, 1)]
    assert all(torch.equal(final[0][name], final[1][name]) for name in final[0])
    assert sum(not torch.equal(initial[0][name], final[0][name]) for name in final[0]) > len(final[0]) / 2
    assert "all 2 replicas hold identical parameters" in done.stderr

    # only rank 0 logs and writes checkpoints: last.pt at iteration 2 and at the end, then model.pt
    assert (probe / "saves.rank0").read_text().split() == ["last.pt", "last.pt", "model.pt"]
    assert not (probe / "saves.rank1").exists()
    assert len(read_losses(output)) == 3 and math.isfinite(read_losses(output)[-1]["total"])
    saved = load_checkpoint(output / "model.pt").model_state
    assert all(torch.equal(saved[name], final[0][name]) for name in final[0])
    state = load_checkpoint(output / "last.pt").training_state
    assert state["iteration"] == 3 and len(state["rng"]) == 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available on this machine")
def test_mixed_precision_training_on_cuda_resumes_with_its_gradient_scaler(tiny_set, tmp_path):
    """fp16 autocast with a gradient scaler: 2 + resume + 2 iterations end with the scaler of 4 straight ones
    (a scaler not restored would restart at 65536 with no step counted) and with close losses (CUDA kernels
    are not bit-reproducible)."""
    config = tiny_config(tiny_set, max_iters=4, device="cuda", amp=True)
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(config, straight, progress=False)
    train(config, resumed, progress=False, stop_after=2)
    train(config, resumed, resume=resumed / "last.pt", progress=False)
    scalers = [load_checkpoint(run / "last.pt").training_state["scaler"] for run in (straight, resumed)]
    assert scalers[0]["scale"] == scalers[1]["scale"] and scalers[0]["_growth_tracker"] == \
        scalers[1]["_growth_tracker"] > 0
    for a, b in zip(read_losses(straight), read_losses(resumed), strict=True):
        assert math.isfinite(b["total"]) and b["total"] == pytest.approx(a["total"], rel=0.05)


def test_train_bench_compares_with_torchvision_fcos_r50_and_prints_one_json_object(capsys):
    reference = torchvision.models.detection.fcos_resnet50_fpn(weights=None, weights_backbone=None, num_classes=40)
    ours = train_bench.build_fcos(ModelConfig(), 640, 360)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in reference.state_dict().items()}
    # the same modules; our ResNet-FPN is torchvision's BackboneWithFPN that also hands out C2 for the masks
    def kinds(network: torch.nn.Module) -> list[type]:
        return [BackboneWithFPN if isinstance(m, BackboneWithFPN) else type(m) for m in network.modules()]
    assert kinds(ours) == kinds(reference)

    assert train_bench.main(["--backbone", "resnet18", "--width", "128", "--height", "96", "--batch", "1",
                             "--steps", "1", "--warmup", "0", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["device"], result["backbone"], result["size"], result["batch"], result["batch_images"]) == \
        ("cpu", "resnet18", "128x96", 1, 2)
    assert result["sgnet_images_per_s"] > 0 and result["fcos_images_per_s"] > 0
    assert result["ratio"] == pytest.approx(result["sgnet_images_per_s"] / result["fcos_images_per_s"])


def test_train_bench_refuses_an_unknown_device(capsys):
    assert train_bench.main(["--device", "gpu0"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
