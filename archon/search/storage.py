"""Where a study lives, what it records about its template, and recovery from dead workers.

Storage URLs:

* ``sqlite:///path/name.study.db`` -- a local file (the CLI default, next to the template);
* ``postgresql://user:pass@host/db`` (or any SQLAlchemy URL) -- several machines share a study;
* ``journal:path.log`` -- Optuna's append-only journal file (``JournalFileBackend``), for
  several processes on one machine or a network file system without working ``fcntl`` locks;
* ``None`` or ``memory`` -- in memory (tests, throwaway runs).

Only JSON data goes into a study: the template fingerprint and text (study user attrs), each
trial's concrete pipeline as JSON, its costs and item counts (trial user attrs).

Dead workers: every worker stamps its trials with ``worker`` (host, pid, a random id) and a
``heartbeat`` time it refreshes while the trial runs. A RUNNING trial is stale when its worker
is a dead process on this host, or when its heartbeat is older than ``stale_after_s``. Stale
trials are marked FAIL (exactly one worker wins that race) and their parameters re-enqueued, so
a search killed with ``kill -9`` loses no finished trial and re-runs the one it was in.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import socket
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage, InMemoryStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from archon.compiler.structure import holes
from archon.errors import ArchonError
from archon.ir import Pipeline, strip_spans
from archon.processes import pid_alive
from archon.search.record import TEST_PREFIX, StudyKey, TrialKey, numbered
from archon.version import package_version

logger = logging.getLogger(__name__)

JOURNAL_PREFIX = "journal:"


class StudyMismatch(ArchonError):
    """The stored study does not fit this search (template, objective or storage)."""


def default_storage_url(template_path: str | Path) -> str:
    """``sqlite:///<dir>/<stem>.study.db``: the study file next to a template file."""
    path = Path(template_path).resolve()
    return f"sqlite:///{path.with_name(path.stem + '.study.db')}"


class StorageError(ArchonError):
    """The study storage cannot be opened: a malformed URL, an unreachable database."""


_STORAGE_FORMS = "use sqlite:///file.db, postgresql://user@host/db, journal:file.log or memory"
_CONNECT_TIMEOUT_S = 10


def safe_url(url: str) -> str:
    """``url`` with any password replaced, for messages."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return url
    userinfo, _, host = rest.partition("@")
    user = userinfo.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}" if ":" in userinfo else url


def check_storage_url(url: str) -> None:
    """Raise StorageError unless ``url`` has one of the storage forms (nothing is opened)."""
    if url == "memory" or url.startswith(JOURNAL_PREFIX):
        if url.startswith(JOURNAL_PREFIX) and not url[len(JOURNAL_PREFIX) :].strip():
            raise StorageError(f"storage {url!r} names no journal file; {_STORAGE_FORMS}")
        return
    if "://" not in url and not url.startswith("sqlite:"):
        raise StorageError(f"unknown storage {safe_url(url)!r}: {_STORAGE_FORMS}")
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as error:
        raise StorageError(f"storage {safe_url(url)!r} is not a valid URL ({error})") from None
    if parsed.get_backend_name() == "sqlite" and not url.startswith("sqlite:///"):
        raise StorageError(f"storage {safe_url(url)!r}: a SQLite URL is sqlite:///path/file.db")


def open_storage(url: str | None) -> BaseStorage:
    """The Optuna storage for ``url`` (see the module docstring for the forms).

    Raises:
        StorageError: a malformed URL, a missing driver, or a database that cannot be
            reached (within 10 s for a server) or created.
    """
    if url is None or url == "memory":
        return InMemoryStorage()
    check_storage_url(url)
    try:
        return _open(url)
    except ArchonError:
        raise
    except Exception as error:  # sqlalchemy, optuna, drivers and the OS raise many kinds
        message = " ".join(str(error).split())[:300]
        raise StorageError(
            f"cannot open the study storage {safe_url(url)}: {type(error).__name__}: {message}"
        ) from error


def _open(url: str) -> BaseStorage:
    if url.startswith(JOURNAL_PREFIX):
        path = Path(url[len(JOURNAL_PREFIX) :]).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    if url.startswith("sqlite:"):
        database = url.split(":///", 1)[-1]
        if database and database != ":memory:":
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        # Several processes may share the file: wait for locks instead of failing at once.
        return RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
    driver_url = postgres_driver(url)
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if driver_url.startswith("postgresql+"):
        # An unreachable server fails in seconds, not after the OS's TCP timeout.
        kwargs["connect_args"] = {"connect_timeout": _CONNECT_TIMEOUT_S}
    return RDBStorage(driver_url, engine_kwargs=kwargs)


def postgres_driver(url: str) -> str:
    """``postgresql://`` with the driver that is installed (psycopg 3, else psycopg2).

    SQLAlchemy picks one fixed default driver per version; a URL that names its driver
    (``postgresql+psycopg2://``) is left alone.
    """
    scheme, sep, rest = url.partition("://")
    if scheme not in ("postgresql", "postgres"):
        return url
    for module, driver in (("psycopg", "psycopg"), ("psycopg2", "psycopg2")):
        if importlib.util.find_spec(module) is not None:
            return f"postgresql+{driver}{sep}{rest}"
    raise StudyMismatch(
        "a PostgreSQL storage needs a driver: pip install 'psycopg[binary]' (or psycopg2-binary)"
    )


@dataclass(frozen=True)
class Worker:
    """This process, as recorded on the trials it runs."""

    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    def attrs(self) -> dict[str, Any]:
        return {"host": self.host, "pid": self.pid, "id": self.id}

    def owns(self, trial: FrozenTrial) -> bool:
        worker = trial.user_attrs.get(TrialKey.WORKER)
        return isinstance(worker, dict) and worker.get("id") == self.id


def is_stale(trial: FrozenTrial, me: Worker, stale_after_s: float, now: float) -> str | None:
    """Why the RUNNING ``trial`` belongs to a dead worker, or None if it may be alive."""
    worker = trial.user_attrs.get(TrialKey.WORKER)
    if isinstance(worker, dict) and worker.get("host") == me.host:
        pid = worker.get("pid")
        if worker.get("id") == me.id:
            return None
        if pid == me.pid:
            return "its worker (an earlier search in this process) has ended"
        if isinstance(pid, int) and not pid_alive(pid):
            return f"its worker process {pid} on {me.host} is gone"
    beat = trial.user_attrs.get(TrialKey.HEARTBEAT)
    if not isinstance(beat, int | float):
        started = trial.datetime_start
        beat = started.timestamp() if started is not None else None
    if beat is not None and now - float(beat) > stale_after_s:
        return f"no heartbeat for {now - float(beat):.0f}s"
    return None


def recover_stale(study: optuna.Study, me: Worker, stale_after_s: float) -> list[int]:
    """Fail RUNNING trials of dead workers and re-enqueue their parameters.

    Returns the numbers of the trials this worker failed (another worker may win a race for
    some; those are skipped).
    """
    now = time.time()
    failed: list[int] = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        reason = is_stale(trial, me, stale_after_s, now)
        if reason is None:
            continue
        try:
            study.tell(trial.number, state=TrialState.FAIL)
        except (UpdateFinishedTrialError, ValueError, RuntimeError):
            continue  # another worker got there first
        logger.warning("trial %d failed: %s; re-enqueued", trial.number, reason)
        failed.append(trial.number)
        requeue(study, trial, reason)
    return failed


def requeue(study: optuna.Study, trial: FrozenTrial, reason: str) -> None:
    """Enqueue ``trial``'s parameters again (it was interrupted, not judged)."""
    if trial.params:
        retry: dict[str, Any] = {TrialKey.RETRY_OF: trial.number, TrialKey.RETRY_REASON: reason}
        study.enqueue_trial(dict(trial.params), user_attrs=retry)


def template_attrs(template: Pipeline, objective: str, cost: str) -> dict[str, Any]:
    """Study user attrs describing the template and the objective."""
    return {
        StudyKey.TEMPLATE_FINGERPRINT: template.fingerprint(),
        StudyKey.TEMPLATE: strip_spans(template),
        StudyKey.SEARCH_SPACE: [ref.name for ref in holes(template)],
        StudyKey.OBJECTIVE: objective,
        StudyKey.COST_UNIT: cost,
        StudyKey.ARCHON_VERSION: package_version(),
    }


def check_template(
    study: optuna.Study,
    template: Pipeline,
    *,
    objective: str,
    cost: str,
    allow_change: bool,
) -> bool:
    """Record the template in a new study or check it against the stored one.

    Returns True when the study is new (nothing was recorded yet). Raises
    :class:`StudyMismatch` when the template or the objective changed, unless
    ``allow_change`` (then the new fingerprint is recorded in ``template_history``).
    """
    attrs = study.user_attrs
    wanted = template_attrs(template, objective, cost)
    fingerprint = wanted[StudyKey.TEMPLATE_FINGERPRINT]
    stored = attrs.get(StudyKey.TEMPLATE_FINGERPRINT)
    if stored is None:
        _record_template(study, wanted, [])
        return True
    stored_objective = attrs.get(StudyKey.OBJECTIVE, objective)
    stored_cost = attrs.get(StudyKey.COST_UNIT, cost)
    if stored_objective != objective or stored_cost != cost:
        raise StudyMismatch(
            f"study '{study.study_name}' searches objective {attrs.get(StudyKey.OBJECTIVE)!r}"
            f" (cost {attrs.get(StudyKey.COST_UNIT)!r}), not {objective!r} (cost {cost!r}); use"
            " another --study name"
        )
    if stored == fingerprint:
        return False
    old = set(attrs.get(StudyKey.SEARCH_SPACE) or ())
    new = set(wanted[StudyKey.SEARCH_SPACE])
    detail = _space_change(old, new)
    if not allow_change:
        raise StudyMismatch(
            f"the template changed since study '{study.study_name}' was created (fingerprint"
            f" {str(stored)[:12]} -> {fingerprint[:12]}){detail}. Old trials would"
            " be mixed with new ones: pass --allow-template-change to continue this study"
            " anyway (the change is recorded), or use another --study name"
        )
    logger.warning("template changed (%s); continuing study as asked%s", stored, detail)
    _record_template(study, wanted, list(attrs.get(StudyKey.TEMPLATE_HISTORY) or []))
    return False


def _record_template(study: optuna.Study, wanted: Mapping[str, Any], history: list[Any]) -> None:
    """Store the template's attributes, its fingerprint appended to ``history``."""
    for key, value in wanted.items():
        study.set_user_attr(key, value)
    history.append({"fingerprint": wanted[StudyKey.TEMPLATE_FINGERPRINT], "at": time.time()})
    study.set_user_attr(StudyKey.TEMPLATE_HISTORY, history)


def _space_change(old: set[str], new: set[str]) -> str:
    parts = []
    if new - old:
        parts.append("new parameters: " + ", ".join(sorted(new - old)))
    if old - new:
        parts.append("removed parameters: " + ", ".join(sorted(old - new)))
    return f"; {'; '.join(parts)}" if parts else "; same parameter names, other changes"


def check_directions(study: optuna.Study, directions: Sequence[StudyDirection]) -> None:
    """Refuse a stored study whose objectives differ from this search's."""
    if list(study.directions) != list(directions):
        names = [d.name.lower() for d in study.directions]
        raise StudyMismatch(
            f"study '{study.study_name}' optimises {names}, not"
            f" {[d.name.lower() for d in directions]}: use another --study name"
        )


def test_results(study: optuna.Study) -> dict[int, Mapping[str, Any]]:
    """Held-out test results recorded by any worker, by trial number."""
    return numbered(study.user_attrs, TEST_PREFIX)
