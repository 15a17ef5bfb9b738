"""sgnet-label: the labelling round trip on a bag the node's recorder writes (two moments of one camera, one of a
JPEG camera). The videos, frame names and stamps worked out by hand; the frames against OpenCV's own JPEG round trip
and the camera's bytes; the drafts against the streaming predictor run here on the frames as they were made; the
CVAT file read with pycocotools; a CVAT export corrected by hand (an annotation deleted, a mask moved, a class
changed, polygons added, a frame deleted) collected and checked instance by instance; bad input."""
from __future__ import annotations

import copy
import dataclasses
import json
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch
from pycocotools.coco import COCO
from rosbags.rosbag2 import Writer
from rosbags.typesys import get_typestore
from sensor_msgs.msg import CompressedImage, Image

from sgnet_model.checkpoint import save_checkpoint
from sgnet_model.config import TrackerConfig, named_config
from sgnet_model.data.ytvis import build_video_results, decode_mask, load_annotations
from sgnet_model.network.model import SGNet
from sgnet_model.predictor import StreamingPredictor
from sgnet_ros.bag_flavour import ROS_STORE
from sgnet_ros.recording import RecordingConfig, UncertainMomentRecorder
from sgnet_ros.tools.bag.writer import JPEG_QUALITY
from sgnet_ros.tools.label import main
from training.datasets import YTVISClipDataset
from training.split import held_out_videos
from training.synthetic import SHAPES

START_NS = 1_700_000_000 * 1_000_000_000
STEP_NS = 100_000_000  # 10 Hz cameras
HEIGHT, WIDTH = 72, 128
CLASSES = SHAPES[:4]
FRONT, REAR = "/front/image_raw", "/rear/image_raw/compressed"
# The recorder below (window 0.3 s, interval 1 s): front moments at frames 8 and 22 write frames 5-11 and 19-25,
# the rear moment at 15 frames 12-18. 0.8 s lie between the front's two runs: more than --gap-s 0.5, two videos.
FRONT_RUNS, REAR_RUN = (range(5, 12), range(19, 26)), range(12, 19)
NUMBERS = [0, 3, 6, 9, 12, 15, 18]  # 10 Hz frames numbered as 30 fps footage (YouTube-VIS's naming)


def picture(index: int, camera: int) -> np.ndarray:
    """A smooth frame with a bright disc that moves with the frame index."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    rgb = np.stack([x * 255 // WIDTH, y * 255 // HEIGHT, np.full_like(x, 60 + 40 * camera)], axis=-1)
    disc = (x - 20 - 3 * index) ** 2 + (y - 36) ** 2 < 12 ** 2
    rgb[disc] = (230, 200, 40 + 5 * index)
    return rgb.astype(np.uint8)


def jpeg(rgb: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1]\
        .tobytes()


def from_jpeg(data: bytes) -> np.ndarray:
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def stamped(message, index: int):
    message.header.stamp.sec, message.header.stamp.nanosec = divmod(START_NS + index * STEP_NS, 1_000_000_000)
    return message


@pytest.fixture(scope="module")
def bag(tmp_path_factory) -> Path:
    recorder = UncertainMomentRecorder(RecordingConfig(str(tmp_path_factory.mktemp("recorded")), min_events=1,
                                                       window_s=0.3, min_interval_s=1.0))
    for index in range(30):
        rgb = picture(index, 0)
        front = Image(height=HEIGHT, width=WIDTH, encoding="rgb8", step=3 * WIDTH, data=rgb.tobytes())
        recorder.offer("front", FRONT, stamped(front, index), START_NS + index * STEP_NS, 2 * (index in (8, 22)))
        rear = CompressedImage(format="jpeg", data=jpeg(picture(index, 1)))
        recorder.offer("rear", REAR, stamped(rear, index), START_NS + index * STEP_NS, 2 * (index == 15))
    recorder.close()
    assert (recorder.moments, recorder.frames_written, recorder.frames_skipped) == (3, 21, 0)
    return recorder.bag


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """The small model with random weights, every detection kept and tracked (scores 0), 3 a frame."""
    torch.manual_seed(0)
    config = dataclasses.replace(named_config("resnet18_small").model, class_names=CLASSES, score_threshold=0.0,
                                 detections_per_frame=3, input_width=WIDTH, input_height=HEIGHT)
    track_all = TrackerConfig(new_track_score=0.0, continue_score=0.0)
    path = tmp_path_factory.mktemp("model") / "random.pt"
    save_checkpoint(path, config, SGNet(config).state_dict(), tracker_profiles={"robot": track_all,
                                                                                "evaluation": track_all})
    return path


@pytest.fixture(scope="module")
def drafts(tmp_path_factory, bag, checkpoint) -> Path:
    folder = tmp_path_factory.mktemp("label") / "round1"
    assert main(["drafts", str(bag), "--checkpoint", str(checkpoint), "--output", str(folder), "--no-progress"]) == 0
    return folder


def read_drafts(folder: Path) -> dict:
    return json.loads((folder / "drafts.json").read_text())


def names(bag: Path) -> list[str]:
    return [f"{bag.name}_front_image_raw_000", f"{bag.name}_front_image_raw_001",
            f"{bag.name}_rear_image_raw_compressed_000"]


def test_each_moment_becomes_a_video_of_its_frames(bag, drafts):
    data = read_drafts(drafts)
    runs = [*FRONT_RUNS, REAR_RUN]
    assert [v["name"] for v in data["videos"]] == names(bag)  # front_000 ends at frame 19; the others at the bag's end
    assert [v["file_names"] for v in data["videos"]] == [[f"{n}/{k:05d}.jpg" for k in NUMBERS] for n in names(bag)]
    assert all((v["height"], v["width"], v["length"]) == (HEIGHT, WIDTH, 7) for v in data["videos"])
    sources = data["sgnet_label"]["videos"]
    assert [(s["topic"], s["stamps_ns"]) for s in sources] == \
        [(topic, [START_NS + i * STEP_NS for i in run]) for topic, run in zip((FRONT, FRONT, REAR), runs)]
    for video, run, camera in zip(data["videos"], runs, (0, 0, 1)):
        for name, index in zip(video["file_names"], run):
            written = (drafts / "JPEGImages" / name).read_bytes()
            if camera == 1:  # the camera's own JPEG, byte for byte
                assert written == jpeg(picture(index, 1))
            else:  # rgb8 frames: exactly OpenCV's JPEG of the pixels at sgnet-bag's quality
                assert np.array_equal(from_jpeg(written), from_jpeg(jpeg(picture(index, 0))))
                assert np.abs(from_jpeg(written).astype(int) - picture(index, 0)).mean() < 2


def predictor_tracks(checkpoint: Path, frames: list[np.ndarray], video_id: int) -> list[tuple]:
    """The second route: the predictor run here over the frames as they were made, 0.1 s apart; its tracks as
    (category, score, segmentations), an empty mask taken as absent (random weights make some) and a track without
    a mask left out."""
    predictor = StreamingPredictor.from_checkpoint(checkpoint, profile="robot")
    instances = [predictor.step(frame, i * 0.1).instances for i, frame in enumerate(frames)]
    tracks = []
    for result in build_video_results(video_id, instances, range(1, len(CLASSES) + 1), HEIGHT, WIDTH):
        segmentations = [None if s is None or not decode_mask(s).any() else s for s in result.segmentations]
        if any(segmentations):
            tracks.append((result.category_id, result.score, segmentations))
    return tracks


@pytest.mark.slow  # the predictor over the three videos a second time (about 2.6 s)
def test_drafts_are_the_predictors_tracks(drafts, checkpoint):
    data = read_drafts(drafts)
    originals = [[picture(i, 0) for i in FRONT_RUNS[0]], [picture(i, 0) for i in FRONT_RUNS[1]],
                 [from_jpeg(jpeg(picture(i, 1))) for i in REAR_RUN]]  # the node decodes the rear camera's JPEG
    for video, frames in zip(data["videos"], originals):
        expected = predictor_tracks(checkpoint, frames, video["id"])
        got = [a for a in data["annotations"] if a["video_id"] == video["id"]]
        assert len(got) == len(expected) >= 2
        for annotation, (category_id, score, segmentations) in zip(got, expected):  # both best first
            assert annotation["category_id"] == category_id
            assert annotation["score"] == pytest.approx(score, abs=1e-6)
            assert annotation["segmentations"] == segmentations
            for rle, box, area in zip(annotation["segmentations"], annotation["bboxes"], annotation["areas"]):
                mask = decode_mask(rle)
                if mask is None:
                    assert box is None and area is None
                else:
                    ys, xs = np.nonzero(mask)
                    assert area == mask.sum() and box == [xs.min(), ys.min(), xs.max() - xs.min() + 1,
                                                          ys.max() - ys.min() + 1]


def cvat_json(drafts: Path, name: str) -> dict:
    with zipfile.ZipFile(drafts / "cvat" / f"{name}.zip") as archive:
        assert archive.namelist() == ["annotations/instances_default.json"]
        return json.loads(archive.read("annotations/instances_default.json"))


def test_cvat_import_holds_the_drafts_as_tracks(bag, drafts, tmp_path):
    data = read_drafts(drafts)
    for video, name in zip(data["videos"], names(bag)):
        coco_path = tmp_path / f"{name}.json"
        coco_path.write_text(json.dumps(cvat_json(drafts, name)))
        coco = COCO(str(coco_path))
        assert [coco.imgs[i + 1]["file_name"] for i in range(7)] == video["file_names"]
        assert [coco.cats[c]["name"] for c in sorted(coco.cats)] == list(CLASSES)
        drafted = {a["id"]: a for a in data["annotations"] if a["video_id"] == video["id"]}
        seen = 0
        for annotation in coco.dataset["annotations"]:
            assert annotation["attributes"] == {"occluded": False, "track_id": annotation["attributes"]["track_id"],
                                                "keyframe": True} and annotation["iscrowd"] == 0
            track = drafted[annotation["attributes"]["track_id"]]
            assert annotation["category_id"] == track["category_id"]
            mask = coco.annToMask(annotation).astype(bool)
            assert np.array_equal(mask, decode_mask(track["segmentations"][annotation["image_id"] - 1]))
            assert annotation["area"] == mask.sum()
            seen += 1
        assert seen == sum(s is not None for a in drafted.values() for s in a["segmentations"])
        with zipfile.ZipFile(drafts / "cvat" / f"{name}.frames.zip") as archive:
            assert archive.namelist() == video["file_names"]
            assert all(archive.read(n) == (drafts / "JPEGImages" / n).read_bytes() for n in video["file_names"])


def polygon_square(x0: int, y0: int, side: int) -> list[list[float]]:
    return [[x0, y0, x0 + side, y0, x0 + side, y0 + side, x0, y0 + side]]


def square(x0: int, y0: int, side: int) -> np.ndarray:
    """By hand: a polygon's square with corners at whole pixels covers pixels x0 .. x0 + side - 1 (pycocotools)."""
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[y0:y0 + side, x0:x0 + side] = True
    return mask


def uncompressed_rle(mask: np.ndarray) -> dict:
    """As CVAT exports a mask: run lengths in column-major order, starting with a run of 0s."""
    flat = mask.T.reshape(-1).astype(np.int8)
    changes = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate(([0], changes, [flat.size]))).tolist()
    return {"size": [HEIGHT, WIDTH], "counts": ([0] + runs) if flat[0] else runs}


def export(coco: dict, path: Path, form: str) -> Path:
    """``coco`` as CVAT's export: a zip (with the frames under images/), its folder unpacked, or the JSON."""
    text = json.dumps(coco)
    if form == "json":
        path = path.with_suffix(".json")
        path.write_text(text)
    elif form == "zip":
        path = path.with_suffix(".zip")
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("annotations/instances_default.json", text)
            archive.writestr(f"images/default/{coco['images'][0]['file_name']}", b"")
    else:
        (path / "annotations").mkdir(parents=True)
        (path / "annotations" / "instances_default.json").write_text(text)
    return path


def corrected_round_trip(bag: Path, drafts: Path, tmp_path: Path) -> tuple[list[Path], dict]:
    """The three videos' exports: the first corrected by hand, the second as drafted (a zip), the third with its
    frame 6 deleted (a folder). Returns the exports and the first video's expected instances."""
    data = read_drafts(drafts)
    first = cvat_json(drafts, names(bag)[0])
    tracks = [a for a in data["annotations"] if a["video_id"] == 1]
    one, two = tracks[0]["id"], tracks[1]["id"]
    in_frame = {(a["attributes"]["track_id"], a["image_id"]): a for a in first["annotations"]}
    masks = {t["id"]: [decode_mask(s) for s in t["segmentations"]] for t in tracks}
    # CVAT renumbers tracks from 0 in its exports: here track_id = position of the draft track
    for annotation in first["annotations"]:
        annotation["attributes"]["track_id"] = [t["id"] for t in tracks].index(annotation["attributes"]["track_id"])
    deleted = next(f for f in range(7) if masks[one][f] is not None)
    first["annotations"].remove(in_frame[(one, deleted + 1)])  # track one loses a frame
    moved_frame = next(f for f in range(7) if f != deleted and masks[one][f] is not None)
    moved = np.zeros_like(masks[one][moved_frame])
    moved[:, 5:] = masks[one][moved_frame][:, :-5]  # 5 px to the right, as a CVAT mask (uncompressed RLE, iscrowd 1)
    in_frame[(one, moved_frame + 1)].update(segmentation=uncompressed_rle(moved), iscrowd=1)
    new_class = next(c for c in range(1, 5) if c != tracks[1]["category_id"])
    for annotation in first["annotations"]:
        if annotation["attributes"]["track_id"] == 1:  # track two gets another class, in every frame
            annotation["category_id"] = new_class
    polygon = {"iscrowd": 0, "bbox": [], "area": 0, "attributes": {"occluded": False, "keyframe": True}}
    first["annotations"] += [
        {**copy.deepcopy(polygon), "id": 900, "image_id": 2, "category_id": 3,
         "segmentation": polygon_square(10, 10, 10)},
        {**copy.deepcopy(polygon), "id": 901, "image_id": 4, "category_id": 3,
         "segmentation": polygon_square(30, 20, 8)},
        {"id": 902, "image_id": 1, "category_id": 4, "segmentation": polygon_square(60, 40, 6), "iscrowd": 0,
         "bbox": [], "area": 0}]  # no attributes: a shape, not a track
    first["annotations"][-3]["attributes"]["track_id"] = 77
    first["annotations"][-2]["attributes"]["track_id"] = 77
    expected_one = [None if f == deleted else moved if f == moved_frame else m for f, m in enumerate(masks[one])]
    expected = {"one": (tracks[0]["category_id"], expected_one), "two": (new_class, masks[two]),
                "polygons": (3, [None, square(10, 10, 10), None, square(30, 20, 8), None, None, None]),
                "shape": (4, [square(60, 40, 6), None, None, None, None, None, None]),
                "rest": [(t["category_id"], masks[t["id"]]) for t in tracks[2:]]}
    third = cvat_json(drafts, names(bag)[2])
    third["images"] = [i for i in third["images"] if i["id"] != 7]
    third["annotations"] = [a for a in third["annotations"] if a["image_id"] != 7]
    exports = [export(first, tmp_path / "first", "json"), export(cvat_json(drafts, names(bag)[1]),
                                                                 tmp_path / "second", "zip"),
               export(third, tmp_path / "third", "folder")]
    return exports, expected


def instance(annotation: dict) -> tuple[int, list]:
    return annotation["category_id"], [decode_mask(s) for s in annotation["segmentations"]]


def same(got: tuple[int, list], expected: tuple[int, list]) -> bool:
    return got[0] == expected[0] and len(got[1]) == len(expected[1]) and all(
        (a is None and b is None) or (a is not None and b is not None and np.array_equal(a, b))
        for a, b in zip(got[1], expected[1]))


def test_corrected_exports_become_the_training_file(bag, drafts, tmp_path, capsys):
    exports, expected = corrected_round_trip(bag, drafts, tmp_path)
    train = drafts / "train.json"
    assert main(["collect", str(drafts), "--corrected", *map(str, exports), "--output", str(train),
                 "--held-out", "0"]) == 0
    assert not (drafts / "val.json").exists()
    data = json.loads(train.read_text())
    drafted = read_drafts(drafts)
    assert [v["id"] for v in data["videos"]] == [1, 2, 3]
    assert data["videos"][:2] == [{k: v[k] for k in ("id", "file_names", "height", "width", "length")}
                                  for v in drafted["videos"][:2]]
    assert data["videos"][2]["file_names"] == drafted["videos"][2]["file_names"][:6]  # frame 6 deleted in CVAT
    first = [instance(a) for a in data["annotations"] if a["video_id"] == 1]
    wanted = [expected["one"], expected["two"], *expected["rest"], expected["polygons"], expected["shape"]]
    assert len(first) == len(wanted)
    assert all(any(same(got, want) for got in first) for want in wanted)
    assert all(a["iscrowd"] == 0 for a in data["annotations"])
    second = [instance(a) for a in data["annotations"] if a["video_id"] == 2]
    drafted_second = [instance(a) for a in drafted["annotations"] if a["video_id"] == 2]
    assert len(second) == len(drafted_second) and all(any(same(g, d) for g in second) for d in drafted_second)
    third = [instance(a) for a in data["annotations"] if a["video_id"] == 3]
    drafted_third = [(c, masks[:6]) for c, masks in (instance(a) for a in drafted["annotations"] if a["video_id"] == 3)
                     if any(m is not None for m in masks[:6])]
    assert len(third) == len(drafted_third) and all(any(same(g, d) for g in third) for d in drafted_third)
    loaded = load_annotations(train)  # parse_annotations accepts it
    assert loaded.class_names == CLASSES and sum(map(len, loaded.annotations.values())) == len(data["annotations"])
    model = dataclasses.replace(named_config("resnet18_small").model, class_names=CLASSES, input_width=WIDTH,
                                input_height=HEIGHT)
    dataset = YTVISClipDataset(train, drafts / "JPEGImages", model)
    clip = dataset[0]
    assert clip.images.shape == (2, 3, HEIGHT, WIDTH)
    assert "train.json: 3 videos" in capsys.readouterr().out


def test_whole_videos_are_held_out_by_sgnet_splits_rule(bag, drafts, tmp_path):
    exports = [export(cvat_json(drafts, name), tmp_path / name, "zip") for name in names(bag)]
    train = tmp_path / "out" / "train.json"
    assert main(["collect", str(drafts), "--corrected", *map(str, exports), "--output", str(train),
                 "--held-out", "0.34", "--seed", "3"]) == 0
    train_ids = [v["id"] for v in json.loads(train.read_text())["videos"]]
    val = json.loads((train.parent / "val.json").read_text())
    val_ids = [v["id"] for v in val["videos"]]
    assert len(val_ids) == 1 and sorted(train_ids + val_ids) == [1, 2, 3]  # round(0.34 x 3) = 1 video
    assert set(val_ids) == held_out_videos([1, 2, 3], 1, 3)
    assert {a["video_id"] for a in val["annotations"]} == set(val_ids)


def run(capsys, *arguments: str) -> tuple[int, str]:
    status = main(list(arguments))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return status, err


def test_bad_input_stops_with_status_2_and_one_line(bag, checkpoint, drafts, tmp_path, capsys):
    out = str(tmp_path / "out")
    status, err = run(capsys, "drafts", str(tmp_path / "nothing"), "--checkpoint", str(checkpoint), "--output", out)
    assert status == 2 and "does not exist" in err
    plain = tmp_path / "strings"
    store = get_typestore(ROS_STORE)
    with Writer(plain, version=8) as writer:
        connection = writer.add_connection("/chatter", "std_msgs/msg/String", typestore=store)
        writer.write(connection, 1, store.serialize_cdr(store.types["std_msgs/msg/String"](data="hi"),
                                                        "std_msgs/msg/String"))
    status, err = run(capsys, "drafts", str(plain), "--checkpoint", str(checkpoint), "--output", out)
    assert status == 2 and "no sensor_msgs/Image or CompressedImage topic" in err and "/chatter" in err
    status, err = run(capsys, "drafts", str(bag), "--topic", "/nope", "--checkpoint", str(checkpoint), "--output", out)
    assert status == 2 and "/nope" in err and FRONT in err
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    status, err = run(capsys, "drafts", str(bag), "--checkpoint", str(broken), "--output", out)
    assert status == 2 and str(broken) in err and not Path(out).exists()
    status, err = run(capsys, "drafts", str(bag), "--checkpoint", str(checkpoint), "--output", str(drafts))
    assert status == 2 and "not an empty folder" in err
    coco = cvat_json(drafts, names(bag)[0])
    def rename(c: dict) -> None:
        next(k for k in c["categories"] if k["id"] == c["annotations"][0]["category_id"]).update(name="dog")

    for change, message in ((rename, "label 'dog'"),
                            (lambda c: c["annotations"][0].update(segmentation=[]), "no mask or polygon"),
                            (lambda c: c["images"][0].update(file_name="elsewhere/00000.jpg"), "is no frame"),
                            (lambda c: c["annotations"][0]["attributes"].update(track_id="x"), "not an integer")):
        wrong = copy.deepcopy(coco)
        change(wrong)
        status, err = run(capsys, "collect", str(drafts), "--corrected", str(export(wrong, tmp_path / "wrong", "json")),
                          "--output", str(tmp_path / "t.json"))
        assert status == 2 and message in err, err
    status, err = run(capsys, "collect", str(drafts), "--corrected", str(export(coco, tmp_path / "one", "json")),
                      "--output", str(tmp_path / "t.json"))  # one labelled video cannot be split
    assert status == 2 and "at least one must stay for training" in err



def disc_mask(index: int) -> np.ndarray:
    """The bright disc of ``picture(index, ...)``: the true object of the ground truth below."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    return (x - 20 - 3 * index) ** 2 + (y - 36) ** 2 < 12 ** 2


def ground_truth(path: Path, indices: range) -> Path:
    """sgnet-bag's ground-truth file for the cameras' frames ``indices`` (frame i stamped START_NS + i x STEP_NS):
    one video whose frame i shows the disc (a "square") in every frame and a box (a "star") in frames 10-14 only."""
    box = np.zeros((HEIGHT, WIDTH), np.uint8)
    box[5:15, 100:120] = 1
    discs = [encode(disc_mask(i)) for i in indices]
    boxes = [encode(box) if 10 <= i <= 14 else None for i in indices]
    data = {"videos": [{"id": 7, "file_names": [f"v/{i:05d}.jpg" for i in indices], "height": HEIGHT, "width": WIDTH,
                        "length": len(indices)}],
            "categories": [{"id": 5 + k, "name": name} for k, name in enumerate(CLASSES)],
            "annotations": [{"id": 40, "video_id": 7, "category_id": 6, "iscrowd": 0, "segmentations": discs},
                            {"id": 41, "video_id": 7, "category_id": 8, "iscrowd": 0, "segmentations": boxes}],
            "sgnet_bag": {"bag": "pool", "topic": FRONT, "frames": [
                {"stamp_ns": START_NS + i * STEP_NS, "video_id": 7, "frame_index": k} for k, i in enumerate(indices)]}}
    path.write_text(json.dumps(data))
    return path


def encode(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": rle["size"], "counts": rle["counts"].decode()}


def test_simulated_labeller_exports_the_ground_truth_of_the_drafted_frames(bag, drafts, tmp_path):
    """The simulated labeller's exports, collected, hold for each drafted frame (found by its stamp) the disc's mask
    in every frame as one track of class square, and the box as a star in the frames 10-14 a video holds (the rear
    video, frames 12-18: 12-14; the front videos none): worked out from the frame indices by hand."""
    truth = ground_truth(tmp_path / "pool.ground_truth.json", range(30))
    exports = tmp_path / "exports"
    assert main(["simulate", str(drafts), "--ground-truth", str(truth), "--output", str(exports)]) == 0
    assert sorted(p.name for p in exports.iterdir()) == sorted(f"{name}.zip" for name in names(bag))
    train = tmp_path / "train.json"
    assert main(["collect", str(drafts), "--corrected", *map(str, sorted(exports.iterdir())), "--output", str(train),
                 "--held-out", "0"]) == 0
    data = json.loads(train.read_text())
    by_name = {v["file_names"][0].split("/")[0]: v["id"] for v in data["videos"]}
    for name, run in zip(names(bag), [*FRONT_RUNS, REAR_RUN]):
        found = sorted((instance(a) for a in data["annotations"] if a["video_id"] == by_name[name]),
                       key=lambda item: item[0])
        wanted = [(2, [disc_mask(i) for i in run])]  # square: category id 2 of the drafts (CLASSES[1])
        if any(10 <= i <= 14 for i in run):
            wanted.append((4, [np.pad(np.ones((10, 20), bool), ((5, HEIGHT - 15), (100, WIDTH - 120)))
                               if 10 <= i <= 14 else None for i in run]))
        assert len(found) == len(wanted) and all(same(g, w) for g, w in zip(found, wanted)), name


def test_simulated_labeller_needs_every_frame_of_a_video_in_the_ground_truth(bag, drafts, tmp_path, capsys):
    """Frames 0-21 in the ground truth: the second front video (19-25) is partly there, an error; frames 0-18: it
    is not there at all and is left unlabelled, named on stderr."""
    status, err = run(capsys, "simulate", str(drafts), "--ground-truth",
                      str(ground_truth(tmp_path / "part.json", range(22))), "--output", str(tmp_path / "a"))
    assert status == 2 and "4 of its 7 frames" in err and not (tmp_path / "a").exists()
    status, err = run(capsys, "simulate", str(drafts), "--ground-truth",
                      str(ground_truth(tmp_path / "first.json", range(19))), "--output", str(tmp_path / "b"))
    assert status == 0 and f"{names(bag)[1]}: none of its 7 frames" in err
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == sorted(f"{n}.zip" for n in names(bag)[::2])
    status, err = run(capsys, "simulate", str(drafts), "--ground-truth", str(tmp_path / "first.json"), "--output",
                      str(tmp_path / "b"))
    assert status == 2 and "not an empty folder" in err
