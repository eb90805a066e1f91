"""Security on one machine (issue 11): no other local user gets into the crawler's
Chromium.

A real ``python -m crawler`` crawls the demo storefront, whose pages set an HttpOnly
session cookie with a secret value.  While it runs, its whole process tree (the crawler,
Chromium's processes, and Crashpad's handler outside the tree) has no TCP socket
listening, and ``devtools_attack.py`` runs as another user (uid 65534) and finds no
way in: no DevTools endpoint, no cookie, nothing of ``/etc/shadow``, none of the
browser's descriptors, memory or profile files.

The control: the same attack against a Chromium that does have a DevTools port gets
the cookie and ``/etc/shadow`` - the attack is real, and it is the port that made
the difference.
"""

from __future__ import annotations

import json
import secrets
import shutil
from pathlib import Path
from typing import Any

import attrs
import psutil
import pytest
import trio

import cdp
from tests.cdp.conftest import WITH_DEVTOOLS_PORT
from tests.faults.test_process import states
from tests.procs import site_toml, start_crawler, wait_gone, write_config
from tests.shop import FaultShop, start_shop

pytestmark = pytest.mark.chromium

ATTACK = Path(__file__).with_name("devtools_attack.py")
NOBODY = 65534
PAGES = 12


class CookieShop(FaultShop):
    """The fault shop; every product page sets an HttpOnly session cookie, ``cookie``
    (name=value, both random).  ``/held/{i}`` is product ``i`` answered only once
    ``release`` is set: a crawl holding it is still running."""

    def __init__(self):
        super().__init__()
        self.cookie_name = f"session_{secrets.token_hex(4)}"
        self.cookie = f"{self.cookie_name}={secrets.token_hex(16)}"
        self.release = trio.Event()
        self.base = ""

    async def __call__(self, request):
        parts = request.path.strip("/").split("/")
        if parts[0] == "held":
            await self.release.wait()
            request = attrs.evolve(request, path=f"/product/{parts[1]}")
        response = await super().__call__(request)
        if request.path.startswith("/product/"):
            response = attrs.evolve(
                response, headers=(*response.headers, ("Set-Cookie", f"{self.cookie}; Path=/; HttpOnly"))
            )
        return response


@pytest.fixture
async def cookie_shop(nursery) -> CookieShop:
    shop = CookieShop()
    shop.base = await start_shop(nursery, shop)
    return shop


async def attack_as_nobody(victim_cookie: str) -> dict[str, Any]:
    """Run devtools_attack.py as uid 65534 (fed on stdin: that user may not read this
    checkout) with the system's python3, after the session cookie ``victim_cookie``
    (its name); its report."""
    python = shutil.which("python3", path="/usr/bin:/bin:/usr/local/bin")
    if python is None:
        pytest.skip("no system python3 for another user to run")
    with trio.fail_after(60):
        done = await trio.run_process(
            [python, "-I", "-"],
            stdin=ATTACK.read_bytes(),
            cwd="/",
            env={"PATH": "/usr/bin:/bin", "VICTIM_COOKIE": victim_cookie},
            user=NOBODY,
            group=NOBODY,
            extra_groups=[],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return json.loads(done.stdout)


def shadow_lines() -> list[str]:
    """The lines of /etc/shadow (``root:*:20059:0:99999:7:::``: unlike /etc/passwd's)."""
    return [line for line in Path("/etc/shadow").read_text().splitlines() if line.count(":") >= 8]


def listening_sockets(root: psutil.Process, profile_marker: str) -> tuple[list[str], list[str], list[psutil.Process]]:
    """The TCP sockets in LISTEN state of ``root``'s process tree and of any process whose
    command line names ``profile_marker`` (Crashpad's handler, outside the tree), the
    kinds of process seen (to show that the tree held a browser), and the processes."""
    tree = {p.pid: p for p in [root, *root.children(recursive=True)]}
    for proc in psutil.process_iter():
        try:
            if profile_marker and any(profile_marker in arg for arg in proc.cmdline()):
                tree.setdefault(proc.pid, proc)
        except psutil.Error:
            continue
    found, kinds = [], []
    for proc in tree.values():
        try:
            cmdline = proc.cmdline()
            kinds.append(next((a[7:] for a in cmdline if a.startswith("--type=")), Path(cmdline[0]).name))
            found += [
                f"{proc.pid} {cmdline[0]} {c.laddr}" for c in proc.net_connections(kind="tcp") if c.status == "LISTEN"
            ]
        except (psutil.Error, IndexError):
            continue
    return found, kinds, list(tree.values())


def chromium_profile(root: psutil.Process) -> str:
    for proc in root.children(recursive=True):
        try:
            for arg in proc.cmdline():
                if arg.startswith("--user-data-dir="):
                    return arg.split("=", 1)[1]
        except psutil.Error:
            continue
    return ""


async def test_a_launched_crawl_listens_on_no_port_and_another_user_finds_no_way_in(cookie_shop, tmp_path):
    """While ``python -m crawler`` crawls pages that set an HttpOnly session cookie (one
    page held back until the end, so that it is still running): no process of its
    tree (Chromium's included) has a TCP socket listening, sampled before and after
    the attack; and the attack, run as uid 65534 meanwhile, sees this host's listening
    sockets (the shop's among them) but no DevTools endpoint of the crawler's, reads
    no cookie of its and nothing of /etc/shadow, and opens none of the browser's
    descriptors, memory, environment or profile files.  The crawl then finishes every
    URL (exit 0)."""
    if psutil.Process().uids().effective != 0:
        pytest.skip("needs root to run the attack as another user")
    urls = [f"{cookie_shop.base}/product/{i}" for i in range(1, PAGES)] + [f"{cookie_shop.base}/held/{PAGES}"]
    db = str(tmp_path / "crawl.db")
    listed = ",\n  ".join(json.dumps(u) for u in urls)
    settings = "[pool]\nconcurrency = 2\n[watchdog]\ntimeout_s = 30\njitter_s = 1\n"
    config = write_config(tmp_path / "site.toml", site_toml("security", f"urls = [\n  {listed}\n]", db, settings))
    proc = await start_crawler("--config", str(config), cwd=tmp_path)
    root = psutil.Process(proc.pid)
    samples: list[tuple[list[str], list[str], list[psutil.Process]]] = []
    try:
        with trio.fail_after(60):
            while sum(1 for s in states(db).values() if s == "done") < 2:  # the cookie is in the browser now
                assert proc.poll() is None, (tmp_path / "crawler.err").read_text()[-2000:]
                await trio.sleep(0.05)
        profile = chromium_profile(root)
        samples.append(listening_sockets(root, profile))
        report = await attack_as_nobody(cookie_shop.cookie_name)
        samples.append(listening_sockets(root, profile))
        assert proc.poll() is None, "the crawl ended before the attack did: it proves nothing"
        cookie_shop.release.set()
        with trio.fail_after(60):
            code = await proc.wait()
    finally:
        cookie_shop.release.set()
        if proc.poll() is None:
            proc.kill()
            await proc.wait()
    seen = [p for _, _, procs in samples for p in procs if p.pid != root.pid]
    assert await wait_gone(seen) == []  # the crawler stopped its browser (what we adopted is reaped)
    assert code == 0, (tmp_path / "crawler.err").read_text()[-2000:]
    assert set(states(db).values()) == {"done"}
    for found, kinds, _ in samples:
        assert "renderer" in kinds, kinds  # the tree sampled held a running browser
        assert found == [], found
    port = int(cookie_shop.base.rsplit(":", 1)[1])
    assert port in report["listening"], report  # the attacker did look
    text = json.dumps(report)
    assert cookie_shop.cookie not in text and cookie_shop.cookie_name not in text
    assert report["shadow"] == [] and not any(line in text for line in shadow_lines())
    assert report["opened"] == [], report["opened"]


async def test_the_same_attack_gets_in_through_a_devtools_port(cookie_shop):
    """Control: against a Chromium with a DevTools port on 127.0.0.1 (what the launcher
    used to open), the attack as uid 65534 finds the endpoint, reads the HttpOnly
    session cookie of the page's context, and reads /etc/shadow through a tab - so the
    first test's "no way in" is the pipe's doing, not a blind attack."""
    if psutil.Process().uids().effective != 0:
        pytest.skip("needs root to run the attack as another user")
    async with cdp.launch(args=WITH_DEVTOOLS_PORT) as browser, browser.new_context() as context:
        async with context.new_tab() as tab:
            await tab.send("Page.enable")
            await tab.send("Page.navigate", url=f"{cookie_shop.base}/product/1")
            with trio.fail_after(10):
                while not cookie_shop.page_hits("product", 1):  # noqa: ASYNC110 - the shop has no event
                    await trio.sleep(0.05)
            await trio.sleep(0.2)  # the response (and its cookie) is in
            report = await attack_as_nobody(cookie_shop.cookie_name)
    assert report["endpoints"], report
    assert cookie_shop.cookie in report["cookies"], report
    assert shadow_lines()[0] in "\n".join(report["shadow"]), report
