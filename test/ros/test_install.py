"""The colcon install of the package, as `colcon build --symlink-install` makes it: CMakeLists.txt configured,
built and installed with ament's symlink install (AMENT_CMAKE_SYMLINK_INSTALL, what colcon passes), from the PyPI
ament/rosidl wheels. The programs in lib/sgnet_ros must be executables (`ros2 run` and launch look for them
there), and they must run.
"""
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("CMakeLists.txt", "package.xml", "msg", "sgnet_ros", "sgnet_model", "training", "launch", "config")
PROGRAMS = {"sgnet_node", "sgnet_node_bench", "sgnet_replay", "sgnet_bag", "sgnet_label", "sgnet_demo", "sgnet_weights",
            "sgnet_export"}


def run(command: list[str], **kwargs) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, **kwargs)
    assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"


@pytest.mark.slow
def test_symlink_install_gives_executable_programs(tmp_path):
    if shutil.which("cmake") is None:
        pytest.skip("cmake is not installed")
    prefix = Path(sys.prefix)
    if not (prefix / "share" / "ament_cmake_core").is_dir():
        pytest.skip("the ament_cmake wheels are not in this environment (pip install -r requirements.txt)")
    # A copy of the sources outside the virtual environment's folder: CMake refuses imported include folders
    # (the venv's numpy) that lie inside the source tree.
    source = tmp_path / "src" / "sgnet_ros"
    source.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=ignore)
        else:
            shutil.copy(ROOT / name, source / name)
    build, install = tmp_path / "build", tmp_path / "install"
    environment = {**os.environ, "AMENT_PREFIX_PATH": str(prefix), "CMAKE_PREFIX_PATH": str(prefix)}
    # cwd: the symlink install writes its manifest into the working folder
    run(["cmake", "-S", str(source), "-B", str(build), "-DBUILD_TESTING=OFF", "-DAMENT_CMAKE_SYMLINK_INSTALL=1",
         f"-DCMAKE_INSTALL_PREFIX={install}", f"-DPython3_EXECUTABLE={sys.executable}"], env=environment, cwd=tmp_path)
    run(["cmake", "--build", str(build), "--parallel", "2"], env=environment, cwd=tmp_path)
    run(["cmake", "--install", str(build)], env=environment, cwd=tmp_path)

    programs = install / "lib" / "sgnet_ros"
    assert {path.name for path in programs.iterdir()} == PROGRAMS
    for path in programs.iterdir():
        assert path.is_symlink(), f"{path} is not a link: this was not a symlink install"
        assert os.access(path, os.X_OK), f"{path} -> {path.resolve()} is not executable"
        assert path.read_text().startswith("#!/usr/bin/env python3\n") and "runpy.run_module(" in path.read_text()
    # It runs as `ros2 run sgnet_ros sgnet_node --help` would: found on PATH's python3, the installed packages.
    site_packages = install / Path(sysconfig.get_paths()["purelib"]).relative_to(sysconfig.get_paths()["data"])
    help_run = subprocess.run([str(programs / "sgnet_node"), "--help"], capture_output=True, text=True, timeout=300,
                              env={**environment, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
                                   "PYTHONPATH": str(site_packages)})
    assert help_run.returncode == 0, help_run.stderr[-3000:]
    assert "SG-Net video instance segmentation node" in help_run.stdout
