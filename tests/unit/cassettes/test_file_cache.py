"""The checked-file cache: a one-file library (a pytest test's cassette) read again with the
same bytes skips the YAML and the schema check, and gives the same cassette; other bytes, a
file that fails its check, data JSON cannot hold exactly are never served from it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mockserver.cassettes import cassette as cas, file_cache, library
from mockserver.cassettes.library import Library
from mockserver.wire.errors import CassetteError

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = ROOT / "cassettes" / "text.yaml"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv(library.CACHE_ENV, str(folder))
    return folder / "files"


def _no_parse(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real_parse, real_check = cas.parse, cas.schema_errors

    def parse(text: Any, source: str = "") -> Any:
        calls.append("parse")
        return real_parse(text, source)

    def check(data: Any) -> list[str]:
        calls.append("check")
        return real_check(data)

    monkeypatch.setattr(cas, "parse", parse)
    monkeypatch.setattr(cas, "schema_errors", check)
    return calls


def _summary(lib: Library) -> list[Any]:
    return [
        (c.name, [(i.request.body, i.response.status, i.response.body) for i in c.interactions])
        for c in lib.cassettes
    ]


def test_the_same_bytes_are_read_back_checked(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    one = tmp_path / "test_a.yaml"
    one.write_bytes(SHIPPED.read_bytes())
    calls = _no_parse(monkeypatch)
    first = Library(one)
    first.load()
    assert calls == ["parse", "check"] and len(list(cache.iterdir())) == 1
    again = Library(one)
    again.load()
    assert calls == ["parse", "check"]  # neither ran again
    assert _summary(again) == _summary(first) and len(again) == 1
    # another file with the same bytes (another test's copy) is the same entry
    twin = tmp_path / "test_b.yaml"
    twin.write_bytes(SHIPPED.read_bytes())
    Library(twin).load()
    assert calls == ["parse", "check"] and len(list(cache.iterdir())) == 1


def test_changed_bytes_are_parsed_again(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    one = tmp_path / "test_a.yaml"
    one.write_bytes(SHIPPED.read_bytes())
    Library(one).load()
    one.write_text(SHIPPED.read_text().replace("nice to meet you", "good to see you"))
    calls = _no_parse(monkeypatch)
    lib = Library(one)
    lib.load()
    assert calls == ["parse", "check"]
    assert "good to see you" in str(_summary(lib))


def test_a_file_failing_its_check_is_never_stored(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "test_bad.yaml"
    bad.write_text(SHIPPED.read_text().replace("status: 200", "status: two hundred"))
    for _ in range(2):
        lib = Library(bad)
        lib.load()
        assert "not a valid cassette" in lib.broken["test_bad"]
    assert not cache.exists() or not list(cache.iterdir())


def test_data_json_cannot_hold_is_not_stored(cache: Path) -> None:
    import datetime

    raw = b"any bytes"
    file_cache.store(file_cache.entry(raw), {"a": datetime.date(2026, 1, 1)})
    file_cache.store(file_cache.entry(raw), {1: "a non-string key"})
    assert file_cache.load(file_cache.entry(raw)) is None
    file_cache.store(file_cache.entry(raw), {"a": [1, 2.5, None, "x"]})
    assert file_cache.load(file_cache.entry(raw)) == {"a": [1, 2.5, None, "x"]}
    assert file_cache.load(file_cache.entry(b"other bytes")) is None


def test_off_disables_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(library.CACHE_ENV, "off")
    file_cache.store(file_cache.entry(b"x"), {"a": 1})
    assert file_cache.load(file_cache.entry(b"x")) is None


def test_the_folder_is_kept_under_its_bound(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(file_cache, "MAX_FILES", 10)
    monkeypatch.setattr(file_cache, "_COUNT_EVERY", 1)
    for i in range(25):
        file_cache.store(file_cache.entry(f"bytes {i}".encode()), {"i": i})
        assert len(list(cache.iterdir())) <= 10
    assert file_cache.load(file_cache.entry(b"bytes 24")) == {"i": 24}  # the newest stay


def test_an_unreadable_entry_is_a_miss(cache: Path) -> None:
    file_cache.store(file_cache.entry(b"x"), {"a": 1})
    (entry,) = cache.iterdir()
    entry.write_text("{not json")
    assert file_cache.load(file_cache.entry(b"x")) is None
    with pytest.raises(CassetteError):
        library._parse_checked(cache / "absent.yaml", remember=True)
