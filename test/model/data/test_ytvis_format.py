"""The YouTube-VIS JSON format: loading hand-written annotation files, every bad-data error, and results I/O."""
from __future__ import annotations

import copy
import json
import zipfile

import numpy as np
import pytest

from sgnet_model.instances import TrackedInstance
from sgnet_model.data.ytvis import (TrackObservation, VideoResult, YTVISError, build_video_results, decode_mask,
                               encode_mask, load_annotations, load_results, parse_annotations, save_results)

# A 4x5 frame with the object on rows 1-2, columns 1-3. Run lengths go down the columns (column-major):
# column 0 and row 0 of column 1 are 5 background pixels, then 2 object, 2 background, 2 object, 2 background,
# 2 object, and row 3 of column 3 plus column 4 are 5 background pixels.
BLOCK = np.zeros((4, 5), bool)
BLOCK[1:3, 1:4] = True
BLOCK_COUNTS = [5, 2, 2, 2, 2, 2, 5]
# The same runs as COCO's compressed string: 5, 2, 2 as themselves ('5', '2', '2'), then each run as its
# difference to the run two places before: 2-2=0, 2-2=0, 2-2=0, 5-2=3 ('0', '0', '0', '3').
BLOCK_STRING = "5220003"
# Pixel (row 0, column 4) only: 16 background pixels, 1 object pixel, 3 background.
CORNER = np.zeros((4, 5), bool)
CORNER[0, 4] = True


def hand_written() -> dict:
    return {
        "videos": [
            {"id": 1, "file_names": ["a/0.jpg", "a/1.jpg", "a/2.jpg"], "height": 4, "width": 5, "length": 3},
            {"id": 2, "file_names": ["b/0.jpg", "b/1.jpg"], "height": 4, "width": 5, "length": 2},
        ],
        "categories": [{"id": 7, "name": "zebra", "supercategory": "animal"}, {"id": 3, "name": "cat"}],
        "annotations": [
            {"id": 10, "video_id": 1, "category_id": 7, "iscrowd": 0,
             "segmentations": [{"size": [4, 5], "counts": BLOCK_STRING},
                               None,
                               {"size": [4, 5], "counts": BLOCK_COUNTS}],
             "bboxes": [[1, 1, 3, 2], None, [1, 1, 3, 2]], "areas": [6, None, 6]},
            {"id": 11, "video_id": 1, "category_id": 3,
             "segmentations": [[[1, 1, 4, 1, 4, 3, 1, 3]],
                               [[0, 0, 1, 0, 1, 1, 0, 1], [4, 0, 5, 0, 5, 1, 4, 1]],
                               []]},
            {"id": 12, "video_id": 2, "category_id": 3, "bboxes": None, "areas": None,
             "segmentations": [{"size": [4, 5], "counts": [16, 1, 3]}, None]},
        ],
    }


def test_loads_rle_polygons_and_nulls(tmp_path):
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(hand_written()))
    data = load_annotations(path)

    assert list(data.videos) == [1, 2]
    assert data.videos[1].length == 3 and (data.videos[1].height, data.videos[1].width) == (4, 5)
    assert data.has_annotations
    block, cat = data.annotations[1]
    assert (block.id, block.category_id, block.iscrowd) == (10, 7, False)
    masks = block.masks()
    assert np.array_equal(masks[0], BLOCK)  # compressed string
    assert masks[1] is None  # null
    assert np.array_equal(masks[2], BLOCK)  # uncompressed counts
    assert masks[0].dtype == bool

    # Polygons with integer corners cover the pixels x0 <= x < x1, y0 <= y < y1; two polygons make one mask.
    assert np.array_equal(cat.mask(0), BLOCK)
    two_corners = np.zeros((4, 5), bool)
    two_corners[0, 0] = two_corners[0, 4] = True
    assert np.array_equal(cat.mask(1), two_corners)
    assert cat.mask(2) is None  # an empty polygon list is an absent object

    (corner,) = data.annotations[2]
    assert np.array_equal(corner.mask(0), CORNER) and corner.mask(1) is None
    # Everything is kept as compressed RLE with str counts, ready to be written back as JSON.
    assert block.segmentations[2] == {"size": [4, 5], "counts": BLOCK_STRING}


def test_class_index_is_position_among_categories_sorted_by_id():
    data = parse_annotations(hand_written())
    assert data.category_ids == (3, 7)
    assert data.class_names == ("cat", "zebra")
    assert data.class_index(7) == 1 and data.category_id(0) == 3
    with pytest.raises(YTVISError, match="category id 5"):
        data.class_index(5)
    with pytest.raises(YTVISError, match="class index 2"):
        data.category_id(2)


def test_file_without_annotations_loads_every_video_empty():
    data = hand_written()
    del data["annotations"]
    loaded = parse_annotations(data)
    assert not loaded.has_annotations
    assert loaded.annotations == {1: (), 2: ()}


def _break(change) -> dict:
    data = copy.deepcopy(hand_written())
    change(data)
    return data


BAD = {
    "unknown video": (lambda d: d["annotations"][2].update(video_id=9), r"annotation 12: unknown video id 9"),
    "category not in categories": (lambda d: d["annotations"][0].update(category_id=4),
                                   r"annotation 10 \(video 1\): category id 4 is not in categories \[3, 7\]"),
    "too few segmentations": (lambda d: d["annotations"][0]["segmentations"].pop(),
                              r"annotation 10 \(video 1\): 2 segmentations for a video of 3 frames"),
    "wrong mask size": (lambda d: d["annotations"][2]["segmentations"].__setitem__(
        0, {"size": [5, 4], "counts": [16, 1, 3]}),
        r"annotation 12 \(video 2\), frame 0: mask size \[5, 4\] does not match .* \[4, 5\]"),
    "uncompressed runs short": (lambda d: d["annotations"][2]["segmentations"].__setitem__(
        0, {"size": [4, 5], "counts": [16, 1]}),
        r"annotation 12 \(video 2\), frame 0: malformed RLE: run lengths add up to 17 pixels.* 20"),
    "negative run": (lambda d: d["annotations"][2]["segmentations"].__setitem__(
        0, {"size": [4, 5], "counts": [16, -1, 5]}), r"frame 0: malformed RLE: uncompressed counts"),
    "compressed string short": (lambda d: d["annotations"][0]["segmentations"].__setitem__(
        0, {"size": [4, 5], "counts": "522000"}),  # the last run (5) dropped: 15 pixels
        r"annotation 10 \(video 1\), frame 0: malformed RLE: counts covers 15 pixels"),
    "compressed string garbage": (lambda d: d["annotations"][0]["segmentations"].__setitem__(
        2, {"size": [4, 5], "counts": "hello world"}),
        r"annotation 10 \(video 1\), frame 2: malformed RLE: counts is not a valid compressed RLE string"),
    "counts of wrong type": (lambda d: d["annotations"][0]["segmentations"].__setitem__(
        2, {"size": [4, 5], "counts": 20}), r"frame 2: malformed RLE: counts must be a string or a list"),
    "RLE without counts": (lambda d: d["annotations"][0]["segmentations"].__setitem__(
        2, {"size": [4, 5]}), r"annotation 10 \(video 1\), frame 2: RLE: missing key\(s\) \['counts'\]"),
    "bad polygon": (lambda d: d["annotations"][1]["segmentations"].__setitem__(0, [[1, 1, 4, 1]]),
                    r"annotation 11 \(video 1\), frame 0: polygon 0 must be a flat list of at least 3"),
    "segmentation of wrong type": (lambda d: d["annotations"][1]["segmentations"].__setitem__(1, "mask"),
                                   r"frame 1: a segmentation must be an RLE, a list of polygons or null"),
    "annotation missing segmentations": (lambda d: d["annotations"][1].pop("segmentations"),
                                         r"annotation #1: missing key\(s\) \['segmentations'\]"),
    "video missing file_names": (lambda d: d["videos"][1].pop("file_names"),
                                 r"video #1: missing key\(s\) \['file_names'\]"),
    "video length disagrees": (lambda d: d["videos"][0].update(length=4),
                               r"video #0 \(id 1\): length 4 differs from its 3 file_names"),
    "no categories key": (lambda d: d.pop("categories"), r"missing key 'categories'"),
    "category without name": (lambda d: d["categories"][1].pop("name"),
                               r"category #1: missing key\(s\) \['name'\]"),
    "duplicate video": (lambda d: d["videos"][1].update(id=1), r"video id 1 appears twice"),
    "duplicate annotation": (lambda d: d["annotations"][1].update(id=10), r"annotation id 10 appears twice"),
    "string id": (lambda d: d["annotations"][1].update(video_id="1"),
                  r"annotation 11: video_id: expected an integer, got '1'"),
    "iscrowd not 0/1": (lambda d: d["annotations"][1].update(iscrowd=2), r"iscrowd must be 0 or 1, got 2"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_data_names_the_place_and_the_fault(case, tmp_path):
    change, message = BAD[case]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(_break(change)))
    with pytest.raises(YTVISError, match=message) as error:
        load_annotations(path)
    assert str(error.value).startswith(str(path))


def test_unreadable_files(tmp_path):
    with pytest.raises(YTVISError, match="no such file"):
        load_annotations(tmp_path / "missing.json")
    (tmp_path / "broken.json").write_text('{"videos": [')
    with pytest.raises(YTVISError, match="not valid JSON"):
        load_annotations(tmp_path / "broken.json")
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(YTVISError, match="expected a JSON object"):
        load_annotations(tmp_path / "list.json")


def test_encode_mask_gives_the_hand_computed_string():
    assert encode_mask(BLOCK) == {"size": [4, 5], "counts": BLOCK_STRING}


def _results() -> list[VideoResult]:
    return [VideoResult(1, 7, 0.9, (encode_mask(BLOCK), None, encode_mask(CORNER))),
            VideoResult(2, 3, 0.25, (None, encode_mask(BLOCK)))]


def test_results_round_trip_through_json_and_zip(tmp_path):
    results = _results()
    json_path, zip_path = save_results(results, tmp_path / "out")
    assert json_path.name == "results.json" and zip_path.name == "results.zip"

    written = json.loads(json_path.read_text())
    assert written[0] == {"video_id": 1, "category_id": 7, "score": 0.9,
                          "segmentations": [{"size": [4, 5], "counts": BLOCK_STRING}, None,
                                            {"size": [4, 5], "counts": encode_mask(CORNER)["counts"]}]}
    with zipfile.ZipFile(zip_path) as archive:
        assert archive.namelist() == ["results.json"]  # top level, no folder
        assert json.loads(archive.read("results.json")) == written

    annotations = parse_annotations(hand_written())
    for path in (json_path, zip_path):
        for against in (None, annotations):
            loaded = load_results(path, against)
            assert loaded == results
    assert np.array_equal(decode_mask(loaded[1].segmentations[1]), BLOCK)


RESULT_BAD = {
    "unknown video": (lambda r: r[1].update(video_id=5), r"result #1 \(video 5\): unknown video id 5"),
    "unknown category": (lambda r: r[0].update(category_id=1), r"result #0 \(video 1\): category id 1 is not in"),
    "frame count": (lambda r: r[1]["segmentations"].append(None),
                    r"result #1 \(video 2\): 3 segmentations for a video of 2 frames"),
    "mask size": (lambda r: r[1]["segmentations"].__setitem__(1, {"size": [2, 10], "counts": [20]}),
                  r"result #1 \(video 2\), frame 1: mask size \[2, 10\] does not match"),
    "polygons are not results": (lambda r: r[1]["segmentations"].__setitem__(1, [[0, 0, 1, 0, 1, 1]]),
                                 r"frame 1: a segmentation must be an RLE or null"),
    "score": (lambda r: r[0].update(score="high"), r"result #0 \(video 1\): score must be a finite number"),
    "missing score": (lambda r: r[0].pop("score"), r"result #0: missing key\(s\) \['score'\]"),
}


@pytest.mark.parametrize("case", sorted(RESULT_BAD))
def test_bad_results_name_the_result_and_the_fault(case, tmp_path):
    change, message = RESULT_BAD[case]
    data = [r.to_json() for r in _results()]
    data = json.loads(json.dumps(data))
    change(data)
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data))
    with pytest.raises(YTVISError, match=message):
        load_results(path, parse_annotations(hand_written()))


def test_results_without_annotations_still_checks_masks(tmp_path):
    data = [r.to_json() for r in _results()]
    data[0]["segmentations"][2] = {"size": [4, 6], "counts": [24]}  # a frame of another size than frame 0
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data))
    with pytest.raises(YTVISError, match=r"result #0 \(video 1\), frame 2: mask size \[4, 6\] does not match"):
        load_results(path)


def test_zip_without_results_json_at_top_level(tmp_path):
    path = tmp_path / "sub.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("out/results.json", "[]")
    with pytest.raises(YTVISError, match="results.json at its top level"):
        load_results(path)


def test_build_video_results_from_tracked_instances():
    other = np.zeros((4, 5), bool)
    other[3, :] = True
    frames = [
        [TrackObservation(7, 1, 0.3, BLOCK), TrackObservation(2, 0, 0.8, {"size": [4, 5], "counts": [3, 1, 16]})],
        [TrackObservation(7, 0, 0.9, {"size": [4, 5], "counts": BLOCK_STRING})],
        [TrackedInstance(track_id=7, class_id=1, class_name="zebra", score=0.4, box=np.zeros(4, np.float32),
                         mask=other, centre=np.zeros(2, np.float32), motion=np.zeros(2, np.float32))],
        [],
    ]
    results = build_video_results(5, frames, category_ids=(3, 7), height=4, width=5)
    # Track 2: one frame, class index 0 -> category 3, score 0.8; track 7: mean score (0.3 + 0.9 + 0.4) / 3.
    # Track 7's classes: index 1 in two frames (scores 0.3 + 0.4 = 0.7), index 0 in one (0.9): the
    # score-weighted vote picks index 0 -> category 3, where a plain count would pick index 1.
    assert [(r.video_id, r.category_id) for r in results] == [(5, 3), (5, 3)]
    assert results[0].score == pytest.approx(0.8) and results[1].score == pytest.approx(1.6 / 3)
    track_2, track_7 = results
    pixel = np.zeros((4, 5), bool)
    pixel[3, 0] = True  # counts [3, 1, 16]: the 4th pixel down column 0
    assert np.array_equal(decode_mask(track_2.segmentations[0]), pixel)
    assert track_2.segmentations[1:] == (None, None, None)
    assert [None if s is None else decode_mask(s).sum() for s in track_7.segmentations] == [6, 6, 5, None]
    assert np.array_equal(decode_mask(track_7.segmentations[2]), other)


@pytest.mark.parametrize("instance, message", [
    (TrackObservation(1, 2, 0.5, BLOCK), r"video 5, frame 0, track 1: class index 2 is outside 0..1"),
    (TrackObservation(1, 0, 0.5, np.zeros((5, 4), bool)), r"frame 0, track 1: mask of shape \(5, 4\)"),
    (TrackObservation(1, 0, 0.5, {"size": [4, 5], "counts": "5"}), r"frame 0, track 1: malformed RLE"),
])
def test_build_video_results_refuses_bad_instances(instance, message):
    with pytest.raises(YTVISError, match=message):
        build_video_results(5, [[instance]], category_ids=(3, 7), height=4, width=5)
    with pytest.raises(YTVISError, match="track 1: the track appears twice in one frame"):
        build_video_results(5, [[TrackObservation(1, 0, 0.5, BLOCK)] * 2], category_ids=(3, 7), height=4, width=5)
