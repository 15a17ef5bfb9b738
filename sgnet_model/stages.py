"""Wall time per stage of the predictor's step, recorded only while a caller asks (sgnet-bench's per-stage table).

The stages: ``prepare`` (resize and pad on the device), ``runtime`` (the runner's call: network, detection
selection, movement and the masks), ``masks`` (the mask pasting within it, wherever it runs: in the eager runner, or
on the host after a graph that leaves the masks to it; 0 where the graph pastes them itself), ``to_host`` (the
results to numpy) and ``tracking`` (with the suppression by mask overlap, when on). sgnet-bench reports the runtime without the masks. Outside ``recording()`` a stage costs one context-variable read. Times are host wall times: on CUDA they
count only what the host waited for.
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar

STAGES = ("prepare", "runtime", "masks", "to_host", "tracking")
_RECORDING: ContextVar[dict[str, float] | None] = ContextVar("sgnet_stage_seconds", default=None)


@contextlib.contextmanager
def stage(name: str) -> Iterator[None]:
    """Add the seconds spent in the block to ``name`` while recording."""
    seconds = _RECORDING.get()
    if seconds is None:
        yield
        return
    started = time.perf_counter()
    try:
        yield
    finally:
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - started


@contextlib.contextmanager
def recording() -> Iterator[dict[str, float]]:
    """Record the stages run inside the block (in this thread): stage name -> seconds."""
    seconds: dict[str, float] = {}
    token = _RECORDING.set(seconds)
    try:
        yield seconds
    finally:
        _RECORDING.reset(token)
