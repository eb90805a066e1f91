"""The one exception hierarchy of the CDP client.

::

    CDPError
    ├── ProtocolError          the browser answered a command with an error (code, message)
    ├── CommandTimeout         no answer within the command's deadline
    ├── ConnectionLost         the link to the browser is gone (browser died, pipe or socket cut)
    ├── TargetClosed           the tab's target was closed or detached
    │   └── TargetCrashed      the tab's renderer crashed
    └── BrowserError           the browser could not be started, found or reached
        └── EndpointUnavailable  a DevTools HTTP endpoint never answered before the deadline

A transport (``cdp/_transport.py``) signals its end to the connection with
``TransportClosed``, which never reaches a caller: it becomes ConnectionLost.

Misuse (sending on a tab whose ``async with`` already exited) raises
``trio.ClosedResourceError``, as trio does: that is a bug in the caller, not a
failure of the browser.
"""

from __future__ import annotations

from ._util import redacted


class CDPError(Exception):
    """Base class of every error this package raises for a failure of the browser."""


class ProtocolError(CDPError):
    """The browser answered a command with an error object."""

    def __init__(self, method: str, code: int, message: str, data: str | None = None):
        self.method = method
        self.code = code
        self.message = message
        self.data = data
        detail = f" ({data})" if data else ""
        super().__init__(f"{method}: {message}{detail} [code {code}]")


class CommandTimeout(CDPError):
    """A command got no answer before its deadline. Its waiter is already removed."""

    def __init__(self, method: str, timeout_s: float):
        self.method = method
        self.timeout_s = timeout_s
        super().__init__(f"{method}: no answer within {timeout_s:g} s")


class ConnectionLost(CDPError):
    """The connection to the browser closed; no command on it can succeed any more."""


class TargetClosed(CDPError):
    """The target (tab) this command was addressed to is closed or detached."""


class TargetCrashed(TargetClosed):
    """The tab's renderer process crashed; its pending and later commands fail with this."""


class BrowserError(CDPError):
    """The browser could not be launched, found or reached."""


class EndpointUnavailable(BrowserError):
    """A DevTools endpoint did not answer before the connect deadline."""

    def __init__(self, url: str, timeout_s: float, last_error: str):
        self.url = url
        self.timeout_s = timeout_s
        self.last_error = last_error
        super().__init__(f"no DevTools endpoint at {redacted(url)} within {timeout_s:g} s: {last_error}")
