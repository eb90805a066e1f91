"""The status page: ``/`` of the metrics port, one small HTML page for a person
watching a crawl (Prometheus and Grafana are for machines and dashboards).

It shows the URL counts (total, done, failed, pending: the store's, as of the last
progress line), the rate (over the whole run and over the last samples), pages in
flight, memory over time (an inline SVG of the browser tree's PSS), this run's
failures by reason and the latest failure snapshots.  The page reloads itself every
few seconds.

:class:`StatusPage` keeps the history the page draws: one sample per progress line
(``record``, never blocking), at most :data:`HISTORY` of them; ``render`` reads one
:class:`~crawler.observe.stats.CrawlStatistics` snapshot and that history, nothing else.
Every value shown is escaped; element ids (``urls-total``, ``rate``, ``memory``,
``failures``, ``snapshots``...) are stable, for tests and scrapers.
"""

from __future__ import annotations

from collections import deque
from html import escape

import attrs

from crawler.observe.stats import CrawlStatistics

HISTORY = 360  # samples kept for the memory chart (at the default 5 s progress interval: half an hour)
REFRESH_S = 5  # the page reloads itself this often
MiB = 2**20
CHART_W, CHART_H = 600, 120  # the SVG's size, px


@attrs.frozen
class StatusSample:
    elapsed_s: float
    pages_finished: int
    browser_pss: int
    crawler_pss: int


class StatusPage:
    """The status page's history and its rendering."""

    def __init__(self, *, history: int = HISTORY):
        self._samples: deque[StatusSample] = deque(maxlen=history)

    def record(self, stats: CrawlStatistics) -> None:
        """Keep one sample of ``stats`` (memory, pages finished) for the page's chart and
        recent rate.  Never blocks."""
        m = stats.memory
        self._samples.append(StatusSample(stats.elapsed_s, stats.jobs.pages_finished, m.browser_pss, m.crawler_pss))

    def recent_rate(self) -> float | None:
        """Pages finished per second between the oldest and newest samples kept (the last
        few minutes), None with fewer than two."""
        if len(self._samples) < 2:
            return None
        first, last = self._samples[0], self._samples[-1]
        span = last.elapsed_s - first.elapsed_s
        return (last.pages_finished - first.pages_finished) / span if span > 0 else None

    def render(self, stats: CrawlStatistics, *, site: str = "") -> bytes:
        """The page as UTF-8 HTML."""
        counts = stats.url_counts
        total = sum(counts.values())
        pending = counts.get("pending", 0) + counts.get("in_progress", 0)
        recent = self.recent_rate()
        rows = [
            ("urls-total", "URLs", total),
            ("urls-done", "done", counts.get("done", 0)),
            ("urls-failed", "failed", counts.get("failed", 0)),
            ("urls-pending", "pending (in progress included)", pending),
            ("in-flight", "in flight", stats.jobs.in_flight),
        ]
        counts_html = "".join(f'<tr><th>{label}</th><td id="{key}">{value}</td></tr>' for key, label, value in rows)
        failures = sorted(stats.jobs.failed.items(), key=lambda kv: (-kv[1], kv[0]))
        failures_html = (
            "".join(
                f'<tr data-reason="{escape(reason)}"><td>{escape(reason)}</td><td>{n}</td></tr>'
                for reason, n in failures
            )
            or '<tr><td colspan="2">none</td></tr>'
        )
        snapshots = list(reversed(stats.jobs.snapshots.latest))
        snapshots_html = (
            "".join(
                f'<li data-kind="{escape(s.kind)}"><code>{escape(s.json)}</code> {escape(s.kind)} '
                f"<small>{escape(s.url[:200])}</small></li>"
                for s in snapshots
            )
            or "<li>none</li>"
        )
        paths_html = (
            "".join(
                f'<tr data-label="{escape(label)}"><td>{escape(label)}</td><td>{escape(p.fetch)}</td>'
                f"<td>{escape(p.path)}</td><td>{p.pages.get('browser', 0)}</td><td>{p.pages.get('http', 0)}</td>"
                f"<td>{p.checks}</td><td>{p.disagreements}</td><td><small>{escape(p.reason[:200])}</small></td></tr>"
                for label, p in sorted(stats.jobs.paths.items())
            )
            or '<tr><td colspan="8">none yet</td></tr>'
        )
        rate = f"{stats.pages_per_s:.2f}" + (
            f" (last {self._span_s():.0f} s: {recent:.2f})" if recent is not None else ""
        )
        memory = stats.memory
        title = f"crawler: {escape(site)}" if site else "crawler"
        return f"""<!doctype html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="{REFRESH_S}">
<title>{title}</title>
<style>body{{font:14px sans-serif;margin:1em 2em}}td,th{{padding:2px 10px;text-align:left}}
svg{{border:1px solid #ccc;background:#fafafa}}</style></head>
<body>
<h1>{title}</h1>
<p>state <b id="state">{escape(stats.finish_reason)}</b>, running for {stats.elapsed_s:.0f} s,
{self._concurrency(stats)}</p>
<h2>URLs</h2>
<table id="counts">{counts_html}</table>
<p>pages/s <b id="rate">{rate}</b></p>
<h2>Fetch paths by route</h2>
<table id="paths"><tr><th>route</th><th>fetch</th><th>now</th><th>browser</th><th>http</th><th>checks</th>
<th>disagreements</th><th>why</th></tr>{paths_html}</table>
<h2>Memory</h2>
<p>browser PSS <b id="browser-pss">{memory.browser_pss / MiB:.0f} MiB</b> (peak {memory.peak_browser_pss / MiB:.0f} MiB),
crawler {memory.crawler_pss / MiB:.0f} MiB, {memory.browser_processes} browser processes</p>
{self._chart()}
<h2>Failures by reason (this run)</h2>
<table id="failures">{failures_html}</table>
<h2>Latest snapshots</h2>
<ul id="snapshots">{snapshots_html}</ul>
<p><a href="/metrics">/metrics</a> · <a href="/healthz">/healthz</a></p>
</body></html>
""".encode()

    @staticmethod
    def _concurrency(stats: CrawlStatistics) -> str:
        """The concurrency now; with "auto", its bounds, why it last changed, what holds
        it, its changes by reason and the readings it decided on."""
        a = stats.autoscale
        if a is None:
            return f'concurrency <b id="concurrency">{stats.concurrency}</b>'
        changes = ", ".join(f"{escape(k)} {n}" for k, n in sorted(a.changes.items())) or "none yet"
        readings = [f"CPU {a.cpu:.0%}" if a.cpu is not None else "CPU ?", f"loop lag {a.loop_lag_s * 1000:.0f} ms"]
        if a.memory is not None:
            readings.append(f"memory {a.memory:.0%} of its budget")
        readings.append(f"{a.busy:.1f} slots busy")
        return (
            f'concurrency <b id="concurrency">{a.concurrency}</b> (auto, {a.minimum} to {a.maximum}; last changed for '
            f'<b id="concurrency-reason">{escape(a.reason or "nothing yet")}</b>, held by '
            f'<span id="concurrency-held-by">{escape(a.held_by or "nothing")}</span>; changes: '
            f'<span id="concurrency-changes">{changes}</span>; {", ".join(readings)})'
        )

    def _span_s(self) -> float:
        return self._samples[-1].elapsed_s - self._samples[0].elapsed_s if len(self._samples) >= 2 else 0.0

    def _chart(self) -> str:
        """An inline SVG: the browser tree's PSS over the samples kept."""
        samples = list(self._samples)
        top = max((s.browser_pss for s in samples), default=0)
        if len(samples) < 2 or top <= 0:
            return f'<svg id="memory" width="{CHART_W}" height="{CHART_H}" data-points="0"></svg>'
        t0, span = samples[0].elapsed_s, max(1e-9, samples[-1].elapsed_s - samples[0].elapsed_s)
        points = " ".join(
            f"{(s.elapsed_s - t0) / span * CHART_W:.1f},{CHART_H - s.browser_pss / top * (CHART_H - 10):.1f}"
            for s in samples
        )
        return (
            f'<svg id="memory" width="{CHART_W}" height="{CHART_H}" data-points="{len(samples)}" '
            f'viewBox="0 0 {CHART_W} {CHART_H}"><polyline fill="none" stroke="#36c" stroke-width="2" '
            f'points="{points}"/><text x="4" y="12" font-size="11">{top / MiB:.0f} MiB</text></svg>'
        )
