"""Small trio helpers shared by the package."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from urllib.parse import urlsplit, urlunsplit

import trio


@contextmanager
def unwrapped_exception_groups() -> Iterator[None]:
    """Let the one real exception out of an ExceptionGroup raised by the block.

    A nursery (or an anyio task group) wraps even a single exception of its body in a
    group; under this block it comes out as itself, so callers catch
    ``ConnectionLost``, not a group of it.  That holds under an outer cancellation
    too: then the body's exception (or its Cancelled) arrives with the Cancelled of
    every cancelled background task, and those are dropped in favour of the body's
    exception (of one Cancelled if that is all there is).  Dropping them is safe
    because cancellation is level-triggered: the outer scope is still cancelled, so
    the caller's next checkpoint raises Cancelled again.  A group holding more than
    one exception that is not Cancelled (a bug: a background task raised) is
    re-raised as is.
    """
    try:
        yield
    except BaseExceptionGroup as group:
        cancelled, rest = group.split(trio.Cancelled)
        if rest is not None and len(rest.exceptions) == 1:
            exc = rest.exceptions[0]
        elif rest is None and cancelled is not None:
            exc = _first_leaf(cancelled)
        else:
            raise
        context = exc.__context__
        try:
            raise exc
        finally:
            exc.__context__ = context  # keep the original context, not the group
            del exc, context


@asynccontextmanager
async def open_service_nursery() -> AsyncIterator[trio.Nursery]:
    """A nursery for background tasks that never raise (they record failures instead);
    an exception of the body comes out as itself (see :func:`unwrapped_exception_groups`)."""
    with unwrapped_exception_groups():
        async with trio.open_nursery() as nursery:
            yield nursery


def _first_leaf(group: BaseExceptionGroup) -> BaseException:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def redacted(url: str) -> str:
    """``url`` as logs and errors name it: without its query string, where hosted browser
    services put their access tokens."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "…" if parts.query else "", ""))
