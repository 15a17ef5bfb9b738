"""What a benchmark figure needs next to it to be compared with another run: the machine, the software and the
settings (sgnet-bench, sgnet-train-bench and sgnet-node-bench all report it), and the JSON file they write."""
from __future__ import annotations

import json
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

import torch


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), else what the platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: str | torch.device) -> str:
    """'NVIDIA H200' for a CUDA device, the CPU's model name for the CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_model()


def runtime_info(device: str | torch.device, dtype: torch.dtype, cuda_graphs: bool) -> dict[str, Any]:
    """The run's environment: device and its name, the CPU, threads, torch (and its CUDA), dtype, CUDA graphs."""
    device = torch.device(device)
    return {
        "device": str(device),
        "device_name": device_name(device),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "dtype": str(dtype).removeprefix("torch."),
        "cuda_graphs": cuda_graphs and device.type == "cuda",
    }


def write_json(path: str | Path, result: dict[str, Any]) -> None:
    """Write ``result`` to ``path`` atomically (a reader never sees half a file), creating its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as handle:
        json.dump(result, handle, indent=1)
        handle.write("\n")
    os.replace(handle.name, path)


def emit_json(destination: str | None, result: dict[str, Any]) -> bool:
    """The benchmarks' ``--json``: "-" prints ``result`` as one JSON object and returns True (print nothing else);
    a path writes it there atomically and returns False (the table is printed too); None does neither."""
    if destination == "-":
        print(json.dumps(result))
        return True
    if destination:
        write_json(destination, result)
    return False
