"""``python -m crawler``: the command line.

SIGTERM and SIGHUP mean what SIGINT means from here on: while the command line's
modules load, a signal is one line and exit 130 (not a traceback, not death by the
signal's default action); during a crawl the engine's own handler takes over (pending
again, the summary, the resume line); after it, the same one line.  (Python imports the
``crawler`` package before this module runs: a signal in those first few hundred
milliseconds still takes its default action.)
"""

import signal
import sys


def _as_sigint(signum: int, frame: object) -> None:
    signal.raise_signal(signal.SIGINT)  # whoever handles SIGINT now (trio during a crawl) handles it


for _signal in (signal.SIGTERM, signal.SIGHUP):
    signal.signal(_signal, _as_sigint)

try:
    from crawler.cli import main
except KeyboardInterrupt:
    print("crawler: interrupted while starting; nothing was crawled", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
