"""crawler.store.exports: JSONL, CSV and Parquet streamed from ``stream_items``, on a fake store."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from typing import Any

import pytest
import trio

from crawler.cli import main
from crawler.errors import ConfigError
from crawler.store.exports import ItemQuery, StoredItem, export_items, format_utc, parse_utc

T0 = 1_796_112_000.0  # 2026-12-01T08:00:00Z


class FakeStore:
    """``stream_items`` over a list, with the stores' semantics; records every call.

    ``later``: items the passes after the first see instead (a crawl writing meanwhile).
    """

    def __init__(self, items: list[StoredItem], later: list[StoredItem] | None = None) -> None:
        self.items = items
        self.later = later
        self.calls: list[dict[str, Any]] = []

    async def stream_items(self, *, label=None, run=None, changed_since=None, batch=1000):
        self.calls.append({"label": label, "run": run, "changed_since": changed_since, "batch": batch})
        items = self.later if self.later is not None and len(self.calls) > 1 else self.items
        chosen = [
            i
            for i in items
            if (label is None or i.label == label)
            and (run is None or i.run == run)
            and (changed_since is None or i.fetched_at >= changed_since)
        ]
        for start in range(0, len(chosen), batch):
            await trio.lowlevel.checkpoint()
            yield chosen[start : start + batch]


def item(data: dict[str, Any], n: int = 0, *, label: str | None = "product", run: int = 1, at: float = T0):
    return StoredItem(url=f"http://shop.test/p/{n}", label=label, seq=0, data=data, fetched_at=at, run=run)


async def test_jsonl_writes_each_item_as_one_line_with_its_own_keys(tmp_path):
    """One JSON object per item, in crawl order, keys at top level, non-ASCII kept as is."""
    data = [{"name": "티셔츠", "price": 12000, "tags": ["a", "b"]}, {"name": "Tee", "price": None}]
    store = FakeStore([item(d, n) for n, d in enumerate(data)])
    out = tmp_path / "items.jsonl"
    assert await export_items(store, str(out), "jsonl") == 2
    text = out.read_text(encoding="utf-8")
    assert "티셔츠" in text
    assert [json.loads(line) for line in text.splitlines()] == data
    assert len(store.calls) == 1


async def test_jsonl_goes_to_standard_output_without_out(capsys):
    store = FakeStore([item({"a": 1}), item({"a": 2}, 1)])
    assert await export_items(store, None, "jsonl") == 2
    assert capsys.readouterr().out == '{"a": 1}\n{"a": 2}\n'


async def test_csv_columns_are_the_union_of_keys_even_one_first_seen_in_the_third_batch(tmp_path):
    """Two passes: the header holds every key in first-seen order (``late`` appears only
    in the third batch of two); nested values are JSON text, None is empty."""
    data = [
        {"name": "a", "price": 1},
        {"name": "b", "opts": {"size": "M"}},
        {"name": "c", "price": None},
        {"name": "d", "tags": ["x", "y"]},
        {"late": True, "name": "e"},
    ]
    store = FakeStore([item(d, n) for n, d in enumerate(data)])
    out = tmp_path / "items.csv"
    assert await export_items(store, str(out), "csv", batch=2) == 5
    rows = list(csv.reader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert rows[0] == ["name", "price", "opts", "tags", "late"]
    assert rows[1:] == [
        ["a", "1", "", "", ""],
        ["b", "", '{"size": "M"}', "", ""],
        ["c", "", "", "", ""],
        ["d", "", "", '["x", "y"]', ""],
        ["e", "", "", "", "True"],
    ]
    assert len(store.calls) == 2 and all(call["batch"] == 2 for call in store.calls)


async def test_csv_of_no_items_is_an_empty_header(tmp_path):
    out = tmp_path / "items.csv"
    assert await export_items(FakeStore([]), str(out), "csv") == 0
    assert out.read_bytes() == b"\r\n"


async def test_parquet_reads_back_with_a_type_inferred_per_column(tmp_path):
    """Each column's type comes from all its values: bool, int64, int/float mix -> float64,
    string, nested -> JSON text, mixed -> JSON text; None is null anywhere; one row group
    per batch."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    data = [
        {"n": 1, "x": 1, "ok": True, "s": "a", "nest": {"k": [1]}, "mix": "5", "none": None},
        {"n": None, "x": 2.5, "ok": False, "s": None, "nest": [1, 2], "mix": 5},
        {"n": 3, "x": None, "ok": None, "s": "ü", "nest": None, "mix": None, "big": 2**70},
    ]
    store = FakeStore([item(d, n) for n, d in enumerate(data)])
    out = tmp_path / "items.parquet"
    assert await export_items(store, str(out), "parquet", batch=2) == 3
    table = pq.read_table(out)
    types = {field.name: field.type for field in table.schema}
    assert types == {
        "n": pa.int64(),
        "x": pa.float64(),
        "ok": pa.bool_(),
        "s": pa.string(),
        "nest": pa.string(),
        "mix": pa.string(),
        "none": pa.string(),
        "big": pa.string(),
    }
    assert table.to_pylist() == [
        {"n": 1, "x": 1.0, "ok": True, "s": "a", "nest": '{"k": [1]}', "mix": '"5"', "none": None, "big": None},
        {"n": None, "x": 2.5, "ok": False, "s": None, "nest": "[1, 2]", "mix": "5", "none": None, "big": None},
        {"n": 3, "x": None, "ok": None, "s": "ü", "nest": None, "mix": None, "none": None, "big": str(2**70)},
    ]
    assert table.schema.field("nest").metadata == {b"crawler.encoding": b"json"}
    assert pq.ParquetFile(out).num_row_groups == 2


async def test_parquet_of_no_items_is_a_valid_file_without_columns(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "items.parquet"
    assert await export_items(FakeStore([]), str(out), "parquet") == 0
    table = pq.read_table(out)
    assert table.num_rows == 0 and table.num_columns == 0


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
async def test_filters_are_passed_to_every_stream_items_call(tmp_path, fmt):
    """label, run and changed_since reach stream_items as given, on both passes of CSV
    and Parquet, and only the matching items are written."""
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    store = FakeStore(
        [
            item({"a": 1}, 0, label="product", run=2, at=T0),
            item({"a": 2}, 1, label="list", run=2, at=T0),
            item({"a": 3}, 2, label="product", run=1, at=T0),
            item({"a": 4}, 3, label="product", run=2, at=T0 - 1),
        ]
    )
    query = ItemQuery(label="product", run=2, changed_since=T0)
    assert await export_items(store, str(tmp_path / f"x.{fmt}"), fmt, query=query) == 1
    assert store.calls and all(
        call == {"label": "product", "run": 2, "changed_since": T0, "batch": 1000} for call in store.calls
    )
    assert len(store.calls) == (1 if fmt == "jsonl" else 2)


async def test_meta_adds_leading_url_label_and_fetch_time_keys(tmp_path):
    """--meta: _url, _label, _fetched_at (ISO UTC, milliseconds) lead, in JSONL and CSV;
    a None label stays null/empty."""
    store = FakeStore([item({"name": "a"}, 0, at=T0 + 0.25), item({"name": "b", "_url": "mine"}, 1, label=None)])
    out = tmp_path / "items.jsonl"
    await export_items(store, str(out), "jsonl", meta=True)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines == [
        {"_url": "http://shop.test/p/0", "_label": "product", "_fetched_at": "2026-12-01T08:00:00.250Z", "name": "a"},
        {"_url": "http://shop.test/p/1", "_label": None, "_fetched_at": "2026-12-01T08:00:00.000Z", "name": "b"},
    ]
    assert list(lines[0]) == ["_url", "_label", "_fetched_at", "name"]
    out_csv = tmp_path / "items.csv"
    await export_items(store, str(out_csv), "csv", meta=True)
    rows = list(csv.reader(io.StringIO(out_csv.read_text())))
    assert rows[0] == ["_url", "_label", "_fetched_at", "name"]
    assert rows[2] == ["http://shop.test/p/1", "", "2026-12-01T08:00:00.000Z", "b"]


async def test_meta_parquet_columns_are_strings_even_with_no_items(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "items.parquet"
    await export_items(FakeStore([]), str(out), "parquet", meta=True)
    assert pq.read_table(out).schema == pa.schema([(name, pa.string()) for name in ("_url", "_label", "_fetched_at")])


async def test_items_changed_between_passes_are_written_and_the_drift_logged(tmp_path, caplog):
    """A crawl writing during a two-pass export: a key the first pass did not see is
    left out, a value of another type becomes null, and one warning says so."""
    pq = pytest.importorskip("pyarrow.parquet")
    store = FakeStore([item({"n": 1})], later=[item({"n": "one", "new": 2})])
    out = tmp_path / "items.parquet"
    assert await export_items(store, str(out), "parquet") == 1
    assert pq.read_table(out).to_pylist() == [{"n": None}]
    assert "1 values of new keys left out, 1 values of another type written as null" in caplog.text


@pytest.mark.parametrize(
    "text, want",
    [
        ("2026-12-01T08:00:00Z", T0),
        ("2026-12-01T08:00:00+00:00", T0),
        ("2026-12-01T08:00:00.5Z", T0 + 0.5),
        ("2026-12-01T08:00Z", T0),
        ("2026-12-01", T0 - 8 * 3600),
        (" 2026-12-01T08:00:00Z ", T0),
    ],
)
def test_parse_utc_accepts_utc_times_and_plain_dates(text, want):
    assert parse_utc(text) == want


@pytest.mark.parametrize(
    "text",
    [
        "2026-12-01T08:00:00",  # no zone
        "2026-12-01T08:00:00+09:00",  # not UTC
        "2026-12-01T08:00:00-05:00",
        "2026-13-01",
        "yesterday",
        "",
        "2026-12-01T25:00:00Z",
        "1796112000",
        "2026-12-01\nT08:00Z",
    ],
)
def test_parse_utc_refuses_other_texts_in_one_line_naming_the_option(text):
    with pytest.raises(ConfigError) as info:
        parse_utc(text)
    message = str(info.value)
    assert message.startswith("--changed-since: ") and "\n" not in message
    assert repr(text.strip()) in message


def test_format_utc_rounds_down_so_parse_utc_of_it_includes_the_item():
    at = T0 + 0.1239
    assert format_utc(at) == "2026-12-01T08:00:00.123Z"
    assert parse_utc(format_utc(at)) <= at


async def test_parquet_without_pyarrow_is_one_line_naming_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(ConfigError) as info:
        await export_items(FakeStore([item({"a": 1})]), str(tmp_path / "x.parquet"), "parquet")
    assert str(info.value) == "--format parquet needs pyarrow: pip install 'trio-cdp-crawler[parquet]'"
    assert not (tmp_path / "x.parquet").exists()


async def test_parquet_to_standard_output_is_refused():
    store = FakeStore([item({"a": 1})])
    with pytest.raises(ConfigError, match=r"^--out: parquet needs a file$"):
        await export_items(store, None, "parquet")
    assert store.calls == []


async def test_out_in_a_missing_folder_is_one_line_naming_out_and_the_path(tmp_path):
    path = str(tmp_path / "no" / "x.csv")
    with pytest.raises(ConfigError) as info:
        await export_items(FakeStore([item({"a": 1})]), path, "csv")
    assert str(info.value) == f"--out: cannot write {path!r}: No such file or directory"


def test_item_query_describes_its_filters():
    assert ItemQuery().describe() == ""
    query = ItemQuery(label="product", run=3, changed_since=T0)
    assert query.describe() == "label product, run 3, changed since 2026-12-01T08:00:00Z"
    assert ItemQuery(changed_since=T0 + 0.5).describe() == "changed since 2026-12-01T08:00:00.500Z"


def test_export_cli_refuses_a_zoneless_changed_since_in_one_line(tmp_path, capsys):
    """The time is checked before the database is opened: exit 2, one line."""
    db = tmp_path / "x.db"
    db.write_bytes(b"")
    assert main(["export", "--db", str(db), "--changed-since", "2026-12-01T08:00"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("crawler: error: --changed-since: '2026-12-01T08:00' has no zone") and "\n" not in err


def test_export_cli_refuses_a_run_that_is_not_positive(capsys):
    with pytest.raises(SystemExit) as info:
        main(["export", "--db", "x.db", "--run", "0"])
    assert info.value.code == 2
    assert "--run: expected a positive integer, got '0'" in capsys.readouterr().err


def test_export_cli_refuses_parquet_to_standard_output_before_opening_the_database(tmp_path, capsys):
    assert main(["export", "--db", str(tmp_path / "nope.db"), "--format", "parquet"]) == 2
    assert capsys.readouterr().err.strip() == "crawler: error: --out: parquet needs a file"


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
async def test_a_full_disk_while_writing_is_one_line_naming_out(fmt):
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    with pytest.raises(ConfigError) as info:
        await export_items(FakeStore([item({"a": n}, n) for n in range(3000)]), "/dev/full", fmt)
    assert str(info.value) == "--out: cannot write '/dev/full': No space left on device"


async def test_a_closed_pipe_on_standard_output_passes_through_as_broken_pipe(monkeypatch):
    """The CLI turns BrokenPipeError into a quiet exit 0 (``export | head``)."""

    class ClosedPipe(io.StringIO):
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    with pytest.raises(BrokenPipeError):
        await export_items(FakeStore([item({"a": 1})]), None, "jsonl")
