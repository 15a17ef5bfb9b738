"""Session fixtures shared by the model, training and ROS tests."""
import json
import os
from pathlib import Path

import pytest

# OpenMP threads that finish their share of an operation spin, waiting for the next one (libgomp's default):
# with the tests' processes (two pytest-xdist workers, node processes, the background trainer) sharing two cores,
# a spinning thread holds the core that another process's work needs. Passive waiting measured: the fast subset
# on two workers 1 min 7 s against 1 min 36 s spinning (docs/development.md). Read by libgomp when torch loads,
# so set before the import, for this process and every process it starts; a value of the user's own wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402  (after OMP_WAIT_POLICY)

from session_model import BackgroundTraining, Recipe, TrainedModel


TEST_ROOT = Path(__file__).resolve().parent


def needs_cuda(item: pytest.Item) -> bool:
    """A CUDA test is one skipped where CUDA is missing: skipif(not torch.cuda.is_available(), reason=...CUDA...).
    The condition's value, not only the reason's words, tells it from a test that runs only WITHOUT CUDA."""
    cuda_missing = not torch.cuda.is_available()
    return any(isinstance(mark.args[0] if mark.args else None, bool) and mark.args[0] == cuda_missing
               and any(word in mark.kwargs.get("reason", "").lower() for word in ("cuda", "gpu"))
               for mark in item.iter_markers("skipif"))


@pytest.hookimpl(tryfirst=True)  # before -m selects by these markers
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The markers, assigned here rather than in each file (pytest.ini describes them; docs/development.md says
    how to run each subset): ``ros`` for everything under test/ros/, ``gpu`` for tests that need CUDA,
    ``slow`` and ``trained`` for tests that use the session-trained model (the fixture ``trained_checkpoint``,
    directly or through another fixture), ``slow`` also for those marked so in their file, ``figures`` for those
    that judge its figures against bars (``model_figures``). Then the order: ``trained_last``."""
    for item in items:
        if item.path.is_relative_to(TEST_ROOT / "ros"):
            item.add_marker(pytest.mark.ros)
        if needs_cuda(item):
            item.add_marker(pytest.mark.gpu)
        if uses_trained_model(item):
            item.add_marker(pytest.mark.slow)
            item.add_marker(pytest.mark.trained)
        if "model_figures" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.figures)
    trained_last(items)


TRAINING = BackgroundTraining()


def uses_trained_model(item: pytest.Item) -> bool:
    return "trained_checkpoint" in getattr(item, "fixturenames", ())  # launch_testing's items have none


def trained_last(items: list[pytest.Item]) -> None:
    """The tests that use the trained model after all others (in their order): while it trains in the background,
    everything else runs, the other tests of their modules included. Such a module's fixtures are made twice, once
    for each part (a few seconds; waiting on the training with the module's other tests unrun cost minutes)."""
    items.sort(key=uses_trained_model)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start training the suite's model (session_model.py) now, if a selected test needs it and no cached one
    fits this code and machine. Under pytest-xdist the first worker starts it; the others wait on its lock."""
    first_worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0") == "gw0"
    if first_worker and not session.config.option.collectonly and any(map(uses_trained_model, session.items)):
        TRAINING.start(Recipe.from_environment())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A run that was stopped (Ctrl-C, -x) stops the training too; otherwise it finishes, for the cache (another
    xdist worker may be waiting for it)."""
    if exitstatus == pytest.ExitCode.INTERRUPTED or session.shouldstop or session.shouldfail:
        TRAINING.stop()
    else:
        TRAINING.finish()


@pytest.fixture(scope="session")
def trained_checkpoint() -> TrainedModel:
    """The small config trained from scratch on a generated synthetic set, on the CPU (test/session_model.py):
    made in the background while the other tests run, or found in the cache."""
    return TRAINING.wait_for(Recipe.from_environment())


class ModelFigures:
    """The trained model's figures that a test judges, each against its bar: all recorded, then asserted together,
    and written (with the training seed and the test's id) as JSON lines to ``$SGNET_MODEL_FIGURES`` when it is
    set, whether they hold or not. test/seed_sweep.py collects them over several training seeds: the table in
    docs/development.md."""

    def __init__(self, test: str) -> None:
        self.test = test

    def hold(self, *figures: tuple[str, float, str, float]) -> None:
        """Each figure as (name, value, ">=" or "<=", bar)."""
        if path := os.environ.get("SGNET_MODEL_FIGURES"):
            with open(path, "a") as records:
                for name, value, direction, bar in figures:
                    records.write(json.dumps({"test": self.test, "figure": name, "value": float(value),
                                              "direction": direction, "bar": bar,
                                              "seed": Recipe.from_environment().seed}) + "\n")
        misses = [f"{name} {value:.4f} (bar {direction} {bar})" for name, value, direction, bar in figures
                  if not (value >= bar if direction == ">=" else value <= bar)]
        assert not misses, "the trained model misses: " + ", ".join(misses)


@pytest.fixture
def model_figures(request: pytest.FixtureRequest) -> ModelFigures:
    return ModelFigures(request.node.nodeid)
