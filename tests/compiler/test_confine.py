"""``import`` and ``file()`` read regular files inside the project only."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from archon.compiler import check_file
from archon.compiler.confine import ROOTS_VARIABLE, project_root
from archon.errors import render_all

PIPELINE = 'pipeline p { generate(models = ["m"]) }\n'


def _project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    (project / "sub").mkdir(parents=True)
    (project / "archon.toml").write_text("")
    return project


def _codes(path: Path) -> list[str]:
    return [d.code for d in check_file(path).diagnostics]


def _rendered(path: Path) -> str:
    result = check_file(path)
    return render_all(result.diagnostics, result.sources)


@pytest.mark.parametrize("target", ["/proc/self/environ", "/dev/zero", "/etc/hostname"])
def test_an_import_outside_the_project_is_refused_unread(tmp_path: Path, target: str) -> None:
    project = _project(tmp_path)
    main = project / "main.pipe"
    main.write_text(f'import "{target}"\n{PIPELINE}')
    os.environ["ARCHON_CONFINE_PROBE_KEY"] = "probe-secret-value-123"
    try:
        text = _rendered(main)
    finally:
        del os.environ["ARCHON_CONFINE_PROBE_KEY"]
    assert "E502" in text
    assert "probe-secret-value-123" not in text


def test_file_outside_the_project_is_refused(tmp_path: Path) -> None:
    project = _project(tmp_path)
    (tmp_path / "secret.txt").write_text("do not read me")
    main = project / "main.pipe"
    main.write_text('prompts { p = file("../secret.txt") }\n' + PIPELINE)
    assert "E503" in _codes(main)
    assert "do not read me" not in _rendered(main)
    main.write_text('prompts { p = file("/proc/self/environ") }\n' + PIPELINE)
    assert "E503" in _codes(main)


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    project = _project(tmp_path)
    os.mkfifo(project / "pipe.pipe")
    main = project / "main.pipe"
    main.write_text('import "pipe.pipe"\n' + PIPELINE)
    assert "E502" in _rendered(main) and "regular file" in _rendered(main)


def test_files_inside_the_project_and_named_roots_are_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = _project(tmp_path)
    (project / "lib.pipe").write_text('models { m = "local/m" }\n')
    (project / "sub" / "p.txt").write_text("a prompt")
    main = project / "sub" / "main.pipe"
    main.write_text('import "../lib.pipe"\nprompts { p = file("p.txt") }\n' + PIPELINE)
    assert not [c for c in _codes(main) if c.startswith("E")]
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "models.pipe").write_text('models { n = "local/n" }\n')
    main.write_text('import "../../shared/models.pipe"\n' + PIPELINE)
    assert "E502" in _codes(main)
    monkeypatch.setenv(ROOTS_VARIABLE, str(shared))
    assert "E502" not in _codes(main)


def test_the_project_root_is_the_nearest_marked_directory(tmp_path: Path) -> None:
    project = _project(tmp_path)
    assert project_root(str(project / "sub" / "main.pipe")) == project.resolve()
    loose = tmp_path / "downloads"
    loose.mkdir()
    assert project_root(str(loose / "x.pipe")) == loose.resolve()
