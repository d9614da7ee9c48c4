"""What a command does with an error nobody planned for.

A biologist should not have to read a stack trace, and a developer should not have to ask for
one: the user gets one plain line that says it is a bug (not their data), what they still have
(no partial file: every output is written atomically; training: its saved checkpoints), and
where the details were saved; the traceback goes to a report they can attach to a bug report.
``DEBLUR_TRACEBACK=1`` also prints it.
"""

from __future__ import annotations

import os
import platform
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from core import __version__
from core.io import atomic_write

__all__ = ["log_dir", "save_traceback", "internal_error", "is_out_of_memory", "TRACEBACK_ENV",
           "LOG_DIR_ENV"]

#: set to 1 to print the traceback as well (for developers)
TRACEBACK_ENV = "DEBLUR_TRACEBACK"
#: where the reports go, if not the user's cache folder
LOG_DIR_ENV = "DEBLUR_LOG_DIR"
#: reports kept per folder; older ones are removed so the folder never grows without end
KEEP_REPORTS = 20


def log_dir() -> Path:
    """The folder for error reports: $DEBLUR_LOG_DIR, else the user's cache folder
    (%LOCALAPPDATA% on Windows, ~/Library/Caches on macOS, $XDG_CACHE_HOME or ~/.cache)."""
    if os.environ.get(LOG_DIR_ENV):
        return Path(os.environ[LOG_DIR_ENV])
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        base = Path(os.environ["LOCALAPPDATA"])
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "deblur" / "logs"


def _prune(folder: Path, prog: str) -> None:
    reports = sorted(folder.glob(f"{prog}-*.log"), key=lambda p: p.stat().st_mtime)
    for old in reports[:-KEEP_REPORTS]:
        try:
            old.unlink()
        except OSError:
            pass


def save_traceback(prog: str, exc: BaseException, argv: Sequence[str] | None = None) -> Path | None:
    """Write `exc`'s traceback with the version, platform and command line to a new report in
    `log_dir()`; returns its path, or None when no report could be written (a full or
    read-only disk must not turn one error into two)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    text = "".join([
        f"{prog} {__version__}, Python {platform.python_version()}, {platform.platform()}\n",
        f"time: {time.strftime('%Y-%m-%d %H:%M:%S %z')}\n",
        f"command: {' '.join([prog, *(argv or [])])}\n\n",
        *traceback.format_exception(type(exc), exc, exc.__traceback__),
    ])
    try:
        folder = log_dir()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{prog}-{stamp}-{os.getpid()}.log"
        with atomic_write(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
        _prune(folder, prog)
        return path
    except OSError:
        return None


def is_out_of_memory(exc: BaseException) -> bool:
    """MemoryError, or a device (CUDA, MPS) that says it ran out of memory."""
    return isinstance(exc, MemoryError) or "out of memory" in str(exc).lower()


def internal_error(prog: str, exc: BaseException, argv: Sequence[str] | None = None, *,
                   kept: str = "no partial file was left",
                   memory_advice: str = "try a smaller --tile, fewer regions, or another device") -> int:
    """Report an unexpected exception in plain words on stderr; returns exit status 1.
    `kept` says what the user still has (training: its saved checkpoints), `memory_advice`
    what to change when memory ran out.

    Running out of memory is not a bug: it gets advice instead of a report."""
    if is_out_of_memory(exc):
        print(f"{prog}: error: there was not enough memory for this run; {memory_advice}; {kept}.",
              file=sys.stderr)
        return 1
    report = save_traceback(prog, exc, argv)
    where = (f"The details are in {report}; please attach that file to a bug report."
             if report else "The details could not be saved; run again with "
                            f"{TRACEBACK_ENV}=1 to see them.")
    summary = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    print(f"{prog}: internal error ({type(exc).__name__}{': ' + summary if summary else ''}). "
          f"This is a fault in {prog}, not a problem with your data; {kept}. "
          f"{where}", file=sys.stderr)
    if os.environ.get(TRACEBACK_ENV, "") not in ("", "0"):
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    return 1
