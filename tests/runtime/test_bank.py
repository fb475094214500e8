"""Candidate banks: export/import round trip, integrity checks, conflicts, replay for free."""

from __future__ import annotations

import gzip
import json
import os
import sqlite3
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from archon.cli import app
from archon.layers.registry import Registry
from archon.runtime import CallCache, Redactor, run_sync
from archon.runtime.bank import (
    Bank,
    BankError,
    BankFilter,
    export_bank,
    import_bank,
    read_bank,
)
from archon.runtime.cache import key_of, key_request
from archon.runtime.clients.fake import ScriptedClient
from archon.values import Completion, CompletionRequest, CompletionResponse, Message, Usage

from .conftest import node, pipeline
from .fake_server import serve


def _filled(path: Path, registry: Registry, origin: dict[str, str] | None = None) -> CallCache:
    cache = CallCache(path, origin=origin)
    p = pipeline(node("gen", samples=3, temperature=0.8))
    run_sync(p, "q", client=ScriptedClient(), registry=registry, cache=cache)
    return cache


def test_entries_keep_the_request_their_key_hashes(tmp_path: Path, registry: Registry) -> None:
    cache = _filled(tmp_path / "c.sqlite", registry)
    rows = cache.entries()
    assert len(rows) == 3
    for key, _model, _response, request, _origin in rows:
        assert request is not None and key_of(request) == key


def test_round_trip_replays_with_no_model_call(tmp_path: Path, registry: Registry) -> None:
    source = _filled(tmp_path / "a.sqlite", registry, {"pipeline": "p", "dataset": "d"})
    summary = export_bank(source, tmp_path / "calls.bank")
    assert summary.entries == 3 and summary.unverifiable == 0
    target = CallCache(tmp_path / "b.sqlite")
    result = import_bank(target, tmp_path / "calls.bank")
    assert (result.added, result.present, result.conflicts) == (3, 0, ())
    again = import_bank(target, tmp_path / "calls.bank")
    assert (again.added, again.present) == (0, 3)
    client = ScriptedClient()
    p = pipeline(node("gen", samples=3, temperature=0.8))
    replay = run_sync(p, "q", client=client, registry=registry, cache=target)
    assert client.calls == 0 and replay.cache_hits == 3


def test_a_cache_drawing_on_a_bank_pays_only_for_what_it_lacks(
    tmp_path: Path, registry: Registry
) -> None:
    export_bank(_filled(tmp_path / "a.sqlite", registry), tmp_path / "calls.bank")
    cache = CallCache(tmp_path / "empty.sqlite", banks=[Bank.load(tmp_path / "calls.bank")])
    client = ScriptedClient()
    five = pipeline(node("gen", samples=5, temperature=0.8))
    result = run_sync(five, "q", client=client, registry=registry, cache=cache)
    assert cache.bank_hits == 3 and client.calls == 2 and result.cache_hits == 3


def test_a_conflicting_key_is_reported_and_never_overwritten(
    tmp_path: Path, registry: Registry
) -> None:
    export_bank(_filled(tmp_path / "a.sqlite", registry), tmp_path / "calls.bank")
    entry = read_bank(tmp_path / "calls.bank")[0]
    target = CallCache(tmp_path / "b.sqlite")
    mine = CompletionResponse(completions=(Completion(text="my own answer"),), usage=Usage())
    target.put(entry.key, entry.model, mine, entry.request)
    result = import_bank(target, tmp_path / "calls.bank")
    assert result.conflicts == (entry.key,) and result.added == 2
    kept = target.get(entry.key)
    assert kept is not None and kept.completions[0].text == "my own answer"


def test_filters_by_model_pipeline_and_dataset(tmp_path: Path, registry: Registry) -> None:
    cache = _filled(tmp_path / "a.sqlite", registry, {"pipeline": "p", "dataset": "d"})
    other = CallCache(tmp_path / "a.sqlite", origin={"pipeline": "q", "dataset": "d"})
    request = CompletionRequest(model="other-model", messages=(Message(role="user", content="x"),))
    text = key_request(request, 0, 0)
    response = CompletionResponse(completions=(Completion(text="y"),), usage=Usage())
    other.put(key_of(text), "other-model", response, text)
    assert export_bank(cache, tmp_path / "all.bank").entries == 4
    by_model = export_bank(cache, tmp_path / "m.bank", BankFilter(models=("other-model",)))
    assert by_model.entries == 1
    assert export_bank(cache, tmp_path / "p.bank", BankFilter(pipeline="p")).entries == 3
    assert export_bank(cache, tmp_path / "d.bank", BankFilter(dataset="d")).entries == 4
    assert export_bank(cache, tmp_path / "none.bank", BankFilter(dataset="e")).entries == 0


def _rewrite(path: Path, edit: object) -> None:
    lines = gzip.decompress(path.read_bytes()).decode().splitlines(keepends=True)
    lines = edit(lines)  # type: ignore[operator]
    path.write_bytes(gzip.compress("".join(lines).encode()))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda lines: lines[:-1], "truncated"),
        (lambda lines: [*lines[:1], *lines[2:]], "do not match the end marker"),
        (
            lambda lines: [
                lines[0],
                lines[1].replace('"text":"', '"text":"tampered '),
                *lines[2:],
            ],
            "do not match the end marker",
        ),
        (lambda lines: [lines[0], "not json\n", *lines[1:]], "line 2: not JSON"),
        (lambda lines: ['{"archon_bank": 99}\n', *lines[1:]], "not an archon bank"),
    ],
)
def test_a_damaged_or_altered_bank_is_refused(
    tmp_path: Path, registry: Registry, edit: object, message: str
) -> None:
    path = tmp_path / "calls.bank"
    export_bank(_filled(tmp_path / "a.sqlite", registry), path)
    _rewrite(path, edit)
    target = CallCache(tmp_path / "b.sqlite")
    with pytest.raises(BankError, match=message):
        import_bank(target, path)
    assert target.stats().entries == 0  # nothing imported from a bad file


def test_a_key_that_does_not_hash_its_request_is_refused(
    tmp_path: Path, registry: Registry
) -> None:
    path = tmp_path / "calls.bank"
    export_bank(_filled(tmp_path / "a.sqlite", registry), path)

    def forge(lines: list[str]) -> list[str]:
        entry = json.loads(lines[1])
        entry["key"] = "0" * 64
        return [lines[0], json.dumps(entry) + "\n", *lines[2:]]

    _rewrite(path, forge)
    with pytest.raises(BankError, match="line 2: the key does not match its request"):
        read_bank(path)


def test_not_gzip_and_missing_files_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "plain.bank").write_text("hello")
    with pytest.raises(BankError, match="damaged"):
        read_bank(tmp_path / "plain.bank")
    with pytest.raises(BankError, match="no such bank file"):
        read_bank(tmp_path / "absent.bank")


def test_requests_holding_a_secret_are_not_stored(tmp_path: Path, registry: Registry) -> None:
    secret = "sk-archon-test-0123456789abcdef"
    cache = CallCache(tmp_path / "c.sqlite")
    p = pipeline(node("gen", samples=2, temperature=0.8))
    run_sync(
        p,
        f"my key is {secret}",
        client=ScriptedClient(),
        registry=registry,
        cache=cache,
        redactor=Redactor(values=(secret,)),
    )
    rows = cache.entries()
    assert len(rows) == 2 and all(request is None for _, _, _, request, _ in rows)
    summary = export_bank(cache, tmp_path / "calls.bank")
    assert summary.unverifiable == 2
    assert secret.encode() not in gzip.decompress((tmp_path / "calls.bank").read_bytes())


def test_a_format_2_cache_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE calls (key TEXT PRIMARY KEY, model TEXT NOT NULL,"
        " response TEXT NOT NULL, created REAL NOT NULL)"
    )
    response = CompletionResponse(completions=(Completion(text="kept"),), usage=Usage())
    request = CompletionRequest(model="m", messages=(Message(role="user", content="hi"),))
    text = key_request(request, 0, 0)
    conn.execute(
        "INSERT INTO calls VALUES (?,?,?,?)", (key_of(text), "m", response.model_dump_json(), 0.0)
    )
    conn.execute("PRAGMA user_version=2")
    conn.commit()
    conn.close()
    cache = CallCache(path, origin={"pipeline": "p"})
    hit = cache.get(key_of(text), text)
    assert hit is not None and hit.completions[0].text == "kept"
    assert cache.warnings == ()
    [(_, _, _, stored, origin)] = cache.entries()
    assert stored == text and origin is not None and json.loads(origin) == {"pipeline": "p"}


# --- the CLI ---------------------------------------------------------------------------------


def _eval(tmp_path: Path, home: Path, server_base: str, *extra: str) -> Result:
    pipe = tmp_path / "p.pipe"
    pipe.write_text(
        f'models {{ m = model("openai/m", api_base = "{server_base}") }}\n'
        "pipeline p { generate(models = [m], samples = 2, temperature = 0.7, max_tokens = 8) }\n"
    )
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"q": f"q{i}", "a": "x"}) + "\n" for i in range(3)))
    os.environ["ARCHON_HOME"] = str(home)
    return CliRunner().invoke(
        app,
        [
            *("eval", str(pipe), "--dataset", str(data)),
            *("--input-field", "q", "--target-field", "a", "--json", *extra),
        ],
    )


def test_cli_export_import_and_replay_from_a_bank(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARCHON_HOME", str(tmp_path / "a"))
    bank = tmp_path / "p.bank"
    with serve(text="an answer") as server:
        first = _eval(tmp_path, tmp_path / "a", server.base)
        assert first.exit_code == 0, first.output
        made = len(server.seen)
        assert made == 6
        exported = CliRunner().invoke(app, ["cache", "export", str(bank), "--pipeline", "p"])
        assert exported.exit_code == 0, exported.output
        assert "6 calls" in exported.stdout
        replay = _eval(tmp_path, tmp_path / "b", server.base, "--bank", str(bank))
        assert replay.exit_code == 0, replay.output
        assert len(server.seen) == made  # every call answered by the bank
        assert "answered 6 call(s)" in replay.stderr
    monkeypatch.setenv("ARCHON_HOME", str(tmp_path / "c"))
    imported = CliRunner().invoke(app, ["cache", "import", str(bank)])
    assert imported.exit_code == 0 and "6 added" in imported.stdout
    again = CliRunner().invoke(app, ["cache", "import", str(bank)])
    assert again.exit_code == 0 and "6 already present" in again.stdout
    bank.write_bytes(bank.read_bytes()[:-20])
    damaged = CliRunner().invoke(app, ["cache", "import", str(bank)])
    assert damaged.exit_code == 2
    assert "p.bank" in damaged.stderr
