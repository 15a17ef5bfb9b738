"""sgnet-synth: exact masks (hand-computed geometry, occlusion, leaving the frame), the written set loads with
the YouTube-VIS parser, determinism by seed, the default set's properties, and the CLI."""
import json
import math

import cv2
import numpy as np
import pycocotools.mask as mask_utils
import pytest

from sgnet_model.data.ytvis import load_annotations
from training.synthetic import (DEFAULT_CLASSES, DEFAULT_FRAMES, DEFAULT_HEIGHT, DEFAULT_OBJECTS, DEFAULT_VIDEOS,
                                DEFAULT_WIDTH, DOMAINS, MIN_VISIBLE_FRAMES, SHAPES, Domain, ShapeTrack, SyntheticError,
                                generate_synthetic_set, main, random_video, render_frame)

COLOUR, SHADE = (250, 20, 30), (120, 10, 15)


def square(x0: float, y0: float, side: float, **motion) -> ShapeTrack:
    """An axis-aligned square covering [x0, x0 + side) x [y0, y0 + side) in frame 0."""
    return ShapeTrack("square", centre=(x0 + side / 2, y0 + side / 2), size=side * math.sqrt(2), colour=COLOUR,
                      shade=SHADE, **motion)


def box_and_area(mask: np.ndarray) -> tuple[list[int], int]:
    ys, xs = np.nonzero(mask)
    return [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1], int(mask.sum())


def test_square_mask_is_exact_and_painted_from_the_mask():
    background = np.full((100, 160, 3), 7, dtype=np.uint8)
    image, (mask,) = render_frame(background, [square(80, 40, 40)], 0)
    assert box_and_area(mask) == ([80, 40, 120, 80], 40 * 40)
    # Inside: the texture's two colours only (a checkerboard uses both); outside: the background untouched.
    inside = {tuple(p) for p in image[mask].tolist()}
    assert inside == {COLOUR, SHADE}
    assert (image[~mask] == 7).all()


def test_circle_mask_counts_pixel_centres_inside():
    # Radius 2 around (50, 50): pixel centres at offsets (+-0.5, +-0.5) (distance^2 0.5) and (+-0.5, +-1.5),
    # (+-1.5, +-0.5) (2.5) are inside, (+-1.5, +-1.5) (4.5) is not: 4 + 8 = 12 pixels in a 4 x 4 block's cross.
    track = ShapeTrack("circle", centre=(50.0, 50.0), size=4.0)
    _, (mask,) = render_frame(np.zeros((100, 100, 3), np.uint8), [track], 0)
    assert box_and_area(mask) == ([48, 48, 52, 52], 12)
    assert not mask[48, 48] and not mask[51, 51] and mask[48, 49] and mask[49, 48]


def reference_vertices(shape: str, cx: float, cy: float, radius: float) -> np.ndarray:
    """Corners at angle 0 worked out from the definitions: a tip straight up, corners clockwise on screen."""
    if shape == "square":
        half = radius / math.sqrt(2)
        return np.array([[cx - half, cy - half], [cx + half, cy - half], [cx + half, cy + half],
                         [cx - half, cy + half]])
    if shape == "triangle":
        return np.array([[cx, cy - radius], [cx + radius * math.sqrt(3) / 2, cy + radius / 2],
                         [cx - radius * math.sqrt(3) / 2, cy + radius / 2]])
    corners = []
    for k in range(10):  # star: 5 tips at the radius, 5 inner corners at 0.45 of it
        r = radius if k % 2 == 0 else 0.45 * radius
        corners.append([cx + r * math.sin(math.radians(36 * k)), cy - r * math.cos(math.radians(36 * k))])
    return np.array(corners)


@pytest.mark.parametrize("shape", ["square", "triangle", "star"])
def test_polygon_masks_match_opencv_point_in_polygon(shape):
    cx, cy, size = 41.3, 37.8, 60.0
    _, (mask,) = render_frame(np.zeros((80, 90, 3), np.uint8), [ShapeTrack(shape, (cx, cy), size)], 0)
    contour = reference_vertices(shape, cx, cy, size / 2).astype(np.float32)
    distance = np.array([[cv2.pointPolygonTest(contour, (x + 0.5, y + 0.5), True) for x in range(90)]
                         for y in range(80)])
    clear = np.abs(distance) > 1e-3  # pixel centres on an edge may go either way
    assert clear.sum() > 0.99 * distance.size
    np.testing.assert_array_equal(mask[clear], distance[clear] > 0)


def test_ring_has_a_hole():
    track = ShapeTrack("ring", centre=(50.0, 50.0), size=40.0)
    _, (mask,) = render_frame(np.zeros((100, 100, 3), np.uint8), [track], 0)
    ys, xs = np.mgrid[0:100, 0:100] + 0.5
    distance = np.hypot(xs - 50, ys - 50)
    np.testing.assert_array_equal(mask, (distance <= 20) & (distance > 11))


def test_occluder_removes_exactly_the_overlap():
    back, front = square(40, 30, 40), square(70, 50, 40)  # overlap [70, 80) x [50, 70): 10 x 20 pixels
    image, (back_mask, front_mask) = render_frame(np.zeros((120, 160, 3), np.uint8), [back, front], 0)
    assert box_and_area(front_mask) == ([70, 50, 110, 90], 1600)
    assert box_and_area(back_mask) == ([40, 30, 80, 70], 1600 - 200)
    assert not (back_mask & front_mask).any()
    assert not back_mask[50:70, 70:80].any()


def test_fully_hidden_object_is_none():
    hidden, cover = square(50, 50, 10), square(40, 40, 40)
    _, masks = render_frame(np.zeros((120, 160, 3), np.uint8), [hidden, cover], 0)
    assert masks[0] is None and box_and_area(masks[1])[1] == 1600
    _, masks = render_frame(np.zeros((120, 160, 3), np.uint8), [cover, hidden], 0)  # the other depth order
    assert box_and_area(masks[1])[1] == 100 and box_and_area(masks[0])[1] == 1600 - 100


def test_object_leaving_the_frame_is_clipped_then_none():
    track = square(30, 20, 40, velocity=(30.0, 0.0))  # x range [30 + 30 t, 70 + 30 t) in a frame 100 wide
    areas = []
    for t in range(5):
        _, (mask,) = render_frame(np.zeros((80, 100, 3), np.uint8), [track], t)
        areas.append(None if mask is None else box_and_area(mask))
    assert areas == [([30, 20, 70, 60], 1600), ([60, 20, 100, 60], 1600), ([90, 20, 100, 60], 10 * 40), None, None]


def test_motion_growth_and_spin_follow_the_track():
    track = ShapeTrack("circle", centre=(10.0, 20.0), size=8.0, velocity=(2.5, -1.0), growth=math.log(1.5),
                       angle=0.5, spin=0.25)
    assert track.at(4) == pytest.approx((20.0, 16.0, 8.0 * 1.5 ** 4, 1.5))


def small_set(tmp_path, name="set", **options):
    defaults = dict(videos=3, frames=(4, 6), width=96, height=64, objects=(1, 3), sizes=(12.0, 40.0), seed=5)
    return generate_synthetic_set(tmp_path / name, **{**defaults, **options})


def test_written_set_loads_and_matches_its_frames(tmp_path):
    path = small_set(tmp_path)
    assert path == tmp_path / "set" / "annotations.json"
    data = load_annotations(path)
    assert len(data.videos) == 3 and data.class_names == SHAPES[:DEFAULT_CLASSES]
    raw = json.loads(path.read_text())
    for video in data.videos.values():
        assert 4 <= video.length <= 6 and (video.width, video.height) == (96, 64)
        for name in video.file_names:
            image = cv2.imread(str(path.parent / "JPEGImages" / name))
            assert image is not None and image.shape == (64, 96, 3)
        annotations = data.annotations[video.id]
        assert 1 <= len(annotations) <= 3
        for frame in range(video.length):
            masks = [m for m in (a.mask(frame) for a in annotations) if m is not None]
            assert (np.sum(masks, axis=0) <= 1).all()  # each pixel belongs to one object at most
        for annotation in annotations:
            assert sum(s is not None for s in annotation.segmentations) >= MIN_VISIBLE_FRAMES
    for entry in raw["annotations"]:  # bboxes and areas as YouTube-VIS ships them ([x, y, w, h]), from the masks
        for rle, bbox, area in zip(entry["segmentations"], entry["bboxes"], entry["areas"]):
            assert (rle is None) == (bbox is None) == (area is None)
            if rle is not None:
                assert isinstance(rle["counts"], str)
                (x1, y1, x2, y2), pixels = box_and_area(mask_utils.decode(rle))
                assert bbox == [x1, y1, x2 - x1, y2 - y1] and area == pixels


def test_same_seed_same_set_other_seed_other_set(tmp_path):
    first, second, other = (small_set(tmp_path, name, seed=seed) for name, seed in (("a", 1), ("b", 1), ("c", 2)))
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes() != other.read_bytes()
    frames = sorted(p.relative_to(first.parent) for p in (first.parent / "JPEGImages").rglob("*.jpg"))
    assert frames == sorted(p.relative_to(second.parent) for p in (second.parent / "JPEGImages").rglob("*.jpg"))
    assert all((first.parent / f).read_bytes() == (second.parent / f).read_bytes() for f in frames)
    # Video i depends on the seed and i only: a shorter set is a prefix of a longer one.
    prefix = json.loads(small_set(tmp_path, "d", seed=1, videos=2).read_text())
    full = json.loads(first.read_text())
    assert prefix["videos"] == full["videos"][:2]
    assert prefix["annotations"] == [a for a in full["annotations"] if a["video_id"] <= 2]


@pytest.mark.slow  # generates the default set (more than 2.5 s)
def test_default_set_has_the_documented_make_up(tmp_path):
    path = generate_synthetic_set(tmp_path / "default")
    data = load_annotations(path)
    assert len(data.videos) == DEFAULT_VIDEOS
    assert {(v.width, v.height) for v in data.videos.values()} == {(DEFAULT_WIDTH, DEFAULT_HEIGHT)}
    assert all(DEFAULT_FRAMES[0] <= v.length <= DEFAULT_FRAMES[1] for v in data.videos.values())
    counts = [len(a) for a in data.annotations.values()]
    assert DEFAULT_OBJECTS[0] <= min(counts) and max(counts) <= DEFAULT_OBJECTS[1]
    annotations = [a for video in data.annotations.values() for a in video]
    assert {a.category_id for a in annotations} == set(range(1, DEFAULT_CLASSES + 1))
    present = [[s is not None for s in a.segmentations] for a in annotations]
    entering = sum(not p[0] and any(p) for p in present)
    leaving = sum(not p[-1] and any(p) for p in present)
    assert entering >= 2 and leaving >= 2
    # Fast objects: box centres moving more than 8 pixels between consecutive frames where fully in view.
    fastest = 0.0
    for annotation in annotations:
        boxes = [mask_utils.toBbox(s) if s is not None else None for s in annotation.segmentations]
        for a, b in zip(boxes, boxes[1:]):
            if a is not None and b is not None:
                fastest = max(fastest, float(np.hypot(*(b[:2] + b[2:] / 2 - a[:2] - a[2:] / 2))))
    assert fastest > 8.0
    # Occlusion: some pair of objects of a video touches, one partly hiding the other.
    touching = 0
    for video_id, video_annotations in data.annotations.items():
        for frame in range(data.videos[video_id].length):
            masks = [m for m in (a.mask(frame) for a in video_annotations) if m is not None]
            for i, a in enumerate(masks):
                grown = cv2.dilate(a.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
                touching += sum(bool((grown & b).any()) for b in masks[i + 1:])
    assert touching >= 5


def test_a_domain_changes_what_the_camera_sees_not_the_scene():
    """The same seed in a dimmer, blurred domain draws the same scene: the same masks exactly; each frame's mean is
    the lighting times the base frame's (the sensor noise is the same draw; clipping at 0 and 255 and rounding
    aside), and blur takes away fine detail (the Laplacian's variance, a second measure, falls)."""
    args = (12, 96, 160, 3, SHAPES[:4], (24.0, 60.0))
    base = random_video(np.random.default_rng(7), *args)
    seen = random_video(np.random.default_rng(7), *args, Domain(lighting=0.5, blur=1.5))
    assert all(np.array_equal(a, b) if a is not None else b is None
               for track_a, track_b in zip(base.masks, seen.masks) for a, b in zip(track_a, track_b))
    for plain, dim in zip(base.frames, seen.frames):
        assert dim.mean() == pytest.approx(0.5 * plain.mean(), abs=2.0)
        sharpness = [cv2.Laplacian(frame.astype(np.float64), cv2.CV_64F).var() for frame in (plain, dim)]
        assert sharpness[1] < 0.5 * sharpness[0]


def test_a_domain_weighs_the_classes():
    """Weights 1, 1, 3, 3: 3 in 4 objects are triangles or stars. Over 600 draws the share lies within 4.5
    binomial standard deviations (0.0177) of 0.75; uniform weights give 0.5."""
    shifted = DOMAINS["shifted"]
    draws = [track.shape for seed in range(200)
             for track in random_video(np.random.default_rng(seed), 1, 64, 96, 3, SHAPES[:4], (16.0, 24.0),
                                       shifted).tracks]
    share = sum(shape in ("triangle", "star") for shape in draws) / len(draws)
    assert abs(share - 0.75) < 4.5 * math.sqrt(0.75 * 0.25 / len(draws))
    with pytest.raises(SyntheticError, match="weighs 4 classes; the set has 3"):
        random_video(np.random.default_rng(0), 2, 96, 160, 1, SHAPES[:3], (24.0, 40.0), shifted)


def test_bad_options_and_existing_output_are_refused(tmp_path):
    with pytest.raises(SyntheticError, match="frames must be at least 2"):
        small_set(tmp_path, frames=1)
    with pytest.raises(SyntheticError, match="classes must lie in 1..5"):
        small_set(tmp_path, classes=6)
    small_set(tmp_path)
    with pytest.raises(SyntheticError, match="already holds a set"):
        small_set(tmp_path)
    small_set(tmp_path, overwrite=True, videos=1)
    assert len(list((tmp_path / "set" / "JPEGImages").iterdir())) == 1


def test_cli_writes_a_set_and_prints_one_json_object(tmp_path, capsys):
    argv = ["--output", str(tmp_path / "cli"), "--videos", "2", "--frames", "3", "--width", "64", "--height", "48",
            "--objects", "1:2", "--sizes", "10:30", "--classes", "5", "--seed", "3", "--no-progress", "--json"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["videos"] == 2 and summary["frames"] == 6 and summary["classes"] == list(SHAPES)
    assert load_annotations(summary["annotations"]).videos[2].length == 3

    assert main(argv) == 2  # the folder holds a set now
    err = capsys.readouterr().err.strip()
    assert err.startswith("sgnet-synth: error:") and "already holds a set" in err and "\n" not in err
    with pytest.raises(SystemExit) as exit_info:
        main(["--output", str(tmp_path / "x"), "--frames", "3:x"])
    assert exit_info.value.code == 2
