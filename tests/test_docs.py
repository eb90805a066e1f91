"""The documentation as a machine checks it: the MkDocs site builds with ``--strict``
(no warning, every page in the nav, every docstring of the API reference rendered),
the configuration reference names every setting of the model, the README keeps its
two commands and links only to pages that exist, and the getting-started guide does
what it says when every code block of it is run, in order, against the demo shop."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import attrs
import pytest

from crawler import demo
from crawler.config.loader import ROUTE_KEYS
from crawler.config.model import SECTIONS, CaptureRule
from tests.cdp.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
GUIDE = DOCS / "getting-started.md"
GUIDE_PORT = 8000  # the shop's port in the guide; the test puts a free one in its place
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```[ \t]*$", re.M | re.S)  # a fenced block at the margin
BLOCK_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 5.0


# -- the site --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    site = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result, site


def test_the_docs_site_builds_strictly(built_site):
    """``mkdocs build --strict`` exits 0: no warning (a broken link, a page missing from
    the nav, a docstring that does not render), and every page of docs/ is built."""
    result, site = built_site
    assert result.returncode == 0, result.stdout + result.stderr
    pages = {p.with_suffix("").name for p in DOCS.glob("*.md")}
    built = {p.parent.name for p in site.glob("*/index.html")}
    assert pages - {"index"} <= built and (site / "index.html").is_file()


def test_the_api_reference_renders_the_public_surface_without_rest_roles(built_site):
    """Every name of ``crawler.__all__`` has its entry on the API page, the Page's methods
    too, and no Sphinx role (``:class:`...```) is left in the rendered docstrings."""
    import crawler

    result, site = built_site
    assert result.returncode == 0, result.stdout + result.stderr
    html = (site / "api" / "index.html").read_text(encoding="utf-8")
    anchors = set(re.findall(r'id="([\w.]+)"', html))
    assert {f"crawler.{name}" for name in crawler.__all__} <= anchors
    assert {"crawler.Page.goto", "crawler.Page.enqueue", "crawler.Page.push", "crawler.Router.route"} <= anchors
    text = re.sub(r"<[^>]+>", "", html)
    assert "load_config(path" in text  # documented as the function it is
    assert not re.search(r":(class|func|meth|mod|data|attr):", html)


# -- the configuration reference and the README ------------------------------------------------


def reference_keys(text: str) -> dict[str, set[str]]:
    """Table -> its keys, from configuration.md: a heading ``## `[name]```, ``## `[[route]]```
    or ``### `[[extract.capture]]```, then table rows that start with a key in backquotes
    (up to the next heading)."""
    keys: dict[str, set[str]] = {}
    section = None
    for line in text.splitlines():
        if line.startswith("#"):
            heading = re.match(r"^#{2,3} `\[\[?([a-z_.]+)\]\]?`$", line)
            section = heading.group(1) if heading else None
            if section is not None:
                keys[section] = set()
        elif section is not None and (row := re.match(r"^\| `([a-z_][a-z0-9_]*)` \|", line)):
            keys[section].add(row.group(1))
    return keys


def test_the_configuration_reference_lists_every_setting_of_the_model():
    """configuration.md has a table per section of ``crawler.config.model`` with exactly
    that section's keys, ``[[route]]`` with the loader's route keys, and
    ``[[extract.capture]]`` with a capture's."""
    keys = reference_keys((DOCS / "configuration.md").read_text(encoding="utf-8"))
    expected = {name: {f.name for f in attrs.fields(cls)} for name, cls in SECTIONS.items()}
    expected["route"] = set(ROUTE_KEYS)
    expected["extract.capture"] = {f.name for f in attrs.fields(CaptureRule)}
    assert keys == expected


def test_the_readme_keeps_the_two_commands_and_links_to_pages_that_exist():
    """The README's two commands (the contract: the main job and the tests) are there
    verbatim, and each of its links into docs/ names a file that exists."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "./scripts/bootstrap && .venv/bin/python -m crawler demo\n" in readme
    assert "./scripts/bootstrap && .venv/bin/python -m pytest\n" in readme
    links = re.findall(r"\]\((docs/[^)#]+)(?:#[^)]*)?\)", readme)
    assert links and all((ROOT / link).is_file() for link in links), links


# -- the getting-started guide ----------------------------------------------------------------


def guide_blocks(port: int) -> list[tuple[str, str]]:
    """The guide's fenced code blocks, in order, as (language, text), with ``port`` in
    place of the guide's 8000."""
    text = GUIDE.read_text(encoding="utf-8")
    assert f"127.0.0.1:{GUIDE_PORT}" in text and f"--port {GUIDE_PORT}" in text
    text = text.replace(f"127.0.0.1:{GUIDE_PORT}", f"127.0.0.1:{port}").replace(
        f"--port {GUIDE_PORT}", f"--port {port}"
    )
    return BLOCK.findall(text)


def stop_group(pgid: int) -> None:
    """End what is left of a block's process group (the shop it started in the background)."""
    for sig, wait_s in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, STOP_TIMEOUT_S)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)


@pytest.mark.chromium
def test_every_block_of_the_getting_started_guide_runs_against_the_demo_shop(tmp_path):
    """Run the guide as a reader would, in an empty folder: its ``sh`` blocks with
    ``bash -e`` (``python`` and ``crawler`` the project's), its ``python`` and ``toml``
    blocks written to the file their first line names; ``text`` blocks are sample output.
    Every command exits 0, and what they wrote is right: the demo's export holds the
    whole shop, ``try`` printed the product it was pointed at, and the exports of the
    guide's own crawl hold every product of the shop with its name and price."""
    port = free_port()
    blocks = guide_blocks(port)
    assert [lang for lang, _ in blocks if lang not in ("sh", "python", "toml", "text")] == []
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    groups: list[int] = []
    logs: dict[str, str] = {}  # a shell block -> what it printed
    try:
        for n, (lang, body) in enumerate(blocks, 1):
            if lang in ("python", "toml"):
                name = re.match(r"#\s*([\w.-]+\.(?:py|toml))\s*$", body.splitlines()[0])
                assert name, f"block {n} ({lang}) does not start with a comment naming its file"
                (tmp_path / name.group(1)).write_text(body, encoding="utf-8")
            elif lang == "sh":
                log_path = tmp_path / f"block-{n}.log"
                with open(log_path, "wb") as log:
                    process = subprocess.Popen(
                        ["bash", "-e", "-c", body],
                        cwd=tmp_path,
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,  # its own process group: what it leaves running is ended below
                    )
                    groups.append(process.pid)
                    try:
                        code = process.wait(timeout=BLOCK_TIMEOUT_S)
                    except subprocess.TimeoutExpired:
                        code = "timeout"
                logs[body] = log_path.read_text(encoding="utf-8", errors="replace")
                assert code == 0, f"block {n} exited {code}:\n{body}\n--- output:\n{logs[body][-4000:]}"
    finally:
        for pgid in groups:
            stop_group(pgid)

    # 1. the demo: every product, review, question and wish of its shop, nothing twice
    demo_products = int(re.search(r"crawler demo --products (\d+)\b", GUIDE.read_text()).group(1))
    with open(tmp_path / "demo-items.jsonl", encoding="utf-8") as lines:
        found = demo.compare((json.loads(line) for line in lines), demo_products)
    assert all(c["found"] == c["expected"] > 0 and c["extra"] == 0 for c in found.values()), found

    # 4. try: the one product it was pointed at, on standard output
    (tried,) = [out for body, out in logs.items() if "crawler try" in body]
    assert json.dumps(demo.product(3)["name"], ensure_ascii=False) in tried

    # 5-6. the guide's own crawl, exported: every product of the shop it served, once
    shop_products = int(re.search(r"--serve-only .*--products (\d+)\b", GUIDE.read_text()).group(1))
    items = [json.loads(line) for line in (tmp_path / "products.jsonl").read_text(encoding="utf-8").splitlines()]
    by_id = {int(item["url"].rsplit("/", 1)[1]): item for item in items}
    assert len(items) == len(by_id) == shop_products and set(by_id) == set(range(1, shop_products + 1))
    for i, item in by_id.items():
        truth = demo.product(i)
        assert (item["name"], item["brand"], item["kind"], item["label"]) == (
            truth["name"],
            truth["brand"],
            "product",
            "product",
        )
        assert item["price"] == demo.format_price(truth["price"])
    with open(tmp_path / "products.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == shop_products and list(rows[0])[:3] == ["_url", "_label", "_fetched_at"]
    assert {row["name"] for row in rows} == {item["name"] for item in items}
