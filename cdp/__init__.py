"""A trio-native Chrome DevTools Protocol client.

Public surface: :func:`launch` (over pipes) and :func:`connect` (over a websocket)
yield a :class:`Browser`;
``Browser.new_context()`` yields a :class:`BrowserContext`;
``BrowserContext.new_tab()`` yields a :class:`Tab`.  Each is owned by its
``async with`` block and cleaned up once, bounded, on exit.  Errors form one
hierarchy under :class:`CDPError` (see ``cdp/_errors.py``).
"""

from ._browser import Browser as Browser
from ._browser import BrowserContext as BrowserContext
from ._browser import Tab as Tab
from ._browser import TargetInfo as TargetInfo
from ._connection import Connection as Connection
from ._connection import ConnectionStatistics as ConnectionStatistics
from ._connection import Event as Event
from ._connection import EventStream as EventStream
from ._connection import open_connection as open_connection
from ._connection import open_pipe_connection as open_pipe_connection
from ._discovery import connect as connect
from ._discovery import discover_ws_url as discover_ws_url
from ._errors import BrowserError as BrowserError
from ._errors import CDPError as CDPError
from ._errors import CommandTimeout as CommandTimeout
from ._errors import ConnectionLost as ConnectionLost
from ._errors import EndpointUnavailable as EndpointUnavailable
from ._errors import ProtocolError as ProtocolError
from ._errors import TargetClosed as TargetClosed
from ._errors import TargetCrashed as TargetCrashed
from ._launcher import DEFAULT_ARGS as DEFAULT_ARGS
from ._launcher import find_executable as find_executable
from ._launcher import group_pids as group_pids
from ._launcher import launch as launch
from ._sandbox import SandboxHost as SandboxHost
from ._sandbox import no_sandbox_reason as no_sandbox_reason
from ._sandbox import read_sandbox_host as read_sandbox_host
from ._session import Session as Session
from ._transport import Transport as Transport
from ._transport import TransportClosed as TransportClosed

__all__ = [
    "DEFAULT_ARGS",
    "Browser",
    "BrowserContext",
    "BrowserError",
    "CDPError",
    "CommandTimeout",
    "Connection",
    "ConnectionLost",
    "ConnectionStatistics",
    "EndpointUnavailable",
    "Event",
    "EventStream",
    "ProtocolError",
    "SandboxHost",
    "Session",
    "Tab",
    "TargetClosed",
    "TargetCrashed",
    "TargetInfo",
    "Transport",
    "TransportClosed",
    "connect",
    "discover_ws_url",
    "find_executable",
    "group_pids",
    "launch",
    "no_sandbox_reason",
    "open_connection",
    "open_pipe_connection",
    "read_sandbox_host",
]
