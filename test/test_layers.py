"""The layers of docs/architecture.md, read from the sources' imports (lazy ones inside functions too): they point
one way, no module imports itself back through others, and no module is over 500 lines."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("sgnet_model", "sgnet_ros", "training")
MAX_LINES = 500
# sgnet_model's subpackages, each importing only those before it (and the package's shared top-level modules)
MODEL_ORDER = ("sgnet_model.network", "sgnet_model.inference", "sgnet_model.runtime", "sgnet_model.predictor")
# training.benchmarks.peer_bench holds out the demo's videos: docs/architecture.md names this one exception
LAYER_EXCEPTIONS = {("training.benchmarks.peer_bench", "sgnet_ros.tools.demo")}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources() -> dict[str, Path]:
    return {module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")}


def imports(path: Path, known: set[str]) -> set[str]:
    """Our modules that ``path`` imports: for ``from package import name``, the submodule when there is one."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name in known}


def import_graph() -> dict[str, set[str]]:
    modules = sources()
    known = set(modules)
    return {name: imports(path, known) - {name} for name, path in modules.items()}


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def test_layers_point_one_way():
    wrong = []
    for module, targets in import_graph().items():
        for target in targets:
            if (module, target) in LAYER_EXCEPTIONS or within(target, module):  # a package's own submodules
                continue
            if within(module, "sgnet_model") and not within(target, "sgnet_model"):
                wrong.append(f"{module} imports {target}: sgnet_model imports neither ROS code nor training")
            if within(module, "training") and within(target, "sgnet_ros"):
                wrong.append(f"{module} imports {target}: training never imports ROS code")
            if within(module, "sgnet_ros") and not within(module, "sgnet_ros.tools") \
                    and (within(target, "sgnet_ros.tools") or within(target, "training")):
                wrong.append(f"{module} imports {target}: the node's runtime imports neither tools nor training")
            levels = [i for i, prefix in enumerate(MODEL_ORDER) if within(module, prefix)]
            target_levels = [i for i, prefix in enumerate(MODEL_ORDER) if within(target, prefix)]
            if levels and target_levels and target_levels[0] > levels[0]:
                wrong.append(f"{module} imports {target}: {MODEL_ORDER[levels[0]]} sits below it")
            if within(target, "sgnet_model.data") and any(within(module, p) for p in MODEL_ORDER):
                wrong.append(f"{module} imports {target}: the network and its runtime do not read YouTube-VIS")
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_circle():
    graph = import_graph()
    circles = []
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                circles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in state:
                visit(target, [*path, target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    # a package's __init__ importing its own submodules is no circle: drop those
    real = [c for c in circles if not all(within(m, c.split(" -> ")[0]) or within(c.split(" -> ")[0], m)
                                          for m in c.split(" -> "))]
    assert not real, "\n".join(real)


def test_no_module_over_500_lines():
    long = [f"{path.relative_to(ROOT)}: {lines}" for path in sorted(p for package in PACKAGES
                                                                    for p in (ROOT / package).rglob("*.py"))
            if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES]
    assert not long, "\n".join(long)
