"""``sgnet-split``: hold out videos of a YouTube-VIS annotation file as a local validation set.

YouTube-VIS keeps the ground truth of its val and test sets private, so a local AP needs videos held out from
train. The split is a function of the video ids and the seed alone: each video's key is the SHA-256 of
``"<seed>:<video id>"``, and the videos with the smallest keys are held out. The same file and seed give the
same split on any machine and Python (no dict order, no ``hash()`` randomisation); adding videos to the file
moves at most a few of the old ones.

Both outputs keep every top-level key of the input (``info``, ``licenses``, ``categories``) and the entries of
their videos and annotations unchanged, in the input's order; ``val.json`` keeps its annotations so that
``sgnet-eval`` can score it. The frame paths stay relative to the same ``JPEGImages`` folder.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

from sgnet_model.data.ytvis import YTVISError, parse_annotations


class SplitError(ValueError):
    """The split cannot be made; the message says why."""


def held_out_count(videos: int, val_fraction: float | None = None, val_count: int | None = None) -> int:
    """How many of ``videos`` to hold out: ``val_count``, or ``val_fraction`` of them rounded (at least 1);
    either way at least one video stays for training."""
    if (val_fraction is None) == (val_count is None):
        raise SplitError("give exactly one of a fraction and a count of videos to hold out")
    if val_count is not None:
        count = val_count
        if count < 1:
            raise SplitError(f"the number of held-out videos must be at least 1, got {count}")
    else:
        if not 0.0 < val_fraction < 1.0:
            raise SplitError(f"the held-out fraction must lie strictly between 0 and 1, got {val_fraction}")
        count = max(1, int(val_fraction * videos + 0.5))  # rounded half up
    if count >= videos:
        raise SplitError(f"cannot hold out {count} of {videos} videos: at least one must stay for training")
    return count


def _key(seed: int, video_id: int) -> str:
    return hashlib.sha256(f"{seed}:{video_id}".encode("ascii")).hexdigest()


def held_out_videos(video_ids: Sequence[int], count: int, seed: int) -> set[int]:
    """The ``count`` video ids with the smallest SHA-256 keys of ``"<seed>:<id>"``."""
    return set(sorted(video_ids, key=lambda video_id: (_key(seed, video_id), video_id))[:count])


def split_annotations(data: Mapping[str, Any], *, val_fraction: float | None = None, val_count: int | None = None,
                      seed: int = 0, source: str = "annotations") -> tuple[dict[str, Any], dict[str, Any]]:
    """(train, val) annotation dicts from the parsed JSON ``data`` of a YouTube-VIS file (checked first with
    :func:`sgnet_model.data.ytvis.parse_annotations`), holding out ``val_count`` videos or ``val_fraction`` of them."""
    checked = parse_annotations(data, source)
    if not checked.has_annotations:
        raise SplitError(f"{source} has no 'annotations': a held-out split needs ground truth (split a train file)")
    count = held_out_count(len(checked.videos), val_fraction, val_count)
    val_ids = held_out_videos(list(checked.videos), count, seed)

    def part(keep_val: bool) -> dict[str, Any]:
        result = dict(data)
        result["videos"] = [v for v in data["videos"] if (v["id"] in val_ids) == keep_val]
        result["annotations"] = [a for a in data["annotations"] if (a["video_id"] in val_ids) == keep_val]
        return result

    return part(False), part(True)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except OSError as error:
        raise SplitError(f"{path}: cannot read the annotation file: {error.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise SplitError(f"{path}: not valid JSON: {error}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sgnet-split",
        description="Hold out videos of a YouTube-VIS annotation file (e.g. the train set, or a sgnet-synth set) "
                    "as a local validation set: writes OUTPUT/train.json and OUTPUT/val.json (val keeps its "
                    "annotations, for sgnet-eval). The split depends only on the video ids and --seed "
                    "(SHA-256 of seed and id), so it is the same on every machine. Both files use the input's "
                    "JPEGImages folder.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("annotations", type=Path, help="YouTube-VIS annotation JSON with annotations")
    parser.add_argument("--output", "-o", type=Path, required=True, help="folder for train.json and val.json")
    held_out = parser.add_mutually_exclusive_group()
    held_out.add_argument("--val-fraction", type=float, default=None,
                          help="fraction of the videos to hold out (rounded, at least 1; the default is 0.1)")
    held_out.add_argument("--val-count", type=int, default=None, help="number of videos to hold out")
    parser.add_argument("--seed", type=int, default=0, help="another seed holds out other videos")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object (paths, counts, held-out video ids) on stdout")
    return parser


def every_nth_frame(annotations: Mapping[str, Any], every: int) -> dict[str, Any]:
    """The annotation file with each video cut to its frames 0, every, 2 * every, ...: the file names (and so
    the frames' real times, ytvis.frame_times) and the segmentations alike."""
    cut = json.loads(json.dumps(annotations))
    for video in cut["videos"]:
        video["file_names"] = video["file_names"][::every]
        video["length"] = len(video["file_names"])
    for annotation in cut["annotations"]:
        annotation["segmentations"] = annotation["segmentations"][::every]
    return cut


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    val_fraction = 0.1 if args.val_fraction is None and args.val_count is None else args.val_fraction
    train_path, val_path = args.output / "train.json", args.output / "val.json"
    try:
        if args.annotations.resolve() in (train_path.resolve(), val_path.resolve()):
            raise SplitError(f"the output {args.output} would overwrite the input {args.annotations}: "
                             f"choose another --output folder")
        data = _read_json(args.annotations)
        train, val = split_annotations(data, val_fraction=val_fraction, val_count=args.val_count, seed=args.seed,
                                       source=str(args.annotations))
        args.output.mkdir(parents=True, exist_ok=True)
        for path, part in ((train_path, train), (val_path, val)):
            path.write_text(json.dumps(part, separators=(",", ":")), encoding="utf-8")
    except (YTVISError, SplitError, OSError) as error:
        print(f"sgnet-split: error: {error}", file=sys.stderr)
        return 2
    summary = {"train": str(train_path), "val": str(val_path), "train_videos": len(train["videos"]),
               "val_videos": len(val["videos"]), "val_video_ids": [v["id"] for v in val["videos"]],
               "seed": args.seed}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"sgnet-split: {summary['train_videos']} videos in {train_path}, {summary['val_videos']} held out in "
              f"{val_path} (seed {args.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
