"""The suite's trained model: the small config trained from scratch on a generated synthetic set, on the CPU.

Made once per machine and code, then kept: a cache folder keyed by everything that makes the weights (the sources
of ``sgnet_model`` and ``training``, the recipe and its config files, the installed versions of torch, torchvision,
numpy and OpenCV, and the CPU kind, since each kind of CPU trains other weights from the same seed). A first run
trains it in a background process started as soon as the tests are collected (``start_in_background``), while
the tests that do not need it run beside it on the other core; the tests that need it run last and wait for it
(``wait_for``).

Cache: ``$SGNET_TEST_CACHE`` or ``$XDG_CACHE_HOME/sgnet_ros/test-model`` (``~/.cache/sgnet_ros/test-model``), one
folder per key; ``rm -rf`` it to train again. The training seed is ``$SGNET_TEST_MODEL_SEED`` (default 0): the seed
sweep of docs/development.md (``test/seed_sweep.py``) trains other seeds as stand-ins for other CPU kinds.

Run as a script (``python test/session_model.py``) it trains the model of the recipe into the cache, under a
lock: two test runs that need the same model train it once.
"""
from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPE_FILES = ("config/train/synthetic_small.yaml", "config/model/resnet18_small.yaml")
SOURCE_PACKAGES = ("sgnet_model", "training")
VERSIONED = ("torch", "torchvision", "numpy", "opencv-python-headless")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """The small config on 30 synthetic videos of seed 11, 6 held out. Deterministic algorithms on a fixed thread
    count: the same weights on every run on the same kind of CPU, however slow or busy the machine. Two threads:
    the training runs beside the other tests (their node processes mostly wait on DDS and imports). Mixed
    precision as sgnet-train's default (``amp``: bf16 on a CPU with native bf16, 1.8x faster an iteration, fp32
    elsewhere); ``$SGNET_TEST_MODEL_AMP=0`` trains in fp32 (the seed sweep's stand-in for a CPU without bf16)."""

    iterations: int = 200
    threads: int = 2
    seed: int = 0
    videos: int = 30
    set_seed: int = 11
    held_out: int = 6
    amp: bool = True

    @classmethod
    def from_environment(cls) -> Recipe:
        return cls(seed=int(os.environ.get("SGNET_TEST_MODEL_SEED", "0")),
                   amp=os.environ.get("SGNET_TEST_MODEL_AMP", "1") != "0")


@dataclasses.dataclass(frozen=True)
class TrainedModel:
    checkpoint: Path  # model.pt of the small config trained on the synthetic set
    annotations: Path  # held-out videos (with ground truth) of that set
    frames: Path  # the set's JPEGImages folder
    train_annotations: Path


def cache_root() -> Path:
    if "SGNET_TEST_CACHE" in os.environ:
        return Path(os.environ["SGNET_TEST_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "sgnet_ros" / "test-model"


def cpu_kind() -> str:
    """The processor's model name and the instruction sets that choose torch's kernels (oneDNN and its own
    vectorised code): what makes two machines round differently."""
    flags, name = set(), platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                name = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    kernels = sorted(flag for flag in flags if flag.startswith(("avx", "amx", "fma", "f16c", "sse4")))
    return f"{platform.machine()} {name} {' '.join(kernels)}"


def cache_key(recipe: Recipe) -> str:
    digest = hashlib.sha256(json.dumps(dataclasses.asdict(recipe), sort_keys=True).encode())
    for package in SOURCE_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    for name in RECIPE_FILES:
        digest.update(name.encode() + b"\0" + (ROOT / name).read_bytes())
    for name in VERSIONED:
        try:
            digest.update(f"{name}=={importlib.metadata.version(name)}".encode())
        except importlib.metadata.PackageNotFoundError:
            digest.update(f"{name} absent".encode())
    digest.update(cpu_kind().encode())
    return digest.hexdigest()[:16]


def folder_of(recipe: Recipe) -> Path:
    return cache_root() / f"seed{recipe.seed}{'' if recipe.amp else '-fp32'}-{cache_key(recipe)}"


def cached(recipe: Recipe) -> TrainedModel | None:
    folder = folder_of(recipe)
    model = TrainedModel(folder / "run" / "model.pt", folder / "val.json", folder / "synth" / "JPEGImages",
                         folder / "train.json")
    return model if model.checkpoint.is_file() else None


def train_into_cache(recipe: Recipe) -> TrainedModel:
    """Generate the set, hold out videos and train into a scratch folder beside the cache entry, then rename it
    into place (a reader never sees half a model). Under the entry's lock; a model trained meanwhile by another
    process is taken as it is."""
    from training.config import load_train_config
    from training.split import split_annotations
    from training.synthetic import generate_synthetic_set
    from training.train import train

    folder = folder_of(recipe)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (model := cached(recipe)) is not None:
            return model
        for stale in folder.parent.glob(f"{folder.name}.partial-*"):  # left by a trainer that was stopped
            shutil.rmtree(stale, ignore_errors=True)
        scratch = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
        annotations = generate_synthetic_set(scratch / "synth", videos=recipe.videos, seed=recipe.set_seed)
        train_split, val_split = split_annotations(json.loads(annotations.read_text()), val_count=recipe.held_out,
                                                   seed=0)
        (scratch / "train.json").write_text(json.dumps(train_split))
        (scratch / "val.json").write_text(json.dumps(val_split))
        # the annotation files name no folder: the set's frames are found from data.frames, wherever it lies
        config = load_train_config(ROOT / RECIPE_FILES[0], [
            f"data.annotations={scratch / 'train.json'}", f"data.frames={scratch / 'synth' / 'JPEGImages'}",
            f"max_iters={recipe.iterations}", "max_minutes=0", f"checkpoint_every={recipe.iterations}",
            f"threads={recipe.threads}", "deterministic=true", f"seed={recipe.seed}",
            f"amp={str(recipe.amp).lower()}"])
        train(config, scratch / "run", progress=False)
        (scratch / "recipe.json").write_text(json.dumps({**dataclasses.asdict(recipe), "cpu": cpu_kind()}, indent=1))
        os.replace(scratch, folder)
    model = cached(recipe)
    assert model is not None
    return model


class BackgroundTraining:
    """The trainer process of this test run, if one was started."""

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.log = Path()
        self.started = 0.0

    def start(self, recipe: Recipe) -> None:
        if self.process is not None or cached(recipe) is not None:
            return
        folder = folder_of(recipe)
        folder.parent.mkdir(parents=True, exist_ok=True)
        self.log = folder.with_suffix(".log")
        self.started = time.monotonic()
        # nice: the tests beside it, which wait on processes and camera streams at their real rate, go first (at the
        # tests' priority a first run starved a two-camera stream: 28 of 30 frames out)
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(["nice", "-n", "5", sys.executable, str(Path(__file__).resolve())],
                                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            env={**os.environ, "SGNET_TEST_MODEL_SEED": str(recipe.seed),
                                                 "SGNET_TEST_MODEL_AMP": str(int(recipe.amp))})

    def wait_for(self, recipe: Recipe) -> TrainedModel:
        """The cached model, once the trainer (this run's, or another run's holding the lock) has made it; trains
        it here when no trainer was started (a run that selected its tests otherwise)."""
        if self.process is None:
            return cached(recipe) or train_into_cache(recipe)
        code = self.process.wait()
        if code != 0 or (model := cached(recipe)) is None:
            raise RuntimeError(f"training the suite's model failed (exit {code}); its log {self.log} ends:\n"
                               f"{self.log.read_text()[-4000:]}")
        print(f"\n[session model] trained in the background in {time.monotonic() - self.started:.0f} s: "
              f"{model.checkpoint}", file=sys.stderr)
        return model

    def finish(self) -> None:
        """Let the trainer finish: the model lands in the cache for the next run (or another xdist worker)."""
        if self.process is not None:
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait()


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    trained = train_into_cache(Recipe.from_environment())
    print(f"[session model] {trained.checkpoint}")
