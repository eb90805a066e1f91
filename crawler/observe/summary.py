"""The end-of-run summary as text: what ``crawl`` prints and ``report`` shows again."""

from __future__ import annotations

from typing import Any


def format_summary(summary: dict[str, Any]) -> str:
    failed = summary["failed_by_reason"]
    lines = [
        f"items done      {summary['done']}",
        f"failed          {summary['failed']}"
        + (f"  ({', '.join(f'{k}: {v}' for k, v in failed.items())})" if failed else ""),
        f"pending         {summary['pending']}",
        f"retries         {summary['retries']}",
        *(
            [f"input           {summary['input_position']} entries fed so far; the rest streams in on resume"]
            if summary.get("input_exhausted") is False
            else []
        ),
        *_field_errors_line(summary.get("field_errors")),
        f"pages/s         {summary['pages_per_s']:.2f}  ({summary['pages']} pages in {summary['elapsed_s']:.1f} s)",
        *_paths_lines(summary.get("fetch_paths")),
        *_skipped_line(summary.get("links_skipped")),
        f"browser peak    {summary['peak_browser_pss_mb']:.0f} MiB PSS",
        f"tabs recycled   {summary['tabs_recycled']}  (discarded after failure: {summary['tabs_discarded']})",
        f"contexts rotated {summary['contexts_rotated']}",
        *_sessions_line(summary),
        f"watchdog expiries {summary['watchdog_expiries']}, browser restarts {summary['browser_restarts']}, "
        f"popups closed {summary['popups_closed']}",
    ]
    if "invariant_violations" in summary:  # absent from runs recorded before monitoring
        budget = summary["memory_budget_mb"]
        lines.append(
            f"settings        concurrency {_concurrency(summary)}, recycle every {summary['recycle_tab_every']} "
            f"pages, memory budget {f'{budget} MiB' if budget else 'none'}"
        )
        lines.append(f"invariant violations {summary['invariant_violations']}")
    lines += _snapshot_lines(summary.get("snapshots"))
    return "\n".join(lines)


def _concurrency(summary: dict[str, Any]) -> str:
    """The configured concurrency; with "auto", its bounds, where it ended and its
    changes by reason: ``auto (1-16): ended at 6 (scale_up), 5 changes (memory: 1, scale_up: 4)``."""
    auto = summary.get("autoscale")
    if not auto:
        return str(summary["concurrency"])
    changes = auto["changes"]
    by_reason = ", ".join(f"{k}: {v}" for k, v in changes.items())
    return (
        f"auto ({auto['min']}-{auto['max']}): ended at {auto['final']}"
        + (f" ({auto['reason']})" if auto["reason"] else "")
        + f", {sum(changes.values())} changes"
        + (f" ({by_reason})" if by_reason else "")
    )


def _snapshot_lines(snapshots: dict[str, Any] | None) -> list[str]:
    """The summary's snapshot files, by reason kind (the latest few of each)."""
    lines = []
    for kind, entry in (snapshots or {}).items():
        files = ", ".join(f"{s['stem']}.{{{','.join(s['files'])}}}" for s in entry["latest"])
        earlier = entry["taken"] - len(entry["latest"])
        lines.append(
            f"snapshots       {kind} ({entry['taken']}): {files}" + (f" (+{earlier} earlier)" if earlier else "")
        )
    return lines


def _sessions_line(summary: dict[str, Any]) -> list[str]:
    """The summary's lines of logins and saved states restored, and of sessions retired
    (by reason) and requests per proxy, if any."""
    logins = summary.get("logins") or {}
    lines = (
        [
            f"logins          {logins.get('logins', 0)}, saved states restored {logins.get('restored', 0)}"
            + (f", checks failed {logins['checks_failed']}" if logins.get("checks_failed") else "")
        ]
        if any(logins.values())
        else []
    )
    retired, proxies = summary.get("sessions_retired") or {}, summary.get("proxy_requests") or {}
    if not retired and not (set(proxies) - {"direct"}):
        return lines
    by_reason = ", ".join(f"{k}: {v}" for k, v in sorted(retired.items()))
    through = ", ".join(f"{k}: {v}" for k, v in sorted(proxies.items()))
    return lines + [
        f"sessions        {summary.get('sessions', 0)}, retired {sum(retired.values())}"
        + (f" ({by_reason})" if by_reason else "")
        + (f"; requests by proxy: {through}" if through else "")
    ]


def _paths_lines(paths: dict[str, dict[str, Any]] | None) -> list[str]:
    """How each route's pages were fetched: pages per path, and for "auto" routes the
    checks, the disagreements and the path it is on now; nothing if every page took
    the browser."""
    if not paths or all(p["http"] == 0 and p["fetch"] == "browser" for p in paths.values()):
        return []
    browser = sum(p["browser"] for p in paths.values())
    http = sum(p["http"] for p in paths.values())
    lines = [f"fetched         {browser} in the browser, {http} over HTTP"]
    for label, p in paths.items():
        auto = (
            f"; auto, now {p['now']}: {p['checks']} checks, {p['disagreements']} disagreements"
            if p["fetch"] == "auto"
            else ""
        )
        lines.append(f"  {label:<13} browser {p['browser']}, http {p['http']}{auto}")
    return lines


def _skipped_line(skipped: dict[str, int] | None) -> list[str]:
    """The summary's line of links not enqueued, by reason (scheme_mailto, other_host,
    too_long, credentials_stripped...), if any."""
    if not skipped:
        return []
    return [f"links skipped   {sum(skipped.values())}  ({', '.join(f'{k}: {v}' for k, v in skipped.items())})"]


def _field_errors_line(errors: dict[str, int] | None) -> list[str]:
    """The summary's line of field errors (js fields that threw in stored items), if any."""
    if not errors:
        return []
    return [f"field errors    {sum(errors.values())}  ({', '.join(f'{k}: {v}' for k, v in errors.items())})"]
