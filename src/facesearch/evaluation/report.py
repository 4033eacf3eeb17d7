"""Every evaluation run writes one JSON report: what was measured, with which model
and code version, on which data, when; so results can be compared over time."""

from __future__ import annotations

import hashlib
import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path

from .. import __version__
from ..config import Settings
from ..models.registry import get as get_model


def describe_models(settings: Settings, models: list[str]) -> list[dict]:
    out = []
    for name in [settings.detector, *models]:
        spec = get_model(name)
        out.append({"name": spec.name, "task": spec.task, "version": spec.version,
                    "sha256": spec.runtime_sha256})  # fmt: skip
    return out


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_report(kind: str, body: dict, settings: Settings, models: list[str], out: Path) -> Path:
    report = {
        "kind": kind,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "facesearch": __version__,
        "models": describe_models(settings, models),
        "detection": settings.detect.model_dump(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        **body,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=_plain) + "\n")
    return out


def _plain(value):
    try:
        return value.item()  # numpy scalars
    except AttributeError:
        return str(value)
