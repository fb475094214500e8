"""Response bodies in the OpenAI chat-completions shapes (plain and streamed chunks).

``usage`` holds the sum of every inner model call of every choice (what was actually spent:
cache hits are free), plus an ``archon`` object: calls, USD, cache hits, seconds, the seeds
of the choices, per-node calls and wall time, warnings, and the request fields ignored.
"""

from __future__ import annotations

from typing import Any

from archon.serve.engine import Answer

OBJECT = "chat.completion"
CHUNK_OBJECT = "chat.completion.chunk"


def usage_json(answer: Answer) -> dict[str, Any]:
    """The ``usage`` object of a request."""
    usage = answer.usage
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.tokens,
        "archon": {
            "calls": usage.calls,
            "usd": round(usage.usd, 8),
            "cache_hits": answer.cache_hits,
            "seconds": round(answer.seconds, 4),
            "seeds": list(answer.seeds),
            "nodes": dict(answer.nodes),
            "warnings": list(answer.warnings),
            "ignored": list(answer.ignored),
        },
    }


def system_fingerprint(answer: Answer) -> str:
    """Identifies the exact pipeline that answered (its IR fingerprint)."""
    return "archon-" + answer.fingerprint[:16]


def completion_json(answer: Answer, created: int) -> dict[str, Any]:
    """The body of a non-streamed answer."""
    return {
        "id": answer.request_id,
        "object": OBJECT,
        "created": created,
        "model": answer.model,
        "system_fingerprint": system_fingerprint(answer),
        "choices": [
            {
                "index": index,
                "message": {"role": "assistant", "content": result.answer},
                "logprobs": None,
                "finish_reason": "stop",
            }
            for index, result in enumerate(answer.results)
        ],
        "usage": usage_json(answer),
    }


class Chunks:
    """Builds the chunks of one streamed answer (same id, created and model in each)."""

    def __init__(self, request_id: str, model: str, created: int) -> None:
        self.request_id = request_id
        self.model = model
        self.created = created

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {
            "id": self.request_id,
            "object": CHUNK_OBJECT,
            "created": self.created,
            "model": self.model,
            "choices": choices,
            **extra,
        }

    def role(self, n: int) -> dict[str, Any]:
        """The first chunk: the assistant role for every choice."""
        return self._chunk(
            [
                {"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
                for i in range(n)
            ]
        )

    def text(self, choice: int, text: str) -> dict[str, Any]:
        return self._chunk([{"index": choice, "delta": {"content": text}, "finish_reason": None}])

    def finish(self, choice: int) -> dict[str, Any]:
        return self._chunk([{"index": choice, "delta": {}, "finish_reason": "stop"}])

    def usage(self, answer: Answer) -> dict[str, Any]:
        """The last chunk when ``stream_options.include_usage`` is set: no choices."""
        return self._chunk(
            [], usage=usage_json(answer), system_fingerprint=system_fingerprint(answer)
        )
