"""sgnet-split: a deterministic, disjoint held-out split that depends only on the video ids and the seed."""
import hashlib
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from sgnet_model.data.ytvis import YTVISError
from training.split import SplitError, held_out_count, main, split_annotations

REPO = Path(__file__).resolve().parents[2]


def annotation_json(videos: int = 10) -> dict:
    """``videos`` videos of 2 frames (ids 101, 104, 107, ...), each with one or two annotations."""
    data = {"info": {"description": "hand-made"}, "licenses": [],
            "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}], "videos": [], "annotations": []}
    for i in range(videos):
        video_id = 101 + 3 * i
        data["videos"].append({"id": video_id, "width": 4, "height": 2, "length": 2,
                               "file_names": [f"v{video_id}/0.jpg", f"v{video_id}/1.jpg"]})
        for k in range(1 + i % 2):
            data["annotations"].append({"id": len(data["annotations"]) + 1, "video_id": video_id,
                                        "category_id": 1 + k, "iscrowd": 0,
                                        "segmentations": [None, [[0, 0, 2, 0, 2, 2]]]})
    return data


def sha_order(video_ids, seed):
    """The documented rule, worked out here: videos sorted by SHA-256 of "<seed>:<id>"."""
    return sorted(video_ids, key=lambda v: hashlib.sha256(f"{seed}:{v}".encode()).hexdigest())


def ids(part):
    return [v["id"] for v in part["videos"]]


def test_split_is_disjoint_complete_and_keeps_everything_else():
    data = annotation_json()
    train, val = split_annotations(data, val_count=3, seed=7)
    all_ids = ids(data)
    assert len(ids(val)) == 3 and len(ids(train)) == 7
    assert set(ids(train)).isdisjoint(ids(val)) and sorted(ids(train) + ids(val)) == sorted(all_ids)
    assert set(ids(val)) == set(sha_order(all_ids, 7)[:3])
    assert ids(train) == [v for v in all_ids if v in ids(train)]  # the input's order
    for part in (train, val):
        assert part["info"] == data["info"] and part["categories"] == data["categories"] and "licenses" in part
        assert {a["video_id"] for a in part["annotations"]} == set(ids(part))
    assert len(train["annotations"]) + len(val["annotations"]) == len(data["annotations"])
    assert val["annotations"] and val["annotations"][0] in data["annotations"]  # entries unchanged


def test_same_seed_same_split_whatever_the_order_other_seed_other_split():
    data = annotation_json(40)
    _, val = split_annotations(data, val_fraction=0.2, seed=1)
    shuffled = dict(data, videos=random.Random(0).sample(data["videos"], len(data["videos"])))
    _, val_shuffled = split_annotations(shuffled, val_fraction=0.2, seed=1)
    assert sorted(ids(val)) == sorted(ids(val_shuffled))
    assert set(ids(val)) != set(ids(split_annotations(data, val_fraction=0.2, seed=2)[1]))
    # More videos in the file move few of the held-out ones (the rule ranks videos, it does not re-deal them).
    _, val_more = split_annotations(annotation_json(44), val_fraction=0.2, seed=1)
    assert len(set(ids(val)) & set(ids(val_more))) >= 6


@pytest.mark.parametrize("videos, fraction, count, expected", [
    (10, 0.25, None, 3), (10, 0.1, None, 1), (10, 0.01, None, 1), (48, None, 8, 8), (5, 0.7, None, 4)])
def test_held_out_count(videos, fraction, count, expected):
    assert held_out_count(videos, fraction, count) == expected


def test_impossible_counts_are_refused():
    with pytest.raises(SplitError, match="at least one must stay for training"):
        held_out_count(4, val_count=4)
    with pytest.raises(SplitError, match="cannot hold out 5 of 5"):
        held_out_count(5, val_fraction=0.9)  # 4.5 rounds up to every video
    with pytest.raises(SplitError, match="strictly between 0 and 1"):
        held_out_count(4, val_fraction=1.0)
    with pytest.raises(SplitError, match="exactly one"):
        held_out_count(4, 0.5, 2)
    data = annotation_json()
    del data["annotations"]
    with pytest.raises(SplitError, match="no 'annotations'"):
        split_annotations(data, val_count=1)
    data = annotation_json()
    data["annotations"][3]["category_id"] = 9
    with pytest.raises(YTVISError, match="annotation 4 .*category id 9"):
        split_annotations(data, val_count=1)


def test_cli_gives_the_same_files_under_any_hash_seed(tmp_path):
    source = tmp_path / "ann.json"
    source.write_text(json.dumps(annotation_json(30)))
    outputs = []
    for hash_seed in ("1", "2"):
        out = tmp_path / f"out{hash_seed}"
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        done = subprocess.run([sys.executable, "-m", "training.split", str(source), "--output", str(out),
                               "--seed", "4", "--json"], cwd=REPO, env=env, capture_output=True, text=True,
                              check=True)
        summary = json.loads(done.stdout)
        assert summary["train_videos"] == 27 and summary["val_videos"] == 3  # default fraction 0.1
        assert set(summary["val_video_ids"]) == set(sha_order(ids(annotation_json(30)), 4)[:3])
        outputs.append(((out / "train.json").read_bytes(), (out / "val.json").read_bytes()))
    assert outputs[0] == outputs[1]


def test_cli_errors_exit_2_with_one_line(tmp_path, capsys):
    source = tmp_path / "train.json"
    source.write_text(json.dumps(annotation_json(3)))
    cases = [([str(source), "--output", str(tmp_path)], "would overwrite the input"),
             ([str(source), "--output", str(tmp_path / "o"), "--val-count", "3"], "at least one must stay"),
             ([str(tmp_path / "none.json"), "--output", str(tmp_path / "o")], "cannot read the annotation file"),
             ([str(tmp_path / "bad.json"), "--output", str(tmp_path / "o")], "not valid JSON")]
    (tmp_path / "bad.json").write_text("{")
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("sgnet-split: error:") and message in err and "\n" not in err
    assert not (tmp_path / "o").exists()
    assert main([str(source), "--output", str(tmp_path / "o"), "--val-count", "1"]) == 0
    assert "2 videos in" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main([str(source), "--output", str(tmp_path / "o"), "--val-count", "1", "--val-fraction", "0.5"])
    assert exit_info.value.code == 2
