"""Module paths from before the subpackages (issue 28) still import: each gives the module it moved to, under both
names one module object, with a DeprecationWarning naming the new path; ``python -m`` with an old path runs the new
program and says where it went."""
import importlib
import importlib.util
import subprocess
import sys
import warnings

import pytest

import sgnet_model
import sgnet_ros
import training

MOVED = {**sgnet_model.MOVED, **sgnet_ros.MOVED, **training.MOVED}


@pytest.mark.parametrize("old, new", sorted(MOVED.items()))
def test_an_old_path_is_the_new_module_with_a_warning_naming_it(old, new):
    sys.modules.pop(old, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)
    assert module.__spec__.name == new  # the new module keeps its own spec
    assert any(issubclass(w.category, DeprecationWarning) and new in str(w.message) for w in caught)


def test_names_import_from_old_paths_and_submodules_follow_their_package():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from sgnet_model.ytvis import load_annotations
        from sgnet_ros.replay.cli import build_parser

    from sgnet_model.data.ytvis import load_annotations as moved_load
    from sgnet_ros.tools.replay.cli import build_parser as moved_build

    assert load_annotations is moved_load and build_parser is moved_build


def test_the_public_seams_keep_their_paths():
    assert importlib.util.find_spec("sgnet_model.predictor").origin.endswith("sgnet_model/predictor.py")
    assert importlib.util.find_spec("sgnet_ros.node").origin.endswith("sgnet_ros/node.py")


def test_a_path_that_never_existed_still_fails():
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("sgnet_ros.no_such_module")


def test_python_m_with_an_old_path_runs_the_new_program():
    done = subprocess.run([sys.executable, "-m", "sgnet_ros.bag", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("usage: sgnet-bag")
    assert "sgnet_ros.bag moved to sgnet_ros.tools.bag" in done.stderr
