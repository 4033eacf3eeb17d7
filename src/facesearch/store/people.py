"""Persons of an organisation: who each face belongs to, human decisions, undo.

A person belongs to one organisation and one recogniser (embeddings of two
models are not comparable). Clustering (people/) proposes; people decide:
- a face a person put somewhere (split, merge, name) is `pinned` there, and
  reclustering keeps it there;
- "not this person" is a refusal that no clustering overrides;
- every human operation is a row of `person_operations` with what undoes it.
A person's name is personal data: sealed with the organisation's people key.
Every read and write takes the organisation: another organisation's person is
"not found", never "forbidden" (that would say it exists).
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ..clock import now
from ..errors import Conflict, FacesearchError, NotFound
from .catalog import Catalog

NAME_LIMIT = 100
ORG_FACES = (
    "faces f JOIN collections c ON c.id = f.collection_id "
    "WHERE c.organisation_id = ? AND f.model = ? AND f.model_version = ?"
)


@dataclass(frozen=True)
class Person:
    id: int
    organisation_id: int
    name: str | None
    hidden: bool
    faces: int
    cover_face_id: int | None
    model: str
    model_version: str
    version: int
    merged_into: int | None
    created_by: str
    created_at: str
    updated_at: str

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "hidden": self.hidden,
            "faces": self.faces,
            "cover_face_id": self.cover_face_id,
            "model": self.model,
            "model_version": self.model_version,
            "version": self.version,
            "merged_into": self.merged_into,
            "created_by": self.created_by,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass
class ClusterInput:
    """An organisation's faces of one model, in id order, with where they stand."""

    ids: np.ndarray
    vectors: np.ndarray
    images: np.ndarray  # cannot-link key: the photo, or the moment of a video
    quality: np.ndarray
    person: np.ndarray  # -1: no person
    pinned: np.ndarray  # bool
    tracks: np.ndarray  # the face's video track, -1 for none (faces of a track: one person)


def check_name(name: str) -> str | None:
    """The name as stored (trimmed; None clears it), or a clear error."""
    name = unicodedata.normalize("NFC", name).strip()
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in name):
        raise FacesearchError("a name must not contain control characters")
    if len(name) > NAME_LIMIT:
        raise FacesearchError(f"a name is at most {NAME_LIMIT} characters (this one: {len(name)})")
    return name or None


class PeopleStore:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.conn = catalog.conn

    # names, sealed

    def _key(self, organisation_id: int) -> bytes:
        return self.catalog.data_key(None, f"people:{organisation_id}")

    def _seal_name(self, organisation_id: int, person_id: int, name: str | None) -> bytes | None:
        if name is None:
            return None
        context = f"person-name:{organisation_id}:{person_id}".encode()
        return self.catalog.sealer.seal(self._key(organisation_id), name.encode(), context)

    def _open_name(self, organisation_id: int, person_id: int, sealed: bytes | None) -> str | None:
        if sealed is None:
            return None
        context = f"person-name:{organisation_id}:{person_id}".encode()
        return self.catalog.sealer.open(self._key(organisation_id), bytes(sealed), context).decode()

    # reading

    _PERSON = (
        "SELECT p.id, p.organisation_id, p.name_sealed, p.hidden, "
        "(SELECT COUNT(*) FROM person_faces pf WHERE pf.person_id = p.id) AS faces, "
        "(SELECT pf.face_id FROM person_faces pf JOIN faces f ON f.id = pf.face_id "
        " WHERE pf.person_id = p.id ORDER BY f.quality DESC, f.id LIMIT 1) AS cover, "
        "p.model, p.model_version, p.version, p.merged_into, p.created_by, p.created_at, "
        "p.updated_at FROM persons p"
    )

    def _person(self, row) -> Person:
        return Person(
            row[0],
            row[1],
            self._open_name(row[1], row[0], row[2]),
            bool(row[3]),
            row[4],
            row[5],
            row[6],
            row[7],
            row[8],
            row[9],
            row[10],
            row[11],
            row[12],
        )

    def person(self, organisation_id: int, person_id: int) -> Person:
        row = self.conn.execute(
            f"{self._PERSON} WHERE p.id = ? AND p.organisation_id = ?",
            (int(person_id), int(organisation_id)),
        ).fetchone()
        if row is None:
            raise NotFound(f"no person with id {person_id}")
        return self._person(row)

    def persons(
        self,
        organisation_id: int,
        include_hidden: bool = False,
        limit: int = 200,
        offset: int = 0,
    ) -> list[Person]:
        """Persons with at least one face, most faces first (merged-away ones are not)."""
        rows = self.conn.execute(
            f"SELECT * FROM ({self._PERSON} WHERE p.organisation_id = ? AND p.merged_into IS NULL "
            "AND (? = 1 OR p.hidden = 0)) AS q WHERE faces > 0 ORDER BY faces DESC, id "
            "LIMIT ? OFFSET ?",
            (int(organisation_id), int(include_hidden), int(limit), int(offset)),
        ).fetchall()
        return [self._person(r) for r in rows]

    def count(self, organisation_id: int) -> int:
        return self.conn.execute(
            "SELECT COUNT(*) FROM persons p WHERE p.organisation_id = ? AND p.merged_into IS NULL "
            "AND EXISTS (SELECT 1 FROM person_faces pf WHERE pf.person_id = p.id)",
            (int(organisation_id),),
        ).fetchone()[0]

    def appearances(self, organisation_id: int, person_id: int) -> list[dict]:
        """The person's faces with their image, oldest capture (or addition) first."""
        self.person(organisation_id, person_id)
        rows = self.conn.execute(
            "SELECT f.id AS face_id, f.image_id, c.name AS collection, i.path, i.source_url, "
            "i.captured_at, i.added_at, f.quality, f.x, f.y, f.w, f.h, pf.pinned "
            "FROM person_faces pf JOIN faces f ON f.id = pf.face_id "
            "JOIN images i ON i.id = f.image_id JOIN collections c ON c.id = f.collection_id "
            "WHERE pf.person_id = ? ORDER BY COALESCE(i.captured_at, i.added_at), f.id",
            (int(person_id),),
        ).fetchall()
        return [dict(r) | {"pinned": bool(r["pinned"])} for r in rows]

    def face_ids(self, person_id: int) -> list[int]:
        return [
            r[0]
            for r in self.conn.execute(
                "SELECT face_id FROM person_faces WHERE person_id = ? ORDER BY face_id",
                (int(person_id),),
            )
        ]

    def persons_of_faces(
        self, organisation_id: int | None, face_ids: Iterable[int]
    ) -> dict[int, dict]:
        """face id → {"id", "name", "hidden", "faces"} of its person, for faces that have
        one (in `organisation_id` only, where it is given)."""
        ids = sorted({int(i) for i in face_ids})
        found: dict[int, dict] = {}
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            rows = self.conn.execute(
                "SELECT pf.face_id, p.id, p.organisation_id, p.name_sealed, p.hidden, "
                "(SELECT COUNT(*) FROM person_faces o WHERE o.person_id = p.id) "
                "FROM person_faces pf JOIN persons p ON p.id = pf.person_id "
                "WHERE (? IS NULL OR p.organisation_id = ?) AND "
                f"pf.face_id IN ({','.join('?' * len(part))})",
                [organisation_id, organisation_id, *part],
            ).fetchall()
            for r in rows:
                found[r[0]] = {
                    "id": r[1],
                    "name": self._open_name(r[2], r[1], r[3]),
                    "hidden": bool(r[4]),
                    "faces": r[5],
                }
        return found

    def organisation_named(self, name: str) -> int:
        row = self.conn.execute("SELECT id FROM organisations WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFound(f"no organisation named {name!r}")
        return int(row[0])

    def organisation_of_person(self, person_id: int) -> int | None:
        row = self.conn.execute(
            "SELECT organisation_id FROM persons WHERE id = ?", (int(person_id),)
        ).fetchone()
        return None if row is None else int(row[0])

    def organisation_of_face(self, face_id: int) -> int | None:
        row = self.conn.execute(
            "SELECT c.organisation_id FROM faces f JOIN collections c ON c.id = f.collection_id "
            "WHERE f.id = ?",
            (int(face_id),),
        ).fetchone()
        return None if row is None else row[0]

    # clustering support

    _CLUSTER_COLUMNS = (
        "SELECT f.id, f.image_id, f.quality, f.embedding, f.collection_id, pf.person_id, "
        "pf.pinned, f.track_id, f.time_ms FROM faces f "
        "JOIN collections c ON c.id = f.collection_id "
        "LEFT JOIN person_faces pf ON pf.face_id = f.id "
        "WHERE c.organisation_id = ? AND f.model = ? AND f.model_version = ? "
    )

    def cluster_input(
        self,
        organisation_id: int,
        model: str,
        version: str,
        upto: int | None = None,
        load_vectors: bool = True,
        after: int = 0,
    ) -> ClusterInput:
        rows = self.conn.execute(
            self._CLUSTER_COLUMNS + "AND f.id > ? AND (? IS NULL OR f.id <= ?) ORDER BY f.id",
            (int(organisation_id), model, version, int(after), upto, upto),
        ).fetchall()
        return self._cluster_input(rows, load_vectors)

    def cluster_input_after(
        self, organisation_id: int, model: str, version: str, after: int
    ) -> ClusterInput:
        """The organisation's faces of this model with ids above `after` (an ingest step's
        new faces): found from the ids' own range, so the cost follows the new faces."""
        ids = [r[0] for r in self.conn.execute(
            "SELECT id FROM faces WHERE id > ? ORDER BY id", (int(after),))]  # fmt: skip
        return self.cluster_input_of(organisation_id, model, version, ids)

    def cluster_input_of(
        self, organisation_id: int, model: str, version: str, face_ids: Iterable[int]
    ) -> ClusterInput:
        """The same for these faces only (those deleted meanwhile are left out), by id."""
        ids = sorted({int(i) for i in face_ids})
        rows = []
        wanted = (int(organisation_id), model, version)
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            # By id alone, the rest checked here: with the model's terms in the query
            # SQLite walks every face of the model instead.
            rows += [r[:9] for r in self.conn.execute(
                "SELECT f.id, f.image_id, f.quality, f.embedding, f.collection_id, pf.person_id, "
                "pf.pinned, f.track_id, f.time_ms, c.organisation_id, f.model, f.model_version "
                "FROM faces f JOIN collections c ON c.id = f.collection_id "
                "LEFT JOIN person_faces pf ON pf.face_id = f.id "
                f"WHERE f.id IN ({','.join('?' * len(part))}) ORDER BY f.id", part,
            ) if tuple(r[9:]) == wanted]  # fmt: skip
        return self._cluster_input(rows, True)

    def _cluster_input(self, rows: list, load_vectors: bool) -> ClusterInput:
        n = len(rows)
        if load_vectors and n:
            plain = b"".join(self.catalog._open(r[3], "embedding", r[4]) for r in rows)
            vectors = np.frombuffer(plain, "<f4").reshape(n, -1).astype(np.float32)
        else:
            vectors = np.zeros((n, 0), np.float32)
        return ClusterInput(
            np.array([r[0] for r in rows], np.int64),
            vectors,
            # Faces that cannot be one person share a key: those of one photo, or of one
            # moment of one video (a video's faces at different moments may be one person).
            np.array(
                [r[1] if r[8] is None else -(r[1] * 100_000_000 + r[8]) - 1 for r in rows], np.int64
            ),
            np.array([r[2] for r in rows], np.float32),
            np.array([-1 if r[5] is None else r[5] for r in rows], np.int64),
            np.array([bool(r[6]) for r in rows], bool),
            np.array([-1 if r[7] is None else r[7] for r in rows], np.int64),
        )

    def members_of_persons_of(self, organisation_id: int, face_ids: Iterable[int]) -> np.ndarray:
        """Every face of the organisation's persons that any of `face_ids` belongs to."""
        ids = sorted({int(i) for i in face_ids})
        found: set[int] = set()
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            found.update(r[0] for r in self.conn.execute(
                # Each person once, however many of its faces are asked for; CROSS JOIN
                # keeps SQLite from walking all of the organisation's persons.
                "SELECT face_id FROM person_faces WHERE person_id IN (SELECT DISTINCT "
                "pf.person_id FROM person_faces pf CROSS JOIN persons p WHERE "
                "p.id = pf.person_id AND p.organisation_id = ? "
                f"AND pf.face_id IN ({','.join('?' * len(part))}))",
                (int(organisation_id), *part),
            ))  # fmt: skip
        return np.array(sorted(found), np.int64)

    def assignments(self, organisation_id: int, model: str, version: str) -> dict[int, int]:
        """face id → person id for the organisation's faces of this model."""
        rows = self.conn.execute(
            "SELECT pf.face_id, pf.person_id FROM person_faces pf JOIN persons p "
            "ON p.id = pf.person_id WHERE p.organisation_id = ? AND p.model = ? "
            "AND p.model_version = ?",
            (int(organisation_id), model, version),
        )
        return {r[0]: r[1] for r in rows}

    def assignments_of(
        self, organisation_id: int, model: str, version: str, face_ids: Iterable[int]
    ) -> dict[int, int]:
        """face id → person id for these of the organisation's faces that have one."""
        ids = sorted({int(i) for i in face_ids})
        found: dict[int, int] = {}
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            found.update((r[0], r[1]) for r in self.conn.execute(
                "SELECT pf.face_id, pf.person_id FROM person_faces pf CROSS JOIN persons p "
                "WHERE p.id = pf.person_id AND p.organisation_id = ? AND p.model = ? "
                f"AND p.model_version = ? AND pf.face_id IN ({','.join('?' * len(part))})",
                (int(organisation_id), model, version, *part),
            ))  # fmt: skip
        return found

    def refusals(self, organisation_id: int) -> set[tuple[int, int]]:
        """(face id, person id) pairs a person said are not the same."""
        rows = self.conn.execute(
            "SELECT r.face_id, r.person_id FROM person_refusals r JOIN persons p "
            "ON p.id = r.person_id WHERE p.organisation_id = ?",
            (int(organisation_id),),
        )
        return {(r[0], r[1]) for r in rows}

    def clustered_upto(self, organisation_id: int, model: str, version: str) -> int:
        row = self.conn.execute(
            "SELECT clustered_upto FROM people_marks WHERE organisation_id = ? AND model = ? "
            "AND model_version = ?",
            (int(organisation_id), model, version),
        ).fetchone()
        return 0 if row is None else int(row[0])

    def _set_mark(self, organisation_id: int, model: str, version: str, upto: int) -> None:
        self.conn.execute(
            "INSERT INTO people_marks (organisation_id, model, model_version, clustered_upto) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (organisation_id, model, model_version) "
            "DO UPDATE SET clustered_upto = excluded.clustered_upto",
            (int(organisation_id), model, version, int(upto)),
        )

    def _new_person(self, organisation_id: int, model: str, version: str, actor: str) -> int:
        stamp = now()
        row = self.conn.execute(
            "INSERT INTO persons (organisation_id, model, model_version, created_by, created_at, "
            "updated_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
            (int(organisation_id), model, version, actor, stamp, stamp),
        ).fetchone()
        return int(row[0])

    def apply_clustering(
        self,
        organisation_id: int,
        model: str,
        version: str,
        upto: int,
        joins: dict[int, int],
        groups: Sequence[Sequence[int]],
        replace: bool = False,
    ) -> dict[str, int]:
        """In one transaction: faces join persons (`joins`: face → person id), each of
        `groups` becomes a new person, and clustering stands at face id `upto`.

        Faces with a person already are left alone unless `replace` (a recluster):
        then unpinned faces not in `joins` or `groups` lose their person, and persons
        left with no face, no name and no human decision go."""
        with self.catalog.transaction():
            if replace:
                alive, pinned = self._placed(organisation_id, None)
                persons = {
                    r[0]
                    for r in self.conn.execute(
                        "SELECT id FROM persons WHERE organisation_id = ? AND merged_into IS NULL",
                        (int(organisation_id),),
                    )
                }
            else:
                # A step reads only the faces and persons it touches: its cost follows
                # the batch, not the organisation's archive.
                involved = set(map(int, joins)) | {int(f) for g in groups for f in g}
                alive, pinned = self._placed(organisation_id, involved)
                persons = self._live_persons(organisation_id, set(map(int, joins.values())))
            moved = created = 0
            wanted: dict[int, int] = {}
            for face, person in joins.items():
                if person in persons and face not in pinned:
                    wanted[int(face)] = int(person)
            for group in groups:
                free = [
                    int(f)
                    for f in group
                    if int(f) not in pinned and (replace or int(f) not in alive)
                ]
                if not free:
                    continue
                person = self._new_person(organisation_id, model, version, "clustering")
                created += 1
                for face in free:
                    wanted[face] = person
            if replace:
                gone = [f for f in alive if f not in pinned and f not in wanted]
                for start in range(0, len(gone), 500):
                    part = gone[start : start + 500]
                    self.conn.execute(
                        f"DELETE FROM person_faces WHERE face_id IN ({','.join('?' * len(part))})",
                        part,
                    )
            rows = [
                (f, p)
                for f, p in wanted.items()
                if alive.get(f) != p and (replace or f not in alive)
            ]
            for start in range(0, len(rows), 500):
                part = rows[start : start + 500]
                self.conn.execute(
                    "INSERT INTO person_faces (face_id, person_id, pinned) VALUES "
                    + ", ".join(["(?, ?, 0)"] * len(part))
                    + " ON CONFLICT (face_id) DO UPDATE SET person_id = excluded.person_id",
                    [v for row in part for v in row],
                )
                moved += len(part)
            self._set_mark(organisation_id, model, version, upto)
            # Only a recluster takes faces from persons; orphans of deletions go with
            # remove_orphans, which every deletion calls.
            removed = self._remove_orphans(organisation_id, keep_decided=True) if replace else 0
        return {"assigned": moved, "created": created, "removed": removed}

    def _placed(
        self, organisation_id: int, face_ids: set[int] | None
    ) -> tuple[dict[int, int], set[int]]:
        """(face → person, pinned faces) of the organisation: all, or of these faces."""
        sql = (
            "SELECT pf.face_id, pf.person_id, pf.pinned FROM person_faces pf CROSS JOIN "
            "persons p WHERE p.id = pf.person_id AND p.organisation_id = ?"
        )
        if face_ids is None:
            rows = self.conn.execute(sql, (int(organisation_id),)).fetchall()
        else:
            ids, rows = sorted(face_ids), []
            for start in range(0, len(ids), 500):
                part = ids[start : start + 500]
                rows += self.conn.execute(
                    sql + f" AND pf.face_id IN ({','.join('?' * len(part))})",
                    (int(organisation_id), *part),
                ).fetchall()
        return {r[0]: r[1] for r in rows}, {r[0] for r in rows if r[2]}

    def _live_persons(self, organisation_id: int, person_ids: set[int]) -> set[int]:
        ids, found = sorted(person_ids), set()
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            found.update(r[0] for r in self.conn.execute(
                "SELECT id FROM persons WHERE organisation_id = ? AND merged_into IS NULL "
                f"AND id IN ({','.join('?' * len(part))})", (int(organisation_id), *part),
            ))  # fmt: skip
        return found

    def _remove_orphans(self, organisation_id: int | None, keep_decided: bool = False) -> int:
        """Persons with no face left. `keep_decided` keeps those a person named or
        acted on (an undo may bring their faces back)."""
        decided = (
            (
                " AND p.name_sealed IS NULL AND NOT EXISTS (SELECT 1 FROM person_operations o "
                "WHERE o.organisation_id = p.organisation_id AND o.undone_at IS NULL AND "
                "o.persons LIKE '%[' || p.id || ']%')"
            )
            if keep_decided
            else ""
        )
        rows = self.conn.execute(
            "SELECT p.id FROM persons p WHERE (? IS NULL OR p.organisation_id = ?) AND NOT EXISTS "
            f"(SELECT 1 FROM person_faces pf WHERE pf.person_id = p.id){decided}",
            (organisation_id, organisation_id),
        ).fetchall()
        ids = [r[0] for r in rows]
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            marks = ",".join("?" * len(part))
            self.conn.execute(
                f"UPDATE persons SET merged_into = NULL WHERE merged_into IN ({marks})", part
            )
            self.conn.execute(f"DELETE FROM persons WHERE id IN ({marks})", part)
        return len(ids)

    def remove_orphans(self, organisation_id: int | None = None) -> int:
        """After faces were deleted (erasure, retention, a collection): persons left
        with no face go, names and all (the undo log of such persons goes too)."""
        with self.catalog.transaction():
            removed = self._remove_orphans(organisation_id)
            self.conn.execute(
                "DELETE FROM person_operations WHERE undone_at IS NULL AND NOT EXISTS "
                "(SELECT 1 FROM persons p WHERE person_operations.persons LIKE "
                "'%[' || p.id || ']%')"
            )
        return removed

    # human operations

    def _locked(self, organisation_id: int, person_id: int, expected: int | None) -> Person:
        person = self.person(organisation_id, person_id)
        if person.merged_into is not None:
            raise Conflict(f"person {person_id} was merged into person {person.merged_into}")
        if expected is not None and person.version != expected:
            raise Conflict(
                f"person {person_id} changed meanwhile (version {person.version}, not "
                f"{expected}); reload it and try again"
            )
        return person

    def _bump(self, person_ids: Iterable[int]) -> None:
        for pid in set(person_ids):
            self.conn.execute(
                "UPDATE persons SET version = version + 1, updated_at = ? WHERE id = ?",
                (now(), int(pid)),
            )

    def _log(
        self, organisation_id: int, actor: str, kind: str, persons: Iterable[int], undo: dict
    ) -> int:
        tags = "".join(f"[{int(p)}]" for p in sorted(set(persons)))
        row = self.conn.execute(
            "INSERT INTO person_operations (organisation_id, actor, kind, persons, undo, at) "
            "VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
            (int(organisation_id), actor, kind, tags, json.dumps(undo), now()),
        ).fetchone()
        return int(row[0])

    def _pin(self, person_id: int) -> list[int]:
        """Pin the person's faces; the ids that were not pinned before."""
        ids = [
            r[0]
            for r in self.conn.execute(
                "SELECT face_id FROM person_faces WHERE person_id = ? AND pinned = 0",
                (int(person_id),),
            )
        ]
        self.conn.execute(
            "UPDATE person_faces SET pinned = 1 WHERE person_id = ?", (int(person_id),)
        )
        return ids

    def rename(
        self,
        organisation_id: int,
        person_id: int,
        name: str,
        actor: str,
        expected: int | None = None,
    ) -> tuple[Person, int]:
        clean = check_name(name)
        with self.catalog.transaction():
            person = self._locked(organisation_id, person_id, expected)
            before = self.conn.execute(
                "SELECT name_sealed FROM persons WHERE id = ?", (person.id,)
            ).fetchone()[0]
            self.conn.execute(
                "UPDATE persons SET name_sealed = ? WHERE id = ?",
                (self._seal_name(organisation_id, person.id, clean), person.id),
            )
            pinned = self._pin(person.id)
            self._bump([person.id])
            op = self._log(
                organisation_id,
                actor,
                "name",
                [person.id],
                {
                    "person": person.id,
                    "name_sealed": None if before is None else bytes(before).hex(),
                    "pinned": pinned,
                },
            )
        return self.person(organisation_id, person_id), op

    def hide(
        self,
        organisation_id: int,
        person_id: int,
        hidden: bool,
        actor: str,
        expected: int | None = None,
    ) -> tuple[Person, int]:
        with self.catalog.transaction():
            person = self._locked(organisation_id, person_id, expected)
            self.conn.execute(
                "UPDATE persons SET hidden = ? WHERE id = ?", (int(hidden), person.id)
            )
            self._bump([person.id])
            op = self._log(
                organisation_id,
                actor,
                "hide" if hidden else "show",
                [person.id],
                {"person": person.id, "hidden": person.hidden},
            )
        return self.person(organisation_id, person_id), op

    def merge(
        self,
        organisation_id: int,
        source_id: int,
        target_id: int,
        actor: str,
        expected: int | None = None,
    ) -> tuple[Person, int]:
        """All of `source`'s faces become `target`'s; `source` is kept, empty, for undo."""
        if int(source_id) == int(target_id):
            raise FacesearchError("a person cannot be merged with itself")
        with self.catalog.transaction():
            source = self._locked(organisation_id, source_id, expected)
            target = self._locked(organisation_id, target_id, None)
            if (source.model, source.model_version) != (target.model, target.model_version):
                raise Conflict("persons of two recognisers cannot be merged")
            clash = self.conn.execute(
                "SELECT COUNT(*) FROM person_faces a JOIN faces fa ON fa.id = a.face_id "
                "JOIN faces fb ON fb.image_id = fa.image_id "
                "AND COALESCE(fb.time_ms, -1) = COALESCE(fa.time_ms, -1) JOIN person_faces b "
                "ON b.face_id = fb.id WHERE a.person_id = ? AND b.person_id = ?",
                (source.id, target.id),
            ).fetchone()[0]
            if clash:
                raise Conflict(
                    f"persons {source.id} and {target.id} both have a face in one photo "
                    "(two faces of one photo are two people); split those faces out first"
                )
            faces = self.face_ids(source.id)
            pinned_before = [
                f
                for f, p in self.conn.execute(
                    "SELECT face_id, pinned FROM person_faces WHERE person_id = ?", (target.id,)
                )
                if not p
            ]
            source_pins = [
                f
                for f, p in self.conn.execute(
                    "SELECT face_id, pinned FROM person_faces WHERE person_id = ?", (source.id,)
                )
                if not p
            ]
            self.conn.execute(
                "UPDATE person_faces SET person_id = ?, pinned = 1 WHERE person_id = ?",
                (target.id, source.id),
            )
            self.conn.execute(
                "UPDATE person_faces SET pinned = 1 WHERE person_id = ?", (target.id,)
            )
            self.conn.execute(
                "UPDATE person_refusals SET person_id = ? WHERE person_id = ? AND face_id NOT IN "
                "(SELECT face_id FROM person_refusals WHERE person_id = ?)",
                (target.id, source.id, target.id),
            )
            self.conn.execute(
                "UPDATE persons SET merged_into = ? WHERE id = ?", (target.id, source.id)
            )
            name_adopted = False
            if target.name is None and source.name is not None:
                self.conn.execute(
                    "UPDATE persons SET name_sealed = ? WHERE id = ?",
                    (self._seal_name(organisation_id, target.id, source.name), target.id),
                )
                name_adopted = True
            self._bump([source.id, target.id])
            op = self._log(
                organisation_id,
                actor,
                "merge",
                [source.id, target.id],
                {
                    "source": source.id,
                    "target": target.id,
                    "faces": faces,
                    "unpinned_source": source_pins,
                    "unpinned_target": pinned_before,
                    "name_adopted": name_adopted,
                },
            )
        return self.person(organisation_id, target.id), op

    def split(
        self,
        organisation_id: int,
        person_id: int,
        face_ids: Sequence[int],
        actor: str,
        into: int | None = None,
        expected: int | None = None,
    ) -> tuple[Person, int]:
        """Move `face_ids` from the person to `into` (another person) or a new person."""
        wanted = sorted({int(f) for f in face_ids})
        if not wanted:
            raise FacesearchError("name at least one face to split out")
        if into is not None and int(into) == int(person_id):
            raise FacesearchError("faces cannot be split into the person they belong to")
        with self.catalog.transaction():
            person = self._locked(organisation_id, person_id, expected)
            have = set(self.face_ids(person.id))
            foreign = [f for f in wanted if f not in have]
            if foreign:
                raise FacesearchError(
                    f"face{'s' if len(foreign) > 1 else ''} {', '.join(map(str, foreign))} "
                    f"{'are' if len(foreign) > 1 else 'is'} not person {person.id}'s"
                )
            created = into is None
            if into is None:
                target = self._new_person(
                    organisation_id, person.model, person.model_version, actor
                )
            else:
                other = self._locked(organisation_id, into, None)
                if (other.model, other.model_version) != (person.model, person.model_version):
                    raise Conflict("persons of two recognisers cannot share faces")
                target = other.id
                marks = ",".join("?" * len(wanted))
                clash = self.conn.execute(
                    "SELECT COUNT(*) FROM faces fa JOIN faces fb ON fb.image_id = fa.image_id "
                    "AND COALESCE(fb.time_ms, -1) = COALESCE(fa.time_ms, -1) "
                    f"JOIN person_faces b ON b.face_id = fb.id WHERE fa.id IN ({marks}) "
                    f"AND b.person_id = ?",
                    [*wanted, target],
                ).fetchone()[0]
                if clash:
                    raise Conflict(f"person {target} already has a face in one of those photos")
            pins = {
                f: p
                for f, p in self.conn.execute(
                    "SELECT face_id, pinned FROM person_faces WHERE person_id = ?", (person.id,)
                )
            }
            marks = ",".join("?" * len(wanted))
            self.conn.execute(
                f"UPDATE person_faces SET person_id = ?, pinned = 1 WHERE face_id IN ({marks})",
                [target, *wanted],
            )
            # The faces left behind were confirmed by the person too: not those.
            self.conn.execute(
                "UPDATE person_faces SET pinned = 1 WHERE person_id = ?", (person.id,)
            )
            self._bump([person.id, target])
            op = self._log(
                organisation_id,
                actor,
                "split",
                [person.id, target],
                {
                    "source": person.id,
                    "target": target,
                    "created": created,
                    "faces": wanted,
                    "unpinned": [f for f, p in pins.items() if not p],
                },
            )
        return self.person(organisation_id, target), op

    def reject(
        self,
        organisation_id: int,
        person_id: int,
        face_ids: Sequence[int],
        actor: str,
        expected: int | None = None,
    ) -> tuple[Person, int]:
        """ "Not this person": the faces leave the person and never join it again."""
        wanted = sorted({int(f) for f in face_ids})
        if not wanted:
            raise FacesearchError("name at least one face that is not this person")
        with self.catalog.transaction():
            person = self._locked(organisation_id, person_id, expected)
            have = {
                f: p
                for f, p in self.conn.execute(
                    "SELECT face_id, pinned FROM person_faces WHERE person_id = ?", (person.id,)
                )
            }
            foreign = [f for f in wanted if f not in have]
            if foreign:
                raise FacesearchError(
                    f"face{'s' if len(foreign) > 1 else ''} {', '.join(map(str, foreign))} "
                    f"{'are' if len(foreign) > 1 else 'is'} not person {person.id}'s"
                )
            marks = ",".join("?" * len(wanted))
            self.conn.execute(f"DELETE FROM person_faces WHERE face_id IN ({marks})", wanted)
            op = self._log(
                organisation_id,
                actor,
                "not_this_person",
                [person.id],
                {"person": person.id, "faces": wanted, "pinned": [f for f in wanted if have[f]]},
            )
            self.conn.executemany(
                "INSERT INTO person_refusals (face_id, person_id, operation_id) VALUES (?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                [(f, person.id, op) for f in wanted],
            )
            self._bump([person.id])
        return self.person(organisation_id, person_id), op

    def operations(
        self, organisation_id: int, person_id: int | None = None, limit: int = 50
    ) -> list[dict]:
        rows = self.conn.execute(
            "SELECT id, actor, kind, persons, at, undone_at, undone_by FROM person_operations "
            "WHERE organisation_id = ? AND (? IS NULL OR persons LIKE ?) ORDER BY id DESC LIMIT ?",
            (int(organisation_id), person_id, f"%[{person_id}]%", int(limit)),
        ).fetchall()
        return [
            {
                "id": r[0],
                "actor": r[1],
                "kind": r[2],
                "persons": [int(p) for p in r[3].strip("[]").split("][") if p],
                "at": r[4],
                "undone_at": r[5],
                "undone_by": r[6],
            }
            for r in rows
        ]

    def undo(self, organisation_id: int, operation_id: int, actor: str) -> dict:
        """Put back what operation `operation_id` changed. Only the latest operation
        still in force on each person it touched can be undone (later ones first)."""
        with self.catalog.transaction():
            row = self.conn.execute(
                "SELECT id, kind, persons, undo, undone_at FROM person_operations "
                "WHERE id = ? AND organisation_id = ?",
                (int(operation_id), int(organisation_id)),
            ).fetchone()
            if row is None:
                raise NotFound(f"no person operation with id {operation_id}")
            if row[4] is not None:
                raise Conflict(f"operation {operation_id} was undone already")
            tags = [t for t in row[2].strip("[]").split("][") if t]
            for tag in tags:
                later = self.conn.execute(
                    "SELECT id FROM person_operations WHERE organisation_id = ? AND id > ? AND "
                    "undone_at IS NULL AND persons LIKE ? ORDER BY id DESC LIMIT 1",
                    (int(organisation_id), int(operation_id), f"%[{tag}]%"),
                ).fetchone()
                if later is not None:
                    raise Conflict(
                        f"operation {later[0]} changed person {tag} since; undo it first"
                    )
            for tag in tags:
                if not self.conn.execute(
                    "SELECT 1 FROM persons WHERE id = ?", (int(tag),)
                ).fetchone():
                    raise Conflict(f"person {tag} no longer exists (its faces were erased)")
            self._undo(row[1], json.loads(row[3]), int(operation_id))
            self._bump(int(t) for t in tags)
            self.conn.execute(
                "UPDATE person_operations SET undone_at = ?, undone_by = ? WHERE id = ?",
                (now(), actor, int(operation_id)),
            )
        return {"operation": int(operation_id), "kind": row[1], "persons": [int(t) for t in tags]}

    def _unpin(self, faces: Sequence[int]) -> None:
        for start in range(0, len(faces), 500):
            part = [int(f) for f in faces[start : start + 500]]
            self.conn.execute(
                "UPDATE person_faces SET pinned = 0 WHERE face_id IN "
                f"({','.join('?' * len(part))})",
                part,
            )

    def _undo(self, kind: str, undo: dict, operation_id: int) -> None:
        if kind == "name":
            before = undo["name_sealed"]
            self.conn.execute(
                "UPDATE persons SET name_sealed = ? WHERE id = ?",
                (None if before is None else bytes.fromhex(before), undo["person"]),
            )
            self._unpin(undo["pinned"])
        elif kind in ("hide", "show"):
            self.conn.execute(
                "UPDATE persons SET hidden = ? WHERE id = ?", (int(undo["hidden"]), undo["person"])
            )
        elif kind == "merge":
            faces = [int(f) for f in undo["faces"]]
            for start in range(0, len(faces), 500):
                part = faces[start : start + 500]
                self.conn.execute(
                    f"UPDATE person_faces SET person_id = ? WHERE person_id = ? AND face_id IN "
                    f"({','.join('?' * len(part))})",
                    [undo["source"], undo["target"], *part],
                )
            self._unpin(undo["unpinned_source"] + undo["unpinned_target"])
            self.conn.execute(
                "UPDATE persons SET merged_into = NULL WHERE id = ?", (undo["source"],)
            )
            if undo["name_adopted"]:
                self.conn.execute(
                    "UPDATE persons SET name_sealed = NULL WHERE id = ?", (undo["target"],)
                )
        elif kind == "split":
            faces = [int(f) for f in undo["faces"]]
            marks = ",".join("?" * len(faces))
            self.conn.execute(
                "UPDATE person_faces SET person_id = ? WHERE person_id = ? AND face_id IN "
                f"({marks})",
                [undo["source"], undo["target"], *faces],
            )
            self._unpin(undo["unpinned"])
            if undo["created"]:
                self.conn.execute(
                    "DELETE FROM persons WHERE id = ? AND NOT EXISTS "
                    "(SELECT 1 FROM person_faces WHERE person_id = ?)",
                    (undo["target"], undo["target"]),
                )
        elif kind == "not_this_person":
            self.conn.execute("DELETE FROM person_refusals WHERE operation_id = ?", (operation_id,))
            pinned = set(undo["pinned"])
            for face in undo["faces"]:
                exists = self.conn.execute("SELECT 1 FROM faces WHERE id = ?", (face,)).fetchone()
                if exists:
                    self.conn.execute(
                        "INSERT INTO person_faces (face_id, person_id, pinned) VALUES (?, ?, ?) "
                        "ON CONFLICT (face_id) DO UPDATE SET person_id = excluded.person_id, "
                        "pinned = excluded.pinned",
                        (int(face), undo["person"], int(face in pinned)),
                    )
        else:
            raise FacesearchError(f"operation kind {kind!r} cannot be undone")

    # governance

    def erase_person(self, organisation_id: int, person_id: int) -> list[int]:
        """The ids of the person's faces (the caller erases them); the person, its
        refusals and its operations go with `remove_orphans` once the faces are gone."""
        self.person(organisation_id, person_id)
        return self.face_ids(person_id)
