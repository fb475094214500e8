"""Records files never hold a secret value, as the call cache never does."""

from __future__ import annotations

from pathlib import Path

import pytest

from archon.eval.records import CandidateRecord, ItemRecord, RecordWriter, read_records
from archon.runtime.secrets import REDACTED

KEY = 'abc"def-1234567890'  # a quote, so that the JSON-escaped form matters too


def test_a_key_echoed_by_a_model_is_redacted_in_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_SERVER_API_KEY", KEY)
    path = tmp_path / "records.jsonl"
    record = ItemRecord(
        id="q1",
        answers=(f"the key is {KEY}",),
        candidates=(CandidateRecord(node="g", kind="generate", index=0, source=True, text=KEY),),
        error=f"server said: bad key {KEY}",
    )
    with RecordWriter(path, resume=False) as writer:
        writer.write(record)
    raw = path.read_text()
    assert KEY not in raw and 'abc\\"def' not in raw
    (back,), _ = read_records(path)
    assert back.answer == f"the key is {REDACTED}"
    assert back.candidates[0].text == REDACTED
    assert back.error == f"server said: bad key {REDACTED}"


def test_records_without_secrets_are_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MY_SERVER_API_KEY", raising=False)
    path = tmp_path / "records.jsonl"
    record = ItemRecord(id="q1", answers=("def f(): return 1",), detail="1/1 tests passed")
    with RecordWriter(path, resume=False) as writer:
        writer.write(record)
    (back,), _ = read_records(path)
    assert back == record
