"""Checked reading of YouTube-VIS JSON values: segmentations (compressed or uncompressed RLE, polygons, null),
JSON files, objects with their keys, integers and strings. Every error is a :class:`YTVISError` naming where.

sgnet_model/data/ytvis.py builds the annotation and results files from these (the format is described there).
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence

import numpy as np
import pycocotools.mask as mask_utils

# A compressed RLE as JSON holds it: {"size": [height, width], "counts": str}.
RLE = dict[str, Any]


class YTVISError(ValueError):
    """A YouTube-VIS annotation or results file is wrong; the message names where and what."""


class FrameSizes(Protocol):
    """What a list of segmentations is checked against: the number of frames and their size (a ``Video``)."""

    @property
    def length(self) -> int: ...

    @property
    def height(self) -> int: ...

    @property
    def width(self) -> int: ...


@dataclasses.dataclass(frozen=True)
class Frames:
    """The frames of a result checked without its video: their number and size."""

    length: int
    height: int
    width: int


def parse_segmentations(entries: Any, video: FrameSizes, where: str,
                         allow_polygons: bool) -> tuple[RLE | None, ...]:
    if not isinstance(entries, list):
        raise YTVISError(f"{where}: 'segmentations' must be a list, got {type(entries).__name__}")
    if len(entries) != video.length:
        raise YTVISError(f"{where}: {len(entries)} segmentations for a video of {video.length} frames; "
                         f"there must be one per frame (null where the object is absent)")
    return tuple(parse_segmentation(entry, video, f"{where}, frame {frame}", allow_polygons)
                 for frame, entry in enumerate(entries))


def parse_segmentation(entry: Any, video: FrameSizes, where: str, allow_polygons: bool) -> RLE | None:
    if entry is None:
        return None
    if isinstance(entry, Mapping):
        return parse_rle(entry, video, where)
    if allow_polygons and isinstance(entry, list):
        return parse_polygons(entry, video, where)
    kinds = "an RLE, a list of polygons or null" if allow_polygons else "an RLE or null"
    raise YTVISError(f"{where}: a segmentation must be {kinds}, got {type(entry).__name__}")


def parse_rle(entry: Mapping, video: FrameSizes, where: str) -> RLE:
    require(entry, ("size", "counts"), where + ": RLE")
    size = entry["size"]
    if not isinstance(size, list) or size != [video.height, video.width]:
        raise YTVISError(f"{where}: mask size {size!r} does not match the video's [height, width] "
                         f"[{video.height}, {video.width}]")
    counts = entry["counts"]
    pixels = video.height * video.width
    if isinstance(counts, list):
        if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
            raise YTVISError(f"{where}: malformed RLE: uncompressed counts must be non-negative integers")
        if sum(counts) != pixels:
            raise YTVISError(f"{where}: malformed RLE: run lengths add up to {sum(counts)} pixels, "
                             f"the mask has {video.height}x{video.width} = {pixels}")
        rle = mask_utils.frPyObjects({"size": [video.height, video.width], "counts": counts},
                                     video.height, video.width)
        return {"size": [video.height, video.width], "counts": rle["counts"].decode("ascii")}
    if isinstance(counts, bytes):
        counts = counts.decode("ascii", errors="replace")
    if not isinstance(counts, str):
        raise YTVISError(f"{where}: malformed RLE: counts must be a string or a list of run lengths, "
                         f"got {type(counts).__name__}")
    total = compressed_rle_total(counts)
    if total != pixels:
        found = "is not a valid compressed RLE string" if total is None else f"covers {total} pixels"
        raise YTVISError(f"{where}: malformed RLE: counts {found}, the mask has "
                         f"{video.height}x{video.width} = {pixels}")
    return {"size": [video.height, video.width], "counts": counts}


def compressed_rle_total(counts: str) -> int | None:
    """Pixels covered by a compressed RLE string (the sum of its run lengths); None if it is malformed.

    pycocotools decodes a string whose runs fall short of height x width without complaint, leaving the rest of
    the mask uninitialised, so the total is checked here. The string format (COCO's ``rleToString``): each run
    length is written in 6-bit characters offset by 48, 5 value bits each, bit 0x20 meaning "more follow",
    bit 0x10 of the last character the sign; from the fourth run on, the value is the difference to the run
    two places before.
    """
    if not counts.isascii():
        return None
    codes = np.frombuffer(counts.encode("ascii"), np.uint8).astype(np.int64) - 48  # (n_chars,)
    if codes.size == 0 or codes.min() < 0 or codes.max() > 63 or codes[-1] & 0x20:
        return None
    ends = np.flatnonzero((codes & 0x20) == 0)  # last character of each run
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts + 1  # characters per run
    if lengths.max() > 7:  # more than 35 bits: no 32-bit run length is written so
        return None
    shift = 5 * (np.arange(codes.size) - np.repeat(starts, lengths))
    values = np.add.reduceat((codes & 0x1F) << shift, starts)
    values = np.where(codes[ends] & 0x10, values - (1 << (5 * lengths)), values)  # sign extension
    runs = values.copy()
    runs[3::2] = np.cumsum(values[1::2])[1:]  # run i = value i + run i-2, for i >= 3
    runs[4::2] = np.cumsum(values[2::2])[1:]
    if runs.min() < 0:
        return None
    return int(runs.sum())


def parse_polygons(entry: list, video: FrameSizes, where: str) -> RLE | None:
    if not entry:
        return None  # an empty polygon list marks an absent object, as null does
    for i, polygon in enumerate(entry):
        if (not isinstance(polygon, list) or len(polygon) < 6 or len(polygon) % 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                           for v in polygon)):
            raise YTVISError(f"{where}: polygon {i} must be a flat list of at least 3 x, y pairs of numbers")
    rle = mask_utils.merge(mask_utils.frPyObjects(entry, video.height, video.width))
    return {"size": [video.height, video.width], "counts": rle["counts"].decode("ascii")}


# ---------------------------------------------------------------------------------------------- JSON values


def read_json(path: Path) -> Any:
    if not path.is_file():
        raise YTVISError(f"{path}: no such file")
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise YTVISError(f"{path}: cannot read: {error}") from None
    return parse_json(raw, str(path))


def parse_json(raw: bytes, source: str) -> Any:
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise YTVISError(f"{source}: not valid JSON: {error}") from None


def require(entry: Any, keys: Sequence[str], where: str) -> None:
    if not isinstance(entry, Mapping):
        raise YTVISError(f"{where}: expected a JSON object, got {type(entry).__name__}")
    missing = [k for k in keys if k not in entry]
    if missing:
        raise YTVISError(f"{where}: missing key(s) {missing}")


def integer(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise YTVISError(f"{where}: expected an integer, got {value!r}")
    return value


def string(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise YTVISError(f"{where}: expected a non-empty string, got {value!r}")
    return value
