"""Labelled malformed snippets: lark's ``match_examples`` turns a parser state into a message.

Each label is the message shown when a syntax error happens in the same parser state as one of
its snippets. A test asserts that every snippet produces its own label.
"""

from __future__ import annotations

SYNTAX_EXAMPLES: dict[str, list[str]] = {
    "missing comma between arguments": [
        "pipeline p { generate(models = [a] samples = 2) }",
        "pipeline p { rank(model = m top_k = 2) }",
        'models { s = model("x" api_base = "y") }',
        'models { s = model("x", a = 1 api_base = "y") }',
    ],
    "missing comma between list items": [
        'pipeline p { generate(models = ["a" "b"]) }',
    ],
    "a layer needs a kind and arguments, e.g. `generate(models = [m])`": [
        "pipeline p { generate }",
        "pipeline p { x = generate }",
        "pipeline p { generate(models = [a]) generate }",
    ],
    "an argument needs a value after `=`": [
        "pipeline p { generate(models = ) }",
        "pipeline p { generate(models = , samples = 2) }",
    ],
    "`<-` must be followed by the names of input nodes": [
        "pipeline p { rank(model = m) <- }",
        "pipeline p { rank(model = m) <- , a }",
    ],
    "a budget entry looks like `calls <= 40`": [
        "pipeline p { budget { calls = 40 } }",
        "pipeline p { budget { calls 40 } }",
    ],
    'a model alias looks like `name = "provider/model"`': [
        'models { judge "openai/gpt-4o-mini" }',
    ],
    "`pipeline` needs a name, e.g. `pipeline my_pipeline { ... }`": [
        "pipeline { generate(models = [m]) }",
    ],
    "only `import`, `models`, `prompts`, `block` and `pipeline` may appear at the top level": [
        "generate(models = [m])",
        "x = 1",
        *(
            f"{item}\ngenerate(models = [m])"
            for item in (
                'import "lib.pipe"',
                "models { }",
                'models { m = "x" }',
                "prompts { }",
                'prompts { p = "x" }',
                "block b() { }",
                "block b() { rank(model = m) }",
                "pipeline q { }",
                "pipeline q { rank(model = m) }",
            )
        ),
    ],
}
