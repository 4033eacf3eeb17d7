"use strict";
// Shared helpers: the JSON API with the session's CSRF token, small DOM builders.
const FS = (() => {
  const meta = document.querySelector('meta[name="csrf-token"]');

  async function api(method, url, body) {
    const options = { method, headers: {}, credentials: "same-origin" };
    if (method !== "GET") options.headers["X-CSRF-Token"] = meta ? meta.content : "";
    if (body instanceof FormData) options.body = body;
    else if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    const response = await fetch(url, options);
    if (response.status === 401) {
      location.href = "/login?next=" + encodeURIComponent(location.pathname);
      throw new Error("your session has ended; log in again");
    }
    const renewed = response.headers.get("X-CSRF-Token");
    if (renewed && meta) meta.content = renewed;
    if (response.status === 204) return null;
    const type = response.headers.get("content-type") || "";
    const data = type.includes("json") ? await response.json() : await response.text();
    if (!response.ok) throw new Error((data && data.detail) || response.statusText);
    return data;
  }

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  let toastTimer;
  function toast(message, kind = "info") {
    const box = document.getElementById("toast");
    if (!box) return;
    box.textContent = message;
    box.className = "toast " + kind;
    box.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { box.hidden = true; }, kind === "error" ? 8000 : 4000);
  }

  function date(value) {
    if (!value) return "";
    const parsed = new Date(value);
    if (Number.isNaN(parsed.getTime())) return value;
    return parsed.toLocaleDateString(undefined, { year: "numeric", month: "short", day: "numeric" });
  }

  function when(value) {
    if (!value) return "—";
    const parsed = new Date(value);
    return Number.isNaN(parsed.getTime()) ? value : parsed.toLocaleString();
  }

  // Position a box given in image pixels over an image shown at any size.
  function placeBox(node, box, width, height) {
    node.style.left = (100 * box.x / width) + "%";
    node.style.top = (100 * box.y / height) + "%";
    node.style.width = (100 * box.w / width) + "%";
    node.style.height = (100 * box.h / height) + "%";
  }

  function secret(container, label, value) {
    container.replaceChildren(
      el("p", {}, el("strong", { text: label })),
      el("div", { class: "secret-row" },
        el("code", { text: value }),
        el("button", {
          type: "button", class: "secondary", text: "Copy",
          onclick: () => navigator.clipboard.writeText(value).then(() => toast("copied")),
        })),
      el("p", { class: "fine", text: "It is shown this once; the server keeps only its hash." }));
    container.hidden = false;
  }

  // One row of an API-token table (own tokens, or everyone's with their owner).
  function tokenRow(t, reload, withOwner = false) {
    const state = t.revoked_at ? "revoked" : new Date(t.expires_at) <= new Date() ? "expired" : "active";
    return el("tr", {},
      el("td", { text: t.name }), withOwner ? el("td", { text: t.username }) : null,
      el("td", {}, el("code", { text: t.prefix + "…" })),
      el("td", { text: date(t.created_at) }), el("td", { text: date(t.expires_at) }), el("td", { text: when(t.last_used_at) }),
      el("td", {}, el("span", { class: `status-pill ${state === "active" ? "active" : "disabled"}`, text: state })),
      el("td", {}, state === "active" ? el("button", { type: "button", class: "link", text: "revoke", onclick: async () => {
        if (!confirm(`Revoke the token ${t.name}? Programs using it stop working at once.`)) return;
        try { await api("DELETE", `/api/tokens/${t.id}`); toast("token revoked"); reload(); }
        catch (error) { toast(error.message, "error"); }
      } }) : null));
  }

  return { tokenRow, api, el, toast, date, when, placeBox, secret };
})();
