"""Person operations as the front doors call them: checked, done, audited, in one go.

Each operation and its audit entry commit in one transaction (the audit log
writes through the catalog's connection), so an operation that is refused leaves
nothing, and one that is done is always in the log with who did it and when.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..governance.audit import AuditLog, PersonChanged, Who
from ..store.catalog import Catalog
from ..store.people import PeopleStore, Person


class PersonActions:
    def __init__(self, catalog: Catalog, audit: AuditLog) -> None:
        self.catalog = catalog
        self.store = PeopleStore(catalog)
        self.audit = audit

    def _org(self, who: Who, organisation_id: int | None) -> int:
        org = organisation_id if organisation_id is not None else who.organisation_id
        if org is None:
            raise ValueError("a person operation needs an organisation")
        return int(org)

    def recluster(self, who: Who, run: Callable[[int], dict]) -> dict:
        """Cluster the organisation's faces again with `run(organisation_id)`, then record
        it (the run commits as it goes, resumable, so its entry follows it)."""
        result = run(self._org(who, None))
        self.audit.record(who, PersonChanged("recluster", [], None))
        return result

    def name(
        self,
        who: Who,
        person_id: int,
        name: str,
        organisation_id: int | None = None,
        expected: int | None = None,
    ) -> tuple[Person, int]:
        org = self._org(who, organisation_id)
        with self.catalog.transaction():
            person, op = self.store.rename(org, person_id, name, who.actor, expected)
            self.audit.record(who, PersonChanged("name", [person.id], op))
        return person, op

    def hide(
        self,
        who: Who,
        person_id: int,
        hidden: bool = True,
        organisation_id: int | None = None,
        expected: int | None = None,
    ) -> tuple[Person, int]:
        org = self._org(who, organisation_id)
        with self.catalog.transaction():
            person, op = self.store.hide(org, person_id, hidden, who.actor, expected)
            self.audit.record(who, PersonChanged("hide" if hidden else "show", [person.id], op))
        return person, op

    def merge(
        self,
        who: Who,
        source_id: int,
        target_id: int,
        organisation_id: int | None = None,
        expected: int | None = None,
    ) -> tuple[Person, int]:
        org = self._org(who, organisation_id)
        with self.catalog.transaction():
            person, op = self.store.merge(org, source_id, target_id, who.actor, expected)
            self.audit.record(who, PersonChanged("merge", [int(source_id), person.id], op))
        return person, op

    def split(
        self,
        who: Who,
        person_id: int,
        face_ids: Sequence[int],
        into: int | None = None,
        organisation_id: int | None = None,
        expected: int | None = None,
    ) -> tuple[Person, int]:
        org = self._org(who, organisation_id)
        with self.catalog.transaction():
            person, op = self.store.split(org, person_id, face_ids, who.actor, into, expected)
            self.audit.record(
                who,
                PersonChanged(
                    "split", [int(person_id), person.id], op, sorted({int(f) for f in face_ids})
                ),
            )
        return person, op

    def reject(
        self,
        who: Who,
        person_id: int,
        face_ids: Sequence[int],
        organisation_id: int | None = None,
        expected: int | None = None,
    ) -> tuple[Person, int]:
        org = self._org(who, organisation_id)
        with self.catalog.transaction():
            person, op = self.store.reject(org, person_id, face_ids, who.actor, expected)
            self.audit.record(
                who,
                PersonChanged(
                    "not_this_person", [person.id], op, sorted({int(f) for f in face_ids})
                ),
            )
        return person, op

    def undo(self, who: Who, operation_id: int, organisation_id: int | None = None) -> dict:
        org = self._org(who, organisation_id)
        with self.catalog.transaction():
            done = self.store.undo(org, operation_id, who.actor)
            self.audit.record(
                who, PersonChanged("undo", done["persons"], None, undone=int(operation_id))
            )
        return done
