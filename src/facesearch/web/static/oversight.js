"use strict";
// The oversight page: chain check, anomaly flags, usage, transparency report, the log.
(() => {
  const { api, el, when } = FS;
  const form = document.getElementById("filters");

  function query() {
    const params = new URLSearchParams();
    for (const [key, value] of new FormData(form)) if (value) params.set(key, value);
    return params;
  }

  function counts(title, values) {
    const rows = Object.entries(values || {});
    return el("div", { class: "card" }, el("h3", { text: title }),
      rows.length ? el("table", { class: "table" }, rows.map(([k, v]) =>
        el("tr", {}, el("td", { text: k }), el("td", { text: v })))) :
        el("p", { class: "muted", text: "none" }));
  }

  async function load() {
    const params = query();
    document.getElementById("csv").href = "/api/audit?format=csv&" + params;
    const period = new URLSearchParams();
    if (params.get("since")) period.set("since", params.get("since"));
    if (params.get("until")) period.set("until", params.get("until"));
    const [check, report, entries] = await Promise.all([
      api("GET", "/api/audit/verify"), api("GET", "/api/audit/report?" + period),
      api("GET", "/api/audit?" + params),
    ]);
    const chain = document.getElementById("chain");
    chain.className = "status " + (check.ok ? "ok" : "error");
    chain.textContent = check.ok
      ? `Audit log intact: ${check.entries_checked} entries verified.`
      : `Audit log BROKEN at entry ${check.broken_seq}: ${check.problem}.`;
    const flags = report.anomalies;
    document.getElementById("anomalies").replaceChildren(...(flags.length ? flags.map((f) =>
      el("li", { text: `${f.flag}: ${f.actor || (f.actors || []).join(", ") || ""} ` +
        `${f.day || f.at || f.case || ""} ${f.count ? "(" + f.count + ")" : ""} — entries ${f.entries.join(", ")}` }))
      : [el("li", { class: "muted", text: "no flags" })]));
    const u = report.usage;
    document.getElementById("usage").replaceChildren(
      counts("Searches per user", u.by_user), counts("Per day", u.by_day),
      counts("Per purpose", u.by_purpose), counts("Per case", u.by_case));
    document.getElementById("transparency").replaceChildren(...Object.entries(report.transparency)
      .flatMap(([k, v]) => [el("dt", { text: k.replaceAll("_", " ") }),
        el("dd", { text: Array.isArray(v) ? v.join(", ") : (v && typeof v === "object") ? JSON.stringify(v) : (v ?? "—") })]));
    document.querySelector("#entries tbody").replaceChildren(...entries.map((e) =>
      el("tr", {}, el("td", { text: e.seq }), el("td", { text: when ? when(e.at) : e.at }),
        el("td", { text: e.actor }), el("td", { text: e.origin }), el("td", { text: e.action }),
        el("td", { text: e.details.purpose || "" }), el("td", { text: e.details.case || "" }),
        el("td", { text: (e.details.face_ids || []).join(" ") }))));
  }

  form.addEventListener("submit", (event) => { event.preventDefault(); load().catch((e) => FS.toast(e.message, "error")); });
  load().catch((e) => FS.toast(e.message, "error"));
})();
