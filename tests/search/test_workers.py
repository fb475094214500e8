"""Processes: resume after kill -9, several workers on one study (journal, SQLite, PostgreSQL)."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from archon.search.storage import open_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)

SCRIPT = Path(__file__).with_name("worker_script.py")
ROOT = Path(__file__).resolve().parents[2]


def start(
    storage: str, study: str, trials: int, latency: float, seed: int = 0
) -> subprocess.Popen[str]:
    # The script's folder comes first on its sys.path: point it at this checkout's archon.
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), storage, study, str(trials), str(latency), str(seed)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str], timeout: float = 120) -> str:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err
    return out


def trials_of(storage: str, study: str) -> list[optuna.trial.FrozenTrial]:
    try:
        return optuna.load_study(study_name=study, storage=open_storage(storage)).trials
    except KeyError:
        return []


def wait_for(storage: str, study: str, complete: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        trials = trials_of(storage, study)
        done = sum(t.state == TrialState.COMPLETE for t in trials)
        # A trial killed before it has sampled its parameters has nothing to retry, so wait
        # for one that is under way.
        running = [
            t
            for t in trials
            if t.state == TrialState.RUNNING and "worker" in t.user_attrs and t.params
        ]
        if done >= complete and running:
            return
        time.sleep(0.05)
    raise AssertionError("the worker did not get far enough")


def test_resume_after_kill_9(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'kill.db'}"
    worker = start(storage, "kill", 8, latency=0.3)
    wait_for(storage, "kill", complete=2)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    before = trials_of(storage, "kill")
    finished = {t.number: t.values for t in before if t.state == TrialState.COMPLETE}
    stale = [t for t in before if t.state == TrialState.RUNNING]
    assert len(finished) >= 2 and len(stale) == 1

    out = finish(start(storage, "kill", 8, latency=0.0))
    assert f"recovered=[{stale[0].number}]" in out
    after = trials_of(storage, "kill")
    # finished trials are kept as they were
    assert {t.number: t.values for t in after if t.number in finished} == finished
    # the stale trial failed, and its parameters were retried and completed
    assert after[stale[0].number].state == TrialState.FAIL
    retries = [t for t in after if t.user_attrs.get("retry_of") == stale[0].number]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == stale[0].params
    assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in after) == 8
    assert not [t for t in after if t.state == TrialState.RUNNING]


def check_shared(storage: str, study: str, total: int) -> None:
    trials = trials_of(storage, study)
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == total
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    workers = {t.user_attrs["worker"]["id"] for t in finished}
    assert len(workers) == 2  # both processes contributed
    assert sum(bool(t.user_attrs.get("baseline")) for t in trials) == 1


def run_two_workers(storage: str, study: str, total: int = 10) -> None:
    first = start(storage, study, total, latency=0.1, seed=0)
    time.sleep(0.5)  # let the first one create the study; the second joins it
    second = start(storage, study, total, latency=0.1, seed=1)
    finish(first)
    finish(second)
    check_shared(storage, study, total)


def test_two_workers_share_a_journal_file_study(tmp_path: Path) -> None:
    run_two_workers(f"journal:{tmp_path / 'study.log'}", "shared")


def test_two_workers_share_a_sqlite_study(tmp_path: Path) -> None:
    run_two_workers(f"sqlite:///{tmp_path / 'shared.db'}", "shared")


@pytest.mark.postgres
def test_two_workers_share_a_postgresql_study() -> None:
    url = os.environ.get("ARCHON_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("ARCHON_TEST_POSTGRES_URL is not set (see .ci/postgres.sh)")
    if not any(importlib.util.find_spec(m) for m in ("psycopg", "psycopg2")):
        pytest.skip("no PostgreSQL driver installed (pip install 'psycopg[binary]')")
    study = f"shared-{os.getpid()}-{int(time.time())}"
    run_two_workers(url, study)
