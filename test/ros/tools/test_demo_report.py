"""sgnet-demo's printed report from a hand-made summary: both tracker profiles' figures, AP per class (absent
classes named), the mask IoU of matched instances, and the node's input age in its own words when it has no age."""
from __future__ import annotations

from sgnet_ros.diagnostics import OFF_CLOCK
from sgnet_ros.tools.demo import SIZED_FOR_AP, report_lines, weaker_than_sized

EVALUATION = {"AP": 0.6961, "AP50": 1.0, "AP75": 0.81, "AR100": 0.702, "idf1": 0.482, "id_switches": 7, "mota": -1.1,
              "mask_iou_mean": 0.8612, "mask_iou_p10": 0.7421, "mask_iou_frames": 410, "videos": 8, "frames": 288,
              "AP_per_class": {"square": 0.7, "circle": 0.69, "star": None}}
ROBOT = {"idf1": 0.951, "id_switches": 0, "mota": 0.9, "mask_iou_mean": 0.88, "mask_iou_p10": 0.8,
         "mask_iou_frames": 380, "AP": 0.5}


def summary(age: str) -> dict:
    return {"evaluation_profile": EVALUATION, "robot_profile": ROBOT, "training_iterations": 700,
            "training_iterations_planned": 700,
            "replay": {"latency_ms_median": 48.25, "latency_ms_p90": 60.0, "frames_out": 288,
                       "node_diagnostics": {"input_age_ms_median": age}}}


def test_the_report_shows_both_profiles_per_class_ap_and_mask_iou():
    lines = report_lines(summary("0.000"))
    evaluation, robot = lines.index(next(l for l in lines if l.startswith("video AP"))), \
        lines.index("what a robot sees (robot profile, through the node, as overlay.mp4 shows it):")
    assert lines[evaluation] == "video AP (evaluation profile, sgnet-eval; 8 held-out videos, 288 frames):"
    assert lines[evaluation + 1:robot] == [
        "  AP 0.696  AP50 1.000  AP75 0.810  AR100 0.702",
        "  IDF1 0.482  ID switches 7  MOTA -1.100",
        "  mask IoU of matched instances: mean 0.861, 10th percentile 0.742 over 410 object-frames",
        "  AP per class: square 0.700, circle 0.690, star absent"]
    assert lines[robot + 1:robot + 3] == [
        "  IDF1 0.951  ID switches 0  MOTA 0.900",
        "  mask IoU of matched instances: mean 0.880, 10th percentile 0.800 over 380 object-frames"]
    assert ("latency median 48.2 ms, p90 60.0 ms over 288 frames; node's input age (median, its last diagnostics) "
            "0.0 ms") in lines


def test_an_input_age_off_the_clock_is_printed_in_the_node_s_words():
    assert any(line.endswith(f"its last diagnostics) {OFF_CLOCK}") for line in report_lines(summary(OFF_CLOCK)))


def test_the_demo_warns_only_when_the_model_is_weaker_than_the_demo_is_sized_for():
    """The schedule runs over the 10-minute budget, so fewer iterations on a slow machine are no warning by
    themselves; a held-out AP below the sized-for figure is."""
    weak = {**summary("0.0"), "evaluation_profile": {**EVALUATION, "AP": SIZED_FOR_AP - 0.05},
            "training_iterations": 212}
    assert "AP 0.750 is below the 0.80" in weaker_than_sized(weak) and "212 iterations" in weaker_than_sized(weak)
    strong = {**summary("0.0"), "evaluation_profile": {**EVALUATION, "AP": SIZED_FOR_AP},
              "training_iterations": 212}
    assert weaker_than_sized(strong) is None
