#!/usr/bin/env bash
# Creates or refreshes the project's virtual environment (.venv): the pinned requirements, this project in
# editable mode, and our msg/ built into a real ROS 2 interface package inside the venv. Idempotent and quick
# when nothing changed. Usage: bash scripts/setup_env.sh   (PYTHON=python3.12 to choose the interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
venv=$root/.venv

pick_python() {
  if [ -n "${PYTHON:-}" ]; then echo "$PYTHON"; return; fi
  # torch 2.14.1 wheels lie on this machine's disk for CPython 3.11; any 3.10+ works where PyPI is reachable.
  for candidate in python3.11 python3.12 python3.10 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then echo "$candidate"; return; fi
  done
  echo "error: no python3 found; install Python 3.10 or newer" >&2; exit 1
}

if [ ! -x "$venv/bin/python" ]; then
  py=$(pick_python)
  "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' \
    || { echo "error: $py is older than Python 3.10 (ROS 2 Humble ships 3.10)" >&2; exit 1; }
  echo "[setup] creating $venv with $($py --version)"
  "$py" -m venv "$venv"
fi

stamp() { cat "$@" | sha256sum | cut -c1-16; }

req_stamp=$(stamp requirements.txt setup.py)
if [ "$(cat "$venv/.requirements-stamp" 2>/dev/null)" != "$req_stamp" ]; then
  echo "[setup] installing requirements (about a minute the first time)"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements.txt
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
  echo "$req_stamp" > "$venv/.requirements-stamp"
fi

msg_stamp=$(stamp CMakeLists.txt package.xml msg/*.msg scripts/build_msgs.sh)
if [ "$(cat "$venv/.msgs-stamp" 2>/dev/null)" != "$msg_stamp" ]; then
  echo "[setup] building the sgnet_ros messages into the venv"
  bash scripts/build_msgs.sh "$venv"
  echo "$msg_stamp" > "$venv/.msgs-stamp"
fi
