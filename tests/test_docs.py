"""The README and docs/ together document every command, setting and route; links resolve."""

import re
from pathlib import Path

import pytest
import typer
from fastapi.routing import APIRoute
from pydantic import BaseModel

from facesearch.cli import app
from facesearch.config import Settings

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
DOCS = "\n".join(page.read_text() for page in PAGES)
README_MAX_BYTES = 15_000
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _commands(group, prefix: str = ""):
    for name, command in group.commands.items():
        full = f"{prefix}{name}"
        if hasattr(command, "commands"):  # a group of subcommands
            yield from _commands(command, full + " ")
        else:
            yield full, command


def _settings(model: type[BaseModel], prefix: str = "FACESEARCH_"):
    """Every environment variable a settings model reads, nested models by `__`."""
    for name, field in model.model_fields.items():
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            yield from _settings(kind, f"{prefix}{name.upper()}__")
        else:
            yield f"{prefix}{name.upper()}"


def _walk(routes, prefix: str = ""):
    for route in routes:
        if isinstance(route, APIRoute):
            yield prefix + route.path, route
        elif hasattr(route, "original_router"):  # an included router, as FastAPI nests them
            yield from _walk(route.original_router.routes, prefix + route.include_context.prefix)


def _generic(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path)


def _documented_routes(text: str) -> set[tuple[str, str]]:
    """(method, path) pairs as the docs write them: `GET /a`, or `GET`, `PATCH /a/{id}`."""
    found = set()
    pattern = r"((?:`?(?:GET|POST|PUT|PATCH|DELETE)`?,?\s+)+)`?(/[A-Za-z0-9_./{}-]*)"
    for methods, path in re.findall(pattern, text):
        for method in re.findall(r"GET|POST|PUT|PATCH|DELETE", methods):
            found.add((method, _generic(path.rstrip("."))))
    return found


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    anchors, fenced = set(), False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            anchors.add(_slug(line.lstrip("#")))
    return anchors


def test_every_command_has_help_and_is_documented():
    commands = dict(_commands(typer.main.get_command(app)))
    assert {"ingest", "search", "stats", "models fetch", "collections create"} <= commands.keys()
    for name, command in commands.items():
        assert (command.help or "").strip(), f"'{name}' has no help text"
        assert f"facesearch {name}" in DOCS, f"'facesearch {name}' is not in README.md or docs/"


def test_every_setting_is_documented():
    names = list(_settings(Settings))
    assert {"FACESEARCH_DATA_DIR", "FACESEARCH_API__MAX_UPLOAD_BYTES"} <= set(names)
    for name in names:
        assert name in DOCS, f"{name} is not documented in README.md or docs/"


def test_every_route_is_documented(tmp_path):
    from facesearch.api.app import create_app

    server = create_app(Settings(data_dir=tmp_path, cache_dir=tmp_path / "cache"))
    documented = _documented_routes(DOCS)
    routes = [
        (method, path)
        for path, route in _walk(server.routes)
        for method in sorted(route.methods - {"HEAD"})
    ]
    assert ("POST", "/api/search") in routes
    for method, path in routes:
        if path in ("/openapi.json", "/docs"):  # named as addresses, not endpoints
            assert f"`{path}`" in DOCS, f"{path} is not in README.md or docs/"
            continue
        assert (method, _generic(path)) in documented, f"'{method} {path}' is not documented"


def test_the_readme_stays_short():
    size = len(README.read_bytes())
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes; move detail into docs/"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path):
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        linked = (page.parent / file).resolve() if file else page
        assert linked.exists(), f"{page.name}: link to {target}, which does not exist"
        if anchor and linked.suffix == ".md":
            assert anchor in _anchors(linked), f"{page.name}: no heading for #{anchor}"
