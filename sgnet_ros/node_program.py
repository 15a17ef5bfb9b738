"""The ``sgnet-node`` console script. It owns the stop signals before anything heavy is imported: the node module
imports rclpy and torch, which takes seconds, and a terminal's Ctrl-C in those seconds would otherwise end the
program with a KeyboardInterrupt traceback. Until the node installs its own handlers (sgnet_ros/node.py), a stop
signal ends the process at once with status 0, as ``python -m sgnet_ros.node`` does."""
import os
import signal
import sys

from sgnet_ros.startup_trace import startup_trace


def main() -> int:
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda signum, frame: os._exit(0))  # nothing is running yet that needs stopping
    startup_trace("stop signals handled")
    from sgnet_ros import node

    return node.main()


if __name__ == "__main__":
    sys.exit(main())
