#!/usr/bin/env bash
# The whole test suite on a fresh machine: sets up .venv (scripts/setup_env.sh), then runs pytest.
# Extra arguments go to pytest: bash scripts/test.sh -m "not slow"   (the fast subset; markers slow, ros, gpu:
# pytest.ini and docs/development.md), bash scripts/test.sh -k tracker, bash scripts/test.sh test/ros/test_node.py
# (runs only that file). With no path given, pytest collects test/ (testpaths in pytest.ini).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec .venv/bin/python -m pytest "$@"
