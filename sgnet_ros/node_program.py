"""The ``sgnet-node`` console script. It owns the stop signals before anything heavy is imported: the node module
imports rclpy and torch, which takes seconds, and a terminal's Ctrl-C in those seconds would otherwise end the
program with a KeyboardInterrupt traceback. Until the node installs its own handlers (sgnet_ros/node.py), a stop
signal ends the process at once with status 0, as ``python -m sgnet_ros.node`` does.

With the environment variable SGNET_STARTUP_TRACE set, both node programs (this one and ``python -m
sgnet_ros.node``) write a line to stderr at each step of their start ("sgnet-node: stop signals handled" once the
handler above is in place, "sgnet-node: imports done" when the node's main() starts): test_shutdown.py signals
them at a known point of their start."""
import os
import signal
import sys


def startup_trace(step: str) -> None:
    """One line on stderr naming a step of the node program's start, when SGNET_STARTUP_TRACE is set."""
    if os.environ.get("SGNET_STARTUP_TRACE"):
        print(f"sgnet-node: {step}", file=sys.stderr, flush=True)


def main() -> int:
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda signum, frame: os._exit(0))  # nothing is running yet that needs stopping
    startup_trace("stop signals handled")
    from sgnet_ros import node

    return node.main()


if __name__ == "__main__":
    sys.exit(main())
