"""A process that imports what the node program imports once (torch, torchvision, the model package: 3.3 of the
3.7 s a node takes to start on a 2-core machine), then forks a node program for each request: the ROS tests start
their nodes in about a second instead of four. Each child is a process of its own with its own DDS
participant, runs ``python -m sgnet_ros.node``'s code as that command does (``runpy``, ``__main__``) and ends the
same way; only the interpreter's start and the imports above are shared.

What a fresh interpreter would read at import time from the environment is set again in the child: the torch
thread count from ``OMP_NUM_THREADS`` (libgomp read the zygote's at load). ROS and DDS read theirs at
``rclpy.init``, after the child's environment is in place (rclpy is not imported here, so that no DDS thread exists
when the zygote forks), nor is OpenCV (its worker threads would not survive the fork: a child hung in its first
decode). Tests of the program's own start (a Ctrl-C during the imports, the console script) start a
fresh interpreter instead (``NodeProcess(fresh_interpreter=True)``).

Protocol, one line of JSON a request on stdin:
``{"module", "arguments", "environment", "cwd", "log", "new_session"}``; on stdout ``started <pid>`` for each
request in order, and ``exited <pid> <code>`` when a child ends (its exit code as ``subprocess`` gives it: minus the
signal's number for a child killed by one). The zygote ends when its stdin closes (the test run ended), killing
any node still running then.
"""
from __future__ import annotations

import importlib
import json
import os
import runpy
import selectors
import signal
import sys
import traceback

PRELOADED = ("torch", "torchvision", "sgnet_model.predictor")
NOT_PRELOADED = ("cv2", "rclpy")  # threads of their own, which a fork would leave behind
CHILD_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD)


def run_child(request: dict, default_threads: int) -> int:
    """In the forked child: become the program (session, output, environment, arguments), then run its module as
    ``python -m`` does. Returns the exit code, as the interpreter would end with it."""
    import torch

    if request["new_session"]:
        os.setsid()
    log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    os.close(devnull)
    os.environ.clear()
    os.environ.update(request["environment"])
    os.chdir(request["cwd"])
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", default_threads)))
    sys.argv = [request["module"], *request["arguments"]]
    signal.signal(signal.SIGINT, signal.default_int_handler)  # a fresh interpreter's handlers
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, CHILD_SIGNALS)  # a signal sent since the fork is delivered now
    try:
        runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
        return 0
    except SystemExit as exit_:
        if exit_.code is None or isinstance(exit_.code, int):
            return exit_.code or 0
        print(exit_.code, file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # the interpreter ends by the signal itself, as a fresh one does
        traceback.print_exc()
        sys.stderr.flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
        return 1
    except BaseException:
        traceback.print_exc()
        return 1


def fork(request: dict, default_threads: int, inherited: list[int]) -> int:
    """The child's pid. The stop signals stay blocked from before the fork until the child has its handlers: a
    signal sent at once is delivered then, never lost to the zygote's own handling."""
    sys.stdout.flush()
    signal.pthread_sigmask(signal.SIG_BLOCK, CHILD_SIGNALS)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            signal.set_wakeup_fd(-1)
            for fd in inherited:
                os.close(fd)
            code = run_child(request, default_threads)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, CHILD_SIGNALS)
    return pid


def serve() -> None:
    for name in PRELOADED:
        importlib.import_module(name)
    if loaded := [name for name in NOT_PRELOADED if name in sys.modules]:
        sys.exit(f"node_zygote.py: {', '.join(loaded)} came with {', '.join(PRELOADED)}; their threads would not "
                 f"survive a fork: keep the preloaded modules free of them, or take them out of PRELOADED")
    import torch

    default_threads = torch.get_num_threads()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C stops the test run, which closes our stdin
    woken, wake = os.pipe()
    os.set_blocking(wake, False)
    signal.set_wakeup_fd(wake)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # wakes the selector through the pipe
    selector = selectors.DefaultSelector()
    selector.register(0, selectors.EVENT_READ)
    selector.register(woken, selectors.EVENT_READ)
    pending = b""
    running: set[int] = set()
    while True:
        for key, _ in selector.select():
            if key.fd == woken:
                os.read(woken, 4096)
                while True:
                    try:
                        pid, status = os.waitpid(-1, os.WNOHANG)
                    except ChildProcessError:
                        break
                    if pid == 0:
                        break
                    running.discard(pid)
                    print(f"exited {pid} {os.waitstatus_to_exitcode(status)}", flush=True)
                continue
            chunk = os.read(0, 65536)
            if not chunk:  # the test run ended: a node it left running would outlive it, with nobody to stop it
                for pid in running:
                    os.kill(pid, signal.SIGKILL)
                if running:
                    print(f"node_zygote.py: killed node processes left running by the tests: {sorted(running)}",
                          file=sys.stderr)
                return
            pending += chunk
            *lines, pending = pending.split(b"\n")
            inherited = [woken, wake, selector.fileno()]
            for line in lines:
                pid = fork(json.loads(line), default_threads, inherited)
                running.add(pid)
                print(f"started {pid}", flush=True)


if __name__ == "__main__":
    serve()
