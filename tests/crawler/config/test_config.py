"""Bad configuration is one line naming the file, the key and what was expected; exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from crawler import config as config_mod
from crawler.cli import main
from crawler.errors import ConfigError
from crawler.sources.inputs import iter_urls

GOOD = """
[input]
urls = ["http://127.0.0.1:8000/product/1"]
"""


def load(tmp_path, text: str):
    path = tmp_path / "site.toml"
    path.write_text(text, encoding="utf-8")
    return config_mod.load(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD + "[pool]\nconcurency = 4\n", "[pool] unknown key 'concurency'"),
        (
            GOOD + '[pool]\nconcurrency = "four"\n',
            "[pool] concurrency: expected an integer >= 1 or \"auto\", got 'four'",
        ),
        (GOOD + "[pool]\nconcurrency = 0\n", '[pool] concurrency: expected an integer >= 1 or "auto", got 0'),
        (
            GOOD + '[pool]\nconcurrency = "auto"\nmin_concurrency = 8\nmax_concurrency = 4\n',
            "[pool] min_concurrency: expected at most max_concurrency (4), got 8",
        ),
        (
            GOOD + '[pool]\nconcurrency = "auto"\nmax_concurrency = 0\n',
            "[pool] max_concurrency: expected an integer >= 1",
        ),
        (
            GOOD + "[pool]\nconcurrency = 8\nmax_concurrency = 4\n",
            '[pool] max_concurrency: applies only to concurrency = "auto" (concurrency is 8)',
        ),
        (
            GOOD + "[pool]\nmin_concurrency = 2\n",
            '[pool] min_concurrency: applies only to concurrency = "auto" (concurrency is 4): set concurrency = "auto"',
        ),
        (
            GOOD + '[pool]\nrecycle_tab_every = "sometimes"\n',
            '[pool] recycle_tab_every: expected an integer >= 1 or "auto"',
        ),
        (GOOD + "[watchdog]\ntimeout_s = -1\n", "[watchdog] timeout_s: expected a number > 0"),
        (GOOD + "[rate_limit]\nwait_ms = [4000, 3000]\n", "[rate_limit] wait_ms: expected [min, max] with min <= max"),
        (GOOD + "[rate_limit]\nwait_ms = 3000\n", "[rate_limit] wait_ms: expected [min, max], got 3000"),
        (GOOD + '[browser]\nargs = "--foo"\n', "[browser] args: expected a list of strings"),
        (
            GOOD + '[browser]\nblock_resources = ["script"]\n',
            "[browser] block_resources: unknown resource type 'script'",
        ),
        (GOOD + "[retry]\nmax_attempts = true\n", "[retry] max_attempts: expected an integer >= 1, got True"),
        (
            GOOD + '[extract.fields]\nprice = { css = "#p", js = "1" }\n',
            "[extract.fields] price: expected exactly one of css or js",
        ),
        (GOOD + '[extract.fields]\nprice = { selector = "#p" }\n', "[extract.fields] price: unknown key 'selector'"),
        (GOOD + '[extract.fields]\nurl = "h1"\n', "field name 'url' is reserved"),
        (
            GOOD + '[[extract.capture]]\nname = "goods"\n',
            "[[extract.capture]] #1: url_contains: expected a non-empty string",
        ),
        (GOOD + '[store]\nbackend = "mongo"\n', "[store] backend: expected one of 'sqlite', 'redis'"),
        (GOOD + '[outptu]\ndb = "x.db"\n', "unknown section [outptu]"),
        ('[site]\nname = "x"\n', "[input] is empty"),
        ('[input]\nurl_template = "http://a.test/p/{id}"\n', "[input] url_template needs ids or ids_file"),
        ('[input]\nurl_template = "http://a.test/p"\nids = "1-3"\n', "expected a URL containing {id}"),
        ('[input]\nurl_template = "http://a.test/p/{id}"\nids = "9-3"\n', '[input] ids: expected a range "a-b"'),
        ('[input]\nurl_file = "missing.txt"\n', "[input] url_file: no readable file"),
        ('[input]\nurls = ["ftp://x"]\n', "[input] urls: expected an http(s) URL, got 'ftp://x'"),
        ("[input\nurls = []\n", "invalid TOML"),
        # every input source refuses what is not http(s), naming the source
        ('[input]\nurls = ["file:///etc/passwd"]\n', "[input] urls: expected an http(s) URL, got 'file:///etc/passwd'"),
        ('[input]\nurls = ["chrome://settings"]\n', "[input] urls: expected an http(s) URL, got 'chrome://settings'"),
        ('[input]\nurls = ["javascript:alert(1)"]\n', "[input] urls: expected an http(s) URL"),
        ('[input]\nurls = ["http://a.test/x y"]\n', "[input] urls: expected an http(s) URL"),
        (
            '[input]\nurl_template = "file:///etc/passwd?{id}"\nids = "1-3"\n',
            "[input] url_template: expected an http(s) URL, got 'file:///etc/passwd?1'",
        ),
        ('[input]\nurl_template = "javascript:{id}"\nids = "1-3"\n', "[input] url_template: expected an http(s) URL"),
        ('[input]\nurls = ["' + "http://a.test/" + "x" * 300 + '", "ftp://y"]\n', "got 'ftp://y'"),
        # every selector is checked at load, naming its key
        (GOOD + '[extract]\nwait_for = "div[["\n', "[extract] wait_for: invalid CSS selector 'div[['"),
        (GOOD + '[extract.fields]\nname = "h1[["\n', "[extract.fields] name: invalid CSS selector"),
        (
            GOOD + '[extract.fields]\nname = { css = "h1", required = "yes" }\n',
            "name: required: expected true or false",
        ),
        (GOOD + '[[route]]\nwait_for = "div[["\n', "[[route]] (default): wait_for: invalid CSS selector"),
        (GOOD + '[[route]]\nclick_until_gone = "a[["\n', "[[route]] (default): click_until_gone: invalid CSS"),
        (GOOD + '[[route]]\nfields = { name = "h1[[" }\n', "[[route]] (default): fields name: invalid CSS selector"),
        (
            GOOD + '[[route]]\nitems = { selector = "li[[", fields = { n = "b" } }\n',
            "[[route]] (default): items.selector: invalid CSS selector",
        ),
        (
            GOOD + '[[route]]\nitems = { selector = "li", fields = { n = "b[[" } }\n',
            "[[route]] (default): items.fields n: invalid CSS selector",
        ),
        (GOOD + '[[route]]\nfollow = [{ selector = "a[[" }]\n', "[[route]] (default): follow: invalid CSS selector"),
        # issue 24's route keys
        (GOOD + '[[route]]\nrender = "painted"\n', "[[route]] (default): render: expected one of 'visible', 'hidden'"),
        (GOOD + '[[route]]\nframe = "iframe[["\n', "[[route]] (default): frame: invalid CSS selector"),
        (GOOD + '[[route]]\nframe = ["iframe", 3]\n', "[[route]] (default): frame: expected a selector or a list"),
        (GOOD + '[[route]]\nhover = ""\n', "[[route]] (default): hover: expected a selector or a list"),
        (GOOD + '[[route]]\nselect = { "select[[" = "M" }\n', "[[route]] (default): select: invalid CSS selector"),
        (GOOD + '[[route]]\nselect = "M"\n', '[[route]] (default): select: expected { "<select selector>"'),
        (GOOD + '[[route]]\nselect = { "#size" = 3 }\n', '[[route]] (default): select: expected { "<select selector>"'),
        (
            GOOD + '[[extract.capture]]\nname = "g"\nurl_contains = "/api"\nrequired = 1\n',
            "[[extract.capture]] #1: expected true or false, got 1",
        ),
        (
            GOOD + '[[extract.capture]]\nname = "g"\nurl_contains = "/api"\ntimeout_s = 0\n',
            "[[extract.capture]] #1: expected a number > 0",
        ),
        (
            GOOD + "[browser]\nmax_resource_buffer_mb = 64\nmax_total_buffer_mb = 32\n",
            "[browser] max_total_buffer_mb: expected at least max_resource_buffer_mb",
        ),
        (GOOD + "[input]\n", "Cannot declare"),
    ],
)
def test_bad_config_is_one_line_naming_file_and_key(tmp_path, text, expected):
    """Each mistake gives a single-line ConfigError that starts with the file name."""
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(tmp_path / "site.toml"))
    assert expected in message


def test_a_long_bad_url_is_cut_short_in_the_message(tmp_path):
    """A 200 KB URL is named by its length and its first 100 characters, not in full."""
    with pytest.raises(ConfigError) as info:
        load(tmp_path, '[input]\nurls = ["ftp://' + "x" * 200_000 + '"]\n')
    assert len(str(info.value)) < 400 and "a URL of 200006 characters, over the limit of 8192" in str(info.value)


def test_input_urls_in_any_case_are_accepted_in_canonical_form(tmp_path):
    """``HTTP://`` is http: accepted, and stored as the canonical (lower-case) URL."""
    cfg = load(tmp_path, '[input]\nurls = ["HTTP://A.Test:80/P/1", "HTTPS://b.test/x"]\n')
    assert list(iter_urls(cfg.input, base_dir=cfg.base_dir, source=cfg.source)) == [
        "http://a.test/P/1",
        "https://b.test/x",
    ]


def test_iter_urls_from_an_entry_continues_exactly_where_it_stopped(tmp_path):
    """Every source, read from entry n, gives the tail of the whole input from n."""
    (tmp_path / "urls.txt").write_text("http://a.test/f1\n# c\n\nhttp://a.test/f2\n", encoding="utf-8")
    (tmp_path / "ids.txt").write_text("x1\nx2\n", encoding="utf-8")
    cfg = load(
        tmp_path,
        '[input]\nurls = ["http://a.test/u1", "http://a.test/u2"]\nurl_file = "urls.txt"\n'
        'url_template = "http://a.test/p/{id}"\nids = "5-7"\nids_file = "ids.txt"\n',
    )
    whole = list(iter_urls(cfg.input, base_dir=cfg.base_dir, source=cfg.source))
    assert len(whole) == 9
    for n in range(len(whole) + 2):
        assert list(iter_urls(cfg.input, n, base_dir=cfg.base_dir, source=cfg.source)) == whole[n:], n


def test_a_huge_id_range_is_streamed_not_listed(tmp_path):
    """``ids = "1-99999999999"``: the first URLs come at once, from any entry."""
    cfg = load(tmp_path, '[input]\nurl_template = "http://a.test/p/{id}"\nids = "1-99999999999"\n')
    urls = iter_urls(cfg.input, 99_999_999_990, base_dir=cfg.base_dir, source=cfg.source)
    assert next(urls) == "http://a.test/p/99999999991"
    assert len(list(urls)) == 8


def test_a_bad_line_in_a_url_file_names_the_file_and_line(tmp_path):
    (tmp_path / "urls.txt").write_text("http://a.test/1\n# comment\n\nnot a url\n", encoding="utf-8")
    cfg = load(tmp_path, '[input]\nurl_file = "urls.txt"\n')
    with pytest.raises(ConfigError, match=r"urls.txt:4: expected an http\(s\) URL, got 'not a url'"):
        list(iter_urls(cfg.input, base_dir=cfg.base_dir, source=cfg.source))


def test_inputs_combine_and_stream(tmp_path):
    """urls, url_file and url_template with ids and ids_file are all read, in order."""
    (tmp_path / "urls.txt").write_text("http://a.test/f1\nhttp://a.test/f2\n", encoding="utf-8")
    (tmp_path / "ids.txt").write_text("77\n78\n", encoding="utf-8")
    cfg = load(
        tmp_path,
        '[input]\nurls = ["http://a.test/u"]\nurl_file = "urls.txt"\n'
        'url_template = "http://a.test/p/{id}"\nids = "1-2"\nids_file = "ids.txt"\n',
    )
    assert list(iter_urls(cfg.input, base_dir=cfg.base_dir, source=cfg.source)) == [
        "http://a.test/u",
        "http://a.test/f1",
        "http://a.test/f2",
        "http://a.test/p/1",
        "http://a.test/p/2",
        "http://a.test/p/77",
        "http://a.test/p/78",
    ]


def test_command_line_overrides_the_file(tmp_path):
    cfg = load(tmp_path, GOOD + "[pool]\nconcurrency = 4\n")
    cfg = config_mod.override(cfg, pool__concurrency=9, output__db="other.db", browser__cdp_url=None)
    assert (cfg.pool.concurrency, cfg.output.db, cfg.browser.cdp_url) == (9, "other.db", "")


def test_the_shipped_configs_are_valid():
    for name in ("demo", "products", "musinsa"):
        cfg = config_mod.load(Path(__file__).parents[3] / "config" / f"{name}.toml")
        assert next(iter_urls(cfg.input, base_dir=cfg.base_dir, source=cfg.source)).startswith("http")
    musinsa = config_mod.load(Path(__file__).parents[3] / "config" / "musinsa.toml")
    assert (musinsa.pool.concurrency, musinsa.rate_limit.wait_ms) == (4, (3000, 4000))
    assert (musinsa.pool.recycle_tab_every, musinsa.pool.rotate_context_every) == (10, 50)
    assert (musinsa.watchdog.timeout_s, musinsa.watchdog.jitter_s) == (300, 30)


def test_cli_exits_2_with_one_line_for_bad_config(tmp_path, capsys):
    path = tmp_path / "site.toml"
    path.write_text(GOOD + "[pool]\nconcurrency = -3\n", encoding="utf-8")
    assert main(["--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f'crawler: error: {path}: [pool] concurrency: expected an integer >= 1 or "auto", got -3'


def test_cli_exits_2_with_one_line_when_auto_concurrency_has_min_above_max(tmp_path, capsys):
    """concurrency = "auto" with min_concurrency > max_concurrency: one line naming the
    file and the key, exit 2, before anything starts."""
    path = tmp_path / "site.toml"
    path.write_text(GOOD + '[pool]\nconcurrency = "auto"\nmin_concurrency = 6\nmax_concurrency = 2\n', encoding="utf-8")
    assert main(["--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"crawler: error: {path}: [pool] min_concurrency: expected at most max_concurrency (2), got 6"


def test_auto_concurrency_loads_with_its_bounds_and_a_fixed_one_from_the_command_line_overrides_it(tmp_path):
    """ "auto" keeps its bounds (defaults 1 and 16); --concurrency N over a file's "auto"
    is a fixed N for the run (the file's bounds are not refused then: the command line
    chose); min > max is refused after an override too."""
    cfg = load(tmp_path, GOOD + '[pool]\nconcurrency = "auto"\nmax_concurrency = 6\n')
    assert (cfg.pool.auto, cfg.pool.min_concurrency, cfg.pool.max_concurrency, cfg.pool.most) == (True, 1, 6, 6)
    assert (load(tmp_path, GOOD).pool.auto, load(tmp_path, GOOD).pool.most) == (False, 4)
    fixed = config_mod.override(cfg, pool__concurrency=3)
    assert (fixed.pool.auto, fixed.pool.most) == (False, 3)
    with pytest.raises(ConfigError, match=r"\[pool\] min_concurrency: expected at most max_concurrency \(6\), got 9"):
        config_mod.override(cfg, pool__min_concurrency=9)


def test_cli_exits_2_for_bad_usage():
    """argparse errors (unknown option, bad --limit) exit 2, in a real process."""
    for args in (["--config"], ["--config", "x.toml", "--limit", "zero"], ["export", "--format", "xml", "--db", "x"]):
        proc = subprocess.run([sys.executable, "-m", "crawler", *args], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, (args, proc.stderr)


def test_export_of_a_missing_database_is_one_line(tmp_path, capsys):
    assert main(["export", "--db", str(tmp_path / "nope.db")]) == 2
    assert capsys.readouterr().err.strip().endswith("--db: no such database '" + str(tmp_path / "nope.db") + "'")


def test_to_toml_round_trips_a_config_dict(tmp_path):
    """to_toml writes what from_dict takes: sections, subtables, inline tables, arrays of tables."""
    import tomllib

    data = {
        "site": {"name": 'quote " and ₩'},
        "input": {"urls": ["http://a.test/1"]},
        "browser": {"headless": True, "args": ["--x"]},
        "watchdog": {"timeout_s": 2.5, "jitter_s": 0},
        "extract": {
            "wait_for": "body",
            "fields": {"name": "h1", "image": {"css": "img", "attr": "src"}},
            "capture": [{"name": "goods", "url_contains": "/api/"}],
        },
    }
    text = config_mod.to_toml(data)
    assert tomllib.loads(text) == data
    assert config_mod.from_dict(tomllib.loads(text)).extract.fields[1].attr == "src"


def test_route_keys_for_frames_widgets_and_rendering_are_read_in_order(tmp_path):
    """``frame`` and ``hover`` take one selector or a list; ``select`` keeps its order;
    ``render`` defaults to "visible"."""
    cfg = load(
        tmp_path,
        GOOD
        + '[[route]]\nlabel = "a"\nframe = ["iframe#outer", "iframe#inner"]\nhover = "nav li"\n'
        + 'select = { "#size" = "M", "#colour" = "Red" }\nrender = "hidden"\n'
        + '[[route]]\nlabel = "b"\nframe = "iframe#x"\n',
    )
    a, b = cfg.routes
    assert (a.frame, a.hover, a.select, a.render) == (
        ("iframe#outer", "iframe#inner"),
        ("nav li",),
        (("#size", "M"), ("#colour", "Red")),
        "hidden",
    )
    assert (b.frame, b.hover, b.select, b.render) == (("iframe#x",), (), (), "visible")
