#!/usr/bin/env bash
# The demo on a fresh machine: sets up .venv (scripts/setup_env.sh), then runs sgnet-demo (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec .venv/bin/sgnet-demo "$@"
