#!/usr/bin/env bash
# The whole test suite on a fresh machine: sets up .venv (scripts/setup_env.sh), then runs pytest.
# Extra arguments go to pytest: bash scripts/test.sh -m "not slow"   (the fast subset; markers slow, ros, gpu:
# pytest.ini and docs/development.md), bash scripts/test.sh -k tracker, bash scripts/test.sh test/ros/test_node.py
# (runs only that file). With no path given, pytest collects test/ (testpaths in pytest.ini).
#
# Two pytest-xdist workers where the machine has two cores or more: a test that waits on node processes and DDS
# runs beside one that computes. --dist worksteal gives each worker half of the tests in their order (a module's
# tests stay together, so its fixtures are made once) and a worker that runs out takes half of what the other has
# left. OpenMP threads wait passively (test/conftest.py). docs/development.md has the figures. -n 0 runs
# everything in this one process, as --pdb needs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
# The project's bytecode, written where Python would write it itself: with PYTHONDONTWRITEBYTECODE set (as in
# some CI images) each of the hundred-odd processes the tests start (nodes, sgnet-replay, sgnet-eval, torchrun)
# would compile the sources again, 0.6 s of CPU each. Only files changed since the last run are compiled.
.venv/bin/python -m compileall -q -j 0 sgnet_model sgnet_ros training test > /dev/null
workers=()
if [[ " $* " != *" -n"* && " $* " != *" --numprocesses"* && " $* " != *" -p no:xdist "* && " $* " != *" --pdb "* ]] \
   && (( $(nproc) >= 2 )); then
  workers=(-n 2 --dist worksteal)
fi
exec .venv/bin/python -m pytest "${workers[@]}" "$@"
