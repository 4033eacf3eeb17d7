"""People over the API: persons found at upload, operations, errors with nothing changed,
undo, search by person, and the person of each photo-search match (real photos)."""

from __future__ import annotations

from apiworld import PURPOSE


def _persons(world, who="investigator"):
    answer = world.client.get("/api/people", headers=world.as_(who))
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_persons_found_at_upload_and_shown_with_search_matches(world, wild):
    persons = _persons(world)
    # img1 and img4 and one face of the group selfie are one person.
    assert persons and persons[0]["faces"] >= 2
    detail = world.client.get(f"/api/people/{persons[0]['id']}", headers=world.as_("investigator"))
    names = {a["filename"] for a in detail.json()["appearances"]}
    assert {"img1.jpg", "img4.jpg"} <= names and "img3.jpg" not in names
    found = world.client.post(
        "/api/search", files={"photo": ("p.jpg", (wild / "img2.jpg").read_bytes())},
        data={**PURPOSE, "top": "2"}, headers=world.as_("investigator"),
    ).json()  # fmt: skip
    best = found["matches"][0]
    assert best["filename"] == "img4.jpg"
    assert best["person"]["faces"] >= 2 and best["person"]["url"].startswith("/api/people/")
    # Another organisation sees none of these persons.
    assert _persons(world, "outsider") == []
    other = world.client.get(f"/api/people/{persons[0]['id']}", headers=world.as_("outsider"))
    assert other.status_code == 404


def test_operations_refuse_bad_input_with_nothing_changed_and_undo(world):
    client, headers = world.client, world.as_("investigator")
    first = _persons(world)[0]
    face = client.get(f"/api/people/{first['id']}", headers=headers).json()["appearances"][-1]
    split = client.post(f"/api/people/{first['id']}/split", json={"face_ids": [face["face_id"]]},
                        headers=headers)  # fmt: skip
    assert split.status_code == 200, split.text
    a, b = (client.get(f"/api/people/{p}", headers=headers).json()
            for p in (first["id"], split.json()["person"]["id"]))  # fmt: skip
    before = [client.get(f"/api/people/{p['id']}", headers=headers).json() for p in (a, b)]
    refused = [
        client.post(f"/api/people/{a['id']}/merge", json={"into": a["id"]}, headers=headers),
        client.post(f"/api/people/{a['id']}/split",
                    json={"face_ids": [before[1]["appearances"][0]["face_id"]]}, headers=headers),
        client.patch(f"/api/people/{a['id']}", json={"name": "x" * 101}, headers=headers),
        client.patch(f"/api/people/{a['id']}", json={"name": "Jane\u202eRoe"}, headers=headers),
        client.patch(f"/api/people/{a['id']}", json={"name": "Jane", "version": 999},
                     headers=headers),
        client.post(f"/api/people/{a['id']}/merge", json={"into": b["id"]},
                    headers=world.as_("outsider")),
        client.patch(f"/api/people/{a['id']}", json={"name": "Jane"},
                     headers=world.as_("auditor")),
    ]  # fmt: skip
    assert [r.status_code for r in refused] == [400, 400, 400, 400, 409, 404, 403]
    assert "itself" in refused[0].json()["detail"]
    after = [client.get(f"/api/people/{p['id']}", headers=headers).json() for p in (a, b)]
    assert after == before

    named = client.patch(f"/api/people/{a['id']}", json={"name": "Jane Roe"}, headers=headers)
    assert named.status_code == 200 and named.json()["person"]["name"] == "Jane Roe"
    merged = client.post(f"/api/people/{b['id']}/merge", json={"into": a["id"]}, headers=headers)
    assert merged.status_code == 200, merged.text
    assert merged.json()["person"]["faces"] == a["faces"] + b["faces"]
    undone = client.post(f"/api/people/operations/{merged.json()['operation']}/undo",
                         headers=headers)  # fmt: skip
    assert undone.status_code == 200 and undone.json()["kind"] == "merge"
    assert client.get(f"/api/people/{b['id']}", headers=headers).json()["faces"] == b["faces"]
    again = client.post(f"/api/people/operations/{merged.json()['operation']}/undo",
                        headers=headers)  # fmt: skip
    assert again.status_code == 409

    searched = client.post(f"/api/people/{a['id']}/search", json={**PURPOSE, "top": 3},
                           headers=headers)  # fmt: skip
    assert searched.status_code == 200, searched.text
    assert searched.json()["search_id"] > 0
    assert client.post(f"/api/people/{a['id']}/search", json={"top": 3},
                       headers=headers).status_code == 400  # fmt: skip
