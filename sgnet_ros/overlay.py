"""The debug image a person can read: masks filled semi-transparently in a colour per track id with their edge
drawn, boxes, and one "id class score" label per track on a solid chip in the track's colour.

Labels never cover one another: they are placed one by one, highest score first, at the first of a few candidate
spots around their box (above it, inside its top, below it, inside its bottom, beside it) that lies in the image
and overlaps no label placed before; when none is free, at the free spot nearest the first candidate, joined to
its box by a thin line. Text, lines and edges scale with the image height, so the same overlay reads at 320x192
and at 1280x720.
"""
from __future__ import annotations

import colorsys
from typing import NamedTuple, Sequence

import cv2
import numpy as np

from sgnet_model.instances import TrackedInstance

MASK_OPACITY = 0.5
GOLDEN_RATIO_CONJUGATE = 0.618033988749895  # consecutive ids get well separated hues
FONT = cv2.FONT_HERSHEY_SIMPLEX
FONT_CAP_PX = cv2.getTextSize("0", FONT, 1.0, 1)[0][1]  # height of a digit at font scale 1
TEXT_PX_PER_IMAGE_ROW = 1 / 36  # text height: 20 px at 720 rows ...
MIN_TEXT_PX = 9  # ... but never smaller than this
DARK_TEXT_LUMA = 140  # chips brighter than this (0-255) get black text, others white
MAX_DRAWN = 255  # masks filled per frame (the highest scores; one byte of rank each); every box and label is drawn


class Rect(NamedTuple):
    """Pixel rectangle; right and bottom are exclusive."""

    left: int
    top: int
    right: int
    bottom: int

    def overlaps(self, other: "Rect") -> bool:
        return (self.left < other.right and other.left < self.right
                and self.top < other.bottom and other.top < self.bottom)


class TextStyle(NamedTuple):
    scale: float  # cv2 font scale
    thickness: int  # of text strokes, px
    padding: int  # between the text and its chip's edge, px
    line: int  # thickness of boxes and mask edges, px


def track_colour(track_id: int) -> tuple[int, int, int]:
    """A bright RGB colour that stays the same for a track id in every frame (the overlay's and the markers')."""
    hue = (track_id * GOLDEN_RATIO_CONJUGATE) % 1.0
    return tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb(hue, 0.85, 1.0))


def label_text(track_id: int, class_name: str, score: float) -> str:
    """What the overlay's labels and the text markers say about an instance."""
    return f"{track_id} {class_name} {score:.2f}"


def text_style(height: int) -> TextStyle:
    """Text, strokes and padding for an image of ``height`` rows: 9 px digits at 192 rows, 20 px at 720."""
    text_px = max(MIN_TEXT_PX, round(height * TEXT_PX_PER_IMAGE_ROW))
    return TextStyle(scale=text_px / FONT_CAP_PX, thickness=max(1, round(text_px / 14)),
                     padding=max(2, round(text_px / 5)), line=max(1, round(text_px / 10)))


def label_size(text: str, style: TextStyle) -> tuple[int, int]:
    """(width, height) in px of the chip that holds ``text``."""
    (width, height), baseline = cv2.getTextSize(text, FONT, style.scale, style.thickness)
    return width + 2 * style.padding, height + baseline + 2 * style.padding


def _candidates(box: Rect, width: int, height: int) -> list[tuple[int, int]]:
    """(left, top) of a width x height label around the box, in order of preference."""
    return [(box.left, box.top - height), (box.left, box.top), (box.left, box.bottom),
            (box.left, box.bottom - height), (box.right, box.top), (box.left - width, box.top),
            (box.right - width, box.top - height), (box.right - width, box.bottom)]


def _nearest_free(preferred: Rect, placed: list[Rect], image_height: int, image_width: int) -> Rect:
    """The free spot in the image nearest ``preferred`` (``preferred`` itself when the image has none). The nearest
    free spot is the preferred one moved, on each axis, to its own coordinate, flush against a placed label's edge
    or against the image's border: only those combinations are tried."""
    width, height = preferred.right - preferred.left, preferred.bottom - preferred.top
    others = np.array(placed).reshape(-1, 4)  # (M, 4): left, top, right, bottom
    lefts = np.unique(np.clip(np.r_[preferred.left, 0, image_width - width, others[:, 2], others[:, 0] - width],
                              0, max(0, image_width - width)))
    tops = np.unique(np.clip(np.r_[preferred.top, 0, image_height - height, others[:, 3], others[:, 1] - height],
                             0, max(0, image_height - height)))
    left, top = (grid.ravel() for grid in np.meshgrid(lefts, tops))  # (P,) each
    overlapping = ((left[:, None] < others[:, 2]) & (others[:, 0] < left[:, None] + width)
                   & (top[:, None] < others[:, 3]) & (others[:, 1] < top[:, None] + height))  # (P, M)
    free = ~overlapping.any(axis=1)
    if not free.any():
        return preferred
    distance = np.where(free, (left - preferred.left) ** 2 + (top - preferred.top) ** 2, np.iinfo(np.int64).max)
    best = int(np.argmin(distance))
    return Rect(int(left[best]), int(top[best]), int(left[best]) + width, int(top[best]) + height)


def place_labels(boxes: Sequence[Rect], sizes: Sequence[tuple[int, int]], image_height: int,
                 image_width: int) -> list[Rect]:
    """One label rectangle per box (``sizes``: (width, height) each), placed in the order given (the caller puts the
    most important first): the first candidate spot around the box that is inside the image and overlaps no label
    placed before, else the nearest free spot. Labels overlap only when the image has no room left for them."""
    placed: list[Rect] = []
    for box, (width, height) in zip(boxes, sizes):
        spots = []
        for left, top in _candidates(box, width, height):  # moved into the image where they stick out
            left = min(max(left, 0), max(0, image_width - width))
            top = min(max(top, 0), max(0, image_height - height))
            spots.append(Rect(left, top, left + width, top + height))
        free = next((spot for spot in spots if not any(spot.overlaps(other) for other in placed)), None)
        placed.append(free if free is not None else _nearest_free(spots[0], placed, image_height, image_width))
    return placed


def pixel_box(box: Sequence[float]) -> Rect:
    """An instance's (x1, y1, x2, y2) float box as the pixel rectangle the overlay draws."""
    x1, y1, x2, y2 = (int(round(float(v))) for v in box)
    return Rect(x1, y1, x2, y2)


def _fill_masks(canvas: np.ndarray, ordered: Sequence[TrackedInstance], colours: Sequence[tuple[int, int, int]],
                thickness: int) -> None:
    """Blend each mask's colour into ``canvas`` (the later instance on top) and draw every mask's edge, in
    whole-image OpenCV passes: a rank image (0 background, instance i's pixels i + 1, the later one winning
    overlaps) coloured through a lookup table."""
    height, width = canvas.shape[:2]
    ranks = np.zeros((height, width), np.uint8)  # (H, W)
    for rank, instance in enumerate(ordered[-MAX_DRAWN:], start=1):  # ranks rise with the score: max = top
        cv2.max(ranks, instance.mask.view(np.uint8) * np.uint8(rank), dst=ranks)
    table = np.zeros((256, 1, 3), np.uint8)  # rank -> colour
    table[1:len(colours[-MAX_DRAWN:]) + 1, 0] = colours[-MAX_DRAWN:]
    kernel = np.ones((2 * thickness + 1, 2 * thickness + 1), np.uint8)
    highest = cv2.dilate(ranks, kernel)  # the top rank around each pixel
    edge = (highest != cv2.erode(ranks, kernel)).view(np.uint8)  # where a mask meets another mask or the background
    # Coloured by the top rank around each pixel: that is the pixel's own rank except on edges, which are painted
    # over in that colour (so an edge between two masks takes the colour of the one on top).
    colour_image = cv2.LUT(cv2.merge((highest, highest, highest)), table)  # (H, W, 3)
    blended = cv2.addWeighted(canvas, 1 - MASK_OPACITY, colour_image, MASK_OPACITY, 0.0)
    cv2.copyTo(blended, (ranks > 0).view(np.uint8), canvas)
    cv2.copyTo(colour_image, edge, canvas)


def render_overlay(rgb: np.ndarray, instances: Sequence[TrackedInstance]) -> np.ndarray:
    """(H, W, 3) uint8 RGB frame -> a copy with every instance drawn; the higher score is drawn on top and gets
    the first choice of label spot."""
    canvas = rgb.copy()
    height, width = canvas.shape[:2]
    style = text_style(height)
    ordered = sorted(instances, key=lambda instance: instance.score)  # lowest first: drawn first, underneath
    colours = [track_colour(instance.track_id) for instance in ordered]
    if ordered:
        _fill_masks(canvas, ordered, colours, style.line)
    boxes = [pixel_box(instance.box) for instance in ordered]
    for box, colour in zip(boxes, colours):
        cv2.rectangle(canvas, (box.left, box.top), (box.right, box.bottom), colour, style.line)
    texts = [label_text(instance.track_id, instance.class_name, instance.score) for instance in ordered]
    first = list(range(len(ordered)))[::-1]  # placement order: highest score first
    rects = place_labels([boxes[i] for i in first], [label_size(texts[i], style) for i in first], height, width)
    for i, rect in zip(first, rects):
        _draw_label(canvas, texts[i], rect, boxes[i], colours[i], style)
    return canvas


def _draw_label(canvas: np.ndarray, text: str, rect: Rect, box: Rect, colour: tuple[int, int, int],
                style: TextStyle) -> None:
    """A solid chip in the track's colour with dark (or light) text; a line to the box when it does not touch it."""
    centre = ((rect.left + rect.right) // 2, (rect.top + rect.bottom) // 2)
    on_box = (min(max(centre[0], box.left), box.right), min(max(centre[1], box.top), box.bottom))
    on_label = (min(max(on_box[0], rect.left), rect.right - 1), min(max(on_box[1], rect.top), rect.bottom - 1))
    if abs(on_box[0] - on_label[0]) + abs(on_box[1] - on_label[1]) > 2 * style.line:
        cv2.line(canvas, on_label, on_box, colour, 1, cv2.LINE_AA)
    cv2.rectangle(canvas, (rect.left, rect.top), (rect.right - 1, rect.bottom - 1), colour, cv2.FILLED)
    luma = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
    ink = (0, 0, 0) if luma > DARK_TEXT_LUMA else (255, 255, 255)
    (_, text_height), _ = cv2.getTextSize(text, FONT, style.scale, style.thickness)
    origin = (rect.left + style.padding, rect.top + style.padding + text_height)
    cv2.putText(canvas, text, origin, FONT, style.scale, ink, style.thickness, cv2.LINE_AA)
