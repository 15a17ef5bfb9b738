"""``sgnet-train``: trains SG-Net on a YouTube-VIS style set, on the CPU, one GPU, or many through torchrun.

Writes into OUTPUT: ``last.pt`` (resume state), ``model.pt`` (final weights), ``tb/`` (TensorBoard scalars) and
``log.jsonl`` (the same scalars, one JSON line per logged iteration). Both checkpoints carry the robot and the
evaluation tracker profiles of the model config (its ``tracker`` and ``evaluation_tracker`` sections).

Everything needed to continue exactly is in ``OUTPUT/last.pt``: model, optimizer, gradient scaler, the position in
the data order, the training time spent so far and every RNG state.

The learning-rate schedule runs over the budget (``learning_rate_factor``): its progress is the larger of the
iterations done over ``max_iters`` and, with a wall-clock budget (``max_minutes``), the time spent over the budget.
A run on a slower or busier machine therefore completes a shorter schedule, low-rate phase included, instead of
being cut mid-way at a high rate. The data order is a seeded shuffle per epoch and each clip's
augmentation is seeded by (seed, epoch, index), so a resumed run draws the same batches as an uninterrupted one.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import json
import math
import os
import random
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import ConcatDataset, DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

from sgnet_model.checkpoint import CheckpointError, load_checkpoint, load_model_state, save_checkpoint
from sgnet_model.config import ConfigError, ModelConfig, named_config
from sgnet_model.data.ytvis import YTVISData, YTVISError, load_annotations
from sgnet_model.network.backbone import PretrainedWeightsError
from sgnet_model.network.model import SGNet
from sgnet_model.runtime.backends import cpu_supports_bf16
from training.config import DataConfig, TrainConfig, load_train_config
from training.datasets import ClipAugmentation, DatasetError, YTVISClipDataset, collate_clips
from training.finetune import keep_batchnorm_statistics, load_start_weights

LOSS_NAMES = ("cls", "box", "centerness", "mask", "motion")


class TrainingError(RuntimeError):
    """Training cannot start or continue as asked."""


@dataclasses.dataclass
class Process:
    """This process's place in a (possibly distributed) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


class SeededClips(Dataset):
    """Each clip's augmentation drawn from a generator seeded by (seed, epoch, index), whatever process or
    worker loads it, so that resuming mid-epoch reproduces the batches exactly."""

    def __init__(self, clips: Dataset, seed: int) -> None:
        self.clips, self.seed, self.epoch = clips, seed, 0

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int):
        digest = hashlib.sha256(f"{self.seed}:{self.epoch}:{index}".encode()).digest()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int.from_bytes(digest[:8], "little"))
            return self.clips[index]


def training_clips(data: DataConfig, annotations: YTVISData, model_config: ModelConfig) -> Dataset:
    """The training set's clips ``data.repeats`` times, after the rehearsal set's clips when there is one."""
    augmentation = ClipAugmentation(data.scale_range, data.flip_probability, data.max_frame_gap)

    def clips(source: YTVISData, frames: str) -> YTVISClipDataset:
        return YTVISClipDataset(source, frames, model_config, clip_length=data.clip_length, augmentation=augmentation)

    parts = [clips(annotations, data.frames)] * data.repeats
    if data.rehearsal_annotations:
        rehearsal = load_annotations(data.rehearsal_annotations)
        if rehearsal.class_names != annotations.class_names:
            raise DatasetError(f"data.rehearsal_annotations {data.rehearsal_annotations}: its categories "
                               f"{list(rehearsal.class_names)} differ from data.annotations' "
                               f"{list(annotations.class_names)} (sorted by id); the rehearsal set must have the "
                               f"training set's categories")
        parts.insert(0, clips(rehearsal, data.rehearsal_frames))
    return parts[0] if len(parts) == 1 else ConcatDataset(parts)


def schedule_progress(iteration: int, elapsed_s: float, config: TrainConfig) -> float:
    """How far the schedule is, from 0 to 1 (done): the larger of iteration / max_iters and, when there is a
    wall-clock budget, elapsed_s / (max_minutes * 60)."""
    progress = iteration / config.max_iters
    if config.max_minutes > 0:
        progress = max(progress, elapsed_s / (config.max_minutes * 60))
    return min(progress, 1.0)


def learning_rate_factor(iteration: int, progress: float, config: TrainConfig) -> float:
    """The paper's exponential decay over the schedule's progress, final_lr_fraction ** progress, after a linear
    warm-up from warmup_start_fraction over the first warmup_iters iterations."""
    optim = config.optim
    decay = optim.final_lr_fraction ** progress
    if iteration < optim.warmup_iters:
        fraction = iteration / optim.warmup_iters
        return decay * (optim.warmup_start_fraction + (1 - optim.warmup_start_fraction) * fraction)
    return decay


def autocast_dtype(amp: bool, device: torch.device) -> torch.dtype | None:
    """Mixed precision when ``amp``: fp16 (with a gradient scaler) on CUDA, bf16 on a CPU that computes it natively
    (AVX-512 BF16 or AMX; no scaler, bf16 keeps fp32's range). None: fp32, on a CPU without native bf16, where
    emulated bf16 is slower than fp32. docs/training.md ("Mixed precision") has the speed and the accuracy."""
    if not amp:
        return None
    if device.type == "cuda":
        return torch.float16
    return torch.bfloat16 if device.type == "cpu" and cpu_supports_bf16() else None


def start_process(device: str) -> tuple[Process, torch.device]:
    """Join the torchrun group when launched by torchrun (NCCL on GPUs, gloo on the CPU)."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise TrainingError("device cuda asked for, but CUDA is not available here; use --set device=cpu")
    if "RANK" not in os.environ:
        return Process(), torch.device(device)
    process = Process(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"]))
    if device.startswith("cuda"):
        torch.cuda.set_device(process.local_rank)
        dist.init_process_group("nccl")
        return process, torch.device("cuda", process.local_rank)
    dist.init_process_group("gloo")
    return process, torch.device("cpu")


def rng_states() -> dict[str, Any]:
    numpy_state = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": (numpy_state[0], torch.from_numpy(numpy_state[1].copy()), *numpy_state[2:]),
            "python": random.getstate()}


def restore_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    name, keys, *rest = states["numpy"]
    np.random.set_state((name, keys.numpy(), *rest))
    random.setstate(states["python"])


def batches(sampler: DistributedSampler, batch_size: int, epoch: int, skip: int) -> list[list[int]]:
    """This process's batches of an epoch (a seeded shuffle), without the first ``skip`` ones."""
    sampler.set_epoch(epoch)
    order = list(sampler)
    return [order[i:i + batch_size] for i in range(0, len(order) - batch_size + 1, batch_size)][skip:]


def train(config: TrainConfig, output_dir: Path, resume: Path | None = None, progress: bool = True,
          stop_after: int | None = None) -> Path:
    """Train, writing ``output_dir/last.pt`` every checkpoint_every iterations and at the end, and the final
    weights as ``output_dir/model.pt``; returns the path of ``model.pt``. ``stop_after`` ends this invocation
    after that iteration (a job scheduler's time slot), leaving last.pt to resume from."""
    process, device = start_process(config.device)
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    if config.threads or config.deterministic:
        torch.set_num_threads(config.threads or 1)
    if config.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # what deterministic cuBLAS needs
        torch.use_deterministic_algorithms(True)
    try:
        return _train(config, Path(output_dir), resume, progress, process, device, stop_after)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
        if dist.is_initialized():
            dist.destroy_process_group()


def _train(config: TrainConfig, output_dir: Path, resume: Path | None, progress: bool, process: Process,
           device: torch.device, stop_after: int | None) -> Path:
    if not config.data.annotations or not config.data.frames:
        raise TrainingError("data.annotations and data.frames must name the training set "
                            "(e.g. --set data.annotations=DATA/train.json --set data.frames=DATA/JPEGImages)")
    torch.manual_seed(config.seed)
    annotations = load_annotations(config.data.annotations)
    start = load_checkpoint(config.init_from) if config.init_from else None  # fine-tuning: its network and weights
    model_config = dataclasses.replace(start.model_config if start else config.model,
                                       class_names=annotations.class_names)
    # stored with the weights
    tracker_profiles = start.tracker_profiles if start else named_config(config.model_config).tracker_profiles()
    dataset = SeededClips(training_clips(config.data, annotations, model_config), config.seed)
    sampler = DistributedSampler(dataset, num_replicas=process.world_size, rank=process.rank, shuffle=True,
                                 seed=config.seed, drop_last=True)
    per_epoch = len(sampler) // config.batch_size
    if per_epoch == 0:
        raise TrainingError(f"the training set has {len(dataset)} clips, fewer than one batch of "
                            f"{config.batch_size} per process; lower batch_size")

    model = SGNet(model_config, load_pretrained=start is None).to(device)
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(parameters, lr=config.optim.base_lr, momentum=config.optim.momentum,
                                weight_decay=config.optim.weight_decay)
    amp = autocast_dtype(config.amp, device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp == torch.float16)
    iteration, spent_before = 0, 0.0
    if resume is not None:
        checkpoint = load_checkpoint(resume)
        if checkpoint.training_state is None:
            raise TrainingError(f"{resume} holds weights only (no training state) and cannot be resumed; "
                                f"resume from last.pt")
        load_model_state(model, checkpoint, resume)
        state = checkpoint.training_state
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        restore_rng_states(state["rng"][process.rank] if process.rank < len(state["rng"]) else state["rng"][0])
        iteration = int(state["iteration"])
        spent_before = float(state.get("elapsed_s", 0.0))
    elif start is not None:
        new_classes = load_start_weights(model, start, config.init_from)
        if process.main:
            print(f"sgnet-train: fine-tuning {config.init_from}: {len(model_config.class_names) - len(new_classes)} "
                  f"of its classes kept" + (f", new: {', '.join(new_classes)}" if new_classes else "")
                  + "; a fresh schedule", file=sys.stderr)
    network = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                      find_unused_parameters=True) if process.world_size > 1 else model

    writer = None
    if process.main:
        output_dir.mkdir(parents=True, exist_ok=True)
        from torch.utils.tensorboard import SummaryWriter
        # a resumed run repeats the iterations after its checkpoint: drop what the stopped run logged for them
        writer = SummaryWriter(str(output_dir / "tb"), purge_step=iteration + 1 if resume is not None else None)
        if resume is not None:
            _drop_log_lines_after(output_dir / "log.jsonl", iteration)
    bar = tqdm(total=config.max_iters, initial=iteration, desc="sgnet-train", unit="it", file=sys.stderr,
               disable=not (progress and process.main), dynamic_ncols=True)
    started = time.monotonic()
    model.train()
    if start is not None:
        keep_batchnorm_statistics(model)

    def elapsed() -> float:
        """Training time spent, over all the runs that resumed one another."""
        return spent_before + time.monotonic() - started

    def save(path: Path, with_state: bool) -> None:
        state = None
        if with_state:
            everyone = [rng_states()]
            if process.world_size > 1:  # every rank's RNG states, so each one resumes its own stream
                buffer = io.BytesIO()
                torch.save(everyone[0], buffer)
                gathered = [b""] * process.world_size
                dist.all_gather_object(gathered, buffer.getvalue())
                everyone = [torch.load(io.BytesIO(b), weights_only=True) for b in gathered]
            state = {"iteration": iteration, "elapsed_s": elapsed(), "optimizer": optimizer.state_dict(),
                     "scaler": scaler.state_dict(), "rng": everyone, "train_config_seed": config.seed}
        if process.main:
            save_checkpoint(path, model_config, model.state_dict(), state, tracker_profiles)
        if process.world_size > 1:
            dist.barrier()

    def stream() -> Iterator[tuple[int, list[int]]]:
        epoch, skip = divmod(iteration, per_epoch)
        while True:
            dataset.epoch = epoch
            # a generator of its own: starting a loader must not draw from the global RNG that the losses use
            loader = DataLoader(dataset, batch_sampler=batches(sampler, config.batch_size, epoch, skip),
                                collate_fn=collate_clips, num_workers=config.data.workers,
                                pin_memory=device.type == "cuda", generator=torch.Generator().manual_seed(epoch))
            yield from ((epoch, batch) for batch in loader)
            epoch, skip = epoch + 1, 0

    for _, batch in stream():
        if iteration >= min(config.max_iters, stop_after or config.max_iters):
            break
        progress = _shared_progress(iteration, elapsed(), config, process, device)
        if progress >= 1.0:
            if process.main:
                print(f"sgnet-train: the {config.max_minutes:g}-minute budget (max_minutes) completed the schedule at "
                      f"iteration {iteration} of {config.max_iters}", file=sys.stderr)
            break
        learning_rate = config.optim.base_lr * learning_rate_factor(iteration, progress, config)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate
        batch = batch.to(device)
        with torch.autocast(device_type=device.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
            losses = network(batch)
        total = sum(losses.values())
        if not torch.isfinite(total):
            raise TrainingError(f"the loss became {total.item()} at iteration {iteration}; lower optim.base_lr "
                                f"or raise optim.warmup_iters")
        logging = process.main and (iteration + 1) % config.log_every == 0
        term_norms = _term_gradient_norms(losses, model) if logging and process.world_size == 1 else {}
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(total).backward()
        scaler.unscale_(optimizer)
        gradient_norm = torch.nn.utils.clip_grad_norm_(
            parameters, config.optim.grad_clip_norm if config.optim.grad_clip_norm > 0 else math.inf)
        scaler.step(optimizer)
        scaler.update()
        iteration += 1
        if process.main:
            values = {name: float(losses[name].detach()) for name in LOSS_NAMES}
            bar.set_postfix({k: f"{v:.3f}" for k, v in values.items()}, refresh=False)
            bar.update()
            if logging:
                scalars = {**{f"loss/{k}": v for k, v in values.items()}, "loss/total": float(total.detach()),
                           "lr": learning_rate, "schedule_progress": progress,
                           "grad_norm/total": float(gradient_norm),
                           **{f"grad_norm/{k}": v for k, v in term_norms.items()}}
                for name, value in scalars.items():
                    writer.add_scalar(name, value, iteration)
                with open(output_dir / "log.jsonl", "a") as log:
                    log.write(json.dumps({"iteration": iteration, **values, "total": scalars["loss/total"],
                                         "lr": learning_rate, "schedule_progress": progress,
                                         "threads": torch.get_num_threads(),
                                         "grad_norm": {"total": scalars["grad_norm/total"], **term_norms}}) + "\n")
        if iteration % config.checkpoint_every == 0:
            save(output_dir / "last.pt", with_state=True)
    bar.close()
    if process.world_size > 1:
        _check_replicas_agree(model, process)
    save(output_dir / "last.pt", with_state=True)
    save(output_dir / "model.pt", with_state=False)
    if writer is not None:
        writer.close()
    stopped_for_now = stop_after is not None and iteration >= stop_after and iteration < config.max_iters
    if process.main and config.calibration_videos and not stopped_for_now:
        _calibrate(output_dir / "model.pt", config, device)
    return output_dir / "model.pt"


def _calibrate(checkpoint: Path, config: TrainConfig, device: torch.device) -> None:
    """The robot profile's start score chosen for this model (training/calibrate.py), into ``checkpoint``."""
    from training.calibrate import calibrate_checkpoint, describe_calibration

    data = json.loads(Path(config.data.annotations).read_text())
    videos = min(config.calibration_videos, len(data["videos"]))
    print(f"sgnet-train: choosing the robot profile's start score on {videos} training videos "
          f"(calibration_videos)", file=sys.stderr)
    calibration = calibrate_checkpoint(checkpoint, data, Path(config.data.frames), videos, str(device))
    print(f"sgnet-train: robot profile {describe_calibration(calibration)}", file=sys.stderr)


def _check_replicas_agree(model: SGNet, process: Process) -> None:
    """DistributedDataParallel keeps the replicas' parameters identical (BatchNorm statistics are rank 0's,
    broadcast at each forward); a run whose parameters drifted apart is not trusted."""
    checksum = hashlib.sha256(b"".join(t.detach().cpu().numpy().tobytes() for t in model.parameters()))
    everyone = [None] * process.world_size
    dist.all_gather_object(everyone, checksum.hexdigest())
    if len(set(everyone)) != 1:
        raise TrainingError(f"the {process.world_size} replicas ended with different weights: {everyone}")
    if process.main:
        print(f"sgnet-train: all {process.world_size} replicas hold identical parameters "
              f"(sha256 {everyone[0][:16]})", file=sys.stderr)


def _drop_log_lines_after(log: Path, iteration: int) -> None:
    """Keep the lines of ``log`` up to ``iteration``; a line cut short by a crash is dropped too."""
    if not log.exists():
        return
    kept = []
    for line in log.read_text().splitlines():
        try:
            if json.loads(line)["iteration"] <= iteration:
                kept.append(line + "\n")
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
    log.write_text("".join(kept))


def _shared_progress(iteration: int, elapsed_s: float, config: TrainConfig, process: Process,
                     device: torch.device) -> float:
    """``schedule_progress`` as rank 0 sees it, for every process (clocks differ between machines)."""
    progress = schedule_progress(iteration, elapsed_s, config)
    if process.world_size == 1:
        return progress
    shared = torch.tensor([progress], device=device, dtype=torch.float64)
    dist.broadcast(shared, src=0)
    return float(shared.item())


def _term_gradient_norms(losses: dict[str, Tensor], model: SGNet) -> dict[str, float]:
    """The gradient norm of each loss term with respect to the FPN's parameters, which every head reads: which
    term drives the shared features, and which one is drowned (for TensorBoard, on logged iterations; one
    backward pass per term through its head only). Single-process runs: under DistributedDataParallel an extra
    backward before the real one would upset its gradient reduction."""
    shared = [p for p in model.backbone.fpn.parameters() if p.requires_grad]
    norms = {}
    for name, term in losses.items():
        if not term.requires_grad:
            continue
        gradients = torch.autograd.grad(term, shared, retain_graph=True, allow_unused=True)
        norms[name] = math.sqrt(sum(float(g.double().pow(2).sum()) for g in gradients if g is not None))
    return norms


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sgnet-train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="a YAML of config/train/")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a field, e.g. --set optim.base_lr=0.01 --set data.workers=4 (repeatable)")
    parser.add_argument("--output", required=True, type=Path, help="folder for last.pt, model.pt and tb/")
    parser.add_argument("--resume", nargs="?", const="", default=None, metavar="CKPT",
                        help="continue from CKPT, or from OUTPUT/last.pt when no file is given")
    parser.add_argument("--init-from", metavar="CKPT",
                        help="fine-tune: start from CKPT's weights, network and tracker profiles, with a fresh "
                             "schedule (shorthand for --set init_from=CKPT; docs/flywheel.md)")
    parser.add_argument("--seed", type=int, help="shorthand for --set seed=N")
    parser.add_argument("--stop-after", type=int, metavar="N",
                        help="end this run after iteration N with last.pt written (a scheduler's time slot); "
                             "continue later with --resume")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = (args.set + ([f"seed={args.seed}"] if args.seed is not None else [])
                 + ([f"init_from={args.init_from}"] if args.init_from else []))
    resume = None if args.resume is None else Path(args.resume or args.output / "last.pt")
    try:
        config = load_train_config(args.config, overrides)
        final = train(config, args.output, resume, progress=not args.no_progress, stop_after=args.stop_after)
    except PretrainedWeightsError as error:
        print(f"sgnet-train: error: {str(error).rstrip('.')}; `sgnet-weights` with the same --config and --set "
              f"says which file goes where and checks it", file=sys.stderr)
        return 2
    except (ConfigError, TrainingError, DatasetError, YTVISError, CheckpointError) as error:
        print(f"sgnet-train: error: {error}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"sgnet-train: model written to {final} (resume state in {args.output / 'last.pt'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
