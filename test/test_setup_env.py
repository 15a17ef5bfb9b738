"""scripts/setup_env.sh on a machine that lacks a prerequisite: it names what is missing and the apt-get command
that brings it, and installs nothing. Runs the real script in a copy of the project's build files with a PATH
that holds only the basic tools (no cmake, no compilers, no make)."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BASIC_TOOLS = ["bash", "cat", "sha256sum", "cut", "head", "grep", "sort", "dirname", "uname"]


@pytest.fixture
def bare_machine(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A copy of what setup_env.sh reads, and an environment whose PATH has python3 and the basic tools only."""
    project = tmp_path / "project"
    (project / "scripts").mkdir(parents=True)
    for name in ["scripts/setup_env.sh", "scripts/build_msgs.sh", "CMakeLists.txt", "package.xml",
                 "requirements.txt", "requirements-torch.txt", "setup.py"]:
        shutil.copy(ROOT / name, project / name)
    shutil.copytree(ROOT / "msg", project / "msg")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in BASIC_TOOLS:
        (bin_dir / tool).symlink_to(shutil.which(tool))
    (bin_dir / "python3").symlink_to(sys.executable)
    environment = {"PATH": str(bin_dir), "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    return project, environment


def run_setup(project: Path, environment: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([environment["PATH"] + "/bash", "scripts/setup_env.sh"], cwd=project, env=environment,
                          capture_output=True, text=True, timeout=60)


def python_name() -> str:
    return f"python{sys.version_info[0]}.{sys.version_info[1]}"


def test_missing_build_tools_are_named_with_the_apt_command(bare_machine):
    project, environment = bare_machine
    result = run_setup(project, {**environment, "PYTHON": "python3"})
    assert result.returncode == 1
    assert "- cmake (version 3.20 or newer)" in result.stderr
    assert "- a C compiler (cc)" in result.stderr and "- a C++ compiler (c++)" in result.stderr
    assert "- make" in result.stderr
    assert "  sudo apt-get update && sudo apt-get install -y cmake build-essential" in result.stderr.splitlines()
    assert "Nothing was installed" in result.stderr and not (project / ".venv").exists()


def test_missing_venv_module_names_the_versioned_package(bare_machine, tmp_path):
    """Debian and Ubuntu ship ensurepip (what `python3 -m venv` needs) in python3.X-venv: hidden here by a module
    of that name that fails to import, as it does where the package is not installed."""
    project, environment = bare_machine
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "ensurepip.py").write_text("raise ImportError('ensurepip is not installed')\n")
    result = run_setup(project, {**environment, "PYTHON": "python3", "PYTHONPATH": str(hide)})
    assert result.returncode == 1
    assert f"- {python_name()} -m venv (the ensurepip module is missing)" in result.stderr
    assert (f"  sudo apt-get update && sudo apt-get install -y {python_name()}-venv cmake build-essential"
            in result.stderr.splitlines())
    assert not (project / ".venv").exists()


def test_missing_python_is_named(bare_machine):
    project, environment = bare_machine
    result = run_setup(project, {**environment, "PYTHON": "python3.99"})
    assert result.returncode == 1
    assert "- python3 (3.10 or newer): PYTHON=python3.99 not found" in result.stderr
    assert ("  sudo apt-get update && sudo apt-get install -y python3 python3-venv python3-dev cmake build-essential"
            in result.stderr.splitlines())
    assert not (project / ".venv").exists()


def test_an_unknown_torch_choice_is_refused_before_installing(bare_machine):
    project, environment = bare_machine
    tools = Path(environment["PATH"])
    for tool in ["cmake", "cc", "c++", "make"]:  # the build tools present, so that only the choice is wrong
        (tools / tool).symlink_to(shutil.which(tool))
    result = run_setup(project, {**environment, "PYTHON": "python3", "SGNET_TORCH": "cuda"})
    assert result.returncode == 2
    assert "SGNET_TORCH=cuda: must be 'cpu'" in result.stderr and not (project / ".venv").exists()


@pytest.mark.parametrize("installed, asked", [("2.14.1", "cpu"), ("2.14.1+cpu", "default")])
def test_switching_the_torch_build_of_an_existing_venv_is_refused_with_the_command(bare_machine, installed, asked):
    """The venv keeps the torch build it was made with: asking for the other one stops, naming how to switch,
    instead of leaving a mixture of both. The venv here is real but holds only torch's metadata."""
    project, environment = bare_machine
    tools = Path(environment["PATH"])
    for tool in ["cmake", "cc", "c++", "make"]:
        (tools / tool).symlink_to(shutil.which(tool))
    venv = project / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    purelib = subprocess.run([str(venv / "bin" / "python"), "-c",
                              "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    dist_info = Path(purelib) / f"torch-{installed}.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: torch\nVersion: {installed}\n")
    before = sorted(path.name for path in venv.iterdir())
    result = run_setup(project, {**environment, "SGNET_TORCH": asked})
    assert result.returncode == 2
    assert f".venv has torch {installed}" in result.stderr
    assert f"rm -rf .venv && SGNET_TORCH={asked} bash scripts/setup_env.sh" in result.stderr
    assert sorted(path.name for path in venv.iterdir()) == before  # no stamp written, nothing installed
