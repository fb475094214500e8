"""The editor packaging (editors/vscode) and the pre-commit hooks.

The grammar tests run when editors/vscode/node_modules exists (after build.sh or npm ci); the
whole build.sh (npm ci, grammar tests, .vsix) only with ARCHON_TEST_NPM=1, as it needs npm's
registry. The pre-commit tests need pre-commit (the dev extra) and run offline: the hooks of
.pre-commit-hooks.yaml are tried with `pre-commit try-repo` from a copy whose hooks use the
archon of this environment (`language: system`), since `language: python` would build a
hook environment from the package index.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from lsp_helpers import EXAMPLES, ROOT

VSCODE = ROOT / "editors" / "vscode"


def test_extension_manifest_points_at_its_files() -> None:
    manifest = json.loads((VSCODE / "package.json").read_text())
    language = manifest["contributes"]["languages"][0]
    grammar = manifest["contributes"]["grammars"][0]
    assert language["extensions"] == [".pipe"] and grammar["scopeName"] == "source.pipe"
    for relative in (language["configuration"], grammar["path"], manifest["main"]):
        assert (VSCODE / relative).is_file(), relative
    configuration = json.loads((VSCODE / "language-configuration.json").read_text())
    assert configuration["comments"]["lineComment"] == "#"
    assert "archon lsp" in (VSCODE / "README.md").read_text() or "lsp" in manifest["description"]
    assert (VSCODE / "package-lock.json").is_file()


@pytest.mark.skipif(
    not (VSCODE / "node_modules" / ".bin" / "vscode-tmgrammar-test").exists()
    or shutil.which("node") is None,
    reason="editors/vscode/node_modules is not installed (editors/vscode/build.sh)",
)
def test_grammar_passes_its_annotated_samples() -> None:
    result = subprocess.run(
        [str(VSCODE / "build.sh"), "--test"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "run successfuly" in result.stdout or "skipped" in result.stdout


@pytest.mark.skipif(os.environ.get("ARCHON_TEST_NPM") != "1", reason="set ARCHON_TEST_NPM=1")
def test_build_script_packages_the_vsix() -> None:
    result = subprocess.run([str(VSCODE / "build.sh")], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    if "skipped: npm not reachable" not in result.stdout:
        assert list(VSCODE.glob("archon-pipe-*.vsix"))


# --- pre-commit -----------------------------------------------------------------------------


def _pre_commit() -> list[str]:
    pytest.importorskip("pre_commit")
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    return [sys.executable, "-m", "pre_commit"]


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        timeout=60,
    )


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ, PRE_COMMIT_HOME=str(tmp_path / "pre-commit-home"))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("GIT_DIR", None)
    env.pop("GIT_INDEX_FILE", None)
    return env


def test_manifest_and_config_are_valid(tmp_path: Path) -> None:
    command = _pre_commit()
    env = _env(tmp_path)
    for args in (
        ["validate-manifest", str(ROOT / ".pre-commit-hooks.yaml")],
        ["validate-config", str(ROOT / ".pre-commit-config.yaml")],
    ):
        result = subprocess.run(
            [*command, *args], capture_output=True, text=True, timeout=120, env=env
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_try_repo_runs_the_hooks_on_examples(tmp_path: Path) -> None:
    command = _pre_commit()
    env = _env(tmp_path)
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    manifest = (ROOT / ".pre-commit-hooks.yaml").read_text()
    assert manifest.count("language: python") == 2
    (hooks / ".pre-commit-hooks.yaml").write_text(
        manifest.replace("language: python", "language: system")
    )
    _git(hooks, "init", "-q")
    _git(hooks, "add", "-A")
    _git(hooks, "commit", "-qm", "hooks")
    project = tmp_path / "project"
    shutil.copytree(EXAMPLES, project, ignore=shutil.ignore_patterns("data", "*.json"))
    (project / "messy.pipe").write_text('pipeline p{generate(models=["local/x"],samples=2)}\n')
    (project / "broken.pipe").write_text(
        (EXAMPLES / "baseline.pipe").read_text().replace("generate(", "generat(")
    )
    _git(project, "init", "-q")
    _git(project, "add", "-A")

    def try_repo(hook: str, *files: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, "try-repo", str(hooks), hook, "--files", *files],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )

    good = try_repo("archon-check", "baseline.pipe", "code_best.pipe", "lib/models.pipe")
    assert good.returncode == 0, good.stdout + good.stderr
    assert "archon check" in good.stdout and "Passed" in good.stdout
    bad = try_repo("archon-check", "broken.pipe")
    assert bad.returncode == 1 and "E2" in bad.stdout, bad.stdout
    assert "generat" in bad.stdout
    unchanged = try_repo("archon-fmt", "baseline.pipe", "code_best.pipe")
    assert unchanged.returncode == 0, unchanged.stdout + unchanged.stderr
    rewritten = try_repo("archon-fmt", "messy.pipe")
    assert rewritten.returncode == 1 and "reformatted messy.pipe" in rewritten.stdout
    assert (project / "messy.pipe").read_text() == (
        'pipeline p {\n  generate(models = ["local/x"], samples = 2)\n}\n'
    )


@pytest.mark.skipif(
    os.environ.get("ARCHON_TEST_PRECOMMIT_NETWORK") != "1",
    reason="set ARCHON_TEST_PRECOMMIT_NETWORK=1 (builds the hook environment from the index)",
)
def test_try_repo_with_the_published_python_hooks(tmp_path: Path) -> None:
    """The manifest as published (`language: python`): pre-commit installs archon from a
    copy of this checkout into a hook environment (needs the package index; minutes)."""
    command = _pre_commit()
    env = _env(tmp_path)
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    for name in ("pyproject.toml", "README.md", ".pre-commit-hooks.yaml"):
        shutil.copy(ROOT / name, hooks / name)
    shutil.copytree(ROOT / "archon", hooks / "archon", ignore=shutil.ignore_patterns("__pycache__"))
    _git(hooks, "init", "-q")
    _git(hooks, "add", "-A")
    _git(hooks, "commit", "-qm", "hooks")
    project = tmp_path / "project"
    shutil.copytree(EXAMPLES, project, ignore=shutil.ignore_patterns("data", "*.json"))
    _git(project, "init", "-q")
    _git(project, "add", "-A")
    for hook in ("archon-check", "archon-fmt"):
        result = subprocess.run(
            [*command, "try-repo", str(hooks), hook, "--files", "baseline.pipe", "code_best.pipe"],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=1200,
            env=env,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Passed" in result.stdout
