"""What the benchmarks report about the run, and how they write it."""
import json
import platform

import torch

from sgnet_model.runinfo import runtime_info, write_json


def test_runtime_info_names_this_machine_and_the_settings():
    info = runtime_info("cpu", torch.float16, cuda_graphs=True)
    assert info["device"] == "cpu" and info["dtype"] == "float16"
    assert info["cuda_graphs"] is False  # never on the CPU, whatever was asked
    assert info["threads"] == torch.get_num_threads() and info["torch"] == torch.__version__
    assert info["python"] == platform.python_version()
    models = {line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")}
    assert info["device_name"] == info["cpu"] and (info["cpu"] in models or not models)
    json.dumps(info)  # plain JSON


def test_write_json_replaces_the_file_whole_and_leaves_nothing_else(tmp_path):
    target = tmp_path / "out" / "bench.json"
    write_json(target, {"ratio": 1.0})
    write_json(target, {"ratio": 0.5, "scaling": {"1": 2.0}})
    assert json.loads(target.read_text()) == {"ratio": 0.5, "scaling": {"1": 2.0}}
    assert [p.name for p in target.parent.iterdir()] == ["bench.json"]
