"""Hostile inputs, round 3 (issue 26): URLs that are too long or carry credentials,
hostnames in two spellings, control characters, and secrets in the store's URL. Each
case: one clear line, the exit code, nothing stored that should not be."""

from __future__ import annotations

import pytest

from crawler import config as config_mod
from crawler.errors import ConfigError
from crawler.page.links import LinkFilter
from crawler.urls import MAX_URL_CHARS, normalise_url, redact_url, short_url
from tests.procs import start_crawler

SECRET = "pw-4f1c9e7d"  # unique: grepped for in every output


def test_an_over_long_input_url_is_refused_in_one_line_quoting_its_start():
    url = "http://h.test/" + "x" * (MAX_URL_CHARS + 10)
    with pytest.raises(ConfigError) as caught:
        config_mod.from_dict({"input": {"urls": [url]}}, source="site.toml")
    line = str(caught.value)
    assert line.startswith(f"site.toml: [input] urls: a URL of {len(url)} characters, over the limit of 8192: ")
    assert len(line) < 250 and "\n" not in line


def test_a_url_with_credentials_is_refused_at_input_without_repeating_the_password():
    with pytest.raises(ConfigError) as caught:
        config_mod.from_dict({"input": {"urls": [f"http://bob:{SECRET}@h.test/p"]}}, source="site.toml")
    assert str(caught.value) == (
        "site.toml: [input] urls: a URL with credentials is refused (they would be stored): 'http://***@h.test/p'"
    )


def test_discovered_links_too_long_are_skipped_and_credentials_stripped_both_counted():
    links = LinkFilter(config_mod.CrawlSection(same_host=False))
    page = "http://h.test/list"
    assert links.accept("/p/" + "y" * MAX_URL_CHARS, base=page, page_url=page, depth=1) is None
    assert links.accept(f"http://eve:{SECRET}@other.test/x", base=page, page_url=page, depth=1) == "http://other.test/x"
    assert dict(links.skipped) == {"too_long": 1, "credentials_stripped": 1}


@pytest.mark.parametrize(
    ("url", "normal"),
    [
        ("http://b\u00fccher.localhost/a", "http://xn--bcher-kva.localhost/a"),
        ("http://XN--BCHER-KVA.localhost/a", "http://xn--bcher-kva.localhost/a"),
        ("http://h.test/a\x00b c\x7f", "http://h.test/a%00b%20c%7F"),
        ("http://h.test/a\tb", "http://h.test/a%09b"),
    ],
)
def test_hostnames_and_control_characters_have_one_canonical_form(url, normal):
    assert normalise_url(url) == normal


@pytest.mark.parametrize(
    "url",
    [
        f"redis://:{SECRET}@127.0.0.1:6379/0",
        f"rediss://default:{SECRET}@cache.example:6380",
        f"http://user:{SECRET}@proxy.example:3128",
        f"ws://admin:{SECRET}@browser:9222/devtools/browser/x",
    ],
)
def test_one_redaction_hides_the_credentials_of_any_url(url):
    assert SECRET not in redact_url(url) and "***@" in redact_url(url)
    assert SECRET not in short_url(url)


async def test_the_redis_urls_password_appears_in_no_output_when_redis_cannot_be_reached(tmp_path):
    """A Redis URL with a password, unreachable: the one error line names the server,
    redacted, and says why; the password is in neither stream."""
    site = tmp_path / "site.toml"
    site.write_text(
        '[input]\nurls = ["http://127.0.0.1:9/p"]\n'
        f'[store]\nbackend = "redis"\nurl = "redis://:{SECRET}@127.0.0.1:9/0"\n'
    )
    proc = await start_crawler("--config", str(site), cwd=tmp_path)
    assert await proc.wait() == 2
    err = (tmp_path / "crawler.err").read_text()
    out = (tmp_path / "crawler.out").read_text() if (tmp_path / "crawler.out").exists() else ""
    assert SECRET not in err + out
    assert "cannot reach Redis at redis://***@127.0.0.1:9/0: " in err
    assert err.strip().splitlines()[-1].split(": ")[-1] != ""  # a reason, never empty
