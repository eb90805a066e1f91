"""One Chromium per test process, for the tests where a fresh browser adds nothing.

A launch costs about half a second of CPU (the browser, its zygote, a GPU and a
network process) and as much again to stop.  Tests that only need *a* browser, each
working in a browser context of its own, attach to this one instead (``cdp.connect``
over its DevTools port on 127.0.0.1), so the suite pays one launch per test process.

The browser is launched by ``cdp.launch`` itself, in a trio loop on a thread of its
own that lives for the whole session (pytest-trio gives each test its own loop, so no
test's loop may own it); the session's end stops it as ``cdp.launch`` stops any
browser.  Tests that check how a browser starts, stops, crashes or leaks keep
launching their own.
"""

from __future__ import annotations

import threading

import trio

import cdp
from tests.cdp.conftest import WITH_DEVTOOLS_PORT, devtools_ws_url, profile_dir_of

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0

# The pids and profile folders of this process's shared browsers: the fault tests, which
# count every Chromium process below the test process as their crawl's, leave them out.
SHARED_PIDS: set[int] = set()
SHARED_PROFILES: set[str] = set()


class SharedChromium:
    """A Chromium launched on a background thread; :attr:`url` is its DevTools websocket."""

    def __init__(self) -> None:
        self.url = ""
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="shared-chromium", daemon=True)

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S):
            raise RuntimeError(f"the shared Chromium did not start within {START_TIMEOUT_S:g} s")
        if self._error is not None:
            raise RuntimeError(f"the shared Chromium did not start: {self._error!r}") from self._error

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(STOP_TIMEOUT_S)

    def _run(self) -> None:
        try:
            trio.run(self._serve)
        except BaseException as exc:  # reported to start(); the thread ends
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        async with cdp.launch(args=WITH_DEVTOOLS_PORT) as browser:
            self.url = await devtools_ws_url(browser)
            assert browser.pid is not None
            SHARED_PIDS.add(browser.pid)
            SHARED_PROFILES.add(str(profile_dir_of(browser.pid)))
            self._ready.set()
            await trio.to_thread.run_sync(self._stop.wait, abandon_on_cancel=True)
