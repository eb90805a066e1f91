"""The pipe transport (``--remote-debugging-pipe``): NUL framing, messages bigger than a
pipe buffer, the largest message, a peer that goes away or stops reading.

The peer is a fake browser on the other ends of two ``os.pipe()`` pairs, speaking as
Chromium does (one JSON text per message, each followed by a NUL byte); the real one
over the same transport is every launched browser of the suite (``cdp.launch``), its
death in ``test_launch.py``.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
import pytest
import trio

import cdp

PIPE_BUFFER_BYTES = 2**16  # Linux's default pipe capacity


@attrs.define
class FakePeer:
    """The browser's ends: ``commands`` (what it reads) and ``replies`` (what it writes)."""

    commands: trio.lowlevel.FdStream
    replies: trio.lowlevel.FdStream
    received: bytearray = attrs.field(factory=bytearray)

    async def read_message(self) -> dict:
        while b"\0" not in self.received:
            chunk = await self.commands.receive_some()
            assert chunk, "the connection closed its command pipe"
            self.received += chunk
        message, _, rest = bytes(self.received).partition(b"\0")
        self.received[:] = rest
        return json.loads(message)

    async def write(self, data: bytes) -> None:
        await self.replies.send_all(data)


@asynccontextmanager
async def pipe_connection(**options) -> AsyncIterator[tuple[cdp.Connection, FakePeer]]:
    """A real ``cdp.open_pipe_connection`` to a :class:`FakePeer`."""
    commands_r, commands_w = os.pipe()
    replies_r, replies_w = os.pipe()
    peer = FakePeer(trio.lowlevel.FdStream(commands_r), trio.lowlevel.FdStream(replies_w))
    try:
        async with cdp.open_pipe_connection(replies_r, commands_w, name="fake-pipe", **options) as conn:
            yield conn, peer
    finally:
        await peer.commands.aclose()
        await peer.replies.aclose()


def reply(call_id: int, **result) -> bytes:
    return json.dumps({"id": call_id, "result": result}).encode() + b"\0"


async def test_messages_are_nul_framed_however_the_bytes_are_split() -> None:
    """Each command reaches the peer as one JSON text followed by one NUL byte; replies
    are routed to their commands whether they arrive one byte at a time (a multi-byte
    UTF-8 character split across writes included), several in one write, or with an
    event in between."""
    async with pipe_connection(command_timeout_s=5) as (conn, peer):
        results: dict[str, dict] = {}

        async def call(name: str, method: str) -> None:
            results[name] = await conn.send(method, {"n": name})

        with trio.fail_after(10):
            async with conn.listen(["Custom.event"]) as events, trio.open_nursery() as nursery:
                nursery.start_soon(call, "a", "A.one")
                first = await peer.read_message()
                assert first == {"id": first["id"], "method": "A.one", "params": {"n": "a"}}
                for byte in reply(first["id"], text="caf\u00e9 \u2603"):  # é and ☃ are several bytes each
                    await peer.write(bytes([byte]))
                    await trio.sleep(0.001)  # the reader gets a chance to read each byte alone
                nursery.start_soon(call, "b", "B.two")
                nursery.start_soon(call, "c", "C.three")
                sent = {m["method"]: m["id"] for m in (await peer.read_message(), await peer.read_message())}
                event = json.dumps({"method": "Custom.event", "params": {"k": 1}}).encode() + b"\0"
                await peer.write(reply(sent["C.three"], v=3) + event + reply(sent["B.two"], v=2))
                assert (await events.receive()).params == {"k": 1}
        assert results == {"a": {"text": "caf\u00e9 \u2603"}, "b": {"v": 2}, "c": {"v": 3}}
        assert peer.received == b""  # nothing after the last terminator


async def test_messages_bigger_than_a_pipe_buffer_arrive_whole_both_ways() -> None:
    """A 1 MiB command and a 5 MiB reply (each many pipe buffers) arrive whole, while
    small commands sent meanwhile keep their own replies."""
    big = "x" * 2**20
    async with pipe_connection(command_timeout_s=10) as (conn, peer):
        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                out: dict[str, dict] = {}

                async def call(name: str, params: dict) -> None:
                    out[name] = await conn.send("Echo.it", params)

                nursery.start_soon(call, "big", {"blob": big})
                nursery.start_soon(call, "small", {"n": 1})
                for _ in range(2):
                    message = await peer.read_message()
                    size = 5 * 2**20 if "blob" in message["params"] else 1
                    assert message["params"] in ({"blob": big}, {"n": 1})
                    await peer.write(reply(message["id"], blob="y" * size))
        assert len(big) > 10 * PIPE_BUFFER_BYTES
        assert len(out["big"]["blob"]) == 5 * 2**20 and out["small"] == {"blob": "y"}


async def test_a_message_over_max_message_bytes_ends_the_connection_with_connection_lost() -> None:
    """A message longer than ``max_message_bytes`` is not buffered further: the
    connection ends, the pending command fails with ConnectionLost naming the limit, and
    later commands fail the same way at once.  One of exactly the limit is accepted."""
    async with pipe_connection(max_message_bytes=1000, command_timeout_s=5) as (conn, peer):
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                outcome: dict = {}

                async def call() -> None:
                    outcome["result"] = await conn.send("Fits.exactly")

                nursery.start_soon(call)
                message = await peer.read_message()
                exact = reply(message["id"], pad="")
                await peer.write(reply(message["id"], pad="p" * (1000 - len(exact) + 1)))
            assert len(outcome["result"]["pad"]) > 900

            async def too_big() -> None:
                message = await peer.read_message()
                await peer.write(reply(message["id"], pad="p" * 5000))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(too_big)
                with pytest.raises(cdp.ConnectionLost, match="1000-byte limit"):
                    await conn.send("Too.big")
        assert conn.closed
        with pytest.raises(cdp.ConnectionLost, match="1000-byte limit"):
            await conn.send("Browser.getVersion")


async def test_the_peer_closing_its_end_fails_pending_commands_at_once_with_connection_lost() -> None:
    """When the browser's end of the message pipe closes (the browser exited), every
    pending command fails at once with ConnectionLost saying so, not at its deadline."""
    async with pipe_connection(command_timeout_s=60) as (conn, peer):
        failures: list[BaseException] = []

        async def call() -> None:
            try:
                await conn.send("Never.answered")
            except cdp.CDPError as exc:
                failures.append(exc)

        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:
                for _ in range(3):
                    nursery.start_soon(call)
                for _ in range(3):
                    await peer.read_message()
                await peer.replies.aclose()
        assert len(failures) == 3 and all(isinstance(exc, cdp.ConnectionLost) for exc in failures)
        assert "closed its end of the pipe" in str(failures[0])
        assert conn.statistics().pending_commands == 0


async def test_a_peer_that_stops_reading_makes_the_write_fail_within_the_command_deadline() -> None:
    """A peer that reads nothing: a command bigger than the pipe buffer cannot be
    written whole; within its deadline the connection is declared lost (a message
    half-written would corrupt the stream), and the caller gets ConnectionLost."""
    async with pipe_connection(command_timeout_s=0.5) as (conn, _peer):
        with trio.fail_after(5), pytest.raises(cdp.ConnectionLost, match="could not write"):
            await conn.send("Too.much", {"blob": "z" * (4 * PIPE_BUFFER_BYTES)})
        assert conn.closed


async def test_a_connection_opened_by_a_cancelled_caller_ends_at_once_instead_of_hanging() -> None:
    """Issue 26: a stop signal at the instant the crawler opened the browser's pipe hung
    it for good.  The connection's service task calls ``started`` in a start whose
    caller is cancelled; trio then leaves it in the start's own nursery and waits for
    it, and the shielded task never ended."""
    with trio.fail_after(5):  # before the fix: forever
        with trio.CancelScope() as cancelled:
            cancelled.cancel()
            async with pipe_connection(command_timeout_s=5):
                raise AssertionError("the body of a cancelled caller's connection runs")
    assert cancelled.cancelled_caught
