"""docs/ros.md's table of the node's parameters, generated from sgnet_ros/params.py (names, defaults, ranges, choices,
when they apply, descriptions), so that the page cannot drift from what the node declares.

    python -m sgnet_ros.tools.params_table                       # print the table
    python -m sgnet_ros.tools.params_table --write docs/ros.md   # replace the table between its markers

test/test_docs.py checks that docs/ros.md holds the table this prints.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from sgnet_ros.params import (CHOICES, DESCRIPTIONS, LIVE, RANGES, READ_ONLY, checkpoint_parameter_types,
                              parameter_defaults)

BEGIN = "<!-- parameter table: generated from sgnet_ros/params.py by python -m sgnet_ros.tools.params_table -->"
END = "<!-- end of the parameter table -->"
LARGEST_INT32 = 2**31 - 1


def default_text(name: str) -> str:
    """The default as the table shows it: JSON for strings, booleans and lists; whose default for the
    checkpoint's parameters."""
    defaults = parameter_defaults()
    if name not in defaults:
        return "checkpoint" if name.startswith("model.") else "profile"
    value = defaults[name]
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return f"`{value!r}`" if number else f"`{json.dumps(value)}`"


def number_text(value: float) -> str:
    return "2^31-1" if value == LARGEST_INT32 else f"{value:g}"


def range_text(name: str) -> str:
    """Its range or its choices, then "live" or "read-only" where it applies at once or at start only."""
    parts = []
    if name in RANGES:
        low, high = RANGES[name]
        parts.append(f"{number_text(low)}-{number_text(high)}")
    if name in CHOICES:
        parts.append(", ".join(CHOICES[name]))
    if name in LIVE:
        parts.append("live")
    if name in READ_ONLY:
        parts.append("read-only")
    return ", ".join(parts)


def markdown_text(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def parameter_table() -> str:
    """The table, one row per parameter in the order the node declares them."""
    rows = ["| parameter | default | range | meaning |", "|---|---|---|---|"]
    for name in (*parameter_defaults(), *checkpoint_parameter_types()):
        cells = (f"`{name}`", default_text(name), range_text(name), markdown_text(DESCRIPTIONS[name]))
        rows.append("| " + " | ".join(cells).replace("|  |", "| |") + " |")
    return "\n".join(rows)


def with_table(page: str) -> str:
    """``page`` with the text between its BEGIN and END markers replaced by the table."""
    if BEGIN not in page or END not in page:
        raise ValueError(f"the page lacks the markers {BEGIN!r} and {END!r}")
    before, rest = page.split(BEGIN, 1)
    after = rest.split(END, 1)[1]
    return f"{before}{BEGIN}\n{parameter_table()}\n{END}{after}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sgnet_ros.tools.params_table",
                                     description="Print the node's parameter table (markdown) from "
                                                 "sgnet_ros/params.py.")
    parser.add_argument("--write", type=Path, metavar="PAGE",
                        help="replace the table between the page's markers instead of printing it")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.write is None:
        print(parameter_table())
        return 0
    try:
        args.write.write_text(with_table(args.write.read_text(encoding="utf-8")), encoding="utf-8")
    except (OSError, ValueError) as error:
        print(f"params_table: error: {args.write}: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
