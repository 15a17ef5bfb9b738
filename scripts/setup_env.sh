#!/usr/bin/env bash
# Creates or refreshes the project's virtual environment (.venv): the pinned requirements, this project in
# editable mode, and our msg/ built into a real ROS 2 interface package inside the venv. Idempotent and quick
# when nothing changed. Usage: bash scripts/setup_env.sh
#   PYTHON=python3.12    the interpreter for a new .venv (default: the first of python3.11, 3.12, 3.10, 3.13, python3)
#   SGNET_TORCH=cpu      torch/torchvision from PyTorch's CPU-only index (about 0.2 GB to download) instead of
#                        PyPI's default wheel, which on x86_64 Linux is a CUDA build (about 3 GB with its CUDA
#                        libraries). The choice is the venv's: to switch, remove .venv and run again.
# Prerequisites (Debian/Ubuntu): python3 >= 3.10 with venv and headers, cmake >= 3.20, a C and C++ compiler and
# make; checked below before anything is installed, with the apt-get command when something is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
venv=$root/.venv
CPU_TORCH_INDEX=https://download.pytorch.org/whl/cpu
MIN_CMAKE=3.20

pick_python() {
  if [ -n "${PYTHON:-}" ]; then echo "$PYTHON"; return; fi
  # torch 2.14.1 wheels lie on this machine's disk for CPython 3.11; any 3.10+ works where PyPI is reachable.
  for candidate in python3.11 python3.12 python3.10 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then echo "$candidate"; return; fi
  done
}

stamp() { cat "$@" | sha256sum | cut -c1-16; }

# What has to be done: decided first, so that the prerequisites of those steps are checked before any of them.
if [ -x "$venv/bin/python" ]; then
  py=$venv/bin/python
  new_venv=false
else
  py=$(pick_python)
  new_venv=true
fi
msg_stamp=$(stamp CMakeLists.txt package.xml msg/*.msg scripts/build_msgs.sh)
build_msgs=$new_venv
[ "$(cat "$venv/.msgs-stamp" 2>/dev/null)" != "$msg_stamp" ] && build_msgs=true

missing=()    # what is missing, one line each
packages=()   # the Debian/Ubuntu packages that bring it
if [ -z "$py" ] || ! command -v "$py" >/dev/null 2>&1; then
  missing+=("python3 (3.10 or newer)${PYTHON:+: PYTHON=$PYTHON not found}")
  packages+=(python3 python3-venv python3-dev)
elif ! "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)'; then
  echo "error: $py is Python $("$py" -c 'import platform; print(platform.python_version())'); sgnet_ros needs 3.10" \
       "or newer (Ubuntu 22.04 and Debian 12 ship one). Install one and run:" \
       "PYTHON=python3.X bash scripts/setup_env.sh" >&2
  exit 1
else
  pyver=$("$py" -c 'import sys; print(f"python{sys.version_info[0]}.{sys.version_info[1]}")')
  if $new_venv && ! "$py" -c 'import ensurepip, venv' 2>/dev/null; then
    missing+=("$pyver -m venv (the ensurepip module is missing)")
    packages+=("$pyver-venv")
  fi
  if $build_msgs && ! "$py" -c 'import os, sys, sysconfig
sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")) else 1)'; then
    missing+=("the $pyver headers (Python.h, to build the messages' Python extensions)")
    packages+=("$pyver-dev")
  fi
fi
if $build_msgs; then
  if ! command -v cmake >/dev/null 2>&1; then
    missing+=("cmake (version $MIN_CMAKE or newer)")
    packages+=(cmake)
  else
    cmake_version=$(cmake --version | head -1 | grep -oE '[0-9]+\.[0-9]+(\.[0-9]+)?' | head -1)
    if [ "$(printf '%s\n%s\n' "$MIN_CMAKE" "$cmake_version" | sort -V | head -1)" != "$MIN_CMAKE" ]; then
      missing+=("cmake $MIN_CMAKE or newer (found $cmake_version; where apt has no newer one: pip install cmake)")
      packages+=(cmake)
    fi
  fi
  compilers=()
  command -v "${CC:-cc}" >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1 || compilers+=("a C compiler (cc)")
  command -v "${CXX:-c++}" >/dev/null 2>&1 || command -v g++ >/dev/null 2>&1 || compilers+=("a C++ compiler (c++)")
  [ -n "${CMAKE_GENERATOR:-}" ] || command -v make >/dev/null 2>&1 || compilers+=("make")
  if [ ${#compilers[@]} -gt 0 ]; then
    missing+=("${compilers[@]}")
    packages+=(build-essential)
  fi
fi
if [ ${#missing[@]} -gt 0 ]; then
  unique_packages=()
  for package in "${packages[@]}"; do
    [[ " ${unique_packages[*]} " == *" $package "* ]] || unique_packages+=("$package")
  done
  {
    echo "error: scripts/setup_env.sh needs these, and this machine lacks them:"
    printf '  - %s\n' "${missing[@]}"
    echo "On Debian or Ubuntu install them with:"
    echo "  sudo apt-get update && sudo apt-get install -y ${unique_packages[*]}"
    echo "then run this command again. Nothing was installed."
  } >&2
  exit 1
fi

# Which torch build: the one already in the venv, else SGNET_TORCH (default: PyPI's wheel).
installed_torch=""
if ! $new_venv; then
  installed_torch=$("$py" -c 'import importlib.metadata as m
try:
    print(m.version("torch"))
except m.PackageNotFoundError:
    pass')
fi
case $installed_torch in
  "") installed_variant="" ;;
  *+cpu) installed_variant=cpu ;;
  *) installed_variant=default ;;
esac
torch_variant=${SGNET_TORCH:-${installed_variant:-default}}
case $torch_variant in
  default|cpu) ;;
  *) echo "error: SGNET_TORCH=$torch_variant: must be 'cpu' (PyTorch's CPU-only wheels) or 'default' (PyPI's)" >&2
     exit 2 ;;
esac
if [ -n "$installed_variant" ] && [ "$installed_variant" != "$torch_variant" ]; then
  echo "error: .venv has torch $installed_torch (SGNET_TORCH=$installed_variant) but SGNET_TORCH=$torch_variant was" \
       "asked for; to switch, remove the environment and run again: rm -rf .venv && SGNET_TORCH=$torch_variant bash" \
       "scripts/setup_env.sh" >&2
  exit 2
fi

if $new_venv; then
  echo "[setup] creating $venv with $("$py" --version)"
  "$py" -m venv "$venv"
fi
python=$venv/bin/python
pip_install=("$python" -m pip install --quiet --disable-pip-version-check)

req_stamp=$(stamp requirements.txt requirements-torch.txt requirements-nodeps.txt setup.py)-$torch_variant
if [ "$(cat "$venv/.requirements-stamp" 2>/dev/null)" != "$req_stamp" ]; then
  if [ "$torch_variant" = cpu ]; then
    echo "[setup] installing the CPU-only torch and torchvision from $CPU_TORCH_INDEX"
    "${pip_install[@]}" --index-url "$CPU_TORCH_INDEX" -r requirements-torch.txt
    # pip also reads the indexes and wheel folders of its configuration (pip config list): where the CPU index
    # cannot be reached, it may take PyPI's CUDA wheel from one of them without saying so.
    cpu_torch=$("$python" -c 'import importlib.metadata as m; print(m.version("torch"))')
    if [[ $cpu_torch != *+cpu ]]; then
      echo "error: SGNET_TORCH=cpu installed torch $cpu_torch, not a +cpu build: $CPU_TORCH_INDEX could not be" \
           "reached, or pip's configuration (pip config list) offered another torch. Fix that, then: rm -rf .venv" \
           "&& SGNET_TORCH=cpu bash scripts/setup_env.sh" >&2
      exit 1
    fi
  elif [ -z "$installed_torch" ] && [ "$(uname -sm)" = "Linux x86_64" ]; then
    echo "[setup] the first install downloads about 3 GB (torch with its CUDA libraries; 6 GB in .venv) and takes" \
         "a few minutes; SGNET_TORCH=cpu bash scripts/setup_env.sh installs the CPU-only torch instead (0.2 GB)"
  fi
  echo "[setup] installing requirements (about a minute once downloaded)"
  "${pip_install[@]}" -r requirements.txt
  "${pip_install[@]}" --no-deps -r requirements-nodeps.txt  # why without their dependencies: in the file
  "${pip_install[@]}" --no-deps --no-build-isolation -e .
  echo "$req_stamp" > "$venv/.requirements-stamp"
fi

if $build_msgs; then
  echo "[setup] building the sgnet_ros messages into the venv"
  bash scripts/build_msgs.sh "$venv"
  echo "$msg_stamp" > "$venv/.msgs-stamp"
fi
