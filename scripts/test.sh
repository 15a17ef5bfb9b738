#!/usr/bin/env bash
# The whole test suite on a fresh machine: sets up .venv (scripts/setup_env.sh), then runs pytest.
# Extra arguments go to pytest, e.g. bash scripts/test.sh -k tracker
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec .venv/bin/python -m pytest test "$@"
