"""The governed action layer scopes every front door's search alike (issue 17): an
organisation's caller sees only its collections, the command line's operator every
one; each search is one audit entry naming the collections it covered."""

from __future__ import annotations

import json

import pytest

from facesearch.errors import NotFound
from facesearch.governance import actions
from facesearch.governance.audit import Who
from facesearch.governance.purpose import PurposeRequired, SearchPurpose

BOUND = SearchPurpose("missing person", "MP-17", None)


@pytest.fixture(scope="module")
def desk(world, wild):
    """Collection 'desk' of the other organisation, holding img4 (the person of img1)."""
    services = world.services
    other = services.accounts.organisation_named("other agency")
    services.engine.catalog.create_collection("desk", "test photos", "test", None, other.id)
    services.engine.ingest([wild / "img4.jpg"], "desk")
    services.engine.reload_index()
    return other.id


def _caller(world, organisation_id: int | None) -> actions.Caller:
    services = world.services
    who = Who("tester", organisation_id, "test")
    return actions.Caller(services.settings, services.engine, services.audit, who)


def _search(world, caller: actions.Caller, wild, names=None):
    result, entry = actions.search(caller, BOUND, (wild / "img1.jpg").read_bytes(), 20, None, names)
    return {h.collection for h in result.hits}, json.loads(entry.details)["collections"], entry


def test_each_caller_searches_only_what_its_organisation_holds(world, desk, wild):
    default = world.services.accounts.organisation_named("default").id
    found, recorded, _ = _search(world, _caller(world, default), wild)
    assert found == {"press"} and recorded == ["press"]

    found, recorded, _ = _search(world, _caller(world, desk), wild)
    assert found == {"desk"} and recorded == ["desk"]
    with pytest.raises(NotFound):
        _search(world, _caller(world, desk), wild, ["press"])

    # The command line's operator stands above the organisations.
    operator = actions.Caller.command_line(world.services.engine)
    found, recorded, entry = _search(world, operator, wild)
    assert found == {"desk", "press"} and recorded == ["desk", "press"]
    assert entry.actor.startswith("cli:") and entry.organisation_id is None
    found, recorded, _ = _search(world, operator, wild, ["desk"])
    assert found == {"desk"} and recorded == ["desk"]


def test_a_search_is_one_entry_and_a_refusal_is_one_entry(world, wild):
    caller = _caller(world, world.services.accounts.organisation_named("default").id)
    store = world.services.audit.store
    before = len(store.query(None, limit=1_000_000))
    _search(world, caller, wild)
    with pytest.raises(PurposeRequired):
        actions.bind_purpose(caller, None, "MP-17", None)
    after = store.query(None, limit=2)
    assert len(store.query(None, limit=1_000_000)) == before + 2
    assert [e.action for e in after] == ["search_refused", "search"]
