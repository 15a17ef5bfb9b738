"""sgnet-node-bench: one JSON object on stdout whose figures hang together; clear errors with status 2."""
import json
import subprocess
import sys

import pytest

BENCH = [sys.executable, "-m", "sgnet_ros.node_bench"]


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
