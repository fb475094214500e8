"""``stop_after_code``: a reply ends with its first complete fenced code block.

Small code models write their program in a Markdown fence and then explain it for a hundred
tokens or more. A request with ``stop_after_code`` ends the reply at the end of the first
code block: the text keeps the block with its closing fence (so
:func:`archon.layers.answers.extract_code` finds it) and nothing after it. How each backend
does it:

* the embedded engine (batched ``local/...``) watches the text as it is generated with a
  :class:`FenceTracker` and ends the sequence once a closing fence line is complete: the one
  token generated after the block is the one that ends the fence's line;
* API backends (litellm, OpenAI-compatible servers, the sequential local path) cannot stop
  on a predicate, so they send the stop sequence :data:`FENCE_STOP` (a fence line followed
  by a blank line) and repair the reply with :func:`close_code`: the server leaves the
  closing fence out, so it is put back, and any text after a complete block (a closing fence
  the stop sequence did not match) is cut client-side. A streamed reply
  (``OpenAICompatClient.stream``) is read with a :class:`CodeStream`, which ends the stream
  as soon as the block is closed, whatever follows the fence.

A plain ``"```"`` stop would cut at the opening fence, and ``"\\n```\\n"`` would too when the
model writes prose first and a bare ``` fence (no language tag) after it. :data:`FENCE_STOP`
never matches an opening fence with a language tag nor one at the start of the reply, and a
bare opening fence only when a blank line follows it (models start the code on the next
line). A closing fence followed by a single newline and more text is not matched: that reply
costs its full length, and the client-side cut still drops the extra text.

Fences are read line by line, in the spirit of CommonMark: a line of three or more backticks
(after optional indentation) followed by an info string without backticks opens a block; a
line of at least as many backticks and nothing else closes it. Tilde fences are not code
blocks here (:func:`~archon.layers.answers.extract_code` reads backtick fences only). With an
assistant prefix the tracker starts in the prefix's state: a block the prefix opened closes in
the reply, a block the prefix already closed does not count.
"""

from __future__ import annotations

import re

__all__ = ["FENCE_STOP", "CodeStream", "FenceTracker", "close_code", "cut_after_code"]

FENCE_STOP = "\n```\n\n"
"""The stop sequence sent to backends that stop on strings only (see the module docstring)."""

_OPEN = re.compile(rb"[ \t]*(`{3,})[^`]*")
_CLOSE = re.compile(rb"[ \t]*(`{3,})[ \t]*")


class FenceTracker:
    """The fences of a growing reply, read one complete line at a time.

    Feed it the reply's bytes as they arrive; :meth:`feed` answers the offset (in the reply's
    bytes) just after the closing backticks of the first complete code block, once the line
    holding them is complete. :meth:`finish` reads the last, unterminated line as well (the
    reply ended there).

    Example:
        >>> tracker = FenceTracker()
        >>> tracker.feed(b"Sure:\\n```python\\nx = 1\\n```") is None
        True
        >>> tracker.feed(b"\\n\\nThis sets x.")
        25
    """

    def __init__(self, prefix: bytes = b"") -> None:
        self._text = bytearray(prefix)
        self._base = len(prefix)  # reply offsets are relative to the end of the prefix
        self._line = 0  # start of the first line not read yet
        self._open: int | None = None  # backticks of the open block's fence
        self._reading_prefix = True
        self.end: int | None = None
        """The offset just after the first block's closing fence, once found."""
        self._read_lines()
        self._reading_prefix = False

    @property
    def open_fence(self) -> int | None:
        """How many backticks the block still open has (None: no block is open)."""
        return self._open

    def feed(self, piece: bytes) -> int | None:
        """Append ``piece``; the end of the first complete block, once its line is complete."""
        if self.end is None:
            self._text += piece
            self._read_lines()
        return self.end

    def finish(self) -> int | None:
        """The end of the first complete block, counting the last line as complete."""
        if self.end is None and self._line < len(self._text):
            self._read_line(self._line, len(self._text))
            self._line = len(self._text)
        return self.end

    def _read_lines(self) -> None:
        while self.end is None:
            newline = self._text.find(b"\n", self._line)
            if newline < 0:
                return
            self._read_line(self._line, newline)
            self._line = newline + 1

    def _read_line(self, start: int, stop: int) -> None:
        line = bytes(self._text[start:stop]).rstrip(b"\r")
        if self._open is None:
            opened = _OPEN.fullmatch(line)
            if opened:
                self._open = len(opened.group(1))
            return
        closed = _CLOSE.fullmatch(line)
        if closed and len(closed.group(1)) >= self._open:
            self._open = None
            if not self._reading_prefix:
                self.end = max(0, start + closed.end(1) - self._base)


def _tracked(text: str, prefix: str) -> tuple[bytes, FenceTracker]:
    data = text.encode("utf-8")
    tracker = FenceTracker(prefix.encode("utf-8"))
    tracker.feed(data)
    tracker.finish()
    return data, tracker


def cut_after_code(text: str, prefix: str = "") -> str | None:
    """``text`` up to the closing fence of its first complete code block (None: no block
    closes in it). ``prefix`` is the assistant prefix ``text`` continues.

    Example:
        >>> cut_after_code("```python\\nx = 1\\n```\\n\\nThis sets x.")
        '```python\\nx = 1\\n```'
    """
    data, tracker = _tracked(text, prefix)
    if tracker.end is None:
        return None
    return data[: tracker.end].decode("utf-8", errors="ignore")


def close_code(text: str, *, truncated: bool = False, prefix: str = "") -> str:
    """A ``stop_after_code`` reply of a backend that stops on :data:`FENCE_STOP`, repaired.

    The text after the first complete block is cut; a block still open at the end of a reply
    that was not ``truncated`` (by ``max_tokens``) lost its closing fence to the stop
    sequence, which is put back. Anything else is returned unchanged.

    Example:
        >>> close_code("```python\\nx = 1")
        '```python\\nx = 1\\n```'
    """
    stream = CodeStream(prefix)
    kept = stream.take(text)
    return kept + stream.tail(truncated=truncated)


class CodeStream:
    """A ``stop_after_code`` reply of a backend that stops on :data:`FENCE_STOP`, repaired
    as its text pieces arrive: :meth:`take` passes on each piece up to the end of the first
    code block (then :attr:`closed` is set and the rest of the reply is not wanted), and
    :meth:`tail` gives what the reply lacks at its end.

    Example:
        >>> stream = CodeStream()
        >>> [stream.take(p) for p in ("```py\\n", "x = 1\\n``", "`\\nThat is all.")]
        ['```py\\n', 'x = 1\\n``', '`']
        >>> stream.closed
        True
    """

    def __init__(self, prefix: str = "") -> None:
        self._tracker = FenceTracker(prefix.encode("utf-8"))
        self._passed = 0  # bytes of the reply passed on
        self.closed = False

    def take(self, piece: str) -> str:
        """The part of ``piece`` before the end of the first code block ('' once it ended)."""
        if self.closed:
            return ""
        data = piece.encode("utf-8")
        end = self._tracker.feed(data)
        if end is not None:
            self.closed = True
            data = data[: max(0, end - self._passed)]
        self._passed += len(data)
        return data.decode("utf-8", errors="ignore")

    def tail(self, *, truncated: bool = False) -> str:
        """The closing fence line the stop sequence removed (what :data:`FENCE_STOP` matched
        up to its backticks), or '' when the reply needs none: no block is open, a block was
        closed, or the reply was ``truncated``."""
        if self.closed or truncated or self._tracker.finish() is not None:
            return ""
        fence = self._tracker.open_fence
        return "" if fence is None else "\n" + "`" * fence
