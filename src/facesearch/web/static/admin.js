"use strict";
// People: accounts, organisations and (for administrators) every API token.
(() => {
  const { api, el, toast, date, when, secret } = FS;
  const root = document.getElementById("admin");
  const manage = root.dataset.manage === "yes";
  const canTokens = root.dataset.tokens === "yes";
  const me = Number(root.dataset.me);
  const usersBody = document.querySelector("#users tbody");
  const roles = ["administrator", "supervisor", "investigator", "auditor"];

  function status(user) {
    if (!user.active) return ["disabled", "disabled"];
    if (user.expires_at && new Date(user.expires_at) <= new Date()) return ["expired", "expired"];
    if (user.must_change_password) return ["one-time password", "pending"];
    return ["active", "active"];
  }

  async function change(user, body, done) {
    try {
      const updated = await api("PATCH", `/api/users/${user.id}`, body);
      toast(done);
      if (updated.one_time_password) {
        secret(document.getElementById("created") || document.body, `One-time password for ${user.username}:`, updated.one_time_password);
        document.getElementById("created")?.closest("details")?.setAttribute("open", "");
      }
      loadUsers();
    } catch (error) { toast(error.message, "error"); }
  }

  function rowFor(user) {
    const [label, kind] = status(user);
    const self = user.id === me;
    const role = manage && !self
      ? el("select", { "aria-label": `role of ${user.username}`, onchange: (e) => change(user, { role: e.target.value }, "role changed") },
          roles.map((r) => el("option", { value: r, selected: r === user.role, text: r })))
      : el("span", { text: user.role });
    const actions = manage && !self ? [
      el("button", { type: "button", class: "link", text: user.active ? "disable" : "enable",
        onclick: () => change(user, { active: !user.active }, user.active ? "disabled" : "enabled") }),
      el("button", { type: "button", class: "link", text: "reset password",
        onclick: () => confirm(`Give ${user.username} a new one-time password?`) && change(user, { reset_password: true }, "password reset") }),
      el("button", { type: "button", class: "link", text: user.expires_at ? "no end date" : "set end date",
        onclick: () => {
          if (user.expires_at) return change(user, { expires_at: null }, "end date removed");
          const answer = prompt("End the account on (YYYY-MM-DD):");
          if (answer) change(user, { expires_at: new Date(answer + "T23:59:59").toISOString() }, "end date set");
        } }),
    ] : [];
    return el("tr", {},
      el("td", {}, el("strong", { text: user.username }), self ? el("small", { class: "muted", text: " (you)" }) : null),
      el("td", { text: user.organisation }),
      el("td", {}, role),
      el("td", {}, el("span", { class: `status-pill ${kind}`, text: label })),
      el("td", { text: user.expires_at ? date(user.expires_at) : "—" }),
      el("td", { text: when(user.last_login_at) }),
      el("td", { class: "row-actions" }, actions));
  }

  async function loadUsers() {
    try {
      const users = await api("GET", "/api/users");
      usersBody.replaceChildren(...users.map(rowFor));
    } catch (error) { toast(error.message, "error"); }
  }

  async function loadOrgs() {
    const orgs = await api("GET", "/api/organisations");
    document.getElementById("orgs").replaceChildren(...orgs.map((o) =>
      el("li", {}, el("strong", { text: o.name }), el("small", { class: "muted", text: ` since ${date(o.created_at)}` }))));
    const select = document.getElementById("org-select");
    if (select) {
      select.replaceChildren(...orgs.map((o) => el("option", { value: o.id, text: o.name, selected: String(o.id) === root.dataset.org })));
    }
  }

  async function loadTokens() {
    if (!canTokens) return;
    const tokens = await api("GET", "/api/tokens?all=true");
    const body = document.querySelector("#tokens tbody");
    if (!tokens.length) {
      body.replaceChildren(el("tr", {}, el("td", { colspan: 8, class: "muted", text: "No API tokens." })));
      return;
    }
    body.replaceChildren(...tokens.map((t) => FS.tokenRow(t, loadTokens, true)));
  }

  const createUser = document.getElementById("create-user");
  if (createUser) {
    createUser.addEventListener("submit", async (e) => {
      e.preventDefault();
      const data = Object.fromEntries(new FormData(createUser));
      const body = { username: data.username, role: data.role, organisation_id: Number(data.organisation_id) };
      if (data.expires_at) body.expires_at = new Date(data.expires_at + "T23:59:59").toISOString();
      try {
        const user = await api("POST", "/api/users", body);
        secret(document.getElementById("created"), `Account ${user.username} created. Its one-time password:`, user.one_time_password);
        createUser.reset();
        loadOrgs();
        loadUsers();
      } catch (error) { toast(error.message, "error"); }
    });
  }
  const createOrg = document.getElementById("create-org");
  if (createOrg) {
    createOrg.addEventListener("submit", async (e) => {
      e.preventDefault();
      try {
        await api("POST", "/api/organisations", Object.fromEntries(new FormData(createOrg)));
        toast("organisation added");
        createOrg.reset();
        loadOrgs();
      } catch (error) { toast(error.message, "error"); }
    });
  }
  loadOrgs().catch((error) => toast(error.message, "error"));
  loadUsers();
  loadTokens().catch((error) => toast(error.message, "error"));
})();
