"""How a run that does not finish still says how it ended, in run.json's `ended` and `error`.

A notebook run can stop in four ways besides completing, and each is recorded before the process goes:
- a cell raises (``ended: "exception"``), Ctrl-C included (``"interrupted"``): IPython's custom exception hook;
- SIGTERM or SIGHUP to the kernel or script (``"signal SIGTERM"``): a signal handler, which then re-raises the signal;
- papermill (or the Jupyter server) is stopped by any signal (``"parent exited"``): its kernel gets no signal, only
  ipykernel's parent poller, which would ``os._exit`` within a second, whatever it interrupts; a watcher thread takes
  over that poller's job (polls the parent every 50 ms, marks the run, links papermill's last autosave of the
  notebook into the record, then exits the kernel the same way).
A hard kill of the kernel (SIGKILL, power loss) cannot write anything: `runs.run_status` reads such a record, still
"running" with a dead pid, as "interrupted".
"""
from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from lesionkit.utils.kernel import is_papermill_arg

PARENT_POLL_S = 0.05
HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def guard(run: Any) -> None:
    """Install every watcher above for `run` (call from the main thread, right after the record opens)."""
    _watch_ipython_errors(run)
    _on_signals(run)
    _watch_parent(run)
    _quiet_closed_socket_errors()


def ending_of(exc: BaseException) -> str:
    if type(exc).__name__ == "TrialPruned":  # optuna's: a sweep's pruner stopped this trial
        return "pruned"
    return "interrupted" if isinstance(exc, KeyboardInterrupt) else "exception"


def _watch_ipython_errors(run: Any) -> None:
    """In IPython, mark the run failed when any later cell raises (KeyboardInterrupt included), then show the
    usual traceback. Outside IPython, use `with run:` instead."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return

    def handler(self: Any, etype: type, value: BaseException, tb: Any, tb_offset: int | None = None) -> Any:
        if run.info.get("status") == "running":
            run.fail(value)
        self.showtraceback((etype, value, tb), tb_offset=tb_offset)
        return None

    shell.set_custom_exc((BaseException,), handler)


def _on_signals(run: Any) -> None:
    """SIGTERM / SIGHUP (a job scheduler's time-out, `kill PID`, a closed terminal) mark the run failed, then the
    signal's previous disposition runs, so the process still ends the way its sender expects."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in HANDLED_SIGNALS:
        previous = signal.getsignal(sig)

        def handler(signum: int, frame: Any, previous: Any = previous) -> None:
            name = signal.Signals(signum).name
            if run.info.get("status") == "running":
                run.fail(SystemExit(f"terminated by signal {signum} ({name})"), ended=f"signal {name}")
            signal.signal(signum, previous if callable(previous) else signal.SIG_DFL)
            os.kill(os.getpid(), signum)

        signal.signal(sig, handler)


def _parent_name(pid: int) -> str:
    try:
        args = [a.decode(errors="replace") for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]
    except OSError:
        return f"the parent process (pid {pid})"
    if any(is_papermill_arg(a) for a in args):
        return f"papermill (pid {pid})"
    if any("jupyter" in Path(a).name for a in args):
        return f"the Jupyter server (pid {pid})"
    return f"{Path(args[0]).name if args else 'the parent process'} (pid {pid})"


_WATCHED: list[Any] = []  # runs of this kernel the parent watcher marks (one thread, however many runs)


class _TakenOver:
    """Stands in for ipykernel's ``ParentPollerUnix.parent_pid``: it equals every pid, so that poller never fires
    (it would ``os._exit`` at a moment of its choosing, possibly before the run is marked); the watcher below does
    its job instead: mark the runs, then ``os._exit(1)`` as ipykernel would."""

    def __bool__(self) -> bool:
        return True

    def __eq__(self, other: object) -> bool:
        return True

    def __ne__(self, other: object) -> bool:
        return False

    __hash__ = object.__hash__


def _take_over_ipykernel_poller(parent: int) -> bool:
    try:
        from ipykernel.kernelapp import IPKernelApp
        from ipykernel.parentpoller import ParentPollerUnix
    except ImportError:
        return False
    if not IPKernelApp.initialized():
        return False
    poller = getattr(IPKernelApp.instance(), "poller", None)
    if isinstance(poller, ParentPollerUnix) and (isinstance(poller.parent_pid, _TakenOver)
                                                 or poller.parent_pid in (parent, 0)):
        poller.parent_pid = _TakenOver()
        return True
    return False


def _watch_parent(run: Any) -> None:
    """Only in a kernel a Jupyter client started (JPY_PARENT_PID is its parent): there the parent's end is the
    kernel's end. A script's parent is a shell, whose end is not the run's."""
    parent = os.getppid()
    if os.environ.get("JPY_PARENT_PID") != str(parent):
        return
    _WATCHED.append(run)
    if any(t.name == "lesionkit-parent-watch" for t in threading.enumerate()):
        return
    who = _parent_name(parent)
    exit_after = _take_over_ipykernel_poller(parent)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        try:
            for r in _WATCHED:
                if r.info.get("status") == "running":
                    r.fail(SystemExit(f"{who} exited before the notebook finished: it was stopped by a signal "
                                      "(SIGTERM, SIGHUP, SIGKILL) or crashed, and its kernel shuts down with it"),
                           ended="parent exited")
        finally:
            if exit_after:
                os._exit(1)

    threading.Thread(target=watch, name="lesionkit-parent-watch", daemon=True).start()


class _ClosedSocketFilter(logging.Filter):
    """Drops the one traceback ipykernel logs when papermill closes the kernel's sockets mid-reply after Ctrl-C
    ("Socket operation on non-socket"): the run's record already says it was interrupted."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (type(exc).__name__ == "ZMQError" and "non-socket" in str(exc))


def _quiet_closed_socket_errors() -> None:
    try:
        from IPython import get_ipython
    except ImportError:
        return
    kernel = getattr(get_ipython(), "kernel", None)
    log = getattr(kernel, "log", None)
    if isinstance(log, logging.Logger) and not any(isinstance(f, _ClosedSocketFilter) for f in log.filters):
        log.addFilter(_ClosedSocketFilter())
