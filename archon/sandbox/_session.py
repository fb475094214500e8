"""archon's side of the two runners: the server (the candidate) and the tester (the tests).

Everything the server sends is decoded here with the strict codec before it counts or goes
on to the tester, re-encoded by archon's own code; the tester only ever reads archon's lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from archon.sandbox._process import Runner, RunnerGone
from archon.sandbox._wire import WireError, clean_name, decode, encode
from archon.sandbox.confine import Isolation

_MESSAGE_CAP = 300
_GRACE_S = 2.0  # on top of a runner's own deadlines, before archon gives up on it


@dataclass(frozen=True)
class Reply:
    """One checked answer of the server: status, decoded value, error type name, message."""

    status: str
    value: object = None
    error: str | None = None
    message: str = ""
    args: tuple[object, ...] | None = None
    stdout: str = ""
    exit: int | None = None
    names: list[list[Any]] = field(default_factory=list)

    def wire(self) -> dict[str, Any]:
        """The answer as the tester reads it, encoded by archon."""
        out: dict[str, Any] = {"status": self.status, "message": self.message}
        if self.status == "ok":
            out["value"] = encode(self.value)
            if self.args is not None:
                out["args"] = [encode(a) for a in self.args]
        else:
            out["error"] = self.error or "Exception"
        return out


def _text(value: object, cap: int = _MESSAGE_CAP) -> str:
    return value[:cap] if isinstance(value, str) else ""


def check_reply(raw: dict[str, Any], op: str) -> Reply:
    """The server's answer, validated; anything malformed is an ``InvalidResult`` error."""
    status = raw.get("status")
    if status not in ("ok", "error", "timeout"):
        return Reply("error", error="InvalidResult", message="the runner's answer was malformed")
    if status != "ok" or op == "main":
        exit_code = raw.get("exit")
        return Reply(
            status,
            error=clean_name(raw["error"]) if status == "error" and "error" in raw else None,
            message=_text(raw.get("message")),
            stdout=_text(raw.get("stdout"), 1 << 16),
            exit=exit_code if type(exit_code) is int else None,
        )
    if op == "setup":
        return Reply("ok", names=check_names(raw.get("names")))
    try:
        value = decode(raw.get("value"))
        args = raw.get("args")
        decoded = tuple(decode(a) for a in args) if isinstance(args, list) else None
    except (WireError, RecursionError):
        return Reply("error", error="InvalidResult", message="the result was not a plain value")
    return Reply("ok", value=value, args=decoded)


class Server:
    """The candidate's runner: the program compiled once, every request in a fresh child."""

    def __init__(self, runner: Runner, timeout_s: float, memory_mb: int) -> None:
        self.runner = runner
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self.compiled = False
        self.message = ""

    @classmethod
    async def start(cls, mode: Isolation, code: str, timeout_s: float, memory_mb: int) -> Server:
        """Start the server; it boots while the caller goes on (see :meth:`ready`)."""
        job = {
            "code": code,
            "timeout": timeout_s,
            "memory_mb": memory_mb,
            "cpu_s": int(timeout_s * 2) + 2,
        }
        return cls(await Runner.start(mode, "server", job), timeout_s, memory_mb)

    async def ready(self) -> None:
        """Wait until the program is compiled (sets :attr:`compiled` and :attr:`message`)."""
        server = self
        try:
            hello = await server.runner.receive(30.0)
        except RunnerGone as gone:
            await server.runner.stop()
            why = server.runner.diagnostics()
            server.message = f"the sandbox did not start: {gone}" + (f" ({why})" if why else "")
            return
        server.compiled = hello.get("compiled") is True
        server.message = _text(hello.get("message"))

    async def request(self, op: str, **fields: Any) -> Reply:
        """One request; a runner that is gone or silent gives ``error``/``timeout``."""
        timeout = min(float(fields.get("timeout", self.timeout_s)), self.timeout_s)
        try:
            await self.runner.send({"op": op, **fields, "timeout": timeout})
            # The server's own deadline is (program load + request time) + 0.5 s.
            raw = await self.runner.receive(self.timeout_s + timeout + _GRACE_S)
        except RunnerGone as gone:
            if gone.timed_out:
                return Reply("timeout", message="killed at the wall-clock limit")
            return Reply("error", error="SandboxStopped", message=f"sandbox: {gone}")
        return check_reply(raw, op)

    async def stop(self) -> None:
        await self.runner.stop()


def check_names(raw: object) -> list[list[Any]]:
    """The server's list of names, keeping only well-formed entries with plain values."""
    names: list[list[Any]] = []
    if not isinstance(raw, list):
        return names
    for entry in raw[:500]:
        if not isinstance(entry, list) or len(entry) < 2 or not isinstance(entry[1], str):
            continue
        kind, name = entry[0], entry[1]
        if not name.isidentifier():
            continue
        if kind == "f":
            names.append(["f", name])
        elif kind == "v" and len(entry) == 3:
            try:
                names.append(["v", name, encode(decode(entry[2]))])
            except (WireError, RecursionError):
                names.append(["o", name, "object"])
        elif kind == "m" and len(entry) == 3 and isinstance(entry[2], str):
            module = entry[2] if all(p.isidentifier() for p in entry[2].split(".")) else ""
            names.append(["m", name, module] if module else ["o", name, "module"])
        else:
            names.append(["o", name, clean_name(entry[2] if len(entry) > 2 else None)])
    return names
