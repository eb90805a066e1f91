"""``crawler session export|import|clear`` (crawler.run.session_commands), in-process
through ``crawler.cli.main``: Playwright's storage-state JSON in and out, files 0600,
and every bad input one line (exit 2) that names the file and never shows a value.
No browser: states are put in the store directly (the crawl's side is
tests/crawler/run/test_saved_sessions.py)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
import trio

from crawler import config as config_mod
from crawler.cli import main
from crawler.store.sqlite import SqliteStore

SECRET = "c00kie-v4lue-" + "x" * 8
STATE = {
    "cookies": [
        {
            "name": "sid",
            "value": SECRET,
            "domain": "shop.example",
            "path": "/",
            "expires": -1,
            "httpOnly": True,
            "secure": True,
            "sameSite": "Lax",
        }
    ],
    "origins": [{"origin": "https://shop.example", "localStorage": [{"name": "token", "value": SECRET}]}],
}
PROXIES = ["http://user:pw@p1.example:3128", "http://p2.example:8080"]


def write_config(tmp_path: Path, *, proxies: list[str] = (), persist: bool = True, db: str = "crawl.db") -> str:
    data = {
        "input": {"urls": ["https://shop.example/p/1"]},
        "output": {"db": str(tmp_path / db) if db != ":memory:" else db},
        "session": {"persist": persist, "proxies": list(proxies)},
    }
    path = tmp_path / "site.toml"
    path.write_text(config_mod.to_toml(data))
    return str(path)


def saved(db: Path) -> dict[str, dict]:
    async def read() -> dict[str, dict]:
        store = await SqliteStore.open(db)
        try:
            states = store.session_states
            return {i: (await states.load(i)).state for i in await states.identities()}
        finally:
            store.close()

    return trio.run(read)


def save(db: Path, identity: str, state: dict) -> None:
    async def write() -> None:
        store = await SqliteStore.open(db)
        try:
            await store.session_states.save(identity, state, 1_700_000_000.0)
        finally:
            store.close()

    trio.run(write)


def test_export_writes_playwright_json_to_stdout_or_a_0600_file(tmp_path, capsys):
    config = write_config(tmp_path)
    save(tmp_path / "crawl.db", "direct", STATE)
    assert main(["session", "export", "direct", "--config", config]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == STATE
    assert "1 cookie, localStorage of 1 origin" in err and SECRET not in err
    target = tmp_path / "state.json"
    target.write_text("old")
    target.chmod(0o644)
    assert main(["session", "export", "direct", "--config", config, "--out", str(target)]) == 0
    assert json.loads(target.read_text()) == STATE
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert SECRET not in "".join(capsys.readouterr())


def test_a_hand_written_playwright_file_imports_for_every_identity_of_the_config(tmp_path, capsys):
    """A file as a person writes it (only name, value, domain per cookie) is saved, as
    checked (Playwright's defaults filled in), for each proxy (named without its
    credentials); ``--identity`` picks one."""
    config = write_config(tmp_path, proxies=PROXIES)
    hand = tmp_path / "hand.json"
    hand.write_text(json.dumps({"cookies": [{"name": "sid", "value": SECRET, "domain": "shop.example"}]}))
    assert main(["session", "import", str(hand), "--config", config]) == 0
    states = saved(tmp_path / "crawl.db")
    assert sorted(states) == ["http://p1.example:3128", "http://p2.example:8080"]
    assert states["http://p1.example:3128"]["cookies"][0] == {
        "name": "sid",
        "value": SECRET,
        "domain": "shop.example",
        "path": "/",
        "expires": -1,
        "httpOnly": False,
        "secure": False,
        "sameSite": "Lax",
    }
    err = capsys.readouterr().err
    assert "pw" not in err and SECRET not in err
    full = tmp_path / "full.json"
    full.write_text(json.dumps(STATE))
    assert main(["session", "import", str(full), "--config", config, "--identity", "http://p2.example:8080"]) == 0
    states = saved(tmp_path / "crawl.db")
    assert states["http://p2.example:8080"] == STATE and states["http://p1.example:3128"] != STATE


def test_export_then_import_round_trips(tmp_path, capsys):
    config = write_config(tmp_path)
    save(tmp_path / "crawl.db", "direct", STATE)
    out = tmp_path / "out.json"
    assert main(["session", "export", "direct", "--config", config, "--out", str(out)]) == 0
    assert main(["session", "clear", "--config", config]) == 0
    assert "cleared 1 saved session state " in capsys.readouterr().err
    assert saved(tmp_path / "crawl.db") == {}
    assert main(["session", "import", str(out), "--config", config]) == 0
    assert saved(tmp_path / "crawl.db") == {"direct": STATE}


def test_importing_with_persist_off_says_the_crawl_will_not_restore_it(tmp_path, capsys):
    config = write_config(tmp_path, persist=False)
    file = tmp_path / "s.json"
    file.write_text(json.dumps(STATE))
    assert main(["session", "import", str(file), "--config", config]) == 0
    assert "[session] persist is off" in capsys.readouterr().err


BAD_FILES = {
    "not JSON": ('{"cookies": [', "not Playwright storage-state JSON: not JSON"),
    "a list": ("[]", "not Playwright storage-state JSON: expected a JSON object"),
    "no cookies": ('{"origins": []}', "not Playwright storage-state JSON: no cookies list"),
    "a cookie without domain": (
        json.dumps({"cookies": [{"name": "sid", "value": SECRET}]}),
        "not Playwright storage-state JSON: cookies[0]: no domain",
    ),
    "a bad localStorage value": (
        json.dumps({"cookies": [], "origins": [{"origin": "https://a.example", "localStorage": [{"name": SECRET}]}]}),
        "origins[0].localStorage[0].value: expected a string, got null",
    ),
    "not UTF-8": (b"\xff\xfe{", "not UTF-8 text"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_file_that_is_not_a_storage_state_is_one_line_naming_it_and_exit_2(tmp_path, capsys, case):
    content, said = BAD_FILES[case]
    file = tmp_path / "state.json"
    file.write_bytes(content if isinstance(content, bytes) else content.encode())
    config = write_config(tmp_path)
    assert main(["session", "import", str(file), "--config", config]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"crawler: error: {file}: ") and said in err[0], err
    assert SECRET not in err[0]
    assert not (tmp_path / "crawl.db").exists() or saved(tmp_path / "crawl.db") == {}


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (lambda t, c: ["session", "import", str(t / "none.json"), "--config", c], "none.json: no such file"),
        (lambda t, c: ["session", "export", "direct", "--config", c], "no such database"),
        (
            lambda t, c: ["session", "import", str(t / "ok.json"), "--config", c, "--identity", "http://x:1"],
            "--identity: 'http://x:1' is not an identity of",
        ),
    ],
)
def test_a_missing_file_database_or_identity_is_one_line_and_exit_2(tmp_path, capsys, args, said):
    config = write_config(tmp_path)
    (tmp_path / "ok.json").write_text(json.dumps(STATE))
    assert main(args(tmp_path, config)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and said in err[0], err


def test_exporting_an_identity_without_a_state_names_the_ones_saved(tmp_path, capsys):
    config = write_config(tmp_path)
    save(tmp_path / "crawl.db", "direct", STATE)
    assert main(["session", "export", "http://p9.example:1", "--config", config]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no saved session state" in err[0] and "(saved: direct)" in err[0], err


def test_persist_with_an_in_memory_database_is_one_line_and_exit_2(tmp_path, capsys):
    """A store that keeps nothing after the run cannot hold a saved session."""
    config = write_config(tmp_path, db=":memory:")
    assert main(["--config", config]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "[session] persist: the store at [output] db ':memory:' keeps nothing" in err[0], err
