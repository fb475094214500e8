"""The tokenizer, positions and the cursor's context (pure functions, no protocol)."""

from __future__ import annotations

from lsp_helpers import cursor

from archon.lsp.text import (
    body_labels,
    context_at,
    from_client_col,
    line_starts,
    offset_at,
    position_at,
    to_client_col,
    tokenize,
)

HEAD = 'import "lib/models.pipe"\npipeline p {\n  g = generate(models = [small])\n'


def test_positions_round_trip() -> None:
    text = "ab\ncdé\n\nlast"
    starts = line_starts(text)
    for offset in range(len(text) + 1):
        line, col = position_at(offset, starts)
        assert offset_at(text, line, col, starts) == offset
    assert offset_at(text, 1, 99, starts) == text.index("\n\n")  # clamped to the line's end
    assert offset_at(text, 9, 0, starts) == len(text)


def test_client_columns_count_utf16_units() -> None:
    line = 'x = "😋é" y'
    after = line.index("y")
    assert to_client_col(line, after, "utf-16") == after + 1  # the emoji is two units
    assert to_client_col(line, after, "utf-8") == after + 4
    assert to_client_col(line, after, "utf-32") == after
    for encoding in ("utf-8", "utf-16", "utf-32"):
        assert from_client_col(line, to_client_col(line, after, encoding), encoding) == after


def test_tokenizer_never_fails_on_broken_text() -> None:
    tokens = tokenize('pipeline p { g = gen("unterminated\n  x = """still open')
    kinds = [t.kind for t in tokens]
    assert kinds[:6] == ["name", "name", "punct", "name", "punct", "name"]
    assert tokens[-1].kind == "long" and tokens[-1].text.startswith('"""')
    assert [t.text for t in tokenize("a <- b, c <= 3 # c")] == ["a", "<-", "b", ",", "c", "<=", "3"]


def test_context_between_items_and_in_imports() -> None:
    assert context_at(*cursor("|")).where == "top"
    assert context_at(*cursor('models { a = "x" }\n|')).where == "top"
    context = context_at(*cursor('import "lib/mo|'))
    assert (context.where, context.prefix) == ("import", "lib/mo")


def test_context_of_statements_arguments_and_values() -> None:
    assert context_at(*cursor(HEAD + "  ra|")).where == "body"
    context = context_at(*cursor(HEAD + "  rank(model = small, |"))
    assert (context.where, context.call, context.used) == ("args", "rank", ("model",))
    context = context_at(*cursor(HEAD + '  rank(mode = "|'))
    assert context.where == "other"  # inside a string
    context = context_at(*cursor(HEAD + "  rank(mode = |"))
    assert (context.where, context.call, context.param) == ("value", "rank", "mode")
    context = context_at(*cursor(HEAD + "  fuse(models = [small, t|"))
    assert (context.where, context.param, context.prefix) == ("value", "models", "t")
    context = context_at(*cursor(HEAD + "  fuse(temperature = float(0.1, |"))
    assert (context.where, context.param, context.value_functions) == (
        "value",
        "temperature",
        ("float",),
    )


def test_context_after_arrow_and_in_blocks() -> None:
    context = context_at(*cursor(HEAD + "  h = fuse(models = [small]) <- g, |"))
    assert context.where == "inputs"
    assert context_at(*cursor(HEAD + "  h = fuse() <- g\n  |")).where == "body"
    assert context_at(*cursor("block b(judge, |")).where == "other"
    assert context_at(*cursor("block b(judge) {\n  rank(|")).where == "args"
    assert context_at(*cursor("pipeline p {\n  budget { ca|")).where == "budget"
    assert context_at(*cursor('models {\n  s = model("x", |')).where == "value"


def test_labels_of_a_body() -> None:
    text = HEAD + "  repeat 2 {\n    r = fuse(models = [small])\n  }\n  v = vote(extract = a)\n}\n"
    tokens = tokenize(text)
    body = text.index("{")
    assert [t.text for t in body_labels(tokens, body)] == ["g", "r", "v"]
    assert [t.text for t in body_labels(tokens, body, limit=text.index("v ="))] == ["g", "r"]
