"""Where each frame of a page runs, as the page's event reader learns it: the session
of each out-of-process frame, and the default execution context of each in-process
one (see :mod:`crawler.page.frames`)."""

from __future__ import annotations

from typing import Any

import trio

import cdp

Sender = cdp.Tab | cdp.Session  # where a command for a page or one of its frames goes


class FrameTargets:
    """Where each frame of a page runs: the sessions of out-of-process frames (by
    frame id) and the default execution contexts of in-process ones, as the page's
    event reader learns them."""

    def __init__(self) -> None:
        self.sessions: dict[str, cdp.Session] = {}  # frame id -> its session (out of process)
        self._contexts: dict[str, tuple[Sender, int]] = {}  # frame id -> (session, context id)
        self.runtime_on: dict[str | None, Sender] = {}  # sessions with Runtime enabled, by session id

    def attached(self, session: cdp.Session) -> None:
        self.sessions[session.target_id] = session

    def on_runtime(self, method: str, params: dict[str, Any], sender: Sender) -> None:
        """Follow ``Runtime.executionContext*`` events of ``sender``'s session."""
        if method == "Runtime.executionContextCreated":
            context = params.get("context", {})
            aux = context.get("auxData") or {}
            if aux.get("isDefault") and aux.get("frameId"):
                self._contexts[aux["frameId"]] = (sender, context["id"])
        elif method == "Runtime.executionContextDestroyed":
            gone = params.get("executionContextId")
            for frame_id, (owner, context_id) in list(self._contexts.items()):
                if owner is sender and context_id == gone:
                    del self._contexts[frame_id]
        elif method == "Runtime.executionContextsCleared":
            for frame_id, (owner, _) in list(self._contexts.items()):
                if owner is sender:
                    del self._contexts[frame_id]

    def place(self, frame_id: str) -> tuple[Sender, int | None] | None:
        """Where frame ``frame_id``'s document can be evaluated now, if anywhere."""
        session = self.sessions.get(frame_id)
        if session is not None and session.error is None:
            return session, None
        return self._contexts.get(frame_id)

    async def enable_runtime(self, sender: Sender) -> None:
        """Have ``sender``'s session report its execution contexts (once per page)."""
        if sender.session_id not in self.runtime_on:
            self.runtime_on[sender.session_id] = sender
            await sender.send("Runtime.enable")

    async def disable_runtime(self) -> None:
        """Switch ``Runtime`` off again where it was switched on (best effort: a
        session that is gone has nothing left to report)."""
        for sender in self.runtime_on.values():
            if sender.error is None:
                try:
                    await sender.send("Runtime.disable")
                except (cdp.CDPError, trio.ClosedResourceError):
                    pass
        self.runtime_on.clear()
