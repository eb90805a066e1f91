"""Saved sessions (``[session] persist``) against real Chromium and a local site that
counts logins (``tests/login_site.py``): one login per identity however many contexts
rotate, runs and workers there are; a new login once the state is too old or the
session check says no; the state (cookies and localStorage) restored in every new
context."""

from __future__ import annotations

import json
import logging
import sys
import time
import uuid
from typing import Any

import pytest
import trio

from crawler import Router
from crawler import config as config_mod
from crawler.cli import main
from crawler.run.engine import Crawler
from crawler.store import StoreSettings
from crawler.store.redis.store import open_redis_store
from crawler.store.sqlite import SqliteStore
from tests.crawler.observe.conftest import free_port, scrape_endpoint
from tests.crawler.store.redis.conftest import make_redis_config
from tests.httpproxy import HttpProxy
from tests.login_site import LoginSite, serve_login_site

pytestmark = pytest.mark.chromium

FIELDS = {"user": ".user", "token": ".token"}


@pytest.fixture
def crawl_name() -> str:
    return f"saved-{uuid.uuid4().hex[:10]}"


def login_config(tmp_path, site: LoginSite, chromium, pages: int, **sections: dict[str, Any]) -> dict[str, Any]:
    """A crawl of the site's pages 1..``pages`` into ``tmp_path``/crawl.db, in the
    shared Chromium, ``persist`` on (``sections`` override keys)."""
    data: dict[str, Any] = {
        "input": {"url_template": f"{site.base}/p/{{id}}", "ids": f"1-{pages}"},
        "browser": {"cdp_url": chromium.url},
        "pool": {"concurrency": 4, "rotate_context_every": 50, "recycle_tab_every": 25, "tab_close_timeout_s": 3.0},
        "watchdog": {"timeout_s": 20.0, "jitter_s": 0.0},
        "retry": {"max_attempts": 2, "backoff_s": [0.05, 0.2]},
        "output": {"db": str(tmp_path / "crawl.db")},
        "session": {"persist": True},
    }
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return data


def login_router(*, check=None, slow_login_s: float = 0.0, retire_once_at: str = "") -> Router:
    """Pages' ``user`` and ``token``; the hook logs in at ``/login``; ``check`` (if
    given) is the session check; the first page whose URL ends with ``retire_once_at``
    retires its session."""
    router = Router()
    retire = [retire_once_at] if retire_once_at else []

    @router.route(render="hidden")
    async def page(page):
        if retire and page.url.endswith(retire[0]):
            retire.clear()
            page.retire_session("soft_block")
        await page.push(await page.extract(FIELDS, wait_for="body[data-ready]"))

    @router.session
    async def log_in(page):
        await page.goto("/login")
        await page.wait_for(".done")
        await trio.sleep(slow_login_s)

    if check is not None:
        router.session_check(check)
    return router


async def account_check(page) -> bool:
    await page.goto("/account")
    return (await page.extract({"user": ".user"}))["user"] == "demo"


async def crawl(cfg, router) -> tuple[Crawler, list[dict[str, Any]]]:
    store = await SqliteStore.open(cfg.output.db)
    try:
        await store.reset()  # a new run of the same pages; the saved sessions stay
        engine = Crawler(cfg, store, router=router)
        assert await engine.run() == "finished"
        return engine, await store.items()
    finally:
        store.close()


def logged_in(items: list[dict[str, Any]]) -> bool:
    return bool(items) and all(item["user"] == "demo" and item["token"] == "yes" for item in items)


async def test_a_crawl_of_300_pages_in_6_contexts_logs_in_once(tmp_path, shared_chromium, caplog):
    """300 pages, a new context every 50: the first context logs in and saves its state,
    every later one restores it (cookies and localStorage): one login, not 6, and every
    page was served logged in with the login's localStorage token."""
    caplog.set_level(logging.INFO)
    async with serve_login_site() as site:
        cfg = config_mod.from_dict(login_config(tmp_path, site, shared_chromium, 300), source="t.toml")
        engine, items = await crawl(cfg, login_router())
    assert len(items) == 300 and logged_in(items)
    assert site.logins == 1
    stats = engine.statistics()
    assert stats.browser.pool_totals.contexts_rotated >= 5
    restored = [r for r in caplog.records if "state restored" in r.getMessage()]
    assert len(restored) >= 5
    assert all("session direct:" in r.getMessage() for r in restored)
    # The figures say the same (the summary's logins line and the metrics' counters read them).
    assert stats.jobs.sessions_started == 1 and stats.jobs.sessions_restored == len(restored)


async def test_a_state_older_than_state_ttl_s_is_not_restored_and_the_hook_logs_in_again(tmp_path, shared_chromium):
    """Three runs of a small crawl: the first logs in; the second, within
    ``state_ttl_s``, restores (no login, and the state is not saved again); the third,
    once the state is older than that (counted from the login's save, not from the
    restore), logs in again."""
    ttl_s = 6.0  # room for two small crawls on a loaded machine (4 s was too tight beside other suites)
    async with serve_login_site() as site:
        data = login_config(tmp_path, site, shared_chromium, 8, session={"persist": True, "state_ttl_s": ttl_s})
        cfg = config_mod.from_dict(data, source="t.toml")
        _, items = await crawl(cfg, login_router())
        assert logged_in(items) and site.logins == 1
        saved_at = await saved_time(cfg)
        _, items = await crawl(cfg, login_router())
        assert time.time() < saved_at + ttl_s, "the second run was too slow to test the restore"
        assert logged_in(items) and site.logins == 1
        assert await saved_time(cfg) == saved_at
        await trio.sleep(saved_at + ttl_s + 0.1 - time.time())
        _, items = await crawl(cfg, login_router())
        assert logged_in(items) and site.logins == 2
        assert await saved_time(cfg) > saved_at


async def saved_time(cfg) -> float:
    store = await SqliteStore.open(cfg.output.db)
    try:
        saved = await store.session_states.load("direct")
    finally:
        store.close()
    assert saved is not None
    return saved.saved_at


@pytest.mark.parametrize("how", ["false", "raises"])
async def test_a_failed_session_check_logs_in_again_and_the_new_state_is_restored(
    tmp_path, shared_chromium, caplog, how
):
    """The server logs everyone out between two runs: in the second run the first
    context's check (falsy, or raising) rejects the restored state, the hook logs in
    again and saves anew, and the later contexts restore that one (their check
    passes): two logins in all, every page logged in."""
    calls: list[str] = []

    async def check(page):
        calls.append(page.session.id)
        fine = await account_check(page)
        if not fine and how == "raises":
            raise RuntimeError("not logged in")
        return fine or None  # falsy, not False

    async with serve_login_site() as site:
        data = login_config(tmp_path, site, shared_chromium, 24, pool={"rotate_context_every": 6})
        cfg = config_mod.from_dict(data, source="t.toml")
        _, items = await crawl(cfg, login_router(check=check))
        assert logged_in(items) and site.logins == 1
        first_run_checks = len(calls)
        assert first_run_checks >= 3  # every context after the first restored, and checked
        site.log_everyone_out()
        caplog.set_level(logging.INFO)
        _, items = await crawl(cfg, login_router(check=check))
    assert logged_in(items)
    assert site.logins == 2
    assert len(calls) - first_run_checks >= 4  # the failed one, then the later contexts' passing ones
    said = [r.getMessage() for r in caplog.records if "session check" in r.getMessage()]
    # One check failed: the contexts that opened with it waited for its login.
    assert len(said) == 1 and ("raised RuntimeError" in said[0] if how == "raises" else "no longer works" in said[0])


async def test_a_check_that_passes_keeps_the_restored_state_without_a_login(tmp_path, shared_chromium):
    """A second run whose check passes logs in no more."""
    async with serve_login_site() as site:
        cfg = config_mod.from_dict(login_config(tmp_path, site, shared_chromium, 12), source="t.toml")
        await crawl(cfg, login_router(check=account_check))
        _, items = await crawl(cfg, login_router(check=account_check))
    assert logged_in(items) and site.logins == 1


async def test_two_contexts_of_one_identity_at_once_log_in_once(tmp_path, shared_chromium):
    """Contexts rotating every 2 pages at concurrency 4 start together while the first
    login (slow: 0.5 s) runs: they wait for it, then restore its state."""
    async with serve_login_site() as site:
        data = login_config(tmp_path, site, shared_chromium, 16, pool={"rotate_context_every": 2})
        cfg = config_mod.from_dict(data, source="t.toml")
        engine, items = await crawl(cfg, login_router(slow_login_s=0.5))
    assert len(items) == 16 and logged_in(items)
    assert site.logins == 1
    assert engine.statistics().browser.pool_totals.contexts_rotated >= 4


async def test_a_retired_session_deletes_its_saved_state(tmp_path, shared_chromium, caplog):
    """One tab, a context every 3 pages: the first logs in, the second restores its
    state and is retired at page 5 (a handler's retire_session): the state it used is
    deleted, so the third context logs in afresh (where it would have restored)."""
    caplog.set_level(logging.INFO)
    async with serve_login_site() as site:
        data = login_config(
            tmp_path,
            site,
            shared_chromium,
            8,
            pool={"concurrency": 1, "rotate_context_every": 3},
            session={"persist": True, "backoff_s": [0.0, 0.0]},
        )
        cfg = config_mod.from_dict(data, source="t.toml")
        _, items = await crawl(cfg, login_router(retire_once_at="/p/5"))
    assert len(items) == 8 and logged_in(items)
    assert sum("saved state deleted" in r.getMessage() for r in caplog.records) == 1
    assert site.logins == 2


async def test_two_redis_workers_log_in_once_between_them(redis_server, crawl_name, tmp_path, shared_chromium, caplog):
    """Two workers (two crawls in one trio run, each its own pool) on one Redis crawl,
    contexts rotating every 10 pages: one of them logs in (slowly, so the other's first
    context finds the login lease held and waits for the state), the other restores."""
    caplog.set_level(logging.INFO)
    async with serve_login_site() as site:
        data = login_config(tmp_path, site, shared_chromium, 0, pool={"rotate_context_every": 10, "concurrency": 2})
        urls = [f"{site.base}/p/{i}" for i in range(1, 61)]
        cfg = make_redis_config(
            redis_server,
            crawl_name,
            urls,
            browser=data["browser"],
            pool=data["pool"],
            session={"persist": True},
            extract={"fields": {}, "capture": []},
        )
        engines: list[Crawler] = []

        async def worker() -> None:
            async with open_redis_store(StoreSettings.of(cfg)) as store:
                engine = Crawler(cfg, store, router=login_router(slow_login_s=1.0))
                engines.append(engine)
                assert await engine.run() == "finished"

        async with trio.open_nursery() as workers:
            workers.start_soon(worker)
            workers.start_soon(worker)
        async with open_redis_store(StoreSettings.of(cfg), renew=False) as store:
            items = await store.items()
            await store.session_states.clear()
    assert len(items) == 60 and logged_in(items)
    assert site.logins == 1
    assert all(e.statistics().jobs.done > 0 for e in engines)
    assert any("another worker is logging in" in r.getMessage() for r in caplog.records)


async def test_a_login_lease_left_by_a_dead_worker_expires_and_another_logs_in(
    redis_server, crawl_name, tmp_path, shared_chromium
):
    """A worker died holding the login lease (taken here for 1.5 s and never renewed):
    the crawl's first context waits for it to expire, then logs in itself."""
    async with serve_login_site() as site:
        data = login_config(tmp_path, site, shared_chromium, 0)
        cfg = make_redis_config(
            redis_server,
            crawl_name,
            [f"{site.base}/p/{i}" for i in range(1, 5)],
            browser=data["browser"],
            session={"persist": True},
            extract={"fields": {}, "capture": []},
        )
        async with open_redis_store(StoreSettings.of(cfg), renew=False) as dead:
            assert await dead.session_states.acquire_lease("direct", 1.5) is not None
        started = trio.current_time()
        async with open_redis_store(StoreSettings.of(cfg)) as store:
            assert await Crawler(cfg, store, router=login_router()).run() == "finished"
            items = await store.items()
            await store.session_states.clear()
    assert logged_in(items) and site.logins == 1
    assert trio.current_time() - started >= 1.3


# -- through the command line: export, import, and what never shows a state ------------------


def write_site_files(tmp_path, data: dict[str, Any], handlers: str = "") -> str:
    """The config as a file (and ``handlers`` as its handlers file, if given); its path."""
    if handlers:
        (tmp_path / "handlers.py").write_text(handlers)
        data = {**data, "site": {"name": "login", "handlers": "handlers.py"}}
    path = tmp_path / "site.toml"
    path.write_text(config_mod.to_toml(data))
    return str(path)


async def cli(*args: str) -> int:
    """``crawler ARGS`` in-process (its own trio loop, on a thread)."""
    return await trio.to_thread.run_sync(main, list(args))


async def test_export_then_import_round_trips_through_playwrights_format_between_crawls(tmp_path, shared_chromium):
    """A crawl logs in; ``session export`` writes Playwright's format (the login's cookie
    and localStorage token in it), ``clear`` wipes it, ``import`` reads it back, and the
    next crawl restores it: still one login.  Then a state written by hand, in
    Playwright's format, for a session the site opened elsewhere, imports and is used
    with no login at all."""
    async with serve_login_site() as site:
        config = write_site_files(tmp_path, login_config(tmp_path, site, shared_chromium, 6))
        cfg = config_mod.load(config)
        _, items = await crawl(cfg, login_router())
        assert logged_in(items) and site.logins == 1
        out = tmp_path / "state.json"
        assert await cli("session", "export", "direct", "--config", config, "--out", str(out)) == 0
        exported = json.loads(out.read_text())
        assert [(c["name"], c["value"], c["domain"], c["httpOnly"]) for c in exported["cookies"]] == [
            ("sid", site.issued[0], "127.0.0.1", True)
        ]
        assert exported["origins"] == [{"origin": site.base, "localStorage": [{"name": "token", "value": site.token}]}]
        assert await cli("session", "clear", "--config", config) == 0
        assert await cli("session", "import", str(out), "--config", config) == 0
        _, items = await crawl(cfg, login_router())
        assert logged_in(items) and site.logins == 1

        elsewhere = "s3cr3t-sid-by-hand"
        site.sessions = {elsewhere}  # every earlier session ended; this one opened in another browser
        by_hand = tmp_path / "by_hand.json"
        by_hand.write_text(
            json.dumps(
                {
                    "cookies": [{"name": "sid", "value": elsewhere, "domain": "127.0.0.1", "httpOnly": True}],
                    "origins": [{"origin": site.base, "localStorage": [{"name": "token", "value": site.token}]}],
                }
            )
        )
        assert await cli("session", "import", str(by_hand), "--config", config) == 0
        _, items = await crawl(cfg, login_router())
        assert logged_in(items) and site.logins == 1


HANDLERS = """
import trio
from crawler import Router

router = Router()

@router.session
async def log_in(page):
    await page.goto("/login")
    await page.wait_for(".done")

@router.route(render="hidden")
async def page(page):
    await trio.sleep(0.15)  # a crawl long enough to scrape its metrics and status page
    item = await page.extract({"user": ".user", "token": ".token"}, wait_for="body[data-ready]")
    if page.url.endswith("/p/3"):
        raise ValueError("a failure, for a snapshot")
    await page.push(item)
"""


async def test_no_cookie_or_token_of_a_login_appears_in_any_output(tmp_path, shared_chromium):
    """Two crawls in processes of their own with -v (one logs in, one restores), their
    metrics and status page scraped while they run, a failure snapshot, the items'
    export, ``crawler try`` and the session commands' own lines: none holds a cookie
    value the site set or the localStorage token.  (The state export holds them, as
    it must: the proof that the grep would find them.)"""
    port = free_port()
    async with serve_login_site() as site:
        data = login_config(
            tmp_path,
            site,
            shared_chromium,
            12,
            pool={"concurrency": 2, "rotate_context_every": 4},
            retry={"max_attempts": 1},
            monitor={"metrics_port": port, "progress_interval_s": 0.2},
            debug={"snapshots_dir": str(tmp_path / "snapshots")},
        )
        config = write_site_files(tmp_path, data, HANDLERS)
        outputs: dict[str, str] = {}
        scraped: list[str] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(scrape_endpoint, port, scraped)
            for run in ("login", "restore"):
                done = await trio.run_process(
                    [sys.executable, "-m", "crawler", "-v", "--config", config, "--fresh"],
                    capture_stdout=True,
                    capture_stderr=True,
                    check=False,
                )
                assert done.returncode == 1  # /p/3 failed, on purpose
                outputs[f"crawl ({run})"] = done.stdout.decode() + done.stderr.decode()
            nursery.cancel_scope.cancel()
        assert site.logins == 1
        # The summary says so: one login in the first run, restored states and no login in the second.
        assert "logins          1, saved states restored" in outputs["crawl (login)"]
        assert "logins          0, saved states restored" in outputs["crawl (restore)"]
        assert any("crawler_pages_done" in s for s in scraped) and any("<html" in s for s in scraped)
        outputs["metrics and status page"] = "\n".join(scraped)
        tried = await trio.run_process(
            [sys.executable, "-m", "crawler", "-v", "try", f"{site.base}/p/1", "--config", config],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
        assert tried.returncode == 0 and site.logins == 2  # try logs in, in a fresh browser
        outputs["try"] = tried.stdout.decode() + tried.stderr.decode()
        exported = tmp_path / "items.jsonl"
        done = await trio.run_process(
            [sys.executable, "-m", "crawler", "export", "--config", config, "--out", str(exported)],
            capture_stderr=True,
            check=False,
        )
        assert done.returncode == 0
        outputs["items export"] = exported.read_text() + done.stderr.decode()
        state = tmp_path / "state.json"
        done = await trio.run_process(
            [sys.executable, "-m", "crawler", "session", "export", "direct", "--config", config, "--out", str(state)],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
        assert done.returncode == 0
        outputs["session export's own lines"] = done.stdout.decode() + done.stderr.decode()
    snapshots = [p for p in (tmp_path / "snapshots").rglob("*") if p.is_file()]
    assert snapshots, "no failure snapshot was taken"
    outputs["snapshots"] = "\n".join(p.read_bytes().decode("utf-8", "replace") for p in snapshots)
    secrets_ = [*site.issued, site.token]
    assert len(secrets_) == 3
    assert any(s in state.read_text() for s in secrets_)  # the grep finds them where they are
    for name, text in outputs.items():
        assert text, f"{name}: empty"
        for secret in secrets_:
            assert secret not in text, f"a secret of the login in {name}"


async def test_each_proxy_identity_logs_in_once_and_restores_only_its_own_state(tmp_path, shared_chromium, nursery):
    """Two proxies, contexts taking them in turn every 5 pages: one login per identity
    (2, not 8), each state saved under its proxy's ``scheme://host:port`` (without the
    credentials), and every page through a proxy sent that proxy's own login cookie."""
    a = HttpProxy("A", hosts={"shop.test": "127.0.0.1"}, credentials=("alice", "pw-a"))
    b = HttpProxy("B", hosts={"shop.test": "127.0.0.1"}, credentials=("bob", "pw-b"))
    await nursery.start(a.serve)
    await nursery.start(b.serve)
    async with serve_login_site() as site:
        data = login_config(
            tmp_path,
            site,
            shared_chromium,
            40,
            pool={"concurrency": 2, "rotate_context_every": 5},
            session={"persist": True, "proxies": [a.url(), b.url()]},
        )
        data["input"]["url_template"] = site.base.replace("127.0.0.1", "shop.test") + "/p/{id}"
        cfg = config_mod.from_dict(data, source="t.toml")
        engine, items = await crawl(cfg, login_router())
    assert len(items) == 40 and logged_in(items)
    assert site.logins == 2
    assert engine.statistics().sessions.sessions >= 8
    store = await SqliteStore.open(cfg.output.db)
    try:
        assert await store.session_states.identities() == sorted(
            [a.url(with_credentials=False), b.url(with_credentials=False)]
        )
    finally:
        store.close()
    a_sids = set().union(*(cookie_sids(r) for r in a.forwarded if "/p/" in r.url))
    b_sids = set().union(*(cookie_sids(r) for r in b.forwarded if "/p/" in r.url))
    assert len(a_sids) == 1 and len(b_sids) == 1 and a_sids != b_sids


def cookie_sids(request) -> set[str]:
    """The ``sid`` values in a forwarded request's cookie header."""
    pairs = (c.split("=", 1) for c in request.headers.get("cookie", "").split("; ") if "=" in c)
    return {value for name, value in pairs if name == "sid"}
