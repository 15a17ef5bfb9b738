"""The YouTube-VIS clip dataset: targets from hand-written annotations (RLE, uncompressed RLE, polygons, nulls),
resize and flip against hand-computed boxes, one augmentation per clip, padding in the collate function,
DistributedSampler indices, bad data named, and a synthetic set through the dataset into the model's losses."""
import dataclasses
import json
import math

import cv2
import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from sgnet_model.config import ModelConfig, named_config
from sgnet_model.network.model import SGNet
from sgnet_model.data.ytvis import YTVISError, frame_times, load_annotations
from training.datasets import ClipAugmentation, DatasetError, YTVISClipDataset, collate_clips
from training.synthetic import generate_synthetic_set

HEIGHT, WIDTH = 32, 64
RED, BLUE = (200, 30, 30), (30, 30, 200)  # RGB of the frames' left and right halves
CLASSES = ("dog", "cat")  # category ids 3 and 7, sorted by id


def rectangle(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    mask[y0:y1, x0:x1] = 1
    return mask


def rle(mask: np.ndarray) -> dict:
    encoded = mask_utils.encode(np.asfortranarray(mask))
    return {"size": [int(s) for s in encoded["size"]], "counts": encoded["counts"].decode("ascii")}


def annotation_json() -> dict:
    """Video 1 (3 frames): a cat as compressed RLE, null, polygon; a dog as null, uncompressed RLE (a 2 px wide
    full-height bar at x 10..11: 10 columns of 32 zeros, 2 of ones, 52 of zeros), a 2 x 2 square.
    Video 2 (4 frames): a dog standing still."""
    still = rle(rectangle(4, 8, 20, 24))
    return {
        "videos": [{"id": 1, "width": WIDTH, "height": HEIGHT, "length": 3,
                    "file_names": [f"v1/{i:05d}.jpg" for i in range(3)]},
                   {"id": 2, "width": WIDTH, "height": HEIGHT, "length": 4,
                    "file_names": [f"v2/{i:05d}.jpg" for i in range(4)]}],
        "categories": [{"id": 7, "name": "cat"}, {"id": 3, "name": "dog"}],
        "annotations": [
            {"id": 10, "video_id": 1, "category_id": 7, "iscrowd": 0,
             "segmentations": [rle(rectangle(8, 4, 24, 20)), None, [[40, 4, 56, 4, 56, 20, 40, 20]]]},
            {"id": 11, "video_id": 1, "category_id": 3, "iscrowd": 0,
             "segmentations": [None, {"size": [HEIGHT, WIDTH], "counts": [10 * HEIGHT, 2 * HEIGHT, 52 * HEIGHT]},
                               rle(rectangle(30, 12, 32, 14))]},
            {"id": 20, "video_id": 2, "category_id": 3, "segmentations": [still] * 4},
        ],
    }


@pytest.fixture
def ytvis(tmp_path):
    """(annotation path, frames folder): the JSON above and frames red on the left half, blue on the right."""
    frames = tmp_path / "JPEGImages"
    image = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
    image[:, :WIDTH // 2], image[:, WIDTH // 2:] = RED, BLUE
    data = annotation_json()
    for video in data["videos"]:
        for name in video["file_names"]:
            (frames / name).parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(frames / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 100])
    path = tmp_path / "train.json"
    path.write_text(json.dumps(data))
    return path, frames


def config(width: int = WIDTH, height: int = HEIGHT, class_names=CLASSES) -> ModelConfig:
    return ModelConfig(input_width=width, input_height=height, class_names=class_names)


def boxes(frame) -> list[list[float]]:
    return frame.boxes.tolist()


def colour_at(images: torch.Tensor, y: int, x: int) -> tuple[int, ...]:
    return tuple(images[:, y, x].tolist())


def near(colour, expected, tolerance=12) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(colour, expected))


def test_targets_follow_the_annotations_at_input_size(ytvis):
    dataset = YTVISClipDataset(*ytvis, config())
    assert dataset.class_names == CLASSES
    assert dataset.clips == [(1, 0), (1, 1), (2, 0), (2, 1), (2, 2)] and len(dataset) == 5
    clip = dataset[0]
    assert clip.video_id == 1 and clip.frame_indices == (0, 1)
    assert clip.images.shape == (2, 3, HEIGHT, WIDTH) and clip.images.dtype == torch.uint8
    assert near(colour_at(clip.images[0], 16, 8), RED) and near(colour_at(clip.images[0], 16, 56), BLUE)
    first, second = clip.targets
    # Frame 0: only the cat (class 1: categories sorted by id put dog (3) first), track id = annotation id.
    assert boxes(first) == [[8, 4, 24, 20]] and first.labels.tolist() == [1] and first.track_ids.tolist() == [10]
    assert first.masks.dtype == torch.uint8 and first.masks.shape == (1, HEIGHT, WIDTH)
    assert torch.equal(first.masks[0], torch.from_numpy(rectangle(8, 4, 24, 20)))
    # Frame 1: the cat is null, the dog's uncompressed RLE is the bar at x 10..11.
    assert boxes(second) == [[10, 0, 12, 32]] and second.labels.tolist() == [0] and second.track_ids.tolist() == [11]
    assert int(second.masks.sum()) == 2 * HEIGHT
    # Frame 2: the cat's polygon covers x 40..55, y 4..19; the dog's 2 x 2 square is kept (side 2).
    last = dataset[1].targets[1]
    assert boxes(last) == [[40, 4, 56, 20], [30, 12, 32, 14]] and last.track_ids.tolist() == [10, 11]
    assert last.masks.sum(dim=(1, 2)).tolist() == [256, 4]


def test_resize_scales_boxes_and_masks_by_the_fit_factor(ytvis):
    # Input 128 x 64: the 64 x 32 frames fit at a factor of 2.
    clip = YTVISClipDataset(*ytvis, config(128, 64))[0]
    assert clip.images.shape == (2, 3, 64, 128)
    assert boxes(clip.targets[0]) == [[16, 8, 48, 40]] and int(clip.targets[0].masks.sum()) == 32 * 32
    assert boxes(clip.targets[1]) == [[20, 0, 24, 64]]
    # Input 64 x 64: the width limits the factor to 1 (aspect kept, no stretching to 64 rows).
    assert YTVISClipDataset(*ytvis, config(64, 64))[0].images.shape == (2, 3, HEIGHT, WIDTH)
    # Input 32 x 16: a factor of 0.5; the 2 x 2 dog becomes 1 x 1, under the 2 px minimum, and is dropped.
    half = YTVISClipDataset(*ytvis, config(32, 16))
    clip = half[0]
    assert clip.images.shape == (2, 3, 16, 32)
    assert boxes(clip.targets[0]) == [[4, 2, 12, 10]] and int(clip.targets[0].masks.sum()) == 64
    last = half[1].targets[1]
    assert boxes(last) == [[20, 2, 28, 10]] and last.track_ids.tolist() == [10]
    assert last.masks.shape == (1, 16, 32)


def test_flip_mirrors_boxes_masks_and_pixels(ytvis):
    dataset = YTVISClipDataset(*ytvis, config(), augmentation=ClipAugmentation(scale_range=(1.0, 1.0),
                                                                               flip_probability=1.0))
    clip = dataset[0]
    # x1, x2 -> W - x2, W - x1 with W = 64.
    assert boxes(clip.targets[0]) == [[64 - 24, 4, 64 - 8, 20]]
    assert boxes(clip.targets[1]) == [[64 - 12, 0, 64 - 10, 32]]
    assert torch.equal(clip.targets[0].masks[0], torch.from_numpy(np.fliplr(rectangle(8, 4, 24, 20)).copy()))
    for image in clip.images:
        assert near(colour_at(image, 16, 8), BLUE) and near(colour_at(image, 16, 56), RED)


def test_one_augmentation_for_the_whole_clip(ytvis):
    # Video 2's dog stands still: within a clip every frame must show it at the same place.
    with pytest.warns(UserWarning, match="1 videos shorter than 4 frames"):
        dataset = YTVISClipDataset(*ytvis, config(), clip_length=4,
                                   augmentation=ClipAugmentation(scale_range=(0.5, 1.5), flip_probability=0.5))
    assert dataset.clips == [(2, 0)]
    torch.manual_seed(0)
    sizes, flips = set(), set()
    for _ in range(20):
        clip = dataset[0]
        width = clip.images.shape[3]
        factor = width / WIDTH
        flipped = near(colour_at(clip.images[0], 2, 1), BLUE)
        for image, frame in zip(clip.images, clip.targets):
            assert near(colour_at(image, 2, 1), BLUE if flipped else RED)  # the same flip in every frame
            assert boxes(frame) == boxes(clip.targets[0])
        x1, x2 = (width - 20 * factor, width - 4 * factor) if flipped else (4 * factor, 20 * factor)
        assert boxes(clip.targets[0])[0] == pytest.approx([x1, 8 * factor, x2, 24 * factor], abs=1.0)
        sizes.add(width)
        flips.add(flipped)
    assert len(sizes) > 5 and flips == {True, False}
    assert min(sizes) >= round(0.5 * WIDTH) and max(sizes) <= round(1.5 * WIDTH)


def test_collate_pads_to_multiples_of_32_at_bottom_right(ytvis):
    small = YTVISClipDataset(*ytvis, config(50, 25))[0]  # factor 50/64: 50 x 25
    large = YTVISClipDataset(*ytvis, config(70, 35))[0]  # factor 70/64: 70 x 35
    assert small.images.shape[2:] == (25, 50) and large.images.shape[2:] == (35, 70)
    batch = collate_clips([small, large])
    assert batch.images.shape == (2, 2, 3, 64, 96) and batch.images.dtype == torch.uint8
    assert torch.equal(batch.images[0, :, :, :25, :50], small.images)
    assert torch.equal(batch.images[1, :, :, :35, :70], large.images)
    assert batch.images[0, :, :, 25:].sum() == 0 and batch.images[0, :, :, :, 50:].sum() == 0
    assert batch.images[1, :, :, 35:].sum() == 0 and batch.images[1, :, :, :, 70:].sum() == 0
    assert batch.targets == [small.targets, large.targets]
    assert batch.targets[0][0].masks.shape[1:] == (25, 50)  # targets stay at the unpadded size
    with pytest.raises(DatasetError, match="same number of frames"):
        collate_clips([small, dataclasses.replace(large, images=large.images[:1])])


def test_distributed_sampler_indices_cover_every_clip(ytvis):
    dataset = YTVISClipDataset(*ytvis, config())
    seen = []
    for rank in range(2):
        sampler = DistributedSampler(dataset, num_replicas=2, rank=rank, shuffle=True, seed=3)
        sampler.set_epoch(1)
        loader = DataLoader(dataset, batch_size=3, sampler=sampler, collate_fn=collate_clips)
        (batch,) = list(loader)
        assert batch.images.shape == (3, 2, 3, 32, 64) and len(batch.targets) == 3
        seen.extend(sampler)
    assert set(seen) == set(range(5))


def test_missing_frame_file_is_named_at_construction(ytvis):
    path, frames = ytvis
    (frames / "v2" / "00002.jpg").unlink()
    (frames / "v2" / "00003.jpg").unlink()
    with pytest.raises(DatasetError, match=r"video 2, frame 2: frame file .*v2/00002.jpg does not exist "
                                           r"\(and 1 more missing frames\)"):
        YTVISClipDataset(path, frames, config())
    with pytest.raises(DatasetError, match="frames folder .* does not exist"):
        YTVISClipDataset(path, frames / "nothing", config())


def write(path, data):
    path.write_text(json.dumps(data))
    return path


def test_malformed_annotation_is_named(ytvis):
    path, frames = ytvis
    data = annotation_json()
    data["annotations"][1]["segmentations"][1] = {"size": [HEIGHT, WIDTH + 1], "counts": "abc"}
    with pytest.raises(YTVISError, match=r"annotation 11 \(video 1\), frame 1"):
        YTVISClipDataset(write(path, data), frames, config())
    data = annotation_json()
    del data["annotations"][2]["segmentations"][3]
    with pytest.raises(YTVISError, match=r"annotation 20 \(video 2\): 3 segmentations for a video of 4 frames"):
        YTVISClipDataset(write(path, data), frames, config())


def test_category_id_out_of_range_is_named(ytvis):
    path, frames = ytvis
    data = annotation_json()
    data["annotations"][2]["category_id"] = 99
    with pytest.raises(YTVISError, match=r"annotation 20 \(video 2\): category id 99 is not in categories \[3, 7\]"):
        YTVISClipDataset(write(path, data), frames, config())


def test_categories_must_be_the_models_classes(ytvis):
    with pytest.raises(DatasetError, match=r"categories \['dog', 'cat'\].*class_names \['cat', 'dog'\]"):
        YTVISClipDataset(*ytvis, config(class_names=("cat", "dog")))


def test_file_without_annotations_is_refused(ytvis):
    path, frames = ytvis
    data = annotation_json()
    del data["annotations"]
    with pytest.raises(DatasetError, match="no 'annotations'"):
        YTVISClipDataset(write(path, data), frames, config())


def test_unreadable_or_wrongly_sized_frame_is_named_when_read(ytvis):
    path, frames = ytvis
    cv2.imwrite(str(frames / "v1" / "00001.jpg"), np.zeros((10, 12, 3), np.uint8))
    (frames / "v2" / "00000.jpg").write_bytes(b"not a jpeg")
    dataset = YTVISClipDataset(path, frames, config())
    with pytest.raises(DatasetError, match=r"video 1, frame 1: frame .*v1/00001.jpg is 12x10, the annotation file "
                                           r"says 64x32"):
        dataset[0]
    with pytest.raises(DatasetError, match=r"video 2, frame 0: cannot read frame file .*v2/00000.jpg"):
        dataset[2]


def test_bad_augmentation_settings_are_refused():
    with pytest.raises(DatasetError, match="scale_range"):
        ClipAugmentation(scale_range=(1.2, 0.8))
    with pytest.raises(DatasetError, match="flip_probability"):
        ClipAugmentation(flip_probability=1.5)


def test_synthetic_set_feeds_the_model(tmp_path):
    annotations = generate_synthetic_set(tmp_path / "synth", videos=2, frames=4, width=96, height=64,
                                         objects=2, sizes=(16.0, 40.0), seed=11)
    data = load_annotations(annotations)
    model_config = dataclasses.replace(named_config("resnet18_small").model, input_width=96, input_height=64,
                                       class_names=data.class_names)
    dataset = YTVISClipDataset(annotations, annotations.parent / "JPEGImages", model_config)
    assert len(dataset) == 2 * 3
    # At the set's own size the targets are its masks, unchanged, with their boxes.
    for clip in dataset:
        for frame_index, frame in zip(clip.frame_indices, clip.targets):
            expected = {a.id: a.mask(frame_index) for a in data.annotations[clip.video_id]}
            expected = {k: m for k, m in expected.items() if m is not None}
            assert sorted(frame.track_ids.tolist()) == sorted(expected)
            for track_id, mask, box in zip(frame.track_ids.tolist(), frame.masks, frame.boxes.tolist()):
                assert torch.equal(mask.bool(), torch.from_numpy(expected[track_id]))
                ys, xs = np.nonzero(expected[track_id])
                assert box == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    torch.manual_seed(0)
    batch = next(iter(DataLoader(dataset, batch_size=3, shuffle=True, collate_fn=collate_clips)))
    assert batch.images.shape == (3, 2, 3, 64, 96)
    with torch.no_grad():
        losses = {name: float(value) for name, value in SGNet(model_config).losses(batch).items()}
    assert set(losses) == {"cls", "box", "centerness", "mask", "motion"}
    assert all(math.isfinite(v) for v in losses.values())
    assert losses["box"] > 0  # objects were assigned to locations


def test_clips_skip_up_to_max_frame_gap_frames_and_carry_their_real_times(ytvis):
    # Video 2's frames are named 00000..00003: frame numbers of 30 fps footage, 1/30 s apart.
    dataset = YTVISClipDataset(*ytvis, config(), augmentation=ClipAugmentation(max_frame_gap=3))
    torch.manual_seed(0)
    seen = set()
    for _ in range(60):
        clip = dataset[dataset.clips.index((2, 0))]
        gap = clip.frame_indices[1] - clip.frame_indices[0]
        seen.add(gap)
        assert clip.frame_indices == (0, gap) and clip.frame_times == pytest.approx((0.0, gap / 30))
    assert seen == {1, 2, 3}  # 60 uniform draws of 3 gaps: all appear (each misses with probability (2/3)^60)
    # From frame 2 of 4 only the next frame is left: gap 1.
    assert {dataset[dataset.clips.index((2, 2))].frame_indices for _ in range(10)} == {(2, 3)}
    # Without augmentation clips are consecutive; the batch carries the times.
    plain = YTVISClipDataset(*ytvis, config())
    batch = collate_clips([plain[0], plain[2]])
    assert torch.equal(batch.frame_times, torch.tensor([[0.0, 1 / 30], [0.0, 1 / 30]]))


def test_frame_times_come_from_youtube_vis_frame_numbers_else_six_a_second():
    assert frame_times(["a/00000.jpg", "a/00005.jpg", "a/00015.jpg"]) == pytest.approx((0.0, 5 / 30, 15 / 30))
    assert frame_times(["00010.jpg", "00015.jpg"]) == pytest.approx((0.0, 5 / 30))  # from the first frame
    assert frame_times(["a/img_1.jpg", "a/img_2.jpg", "a/img_3.jpg"]) == pytest.approx((0.0, 1 / 6, 2 / 6))
    assert frame_times(["00005.jpg", "00005.jpg"]) == pytest.approx((0.0, 1 / 6))  # numbers must rise
