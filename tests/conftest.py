"""Project-wide pytest options."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-goldens",
        action="store_true",
        default=False,
        help="rewrite the expected files of tests/dsl/cases instead of comparing with them",
    )


NO_BUBBLEWRAP = "bubblewrap is not installed (CI installs it)"
_sandbox_here: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    from archon.sandbox import confine

    _sandbox_here.append(confine.mode())


def _from_missing_sandbox(error: BaseException | None, seen: set[int] | None = None) -> bool:
    """Whether ``error`` is, wraps or was caused by :class:`SandboxUnavailable`."""
    from archon.sandbox import SandboxUnavailable

    seen = set() if seen is None else seen
    if error is None or id(error) in seen:
        return False
    seen.add(id(error))
    if isinstance(error, SandboxUnavailable):
        return True
    inner: list[BaseException | None] = [error.__cause__, error.__context__]
    inner.append(getattr(error, "cause", None))
    if isinstance(error, BaseExceptionGroup):
        inner.extend(error.exceptions)
    return any(_from_missing_sandbox(e, seen) for e in inner)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """On a machine without bubblewrap (and without ``ARCHON_SANDBOX=fallback``), a test that
    needs the code sandbox is skipped, not failed: it raised the sandbox's refusal, or a CLI
    printed it."""
    outcome = yield
    report = outcome.get_result()
    if not report.failed or _sandbox_here != ["unavailable"] or call.excinfo is None:
        return
    refused = _from_missing_sandbox(call.excinfo.value) or "no code sandbox:" in str(
        report.longrepr
    )
    if refused:
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0, f"Skipped: {NO_BUBBLEWRAP}")
