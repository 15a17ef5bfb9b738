"""sgnet-node-bench: one JSON object on stdout whose figures hang together; clear errors with status 2."""
import json
import subprocess
import sys

import numpy as np
import pytest

BENCH = [sys.executable, "-m", "sgnet_ros.tools.node_bench"]
REFERENCE = ["--backend", "torch", "--precision", "fp32"]  # the runtime is not these tests' subject (no exports)


def test_refuses_bad_options_with_status_2(tmp_path, capsys):
    """The program's exit status and streams, in a process of its own once; the other refusals through its main()
    in this process (the status it returns is the process's: sys.exit(main()))."""
    missing = subprocess.run([*BENCH, "--checkpoint", str(tmp_path / "none.pt")], capture_output=True, text=True)
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr.strip() == f"sgnet-node-bench: error: checkpoint {tmp_path / 'none.pt'} does not exist"
    from sgnet_ros.tools.node_bench import main

    for arguments, message in ((["--frames", "0"], "--frames must be at least 1"),
                               (["--cameras", "-1"], "--cameras must be 1 or more")):
        assert main(arguments) == 2, arguments
        out, err = capsys.readouterr()
        assert out == "" and err.strip() == f"sgnet-node-bench: error: {message}", (arguments, err)


@pytest.mark.slow
def test_json_figures(ros):
    """One run of every part (--depth adds the depth path and a node with depth to the overhead and the stream,
    --record a node recording every frame and the recorder timed alone): each part's figures, and those derived
    from others worked out here."""
    run = subprocess.run([*BENCH, *REFERENCE, "--json", "--depth", "--record", "--width", "320", "--height", "192",
                          "--frames", "4", "--depth-instances", "3", "--stream-model-config", "resnet18_small",
                          "--rate", "30", "--stream-seconds", "2"], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    results = json.loads(run.stdout)  # exactly one object
    overhead, stream = results["overhead"], results["stream"]
    assert (results["width"], results["height"], overhead["frames"]) == (320, 192, 4)
    assert overhead["inference_ms_median"] > 0 and overhead["latency_ms_median"] > overhead["inference_ms_median"]
    assert stream["frames_sent"] == 60 and stream["frames_answered"] + stream["frames_dropped"] == 60
    assert 0 < stream["latency_ms_median"] <= stream["latency_ms_p95"] <= stream["latency_ms_max"]
    assert stream["latency_max_over_model"] == pytest.approx(stream["latency_ms_max"] / stream["model_ms_median"])
    assert stream["rss_mb_growth"] == pytest.approx(stream["rss_mb_last_quarter"] - stream["rss_mb_first_quarter"])

    recording = results["overhead_recording"]
    assert (recording["frames"], recording["measured_frames_recorded"]) == (4, 4)  # every answered frame is in the bag
    assert recording["frames_recorded"] >= 4  # and the warm-up frames the node answered
    image_bytes = 192 * 320 * 3
    assert recording["frames_recorded"] * image_bytes / 1e6 < recording["bag_mb"] < \
        (recording["frames_recorded"] * (image_bytes + 200) + 100_000) / 1e6  # headers, index, metadata.yaml
    # the recorder alone on 2 s at 30 Hz: every frame 60; shipped settings, a moment at the first frame and none
    # 10 s after: that frame and the next second's 30 frames (frame 31 lies exactly 1 s after frame 1)
    assert (recording["recorder_every_frame_frames_written"], recording["recorder_shipped_frames_written"]) == (60, 31)
    assert 0 < recording["recorder_shipped_cpu_ms_per_frame"] and 0 < recording["recorder_every_frame_cpu_ms_per_frame"]

    path, depth = results["depth_path"], results["overhead_depth"]
    assert (path["frames"], path["instances"], depth["frames"], len(depth["depth_ack_ms"])) == (4, 3, 4, 4)
    assert path["instance_pixels"] == int(np.pi * (192 / 10) ** 2)
    parts = path["deserialize_ms_median"] + path["process_ms_median"] + path["message_ms_median"]
    assert path["total_ms_median"] > 0 and path["cpu_ms_median"] > 0 and parts > 0
    assert depth["latency_ms_median"] > depth["inference_ms_median"] > 0
    # three located instances: a box, a centroid and a label each; the same three tracks every frame, nothing deleted
    assert path["markers_per_frame"] == 9 and path["markers_ms_median"] > 0 and path["overlay_ms_median"] > 0
    assert 0 < path["markers_unsubscribed_ms_median"] < path["markers_ms_median"]


@pytest.mark.slow
def test_cameras_figures_hang_together(ros):
    """One node serving 2 cameras against one serving 1 and 2 separate nodes: every camera of every run got frames
    out, and the derived figures are those worked out here from each run's raw counts, seconds and memory."""
    run = subprocess.run([*BENCH, *REFERENCE, "--json", "--cameras", "2", "--width", "320", "--height", "192",
                          "--rate", "5", "--stream-seconds", "2"], capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stderr
    figures = json.loads(run.stdout)["cameras"]
    assert figures["cameras"] == 2
    cameras = {"one_camera": {"cam0"}, "one_node": {"cam0", "cam1"}, "separate_nodes": {"cam0", "cam1"}}
    for run_name, names in cameras.items():
        raw = figures[run_name]
        counts = raw["frames_out_per_camera"]
        assert set(counts) == names
        assert raw["frames_sent_per_camera"] == 10  # 5 Hz for 2 s
        assert all(0 < count <= 10 for count in counts.values()), (run_name, counts)  # every camera served
        # 10 frames 0.2 s apart, then up to 2 s for the last answers (the wait ends with them)
        assert raw["seconds"] >= 1.8
        assert raw["fps_total"] == pytest.approx(sum(counts.values()) / raw["seconds"])
        assert all(rss > 0 for rss in raw["rss_mb"])
    assert len(figures["separate_nodes"]["rss_mb"]) == 2 and len(figures["one_node"]["rss_mb"]) == 1
    assert figures["rss_ratio"] == pytest.approx(figures["one_node"]["rss_mb"][0] / figures["one_camera"]["rss_mb"][0])
    one_node, separate = figures["one_node"], figures["separate_nodes"]
    counted = one_node["frames_out_per_camera"]
    assert figures["fps_ratio_vs_separate_nodes"] == pytest.approx(
        (sum(counted.values()) / one_node["seconds"])
        / (sum(separate["frames_out_per_camera"].values()) / separate["seconds"]))
    total = counted["cam0"] + counted["cam1"]
    assert figures["camera_shares"] == pytest.approx({"cam0": counted["cam0"] / total, "cam1": counted["cam1"] / total})
    assert figures["min_share_times_n"] == pytest.approx(2 * min(counted.values()) / total)
