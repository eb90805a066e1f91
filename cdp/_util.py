"""Small trio helpers shared by the package."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio


@asynccontextmanager
async def open_service_nursery() -> AsyncIterator[trio.Nursery]:
    """A nursery for background tasks that never raise (they record failures instead).

    An exception raised by the body comes out as itself rather than wrapped in an
    ExceptionGroup, so callers catch ``ConnectionLost``, not a group of it.  A group
    of several exceptions (a bug: a background task raised) is re-raised as is.
    """
    try:
        async with trio.open_nursery() as nursery:
            yield nursery
    except BaseExceptionGroup as group:
        if len(group.exceptions) != 1:
            raise
        exc = group.exceptions[0]
        context = exc.__context__
        try:
            raise exc
        finally:
            exc.__context__ = context  # keep the original context, not the group
            del exc, context
