"""Snapshots of failures: what a page looked like when its job failed.

With ``[debug] snapshots_dir`` set, the job runner hands every failure it knows of
inside the job's lease (the tab still open, the watchdog's scope already left) to
:meth:`Snapshots.after_failure`.  The first failure of each reason kind (``timeout``,
``http_404``, ``missing_field``...), then every ``snapshot_every``-th failure of it,
is captured: a PNG of the viewport (``Page.captureScreenshot``), the document's HTML,
and a small JSON (URL, label, reason, time, attempt), as
``<snapshots_dir>/<kind>-<n>.{png,html,json}`` where ``n`` counts that kind's failures.

Deadlines: the capture (both commands) has :data:`SNAPSHOT_TIMEOUT_S`, shielded, of
its own: a watchdog-expired job's tab may be hung (a busy renderer answers nothing),
and the job's cleanup (closing that tab) waits at most that long for it.  Files are
written in a worker thread.  A capture that fails or runs out of time is one log line,
and the JSON is still written, saying what is missing.  Failures without a tab to look
at (the browser gone, a crashed renderer) are never captured.
"""

from __future__ import annotations

import base64
import datetime
import json
import logging
import re
from collections import Counter, deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import trio

import cdp
from crawler.urls import short_url

log = logging.getLogger(__name__)

SNAPSHOT_TIMEOUT_S = 5.0  # bound on capturing one snapshot (screenshot + HTML), shielded
KEEP_PER_REASON = 10  # statistics keep this many latest snapshots per reason kind
KEEP_LATEST = 10  # ... and this many latest over all reasons


@attrs.frozen
class Snapshot:
    """One snapshot's files (None: that part could not be captured)."""

    kind: str
    number: int  # the kind's failure count when it was taken
    url: str
    json: str
    png: str | None
    html: str | None


@attrs.frozen
class SnapshotStatistics:
    taken: Mapping[str, int] = attrs.field(factory=dict)  # snapshots written, by reason kind
    by_reason: Mapping[str, tuple[Snapshot, ...]] = attrs.field(factory=dict)  # the latest few, by kind
    latest: tuple[Snapshot, ...] = ()  # the latest few, newest last
    incomplete: int = 0  # captures that failed or ran out of time (their JSON says so)


async def capture_page(tab: cdp.Tab) -> tuple[bytes, str]:
    """A PNG of ``tab``'s viewport (its window shown first) and its document's HTML; no task.
    Raises the tab's CDP error (or ClosedResourceError if it is closing); the caller
    bounds it.  Cancelled: nothing is left behind."""
    await tab.set_visible(True)  # a minimised window draws no frame to capture
    shot = await tab.send("Page.captureScreenshot", format="png")
    reply = await tab.send("Runtime.evaluate", expression="document.documentElement.outerHTML", returnByValue=True)
    html = reply.get("result", {}).get("value")
    return base64.b64decode(shot["data"]), html if isinstance(html, str) else ""


class Snapshots:
    """Counts failures by reason kind and captures the due ones into ``folder``
    (``""``: never).  ``timeout_s`` bounds one capture."""

    def __init__(self, folder: str, every: int, *, timeout_s: float = SNAPSHOT_TIMEOUT_S):
        self.folder = Path(folder) if folder else None
        self.every = every
        self.timeout_s = timeout_s
        self._failures: Counter[str] = Counter()
        self._taken: Counter[str] = Counter()
        self._by_reason: dict[str, deque[Snapshot]] = {}
        self._latest: deque[Snapshot] = deque(maxlen=KEEP_LATEST)
        self._incomplete = 0

    def statistics(self) -> SnapshotStatistics:
        return SnapshotStatistics(
            taken=dict(self._taken),
            # In the order they were numbered: captures run side by side, and a later
            # one may be written first.
            by_reason={kind: tuple(sorted(shots, key=lambda s: s.number)) for kind, shots in self._by_reason.items()},
            latest=tuple(self._latest),
            incomplete=self._incomplete,
        )

    def due(self, kind: str) -> int | None:
        """Count one failure of ``kind``; its number if a snapshot is due (the first,
        then every ``every``-th after it), else None.  Never blocks."""
        self._failures[kind] += 1
        n = self._failures[kind]
        return n if self.folder is not None and (n - 1) % self.every == 0 else None

    async def after_failure(
        self, tab: cdp.Tab, *, url: str, label: str | None, kind: str, reason: str, attempt: int
    ) -> Snapshot | None:
        """Count the failure and, if due, capture ``tab`` and write the snapshot.
        Returns it, or None if none was due.  Never raises but Cancelled (a capture
        that fails is one log line); waits at most ``timeout_s`` for the browser,
        shielded, plus the file writes."""
        number = self.due(kind)
        if number is None:
            return None
        assert self.folder is not None
        png: bytes | None = None
        html: str | None = None
        problem = None
        with trio.move_on_after(self.timeout_s, shield=True) as scope:
            try:
                png, html = await capture_page(tab)
            except (cdp.CDPError, trio.ClosedResourceError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
        if scope.cancelled_caught:
            problem = f"no answer within {self.timeout_s:g} s"
        stem = self.folder / f"{_safe(kind)}-{number:06d}"
        record = {
            "url": url,
            "label": label,
            "reason": reason,
            "kind": kind,
            "attempt": attempt,
            "failure_number": number,
            "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "png": f"{stem.name}.png" if png is not None else None,
            "html": f"{stem.name}.html" if html is not None else None,
            "capture_error": problem,
        }
        try:
            with trio.CancelScope(shield=True):  # a capture taken is written whole (a thread: not cancellable anyway)
                snapshot = await trio.to_thread.run_sync(_write, stem, record, png, html)
        except OSError as exc:
            log.warning("snapshot of %s (%s) not written: %s", short_url(url), kind, exc.strerror or exc)
            return None
        if problem is not None:
            self._incomplete += 1
            log.warning("snapshot %s of %s: screenshot and HTML missing: %s", snapshot.json, short_url(url), problem)
        else:
            log.info("snapshot of %s (%s): %s", short_url(url), reason[:80], snapshot.json)
        self._taken[kind] += 1
        self._by_reason.setdefault(kind, deque(maxlen=KEEP_PER_REASON)).append(snapshot)
        self._latest.append(snapshot)
        return snapshot


def _safe(kind: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", kind)[:60] or "unknown"


def _write(stem: Path, record: dict[str, Any], png: bytes | None, html: str | None) -> Snapshot:
    """Write the snapshot's files (blocking: run in a thread)."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths: dict[str, str | None] = {"png": None, "html": None}
    if png is not None:
        stem.with_suffix(".png").write_bytes(png)
        paths["png"] = str(stem.with_suffix(".png"))
    if html is not None:
        stem.with_suffix(".html").write_text(html, encoding="utf-8")
        paths["html"] = str(stem.with_suffix(".html"))
    json_path = stem.with_suffix(".json")
    json_path.write_text(json.dumps(record, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return Snapshot(record["kind"], record["failure_number"], record["url"], str(json_path), **paths)


def write_page_files(png_path: str | None, png: bytes | None, html_path: str | None, html: str | None) -> None:
    """Write a screenshot and an HTML file where asked (``try --screenshot/--html``);
    blocking: run in a thread."""
    if png_path and png is not None:
        Path(png_path).write_bytes(png)
    if html_path and html is not None:
        Path(html_path).write_text(html, encoding="utf-8")


def snapshot_summary(stats: SnapshotStatistics) -> dict[str, dict[str, Any]]:
    """The summary's snapshots: by reason kind, how many were taken and the latest
    ones' files (a stem and the extensions written, e.g. ``snapshots/timeout-000001``
    with ``png``, ``html``, ``json``)."""
    return {
        kind: {
            "taken": stats.taken.get(kind, 0),
            "latest": [
                {
                    "stem": shot.json.removesuffix(".json"),
                    "files": [e for e in ("png", "html") if getattr(shot, e)] + ["json"],
                }
                for shot in shots
            ],
        }
        for kind, shots in sorted(stats.by_reason.items())
    }
