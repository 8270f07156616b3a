"""Where a notebook runs: under papermill (headless: one line per epoch, no widgets) or in a live Jupyter kernel
(progress bars and viewers), read from the process tree papermill leaves, since papermill sets no variable."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any


def _papermill_output_path() -> Path | None:
    """The notebook papermill is writing, read from the parent process's command line (papermill starts the
    kernel) or from an injected PAPERMILL_OUTPUT_PATH; None when not run by the papermill CLI."""
    main = sys.modules.get("__main__")
    injected = getattr(main, "PAPERMILL_OUTPUT_PATH", None) or os.environ.get("LESIONKIT_NOTEBOOK_OUTPUT")
    if injected:
        return Path(injected).resolve()
    try:
        cmd = Path(f"/proc/{os.getppid()}/cmdline").read_bytes().split(b"\0")
        cwd = Path(os.readlink(f"/proc/{os.getppid()}/cwd"))
    except OSError:
        return None
    args = [a.decode(errors="replace") for a in cmd if a]
    starts = [i for i, a in enumerate(args) if is_papermill_arg(a)]
    if not starts:
        return None
    positional = _papermill_positionals(args[starts[0] + 1:])
    if len(positional) < 2 or positional[1] == "-":
        return None
    out = Path(positional[1])
    return out if out.is_absolute() else (cwd / out).resolve()


def is_papermill_arg(arg: str) -> bool:
    """True for the argument of a command line that starts papermill (its script or ``-m papermill``'s main)."""
    return Path(arg).name == "papermill" or arg.endswith("papermill/__main__.py")


_PM_TWO = {"-p", "--parameters", "-r", "--parameters_raw"}
_PM_ONE = {"-f", "--parameters_file", "-y", "--parameters_yaml", "-b", "--parameters_base64", "-k", "--kernel",
           "-l", "--language", "--cwd", "--engine", "--log-level", "--start-timeout", "--start_timeout",
           "--execution-timeout", "--stdout-file", "--stderr-file", "--autosave-cell-every"}


def _papermill_positionals(args: list[str]) -> list[str]:
    out, i = [], 0
    while i < len(args):
        a = args[i]
        if a in _PM_TWO:
            i += 3
        elif a in _PM_ONE:
            i += 2
        elif a.startswith("-") and a != "-":
            i += 1
        else:
            out.append(a)
            i += 1
    return out


def in_live_kernel() -> bool:
    """True in an interactive Jupyter kernel (JupyterLab, Notebook), False in a script or under papermill, so
    progress bars and widgets show where someone looks and one line per epoch is printed elsewhere."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None or type(shell).__name__ != "ZMQInteractiveShell":
        return False
    return _papermill_output_path() is None


def interactive_on(value: bool | str) -> bool:
    """An ``interactive`` setting resolved: true / false as given, "auto" on in a live Jupyter kernel (off under
    papermill or in a script)."""
    return value if isinstance(value, bool) else bool(in_live_kernel())


def local_kernel_config() -> Any:
    """Kernel-manager settings for a notebook run headless on this machine (the demo): IPC sockets on POSIX instead
    of TCP on localhost, so ipykernel has no reason to warn "Kernel is running over TCP without encryption" once per
    notebook; the kernel's real warnings still show. Elsewhere (Windows has no IPC transport) TCP stays."""
    from traitlets.config import Config  # lazy: only when a notebook is launched

    config = Config()
    if os.name == "posix":
        config.KernelManager.transport = "ipc"
    return config
