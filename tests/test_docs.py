"""The README documents every command and setting, and the commands explain themselves."""

from pathlib import Path

import typer

from facesearch.cli import app
from facesearch.config import (
    ApiSettings,
    CryptoSettings,
    DecodeSettings,
    DetectSettings,
    GovernanceSettings,
    IndexSettings,
    RaySettings,
    Settings,
)

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def _commands(group, prefix: str = ""):
    for name, command in group.commands.items():
        full = f"{prefix}{name}"
        if hasattr(command, "commands"):  # a group of subcommands
            yield from _commands(command, full + " ")
        else:
            yield full, command


def test_every_command_has_help_and_is_in_the_readme():
    commands = dict(_commands(typer.main.get_command(app)))
    assert {"ingest", "search", "stats", "models fetch", "collections create"} <= commands.keys()
    for name, command in commands.items():
        assert (command.help or "").strip(), f"'{name}' has no help text"
        assert f"facesearch {name}" in README, f"'facesearch {name}' is not in README.md"


def test_every_setting_is_in_the_readme():
    names = [
        f"FACESEARCH_{n.upper()}"
        for n in Settings.model_fields
        if n not in ("detect", "decode", "api", "index", "governance", "crypto", "ray")
    ]
    names += [f"FACESEARCH_DETECT__{n.upper()}" for n in DetectSettings.model_fields]
    names += [f"FACESEARCH_DECODE__{n.upper()}" for n in DecodeSettings.model_fields]
    names += [f"FACESEARCH_API__{n.upper()}" for n in ApiSettings.model_fields]
    names += [f"FACESEARCH_INDEX__{n.upper()}" for n in IndexSettings.model_fields]
    names += [f"FACESEARCH_GOVERNANCE__{n.upper()}" for n in GovernanceSettings.model_fields]
    names += [f"FACESEARCH_CRYPTO__{n.upper()}" for n in CryptoSettings.model_fields]
    names += [f"FACESEARCH_RAY__{n.upper()}" for n in RaySettings.model_fields]
    for name in names:
        assert name in README, f"{name} is not documented in README.md"
