"""A session the browser attached by itself under a tab: an out-of-process frame.

With ``Target.setAutoAttach(autoAttach=True, flatten=True)`` on a tab's session, the
browser attaches every related target (filtered by type) and reports it with
``Target.attachedToTarget`` on that session.  The connection routes the new session
from the moment that event is read, and ends it with its parent's (a crash, a close,
the connection lost) or when the browser reports it detached (the frame navigated
away or was removed).  Nothing here closes anything: a frame's target belongs to its
page and goes with it.
"""

from __future__ import annotations

from typing import Any

import trio

from ._connection import DEFAULT_EVENT_BUFFER, Connection
from ._errors import CDPError


class Session:
    """One auto-attached target's flatten session (made by :meth:`Tab.attached`)."""

    def __init__(self, connection: Connection, session_id: str, target_id: str, target_type: str, url: str = ""):
        self.connection = connection
        self.session_id = session_id
        self.target_id = target_id  # for a frame: its frameId
        self.type = target_type
        self.url = url  # as the attach event reported it (often empty: not navigated yet)

    def __repr__(self) -> str:
        return f"<cdp.Session {self.type} {self.target_id}>"

    def attached(self, params: dict[str, Any]) -> Session:
        """The session of a target auto-attached under this one (a frame in a frame)."""
        return attached_session(self.connection, params)

    @property
    def error(self) -> CDPError | None:
        """Why this session can no longer take commands, or None."""
        return self.connection.error or self.connection.session_error(self.session_id)

    async def send(self, method: str, /, timeout_s: float | None = None, **params: Any) -> dict[str, Any]:
        """Send a command on this session; raises as :meth:`Tab.send` does (TargetClosed
        once the frame is detached)."""
        return await self.connection.send(method, params, session_id=self.session_id, timeout_s=timeout_s)

    def listen(self, *methods: str, buffer: int = DEFAULT_EVENT_BUFFER):
        """Async context manager yielding an :class:`EventStream` of this session's
        events; the stream ends with TargetClosed when the session does."""
        if self.connection.session_error(self.session_id) is not None and self.connection.error is None:
            raise trio.ClosedResourceError(f"session {self.session_id} is not attached")
        return self.connection.listen(methods, session_id=self.session_id, buffer=buffer)


def attached_session(connection: Connection, params: dict[str, Any]) -> Session:
    """The :class:`Session` a ``Target.attachedToTarget`` event announces."""
    info = params.get("targetInfo", {})
    return Session(connection, params["sessionId"], info.get("targetId", ""), info.get("type", ""), info.get("url", ""))
