"""The node programs' start, step by step, for whoever must act at a known point of it. With the environment
variable SGNET_STARTUP_TRACE set, both node programs (``sgnet-node``, sgnet_ros/node_program.py, and ``python -m
sgnet_ros.node``) write a line to stderr at each step ("sgnet-node: stop signals handled" once a stop signal ends
the process cleanly, "sgnet-node: imports done" when the node's main() starts): test_shutdown.py signals them at a
known point of their start. Light on purpose (os and sys only): it runs before the heavy imports."""
import os
import sys


def startup_trace(step: str) -> None:
    """One line on stderr naming a step of the node program's start, when SGNET_STARTUP_TRACE is set."""
    if os.environ.get("SGNET_STARTUP_TRACE"):
        print(f"sgnet-node: {step}", file=sys.stderr, flush=True)
