"""The YouTube-VIS metric and the tracking figures on hand-worked cases, and the spatio-temporal IoU against
a plain numpy computation on dense masks."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from sgnet_model.data.ytvis import VideoResult, encode_mask, parse_annotations
from sgnet_model.data.ytvis_metric import evaluate_vis, frame_errors, spatiotemporal_iou, tracking_figures

H, W = 40, 60  # frame size of the small cases


def box(y0: int, x0: int, height: int, width: int, shape: tuple[int, int] = (H, W)) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[y0:y0 + height, x0:x0 + width] = True
    return mask


def track(*masks: np.ndarray | None) -> tuple:
    return tuple(None if m is None else encode_mask(m) for m in masks)


def dataset(videos: dict[int, list[tuple[int, tuple]]], shape: tuple[int, int] = (H, W), crowd: set[int] = frozenset(),
            categories: tuple[int, ...] = (1, 2)):
    """YouTube-VIS data of videos {video id: [(category id, per-frame RLEs)]}; annotation ids count from 1."""
    data = {"videos": [], "categories": [{"id": c, "name": f"class{c}"} for c in categories], "annotations": []}
    for video_id, objects in videos.items():
        length = len(objects[0][1])
        data["videos"].append({"id": video_id, "file_names": [f"{video_id}/{t}.jpg" for t in range(length)],
                               "height": shape[0], "width": shape[1], "length": length})
        for category_id, segmentations in objects:
            annotation_id = len(data["annotations"]) + 1
            data["annotations"].append({"id": annotation_id, "video_id": video_id, "category_id": category_id,
                                        "iscrowd": int(annotation_id in crowd),
                                        "segmentations": list(segmentations)})
    return parse_annotations(data, "test")


A = box(5, 5, 10, 10)  # 100 pixels
B = box(20, 30, 10, 20)  # 200 pixels, disjoint from A


def test_perfect_prediction_scores_one():
    truth = {1: [(1, track(A, A, None)), (2, track(B, B, B))], 2: [(2, track(None, A, A))]}
    data = dataset(truth)
    results = [VideoResult(v, c, 0.9, s) for v, objects in truth.items() for c, s in objects]
    metrics = evaluate_vis(data, results)
    for name in ("AP", "AP50", "AP75", "AP90", "APs", "AR1", "AR10", "AR100"):
        assert metrics[name] == pytest.approx(1.0), name
    # No object reaches 128^2 pixels: medium and large are undefined, which COCO reports as -1.
    assert metrics["APm"] == -1 and metrics["APl"] == -1


def test_track_missing_half_its_frames():
    truth = track(A, A, A, A, None, None)
    # Present and exact in frames 0 and 1, absent in 2 and 3: intersections 100 + 100, unions 100 in each of
    # the four frames where the object is: IoU = 200 / 400.
    half = track(A, A, None, None, None, None)
    assert spatiotemporal_iou([half], [truth])[0, 0] == 0.5
    # Shifted 5 columns in frames 0-1 (intersection 50, union 150 each), absent in frames 2-3 (union 100 each):
    # 100 / (150 + 150 + 100 + 100) = 0.2.
    shifted = track(box(5, 10, 10, 10), box(5, 10, 10, 10), None, None, None, None)
    assert spatiotemporal_iou([shifted], [truth])[0, 0] == pytest.approx(0.2)
    # Exact in frames 0-3 but also present in frames 4-5 where the object is not (100 each): 400 / 600.
    spurious = track(A, A, A, A, A, A)
    assert spatiotemporal_iou([spurious], [truth])[0, 0] == pytest.approx(2 / 3)

    # IoU 0.5 matches at the 0.50 threshold only: AP50 = 1, AP75 = 0, AP = 1 / 10 thresholds.
    metrics = evaluate_vis(dataset({1: [(1, truth)]}), [VideoResult(1, 1, 0.8, half)])
    assert metrics["AP50"] == pytest.approx(1.0)
    assert metrics["AP75"] == 0.0 and metrics["AP90"] == 0.0
    assert metrics["AP"] == pytest.approx(0.1)


def test_ap90_counts_a_match_at_iou_0_9_and_not_below():
    """Exact in 11 of the object's 12 frames: IoU 11 / 12 = 0.917 matches at the thresholds 0.50 ... 0.90 and
    not at 0.95 (AP 9 / 10); in 10 of 12 (IoU 0.833) it misses 0.85 and 0.90 too."""
    truth = track(*[A] * 12)
    metrics = evaluate_vis(dataset({1: [(1, truth)]}), [VideoResult(1, 1, 0.8, track(*[A] * 11, None))])
    assert (metrics["AP75"], metrics["AP90"], metrics["AP"]) == pytest.approx((1.0, 1.0, 0.9))
    metrics = evaluate_vis(dataset({1: [(1, truth)]}), [VideoResult(1, 1, 0.8, track(*[A] * 10, None, None))])
    assert (metrics["AP75"], metrics["AP90"], metrics["AP"]) == pytest.approx((1.0, 0.0, 0.7))


def test_wrong_category_does_not_match():
    truth = track(A, A)
    metrics = evaluate_vis(dataset({1: [(1, truth)]}), [VideoResult(1, 2, 0.9, truth)])
    assert metrics["AP"] == 0.0 and metrics["AP50"] == 0.0 and metrics["AR10"] == 0.0


def test_high_scored_false_positive_lowers_ap_by_the_hand_computed_amount():
    # Two objects of one category; two exact predictions and a false positive (a disjoint mask).
    far = box(30, 0, 5, 5)
    data = dataset({1: [(1, track(A, A)), (1, track(B, B))]})
    first, second, wrong = track(A, A), track(B, B), track(far, far)

    fp_last = [VideoResult(1, 1, 0.9, first), VideoResult(1, 1, 0.7, second), VideoResult(1, 1, 0.6, wrong)]
    assert evaluate_vis(data, fp_last)["AP"] == pytest.approx(1.0)

    # Scores 0.9 (hit), 0.8 (false positive), 0.7 (hit): recall 0.5, 0.5, 1.0 and precision 1, 1/2, 2/3.
    # Interpolated precision (the best at this recall or beyond): 1, 2/3, 2/3. Of the 101 recall points
    # 0.00..1.00, the 51 up to 0.50 read 1 and the 50 above read 2/3; the same at every IoU threshold.
    fp_second = [VideoResult(1, 1, 0.9, first), VideoResult(1, 1, 0.8, wrong), VideoResult(1, 1, 0.7, second)]
    expected = (51 * 1.0 + 50 * 2 / 3) / 101
    metrics = evaluate_vis(data, fp_second)
    assert metrics["AP"] == pytest.approx(expected)
    assert 1.0 - metrics["AP"] == pytest.approx(50 / 3 / 101)
    assert metrics["AR10"] == pytest.approx(1.0)  # recall does not care about order


def test_max_detections_per_video():
    # The false positive outranks the hit: with one prediction per video nothing is found.
    far = box(30, 0, 5, 5)
    data = dataset({1: [(1, track(A, A))], 2: [(1, track(B, B))]})
    results = [VideoResult(1, 1, 0.9, track(far, far)), VideoResult(1, 1, 0.8, track(A, A)),
               VideoResult(2, 1, 0.7, track(B, B))]
    metrics = evaluate_vis(data, results)
    assert metrics["AR1"] == pytest.approx(0.5)  # video 2's object only
    assert metrics["AR10"] == pytest.approx(1.0)
    # AP (100 per video): scores 0.9 miss, 0.8 hit, 0.7 hit: recall 0, 1/2, 1 with precision 0, 1/2, 2/3;
    # interpolated precision 2/3 at every recall point.
    assert metrics["AP"] == pytest.approx(2 / 3)


def test_area_ranges_use_the_mean_area_over_present_frames():
    shape = (320, 320)
    small = box(0, 0, 10, 10, shape)  # 100 pixels
    large = box(10, 10, 300, 300, shape)  # 90000 > 256^2
    medium = box(0, 0, 150, 150, shape)  # 22500: present in 2 of 4 frames, mean over all 4 would be small
    data = dataset({1: [(1, track(small, small, small, small)), (1, track(None, None, large, large))],
                    2: [(2, track(medium, medium, None, None))]}, shape)
    results = [VideoResult(1, 1, 0.9, track(small, small, small, small)),
               VideoResult(2, 2, 0.9, track(medium, medium, None, None))]
    metrics = evaluate_vis(data, results)
    assert metrics["APs"] == pytest.approx(1.0)  # the small object found
    assert metrics["APm"] == pytest.approx(1.0)  # the medium one found, and it is medium
    assert metrics["APl"] == 0.0  # the large object missed
    # All areas, category 1: one of two found at precision 1 (recall points 0..0.50: 51 of 101);
    # category 2: AP 1. Mean over the two categories.
    assert metrics["AP"] == pytest.approx((51 / 101 + 1.0) / 2)


def test_crowd_ground_truth_is_neither_hit_nor_miss():
    region = box(0, 0, 20, 20)  # 400 pixels, a crowd
    inside = box(2, 2, 10, 10)  # 100 pixels within it
    # Crowd IoU = intersection / prediction area: 100 / 100 in frame 0; frame 1 has only the crowd (the
    # prediction's area there is 0 so nothing is added).
    assert spatiotemporal_iou([track(inside, None)], [track(region, region)], [True])[0, 0] == 1.0
    person = box(25, 30, 10, 10)
    data = dataset({1: [(1, track(person, person)), (1, track(region, region))]}, crowd={2})
    results = [VideoResult(1, 1, 0.9, track(inside, inside)), VideoResult(1, 1, 0.5, track(person, person))]
    metrics = evaluate_vis(data, results)
    # Without the crowd rule the 0.9 prediction would be a false positive (AP 0.5) and the crowd a miss.
    assert metrics["AP"] == pytest.approx(1.0)
    assert metrics["AR10"] == pytest.approx(1.0)


def test_only_the_named_videos_count():
    data = dataset({1: [(1, track(A, A))], 2: [(1, track(B, B))]})
    assert evaluate_vis(data, [VideoResult(1, 1, 0.9, track(A, A))], video_ids=[1])["AP"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"video ids \[3\]"):
        evaluate_vis(data, [], video_ids=[3])


def test_spatiotemporal_iou_agrees_with_dense_numpy():
    rng = np.random.default_rng(7)
    frames, shape = 6, (24, 32)

    def random_track() -> list[np.ndarray | None]:
        masks = []
        for _ in range(frames):
            if rng.random() < 0.25:
                masks.append(None)
            else:
                mask = np.zeros(shape, bool)
                y, x = rng.integers(0, 20), rng.integers(0, 28)
                mask[y:y + rng.integers(2, 14), x:x + rng.integers(2, 16)] = True
                mask ^= rng.random(shape) < 0.05  # ragged edges and holes
                masks.append(mask)
        return masks

    detections = [random_track() for _ in range(5)]
    truths = [random_track() for _ in range(4)]
    crowd = [False, True, False, False]

    def dense(masks):  # (T, h, w) with absent frames as empty masks
        return np.stack([np.zeros(shape, bool) if m is None else m for m in masks])

    expected = np.zeros((5, 4))
    for i, d in enumerate(detections):
        for j, g in enumerate(truths):
            d_, g_ = dense(d), dense(g)
            inter = np.logical_and(d_, g_).sum()
            denominator = d_.sum() if crowd[j] else np.logical_or(d_, g_).sum()
            expected[i, j] = inter / denominator if denominator else 0.0
    got = spatiotemporal_iou([track(*d) for d in detections], [track(*g) for g in truths], crowd)
    assert got.shape == (5, 4)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert (expected > 0).sum() >= 8  # the random tracks do overlap


def _tracking_case(truths, tracks, with_hota=False):
    data = dataset({1: [(1, t) for t in truths]})
    return tracking_figures(data, [VideoResult(1, 1, 0.9, t) for t in tracks], with_hota=with_hota)


LEFT, RIGHT = box(5, 5, 10, 10), box(5, 40, 10, 10)


def test_tracking_figures_fragmented_track():
    # Object B is followed by track 2 in frames 0-1 and track 3 in frames 2-4: one ID switch.
    a, b = track(*[LEFT] * 5), track(*[RIGHT] * 5)
    t1 = track(*[LEFT] * 5)
    t2 = track(RIGHT, RIGHT, None, None, None)
    t3 = track(None, None, RIGHT, RIGHT, RIGHT)
    figures = _tracking_case([a, b], [t1, t2, t3])
    assert figures["id_switches"] == 1
    assert figures["mota"] == pytest.approx(1 - 1 / 10)  # no miss, no false positive, 10 object masks
    # IDF1: A <-> t1 for 5 frames, B <-> t3 for 3 (better than t2's 2): 2 * 8 / (10 + 10).
    assert figures["idf1"] == pytest.approx(0.8)


def test_tracking_figures_swapped_identities():
    a, b = track(*[LEFT] * 5), track(*[RIGHT] * 5)
    t1 = track(LEFT, LEFT, LEFT, RIGHT, RIGHT)
    t2 = track(RIGHT, RIGHT, RIGHT, LEFT, LEFT)
    figures = _tracking_case([a, b], [t1, t2])
    assert figures["id_switches"] == 2  # both objects change track at frame 3
    assert figures["mota"] == pytest.approx(1 - 2 / 10)
    assert figures["idf1"] == pytest.approx(2 * (3 + 3) / 20)


def test_tracking_keeps_a_valid_correspondence_misses_and_false_positives():
    shifted = box(5, 7, 10, 10)  # IoU with LEFT: 80 / 120
    a = track(LEFT, LEFT, LEFT)
    t1 = track(shifted, shifted, None)  # follows A in frames 0-1, then lost: a miss in frame 2
    t2 = track(None, LEFT, None)  # a better match in frame 1, but t1's correspondence still holds
    t3 = track(None, None, RIGHT)  # nothing there: a false positive
    figures = _tracking_case([a], [t1, t2, t3])
    assert figures["id_switches"] == 0
    # 3 object masks; t2 in frame 1 and t3 in frame 2 are false positives, frame 2 a miss: 1 - 3 / 3.
    assert figures["mota"] == pytest.approx(0.0)
    # IDTP: A <-> t1 for 2 frames (t2 only 1); masks: 3 of the object, 4 predicted.
    assert figures["idf1"] == pytest.approx(2 * 2 / (3 + 4))


def test_frame_errors_place_each_miss_false_positive_and_switch_in_its_frame():
    # the case above: frame 1 has t2's false positive, frame 2 t3's and A's miss
    shifted = box(5, 7, 10, 10)
    data = dataset({1: [(1, track(LEFT, LEFT, LEFT))]})
    tracks = [track(shifted, shifted, None), track(None, LEFT, None), track(None, None, RIGHT)]
    assert frame_errors(data, [VideoResult(1, 1, 0.9, t) for t in tracks])[1].tolist() == [0, 1, 2]
    # the fragmented track: B changes from t2 to t3 at frame 2, one switch there and nothing else
    data = dataset({1: [(1, track(*[LEFT] * 5)), (1, track(*[RIGHT] * 5))]})
    tracks = [track(*[LEFT] * 5), track(RIGHT, RIGHT, None, None, None), track(None, None, RIGHT, RIGHT, RIGHT)]
    assert frame_errors(data, [VideoResult(1, 1, 0.9, t) for t in tracks])[1].tolist() == [0, 0, 1, 0, 0]


def test_hota_by_hand_association_and_localisation():
    """HOTA = sqrt(DetA * AssA) at each of the 19 thresholds 0.05:0.05:0.95, averaged (Luiten et al. 2021),
    worked out by hand. AssA of a true positive (g, h): TPA / (TPA + FNA + FPA), averaged over true positives."""
    # One object, its track broken in two halves, masks exact: DetA 1; each true positive's pair shares 2 of the
    # object's 4 frames and neither track is elsewhere: AssA 2 / (2 + 2 + 0) = 0.5 at every threshold.
    whole = track(*[LEFT] * 4)
    broken = _tracking_case([whole], [track(LEFT, LEFT, None, None), track(None, None, LEFT, LEFT)], with_hota=True)
    assert (broken["deta"], broken["assa"], broken["hota"]) == pytest.approx((1.0, 0.5, np.sqrt(0.5)))
    # Two objects whose tracks swap after frame 2 (5 frames): pairs (A, t1) and (B, t2) hold 3 frames each,
    # 3 / (5 + 5 - 3) = 3/7; (A, t2) and (B, t1) 2 frames, 2 / (5 + 5 - 2) = 1/4; over the 10 true positives
    # AssA = (2 * 3 * 3/7 + 2 * 2 * 1/4) / 10 = 5/14.
    a, b = track(*[LEFT] * 5), track(*[RIGHT] * 5)
    swapped = _tracking_case([a, b], [track(LEFT, LEFT, LEFT, RIGHT, RIGHT), track(RIGHT, RIGHT, RIGHT, LEFT, LEFT)],
                             with_hota=True)
    assert (swapped["deta"], swapped["assa"], swapped["hota"]) == pytest.approx((1.0, 5 / 14, np.sqrt(5 / 14)))
    # One object followed by one track at mask IoU 80/120 = 0.667 in every frame: a match at the 13 thresholds
    # 0.05..0.65 (HOTA 1 there), none above (HOTA 0): each part's mean is 13/19.
    shifted = box(5, 7, 10, 10)
    located = _tracking_case([track(LEFT, LEFT, LEFT)], [track(shifted, shifted, shifted)], with_hota=True)
    assert (located["deta"], located["assa"], located["hota"]) == pytest.approx((13 / 19,) * 3)
    assert "hota" not in _tracking_case([whole], [whole])  # only when asked: the calibration's loop skips it


def test_without_trackeval_the_other_figures_come_with_a_warning_naming_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "trackeval.metrics", None)  # import fails as where it is not installed
    whole = track(*[LEFT] * 4)
    with pytest.warns(UserWarning, match=r"pip install --no-deps trackeval==1\.3\.0 tabulate"):
        figures = _tracking_case([whole], [whole], with_hota=True)
    assert "hota" not in figures and figures["idf1"] == 1.0


def test_ap_per_class_by_hand_and_absent_classes_are_none():
    # Two videos of three frames, categories 1..3; category 3 has no ground truth.
    data = dataset({1: [(1, track(A, A, A))], 2: [(2, track(B, B, B))]}, categories=(1, 2, 3))
    results = [
        # class1: a false positive in video 2 outranks the exact hit in video 1: recall 0 then 1 at precision
        # 0 then 1/2; interpolated precision 1/2 at all 101 recall points and every IoU threshold: AP 1/2.
        VideoResult(2, 1, 0.95, track(A, A, A)),
        VideoResult(1, 1, 0.9, track(A, A, A)),
        # class2: exact in frames 0-1, absent in frame 2: IoU 200 / 300 = 0.667, a hit at the thresholds
        # 0.50, 0.55, 0.60, 0.65 (4 of 10) with precision 1, a miss above: AP 4/10.
        VideoResult(2, 2, 0.8, track(B, B, None)),
        # class3: no ground truth anywhere, so no AP, whatever it predicts.
        VideoResult(1, 3, 0.7, track(B, B, B)),
    ]
    metrics = evaluate_vis(data, results)
    assert metrics["AP_per_class"] == {"class1": pytest.approx(0.5), "class2": pytest.approx(0.4), "class3": None}
    # COCO's AP is the mean over the classes that have ground truth.
    assert metrics["AP"] == pytest.approx((0.5 + 0.4) / 2)


def test_ap_per_class_counts_only_the_chosen_videos():
    data = dataset({1: [(1, track(A, A))], 2: [(2, track(B, B))]})
    metrics = evaluate_vis(data, [VideoResult(1, 1, 0.9, track(A, A)), VideoResult(2, 2, 0.9, track(B, B))],
                           video_ids=[1])
    assert metrics["AP_per_class"] == {"class1": pytest.approx(1.0), "class2": None}


SHIFT2 = box(5, 7, 10, 10)  # LEFT moved 2 columns: IoU 80 / 120 = 2/3
SHIFT5 = box(5, 45, 10, 10)  # RIGHT moved 5 columns: IoU 50 / 150 = 1/3


def test_mask_iou_of_matched_instances_by_hand():
    data = dataset({
        # video 1: object a tracked by t1 (exact, then 2 px off, then lost); object c never found.
        1: [(1, track(LEFT, LEFT, LEFT)), (1, track(B, B, B))],
        # video 2: object b tracked by t2 (5 px off, then exact twice); t3 overlaps b in frame 0 only (IoU 1),
        # so IDF1 pairs b with t2 (2 matching frames against 1).
        2: [(1, track(RIGHT, RIGHT, RIGHT))],
    })
    results = [VideoResult(1, 1, 0.9, track(LEFT, SHIFT2, None)),
               VideoResult(2, 1, 0.9, track(SHIFT5, RIGHT, RIGHT)),
               VideoResult(2, 1, 0.8, track(RIGHT, None, None))]
    figures = tracking_figures(data, results)
    # The matched object-frames: a/t1 in frames 0, 1 (IoU 1, 2/3); b/t2 in frames 0, 1, 2 (1/3, 1, 1).
    ious = sorted([1.0, 2 / 3, 1 / 3, 1.0, 1.0])
    assert figures["mask_iou_frames"] == 5
    assert figures["mask_iou_mean"] == pytest.approx(sum(ious) / 5)  # 4 / 5
    # 10th percentile, linear: position 0.1 * (5 - 1) = 0.4 between the smallest two, 1/3 and 2/3.
    assert figures["mask_iou_p10"] == pytest.approx(1 / 3 + 0.4 * (2 / 3 - 1 / 3))


def test_mask_iou_follows_the_idf1_pairing_through_a_swap():
    # t1 follows LEFT for 3 frames, then RIGHT: IDF1 pairs a with t1 and b with t2, and in frames 3-4 each
    # track's mask misses its object entirely (IoU 0).
    a, b = track(*[LEFT] * 5), track(*[RIGHT] * 5)
    t1 = track(LEFT, LEFT, LEFT, RIGHT, RIGHT)
    t2 = track(RIGHT, RIGHT, RIGHT, LEFT, LEFT)
    figures = _tracking_case([a, b], [t1, t2])
    assert figures["mask_iou_frames"] == 10
    assert figures["mask_iou_mean"] == pytest.approx(6 / 10)
    assert figures["mask_iou_p10"] == 0.0


def test_mask_iou_without_matches_is_none():
    figures = _tracking_case([track(LEFT, LEFT)], [track(RIGHT, RIGHT)])  # never overlaps: no pair
    assert (figures["mask_iou_mean"], figures["mask_iou_p10"], figures["mask_iou_frames"]) == (None, None, 0)
