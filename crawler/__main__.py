"""``python -m crawler``: the command line.

SIGTERM and SIGHUP mean what SIGINT means from here on: while the command line's
modules load, a signal is one line and exit 130 (not a traceback, not death by the
signal's default action); during a crawl the engine's receiver takes all three (pending
again, the summary, the resume line).  The ``crawler`` package imports nothing on its
own (its names load on first use), so these handlers are in place a few milliseconds
after the interpreter starts; a signal before that takes its default action, with
nothing started.
"""

import os
import signal
import sys


def _as_sigint(signum: int, frame: object) -> None:
    # What SIGINT's handler would do: trio's inside trio.run (it knows where a
    # KeyboardInterrupt may be raised), else Python's.  Not signal.raise_signal(SIGINT):
    # a process started in the background of a shell script has SIGINT ignored, and the
    # SIGTERM would be lost.
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signal.SIGINT, frame)
    else:
        raise KeyboardInterrupt


for _signal in (signal.SIGTERM, signal.SIGHUP):
    signal.signal(_signal, _as_sigint)


def _exit(code: int) -> None:
    if code != 130:
        sys.exit(code)
    # Interrupted: leave with 130 itself, not through the interpreter's exit.  CPython
    # (3.11) remembers a KeyboardInterrupt raised inside code run by exec() on a string
    # (dataclasses and attrs make their methods so, at import) even once it was caught,
    # and then ends the process by SIGINT (-2) instead of the code given.  Everything
    # was closed by now; only the streams are left to flush (the log's handler writes
    # to stderr and flushes each line; logging.shutdown() could wait on a lock the
    # interrupted code held).
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass  # a closed or broken terminal: the exit code still says what happened
    os._exit(130)


try:
    from crawler.cli import main

    code = main()  # a crawl's interruption is its own (the summary, the resume line, 130)
except KeyboardInterrupt:  # while the modules load or the command line is read
    try:
        print("crawler: interrupted while starting; nothing was crawled", file=sys.stderr)
    except (OSError, ValueError):
        pass  # a closed terminal: the exit code says it
    code = 130
_exit(code)
