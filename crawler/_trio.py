"""The crawler's own small trio helpers (a leaf every part may import).

``cdp`` has helpers of the same shape for its connection; they stay private there, so
that ``cdp`` exports only CDP and the two packages can change apart."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import trio


@contextmanager
def unwrapped_exception_groups() -> Iterator[None]:
    """Let the one real exception out of an ExceptionGroup raised by the block.

    A nursery wraps even a single exception of its body in a group; under this block it
    comes out as itself, so callers catch ``StoreError``, not a group of it.  Under an
    outer cancellation the body's exception (or its Cancelled) arrives with the
    Cancelled of every cancelled background task; those are dropped in favour of the
    body's exception (of one Cancelled if that is all there is).  That is safe because
    cancellation is level-triggered: the caller's next checkpoint raises Cancelled
    again.  A group holding more than one exception that is not Cancelled (a bug: a
    background task raised) is re-raised as is."""
    try:
        yield
    except BaseExceptionGroup as group:
        cancelled, rest = group.split(trio.Cancelled)
        if rest is not None and len(rest.exceptions) == 1:
            exc = rest.exceptions[0]
        elif rest is None and cancelled is not None:
            exc = cancelled
            while isinstance(exc, BaseExceptionGroup):
                exc = exc.exceptions[0]
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


def task_lineage(task: trio.lowlevel.Task) -> Iterator[trio.lowlevel.Task]:
    """``task``, then the task whose nursery started it, and so on up to the root: who
    a helper task works for (a handler's nursery belongs to its job's worker)."""
    current: trio.lowlevel.Task | None = task
    while current is not None:
        yield current
        nursery = current.parent_nursery
        current = nursery.parent_task if nursery is not None else None
