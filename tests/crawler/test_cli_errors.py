"""Every user-facing error of the command line is one line, never a traceback: a table
of bad inputs run through ``crawler.cli.main`` (in-process: an uncaught exception
fails the test), each giving its exit code and one line naming the path or key.
None of them starts a browser."""

from __future__ import annotations

import pytest

from crawler.cli import exit_code, main, resume_args

CONFIG = """
[input]
urls = ["http://127.0.0.1:9/never-fetched"]
{extra}
"""


def write(tmp_path, name: str, content: str | bytes):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return str(path)


def config(tmp_path, extra: str = "", name: str = "site.toml") -> str:
    return write(tmp_path, name, CONFIG.format(extra=extra))


def config_with_cookies(tmp_path, cookies: str) -> str:
    write(tmp_path, "cookies.txt", cookies)
    return config(tmp_path, '[session]\ncookies_file = "cookies.txt"')


CASES = {
    "crawl --db on a garbage file": (
        lambda t: ["--config", config(t), "--db", write(t, "junk.db", b"not sqlite at all" * 100)],
        2,
        "junk.db: not a crawler database",
    ),
    "crawl --db on a directory": (
        lambda t: ["--config", config(t), "--db", str(t)],
        2,
        "is a directory, not a database",
    ),
    "crawl --db on /proc/version": (
        lambda t: ["--config", config(t), "--db", "/proc/version"],
        2,
        "/proc/version: cannot create its lock file",
    ),
    "crawl --db in a missing folder": (
        lambda t: ["--config", config(t), "--db", str(t / "no" / "crawl.db")],
        2,
        "[output] db: folder",
    ),
    "crawl with a malformed proxy URL": (
        lambda t: ["--config", config(t, '[session]\nproxies = ["ftp://user:hunter2@proxy.example:21"]')],
        2,
        "[session] proxies: expected a proxy URL scheme://[user:pass@]host:port",
    ),
    "crawl with a malformed cookie file": (
        lambda t: ["--config", config_with_cookies(t, "example.com\tTRUE\t/\n")],
        2,
        "[session] cookies_file: ",
    ),
    "crawl with an invalid wait_for": (
        lambda t: ["--config", config(t, '[extract]\nwait_for = "div[["')],
        2,
        "[extract] wait_for: invalid CSS selector 'div[['",
    ),
    "crawl following a label with no route": (
        lambda t: ["--config", config(t, '[[route]]\nfollow = [{ selector = "a", label = "prodcut" }]')],
        2,
        "follow: no route for label 'prodcut'",
    ),
    "a route's recrawl_after_s below 0": (
        lambda t: ["--config", config(t, '[[route]]\nlabel = "product"\nrecrawl_after_s = -60')],
        2,
        "[[route]] product: recrawl_after_s: expected a number >= 0, got -60",
    ),
    "crawl with a file: URL in url_file": (
        lambda t: (
            ["--config", config(t, 'url_file = "urls.txt"'), "--db", str(t / "c.db")]
            if write(t, "urls.txt", "http://127.0.0.1:9/a\nfile:///etc/passwd\n")
            else []
        ),
        2,
        "urls.txt:2: expected an http(s) URL, got 'file:///etc/passwd'",
    ),
    "crawl with a missing config": (lambda t: ["--config", str(t / "nope.toml")], 2, "nope.toml: no such file"),
    "export --db on a garbage file": (
        lambda t: ["export", "--db", write(t, "junk.db", b"\x00garbage" * 100)],
        2,
        "junk.db: not a crawler database",
    ),
    "export --db on a directory": (lambda t: ["export", "--db", str(t)], 2, "--db: no such database"),
    "export --db on /proc/version": (lambda t: ["export", "--db", "/proc/version"], 2, "not a crawler database"),
    "export --out into a missing folder": (
        lambda t: ["export", "--config", config(t, f'[output]\ndb = "{t / "ok.db"}"'), "--out", str(t / "no/x.jsonl")],
        2,
        "--out: cannot write",
    ),
    "try a file: URL": (
        lambda t: ["try", "--config", config(t), "file:///etc/passwd"],
        2,
        "try: URL: expected an http(s) URL, got 'file:///etc/passwd'",
    ),
    "try a label with no route": (
        lambda t: ["try", "--config", config(t), "http://127.0.0.1:9/x", "--label", "prodcut"],
        2,
        "try: --label: no route for label 'prodcut'",
    ),
    "crawl with a sitemap that is not http(s)": (
        lambda t: ["--config", config(t, 'sitemaps = ["ftp://a.test/sitemap.xml"]')],
        2,
        "[input] sitemaps: expected an http(s) URL, got 'ftp://a.test/sitemap.xml'",
    ),
    "crawl with an unknown [debug] key": (
        lambda t: ["--config", config(t, '[debug]\nsnapshot_dir = "s"')],
        2,
        "[debug] unknown key 'snapshot_dir' (known: snapshots_dir, snapshot_every)",
    ),
    "report --db on a garbage file": (
        lambda t: ["report", "--db", write(t, "junk.db", b"garbage" * 100)],
        2,
        "junk.db: not a crawler database",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_bad_input_is_one_line_and_its_exit_code(tmp_path, capsys, case):
    make_args, code, expected = CASES[case]
    args = make_args(tmp_path)
    assert main(args) == code
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("crawler: error:")]
    assert len(errors) == 1 and expected in errors[0], err
    assert not any("Traceback" in line for line in err)


def test_the_exit_code_reflects_the_database_not_only_this_run(capsys):
    """0 only when nothing is failed or pending and the input was fed whole."""
    clean = {"failed": 0, "pending": 0, "input_exhausted": True}
    assert exit_code(clean) == 0
    assert exit_code({**clean, "failed": 20}) == 1  # failed in an earlier run
    assert "--retry-failed" in capsys.readouterr().err
    assert exit_code({**clean, "pending": 3}) == 1  # --limit left some
    assert exit_code({**clean, "input_exhausted": False}) == 1  # input left to feed


def test_the_resume_hint_drops_the_one_off_options():
    argv = ["--config", "s.toml", "--fresh", "--retry-failed", "timeout", "--limit", "5"]
    assert resume_args(argv) == ["--config", "s.toml", "--limit", "5"]
    assert resume_args(["--retry-failed", "--config", "s.toml"]) == ["--config", "s.toml"]
    assert resume_args(["--retry-failed=http_5", "--config", "s.toml"]) == ["--config", "s.toml"]


@pytest.mark.parametrize(("given", "expected"), [("auto", "auto"), ("3", 3)])
def test_concurrency_on_the_command_line_is_a_number_or_auto(given, expected):
    from crawler.cli import REPO_CONFIG, build_parser, load_config

    args = build_parser().parse_args(["crawl", "--config", str(REPO_CONFIG / "demo.toml"), "--concurrency", given])
    assert load_config(args).pool.concurrency == expected


def test_a_concurrency_that_is_neither_is_a_usage_error(capsys):
    from crawler.cli import REPO_CONFIG

    with pytest.raises(SystemExit) as exit_:
        main(["crawl", "--config", str(REPO_CONFIG / "demo.toml"), "--concurrency", "lots"])
    assert exit_.value.code == 2 and "expected a positive integer, got 'lots'" in capsys.readouterr().err
