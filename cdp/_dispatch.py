"""The routing of a CDP connection's messages, the same whatever carries them: the
:class:`Connection` (commands and their replies, flatten sessions, event
subscriptions) and the reader that dispatches what the browser sends.  Opening the
link and running the reader are :mod:`cdp._connection`'s.

Data flow of one command::

    send()  ──register waiter in _pending──►  transport  ──►  browser
    reader  ◄──────────────────── {"id": n, "result": ...}
    reader: _pending.pop(n) → wake the waiter; send() returns the result

Events (messages without ``id``) are routed by ``(sessionId, method)`` to the
subscriptions that asked for them; anything nobody asked for is dropped.  The
reader never blocks on a consumer: each subscription has a bounded buffer and
an overflow policy of *drop the newest event and count it* (``dropped``), so a
slow consumer can lose events but can never delay a command's reply.

"Closed" has one source of truth, ``Connection._error``: once it is set, every
pending command has been woken with it and every later ``send`` raises it.
Such a shared error (and a session's) is raised with a fresh traceback each
time: re-raising one object keeps prepending frames to its traceback, which then
grows, and keeps those frames alive, with every failed call.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

from ._errors import CDPError, CommandTimeout, ConnectionLost, ProtocolError, TargetClosed, TargetCrashed
from ._transport import Transport, TransportClosed

log = logging.getLogger("cdp.connection")

DEFAULT_EVENT_BUFFER = 1000  # events per subscription before the newest are dropped


@attrs.frozen
class Event:
    """One CDP event: ``method`` and ``params`` as the protocol names them."""

    method: str
    params: dict[str, Any]
    session_id: str | None = None


@attrs.frozen
class ConnectionStatistics:
    pending_commands: int
    sessions: int
    subscriptions: int
    messages_received: int
    events_dropped: int
    closed: bool


class _Call:
    """A command waiting for its reply."""

    __slots__ = ("method", "done", "result", "error", "session_id", "deadline")

    def __init__(self, method: str, session_id: str | None):
        self.method = method
        self.session_id = session_id
        self.deadline: trio.CancelScope | None = None  # the write's, then the reply's
        self.done = trio.Event()
        self.result: dict[str, Any] | None = None
        self.error: CDPError | None = None

    def fail(self, error: CDPError) -> None:
        if not self.done.is_set():
            self.error = error
            self.done.set()


class _Session:
    """What the connection knows of one attached flatten session."""

    __slots__ = ("session_id", "target_id", "calls", "subscriptions", "error", "gone", "parent", "children")

    def __init__(self, session_id: str, target_id: str, parent: _Session | None = None):
        self.session_id = session_id
        self.target_id = target_id
        self.parent = parent  # the session that auto-attached this one (an out-of-process frame's page)
        self.children: set[_Session] = set()
        self.calls: set[_Call] = set()
        self.subscriptions: set[EventStream] = set()
        self.error: TargetClosed | None = None
        self.gone = trio.Event()  # the browser says the target is destroyed


class EventStream:
    """A bounded stream of events for one subscription (a receive channel).

    Iterate it with ``async for``.  When its session crashes or the connection is
    lost, the stream ends by raising that error once buffered events are consumed;
    when its subscription is closed by its owner, iteration simply stops.

    Overflow policy: if the consumer falls ``buffer`` events behind, newer events
    are dropped and counted in ``dropped``; replies to commands are never delayed.
    """

    def __init__(self, key: tuple[str | None, frozenset[str]], buffer: int):
        self._key = key
        self._send, self._receive = trio.open_memory_channel[Event](buffer)
        self._error: CDPError | None = None
        self.dropped = 0

    def _offer(self, event: Event) -> None:
        try:
            self._send.send_nowait(event)
        except trio.WouldBlock:
            self.dropped += 1
            if self.dropped == 1:
                log.warning("event buffer full for %s: dropping %s and later events", self._key, event.method)
        except trio.ClosedResourceError:
            pass

    def _end(self, error: CDPError | None) -> None:
        if self._error is None:
            self._error = error
        self._send.close()

    async def receive(self) -> Event:
        """Wait for the next event. Raises the session's or connection's error at the end."""
        try:
            return await self._receive.receive()
        except trio.EndOfChannel:
            if self._error is not None:
                raise self._error.with_traceback(None) from None
            raise

    def receive_nowait(self) -> Event:
        try:
            return self._receive.receive_nowait()
        except trio.EndOfChannel:
            if self._error is not None:
                raise self._error.with_traceback(None) from None
            raise

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Event:
        try:
            return await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None


class Connection:
    """A CDP connection over one transport.  Create it with :func:`~cdp.open_connection`
    (a websocket) or :func:`~cdp.open_pipe_connection` (pipes to a launched browser); a
    test may build one on its own :class:`~cdp.Transport` and run :meth:`run_reader`."""

    def __init__(self, transport: Transport, *, name: str, command_timeout_s: float):
        self.name = name
        self.command_timeout_s = command_timeout_s
        self.transport = transport
        self._ids = itertools.count(1)
        self._pending: dict[int, _Call] = {}
        self._sessions: dict[str, _Session] = {}
        self._sessions_by_target: dict[str, _Session] = {}
        self._listeners: dict[tuple[str | None, str], list[EventStream]] = {}
        self._error: CDPError | None = None
        self._closed = trio.Event()
        self._messages_received = 0
        self._dropped_closed = 0  # drops counted by streams that are already unsubscribed

    # -- state ---------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._error is not None

    @property
    def error(self) -> CDPError | None:
        """Why the connection ended, or None while it is open."""
        return self._error

    async def wait_closed(self) -> None:
        """Block until the connection is closed (for whatever reason; see :attr:`error`)."""
        await self._closed.wait()

    def abort(self, reason: str) -> None:
        """Declare the connection lost now, without the peer's help: for a browser that
        stopped answering but keeps the socket open.  Every pending and later command
        fails with ConnectionLost, every session and event stream ends, and
        :meth:`wait_closed` returns, so cleanup on this connection skips the browser
        instead of waiting out each deadline.  The transport itself is closed by the
        block that opened it.  Never blocks; idempotent (the first reason is kept)."""
        self._fail(ConnectionLost(f"{self.name}: {reason}"))

    def forgive(self, seconds: float) -> int:
        """Push back by ``seconds`` the deadline of every command in flight (its write,
        or the wait for its reply): for the caller's own event loop having been blocked
        that long (nothing was read or written meanwhile, so the browser is not to
        blame).  Call it from the run loop before trio next looks at deadlines (a trio
        instrument's ``after_task_step``).  Returns how many commands it pushed back."""
        forgiven = 0
        for call in self._pending.values():
            # (Not ``cancel_called``: reading it cancels a scope whose deadline passed.)
            if call.deadline is not None:
                call.deadline.deadline += seconds
                forgiven += 1
        return forgiven

    def statistics(self) -> ConnectionStatistics:
        streams = {s for lst in self._listeners.values() for s in lst}
        return ConnectionStatistics(
            pending_commands=len(self._pending),
            sessions=len(self._sessions),
            subscriptions=len(streams),
            messages_received=self._messages_received,
            events_dropped=self._dropped_closed + sum(s.dropped for s in streams),
            closed=self.closed,
        )

    # -- commands ------------------------------------------------------------------

    async def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        session_id: str | None = None,
        timeout_s: float | None = None,
    ) -> dict[str, Any]:
        """Send one command and wait for its result.

        Raises ProtocolError if the browser answers with an error, CommandTimeout
        after ``timeout_s`` (default: the connection's), TargetClosed/TargetCrashed
        if the session ends first, ConnectionLost if the connection is or becomes
        closed.  If cancelled while waiting, the waiter is removed and a late reply
        is dropped; the command may or may not have reached the browser.
        """
        if self._error is not None:
            raise self._error.with_traceback(None)
        session = None
        if session_id is not None:
            session = self._sessions.get(session_id)
            if session is None:
                raise TargetClosed(f"{method}: session {session_id} is not attached")
            if session.error is not None:
                raise session.error.with_traceback(None)
        call_id = next(self._ids)
        call = _Call(method, session_id)
        message: dict[str, Any] = {"id": call_id, "method": method, "params": params or {}}
        if session_id is not None:
            message["sessionId"] = session_id
        timeout_s = self.command_timeout_s if timeout_s is None else timeout_s
        self._pending[call_id] = call
        if session is not None:
            session.calls.add(call)
        try:
            await self._send_text(json.dumps(message), timeout_s, call)
            with trio.move_on_after(timeout_s) as waited:
                call.deadline = waited
                await call.done.wait()
            if waited.cancelled_caught:
                raise CommandTimeout(method, timeout_s)
        finally:
            del self._pending[call_id]
            if session is not None:
                session.calls.discard(call)
        if call.error is not None:
            raise call.error.with_traceback(None)
        assert call.result is not None
        return call.result

    async def _send_text(self, text: str, timeout_s: float, call: _Call | None = None) -> None:
        # A message half-written by a cancelled task (a websocket frame, or a pipe
        # message without its terminator) would corrupt the stream for everyone, so
        # the write is shielded from the caller's cancellation and bounded by the
        # command's own deadline; a write that cannot finish in time means the peer
        # stopped reading, and the connection is declared lost.
        with trio.move_on_after(timeout_s, shield=True) as scope:
            if call is not None:
                call.deadline = scope
            try:
                await self.transport.send_text(text)
            except TransportClosed as exc:
                self._fail(ConnectionLost(f"{self.name}: {exc.reason}"))
                raise self._error.with_traceback(None) from None  # type: ignore[union-attr]
        if scope.cancelled_caught:
            self._fail(ConnectionLost(f"{self.name}: could not write to the browser within {timeout_s:g} s"))
            raise self._error.with_traceback(None)  # type: ignore[union-attr]

    # -- sessions ------------------------------------------------------------------

    def attach_session(self, session_id: str, target_id: str) -> None:
        """Start routing a flatten session (after ``Target.attachToTarget`` answered)."""
        session = _Session(session_id, target_id)
        self._sessions[session_id] = session
        self._sessions_by_target[target_id] = session

    def detach_session(self, session_id: str) -> None:
        """Stop routing a session, and the sessions it auto-attached, and forget them.
        Idempotent."""
        session = self._sessions.pop(session_id, None)
        if session is None:
            return
        if self._sessions_by_target.get(session.target_id) is session:
            del self._sessions_by_target[session.target_id]
        if session.parent is not None:
            session.parent.children.discard(session)
        for child in list(session.children):
            self.detach_session(child.session_id)
        self._end_session(session, TargetClosed(f"target {session.target_id} is closed"))

    def session_error(self, session_id: str) -> TargetClosed | None:
        session = self._sessions.get(session_id)
        return session.error if session else TargetClosed(f"session {session_id} is not attached")

    async def wait_session_gone(self, session_id: str) -> None:
        """Block until the browser reports the session's target destroyed (no longer listed)."""
        session = self._sessions.get(session_id)
        if session is not None:
            await session.gone.wait()

    def _end_session(self, session: _Session, error: TargetClosed) -> None:
        if session.error is None or (isinstance(error, TargetCrashed) and not isinstance(session.error, TargetCrashed)):
            session.error = error
        for call in list(session.calls):
            call.fail(session.error)
        for stream in list(session.subscriptions):
            stream._end(session.error)
        for child in list(session.children):  # a frame's session ends with its page's
            self._end_session(child, error)

    # -- events --------------------------------------------------------------------

    @asynccontextmanager
    async def listen(
        self, methods: Iterable[str], *, session_id: str | None = None, buffer: int = DEFAULT_EVENT_BUFFER
    ) -> AsyncIterator[EventStream]:
        """Subscribe to events of one session (None: the browser session).

        The subscription is removed when the block exits, however it exits; it
        starts no task.  If the session or connection is already gone, the stream
        yielded ends at once with that error.
        """
        names = frozenset(methods)
        stream = EventStream((session_id, names), buffer)
        keys = [(session_id, name) for name in names]
        session = self._sessions.get(session_id) if session_id is not None else None
        failed = self._error or (session.error if session else None)
        if session_id is not None and session is None and failed is None:
            failed = TargetClosed(f"session {session_id} is not attached")
        if failed is not None:
            stream._end(failed)
        else:
            for key in keys:
                self._listeners.setdefault(key, []).append(stream)
            if session is not None:
                session.subscriptions.add(stream)
        try:
            yield stream
        finally:
            for key in keys:
                lst = self._listeners.get(key)
                if lst is not None and stream in lst:
                    lst.remove(stream)
                    if not lst:
                        del self._listeners[key]
            if session is not None:
                session.subscriptions.discard(stream)
            self._dropped_closed += stream.dropped
            stream._end(None)

    # -- the reader ----------------------------------------------------------------

    async def run_reader(self) -> None:
        """Read and dispatch every message until the transport closes. Never raises
        (except Cancelled); on exit the connection is closed with ConnectionLost."""
        reason = "reader stopped"
        try:
            while True:
                try:
                    text = await self.transport.receive_text()
                except TransportClosed as exc:
                    reason = exc.reason
                    return
                self._messages_received += 1
                try:
                    self._dispatch(json.loads(text))
                except Exception:  # a malformed message must not kill the reader
                    log.exception("%s: cannot dispatch message %.200r", self.name, text)
        finally:
            self._fail(ConnectionLost(f"{self.name}: {reason}"))

    def _dispatch(self, message: dict[str, Any]) -> None:
        call_id = message.get("id")
        if call_id is not None:
            call = self._pending.get(call_id)
            if call is None or call.done.is_set():
                return  # its sender gave up (cancelled or timed out): drop the late reply
            error = message.get("error")
            if error is not None:
                call.fail(ProtocolError(call.method, error.get("code", 0), error.get("message", ""), error.get("data")))
            else:
                call.result = message.get("result", {})
                call.done.set()
            return
        method = message.get("method")
        if method is None:
            return
        session_id = message.get("sessionId")
        params = message.get("params") or {}
        handler = _LIFECYCLE.get(method)
        if handler is not None:
            handler(self, session_id, params)
        listeners = self._listeners.get((session_id, method))
        if listeners:
            event = Event(method, params, session_id)
            for stream in listeners:
                stream._offer(event)

    def _on_target_crashed(self, session_id: str | None, params: dict[str, Any]) -> None:
        if session_id is not None:  # Inspector.targetCrashed, per session
            session = self._sessions.get(session_id)
        else:  # Target.targetCrashed, browser level
            session = self._sessions_by_target.get(params.get("targetId", ""))
        if session is not None:
            self._end_session(session, TargetCrashed(f"target {session.target_id}: renderer crashed"))

    def _on_attached(self, session_id: str | None, params: dict[str, Any]) -> None:
        # Auto-attached (Target.setAutoAttach with flatten on a session): the child's
        # session is routed from now on, and ends with its parent's.  Attachments made on
        # the browser session are the caller's to route (attach_session).
        parent = self._sessions.get(session_id) if session_id is not None else None
        child_id, target_id = params.get("sessionId"), params.get("targetInfo", {}).get("targetId", "")
        if parent is None or parent.error is not None or not child_id or child_id in self._sessions:
            return
        child = _Session(child_id, target_id, parent)
        parent.children.add(child)
        self._sessions[child_id] = child
        self._sessions_by_target[target_id] = child

    def _on_detached(self, session_id: str | None, params: dict[str, Any]) -> None:
        # Detached: no command on the session can succeed any more.  The target itself
        # may still be listed until Target.targetDestroyed, which is what ``gone`` waits for.
        # An auto-attached session is nobody's to detach: it is forgotten here.
        session = self._sessions.get(params.get("sessionId", ""))
        if session is not None:
            self._end_session(session, TargetClosed(f"target {session.target_id} was detached"))
            if session.parent is not None:
                self.detach_session(session.session_id)

    def _on_target_destroyed(self, session_id: str | None, params: dict[str, Any]) -> None:
        session = self._sessions_by_target.get(params.get("targetId", ""))
        if session is not None:
            self._end_session(session, TargetClosed(f"target {session.target_id} was destroyed"))
            session.gone.set()

    def _fail(self, error: CDPError) -> None:
        """Close the connection logically: wake every waiter and end every stream. Idempotent."""
        if self._error is not None:
            return
        self._error = error
        self._closed.set()
        for call in self._pending.values():
            call.fail(error)
        for session in self._sessions.values():
            if session.error is None:
                session.error = TargetClosed(str(error))
            session.gone.set()
        for streams in self._listeners.values():
            for stream in streams:
                stream._end(error)


_LIFECYCLE = {
    "Target.targetCrashed": Connection._on_target_crashed,
    "Inspector.targetCrashed": Connection._on_target_crashed,
    "Target.attachedToTarget": Connection._on_attached,
    "Target.detachedFromTarget": Connection._on_detached,
    "Target.targetDestroyed": Connection._on_target_destroyed,
}
