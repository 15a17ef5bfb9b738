"""The YouTube-VIS metric (video-level mask AP/AR) and tracking figures (IDF1, ID switches, MOTA, HOTA).

AP and AR follow the YouTube-VIS protocol (Yang et al., "Video Instance Segmentation", ICCV 2019):

- a prediction is one track over a whole video; the IoU of a predicted track d and a ground-truth track g is
  ``sum_t |d_t & g_t| / sum_t |d_t | g_t|``, summed over the video's frames, so a frame where only one side
  has a mask adds that mask's area to the union (a missed or spurious frame lowers the IoU);
- predictions and ground truth are matched per video and category, greedily by descending score, at the
  IoU thresholds 0.50:0.05:0.95; precision is interpolated at 101 recall points; at most 1, 10 and 100
  predictions per video (AR1, AR10, AR100; counted per video and category, as COCOeval counts per image);
- area ranges use a track's mean mask area over the frames where it is present: small < 128^2,
  medium 128^2..256^2, large > 256^2 (boundaries belong to both neighbours, as in COCO);
- crowd ground truth (``iscrowd``) is handled as COCO does: its IoU with a prediction is the intersection over
  the prediction's area, a prediction matched to it is neither a true nor a false positive, and it is never
  counted as missed.

Implementation: the matching, the precision/recall accumulation and the summary are pycocotools' COCOeval,
unchanged, with videos in the place of images; only its IoU computation is replaced by the spatio-temporal
IoU above (:func:`spatiotemporal_iou`) and the area ranges are set to the protocol's. Rewriting COCO's
matching and interpolation would add a second copy of well-tested logic; subclassing keeps the protocol's
numbers COCO's by construction. A value of -1 means "undefined" (no ground truth in that area range), as in
COCO. AP per class is COCO's AP restricted to one category (its slice of COCOeval's precision array, all areas,
100 predictions per video); a class with no ground truth in the chosen videos has no AP (None), not 0.

Tracking figures are computed per frame from mask IoU >= 0.5 matches, class-agnostic (they measure identity,
classification is AP's business), with crowd ground truth left out:

- ID switches and MOTA by CLEAR MOT (Bernardin and Stiefelhagen, 2008): a correspondence of the previous
  frame is kept while its IoU stays >= 0.5, the rest is an optimal assignment; a ground-truth object matched
  to another track than the one it was last matched to is an ID switch;
  ``MOTA = 1 - (misses + false positives + ID switches) / ground-truth masks``;
- IDF1 (Ristani et al., 2016): one global one-to-one assignment of ground-truth tracks to predicted tracks per
  video maximising the frames where the pair matches (IDTP); ``IDF1 = 2 IDTP / (ground-truth masks +
  predicted masks)``;
- mask IoU of matched instances: the ground-truth tracks and predicted tracks paired by IDF1's assignment (pairs
  that never match left out), the mask IoU of each pair in every frame where both have a mask; its mean and 10th
  percentile (linear interpolation, numpy's default) over those object-frames. A predicted track that moves to
  another object while keeping its pairing lowers it, as it lowers IDF1.

- HOTA, DetA and AssA (Luiten et al., "HOTA: A Higher Order Metric for Evaluating Multi-Object Tracking", IJCV
  2021), on request (``with_hota``): TrackEval's own implementation (its ``HOTA`` metric, fed the same
  class-agnostic per-frame mask IoUs as similarity, sequences combined as TrackEval combines them), each averaged
  over TrackEval's 19 localisation thresholds 0.05:0.05:0.95. HOTA is the geometric mean of detection accuracy
  (DetA) and association accuracy (AssA): a tracker that finds every object but changes IDs scores well on DetA
  and badly on AssA, where IDF1 mixes the two.

These are written here on ``scipy.optimize.linear_sum_assignment`` instead of taking ``motmetrics``: the
definitions fit in a few lines, the masks' IoU comes from pycocotools either way, and motmetrics would add
pandas and a per-frame accumulator API to the dependencies for three numbers.
"""
from __future__ import annotations

import contextlib
import io
import warnings
from typing import Any, Sequence

import numpy as np
import pycocotools.mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from scipy.optimize import linear_sum_assignment

from sgnet_model.data.ytvis import RLE, VideoResult, YTVISData

SMALL_AREA = 128 ** 2
LARGE_AREA = 256 ** 2
MATCH_IOU = 0.5  # per-frame mask IoU that makes a tracking match
METRIC_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100")
TRACKING_NAMES = ("idf1", "id_switches", "mota", "mask_iou_mean", "mask_iou_p10", "mask_iou_frames")
HOTA_NAMES = {"hota": "HOTA", "deta": "DetA", "assa": "AssA"}  # tracking_figures(..., with_hota=True): printed

Track = Sequence[RLE | None]  # one compressed RLE or None per frame


def spatiotemporal_iou(detections: Sequence[Track], ground_truths: Sequence[Track],
                       iscrowd: Sequence[bool] | None = None) -> np.ndarray:
    """(D, G) IoU of every predicted track with every ground-truth track of one video.

    IoU = sum over frames of intersections / sum over frames of unions. The union of a pair over the video is
    (area of d over all frames) + (area of g over all frames) - (intersection over all frames), which counts
    frames where only one side is present. For a crowd ground truth the denominator is d's area alone.
    """
    num_frames = len(ground_truths[0]) if ground_truths else len(detections[0]) if detections else 0
    if any(len(track) != num_frames for track in (*detections, *ground_truths)):
        raise ValueError("every track of a video must have one entry per frame")
    crowd = np.zeros(len(ground_truths), bool) if iscrowd is None else np.asarray(iscrowd, bool)
    intersection = np.zeros((len(detections), len(ground_truths)))  # (D, G) pixels over the video
    detection_area = np.zeros(len(detections))  # (D,)
    truth_area = np.zeros(len(ground_truths))  # (G,)
    for frame in range(num_frames):
        d_index, d_rles, d_area = _present(detections, frame)
        g_index, g_rles, g_area = _present(ground_truths, frame)
        detection_area[d_index] += d_area
        truth_area[g_index] += g_area
        if d_rles and g_rles:
            # pycocotools gives the frame's IoU; with both areas known, the intersection is
            # IoU * (a_d + a_g) / (1 + IoU), an integer up to rounding.
            iou = np.asarray(mask_utils.iou(d_rles, g_rles, [0] * len(g_rles))).reshape(len(d_rles), len(g_rles))
            pixels = np.rint(iou * (d_area[:, None] + g_area[None, :]) / (1.0 + iou))
            intersection[np.ix_(d_index, g_index)] += pixels
    union = detection_area[:, None] + truth_area[None, :] - intersection
    union[:, crowd] = detection_area[:, None]
    return np.divide(intersection, union, out=np.zeros_like(intersection), where=union > 0)


def _present(tracks: Sequence[Track], frame: int) -> tuple[np.ndarray, list[RLE], np.ndarray]:
    """Indices, RLEs and areas of the tracks that have a mask in ``frame``."""
    index = [i for i, track in enumerate(tracks) if track[frame] is not None]
    rles = [tracks[i][frame] for i in index]
    area = np.asarray(mask_utils.area(rles), np.float64) if rles else np.zeros(0)
    return np.asarray(index, np.int64), rles, area


def mean_present_area(track: Track) -> float:
    """Mean mask area over the frames where the track has a mask (0 if it never has one)."""
    rles = [rle for rle in track if rle is not None]
    return float(np.mean(mask_utils.area(rles))) if rles else 0.0


class _VideoCOCOeval(COCOeval):
    """COCOeval with videos as images and the spatio-temporal IoU of whole tracks."""

    def computeIoU(self, imgId: int, catId: int) -> np.ndarray | list:  # noqa: N802 - COCOeval's name
        truths, detections = self._gts[imgId, catId], self._dts[imgId, catId]
        if not truths and not detections:
            return []
        # The same order and cut as COCOeval.evaluateImg, which indexes these rows.
        order = np.argsort([-d["score"] for d in detections], kind="mergesort")[: self.params.maxDets[-1]]
        return spatiotemporal_iou([detections[i]["segmentations"] for i in order],
                                  [g["segmentations"] for g in truths], [bool(g["iscrowd"]) for g in truths])


def evaluate_vis(annotations: YTVISData, results: Sequence[VideoResult],
                 video_ids: Sequence[int] | None = None) -> dict[str, Any]:
    """AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100 and AP90 of ``results`` on the videos ``video_ids`` (default:
    every video of ``annotations``), and ``AP_per_class`` ({class name: AP, or None for a class without ground
    truth in these videos}). Results on other videos are left out."""
    videos = list(annotations.videos) if video_ids is None else list(video_ids)
    unknown = sorted(set(videos) - set(annotations.videos))
    if unknown:
        raise ValueError(f"video ids {unknown[:5]} are not in {annotations.source}")
    chosen = set(videos)
    images = [{"id": v} for v in videos]
    categories = [{"id": c.id, "name": c.name} for c in annotations.categories]
    truths = [_coco_entry(i, a.video_id, a.category_id, a.segmentations, iscrowd=int(a.iscrowd))
              for i, a in enumerate((a for v in videos for a in annotations.annotations[v]), start=1)]
    detections = [_coco_entry(i, r.video_id, r.category_id, r.segmentations, score=r.score)
                  for i, r in enumerate((r for r in results if r.video_id in chosen), start=1)]
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools reports progress on stdout
        evaluator = _VideoCOCOeval(_coco(images, categories, truths), _coco(images, categories, detections),
                                   iouType="bbox")  # "bbox" only keeps COCOeval from rasterising polygons
        evaluator.params.imgIds = videos
        evaluator.params.areaRng = [[0, 1e10], [0, SMALL_AREA], [SMALL_AREA, LARGE_AREA], [LARGE_AREA, 1e10]]
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    # COCOeval.stats: AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl.
    metrics: dict[str, Any] = {name: float(value) for name, value in zip(METRIC_NAMES, evaluator.stats)}
    # AP at IoU 0.9 alone, as COCOeval's summary computes AP75 at 0.75: the masks a robot can trust
    iou_090 = int(np.flatnonzero(np.isclose(evaluator.params.iouThrs, 0.9))[0])
    metrics["AP90"] = _mean_defined(evaluator.eval["precision"][iou_090, :, :, 0, -1], -1.0)
    metrics["AP_per_class"] = _per_class_ap(evaluator, {c.id: c.name for c in annotations.categories})
    return metrics


def _mean_defined(values: np.ndarray, undefined: float | None) -> float | None:
    """The mean of COCOeval's precision ``values`` where defined (-1 marks undefined), ``undefined`` if none is."""
    defined = values[values > -1]
    return float(defined.mean()) if defined.size else undefined


def _per_class_ap(evaluator: COCOeval, names: dict[int, str]) -> dict[str, float | None]:
    """Each category's AP as COCOeval's summary computes AP, on its own slice of the precision array: the mean
    over IoU thresholds and recall points, all areas, the most predictions per video. A category without ground
    truth has -1 throughout its slice (COCOeval skips it): None."""
    precision = evaluator.eval["precision"]  # (IoU thresholds, recall points, categories, areas, max detections)
    return {names[category_id]: _mean_defined(precision[:, :, index, 0, -1], None)
            for index, category_id in enumerate(evaluator.params.catIds)}


def _coco_entry(entry_id: int, video_id: int, category_id: int, segmentations: Track,
                **extra: Any) -> dict[str, Any]:
    return {"id": entry_id, "image_id": video_id, "category_id": category_id, "segmentations": segmentations,
            "area": mean_present_area(segmentations), "iscrowd": 0, **extra}


def _coco(images: list[dict], categories: list[dict], annotations: list[dict]) -> COCO:
    coco = COCO()
    coco.dataset = {"images": images, "categories": categories, "annotations": annotations}
    coco.createIndex()
    return coco


def tracking_figures(annotations: YTVISData, results: Sequence[VideoResult], video_ids: Sequence[int] | None = None,
                     iou_threshold: float = MATCH_IOU, with_hota: bool = False) -> dict[str, float]:
    """IDF1, ID switches and MOTA of predicted tracks (one :class:`VideoResult` per track) against the ground
    truth, on ``video_ids`` (default: every video of ``annotations``), and the mask IoU of matched instances:
    ``mask_iou_mean``, ``mask_iou_p10`` (None without matched object-frames) and ``mask_iou_frames`` (how many).
    ``with_hota``: also ``hota``, ``deta`` and ``assa`` (TrackEval; left out of the start-score calibration's many
    calls). See the module docstring."""
    videos = list(annotations.videos) if video_ids is None else list(video_ids)
    id_true_positives = switches = misses = false_positives = truth_masks = predicted_masks = 0
    matched_ious: list[float] = []
    hota_sequences: list[dict[str, Any]] = []
    for video_id in videos:
        truths, tracks = _video_tracks(annotations, results, video_id)
        video = _track_video(truths, tracks, annotations.videos[video_id].length, iou_threshold)
        id_true_positives += video["idtp"]
        switches += video["switches"]
        misses += video["misses"]
        false_positives += video["false_positives"]
        truth_masks += video["truth_masks"]
        predicted_masks += video["predicted_masks"]
        matched_ious.extend(video["matched_ious"])
        if with_hota:
            hota_sequences.append(_hota_sequence(video["frame_ious"], len(truths), len(tracks)))
    total = truth_masks + predicted_masks
    return {**(_hota(hota_sequences) if with_hota else {}),
            "idf1": 2.0 * id_true_positives / total if total else 1.0,
            "id_switches": switches,
            "mota": 1.0 - (misses + false_positives + switches) / truth_masks if truth_masks else float("nan"),
            "mask_iou_mean": float(np.mean(matched_ious)) if matched_ious else None,
            "mask_iou_p10": float(np.percentile(matched_ious, 10)) if matched_ious else None,
            "mask_iou_frames": len(matched_ious)}


def frame_errors(annotations: YTVISData, results: Sequence[VideoResult], video_ids: Sequence[int] | None = None,
                 iou_threshold: float = MATCH_IOU) -> dict[int, np.ndarray]:
    """Per video, the (T,) errors of each frame as ``tracking_figures`` counts them: objects missed, predicted
    instances matching no object, and ID switches (CLEAR MOT's per-frame terms)."""
    errors = {}
    for video_id in list(annotations.videos) if video_ids is None else video_ids:
        truths, tracks = _video_tracks(annotations, results, video_id)
        errors[video_id] = _track_video(truths, tracks, annotations.videos[video_id].length,
                                        iou_threshold)["frame_errors"]
    return errors


def _video_tracks(annotations: YTVISData, results: Sequence[VideoResult],
                  video_id: int) -> tuple[list[Track], list[Track]]:
    """The video's ground-truth tracks (crowd left out) and predicted tracks, each one entry per frame."""
    truths = [a.segmentations for a in annotations.annotations[video_id] if not a.iscrowd]
    tracks = [r.segmentations for r in results if r.video_id == video_id]
    length = annotations.videos[video_id].length
    if any(len(t) != length for t in tracks):
        raise ValueError(f"video {video_id}: a result's segmentations are not one per frame ({length})")
    return truths, tracks


def _track_video(truths: Sequence[Track], tracks: Sequence[Track], num_frames: int,
                 iou_threshold: float) -> dict[str, Any]:
    frame_matches = np.zeros((len(truths), len(tracks)), np.int64)  # (G, H) frames where the pair matches
    frame_ious: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # per frame: G_t indices, H_t indices, IoU
    last_track: dict[int, int] = {}  # ground truth -> track it was last matched to
    previous: dict[int, int] = {}  # ground truth -> track, in the previous frame
    counts = dict(switches=0, misses=0, false_positives=0, truth_masks=0, predicted_masks=0)
    errors = np.zeros(num_frames, np.int64)  # (T,) misses + false positives + switches of each frame
    for frame in range(num_frames):
        g_index, g_rles, _ = _present(truths, frame)
        h_index, h_rles, _ = _present(tracks, frame)
        counts["truth_masks"] += len(g_index)
        counts["predicted_masks"] += len(h_index)
        iou = np.zeros((len(g_index), len(h_index)))  # (G_t, H_t)
        if g_rles and h_rles:
            iou = np.asarray(mask_utils.iou(g_rles, h_rles, [0] * len(h_rles))).reshape(iou.shape)
        matching = iou >= iou_threshold
        frame_matches[np.ix_(g_index, h_index)] += matching
        frame_ious.append((g_index, h_index, iou))
        # CLEAR MOT: keep last frame's correspondences that still hold, assign the rest optimally.
        g_row = {g: row for row, g in enumerate(g_index.tolist())}
        h_col = {h: col for col, h in enumerate(h_index.tolist())}
        matches = {g: h for g, h in previous.items() if g in g_row and h in h_col and matching[g_row[g], h_col[h]]}
        free_rows = [r for r, g in enumerate(g_index.tolist()) if g not in matches]
        free_cols = [c for c, h in enumerate(h_index.tolist()) if h not in matches.values()]
        if free_rows and free_cols:
            sub = iou[np.ix_(free_rows, free_cols)]
            # Pairs under the threshold cost more than any number of valid pairs can save: most matches first.
            cost = np.where(sub >= iou_threshold, 1.0 - sub, len(free_rows) + len(free_cols) + 1.0)
            for r, c in zip(*linear_sum_assignment(cost)):
                if sub[r, c] >= iou_threshold:
                    g, h = int(g_index[free_rows[r]]), int(h_index[free_cols[c]])
                    if last_track.get(g, h) != h:
                        counts["switches"] += 1
                        errors[frame] += 1
                    matches[g] = h
        last_track.update(matches)
        previous = matches
        counts["misses"] += len(g_index) - len(matches)
        counts["false_positives"] += len(h_index) - len(matches)
        errors[frame] += len(g_index) + len(h_index) - 2 * len(matches)
    rows, cols = linear_sum_assignment(frame_matches, maximize=True)
    return {"idtp": int(frame_matches[rows, cols].sum()), **counts, "frame_ious": frame_ious, "frame_errors": errors,
            "matched_ious": _matched_ious(frame_ious, dict(zip(rows.tolist(), cols.tolist())), frame_matches)}


def _hota_sequence(frame_ious: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], truths: int, tracks: int
                   ) -> dict[str, Any]:
    """One video in the form TrackEval's metrics read: per frame the ground-truth and track indices present and
    their (G_t, H_t) mask IoU as the similarity."""
    return {"num_gt_ids": truths, "num_tracker_ids": tracks,
            "num_gt_dets": sum(len(g) for g, _, _ in frame_ious),
            "num_tracker_dets": sum(len(h) for _, h, _ in frame_ious),
            "gt_ids": [g for g, _, _ in frame_ious], "tracker_ids": [h for _, h, _ in frame_ious],
            "similarity_scores": [iou for _, _, iou in frame_ious]}


def _hota(sequences: Sequence[dict[str, Any]]) -> dict[str, float]:
    """HOTA, DetA and AssA over the videos (TrackEval combines them by summing TP/FN/FP and weighting AssA by
    TP), each the mean over the 19 localisation thresholds. Without TrackEval installed: none, with a warning (an
    evaluation or a replay that ran for minutes still reports the rest)."""
    try:
        from trackeval.metrics import HOTA
    except ImportError:
        warnings.warn("HOTA, DetA and AssA left out: TrackEval is not installed (pip install --no-deps "
                      "trackeval==1.3.0 tabulate; requirements-nodeps.txt says why without its dependencies)")
        return {}

    metric = HOTA()
    with contextlib.redirect_stdout(io.StringIO()):  # TrackEval prints its timing when asked; nothing else
        combined = metric.combine_sequences({str(k): metric.eval_sequence(data) for k, data in enumerate(sequences)})
    return {"hota": float(np.mean(combined["HOTA"])), "deta": float(np.mean(combined["DetA"])),
            "assa": float(np.mean(combined["AssA"]))}


def _matched_ious(frame_ious: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], assignment: dict[int, int],
                  frame_matches: np.ndarray) -> list[float]:
    """The mask IoU of each ground truth and the track IDF1 assigned it (pairs that never match left out), in
    every frame where both have a mask."""
    paired = {g: h for g, h in assignment.items() if frame_matches[g, h] > 0}
    ious: list[float] = []
    for g_index, h_index, iou in frame_ious:
        column = {h: col for col, h in enumerate(h_index.tolist())}
        for row, g in enumerate(g_index.tolist()):
            if g in paired and paired[g] in column:
                ious.append(float(iou[row, column[paired[g]]]))
    return ious



def tracking_lines(figures: dict[str, Any]) -> list[str]:
    """The tracking figures and the mask IoU of matched instances as printed lines (None: n/a)."""
    mota = "n/a" if figures["mota"] is None else f"{figures['mota']:.3f}"
    lines = [f"IDF1 {figures['idf1']:.3f}  ID switches {figures['id_switches']}  MOTA {mota}"
             + "".join(f"  {label} {figures[name]:.3f}" for name, label in HOTA_NAMES.items() if name in figures)]
    if figures.get("mask_iou_frames"):
        lines.append(f"mask IoU of matched instances: mean {figures['mask_iou_mean']:.3f}, "
                     f"10th percentile {figures['mask_iou_p10']:.3f} over {figures['mask_iou_frames']} object-frames")
    return lines


def per_class_line(per_class: dict[str, float | None]) -> str:
    """``AP per class: circle 0.912, square absent, ...`` (absent: no ground truth of the class)."""
    return "AP per class: " + ", ".join(f"{name} {'absent' if ap is None else f'{ap:.3f}'}"
                                        for name, ap in per_class.items())


def metric_lines(metrics: dict[str, Any]) -> list[str]:
    """What :func:`evaluate_vis` and :func:`tracking_figures` computed, as the lines sgnet-eval and sgnet-replay
    print."""
    return ["  ".join(f"{name} {metrics[name]:.3f}" for name in METRIC_NAMES),
            per_class_line(metrics["AP_per_class"]), *tracking_lines(metrics)]
