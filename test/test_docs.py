"""Docs that run as written (issue 28): every command in README.md and docs/*.md names a console script, module,
ROS executable, launch file or script that exists, with flags (and ROS parameters, launch arguments) that it takes;
docs/ros.md's parameter table is what sgnet_ros/params.py declares and its launch-argument table what
launch/sgnet.launch.py declares.

Commands are read from fenced code blocks (bash, sh, console or unmarked) and from inline code that starts with a
program name. A fenced line without placeholders (``...``, ``[--flag]``, ``a|b``, ``<name>``) is parsed whole by the
program's own parser, required arguments included; elsewhere each flag must be one the parser knows. Nothing runs.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import importlib.util
import io
import re
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
OUR_PACKAGES = ("sgnet_model", "sgnet_ros", "training")
PROGRAMS = ("sgnet-", "python", "python3", "torchrun", "bash", "ros2", "pip")
SHELL_LANGUAGES = ("bash", "sh", "console", "")
NOTATION = re.compile(r"\.\.\.|[\[\]<>]|(?<!\|)\|(?!\|)")  # placeholders and alternatives: not a runnable line
ROS_PARAMETERS_OF_RCLPY = {"use_sim_time"}


@dataclasses.dataclass(frozen=True)
class Command:
    page: str
    line: int
    text: str
    fenced: bool  # a line of a fenced shell block (parsed whole), or inline code (flags checked one by one)

    def where(self) -> str:
        return f"{self.page}:{self.line}: {self.text}"


def commands(page: Path) -> Iterator[Command]:
    """The commands of a page: each line of its shell blocks (continuations joined, comments dropped), and its
    inline code spans that start with a program name."""
    text = page.read_text(encoding="utf-8")
    name = str(page.relative_to(ROOT))
    outside = []
    lines = text.split("\n")
    number = 0
    while number < len(lines):
        fence = re.match(r"\s*```(\w*)\s*$", lines[number])
        if not fence:
            outside.append((number + 1, lines[number]))
            number += 1
            continue
        language, number = fence.group(1), number + 1
        block = []
        while number < len(lines) and not re.match(r"\s*```\s*$", lines[number]):
            block.append((number + 1, lines[number]))
            number += 1
        number += 1
        if language in SHELL_LANGUAGES:
            yield from block_commands(name, block, prompted=language == "console")
    prose = "\n".join(line for _, line in outside)
    starts = [0, *(i + 1 for i, char in enumerate(prose) if char == "\n")]
    for match in re.finditer(r"(?<!`)`([^`]+)`(?!`)", prose):
        span = " ".join(match.group(1).split())
        if span.startswith(PROGRAMS):
            line_index = max(i for i, start in enumerate(starts) if start <= match.start())
            yield Command(name, outside[line_index][0], span, fenced=False)


def block_commands(page: str, block: list[tuple[int, str]], prompted: bool) -> Iterator[Command]:
    """The commands of a shell block; in a console block (``prompted``) only the lines after a ``$`` prompt, the
    others being output. A line whose first word ends in a colon (``sgnet-demo: done``) is output too."""
    pending, first = "", 0
    for number, line in block:
        line = line.strip()
        if prompted and not pending and not line.startswith("$ "):
            continue
        if line.startswith("$ "):
            line = line[2:]
        if not pending:
            first = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        whole, pending = (pending + line).strip(), ""
        if whole.startswith(PROGRAMS) and not whole.split()[0].endswith(":"):
            yield Command(page, first, whole, fenced=True)


def words(command: Command) -> list[list[str]]:
    """The command's programs: the words of each part between ``&&``, ``;``, ``|`` and ``&``; comments dropped."""
    if not command.fenced:
        return [command.text.split()]
    lexer = shlex.shlex(command.text, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    parts: list[list[str]] = [[]]
    for token in lexer:
        if token in ("&&", ";", "|", "&", "||"):
            parts.append([])
        else:
            parts[-1].append(token)
    return [part for part in parts if part]


def console_scripts() -> dict[str, str]:
    """Console script -> module of its main, from setup.py."""
    setup = (ROOT / "setup.py").read_text(encoding="utf-8")
    return dict(re.findall(r'"(sgnet-[\w-]+) = ([\w.]+):main"', setup))


def ros2_executables() -> dict[str, str]:
    """``ros2 run sgnet_ros`` executable -> module, from CMakeLists.txt."""
    cmake = (ROOT / "CMakeLists.txt").read_text(encoding="utf-8")
    return dict(re.findall(r'"(sgnet_\w+):([\w.]+)"', cmake))


def launch_arguments() -> list[str]:
    launch = (ROOT / "launch" / "sgnet.launch.py").read_text(encoding="utf-8")
    return re.findall(r'DeclareLaunchArgument\("(\w+)"', launch)


def parser_of(module_name: str) -> argparse.ArgumentParser:
    """The parser of the program a module runs: its own build_parser, or that of the module its main comes from;
    the node's is sgnet_ros.params.build_parser (the node module itself imports rclpy and torch)."""
    if module_name in ("sgnet_ros.node", "sgnet_ros.node_program"):
        module_name = "sgnet_ros.params"
    module = importlib.import_module(module_name)
    if not hasattr(module, "build_parser"):
        module = sys.modules[module.main.__module__]
    return module.build_parser()


def script_parser(path: Path) -> argparse.ArgumentParser | None:
    spec = importlib.util.spec_from_file_location(f"docs_script_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # a dataclass in the script looks its module up there
    spec.loader.exec_module(module)
    return getattr(module, "build_parser", lambda: None)()


def option_strings(parser: argparse.ArgumentParser) -> set[str]:
    """Every flag of the parser and of its subcommands."""
    flags = set()
    for action in parser._actions:
        flags.update(action.option_strings)
        if isinstance(action, argparse._SubParsersAction):
            for subparser in action.choices.values():
                flags |= option_strings(subparser)
    return flags


def subcommands(parser: argparse.ArgumentParser) -> set[str] | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    return None


def parameter_names() -> set[str]:
    from sgnet_ros.params import parameter_names as names

    return set(names()) | ROS_PARAMETERS_OF_RCLPY


def check_arguments(parser: argparse.ArgumentParser, arguments: list[str], command: Command) -> list[str]:
    """What is wrong with ``arguments`` for ``parser``: unknown flags, an unknown subcommand, unknown ROS
    parameters after --ros-args, and for a runnable fenced line, whatever the parser itself refuses."""
    problems = []
    if "--ros-args" in arguments:
        ros = arguments[arguments.index("--ros-args") + 1:]
        arguments = arguments[:arguments.index("--ros-args")]
        for flag, value in zip(ros, ros[1:]):
            if flag == "-p" and ":=" in value and value.split(":=")[0] not in parameter_names():
                problems.append(f"the node has no parameter {value.split(':=')[0]!r}")
    known = option_strings(parser)
    for token in arguments:
        flag = token.strip("[]()").split("=")[0]
        if flag.startswith("-") and flag not in ("-", "--") and not re.fullmatch(r"-[\d.]+", flag) \
                and flag not in known:
            problems.append(f"{parser.prog} has no flag {flag}")
    choices = subcommands(parser)
    positional = next((t for t in arguments if not t.startswith("-")), None)
    if choices is not None and positional is not None and arguments[0] == positional \
            and re.fullmatch(r"[a-z]+", positional) and positional not in choices:
        problems.append(f"{parser.prog} has no subcommand {positional} (it has {sorted(choices)})")
    if command.fenced and not problems and not NOTATION.search(command.text):
        refused = io.StringIO()
        with contextlib.redirect_stderr(refused), contextlib.redirect_stdout(io.StringIO()):
            try:
                parser.parse_args(arguments)
            except SystemExit as exit_:
                if exit_.code:
                    problems.append(refused.getvalue().strip().splitlines()[-1])
    return problems


def check_module(module: str, arguments: list[str], command: Command) -> list[str]:
    if module.split(".")[0] not in OUR_PACKAGES:
        return []
    if importlib.util.find_spec(module) is None:
        return [f"no module {module}"]
    return check_arguments(parser_of(module), arguments, command)


def check_program(part: list[str], command: Command) -> list[str]:
    """What is wrong with one program and its arguments (programs that are not ours are not checked)."""
    while part and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", part[0]):  # environment assignments
        part = part[1:]
    if not part:
        return []
    program, arguments = part[0], part[1:]
    if program.startswith("sgnet-"):
        scripts = console_scripts()
        if program not in scripts:
            return [f"no console script {program} (setup.py has {sorted(scripts)})"]
        return check_arguments(parser_of(scripts[program]), arguments, command)
    if program in ("python", "python3", "torchrun"):
        if "-m" in arguments:
            at = arguments.index("-m")
            return check_module(arguments[at + 1], arguments[at + 2:], command) if at + 1 < len(arguments) else []
        script = next((a for a in arguments if a.endswith(".py")), None)
        if script is None or program == "torchrun":
            return []
        path = ROOT / script
        if not path.is_file():
            return [f"no file {script}"]
        parser = script_parser(path)
        return check_arguments(parser, arguments[arguments.index(script) + 1:], command) if parser else []
    if program == "bash" and arguments and arguments[0].startswith("scripts/"):
        return [] if (ROOT / arguments[0]).is_file() else [f"no file {arguments[0]}"]
    if program == "ros2" and arguments[:2] == ["run", "sgnet_ros"] and len(arguments) > 2:
        executables = ros2_executables()
        if arguments[2] not in executables:
            return [f"no executable {arguments[2]} in lib/sgnet_ros (CMakeLists.txt has {sorted(executables)})"]
        return check_module(executables[arguments[2]], arguments[3:], command)
    if program == "ros2" and arguments[:2] == ["launch", "sgnet_ros"] and len(arguments) > 2:
        if not (ROOT / "launch" / arguments[2]).is_file():
            return [f"no launch file launch/{arguments[2]}"]
        declared = launch_arguments()
        return [f"the launch file has no argument {a.split(':=')[0]}" for a in arguments[3:]
                if ":=" in a and a.split(":=")[0] not in declared]
    if program == "pip" and arguments[:1] == ["install"]:
        return [f"{a} asks the package index: install the checkout's extras with pip install '.[...]'"
                for a in arguments[1:] if "[" in a and not a.strip("'\"").startswith(".")]
    return []


def problems_of(command: Command) -> list[str]:
    return [f"{command.where()}\n    {problem}" for part in words(command) for problem in check_program(part, command)]


def all_commands() -> list[Command]:
    return [command for page in PAGES for command in commands(page)]


def test_every_documented_command_exists_with_flags_its_parser_takes():
    found = all_commands()
    assert len(found) > 100  # README and docs hold well over a hundred commands: the reader finds them
    problems = [problem for command in found for problem in problems_of(command)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("line, problem", [
    ("sgnet-replay --bag bags/val --no-such-flag", "has no flag --no-such-flag"),
    ("sgnet-bag ytvis --annotations a.json -o out", "the following arguments are required: --frames"),
    ("sgnet-frobnicate --fast", "no console script sgnet-frobnicate"),
    ("python -m training.no_such_module --help", "no module training.no_such_module"),
    ("sgnet-node --ros-args -p no_such_parameter:=1", "no parameter 'no_such_parameter'"),
    ("ros2 launch sgnet_ros sgnet.launch.py no_such_argument:=1", "no argument no_such_argument"),
    ("pip install 'sgnet_ros[runtimes]'", "pip install '.[...]'"),
])
def test_the_check_fails_on_a_broken_line(line: str, problem: str):
    problems = problems_of(Command("example.md", 1, line, fenced=True))
    assert any(problem in p for p in problems), problems


def table_rows(page: str, heading: str) -> list[str]:
    """The rows of the first table under ``heading`` in ``page``."""
    text = (ROOT / page).read_text(encoding="utf-8")
    section = text.split(heading, 1)[1]
    rows = []
    for line in section.split("\n"):
        if line.startswith("|"):
            rows.append(line)
        elif rows:
            break
    return rows


def test_the_parameter_table_is_what_params_py_declares():
    from sgnet_ros.tools.params_table import BEGIN, END, parameter_table

    page = (ROOT / "docs" / "ros.md").read_text(encoding="utf-8")
    table = page.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert table == parameter_table(), "docs/ros.md: python -m sgnet_ros.tools.params_table --write docs/ros.md"


def test_the_launch_argument_table_is_what_the_launch_file_declares():
    rows = table_rows("docs/ros.md", "### Launch arguments")[2:]
    documented = [re.match(r"\| `(\w+)`", row).group(1) for row in rows]
    assert sorted(documented) == sorted(launch_arguments())


def test_module_paths_named_in_docs_exist():
    """Every ``sgnet_model/...``, ``sgnet_ros/...``, ``training/...`` file path the pages name is in the tree."""
    folders = "sgnet_model|sgnet_ros|training|scripts|config|launch|test"
    pattern = re.compile(rf"(?<![/\w])((?:{folders})/[\w/.]+\.(?:py|sh|yaml|xml))")
    missing = []
    for page in PAGES:
        for path in pattern.findall(page.read_text(encoding="utf-8")):
            if not (ROOT / path).exists():
                missing.append(f"{page.relative_to(ROOT)}: {path}")
    assert not missing, "\n".join(missing)
