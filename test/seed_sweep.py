"""The seed sweep: the tests that judge the trained model's figures (marker ``figures``), once per training seed.

Each CPU kind trains other weights from the same seed (other kernels round otherwise); other seeds stand in for
other CPUs. A bar is set below the worst seed with a margin, so that it holds on a machine the suite has not met.

    .venv/bin/python test/seed_sweep.py --seeds 0 1 2 3 4 --output output/seed_sweep

runs ``pytest -m figures`` with ``SGNET_TEST_MODEL_SEED`` set to each seed (each model trained once into the
suite's cache, test/session_model.py), collects every figure the tests record (``model_figures`` in
test/conftest.py: value, bar and direction) and prints a markdown table: each figure's bar, its value per seed,
the worst and the margin from the worst to the bar. Failing tests do not stop the sweep: their figures are what
it is for. Exit status 1 when a figure misses its bar on some seed. The models train as the suite's do (bf16 on a
CPU with native bf16); ``--fp32`` trains them in fp32, the stand-in for a CPU without bf16:

    .venv/bin/python test/seed_sweep.py --fp32 --seeds 0 1 2 3 4 --output output/seed_sweep_fp32
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_seed(seed: int, output: Path, fp32: bool, pytest_args: list[str]) -> subprocess.Popen:
    figures = output / f"seed{seed}.jsonl"
    figures.unlink(missing_ok=True)
    log = open(output / f"seed{seed}.log", "w")
    return subprocess.Popen([sys.executable, "-m", "pytest", "-m", "figures", "-p", "no:cacheprovider", "-q",
                             *pytest_args], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "SGNET_TEST_MODEL_SEED": str(seed), "SGNET_TEST_MODEL_AMP": str(int(not fp32)),
                                 "SGNET_MODEL_FIGURES": str(figures)})


def table(output: Path, seeds: list[int]) -> tuple[str, bool]:
    """The markdown table of every recorded figure, and whether all held their bars."""
    values: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
    bars: dict[tuple[str, str], tuple[str, float]] = {}
    for seed in seeds:
        path = output / f"seed{seed}.jsonl"
        for line in path.read_text().splitlines() if path.exists() else []:
            record = json.loads(line)
            key = (record["test"].split("::", 1)[1], record["figure"])
            values[key][seed] = record["value"]
            bars[key] = (record["direction"], record["bar"])
    rows = [f"| test | figure | bar | {' | '.join(f'seed {s}' for s in seeds)} | worst | margin |",
            "|---|---|---|" + "---|" * len(seeds) + "---|---|"]
    held = True
    for key in sorted(values):
        direction, bar = bars[key]
        got = values[key]
        worst = (min if direction == ">=" else max)(got.values())
        margin = worst - bar if direction == ">=" else bar - worst
        held &= margin >= 0 and len(got) == len(seeds)
        cells = " | ".join(f"{got[s]:.3f}" if s in got else "-" for s in seeds)
        rows.append(f"| {key[0]} | {key[1]} | {direction} {bar:g} | {cells} | {worst:.3f} | {margin:+.3f} |")
    return "\n".join(rows), held


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="other arguments go to pytest (e.g. -x, -k ...)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--output", type=Path, default=ROOT / "output" / "seed_sweep")
    parser.add_argument("--jobs", type=int, default=1, help="seeds run at once (each trains on 2 threads)")
    parser.add_argument("--fp32", action="store_true",
                        help="train in fp32 where the CPU has native bf16 (a stand-in for a CPU without it)")
    parser.add_argument("--table-only", action="store_true", help="print the table of an earlier sweep")
    return parser


def main(argv: list[str] | None = None) -> int:
    args, pytest_args = build_parser().parse_known_args(argv)
    args.output.mkdir(parents=True, exist_ok=True)
    if not args.table_only:
        pending = list(args.seeds)
        running: list[tuple[int, subprocess.Popen]] = []
        while pending or running:
            while pending and len(running) < args.jobs:
                seed = pending.pop(0)
                print(f"[seed-sweep] seed {seed}: pytest -m figures (log {args.output / f'seed{seed}.log'})",
                      file=sys.stderr)
                running.append((seed, run_seed(seed, args.output, args.fp32, pytest_args)))
            seed, process = running.pop(0)
            print(f"[seed-sweep] seed {seed}: pytest exit {process.wait()}", file=sys.stderr)
    text, held = table(args.output, args.seeds)
    print(text)
    return 0 if held else 1


if __name__ == "__main__":
    sys.exit(main())
