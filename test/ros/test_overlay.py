"""The debug overlay (sgnet_ros/overlay.py): labels placed without overlap inside the image at 320x192 and 1280x720,
text scaled to the image, masks filled and outlined, nothing drawn elsewhere."""
import itertools

import cv2
import numpy as np
import pytest

from sgnet_model.instances import TrackedInstance
from sgnet_ros.overlay import (MASK_OPACITY, Rect, label_size, label_text, pixel_box, place_labels, render_overlay,
                               text_style, track_colour)

SIZES = [(192, 320), (720, 1280)]  # (height, width)


def instance(track_id, box, height, width, score=0.9, class_name="person"):
    """A tracked instance whose mask is the ellipse inscribed in its box."""
    x1, y1, x2, y2 = box
    mask = np.zeros((height, width), np.uint8)
    cv2.ellipse(mask, ((x1 + x2) // 2, (y1 + y2) // 2), ((x2 - x1) // 2 - 1, (y2 - y1) // 2 - 1), 0, 0, 360, 1, -1)
    box = np.array(box, np.float32)
    return TrackedInstance(track_id=track_id, class_id=0, class_name=class_name, score=score, box=box,
                           mask=mask.astype(bool), centre=(box[:2] + box[2:]) / 2, motion=np.zeros(2, np.float32))


def cluster(height, width, count=10):
    """``count`` overlapping boxes crowded into the middle fifth of the image: their preferred label spots (above
    each box) collide."""
    rng = np.random.default_rng(7)
    centre_x, centre_y, spread = width / 2, height / 2, min(height, width) / 10
    boxes = []
    for _ in range(count):
        x, y = centre_x + rng.uniform(-spread, spread), centre_y + rng.uniform(-spread, spread)
        half_w, half_h = rng.uniform(0.5, 1.5) * spread, rng.uniform(0.5, 1.5) * spread
        boxes.append((round(x - half_w), round(y - half_h), round(x + half_w), round(y + half_h)))
    return boxes


@pytest.mark.parametrize("height, width", SIZES)
def test_labels_of_ten_clustered_instances_do_not_overlap_and_stay_in_the_image(height, width):
    boxes = [Rect(*box) for box in cluster(height, width)]
    style = text_style(height)
    sizes = [label_size(label_text(track, "motorbike", 0.87), style) for track in range(100, 110)]
    rects = place_labels(boxes, sizes, height, width)
    assert len(rects) == 10
    for rect, (label_width, label_height) in zip(rects, sizes):
        assert (rect.right - rect.left, rect.bottom - rect.top) == (label_width, label_height)
        assert 0 <= rect.left and rect.right <= width and 0 <= rect.top and rect.bottom <= height
    for a, b in itertools.combinations(rects, 2):
        assert not (a.left < b.right and b.left < a.right and a.top < b.bottom and b.top < a.bottom), (a, b)
    # the cluster really collides: placed naively above their boxes, labels would overlap
    naive = [Rect(box.left, box.top - h, box.left + w, box.top) for box, (w, h) in zip(boxes, sizes)]
    assert any(a.overlaps(b) for a, b in itertools.combinations(naive, 2))


def test_a_free_label_sits_on_its_box_and_moves_inside_at_the_top_edge():
    # above the box, left-aligned, touching its top edge
    assert place_labels([Rect(50, 60, 150, 120)], [(80, 15)], 192, 320) == [Rect(50, 45, 130, 60)]
    # no room above: inside the box's top
    assert place_labels([Rect(50, 5, 150, 120)], [(80, 15)], 192, 320) == [Rect(50, 0, 130, 15)]
    # a second box with the same top left corner: the spot above is taken, the second label goes inside its box
    assert place_labels([Rect(50, 60, 150, 120), Rect(50, 60, 100, 100)], [(80, 15), (80, 15)], 192, 320) == \
        [Rect(50, 45, 130, 60), Rect(50, 60, 130, 75)]
    # at the right edge the label is moved left into the image
    assert place_labels([Rect(300, 60, 319, 120)], [(80, 15)], 192, 320) == [Rect(240, 45, 320, 60)]


def test_labels_take_the_nearest_free_spot_when_every_candidate_is_taken():
    # Eight boxes side by side put their labels in a wall across rows 30..60 that covers every candidate spot of a
    # box at rows 40..50; its label goes to the free spot nearest its preferred one (above the box: top 25): just
    # above the wall (top 15), not below it (top 60).
    row = [Rect(x, 60, x + 40, 100) for x in range(0, 320, 40)]
    *wall, rect = place_labels([*row, Rect(100, 40, 140, 50)], [(40, 30)] * 8 + [(40, 15)], 192, 320)
    assert wall == [Rect(x, 30, x + 40, 60) for x in range(0, 320, 40)]
    assert rect == Rect(100, 15, 140, 30)


def test_text_scales_with_the_image():
    small, large = text_style(192), text_style(720)
    (_, small_h), _ = cv2.getTextSize("0", cv2.FONT_HERSHEY_SIMPLEX, small.scale, small.thickness)
    (_, large_h), _ = cv2.getTextSize("0", cv2.FONT_HERSHEY_SIMPLEX, large.scale, large.thickness)
    assert small_h == pytest.approx(9, abs=1) and large_h == pytest.approx(20, abs=1)  # 1/36 of the height, min 9
    assert label_size("7 person 0.91", large)[0] > 2 * label_size("7 person 0.91", small)[0]


@pytest.mark.parametrize("height, width", SIZES)
def test_render_fills_and_outlines_masks_and_draws_nothing_elsewhere(height, width):
    rgb = np.random.default_rng(1).integers(0, 256, (height, width, 3), np.uint8)
    w, h = width // 8, height // 6
    instances = [instance(3, (w, 2 * h, 3 * w, 4 * h), height, width, score=0.9),
                 instance(4, (5 * w, 2 * h, 7 * w, 5 * h), height, width, score=0.6)]
    drawn = render_overlay(rgb, instances).astype(int)
    style = text_style(height)
    boxes = [pixel_box(i.box) for i in instances]
    texts = [label_text(i.track_id, i.class_name, i.score) for i in instances]
    rects = place_labels(boxes, [label_size(text, style) for text in texts], height, width)
    assert rects == [Rect(b.left, b.top - s[1], b.left + s[0], b.top) for b, s in
                     zip(boxes, (label_size(text, style) for text in texts))]  # both fit above their boxes
    touched = np.zeros((height, width), bool)
    for box, rect in zip(boxes, rects):
        touched[rect.top:rect.bottom, rect.left:rect.right] = True
        band = style.line
        touched[box.top - band:box.bottom + band + 1, box.left - band:box.right + band + 1] = True
        touched[box.top + band + 1:box.bottom - band, box.left + band + 1:box.right - band] = False
    masks = np.stack([i.mask for i in instances]).any(axis=0).astype(np.uint8)
    kernel = np.ones((2 * style.line + 1,) * 2, np.uint8)
    edge = cv2.dilate(masks, kernel) != cv2.erode(masks, kernel)
    outside = ~masks.astype(bool) & ~edge & ~touched
    assert np.array_equal(drawn[outside], rgb[outside])
    for i in instances:
        colour = np.array(track_colour(i.track_id))
        inside = i.mask & ~edge & ~touched
        assert inside.any()
        assert np.abs(drawn[inside] - (rgb[inside] * (1 - MASK_OPACITY) + colour * MASK_OPACITY)).max() <= 1
        assert (drawn[i.mask & edge & ~touched] == colour).all()  # the edge in the track's colour
        rect = rects[instances.index(i)]
        chip = drawn[rect.top:rect.bottom, rect.left:rect.right].reshape(-1, 3)
        # a solid chip in the track's colour with text in one ink: only its colour, and shades of it all darker
        # (black text) or all lighter (white text)
        plain = (chip == colour).all(axis=1)
        assert 0.5 < plain.mean() < 0.95
        assert (chip <= colour).all() or (chip >= colour).all()


def test_no_instances_leaves_the_image_unchanged():
    rgb = np.random.default_rng(2).integers(0, 256, (192, 320, 3), np.uint8)
    assert np.array_equal(render_overlay(rgb, []), rgb)
