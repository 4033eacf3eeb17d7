"use strict";
// The search page: pick or drop a photo, see its faces, click one, browse the matches.
(() => {
  const { api, el, toast, date, placeBox } = FS;
  const drop = document.getElementById("drop");
  const input = document.getElementById("photo");
  const probe = document.getElementById("probe");
  const probeFigure = document.getElementById("probe-figure");
  const probeImg = document.getElementById("probe-img");
  const hint = document.getElementById("probe-hint");
  const grid = document.getElementById("grid");
  const status = document.getElementById("status");
  const chips = document.getElementById("collections");
  const top = document.getElementById("top");
  const viewer = document.getElementById("viewer");
  const state = { file: null, url: null, result: null, collections: [], searches: 0 };

  async function loadCollections() {
    try {
      state.collections = await api("GET", "/api/collections");
    } catch (error) {
      chips.replaceChildren(el("span", { class: "error", text: error.message }));
      return;
    }
    if (!state.collections.length) {
      chips.replaceChildren(el("span", { class: "muted", text: "No collections yet." }));
      return;
    }
    chips.replaceChildren(...state.collections.map((c) =>
      el("label", { class: "chip" },
        el("input", { type: "checkbox", value: c.name, checked: true, onchange: rerun }),
        el("span", { text: c.name }), el("small", { text: ` ${c.faces}` }))));
  }

  function chosenCollections() {
    const boxes = [...chips.querySelectorAll("input[type=checkbox]")];
    const checked = boxes.filter((b) => b.checked).map((b) => b.value);
    return { checked, all: checked.length === boxes.length };
  }

  function pick(file) {
    if (!file) return;
    if (!file.type.startsWith("image/") && file.type !== "") {
      toast(`${file.name} is not an image`, "error");
      return;
    }
    if (state.url) URL.revokeObjectURL(state.url);
    state.file = file;
    state.url = URL.createObjectURL(file);
    probeImg.src = state.url;
    drop.hidden = true;
    probe.hidden = false;
    search(null);
  }

  function rerun() {
    if (state.file) search(state.result ? state.result.face : null);
  }

  async function search(face) {
    const { checked, all } = chosenCollections();
    if (!checked.length && state.collections.length) {
      status.replaceChildren(el("p", { class: "muted", text: "Choose at least one collection." }));
      grid.replaceChildren();
      return;
    }
    const purpose = document.getElementById("purpose").value;
    const caseRef = document.getElementById("case").value.trim();
    if (!purpose || !caseRef) {
      status.replaceChildren(el("p", { class: "error", role: "alert",
        text: "Every search needs a purpose and a case reference: fill them in, then search." }));
      grid.replaceChildren();
      return;
    }
    const form = new FormData();
    form.append("photo", state.file);
    form.append("purpose", purpose);
    form.append("case", caseRef);
    const authorisation = document.getElementById("authorisation").value.trim();
    if (authorisation) form.append("authorisation", authorisation);
    form.append("top", top.value);
    if (face !== null && face !== undefined) form.append("face", face);
    if (!all) checked.forEach((name) => form.append("collection", name));
    status.replaceChildren(el("p", { class: "busy", text: "Searching…" }));
    grid.setAttribute("aria-busy", "true");
    // Only the newest search may draw: an earlier one answering late (a face
    // clicked while the first search ran) must not replace its results.
    const ticket = ++state.searches;
    try {
      const result = await api("POST", "/api/search", form);
      if (ticket !== state.searches) return;
      state.result = result;
      drawProbe();
      drawMatches();
    } catch (error) {
      if (ticket !== state.searches) return;
      status.replaceChildren(el("p", { class: "error", role: "alert", text: error.message }));
      grid.replaceChildren();
      hint.textContent = "";
      probeFigure.querySelectorAll(".facebox").forEach((b) => b.remove());
    } finally {
      grid.removeAttribute("aria-busy");
    }
  }

  function drawProbe() {
    const { probe: p, face } = state.result;
    probeFigure.querySelectorAll(".facebox").forEach((b) => b.remove());
    p.faces.forEach((f) => {
      const box = el("button", {
        type: "button", class: "facebox" + (f.index === face ? " selected" : ""),
        title: `face ${f.index + 1}: search this face`, "aria-label": `search face ${f.index + 1}`,
        dataset: { face: f.index },
        onclick: () => { if (f.index !== state.result.face) search(f.index); },
      }, el("span", { text: String(f.index + 1) }));
      placeBox(box, f.box, p.width, p.height);
      probeFigure.append(box);
    });
    hint.textContent = p.faces.length > 1
      ? `${p.faces.length} faces found. Searching face ${face + 1}; click another face to search it.`
      : "1 face found.";
  }

  function drawMatches() {
    const r = state.result;
    status.replaceChildren(el("p", {},
      el("strong", { text: `${r.matches.length} matches` }),
      ` among ${r.searched_faces.toLocaleString()} faces`));
    if (!r.matches.length) {
      grid.replaceChildren(el("p", { class: "empty", text: "No stored faces to compare with." }));
      return;
    }
    grid.replaceChildren(...r.matches.map(card));
  }

  // A moment in a video as hh:mm:ss.mmm, as the CLI prints it.
  function moment(ms) {
    const pad = (n, w) => String(n).padStart(w, "0");
    const h = Math.floor(ms / 3600000), m = Math.floor(ms / 60000) % 60;
    const s = Math.floor(ms / 1000) % 60;
    return `${pad(h, 2)}:${pad(m, 2)}:${pad(s, 2)}.${pad(ms % 1000, 3)}`;
  }

  function scoreClass(score) {
    return score >= 0.5 ? "high" : score >= 0.363 ? "mid" : "low";
  }

  function card(m) {
    const pct = Math.max(0, Math.min(100, Math.round(m.score * 100)));
    const bar = el("span", { class: "bar-fill" });
    bar.style.width = pct + "%";
    return el("article", { class: "match " + scoreClass(m.score), dataset: { faceId: m.face_id, rank: m.rank } },
      el("button", { type: "button", class: "thumb", "aria-label": `open match ${m.rank}`, onclick: () => open(m) },
        el("img", { src: m.thumbnail_url, alt: `match ${m.rank}`, loading: "lazy", width: 96, height: 96 }),
        el("span", { class: "rank", text: `#${m.rank}` }),
        m.video ? el("span", { class: "moment", text: `▶ ${moment(m.video.time_ms)}` }) : null),
      el("div", { class: "meta" },
        el("div", { class: "score-line" },
          el("span", { class: "score", text: m.score.toFixed(3) }),
          m.band ? el("span", { class: "band", text: m.band }) : null),
        el("span", { class: "bar" }, bar),
        el("span", { class: "collection", text: m.collection }),
        el("span", { class: "date", text: date(m.captured_at) || "date unknown" }),
        m.person ? el("a", { class: "person", href: `/people/${m.person.id}`,
          text: `${m.person.name || "person " + m.person.id} · ${m.person.faces} photos` }) : null,
        m.source_url
          ? el("a", { href: m.source_url, target: "_blank", rel: "noopener noreferrer", class: "source", text: "source ↗" })
          : el("span", { class: "source muted", text: m.filename })));
  }

  function figure(container, src, box, size) {
    const img = el("img", { src, alt: "" });
    const mark = el("span", { class: "facebox selected static" });
    mark.hidden = true;
    container.replaceChildren(img, mark);
    const show = () => {
      const width = size ? size[0] : img.naturalWidth;
      const height = size ? size[1] : img.naturalHeight;
      placeBox(mark, box, width, height);
      mark.hidden = false;
    };
    if (img.complete && img.naturalWidth) show(); else img.addEventListener("load", show, { once: true });
  }

  // The clip from the face's moment: the server answers the player's range requests.
  function play(container, m) {
    const at = m.video.time_ms / 1000;
    const video = el("video", { src: `${m.clip_url}#t=${at.toFixed(3)}`, controls: true,
      muted: true, autoplay: true, playsinline: true, preload: "auto", class: "clip",
      "aria-label": `the video from ${moment(m.video.time_ms)}` });
    video.muted = true;
    video.addEventListener("loadedmetadata", () => {
      if (Math.abs(video.currentTime - at) > 0.25) video.currentTime = at;
      video.play().catch(() => {});
    }, { once: true });
    container.replaceChildren(video);
  }

  function open(m) {
    const r = state.result;
    const probeFace = r.probe.faces[r.face];
    figure(document.getElementById("viewer-probe"), state.url, probeFace.box, [r.probe.width, r.probe.height]);
    if (m.video) play(document.getElementById("viewer-match"), m);
    else figure(document.getElementById("viewer-match"), m.image_url, m.box, null);
    document.getElementById("viewer-title").textContent = `Match #${m.rank} · score ${m.score.toFixed(3)}`;
    document.getElementById("viewer-match-caption").textContent = `${m.collection} · ${m.filename}`;
    const details = [
      ["Score", m.score.toFixed(4) + " (cosine similarity)"],
      ["Collection", m.collection],
      ["File", m.filename],
      ["Captured", m.captured_at || "unknown"],
      ["Face", `#${m.face_id} at ${m.box.x},${m.box.y} (${m.box.w}×${m.box.h})`],
    ];
    if (m.band) details.splice(1, 0, ["Band", m.band]);
    if (m.video) {
      details.push(["At", `${moment(m.video.time_ms)} of ${moment(m.video.duration_ms)}`],
        ["On screen", `${moment(m.video.start_ms)} – ${moment(m.video.end_ms)} (track #${m.video.track_id})`]);
    }
    const list = document.getElementById("viewer-details");
    list.replaceChildren(...details.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
    if (m.source_url) {
      list.append(el("dt", { text: "Source" }),
        el("dd", {}, el("a", { href: m.source_url, target: "_blank", rel: "noopener noreferrer", text: m.source_url })));
    }
    const verdict = document.getElementById("verdict");
    const decide = (decision) => async () => {
      try {
        const v = await api("POST", `/api/search/${r.search_id}/verifications`, { face_id: m.face_id, decision });
        verdict.textContent = `Recorded: ${v.decision} by ${v.decided_by}` +
          (v.final ? "." : "; a second person must confirm it.");
      } catch (error) { verdict.textContent = error.message; }
    };
    document.getElementById("verify-buttons").replaceChildren(
      el("button", { type: "button", class: "primary", text: "Same person (confirm)", onclick: decide("confirmed") }),
      el("button", { type: "button", class: "secondary", text: "Not the same person (reject)", onclick: decide("rejected") }));
    verdict.textContent = `Search #${r.search_id} · ${r.purpose} · case ${r.case}`;
    viewer.showModal();
  }

  drop.addEventListener("click", () => input.click());
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); } });
  input.addEventListener("change", () => pick(input.files[0]));
  ["purpose", "case", "authorisation"].forEach((id) => document.getElementById(id).addEventListener("change", rerun));
  ["dragenter", "dragover"].forEach((type) => drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.add("over"); }));
  ["dragleave", "drop"].forEach((type) => drop.addEventListener(type, () => drop.classList.remove("over")));
  drop.addEventListener("drop", (e) => { e.preventDefault(); pick(e.dataTransfer.files[0]); });
  document.addEventListener("paste", (e) => {
    const file = [...(e.clipboardData?.files || [])].find((f) => f.type.startsWith("image/"));
    if (file) pick(file);
  });
  document.getElementById("another").addEventListener("click", () => {
    input.value = "";
    probe.hidden = true;
    drop.hidden = false;
    grid.replaceChildren(el("p", { class: "empty", text: "Choose a photo to search." }));
    status.replaceChildren();
    state.result = null;
  });
  top.addEventListener("change", rerun);
  viewer.addEventListener("click", (e) => { if (e.target === viewer) viewer.close(); });
  viewer.addEventListener("close", () => viewer.querySelectorAll("video").forEach((v) => v.pause()));
  loadCollections();
})();
