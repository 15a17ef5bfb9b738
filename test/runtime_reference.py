"""The runtime the tests run the predictor on unless they are about the runtime: torch in fp32 on the CPU, the
reference arithmetic, the same on every CPU kind. The shipped default (``PredictorConfig()``: device, backend and
precision auto; on a CPU with native bf16, torch's bf16) is tested where it is the subject:
test/model/runtime/test_export.py (the rule, what auto runs on this machine, bf16's held-out AP) and
test/ros/test_camera_delivery.py (a node on every default, the runtime its configured line names)."""
import torch

from sgnet_model.config import PredictorConfig

REFERENCE = PredictorConfig.reference()
REFERENCE_ARGUMENTS = ["--device", "cpu", "--backend", "torch", "--precision", "fp32"]  # sgnet-eval's options


def cpuid_says_bf16() -> bool:
    """A second method to /proc/cpuinfo's flags: the CPUID instruction itself, through the cpuinfo library torch
    carries (AVX-512 BF16, or AMX tiles, which every AMX CPU pairs with AMX-BF16)."""
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def shipped_cpu_runtime() -> tuple[str, str]:
    """(backend, precision) that docs/export.md's table says auto runs for a checkpoint on this machine's CPU,
    worked out here from CPUID and the installed packages (not asked of backends.choose_runtime)."""
    return "torch", ("bf16" if cpuid_says_bf16() else "fp32")
