"""Micro-benchmark of the trio CDP client against a real headless Chromium.

Measures, each as median and p95 over its repetitions:

- launch: ``cdp.launch()`` enter (start Chromium on its DevTools pipe, connect,
  enable target discovery, close the initial tab);
- teardown: ``cdp.launch()`` exit (Browser.close, stop and reap the process group,
  remove the profile);
- round trip of one trivial command, sequentially: ``Browser.getVersion`` (browser
  session) and ``Runtime.evaluate("1")`` (a tab's session);
- throughput: S concurrent senders x N ``Runtime.evaluate("1")`` on one tab, replies
  per second of wall time (one sample per repetition).

Run: ``.venv/bin/python benchmarks/cdp_bench.py [--launches 10] [--calls 2000] ...``.
Numbers depend on the machine's load: the load average is printed with them.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

import trio

import cdp


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


class Table:
    def __init__(self) -> None:
        self.rows: list[tuple[str, int, str, str, str]] = []

    def add(self, name: str, samples: list[float], unit: str, scale: float = 1.0, fmt: str = "{:.2f}") -> None:
        self.rows.append(
            (
                name,
                len(samples),
                fmt.format(statistics.median(samples) * scale),
                fmt.format(percentile(samples, 95) * scale),
                unit,
            )
        )

    def print(self) -> None:
        header = ("metric", "n", "median", "p95", "unit")
        widths = [max(len(str(row[i])) for row in [header, *self.rows]) for i in range(5)]
        line = "  ".join(f"{{:{'<' if i == 0 else '>'}{w}}}" for i, w in enumerate(widths))
        print(line.format(*header))
        print(line.format(*("-" * w for w in widths)))
        for row in self.rows:
            print(line.format(*row))


async def bench_launch(table: Table, launches: int) -> None:
    enter: list[float] = []
    exit_: list[float] = []
    for _ in range(launches):
        started = time.perf_counter()
        async with cdp.launch():
            entered = time.perf_counter()
            enter.append(entered - started)
            leaving = time.perf_counter()
        exit_.append(time.perf_counter() - leaving)
    table.add("launch (enter)", enter, "ms", 1000, "{:.1f}")
    table.add("teardown (exit)", exit_, "ms", 1000, "{:.1f}")


async def bench_commands(table: Table, calls: int, senders: int, per_sender: int, repeats: int) -> str:
    async with cdp.launch() as browser, browser.new_context() as context, context.new_tab() as tab:
        version = (await browser.send("Browser.getVersion"))["product"]
        for _ in range(50):  # warm up both sessions
            await browser.send("Browser.getVersion")
            await tab.send("Runtime.evaluate", expression="1")

        rtt: list[float] = []
        for _ in range(calls):
            t0 = time.perf_counter()
            await browser.send("Browser.getVersion")
            rtt.append(time.perf_counter() - t0)
        table.add("RTT Browser.getVersion", rtt, "us", 1e6, "{:.0f}")

        rtt = []
        for _ in range(calls):
            t0 = time.perf_counter()
            await tab.send("Runtime.evaluate", expression="1")
            rtt.append(time.perf_counter() - t0)
        table.add('RTT Runtime.evaluate("1")', rtt, "us", 1e6, "{:.0f}")

        rates: list[float] = []
        for _ in range(repeats):
            replies = 0

            async def sender() -> None:
                nonlocal replies
                for _ in range(per_sender):
                    await tab.send("Runtime.evaluate", expression="1")
                    replies += 1

            t0 = time.perf_counter()
            async with trio.open_nursery() as nursery:
                for _ in range(senders):
                    nursery.start_soon(sender)
            rates.append(replies / (time.perf_counter() - t0))
        table.add(f"throughput {senders}x{per_sender} evaluate", rates, "replies/s", 1, "{:.0f}")
        stats = browser.connection.statistics()
        assert stats.pending_commands == 0, stats
    return version


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--launches", type=int, default=10, help="launch/teardown repetitions")
    parser.add_argument("--calls", type=int, default=2000, help="sequential commands per round-trip series")
    parser.add_argument("--senders", type=int, default=8, help="concurrent senders for throughput")
    parser.add_argument("--per-sender", type=int, default=500, help="commands per sender")
    parser.add_argument("--repeats", type=int, default=5, help="throughput repetitions")
    args = parser.parse_args()

    table = Table()
    started = time.perf_counter()
    await bench_launch(table, args.launches)
    version = await bench_commands(table, args.calls, args.senders, args.per_sender, args.repeats)
    elapsed = time.perf_counter() - started
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{version} at {cdp.find_executable()}; python {sys.version.split()[0]}, trio {trio.__version__}")
    print(f"{os.cpu_count()} CPUs, load average {load}; took {elapsed:.1f} s")
    print()
    table.print()


if __name__ == "__main__":
    trio.run(main)
