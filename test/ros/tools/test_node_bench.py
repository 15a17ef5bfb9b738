"""sgnet-node-bench: one JSON object on stdout whose figures hang together; clear errors with status 2."""
import json
import subprocess
import sys

import pytest

BENCH = [sys.executable, "-m", "sgnet_ros.tools.node_bench"]


def test_refuses_bad_options_with_status_2(tmp_path):
    missing = subprocess.run([*BENCH, "--checkpoint", str(tmp_path / "none.pt")], capture_output=True, text=True)
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr.strip() == f"sgnet-node-bench: error: checkpoint {tmp_path / 'none.pt'} does not exist"
    zero = subprocess.run([*BENCH, "--frames", "0"], capture_output=True, text=True)
    assert zero.returncode == 2 and "--frames must be at least 1" in zero.stderr


@pytest.mark.slow
def test_json_figures(ros):
    run = subprocess.run([*BENCH, "--json", "--width", "320", "--height", "192", "--frames", "4",
                          "--stream-model-config", "resnet18_small", "--rate", "30", "--stream-seconds", "2"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    results = json.loads(run.stdout)  # exactly one object
    overhead, stream = results["overhead"], results["stream"]
    assert (results["width"], results["height"], overhead["frames"]) == (320, 192, 4)
    assert overhead["inference_ms_median"] > 0 and overhead["latency_ms_median"] > overhead["inference_ms_median"]
    assert stream["frames_sent"] == 60 and stream["frames_answered"] + stream["frames_dropped"] == 60
    assert 0 < stream["latency_ms_median"] <= stream["latency_ms_p95"] <= stream["latency_ms_max"]
    assert stream["latency_max_over_model"] == pytest.approx(stream["latency_ms_max"] / stream["model_ms_median"])
    assert stream["rss_mb_growth"] == pytest.approx(stream["rss_mb_last_quarter"] - stream["rss_mb_first_quarter"])


def test_refuses_a_negative_camera_count():
    negative = subprocess.run([*BENCH, "--cameras", "-1"], capture_output=True, text=True)
    assert negative.returncode == 2 and "--cameras must be 1 or more" in negative.stderr


@pytest.mark.slow
def test_cameras_figures_hang_together(ros):
    """One node serving 2 cameras against one serving 1 and 2 separate nodes: the ratios are those of the
    figures, every camera's frames counted, and the shares sum to 1."""
    run = subprocess.run([*BENCH, "--json", "--cameras", "2", "--width", "320", "--height", "192", "--rate", "5",
                          "--stream-seconds", "4"], capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stderr
    figures = json.loads(run.stdout)["cameras"]
    assert figures["cameras"] == 2
    assert set(figures["one_node"]["frames_out_per_camera"]) == {"cam0", "cam1"}
    assert len(figures["separate_nodes"]["rss_mb"]) == 2 and len(figures["one_node"]["rss_mb"]) == 1
    assert figures["rss_ratio"] == pytest.approx(figures["one_node"]["rss_mb"][0] / figures["one_camera"]["rss_mb"][0])
    assert figures["fps_ratio_vs_separate_nodes"] == pytest.approx(
        figures["one_node"]["fps_total"] / figures["separate_nodes"]["fps_total"])
    assert sum(figures["camera_shares"].values()) == pytest.approx(1.0)
    for run_name in ("one_camera", "one_node", "separate_nodes"):
        assert all(0 <= count <= 20 for count in figures[run_name]["frames_out_per_camera"].values())
