"use strict";
// One's own account: password and API tokens.
(() => {
  const { api, el, toast, date, when, secret } = FS;
  const password = document.getElementById("password");
  password.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const me = await api("POST", "/api/auth/password", Object.fromEntries(new FormData(password)));
      toast("password changed");
      password.reset();
      if (!me.must_change_password && document.querySelector(".notice.warn")) location.href = "/";
    } catch (error) { toast(error.message, "error"); }
  });

  const tokensBody = document.querySelector("#tokens tbody");
  async function loadTokens() {
    if (!tokensBody) return;
    const tokens = await api("GET", "/api/tokens");
    if (!tokens.length) {
      tokensBody.replaceChildren(el("tr", {}, el("td", { colspan: 7, class: "muted", text: "No tokens yet." })));
      return;
    }
    tokensBody.replaceChildren(...tokens.map((t) => FS.tokenRow(t, loadTokens)));
  }
  const form = document.getElementById("new-token");
  if (form) {
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const data = Object.fromEntries(new FormData(form));
      try {
        const token = await api("POST", "/api/tokens", { name: data.name, days: Number(data.days) });
        secret(document.getElementById("token-created"), `Token ${token.name}:`, token.token);
        form.reset();
        loadTokens();
      } catch (error) { toast(error.message, "error"); }
    });
  }
  loadTokens().catch((error) => toast(error.message, "error"));
})();
