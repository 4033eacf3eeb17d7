"use strict";
// The People page (a grid of persons) and a person's page (appearances by date,
// rename, merge, split, not this person, hide, undo), all through /api/people.
(() => {
  const { api, el, toast, date, when } = FS;

  const grid = document.getElementById("people");
  if (grid) {
    const hidden = document.getElementById("show-hidden");
    async function loadGrid() {
      let persons;
      try {
        persons = await api("GET", "/api/people?hidden=" + (hidden.checked ? "true" : "false"));
      } catch (error) {
        grid.replaceChildren(el("p", { class: "error", text: error.message }));
        return;
      }
      if (!persons.length) {
        grid.replaceChildren(el("p", { class: "empty", text:
          "No persons yet: faces are grouped as photos are ingested (two photos of someone make a person)." }));
        return;
      }
      grid.replaceChildren(...persons.map((p) => el("a", {
        class: "person-card" + (p.hidden ? " hidden-person" : ""), href: `/people/${p.id}`,
        dataset: { person: String(p.id) },
      },
        p.thumbnail_url ? el("img", { src: p.thumbnail_url, alt: "", loading: "lazy", width: 96, height: 96 }) : null,
        el("span", { class: "name", text: p.name || `person ${p.id}` }),
        el("span", { class: "count", text: `${p.faces} ${p.faces === 1 ? "photo" : "photos"}` }),
      )));
    }
    hidden.addEventListener("change", loadGrid);
    loadGrid();
  }

  const root = document.getElementById("person");
  if (!root) return;
  const id = root.dataset.person;
  const canChange = root.dataset.canChange === "yes";
  const list = document.getElementById("appearances");
  const history = document.getElementById("operations");
  const selected = new Set();
  let person = null;

  function buttons() {
    for (const name of ["split", "not-this"]) {
      const button = document.getElementById(name);
      if (button) button.disabled = selected.size === 0;
    }
  }

  async function act(method, url, body, message) {
    try {
      const done = await api(method, url, body);
      toast(message(done));
      if (done && done.person && String(done.person.id) !== id && !done.person.merged_into) {
        // A split made a new person: stay here, the new one is in the history.
      }
      selected.clear();
      await load();
      return done;
    } catch (error) {
      toast(error.message, "error");
      return null;
    }
  }

  async function load() {
    try {
      person = await api("GET", `/api/people/${id}`);
    } catch (error) {
      list.replaceChildren(el("p", { class: "error", text: error.message }));
      return;
    }
    document.getElementById("person-name").textContent = person.name || `person ${person.id}`;
    document.getElementById("person-count").textContent =
      person.merged_into ? `merged into person ${person.merged_into}` : `${person.faces} photos`;
    const rename = document.getElementById("rename");
    if (rename) rename.elements.name.value = person.name || "";
    const hide = document.getElementById("hide");
    if (hide) hide.textContent = person.hidden ? "Show again" : "Hide";
    let lastDay = null;
    const items = [];
    for (const a of person.appearances) {
      const day = date(a.captured_at || a.added_at);
      if (day !== lastDay) {
        items.push(el("h3", { class: "day", text: day }));
        lastDay = day;
      }
      const box = el("input", { type: "checkbox", value: String(a.face_id), hidden: !canChange,
        "aria-label": `select face ${a.face_id}`,
        onchange: (e) => { e.target.checked ? selected.add(a.face_id) : selected.delete(a.face_id); buttons(); } });
      items.push(el("label", { class: "appearance", dataset: { face: String(a.face_id) } },
        box,
        el("img", { src: a.thumbnail_url, alt: "", loading: "lazy", width: 96, height: 96 }),
        el("span", { class: "source", text: a.source_url || a.filename }),
        el("span", { class: "muted", text: `${a.collection}${a.pinned ? " · confirmed" : ""}` }),
      ));
    }
    list.replaceChildren(...(items.length ? items : [el("p", { class: "empty", text: "No photos." })]));
    history.replaceChildren(...person.operations.map((op) => el("li", { dataset: { operation: String(op.id) } },
      el("span", { text: `${op.kind.replaceAll("_", " ")} by ${op.actor}, ${when(op.at)}` }),
      op.undone_at ? el("span", { class: "muted", text: ` — undone by ${op.undone_by}` })
        : canChange ? el("button", { class: "link undo", type: "button", text: "Undo",
            onclick: () => act("POST", `/api/people/operations/${op.id}/undo`, undefined,
              (d) => `undid the ${d.kind.replaceAll("_", " ")}`) }) : null,
    )));
    buttons();
  }

  if (canChange) {
    document.getElementById("rename").addEventListener("submit", (e) => {
      e.preventDefault();
      act("PATCH", `/api/people/${id}`, { name: e.target.elements.name.value, version: person.version },
        (d) => d.person.name ? `named ${d.person.name}` : "name cleared");
    });
    document.getElementById("merge").addEventListener("submit", async (e) => {
      e.preventDefault();
      const into = Number(e.target.elements.into.value);
      const done = await act("POST", `/api/people/${id}/merge`, { into, version: person.version },
        (d) => `merged into person ${d.person.id}`);
      if (done) e.target.reset();
    });
    document.getElementById("split").addEventListener("click", () =>
      act("POST", `/api/people/${id}/split`, { face_ids: [...selected], version: person.version },
        (d) => `split into person ${d.person.id}`));
    document.getElementById("not-this").addEventListener("click", () =>
      act("POST", `/api/people/${id}/not-this`, { face_ids: [...selected], version: person.version },
        () => "removed from this person"));
    document.getElementById("hide").addEventListener("click", () =>
      act("PATCH", `/api/people/${id}`, { hidden: !person.hidden, version: person.version },
        (d) => d.person.hidden ? "hidden" : "shown again"));
  }
  load();
})();
