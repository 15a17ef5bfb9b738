"""``sgnet-weights``: which pretrained weights file a training config starts from, where it goes on this machine,
and whether the file there is the right one.

Training never downloads anything. On a robot or a cluster without network: run this with the training config,
fetch the URL it prints where there is network, copy the file to the path it prints (the torch hub cache,
``$TORCH_HOME/hub/checkpoints/``, under torchvision's file name; or anywhere, named by ``model.pretrained_path``),
and run it again until it says ``ready``.

A file that is there is checked twice:

- its SHA-256 must start with the hex digits in its name (torchvision's files are named
  ``<model>-<first hex digits of the SHA-256>.pth``, the check ``torch.hub`` makes on download); a file named
  otherwise (``model.pretrained_path``) is held to the digits of torchvision's name for it;
- it must load weights-only into the network the config builds, in torchvision's exact layout.

Only this command compares hashes: training takes any file of the right layout (a fine-tuned one, say).

Exit status: 0 ready (or no file needed), 1 the file is missing or bad, 2 a usage error.
"""
from __future__ import annotations

import argparse
import hashlib
import re
import sys
from pathlib import Path
from typing import Sequence

from sgnet_model.config import ConfigError, ModelConfig
from sgnet_model.network.backbone import PretrainedFile, PretrainedWeightsError, pretrained_file
from sgnet_model.network.model import SGNet
from training.config import load_train_config

HASH_IN_NAME = re.compile(r"-([0-9a-f]{6,64})\.[^.]+$")  # torchvision's "<model>-<sha256 prefix>.pth"
READ_CHUNK_BYTES = 1 << 20


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks (weights files are hundreds of megabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(READ_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def expected_hash_prefix(file: PretrainedFile) -> tuple[str, str]:
    """The SHA-256 prefix the file must have and the name it comes from: the file's own name when it follows
    torchvision's naming, else torchvision's name for it."""
    name = file.path.name if HASH_IN_NAME.search(file.path.name) else file.file_name
    return HASH_IN_NAME.search(name).group(1), name


def check_weights(file: PretrainedFile, model_config: ModelConfig) -> list[str]:
    """What is wrong with the weights file on this machine, each problem with its file and its fix; empty when
    the file is there, its SHA-256 matches its name and it loads into the network."""
    elsewhere = "" if model_config.pretrained_path else (
        ", or copy it anywhere and set model.pretrained_path to it")
    if not file.path.is_file():
        what = "is not a file" if file.path.exists() else "does not exist"
        return [f"{file.path} {what}: on a machine with network, fetch {file.url} (e.g. `curl -L -O {file.url}`) "
                f"and copy it to {file.path}{elsewhere}"]
    problems = []
    prefix, named_by = expected_hash_prefix(file)
    try:
        digest = sha256_of(file.path)
    except OSError as error:
        return [f"{file.path} cannot be read ({error.strerror or error}); make it readable by this user"]
    if not digest.startswith(prefix):
        problems.append(f"{file.path}: its SHA-256 starts with {digest[:len(prefix)]}, not {prefix} as the name "
                        f"{named_by} says (an interrupted download, or another file); fetch {file.url} again and "
                        f"copy it to {file.path}{elsewhere}")
    try:
        SGNet(model_config)
    except PretrainedWeightsError as error:
        problems.append(str(error))
    return problems


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sgnet-weights",
        description="Say which torchvision weights file a training config starts from, its URL and where to put "
                    "it on this machine, and check the file that is there (SHA-256 prefix of its name, loads "
                    "weights-only into the network).\nExit status: 0 ready, 1 missing or bad, 2 usage error.",
        epilog="example:\n  sgnet-weights config/train/youtube_vis_r50.yaml\n"
               "  sgnet-weights --config config/train/youtube_vis_r50.yaml --set model.pretrained_path=/data/fcos.pth",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config_path", nargs="?", metavar="CONFIG", help="a YAML of config/train/")
    parser.add_argument("--config", help="the same, as sgnet-train takes it")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a field as in sgnet-train, e.g. --set model.pretrained=imagenet (repeatable)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.config_path is None) == (args.config is None):
        parser.error("name the training config once: sgnet-weights CONFIG, or sgnet-weights --config CONFIG")
    config_path = args.config_path or args.config
    try:
        model_config = load_train_config(config_path, args.set).model
    except ConfigError as error:
        print(f"sgnet-weights: error: {error}", file=sys.stderr)
        return 2
    print(f"config:  {config_path} (model.pretrained: {model_config.pretrained}, "
          f"backbone {model_config.backbone})")
    file = pretrained_file(model_config)
    if file is None:
        print("weights: none needed, the network starts from random weights")
        print("status:  ready")
        return 0
    where = "model.pretrained_path" if model_config.pretrained_path else (
        "the torch hub cache; model.pretrained_path names a file elsewhere")
    print(f"weights: {file.description}, torchvision's {file.file_name}")
    print(f"url:     {file.url}")
    print(f"path:    {file.path} ({where})")
    problems = check_weights(file, model_config)
    for problem in problems:
        print(f"sgnet-weights: error: {problem}", file=sys.stderr)
    if problems:
        print(f"status:  not ready ({len(problems)} problem{'s' if len(problems) > 1 else ''}, on stderr)")
        return 1
    print("status:  ready (SHA-256 matches the name, loads weights-only into the network)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
